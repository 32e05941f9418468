"""One listing pass → everything the registry holds, compact, in memory.

The inventory lists ``blobs/``, then ``repositories/``, classifies every path
with :mod:`registry_gc.layout`, and reads only what the path does not already
say: the tags' ``current`` links, and the rare ``_layers`` alias links
(sha384/sha512 paths, whose content names the canonical sha256 blob). The
listing and the builder are in ``_scanning``.

It is columnar, so that ten million blobs fit in a few gigabytes: every digest
is an id of one :class:`~registry_gc._digests.DigestIndex` (32 bytes per
listed blob), the blob table's sizes and times are typed arrays, and each
repository's links are arrays of ids and times (:class:`~registry_gc._columns.LinkTimes`)
that read like ``dict[Digest, float]``. Timestamps are float seconds since
the epoch (UTC). About 70 bytes per blob and 12 per link.
"""

from __future__ import annotations

import array
from typing import TYPE_CHECKING, Final

import attrs

from . import _sync
from ._columns import LinkTimes
from ._digests import DigestIndex
from .layout import Digest, Repository, Tag

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from .backends import Backend, MultipartUpload, ObjectInfo
    from .manifest_cache import ManifestCache

__all__ = [
    "ABSENT",
    "NOT_LOOKED",
    "Anomaly",
    "BlobTable",
    "Inventory",
    "RepositoryEntry",
    "TagEntry",
    "UploadEntry",
    "scan",
    "take_inventory",
]


#: The time of an object listed by name alone, not looked at yet (``names_only``):
#: the oldest possible, so that planning finds it a candidate and looks at it.
#: Never left on anything a plan deletes or keeps (``registry_gc._resolve``).
NOT_LOOKED: Final = float("-inf")
#: The size of a blob listed by name alone and found missing when looked at.
ABSENT: Final = -2


@attrs.frozen
class Anomaly:
    """Something in the store that does not fit the layout, or looks broken.

    Reported, never deleted by accident. ``kind`` is a stable identifier
    (``unrecognized-path``, ``invalid-repository-name``, ``broken-link`` …).
    """

    kind: str
    path: str
    message: str
    repository: str | None = None


