"""Manifests and tag links kept between runs, so that a nightly run reads only what is new.

A manifest is a blob: the bytes stored for a digest never change. A run with
a cache (``collect(manifest_cache=PATH)``, ``registry-gc gc --manifest-cache
PATH``) asks it first for every manifest it would read, and reads from the
storage only what it does not hold; every manifest read is added. A tag's
``current`` link does change, when the tag moves; S3's listing gives each
object's ETag, which for an object written in one request is the MD5 of its
content, and GCS's its ``md5Hash``, so the cache also holds link bodies by
their MD5 and gives the one the listing names. On an object store, where each
read is a request (about 2 ms of client CPU and a round trip on S3), a run on a
mostly unchanged store then costs its listing and what changed, not a request
per manifest and tag.

What makes it safe to trust:

- **Bytes, checked.** The cache holds the bodies themselves (manifests
  compressed) and hashes each before it is used: a manifest with its digest's
  algorithm, a link with MD5 against the ETag listed. An entry that does not
  match is dropped and the object read from the storage. A damaged or edited
  cache file can cost reads, never a wrong reference; an ETag that is not an
  MD5 (KMS or customer keys, multipart uploads) finds nothing, and the link is read.
- **Only what the listing shows.** A manifest entry is used only for a blob
  this run listed, and only when the listed size is the entry's length: a
  manifest the store lost is missing to the run as it is to the registry,
  whatever the cache holds. A link entry is used only for a link listed with
  that ETag.
- **Only manifests.** A body is added only when it parsed as a manifest of a
  kind distribution serves: what is read to find out (a ``_layers`` link that
  may be a 2.1.0 revision) is read again next time, as without a cache.

One SQLite file, one process at a time (SQLite's lock makes a second wait,
then fail, rather than corrupt it). A run that read the whole store forgets,
when its reading ends, every entry it did not use: the file stays the size of
what the store still has. This cache is the run's own; the *registry's*
blob-descriptor cache is another matter (``registry_gc.cache``, ``docs/cache.md``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import zlib
from typing import TYPE_CHECKING

from ._errors import ConfigError
from .backends._hashing import new_hash

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .layout import Digest

__all__ = ["ManifestCache", "ManifestCacheError"]

log = logging.getLogger(__name__)

#: The file's format (SQLite's ``user_version``); a file of another version is refused.
FORMAT = 1
#: Digests asked of SQLite in one query.
CHUNK = 500
#: New bodies held before they are written.
PENDING = 1000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS manifests (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        body BLOB NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS links (
        md5 TEXT PRIMARY KEY,
        body BLOB NOT NULL
    ) WITHOUT ROWID""",
)


class ManifestCacheError(ConfigError):
    """The cache file cannot be used (not SQLite, another format, not writable)."""


#: An ETag that may be the MD5 of an object's content.
_MD5 = re.compile(r"[0-9a-f]{32}")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _hashes_to(digest: str, data: bytes) -> bool:
    algorithm, _, hexpart = digest.partition(":")
    try:
        h = new_hash(algorithm)
    except ValueError:  # not an algorithm of the registry's: no body matches
        return False
    h.update(data)
    return h.hexdigest() == hexpart


