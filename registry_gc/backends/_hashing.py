"""Hashing objects through any backend: streaming where it can, reading where it cannot.

``registry-gc fsck --verify-blobs`` hashes every blob, and layers can be
gigabytes: reading one whole into memory (``Backend.read``) is the last
resort. A backend that can stream implements
:class:`~registry_gc.backends.SupportsDigest`; :func:`digest_paths` uses it
when present and otherwise falls back to reading one object at a time
(correct, but each object is held in memory while it is hashed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

# Re-exported: the capability was defined here before it was public.
from ..layout import blob_path
from ._protocols import SupportsDigest

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..layout import Digest
    from ._protocols import Backend

__all__ = ["CHUNK_SIZE", "SupportsDigest", "digest_paths", "new_hash", "streaming"]

log = logging.getLogger(__name__)

#: Bytes read at a time while hashing a stream.
CHUNK_SIZE = 1024 * 1024

_ALGORITHMS = frozenset({"sha256", "sha384", "sha512"})


def new_hash(algorithm: str) -> hashlib._Hash:
    """A fresh hash object for ``sha256``, ``sha384`` or ``sha512`` (anything else raises)."""
    if algorithm not in _ALGORITHMS:
        msg = f"unsupported digest algorithm {algorithm!r}: use sha256, sha384 or sha512"
        raise ValueError(msg)
    return hashlib.new(algorithm)


def streaming(backend: Backend) -> SupportsDigest | None:
    """The backend itself when it can hash in bounded memory, else ``None``.

    Wrappers forward the capability: a read-only backend over a streaming
    one streams too (hashing only reads).
    """
    return backend if isinstance(backend, SupportsDigest) else None


async def digest_paths(
    backend: Backend, paths: Sequence[str], algorithm: str
) -> dict[str, str | None]:
    """Hash each object of ``backend`` at ``paths``: path → hex digest, ``None`` when missing.

    Streams through :class:`SupportsDigest` when the backend has it; otherwise
    reads the objects one at a time.
    """
    new_hash(algorithm)  # validate before any I/O
    capable = streaming(backend)
    if capable is not None:
        return await capable.digest(paths, algorithm)
    out: dict[str, str | None] = {}
    for path in paths:
        data = (await backend.read([path])).get(path)
        if data is None:
            out[path] = None
            continue
        h = new_hash(algorithm)
        h.update(data)
        out[path] = h.hexdigest()
    return out


#: Blobs given to one ``digest`` call, and calls in flight at once.
HASH_BATCH = 8
PARALLEL_HASHES = 4


async def hash_blobs(
    backend: Backend,
    digests: Sequence[Digest],
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[Digest, str | None]:
    """Hash blobs (by digest) through ``backend``; digest → hex, ``None`` for a missing one.

    Streams when the backend can (:class:`SupportsDigest`), else reads each
    blob whole; ``progress("hashing", done, total)`` follows each batch.
    """
    if streaming(backend) is None and digests:
        log.warning(
            "%s cannot stream blobs: each blob is read whole into memory to be hashed",
            backend.url,
        )
    by_algorithm: dict[str, list[Digest]] = {}
    for d in digests:
        by_algorithm.setdefault(d.algorithm, []).append(d)
    sem = asyncio.Semaphore(PARALLEL_HASHES)
    out: dict[Digest, str | None] = {}
    total = len(digests)

    async def batch(algorithm: str, chunk: Sequence[Digest]) -> None:
        async with sem:
            got = await digest_paths(backend, [blob_path(d) for d in chunk], algorithm)
        for d in chunk:
            out[d] = got.get(blob_path(d))
        if progress is not None:
            progress("hashing", len(out), total)

    await asyncio.gather(
        *(
            batch(alg, ds[i : i + HASH_BATCH])
            for alg, ds in by_algorithm.items()
            for i in range(0, len(ds), HASH_BATCH)
        )
    )
    return out