class BlobTable:
    """Every blob in ``blobs/``: digest → size and modification time, compactly.

    Columnar: the digests are ids of a :class:`~registry_gc._digests.DigestIndex`
    (the listed sha256 blobs are its sorted part, 32 bytes each), sizes and times
    are typed arrays in id order — about 56 bytes per blob. A blob recorded
    after the listing (a sha384/sha512 one, or :meth:`add`) is kept aside by id.
    Iteration hands out :class:`Digest` strings, made on demand.
    """

    __slots__ = ("_absent", "_extra", "_mtimes", "_sizes", "index")

    def __init__(
        self,
        index: DigestIndex | None = None,
        sizes: array.array[int] | None = None,
        mtimes: array.array[float] | None = None,
    ) -> None:
        #: the digest ids the table (and the inventory's link tables) use
        self.index = index if index is not None else DigestIndex()
        self._sizes = sizes if sizes is not None else array.array("q")
        self._mtimes = mtimes if mtimes is not None else array.array("d")
        if len(self._sizes) != self.index.sorted_count or len(self._mtimes) != len(self._sizes):
            msg = "one size and one time per sorted digest of the index"
            raise ValueError(msg)
        #: id → (size, mtime), for blobs outside the index's sorted part
        self._extra: dict[int, tuple[int, float]] = {}
        #: sorted ids found missing since (size :data:`ABSENT`): not blobs of the table
        self._absent = 0

    def add(self, digest: str, size: int, mtime: float) -> None:
        """Record a blob (a second record of the same digest replaces the first)."""
        i = self.index.intern(digest)
        if i < len(self._sizes):
            if self._sizes[i] == ABSENT:
                self._absent -= 1
            self._sizes[i] = size
            self._mtimes[i] = mtime
        else:
            self._extra[i] = (size, mtime)

    def discard_id(self, i: int) -> None:
        """Forget blob ``i``: a name listed alone whose ``data`` turned out not to be there."""
        if not self.has_id(i):
            return
        if i < len(self._sizes):
            self._sizes[i] = ABSENT
            self._absent += 1
        else:
            del self._extra[i]

    # -- by id ------------------------------------------------------------------------

    def has_id(self, i: int) -> bool:
        """Whether digest id ``i`` is a blob of the table."""
        if 0 <= i < len(self._sizes):
            return not self._absent or self._sizes[i] != ABSENT
        return i in self._extra

    def size_of_id(self, i: int) -> int:
        """The size of the blob with id ``i``."""
        return self._sizes[i] if 0 <= i < len(self._sizes) else self._extra[i][0]

    def mtime_of_id(self, i: int) -> float:
        """The modification time of the blob with id ``i``."""
        return self._mtimes[i] if 0 <= i < len(self._mtimes) else self._extra[i][1]

    def ids(self) -> Iterator[int]:
        """Every blob's id: the sorted ones, then the others."""
        if self._absent:
            sizes = self._sizes
            yield from (i for i in range(len(sizes)) if sizes[i] != ABSENT)
        else:
            yield from range(len(self._sizes))
        yield from self._extra

    def columns(self) -> tuple[array.array[int], array.array[float]]:
        """Sizes and times of the sorted ids ``0 … len - 1`` (do not modify)."""
        return self._sizes, self._mtimes

    def nbytes(self) -> int:
        """Bytes held by the table's columns and its index (not the extra blobs)."""
        return (
            self.index.nbytes()
            + len(self._sizes) * self._sizes.itemsize
            + len(self._mtimes) * self._mtimes.itemsize
        )

    # -- by digest ----------------------------------------------------------------------

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self.has_id(self.index.find(digest))

    def __len__(self) -> int:
        return len(self._sizes) - self._absent + len(self._extra)

    def __iter__(self) -> Iterator[Digest]:
        name = self.index.digest
        return (name(i) for i in self.ids())

    def _id(self, digest: str) -> int:
        i = self.index.find(digest)
        if not self.has_id(i):
            raise KeyError(digest)
        return i

    def size(self, digest: str) -> int:
        """The size in bytes of the blob's ``data``."""
        return self.size_of_id(self._id(digest))

    def mtime(self, digest: str) -> float:
        """When ``data`` was last written, in seconds since the epoch."""
        return self.mtime_of_id(self._id(digest))

    def total_size(self) -> int:
        """The bytes held by every blob (those whose size is known: see :meth:`sizes_known`)."""
        sizes = self._sizes
        total = sum(sizes) if min(sizes, default=0) >= 0 else sum(s for s in sizes if s > 0)
        return total + sum(s for s, _ in self._extra.values() if s > 0)

    def sizes_known(self) -> bool:
        """Whether every blob's size was measured (not so after a names-only listing)."""
        known = min(self._sizes, default=0) >= 0 or all(s >= 0 for s in self._sizes if s != ABSENT)
        return known and all(s >= 0 for s, _ in self._extra.values())

    def __repr__(self) -> str:
        return f"BlobTable({len(self)} blobs)"


@attrs.define(slots=True)
class TagEntry:
    """A tag directory. ``current`` is ``None`` when its link is missing or broken."""

    name: Tag
    current: Digest | None = None
    current_mtime: float | None = None
    current_size: int = 0
    #: Revisions the tag ever pointed at: digest → link mtime.
    index: LinkTimes = attrs.Factory(LinkTimes)


@attrs.define(slots=True)
class UploadEntry:
    """An upload in progress: ``_uploads/<id>/…``."""

    id: str
    #: name (``data``, ``startedat``, ``hashstates/sha256/0``) → (size, mtime)
    files: dict[str, tuple[int, float]] = attrs.Factory(dict)
    #: open multipart uploads of its ``data`` (object stores: invisible to listing)
    multipart: list[MultipartUpload] = attrs.Factory(list)

    def _times(self) -> list[float]:
        times = [m for _, m in self.files.values()]
        times.extend(u.initiated.timestamp() for u in self.multipart)
        return times

    @property
    def started(self) -> float:
        """When the upload started: the ``startedat`` file's write time, else the oldest file's."""
        if "startedat" in self.files:
            return self.files["startedat"][1]
        return min(self._times())

    @property
    def last_activity(self) -> float:
        """When any of its files was last written (or a multipart upload initiated)."""
        return max(self._times())

    @property
    def size(self) -> int:
        """Bytes held by its files."""
        return sum(s for s, _ in self.files.values())


