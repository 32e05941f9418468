"""A wrapper that counts, per operation, the objects it passes to another backend."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, TypeAlias, cast

from ._protocols import SupportsRequestCounts
from ._wrapper import WrappingBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._base import DeleteResult, ListedBatch, MultipartUpload, ObjectInfo
    from ._protocols import (
        Backend,
        ListingAhead,
        SupportsDigest,
        SupportsDirectories,
        SupportsListAhead,
        SupportsListBatches,
        SupportsMove,
        SupportsMultipartUploads,
        SupportsNamesOnly,
        SupportsWrite,
    )

__all__ = ["CountingBackend", "http_requests"]

#: A chunk of batches (named: ``list`` is also a method of every backend).
_Chunk: TypeAlias = "list[ListedBatch]"

_Results: TypeAlias = "list[DeleteResult]"
_Uploads: TypeAlias = "list[MultipartUpload]"


class CountingBackend(WrappingBackend):
    """Delegates every call and counts the objects of each operation in :attr:`objects`.

    Operations: ``list`` (objects listed), ``read`` (paths read or hashed),
    ``delete`` (paths deleted), ``remove_empty_dirs`` (directories),
    ``list_multipart_uploads`` (uploads found), ``abort_multipart_uploads``
    (uploads aborted), ``move`` (objects moved), ``write`` (objects
    written), ``list_names`` (objects listed by name alone), ``stat`` (paths
    looked at). Counted as asked, whatever the outcome; a listing begun ahead
    (``list_ahead``), as its objects are read.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        #: objects per operation
        self.objects: collections.Counter[str] = collections.Counter()

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend, counting."""
        n = 0
        try:
            async for info in self._inner.list(prefix):
                n += 1
                yield info
        finally:
            self.objects["list"] += n

    async def _counted(self, chunks: AsyncIterator[_Chunk], key: str) -> AsyncIterator[_Chunk]:
        """``chunks``, with every object (file or empty directory) in them counted as ``key``."""
        n = 0
        try:
            async for chunk in chunks:
                n += sum(len(b.names) + len(b.empty_dirs) for b in chunk)
                yield chunk
        finally:
            self.objects[key] += n

    def list_batches(self, prefix: str) -> AsyncIterator[_Chunk]:
        """List in batches through the wrapped backend, counting objects as ``list``."""
        inner = cast("SupportsListBatches", self._inner)
        return self._counted(inner.list_batches(prefix), "list")

    def list_names(self, prefix: str) -> AsyncIterator[_Chunk]:
        """List names through the wrapped backend, counting objects as ``list_names``."""
        inner = cast("SupportsNamesOnly", self._inner)
        return self._counted(inner.list_names(prefix), "list_names")

    def list_ahead(self, prefix: str, *, names_only: bool = False) -> ListingAhead:
        """Begin a listing through the wrapped backend, counting as ``list`` (or ``list_names``)."""
        inner = cast("SupportsListAhead", self._inner)
        key = "list_names" if names_only else "list"
        return _CountedAhead(self, inner.list_ahead(prefix, names_only=names_only), key)

    async def stat(self, paths: Sequence[str]) -> Mapping[str, tuple[int, float] | None]:
        """Look at objects through the wrapped backend, counting paths as ``stat``."""
        self.objects["stat"] += len(paths)
        inner = cast("SupportsNamesOnly", self._inner)
        return await inner.stat(paths)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the wrapped backend, counting."""
        self.objects["read"] += len(paths)
        return await self._inner.read(paths)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete through the wrapped backend, counting."""
        self.objects["delete"] += len(paths)
        return await self._inner.delete(paths)

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Remove directories through the wrapped backend, counting."""
        self.objects["remove_empty_dirs"] += len(dirs)
        inner = cast("SupportsDirectories", self._inner)
        return await inner.remove_empty_dirs(dirs)

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash through the wrapped backend, counting as reads."""
        self.objects["read"] += len(paths)
        inner = cast("SupportsDigest", self._inner)
        return await inner.digest(paths, algorithm)

    async def list_multipart_uploads(self, prefix: str) -> _Uploads:
        """List multipart uploads through the wrapped backend, counting."""
        inner = cast("SupportsMultipartUploads", self._inner)
        uploads = await inner.list_multipart_uploads(prefix)
        self.objects["list_multipart_uploads"] += len(uploads)
        return uploads

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Abort through the wrapped backend, counting."""
        self.objects["abort_multipart_uploads"] += len(uploads)
        inner = cast("SupportsMultipartUploads", self._inner)
        return await inner.abort_multipart_uploads(uploads)

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> _Results:
        """Move through the wrapped backend, counting."""
        self.objects["move"] += len(moves)
        inner = cast("SupportsMove", self._inner)
        return await inner.move(moves, sizes=sizes)

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Write through the wrapped backend, counting."""
        self.objects["write"] += len(items)
        inner = cast("SupportsWrite", self._inner)
        await inner.write(items)


class _CountedAhead:
    """A listing begun ahead whose objects a :class:`CountingBackend` counts as they are read."""

    def __init__(self, owner: CountingBackend, ahead: ListingAhead, key: str) -> None:
        self.owner = owner
        self.ahead = ahead
        self.key = key

    def __aiter__(self) -> AsyncIterator[_Chunk]:
        return self.owner._counted(aiter(self.ahead), self.key)  # noqa: SLF001 - its owner's

    async def aclose(self) -> None:
        await self.ahead.aclose()


def http_requests(backend: Backend) -> dict[str, int] | None:
    """HTTP requests by operation, when ``backend`` counts them (S3, GCS, Azure), else ``None``.

    Wrappers forward :class:`~registry_gc.backends.SupportsRequestCounts`, so
    ``backend`` may be wrapped any number of times.
    """
    if isinstance(backend, SupportsRequestCounts):
        return dict(backend.request_counts)
    return None
