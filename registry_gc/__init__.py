"""registry-gc: offline, safe, fast garbage collection for distribution registries."""

from importlib.metadata import PackageNotFoundError, version

from ._errors import (
    BackendNotFoundError,
    ConfigError,
    InvalidReferenceError,
    ManifestError,
    ReadOnlyError,
    RefusedError,
    RegistryGCError,
    StorageError,
)
from .backends import Backend, open_backend
from .layout import Digest, Repository, Tag

try:
    __version__ = version("registry-gc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Backend",
    "BackendNotFoundError",
    "ConfigError",
    "Digest",
    "InvalidReferenceError",
    "ManifestError",
    "ReadOnlyError",
    "RefusedError",
    "RegistryGCError",
    "Repository",
    "StorageError",
    "Tag",
    "__version__",
    "open_backend",
]
