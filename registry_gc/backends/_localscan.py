"""Listing a local registry tree fast: threads, columns, and no directory listed for one file.

:meth:`LocalBackend.list_batches <registry_gc.backends.LocalBackend.list_batches>`.
A registry keeps nearly every file alone in a directory of its own:
``blobs/sha256/ab/<hex>/data``, ``_layers/sha256/<hex>/link``. Listing each
of those directories (open, read, close) costs three system calls and a
Python iterator per file; here the directory that holds them (``ab/``,
``sha256/``) is listed, and each file is looked at with one ``lstat`` of
``<hex>/data`` or ``<hex>/link``, which also gives its size and time. When
that file is missing or is not a regular file (a link, a directory), the
directory is listed after all, so nothing the registry wrote goes unseen; a
file *beside* ``data`` or ``link`` does (the registry writes none).

Threads list directories from a shared queue, and the results go to the
event loop in batches of a few thousand objects, as columns
(:class:`~registry_gc.backends.ListedBatch`). The walk starts with one
thread and starts more (up to :data:`THREADS`) only while the disk is what it
waits for: a directory listed slower than :data:`SLOW_PER_ENTRY` per entry
while the process is reading from storage (``read_bytes`` of
``/proc/self/io`` grew). ``os.scandir`` and ``lstat`` release the GIL, so
threads overlap the waits of a cold cache (50k store, cold: 9.3 s with one
thread, 7.2 s with four; the 1M store's dry run, cold, 165 s with at most
four, 124 s with eight, 126-135 s with sixteen, 143 s with thirty-two); on a
warm cache there is nothing to overlap and the threads only take the GIL from
each other (1.2 s with one thread, 3.8 s with four).

Symbolic links get the rules of the plain walk (``_local._Tree``): followed
only while they stay inside the root and outside ``docker/registry/v2``,
refused otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import stat
import threading
import time
from array import array
from typing import TYPE_CHECKING, Any, Final

from ..layout import BLOBS_PREFIX, REPOSITORIES_PREFIX
from ._base import UNKNOWN_TIME, ListedBatch

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    from ._local import _Tree

__all__ = ["NOT_LOOKED", "STAT_THREADS", "THREADS", "list_batches", "stat_files"]

#: Threads listing directories at once, at most (more only while the disk is read).
THREADS: Final = 8
#: Threads of :func:`stat_files` (started at once, whatever the cache holds).
STAT_THREADS: Final = 4
#: Seconds per entry above which a directory's listing counts as slow (a warm
#: cache lists an entry in 2-10 µs, a cold one in 50-100 µs or more).
SLOW_PER_ENTRY: Final = 30e-6
#: Seconds between two looks at the process's reads, at least.
_LOOK_EVERY: Final = 0.01
#: Objects handed to the event loop at once (about).
_CHUNK: Final = 4000
#: Chunks waiting for the event loop, at most (then the threads wait).
_QUEUED_CHUNKS: Final = 16
_UNKNOWN: Final = UNKNOWN_TIME.timestamp()
#: Modification times a ``datetime`` can hold (others are unknown: see ``_local._modified``).
_MIN_TIME: Final = -62135596800.0
_MAX_TIME: Final = 253402300799.0
_DIGEST_HEX: Final = re.compile(r"[0-9a-f]{64}(?:[0-9a-f]{32}(?:[0-9a-f]{32})?)?")
#: What each thread puts last.
_DONE: Final = object()
#: A file listed by name alone: its size and time were not looked at.
NOT_LOOKED: Final = object()


def leaf_file(logical: str) -> str | None:
    """The one file each digest-named directory under ``logical`` holds, if it holds one.

    ``logical`` is a directory path relative to the root: ``…/blobs/<alg>/<xx>``
    holds ``<hex>/data``; a repository's ``_layers/<alg>`` and its tags'
    ``index/<alg>`` hold ``<hex>/link``. Revisions do not qualify: legacy
    registries keep ``signatures/`` beside their ``link``.
    """
    if logical.startswith(BLOBS_PREFIX):
        return "data" if logical.count("/", len(BLOBS_PREFIX)) == 1 else None
    if not logical.startswith(REPOSITORIES_PREFIX):
        return None
    parts = logical[len(REPOSITORIES_PREFIX) :].split("/")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            rest = parts[i:]
            if i and len(rest) == 2 and rest[0] == "_layers":
                return "link"
            if i and len(rest) == 5 and rest[:2] == ["_manifests", "tags"] and rest[3] == "index":
                return "link"
            return None
    return None


def _disk_reads() -> int | None:
    """Bytes this process made the kernel read from storage (``/proc/self/io``), if known."""
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"read_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _time(mtime: float) -> float:
    return mtime if _MIN_TIME <= mtime <= _MAX_TIME else _UNKNOWN


class _Walk:
    """The shared state of one threaded listing."""

    def __init__(self, tree: _Tree, top: str, threads: int, *, names_only: bool = False) -> None:
        self.tree = tree
        #: list names alone: no ``lstat`` of a digest directory's file, no ``stat`` of a file
        self.names_only = names_only
        self.root_len = tree.root_len
        self.work: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.out: queue.Queue[Any] = queue.Queue(_QUEUED_CHUNKS)
        self.lock = threading.Lock()
        self.pending = 1
        #: threads at most, and started so far (more start only until ``finished``)
        self.threads = threads
        self.started = 0
        self.finished = False
        self.stopped = False
        self.reads = _disk_reads()
        self.next_look = 0.0
        self.seen = {os.path.realpath(top)}
        self.work.put((top, top))

    def start(self, n: int = 1) -> None:
        """Start ``n`` more listing threads (fewer when :attr:`threads` are running)."""
        with self.lock:
            if self.finished:
                return
            n = min(n, self.threads - self.started)
            self.started += n
        for _ in range(n):
            threading.Thread(target=self.run, name="registry-gc-list", daemon=True).start()

    def grow(self, seconds: float, entries: int) -> None:
        """Start another thread when a listing was slow because the disk was being read."""
        if self.started >= self.threads or seconds < SLOW_PER_ENTRY * max(entries, 1):
            return
        now = time.monotonic()
        with self.lock:
            if now < self.next_look:
                return
            self.next_look = now + _LOOK_EVERY
            reads = _disk_reads()
            if reads is not None and self.reads is not None and reads <= self.reads:
                return  # slow, but not waiting for the disk (another process has the CPU)
            self.reads = reads
        self.start()

    def put(self, item: object) -> None:
        """Hand ``item`` to the consumer, unless it stopped listening."""
        while not self.stopped:
            try:
                self.out.put(item, timeout=0.1)
            except queue.Full:
                continue
            return

    def stop(self) -> None:
        """Make every thread return soon, whatever is left (the consumer stopped listening)."""
        self.stopped = True
        self._finish()

    def _finish(self) -> None:
        """Start no more threads, and wake each one started so that it returns."""
        with self.lock:
            self.finished = True
            started = self.started
        for _ in range(started):
            self.work.put(None)

    def run(self) -> None:
        """One thread: list directories until none is left, then put :data:`_DONE`."""
        chunk: list[ListedBatch] = []
        size = 0
        try:
            while not self.stopped:
                item = self._next(chunk)
                if item is None:
                    break
                if not chunk:
                    size = 0  # handed over by _next
                batch = self._one(*item)
                if batch is not None:
                    chunk.append(batch)
                    size += len(batch.names) + len(batch.empty_dirs)
                    if size >= _CHUNK:
                        self.put(chunk)
                        chunk, size = [], 0
            if chunk:
                self.put(chunk)
            self.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self.put(e)

    def _next(self, chunk: list[ListedBatch]) -> tuple[str, str] | None:
        """The next directory to list; hands ``chunk`` over (and empties it) before waiting."""
        try:
            return self.work.get_nowait()
        except queue.Empty:
            pass
        if chunk:
            self.put(list(chunk))
            chunk.clear()
        return self.work.get()

    def _one(self, current: str, logical: str) -> ListedBatch | None:
        """List one directory, queue its subdirectories, and end the walk after the last one."""
        began = time.perf_counter()
        batch, below = self.list_dir(current, logical)
        if self.started < self.threads:
            entries = len(below) + (0 if batch is None else len(batch.names))
            self.grow(time.perf_counter() - began, entries)
        # Count the subdirectories before queueing them: a thread that took one
        # and finished it before this count would otherwise see pending reach 0
        # and end the walk with directories still unlisted.
        with self.lock:
            self.pending += len(below) - 1
            done = self.pending == 0
        for sub in below:
            self.work.put(sub)
        if done:
            self._finish()
        return batch

    def _leaf(self, entry: os.DirEntry[str], leaf: str) -> Any:  # noqa: ANN401
        """The stat of ``entry/leaf`` when it is a regular file (a digest directory's one file).

        Listing names alone, ``NOT_LOOKED`` instead: the file is taken to be
        there, unseen (what a names-only listing trusts and the caller verifies).
        """
        if not _DIGEST_HEX.fullmatch(entry.name):
            return None
        if self.names_only:
            return NOT_LOOKED
        try:
            st = os.lstat(f"{entry.path}/{leaf}")
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def _file(self, entry: os.DirEntry[str], logical: str, below: list[tuple[str, str]]) -> Any:  # noqa: ANN401
        """The stat of a file entry (``None``: gone, or a link to a directory, queued)."""
        if entry.is_symlink():
            with self.lock:
                stack: list[tuple[str, str]] = []
                st = self.tree.follow(entry, f"{logical}/{entry.name}", stack, self.seen)
            below.extend(stack)
            return st
        if self.names_only:
            return NOT_LOOKED
        try:
            return entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None  # gone since scandir saw it

    def list_dir(
        self, current: str, logical: str
    ) -> tuple[ListedBatch | None, list[tuple[str, str]]]:
        """The files of one directory, and its subdirectories to list."""
        try:
            it = os.scandir(current)
        except (FileNotFoundError, NotADirectoryError):
            return None, []
        names: list[str] = []
        sizes = array("q")
        mtimes = array("d")
        below: list[tuple[str, str]] = []
        relative = logical[self.root_len :]
        leaf = leaf_file(relative)
        empty = True
        with it:
            for entry in it:
                empty = False
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    st = self._leaf(entry, leaf) if leaf is not None else None
                    if st is None:
                        below.append((entry.path, f"{logical}/{name}"))
                        continue
                    name = f"{name}/{leaf}"
                else:
                    st = self._file(entry, logical, below)
                    if st is None:
                        continue
                names.append(name)
                if st is NOT_LOOKED:
                    sizes.append(-1)
                    mtimes.append(_UNKNOWN)
                else:
                    sizes.append(st.st_size)
                    mtimes.append(_time(st.st_mtime))
        empty_dirs: tuple[tuple[str, float], ...] = ()
        if empty:
            try:
                st = os.stat(current)
            except FileNotFoundError:
                return None, []  # removed since it was listed
            empty_dirs = ((relative, _time(st.st_mtime)),)
        if not names and not empty_dirs:
            return None, below
        return ListedBatch(relative, names, sizes, mtimes, empty_dirs), below


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
    return [
        None if st is None else (st.st_size, _time(st.st_mtime)) for part in results for st in part
    ]


async def list_batches(
    tree: _Tree, top: str, *, threads: int = THREADS, names_only: bool = False
) -> AsyncGenerator[list[ListedBatch], None]:
    """Every file (and empty directory) under the directory ``top``, in chunks of batches.

    ``names_only``: without a ``stat`` of any file that is not a symbolic link
    (its size is -1, its time unknown), and with every digest-named directory
    of ``blobs/``, ``_layers`` and tag ``index`` taken to hold its one file
    (``data``, ``link``) without looking (see :func:`list_names`).
    """
    walk = _Walk(tree, top, threads, names_only=names_only)
    walk.start()
    ended = 0
    try:
        while ended < walk.started:
            item = await asyncio.to_thread(walk.out.get)
            if item is _DONE:
                ended += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        if ended < walk.started:
            walk.stop()
            with contextlib.suppress(queue.Empty):
                while True:
                    walk.out.get_nowait()  # unblock a thread waiting to put
            # Wake a reader still waiting in a worker thread of the loop's executor.
            walk.out.put_nowait(_DONE)
