"""Listings that come from elsewhere — a first pass, an S3 Inventory — and fresh looks at blobs.

:class:`ListedBackend` lists objects listed already and reads through the
real store, so that :func:`~registry_gc.inventory.scan` builds a part's
inventory from them exactly as from a listing. :func:`look_again` and
:func:`recheck` look at blobs in the store itself, now: an S3 Inventory run
trusts its snapshot for nothing it deletes (see :mod:`registry_gc.s3inventory`).
"""

from __future__ import annotations

import array
import asyncio
import datetime
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ReadOnlyError
from ..layout import Digest, blob_path
from ..plan import Category, Kept

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

    from ..backends import Backend, DeleteResult, ObjectInfo
    from ..inventory import BlobTable
    from ..options import Cutoffs
    from ..plan import Deletion

__all__ = ["Columns", "ListedBackend", "look_again", "recheck"]

_UTC = datetime.timezone.utc
#: Fresh looks in flight at once.
LOOKS_IN_FLIGHT = 64
#: Keys one listing request returns (S3, GCS): a prefix is listed again, rather than its
#: candidates looked at one by one, when that takes fewer requests.
PAGE = 1000


@attrs.frozen
class Columns:
    """Listed objects, compactly: paths, sizes, modification times (seconds, UTC)."""

    paths: list[str] = attrs.Factory(list)
    sizes: array.array[int] = attrs.Factory(lambda: array.array("q"))
    mtimes: array.array[float] = attrs.Factory(lambda: array.array("d"))

    def append(self, path: str, size: int, mtime: float) -> None:
        """Add one object."""
        self.paths.append(path)
        self.sizes.append(size)
        self.mtimes.append(mtime)

    def __len__(self) -> int:
        return len(self.paths)


class ListedBackend:
    """Lists objects listed already; reads (links) through ``reader``; never deletes."""

    def __init__(self, objects: Iterable[ObjectInfo], reader: Backend) -> None:
        self._objects = list(objects)
        self._columns: list[Columns] = []
        self._reader = reader

    @classmethod
    def of_columns(cls, columns: Iterable[Columns], reader: Backend) -> ListedBackend:
        """Over objects held as :class:`Columns`."""
        listed = cls((), reader)
        listed._columns = list(columns)
        return listed

    @property
    def url(self) -> str:
        """The store the objects were listed from."""
        return self._reader.url

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the store."""
        return await self._reader.read(paths)

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Never: this lists what was listed elsewhere."""
        msg = f"{self.url}: a listing made elsewhere deletes nothing"
        raise ReadOnlyError(msg, path=paths[0] if paths else None)

    async def aclose(self) -> None:
        """Nothing to close (the store is closed by whoever opened it)."""

    # Last: in the class body, ``list`` shadows the builtin for the annotations after it.
    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """The objects under ``prefix`` (and the empty directory it is, if listed so)."""
        from ..backends import ObjectInfo  # noqa: PLC0415

        top = prefix.rstrip("/") + "/"
        for info in self._objects:
            if (info.path + "/").startswith(top):
                yield info
        for col in self._columns:
            for path, size, mtime in zip(col.paths, col.sizes, col.mtimes, strict=True):
                if path.startswith(top):
                    yield ObjectInfo(path, size, datetime.datetime.fromtimestamp(mtime, _UTC))


async def _bounded(items: Iterable[Any], work: Any) -> None:  # noqa: ANN401
    sem = asyncio.Semaphore(LOOKS_IN_FLIGHT)

    async def one(item: Any) -> None:  # noqa: ANN401
        async with sem:
            await work(item)

    await asyncio.gather(*(one(i) for i in items))


async def look_again(
    backend: Backend, digests: Iterable[Digest]
) -> dict[Digest, ObjectInfo | None]:
    """Each blob as the store has it now (``None``: not there): one listing of its directory."""
    out: dict[Digest, ObjectInfo | None] = {}

    async def one(digest: Digest) -> None:
        path = blob_path(digest)
        found = None
        async for info in backend.list(path.rpartition("/")[0]):
            if info.path == path:
                found = info
        out[digest] = found

    await _bounded(list(digests), one)
    return out


async def _now_in_store(
    backend: Backend, deletions: list[Deletion], snapshot: BlobTable
) -> dict[str, ObjectInfo]:
    """The blobs of ``deletions`` as the store has them now, by path (absent: gone)."""
    by_dir: dict[str, list[Deletion]] = defaultdict(list)
    for d in deletions:
        by_dir[d.paths[0].rsplit("/", 2)[0]].append(d)
    held: dict[str, int] = defaultdict(int)
    for digest in snapshot:
        directory = blob_path(digest).rsplit("/", 2)[0]
        if directory in by_dir:
            held[directory] += 1
    now: dict[str, ObjectInfo] = {}

    async def whole(directory: str) -> None:
        async for info in backend.list(directory):
            now[info.path] = info

    dense = {k for k, v in by_dir.items() if len(v) >= math.ceil(held[k] / PAGE)}
    sparse = [
        Digest._trusted(d.digest)  # noqa: SLF001 - a planned blob's digest
        for k, v in by_dir.items()
        if k not in dense
        for d in v
        if d.digest
    ]
    await _bounded(sorted(dense), whole)
    for info in (await look_again(backend, sparse)).values():
        if info is not None:
            now[info.path] = info
    return now


async def recheck(
    backend: Backend, deletions: list[Deletion], snapshot: BlobTable, cutoffs: Cutoffs
) -> tuple[list[Deletion], list[Kept], int]:
    """Blob deletions planned from a snapshot, checked against the store now.

    A blob gone since is dropped; one written since the grace cut-off (put
    again, or its timestamp renewed) is kept for the grace; the rest are
    deleted, with the size the store has now. Per ``blobs/<alg>/<xx>/``
    directory, whichever takes fewer requests: one listing of the directory
    (a request per :data:`PAGE` blobs the snapshot holds there), or one
    listing of each candidate's own directory.
    """
    now = await _now_in_store(backend, deletions, snapshot)
    keep: list[Deletion] = []
    kept: list[Kept] = []
    dropped = 0
    for d in deletions:
        info = now.get(d.paths[0])
        if info is None:
            dropped += 1
            continue
        mtime = info.modified.timestamp()
        if mtime > cutoffs.grace:
            kept.append(
                Kept(Category.BLOB, d.paths[0], cutoffs.now - mtime, info.size, None, d.digest)
            )
            dropped += 1
            continue
        keep.append(attrs.evolve(d, size=info.size))
    return keep, kept, dropped
