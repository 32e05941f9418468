"""What every command does first: open the storage, list it, read its manifests.

Private plumbing shared by :func:`~registry_gc.collect`,
:func:`~registry_gc.remove`, :func:`~registry_gc.disk_usage`,
:func:`~registry_gc.list_images` and :func:`~registry_gc.check`.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, TypeAlias

from ._errors import RefusedError
from .backends import Backend, ReadOnlyBackend, open_backend
from .fetch import fetch_manifests
from .inventory import scan
from .layout import V2_PREFIX

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

    from .fetch import ManifestTable
    from .inventory import Inventory
    from .manifest_cache import ManifestCache

__all__ = ["ProgressCallback", "Root", "Timings", "open_root", "refuse_empty", "survey"]

#: ``progress(phase, done, total)``: ``done`` items of ``phase`` so far, of ``total``
#: known so far (``None`` while unknown). Phases: ``listing``, ``manifests``, ``configs``,
#: ``links``, ``hashing`` and the deletion phases (``tag``, ``revision+tag-index``, …).
ProgressCallback: TypeAlias = "Callable[[str, int, int | None], None]"

#: A registry root: a local path, an fsspec URL, or an open backend.
Root: TypeAlias = "str | os.PathLike[str] | Backend"


def open_root(
    root: Root, storage_options: Mapping[str, Any] | None = None, *, read_only: bool = False
) -> Backend:
    """The backend of ``root``; wrapped so that any delete raises when ``read_only``."""
    backend = root if isinstance(root, Backend) else open_backend(root, storage_options)
    if read_only and not isinstance(backend, ReadOnlyBackend):
        backend = ReadOnlyBackend(backend)
    return backend


def refuse_empty(inventory: Inventory, *, allow_empty: bool) -> None:
    """Raise :class:`RefusedError` when the root holds no registry, unless allowed."""
    if inventory.empty and not allow_empty:
        msg = (
            f"no registry found at {inventory.url}: nothing under {V2_PREFIX}. Give the "
            "registry's rootdirectory (the directory that holds docker/registry/v2), or "
            "allow an empty root (allow_empty) if the registry is really empty"
        )
        raise RefusedError(msg, [msg], path=inventory.url)


class Timings(dict[str, float]):
    """Seconds per step of a run, in the order the steps ran."""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step ``name`` (added to what it already took)."""
        t = time.monotonic()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.monotonic() - t

    def total(self) -> float:
        """The sum of every step."""
        return sum(v for k, v in self.items() if k != "total")


async def survey(
    backend: Backend,
    *,
    allow_empty: bool = False,
    narrow: Callable[[Inventory], Inventory] | None = None,
    progress: ProgressCallback | None = None,
    timings: Timings | None = None,
    cache: ManifestCache | None = None,
) -> tuple[Inventory, ManifestTable]:
    """List the store, refuse an empty root (unless allowed), and read its manifests.

    ``narrow`` turns the inventory into the part whose manifests are read (the
    repositories a command was asked about); what it returns is returned.
    ``cache`` gives the manifests and tag links it holds and keeps those read; a
    survey of the whole store (no ``narrow``) then has it forget what it did not use.
    """
    timings = timings if timings is not None else Timings()
    with timings.step("inventory"):
        inventory = await scan(backend, progress=progress, cache=cache)
    refuse_empty(inventory, allow_empty=allow_empty)
    if narrow is not None:
        inventory = narrow(inventory)
    with timings.step("manifests"):
        manifests = await fetch_manifests(
            backend,
            inventory,
            progress=(lambda done, total: progress("manifests", done, total)) if progress else None,
            cache=cache,
        )
        if cache is not None and narrow is None:
            cache.forget_unused()
    return inventory, manifests
