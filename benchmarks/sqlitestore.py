"""A synthetic registry store in one SQLite file, and a backend that serves it (benchmarks only).

A 10-million-blob store is about 23 million files: more than this machine's file
system has inodes. Here the store :mod:`synth` generates is written as rows of one
table instead, and :class:`SQLiteBackend` serves it to :func:`registry_gc.collect`
with what a run uses of a backend: ``list``, ``list_batches`` (the
``SupportsListBatches`` capability, grouped by directory as the local disk's
threaded walk groups them), ``read`` of many paths, and ``delete``: refused,
unless the backend was opened ``writable`` (a real run, on a copy of the file:
it deletes rows as an object store deletes keys).

The table (``objects``) holds every key with its size and modification time, and
the bytes of the files the collector reads: every file under ``repositories/``
(links, upload state) and every blob whose bytes are JSON (manifests, configs,
signature payloads). Layer bytes (random) are not stored: reading one raises
:class:`~registry_gc.StorageError` rather than answer with wrong bytes. An index on
``(path, size, mtime)`` covers the listing, which streams rows ordered by path in
chunks; the page cache is kept small (:data:`CACHE_KIB`), so the store's own memory
does not grow with the store (``list`` mode of ``sqlite_child.py`` measures it).

Command line (prints the counts, as ``synth.py`` does)::

    python benchmarks/sqlitestore.py FILE [--blobs 50000] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import sqlite3
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import synth  # noqa: E402
from registry_gc import StorageError  # noqa: E402
from registry_gc.backends import DeleteResult, ListedBatch, ObjectInfo, Outcome  # noqa: E402
from registry_gc.backends._walk import leaf_file  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

#: SQLite's page cache per connection, in KiB (``PRAGMA cache_size`` takes it negative).
CACHE_KIB = 4096
#: Rows fetched from the listing cursor at once, and objects handed over per chunk (about):
#: what the local disk's walk hands the event loop at once.
CHUNK = 4000
#: Paths per ``… IN (…)`` statement: a read's ``SELECT``, a deletion's ``DELETE``.
READ_BATCH = 500
#: Rows inserted at once while generating.
INSERT_BATCH = 20_000

_SCHEMA = """
CREATE TABLE objects (path TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL, data BLOB);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INDEX = "CREATE INDEX objects_by_path ON objects (path, size, mtime)"
_LEAVES = ("data", "link")


def _stored(key: str, data: bytes) -> bytes | None:
    """The bytes kept for ``key``: everything but layer bytes (random, never read)."""
    if "/blobs/" in key and not data.startswith(b"{"):
        return None
    return data


def write_sqlite(
    spec: synth.Spec, path: str | Path, *, age: float = synth.DEFAULT_AGE
) -> synth.Expected:
    """Write the store :func:`synth.generate` makes for ``spec`` into a new SQLite file ``path``.

    The same keys, sizes and (for the files the collector reads) bytes as
    :func:`synth.write_local` writes for the same ``spec``; every modification
    time is ``age`` seconds ago. The counts go into the ``meta`` table.
    """
    path = Path(path)
    path.unlink(missing_ok=True)
    files, exp = synth.generate(spec)
    t = time.time() - age
    con = sqlite3.connect(path)
    try:
        con.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;" + _SCHEMA
        )
        rows: list[tuple[str, int, float, bytes | None]] = []
        for key, data in files:
            rows.append((key, len(data), t, _stored(key, data)))
            if len(rows) >= INSERT_BATCH:
                con.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", rows)
                rows.clear()
        con.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", rows)
        con.execute(_INDEX)
        meta = {"spec": dataclasses.asdict(spec), "counts": exp.counts(), "mtime": t}
        con.execute("INSERT INTO meta VALUES ('store', ?)", (json.dumps(meta),))
        con.commit()
    finally:
        con.close()
    return exp


