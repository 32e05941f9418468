"""Storage backends: the protocol, the built-in implementations, and how to open one."""

from ._azure import AzureBackend
from ._base import (
    UNKNOWN_TIME,
    Backend,
    DeleteResult,
    MultipartUpload,
    ObjectInfo,
    Outcome,
    SupportsMultipartUploads,
)
from ._counting import CountingBackend, http_requests
from ._fsspec import FsspecBackend
from ._gcs import GCSBackend
from ._local import LocalBackend
from ._open import ENTRY_POINT_GROUP, open_backend
from ._readonly import ReadOnlyBackend
from ._s3 import S3Backend
from ._wrapper import WrappingBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "UNKNOWN_TIME",
    "AzureBackend",
    "Backend",
    "CountingBackend",
    "DeleteResult",
    "FsspecBackend",
    "GCSBackend",
    "LocalBackend",
    "MultipartUpload",
    "ObjectInfo",
    "Outcome",
    "ReadOnlyBackend",
    "S3Backend",
    "SupportsMultipartUploads",
    "WrappingBackend",
    "http_requests",
    "open_backend",
]
