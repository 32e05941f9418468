"""The tasks of a distributed run: plain functions of plain values, run on the workers.

Each task opens the store from the run's :class:`~registry_gc.distributed.StorageSpec`
with the credentials of the worker's own environment, does its part through the
pipeline's own functions (:func:`~registry_gc.inventory.scan`,
:func:`~registry_gc.fetch.read_manifests`, :func:`~registry_gc.mark.mark`,
:func:`~registry_gc.plan.make_plan`, :func:`~registry_gc.apply.execute`) and
returns a value. Every task but the deletions opens the store read-only.

Why one module of over 600 lines: every function here is what a worker runs,
submitted by name from :mod:`registry_gc.distributed._driver`; keeping them
together keeps the set of code that runs on workers (and must take only plain,
serializable values) in one place.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .. import _sync
from .._manifest_table import ManifestTable
from ..apply import ApplyResult, directories_to_prune, execute
from ..backends import Outcome, SupportsDirectories, SupportsMultipartUploads
from ..fetch import named_digests, read_manifests
from ..graph import Graph
from ..inventory import Anomaly, BlobTable, Inventory, scan
from ..layout import BLOBS_PREFIX, REPOSITORIES_PREFIX
from ..manifests import MAX_MANIFEST_SIZE, Manifest
from ..mark import Marks, mark
from ..plan import Category, Plan, make_plan
from ._partition import by_shard, discover, shard_of, split_listing
from ._snapshot import ListedBackend, look_again, recheck
from ._state import (
    Answer,
    BlobMarks,
    JoinState,
    LostPartError,
    PartitionListing,
    PartitionMarks,
    PartPlan,
    Requests,
    ShardListing,
    ShardMessage,
    ShardPlan,
    ShardState,
    Summary,
    manifest_refs,
    new_token,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from .._digests import DigestIndex
    from ..backends import Backend, MultipartUpload, ObjectInfo
    from ..layout import Digest
    from ..plan import Deletion
    from ._partition import Part, Partitioning
    from ._snapshot import Columns
    from ._state import RunContext

__all__ = [
    "answer",
    "apply_chunk",
    "discover_parts",
    "fetch_round",
    "first_pass",
    "join",
    "list_partition",
    "list_shard",
    "mark_partition",
    "merge_unknown_time",
    "open_storage",
    "piece",
    "plan_partition",
    "plan_shard",
    "prune",
    "remark",
    "summarize",
    "without_blob_marks",
]

T = TypeVar("T")


def open_storage(ctx: RunContext, *, read_only: bool) -> Backend:
    """The store, opened in this process with its own credentials (tests wrap it here)."""
    return ctx.spec.open(read_only=read_only)


def _with_storage(
    ctx: RunContext, work: Callable[[Backend], Awaitable[T]], *, read_only: bool = True
) -> T:
    """Run ``work(backend)`` in an event loop of its own, closing the backend in it."""

    async def main() -> T:
        backend = open_storage(ctx, read_only=read_only)
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    return _sync.run(main())


def _check(token: str, expected: str, what: str) -> None:
    if token != expected:
        msg = (
            f"{what} was lost with its worker and computed again from a new listing; "
            "a run plans from one listing of the store, so it stops here, before deleting "
            "anything. Run it again"
        )
        raise LostPartError(msg)


def piece(value: Any, *path: str | int) -> Any:  # noqa: ANN401
    """One piece of a result (``piece(v, "requests", 2)`` is ``v.requests[2]``), as a task.

    The piece alone travels to the task that needs it, not the whole result.
    """
    for step in path:
        value = getattr(value, step) if isinstance(step, str) else value[step]
    return value


def summarize(value: Any) -> Summary:  # noqa: ANN401
    """The token and counts of a result that stays on its worker."""
    if isinstance(value, ShardListing):
        inv = value.inventory
        return Summary(
            value.token,
            {"objects": inv.objects, "blobs": len(inv.blobs), "empty_dirs": len(inv.empty_dirs)},
        )
    if isinstance(value, PartitionListing):
        inv = value.inventory
        wanted = sum(len(r.wanted) for r in value.requests)
        counts = {"objects": inv.objects, "empty_dirs": len(inv.empty_dirs), "wanted": wanted}
        return Summary(value.token, counts, tuple(inv.repositories))
    if isinstance(value, ShardState):
        out = value.outgoing
        return Summary(
            value.token,
            {
                "read": value.read,
                "table": len(value.table),
                "wanted": sum(len(m.wanted) for m in out),
                "interest": sum(len(m.interest) for m in out),
            },
        )
    if isinstance(value, PartitionMarks):
        counts = {
            "manifests": value.manifest_count,
            "problems": len(value.marks.problems),
            "live": sum(len(s) for s in value.out_live),
        }
        return Summary(value.token, counts)
    if isinstance(value, JoinState):
        return Summary(value.token, {"notify": sum(len(n) for n in value.notify)})
    raise TypeError(type(value).__name__)  # pragma: no cover


# -- parts and listings ----------------------------------------------------------------------


def discover_parts(ctx: RunContext) -> tuple[Partitioning | None, bool, str]:
    """The parts, by delimiter listings (``None`` without the capability).

    Also whether the store has directories, and its URL as the backend gives it.
    """

    async def work(backend: Backend) -> tuple[Partitioning | None, bool, str]:
        parts = await discover(backend, ctx.shards, ctx.partitions, blobs=not ctx.snapshot)
        return parts, isinstance(backend, SupportsDirectories), backend.url

    return _with_storage(ctx, work)


def first_pass(
    ctx: RunContext,
) -> tuple[list[list[ObjectInfo]], list[list[ObjectInfo]], list[list[MultipartUpload]]]:
    """List the whole store in one task, and cut the listing into shards and partitions."""

    async def work(
        backend: Backend,
    ) -> tuple[list[list[ObjectInfo]], list[list[ObjectInfo]], list[list[MultipartUpload]]]:
        prefixes = [REPOSITORIES_PREFIX] if ctx.snapshot else [BLOBS_PREFIX, REPOSITORIES_PREFIX]
        objects: list[ObjectInfo] = []
        for prefix in prefixes:
            objects.extend([info async for info in backend.list(prefix)])
        uploads: list[MultipartUpload] = []
        if isinstance(backend, SupportsMultipartUploads):
            uploads = await backend.list_multipart_uploads(REPOSITORIES_PREFIX)
        return split_listing(objects, uploads, ctx.shards, ctx.partitions)

    return _with_storage(ctx, work)


def _started(ctx: RunContext, inv: Inventory) -> Inventory:
    inv.started = ctx.started
    return inv


def list_shard(
    ctx: RunContext,
    index: int,
    part: Part | None,
    objects: list[ObjectInfo] | None,
    columns: list[Columns] | None = None,
) -> ShardListing:
    """Shard ``index``'s blobs: its directories listed, or objects listed already."""

    async def work(backend: Backend) -> Inventory:
        if columns is not None:
            listed = ListedBackend.of_columns(columns, backend)
            return await scan(listed, prefixes=[BLOBS_PREFIX], uploads=())
        if objects is not None:
            return await scan(ListedBackend(objects, backend), prefixes=[BLOBS_PREFIX], uploads=())
        assert part is not None
        return await scan(backend, prefixes=list(part.units), listed=part.listed, uploads=())

    return ShardListing(new_token(), index, _started(ctx, _with_storage(ctx, work)))


