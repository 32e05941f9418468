"""A wrapper that counts, per operation, the objects it passes to another backend."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, TypeAlias

from ._hashing import digest_paths
from ._wrapper import WrappingBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._base import Backend, DeleteResult, MultipartUpload, ObjectInfo

__all__ = ["CountingBackend", "http_requests"]

_Results: TypeAlias = "list[DeleteResult]"
_Uploads: TypeAlias = "list[MultipartUpload]"


class CountingBackend(WrappingBackend):
    """Delegates every call and counts the objects of each operation in :attr:`objects`.

    Operations: ``list`` (objects listed), ``read`` (paths read), ``delete``
    (paths deleted), ``remove_empty_dirs`` (directories), ``list_multipart_uploads``
    (uploads found), ``abort_multipart_uploads`` (uploads aborted). Counted as
    asked, whatever the outcome.
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
        return await self._inner.remove_empty_dirs(dirs)

    async def list_multipart_uploads(self, prefix: str) -> _Uploads:
        """List multipart uploads through the wrapped backend, counting."""
        uploads = await super().list_multipart_uploads(prefix)
        self.objects["list_multipart_uploads"] += len(uploads)
        return uploads

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Abort through the wrapped backend, counting."""
        self.objects["abort_multipart_uploads"] += len(uploads)
        return await super().abort_multipart_uploads(uploads)

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash through the wrapped backend (streaming when it can), counting as reads."""
        self.objects["read"] += len(paths)
        return await digest_paths(self._inner, paths, algorithm)


def http_requests(backend: Backend) -> dict[str, int] | None:
    """HTTP requests by API operation, from the innermost backend that counts them (S3).

    ``None`` when no backend in the chain of wrappers counts requests.
    """
    current: object = backend
    while current is not None:
        counts = getattr(current, "request_counts", None)
        if isinstance(counts, collections.Counter):
            return dict(counts)
        current = getattr(current, "inner", None)
    return None
