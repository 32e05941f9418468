"""The benchmarks' SQLite store: the same store as on disk, and the same plan from it.

``benchmarks/sqlitestore.py`` serves a synthetic store from one SQLite file, so that a
10-million-blob store can be collected on a machine without the inodes for its files.
What its measurements say holds only if the collector sees there what it sees on a
disk: the same keys, sizes and bytes, and the same plan.
"""

from __future__ import annotations

import asyncio
import datetime
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from registry_gc import StorageError, collect
from registry_gc.backends import LocalBackend, Outcome, SupportsListBatches
from registry_gc.plan import Category

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import sqlitestore
import synth

if TYPE_CHECKING:
    from registry_gc.backends import Backend

#: About 4 000 blobs: 11 repositories, every kind of object synth makes.
SPEC = synth.Spec.for_blobs(4000, seed=3)
NO_GRACE = datetime.timedelta(0)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, synth.Expected]:
    """The same spec written to a directory and to a SQLite file."""
    base = tmp_path_factory.mktemp("stores")
    disk, db = base / "disk", base / "store.db"
    expected = synth.write_local(SPEC, str(disk))
    assert sqlitestore.write_sqlite(SPEC, db).counts() == expected.counts()
    return disk, db, expected


def _listed(backend: Backend, *, batches: bool) -> dict[str, int]:
    async def run() -> dict[str, int]:
        out: dict[str, int] = {}
        if batches:
            assert isinstance(backend, SupportsListBatches)
            async for chunk in backend.list_batches(""):
                for b in chunk:
                    for name, size in zip(b.names, b.sizes, strict=True):
                        out[f"{b.directory}/{name}" if b.directory else name] = size
        else:
            async for info in backend.list(""):
                out[info.path] = info.size
        await backend.aclose()
        return out

    return asyncio.run(run())


def _batch_shapes(backend: Backend, prefix: str) -> set[tuple[str, str]]:
    """``(directory, name)`` of every object listed in batches under ``prefix``."""

    async def run() -> set[tuple[str, str]]:
        assert isinstance(backend, SupportsListBatches)
        out = {
            (b.directory, n)
            async for chunk in backend.list_batches(prefix)
            for b in chunk
            for n in b.names
        }
        await backend.aclose()
        return out

    return asyncio.run(run())


def test_the_sqlite_store_lists_the_keys_and_sizes_of_the_disk_store(
    stores: tuple[Path, Path, synth.Expected],
) -> None:
    """Both listings give every key of the disk store, with its size, and nothing else."""
    disk, db, expected = stores
    on_disk = _listed(LocalBackend(disk), batches=True)
    assert len(on_disk) == expected.keys
    assert _listed(sqlitestore.SQLiteBackend(db), batches=True) == on_disk
    assert _listed(sqlitestore.SQLiteBackend(db), batches=False) == on_disk


def test_batches_are_grouped_by_directory_as_the_local_walk_groups_them(
    stores: tuple[Path, Path, synth.Expected],
) -> None:
    """A digest directory's one file is named ``<hex>/data`` or ``<hex>/link`` in the one above."""
    disk, db, _ = stores
    for prefix in ("docker/registry/v2/blobs", "docker/registry/v2/repositories"):
        local = _batch_shapes(LocalBackend(disk), prefix)
        assert _batch_shapes(sqlitestore.SQLiteBackend(db), prefix) == local


def test_the_sqlite_store_reads_the_bytes_the_disk_store_holds(
    stores: tuple[Path, Path, synth.Expected],
) -> None:
    """Every link, upload file and JSON blob reads as on disk; a missing path reads None."""
    disk, db, _ = stores
    backend = sqlitestore.SQLiteBackend(db)
    paths = [
        p.relative_to(disk).as_posix()
        for p in disk.rglob("*")
        if p.is_file() and ("/blobs/" not in p.as_posix() or p.read_bytes().startswith(b"{"))
    ]
    got = asyncio.run(backend.read([*paths, "docker/registry/v2/nothing/here"]))
    assert got.pop("docker/registry/v2/nothing/here") is None
    assert got == {p: (disk / p).read_bytes() for p in paths}
    asyncio.run(backend.aclose())


def test_reading_a_layer_whose_bytes_are_not_stored_raises(
    stores: tuple[Path, Path, synth.Expected],
) -> None:
    """Layer bytes are not kept: reading one is an error, never wrong bytes."""
    disk, db, _ = stores
    layer = next(
        p.relative_to(disk).as_posix()
        for p in (disk / synth.V2 / "blobs").rglob("data")
        if not p.read_bytes().startswith(b"{")
    )
    backend = sqlitestore.SQLiteBackend(db)
    with pytest.raises(StorageError, match="not stored"):
        asyncio.run(backend.read([layer]))


