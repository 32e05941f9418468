"""Digests as small integers: the index every columnar table of a run shares.

A registry of ten million blobs names ten million digests, most of them many
times (a blob, its ``_layers`` links, the manifests that reference it). As
Python strings they cost 120 bytes each before any container holds them; here
each distinct digest has an integer *id*, and tables hold ids in typed arrays.

The sha256 digests of the listed blobs — nearly every digest of a store — are
kept as 32-byte records in one sorted ``bytes``, found through a table of
bucket offsets on their leading bits: about 36 bytes per digest, and a lookup
is a slice and a ``bytes.find`` over one or two records. Their ids are their
ranks, ``0 … sorted_count - 1``. Any other digest (sha384 and sha512, or a
sha256 that no listed blob has: a dangling link, a blob written after the
listing passed) gets the next id when it is first *interned*, in a plain dict:
such digests are few.

>>> index = DigestIndex.build([bytes.fromhex("ab" * 32), bytes.fromhex("01" * 32)])
>>> index.find("sha256:" + "ab" * 32), index.find("sha256:" + "01" * 32)
(1, 0)
>>> index.find("sha256:" + "cd" * 32)
-1
>>> index.intern("sha512:" + "0" * 128)
2
>>> index.digest(1) == "sha256:" + "ab" * 32
True
"""

from __future__ import annotations

import binascii
import itertools
import re
import struct
from array import array
from typing import TYPE_CHECKING, Final

from .layout import Digest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["RAW_SIZE", "DigestIndex", "SortedRecords", "raw_sha256"]

#: Bytes of a sha256 digest.
RAW_SIZE: Final = 32
_SHA256: Final = "sha256:"
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
#: Bucket table bits at most (2**24 buckets: 64 MiB of offsets, for 16 million blobs).
_MAX_BITS: Final = 24
#: The leading 4 bytes of a record as a big-endian unsigned int: the bucket key. One C call
#: instead of ``int.from_bytes(raw[:4], "big")`` (a slice and a call), ~25 % off a lookup.
_HEAD: Final = struct.Struct(">I").unpack_from


def raw_sha256(digest: str) -> bytes | None:
    """The 32 bytes of a ``sha256:<64 lower-case hex>`` digest; ``None`` for anything else."""
    if len(digest) != 71 or not digest.startswith(_SHA256) or not _HEX64.fullmatch(digest, 7):
        return None
    return bytes.fromhex(digest[7:])


