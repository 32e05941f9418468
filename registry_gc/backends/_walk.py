"""The walk of a local registry tree in threads, with the standard library alone.

What :mod:`registry_gc.backends._localscan` lists with, in this process or
in a helper process. The helper runs this file by its path (``python -I -S
_walk.py ROOT TOP``) and so imports nothing of registry-gc: importing the
package takes a quarter of a second, longer than a warm 50k-blob store's
``blobs/`` takes to list, and the helper is there to overlap that listing.
That is why this module repeats three facts of the layout (:data:`V2_PREFIX`
and the two below it; a test checks them against :mod:`registry_gc.layout`)
and raises :class:`Refused` rather than registry-gc's ``StorageError``.

A registry keeps nearly every file alone in a directory of its own:
``blobs/sha256/ab/<hex>/data``, ``_layers/sha256/<hex>/link``. Listing each
of those directories (open, read, close) costs three system calls and a
Python iterator per file; here the directory that holds them (``ab/``,
``sha256/``) is listed, and each file is looked at with one ``lstat`` of
``<hex>/data`` or ``<hex>/link``, which also gives its size and time. When
that file is missing or is not a regular file (a link, a directory), the
directory is listed after all, so nothing the registry wrote goes unseen; a
file *beside* ``data`` or ``link`` does (the registry writes none).

Threads list directories from a shared queue and put chunks of a few
thousand objects on :attr:`Walk.out`, each directory's files as columns: a
tuple ``(directory, names, sizes, mtimes, empty_dirs)``, what
:class:`~registry_gc.backends.ListedBatch` holds. The walk starts with one
thread and starts more (up to :data:`THREADS`) only while the disk is what it
waits for: a quarter or more of the directories listed slower than
:data:`SLOW_PER_ENTRY` per entry while the process reads from storage, a
kilobyte or more per directory (``read_bytes`` of ``/proc/self/io``; see
:meth:`Walk.grow`). A cache that lacks only a few pages (this machine's page
cache is reclaimed in the background) starts no thread: one read of 16 KiB
in a warm listing of ``repositories/`` used to start five, and the listing
took 0.72 s instead of 0.55 s. ``os.scandir`` and ``lstat`` release the GIL, so
threads overlap the waits of a cold cache (50k store, cold: 9.3 s with one
thread, 7.2 s with four; the 1M store's dry run, cold, 165 s with at most
four, 124 s with eight, 126-135 s with sixteen, 143 s with thirty-two); on a
warm cache there is nothing to overlap and the threads only take the GIL from
each other (1.2 s with one thread, 3.8 s with four).

Symbolic links (:meth:`Tree.follow`) are followed only while they stay
inside the root and outside ``docker/registry/v2``, refused otherwise.

The helper (:func:`main`) writes frames to its standard output: eight bytes
of length (little-endian), then a :mod:`marshal` payload: ``("chunk", [batch,
…])`` with each batch's sizes and times as the bytes of their arrays,
``("refused", kind, path, target)``, ``("oserror", errno, strerror,
filename)``, ``("error", text)``, and ``("done",)`` last when the whole tree
was listed; or ``("unfit", why)`` alone, when it decodes file names otherwise
than the process that started it (see :func:`main`).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import re
import signal
import stat
import sys
import threading
import time
from array import array
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

#: The registry's tree under its root (:data:`registry_gc.layout.V2_PREFIX`).
V2_PREFIX: Final = "docker/registry/v2/"
BLOBS_PREFIX: Final = V2_PREFIX + "blobs/"
REPOSITORIES_PREFIX: Final = V2_PREFIX + "repositories/"

#: Threads listing directories at once, at most (more only while the disk is read).
THREADS: Final = 8
#: Seconds per entry above which a directory's listing counts as slow (a warm
#: cache lists an entry in 2-10 µs, a cold one in 50-100 µs or more).
SLOW_PER_ENTRY: Final = 30e-6
#: Seconds between two looks at the process's reads, at least.
LOOK_EVERY: Final = 0.01
#: Listings a look judges, at least.
LOOK_AFTER: Final = 8
#: Bytes read from storage per listing, on average since the last look, for a slow
#: walk to count as waiting for the disk (a cold directory costs a block or more).
READ_PER_LISTING: Final = 1024
#: Objects put on :attr:`Walk.out` at once (about).
CHUNK: Final = 4000
#: Chunks waiting for the consumer, at most (then the threads wait).
QUEUED_CHUNKS: Final = 16
#: The timestamp of a time unknown (``UNKNOWN_TIME``, ``datetime.max`` in UTC).
UNKNOWN: Final = 253402300800.0
#: Modification times a ``datetime`` can hold (others are unknown).
_MIN_TIME: Final = -62135596800.0
_MAX_TIME: Final = 253402300799.0
_DIGEST_HEX: Final = re.compile(r"[0-9a-f]{64}(?:[0-9a-f]{32}(?:[0-9a-f]{32})?)?")
#: What each thread puts last.
DONE: Final = object()
#: A file listed by name alone: its size and time were not looked at.
NOT_LOOKED: Final = object()

#: One directory's files: ``(directory, names, sizes, mtimes, empty_dirs)``.
Batch = tuple[str, list[str], "array[int]", "array[float]", tuple[tuple[str, float], ...]]


class Refused(Exception):  # noqa: N818 - what happened, not an error class hierarchy
    """A symbolic link the walk does not follow: ``kind`` is ``outside`` or ``alias``.

    ``path`` is the link's path under the root, ``target`` where it leads.
    """

    def __init__(self, kind: str, path: str, target: str) -> None:
        super().__init__(kind, path, target)
        self.kind = kind
        self.path = path
        self.target = target


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or under it."""
    return path == root or path.startswith(root + os.sep)


