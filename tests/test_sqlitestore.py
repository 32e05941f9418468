"""The benchmarks' SQLite store: the same store as on disk, and the same plan from it.

``benchmarks/sqlitestore.py`` serves a synthetic store from one SQLite file, so that a
10-million-blob store can be collected on a machine without the inodes for its files.
What its measurements say holds only if the collector sees there what it sees on a
disk: the same keys, sizes and bytes, and the same plan.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from registry_gc import StorageError, collect
from registry_gc.backends import LocalBackend, SupportsListBatches
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
    """The store is for dry runs: every delete fails, nothing changes."""
    _, db, _ = stores
    backend = sqlitestore.SQLiteBackend(db)
    results = asyncio.run(backend.delete(["docker/registry/v2/blobs/x"]))
    assert [r.ok for r in results] == [False]
