"""The storage-backend protocol: the only code that talks to storage implements it.

A backend addresses objects by *paths relative to the registry root* (the
registry's ``rootdirectory``), ``/``-separated, without a leading slash, for
example ``docker/registry/v2/blobs/sha256/ab/ab…/data``.

Three capabilities, each taking many objects at once so that a backend can
batch and overlap requests:

- :meth:`Backend.list` — every object under a prefix, with size and
  modification time (timezone-aware UTC on every backend);
- :meth:`Backend.read` — many small objects, concurrently; missing ones are
  reported as ``None``, any other failure raises :class:`~registry_gc.StorageError`;
- :meth:`Backend.delete` — many paths, returning one :class:`DeleteResult`
  each; a failure is never dropped.

Hierarchical stores (a local disk) also remove directories on request
(:meth:`Backend.remove_empty_dirs`); object stores have none and do nothing.
"""

from __future__ import annotations

import datetime
import enum
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, runtime_checkable

import attrs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

__all__ = [
    "UNKNOWN_TIME",
    "Backend",
    "DeleteResult",
    "MultipartUpload",
    "ObjectInfo",
    "Outcome",
    "SupportsMultipartUploads",
]


#: What ``delete`` returns (named: ``list`` is also a method of every backend).
_Results: TypeAlias = "list[DeleteResult]"


#: The modification time of an object whose time cannot be known (the store gives
#: none, or one Python cannot represent): the latest possible, so that it is always
#: inside the grace period and never deleted for its age.
UNKNOWN_TIME: Final = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


@attrs.frozen(slots=True)
class ObjectInfo:
    """One listed object.

    ``is_dir`` is ``True`` only for an *empty directory* on a hierarchical
    store (reported so that empty repositories can be cleaned up); object
    stores never report directories.
    """

    path: str
    size: int
    modified: datetime.datetime
    is_dir: bool = False


@attrs.frozen(slots=True)
class MultipartUpload:
    """An open (unfinished) multipart upload on an object store.

    ``key`` is relative to the registry root, like every backend path (for a
    registry upload: ``docker/registry/v2/repositories/<name>/_uploads/<uuid>/data``).
    ``initiated`` is timezone-aware UTC.
    """

    key: str
    upload_id: str
    initiated: datetime.datetime


class Outcome(enum.Enum):
    """What happened to one path given to :meth:`Backend.delete`."""

    DELETED = "deleted"
    MISSING = "missing"  #: it was already gone: fine, and the end state is the same
    FAILED = "failed"  #: the storage refused or errored; ``DeleteResult.error`` says why
    NOT_EMPTY = "not-empty"  #: a directory that still holds something was left in place


@attrs.frozen(slots=True)
class DeleteResult:
    """The outcome of deleting one path."""

    path: str
    outcome: Outcome
    error: str | None = None

    @property
    def ok(self) -> bool:
        """``True`` unless the deletion failed."""
        return self.outcome is not Outcome.FAILED


@runtime_checkable
class Backend(Protocol):
    """What registry-gc needs from a storage.

    Implementations must be safe to use from one event loop at a time; the
    collector drives them with bounded concurrency of its own.
    """

    @property
    def url(self) -> str:
        """Where the registry root is, for messages. Never contains credentials."""
        ...

    @property
    def hierarchical(self) -> bool:
        """``True`` when directories exist on their own (a local disk)."""
        ...

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every object under ``prefix`` (recursively), in no particular order.

        A missing prefix yields nothing. Object-store "directory" placeholders
        (keys ending in ``/``) are never yielded.
        """
        ...

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read many small objects; a missing object maps to ``None``."""
        ...

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete many objects, returning one result per path, in order."""
        ...

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Remove each directory that is empty, in the order given (deepest first).

        A directory that is not empty is left alone (:attr:`Outcome.NOT_EMPTY`);
        one that does not exist is :attr:`Outcome.MISSING`. Object stores
        return ``MISSING`` for every path.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The backend may be used again afterwards."""
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
