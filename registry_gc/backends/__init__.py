"""Storage backends: the protocol, the built-in implementations, and how to open one."""

from ._azure import AzureBackend
from ._base import (
    Backend,
    DeleteResult,
    MultipartUpload,
    ObjectInfo,
    Outcome,
    SupportsMultipartUploads,
)
from ._fsspec import FsspecBackend
from ._gcs import GCSBackend
from ._local import LocalBackend
from ._open import ENTRY_POINT_GROUP, open_backend
from ._readonly import ReadOnlyBackend
from ._s3 import S3Backend
from ._wrapper import WrappingBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "AzureBackend",
    "Backend",
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
    "open_backend",
]
