"""Any fsspec filesystem (memory, GCS, Azure, SFTP, …) through its synchronous API.

The generic path: listing with ``find(detail=True)``, reads with ``cat``,
deletes, moves (copy, check, delete) and writes one file at a time, each run
in a worker thread. Storage-specific backends (local disk, S3) do better
where it matters.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from .._errors import StorageError
from ._base import UNKNOWN_TIME, DeleteResult, ObjectInfo, Outcome
from ._hashing import CHUNK_SIZE, new_hash
from ._moving import checked_moves, kept_both
from ._objectstore import run_pool
from ._paths import checked_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    import fsspec

__all__ = ["FsspecBackend", "modified_of"]


_Results: TypeAlias = "list[DeleteResult]"

_UTC = datetime.timezone.utc
# Info keys that carry a modification time, by filesystem: s3fs, local, gcsfs,
# adlfs, memory (which only has ``created``).
_TIME_KEYS = ("LastModified", "mtime", "updated", "last_modified", "modified", "created")


def _to_utc(value: object) -> datetime.datetime | None:
    if isinstance(value, str) and value:
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, _UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def modified_of(info: Mapping[str, Any]) -> datetime.datetime | None:
    """The modification time in an fsspec info dict, as aware UTC, or ``None``."""
    for key in _TIME_KEYS:
        if key in info:
            value = _to_utc(info[key])
            if value is not None:
                return value
    return None


class FsspecBackend:
    """A registry root on any fsspec filesystem.

    >>> import fsspec
    >>> backend = FsspecBackend(fsspec.filesystem("memory"), "/my-registry")
    >>> backend.url
    'memory:///my-registry'

    It hashes objects while streaming them
    (:class:`~registry_gc.backends.SupportsDigest`), moves them
    (:class:`~registry_gc.backends.SupportsMove`: copy, compare sizes, delete)
    and writes them (:class:`~registry_gc.backends.SupportsWrite`). It has no
    directories of its own, even on a filesystem that does: what registry-gc
    deletes there, it deletes file by file.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, concurrency: int = 16) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._concurrency = concurrency
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._proto = proto

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The underlying filesystem."""
        return self._fs

    @property
    def url(self) -> str:
        """``protocol://root``, without credentials."""
        return f"{self._proto}://{self._root}"

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"

    def _full(self, path: str, *, prefix: bool = False) -> str:
        path = checked_path(path, prefix=prefix)
        return f"{self._root}/{path}" if self._root else path

    def _rel(self, full: str) -> str:
        full = full.lstrip("/") if not self._root.startswith("/") else full
        root = self._root
        if root and full.startswith(root + "/"):
            return full[len(root) + 1 :]
        return full

    def _modified(self, name: str) -> datetime.datetime:
        """Ask the filesystem for a time the listing lacked; unknown counts as young."""
        try:
            return _to_utc(self._fs.modified(name)) or UNKNOWN_TIME
        except (NotImplementedError, OSError, ValueError, TypeError):
            return UNKNOWN_TIME

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List with one ``find(detail=True)``; directory entries are dropped."""
        full = self._full(prefix, prefix=True).rstrip("/")

        def work() -> list[ObjectInfo]:
            try:
                found = self._fs.find(full, detail=True)
            except FileNotFoundError:
                return []
            out = []
            for name, info in found.items():
                if info.get("type") == "directory" or name.endswith("/"):
                    continue
                modified = modified_of(info) or self._modified(name)
                out.append(ObjectInfo(self._rel(name), int(info.get("size") or 0), modified))
            return out

        for info in await asyncio.to_thread(work):
            yield info

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read with ``cat``; missing objects map to ``None``."""
        if not paths:
            return {}
        full = [self._full(p) for p in paths]

        def work() -> dict[str, bytes | None]:
            got = self._fs.cat(full, on_error="return")
            out: dict[str, bytes | None] = {}
            for p, f in zip(paths, full, strict=True):
                value = got.get(f)
                if value is None:
                    value = got.get(self._fs._strip_protocol(f))  # noqa: SLF001
                if isinstance(value, FileNotFoundError):
                    out[p] = None
                elif isinstance(value, BaseException):
                    msg = f"cannot read {self.url}/{p}: {type(value).__name__}: {value}"
                    raise StorageError(msg, path=p) from value
                elif value is None:
                    out[p] = None
                else:
                    out[p] = bytes(value)
            return out

        return await asyncio.to_thread(work)

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash objects through ``fs.open`` in 1 MiB chunks (the ``SupportsDigest`` capability).

        Up to ``concurrency`` objects at a time, each in bounded memory.
        """
        sem = asyncio.Semaphore(self._concurrency)
        full = {p: self._full(p) for p in paths}

        def one(path: str) -> str | None:
            h = new_hash(algorithm)
            try:
                with self._fs.open(full[path], "rb") as f:
                    while chunk := f.read(CHUNK_SIZE):
                        h.update(chunk)
            except FileNotFoundError:
                return None
            except StorageError:
                raise
            except Exception as e:
                msg = f"cannot read {self.url}/{path}: {type(e).__name__}: {e}"
                raise StorageError(msg, path=path) from e
            return h.hexdigest()

        async def run(path: str) -> tuple[str, str | None]:
            async with sem:
                return path, await asyncio.to_thread(one, path)

        return dict(await asyncio.gather(*(run(p) for p in paths)))

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete file by file, up to ``concurrency`` at a time.

        A path outside the root refuses the whole call before anything is deleted.
        """
        sem = asyncio.Semaphore(self._concurrency)
        full = {p: self._full(p) for p in paths}

        def one(path: str) -> DeleteResult:
            try:
                self._fs.rm_file(full[path])
            except FileNotFoundError:
                return DeleteResult(path, Outcome.MISSING)
            except Exception as e:  # noqa: BLE001 - every failure is reported, never dropped
                return DeleteResult(path, Outcome.FAILED, f"{type(e).__name__}: {e}")
            return DeleteResult(path, Outcome.DELETED)

        async def run(path: str) -> DeleteResult:
            async with sem:
                return await asyncio.to_thread(one, path)

        return list(await asyncio.gather(*(run(p) for p in paths)))

    def _with_parent(self, full: str, act: Callable[[], object]) -> None:
        """``act()``; again after creating ``full``'s parent, when that is what it lacked.

        Object stores need no parents; a filesystem with directories may.
        """
        try:
            act()
        except FileNotFoundError:
            self._fs.makedirs(self._fs._parent(full), exist_ok=True)  # noqa: SLF001
            act()

    def _source_info(self, src: str, full_src: str) -> Mapping[str, Any] | DeleteResult:
        """The ``info`` of the file to move, or its ``MISSING``/``FAILED`` result.

        A directory is ``FAILED``: only objects move.
        """
        try:
            info: Mapping[str, Any] = self._fs.info(full_src)
        except FileNotFoundError:
            return DeleteResult(src, Outcome.MISSING)
        except Exception as e:  # noqa: BLE001 - every failure is reported, never dropped
            return DeleteResult(src, Outcome.FAILED, f"{type(e).__name__}: {e}")
        if info.get("type") == "directory":
            return DeleteResult(src, Outcome.FAILED, f"{src} is a directory: only objects move")
        return info

    def _copy_checked(
        self, src: str, dst: str, full_src: str, full_dst: str, info: Mapping[str, Any]
    ) -> DeleteResult | None:
        """Copy ``src`` (``info``) to ``dst`` and compare their sizes.

        ``None`` when the copy is whole, else the ``MISSING``/``FAILED``
        result, the source left as it was.
        """
        try:
            self._with_parent(full_dst, lambda: self._fs.cp_file(full_src, full_dst))
            copied = self._fs.info(full_dst).get("size")
        except Exception as e:  # noqa: BLE001 - every failure is reported, never dropped
            if isinstance(e, FileNotFoundError) and not self._fs.exists(full_src):
                return DeleteResult(src, Outcome.MISSING)  # gone since it was looked at
            return DeleteResult(src, Outcome.FAILED, f"{type(e).__name__}: {e}")
        size = info.get("size")
        if copied is None or size is None or int(copied) != int(size):
            msg = f"the copy at {dst} has {copied} bytes, the source {size}: source kept"
            return DeleteResult(src, Outcome.FAILED, msg)
        return None

    def _delete_copied(self, src: str, dst: str, full_src: str) -> DeleteResult:
        """Delete ``src`` once its copy at ``dst`` is whole."""
        try:
            self._fs.rm_file(full_src)
        except FileNotFoundError:
            pass  # gone meanwhile: the copy holds the bytes
        except Exception as e:  # noqa: BLE001 - every failure is reported, never dropped
            return kept_both(src, dst, f"{type(e).__name__}: {e}")
        return DeleteResult(src, Outcome.DELETED)

    def _move_one(self, src: str, dst: str) -> DeleteResult:
        """Copy ``src`` to ``dst``, compare their sizes, delete ``src``."""
        full_src, full_dst = self._full(src), self._full(dst)
        info = self._source_info(src, full_src)
        if isinstance(info, DeleteResult):
            return info
        failed = self._copy_checked(src, dst, full_src, full_dst, info)
        if failed is not None:
            return failed
        return self._delete_copied(src, dst, full_src)

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> _Results:
        """Move file by file, up to ``concurrency`` at a time (the ``SupportsMove`` capability).

        Each move is ``info`` (a missing source is ``MISSING``), ``cp_file``,
        ``info`` of the copy (its size must be the source's), then ``rm_file``
        of the source. ``sizes`` is not needed.
        """
        del sizes
        pairs = checked_moves(moves)
        for src, dst in pairs:
            self._full(src)
            self._full(dst)
        results: list[DeleteResult | None] = [None] * len(pairs)

        async def one(i: int) -> None:
            results[i] = await asyncio.to_thread(self._move_one, *pairs[i])

        if pairs:
            await run_pool(min(self._concurrency, len(pairs)), range(len(pairs)), one)
        return [r for r in results if r is not None]

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Write each object with ``pipe_file``, up to ``concurrency`` at a time.

        The first failure raises :class:`~registry_gc.StorageError`; a path
        outside the root refuses the whole call before anything is written.
        """
        full = {p: self._full(p) for p in items}

        def one(path: str) -> None:
            target = full[path]
            try:
                self._with_parent(target, lambda: self._fs.pipe_file(target, items[path]))
            except Exception as e:
                msg = f"cannot write {self.url}/{path}: {type(e).__name__}: {e}"
                raise StorageError(msg, path=path) from e

        async def run(path: str) -> None:
            await asyncio.to_thread(one, path)

        if full:
            await run_pool(min(self._concurrency, len(full)), full, run)

    async def aclose(self) -> None:
        """Nothing to release."""
