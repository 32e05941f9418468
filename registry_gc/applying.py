"""Apply a reviewed plan file later, re-checking every entry against the store first.

``gc --dry-run --plan-out FILE`` writes a plan (:mod:`registry_gc.planfile`);
:func:`apply_planfile` executes it afterwards — but only what still holds:

1. The file is read through once before the storage is touched: a file cut
   short, of another format, with a path outside ``docker/registry/v2``, made
   for another root or older than ``max_age`` is refused, nothing deleted.
2. The store is surveyed again and planned again with the file's options and
   removals, the grace period counting from now.
3. An entry of the file is kept only if the fresh plan deletes the same thing
   with the same paths, and each path's size and time in the fresh listing are
   the ones the file recorded. Everything else is dropped, counted by why
   (:class:`Dropped`): gone already, changed, no longer garbage.
4. What the kept entries would take from something that stays — a blob of a
   revision whose deletion was dropped, the manifests of a tag that stays — is
   dropped too (``still-needed``), until nothing that stays needs anything
   that goes.
5. The kept entries are executed in the safe order by ``executor`` (default
   :func:`registry_gc.apply.execute`). Nothing outside the file is ever
   deleted: apply executes part of the file, never the fresh plan.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs

from . import _sync
from ._errors import PlanFileError
from ._reconcile import CODES, Dropped, executed_plan, reconcile
from ._render import iso_time
from ._run import Timings, open_root, survey
from .apply import Status, execute
from .durations import format_duration
from .mark import mark
from .plan import Plan, make_plan
from .planfile import (
    DROPPED,
    PlanHeader,
    PlanWriter,
    check_writable,
    read_plan,
    same_root,
)
from .report import Report

if TYPE_CHECKING:
    import array
    from collections.abc import Awaitable, Callable, Mapping

    from ._run import ProgressCallback, Root
    from .apply import ApplyResult
    from .backends import Backend
    from .planfile import PlanFooter, PlanReader

__all__ = [
    "DEFAULT_MAX_AGE",
    "ApplyReport",
    "Dropped",
    "Executor",
    "apply_planfile",
    "apply_planfile_async",
]

log = logging.getLogger(__name__)

#: A plan whose listing is older than this is refused (``apply --max-age``).
DEFAULT_MAX_AGE: Final = datetime.timedelta(hours=24)

#: ``executor(backend, plan)``: deletes (or moves) what ``plan`` lists, in phase order.
Executor: TypeAlias = "Callable[[Backend, Plan], Awaitable[ApplyResult]]"


@attrs.define
class ApplyReport:
    """What :func:`apply_planfile` did: the plan file, what it dropped and why, and the run."""

    #: the plan file applied
    plan_file: str
    header: PlanHeader
    #: the run: the fresh inventory, the executed part of the plan and what became of it
    report: Report
    max_age: datetime.timedelta
    #: how old the plan's listing was when it was applied
    age: datetime.timedelta
    #: deletions the file lists
    entries: int
    footer: PlanFooter
    #: entries not executed, per reason (every :class:`Dropped` value, zeros included)
    dropped: dict[str, int] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        """``True`` when every deletion attempted succeeded."""
        return self.report.ok

    @property
    def exit_code(self) -> int:
        """0 on success; 1 when a deletion failed or was skipped (as for ``gc``)."""
        return self.report.exit_code

    @property
    def executed(self) -> int:
        """Entries of the file that were (or, in a dry run, would be) executed."""
        return len(self.report.plan.deletions)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON form with the plan file (``command: apply``)."""
        h = self.header
        data = self.report.to_dict()
        data["command"] = "apply"
        data["plan"] = {
            "file": self.plan_file,
            "root": h.root,
            "created": iso_time(h.created),
            "listing_started": iso_time(h.listing_started),
            "tool": h.tool,
            "dry_run": h.dry_run,
            "age_seconds": round(self.age.total_seconds(), 3),
            "max_age_seconds": self.max_age.total_seconds(),
            "entries": self.entries,
            "footer": {"deletions": self.footer.deletions, "bytes": self.footer.bytes},
            "executed": self.executed,
            "dropped": dict(self.dropped),
        }
        return data

    def render(self, *, verbose: bool = False) -> str:
        """A readable summary for a terminal."""
        h = self.header
        dropped = sum(self.dropped.values())
        lines = [
            (
                f"registry-gc apply {self.plan_file}: planned {_rounded(self.age)} ago "
                f"({iso_time(h.listing_started)}) by {h.tool} on {h.root}"
            ),
            f"  plan: {self.entries} deletion(s); {self.executed} still hold",
        ]
        if dropped:
            why = ", ".join(f"{k.replace('-', ' ')} {n}" for k, n in self.dropped.items() if n)
            lines.append(f"  changed since the plan, not deleted: {dropped} ({why})")
        return "\n".join([*lines, self.report.render(verbose=verbose)])


