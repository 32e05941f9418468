"""Read and parse the manifests the mark phase needs, concurrently, once each.

Manifests are blobs, so a digest is read once however many repositories hold
it. Every revision and every tag target is read (referrers can only be found
by reading their ``subject``); then index children that are not revisions
anywhere, until nothing new turns up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import attrs

from . import _sync
from ._errors import ManifestError
from .layout import blob_path
from .manifests import MAX_MANIFEST_SIZE, Manifest, parse_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .backends import Backend
    from .inventory import Inventory
    from .layout import Digest

__all__ = ["ManifestTable", "Unreadable", "fetch_manifests", "load_manifests"]

log = logging.getLogger(__name__)

#: Manifests asked of the backend in one ``read`` call.
READ_BATCH = 256
#: ``read`` calls in flight at once (the backend bounds its own requests).
PARALLEL_BATCHES = 8


@attrs.frozen
class Unreadable:
    """A manifest that could not be used: its blob is missing, or it does not parse.

    ``missing`` is ``True`` when ``blobs/…/data`` does not exist (a dangling
    reference); otherwise ``error`` says why it cannot be parsed. The mark
    phase names the repository when it reports it.
    """

    missing: bool
    error: str = ""


#: digest → parsed manifest, or why it cannot be used
ManifestTable = dict["Digest", "Manifest | Unreadable"]


async def fetch_manifests(
    backend: Backend,
    inventory: Inventory,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ManifestTable:
    """Read every manifest that marking may need; return them parsed.

    ``progress(done, total)`` is called after each batch with the manifests
    read so far and the number known to be needed so far (it grows when index
    children turn up that no repository holds a revision of).
    """
    table: ManifestTable = {}
    wanted: set[Digest] = set()
    for repo in inventory.repositories.values():
        wanted.update(repo.revisions)
        wanted.update(t.current for t in repo.tags.values() if t.current is not None)
    sem = asyncio.Semaphore(PARALLEL_BATCHES)
    counts = [0, 0]  # done, total
    rounds = 0
    while wanted:
        rounds += 1
        await _read_round(backend, inventory, wanted, table, sem, progress, counts)
        wanted = {
            child.digest
            for m in _new_indexes(table, wanted)
            for child in m.children
            if child.digest not in table
        }
    log.info("read %d manifests in %d round(s)", len(table), rounds)
    return table


def _new_indexes(table: ManifestTable, digests: Iterable[Digest]) -> list[Manifest]:
    out = []
    for d in digests:
        m = table.get(d)
        if isinstance(m, Manifest) and m.children:
            out.append(m)
    return out


async def _read_round(  # noqa: PLR0917 - private helper, one call site
    backend: Backend,
    inventory: Inventory,
    wanted: set[Digest],
    table: ManifestTable,
    sem: asyncio.Semaphore,
    progress: Callable[[int, int], None] | None,
    counts: list[int],
) -> None:
    blobs = inventory.blobs
    to_read: list[Digest] = []
    for d in sorted(wanted):
        if d not in blobs:
            table[d] = Unreadable(missing=True)
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

    async def batch(digests: list[Digest]) -> None:
        async with sem:
            got = await backend.read([blob_path(d) for d in digests])
        for d in digests:
            data = got.get(blob_path(d))
            if data is None:
                # Listed a moment ago, gone now: someone else deletes in this store.
                table[d] = Unreadable(missing=False, error=f"{blob_path(d)} vanished while reading")
                continue
            try:
                table[d] = parse_manifest(data, digest=d)
            except ManifestError as e:
                table[d] = Unreadable(missing=False, error=str(e))
        counts[0] += len(digests)
        if progress is not None:
            progress(counts[0], counts[1])

    counts[1] += len(to_read)
    chunks = [to_read[i : i + READ_BATCH] for i in range(0, len(to_read), READ_BATCH)]
    await asyncio.gather(*(batch(c) for c in chunks))


def load_manifests(backend: Backend, inventory: Inventory) -> ManifestTable:
    """Read every manifest that marking may need (synchronous :func:`fetch_manifests`)."""
    return _sync.run(fetch_manifests(backend, inventory))