def entry_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The entry's own stat; ``None`` when it was deleted since ``scandir`` saw it.

    (A running registry finishing an upload: not there any more, so not listed.)
    """
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None


class Tree:
    """The root a walk stays inside, and the rules for the symbolic links in it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.real_tree = os.path.join(self.real_root, V2_PREFIX.rstrip("/"))
        self.root_len = len(root) + 1

    def refuse(self, kind: str, path: str, target: str) -> Exception:
        """The error for a link not followed (a subclass gives its own)."""
        return Refused(kind, path, target)

    def follow(
        self, entry: os.DirEntry[str], path: str, stack: list[tuple[str, str]], seen: set[str]
    ) -> os.stat_result | None:
        """A symbolic link: the stat of the file to list, or ``None`` (a directory, pushed)."""
        target = os.path.realpath(entry.path)
        shown = path[self.root_len :]
        if not inside(target, self.real_root):
            raise self.refuse("outside", shown, target)
        if inside(target, self.real_tree) and os.path.lexists(target):
            raise self.refuse("alias", shown, target)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            # A dangling link: listed as what it is, a broken file (unless it went away).
            return entry_stat(entry)
        if not stat.S_ISDIR(st.st_mode):
            return st
        if target in seen:
            # A second link to a directory already walked (or a cycle): one
            # directory under two names.
            raise self.refuse("alias", shown, target)
        seen.add(target)
        stack.append((target, path))
        return None


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


def disk_reads() -> int | None:
    """Bytes this process made the kernel read from storage (``/proc/self/io``), if known."""
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"read_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def hand_over(q: queue.Queue[Any], item: object, stopped: Callable[[], bool]) -> bool:
    """Put ``item`` on ``q``, waiting while it is full; ``False`` once ``stopped()``."""
    while not stopped():
        try:
            q.put(item, timeout=0.1)
        except queue.Full:
            continue
        return True
    return False


def time_of(mtime: float) -> float:
    """A modification time, or :data:`UNKNOWN` when a ``datetime`` cannot hold it."""
    return mtime if _MIN_TIME <= mtime <= _MAX_TIME else UNKNOWN