def _rounded(age: datetime.timedelta) -> str:
    """``age`` to the second, as durations are written (``3h2m5s``)."""
    return format_duration(datetime.timedelta(seconds=round(age.total_seconds())))


# -- the command --------------------------------------------------------------------------------


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@attrs.frozen
class _Checked:
    """A plan file read through once: every line checked, nothing kept but the counts."""

    name: str
    header: PlanHeader
    entries: int
    footer: PlanFooter
    #: size and modification time: the file must not change while it is applied
    stamp: tuple[int, int]
    age: datetime.timedelta

    @classmethod
    def read(cls, name: str, max_age: datetime.timedelta) -> _Checked:
        with read_plan(name) as reader:
            header = reader.header
            for _ in reader:
                pass
            entries, footer = reader.entries, reader.footer
        assert footer is not None
        age = header.age()
        if age > max_age:
            reader.fail(
                1,
                f"was planned {_rounded(age)} ago ({iso_time(header.listing_started)}), "
                f"more than max_age {format_duration(max_age)} allows",
                what="plan again, or give a longer max_age if the store has not changed since",
            )
        if footer.deletions != entries:
            log.warning(
                "plan file %s lists %d deletion(s), its footer %d: lines were removed or added",
                name,
                entries,
                footer.deletions,
            )
        return cls(name, header, entries, footer, _stat(name), age)

    def again(self, reader: PlanReader) -> PlanReader:
        """``reader``, a new reading of the same file; refused if the file changed."""
        if _stat(self.name) != self.stamp or reader.header != self.header:
            reader.fail(None, "changed while it was being applied", what="apply it again")
        return reader

    def check_root(self, url: str) -> None:
        """Refuse a store other than the one the plan was made for."""
        root = self.header.root
        if not same_root(url, root):
            msg = (
                f"plan file {self.name}, line 1: was made for {root}, not {url}; nothing was "
                f"deleted: apply it to {root} (or give no ROOT), or plan {url} itself"
            )
            raise PlanFileError(msg, path=self.name, line=1)


