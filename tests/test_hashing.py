"""Streaming digests: the backends' capability and the fallback that reads whole objects."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import TYPE_CHECKING

import fsspec
import pytest
from registry_gc.backends import FsspecBackend, LocalBackend, ReadOnlyBackend, open_backend
from registry_gc.backends._hashing import SupportsDigest, digest_paths, new_hash, streaming

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path


def test_local_digest_streams_in_chunks(tmp_path: Path) -> None:
    """LocalBackend.digest hashes a file larger than one chunk; a missing file is None."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big").write_bytes(data)
    backend = LocalBackend(tmp_path)
    assert isinstance(backend, SupportsDigest)
    got = asyncio.run(backend.digest(["big", "nope"], "sha512"))
    assert got == {"big": hashlib.sha512(data).hexdigest(), "nope": None}


def test_fsspec_digest() -> None:
    """FsspecBackend.digest hashes through fs.open."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/hashing/a", b"abc")
    try:
        got = asyncio.run(FsspecBackend(fs, "/hashing").digest(["a", "b"], "sha256"))
        assert got == {"a": hashlib.sha256(b"abc").hexdigest(), "b": None}
    finally:
        fs.rm("/hashing", recursive=True)


class _ReadOnlyish:
    """A backend with read but no streaming digest."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.url = inner.url
        self.reads: list[list[str]] = []

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        self.reads.append(list(paths))
        return await self.inner.read(paths)


def test_digest_falls_back_to_reading_one_object_at_a_time(tmp_path: Path) -> None:
    """A backend without the capability is hashed by reading each object alone."""
    (tmp_path / "x").write_bytes(b"x")
    backend = _ReadOnlyish(LocalBackend(tmp_path))
    assert streaming(backend) is None  # type: ignore[arg-type]
    got = asyncio.run(digest_paths(backend, ["x", "y"], "sha256"))  # type: ignore[arg-type]
    assert got == {"x": hashlib.sha256(b"x").hexdigest(), "y": None}
    assert backend.reads == [["x"], ["y"]]


def test_read_only_wrapper_keeps_streaming(tmp_path: Path) -> None:
    """Hashing only reads: a ReadOnlyBackend over a streaming backend streams too."""
    (tmp_path / "x").write_bytes(b"x")
    ro = ReadOnlyBackend(LocalBackend(tmp_path))
    assert streaming(ro) is ro
    assert asyncio.run(digest_paths(ro, ["x"], "sha256")) == {"x": hashlib.sha256(b"x").hexdigest()}


def test_only_registry_algorithms_are_hashed() -> None:
    """sha256, sha384, sha512; anything else is refused before any read."""
    assert new_hash("sha384").name == "sha384"
    with pytest.raises(ValueError, match="md5"):
        new_hash("md5")


def test_open_backend_local_supports_digest(tmp_path: Path) -> None:
    """The backends registry-gc opens for a path stream their hashes."""
    assert isinstance(open_backend(tmp_path), SupportsDigest)
