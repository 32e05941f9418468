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
import logging
import time
from typing import TYPE_CHECKING

import attrs

from . import _sync
from ._errors import RefusedError
from .backends import DeleteResult, Outcome, SupportsDirectories, SupportsMultipartUploads
from .layout import REPOSITORIES_PREFIX, V2_PREFIX
from .plan import PHASES, Category, Plan

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from .backends import Backend

__all__ = ["ApplyResult", "Failure", "Status", "apply_plan", "execute"]

log = logging.getLogger(__name__)

#: Paths given to one ``Backend.delete`` call.
DELETE_BATCH = 5000
#: ``delete`` calls in flight at once (a backend batches further inside).
PARALLEL_BATCHES = 4

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


@attrs.define
class ApplyResult:
    """What happened when a plan was applied."""

    #: one per deletion of the plan, in its order
    status: list[Status] = attrs.Factory(list)
    failures: list[Failure] = attrs.Factory(list)
    #: paths that were already gone (fine: someone, or an earlier run, deleted them)
    already_missing: int = 0
    directories_removed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """``True`` when nothing failed and nothing was skipped."""
        return not self.failures and Status.SKIPPED not in self.status


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _delete_all(
    backend: Backend,
    paths: list[str],
    tick: Callable[[int], None],
) -> list[DeleteResult]:
    sem = asyncio.Semaphore(PARALLEL_BATCHES)

    async def one(chunk: list[str]) -> list[DeleteResult]:
        async with sem:
            got = await backend.delete(chunk)
        tick(len(chunk))
        return got

    results: list[DeleteResult] = []
    for got in await asyncio.gather(*(one(c) for c in _chunks(paths, DELETE_BATCH))):
        results.extend(got)
    return results


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
    keep = [
        d
        for d in candidates
        if d not in protected
        and d.startswith(V2_PREFIX)
        and ".." not in d.split("/")  # a plan is data: "v2/../../x" is not below v2
        and d != REPOSITORIES_PREFIX.rstrip("/")
    ]
    keep.sort(key=lambda d: (-d.count("/"), d))
    return keep


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
    means moved away). ``prune=False`` leaves empty directories in place (a run
    in stages prunes once, at the end).
    """
    t0 = time.monotonic()
    outside = [p for d in plan.deletions for p in d.paths if not p.startswith(V2_PREFIX)]
    if outside or any(".." in p.split("/") for d in plan.deletions for p in d.paths):
        # A plan is data a caller may have edited: never delete outside the registry tree.
        bad = (
            outside[0]
            if outside
            else next(p for d in plan.deletions for p in d.paths if ".." in p.split("/"))
        )
        msg = f"refusing to apply a plan that deletes {bad!r}, outside {V2_PREFIX}; nothing deleted"
        raise RefusedError(msg, [msg])
    result = ApplyResult(status=[Status.PLANNED] * len(plan.deletions))
    stopped = False
    deleted_paths: list[str] = []
    for phase in PHASES:
        members = [i for i, d in enumerate(plan.deletions) if d.category in phase]
        if not members:
            continue
        name = "+".join(c.value for c in phase)
        if stopped:
            for i in members:
                result.status[i] = Status.SKIPPED
            log.warning("skipped %d %s deletion(s): an earlier phase failed", len(members), name)
            continue
        owner: dict[str, int] = {}
        paths: list[str] = []
        for i in members:
            for p in plan.deletions[i].paths:
                owner[p] = i
                paths.append(p)
        done = 0

        def tick(n: int, name: str = name, total: int = len(paths)) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(name, done, total)

        if move_blobs is not None and Category.BLOB in phase and paths:
            results = await move_blobs(paths)
            tick(len(paths))
        else:
            results = await _delete_all(backend, paths, tick) if paths else []
        uploads = [u for i in members for u in plan.deletions[i].multipart]
        if uploads:
            for i in members:
                for u in plan.deletions[i].multipart:
                    owner[u.key] = i
            if isinstance(backend, SupportsMultipartUploads):
                results.extend(await backend.abort_multipart_uploads(uploads))
            else:  # pragma: no cover - only backends that list them plan them
                results.extend(
                    DeleteResult(u.key, Outcome.FAILED, "backend cannot abort multipart uploads")
                    for u in uploads
                )
        failed: set[int] = set()
        for r in results:
            i = owner[r.path]
            if r.outcome is Outcome.FAILED:
                failed.add(i)
                d = plan.deletions[i]
                result.failures.append(
                    Failure(r.path, r.error or "failed", d.category, d.repository)
                )
            else:
                deleted_paths.append(r.path)
                if r.outcome is Outcome.MISSING:
                    result.already_missing += 1
        for i in members:
            result.status[i] = Status.FAILED if i in failed else Status.DELETED
        log.info(
            "deleted %d %s object(s) (%d bytes), %d failed",
            len(paths) - len(failed),
            name,
            sum(plan.deletions[i].size for i in members if i not in failed),
            len(failed),
        )
        if failed:
            stopped = True
            log.error("%d %s deletion(s) failed; later phases are skipped", len(failed), name)
    if prune and isinstance(backend, SupportsDirectories) and not stopped:
        dirs = directories_to_prune(plan, deleted_paths)
        if dirs:
            for r in await backend.remove_empty_dirs(dirs):
                if r.outcome is Outcome.DELETED:
                    result.directories_removed += 1
                elif r.outcome is Outcome.FAILED:
                    # An empty directory left behind is untidy, not unsafe: warn only.
                    log.warning("could not remove directory %s: %s", r.path, r.error)
            log.info("removed %d empty directories", result.directories_removed)
    result.seconds = time.monotonic() - t0
    return result


def apply_plan(
    backend: Backend,
    plan: Plan,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> ApplyResult:
    """Apply ``plan`` through ``backend`` and return what happened."""
    return _sync.run(execute(backend, plan, progress=progress))