async def apply_planfile_async(
    root: Root | None,
    path: str | os.PathLike[str],
    *,
    max_age: datetime.timedelta = DEFAULT_MAX_AGE,
    dry_run: bool = False,
    executor: Executor | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> ApplyReport:
    """:func:`apply_planfile`, for callers that run an event loop."""
    check_writable(deletions_out)
    checked = _Checked.read(os.fspath(path), max_age)
    header = checked.header
    backend = open_root(
        root if root is not None else header.root, storage_options, read_only=dry_run
    )
    try:
        checked.check_root(backend.url)
        timings = Timings()
        options, removals = header.options, header.removals
        inventory, manifests = await survey(
            backend, allow_empty=options.allow_empty, progress=progress, timings=timings
        )
        with timings.step("plan"):
            fresh = make_plan(inventory, mark(inventory, manifests, options, removals=removals))
            with read_plan(checked.name) as reader:
                keep, decisions = reconcile(checked.again(reader), fresh, inventory, manifests)
            plan = executed_plan(fresh, keep)
        dropped = {str(k): 0 for k in Dropped}
        for code in decisions:
            if code < 0:
                dropped[str(CODES[-1 - code])] += 1
        log.info(
            "plan file %s: %d of %d deletion(s) still hold; dropped: %s",
            checked.name,
            len(plan.deletions),
            checked.entries,
            dropped,
        )
        report = Report(
            inventory,
            plan,
            dry_run,
            options,
            timings=timings,
            manifests_read=len(manifests),
            removals=removals,
        )
        if not dry_run:
            run = executor or (lambda b, p: execute(b, p, progress=progress))
            with timings.step("apply"):
                report.result = await run(backend, plan)
        timings["total"] = timings.total()
        if deletions_out is not None:
            _write_outcome(deletions_out, checked, report, decisions, sorted(keep))
        return ApplyReport(
            checked.name,
            header,
            report,
            max_age,
            checked.age,
            checked.entries,
            checked.footer,
            dropped,
        )
    finally:
        await backend.aclose()


def _write_outcome(
    target: str | os.PathLike[str],
    checked: _Checked,
    report: Report,
    decisions: array.array[int],
    executed: list[int],
) -> None:
    """Every entry of the plan file, in its order, with what this apply did with it.

    ``executed`` holds the fresh plan's indices of the deletions executed, in order.
    """
    position = {fresh: i for i, fresh in enumerate(executed)}
    result = report.result
    errors = {f.path: f.error for f in result.failures} if result is not None else {}
    header = PlanHeader.of(
        report.inventory, report.options, report.removals, dry_run=report.dry_run
    )
    if _stat(checked.name) != checked.stamp:
        # Too late to refuse anything: say so, and write nothing rather than a wrong account.
        log.error("plan file %s changed during the run: %s not written", checked.name, target)
        return
    with read_plan(checked.name) as reader, PlanWriter(target, header) as writer:
        for entry, code in zip(reader, decisions, strict=True):
            if code < 0:
                writer.add_entry(entry, status=DROPPED, dropped=str(CODES[-1 - code]))
                continue
            status = report.status(position[code])
            error = None
            if status is Status.FAILED:
                error = next(
                    (f"{r.path}: {errors[r.path]}" for r in entry.paths if r.path in errors), None
                )
            writer.add_entry(entry, status=status, error=error)


def apply_planfile(
    root: Root | None,
    path: str | os.PathLike[str],
    *,
    max_age: datetime.timedelta = DEFAULT_MAX_AGE,
    dry_run: bool = False,
    executor: Executor | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> ApplyReport:
    """Execute the plan file at ``path`` on ``root``, re-checking every entry against the store.

    ``root`` is the registry root as for :func:`~registry_gc.collect`, or
    ``None`` for the root the file names. The file is read through first;
    then the store is listed and planned again with the file's options and
    removals, the grace period counting from now. An entry is executed only if
    that fresh plan deletes the same thing with the same paths, each path
    still of the size and time the file recorded, and nothing that stays
    needs it (a blob of a revision whose deletion was dropped, the manifest of
    a tag that stays). Nothing the file does not list is deleted. The report's
    ``dropped`` counts the other entries per :class:`~registry_gc.Dropped` reason.

    Raises :class:`~registry_gc.PlanFileError` (a
    :class:`~registry_gc.RefusedError`; nothing deleted) for a file cut
    short, of another format, with a path outside ``docker/registry/v2``, made
    for another root, or whose listing is older than ``max_age``; the
    collector's own refusals as :func:`~registry_gc.collect` does.

    ``dry_run`` deletes nothing and reports what would be executed.
    ``executor(backend, plan)`` deletes the part of the plan that holds
    (default :func:`registry_gc.apply.execute`, in the safe order).
    ``deletions_out`` receives every entry of the file with its status
    (``deleted``, ``failed``, ``skipped``, ``planned``, or ``dropped`` with
    the reason).
    """
    return _sync.run(
        apply_planfile_async(
            root,
            path,
            max_age=max_age,
            dry_run=dry_run,
            executor=executor,
            storage_options=storage_options,
            progress=progress,
            deletions_out=deletions_out,
        )
    )
