"""The exceptions registry-gc raises.

Every exception derives from :class:`RegistryGCError`; where a builtin fits,
the exception also inherits it, so ``except ValueError`` keeps working::

    RegistryGCError
    ├── InvalidReferenceError (ValueError)     a digest, repository name or tag is malformed
    ├── StorageError (OSError)                 the storage answered with an error
    │   └── ReadOnlyError (PermissionError)    a delete reached a read-only backend
    ├── ManifestError (ValueError)             a manifest cannot be read or understood
    ├── RefusedError                           the collector refuses to sweep (nothing deleted)
    ├── ConfigError (ValueError)               a registry config.yml or option is unusable
    ├── BackendNotFoundError (LookupError)     no backend for a URL scheme
    └── TargetNotEmptyError (FileExistsError)  a directory to write into is not empty

Messages name the object (path, repository, digest) and say what to do.
"""

from __future__ import annotations

__all__ = [
    "BackendNotFoundError",
    "ConfigError",
    "InvalidReferenceError",
    "ManifestError",
    "ReadOnlyError",
    "RefusedError",
    "RegistryGCError",
    "StorageError",
    "TargetNotEmptyError",
]


class RegistryGCError(Exception):
    """The root of every error registry-gc raises on purpose."""


class InvalidReferenceError(RegistryGCError, ValueError):
    """A digest, repository name or tag does not follow distribution's grammar."""


class StorageError(RegistryGCError, OSError):
    """The storage failed in a way registry-gc cannot work around."""


class ReadOnlyError(StorageError, PermissionError):
    """A delete was attempted through a read-only backend."""


class ManifestError(RegistryGCError, ValueError):
    """A manifest cannot be read, is not JSON, or has an unknown media type."""


class RefusedError(RegistryGCError):
    """The collector refuses to sweep; nothing was deleted.

    ``problems`` lists every reason found, each naming its object.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems or [])


class ConfigError(RegistryGCError, ValueError):
    """A registry configuration or an option value cannot be used."""


class BackendNotFoundError(RegistryGCError, LookupError):
    """No storage backend is registered for a URL scheme."""


class TargetNotEmptyError(RegistryGCError, FileExistsError):
    """A directory to write into (``registry-gc demo DIR``) exists and is not empty."""
