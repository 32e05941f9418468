"""Reading many small objects: in batches, several at once, in bounded memory.

Every reader of many objects goes through :func:`read_each`: the inventory's
links, the manifests, image configs, ``check``'s links.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from .backends import Backend

__all__ = ["BATCH_BYTES", "PARALLEL_BATCHES", "READ_BATCH", "read_each"]

#: Objects asked of the backend in one ``read`` call, at most.
READ_BATCH = 256
#: Bytes asked for in one ``read`` call, at most (one larger object goes alone).
BATCH_BYTES = 8 * 1024 * 1024
#: ``read`` calls in flight at once (the backend bounds its own requests).
PARALLEL_BATCHES = 8


def _batches(paths: Iterable[str], size_of: Callable[[str], int]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for p in paths:
        n = size_of(p)
        if batch and (len(batch) >= READ_BATCH or size + n > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += n
    if batch:
        yield batch


async def read_each(
    backend: Backend,
    paths: Iterable[str],
    consume: Callable[[str, bytes | None], None],
    *,
    size_of: Callable[[str], int] | None = None,
    tick: Callable[[int], None] | None = None,
) -> None:
    """Read ``paths`` in batches, several at once, handing each object to ``consume``.

    ``consume(path, data)`` gets ``None`` for a missing object. It is called
    while its batch is held, so at most ``PARALLEL_BATCHES * BATCH_BYTES`` of
    bodies are in memory when ``size_of`` says how large each object is (a
    small default otherwise: links, configs). ``tick(n)`` follows each batch.
    Every reader of many objects goes through here: links, manifests, configs.
    """
    sem = asyncio.Semaphore(PARALLEL_BATCHES)
    sizes = size_of or (lambda _: BATCH_BYTES // READ_BATCH)

    async def one(batch: list[str]) -> None:
        async with sem:
            got = await backend.read(batch)
            for p in batch:
                consume(p, got.get(p))
            del got
        if tick is not None:
            tick(len(batch))

    await asyncio.gather(*(one(b) for b in _batches(paths, sizes)))
