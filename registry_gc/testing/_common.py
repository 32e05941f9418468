"""What the backend suite's tests share: the paths they use, and helpers to drive a backend."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar

import pytest

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from ..backends import Backend, ObjectInfo

__all__ = [
    "BLOBS",
    "ESCAPING",
    "QUARANTINE",
    "REFUSED",
    "REPOS",
    "V2",
    "Writer",
    "blob_path",
    "collect",
    "deselect_without_capabilities",
    "files",
    "needs",
    "run",
    "skip_without",
    "write_many",
]

#: ``write(path, data)``: puts an object in the store, bypassing the backend.
Writer: TypeAlias = Callable[[str, bytes], None]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

V2 = "docker/registry/v2/"
BLOBS = V2 + "blobs/"
REPOS = V2 + "repositories/"
#: Paths that would leave the registry root.
ESCAPING = ("../outside", "/docker/registry/v2/x", "docker/registry/v2/../../../etc/passwd")
#: Every path a backend refuses (as a prefix to list too, but for the empty path).
REFUSED = (*ESCAPING, "docker/registry/v2/a\x00b", "")
#: Where moved objects go in the tests: outside the registry's tree, as live mode's quarantine.
QUARANTINE = "registry-gc/quarantine/run-1/"


def blob_path(seed: str) -> str:
    """The path of a blob's data for a digest derived from ``seed``."""
    hexdigest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{BLOBS}sha256/{hexdigest[:2]}/{hexdigest}/data"


def run(backend: Backend, fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``fn()`` in a fresh event loop and close the backend in that loop."""

    async def main() -> _T:
        try:
            return await fn()
        finally:
            await backend.aclose()

    return asyncio.run(main())


async def collect(backend: Backend, prefix: str) -> list[ObjectInfo]:
    """Every object a listing of ``prefix`` yields, in the order yielded."""
    return [info async for info in backend.list(prefix)]


def needs(*capabilities: type) -> Callable[[_F], _F]:
    """Mark a test as one of these capabilities' (it runs when the backend has any of them)."""

    def mark(fn: _F) -> _F:
        fn.__registry_gc_needs__ = capabilities  # type: ignore[attr-defined]
        return fn

    return mark


def deselect_without_capabilities(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the capability tests a suite's ``capabilities`` say do not apply.

    Call it from ``pytest_collection_modifyitems`` in a ``conftest.py``: a
    subclass of :class:`BackendSuite` that declares ``capabilities`` then
    runs exactly the tests that apply to its backend (the others are
    *deselected*, not skipped), and a test checks the declaration against
    what the backend really implements. Without the hook, or the declaration,
    the tests of a capability the backend lacks skip at run time.
    """
    kept, dropped = [], []
    for item in items:
        wanted = getattr(getattr(item, "function", None), "__registry_gc_needs__", None)
        declared = getattr(getattr(item, "cls", None), "capabilities", None)
        if wanted and declared is not None and not set(wanted) & set(declared):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def skip_without(backend: object, capability: type) -> NoReturn:
    """Skip the calling test: ``backend`` lacks the optional ``capability``."""
    pytest.skip(f"{type(backend).__name__} does not implement {capability.__name__}")


def files(infos: list[ObjectInfo]) -> dict[str, ObjectInfo]:
    """The listed objects that are not (empty) directories, by path."""
    return {i.path: i for i in infos if not i.is_dir}


def write_many(writer: Writer, items: dict[str, bytes]) -> None:
    """Write many objects with a few threads (object stores are latency-bound)."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(writer, p, d) for p, d in items.items()]:
            future.result()