def _requests(ctx: RunContext, inv: Inventory) -> tuple[Requests, ...]:
    """What a partition asks of each shard before the first round of reads."""
    wanted: set[Digest] = set()
    interest: set[Digest] = set()
    candidates: set[Digest] = set()
    for repo in inv.repositories.values():
        wanted.update(repo.revisions)
        for t in repo.tags.values():
            if t.current is not None:
                wanted.add(t.current)
            wanted.update(t.index)
        interest.update(repo.layers)
        interest.update(d for d in repo.layer_aliases.values() if d is not None)
        candidates.update(
            d for d in repo.layers if d.algorithm == "sha256" and d not in repo.revisions
        )
    interest |= wanted
    w, i, c = (by_shard(s, ctx.shards) for s in (wanted, interest, candidates))
    return tuple(
        Requests(frozenset(w[s]), frozenset(i[s]), frozenset(c[s])) for s in range(ctx.shards)
    )


def list_partition(
    ctx: RunContext,
    index: int,
    part: Part | None,
    objects: list[ObjectInfo] | None,
    uploads: list[MultipartUpload] | None,
) -> PartitionListing:
    """Partition ``index``'s repositories (tags' current links read), and its first requests."""

    async def work(backend: Backend) -> Inventory:
        if objects is not None:
            return await scan(
                ListedBackend(objects, backend), prefixes=[REPOSITORIES_PREFIX], uploads=uploads
            )
        assert part is not None
        return await scan(
            backend, prefixes=list(part.units), listed=part.listed, uploads=part.uploads
        )

    inv = _started(ctx, _with_storage(ctx, work))
    return PartitionListing(new_token(), index, inv, _requests(ctx, inv))


