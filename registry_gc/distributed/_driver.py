"""The driver of a distributed run: steps, barriers and shuffles, in this process.

The driver holds no storage connection and no credential: every request to
the store is made by a task on a worker. Between steps it reads small
summaries (tokens, counts); the plan's deletions come back to it, for the
report and to hand the deletions out phase by phase.

Steps (``S`` blob shards, ``R`` repository partitions):

1. **parts** — one task lists ``blobs/``, ``blobs/<alg>/`` and
   ``repositories/`` with a delimiter (:mod:`._partition`);
2. **listing** — ``S`` + ``R`` tasks, each a :func:`~registry_gc.inventory.scan`
   of its directories;
3. **manifests** — rounds of ``S`` tasks, each reading the manifests of its
   digests (:func:`~registry_gc.fetch.read_manifests`), with the rounds of
   :func:`~registry_gc.fetch.fetch_manifests`; what a round names goes to the
   shard of each digest (an ``S  x  S`` shuffle), and so does which partitions
   need it back. Then each shard answers each partition (``S  x  R``);
4. **mark** — ``R`` tasks :func:`~registry_gc.mark.mark` their repositories;
   a referrer whose subject is live in another partition is found by a join
   on the subject's shard (``R  x  S`` and back), repeated until nothing new;
5. **plan** — ``R`` tasks :func:`~registry_gc.plan.make_plan` their
   repositories and send what they keep live to the shard of each blob
   (``R  x  S``); ``S`` tasks plan their blobs; a problem anywhere refuses the
   whole run before anything is deleted;
6. **delete** — phase by phase (:data:`~registry_gc.plan.PHASES`), each
   phase's deletions in chunks on every worker; the next phase starts only
   when every chunk of this one is done, and not at all if one failed.

Why one module of over 600 lines: it is the one sequence of steps and barriers
of a distributed run; the tasks, partitions, state and executors it drives are
modules of their own.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, DistributedError, RefusedError, RegistryGCError
from .._run import Timings, refuse_empty
from ..apply import ApplyResult, Failure, Status
from ..inventory import Inventory, RepositoryEntry
from ..layout import Repository
from ..mark import no_manifests_problem
from ..options import Options, Removals
from ..plan import PHASES, Plan
from ..report import Report
from . import _tasks as tasks
from ._executor import InProcessExecutor
from ._spec import StorageSpec
from ._state import LostPartError, RunContext

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..inventory import Anomaly
    from ..plan import Deletion
    from ..s3inventory import InventorySnapshot
    from ._executor import Executor
    from ._state import PartPlan, ShardPlan, Summary

__all__ = ["APPLY_CHUNK", "MAX_SHARDS", "collect_distributed"]

log = logging.getLogger(__name__)

#: Blob shards at most: one per ``blobs/<alg>/<xx>`` prefix.
MAX_SHARDS = 256
#: Deletions handed to one task at most.
APPLY_CHUNK = 20_000
#: Retries of a deletion task (deleting again is harmless: a missing object counts as done).
APPLY_RETRIES = 2


class _Steps:
    """The executor, with task keys that name the run, the step and the part."""

    def __init__(self, executor: Executor, run: str) -> None:
        self.ex = executor
        self.run = run
        self._n = 0

    def keys(self, step: str, n: int) -> list[str]:
        self._n += 1
        return [f"registry-gc-{self.run}-{step}{self._n}-{i}" for i in range(n)]

    def map(self, fn: Callable[..., Any], *columns: Sequence[Any], step: str) -> list[Any]:
        n = len(columns[0]) if columns else 0
        return self.ex.map(fn, *columns, keys=self.keys(step, n))

    def one(self, fn: Callable[..., Any], *args: Any, step: str) -> Any:  # noqa: ANN401
        return self.ex.submit(fn, *args, key=self.keys(step, 1)[0])

    def gather(self, handles: Sequence[Any], doing: str) -> list[Any]:
        try:
            return self.ex.gather(handles)
        except BaseException as e:
            failed = self.ex.failed(handles)
            where = f" (task {failed[0][0]})" if failed else ""
            if isinstance(e, RegistryGCError) and not isinstance(e, LostPartError):
                raise
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            msg = (
                f"the distributed run stopped while {doing}{where}: {type(e).__name__}: {e}; "
                "nothing was deleted"
            )
            raise DistributedError(msg) from e

    def summaries(self, handles: Sequence[Any], doing: str) -> list[Summary]:
        return self.gather(self.map(tasks.summarize, handles, step="sum"), doing)

    def pieces(self, handles: Sequence[Any], *path: str, n: int, step: str) -> list[list[Any]]:
        """``pieces[i][j]`` is ``piece(handles[i], *path, j)``: one task each."""
        flat_h = [h for h in handles for _ in range(n)]
        flat_j = [j for _ in handles for j in range(n)]
        got = self.map(
            tasks.piece,
            flat_h,
            *([p] * len(flat_h) for p in path),
            flat_j,
            step=step,
        )
        return [got[i * n : (i + 1) * n] for i in range(len(handles))]


def _context(  # noqa: PLR0917
    root: str,
    storage_options: Mapping[str, Any] | None,
    executor: Executor,
    options: Options,
    removals: Removals,
    now: datetime.datetime | None,
    partitions: int | None,
    snapshot: bool,
) -> RunContext:
    spec = StorageSpec(
        root, dict(storage_options or {}), local=isinstance(executor, InProcessExecutor)
    )
    if partitions is not None and partitions < 1:
        raise ConfigError(f"partitions must be at least 1, not {partitions}")
    n = partitions or max(1, 2 * executor.workers)
    started = datetime.datetime.now(datetime.timezone.utc)
    return RunContext(
        run=uuid.uuid4().hex[:12],
        spec=spec,
        shards=min(n, MAX_SHARDS),
        partitions=n,
        options=options,
        removals=removals,
        now=now or started,
        started=started,
        snapshot=snapshot,
    )


def _listings(
    steps: _Steps, ctx: RunContext, snapshot: InventorySnapshot | None
) -> tuple[list[Any], list[Any], bool, str]:
    """Step 1 and 2: the shards' and the partitions' listings; whether dirs exist; the URL."""
    parts, directories, url = steps.gather(
        [steps.one(tasks.discover_parts, ctx, step="parts")], "finding the parts of the store"
    )[0]
    n_s, n_r = ctx.shards, ctx.partitions
    objects: list[Any] = [None] * n_s
    repo_objects: list[Any] = [None] * n_r
    uploads: list[Any] = [None] * n_r
    if parts is None:
        first = steps.one(tasks.first_pass, ctx, step="first-pass")
        objects = [steps.one(tasks.piece, first, 0, s, step="cut") for s in range(n_s)]
        repo_objects = [steps.one(tasks.piece, first, 1, p, step="cut") for p in range(n_r)]
        uploads = [steps.one(tasks.piece, first, 2, p, step="cut") for p in range(n_r)]
    columns: list[Any] = [None] * n_s
    if snapshot is not None:
        from ..s3inventory import read_snapshot_file  # noqa: PLC0415

        files = steps.map(
            read_snapshot_file,
            [ctx] * len(snapshot.files),
            [snapshot] * len(snapshot.files),
            range(len(snapshot.files)),
            step="snapshot",
        )
        cut = steps.pieces(files, n=n_s, step="cut")
        columns = [[cut[f][s] for f in range(len(files))] for s in range(n_s)]
        objects = [None] * n_s
    shard_parts = parts.shards if parts is not None else [None] * n_s
    part_parts = parts.partitions if parts is not None else [None] * n_r
    shards = steps.map(
        tasks.list_shard, [ctx] * n_s, range(n_s), shard_parts, objects, columns, step="list-blobs"
    )
    partitions = steps.map(
        tasks.list_partition,
        [ctx] * n_r,
        range(n_r),
        part_parts,
        repo_objects,
        uploads,
        step="list-repositories",
    )
    return shards, partitions, directories, url


def _fetch(
    steps: _Steps,
    ctx: RunContext,
    *,
    shards: list[Any],
    shard_tokens: list[str],
    partitions: list[Any],
    started: bool,
) -> tuple[list[Any], list[str], int]:
    """Step 3: rounds of reads until nothing new is named or asked for; the final states."""
    n_s, n_r = ctx.shards, ctx.partitions
    requests = steps.pieces(partitions, "requests", n=n_s, step="requests")
    inbox = [[requests[p][s] for p in range(n_r)] for s in range(n_s)]
    states = steps.map(
        tasks.fetch_round,
        [ctx] * n_s,
        range(n_s),
        [1] * n_s,
        shards,
        [None] * n_s,
        inbox,
        [(t, "") for t in shard_tokens],
        [started] * n_s,
        step="round1-",
    )
    round_no = 1
    while True:
        sums = steps.summaries(states, f"reading manifests (round {round_no})")
        tokens = [s.token for s in sums]
        busy = sum(s.counts["wanted"] + s.counts["interest"] for s in sums)
        log.info(
            "round %d: %d manifests read, %d digests passed on",
            round_no,
            sum(s.counts["read"] for s in sums),
            busy,
        )
        if round_no >= 2 and not busy:
            return states, tokens, sum(s.counts["table"] for s in sums)
        out = steps.pieces(states, "outgoing", n=n_s, step="shuffle")
        round_no += 1
        states = steps.map(
            tasks.fetch_round,
            [ctx] * n_s,
            range(n_s),
            [round_no] * n_s,
            shards,
            states,
            [[out[s][t] for s in range(n_s)] for t in range(n_s)],
            list(zip(shard_tokens, tokens, strict=True)),
            [started] * n_s,
            step=f"round{round_no}-",
        )


def _mark(
    steps: _Steps,
    ctx: RunContext,
    partitions: list[Any],
    part_tokens: list[str],
    answers: list[Any],
) -> tuple[list[Any], list[Summary]]:
    """Step 4: mark each partition; join referrers with subjects live elsewhere, until still."""
    n_s, n_r = ctx.shards, ctx.partitions
    pieces = steps.pieces(answers, n=n_r, step="answers")
    marks = steps.map(
        tasks.mark_partition,
        [ctx] * n_r,
        partitions,
        [[pieces[s][p] for s in range(n_s)] for p in range(n_r)],
        part_tokens,
        step="mark",
    )
    sums = steps.summaries(marks, "marking")
    joins: list[Any] = [None] * n_s
    join_tokens = [""] * n_s
    first = True
    while True:
        live = steps.pieces(marks, "out_live", n=n_s, step="live")
        waits = (
            steps.pieces(marks, "out_waits", n=n_s, step="waits")
            if first
            else [[] for _ in range(n_r)]
        )
        joins = steps.map(
            tasks.join,
            [ctx] * n_s,
            range(n_s),
            joins,
            [[live[p][s] for p in range(n_r)] for s in range(n_s)],
            [[waits[p][s] for p in range(n_r)] if first else [] for s in range(n_s)],
            join_tokens,
            step="join",
        )
        join_sums = steps.summaries(joins, "joining referrers with their subjects")
        join_tokens = [s.token for s in join_sums]
        first = False
        if not sum(s.counts["notify"] for s in join_sums):
            return marks, sums
        notes = steps.pieces(joins, "notify", n=n_r, step="notes")
        marks = steps.map(
            tasks.remark,
            [ctx] * n_r,
            marks,
            [[notes[s][p] for s in range(n_s)] for p in range(n_r)],
            [s.token for s in sums],
            step="remark",
        )
        sums = steps.summaries(marks, "marking again")


def _snapshot(
    steps: _Steps, ctx: RunContext, url: str | None, max_age: datetime.timedelta | None
) -> InventorySnapshot | None:
    """The S3 Inventory's snapshot, read by a worker and checked here; ``None`` without one."""
    if url is None:
        return None
    from ..s3inventory import (  # noqa: PLC0415
        DEFAULT_MAX_AGE,
        check_snapshot,
        load_snapshot_task,
        registry_bucket,
    )

    bucket = registry_bucket(ctx.spec.url)
    snapshot: InventorySnapshot = steps.gather(
        [steps.one(load_snapshot_task, ctx, url, step="inventory")], "reading the S3 Inventory"
    )[0]
    check_snapshot(snapshot, bucket=bucket, now=ctx.started, max_age=max_age or DEFAULT_MAX_AGE)
    log.info(
        "S3 Inventory %s: %d %s file(s), made %s",
        url,
        len(snapshot.files),
        snapshot.file_format,
        snapshot.created.isoformat(),
    )
    return snapshot


