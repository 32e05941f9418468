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

import attrs

from . import _sync
from ._errors import ManifestError
from ._reads import BATCH_BYTES, PARALLEL_BATCHES, READ_BATCH, read_each
from .layout import blob_path
from .manifests import MAX_MANIFEST_SIZE, Manifest, ManifestKind, parse_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from .backends import Backend
    from .inventory import BlobTable, Inventory
    from .layout import Digest

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


@attrs.frozen
class Unreadable:
    """A manifest that could not be used: its blob is missing, or it does not parse.

    ``missing`` is ``True`` when ``blobs/…/data`` does not exist (a dangling
    reference); otherwise ``error`` says why it cannot be parsed. The mark
    phase names the repository when it reports it.
    """

    missing: bool
    error: str = ""


#: Image configs larger than this are not read (for a platform, a creation time).
MAX_CONFIG_SIZE = 1024 * 1024
T = TypeVar("T")

#: digest → parsed manifest, or why it cannot be used
ManifestTable = dict["Digest", "Manifest | Unreadable"]


def is_manifest(entry: Manifest | Unreadable | None) -> bool:
    """Whether a table entry is a manifest distribution can serve (a known kind)."""
    return isinstance(entry, Manifest) and entry.kind is not ManifestKind.UNKNOWN


async def fetch_manifests(
    backend: Backend,
    inventory: Inventory,
    *,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[Digest, bytes], None] | None = None,
    known: ManifestTable | None = None,
) -> ManifestTable:
    """Read every manifest that marking may need; return them parsed.

    ``progress(done, total)`` is called after each batch with the manifests
    read so far and the number known to be needed so far (it grows when later
    rounds find more). ``observe(digest, data)`` sees every body read (``check``
    hashes them), before it is parsed and dropped.
    """
    table: ManifestTable = dict(known or {})
    wanted: set[Digest] = set()
    for repo in inventory.repositories.values():
        wanted.update(repo.revisions)
        for t in repo.tags.values():
            if t.current is not None:
                wanted.add(t.current)
            wanted.update(t.index)
    counts = [0, 0]  # done, total
    rounds = 0
    wanted = {d for d in wanted if d not in table or _unlisted_missing(table[d], inventory, d)}
    while wanted:
        rounds += 1
        await _read_round(backend, inventory.blobs, wanted, table, progress, observe, counts)
        fresh = [m for d in wanted if isinstance(m := table[d], Manifest)]
        wanted = {d for d in _named(fresh) if d not in table and _readable(inventory.blobs, d)}
        if rounds == 1:
            wanted.update(_layer_candidates(inventory, table))
    log.info("read %d manifests in %d round(s)", len(table), rounds)
    return table


async def read_manifests(
    backend: Backend,
    blobs: BlobTable,
    digests: set[Digest],
    table: ManifestTable,
    *,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[Digest, bytes], None] | None = None,
) -> list[Manifest]:
    """One round of :func:`fetch_manifests`: read and parse ``digests`` into ``table``.

    ``blobs`` says which are listed (an unlisted one is read once, to tell a
    manifest written since the listing from a missing one) and how large each
    is. Returns the manifests that parsed, for the next round: the digests they
    name (:func:`named_digests`). :mod:`registry_gc.distributed` runs the rounds
    itself, each worker for the digests of its blob prefixes.
    """
    counts = [0, 0]
    await _read_round(backend, blobs, digests, table, progress, observe, counts)
    return [m for d in digests if isinstance(m := table[d], Manifest)]


def named_digests(manifests: Iterable[Manifest]) -> Iterator[Digest]:
    """What these manifests name that may be a manifest: entries not plainly blobs, extras.

    A round of :func:`fetch_manifests` reads those of them that are listed and
    not read yet.
    """
    return _named(manifests)


def _unlisted_missing(entry: Manifest | Unreadable, inventory: Inventory, digest: Digest) -> bool:
    """A manifest missing before, which may have been written since: read it again."""
    return isinstance(entry, Unreadable) and entry.missing and digest not in inventory.blobs


def _readable(blobs: BlobTable, digest: Digest) -> bool:
    return digest in blobs and blobs.size(digest) <= MAX_MANIFEST_SIZE


def _named(manifests: Iterable[Manifest]) -> Iterator[Digest]:
    """What these manifests name that may be a manifest: entries not plainly blobs, extras."""
    for m in manifests:
        yield from (c.digest for c in m.children if not c.is_blob)
        yield from m.extra


def _layer_candidates(inventory: Inventory, table: ManifestTable) -> set[Digest]:
    """``_layers`` links whose blob no manifest names as a layer: 2.1.0 revisions, maybe.

    distribution resolves a manifest through ``_layers/<digest>/link`` as well as
    through its revision link (``manifestLinkPathFns``, because 2.1.0 linked
    manifests there). A link that only a manifest's layers name is a layer.
    """
    layers: set[Digest] = set()
    for m in table.values():
        if isinstance(m, Manifest):
            layers.update(m.blobs)
            layers.update(c.digest for c in m.children if c.is_blob)
    out: set[Digest] = set()
    blobs = inventory.blobs
    for repo in inventory.repositories.values():
        for d in repo.layers:
            if (
                d.algorithm == "sha256"
                and d not in table
                and d not in layers
                and d not in repo.revisions
                and _readable(blobs, d)
            ):
                out.add(d)
    return out


async def _read_round(  # noqa: PLR0917 - private helper, one call site
    backend: Backend,
    blobs: BlobTable,
    wanted: set[Digest],
    table: ManifestTable,
    progress: Callable[[int, int], None] | None,
    observe: Callable[[Digest, bytes], None] | None,
    counts: list[int],
) -> None:
    to_read: list[Digest] = []
    unlisted: set[Digest] = set()
    for d in sorted(wanted):
        if d not in blobs:
            # Not listed: missing, or written after the listing passed its prefix (a push
            # writes the manifest's blob before its link). One read tells which.
            unlisted.add(d)
            to_read.append(d)
        elif blobs.size(d) > MAX_MANIFEST_SIZE:
            table[d] = Unreadable(
                missing=False,
                error=(
                    f"manifest {d} is {blobs.size(d)} bytes, over distribution's limit of "
                    f"{MAX_MANIFEST_SIZE} bytes"
                ),
            )
        else:
            to_read.append(d)

    def consume(path: str, data: bytes | None) -> None:
        d = by_path[path]
        if data is None:
            # Listed a moment ago and gone now: someone else deletes in this store.
            table[d] = (
                Unreadable(missing=True)
                if d in unlisted
                else Unreadable(missing=False, error=f"{path} vanished while reading")
            )
            return
        if observe is not None:
            observe(d, data)
        try:
            table[d] = parse_manifest(data, digest=d)
        except ManifestError as e:
            table[d] = Unreadable(missing=False, error=str(e))

    def tick(n: int) -> None:
        counts[0] += n
        if progress is not None:
            progress(counts[0], counts[1])

    by_path = {blob_path(d): d for d in to_read}
    counts[1] += len(to_read)
    await read_each(
        backend,
        by_path,
        consume,
        size_of=lambda p: blobs.size(by_path[p]) if by_path[p] in blobs else MAX_MANIFEST_SIZE,
        tick=tick,
    )


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
