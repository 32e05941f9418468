"""The one call: inventory → manifests → mark → plan → apply → report.

>>> from registry_gc import collect
>>> report = collect("memory://nothing-here", dry_run=True, allow_empty=True)
>>> report.deleted_count
0
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import attrs

from . import _sync
from ._deletions import deleted_bytes
from ._errors import ConfigError
from ._resolve import check_names_only, survey_names
from ._run import Timings, open_root, survey
from .apply import StatusList, execute
from .backends import Backend
from .created import read_created_times
from .mark import mark
from .options import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN, Options, Removals
from .plan import make_plan
from .planfile import PlanHeader, check_writable, write_plan
from .policy import select_tags
from .report import Report

if TYPE_CHECKING:
    import datetime
    import os
    from collections.abc import Mapping

    from ._resolve import Resolver
    from ._run import ProgressCallback, Root
    from .cache import DescriptorCache
    from .fetch import ManifestTable
    from .inventory import Inventory
    from .manifest_cache import ManifestCache
    from .mark import Marks
    from .plan import Plan
    from .policy import Policy, TagDecisions

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_UPLOADS_OLDER_THAN",
    "collect",
    "collect_async",
    "options_of",
    "write_plan_files",
]

log = logging.getLogger(__name__)


def options_of(options: Options | None = None, **fields: Any) -> Options:  # noqa: ANN401
    """``options`` (or the defaults) with the ``fields`` that are not ``None`` changed."""
    changed = {k: v for k, v in fields.items() if v is not None}
    return attrs.evolve(options or Options(), **changed)


async def decide(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    *,
    options: Options,
    removals: Removals,
    policy: Policy | None,
    now: datetime.datetime | None,
) -> tuple[Marks, Removals, TagDecisions | None]:
    """Mark, after a retention policy (if any) decided which tags go.

    Returns the marks, the removals they were made with (``removals`` and the
    policy's), and the policy's decisions.
    """
    decisions: TagDecisions | None = None
    reference = now or inventory.started
    if policy is not None:
        created = await read_created_times(backend, inventory, manifests, policy)
        decisions = select_tags(
            inventory, manifests, policy, reference, grace=options.grace, created=created
        )
        _log_decisions(decisions)
        removals = removals.merged(decisions.removals())
    marks = mark(inventory, manifests, options, removals=removals, now=now)
    refined = decisions.after_mark(marks) if decisions is not None else None
    if refined is not None:
        # Signature tags of images this run deletes go too: mark once more without them.
        decisions = refined
        removals = removals.merged(decisions.removals())
        marks = mark(inventory, manifests, options, removals=removals, now=now)
    return marks, removals, decisions


def log_plan(plan: Plan) -> None:
    """One line on what a plan deletes and keeps."""
    log.info(
        "plan: %d deletion(s), %d bytes; %d kept for the grace period; %d anomalies",
        len(plan.deletions),
        deleted_bytes(plan.deletions),
        len(plan.kept),
        len(plan.anomalies),
    )


async def sweep(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    *,
    options: Options,
    removals: Removals,
    policy: Policy | None,
    dry_run: bool,
    now: datetime.datetime | None,
    timings: Timings,
    progress: ProgressCallback | None,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
    resolver: Resolver | None = None,
) -> Report:
    """Mark, plan and (unless ``dry_run``) apply, on what :func:`survey` found.

    ``plan_out`` receives the plan before anything is deleted, ``deletions_out``
    every deletion with what became of it afterwards (:func:`write_plan_files`).
    ``resolver`` (a names-only run, :func:`~registry_gc._resolve.survey_names`)
    looks at what the plan needs and plans again until it relies on nothing unseen.
    """

    async def decided() -> tuple[Marks, Removals, TagDecisions | None]:
        return await decide(
            backend,
            inventory,
            manifests,
            options=options,
            removals=removals,
            policy=policy,
            now=now,
        )

    with timings.step("plan"):
        if resolver is None:
            marks, removals, decisions = await decided()
            plan = make_plan(inventory, marks)
        else:
            marks, removals, decisions, plan = await resolver.settle(decided, manifests)
    log_plan(plan)
    report = Report(
        inventory,
        plan,
        dry_run,
        options,
        timings=timings,
        manifests_read=len(manifests),
        decisions=decisions,
        removals=removals,
    )
    write_plan_files(report, plan_out=plan_out)
    if not dry_run:
        with timings.step("apply"):
            report.result = await execute(backend, plan, progress=progress)
    write_plan_files(report, deletions_out=deletions_out)
    timings["total"] = timings.total()
    return report


def write_plan_files(
    report: Report,
    *,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> None:
    """Stream ``report``'s plan, or its deletions with their status, to a plan file.

    ``plan_out`` gets the plan; ``deletions_out`` every deletion with what became
    of it (:mod:`registry_gc.planfile`); either may be ``None``.
    """
    for target, with_status in ((plan_out, False), (deletions_out, True)):
        if target is None:
            continue
        header = PlanHeader.of(
            report.inventory, report.options, report.removals, dry_run=report.dry_run
        )
        statuses = errors = None
        if with_status:
            result = report.result
            # what report.status(i) answers, without a list of a Status per deletion
            statuses = (
                result.status if result is not None else StatusList(len(report.plan.deletions))
            )
            errors = {f.path: f.error for f in result.failures} if result is not None else None
        footer = write_plan(
            target, header, report.inventory, report.plan, statuses=statuses, errors=errors
        )
        log.info("wrote %d deletion(s) to %s", footer.deletions, target)


def _open_cache(
    cache: str | os.PathLike[str] | ManifestCache | None,
) -> tuple[ManifestCache | None, bool]:
    """The manifest cache a run was given, and whether the run opened it (and closes it)."""
    if cache is None:
        return None, False
    from .manifest_cache import ManifestCache  # noqa: PLC0415 - sqlite3, only when asked for

    if isinstance(cache, ManifestCache):
        return cache, False
    return ManifestCache(cache), True


async def collect_async(
    root: Root,
    options: Options | None = None,
    *,
    dry_run: bool = False,
    removals: Removals | None = None,
    policy: Policy | None = None,
    now: datetime.datetime | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    delete_untagged: bool | None = None,
    grace: datetime.timedelta | None = None,
    uploads_older_than: datetime.timedelta | None = None,
    prune_damaged: bool | None = None,
    allow_no_manifests: bool | None = None,
    allow_empty: bool | None = None,
    live: bool = False,
    cache: DescriptorCache | None = None,
    settle: datetime.timedelta | None = None,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
    client: Any = None,  # noqa: ANN401 - a distributed.Client (an optional extra)
    partitions: int | None = None,
    inventory: str | None = None,
    inventory_max_age: datetime.timedelta | None = None,
    names_only: bool = False,
    manifest_cache: str | os.PathLike[str] | ManifestCache | None = None,
) -> Report:
    """:func:`collect`, for callers that run an event loop."""
    if names_only:
        check_names_only(
            policy=policy is not None,
            live=live,
            dry_run=dry_run,
            elsewhere=client is not None or inventory is not None,
        )
    if manifest_cache is not None and (client is not None or inventory is not None):
        msg = (
            "manifest_cache (--manifest-cache) is for runs in one process: a distributed "
            "run or one from an S3 Inventory report reads its manifests elsewhere"
        )
        raise ConfigError(msg)
    if client is not None or inventory is not None:
        return await asyncio.to_thread(
            _collect_elsewhere,
            root,
            options_of(
                options,
                delete_untagged=delete_untagged,
                grace=grace,
                uploads_older_than=uploads_older_than,
                prune_damaged=prune_damaged,
                allow_no_manifests=allow_no_manifests,
                allow_empty=allow_empty,
            ),
            dry_run=dry_run,
            removals=removals,
            policy=policy,
            now=now,
            storage_options=storage_options,
            progress=progress,
            live=live,
            plan_files=plan_out is not None or deletions_out is not None,
            client=client,
            partitions=partitions,
            inventory=inventory,
            inventory_max_age=inventory_max_age,
        )
    options = options_of(
        options,
        delete_untagged=delete_untagged,
        grace=grace,
        uploads_older_than=uploads_older_than,
        prune_damaged=prune_damaged,
        allow_no_manifests=allow_no_manifests,
        allow_empty=allow_empty,
    )
    check_writable(plan_out, deletions_out)
    backend = open_root(root, storage_options, read_only=dry_run)
    bodies, own_cache = None, False
    try:
        bodies, own_cache = _open_cache(manifest_cache)
        timings = Timings()
        resolver = None
        if names_only:
            listed, manifests, resolver = await survey_names(
                backend,
                allow_empty=options.allow_empty,
                progress=progress,
                timings=timings,
                cache=bodies,
            )
        else:
            listed, manifests = await survey(
                backend,
                allow_empty=options.allow_empty,
                progress=progress,
                timings=timings,
                cache=bodies,
            )
        if bodies is not None:
            log.info(
                "manifest cache %s: %d manifest(s) and %d tag link(s) from the cache, "
                "%d and %d read and added, %d rejected, %d forgotten",
                bodies.path,
                bodies.hits,
                bodies.link_hits,
                bodies.added,
                bodies.links_added,
                bodies.rejected,
                bodies.forgotten,
            )
        if live and not dry_run:
            from .live import DEFAULT_SETTLE, sweep_live  # noqa: PLC0415 - live imports this module

            return await sweep_live(
                backend,
                listed,
                manifests,
                options=options,
                removals=removals or Removals(),
                policy=policy,
                now=now,
                timings=timings,
                progress=progress,
                cache=cache,
                settle=DEFAULT_SETTLE if settle is None else settle,
                plan_out=plan_out,
                deletions_out=deletions_out,
            )
        return await sweep(
            backend,
            listed,
            manifests,
            options=options,
            removals=removals or Removals(),
            policy=policy,
            dry_run=dry_run,
            now=now,
            timings=timings,
            progress=progress,
            plan_out=plan_out,
            deletions_out=deletions_out,
            resolver=resolver,
        )
    finally:
        try:
            await backend.aclose()
        finally:
            if own_cache and bodies is not None:
                bodies.close()


def collect(
    root: Root,
    options: Options | None = None,
    *,
    dry_run: bool = False,
    removals: Removals | None = None,
    policy: Policy | None = None,
    now: datetime.datetime | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    delete_untagged: bool | None = None,
    grace: datetime.timedelta | None = None,
    uploads_older_than: datetime.timedelta | None = None,
    prune_damaged: bool | None = None,
    allow_no_manifests: bool | None = None,
    allow_empty: bool | None = None,
    live: bool = False,
    cache: DescriptorCache | None = None,
    settle: datetime.timedelta | None = None,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
    client: Any = None,  # noqa: ANN401 - a distributed.Client (an optional extra)
    partitions: int | None = None,
    inventory: str | None = None,
    inventory_max_age: datetime.timedelta | None = None,
    names_only: bool = False,
    manifest_cache: str | os.PathLike[str] | ManifestCache | None = None,
) -> Report:
    """Garbage-collect the registry at ``root`` and return the :class:`~registry_gc.Report`.

    ``root`` is the registry's ``rootdirectory`` as a local path, an fsspec URL
    (``s3://bucket/prefix``, ``gs://…``, ``memory://…``) or a
    :class:`~registry_gc.backends.Backend`. ``storage_options`` go to the
    filesystem (credentials, ``endpoint_url``).

    What is garbage is decided by ``options`` (an :class:`~registry_gc.Options`),
    or by its fields given directly (``delete_untagged=True``, ``grace=…``),
    which override those of ``options``: ``delete_untagged`` deletes manifests
    no tag reaches (the registry's ``-m``), keeping children of live indexes
    and referrers of live manifests; nothing modified within ``grace`` is
    deleted; uploads go once they started more than ``uploads_older_than`` ago
    and have been idle for the grace. ``dry_run`` deletes nothing and reports
    exactly what a real run would. ``removals`` (a :class:`~registry_gc.Removals`)
    deletes tags, manifests or repositories by name; ``policy`` (a
    :class:`~registry_gc.policy.Policy`) deletes tags by rule first, and the
    report's ``decisions`` say what it kept and deleted, and why.

    ``live=True`` collects while the registry keeps serving pushes
    (:mod:`registry_gc.live`, ``docs/live.md``): garbage blobs are moved into a
    quarantine rather than deleted, the store is read again after a ``settle``
    time (default 10 s) and whatever a push that raced the run needs is put
    back; ``cache`` is the registry's blob-descriptor cache
    (:func:`registry_gc.cache.descriptor_cache`), which the run makes forget
    what it removed — ``None`` means unknown, and then the quarantine is kept
    rather than purged. The report's ``live`` says what moved, what was
    restored and what was purged.

    A repository that cannot be fully read — a tag, index entry or revision
    whose manifest is missing, an untagged revision that cannot be decoded (it
    may be a referrer), a live manifest of a kind distribution does not know —
    is *damaged*: everything it links is kept and the report names why, unless
    ``prune_damaged`` (then what cannot be read counts as absent).

    ``client`` (a ``distributed.Client``) runs the collection on a Dask
    cluster (:mod:`registry_gc.distributed`, ``docs/distributed.md``): the
    same plan, its work split by key prefix into ``partitions`` repository
    partitions and blob shards (default: twice the workers). ``root`` is then
    a URL or path each worker opens, and ``storage_options`` hold no
    credential: workers use their own environment's. ``inventory`` is the
    URL of an S3 Inventory report's ``manifest.json``, whose snapshot lists
    the blobs (:mod:`registry_gc.s3inventory`: only candidates, each checked
    against the store before it is deleted), refused when older than
    ``inventory_max_age`` (default 3 days). Neither combines with ``live``
    or ``policy``.

    Raises :class:`~registry_gc.RefusedError` (nothing deleted) when a live manifest is
    present but cannot be decoded, when blobs exist but no manifest does
    (unless ``allow_no_manifests``), or when the root holds no registry
    (unless ``allow_empty``). A failed deletion does not raise: see
    :attr:`Report.ok` and the report's failures.

    ``plan_out`` (a path) receives the plan as a plan file
    (:mod:`registry_gc.planfile`) before anything is deleted — with
    ``dry_run``, the plan to review and run later with
    :func:`~registry_gc.apply_planfile`; ``deletions_out`` receives, after the
    run, every deletion with its status. Both are streamed, line by line.

    ``names_only=True`` (a local disk: :class:`~registry_gc.backends.SupportsNamesOnly`)
    lists names without sizes or times and looks (one ``stat`` each) only at
    the manifests it reads and at what its plan deletes, keeps or decides on,
    planning again until the plan is the one a full listing gives
    (``registry_gc._resolve``, ``docs/how-it-works.md``): a nightly run on
    a mostly unchanged store costs what changed. The report's byte totals of
    the store are then not measured. It refuses (:class:`~registry_gc.ConfigError`,
    before anything is read) a ``policy``, ``live`` without ``dry_run``, a
    ``client`` or an ``inventory``, and a store that cannot list names alone.

    ``manifest_cache`` (a path, or an open
    :class:`~registry_gc.manifest_cache.ManifestCache`) keeps the manifests a
    run reads in one SQLite file — and, on S3 and GCS, the tags' ``current``
    links, by the MD5 their listing gives — so that the next run reads from the
    storage only what changed (:mod:`registry_gc.manifest_cache`: each body is
    hashed before use; a manifest is used only for a blob the run listed at that
    size). Not with a ``client`` or an ``inventory``.
    """
    coro = collect_async(
        root,
        options,
        dry_run=dry_run,
        removals=removals,
        policy=policy,
        now=now,
        storage_options=storage_options,
        progress=progress,
        delete_untagged=delete_untagged,
        grace=grace,
        uploads_older_than=uploads_older_than,
        prune_damaged=prune_damaged,
        allow_no_manifests=allow_no_manifests,
        allow_empty=allow_empty,
        live=live,
        cache=cache,
        settle=settle,
        plan_out=plan_out,
        deletions_out=deletions_out,
        client=client,
        partitions=partitions,
        inventory=inventory,
        inventory_max_age=inventory_max_age,
        names_only=names_only,
        manifest_cache=manifest_cache,
    )
    if cache is None:
        return _sync.run(coro)

    async def closing() -> Report:
        # The cache's connections belong to this call's event loop: close them in it.
        try:
            return await coro
        finally:
            await cache.aclose()

    return _sync.run(closing())


def _collect_elsewhere(
    root: Root,
    options: Options,
    *,
    dry_run: bool,
    removals: Removals | None,
    policy: Policy | None,
    now: datetime.datetime | None,
    storage_options: Mapping[str, Any] | None,
    progress: ProgressCallback | None,
    live: bool,
    plan_files: bool,
    client: Any,  # noqa: ANN401
    partitions: int | None,
    inventory: str | None,
    inventory_max_age: datetime.timedelta | None,
) -> Report:
    """The run on a Dask cluster (``client``), or from an S3 Inventory (in this process)."""
    from .distributed import InProcessExecutor, collect_distributed, executor_for  # noqa: PLC0415

    how = "a distributed run" if client is not None else "a run from an S3 Inventory"
    if live:
        msg = (
            f"live mode is not available in {how}: run live in one process (collect(live=True), "
            "gc --live), or stop the registry (or make it read-only) for the distributed sweep"
        )
        raise ConfigError(msg)
    if plan_files:
        msg = (
            f"plan files (plan_out, deletions_out; --plan-out, --deletions-out) are not "
            f"available in {how}: plan in one process with them, or run without"
        )
        raise ConfigError(msg)
    if policy is not None:
        msg = (
            f"retention policies are not available in {how} yet: remove the tags by policy in "
            "one process (gc --policy … --dry-run shows which), then collect"
        )
        raise ConfigError(msg)
    if isinstance(root, Backend):
        msg = (
            f"{how} opens the store on each worker: give root as a URL or a path "
            f"(and non-secret storage_options), not a backend object ({root!r})"
        )
        raise ConfigError(msg)
    executor = executor_for(client) if client is not None else InProcessExecutor()
    return collect_distributed(
        root,
        executor,
        options,
        dry_run=dry_run,
        removals=removals,
        now=now,
        storage_options=storage_options,
        progress=progress,
        partitions=partitions,
        inventory=inventory,
        inventory_max_age=inventory_max_age,
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