def _refuse(url: str, problems: list[str]) -> None:
    if problems:
        n = len(problems)
        msg = f"refusing to sweep {url}: {n} problem(s) found; nothing was deleted"
        raise RefusedError(msg, problems)


def _assemble(
    ctx: RunContext,
    url: str,
    part_plans: list[PartPlan],
    shard_plans: list[ShardPlan],
) -> Plan:
    cutoffs = ctx.options.cutoffs(ctx.now)
    plan = Plan(url, ctx.started, cutoffs.grace, ctx.options.delete_untagged)
    order = {c: i for i, phase in enumerate(PHASES) for c in phase}
    deletions: list[Deletion] = []
    anomalies: list[Anomaly] = []
    empty: set[str] = set()
    protected: set[str] = set()
    removed: set[str] = set()
    for pp in part_plans:
        deletions.extend(pp.deletions)
        plan.kept.extend(pp.kept)
        anomalies.extend(pp.anomalies)
        empty.update(pp.stale_empty_dirs)
        protected |= pp.protected_dirs
        removed |= pp.removed_repositories
    for sp in shard_plans:
        deletions.extend(sp.deletions)
        plan.kept.extend(sp.kept)
        anomalies.extend(sp.anomalies)
        empty.update(sp.stale_empty_dirs)
        protected |= sp.protected_dirs
        plan.total_blobs += sp.total_blobs
        plan.total_bytes += sp.total_bytes
        plan.live_blobs += sp.live_blobs
        plan.live_bytes += sp.live_bytes
    deletions.sort(key=lambda d: order[d.category])
    plan.deletions = deletions
    plan.anomalies = tasks.merge_unknown_time(anomalies)
    plan.stale_empty_dirs = sorted(empty)
    plan.protected_dirs = frozenset(protected)
    plan.removed_repositories = frozenset(removed)
    return plan