# -- manifests: rounds of reads, sharded by digest ------------------------------------------


def _table_on(index: DigestIndex, prev: ManifestTable | None) -> ManifestTable:
    """A table keyed in ``index`` holding ``prev``'s entries, to add this round's to."""
    if prev is None:
        return ManifestTable(index)
    if prev.index is index:
        return prev.copy()
    # The state came back from another worker than the listing (each pickled apart).
    return ManifestTable.of(index, prev.items())


def _readable(blobs: BlobTable, digest: Digest) -> bool:
    return digest in blobs and blobs.size(digest) <= MAX_MANIFEST_SIZE


async def _looked(
    ctx: RunContext,
    backend: Backend,
    blobs: BlobTable,
    digests: Iterable[Digest],
    done: set[Digest],
) -> None:
    """With a snapshot: look at each digest not in it, once; record the blobs found."""
    if not ctx.snapshot:
        return
    todo = {d for d in digests if d not in blobs and d not in done}
    if not todo:
        return
    found = await look_again(backend, todo)
    for d in todo:
        done.add(d)
        info = found.get(d)
        if info is not None:
            blobs.add(d, info.size, info.modified.timestamp())


@attrs.define
class _Outbox:
    wanted: set[Digest] = attrs.Factory(set)
    interest: dict[Digest, set[int]] = attrs.Factory(dict)
    layers: set[Digest] = attrs.Factory(set)

    def frozen(self) -> ShardMessage:
        return ShardMessage(
            frozenset(self.wanted),
            {d: frozenset(p) for d, p in self.interest.items()},
            frozenset(self.layers),
        )


def _inbox(
    round_no: int, inbox: Sequence[Any], interest: dict[Digest, frozenset[int]]
) -> tuple[set[Digest], set[Digest], set[Digest], dict[Digest, frozenset[int]]]:
    """Merge what arrived: wanted, candidates, layer names; the new interest (recorded)."""
    wanted: set[Digest] = set()
    candidates: set[Digest] = set()
    layers: set[Digest] = set()
    arrived: dict[Digest, set[int]] = {}
    if round_no == 1:
        for p, req in enumerate(inbox):
            wanted |= req.wanted
            candidates |= req.candidates
            for d in req.interest:
                arrived.setdefault(d, set()).add(p)
    else:
        for msg in inbox:
            wanted |= msg.wanted
            layers |= msg.layers
            for d, parts in msg.interest.items():
                arrived.setdefault(d, set()).update(parts)
    added: dict[Digest, frozenset[int]] = {}
    for d, parts in arrived.items():
        old = interest.get(d, frozenset())
        new = frozenset(parts) - old
        if new:
            interest[d] = old | new
            added[d] = new
    return wanted, candidates, layers, added


def _named_as_layers(ctx: RunContext, table: ManifestTable, out: list[_Outbox]) -> None:
    """What ``_layer_candidates`` subtracts: every config and layer a first-round manifest names.

    Not index entries typed as blobs: the registry serves such a blob as a
    manifest through its ``_layers`` link when it reads as one.
    """
    for m in table.values():
        if isinstance(m, Manifest):
            for d in m.blobs:
                out[shard_of(d, ctx.shards)].layers.add(d)


def _spread(ctx: RunContext, m: object, parts: frozenset[int], out: list[_Outbox]) -> None:
    """Pass interest in manifest ``m`` on to everything it names."""
    if isinstance(m, Manifest):
        for ref in manifest_refs(m):
            out[shard_of(ref, ctx.shards)].interest.setdefault(ref, set()).update(parts)


def _outgoing(
    ctx: RunContext,
    *,
    round_no: int,
    table: ManifestTable,
    fresh: list[Digest],
    interest: dict[Digest, frozenset[int]],
    added: dict[Digest, frozenset[int]],
) -> tuple[ShardMessage, ...]:
    """What this round sends each shard: names to read, interest to pass on, layer names."""
    out = [_Outbox() for _ in range(ctx.shards)]
    for d in named_digests(m for d in fresh if isinstance(m := table[d], Manifest)):
        out[shard_of(d, ctx.shards)].wanted.add(d)
    if round_no == 1:
        _named_as_layers(ctx, table, out)
    # A manifest read now passes on everyone's interest in it; one read before,
    # the interest that arrived now.
    for d in fresh:
        if d in interest:
            _spread(ctx, table[d], interest[d], out)
    done = set(fresh)
    for d, parts in added.items():
        if d not in done:
            _spread(ctx, table.get(d), parts, out)
    return tuple(o.frozen() for o in out)


