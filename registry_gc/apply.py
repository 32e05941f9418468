"""Apply: execute a :class:`~registry_gc.plan.Plan` through a backend, in the safe order.

Phases run in :data:`~registry_gc.plan.PHASES` order — tags, revision links
and tag history, ``_layers`` links, blobs, uploads, empty repositories — then
empty directories on hierarchical stores. Within a phase, paths go to the
backend in large batches, several at once. If any deletion of a phase fails,
the later phases are skipped: a blob is never deleted while a link that may
still reference it exists. Objects already missing count as done, so an
interrupted run followed by a new run converges to the same end state.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import MutableSequence, Sequence
from typing import TYPE_CHECKING, Final, TypeVar, overload

import attrs

from . import _sync
from ._deletions import DeletionList
from ._errors import RefusedError
from .backends import DeleteResult, Outcome, SupportsDirectories, SupportsMultipartUploads
from .layout import REPOSITORIES_PREFIX, V2_PREFIX
from .plan import PHASES, Category, Plan

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

    from .backends import Backend, MultipartUpload
    from .plan import Deletion

__all__ = ["ApplyResult", "Failure", "Status", "StatusList", "apply_plan", "execute"]

log = logging.getLogger(__name__)

#: Paths given to one ``Backend.delete`` call.
DELETE_BATCH = 5000
#: ``delete`` calls in flight at once (a backend batches further inside).
PARALLEL_BATCHES = 4

T = TypeVar("T")

#: ``progress(phase, done, total)``
ProgressCallback = "Callable[[str, int, int], None]"


@attrs.frozen
class Failure:
    """A path the backend failed to delete."""

    path: str
    error: str
    category: Category
    repository: str | None


class Status(str, enum.Enum):
    """What became of one deletion of a plan. A ``str``: ``Status.DELETED == "deleted"``."""

    #: not applied (a dry run)
    PLANNED = "planned"
    DELETED = "deleted"
    FAILED = "failed"
    #: not attempted: an earlier phase failed, so it could still be needed
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


_STATUSES: Final = tuple(Status)
_CODE: Final = {s: i for i, s in enumerate(_STATUSES)}


class StatusList(MutableSequence[Status]):
    """One :class:`Status` per deletion, a byte each (a plan may hold millions)."""

    __slots__ = ("codes",)

    def __init__(self, n: int = 0, status: Status = Status.PLANNED) -> None:
        #: the statuses' positions in ``Status``, one byte per deletion
        self.codes = bytearray([_CODE[status]]) * n

    @overload
    def __getitem__(self, i: int) -> Status: ...
    @overload
    def __getitem__(self, i: slice) -> list[Status]: ...
    def __getitem__(self, i: int | slice) -> Status | list[Status]:
        if isinstance(i, slice):
            return [_STATUSES[c] for c in self.codes[i]]
        return _STATUSES[self.codes[i]]

    @overload
    def __setitem__(self, i: int, status: Status) -> None: ...
    @overload
    def __setitem__(self, i: slice, status: Iterable[Status]) -> None: ...
    def __setitem__(self, i: int | slice, status: Status | Iterable[Status]) -> None:
        if isinstance(status, Status):
            self.codes[i] = _CODE[status]  # type: ignore[index]
        else:
            self.codes[i] = bytes(_CODE[s] for s in status)  # type: ignore[index]

    def __delitem__(self, i: int | slice) -> None:
        del self.codes[i]

    def insert(self, index: int, value: Status) -> None:
        """Insert a status (a plan's deletions do not change: for completeness)."""
        self.codes.insert(index, _CODE[value])

    def __len__(self) -> int:
        return len(self.codes)

    def __iter__(self) -> Iterator[Status]:
        return (_STATUSES[c] for c in self.codes)

    def __contains__(self, status: object) -> bool:
        return status in _CODE and _CODE[status] in self.codes  # type: ignore[index]

    def count(self, status: object) -> int:
        """How many deletions have ``status``."""
        return self.codes.count(_CODE[status]) if status in _CODE else 0  # type: ignore[index]

    def mask(self, status: Status) -> bytes:
        """One byte per deletion: 1 where the status is ``status``."""
        table = bytes(int(s is status) for s in _STATUSES) + bytes(256 - len(_STATUSES))
        return bytes(self.codes.translate(table))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StatusList):
            return self.codes == other.codes
        if isinstance(other, list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StatusList({len(self)})"


@attrs.define
class ApplyResult:
    """What happened when a plan was applied."""

    #: one per deletion of the plan, in its order (a list, or a compact :class:`StatusList`)
    status: MutableSequence[Status] = attrs.Factory(StatusList)
    failures: list[Failure] = attrs.Factory(list)
    #: paths that were already gone (fine: someone, or an earlier run, deleted them)
    already_missing: int = 0
    directories_removed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """``True`` when nothing failed and nothing was skipped."""
        return not self.failures and Status.SKIPPED not in self.status


def _parents(path: str) -> Iterable[str]:
    """Every ancestor directory of ``path`` below ``docker/registry/v2``."""
    stop = V2_PREFIX.rstrip("/")
    parent = path.rstrip("/").rpartition("/")[0]
    while parent and parent != stop and parent.startswith(V2_PREFIX):
        yield parent
        parent = parent.rpartition("/")[0]


def directories_to_prune(plan: Plan, deleted: Iterable[str]) -> list[str]:
    """Directories that may be empty after the deletions, deepest first.

    Ancestors of deleted paths and the empty directories the listing found,
    minus the layout a surviving repository needs (``_layers``,
    ``_manifests/revisions``, ``_manifests/tags``, its tags) and the top levels.
    """
    candidates: set[str] = set()
    for path in deleted:
        candidates.update(_parents(path))
    for path in plan.stale_empty_dirs:
        candidates.add(path.rstrip("/"))
        candidates.update(_parents(path))
    for repo_dir in plan.removed_repositories:
        candidates.add(repo_dir)
        candidates.update(_parents(repo_dir))
    protected = plan.protected_dirs
    # A plan is data: "v2/../../x" is not below v2.
    keep = [d for d in candidates if _prunable(d, protected)]
    keep.sort(key=lambda d: (-d.count("/"), d))
    return keep


def _unsafe_path(deletions: Sequence[Deletion]) -> str | None:
    """A path outside ``docker/registry/v2`` or with a ``..`` component, if the plan has one."""
    if isinstance(deletions, DeletionList):
        return deletions.unsafe_path()
    for d in deletions:
        for p in d.paths:
            if not p.startswith(V2_PREFIX) or ".." in p.split("/"):
                return p
    return None


def _members(deletions: Sequence[Deletion], phase: int) -> Sequence[int]:
    """The indices of the deletions of ``PHASES[phase]``."""
    if isinstance(deletions, DeletionList):
        return deletions.phase_range(phase)
    wanted = PHASES[phase]
    return [i for i, d in enumerate(deletions) if d.category in wanted]


def _paths(deletions: Sequence[Deletion], i: int) -> tuple[str, ...]:
    if isinstance(deletions, DeletionList):
        return deletions.paths_of(i)
    return deletions[i].paths


def _size(deletions: Sequence[Deletion], i: int) -> int:
    if isinstance(deletions, DeletionList):
        return deletions.size_of(i)
    return deletions[i].size


def _chunks(
    deletions: Sequence[Deletion], members: Sequence[int]
) -> Iterator[tuple[list[str], list[int]]]:
    """The phase's paths, at most :data:`DELETE_BATCH` at a time, with the deletion of each."""
    paths: list[str] = []
    owners: list[int] = []
    for i in members:
        for p in _paths(deletions, i):
            paths.append(p)
            owners.append(i)
        if len(paths) >= DELETE_BATCH:
            yield paths, owners
            paths, owners = [], []
    if paths:
        yield paths, owners


@attrs.define
class _Phase:
    """Applying one phase: its paths go out in chunks, their results come back."""

    backend: Backend
    deletions: Sequence[Deletion]
    members: Sequence[int]
    result: ApplyResult
    name: str
    tick: Callable[[int], None]
    failed: set[int] = attrs.Factory(set)

    def record(self, results: Iterable[DeleteResult], owners: Mapping[str, int]) -> None:
        result = self.result
        for r in results:
            i = owners[r.path]
            if r.outcome is Outcome.FAILED:
                self.failed.add(i)
                d = self.deletions[i]
                result.failures.append(
                    Failure(r.path, r.error or "failed", d.category, d.repository)
                )
            elif r.outcome is Outcome.MISSING:
                result.already_missing += 1

    async def delete(self) -> None:
        async def one(chunk: tuple[list[str], list[int]]) -> None:
            paths, owners = chunk
            got = await self.backend.delete(paths)
            self.record(got, dict(zip(paths, owners, strict=True)))
            self.tick(len(paths))

        await _in_parallel(_chunks(self.deletions, self.members), one)

    async def move(self, move_blobs: Callable[[list[str]], Awaitable[list[DeleteResult]]]) -> None:
        owners: dict[str, int] = {}
        for paths, chunk_owners in _chunks(self.deletions, self.members):
            owners.update(zip(paths, chunk_owners, strict=True))
        if owners:
            self.record(await move_blobs(list(owners)), owners)
            self.tick(len(owners))

    async def abort_uploads(self) -> None:
        owners: dict[str, int] = {}
        uploads: list[MultipartUpload] = []
        deletions = self.deletions
        candidates = (
            [i for i, _ in deletions.objects() if i in self.members]
            if isinstance(deletions, DeletionList)
            else self.members
        )
        for i in candidates:
            for u in deletions[i].multipart:
                owners[u.key] = i
                uploads.append(u)
        if not uploads:
            return
        backend = self.backend
        if isinstance(backend, SupportsMultipartUploads):
            self.record(await backend.abort_multipart_uploads(uploads), owners)
        else:  # pragma: no cover - only backends that list them plan them
            self.record(
                (
                    DeleteResult(u.key, Outcome.FAILED, "backend cannot abort multipart uploads")
                    for u in uploads
                ),
                owners,
            )


async def execute(
    backend: Backend,
    plan: Plan,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    move_blobs: Callable[[list[str]], Awaitable[list[DeleteResult]]] | None = None,
    prune: bool = True,
) -> ApplyResult:
    """Apply ``plan`` (async). Never raises for a failed deletion: see :class:`ApplyResult`.

    ``move_blobs(paths)``, when given, takes the blob phase's paths instead of
    ``delete`` (live mode moves garbage blobs into a quarantine; ``DELETED``
    means moved away), all of them in one call. ``prune=False`` leaves empty
    directories in place (a run in stages prunes once, at the end).

    Paths go to the backend ``DELETE_BATCH`` (5000) at a time, made from the plan
    as they are needed: a plan of millions of deletions is never held as paths.
    """
    t0 = time.monotonic()
    deletions = plan.deletions
    bad = _unsafe_path(deletions)
    if bad is not None:
        # A plan is data a caller may have edited: never delete outside the registry tree.
        msg = f"refusing to apply a plan that deletes {bad!r}, outside {V2_PREFIX}; nothing deleted"
        raise RefusedError(msg, [msg])
    result = ApplyResult(status=StatusList(len(deletions)))
    stopped = False
    for number, phase in enumerate(PHASES):
        members = _members(deletions, number)
        if not members:
            continue
        name = "+".join(c.value for c in phase)
        if stopped:
            for i in members:
                result.status[i] = Status.SKIPPED
            log.warning("skipped %d %s deletion(s): an earlier phase failed", len(members), name)
            continue
        done = 0
        total = sum(len(_paths(deletions, i)) for i in members)

        def tick(n: int, name: str = name, total: int = total) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(name, done, total)

        step = _Phase(backend, deletions, members, result, name, tick)
        if move_blobs is not None and Category.BLOB in phase:
            await step.move(move_blobs)
        else:
            await step.delete()
        await step.abort_uploads()
        failed = step.failed
        for i in members:
            result.status[i] = Status.FAILED if i in failed else Status.DELETED
        log.info(
            "deleted %d %s object(s) (%d bytes), %d failed",
            total - len(failed),
            name,
            sum(_size(deletions, i) for i in members if i not in failed),
            len(failed),
        )
        if failed:
            stopped = True
            log.error("%d %s deletion(s) failed; later phases are skipped", len(failed), name)
    if prune and isinstance(backend, SupportsDirectories) and not stopped:
        result.directories_removed = await _prune(backend, plan, result)
        log.info("removed %d empty directories", result.directories_removed)
    result.seconds = time.monotonic() - t0
    return result


async def _prune(backend: SupportsDirectories, plan: Plan, result: ApplyResult) -> int:
    """Remove the directories the run left empty: the deleted files' own first, then the rest.

    What :func:`directories_to_prune` lists, in an order that never holds every
    deleted path at once: the directory of each deleted file is tried first, in
    batches (nearly each holds one file: the registry's layout); those still
    not empty and every directory above go through :func:`directories_to_prune`,
    one depth at a time, deepest first. Batches of one depth go to the backend
    :data:`PARALLEL_BATCHES` at a time (none is an ancestor of another, so no
    order among them matters): on a local disk, ``rmdir`` calls in parallel
    threads take about half the time of one after another.
    """
    deletions = plan.deletions
    protected = plan.protected_dirs
    upper: set[str] = set()
    removed = 0

    def leaves() -> Iterator[str]:
        seen_last = ""
        for i in range(len(deletions)):
            if result.status[i] is not Status.DELETED:
                continue
            d = deletions[i] if not isinstance(deletions, DeletionList) else None
            paths = _paths(deletions, i) if d is None else (*d.paths, *(u.key for u in d.multipart))
            for path in paths:
                parents = list(_parents(path))
                if not parents:
                    continue
                leaf = parents[0]
                upper.update(parents[1:])
                if leaf != seen_last and _prunable(leaf, protected):
                    seen_last = leaf
                    yield leaf

    async def remove(batch: list[str]) -> None:
        nonlocal removed
        for r in await backend.remove_empty_dirs(batch):
            if r.outcome is Outcome.DELETED:
                removed += 1
            elif r.outcome is Outcome.NOT_EMPTY:
                upper.add(r.path)
            elif r.outcome is Outcome.FAILED:
                # An empty directory left behind is untidy, not unsafe: warn only.
                log.warning("could not remove directory %s: %s", r.path, r.error)

    # A leaf may be an ancestor of another leaf (a tag's directory and its
    # index's): removed too early, it is only NOT_EMPTY and tried again above.
    await _in_parallel(_batches(leaves()), remove)
    rest = directories_to_prune(plan, (f"{d}/-" for d in upper))
    for _, level in itertools.groupby(rest, key=lambda d: d.count("/")):
        await _in_parallel(_batches(level), remove)
    return removed


def _batches(items: Iterable[str]) -> Iterator[list[str]]:
    """``items`` in lists of at most :data:`DELETE_BATCH`."""
    it = iter(items)
    while batch := list(itertools.islice(it, DELETE_BATCH)):
        yield batch


async def _in_parallel(batches: Iterable[T], work: Callable[[T], Awaitable[None]]) -> None:
    """``work`` on each batch, :data:`PARALLEL_BATCHES` at a time; the first error is raised."""
    tasks: set[asyncio.Task[None]] = set()
    try:
        for batch in batches:
            while len(tasks) >= PARALLEL_BATCHES:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
            tasks.add(asyncio.ensure_future(work(batch)))
        if tasks:
            done, tasks = await asyncio.wait(tasks)
            for t in done:
                t.result()
    finally:
        for t in tasks:
            t.cancel()


def _prunable(d: str, protected: frozenset[str]) -> bool:
    """Whether :func:`directories_to_prune` would list ``d``."""
    return (
        d not in protected
        and d.startswith(V2_PREFIX)
        and ".." not in d.split("/")
        and d != REPOSITORIES_PREFIX.rstrip("/")
    )


def apply_plan(
    backend: Backend,
    plan: Plan,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> ApplyResult:
    """Apply ``plan`` through ``backend`` and return what happened."""
    return _sync.run(execute(backend, plan, progress=progress))