class ManifestCache:
    """Manifests by digest and links by MD5, in the SQLite file ``path`` (made if missing).

    Use as a context manager, or call :meth:`close`. Counters, for the log:
    ``hits``, ``misses``, ``added`` (manifests), ``link_hits``, ``links_added``
    (tag links), ``rejected`` (entries dropped because they did not hash to
    their digest or ETag, or had another size than the blob listed), ``forgotten``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.hits = self.misses = self.added = self.rejected = self.forgotten = 0
        self.link_hits = self.links_added = 0
        self._used: set[str] = set()
        self._pending: list[tuple[str, int, bytes]] = []
        self._drop: list[str] = []
        self._used_links: set[str] = set()
        self._pending_links: list[tuple[str, bytes]] = []
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise ManifestCacheError(self._explain(e)) from e
        try:
            self._prepare()
        except sqlite3.Error as e:
            self._db.close()
            raise ManifestCacheError(self._explain(e)) from e
        except ManifestCacheError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        """Check the file's format (a new file gets the tables)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = self._db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
        if tables and version != FORMAT:
            msg = (
                f"manifest cache {self.path} is of format {version}, not {FORMAT}: "
                "give another file, or delete this one (it only saves reads)"
            )
            raise ManifestCacheError(msg)
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {FORMAT}")

    def _explain(self, e: sqlite3.Error) -> str:
        return (
            f"manifest cache {self.path} cannot be used: {e}. Give a writable path for a "
            "new file, or delete this one (it only saves reads)"
        )

    def __enter__(self) -> ManifestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ManifestCache({self.path!r})"

    # -- reading -------------------------------------------------------------------------

    def take(self, wanted: Iterable[tuple[Digest, int]]) -> Iterator[tuple[Digest, bytes]]:
        """The bodies the cache holds for ``(digest, listed size)`` pairs, checked.

        Yields ``(digest, body)`` for each entry whose size is the listed one
        and whose body hashes to the digest; the rest are misses, to be read
        from the storage. Entries found wrong are dropped.
        """
        batch: list[tuple[Digest, int]] = []
        for item in wanted:
            batch.append(item)
            if len(batch) >= CHUNK:
                yield from self._take(batch)
                batch = []
        if batch:
            yield from self._take(batch)

    def _take(self, batch: list[tuple[Digest, int]]) -> Iterator[tuple[Digest, bytes]]:
        if self._pending:
            self.flush()
        sizes = {str(d): n for d, n in batch}
        marks = ",".join("?" * len(sizes))
        try:
            rows = self._db.execute(
                f"SELECT digest, size, body FROM manifests WHERE digest IN ({marks})",  # noqa: S608
                list(sizes),
            ).fetchall()
        except sqlite3.Error as e:
            raise ManifestCacheError(self._explain(e)) from e
        found: dict[str, bytes] = {}
        for digest, size, body in rows:
            data = self._body(digest, size, body, sizes.get(digest))
            if data is None:
                self.rejected += 1
                self._drop.append(digest)
            else:
                found[digest] = data
        for d, _ in batch:
            self._used.add(d)
            data = found.pop(str(d), None)
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
                yield d, data

    @staticmethod
    def _body(digest: str, size: object, body: object, listed: int | None) -> bytes | None:
        if size != listed or not isinstance(body, bytes):
            return None
        try:
            data = zlib.decompress(body)
        except zlib.error:
            return None
        if len(data) != listed or not _hashes_to(digest, data):
            return None
        return data

    # -- writing -------------------------------------------------------------------------

    def add(self, digest: Digest, data: bytes) -> None:
        """Keep ``data``, the body of the manifest ``digest`` (written in batches)."""
        self._used.add(digest)
        self._pending.append((str(digest), len(data), zlib.compress(data, 1)))
        if len(self._pending) >= PENDING:
            self.flush()

    # -- tag links ---------------------------------------------------------------------

    def take_links(self, etags: Iterable[str]) -> dict[str, bytes]:
        """The bodies held for links whose listed ETag is the MD5 of their content, checked.

        ``etags`` are :attr:`ObjectInfo.etag <registry_gc.backends.ObjectInfo>`
        values as listed. A tag's ``current`` link changes when the tag moves, so
        it is found by the MD5 of its content, which S3 gives as the ETag of an
        object written in one request and GCS as its ``md5Hash``: the body
        returned for a value hashes to it (MD5). Any other value finds nothing.
        """
        wanted = [e for e in dict.fromkeys(etags) if _MD5.fullmatch(e)]
        self._used_links.update(wanted)
        if self._pending_links:
            self.flush()
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._db.execute(
                    f"SELECT md5, body FROM links WHERE md5 IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
            except sqlite3.Error as e:
                raise ManifestCacheError(self._explain(e)) from e
            for md5, body in rows:
                if isinstance(body, bytes) and _md5(body) == md5:
                    found[md5] = body
                else:
                    self.rejected += 1
        self.link_hits += len(found)
        return found

    def add_link(self, etag: str, data: bytes) -> None:
        """Keep a link's ``data`` if ``etag``, as listed, is its MD5 (written in batches)."""
        if _MD5.fullmatch(etag) and _md5(data) == etag:
            self._used_links.add(etag)
            self._pending_links.append((etag, data))
            if len(self._pending_links) >= PENDING:
                self.flush()

    # -- writing, forgetting -------------------------------------------------------------

    def flush(self) -> None:
        """Write what :meth:`add` and :meth:`add_link` hold; drop the entries found wrong."""
        if not self._pending and not self._drop and not self._pending_links:
            return
        try:
            self._db.execute("BEGIN")
            if self._drop:
                self._db.executemany(
                    "DELETE FROM manifests WHERE digest = ?", [(d,) for d in self._drop]
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO manifests (digest, size, body) VALUES (?, ?, ?)",
                self._pending,
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO links (md5, body) VALUES (?, ?)", self._pending_links
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise ManifestCacheError(self._explain(e)) from e
        self.added += len(self._pending)
        self.links_added += len(self._pending_links)
        self._pending.clear()
        self._drop.clear()
        self._pending_links.clear()

    def forget_unused(self) -> int:
        """Delete every entry this run neither used nor added; return how many.

        Only for a run that asked for every manifest of the store: what it did
        not ask for is no longer a manifest the store needs read.
        """
        self.flush()
        try:
            self._db.execute("BEGIN")
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS used (digest TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM temp.used")
            self._db.executemany(
                "INSERT OR IGNORE INTO temp.used (digest) VALUES (?)", ((d,) for d in self._used)
            )
            cursor = self._db.execute(
                "DELETE FROM manifests WHERE digest NOT IN (SELECT digest FROM temp.used)"
            )
            forgotten = cursor.rowcount
            self._db.execute("DELETE FROM temp.used")
            self._db.executemany(
                "INSERT OR IGNORE INTO temp.used (digest) VALUES (?)",
                ((d,) for d in self._used_links),
            )
            cursor = self._db.execute(
                "DELETE FROM links WHERE md5 NOT IN (SELECT digest FROM temp.used)"
            )
            forgotten += cursor.rowcount
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise ManifestCacheError(self._explain(e)) from e
        self.forgotten += forgotten
        return forgotten

    def digests(self) -> list[str]:
        """The digests the file holds, sorted (what :meth:`add` holds is written first)."""
        self.flush()
        return [d for (d,) in self._db.execute("SELECT digest FROM manifests ORDER BY digest")]

    def __len__(self) -> int:
        """Entries in the file (written ones; call :meth:`flush` first for the rest)."""
        return int(self._db.execute("SELECT count(*) FROM manifests").fetchone()[0])

    def close(self) -> None:
        """Write what is pending and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()
