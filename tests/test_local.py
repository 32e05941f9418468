"""LocalBackend: the shared suite over a temporary directory, and what is specific to disks."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import queue
import shutil
import stat
import threading
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import StorageError
from registry_gc.backends import (
    DeleteResult,
    LocalBackend,
    Outcome,
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
    _local,
    _localscan,
    _walk,
)
from registry_gc.backends._local import _Tree
from registry_gc.backends._walk import DONE, Walk
from registry_gc.testing import (
    BLOBS,
    QUARANTINE,
    REPOS,
    BackendSuite,
    blob_path,
    collect,
    files,
    run,
)

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

    capabilities = (
        SupportsDirectories,
        SupportsDigest,
        SupportsMove,
        SupportsWrite,
        SupportsListBatches,
        SupportsListDir,
        SupportsNamesOnly,
        SupportsListAhead,
    )

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
        """A disk has directories, hashes in bounded memory, moves and writes; nothing else."""
        assert isinstance(backend, SupportsDirectories)
        assert isinstance(backend, SupportsDigest)
        assert isinstance(backend, SupportsMove)
        assert isinstance(backend, SupportsWrite)
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


# -- moves and writes on a disk ----------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links as ``-> target``), by relative path."""
    out: dict[str, bytes] = {}
    for here, _, names in os.walk(root):
        for name in names:
            full = os.path.join(here, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = b"-> " + os.readlink(full).encode()
            else:
                with open(full, "rb") as f:
                    out[rel] = f.read()
    return out


@pytest.fixture
def disk(tmp_path: Path) -> tuple[LocalBackend, Path, Path]:
    """A backend over ``tmp_path/root``, the root, and a directory outside it holding a file."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (outside / "ab").mkdir(parents=True)
    (outside / "ab" / "data").write_bytes(b"not the registry's")
    _local_writer(root)(blob_path("good"), b"good")
    return LocalBackend(root), root, outside


@pytest.fixture(params=["proc", "realpath"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Reads resolved through ``/proc/self/fd`` (Linux), or with ``os.path.realpath`` first."""
    if request.param == "realpath":
        monkeypatch.setattr(_local, "_PROC_FD", None)
    elif _local._PROC_FD is None:
        pytest.skip("no /proc/self/fd on this system")
    return str(request.param)


@pytest.mark.parametrize("how", ["file-link", "directory-link", "dangling-link", "fifo-link"])
@pytest.mark.parametrize("call", ["read", "digest"])
def test_reads_through_links_out_of_the_root_are_refused(
    disk: tuple[LocalBackend, Path, Path], resolution: str, how: str, call: str
) -> None:
    """A read or a hash through a link leading out of the root raises, naming the path.

    Whichever way the path is resolved; a link to a FIFO outside is refused
    without waiting for a writer, a dangling one as if its target existed.
    """
    backend, root, outside = disk
    blob = root / blob_path("good")
    blob.unlink()
    target = {
        "file-link": outside / "ab" / "data",
        "directory-link": outside / "ab",
        "dangling-link": outside / "gone",
        "fifo-link": outside / "fifo",
    }[how]
    if how == "fifo-link":
        os.mkfifo(target)
    if how == "directory-link":
        blob.parent.rmdir()
        os.symlink(target, blob.parent)
    else:
        os.symlink(target, blob)
    read = backend.read if call == "read" else lambda p: backend.digest(p, "sha256")
    with pytest.raises(StorageError, match="symbolic link") as e:
        run(backend, lambda: read([blob_path("good")]))
    assert e.value.path == blob_path("good"), resolution
    assert (outside / "ab" / "data").read_bytes() == b"not the registry's"


def test_reads_inside_the_root_are_the_same_either_way(
    disk: tuple[LocalBackend, Path, Path], resolution: str
) -> None:
    """A file, a link inside the root, a missing file and a directory read as before."""
    backend, root, _ = disk
    _local_writer(root)(BLOBS + "elsewhere/data", b"linked")
    os.symlink(root / BLOBS / "elsewhere" / "data", root / BLOBS / "link")
    (root / BLOBS / "dir").mkdir()
    paths = [blob_path("good"), BLOBS + "link", BLOBS + "missing"]
    got = run(backend, lambda: backend.read(paths))
    assert got == {blob_path("good"): b"good", BLOBS + "link": b"linked", BLOBS + "missing": None}
    digests = run(backend, lambda: backend.digest(paths, "sha256"))
    assert digests[BLOBS + "link"] == hashlib.sha256(b"linked").hexdigest()
    assert digests[BLOBS + "missing"] is None
    with pytest.raises(StorageError, match="it is a directory") as e:
        run(backend, lambda: backend.read([BLOBS + "dir"]))
    assert e.value.path == BLOBS + "dir", resolution


@pytest.mark.parametrize(
    "where",
    ["source-link", "source-directory-link", "destination-link", "destination-directory-link"],
)
def test_move_refuses_links_out_of_the_root(
    disk: tuple[LocalBackend, Path, Path], where: str
) -> None:
    """A source or destination reached through a link out of the root refuses the whole call."""
    backend, root, outside = disk
    (root / QUARANTINE).mkdir(parents=True)
    (root / REPOS / "a").mkdir(parents=True)
    good = (blob_path("good"), QUARANTINE + "good")
    if where == "source-link":
        os.symlink(outside / "ab" / "data", root / REPOS / "a" / "link")
        bad = (REPOS + "a/link", QUARANTINE + "link")
    elif where == "source-directory-link":
        os.symlink(outside, root / BLOBS / "sha256" / "ev")
        bad = (BLOBS + "sha256/ev/ab/data", QUARANTINE + "ev")
    elif where == "destination-link":
        os.symlink(outside / "ab" / "data", root / QUARANTINE / "taken")
        (root / REPOS / "a" / "link").write_bytes(b"sha256:a")
        bad = (REPOS + "a/link", QUARANTINE + "taken")
    else:
        os.symlink(outside, root / QUARANTINE / "out")
        (root / REPOS / "a" / "link").write_bytes(b"sha256:a")
        bad = (REPOS + "a/link", QUARANTINE + "out/ab/data")
    before, before_outside = _tree(root), _tree(outside)

    with pytest.raises(StorageError, match="leads through a symbolic link") as e:
        run(backend, lambda: backend.move([good, bad]))

    assert e.value.path in bad
    assert _tree(root) == before
    assert _tree(outside) == before_outside


def test_write_refuses_links_out_of_the_root(disk: tuple[LocalBackend, Path, Path]) -> None:
    """Writing through a directory link out of the root refuses the call; nothing is written."""
    backend, root, outside = disk
    os.symlink(outside, root / "registry-gc")
    before, before_outside = _tree(root), _tree(outside)
    items = {REPOS + "a/link": b"sha256:a", "registry-gc/ab/data": b"overwritten?"}
    with pytest.raises(StorageError, match="leads through a symbolic link") as e:
        run(backend, lambda: backend.write(items))
    assert e.value.path == "registry-gc/ab/data"
    assert _tree(root) == before
    assert _tree(outside) == before_outside


def test_a_link_inside_the_root_moves_itself(disk: tuple[LocalBackend, Path, Path]) -> None:
    """A link whose target is inside the root moves as a link; its target stays where it is."""
    backend, root, _ = disk
    (root / REPOS / "a").mkdir(parents=True)
    os.symlink(root / BLOBS, root / REPOS / "a" / "blobs-link")
    results = run(backend, lambda: backend.move([(REPOS + "a/blobs-link", QUARANTINE + "l")]))
    assert results == [DeleteResult(REPOS + "a/blobs-link", Outcome.DELETED)]
    assert os.readlink(root / QUARANTINE / "l") == str(root / BLOBS)
    assert (root / blob_path("good")).read_bytes() == b"good"


def test_move_of_a_directory_fails_and_moves_nothing(
    disk: tuple[LocalBackend, Path, Path],
) -> None:
    """Only objects move: a directory given as a source is FAILED and stays whole."""
    backend, root, _ = disk
    src = blob_path("good").rsplit("/", 1)[0]
    (result,) = run(backend, lambda: backend.move([(src, QUARANTINE + "dir")]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert "is a directory" in result.error
    assert (root / blob_path("good")).read_bytes() == b"good"
    assert not (root / QUARANTINE).exists()


def test_a_move_keeps_the_modification_time_and_mode(
    disk: tuple[LocalBackend, Path, Path],
) -> None:
    """A rename keeps the file's mtime and mode: the listing shows the source's time."""
    backend, root, _ = disk
    os.utime(root / blob_path("good"), (1_600_000_000, 1_600_000_000))
    os.chmod(root / blob_path("good"), 0o640)
    run(backend, lambda: backend.move([(blob_path("good"), QUARANTINE + "good")]))
    st = os.stat(root / QUARANTINE / "good")
    assert st.st_mtime == 1_600_000_000
    assert stat.S_IMODE(st.st_mode) == 0o640
    (info,) = run(backend, lambda: collect(backend, QUARANTINE))
    assert info.modified.timestamp() == 1_600_000_000


@pytest.fixture
def cross_device(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``os.replace`` fails with EXDEV for every move of an object (not of a temporary copy)."""
    refused: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if ".registry-gc-" not in os.fspath(src):
            refused.append((os.fspath(src), os.fspath(dst)))
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return refused


def test_a_move_across_filesystems_copies_syncs_and_unlinks(
    disk: tuple[LocalBackend, Path, Path], cross_device: list[tuple[str, str]]
) -> None:
    """On EXDEV a file is copied (time and mode kept), a link re-made, then the source unlinked."""
    backend, root, _ = disk
    big = bytes(range(256)) * 9000  # more than two copy chunks
    _local_writer(root)(blob_path("big"), big)
    os.utime(root / blob_path("big"), (1_600_000_000, 1_600_000_000))
    os.chmod(root / blob_path("big"), 0o604)
    (root / REPOS / "a").mkdir(parents=True)
    os.symlink("../../elsewhere", root / REPOS / "a" / "link")
    (root / QUARANTINE).mkdir(parents=True)
    (root / QUARANTINE / "good").write_bytes(b"an older copy")
    moves = [
        (blob_path("big"), QUARANTINE + "big"),
        (REPOS + "a/link", QUARANTINE + "deep/link"),
        (blob_path("good"), QUARANTINE + "good"),
    ]

    results = run(backend, lambda: backend.move(moves))

    assert results == [DeleteResult(src, Outcome.DELETED) for src, _ in moves]
    assert len(cross_device) == 3
    tree = _tree(root)
    assert tree == {
        QUARANTINE + "big": big,
        QUARANTINE + "deep/link": b"-> ../../elsewhere",
        QUARANTINE + "good": b"good",
    }
    st = os.stat(root / QUARANTINE / "big")
    assert (st.st_mtime, stat.S_IMODE(st.st_mode)) == (1_600_000_000, 0o604)


def test_a_short_copy_across_filesystems_keeps_the_source(
    disk: tuple[LocalBackend, Path, Path],
    cross_device: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A copy whose size is not the source's is FAILED; the source stays, no copy is left."""
    backend, root, _ = disk

    def short(source: Any, target: Any, length: int = 0) -> None:
        target.write(source.read()[:-1])

    monkeypatch.setattr(shutil, "copyfileobj", short)
    (result,) = run(backend, lambda: backend.move([(blob_path("good"), QUARANTINE + "good")]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert "short copy" in result.error
    assert cross_device
    assert _tree(root) == {blob_path("good"): b"good"}


def test_a_source_that_cannot_be_unlinked_after_the_copy_is_failed_with_both(
    disk: tuple[LocalBackend, Path, Path],
    cross_device: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the source cannot be unlinked after a complete copy, FAILED says both hold the bytes."""
    backend, root, _ = disk
    real = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path).endswith("/data"):
            raise PermissionError(errno.EACCES, "Permission denied")
        real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    (result,) = run(backend, lambda: backend.move([(blob_path("good"), QUARANTINE + "good")]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert result.error.startswith(f"copied to {QUARANTINE}good, but the source could not be")
    assert "both hold the bytes" in result.error
    assert "Permission denied" in result.error
    assert cross_device
    assert _tree(root) == {blob_path("good"): b"good", QUARANTINE + "good": b"good"}


def test_write_is_atomic_with_the_registrys_modes(disk: tuple[LocalBackend, Path, Path]) -> None:
    """A write leaves no temporary file, and files get 0666 less the umask, as the registry's."""
    backend, root, _ = disk
    umask = os.umask(0o022)
    try:
        first = {QUARANTINE + "journal": b"1\n", REPOS + "a/link": b"x"}
        run(backend, lambda: backend.write(first))
        run(backend, lambda: backend.write({QUARANTINE + "journal": b"1\n2\n"}))
    finally:
        os.umask(umask)
    assert _tree(root) == {
        blob_path("good"): b"good",
        QUARANTINE + "journal": b"1\n2\n",
        REPOS + "a/link": b"x",
    }
    assert stat.S_IMODE(os.stat(root / QUARANTINE / "journal").st_mode) == 0o644


def test_a_failed_write_raises_and_leaves_no_temporary_file(
    disk: tuple[LocalBackend, Path, Path],
) -> None:
    """Writing over a directory raises StorageError(path=) and leaves nothing behind."""
    backend, root, _ = disk
    (root / REPOS / "a" / "link").mkdir(parents=True)
    with pytest.raises(StorageError, match="cannot write") as e:
        run(backend, lambda: backend.write({REPOS + "a/link": b"sha256:a"}))
    assert e.value.path == REPOS + "a/link"
    assert _tree(root) == {blob_path("good"): b"good"}


# -- the threaded walk ------------------------------------------------------------------


class _HoldingQueue:
    """A work queue whose first queued subdirectory holds its putter until it was listed.

    That is the worst interleaving for the walk's count of directories still to
    list: another thread takes the subdirectory and finishes it while the thread
    that found it is still between queueing and counting.
    """

    def __init__(self) -> None:
        self.inner: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.listed = threading.Event()
        self.held: tuple[str, str] | None = None

    def put(self, item: tuple[str, str] | None) -> None:
        self.inner.put(item)
        if item is not None and self.held is None and item[0].endswith("sub"):
            self.held = item
            self.listed.wait(timeout=5)

    def get(self) -> tuple[str, str] | None:
        return self.inner.get()

    def get_nowait(self) -> tuple[str, str] | None:
        return self.inner.get_nowait()


class _HeldWalk(Walk):
    """A walk that lets the held subdirectory be listed before its parent goes on."""

    def __init__(self, tree: _Tree, top: str, threads: int) -> None:
        super().__init__(tree, top, threads)
        self.work = _HoldingQueue()  # type: ignore[assignment]
        self.work.put((top, top))

    def _one(self, current: str, logical: str) -> Any:
        batch = super()._one(current, logical)
        if (current, logical) == self.work.held:  # type: ignore[attr-defined]
            self.work.listed.set()  # type: ignore[attr-defined]
        return batch


def test_the_walk_ends_only_after_every_directory_was_listed(tmp_path: Path) -> None:
    """A subdirectory listed by another thread before its parent counted it ends nothing early.

    Counting after queueing let the walk end with directories unlisted: garbage
    left behind, or, under ``repositories/``, links unseen and live data deleted.
    """
    top = tmp_path / "top"
    for name in ("asub", "bsub", "csub"):
        (top / name).mkdir(parents=True)
        (top / name / "file").write_bytes(name.encode())
    walk = _HeldWalk(_Tree(str(tmp_path)), str(top), threads=2)
    walk.start(2)
    assert walk.started == 2
    listed: set[str] = set()
    done = 0
    while done < walk.started:
        item = walk.out.get(timeout=10)
        if item is DONE:
            done += 1
            continue
        assert not isinstance(item, BaseException)
        listed.update(f"{b[0]}/{n}" for b in item for n in b[1])
    assert walk.work.held is not None  # type: ignore[attr-defined]
    assert listed == {f"top/{d}/file" for d in ("asub", "bsub", "csub")}


def _tree_of_dirs(root: Path, n: int) -> Path:
    """``n`` directories of two files each under ``root/top``."""
    top = root / "top"
    for i in range(n):
        (top / f"d{i}").mkdir(parents=True)
        for f in ("a", "b"):
            (top / f"d{i}" / f).write_bytes(b"x")
    return top


def _walked(root: Path, top: Path, threads: int) -> tuple[set[str], int]:
    """Every file a walk of ``top`` lists, and how many threads it started."""

    async def listed() -> set[str]:
        out: set[str] = set()
        async for chunk in _localscan.list_batches(_Tree(str(root)), str(top), threads=threads):
            out.update(f"{b.directory}/{n}" for b in chunk for n in b.names)
        return out

    starts: list[int] = []
    original = Walk.start

    def start(self: Walk, n: int = 1) -> None:
        original(self, n)
        starts.append(self.started)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Walk, "start", start)
        names = asyncio.run(listed())
    return names, max(starts)


@pytest.mark.parametrize(("reads_grow", "expected"), [(False, 1), (True, 3)])
def test_threads_start_only_while_the_disk_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads_grow: bool, expected: int
) -> None:
    """Slow listings start more threads (up to the cap) only when the process reads the disk.

    A warm cache gains nothing from threads but their fight for the GIL, so a
    walk stays on one thread unless ``read_bytes`` grows; every file is listed
    either way.
    """
    top = _tree_of_dirs(tmp_path, 40)
    reads = iter(range(0, 10**9, 4096)) if reads_grow else iter(lambda: 4096, None)
    monkeypatch.setattr(_walk, "disk_reads", lambda: next(reads))
    monkeypatch.setattr(_walk, "SLOW_PER_ENTRY", 0.0)
    monkeypatch.setattr(_walk, "LOOK_EVERY", 0.0)
    monkeypatch.setattr(_walk, "LOOK_AFTER", 1)
    names, started = _walked(tmp_path, top, threads=3)
    assert names == {f"top/d{i}/{f}" for i in range(40) for f in ("a", "b")}
    assert started == expected


def test_a_fast_listing_stays_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However much the disk is read, listings faster than the threshold start no thread."""
    top = _tree_of_dirs(tmp_path, 40)
    reads = iter(range(0, 10**9, 4096))
    monkeypatch.setattr(_walk, "disk_reads", lambda: next(reads))
    monkeypatch.setattr(_walk, "SLOW_PER_ENTRY", 3600.0)
    monkeypatch.setattr(_walk, "LOOK_EVERY", 0.0)
    monkeypatch.setattr(_walk, "LOOK_AFTER", 1)
    names, started = _walked(tmp_path, top, threads=3)
    assert len(names) == 80
    assert started == 1


@pytest.mark.parametrize(
    ("slow_every", "read_per_look", "expected"),
    [
        (1, 4096 * 8, 3),  # every listing slow, a block read for each: a cold cache
        (1, 4096, 1),  # every listing slow, a block read in eight: not the disk's doing
        (8, 4096 * 8, 1),  # one listing in eight slow, however much is read: a few pages missing
        (3, 4096 * 8, 3),  # a third slow, and reading: the disk
    ],
)
def test_threads_start_only_for_a_walk_that_waits_for_the_disk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slow_every: int,
    read_per_look: int,
    expected: int,
) -> None:
    """A quarter or more of the listings slow, and a kilobyte read per listing, since the last look.

    A warm cache that lacks a few pages made a few listings slow and read a few
    pages: threads started for that only took the GIL from each other (a warm
    listing of the 50k store's ``repositories/``: 0.55 s on one thread, 0.72-1.3 s
    when such reads started five to eight).
    """
    top = _tree_of_dirs(tmp_path, 80)
    reads = iter(range(0, 10**12, read_per_look))
    monkeypatch.setattr(_walk, "disk_reads", lambda: next(reads))
    monkeypatch.setattr(_walk, "LOOK_EVERY", 0.0)
    listings = iter(range(10**9))
    original = _walk.Walk.grow

    def grow(self: Walk, seconds: float, entries: int) -> None:
        slow = next(listings) % slow_every == 0
        original(self, 1.0 if slow else 0.0, entries)

    monkeypatch.setattr(Walk, "grow", grow)
    names, started = _walked(tmp_path, top, threads=3)
    assert len(names) == 160
    assert started == expected


def test_the_process_reads_are_read_from_proc() -> None:
    """On Linux the walk sees how many bytes the process read from storage."""
    if not os.path.exists("/proc/self/io"):
        pytest.skip("no /proc/self/io on this system: the walk then grows on slowness alone")
    reads = _walk.disk_reads()
    assert isinstance(reads, int)
    assert reads >= 0