class Walk:
    """The shared state of one threaded listing of ``top`` (a directory under ``tree``'s root).

    :meth:`start` it; then take from :attr:`out` until every thread started
    has put :data:`DONE`. A thread that fails puts its exception instead.
    """

    def __init__(self, tree: Tree, top: str, threads: int, *, names_only: bool = False) -> None:
        self.tree = tree
        #: list names alone: no ``lstat`` of a digest directory's file, no ``stat`` of a file
        self.names_only = names_only
        self.root_len = tree.root_len
        self.work: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.out: queue.Queue[Any] = queue.Queue(QUEUED_CHUNKS)
        self.lock = threading.Lock()
        self.pending = 1
        #: threads at most, and started so far (more start only until ``finished``)
        self.threads = threads
        self.started = 0
        self.finished = False
        self.stopped = False
        self.reads = disk_reads()
        self.next_look = 0.0
        #: listings since the last look, and how many of them were slow
        self.listed = 0
        self.slow = 0
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
        """Start another thread when listings are slow because the disk is being read.

        Judged at most every :data:`LOOK_EVERY` seconds, on the listings since
        the last look: at least :data:`LOOK_AFTER` of them, a quarter or more
        slow (over :data:`SLOW_PER_ENTRY` per entry), and :data:`READ_PER_LISTING`
        bytes or more read from storage per listing (``read_bytes`` of
        ``/proc/self/io``; where it is unknown, slowness alone decides). A cache
        that lacks a few pages makes a few listings slow and reads a few pages:
        no thread starts for that (they would only take the GIL from each other).
        """
        self.listed += 1
        if seconds < SLOW_PER_ENTRY * max(entries, 1):
            return
        self.slow += 1
        if self.listed < LOOK_AFTER:
            return
        now = time.monotonic()
        with self.lock:
            if now < self.next_look or self.listed < LOOK_AFTER:
                return
            self.next_look = now + LOOK_EVERY
            listed, slow = self.listed, self.slow
            self.listed = self.slow = 0
            reads = disk_reads()
            before, self.reads = self.reads, reads
            if slow * 4 < listed:
                return  # mostly fast: what is slow is not the disk's doing
            if (
                reads is not None
                and before is not None
                and reads - before < READ_PER_LISTING * listed
            ):
                return  # slow, but not waiting for the disk (another process has the CPU)
        self.start()

    def put(self, item: object) -> None:
        """Hand ``item`` to the consumer, unless it stopped listening."""
        hand_over(self.out, item, lambda: self.stopped)

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
        """One thread: list directories until none is left, then put :data:`DONE`."""
        chunk: list[Batch] = []
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
                    size += len(batch[1]) + len(batch[4])
                    if size >= CHUNK:
                        self.put(chunk)
                        chunk, size = [], 0
            if chunk:
                self.put(chunk)
            self.put(DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self.put(e)

    def _next(self, chunk: list[Batch]) -> tuple[str, str] | None:
        """The next directory to list; hands ``chunk`` over (and empties it) before waiting."""
        try:
            return self.work.get_nowait()
        except queue.Empty:
            pass
        if chunk:
            self.put(list(chunk))
            chunk.clear()
        return self.work.get()

    def _one(self, current: str, logical: str) -> Batch | None:
        """List one directory, queue its subdirectories, and end the walk after the last one."""
        began = time.perf_counter()
        batch, below = self.list_dir(current, logical)
        if self.started < self.threads:
            entries = len(below) + (0 if batch is None else len(batch[1]))
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

    def list_dir(self, current: str, logical: str) -> tuple[Batch | None, list[tuple[str, str]]]:
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
        # Outside a followed link the two paths are one string, shared: up to 231,185
        # directories wait to be listed at once in the 1M store's repositories/, and the
        # helper's peak RSS was 92 MB with one string each against 135 MB with two.
        same = current is logical
        empty = True
        with it:
            for entry in it:
                empty = False
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    st = self._leaf(entry, leaf) if leaf is not None else None
                    if st is None:
                        sub = entry.path
                        below.append((sub, sub if same else f"{logical}/{name}"))
                        continue
                    name = f"{name}/{leaf}"
                else:
                    st = self._file(entry, logical, below)
                    if st is None:
                        continue
                names.append(name)
                if st is NOT_LOOKED:
                    sizes.append(-1)
                    mtimes.append(UNKNOWN)
                else:
                    sizes.append(st.st_size)
                    mtimes.append(time_of(st.st_mtime))
        empty_dirs: tuple[tuple[str, float], ...] = ()
        if empty:
            try:
                st = os.stat(current)
            except FileNotFoundError:
                return None, []  # removed since it was listed
            empty_dirs = ((relative, time_of(st.st_mtime)),)
        if not names and not empty_dirs:
            return None, below
        return (relative, names, sizes, mtimes, empty_dirs), below


# -- the helper process ------------------------------------------------------------------------


def _frame(out: Any, payload: tuple[Any, ...]) -> None:  # noqa: ANN401 - a binary file
    data = marshal.dumps(payload)
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)


