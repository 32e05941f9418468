"""The exceptions registry-gc raises: one tree, one root.

Every exception derives from :class:`RegistryGCError`; where a builtin fits,
the exception also inherits it, so ``except ValueError`` keeps working::

    RegistryGCError
    ├── InvalidReferenceError (ValueError)     a digest, repository name or tag is malformed
    ├── NotFoundError (LookupError)            a repository, tag or manifest named is not there
    ├── StorageError (OSError)                 the storage answered with an error
    │   └── ReadOnlyError (PermissionError)    a delete reached a read-only backend
    ├── ManifestError (ValueError)             a manifest cannot be read or understood
    ├── RefusedError                           the collector refuses to sweep (nothing deleted)
    │   └── PlanFileError                      a plan file cannot be applied as it is
    ├── ConfigError (ValueError)               a config.yml, a policy or an option is unusable
    ├── BackendNotFoundError (LookupError)     no backend for a URL scheme
    └── TargetNotEmptyError (FileExistsError)  a directory to write into is not empty

Messages name the object and say what to do; the object is also in structured
fields (:attr:`~RegistryGCError.path`, :attr:`~RegistryGCError.repository`,
:attr:`~RegistryGCError.digest`), as httpx's and attrs' errors carry theirs, so
that callers need not parse messages:

>>> try:
...     raise NotFoundError("no repository 'app'", repository="app")
... except RegistryGCError as e:
...     (e.repository, str(e))
('app', "no repository 'app'")
"""

from __future__ import annotations

__all__ = [
    "BackendNotFoundError",
    "ConfigError",
    "InvalidReferenceError",
    "ManifestError",
    "NotFoundError",
    "PlanFileError",
    "ReadOnlyError",
    "RefusedError",
    "RegistryGCError",
    "StorageError",
    "TargetNotEmptyError",
]


class RegistryGCError(Exception):
    """The root of every error registry-gc raises on purpose.

    ``path`` (relative to the registry root, or a local path), ``repository``
    and ``digest`` name the object the error is about, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        repository: str | None = None,
        digest: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.repository = repository
        self.digest = digest

    def __str__(self) -> str:
        return self.message


class InvalidReferenceError(RegistryGCError, ValueError):
    """A digest, repository name or tag does not follow distribution's grammar."""


class NotFoundError(RegistryGCError, LookupError):
    """A repository, tag or manifest that was named is not in the store."""


class StorageError(RegistryGCError, OSError):
    """The storage failed in a way registry-gc cannot work around."""


class ReadOnlyError(StorageError, PermissionError):
    """A delete was attempted through a read-only backend."""


class ManifestError(RegistryGCError, ValueError):
    """A manifest cannot be read, or distribution could not decode it either."""


class RefusedError(RegistryGCError):
    """The collector refuses to sweep; nothing was deleted.

    ``problems`` lists every reason found, each naming its object.
    """

    def __init__(
        self,
        message: str,
        problems: list[str] | None = None,
        *,
        path: str | None = None,
        repository: str | None = None,
        digest: str | None = None,
    ) -> None:
        super().__init__(message, path=path, repository=repository, digest=digest)
        self.problems: list[str] = list(problems or [])


class PlanFileError(RefusedError):
    """A plan file is damaged, of another format, too old or for another root; nothing deleted.

    ``path`` is the plan file; ``line`` the line at fault (1 is the header),
    ``None`` when the fault is the file as a whole (a missing footer).
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message, [message], path=path)
        self.line = line


class ConfigError(RegistryGCError, ValueError):
    """A registry configuration, a retention policy or an option value cannot be used."""


class BackendNotFoundError(RegistryGCError, LookupError):
    """No storage backend is registered for a URL scheme."""


class TargetNotEmptyError(RegistryGCError, FileExistsError):
    """A directory to write into (``registry-gc demo DIR``) exists and is not empty."""
