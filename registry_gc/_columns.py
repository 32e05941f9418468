"""Columnar containers keyed by digest: typed arrays of digest ids behind Mapping and Set views.

The inventory, the manifest table and the marks of a large registry hold
millions of digests. These containers store *ids* from one
:class:`~registry_gc._digests.DigestIndex` in typed arrays, and look like the
dicts and sets they replace to every reader: digests in, digests out
(materialized on demand). Code that runs over millions of entries uses their
id-level methods instead (``ids()``, ``has_id()``), when the index is the one
it expects (``index is …``).

- :class:`LinkTimes` — digest → modification time (``_layers`` links,
  revisions, tag history): ids sorted once filled, looked up by bisection.
- :class:`IdSet` — a frozen set of digests (the manifests a repository keeps
  live, the ``_layers`` links it needs): a sorted id array.
- :class:`IdFlags` — a mutable set of digests as one byte per id (the live
  blobs of the whole store).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import MutableMapping, MutableSet
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from ._digests import DigestIndex

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .layout import Digest

__all__ = ["IdFlags", "IdSet", "LinkTimes"]


def _ids_of(index: DigestIndex, digests: Iterable[str]) -> array[int]:
    return array("i", sorted({index.intern(d) for d in digests}))


class LinkTimes(MutableMapping["Digest", float]):
    """Digest → modification time, as two arrays: digest ids and float times.

    Appends (:meth:`append_id`, while a listing fills it) are cheap; the ids are
    sorted, and duplicates dropped (the last time wins), on the first lookup.
    One built by hand (``LinkTimes()``) gets an index of its own.
    """

    __slots__ = ("_dirty", "_ids", "_mtimes", "index")

    def __init__(
        self, index: DigestIndex | None = None, items: Iterable[tuple[str, float]] = ()
    ) -> None:
        self.index = index if index is not None else DigestIndex()
        self._ids = array("i")
        self._mtimes = array("d")
        self._dirty = False
        for d, m in items:
            self[d] = m  # type: ignore[index]

    # -- filling ---------------------------------------------------------------------------------

    def append_id(self, i: int, mtime: float) -> None:
        """Add an entry by id (a second one for the same id replaces the first)."""
        ids = self._ids
        if ids and ids[-1] >= i:
            self._dirty = True
        ids.append(i)
        self._mtimes.append(mtime)

    def _tidy(self) -> None:
        if not self._dirty:
            return
        ids, mtimes = self._ids, self._mtimes
        order = sorted(range(len(ids)), key=ids.__getitem__)
        new_ids = array("i")
        new_mtimes = array("d")
        for k in order:
            i = ids[k]
            if new_ids and new_ids[-1] == i:
                new_mtimes[-1] = mtimes[k]
                continue
            new_ids.append(i)
            new_mtimes.append(mtimes[k])
        self._ids, self._mtimes, self._dirty = new_ids, new_mtimes, False

    def _pos(self, i: int) -> int:
        """The position of id ``i``, or -1."""
        self._tidy()
        ids = self._ids
        at = bisect.bisect_left(ids, i)
        return at if at < len(ids) and ids[at] == i else -1

    # -- id level -----------------------------------------------------------------------------

    def ids(self) -> array[int]:
        """The digest ids, ascending (do not modify)."""
        self._tidy()
        return self._ids

    def times(self) -> array[float]:
        """The times, in the order of :meth:`ids` (do not modify)."""
        self._tidy()
        return self._mtimes

    def has_id(self, i: int) -> bool:
        """Whether id ``i`` is a key."""
        return self._pos(i) >= 0

    def time_of_id(self, i: int) -> float | None:
        """The time of id ``i``, or ``None``."""
        at = self._pos(i)
        return None if at < 0 else self._mtimes[at]

    # -- the mapping ------------------------------------------------------------------------------

    def __getitem__(self, digest: Digest) -> float:
        i = self.index.find(digest) if isinstance(digest, str) else -1
        at = self._pos(i) if i >= 0 else -1
        if at < 0:
            raise KeyError(digest)
        return self._mtimes[at]

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        i = self.index.find(digest)
        return i >= 0 and self._pos(i) >= 0

    def __setitem__(self, digest: Digest, mtime: float) -> None:
        i = self.index.intern(digest)
        at = self._pos(i)
        if at >= 0:
            self._mtimes[at] = mtime
        else:
            self.append_id(i, mtime)

    def __delitem__(self, digest: Digest) -> None:
        i = self.index.find(digest)
        at = self._pos(i) if i >= 0 else -1
        if at < 0:
            raise KeyError(digest)
        del self._ids[at]
        del self._mtimes[at]

    def __iter__(self) -> Iterator[Digest]:
        self._tidy()
        name = self.index.digest
        return (name(i) for i in self._ids)

    def __len__(self) -> int:
        self._tidy()
        return len(self._ids)

    def items(self) -> Iterator[tuple[Digest, float]]:  # type: ignore[override]
        """``(digest, time)`` pairs, in id order."""
        self._tidy()
        name = self.index.digest
        return ((name(i), m) for i, m in zip(self._ids, self._mtimes, strict=True))

    def __repr__(self) -> str:
        return f"LinkTimes({len(self)} entries)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LinkTimes | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class IdSet(AbstractSet["Digest"]):
    """A frozen set of digests: sorted ids of one index."""

    __slots__ = ("_ids", "index")

    def __init__(self, index: DigestIndex, ids: Iterable[int] = ()) -> None:
        self.index = index
        self._ids = array("i", sorted(set(ids)))

    @classmethod
    def of(cls, index: DigestIndex, digests: Iterable[str]) -> IdSet:
        """The set of ``digests`` (interned into ``index``)."""
        self = cls(index)
        self._ids = _ids_of(index, digests)
        return self

    @classmethod
    def _from_iterable(cls, it: Iterable[Digest]) -> frozenset[Digest]:  # type: ignore[override]
        # What ``a & b``, ``a - b`` … return: a plain frozenset.
        return frozenset(it)

    def ids(self) -> array[int]:
        """The ids, ascending (do not modify)."""
        return self._ids

    def has_id(self, i: int) -> bool:
        """Whether id ``i`` is in the set."""
        ids = self._ids
        at = bisect.bisect_left(ids, i)
        return at < len(ids) and ids[at] == i

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        i = self.index.find(digest)
        return i >= 0 and self.has_id(i)

    def __iter__(self) -> Iterator[Digest]:
        name = self.index.digest
        return (name(i) for i in self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"IdSet({len(self)} digests)"

    def __hash__(self) -> int:
        return self._hash()


class IdFlags(MutableSet["Digest"]):
    """A set of digests as one byte per id of an index (1: in the set).

    Digests the index never saw can still be added: they are interned.
    """

    __slots__ = ("_count", "_flags", "index")

    def __init__(self, index: DigestIndex, digests: Iterable[str] = ()) -> None:
        self.index = index
        self._flags = bytearray(len(index))
        self._count = 0
        for d in digests:
            self.add(d)  # type: ignore[arg-type]

    @classmethod
    def _from_iterable(cls, it: Iterable[Digest]) -> set[Digest]:  # type: ignore[override]
        # What ``a & b``, ``a - b`` … return: a plain set.
        return set(it)

    def flags(self) -> bytearray:
        """One byte per id (do not modify; ids past its end are not in the set)."""
        return self._flags

    def add_id(self, i: int) -> None:
        """Add by id."""
        flags = self._flags
        if i >= len(flags):
            flags.extend(bytes(max(i + 1, len(self.index)) - len(flags)))
        if not flags[i]:
            flags[i] = 1
            self._count += 1

    def has_id(self, i: int) -> bool:
        """Whether id ``i`` is in the set."""
        return 0 <= i < len(self._flags) and self._flags[i] == 1

    def discard_id(self, i: int) -> None:
        """Remove by id, if present."""
        if self.has_id(i):
            self._flags[i] = 0
            self._count -= 1

    def add(self, value: Digest) -> None:
        """Add a digest."""
        self.add_id(self.index.intern(value))

    def discard(self, value: Digest) -> None:
        """Remove a digest, if present."""
        i = self.index.find(value)
        if i >= 0:
            self.discard_id(i)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        return self.has_id(self.index.find(digest))

    def __iter__(self) -> Iterator[Digest]:
        name, flags = self.index.digest, self._flags
        i = flags.find(1)
        while i >= 0:
            yield name(i)
            i = flags.find(1, i + 1)

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"IdFlags({self._count} digests)"
