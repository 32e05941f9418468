"""A wrapper that lists and reads through another backend and refuses every delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from .._errors import ReadOnlyError
from ._base import SupportsMultipartUploads

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._base import Backend, DeleteResult, MultipartUpload, ObjectInfo

__all__ = ["ReadOnlyBackend"]


_Results: TypeAlias = "list[DeleteResult]"
_Uploads: TypeAlias = "list[MultipartUpload]"


class ReadOnlyBackend:
    """Delegates listing and reading; :meth:`delete` raises :class:`~registry_gc.ReadOnlyError`.

    Dry runs go through it, so a bug in planning can never become a deletion.
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
        return f"ReadOnlyBackend({self._inner!r})"

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend."""
        return self._inner.list(prefix)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the wrapped backend."""
        return await self._inner.read(paths)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Refuse."""
        first = paths[0] if paths else "(nothing)"
        msg = (
            f"read-only backend {self.url}: refusing to delete {len(paths)} path(s), first {first}"
        )
        raise ReadOnlyError(msg)

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Refuse."""
        first = dirs[0] if dirs else "(nothing)"
        msg = (
            f"read-only backend {self.url}: refusing to remove {len(dirs)} directories, "
            f"first {first}"
        )
        raise ReadOnlyError(msg)

    async def list_multipart_uploads(self, prefix: str) -> _Uploads:
        """List through the wrapped backend (none when it has no multipart uploads)."""
        if isinstance(self._inner, SupportsMultipartUploads):
            return await self._inner.list_multipart_uploads(prefix)
        return []

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Refuse."""
        msg = f"read-only backend {self.url}: refusing to abort {len(uploads)} multipart upload(s)"
        raise ReadOnlyError(msg)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self._inner.aclose()