@attrs.define(slots=True)
class RepositoryEntry:
    """Everything under ``repositories/<name>/``."""

    name: Repository
    #: Why the name is not valid per distribution's grammar; ``None`` when it is.
    name_problem: str | None = None
    #: ``True`` when a ``_manifests`` directory exists (distribution 3.x's rule).
    has_manifests: bool = False
    tags: dict[Tag, TagEntry] = attrs.Factory(dict)
    #: revision digest → link mtime
    revisions: LinkTimes = attrs.Factory(LinkTimes)
    #: layer link digest (as in the path) → link mtime
    layers: LinkTimes = attrs.Factory(LinkTimes)
    #: alias layer links (sha384/sha512 paths) → the canonical digest they name (None: unreadable)
    layer_aliases: dict[Digest, Digest | None] = attrs.Factory(dict)
    uploads: dict[str, UploadEntry] = attrs.Factory(dict)
    #: legacy (pre-2.5) signature links: revision digest → [(signature digest, mtime)]
    signatures: dict[Digest, list[tuple[Digest, float]]] = attrs.Factory(dict)
    #: paths inside the repository that fit nothing: never deleted; they keep it from being empty
    unrecognized: list[str] = attrs.Factory(list)

    @property
    def is_repository(self) -> bool:
        """Whether distribution would serve it: it has ``_manifests`` and a valid name."""
        return self.has_manifests and self.name_problem is None


@attrs.define
class Inventory:
    """What one listing pass found under ``docker/registry/v2/``."""

    url: str
    #: When the listing started (aware UTC). Grace periods count back from here.
    started: datetime.datetime
    repositories: dict[Repository, RepositoryEntry] = attrs.Factory(dict)
    blobs: BlobTable = attrs.Factory(BlobTable)
    anomalies: list[Anomaly] = attrs.Factory(list)
    #: empty directories (hierarchical stores only): path → mtime
    empty_dirs: dict[str, float] = attrs.Factory(dict)
    #: objects listed in total (blobs, links, uploads, anything else)
    objects: int = 0
    #: seconds spent listing and reading links
    seconds: float = 0.0
    #: listed by name alone (``names_only``): sizes -1 and times ``NOT_LOOKED`` until
    #: ``registry_gc._resolve`` looks at them
    names_only: bool = False

    @property
    def index(self) -> DigestIndex:
        """The digest ids of the blob table (and of the link tables the listing filled)."""
        return self.blobs.index

    def repository(self, name: str) -> RepositoryEntry:
        """The entry of repository ``name`` (raises ``KeyError`` if absent)."""
        return self.repositories[Repository._trusted(name)]  # noqa: SLF001

    @property
    def empty(self) -> bool:
        """``True`` when nothing at all was found: probably not a registry root."""
        return self.objects == 0 and not self.empty_dirs


#: Listed objects between two ``listing`` progress reports.
PROGRESS_STEP = 500


async def scan(
    backend: Backend,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    blobs_from: Inventory | None = None,
    prefixes: Sequence[str] | None = None,
    listed: Iterable[ObjectInfo] = (),
    uploads: Iterable[MultipartUpload] | None = None,
    names_only: bool = False,
    cache: ManifestCache | None = None,
) -> Inventory:
    """List the registry once and build its :class:`Inventory` (async).

    ``progress("listing", listed, None)`` is called about every :data:`PROGRESS_STEP`
    objects. ``blobs/`` is listed first, then ``repositories/`` (whose links are
    stored as ids of the blobs' digests). With ``blobs_from``, only
    ``repositories/`` is listed again and the blobs are that inventory's (a live
    run looks again at what pushes changed: links, tags, revisions; a blob is
    only ever written before the link that names it).

    A part of the store (:mod:`registry_gc.distributed` lists one per worker):
    ``prefixes`` are the directories to list instead of ``blobs/`` and
    ``repositories/``, ``listed`` objects found on the way to them (by a
    delimiter listing) and ``uploads`` the open multipart uploads under them,
    listed already (``None``: listed here, under each prefix inside
    ``repositories/``). The inventory then holds exactly what those hold.

    ``names_only`` (a backend with :class:`~registry_gc.backends.SupportsNamesOnly`):
    the store is listed by name alone; sizes are -1 and times ``NOT_LOOKED``
    until ``registry_gc._resolve`` looks at what a run needs.

    ``cache`` (:class:`~registry_gc.manifest_cache.ManifestCache`) gives the tags'
    ``current`` links whose listed ETag is the MD5 of a body it holds, and keeps
    those read.
    """
    from ._scanning import build  # noqa: PLC0415 - the builder imports this module

    return await build(
        backend,
        progress=progress,
        blobs_from=blobs_from,
        prefixes=prefixes,
        listed=listed,
        uploads=uploads,
        names_only=names_only,
        cache=cache,
    )


def take_inventory(backend: Backend) -> Inventory:
    """List the registry once and build its :class:`Inventory`.

    >>> from registry_gc.backends import open_backend
    >>> inv = take_inventory(open_backend("memory://empty-registry"))
    >>> inv.empty
    True
    """
    return _sync.run(scan(backend))
