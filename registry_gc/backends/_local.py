"""A local directory, read with ``os.scandir`` (about 3x faster than fsspec's ``find``)."""

from __future__ import annotations

import asyncio
import datetime
import errno
import os
import stat
from typing import TYPE_CHECKING, TypeAlias

from .._errors import StorageError
from ._base import DeleteResult, ObjectInfo, Outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

__all__ = ["LocalBackend"]


_Results: TypeAlias = "list[DeleteResult]"

_UTC = datetime.timezone.utc
_LIST_CHUNK = 2000
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _scan(top: str, root_len: int) -> Iterator[list[ObjectInfo]]:
    """Walk ``top`` iteratively, never following symlinks, yielding chunks of entries."""
    chunk: list[ObjectInfo] = []
    stack = [top]
    fromts = datetime.datetime.fromtimestamp
    while stack:
        current = stack.pop()
        try:
            it = os.scandir(current)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            continue
        empty = True
        with it:
            for entry in it:
                empty = False
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                chunk.append(
                    ObjectInfo(entry.path[root_len:], st.st_size, fromts(st.st_mtime, _UTC))
                )
        if empty and current != top:
            st = os.stat(current, follow_symlinks=False)
            chunk.append(ObjectInfo(current[root_len:], 0, fromts(st.st_mtime, _UTC), is_dir=True))
        if len(chunk) >= _LIST_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_file(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            msg = f"{path} is a symbolic link; registry-gc never follows links in the store"
            raise StorageError(msg) from e
        msg = f"cannot read {path}: {e.strerror}"
        raise StorageError(msg) from e
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except IsADirectoryError as e:
        msg = f"cannot read {path}: it is a directory"
        raise StorageError(msg) from e


class LocalBackend:
    """The registry root as a local directory (the filesystem driver's ``rootdirectory``).

    Directories are walked with ``os.scandir``; symbolic links are listed as
    files (with ``lstat`` data), never followed, never read through, and a
    delete removes the link itself, never its target.
    """

    hierarchical = True

    def __init__(self, root: str | os.PathLike[str], *, concurrency: int = 32) -> None:
        self._root = os.path.abspath(os.fspath(root))
        self._sem_size = concurrency

    @property
    def url(self) -> str:
        """The absolute root directory."""
        return self._root

    def __repr__(self) -> str:
        return f"LocalBackend({self._root!r})"

    def _full(self, path: str) -> str:
        if path.startswith("/") or "\x00" in path:
            msg = f"refusing path {path!r}: backend paths are relative to the registry root"
            raise StorageError(msg)
        parts = path.split("/")
        if ".." in parts:
            msg = f"refusing path {path!r}: it leaves the registry root"
            raise StorageError(msg)
        return os.path.join(self._root, path)

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every file (and every empty directory) under ``prefix``."""
        top = self._full(prefix).rstrip("/")
        root_len = len(self._root) + 1
        gen = _scan(top, root_len)
        sentinel: list[ObjectInfo] = []
        while True:
            chunk = await asyncio.to_thread(next, gen, sentinel)
            if chunk is sentinel:
                return
            for info in chunk:
                yield info

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read files in a thread; a missing one maps to ``None``."""
        full = [self._full(p) for p in paths]

        def work() -> dict[str, bytes | None]:
            return {p: _read_file(f) for p, f in zip(paths, full, strict=True)}

        return await asyncio.to_thread(work)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Unlink each file; a missing one is ``MISSING``, an error ``FAILED``."""
        full = [self._full(p) for p in paths]

        def work() -> _Results:
            out = []
            for p, f in zip(paths, full, strict=True):
                try:
                    st = os.lstat(f)
                    if stat.S_ISDIR(st.st_mode):
                        out.append(DeleteResult(p, Outcome.FAILED, "is a directory"))
                        continue
                    os.unlink(f)
                except FileNotFoundError:
                    out.append(DeleteResult(p, Outcome.MISSING))
                except OSError as e:
                    out.append(DeleteResult(p, Outcome.FAILED, f"{type(e).__name__}: {e.strerror}"))
                else:
                    out.append(DeleteResult(p, Outcome.DELETED))
            return out

        return await asyncio.to_thread(work)

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """``rmdir`` each directory; non-empty ones stay."""
        full = [self._full(d.rstrip("/")) for d in dirs]

        def work() -> _Results:
            out = []
            for d, f in zip(dirs, full, strict=True):
                try:
                    if os.path.islink(f):
                        out.append(DeleteResult(d, Outcome.FAILED, "is a symbolic link"))
                        continue
                    os.rmdir(f)
                except FileNotFoundError:
                    out.append(DeleteResult(d, Outcome.MISSING))
                except OSError as e:
                    if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        out.append(DeleteResult(d, Outcome.NOT_EMPTY))
                    else:
                        out.append(
                            DeleteResult(d, Outcome.FAILED, f"{type(e).__name__}: {e.strerror}")
                        )
                else:
                    out.append(DeleteResult(d, Outcome.DELETED))
            return out

        return await asyncio.to_thread(work)

    async def aclose(self) -> None:
        """Nothing to release."""