def fetch_round(  # noqa: PLR0917 - a task: positional, like every task
    ctx: RunContext,
    index: int,
    round_no: int,
    listing: ShardListing,
    prev: ShardState | None,
    inbox: list[Any],
    expect: tuple[str, str],
    started: bool,
) -> ShardState:
    """One round of reads for shard ``index``, as :func:`~registry_gc.fetch.fetch_manifests` does.

    Round one reads the revisions, tags and tag history the partitions sent;
    round two what those name that is listed and not read yet, and the
    ``_layers`` links that may be manifests (when no manifest of round one
    names them as a layer — ``started`` says whether round one read anything
    at all); later rounds what the previous named. Alongside, the partitions'
    interest travels along what the manifests name, so that each partition
    gets back every manifest and blob its marking will look at.
    """
    _check(listing.token, expect[0], f"the listing of blob shard {index}")
    if prev is not None:
        _check(prev.token, expect[1], f"the manifests of blob shard {index}")
    blobs = listing.inventory.blobs
    table = _table_on(blobs.index, prev.table if prev else None)
    interest: dict[Digest, frozenset[int]] = dict(prev.interest) if prev else {}
    wanted, arrived, layers, added = _inbox(round_no, inbox, interest)
    candidates = frozenset(arrived) if prev is None else prev.candidates
    looked: set[Digest] = set(prev.looked) if prev else set()

    async def work(backend: Backend) -> list[Digest]:
        if round_no == 1:
            to_read = set(wanted)
        else:
            pool = set(wanted)
            if round_no == 2 and started:
                pool |= {d for d in candidates if d not in layers}
            await _looked(ctx, backend, blobs, (d for d in pool if d not in table), looked)
            to_read = {d for d in pool if d not in table and _readable(blobs, d)}
        if to_read:
            await read_manifests(backend, blobs, to_read, table)
        return sorted(d for d in to_read if isinstance(table[d], Manifest))

    fresh = _with_storage(ctx, work)
    return ShardState(
        new_token(),
        index,
        round_no,
        table,
        interest,
        candidates,
        _outgoing(ctx, round_no=round_no, table=table, fresh=fresh, interest=interest, added=added),
        read=len(fresh),
        looked=frozenset(looked),
    )


def answer(
    ctx: RunContext, state: ShardState, listing: ShardListing, expect: tuple[str, str]
) -> tuple[Answer, ...]:
    """Tell each partition the manifests and blobs of this shard it asked about."""
    _check(listing.token, expect[0], f"the listing of blob shard {state.index}")
    _check(state.token, expect[1], f"the manifests of blob shard {state.index}")
    blobs = listing.inventory.blobs
    if ctx.snapshot:
        looked = set(state.looked)

        async def work(backend: Backend) -> None:
            await _looked(ctx, backend, blobs, state.interest, looked)

        _with_storage(ctx, work)
    entries = [ManifestTable() for _ in range(ctx.partitions)]
    present: list[dict[Digest, tuple[int, float]]] = [{} for _ in range(ctx.partitions)]
    for d, parts in state.interest.items():
        entry = state.table.get(d)
        here = (blobs.size(d), blobs.mtime(d)) if d in blobs else None
        for p in parts:
            if entry is not None:
                entries[p][d] = entry
            if here is not None:
                present[p][d] = here
    return tuple(Answer(e, p) for e, p in zip(entries, present, strict=True))


# -- marking, and referrers across partitions ----------------------------------------------------


def _marked(  # noqa: PLR0917 - private, positional
    ctx: RunContext,
    index: int,
    inv: Inventory,
    table: ManifestTable,
    elsewhere: frozenset[Digest],
    sent: frozenset[Digest],
) -> PartitionMarks:
    options = attrs.evolve(ctx.options, allow_no_manifests=True)  # the driver decides it
    marks = mark(inv, table, options, removals=ctx.removals, now=ctx.now, live_elsewhere=elsewhere)
    live: set[Digest] = set().union(*marks.live.values())
    count = 0
    waits: set[Digest] = set()
    for repo in inv.repositories.values():
        graph = Graph.of(repo, table, inv.blobs)
        count += len(graph.manifests) + sum(1 for t in repo.tags.values() if t.current is not None)
        waits.update(s for s in graph.referrers if s not in live and s not in elsewhere)
    new_live = by_shard(live - sent, ctx.shards)
    by_waits = by_shard(waits, ctx.shards) if not sent else [set() for _ in range(ctx.shards)]
    return PartitionMarks(
        new_token(),
        index,
        inv,
        table,
        marks,
        elsewhere,
        count,
        sent | live,
        tuple(frozenset(s) for s in new_live),
        tuple(frozenset(s) for s in by_waits),
    )


