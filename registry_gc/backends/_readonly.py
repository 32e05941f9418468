"""A wrapper that lists and reads through another backend and refuses every change."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from .._errors import ReadOnlyError
from ._wrapper import WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._base import DeleteResult, MultipartUpload

__all__ = ["ReadOnlyBackend"]


_Results: TypeAlias = "list[DeleteResult]"


class ReadOnlyBackend(WrappingBackend):
    """Delegates listing and reading; every change raises :class:`~registry_gc.ReadOnlyError`.

    ``delete``, and ``remove_empty_dirs``, ``abort_multipart_uploads``,
    ``move`` and ``write`` where the wrapped backend has them, refuse
    whatever the wrapped backend is. Dry runs go through it, so a bug in
    planning can never become a deletion, a move or a write.
    """

    def _refuse(self, what: str, paths: Sequence[str]) -> ReadOnlyError:
        first = paths[0] if paths else None
        shown = first if first is not None else "(nothing)"
        msg = f"read-only backend {self.url}: refusing to {what}, first {shown}"
        return ReadOnlyError(msg, path=first)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Refuse."""
        raise self._refuse(f"delete {len(paths)} path(s)", paths)

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Refuse (present when the wrapped backend has directories)."""
        raise self._refuse(f"remove {len(dirs)} directories", dirs)

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Refuse (present when the wrapped backend has multipart uploads)."""
        raise self._refuse(f"abort {len(uploads)} multipart upload(s)", [u.key for u in uploads])

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> _Results:
        """Refuse (present when the wrapped backend moves objects)."""
        del sizes
        raise self._refuse(f"move {len(moves)} object(s)", [src for src, _ in moves])

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Refuse (present when the wrapped backend writes objects)."""
        raise self._refuse(f"write {len(items)} object(s)", list(items))
