"""Read and parse the manifests the mark phase needs, concurrently, once each, in bounded memory.

Manifests are blobs, so a digest is read once however many repositories hold
it. The first round reads every revision, every tag target and every tag
history entry (referrers can only be found by reading their ``subject``;
history entries may be revisions of registry 2.1.0, which linked manifests
under ``_layers``). Later rounds read what those name that may be manifests
too: index entries that are not plainly blobs, the digests of bodies whose
reading is ambiguous, and ``_layers`` links that no manifest names as a layer
(a 2.1.0 revision is only found that way) — until nothing new turns up.

Reads are grouped by the sizes the listing found, so that at most
``PARALLEL_BATCHES * BATCH_BYTES`` of manifest bodies are held at once,
however large they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

from . import _sync
from ._errors import ManifestError
from ._manifest_table import ManifestTable, Unreadable
from ._reads import BATCH_BYTES, PARALLEL_BATCHES, READ_BATCH, read_each
from .layout import Digest, blob_digest, blob_path
from .manifests import MAX_MANIFEST_SIZE, Manifest, ManifestKind, parse_manifest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping

    from ._columns import LinkTimes
    from ._digests import DigestIndex
    from .backends import Backend
    from .inventory import BlobTable, Inventory
    from .manifest_cache import ManifestCache

__all__ = [
    "BATCH_BYTES",
    "PARALLEL_BATCHES",
    "READ_BATCH",
    "ManifestTable",
    "Unreadable",
    "fetch_manifests",
    "is_manifest",
    "load_manifests",
    "named_digests",
    "read_configs",
    "read_manifests",
]

log = logging.getLogger(__name__)


#: Image configs larger than this are not read (for a platform, a creation time).
MAX_CONFIG_SIZE = 1024 * 1024
T = TypeVar("T")


def is_manifest(entry: Manifest | Unreadable | None) -> bool:
    """Whether a table entry is a manifest distribution can serve (a known kind)."""
    return isinstance(entry, Manifest) and entry.kind is not ManifestKind.UNKNOWN


async def fetch_manifests(
    backend: Backend,
    inventory: Inventory,
    *,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[Digest, bytes], None] | None = None,
    known: Mapping[Digest, Manifest | Unreadable] | None = None,
    look: Callable[[set[int]], Awaitable[None]] | None = None,
    cache: ManifestCache | None = None,
) -> ManifestTable:
    """Read every manifest that marking may need; return them parsed.

    ``progress(done, total)`` is called after each batch with the manifests
    read so far and the number known to be needed so far (it grows when later
    rounds find more). ``observe(digest, data)`` sees every body read (``check``
    hashes them), before it is parsed and dropped. ``known`` (a table an
    earlier run returned) is extended, not read again, except for manifests it
    found missing that the listing now shows.

    ``look(ids)`` is awaited before the blobs of ``ids`` are judged or read:
    a names-only run (``registry_gc._resolve``) makes their presence and
    size exact there, as a full listing had them.

    ``cache`` (:class:`~registry_gc.manifest_cache.ManifestCache`) is asked
    first for every listed manifest, and given every manifest read.
    """
    index = inventory.index
    if isinstance(known, ManifestTable) and known.index is index:
        table = known.copy()
    else:
        table = ManifestTable.of(index, (known or {}).items())
    blobs = inventory.blobs
    wanted = _first_wanted(inventory, table)
    counts = [0, 0]  # done, total
    rounds = 0
    while wanted:
        rounds += 1
        if look is not None:
            await look(wanted)
        await _read_round(backend, blobs, wanted, table, progress, observe, counts, cache)
        named: set[int] = set()
        for i in wanted:
            named.update(table.reference_ids(i)[1])
        candidates = {i for i in named if not table.has_id(i)}
        if rounds == 1:
            candidates.update(_layer_candidates(inventory, table))
        if look is not None:
            await look(candidates)
        wanted = {i for i in candidates if _readable(blobs, i)}
    log.info("read %d manifests in %d round(s)", len(table), rounds)
    return table


async def read_manifests(
    backend: Backend,
    blobs: BlobTable,
    digests: set[Digest],
    table: MutableMapping[Digest, Manifest | Unreadable],
    *,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[Digest, bytes], None] | None = None,
) -> list[Manifest]:
    """One round of :func:`fetch_manifests`: read and parse ``digests`` into ``table``.

    ``blobs`` says which are listed (an unlisted one is read once, to tell a
    manifest written since the listing from a missing one) and how large each
    is. Returns the manifests that parsed, for the next round: the digests they
    name (:func:`named_digests`). :mod:`registry_gc.distributed` runs the rounds
    itself, each worker for the digests of its blob prefixes. A
    :class:`ManifestTable` keyed by ids of ``blobs.index`` is filled directly;
    any other mapping gets the entries of this round added to it.
    """
    index = blobs.index
    if isinstance(table, ManifestTable) and table.index is index:
        target = table
    else:
        target = ManifestTable(index)
    wanted = {index.intern(d) for d in digests}
    counts = [0, 0]
    await _read_round(backend, blobs, wanted, target, progress, observe, counts)
    out: list[Manifest] = []
    for i in sorted(wanted):
        entry = target.get_id(i)
        if entry is None:  # pragma: no cover - every id read gets an entry
            continue
        if target is not table:
            table[index.digest(i)] = entry
        if isinstance(entry, Manifest):
            out.append(entry)
    return out


def named_digests(manifests: Iterable[Manifest]) -> Iterator[Digest]:
    """What these manifests name that may be a manifest: entries not plainly blobs, extras.

    A round of :func:`fetch_manifests` reads those of them that are listed and
    not read yet.
    """
    for m in manifests:
        yield from (c.digest for c in m.children if not c.is_blob)
        yield from m.extra


def _first_wanted(inventory: Inventory, table: ManifestTable) -> set[int]:
    """Every revision, tag target and tag history entry to read.

    Those not in ``table`` yet, and those missing there that the listing now shows.
    """
    index = inventory.index
    blobs = inventory.blobs
    flags = bytearray(len(index))

    def want(ids: Iterable[int]) -> None:
        for i in ids:
            if i >= len(flags):
                flags.extend(bytes(i + 1 - len(flags)))
            flags[i] = 1

    for repo in inventory.repositories.values():
        want(_link_ids(repo.revisions, index))
        for t in repo.tags.values():
            if t.current is not None:
                want((index.intern(t.current),))
            want(_link_ids(t.index, index))
    out: set[int] = set()
    at = flags.find(1)
    while at >= 0:
        # Missing before, and listed now: written since, so read it again.
        if not table.has_id(at) or (table.is_missing_id(at) and blobs.has_id(at)):
            out.add(at)
        at = flags.find(1, at + 1)
    return out


def _link_ids(links: LinkTimes, index: DigestIndex) -> Iterable[int]:
    if links.index is index:
        return links.ids()
    return [index.intern(d) for d in links]


def _readable(blobs: BlobTable, i: int) -> bool:
    return blobs.has_id(i) and blobs.size_of_id(i) <= MAX_MANIFEST_SIZE


def _layer_candidates(inventory: Inventory, table: ManifestTable) -> set[int]:
    """``_layers`` links whose blob no manifest names as a layer: 2.1.0 revisions, maybe.

    distribution resolves a manifest through ``_layers/<digest>/link`` as well as
    through its revision link (``manifestLinkPathFns``, because 2.1.0 linked
    manifests there). A link that only a manifest's config and layers name is a
    layer. An index entry of a media type that is no manifest's is not enough:
    the registry still serves its blob as a manifest through that link when it
    reads as one, and what it references then, so it is read.
    """
    index = inventory.index
    layers = bytearray(len(index))
    for i in table.ids():
        for b in table.layer_ids(i):
            if b < len(layers):
                layers[b] = 1
    out: set[int] = set()
    blobs = inventory.blobs
    n = len(layers)
    for repo in inventory.repositories.values():
        revisions = repo.revisions
        for i in _link_ids(repo.layers, index):
            if (
                (i >= n or not layers[i])
                and not table.has_id(i)
                and index.is_sha256(i)
                and blobs.has_id(i)
                and not revisions.has_id(i)
            ):
                out.add(i)
    return out


def _to_read(blobs: BlobTable, wanted: set[int], table: ManifestTable) -> list[int]:
    """The ids to read, in digest order; those too large to be served are entered as such."""
    to_read: list[int] = []
    for i in sorted(wanted):
        if not blobs.has_id(i):
            # Not listed: missing, or written after the listing passed its prefix (a push
            # writes the manifest's blob before its link). One read tells which.
            to_read.append(i)
        elif blobs.size_of_id(i) > MAX_MANIFEST_SIZE:
            error = (
                f"manifest {table.index.digest(i)} is {blobs.size_of_id(i)} bytes, over "
                f"distribution's limit of {MAX_MANIFEST_SIZE} bytes"
            )
            table.set_id(i, Unreadable(missing=False, error=error))
        else:
            to_read.append(i)
    return to_read


async def _read_round(  # noqa: PLR0917 - private helper, one call site
    backend: Backend,
    blobs: BlobTable,
    wanted: set[int],
    table: ManifestTable,
    progress: Callable[[int, int], None] | None,
    observe: Callable[[Digest, bytes], None] | None,
    counts: list[int],
    cache: ManifestCache | None = None,
) -> None:
    index = table.index
    to_read = _to_read(blobs, wanted, table)

    def consume(path: str, data: bytes | None, *, cached: bool = False) -> None:
        d = Digest._trusted(blob_digest(path))  # type: ignore[arg-type]  # noqa: SLF001
        i = index.find(d)
        if data is None:
            # Listed a moment ago and gone now: someone else deletes in this store.
            table.set_id(
                i,
                Unreadable(missing=True)
                if not blobs.has_id(i)
                else Unreadable(missing=False, error=f"{path} vanished while reading"),
            )
            return
        if observe is not None:
            observe(d, data)
        try:
            entry: Manifest | Unreadable = parse_manifest(data, digest=d)
        except ManifestError as e:
            entry = Unreadable(missing=False, error=str(e))
        table.set_id(i, entry)
        if cache is not None and not cached and is_manifest(entry):
            cache.add(d, data)

    def tick(n: int) -> None:
        counts[0] += n
        if progress is not None:
            progress(counts[0], counts[1])

    def size_of(path: str) -> int:
        i = index.find(blob_digest(path))  # type: ignore[arg-type]
        return blobs.size_of_id(i) if blobs.has_id(i) else MAX_MANIFEST_SIZE

    counts[1] += len(to_read)
    if cache is not None:
        to_read = _from_cache(cache, blobs, to_read, index, consume=consume, tick=tick)
    await read_each(
        backend,
        (blob_path(index.digest(i)) for i in to_read),
        consume,
        size_of=size_of,
        tick=tick,
    )


def _from_cache(
    cache: ManifestCache,
    blobs: BlobTable,
    ids: list[int],
    index: DigestIndex,
    *,
    consume: Callable[..., None],
    tick: Callable[[int], None],
) -> list[int]:
    """Hand ``consume`` what ``cache`` holds of the listed ``ids``; return the rest, to read.

    Only blobs this run listed are asked for, with the size listed: an unlisted one
    is read, to tell a manifest written since the listing from a missing one.
    """
    listed = [i for i in ids if blobs.has_id(i)]
    hits: set[int] = set()
    for d, data in cache.take((index.digest(i), blobs.size_of_id(i)) for i in listed):
        consume(blob_path(d), data, cached=True)
        hits.add(index.find(d))
    if hits:
        tick(len(hits))
    return [i for i in ids if i not in hits]


async def read_configs(
    backend: Backend,
    inventory: Inventory,
    configs: Iterable[Digest],
    parse: Callable[[bytes], T | None],
    *,
    limit: int = MAX_CONFIG_SIZE,
    progress: Callable[[int], None] | None = None,
) -> dict[Digest, T]:
    """Read image config blobs and keep what ``parse`` makes of each (``None``: nothing).

    Configs that are missing or larger than ``limit`` are not read. Only the
    parsed values are kept, so memory follows the values, not the configs.
    """
    blobs = inventory.blobs
    wanted = {blob_path(c): c for c in configs if c in blobs and blobs.size(c) <= limit}
    out: dict[Digest, T] = {}

    def consume(path: str, data: bytes | None) -> None:
        value = parse(data) if data is not None else None
        if value is not None:
            out[wanted[path]] = value

    await read_each(
        backend, sorted(wanted), consume, size_of=lambda p: blobs.size(wanted[p]), tick=progress
    )
    return out


def load_manifests(backend: Backend, inventory: Inventory) -> ManifestTable:
    """Read every manifest that marking may need (synchronous :func:`fetch_manifests`)."""
    return _sync.run(fetch_manifests(backend, inventory))
