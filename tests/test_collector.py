"""Tests of registry_gc.collector: whole-pipeline guarantees of ``collect()``.

Refusals that delete nothing, dry runs that delete nothing and list exactly what
a real run deletes, idempotence, and the progress callback. What each step
decides has its own module's tests (``test_mark.py``, ``test_plan.py``,
``test_apply.py``, ``test_report.py``, ``test_fetch.py``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import Options, ReadOnlyError, RefusedError, Status, collect
from registry_gc import _run as run_module
from registry_gc.backends import DeleteResult, LocalBackend, ReadOnlyBackend
from registry_gc.manifests import MAX_MANIFEST_SIZE

from tests.rigs.builder import OCI_INDEX, OCI_MANIFEST, RegistryBuilder, sha256
from tests.rigs.doubles import Delegating
from tests.rigs.scenarios import repushed, rich
from tests.rigs.stores import DAY, ZERO, Store, blob, lnk, rev, run

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from registry_gc.backends import Backend
    from registry_gc.layout import Digest


# -- refusal ---------------------------------------------------------------------------------


def garbage(b: RegistryBuilder) -> None:
    """Old garbage of several kinds, that any sweep would delete."""
    b.image("junk", "t")
    b.image("junk", None)
    b.blob(b"orphan")
    b.upload("junk", age=5 * DAY)


def huge_manifest() -> dict[str, Any]:
    """A well-formed OCI manifest larger than 4 MiB."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": sha256(b"{}"),
            "size": 2,
        },
        "layers": [],
        "annotations": {"pad": "x" * (MAX_MANIFEST_SIZE + 1)},
    }


REFUSALS: dict[str, Callable[[RegistryBuilder], Digest]] = {
    "corrupt-json": lambda b: b.manifest("bad", b'{"schemaVersion": 2, "mediaType": ', tag="t"),
    "over-4-MiB": lambda b: b.manifest("bad", huge_manifest(), tag="t"),
    "corrupt-untagged-without-m": lambda b: b.manifest("bad", b"\x00\x01 not json"),
}


def corrupt_child(b: RegistryBuilder) -> Digest:
    """A tagged index whose (untagged) child does not parse; returns the child."""
    child = b.manifest("bad", b"[1, 2")
    entry = {"mediaType": OCI_MANIFEST, "digest": child, "size": 5}
    b.manifest("bad", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}, "t")
    return child


REFUSALS["corrupt-child-of-live-index"] = corrupt_child


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("dry_run", [False, True])
def test_unusable_live_manifest_refuses_and_deletes_nothing(
    disk: Store, case: str, dry_run: bool
) -> None:
    """A live manifest that cannot be parsed stops the run, naming it; not one file changes."""
    b = RegistryBuilder()
    garbage(b)
    d = REFUSALS[case](b)
    b.write_local(disk.dir)
    before, dirs = disk.snapshot(), disk.dirs()
    with pytest.raises(RefusedError, match="nothing was deleted") as info:
        collect(
            disk.root,
            delete_untagged=case != "corrupt-untagged-without-m",
            grace=ZERO,
            dry_run=dry_run,
        )
    assert disk.snapshot() == before
    assert disk.dirs() == dirs
    assert len(info.value.problems) == 1
    assert d in info.value.problems[0]
    assert "'bad'" in info.value.problems[0]


def test_blobs_without_any_manifest_refuse_unless_allowed(disk: Store) -> None:
    """Blobs but not one manifest: refused (wrong root?); allow_no_manifests=True sweeps."""
    b = RegistryBuilder()
    layers = [b.layer("a") for _ in range(2)]
    orphans = [b.blob(f"orphan {i}".encode()) for i in range(2)]
    b.write_local(disk.dir)
    before = disk.snapshot()
    with pytest.raises(RefusedError, match="refusing") as info:
        collect(disk.root, grace=ZERO)
    assert "allow_no_manifests" in info.value.problems[0]
    assert disk.snapshot() == before
    r = run(disk, allow_no_manifests=True, grace=ZERO)
    assert r.deleted == {blob(x) for x in [*layers, *orphans]} | {lnk("a", x) for x in layers}


def test_root_without_a_registry_refuses_unless_allowed(tmp_path: Path) -> None:
    """A root with nothing under docker/registry/v2 is refused; allow_empty=True is a no-op run."""
    (tmp_path / "some-file").write_bytes(b"not a registry")
    with pytest.raises(RefusedError, match="no registry found"):
        collect(tmp_path)
    with pytest.raises(RefusedError, match="no registry found"):
        collect(tmp_path / "missing")
    report = collect(tmp_path, allow_empty=True)
    assert report.ok
    assert report.plan.deletions == []
    assert (tmp_path / "some-file").exists()


# -- dry run and idempotence -----------------------------------------------------------------


