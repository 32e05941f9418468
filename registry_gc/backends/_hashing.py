"""Hashing objects through any backend: streaming where it can, reading where it cannot.

``registry-gc fsck --verify-blobs`` hashes every blob, and layers can be
gigabytes: reading one whole into memory (``Backend.read``) is the last
resort. A backend that can stream implements
:class:`~registry_gc.backends.SupportsDigest`; :func:`digest_paths` uses it
when present and otherwise falls back to reading one object at a time
(correct, but each object is held in memory while it is hashed).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

# Re-exported: the capability was defined here before it was public.
from ._protocols import SupportsDigest

if TYPE_CHECKING:
    from collections.abc import Sequence

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