def test_a_dry_run_plans_the_same_deletions_from_either_store(
    stores: tuple[Path, Path, synth.Expected],
) -> None:
    """The same deletions (category, reason, paths, size) and the same report counts."""
    disk, db, expected = stores
    reports = [
        collect(root, dry_run=True, delete_untagged=True, grace=NO_GRACE)
        for root in (LocalBackend(disk), sqlitestore.SQLiteBackend(db))
    ]
    plans = [
        sorted((d.category.value, str(d.reason), tuple(d.paths), d.size) for d in r.plan.deletions)
        for r in reports
    ]
    assert plans[0] == plans[1]
    assert plans[0]
    on_disk, in_sqlite = reports
    assert on_disk.ok
    assert in_sqlite.ok
    assert in_sqlite.categories() == on_disk.categories()
    assert in_sqlite.deleted_bytes == on_disk.deleted_bytes
    assert in_sqlite.manifests_read == on_disk.manifests_read
    assert in_sqlite.inventory.objects == on_disk.inventory.objects == expected.keys
    assert len(in_sqlite.inventory.blobs) == expected.blobs
    blobs = {p for d in in_sqlite.plan.by_category(Category.BLOB) for p in d.paths}
    assert blobs == {synth.blob_key(b) for b in expected.all_blobs - expected.live}


def test_the_store_records_its_spec_and_counts(stores: tuple[Path, Path, synth.Expected]) -> None:
    """``store_meta`` gives back what the generator made, for a run that reuses the file."""
    _, db, expected = stores
    meta = sqlitestore.store_meta(db)
    assert meta["counts"] == expected.counts()
    assert synth.Spec(**meta["spec"]) == SPEC


def test_deleting_is_refused(stores: tuple[Path, Path, synth.Expected]) -> None:
    """Read-only (the default), every delete fails and nothing changes."""
    _, db, expected = stores
    backend = sqlitestore.SQLiteBackend(db)
    key = synth.blob_key(next(iter(expected.live)))
    results = asyncio.run(backend.delete([key]))
    assert [r.ok for r in results] == [False]
    assert len(_listed(sqlitestore.SQLiteBackend(db), batches=True)) == expected.keys


def test_a_writable_store_deletes_rows_and_says_which_were_missing(
    stores: tuple[Path, Path, synth.Expected], tmp_path: Path
) -> None:
    """``writable``: a row deleted is ``DELETED``, a path without one ``MISSING``; the rest stay."""
    _, db, expected = stores
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    key = synth.blob_key(next(iter(expected.live)))
    absent = "docker/registry/v2/blobs/sha256/00/" + "0" * 64 + "/data"
    backend = sqlitestore.SQLiteBackend(copy, writable=True)
    results = asyncio.run(backend.delete([key, absent]))
    assert [(r.path, r.outcome) for r in results] == [
        (key, Outcome.DELETED),
        (absent, Outcome.MISSING),
    ]
    listed = _listed(sqlitestore.SQLiteBackend(copy), batches=True)
    assert key not in listed
    assert len(listed) == expected.keys - 1


def test_a_real_run_leaves_the_same_keys_in_either_store(
    stores: tuple[Path, Path, synth.Expected], tmp_path: Path
) -> None:
    """A real run on a writable copy deletes what it deletes on the disk: the same keys remain.

    What the 10M store's real run (memory only) stands on: the SQLite store
    is collected as the disk is, deletions included.
    """
    disk, db, expected = stores
    disk_copy, db_copy = tmp_path / "disk", tmp_path / "store.db"
    shutil.copytree(disk, disk_copy, symlinks=True)
    shutil.copyfile(db, db_copy)
    reports = [
        collect(backend, delete_untagged=True, grace=NO_GRACE)
        for backend in (LocalBackend(disk_copy), sqlitestore.SQLiteBackend(db_copy, writable=True))
    ]
    assert all(r.ok for r in reports)
    assert reports[0].deleted_count == reports[1].deleted_count > 0
    left_on_disk = {
        p.relative_to(disk_copy).as_posix(): p.stat().st_size
        for p in disk_copy.rglob("*")
        if p.is_file()
    }
    left_in_sqlite = _listed(sqlitestore.SQLiteBackend(db_copy), batches=True)
    assert left_in_sqlite == left_on_disk
    blobs = {k for k in left_in_sqlite if k.startswith(f"{synth.V2}/blobs/")}
    assert blobs == {synth.blob_key(b) for b in expected.live}