def mark_partition(
    ctx: RunContext, listing: PartitionListing, answers: list[Answer], expect: str
) -> PartitionMarks:
    """Mark partition ``listing.index`` with what the shards answered."""
    _check(listing.token, expect, f"the listing of repository partition {listing.index}")
    src = listing.inventory
    # One index for the links, the blobs and the manifests: the listing's (a
    # partition lists no blob, so the index has no sorted part to describe).
    index = src.blobs.index
    if index.sorted_count or len(src.blobs):
        msg = f"repository partition {listing.index} holds blobs; a partition lists none"
        raise ValueError(msg)
    view = BlobTable(index)
    table = ManifestTable(index)
    for a in answers:
        table.update(a.entries)
        for d, (size, mtime) in a.present.items():
            view.add(d, size, mtime)
    inv = Inventory(
        src.url,
        ctx.started,
        repositories=src.repositories,
        blobs=view,
        anomalies=src.anomalies,
        empty_dirs=src.empty_dirs,
        objects=src.objects,
    )
    return _marked(ctx, listing.index, inv, table, frozenset(), frozenset())


def remark(
    ctx: RunContext, prev: PartitionMarks, notes: list[frozenset[Digest]], expect: str
) -> PartitionMarks:
    """Mark again, told of more subjects live elsewhere (or pass on nothing new)."""
    _check(prev.token, expect, f"the marks of repository partition {prev.index}")
    told = frozenset().union(*notes) - prev.elsewhere
    if not told:
        empty: tuple[frozenset[Digest], ...] = tuple(frozenset() for _ in range(ctx.shards))
        return attrs.evolve(prev, token=new_token(), out_live=empty, out_waits=empty)
    return _marked(ctx, prev.index, prev.inventory, prev.table, prev.elsewhere | told, prev.sent)


def join(  # noqa: PLR0917 - a task: positional, like every task
    ctx: RunContext,
    index: int,
    prev: JoinState | None,
    live: list[frozenset[Digest]],
    waits: list[frozenset[Digest]],
    expect: str,
) -> JoinState:
    """Shard ``index``'s join: which waited-for subjects are live somewhere, told once each."""
    if prev is not None:
        _check(prev.token, expect, f"the referrer join of blob shard {index}")
    all_live = (prev.live if prev else frozenset()).union(*live)
    waiting: dict[Digest, frozenset[int]] = dict(prev.waits) if prev else {}
    for p, piece in enumerate(waits):
        for d in piece:
            waiting[d] = waiting.get(d, frozenset()) | {p}
    told = set(prev.told) if prev else set()
    notify: list[set[Digest]] = [set() for _ in range(ctx.partitions)]
    for d, parts in waiting.items():
        if d in all_live:
            for p in parts:
                if (d, p) not in told:
                    told.add((d, p))
                    notify[p].add(d)
    return JoinState(
        new_token(),
        index,
        all_live,
        waiting,
        frozenset(told),
        tuple(frozenset(n) for n in notify),
    )


# -- plans ---------------------------------------------------------------------------------------


def plan_partition(ctx: RunContext, pm: PartitionMarks, expect: str) -> PartPlan:
    """Partition ``pm.index``'s plan (everything but blobs), and its live blobs by shard."""
    _check(pm.token, expect, f"the marks of repository partition {pm.index}")
    marks = pm.marks
    if marks.problems:
        return PartPlan(problems=tuple(marks.problems))
    plan = make_plan(pm.inventory, marks)
    live = by_shard(marks.blobs - marks.grace_blobs, ctx.shards)
    grace = by_shard(marks.grace_blobs, ctx.shards)
    return PartPlan(
        deletions=tuple(d for d in plan.deletions if d.category is not Category.BLOB),
        kept=tuple(k for k in plan.kept if k.category is not Category.BLOB),
        anomalies=tuple(plan.anomalies),
        stale_empty_dirs=tuple(plan.stale_empty_dirs),
        protected_dirs=plan.protected_dirs,
        removed_repositories=plan.removed_repositories,
        blob_marks=tuple(
            BlobMarks(frozenset(lv), frozenset(gr)) for lv, gr in zip(live, grace, strict=True)
        ),
    )