def _chunks(members: list[int], workers: int) -> list[list[int]]:
    """``members`` cut into chunks, enough to keep every worker busy, none too large."""
    size = max(1, min(APPLY_CHUNK, math.ceil(len(members) / max(1, 2 * workers))))
    return [members[i : i + size] for i in range(0, len(members), size)]


def _apply_phase(
    steps: _Steps, ctx: RunContext, plan: Plan, members: list[int], result: ApplyResult
) -> tuple[bool, list[str]]:
    """One phase's deletions, in chunks on the workers; whether any failed, and what went."""
    chunks = _chunks(members, steps.ex.workers)
    category = plan.deletions[members[0]].category
    name = "+".join(c.value for c in next(p for p in PHASES if category in p))
    handles = steps.ex.map(
        tasks.apply_chunk,
        [ctx] * len(chunks),
        [[plan.deletions[i] for i in chunk] for chunk in chunks],
        keys=steps.keys(f"delete-{name}-", len(chunks)),
        retries=APPLY_RETRIES,
    )
    failed = False
    deleted: list[str] = []
    for chunk, (got, error) in zip(chunks, steps.ex.outcomes(handles), strict=True):
        if error is not None:
            failed = True
            text = f"the task deleting this failed on its worker: {type(error).__name__}: {error}"
            for i in chunk:
                d = plan.deletions[i]
                result.status[i] = Status.FAILED
                result.failures.extend(Failure(p, text, d.category, d.repository) for p in d.paths)
            continue
        result.failures.extend(got.failures)
        result.already_missing += got.already_missing
        for i, status in zip(chunk, got.status, strict=True):
            result.status[i] = status
            if status is Status.DELETED:
                deleted.extend(plan.deletions[i].paths)
            else:
                failed = True
    log.info("phase %s: %d deletion(s) on %d task(s)", name, len(members), len(chunks))
    return failed, deleted


