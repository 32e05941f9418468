"""The one path guard: every backend checks every path it is given with :func:`checked_path`.

Backend paths are relative to the registry root. A path that could name
something outside it — an absolute path, a ``..`` component — or that the
store would cut or misread — a NUL byte, an empty object name — is refused
before any request is made, with the same rules on every store.
"""

from __future__ import annotations

from .._errors import StorageError

__all__ = ["checked_path"]


def checked_path(path: str, *, prefix: bool = False) -> str:
    """``path`` itself when it is a path inside the registry root; else raise.

    Refused: a leading ``/``, a ``..`` component, a NUL byte, and the empty
    path. With ``prefix=True`` (the argument of ``list``), the empty path is
    the whole root and allowed.

    >>> checked_path("docker/registry/v2/blobs/")
    'docker/registry/v2/blobs/'
    >>> checked_path("../x")
    Traceback (most recent call last):
    ...
    registry_gc._errors.StorageError: refusing path '../x': a '..' component would leave ...

    Raises:
        StorageError: with its ``path`` field set to ``path``.
    """
    why = None
    if not path:
        why = None if prefix else "an empty path names no object"
    elif path.startswith("/"):
        why = "backend paths are relative to the registry root, without a leading '/'"
    elif "\x00" in path:
        why = "a path cannot contain a NUL byte"
    elif ".." in path.split("/"):
        why = "a '..' component would leave the registry root"
    if why is not None:
        msg = f"refusing path {path!r}: {why}"
        raise StorageError(msg, path=path)
    return path
