"""FsspecBackend: the shared suite over fsspec's memory filesystem, and what is specific to it."""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
import registry_gc
from fsspec.implementations.memory import MemoryFileSystem
from registry_gc.backends import (
    UNKNOWN_TIME,
    FsspecBackend,
    Outcome,
    SupportsDigest,
    SupportsDirectories,
    SupportsMove,
    SupportsWrite,
)
from registry_gc.testing import BLOBS, QUARANTINE, BackendSuite, blob_path, collect, run

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from registry_gc.testing import Writer


# -- memory (the generic fsspec backend) -------------------------------------------------


class TestMemory(BackendSuite):
    """FsspecBackend over fsspec's in-memory filesystem."""

    capabilities = (SupportsDigest, SupportsMove, SupportsWrite)

    @pytest.fixture
    def root(self) -> Iterator[str]:
        """A unique root in the process-wide memory filesystem, removed afterwards."""
        # The memory filesystem is one store per process: a unique root per test.
        root = f"/registry-{uuid.uuid4().hex}"
        yield root
        # Dropped straight from the store: fs.rm walks 3000 files slowly.
        fs = fsspec.filesystem("memory")
        for key in [k for k in fs.store if k.startswith(root + "/")]:
            del fs.store[key]
        fs.pseudo_dirs[:] = [
            d for d in fs.pseudo_dirs if d != root and not d.startswith(root + "/")
        ]

    @pytest.fixture
    def backend(self, root: str) -> FsspecBackend:
        """FsspecBackend over the memory filesystem."""
        return FsspecBackend(fsspec.filesystem("memory"), root)

    @pytest.fixture
    def writer(self, root: str) -> Writer:
        """Write with the memory filesystem directly."""
        fs = fsspec.filesystem("memory")

        def write(path: str, data: bytes) -> None:
            if path.endswith("/"):
                fs.mkdir(f"{root}/{path}".rstrip("/"))
            else:
                fs.pipe_file(f"{root}/{path}", data)

        return write

    def test_no_directories_of_its_own(self, backend: FsspecBackend) -> None:
        """The generic backend deletes file by file: it has no SupportsDirectories."""
        assert not isinstance(backend, SupportsDirectories)


class _TimelessMemory(MemoryFileSystem):
    """A memory filesystem that gives no modification time at all."""

    protocol = "timeless"

    def find(self, path: str, *args: Any, **kwargs: Any) -> Any:
        found = super().find(path, *args, **kwargs)
        if isinstance(found, dict):
            return {k: {x: y for x, y in v.items() if x != "created"} for k, v in found.items()}
        return found

    def modified(self, path: str) -> datetime.datetime:
        raise NotImplementedError


def test_a_store_without_timestamps_makes_everything_young() -> None:
    """A backend that cannot tell an object's time lists it as UNKNOWN_TIME: never old enough."""
    fs = _TimelessMemory(skip_instance_cache=True)
    root = f"/timeless-{uuid.uuid4().hex}"
    b = RegistryBuilder(seed=4)
    b.image("app", "t")
    b.image("app", "t")
    b.blob(b"an orphan")
    b.write_fs(fs, root)
    backend = FsspecBackend(fs, root)
    infos = run(backend, lambda: collect(backend, BLOBS))
    assert infos
    assert {i.modified for i in infos} == {UNKNOWN_TIME}
    report = registry_gc.collect(backend, delete_untagged=True, grace=datetime.timedelta(0))
    assert report.deleted_count == 0
    assert "unknown-time" in {a.kind for a in report.plan.anomalies}


class _FaultyMemory(MemoryFileSystem):
    """A memory filesystem whose copies lose their last byte, or whose deletes are refused."""

    protocol = "faulty"

    def __init__(self, fault: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault = fault

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        if self.fault == "short-copy":
            self.pipe_file(path2, self.cat_file(path1)[:-1])
        else:
            super().cp_file(path1, path2, **kwargs)

    def rm_file(self, path: str) -> None:
        if self.fault == "refused-delete":
            raise PermissionError(f"refused: {path}")
        super().rm_file(path)


@pytest.mark.parametrize("fault", ["short-copy", "refused-delete"])
def test_a_move_keeps_the_source_unless_the_copy_is_whole_and_it_can_go(fault: str) -> None:
    """A copy of the wrong size keeps the source; a refused delete says both hold the bytes."""
    fs = _FaultyMemory(fault, skip_instance_cache=True)
    root = f"/faulty-{uuid.uuid4().hex}"
    src, dst = blob_path("a"), QUARANTINE + "a"
    fs.pipe_file(f"{root}/{src}", b"layer")
    backend = FsspecBackend(fs, root)
    (result,) = run(backend, lambda: backend.move([(src, dst)]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    if fault == "short-copy":
        assert result.error == f"the copy at {dst} has 4 bytes, the source 5: source kept"
    else:
        assert result.error.startswith(f"copied to {dst}, but the source could not be deleted")
        assert "PermissionError: refused" in result.error
    assert fs.cat_file(f"{root}/{src}") == b"layer"
