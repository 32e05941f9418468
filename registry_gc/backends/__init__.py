"""Storage backends: the protocols, the built-in implementations, and how to open one.

:class:`Backend` is the core every backend implements; each optional
capability is a protocol of its own (:data:`CAPABILITIES`). The shared test
suite a backend should pass is :mod:`registry_gc.testing`.

The object-store backends (:class:`S3Backend`, :class:`GCSBackend`,
:class:`AzureBackend`) are imported on first use: a run on a local disk does
not pay for their modules.
"""

from typing import TYPE_CHECKING, Any

from ._base import UNKNOWN_TIME, DeleteResult, ListedBatch, MultipartUpload, ObjectInfo, Outcome
from ._counting import CountingBackend, http_requests
from ._fsspec import FsspecBackend
from ._local import LocalBackend
from ._open import ENTRY_POINT_GROUP, open_backend
from ._paths import checked_path
from ._protocols import (
    CAPABILITIES,
    Backend,
    ListingAhead,
    SupportsDigest,
    SupportsDirectories,
    SupportsListAhead,
    SupportsListBatches,
    SupportsListDir,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsNamesOnly,
    SupportsRequestCounts,
    SupportsWrite,
)
from ._readonly import ReadOnlyBackend
from ._wrapper import WrappingBackend

if TYPE_CHECKING:
    from ._azure import AzureBackend
    from ._gcs import GCSBackend
    from ._s3 import S3Backend

#: Public names imported on first use, and their modules.
_LAZY = {"AzureBackend": "._azure", "GCSBackend": "._gcs", "S3Backend": "._s3"}

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
    "ListingAhead",
    "LocalBackend",
    "MultipartUpload",
    "ObjectInfo",
    "Outcome",
    "ReadOnlyBackend",
    "S3Backend",
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
    "WrappingBackend",
    "checked_path",
    "http_requests",
    "open_backend",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - one of the classes in _LAZY
    """Import an object-store backend on first use (see the module)."""
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
