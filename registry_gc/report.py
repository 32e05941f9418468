"""Report: counts and bytes per category and per repository, the reasons, JSON.

The JSON form (:meth:`Report.to_dict`) is a stable, documented schema
(``docs/json-schema.md``); its ``schema`` field names its version. It is a
summary, bounded by the number of repositories, anomalies and failures, not by
the size of the store: the list of every deletion is streamed to a file
instead (:mod:`registry_gc.planfile`, ``--deletions-out``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._deletions import DeletionList, Tally
from ._render import human_bytes, iso_time, iso_timestamp
from .apply import ApplyResult, Status, StatusList
from .options import Options, Removals
from .plan import Category

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .inventory import Inventory
    from .live import LiveResult
    from .plan import Plan
    from .policy import TagDecisions

__all__ = ["SCHEMA", "Report", "human_bytes"]

#: The JSON schema identifier; bumped on any incompatible change (v2: no ``deletions``
#: list, ``kept`` summed per category).
SCHEMA = "registry-gc/report/v2"

#: Deletions ``render(verbose=True)`` lists one per line, at most.
VERBOSE_DELETIONS = 1000

CACHE_NOTICE = (
    "A running registry caches blob descriptors (storage.cache.blobdescriptor, in-memory or "
    "redis): restart it (or flush redis keys blobs::* and repository::*) so that pushes do not "
    "skip layers that were just deleted."
)


@attrs.define
class Report:
    """The outcome of one run: what was found, what was (or would be) deleted, and why."""

    inventory: Inventory
    plan: Plan
    dry_run: bool
    #: the options the run used
    options: Options = attrs.Factory(Options)
    result: ApplyResult | None = None
    #: seconds per step: inventory, manifests, mark, plan, apply
    timings: dict[str, float] = attrs.Factory(dict)
    manifests_read: int = 0
    #: what a retention policy decided for each tag (``None`` without a policy)
    decisions: TagDecisions | None = None
    #: what a live run moved, restored and purged (``None``: not a live run)
    live: LiveResult | None = None
    #: what the run removed by name (``rm``, a retention policy's tags)
    removals: Removals = attrs.Factory(Removals)
    #: the tally of the counted deletions, with the result it was made for
    _tallied: tuple[object, Tally] | None = attrs.field(
        default=None, init=False, repr=False, eq=False
    )

    @property
    def ok(self) -> bool:
        """``True`` when every deletion that was attempted succeeded (and, live, every restore)."""
        return (self.result is None or self.result.ok) and (self.live is None or self.live.ok)

    @property
    def exit_code(self) -> int:
        """0 on success; 1 when a deletion failed or was skipped."""
        return 0 if self.ok else 1

    def status(self, i: int) -> Status:
        """What became of deletion ``i`` of the plan (``PLANNED`` in a dry run)."""
        if self.result is None:
            return Status.PLANNED
        return self.result.status[i]

    def _counted(self) -> list[int]:
        """Indices of deletions that count as done (planned in a dry run, deleted otherwise)."""
        want = Status.PLANNED if self.result is None else Status.DELETED
        return [i for i in range(len(self.plan.deletions)) if self.status(i) is want]

    def tally(self) -> Tally:
        """Counts and bytes of what was (or would be) deleted, in one pass over the plan."""
        result = self.result
        if self._tallied is not None and self._tallied[0] is result:
            return self._tallied[1]
        deletions = self.plan.deletions
        counted: Sequence[int] | None = None
        if result is not None:
            status = result.status
            counted = (
                status.mask(Status.DELETED)
                if isinstance(status, StatusList)
                else [s is Status.DELETED for s in status]
            )
        tally = (
            deletions.tally(counted)
            if isinstance(deletions, DeletionList)
            else Tally.of(deletions, counted)
        )
        self._tallied = (result, tally)
        return tally

    def categories(self) -> dict[str, dict[str, int]]:
        """Category → ``{"count", "bytes", "objects"}`` of what was (or would be) deleted."""
        return {
            c.value: {"count": n, "bytes": size, "objects": objects}
            for c, (n, size, objects) in self.tally().categories.items()
        }

    def kept_categories(self) -> dict[str, dict[str, int]]:
        """Category → ``{"count", "bytes"}`` of the garbage kept for the grace period."""
        out: dict[str, dict[str, int]] = {c.value: {"count": 0, "bytes": 0} for c in Category}
        for k in self.plan.kept:
            entry = out[k.category.value]
            entry["count"] += 1
            entry["bytes"] += k.size
        return out

    def repositories(self) -> dict[str, dict[str, Any]]:
        """Repository → counts and bytes per category (blobs are global, so not here)."""
        return {
            name: {
                "count": totals[0],
                "bytes": totals[1],
                "categories": {c.value: n for c, n in categories.items()},
            }
            for name, (totals, categories) in sorted(self.tally().repositories.items())
        }

    def _reasons(self) -> dict[str, str]:
        """Category → its deletions' reasons, most frequent first: ``unreferenced 41, …``."""
        return {
            category.value: ", ".join(
                str(reason) if len(reasons) == 1 else f"{reason} {n}"
                for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
            )
            for category, reasons in self.tally().reasons.items()
        }

    @property
    def deleted_bytes(self) -> int:
        """Bytes freed (or that a real run would free)."""
        return self.tally().bytes

    @property
    def deleted_count(self) -> int:
        """Objects deleted (or that a real run would delete)."""
        return self.tally().objects

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; see ``docs/json-schema.md``."""
        plan, inv, result = self.plan, self.inventory, self.result
        kept_bytes = sum(k.size for k in plan.kept)
        from . import __version__  # noqa: PLC0415

        return {
            "schema": SCHEMA,
            "version": __version__,
            "root": plan.url,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "started": iso_time(plan.started),
            "options": {
                "delete_untagged": plan.delete_untagged,
                "grace_seconds": self.options.grace.total_seconds(),
                "uploads_older_than_seconds": self.options.uploads_older_than.total_seconds(),
            },
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "store": {
                "objects": inv.objects,
                "repositories": len(inv.repositories),
                "blobs": plan.total_blobs,
                "bytes": plan.total_bytes if plan.sizes_measured else None,
                "live_blobs": plan.live_blobs,
                "live_bytes": plan.live_bytes if plan.sizes_measured else None,
                "manifests_read": self.manifests_read,
            },
            "totals": {
                "deletions": self.tally().count,
                "objects": self.deleted_count,
                "bytes": self.deleted_bytes,
                "failed": len(result.failures) if result else 0,
                "already_missing": result.already_missing if result else 0,
                "directories_removed": result.directories_removed if result else 0,
                "kept_for_grace": len(plan.kept),
                "kept_for_grace_bytes": kept_bytes,
                "anomalies": len(plan.anomalies),
            },
            "categories": self.categories(),
            "repositories": self.repositories(),
            "kept": self.kept_categories(),
            "anomalies": [
                {"kind": a.kind, "path": a.path, "repository": a.repository, "message": a.message}
                for a in plan.anomalies
            ],
            "failures": [
                {
                    "path": f.path,
                    "error": f.error,
                    "category": f.category.value,
                    "repository": f.repository,
                }
                for f in (result.failures if result else [])
            ],
            "live": self.live.to_dict() if self.live is not None else None,
            "tags": [
                {
                    "repository": d.repository,
                    "tag": d.tag,
                    "digest": d.digest,
                    "action": d.action.value,
                    "rule": d.rule,
                    "pushed": iso_timestamp(d.pushed),
                }
                for d in (self.decisions.tags if self.decisions else ())
            ],
        }

    def _render_decisions(self, *, verbose: bool) -> list[str]:
        """The policy's tag decisions: every deleted tag and its rule (dry runs, or -v)."""
        assert self.decisions is not None
        deleted = list(self.decisions.deleted())
        kept = len(self.decisions.tags) - len(deleted)
        if self.dry_run:
            lines = [f"  policy: would delete {len(deleted)} tag(s) and keep {kept}"]
        else:
            lines = [f"  policy: deleted {len(deleted)} tag(s), kept {kept}"]
        if self.dry_run or verbose:
            lines.extend(
                f"    - {d.repository}:{d.tag} ({d.digest or 'no digest'}): {d.rule}"
                for d in deleted
            )
            lines.extend(
                f"    - referrer {m.digest} in {m.repository}: {m.rule}"
                for m in self.decisions.manifests
            )
        if verbose:
            lines.append("  policy kept:")
            lines.extend(f"    - {d.repository}:{d.tag}: {d.rule}" for d in self.decisions.kept())
        return lines

    def _deletion_lines(self) -> list[str]:
        """One line per deletion, at most :data:`VERBOSE_DELETIONS` (a run may plan millions)."""
        deletions = self.plan.deletions
        lines = []
        for i in range(min(len(deletions), VERBOSE_DELETIONS)):
            d = deletions[i]
            what = d.digest or d.name or (d.paths[0] if d.paths else "")
            repo = f" in {d.repository}" if d.repository else ""
            lines.append(f"    [{self.status(i)}] {d.category.value} {what}{repo}: {d.reason}")
        if len(deletions) > VERBOSE_DELETIONS:
            more = len(deletions) - VERBOSE_DELETIONS
            lines.append(f"    … and {more} more deletion(s) (every one: --deletions-out FILE)")
        return lines

    def _render_outcome(self) -> list[str]:
        """Failures, skipped deletions, directories, the cache notice, live mode's figures."""
        lines: list[str] = []
        result = self.result
        if result is not None:
            if result.failures:
                lines.append(f"  FAILED ({len(result.failures)}):")
                lines.extend(f"    - {f.path}: {f.error}" for f in result.failures[:50])
                if len(result.failures) > 50:
                    lines.append(f"    … and {len(result.failures) - 50} more (use --json)")
                skipped = result.status.count(Status.SKIPPED)
                if skipped:
                    lines.append(
                        f"  {skipped} later deletion(s) were skipped so that nothing is deleted "
                        "while something referencing it remains; fix the cause and run again"
                    )
            if result.directories_removed:
                lines.append(f"  removed {result.directories_removed} empty directories")
            if self.deleted_count and result.ok and self.live is None:
                lines.append("  " + CACHE_NOTICE)
        if self.live is not None:
            lines.extend("  " + line for line in self.live.render())
        return lines

    def render(self, *, verbose: bool = False) -> str:
        """A readable summary for a terminal."""
        plan = self.plan
        verb = "would delete" if self.dry_run else "deleted"
        if self.live is not None:
            verb = "removed (blobs moved into the quarantine)"
        if plan.sizes_measured:
            total, live = human_bytes(plan.total_bytes), human_bytes(plan.live_bytes)
        else:
            total = live = "sizes not measured"
        store = (
            f"  store: {self.inventory.objects} objects, {len(self.inventory.repositories)} "
            f"repositories, {plan.total_blobs} blobs ({total}); "
            f"live: {plan.live_blobs} blobs ({live})"
        )
        lines = [f"registry-gc {'dry run' if self.dry_run else 'run'} on {plan.url}", store]
        cats = self.categories()
        why = self._reasons()
        width = max(len(c) for c in cats)
        lines.append(f"  {verb}:")
        for name, c in cats.items():
            if c["count"]:
                row = f"    {name:<{width}}  {c['count']:>8}  {human_bytes(c['bytes']):>10}"
                lines.append(f"{row}  {why[name]}")
        total = human_bytes(self.deleted_bytes)
        lines.append(f"    {'total':<{width}}  {self.tally().count:>8}  {total:>10}")
        if plan.kept:
            kept_bytes = sum(k.size for k in plan.kept)
            lines.append(
                f"  kept for the grace period: {len(plan.kept)} objects ({human_bytes(kept_bytes)})"
            )
        repos = self.repositories()
        if repos and verbose:
            lines.append("  per repository:")
            for name, r in repos.items():
                detail = ", ".join(f"{k} {v}" for k, v in sorted(r["categories"].items()))
                lines.append(f"    {name}: {detail}; {human_bytes(r['bytes'])}")
        if verbose:
            lines.extend(self._deletion_lines())
        if self.decisions is not None:
            lines.extend(self._render_decisions(verbose=verbose))
        if plan.anomalies:
            lines.append(f"  anomalies ({len(plan.anomalies)}):")
            shown = plan.anomalies if verbose else plan.anomalies[:20]
            lines.extend(f"    - {a.message}" for a in shown)
            if len(shown) < len(plan.anomalies):
                lines.append(
                    f"    … and {len(plan.anomalies) - len(shown)} more (use -v or --json)"
                )
        lines.extend(self._render_outcome())
        return "\n".join(lines)