class DigestIndex:
    """Every digest a run deals with, each with a dense integer id (see the module)."""

    __slots__ = ("_extra", "_keys", "_names", "_shift", "_sorted", "_starts")

    def __init__(self) -> None:
        self._keys = b""
        self._sorted = 0
        self._shift = 32
        self._starts = array("I", [0, 0])
        #: digest string → id, for ids from ``_sorted`` on
        self._extra: dict[str, int] = {}
        self._names: list[Digest] = []

    @classmethod
    def build(cls, raws: Iterable[bytes]) -> DigestIndex:
        """An index of these sha256 digests (32 bytes each; sorted here, duplicates dropped)."""
        records = SortedRecords()
        for raw in raws:
            records.add(raw)
        return records.index()

    @classmethod
    def _from_sorted(cls, keys: bytes) -> DigestIndex:
        """An index of ``keys``: sorted, distinct 32-byte records."""
        self = cls()
        n = len(keys) // RAW_SIZE
        self._keys = keys
        self._sorted = n
        bits = min(max(n.bit_length() - 1, 0), _MAX_BITS)
        self._shift = 32 - bits
        # The leading 4 bytes of every record, big-endian, as unsigned ints.
        heads = array("I")
        heads.frombytes(keys)
        heads = heads[:: RAW_SIZE // heads.itemsize]
        if heads.itemsize == 4 and array("I", [1]).tobytes()[0] == 1:
            heads.byteswap()
        counts = array("I", bytes(heads.itemsize * ((1 << bits) + 1)))
        shift = self._shift
        for head in heads:
            counts[(head >> shift) + 1] += 1
        self._starts = array("I", itertools.accumulate(counts))
        return self

    # -- sizes ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """How many ids exist."""
        return self._sorted + len(self._names)

    @property
    def sorted_count(self) -> int:
        """The ids below this are the listed sha256 blobs, in digest order."""
        return self._sorted

    def nbytes(self) -> int:
        """Bytes held by the sorted part (records and bucket offsets)."""
        return len(self._keys) + len(self._starts) * self._starts.itemsize

    # -- lookups -------------------------------------------------------------------------------

    def find_raw(self, raw: bytes) -> int:
        """The id of the sorted sha256 digest with these 32 bytes; -1 when it is not listed."""
        starts = self._starts
        b = _HEAD(raw)[0] >> self._shift
        end = starts[b + 1] * RAW_SIZE
        keys = self._keys
        at = keys.find(raw, starts[b] * RAW_SIZE, end)
        # A match that straddles two records is no match (names in paths are anything).
        while at > 0 and at % RAW_SIZE:
            at = keys.find(raw, at + 1, end)
        return -1 if at < 0 else at // RAW_SIZE

    def find(self, digest: str) -> int:
        """The id of ``digest``; -1 when it was never seen."""
        if self._sorted and len(digest) == 71 and digest.startswith(_SHA256):
            try:
                # a2b_hex: half the time of bytes.fromhex; unlike it, it refuses whitespace,
                # which no digest in the index holds (intern takes valid digests only).
                raw = binascii.a2b_hex(digest[7:])
            except ValueError:
                return -1
            found = self.find_raw(raw) if len(raw) == RAW_SIZE else -1
            if found >= 0:
                return found
        return self._extra.get(digest, -1)

    def intern(self, digest: str) -> int:
        """The id of ``digest`` (a valid digest), given a new one if it was never seen."""
        found = self.find(digest)
        if found >= 0:
            return found
        i = self._sorted + len(self._names)
        key = Digest._trusted(digest)  # noqa: SLF001 - the callers pass valid digests
        self._extra[key] = i
        self._names.append(key)
        return i

    def intern_raw(self, raw: bytes) -> int:
        """:meth:`intern` of a sha256 digest given as its 32 bytes."""
        found = self.find_raw(raw) if self._sorted else -1
        return found if found >= 0 else self.intern(_SHA256 + raw.hex())

    def digest(self, i: int) -> Digest:
        """The digest of id ``i``."""
        if 0 <= i < self._sorted:
            at = i * RAW_SIZE
            return Digest._trusted(_SHA256 + self._keys[at : at + RAW_SIZE].hex())  # noqa: SLF001
        return self._names[i - self._sorted]

    def raw(self, i: int) -> bytes:
        """The 32 bytes of a sorted id (``i < sorted_count``)."""
        at = i * RAW_SIZE
        return self._keys[at : at + RAW_SIZE]

    def is_sha256(self, i: int) -> bool:
        """Whether id ``i`` is a sha256 digest (the registry's canonical algorithm)."""
        return i < self._sorted or self._names[i - self._sorted].startswith(_SHA256)

    def __iter__(self) -> Iterator[Digest]:
        """Every digest, in id order."""
        return (self.digest(i) for i in range(len(self)))


class SortedRecords:
    """sha256 digests (32 bytes each) with a size and a time, collected then sorted.

    Collected into 256 groups by their first byte, so that sorting holds one
    group's keys at a time; a digest added twice keeps its last size and time.
    """

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: list[tuple[bytearray, array[int], array[float]] | None] = [None] * 256

    def group(self, first: int) -> tuple[bytearray, array[int], array[float]]:
        """The arrays of the records whose first byte is ``first`` (appended to by the caller)."""
        g = self._groups[first]
        if g is None:
            g = self._groups[first] = (bytearray(), array("q"), array("d"))
        return g

    def add(self, raw: bytes, size: int = 0, mtime: float = 0.0) -> None:
        """Add one record."""
        keys, sizes, mtimes = self.group(raw[0])
        keys += raw
        sizes.append(size)
        mtimes.append(mtime)

    def finish(self) -> tuple[bytes, array[int], array[float]]:
        """Every record, sorted by digest, once each: keys, sizes, times (frees the groups)."""
        keys = bytearray()
        sizes = array("q")
        mtimes = array("d")
        for first in range(256):
            g = self._groups[first]
            self._groups[first] = None
            if g is None:
                continue
            gkeys, gsizes, gtimes = g
            view = bytes(gkeys)
            del gkeys
            records = [view[i : i + RAW_SIZE] for i in range(0, len(view), RAW_SIZE)]
            order = sorted(range(len(records)), key=records.__getitem__)
            previous = b""
            for k in order:
                record = records[k]
                if record == previous:
                    # The same digest twice: the later record wins (stable sort keeps it last).
                    sizes[-1] = gsizes[k]
                    mtimes[-1] = gtimes[k]
                    continue
                previous = record
                keys += record
                sizes.append(gsizes[k])
                mtimes.append(gtimes[k])
        return bytes(keys), sizes, mtimes

    def index(self) -> DigestIndex:
        """The sorted digests as an index (sizes and times dropped)."""
        keys, _, _ = self.finish()
        return DigestIndex._from_sorted(keys)  # noqa: SLF001