def store_meta(path: str | Path) -> dict[str, Any]:
    """What :func:`write_sqlite` recorded: the spec, the counts and the modification time."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (value,) = con.execute("SELECT value FROM meta WHERE key = 'store'").fetchone()
    finally:
        con.close()
    result: dict[str, Any] = json.loads(value)
    return result


def _split(path: str) -> tuple[str, str]:
    """``(directory, name)`` of a listed path, as the local disk's walk batches it.

    A digest directory's one file (``blobs/<alg>/<xx>/<hex>/data``, a ``_layers`` or
    tag ``index`` link) is named ``<hex>/<file>`` in the directory above it.
    """
    parent, _, name = path.rpartition("/")
    if name in _LEAVES:
        above, _, hexpart = parent.rpartition("/")
        if len(hexpart) in (64, 96, 128) and leaf_file(above) == name:
            return above, f"{hexpart}/{name}"
    return parent, name


def _range(prefix: str) -> tuple[str, str]:
    """The ``[low, high)`` range of paths under ``prefix`` (``""``: all)."""
    prefix = prefix.strip("/")
    if not prefix:
        return "", "\U0010ffff"
    return prefix + "/", prefix + chr(ord("/") + 1)


class SQLiteBackend:
    """The backend protocol over a store :func:`write_sqlite` wrote.

    Read-only unless ``writable``: then :meth:`delete` removes rows, and the
    file is switched to write-ahead logging, so that a listing's cursor and a
    deletion do not lock each other out (the file is changed for good: run
    real runs on a copy).
    """

    def __init__(self, path: str | Path, *, writable: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            msg = f"no SQLite store at {self.path}"
            raise FileNotFoundError(msg)
        self.writable = writable
        self._mode = "rw" if writable else "ro"
        if writable:
            con = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        #: The one connection deletions use, one deletion at a time.
        self._writer: sqlite3.Connection | None = None
        self._writing = threading.Lock()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        #: The one connection reads share, one read at a time: a connection per
        #: thread of the event loop's executor would hold a page cache each.
        self._reader: sqlite3.Connection | None = None
        self._reading = threading.Lock()

    @property
    def url(self) -> str:
        """``sqlite://`` and the file."""
        return f"sqlite://{self.path}"

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(
            f"file:{self.path}?mode={self._mode}", uri=True, check_same_thread=False
        )
        con.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        if self.writable:
            con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA mmap_size=0")
        with self._lock:
            self._connections.append(con)
        return con

    def _release(self, con: sqlite3.Connection) -> None:
        with self._lock:
            self._connections.remove(con)
        con.close()

    async def _rows(self, prefix: str) -> AsyncIterator[list[tuple[str, int, float]]]:
        """The rows under ``prefix`` ordered by path, :data:`CHUNK` at a time, from a thread."""
        low, high = _range(prefix)
        con = await asyncio.to_thread(self._connect)
        try:
            cur = con.execute(
                "SELECT path, size, mtime FROM objects WHERE path >= ? AND path < ? ORDER BY path",
                (low, high),
            )
            while rows := await asyncio.to_thread(cur.fetchmany, CHUNK):
                yield rows
        finally:
            self._release(con)

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every object under ``prefix``."""
        utc = datetime.timezone.utc
        async for rows in self._rows(prefix):
            for path, size, mtime in rows:
                yield ObjectInfo(path, size, datetime.datetime.fromtimestamp(mtime, utc))

    async def list_batches(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """What :meth:`list` yields, as columns grouped by directory (``SupportsListBatches``)."""
        async for rows in self._rows(prefix):
            yield list(_batches(rows))

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read many objects in a thread; a missing one maps to ``None``."""
        return await asyncio.to_thread(self._read, list(paths))

    def _read(self, paths: list[str]) -> dict[str, bytes | None]:
        with self._reading:
            if self._reader is None:
                self._reader = self._connect()
            return self._select(self._reader, paths)

    def _select(self, con: sqlite3.Connection, paths: list[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for i in range(0, len(paths), READ_BATCH):
            part = paths[i : i + READ_BATCH]
            marks = ",".join("?" * len(part))
            query = f"SELECT path, size, data FROM objects WHERE path IN ({marks})"
            for path, size, data in con.execute(query, part):
                if data is None and size:
                    msg = f"{self.url}: the bytes of {path} are not stored (a layer)"
                    raise StorageError(msg, path=path)
                found[path] = data or b""
        return {p: found.get(p) for p in paths}

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete the rows of ``paths`` (``writable``); a path with no row is ``MISSING``.

        Read-only, every path is refused (``FAILED``) and nothing changes.
        """
        if not self.writable:
            return [
                DeleteResult(p, Outcome.FAILED, "the SQLite benchmark store is read-only")
                for p in paths
            ]
        gone = await asyncio.to_thread(self._delete, list(paths))
        return [DeleteResult(p, Outcome.DELETED if p in gone else Outcome.MISSING) for p in paths]

    def _delete(self, paths: list[str]) -> set[str]:
        gone: set[str] = set()
        with self._writing:
            if self._writer is None:
                self._writer = self._connect()
            con = self._writer
            with con:  # one transaction per call, committed before the results are given
                for i in range(0, len(paths), READ_BATCH):
                    part = paths[i : i + READ_BATCH]
                    marks = ",".join("?" * len(part))
                    query = f"DELETE FROM objects WHERE path IN ({marks}) RETURNING path"
                    gone.update(path for (path,) in con.execute(query, part))
        return gone

    async def aclose(self) -> None:
        """Close the connections."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._reader = self._writer = None
        for con in connections:
            with contextlib.suppress(sqlite3.Error):
                con.close()


def _batches(rows: Iterable[tuple[str, int, float]]) -> Iterable[ListedBatch]:
    """Consecutive rows of one directory as one :class:`ListedBatch`."""
    directory: str | None = None
    names: list[str] = []
    sizes = array("q")
    mtimes = array("d")
    for path, size, mtime in rows:
        d, name = _split(path)
        if d != directory:
            if names:
                yield ListedBatch(directory or "", names, sizes, mtimes)
            directory, names, sizes, mtimes = d, [], array("q"), array("d")
        names.append(name)
        sizes.append(size)
        mtimes.append(mtime)
    if names:
        yield ListedBatch(directory or "", names, sizes, mtimes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the SQLite file to write (replaced)")
    parser.add_argument("--blobs", type=int, default=50_000, help="about this many blobs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = synth.Spec.for_blobs(args.blobs, seed=args.seed)
    t0 = time.perf_counter()
    exp = write_sqlite(spec, args.file)
    seconds = time.perf_counter() - t0
    print(json.dumps({"spec": dataclasses.asdict(spec), **exp.counts(), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
