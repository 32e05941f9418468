"""LocalBackend: the shared suite over a temporary directory, and what is specific to disks."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from registry_gc import StorageError
from registry_gc.backends import (
    DeleteResult,
    LocalBackend,
    Outcome,
    SupportsDigest,
    SupportsDirectories,
    SupportsMultipartUploads,
    SupportsRequestCounts,
)
from registry_gc.testing import BLOBS, REPOS, BackendSuite, collect, files, run

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc.testing import Writer


# -- local disk ------------------------------------------------------------------------


def _local_writer(root: Path) -> Writer:
    def write(path: str, data: bytes) -> None:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return write


class TestLocal(BackendSuite):
    """LocalBackend over a temporary directory."""

    capabilities = (SupportsDirectories, SupportsDigest)

    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalBackend:
        """LocalBackend over ``tmp_path/root``."""
        return LocalBackend(tmp_path / "root")

    @pytest.fixture
    def writer(self, tmp_path: Path) -> Writer:
        """Write files under ``tmp_path/root``."""
        return _local_writer(tmp_path / "root")

    def test_symlink_out_of_the_root_is_never_descended(
        self, tmp_path: Path, writer: Writer
    ) -> None:
        """A symlinked directory leading out of the root stops the listing with StorageError."""
        outside = tmp_path / "outside"
        (outside / "secret").mkdir(parents=True)
        (outside / "secret" / "data").write_bytes(b"do not touch")
        writer(REPOS + "a/_layers/sha256/ab/link", b"sha256:ab")
        os.symlink(outside / "secret", tmp_path / "root" / REPOS / "evil")
        backend = LocalBackend(tmp_path / "root")
        with pytest.raises(StorageError, match=f"{REPOS}evil is a symbolic link"):
            run(backend, lambda: collect(backend, REPOS))
        assert (outside / "secret" / "data").read_bytes() == b"do not touch"

    def test_reading_a_symlink_out_of_the_root_is_refused(
        self, tmp_path: Path, writer: Writer
    ) -> None:
        """Reading through a symlink to a file outside the root raises StorageError."""
        target = tmp_path / "target"
        target.write_bytes(b"sha256:" + b"0" * 64)
        writer(REPOS + "a/", b"")
        os.symlink(target, tmp_path / "root" / REPOS / "a" / "link")
        backend = LocalBackend(tmp_path / "root")
        with pytest.raises(StorageError, match="symbolic link"):
            run(backend, lambda: backend.read([REPOS + "a/link"]))

    def test_symlinks_inside_the_root_are_seen_as_the_registry_sees_them(
        self, tmp_path: Path, writer: Writer
    ) -> None:
        """A link to a place inside the root but outside the tree is followed, under its name."""
        elsewhere = tmp_path / "root" / "more-blobs" / "ab"
        elsewhere.mkdir(parents=True)
        (elsewhere / "abcd").mkdir()
        (elsewhere / "abcd" / "data").write_bytes(b"blob")
        writer(BLOBS + "sha256/00/0000/data", b"other")
        os.symlink(elsewhere, tmp_path / "root" / BLOBS / "sha256" / "ab")
        backend = LocalBackend(tmp_path / "root")
        listed = files(run(backend, lambda: collect(backend, BLOBS)))
        assert set(listed) == {BLOBS + "sha256/ab/abcd/data", BLOBS + "sha256/00/0000/data"}
        got = run(backend, lambda: backend.read([BLOBS + "sha256/ab/abcd/data"]))
        assert got == {BLOBS + "sha256/ab/abcd/data": b"blob"}

    def test_two_links_to_one_directory_are_refused(self, tmp_path: Path, writer: Writer) -> None:
        """Two links to one directory (inside the root, outside the tree) stop the listing."""
        shared = tmp_path / "root" / "shared"
        (shared / "ab").mkdir(parents=True)
        (shared / "ab" / "data").write_bytes(b"blob")
        writer(REPOS + "a/", b"")
        os.symlink(shared, tmp_path / "root" / REPOS / "a" / "_layers")
        os.symlink(shared, tmp_path / "root" / REPOS / "b")
        backend = LocalBackend(tmp_path / "root")
        with pytest.raises(StorageError, match="two names"):
            run(backend, lambda: collect(backend, REPOS))

    def test_a_link_aliasing_part_of_the_tree_is_refused(
        self, tmp_path: Path, writer: Writer
    ) -> None:
        """A link to something the tree already holds (two names, one data) stops the listing."""
        writer(BLOBS + "sha256/ab/abcd/data", b"blob")
        os.symlink(tmp_path / "root" / BLOBS / "sha256" / "ab", tmp_path / "root" / BLOBS / "ab")
        backend = LocalBackend(tmp_path / "root")
        with pytest.raises(StorageError, match="two names") as e:
            run(backend, lambda: collect(backend, BLOBS))
        assert BLOBS + "ab" in str(e.value)

    def test_deleting_a_symlink_removes_the_link_not_the_target(
        self, tmp_path: Path, writer: Writer
    ) -> None:
        """Deleting a symlink unlinks the link itself; the target (file or directory) survives."""
        target_file = tmp_path / "target"
        target_file.write_bytes(b"keep me")
        target_dir = tmp_path / "target-dir"
        target_dir.mkdir()
        (target_dir / "data").write_bytes(b"keep me too")
        writer(REPOS + "a/", b"")
        os.symlink(target_file, tmp_path / "root" / REPOS / "a" / "file-link")
        os.symlink(target_dir, tmp_path / "root" / REPOS / "a" / "dir-link")
        backend = LocalBackend(tmp_path / "root")
        paths = [REPOS + "a/file-link", REPOS + "a/dir-link"]
        results = run(backend, lambda: backend.delete(paths))
        assert results == [DeleteResult(p, Outcome.DELETED) for p in paths]
        assert not (tmp_path / "root" / REPOS / "a" / "file-link").is_symlink()
        assert not (tmp_path / "root" / REPOS / "a" / "dir-link").is_symlink()
        assert target_file.read_bytes() == b"keep me"
        assert (target_dir / "data").read_bytes() == b"keep me too"

    def test_capabilities(self, backend: LocalBackend) -> None:
        """A disk has directories of its own and hashes in bounded memory; nothing else."""
        assert isinstance(backend, SupportsDirectories)
        assert isinstance(backend, SupportsDigest)
        assert not isinstance(backend, SupportsMultipartUploads)
        assert not isinstance(backend, SupportsRequestCounts)

    # Listing empty directories: the suite's test_directories_empty_ones_are_listed.

    def test_remove_empty_dirs(self, tmp_path: Path, writer: Writer) -> None:
        """remove_empty_dirs removes empty directories, keeps non-empty ones, on the disk itself."""
        writer(REPOS + "a/b/c/", b"")
        writer(REPOS + "full/link", b"x")
        backend = LocalBackend(tmp_path / "root")
        dirs = [REPOS + "a/b/c", REPOS + "a/b/", REPOS + "full", REPOS + "never"]
        results = run(backend, lambda: backend.remove_empty_dirs(dirs))
        assert [r.outcome for r in results] == [
            Outcome.DELETED,
            Outcome.DELETED,
            Outcome.NOT_EMPTY,
            Outcome.MISSING,
        ]
        assert [r.path for r in results] == dirs
        assert not (tmp_path / "root" / REPOS / "a" / "b").exists()
        assert (tmp_path / "root" / REPOS / "a").is_dir()
        assert (tmp_path / "root" / REPOS / "full" / "link").read_bytes() == b"x"
