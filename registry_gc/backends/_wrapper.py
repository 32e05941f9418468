"""The one forwarding wrapper: a backend that passes every call to another.

:class:`WrappingBackend` has exactly the capabilities of the backend it wraps:
``isinstance(wrapper, SupportsDigest)`` is true when, and only when,
``isinstance(wrapper.inner, SupportsDigest)`` is, for every capability of
:data:`~registry_gc.backends.CAPABILITIES`, through any depth of wrappers.

How: ``WrappingBackend(inner)`` (or a subclass's constructor) makes an
instance of a class derived, once per wrapper class and set of capabilities,
from the wrapper class and one forwarding mixin per capability ``inner``
has. A capability method that the wrapper class overrides but ``inner``
lacks is set to ``None`` on that derived class: Python's spelling of "not
available" (as ``__hash__ = None``), which ``isinstance`` against a
protocol honours on every Python version. A wrapper class that overrides
``list`` but not ``list_batches`` lacks
:class:`~registry_gc.backends.SupportsListBatches` even over a backend that
has it, so that every listing goes through its ``list``; one that overrides
any listing but not ``list_ahead`` lacks
:class:`~registry_gc.backends.SupportsListAhead`. (Delegating with ``__getattr__``
would not do: from Python 3.12 on, protocol checks look attributes up
statically.)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from ._protocols import (
    CAPABILITIES,
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

if TYPE_CHECKING:
    import collections
    from collections.abc import AsyncIterator, Mapping, Sequence

    from typing_extensions import Self

    from ._base import DeleteResult, ListedBatch, MultipartUpload, ObjectInfo
    from ._protocols import Backend, ListingAhead

__all__ = ["WrappingBackend", "capabilities"]

_Results: TypeAlias = "list[DeleteResult]"
_Uploads: TypeAlias = "list[MultipartUpload]"


def capabilities(backend: object) -> frozenset[type]:
    """The optional capabilities (of :data:`~registry_gc.backends.CAPABILITIES`) ``backend`` has."""
    return frozenset(c for c in CAPABILITIES if isinstance(backend, c))


def members(capability: type) -> tuple[str, ...]:
    """The names a capability protocol declares (its methods and properties)."""
    return tuple(sorted(n for n in vars(capability) if not n.startswith("_")))


class WrappingBackend:
    """Delegates every call to ``inner``; subclasses override what they change.

    A wrapper has the optional capabilities of ``inner`` and no others (see
    the module's documentation): a subclass may override a capability's
    methods, and the override is there when ``inner`` has the capability.
    Overrides reach the wrapped backend through :attr:`inner` or ``super()``.

    >>> from registry_gc.backends import LocalBackend, S3Backend, SupportsDirectories
    >>> isinstance(WrappingBackend(LocalBackend("/srv/registry")), SupportsDirectories)
    True
    >>> isinstance(WrappingBackend(S3Backend("bucket")), SupportsDirectories)
    False
    """

    def __new__(cls, inner: Backend, *_args: Any, **_kwargs: Any) -> Self:  # noqa: ANN401 - a subclass's own arguments
        made: type = _made_for(cast("type", cls), capabilities(inner))
        return cast("Self", super().__new__(made))

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    @property
    def inner(self) -> Backend:
        """The wrapped backend."""
        return self._inner

    @property
    def url(self) -> str:
        """The wrapped backend's URL."""
        return self._inner.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend."""
        return self._inner.list(prefix)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the wrapped backend."""
        return await self._inner.read(paths)

    async def delete(self, paths: Sequence[str]) -> _Results:
        """Delete through the wrapped backend."""
        return await self._inner.delete(paths)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self._inner.aclose()


# -- one forwarding mixin per capability ---------------------------------------------------


class _ForwardDirectories:
    _inner: Any

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> _Results:
        """Remove directories through the wrapped backend."""
        inner: SupportsDirectories = self._inner
        return await inner.remove_empty_dirs(dirs)


class _ForwardDigest:
    _inner: Any

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash through the wrapped backend."""
        inner: SupportsDigest = self._inner
        return await inner.digest(paths, algorithm)


class _ForwardMultipartUploads:
    _inner: Any

    async def list_multipart_uploads(self, prefix: str) -> _Uploads:
        """List multipart uploads through the wrapped backend."""
        inner: SupportsMultipartUploads = self._inner
        return await inner.list_multipart_uploads(prefix)

    async def abort_multipart_uploads(self, uploads: Sequence[MultipartUpload]) -> _Results:
        """Abort through the wrapped backend."""
        inner: SupportsMultipartUploads = self._inner
        return await inner.abort_multipart_uploads(uploads)


class _ForwardMove:
    _inner: Any

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> _Results:
        """Move through the wrapped backend."""
        inner: SupportsMove = self._inner
        return await inner.move(moves, sizes=sizes)


class _ForwardWrite:
    _inner: Any

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Write through the wrapped backend."""
        inner: SupportsWrite = self._inner
        await inner.write(items)


class _ForwardRequestCounts:
    _inner: Any

    @property
    def request_counts(self) -> collections.Counter[str]:
        """The wrapped backend's request counts."""
        inner: SupportsRequestCounts = self._inner
        return inner.request_counts


class _ForwardListBatches:
    _inner: Any

    def list_batches(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """List in batches through the wrapped backend."""
        inner: SupportsListBatches = self._inner
        return inner.list_batches(prefix)


class _ForwardListAhead:
    _inner: Any

    def list_ahead(self, prefix: str, *, names_only: bool = False) -> ListingAhead:
        """Begin a listing through the wrapped backend."""
        inner: SupportsListAhead = self._inner
        return inner.list_ahead(prefix, names_only=names_only)


class _ForwardListDir:
    _inner: Any

    async def list_dir(self, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        """List one level through the wrapped backend."""
        inner: SupportsListDir = self._inner
        return await inner.list_dir(prefix)


class _ForwardNamesOnly:
    _inner: Any

    def list_names(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """List names through the wrapped backend."""
        inner: SupportsNamesOnly = self._inner
        return inner.list_names(prefix)

    async def stat(self, paths: Sequence[str]) -> Mapping[str, tuple[int, float] | None]:
        """Look at objects through the wrapped backend."""
        inner: SupportsNamesOnly = self._inner
        return await inner.stat(paths)


_FORWARDERS: dict[type, type] = {
    SupportsDirectories: _ForwardDirectories,
    SupportsDigest: _ForwardDigest,
    SupportsMultipartUploads: _ForwardMultipartUploads,
    SupportsMove: _ForwardMove,
    SupportsWrite: _ForwardWrite,
    SupportsRequestCounts: _ForwardRequestCounts,
    SupportsListBatches: _ForwardListBatches,
    SupportsNamesOnly: _ForwardNamesOnly,
    SupportsListDir: _ForwardListDir,
    SupportsListAhead: _ForwardListAhead,
}


def _overrides(cls: type, name: str) -> bool:
    """Whether ``cls`` defines ``name`` below :class:`WrappingBackend` in its MRO."""
    return any(name in vars(base) for base in cls.__mro__[: cls.__mro__.index(WrappingBackend)])


@functools.cache
def _made_for(cls: type, present: frozenset[type]) -> type:
    """``cls`` with the forwarding mixins of the ``present`` capabilities, the others blanked.

    Only methods are blanked (``None`` hides a method, not a property, from a
    protocol check): a wrapper class overrides capability methods only.
    """
    # ``type(wrapper)(other)``: start again from the class this one was made from.
    cls = vars(cls).get("_made_from", cls)
    if _overrides(cls, "list") and not _overrides(cls, "list_batches"):
        # A wrapper that changes ``list`` sees every listing: batches would go round it.
        present = present - {SupportsListBatches}
    if _overrides(cls, "list") and not _overrides(cls, "list_names"):
        present = present - {SupportsNamesOnly}
    if not _overrides(cls, "list_ahead") and (
        _overrides(cls, "list") or _overrides(cls, "list_batches") or _overrides(cls, "list_names")
    ):
        # A listing begun ahead would go round the wrapper's own.
        present = present - {SupportsListAhead}
    mixins = tuple(_FORWARDERS[c] for c in CAPABILITIES if c in present)
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_made_from": cls,
    }
    for capability in CAPABILITIES:
        if capability in present:
            continue
        for name in members(capability):
            if any(name in vars(base) for base in cls.__mro__):
                namespace[name] = None  # the override of a capability ``inner`` lacks
    return type(cls.__name__, (cls, *mixins), namespace)
