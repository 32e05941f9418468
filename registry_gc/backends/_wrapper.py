"""A backend that passes every call to another: the base of wrapping backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from ._base import DeleteResult, Outcome, SupportsMultipartUploads

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._base import Backend, MultipartUpload, ObjectInfo

__all__ = ["WrappingBackend"]

_Results: TypeAlias = "list[DeleteResult]"
_Uploads: TypeAlias = "list[MultipartUpload]"


class WrappingBackend:
    """Delegates every call to ``inner``; subclasses override what they change.

    It always offers the multipart-upload capability: listing finds none, and
    aborting fails, when ``inner`` has no multipart uploads.
    """

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    @property
    def inner(self) -> Backend:
        """The wrapped backend."""
        return self._inner

    @property
    def url(self) -> str:
        """The wrapped backend's URL."""
        return self._inner.url

    @property
    def hierarchical(self) -> bool:
        """As the wrapped backend."""
        return self._inner.hierarchical

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend."""
        return self._inner.list(prefix)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the wrapped backend."""
        return await self._inner.read(paths)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete through the wrapped backend."""
        return await self._inner.delete(paths)

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Remove directories through the wrapped backend."""
        return await self._inner.remove_empty_dirs(dirs)

    async def list_multipart_uploads(self, prefix: str) -> _Uploads:
        """List through the wrapped backend (none when it has no multipart uploads)."""
        if isinstance(self._inner, SupportsMultipartUploads):
            return await self._inner.list_multipart_uploads(prefix)
        return []

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Abort through the wrapped backend."""
        if isinstance(self._inner, SupportsMultipartUploads):
            return await self._inner.abort_multipart_uploads(uploads)
        why = "the backend has no multipart uploads"
        return [DeleteResult(u.key, Outcome.FAILED, why) for u in uploads]

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self._inner.aclose()