def read_frame(stream: Any) -> bytes | None:  # noqa: ANN401 - a binary file
    """The payload of the next frame :func:`_frame` wrote to ``stream``, not decoded.

    ``None`` when the stream ends before a whole frame (its writer stopped).
    """
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    data: bytes = stream.read(size)
    return data if len(data) == size else None


def _error_frame(e: BaseException) -> tuple[Any, ...]:
    """What the helper sends for an exception raised by the walk."""
    if isinstance(e, Refused):
        return ("refused", e.kind, e.path, e.target)
    if isinstance(e, OSError):
        filename = e.filename if isinstance(e.filename, str) else None
        return ("oserror", e.errno, e.strerror or str(e), filename)
    return ("error", f"{type(e).__name__}: {e}")


def fs_encoding() -> str:
    """How this interpreter decodes file names: ``encoding:errors`` (``utf-8:surrogateescape``)."""
    return f"{sys.getfilesystemencoding()}:{sys.getfilesystemencodeerrors()}"


def main(argv: list[str]) -> int:
    """The helper: ``_walk.py ROOT TOP [--names-only] [--fs-encoding ENC:ERRORS]``.

    Writes the listing of ``TOP`` as frames. With ``--fs-encoding``, the
    parent's way of decoding file names (:func:`fs_encoding`): when this
    interpreter's differs (the parent ran with ``PYTHONUTF8=0`` or
    ``-X utf8`` where ``-I`` ignores them), the names it would send are not
    the parent's names for the same files, so it lists nothing and sends
    ``("unfit", why)`` instead.
    """
    # Interrupting is the parent's to handle: it stops this process when it stops listening.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root, top = argv[0], argv[1]
    options = argv[2:]
    names_only = "--names-only" in options
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    if "--fs-encoding" in options:
        wanted = options[options.index("--fs-encoding") + 1]
        if wanted != fs_encoding():
            why = f"the helper decodes file names as {fs_encoding()}, registry-gc as {wanted}"
            _frame(out, ("unfit", why))
            out.flush()
            return 0
    walk = Walk(Tree(root), top, THREADS, names_only=names_only)
    walk.start()
    ended = 0
    try:
        while ended < walk.started:
            item = walk.out.get()
            if item is DONE:
                ended += 1
            elif isinstance(item, BaseException):
                _frame(out, _error_frame(item))
                return 0
            else:
                chunk = [(d, n, s.tobytes(), m.tobytes(), e) for d, n, s, m, e in item]
                _frame(out, ("chunk", chunk))
        _frame(out, ("done",))
    except BrokenPipeError:
        return 0  # the listing's reader went away: nothing more to do
    finally:
        walk.stop()
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