def test_dry_run_deletes_nothing_and_reports_what_a_real_run_deletes(disk: Store) -> None:
    """A dry run changes nothing; its listed paths are exactly what the next real run deletes."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    before, dirs = disk.snapshot(), disk.dirs()
    dry = collect(disk.root, delete_untagged=True, dry_run=True)
    assert disk.snapshot() == before
    assert disk.dirs() == dirs
    assert dry.to_dict()["dry_run"] is True
    assert {dry.status(i) for i in range(len(dry.plan.deletions))} == {Status.PLANNED}
    would = set(dry.plan.paths)
    assert len(would) > 40
    real = run(disk, delete_untagged=True)
    assert real.deleted == would
    assert dry.categories() == real.report.categories()
    assert dry.repositories() == real.report.repositories()
    assert dry.deleted_bytes == real.report.deleted_bytes


class ExplodingDeletes(Delegating):
    """Any delete (or directory removal) raises."""

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Refuse loudly."""
        raise AssertionError(f"delete called with {list(paths)[:3]}")

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        """Refuse loudly."""
        raise AssertionError(f"remove_empty_dirs called with {list(dirs)[:3]}")


def test_dry_run_never_calls_delete_on_the_backend(disk: Store) -> None:
    """A dry run through a backend whose delete would raise succeeds; a real run would not."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    before = disk.snapshot()
    backend = ExplodingDeletes(LocalBackend(disk.dir))
    report = collect(backend, delete_untagged=True, dry_run=True)
    assert report.ok
    assert report.plan.deletions
    assert disk.snapshot() == before
    with pytest.raises(AssertionError, match="delete called"):
        collect(backend, delete_untagged=True)


def test_dry_run_reads_through_a_read_only_backend(
    disk: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry run's backend is a ReadOnlyBackend, whose delete raises ReadOnlyError."""
    seen: list[Backend] = []
    real_scan = run_module.scan

    async def spy(backend: Backend, **kw: Any) -> Any:
        seen.append(backend)
        return await real_scan(backend, **kw)

    monkeypatch.setattr(run_module, "scan", spy)
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    report = collect(disk.root, delete_untagged=True, dry_run=True)
    assert report.result is None
    assert isinstance(seen[-1], ReadOnlyBackend)
    with pytest.raises(ReadOnlyError, match="refusing to delete"):
        asyncio.run(seen[-1].delete([report.plan.paths[0]]))
    assert report.plan.paths[0] in disk.files()
    collect(disk.root, delete_untagged=True)
    assert not isinstance(seen[-1], ReadOnlyBackend)


def test_second_run_deletes_nothing(store: Store) -> None:
    """Collecting again right after a run finds nothing to delete."""
    b = RegistryBuilder()
    rich(b)
    first = run(store, b, delete_untagged=True)
    assert first.deleted
    second = run(store, delete_untagged=True)
    assert second.deleted == set()
    assert second.report.plan.deletions == []
    if store.local:
        dirs = store.dirs()
        assert run(store, delete_untagged=True).deleted == set()
        assert store.dirs() == dirs


# -- progress --------------------------------------------------------------------------------


def test_collect_progress_reports_done_so_far(tmp_path: Path) -> None:
    """The progress callback's done never decreases within a phase.

    The deletion phases report what is done so far; the manifest phase passes
    each batch's size as ``done`` (and total 0), in completion order.
    """
    b = RegistryBuilder(seed=4)
    for _ in range(300):  # two read batches of manifests
        b.image("many", None, layers=0)
    b.write_local(tmp_path)
    events: list[tuple[str, int, int]] = []
    collect(tmp_path, dry_run=True, progress=lambda *e: events.append(e))
    done = [d for phase, d, _ in events if phase == "manifests"]
    assert done == sorted(done)
    assert done[-1] == 300


def test_the_listing_reports_progress_as_it_goes(tmp_path: Path) -> None:
    """The listing phase reports objects listed so far, then the total once it is known."""
    b = RegistryBuilder(seed=8)
    for _ in range(400):
        b.image("many", None, layers=1)
    b.write_local(tmp_path)
    events: list[tuple[str, int, int | None]] = []
    collect(tmp_path, dry_run=True, progress=lambda *e: events.append(e))
    listing = [(d, t) for phase, d, t in events if phase == "listing"]
    assert len(listing) >= 2, "reported while listing, not only at the end"
    assert [d for d, _ in listing] == sorted(d for d, _ in listing)
    assert listing[-1][1] == listing[-1][0] == len(b.files)
    assert all(t is None for _, t in listing[:-1])


# -- options ---------------------------------------------------------------------------------


def test_keyword_fields_override_the_options_value(store: Store) -> None:
    """collect()'s keywords change the fields of options= that they name; the others stay."""
    b = RegistryBuilder()
    _, pushes = repushed(b)
    store.write(b)
    options = Options(delete_untagged=True, grace=ZERO)
    r = run(store, options=options, delete_untagged=False)
    assert r.deleted == set()
    assert r.report.options == Options(delete_untagged=False, grace=ZERO)
    r = run(store, options=options)
    assert rev("app", pushes[0]) in r.deleted
