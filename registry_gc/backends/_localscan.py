"""Listing a local registry tree fast: threads, columns, and a helper process.

:meth:`LocalBackend.list_batches <registry_gc.backends.LocalBackend.list_batches>`
and :meth:`~registry_gc.backends.LocalBackend.list_ahead`. The walk itself
(threads, one ``lstat`` for a directory that holds one file, the rules for
symbolic links) is :mod:`registry_gc.backends._walk`; here it becomes
:class:`~registry_gc.backends.ListedBatch` chunks for the event loop, in
this process (:func:`list_batches`) or from a helper process
(:class:`AheadListing`).

Why a helper process: on a warm cache the walk is work for the CPU, and one
Python process uses one core while the reference ``garbage-collect`` uses
two. The helper lists ``repositories/`` while this process lists ``blobs/``
(which must come first: the blob index numbers every digest); its output waits,
up to :data:`AHEAD_CHUNKS` chunks, until the inventory reads it. On the 50k
store, warm, the inventory took 0.61 s this way against 1.14 s in one
process, and the dry run 0.47x the reference's time instead of 0.62x
(``docs/benchmarks.md``). When the helper cannot start (no Python executable to start,
``_walk.py`` not a file on disk), the listing runs in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import queue
import stat
import subprocess
import sys
import tempfile
import threading
from array import array
from typing import TYPE_CHECKING, Any, Final

from .._errors import StorageError
from . import _walk
from ._base import ListedBatch

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Sequence

__all__ = [
    "AHEAD_CHUNKS",
    "HELPER_ENV",
    "STAT_THREADS",
    "AheadListing",
    "list_batches",
    "refusal",
    "stat_files",
]

log = logging.getLogger(__name__)

#: Set to ``0``, the environment variable that keeps every local listing in this process.
HELPER_ENV: Final = "REGISTRY_GC_LIST_HELPER"
#: Threads of :func:`stat_files` (started at once, whatever the cache holds).
STAT_THREADS: Final = 4
#: Chunks of a :class:`AheadListing` held in this process before it is read, at most
#: (about 4,000 objects each; then the helper waits).
AHEAD_CHUNKS: Final = 32


def _outside_error(logical: str, target: str, root: str) -> StorageError:
    msg = (
        f"{logical} is a symbolic link to {target}, outside the registry root {root}: "
        "registry-gc never follows links out of the root, and cannot know what the registry "
        "serves through it, so it stops here and deletes nothing. Replace the link with what it "
        "points at, or run registry-gc on a root that contains it"
    )
    return StorageError(msg, path=logical)


def _alias_error(logical: str, target: str, root: str) -> StorageError:
    msg = (
        f"{logical} is a symbolic link to {target}, which is itself part of the registry tree "
        f"under {root}: the same data has two names, and deleting what one name no longer "
        "needs would delete what the other still does, so registry-gc stops here and deletes "
        "nothing. Replace the link with a copy of what it points at"
    )
    return StorageError(msg, path=logical)


def refusal(kind: str, logical: str, target: str, root: str) -> StorageError:
    """The error for a symbolic link the walk does not follow (:class:`_walk.Refused`)."""
    if kind == "outside":
        return _outside_error(logical, target, root)
    return _alias_error(logical, target, root)


def _batches(chunk: list[_walk.Batch]) -> list[ListedBatch]:
    return [ListedBatch(*batch) for batch in chunk]


def _stat_some(root: str, paths: Sequence[str]) -> list[os.stat_result | None]:
    """``lstat`` each path under ``root``: its result when it is a regular file, else ``None``."""
    out: list[os.stat_result | None] = []
    for path in paths:
        try:
            st = os.lstat(f"{root}/{path}")
        except (FileNotFoundError, NotADirectoryError):
            out.append(None)
            continue
        out.append(st if stat.S_ISREG(st.st_mode) else None)
    return out


async def stat_files(
    root: str, paths: Sequence[str], *, threads: int = STAT_THREADS
) -> list[tuple[int, float] | None]:
    """Size and time of each path under ``root`` that is a regular file; ``None`` for the others.

    ``paths`` are checked relative paths. ``lstat``, in ``threads`` threads: a
    symbolic link, a directory or nothing at all are ``None`` alike.
    """
    if not paths:
        return []
    step = -(-len(paths) // threads)
    parts = [paths[i : i + step] for i in range(0, len(paths), step)]
    results = await asyncio.gather(*(asyncio.to_thread(_stat_some, root, p) for p in parts))
    time_of = _walk.time_of
    stats = [st for part in results for st in part]
    return [None if st is None else (st.st_size, time_of(st.st_mtime)) for st in stats]


async def list_batches(
    tree: _walk.Tree, top: str, *, threads: int = _walk.THREADS, names_only: bool = False
) -> AsyncGenerator[list[ListedBatch], None]:
    """Every file (and empty directory) under the directory ``top``, in chunks of batches.

    Listed in this process. ``names_only``: without a ``stat`` of any file that
    is not a symbolic link (its size is -1, its time unknown), and with every
    digest-named directory of ``blobs/``, ``_layers`` and tag ``index`` taken
    to hold its one file (``data``, ``link``) without looking (see
    :meth:`LocalBackend.list_names <registry_gc.backends.LocalBackend.list_names>`).
    """
    walk = _walk.Walk(tree, top, threads, names_only=names_only)
    walk.start()
    ended = 0
    try:
        while ended < walk.started:
            item = await asyncio.to_thread(walk.out.get)
            if item is _walk.DONE:
                ended += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield _batches(item)
    finally:
        if ended < walk.started:
            walk.stop()
            with contextlib.suppress(queue.Empty):
                while True:
                    walk.out.get_nowait()  # unblock a thread waiting to put
            # Wake a reader still waiting in a worker thread of the loop's executor.
            walk.out.put_nowait(_walk.DONE)


def _helper_argv(root: str, top: str, *, names_only: bool) -> list[str] | None:
    """How to start the helper; ``None`` when it cannot be started here."""
    script = _walk.__file__
    if not sys.executable or not script or not os.path.isfile(script):
        return None
    name = os.path.basename(sys.executable).lower()
    if getattr(sys, "frozen", False) or not ("python" in name or "pypy" in name):
        return None  # an application embedding Python: its executable is not an interpreter
    argv = [sys.executable, "-I", "-S", script, root, top, "--fs-encoding", _walk.fs_encoding()]
    if names_only:
        argv.append("--names-only")
    return argv


#: What the reader thread puts last (after the helper's ``done`` frame, or instead of it).
_END: Final = object()


class AheadListing:
    """The listing of ``top`` by a helper process, begun at once, read when iterated.

    What :meth:`LocalBackend.list_ahead <registry_gc.backends.LocalBackend.list_ahead>`
    returns. A thread reads the helper's frames into a queue of at most
    :data:`AHEAD_CHUNKS` chunks; iterating yields them, and raises what the
    helper's walk raised (a link refused: :class:`StorageError`; an
    ``OSError`` as the walk in this process would raise it). A helper that
    ends before its ``done`` frame is a :class:`StorageError`: the listing is
    incomplete, and nothing may be decided on it. :meth:`aclose` stops the
    helper whatever it was doing. When the helper cannot be started, or
    decodes file names otherwise than this process (:attr:`unfit` says so),
    the listing is done in this process when iterated (:func:`list_batches`),
    as it is with ``helper`` false.
    """

    def __init__(
        self, tree: _walk.Tree, top: str, *, names_only: bool = False, helper: bool = True
    ) -> None:
        self.tree = tree
        self.top = top
        self.names_only = names_only
        self.queue: queue.Queue[Any] = queue.Queue(AHEAD_CHUNKS)
        self.closed = False
        self.proc: subprocess.Popen[bytes] | None = None
        #: why the helper left the listing to this process, when it did (``unfit``)
        self.unfit: str | None = None
        #: what the helper says on its standard error (a traceback if it fails), kept in a file
        #: so that however much it says never blocks it
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by aclose
        argv = _helper_argv(tree.root, top, names_only=names_only) if helper else None
        if argv is not None:
            try:
                self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, this package's file
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=self.stderr,
                )
            except OSError as e:
                log.debug("listing %s in this process: no helper process (%s)", top, e)
        if self.proc is None:
            self.stderr.close()
        if self.proc is not None:
            self.reader = threading.Thread(
                target=self._read, name="registry-gc-list-helper", daemon=True
            )
            self.reader.start()

    def _put(self, item: object) -> bool:
        """Queue ``item`` for the consumer; ``False`` once it stopped listening."""
        return _walk.hand_over(self.queue, item, lambda: self.closed)

    def _read(self) -> None:
        """The reader thread: the helper's frames, decoded, onto :attr:`queue`."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        try:
            while True:
                data = _walk.read_frame(stream)
                if data is None:
                    self._put(self._ended_early())
                    return
                # S302: the frames come from our own helper, through a pipe only it writes.
                frame = marshal.loads(data)  # noqa: S302
                if frame[0] == "chunk":
                    if not self._put(frame[1]):
                        return
                    continue
                self._put(frame)
                return
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which raises it
            msg = (
                f"listing {self.top}: what the helper process wrote could not be read "
                f"({type(e).__name__}: {e}), so nothing can be decided on it and nothing "
                "was deleted"
            )
            self._put(StorageError(msg, path=self.top[self.tree.root_len :]))
        finally:
            self._put(_END)

    def _ended_early(self) -> StorageError:
        """The error for a helper that stopped before its listing was complete."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self.stderr.seek(0)
        said = self.stderr.read(4000).decode(errors="replace").strip()
        msg = (
            f"the helper process listing {self.top} ended (exit code {code}) before the "
            "listing was complete, so nothing can be decided on it and nothing was deleted"
            + (f"; it said: {said}" if said else "")
            + f". Run again; if it recurs, set {HELPER_ENV}=0 (in Python: "
            "LocalBackend(root, helper_process=False)) to list in registry-gc's own process"
        )
        return StorageError(msg, path=self.top[self.tree.root_len :])

    def _error(self, frame: tuple[Any, ...]) -> BaseException:
        """The exception a frame other than ``chunk`` and ``done`` stands for."""
        kind = frame[0]
        if kind == "refused":
            return refusal(frame[1], frame[2], frame[3], self.tree.root)
        if kind == "oserror":
            return OSError(frame[1], frame[2], frame[3]) if frame[3] else OSError(*frame[1:3])
        return StorageError(f"listing {self.top} failed in the helper process: {frame[1]}")

    async def _here(self) -> AsyncIterator[list[ListedBatch]]:
        """The listing in this process (no helper, or one unfit to list)."""
        listing = list_batches(self.tree, self.top, names_only=self.names_only)
        async with contextlib.aclosing(listing) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _take(self) -> Any:  # noqa: ANN401 - a chunk, a frame, an exception or _END
        """The reader thread's next item (waited for in a thread when none is queued)."""
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            return await asyncio.to_thread(self.queue.get)

    async def _chunks(self) -> AsyncIterator[list[ListedBatch]]:
        if self.proc is None:
            async for chunk in self._here():
                yield chunk
            return
        while True:
            item = await self._take()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, tuple):
                if item[0] == "done":
                    return
                if item[0] != "unfit":
                    raise self._error(item)
                # Its first and only frame: nothing was yielded, list here instead.
                log.debug("listing %s in this process: %s", self.top, item[1])
                self.unfit = item[1]
                async for chunk in self._here():
                    yield chunk
                return
            yield [ListedBatch(d, n, _array("q", s), _array("d", m), e) for d, n, s, m, e in item]

    def __aiter__(self) -> AsyncIterator[list[ListedBatch]]:
        return self._chunks()

    async def aclose(self) -> None:
        """Stop the helper (if it still runs) and the reader thread; idempotent."""
        if self.closed:
            return
        self.closed = True
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait)
        await asyncio.to_thread(self.reader.join)
        if proc.stdout is not None:
            proc.stdout.close()
        self.stderr.close()


def _array(typecode: str, data: bytes) -> array[Any]:
    out = array(typecode)
    out.frombytes(data)
    return out
