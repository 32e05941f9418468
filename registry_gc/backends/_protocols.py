"""What registry-gc needs from a storage: one small protocol per capability.

:class:`Backend` is the core every backend implements — where it is
(:attr:`~Backend.url`), list, read, delete, close — and each optional
capability is a protocol of its own, checked with ``isinstance``:

=============================  ================================================
capability                     what the collector does with it
=============================  ================================================
:class:`SupportsDirectories`   removes the directories a sweep leaves empty
                               (a local disk); without it, there are none
:class:`SupportsDigest`        ``fsck --verify-blobs`` hashes blobs while
                               streaming them; without it, it reads one blob
                               at a time into memory
:class:`SupportsMultipartUploads`  finds and aborts the open multipart uploads
                               of stale uploads (S3); without it, there are none
:class:`SupportsMove`          live mode moves garbage blobs into a quarantine
                               outside ``docker/registry/v2`` and back; without
                               it, live mode is not available
:class:`SupportsWrite`         live mode writes its journal and the link files
                               of restored blobs; without it, live mode is not
                               available
:class:`SupportsRequestCounts` reports the HTTP requests a run sent
                               (``registry_gc_storage_requests``); without it,
                               none are reported
:class:`SupportsListBatches`   lists large stores as columns, directory by
                               directory (a local disk: threads, and a ``stat``
                               of each link and blob file without listing the
                               directory that holds it alone); without it, the
                               inventory uses ``list``
:class:`SupportsNamesOnly`     ``collect(names_only=True)`` (``gc --names-only``)
                               builds the inventory from names alone and looks
                               at sizes and times only for what it may delete;
                               without it, names-only runs are refused
:class:`SupportsListDir`       a distributed run splits its listing by
                               directory (one delimiter listing per level);
                               without it, the run lists the store in one
                               first pass and then splits what it found
:class:`SupportsListAhead`     the inventory lists ``repositories/`` while it
                               lists ``blobs/`` (a local disk: in a helper
                               process, on another core); without it, one
                               after the other
=============================  ================================================

Every protocol is ``runtime_checkable``: a backend has a capability when it
has the protocol's members, whatever its class. A backend that has no
directories, say, simply lacks ``remove_empty_dirs``; no flag or no-op
method stands in for a capability. Wrappers built on
:class:`~registry_gc.backends.WrappingBackend` have exactly the capabilities
of the backend they wrap (less ``SupportsListBatches`` when the wrapper
overrides ``list`` and not ``list_batches``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    import collections
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._base import DeleteResult, ListedBatch, MultipartUpload, ObjectInfo

__all__ = [
    "CAPABILITIES",
    "Backend",
    "ListingAhead",
    "SupportsDigest",
    "SupportsDirectories",
    "SupportsListAhead",
    "SupportsListBatches",
    "SupportsListDir",
    "SupportsMove",
    "SupportsMultipartUploads",
    "SupportsNamesOnly",
    "SupportsRequestCounts",
    "SupportsWrite",
]

#: What ``delete`` returns (named: ``list`` is also a method of every backend).
_Results: TypeAlias = "list[DeleteResult]"


@runtime_checkable
class Backend(Protocol):
    """The core of every backend: list, read and delete objects under the registry root.

    A backend addresses objects by *paths relative to the registry root*
    (the registry's ``rootdirectory``), ``/``-separated, without a leading
    slash, for example ``docker/registry/v2/blobs/sha256/ab/ab…/data``. It
    refuses, with :class:`~registry_gc.StorageError`, any path that could
    leave the root (see :func:`~registry_gc.backends.checked_path`).

    Each method takes many objects at once, so that a backend can batch and
    overlap requests. Implementations must be safe to use from one event
    loop at a time; the collector drives them with bounded concurrency of
    its own.
    """

    @property
    def url(self) -> str:
        """Where the registry root is, for messages. Never contains credentials."""
        ...

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every object under ``prefix`` (recursively), in no particular order.

        ``""`` is the whole root. A missing prefix yields nothing.
        Object-store "directory" placeholders (keys ending in ``/``) are
        never yielded. Modification times are timezone-aware UTC.
        """
        ...

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read many small objects; a missing object maps to ``None``.

        Any other failure raises :class:`~registry_gc.StorageError`.
        """
        ...

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete many objects, returning one result per path, in order.

        A failure is reported in its :class:`~registry_gc.backends.DeleteResult`,
        never dropped.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The backend may be used again afterwards."""
        ...


@runtime_checkable
class SupportsDirectories(Protocol):
    """Optional: a store where directories exist on their own (a local disk).

    Such a store lists each *empty* directory as an
    :class:`~registry_gc.backends.ObjectInfo` with ``is_dir=True``, and the
    collector removes, after a sweep, the directories the sweep left empty.
    Object stores have no directories and do not implement it.
    """

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Remove each directory that is empty, in the order given (deepest first).

        A directory that is not empty is left alone (``NOT_EMPTY``); one that
        does not exist is ``MISSING``.
        """
        ...


@runtime_checkable
class SupportsDigest(Protocol):
    """Optional: hash objects while streaming them, in bounded memory.

    ``registry-gc fsck --verify-blobs`` hashes every blob, and layers can be
    gigabytes. Without this capability each blob is read whole
    (:meth:`Backend.read`) and hashed, one at a time.
    """

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash each object with ``algorithm`` (``sha256``, ``sha384``, ``sha512``).

        Returns path → lower-case hex digest, ``None`` for a missing object.
        Any other failure raises :class:`~registry_gc.StorageError`.
        """
        ...


@runtime_checkable
class SupportsMultipartUploads(Protocol):
    """Optional: a store where an upload in progress is an invisible multipart upload (S3).

    distribution's S3 driver writes ``_uploads/<uuid>/data`` as a multipart
    upload that listing never shows and that deleting keys never aborts, so
    abandoned parts are billed forever. Backends with this capability let the
    collector find and abort them.
    """

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """Every open multipart upload under ``prefix``."""
        ...

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Abort each upload; one result each, in order (``MISSING`` if already gone)."""
        ...


@runtime_checkable
class SupportsMove(Protocol):
    """Optional: move objects to other paths under the same root, never losing their bytes.

    Live mode (collecting while the registry serves pushes) does not delete a
    garbage blob: it moves it into a quarantine outside
    ``docker/registry/v2``, where the registry cannot find it, and a later
    run moves it back if a live manifest needs it, or deletes it. On a disk a
    move is a rename; on an object store, a server-side copy and then a
    delete of the source.
    """

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> _Results:
        """Move each object ``src`` to ``dst``; one result per pair, in order, ``path`` = ``src``.

        ``DELETED``: moved (``src`` is gone, ``dst`` holds its bytes);
        ``MISSING``: ``src`` did not exist, nothing was written; ``FAILED``:
        the error says what happened, and whether ``dst`` holds a copy (the
        source could not be deleted after a complete copy) or not. An
        existing ``dst`` is overwritten. At no point does neither path hold
        the bytes: the copy is complete before the source goes.

        ``sizes`` (source path → size, as listed) is a hint: a store that
        copies large objects differently (S3, above 5 GiB) uses it to choose
        without asking the store first. A wrong size never makes a short copy.

        A path that could leave the root, a pair whose ``src`` is its
        ``dst``, a ``dst`` named twice, or a path that is both a ``src`` and a
        ``dst`` refuses the whole call with :class:`~registry_gc.StorageError`
        (``path`` set) before anything moves.
        """
        ...


@runtime_checkable
class SupportsWrite(Protocol):
    """Optional: put small objects — live mode's journal, restored link files.

    An existing object is overwritten; on a disk, atomically (a temporary
    file in the same directory, then a rename), with the missing parent
    directories created.
    """

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Write each path's bytes, overwriting.

        The first failure raises :class:`~registry_gc.StorageError` with its
        ``path``; the other items may or may not have been written. A path
        that could leave the root refuses the whole call before anything is
        written.
        """
        ...


@runtime_checkable
class SupportsRequestCounts(Protocol):
    """Optional: a backend that counts the HTTP requests it sends (S3, GCS, Azure).

    :func:`~registry_gc.backends.http_requests` reads it, and
    ``--metrics`` reports it as ``registry_gc_storage_requests``.
    """

    @property
    def request_counts(self) -> collections.Counter[str]:
        """Requests sent, retries included, by the store's own operation names.

        ``ListObjectsV2``, ``GetObject``, ``DeleteObjects`` on S3, for example;
        calls inside batch requests count under their own names where the
        store bills them one by one. A caller may ``clear()`` it.
        """
        ...


@runtime_checkable
class SupportsListBatches(Protocol):
    """Optional: list objects as columns, grouped by directory, for stores of millions of objects.

    :meth:`Backend.list` makes one :class:`~registry_gc.backends.ObjectInfo`
    (and one ``datetime``) per object; at ten million objects that is the
    largest cost of a run on a local disk. A backend with this capability
    hands the inventory whole directories at a time instead: names, and
    sizes and times in typed arrays.
    """

    def list_batches(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """Yield every object (and every empty directory) under ``prefix``, batch by batch.

        What :meth:`Backend.list` yields, in columns, with one exception a
        store may make: a directory named by the hex part of a digest under
        ``blobs/<alg>/<xx>/``, ``_layers/<alg>/`` or a tag's ``index/<alg>/``
        may be looked into only for the one file the registry keeps there
        (``data``, ``link``), when that file exists and is a regular file —
        anything beside it is then not listed (nothing of the registry's is).
        """
        ...


class ListingAhead(Protocol):
    """A listing under way (:meth:`SupportsListAhead.list_ahead`): iterate it, then close it."""

    def __aiter__(self) -> AsyncIterator[list[ListedBatch]]:
        """What :meth:`SupportsListBatches.list_batches` yields (iterated once)."""
        ...

    async def aclose(self) -> None:
        """Stop the listing, whatever is left of it, and release what it holds."""
        ...


@runtime_checkable
class SupportsListAhead(Protocol):
    """Optional: begin a listing now, to be read later, while the caller does other work.

    The inventory lists ``blobs/`` first (its index numbers every digest) and
    ``repositories/`` next. A backend that can list ``repositories/``
    meanwhile, elsewhere than on the caller's core (a local disk: a helper
    process), starts it at :meth:`list_ahead`, and the inventory reads it
    once ``blobs/`` is done.
    """

    def list_ahead(self, prefix: str, *, names_only: bool = False) -> ListingAhead:
        """What ``list_batches(prefix)`` (``names_only``: ``list_names(prefix)``) yields, begun now.

        The listing runs while the caller does other work, holding a bounded
        number of chunks until they are read. The caller iterates the result
        once and closes it (:meth:`ListingAhead.aclose`) however it ends.
        """
        ...


@runtime_checkable
class SupportsListDir(Protocol):
    """Optional: list one level of a directory — its sub-directories and its objects.

    :mod:`registry_gc.distributed` splits the listing of a large store into
    parts for its workers by directory: ``blobs/<alg>/<xx>`` and the names
    under ``repositories/``. On an object store this is one delimiter listing
    (``Delimiter=/``); on a disk, one ``scandir``.
    """

    async def list_dir(self, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        """The sub-directories directly under ``prefix``, and the objects directly in it.

        Sub-directories are paths relative to the root without a trailing
        ``/``; objects are listed as :meth:`Backend.list` lists them (an empty
        directory on a disk lists itself). A missing prefix gives two empty lists.
        """
        ...


@runtime_checkable
class SupportsNamesOnly(Protocol):
    """Optional: list names without sizes or times, and look at a few objects afterwards.

    A store collected every night is mostly what it was the night before;
    a ``stat`` of every file is most of the cost of listing a local disk.
    ``collect(names_only=True)`` lists names alone (:meth:`list_names`) and
    asks :meth:`stat` only about what it may delete, the manifests it reads,
    and what its plan relies on (``registry_gc._resolve``).
    """

    def list_names(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """What :meth:`SupportsListBatches.list_batches` yields, by name alone.

        Sizes are -1 and times :data:`~registry_gc.backends.UNKNOWN_TIME`'s
        timestamp for every object not looked at. A directory named by the hex
        part of a digest under ``blobs/<alg>/<xx>/``, ``_layers/<alg>/`` or a
        tag's ``index/<alg>/`` may be taken to hold the one file the registry
        keeps there (``data``, ``link``) without looking: the caller verifies
        with :meth:`stat` the ones it acts on.
        """
        ...

    async def stat(self, paths: Sequence[str]) -> Mapping[str, tuple[int, float] | None]:
        """Size and modification time (seconds since the epoch, UTC) of each path.

        ``None`` when the path is not a regular file the listing would list
        there: missing, a directory, a symbolic link. A time the store does not
        give, or Python cannot represent, is :data:`~registry_gc.backends.UNKNOWN_TIME`'s
        timestamp. Any other failure raises :class:`~registry_gc.StorageError`.
        """
        ...


#: Every optional capability, in the order the documentation lists them.
CAPABILITIES: tuple[type, ...] = (
    SupportsDirectories,
    SupportsDigest,
    SupportsMultipartUploads,
    SupportsMove,
    SupportsWrite,
    SupportsRequestCounts,
    SupportsListBatches,
    SupportsNamesOnly,
    SupportsListDir,
    SupportsListAhead,
)