def without_blob_marks(pp: PartPlan) -> PartPlan:
    """A partition's plan without its live blobs (those go to the shards, not to the driver)."""
    return attrs.evolve(pp, blob_marks=())


def plan_shard(
    ctx: RunContext,
    listing: ShardListing,
    pieces: list[BlobMarks],
    state: ShardState,
    expect: tuple[str, str],
) -> ShardPlan:
    """Shard ``listing.index``'s blobs: live somewhere, kept for the grace, or deleted."""
    _check(listing.token, expect[0], f"the listing of blob shard {listing.index}")
    _check(state.token, expect[1], f"the manifests of blob shard {listing.index}")
    live: set[Digest] = set().union(*(p.live for p in pieces))
    grace: set[Digest] = set().union(*(p.grace for p in pieces)) - live
    marks = Marks(
        options=ctx.options,
        removals=ctx.removals,
        cutoffs=ctx.options.cutoffs(ctx.now),
        blobs=live | grace,
        grace_blobs=grace,
    )
    src = listing.inventory
    inv = Inventory(
        src.url,
        ctx.started,
        blobs=src.blobs,
        anomalies=src.anomalies,
        empty_dirs=src.empty_dirs,
        objects=src.objects,
    )
    plan = make_plan(inv, marks)
    deletions, kept, dropped = list(plan.deletions), list(plan.kept), 0
    if ctx.snapshot and deletions:

        async def work(backend: Backend) -> tuple[list[Deletion], list[Any], int]:
            return await recheck(backend, deletions, src.blobs, marks.cutoffs)

        deletions, more_kept, dropped = _with_storage(ctx, work)
        kept.extend(more_kept)
    return ShardPlan(
        deletions=tuple(deletions),
        kept=tuple(kept),
        anomalies=tuple(plan.anomalies),
        stale_empty_dirs=tuple(plan.stale_empty_dirs),
        protected_dirs=plan.protected_dirs,
        total_blobs=plan.total_blobs,
        total_bytes=plan.total_bytes,
        live_blobs=plan.live_blobs,
        live_bytes=plan.live_bytes,
        manifests_read=len(state.table),
        rechecked=dropped,
    )


# -- deletions -----------------------------------------------------------------------------------


def apply_chunk(ctx: RunContext, deletions: list[Deletion]) -> ApplyResult:
    """Delete one chunk of one phase (the driver holds the barrier between phases)."""
    plan = Plan(ctx.spec.url, ctx.started, 0.0, ctx.options.delete_untagged, list(deletions))

    async def work(backend: Backend) -> ApplyResult:
        return await execute(backend, plan, prune=False)

    return _with_storage(ctx, work, read_only=False)


def prune(
    ctx: RunContext,
    stale_empty_dirs: list[str],
    protected_dirs: frozenset[str],
    removed_repositories: frozenset[str],
    deleted: list[str],
) -> int:
    """Remove the directories the sweep left empty (a store with directories); how many went."""
    plan = Plan(ctx.spec.url, ctx.started, 0.0, ctx.options.delete_untagged)
    plan.stale_empty_dirs = stale_empty_dirs
    plan.protected_dirs = protected_dirs
    plan.removed_repositories = removed_repositories

    async def work(backend: Backend) -> int:
        if not isinstance(backend, SupportsDirectories):
            return 0
        dirs = directories_to_prune(plan, deleted)
        results = await backend.remove_empty_dirs(dirs) if dirs else []
        return sum(1 for r in results if r.outcome is Outcome.DELETED)

    return _with_storage(ctx, work, read_only=False)


_UNKNOWN_TIME = re.compile(r"^(\d+) object\(s\), (.+?) among them, (.*)$", re.DOTALL)


def merge_unknown_time(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    """One ``unknown-time`` anomaly for the whole store, as one listing reports it."""
    out: list[Anomaly] = []
    total = 0
    first: Anomaly | None = None
    rest = ""
    for a in anomalies:
        match = _UNKNOWN_TIME.match(a.message) if a.kind == "unknown-time" else None
        if match is None:
            out.append(a)
            continue
        total += int(match.group(1))
        if first is None or a.path < first.path:
            first, rest = a, match.group(3)
    if first is not None:
        message = f"{total} object(s), {first.path} among them, {rest}"
        out.insert(0, attrs.evolve(first, message=message))
    return out
