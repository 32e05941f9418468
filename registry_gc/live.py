"""Live mode: collect while the registry keeps serving pushes and pulls.

A normal run deletes what the listing at its start found to be garbage. A push
that races it — ``HEAD`` says a layer exists, so the client skips its upload,
or a cross-repository mount — can then be acknowledged and lose that layer a
moment later. A live run (``collect(..., live=True)``, ``registry-gc gc
--live``) never makes that loss final:

1. **List and mark** as any run does (time *T0*).
2. **Heal**: restore, from the quarantine, every blob a live manifest needs and
   every journaled link it needs (earlier runs' races heal here).
3. **Look again**: list ``repositories/`` once more and mark again (still
   counting the grace period from *T0*); only what both marks find to be
   garbage is removed.
4. **Remove**: journal every link first, delete the links, then *move* each
   garbage blob into the quarantine (:mod:`registry_gc.quarantine`), outside
   ``docker/registry/v2``; make the registry's blob-descriptor cache forget
   them (``registry_gc.cache``).
5. **Settle**: wait, so that every request that saw the store before the
   removal has finished; make the cache forget once more (with redis, wait
   once more after that: a request that used an entry written back in
   between has finished too).
6. **Verify**: list ``repositories/`` again and heal again — any push that
   raced steps 3 to 5 is visible now and gets back what it needs. Record the
   verification.
7. **Purge** what has been in the quarantine for longer than the grace
   period since a verification covered it (unless the cache cannot be
   cleared from outside: then the quarantine is *held*).

The argument for the guarantee is in ``docs/live.md``.

Why one module of over 600 lines: the steps of a live run (heal, look again,
remove, settle, verify, purge) share one run's state (:class:`_LiveRun`), and the
argument for the guarantee reads in their order; the quarantine's storage format
lives apart, in :mod:`registry_gc.quarantine`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import attrs

from ._render import human_bytes
from .apply import ApplyResult, Status, directories_to_prune, execute
from .backends import Outcome, SupportsDirectories, SupportsMove
from .collector import decide, log_plan, write_plan_files
from .fetch import fetch_manifests
from .inventory import BlobTable, scan
from .layout import (
    Digest,
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    classify,
)
from .mark import mark
from .options import Removals
from .plan import Category, Plan, make_plan
from .quarantine import (
    JournaledLink,
    Quarantine,
    QuarantinedBlob,
    RunId,
    journal_links,
    mark_verified,
    prune_quarantine_dirs,
    purge_runs,
    quarantine_blob_path,
    read_quarantine,
    require_live_capabilities,
    restore_blobs,
    restore_links,
    start_run,
)
from .report import Report

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable

    from ._run import ProgressCallback, Timings
    from .backends import Backend, DeleteResult
    from .cache import DescriptorCache, ForgetResult
    from .fetch import ManifestTable
    from .inventory import Inventory
    from .mark import Marks
    from .options import Options
    from .policy import Policy

__all__ = ["DEFAULT_SETTLE", "Healed", "LiveResult", "restore_needed", "sweep_live"]

log = logging.getLogger(__name__)

#: How long a live run waits after removing, before it verifies: longer than any one
#: request to the registry takes.
DEFAULT_SETTLE = datetime.timedelta(seconds=10)
#: Rounds of restoring (a restored index may need restored children, and so on).
MAX_HEAL_ROUNDS = 8
#: Items listed per figure in the text report.
_SHOWN = 20


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@attrs.define
class LiveResult:
    """What a live run did besides deleting: moves, restores, purges, the cache."""

    run: str
    #: the registry's blob-descriptor cache: ``none``, ``redis``, ``inmemory`` or ``unknown``
    cache: str
    settle: float
    #: garbage found at the start that was in use by the time the run looked again
    dropped: int = 0
    moved_blobs: int = 0
    moved_bytes: int = 0
    links_removed: int = 0
    #: blobs moved back from the quarantine (digests), and links written back (paths)
    restored_blobs: list[str] = attrs.Factory(list)
    restored_links: list[str] = attrs.Factory(list)
    #: what could not be restored: (path, error)
    restore_failures: list[tuple[str, str]] = attrs.Factory(list)
    verified: bool = False
    purged_runs: list[str] = attrs.Factory(list)
    purged_blobs: int = 0
    purged_bytes: int = 0
    purge_failures: list[tuple[str, str]] = attrs.Factory(list)
    #: why the quarantine was not purged (``None``: it was, as far as the grace allows)
    held: str | None = None
    #: the quarantine after the run
    quarantine_runs: int = 0
    quarantine_blobs: int = 0
    quarantine_bytes: int = 0
    forgotten: list[ForgetResult] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        """``True`` unless something needed could not be restored or purged."""
        return not self.restore_failures and not self.purge_failures

    def to_dict(self) -> dict[str, Any]:
        """The figures, as JSON-ready data (``live`` in the report's JSON)."""
        return {
            "run": self.run,
            "cache": self.cache,
            "settle_seconds": self.settle,
            "dropped": self.dropped,
            "moved_blobs": self.moved_blobs,
            "moved_bytes": self.moved_bytes,
            "links_removed": self.links_removed,
            "restored_blobs": len(self.restored_blobs),
            "restored_links": len(self.restored_links),
            "restored": {"blobs": self.restored_blobs, "links": self.restored_links},
            "restore_failures": [{"path": p, "error": e} for p, e in self.restore_failures],
            "verified": self.verified,
            "purged_runs": self.purged_runs,
            "purged_blobs": self.purged_blobs,
            "purged_bytes": self.purged_bytes,
            "purge_failures": [{"path": p, "error": e} for p, e in self.purge_failures],
            "held": self.held,
            "quarantine": {
                "runs": self.quarantine_runs,
                "blobs": self.quarantine_blobs,
                "bytes": self.quarantine_bytes,
            },
            "cache_forgotten": [f.to_dict() for f in self.forgotten],
        }

    def render(self) -> list[str]:
        """Lines for the text report."""
        lines = [
            f"live run {self.run} (cache: {self.cache}; settled {self.settle:g}s):",
            (
                f"  moved {self.moved_blobs} blob(s) ({human_bytes(self.moved_bytes)}) into the "
                f"quarantine; removed {self.links_removed} link(s)"
            ),
        ]
        if self.dropped:
            lines.append(f"  {self.dropped} deletion(s) dropped: in use again when looked at twice")
        if self.restored_blobs or self.restored_links:
            lines.append(
                f"  restored {len(self.restored_blobs)} blob(s) and "
                f"{len(self.restored_links)} link(s) that live manifests need"
            )
            lines.extend(f"    - {d}" for d in self.restored_blobs[:_SHOWN])
        for path, error in self.restore_failures[:_SHOWN]:
            lines.append(f"  FAILED to restore {path}: {error}")
        if self.purged_runs or self.purged_blobs:
            lines.append(
                f"  purged {self.purged_blobs} blob(s) ({human_bytes(self.purged_bytes)}) of "
                f"{len(self.purged_runs)} run(s) (verified long enough ago)"
            )
        for path, error in self.purge_failures[:_SHOWN]:
            lines.append(f"  could not purge {path}: {error}")
        lines.append(
            f"  quarantine: {self.quarantine_blobs} blob(s), "
            f"{human_bytes(self.quarantine_bytes)} in {self.quarantine_runs} run(s)"
            + (f"; held: {self.held}" if self.held else "")
        )
        if not self.verified:
            lines.append("  NOT verified: a later live run heals what this one could not")
        return lines


def _link_target(inventory: Inventory, path: str) -> tuple[Digest, str, Digest] | None:
    """(target, repository, digest as named) of a link path, or ``None`` for other objects."""
    key = classify(path)
    if isinstance(key, LayerLink):
        repo = inventory.repositories.get(key.repository)
        alias = repo.layer_aliases.get(key.digest) if repo is not None else None
        return (alias or key.digest), key.repository, key.digest
    if isinstance(key, (RevisionLink, TagIndexLink, LegacySignatureLink)):
        return key.digest, key.repository, key.digest
    if isinstance(key, TagCurrentLink):
        repo = inventory.repositories.get(key.repository)
        tag = repo.tags.get(key.tag) if repo is not None else None
        if tag is not None and tag.current is not None:
            return tag.current, key.repository, tag.current
    return None


def _deletion_key(category: Category, paths: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    return category.value, paths


def _intersection(first: Plan, second: Plan) -> Plan:
    """``second`` with only the deletions ``first`` also has (same category and paths).

    The deletions are ``first``'s: the second look lists ``repositories/`` only,
    so only the first knows an upload's open multipart uploads (object stores).
    """
    keys = {_deletion_key(d.category, d.paths) for d in second.deletions}
    kept = [d for d in first.deletions if _deletion_key(d.category, d.paths) in keys]
    return attrs.evolve(second, deletions=kept)


def _without(blobs: BlobTable, gone: set[str]) -> BlobTable:
    """A copy of ``blobs`` without ``gone``."""
    out = BlobTable()
    for digest in blobs:
        if digest not in gone:
            out.add(digest, blobs.size(digest), blobs.mtime(digest))
    return out


def _links_of(
    inventory: Inventory, plan: Plan
) -> tuple[list[tuple[str, Digest]], list[tuple[str, str]]]:
    """The plan's link paths with their targets (the journal), and the cache's (repo, digest)."""
    links: list[tuple[str, Digest]] = []
    cached: list[tuple[str, str]] = []
    for d in plan.deletions:
        if d.category in (Category.BLOB, Category.UPLOAD):
            continue
        for path in d.paths:
            found = _link_target(inventory, path)
            if found is None:
                continue
            target, repo, named = found
            links.append((path, target))
            if isinstance(classify(path), (LayerLink, RevisionLink)):
                cached.append((repo, str(named)))
    return links, cached


@attrs.define
class _LiveRun:
    """One live run's state, from the first listing to the purge."""

    backend: Backend
    options: Options
    removals: Removals
    #: when the run started: every grace period counts back from here
    t0: datetime.datetime
    quarantine: Quarantine
    result: LiveResult
    cache: DescriptorCache | None
    progress: ProgressCallback | None
    run: RunId = attrs.Factory(RunId.new)
    started_run: bool = False
    journals: int = 0
    #: blobs this run moved (digest → its quarantined copy)
    moved: dict[Digest, QuarantinedBlob] = attrs.Factory(dict)
    #: links this run deleted: (repository, digest as named), for the cache
    removed_links: list[tuple[str, str]] = attrs.Factory(list)

    def marks_of(self, inventory: Inventory, manifests: ManifestTable) -> Marks:
        return mark(inventory, manifests, self.options, removals=self.removals, now=self.t0)

    async def look_again(
        self, inventory: Inventory, manifests: ManifestTable, blobs: BlobTable | None = None
    ) -> tuple[Inventory, ManifestTable]:
        """List ``repositories/`` again (blobs as known), read the manifests that are new."""
        if blobs is not None:
            inventory = attrs.evolve(inventory, blobs=blobs)
        again = await scan(self.backend, progress=self.progress, blobs_from=inventory)
        return again, await fetch_manifests(self.backend, again, known=manifests)

    # -- healing -------------------------------------------------------------

    def _needed_links(self, inventory: Inventory, marks: Marks) -> list[Any]:
        journal = self.quarantine.links()
        if not journal:
            return []
        wanted: list[str] = []
        for name, repo in inventory.repositories.items():
            links = (marks.needed_links.get(name, set()) | marks.grace_links.get(name, set())) - (
                repo.layers.keys()
            )
            wanted.extend(LayerLink(name, d).path for d in links)
            manifests = marks.live.get(name, set()) | marks.grace_live.get(name, set())
            legacy = marks.legacy.get(name, {})
            wanted.extend(
                RevisionLink(name, d).path
                for d in manifests
                if d not in repo.revisions and d not in legacy
            )
        return [journal[p] for p in wanted if p in journal]

    async def heal(
        self, inventory: Inventory, manifests: ManifestTable
    ) -> tuple[Inventory, ManifestTable, Marks]:
        """Restore what live manifests need from the quarantine, until nothing more is needed."""
        marks = self.marks_of(inventory, manifests)
        for _ in range(MAX_HEAL_ROUNDS):
            blobs = [
                q
                for d in marks.blobs
                if d not in inventory.blobs and (q := self.quarantine.blob(d)) is not None
            ]
            links = self._needed_links(inventory, marks)
            if not blobs and not links:
                break
            restored = await self._restore_blobs(inventory, blobs)
            for d in restored:
                manifests.pop(d, None)
            written = await restore_links(self.backend, links)
            self.result.restored_links.extend(written)
            stamp = time.time()
            for link in links:
                key = classify(link.path)
                if not isinstance(key, (LayerLink, RevisionLink)):
                    continue
                repo = inventory.repositories.get(key.repository)
                if repo is None:
                    continue
                (repo.layers if isinstance(key, LayerLink) else repo.revisions)[key.digest] = stamp
            for link in links:
                self.quarantine.runs[link.run].links.pop(link.path, None)
            if not restored and not written:
                break  # nothing could be restored: marking again would change nothing
            manifests = await fetch_manifests(self.backend, inventory, known=manifests)
            marks = self.marks_of(inventory, manifests)
        return inventory, manifests, marks

    async def _restore_blobs(
        self, inventory: Inventory, blobs: list[QuarantinedBlob]
    ) -> list[Digest]:
        restored: list[Digest] = []
        results = await restore_blobs(self.backend, blobs)
        stamp = time.time()
        for entry, r in zip(blobs, results, strict=True):
            if r.outcome is Outcome.FAILED:
                self.result.restore_failures.append((entry.path, r.error or "failed"))
                log.error("could not restore %s: %s", entry.digest, r.error)
                continue
            # MISSING: the copy vanished (purged by someone else): nothing to restore from.
            if r.outcome is Outcome.MISSING:
                self.result.restore_failures.append((entry.path, "the quarantined copy is gone"))
            else:
                restored.append(entry.digest)
                inventory.blobs.add(entry.digest, entry.size, stamp)
                self.result.restored_blobs.append(str(entry.digest))
                log.info("restored %s from quarantine run %s", entry.digest, entry.run)
            self.quarantine.runs[entry.run].blobs.pop(entry.digest, None)
            self.moved.pop(entry.digest, None)
        await prune_quarantine_dirs(self.backend, [b.path for b in blobs])
        return restored

    # -- removing ------------------------------------------------------------

    async def _start(self) -> None:
        if self.started_run:
            return
        info = {
            "tool": "registry-gc",
            "root": self.backend.url,
            "host": socket.gethostname(),
            "listing_started": self.t0.isoformat(),
            "options": {
                "delete_untagged": self.options.delete_untagged,
                "grace_seconds": self.options.grace.total_seconds(),
                "uploads_older_than_seconds": self.options.uploads_older_than.total_seconds(),
                "prune_damaged": self.options.prune_damaged,
            },
        }
        path = await start_run(self.backend, self.run, info)
        self.started_run = True
        self.quarantine.run(self.run).files.append(path)

    async def remove(self, inventory: Inventory, plan: Plan) -> ApplyResult:
        """Journal the plan's links, delete them, move its blobs into the quarantine."""
        links, self.removed_links = _links_of(inventory, plan)
        if plan.deletions:
            await self._start()
        if links:
            written = await journal_links(self.backend, self.run, links, first=self.journals)
            self.journals += len(written)
            entry = self.quarantine.run(self.run)
            entry.files.extend(written)
            # This run's own links heal like any earlier run's.
            entry.links.update((p, JournaledLink(self.run, p, t)) for p, t in links)
        result = await execute(
            self.backend, plan, progress=self.progress, move_blobs=self._mover(plan), prune=False
        )
        link_categories = (Category.TAG, Category.REVISION, Category.TAG_INDEX, Category.LAYER_LINK)
        self.result.links_removed = sum(
            sum(1 for p in d.paths if p.endswith("/link"))
            for i, d in enumerate(plan.deletions)
            if result.status[i] is Status.DELETED and d.category in link_categories
        )
        self.result.moved_blobs = len(self.moved)
        self.result.moved_bytes = sum(b.size for b in self.moved.values())
        return result

    def _mover(self, plan: Plan) -> Callable[[list[str]], Awaitable[list[DeleteResult]]]:
        """What moves the plan's blobs into this run's quarantine, and records them."""
        blob_deletions = [d for d in plan.deletions if d.category is Category.BLOB]
        sizes = {d.paths[0]: d.size for d in blob_deletions}
        digests = {d.paths[0]: Digest(d.digest) for d in blob_deletions if d.digest is not None}
        backend = self.backend
        assert isinstance(backend, SupportsMove)

        async def move_blobs(paths: list[str]) -> list[DeleteResult]:
            pairs = [(p, quarantine_blob_path(self.run, digests[p])) for p in paths]
            results = await backend.move(pairs, sizes=sizes)
            mtime = _now()
            for (src, _), r in zip(pairs, results, strict=True):
                if r.outcome is Outcome.DELETED:
                    entry = QuarantinedBlob(self.run, digests[src], sizes.get(src, 0), mtime)
                    self.moved[entry.digest] = entry
                    self.quarantine.run(self.run).blobs[entry.digest] = entry
            return results

        return move_blobs

    async def forget(self) -> None:
        """Make the registry's cache forget what this run removed.

        Called twice: requests in flight the first time may have written
        entries back.
        """
        if self.cache is None or (not self.moved and not self.removed_links):
            return
        forgotten = await self.cache.forget([str(d) for d in self.moved], self.removed_links)
        self.result.forgotten.append(forgotten)

    async def verify(
        self,
        inventory: Inventory,
        manifests: ManifestTable,
        verifying_from: datetime.datetime,
        *,
        applied_ok: bool,
    ) -> None:
        """Look at the store once more and heal; record the verification when all went well.

        ``verifying_from`` (when this look began) is what the run records: the
        quarantine's grace period counts from it.
        """
        blobs = _without(inventory.blobs, set(self.moved))
        final, manifests = await self.look_again(inventory, manifests, blobs)
        await self.heal(final, manifests)
        self.result.verified = self.result.ok and applied_ok
        # The verification covers every earlier run too (an interrupted one never verified
        # itself): record it whenever there is something in the quarantine to cover.
        uncovered = any(self.quarantine.covered_at(r) is None for r in self.quarantine.runs)
        if self.result.verified and (self.started_run or uncovered):
            await self._start()
            entry = self.quarantine.run(self.run)
            entry.files.append(await mark_verified(self.backend, self.run, verifying_from))
            entry.verified_at = verifying_from

    # -- purging -------------------------------------------------------------

    async def purge(self) -> None:
        runs = self.quarantine.purgeable(now=_now(), grace=self.options.grace)
        if not runs:
            return
        purged = await purge_runs(self.backend, runs)
        self.result.purged_runs = purged.runs
        self.result.purged_blobs = purged.blobs
        self.result.purged_bytes = purged.size
        self.result.purge_failures = purged.failures
        for run in purged.runs:
            rid = RunId.parse(run)
            if rid is not None:
                self.quarantine.runs.pop(rid, None)


def _hold_reason(cache: DescriptorCache | None) -> str | None:
    if cache is None:
        return (
            "the registry's blob-descriptor cache is unknown (no configuration given): it may "
            "keep answering for blobs the run moved, so the quarantine is kept; give the "
            "registry's config.yml, or say the cache is none or redis"
        )
    if not cache.can_forget:
        return (
            "the registry caches blob descriptors in its memory (inmemory), which nothing "
            "outside can clear: the quarantine is kept until the registry restarts; then run "
            "`registry-gc quarantine purge`"
        )
    return None


async def sweep_live(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    *,
    options: Options,
    removals: Removals,
    policy: Policy | None,
    now: datetime.datetime | None,
    timings: Timings,
    progress: ProgressCallback | None,
    cache: DescriptorCache | None,
    settle: datetime.timedelta = DEFAULT_SETTLE,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> Report:
    """The live run, on what the first listing and reading found (see the module doc).

    ``cache`` is the registry's blob-descriptor cache (``None``: unknown, and
    then treated as one that cannot be cleared). ``sleep`` waits the settle
    time (tests pass their own). ``plan_out`` receives the plan both looks
    agree on, before anything moves; ``deletions_out`` every deletion with its
    status afterwards (a blob ``deleted`` there was moved into the quarantine).
    """
    require_live_capabilities(backend)
    t0 = now or inventory.started
    with timings.step("plan"):
        _, removals, decisions = await decide(
            backend,
            inventory,
            manifests,
            options=options,
            removals=removals,
            policy=policy,
            now=t0,
        )
    quarantine = await read_quarantine(backend)
    kind = "unknown" if cache is None else cache.kind
    result = LiveResult("", kind, settle.total_seconds(), held=_hold_reason(cache))
    run = _LiveRun(backend, options, removals, t0, quarantine, result, cache, progress)
    result.run = str(run.run)
    with timings.step("heal"):
        inventory, manifests, marks = await run.heal(inventory, manifests)
        first = make_plan(inventory, marks)
    with timings.step("look again"):
        again, manifests = await run.look_again(inventory, manifests)
        again, manifests, marks = await run.heal(again, manifests)
        plan = _intersection(first, make_plan(again, marks))
    result.dropped = len(first.deletions) - len(plan.deletions)
    log_plan(plan)
    report = Report(again, plan, dry_run=False, options=options, timings=timings, removals=removals)
    report.manifests_read, report.decisions, report.live = len(manifests), decisions, result
    write_plan_files(report, plan_out=plan_out)
    with timings.step("apply"):
        applied = report.result = await run.remove(again, plan)
        await run.forget()
    with timings.step("settle"):
        await sleep(settle.total_seconds())
        await run.forget()
        if cache is not None and cache.kind == "redis":
            # A request that read the storage before the removal may have written its
            # entry back after the first forget; one that used such an entry ends
            # within a second settle time, before the verification looks.
            await sleep(settle.total_seconds())
    verifying_from = _now()
    with timings.step("verify"):
        await run.verify(again, manifests, verifying_from, applied_ok=applied.ok)
    with timings.step("purge"):
        if result.held is None and result.ok:
            await run.purge()
        if applied.ok:
            applied.directories_removed += await _prune(backend, plan, applied)
        await prune_quarantine_dirs(backend, [b.path for b in run.moved.values()])
    result.quarantine_runs = sum(1 for r in quarantine.runs.values() if r.blobs or r.links)
    result.quarantine_blobs = quarantine.blob_count
    result.quarantine_bytes = quarantine.size
    if result.held and result.quarantine_blobs:
        log.warning("quarantine held: %s", result.held)
    write_plan_files(report, deletions_out=deletions_out)
    timings["total"] = timings.total()
    return report


async def _prune(backend: Backend, plan: Plan, applied: ApplyResult) -> int:
    """Remove the directories the plan's deletions left empty; how many went."""
    if not isinstance(backend, SupportsDirectories):
        return 0
    deleted = [
        p
        for i, d in enumerate(plan.deletions)
        if applied.status[i] is Status.DELETED
        for p in d.paths
    ]
    removed = 0
    for r in await backend.remove_empty_dirs(directories_to_prune(plan, deleted)):
        if r.outcome is Outcome.DELETED:
            removed += 1
    return removed


@attrs.frozen
class Healed:
    """What :func:`restore_needed` put back, and what it could not."""

    blobs: list[str]
    links: list[str]
    failures: list[tuple[str, str]]


async def restore_needed(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    *,
    options: Options,
    quarantine: Quarantine,
) -> Healed:
    """Restore from ``quarantine`` what the live manifests of the store need (and update it)."""
    result = LiveResult("", "n/a", 0.0)
    run = _LiveRun(backend, options, Removals(), inventory.started, quarantine, result, None, None)
    await run.heal(inventory, manifests)
    return Healed(result.restored_blobs, result.restored_links, result.restore_failures)
