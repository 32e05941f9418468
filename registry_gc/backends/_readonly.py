"""A wrapper that lists and reads through another backend and refuses every delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from .._errors import ReadOnlyError
from ._wrapper import WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._base import DeleteResult, MultipartUpload

__all__ = ["ReadOnlyBackend"]


_Results: TypeAlias = "list[DeleteResult]"


class ReadOnlyBackend(WrappingBackend):
    """Delegates listing and reading; every delete raises :class:`~registry_gc.ReadOnlyError`.

    Dry runs go through it, so a bug in planning can never become a deletion.
    """

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

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Refuse."""
        msg = f"read-only backend {self.url}: refusing to abort {len(uploads)} multipart upload(s)"
        raise ReadOnlyError(msg)
