"""Storage backends: the protocols, the built-in implementations, and how to open one.

:class:`Backend` is the core every backend implements; each optional
capability is a protocol of its own (:data:`CAPABILITIES`). The shared test
suite a backend should pass is :mod:`registry_gc.testing`.
"""

from ._azure import AzureBackend
from ._base import UNKNOWN_TIME, DeleteResult, ListedBatch, MultipartUpload, ObjectInfo, Outcome
from ._counting import CountingBackend, http_requests
from ._fsspec import FsspecBackend
from ._gcs import GCSBackend
from ._local import LocalBackend
from ._open import ENTRY_POINT_GROUP, open_backend
from ._paths import checked_path
from ._protocols import (
    CAPABILITIES,
    Backend,
    SupportsDigest,
    SupportsDirectories,
    SupportsListBatches,
    SupportsListDir,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsNamesOnly,
    SupportsRequestCounts,
    SupportsWrite,
)
from ._readonly import ReadOnlyBackend
from ._s3 import S3Backend
from ._wrapper import WrappingBackend

__all__ = [
    "CAPABILITIES",
    "ENTRY_POINT_GROUP",
    "UNKNOWN_TIME",
    "AzureBackend",
    "Backend",
    "CountingBackend",
    "DeleteResult",
    "FsspecBackend",
    "GCSBackend",
    "ListedBatch",
    "LocalBackend",
    "MultipartUpload",
    "ObjectInfo",
    "Outcome",
    "ReadOnlyBackend",
    "S3Backend",
    "SupportsDigest",
    "SupportsDirectories",
    "SupportsListBatches",
    "SupportsListDir",
    "SupportsMove",
    "SupportsMultipartUploads",
    "SupportsNamesOnly",
    "SupportsRequestCounts",
    "SupportsWrite",
    "WrappingBackend",
    "checked_path",
    "http_requests",
    "open_backend",
]
