"""The one call: inventory → manifests → mark → plan → apply → report.

>>> from registry_gc import collect
>>> report = collect("memory://nothing-here", dry_run=True, allow_empty=True)
>>> report.deleted_count
0
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import TYPE_CHECKING, Any

from . import _sync
from ._errors import RefusedError
from .apply import execute
from .backends import Backend, open_backend
from .created import read_created_times
from .fetch import fetch_manifests
from .inventory import scan
from .layout import V2_PREFIX
from .mark import mark
from .plan import make_plan
from .policy import select_tags
from .report import Report

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Mapping

    from .layout import Digest, Repository, Tag
    from .mark import Marks
    from .policy import Policy, TagDecisions

__all__ = ["DEFAULT_GRACE", "DEFAULT_UPLOADS_OLDER_THAN", "collect", "collect_async"]

log = logging.getLogger(__name__)

#: Nothing younger than this is deleted (blobs, links, uploads).
DEFAULT_GRACE = datetime.timedelta(hours=1)
#: Uploads that started longer ago than this (and are idle) are removed.
DEFAULT_UPLOADS_OLDER_THAN = datetime.timedelta(hours=24)


def _backend(
    root: str | os.PathLike[str] | Backend, storage_options: Mapping[str, Any] | None
) -> Backend:
    if isinstance(root, Backend):
        return root
    return open_backend(root, storage_options)


async def collect_async(
    root: str | os.PathLike[str] | Backend,
    *,
    storage_options: Mapping[str, Any] | None = None,
    delete_untagged: bool = False,
    dry_run: bool = False,
    grace: datetime.timedelta = DEFAULT_GRACE,
    uploads_older_than: datetime.timedelta = DEFAULT_UPLOADS_OLDER_THAN,
    allow_no_manifests: bool = False,
    allow_empty: bool = False,
    prune_damaged: bool = False,
    now: datetime.datetime | None = None,
    removed_tags: Mapping[Repository, Collection[Tag]] | None = None,
    removed_repositories: Collection[Repository] = (),
    removed_manifests: Mapping[Repository, Collection[Digest]] | None = None,
    policy: Policy | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """:func:`collect`, for callers that run an event loop."""
    if grace < datetime.timedelta(0) or uploads_older_than < datetime.timedelta(0):
        msg = "grace and uploads_older_than must not be negative"
        raise ValueError(msg)
    backend = _backend(root, storage_options)
    if dry_run:
        backend = _read_only(backend)
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        inventory = await scan(backend)
        timings["inventory"] = time.monotonic() - t
        if inventory.empty and not allow_empty:
            msg = (
                f"no registry found at {backend.url}: nothing under {V2_PREFIX}. Give the "
                "registry's rootdirectory (the directory that holds docker/registry/v2), or "
                "pass allow_empty=True (--allow-empty) if the registry is really empty"
            )
            raise RefusedError(msg, [msg])
        t = time.monotonic()
        manifests = await fetch_manifests(
            backend,
            inventory,
            progress=(lambda done, total: progress("manifests", done, total)) if progress else None,
        )
        timings["manifests"] = time.monotonic() - t
        t = time.monotonic()
        reference = now or inventory.started
        cutoff = (reference - grace).timestamp()
        uploads_cutoff = (reference - uploads_older_than).timestamp()
        decisions: TagDecisions | None = None
        if policy is not None:
            created = await read_created_times(backend, inventory, manifests, policy)
            decisions = select_tags(
                inventory, manifests, policy, reference, grace=grace, created=created
            )
            _log_decisions(decisions)
            removed_tags = decisions.removed_tags(removed_tags)
            removed_manifests = decisions.removed_manifests(removed_manifests)

        def marked() -> Marks:
            return mark(
                inventory,
                manifests,
                delete_untagged=delete_untagged,
                cutoff=cutoff,
                allow_no_manifests=allow_no_manifests,
                prune_damaged=prune_damaged,
                removed_tags=removed_tags,
                removed_repositories=removed_repositories,
                removed_manifests=removed_manifests,
            )

        marks = marked()
        refined = decisions.after_mark(marks) if decisions is not None else None
        if refined is not None:
            # Signature tags of images this run deletes go too: mark once more without them.
            decisions = refined
            removed_tags = decisions.removed_tags(removed_tags)
            marks = marked()
        plan = make_plan(
            inventory,
            marks,
            delete_untagged=delete_untagged,
            cutoff=cutoff,
            uploads_cutoff=uploads_cutoff,
            removed_tags=removed_tags,
            removed_repositories=removed_repositories,
            removed_manifests=removed_manifests,
        )
        timings["plan"] = time.monotonic() - t
        log.info(
            "plan: %d deletion(s), %d bytes; %d kept for the grace period; %d anomalies",
            len(plan.deletions),
            sum(d.size for d in plan.deletions),
            len(plan.kept),
            len(plan.anomalies),
        )
        report = Report(
            inventory,
            plan,
            dry_run,
            grace.total_seconds(),
            uploads_older_than.total_seconds(),
            timings=timings,
            manifests_read=len(manifests),
            decisions=decisions,
        )
        if not dry_run:
            t = time.monotonic()
            report.result = await execute(backend, plan, progress=progress)
            timings["apply"] = time.monotonic() - t
        timings["total"] = sum(timings.values())
        return report
    finally:
        await backend.aclose()


def collect(
    root: str | os.PathLike[str] | Backend,
    *,
    storage_options: Mapping[str, Any] | None = None,
    delete_untagged: bool = False,
    dry_run: bool = False,
    grace: datetime.timedelta = DEFAULT_GRACE,
    uploads_older_than: datetime.timedelta = DEFAULT_UPLOADS_OLDER_THAN,
    allow_no_manifests: bool = False,
    allow_empty: bool = False,
    prune_damaged: bool = False,
    now: datetime.datetime | None = None,
    removed_tags: Mapping[Repository, Collection[Tag]] | None = None,
    removed_repositories: Collection[Repository] = (),
    removed_manifests: Mapping[Repository, Collection[Digest]] | None = None,
    policy: Policy | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """Garbage-collect the registry at ``root`` and return the :class:`~registry_gc.Report`.

    ``root`` is the registry's ``rootdirectory`` as a local path, an fsspec URL
    (``s3://bucket/prefix``, ``gs://…``, ``memory://…``) or a
    :class:`~registry_gc.backends.Backend`. ``storage_options`` go to the
    filesystem (credentials, ``endpoint_url``).

    ``delete_untagged`` deletes manifests no tag reaches (the registry's
    ``-m``); children of live indexes and referrers of live manifests are kept.
    ``dry_run`` deletes nothing and reports exactly what a real run would.
    Nothing modified within ``grace`` is deleted; uploads are removed once they
    started more than ``uploads_older_than`` ago and have been idle for the grace.
    ``policy`` (a :class:`~registry_gc.policy.Policy`) deletes tags by rule before
    marking; the report's ``decisions`` say what it kept and deleted, and why.

    A repository that cannot be fully read — a tag, index entry or revision
    whose manifest is missing, an untagged revision that cannot be decoded (it
    may be a referrer), a live manifest of a kind distribution does not know —
    is *damaged*: everything it links is kept and
    the report names why, unless ``prune_damaged`` (then what cannot be read
    counts as absent).

    Raises :class:`~registry_gc.RefusedError` (nothing deleted) when a live manifest is
    present but cannot be decoded, when blobs exist but no manifest does
    (unless ``allow_no_manifests``), or when the root holds no registry
    (unless ``allow_empty``). A failed deletion does not raise: see
    :attr:`Report.ok` and the report's failures.
    """
    return _sync.run(
        collect_async(
            root,
            storage_options=storage_options,
            delete_untagged=delete_untagged,
            dry_run=dry_run,
            grace=grace,
            uploads_older_than=uploads_older_than,
            allow_no_manifests=allow_no_manifests,
            allow_empty=allow_empty,
            prune_damaged=prune_damaged,
            now=now,
            removed_tags=removed_tags,
            removed_repositories=removed_repositories,
            removed_manifests=removed_manifests,
            policy=policy,
            progress=progress,
        )
    )


def _log_decisions(decisions: TagDecisions) -> None:
    log.info(
        "policy: %d tag(s) considered, %d to delete, %d referrer(s) without subject",
        len(decisions.tags),
        sum(1 for _ in decisions.deleted()),
        len(decisions.manifests),
    )
    for d in decisions.tags:
        log.debug("%s %s:%s — %s", d.action.value, d.repository, d.tag, d.rule)


def _read_only(backend: Backend) -> Backend:
    """Wrap ``backend`` so that any delete raises."""
    from .backends import ReadOnlyBackend  # noqa: PLC0415

    return backend if isinstance(backend, ReadOnlyBackend) else ReadOnlyBackend(backend)
