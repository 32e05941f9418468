"""The values backends trade in: listed objects, multipart uploads, per-path outcomes.

The protocols that use them are in ``_protocols``; the path guard in ``_paths``.
"""

from __future__ import annotations

import datetime
import enum
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from array import array

__all__ = [
    "UNKNOWN_TIME",
    "DeleteResult",
    "ListedBatch",
    "MultipartUpload",
    "ObjectInfo",
    "Outcome",
]


#: The modification time of an object whose time cannot be known (the store gives
#: none, or one Python cannot represent): the latest possible, so that it is always
#: inside the grace period and never deleted for its age.
UNKNOWN_TIME: Final = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


@attrs.frozen(slots=True)
class ObjectInfo:
    """One listed object.

    ``is_dir`` is ``True`` only for an *empty directory* on a store with
    directories (:class:`~registry_gc.backends.SupportsDirectories`), reported
    so that empty repositories can be cleaned up; object stores never report
    directories. ``etag`` identifies the content as the listing gives it, or is
    ``None``: S3's ``ETag`` without its quotes (for an object written in one
    request without KMS or customer keys, the MD5 of the content), GCS's
    ``md5Hash`` in hex. :mod:`~registry_gc.manifest_cache` uses it only where it
    is the MD5 of a body it holds, so other values never match.
    """

    path: str
    size: int
    modified: datetime.datetime
    is_dir: bool = False
    etag: str | None = None


@attrs.frozen(slots=True)
class ListedBatch:
    """Objects listed under one directory, as columns.

    What :class:`~registry_gc.backends.SupportsListBatches` yields. The object
    ``i`` is ``directory + "/" + names[i]`` (``names[i]`` alone when
    ``directory`` is empty; a name may hold several components), of
    ``sizes[i]`` bytes, modified at ``mtimes[i]`` (seconds since the epoch,
    UTC; :data:`UNKNOWN_TIME`'s timestamp when the store gives no time or one
    Python cannot represent). ``empty_dirs`` are empty directories
    under the root (their full relative paths) with their modification times,
    as :class:`ObjectInfo` reports them with ``is_dir``.
    """

    directory: str
    names: list[str]
    sizes: array[int]
    mtimes: array[float]
    empty_dirs: tuple[tuple[str, float], ...] = ()


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
    """What happened to one path given to :meth:`~registry_gc.backends.Backend.delete`.

    The same outcomes report a move (:class:`~registry_gc.backends.SupportsMove`),
    for its source: ``DELETED`` is moved, ``MISSING`` a source that did not exist.
    """

    DELETED = "deleted"
    MISSING = "missing"  #: it was already gone: fine, and the end state is the same
    FAILED = "failed"  #: the storage refused or errored; ``DeleteResult.error`` says why
    NOT_EMPTY = "not-empty"  #: a directory that still holds something was left in place


@attrs.frozen(slots=True)
class DeleteResult:
    """The outcome of deleting (or moving) one path."""

    path: str
    outcome: Outcome
    error: str | None = None

    @property
    def ok(self) -> bool:
        """``True`` unless the deletion failed."""
        return self.outcome is not Outcome.FAILED