def _apply(
    steps: _Steps,
    ctx: RunContext,
    plan: Plan,
    directories: bool,
    progress: Callable[[str, int, int | None], None] | None,
) -> ApplyResult:
    """Step 6: phase by phase, a barrier between phases; prune directories at the end."""
    result = ApplyResult(status=[Status.PLANNED] * len(plan.deletions))
    stopped = False
    deleted: list[str] = []
    t0 = time.monotonic()
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
        # The barrier: every chunk of this phase is done before any of the next starts.
        failed, gone = _apply_phase(steps, ctx, plan, members, result)
        deleted.extend(gone)
        if progress is not None:
            progress(name, len(members), len(members))
        if failed:
            stopped = True
            log.error("%s deletion(s) failed; later phases are skipped", name)
    if directories and not stopped:
        pruned = steps.one(
            tasks.prune,
            ctx,
            plan.stale_empty_dirs,
            plan.protected_dirs,
            plan.removed_repositories,
            deleted,
            step="prune",
        )
        result.directories_removed = steps.gather([pruned], "removing empty directories")[0]
    result.seconds = time.monotonic() - t0
    return result


def collect_distributed(
    root: str | os.PathLike[str],
    executor: Executor,
    options: Options | None = None,
    *,
    dry_run: bool = False,
    removals: Removals | None = None,
    now: datetime.datetime | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    partitions: int | None = None,
    inventory: str | None = None,
    inventory_max_age: datetime.timedelta | None = None,
) -> Report:
    """:func:`~registry_gc.collect` with its work done by ``executor``'s workers.

    The plan is the plan of a run in one process, and so is the report; see
    :mod:`registry_gc.distributed` for how the work splits. ``partitions``
    sets the number of repository partitions and of blob shards (default:
    twice the workers; at most 256 shards). ``inventory`` is the URL of an S3
    Inventory report's ``manifest.json``: the blobs are taken from it
    (:mod:`registry_gc.s3inventory`), refused when older than
    ``inventory_max_age``.
    """
    options = options or Options()
    removals = removals or Removals()
    ctx = _context(
        os.fspath(root),
        storage_options,
        executor,
        options,
        removals,
        now,
        partitions,
        inventory is not None,
    )
    steps = _Steps(executor, ctx.run)
    snapshot = _snapshot(steps, ctx, inventory, inventory_max_age)
    timings = Timings()
    log.info(
        "distributed run %s on %s: %d worker(s), %d blob shard(s), %d repository partition(s)",
        ctx.run,
        ctx.spec.url,
        executor.workers,
        ctx.shards,
        ctx.partitions,
    )
    with timings.step("inventory"):
        shards, partitions_h, directories, url = _listings(steps, ctx, snapshot)
        shard_sums = steps.summaries(shards, "listing blobs")
        part_sums = steps.summaries(partitions_h, "listing repositories")
    objects = sum(s.counts["objects"] for s in (*shard_sums, *part_sums))
    names = sorted({n for s in part_sums for n in s.names})
    summary = Inventory(url, ctx.started, objects=objects)
    summary.repositories = {
        Repository._trusted(n): RepositoryEntry(Repository._trusted(n))  # noqa: SLF001
        for n in names
    }
    if not sum(s.counts["empty_dirs"] for s in (*shard_sums, *part_sums)):
        refuse_empty(summary, allow_empty=options.allow_empty)
    if progress is not None:
        progress("listing", objects, objects)
    with timings.step("manifests"):
        wanted = sum(s.counts["wanted"] for s in part_sums)
        states, state_tokens, manifests_read = _fetch(
            steps,
            ctx,
            shards=shards,
            shard_tokens=[s.token for s in shard_sums],
            partitions=partitions_h,
            started=wanted > 0,
        )
        answers = steps.map(
            tasks.answer,
            [ctx] * ctx.shards,
            states,
            shards,
            [(a.token, b) for a, b in zip(shard_sums, state_tokens, strict=True)],
            step="answer",
        )
    if progress is not None:
        progress("manifests", manifests_read, manifests_read)
    with timings.step("plan"):
        marks, mark_sums = _mark(steps, ctx, partitions_h, [s.token for s in part_sums], answers)
        part_plans_h = steps.map(
            tasks.plan_partition,
            [ctx] * ctx.partitions,
            marks,
            [s.token for s in mark_sums],
            step="plan-repositories",
        )
        blob_marks = steps.pieces(part_plans_h, "blob_marks", n=ctx.shards, step="blob-marks")
        part_plans: list[PartPlan] = steps.gather(
            steps.map(tasks.without_blob_marks, part_plans_h, step="plan-light"),
            "planning repositories",
        )
        problems = [p for pp in part_plans for p in pp.problems]
        blobs = sum(s.counts["blobs"] for s in shard_sums)
        if (
            not sum(s.counts["manifests"] for s in mark_sums)
            and blobs
            and not options.allow_no_manifests
        ):
            problems.append(no_manifests_problem(url, blobs))
        _refuse(url, problems)
        shard_plans: list[ShardPlan] = steps.gather(
            steps.map(
                tasks.plan_shard,
                [ctx] * ctx.shards,
                shards,
                [[blob_marks[p][s] for p in range(ctx.partitions)] for s in range(ctx.shards)],
                states,
                [(a.token, b) for a, b in zip(shard_sums, state_tokens, strict=True)],
                step="plan-blobs",
            ),
            "planning blobs",
        )
        plan = _assemble(ctx, url, part_plans, shard_plans)
    log.info(
        "plan: %d deletion(s), %d bytes; %d kept for the grace period; %d anomalies",
        len(plan.deletions),
        sum(d.size for d in plan.deletions),
        len(plan.kept),
        len(plan.anomalies),
    )
    report = Report(
        summary,
        plan,
        dry_run,
        options,
        timings=timings,
        manifests_read=sum(sp.manifests_read for sp in shard_plans),
    )
    if not dry_run:
        with timings.step("apply"):
            report.result = _apply(steps, ctx, plan, directories, progress)
    timings["total"] = timings.total()
    return report
