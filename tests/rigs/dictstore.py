"""A third-party backend in miniature: a registry root in a dict, with the core protocol only.

:class:`DictBackend` implements :class:`~registry_gc.backends.Backend` and no
optional capability, as a plugin might; :func:`open_dict` is its entry-point
factory (``dict = "tests.rigs.dictstore:open_dict"`` in the group
``registry_gc.backends``). Each opened backend is a fresh, empty store;
:meth:`DictBackend.put` puts objects into it behind the backend's back (the
suite's ``writer``). It is not called ``write``: a backend with a ``write``
method has, by its name, :class:`~registry_gc.backends.SupportsWrite`.
"""

from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, Any

from registry_gc.backends import DeleteResult, ObjectInfo, Outcome, checked_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

__all__ = ["DictBackend", "open_dict"]


class DictBackend:
    """A registry root in a dict: path -> (bytes, modification time)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.objects: dict[str, tuple[bytes, datetime.datetime]] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``dict://name``."""
        return f"dict://{self.name}"

    def __repr__(self) -> str:
        return f"DictBackend({self.url!r})"

    def put(self, path: str, data: bytes) -> None:
        """Put an object (a path ending in ``/`` is a placeholder, as on an object store)."""
        with self._lock:
            self.objects[path] = (data, datetime.datetime.now(datetime.timezone.utc))

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under the directory ``prefix``; placeholders are never listed."""
        prefix = checked_path(prefix, prefix=True)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        for path, (data, modified) in list(self.objects.items()):
            if path.startswith(prefix) and not path.endswith("/"):
                yield ObjectInfo(path, len(data), modified)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """The bytes of each object, ``None`` for a missing one."""
        for p in paths:
            checked_path(p)
        return {p: self.objects[p][0] if p in self.objects else None for p in paths}

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete each object (every path is checked before any is deleted)."""
        for p in paths:
            checked_path(p)
        results = []
        for p in paths:
            gone = self.objects.pop(p, None) is None
            results.append(DeleteResult(p, Outcome.MISSING if gone else Outcome.DELETED))
        return results

    async def aclose(self) -> None:
        """Nothing to release."""


def open_dict(url: str, storage_options: dict[str, Any]) -> DictBackend:
    """The entry-point factory: ``dict://name`` is a fresh, empty store."""
    del storage_options  # a dict needs none
    return DictBackend(url.split("://", 1)[1])
