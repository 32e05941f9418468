"""Tests of registry_gc.apply: the deletion order, interruptions, per-path failures, directories.

Through ``collect()`` on local builder stores, with backends that crash, fail
some paths, or check on every blob deletion that no link still names it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import apply as apply_module
from registry_gc import collect
from registry_gc.backends import DeleteResult, LocalBackend, Outcome
from registry_gc.layout import (
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    classify,
    parse_blob_path,
)
from registry_gc.plan import Category

from tests.rigs import planfiles
from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.doubles import Delegating, FailSome
from tests.rigs.scenarios import rich
from tests.rigs.stores import ZERO, R, Store, blob, blobs_of, run

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


# -- directories -----------------------------------------------------------------------------


def test_empty_directories_of_old_repositories_are_removed(disk: Store) -> None:
    """Leftover empty directories (a deleted repository's skeleton) are removed."""
    b = RegistryBuilder()
    b.image("ok", "t")
    b.write_local(disk.dir)
    skeleton = disk.dir / "docker/registry/v2/repositories/ghost/_manifests/tags"
    skeleton.mkdir(parents=True)
    r = run(disk, grace=ZERO)
    assert r.deleted == set()
    assert not any("ghost" in d for d in disk.dirs())
    assert "docker/registry/v2/repositories/ok/_manifests/tags/t/current" in disk.dirs()


class SlowDirs(Delegating):
    """Removes ``ghost0``'s directories later the deeper they are; records overlap."""

    def __init__(self, inner: LocalBackend) -> None:
        super().__init__(inner)
        self.in_flight = 0
        self.most = 0

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        """For ``ghost0``, wait 10 ms per level of depth; then remove."""
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            slow = [d.count("/") for d in dirs if "/ghost0/" in d]
            await asyncio.sleep(0.01 * max(slow, default=0))
            return list(await self.inner.remove_empty_dirs(dirs))
        finally:
            self.in_flight -= 1


def test_directories_removed_in_parallel_leave_none_empty(
    disk: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of directories run in parallel, yet every directory left empty is removed.

    One directory per batch, one repository's slower the deeper they are: a
    parent tried while a child of it is still in flight would stay behind.
    """
    monkeypatch.setattr(apply_module, "DELETE_BATCH", 1)
    b = RegistryBuilder()
    b.image("ok", "t")
    for n in range(3):
        b.image(f"gone/n{n}/deep", "t")
    b.write_local(disk.dir)
    v2 = disk.dir / "docker/registry/v2/repositories"
    for n in range(3):
        (v2 / f"ghost{n}/a/b/c/_manifests/tags").mkdir(parents=True)
        shutil.rmtree(v2 / f"gone/n{n}/deep/_manifests/tags/t")
    slow = SlowDirs(LocalBackend(disk.dir))
    report = collect(slow, delete_untagged=True, grace=ZERO)
    assert report.ok
    assert slow.most > 1, "batches of directories really ran in parallel"
    left = {d for d in disk.dirs() if d.startswith(R)}
    assert not any("ghost" in d or "gone" in d for d in left), sorted(left)
    assert [d for d in left if not os.listdir(disk.dir / d)] == []
    assert "docker/registry/v2/repositories/ok/_manifests/tags/t/current" in disk.dirs()


# -- interruption ----------------------------------------------------------------------------


def link_targets(root: Path) -> set[str]:
    """Digests named by every revision link, layer link and tag current link on disk."""
    out = set()
    for dirpath, _, files in os.walk(root / R):
        for f in files:
            full = os.path.join(dirpath, f)
            key = classify(os.path.relpath(full, root))
            if isinstance(key, (RevisionLink, LayerLink, TagCurrentLink)):
                with open(full, "rb") as fh:
                    out.add(fh.read().decode())
    return out


class SimulatedCrashError(ConnectionError):
    """The simulated crash."""


class Faulty(Delegating):
    """Deletes one path at a time; after ``budget`` deletions raises or returns FAILED.

    Before each blob deletion, checks that no link on disk still names the blob.
    """

    def __init__(
        self, inner: LocalBackend, root: Path, order: list[str], budget: int | None, mode: str
    ) -> None:
        super().__init__(inner)
        self.root, self.order, self.budget, self.mode = root, order, budget, mode
        self.targets: set[str] | None = None  # link targets on disk; None: to be read again

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete path by path, checking the invariant, until the budget is spent."""
        out = []
        for p in paths:
            if self.budget is not None and self.budget <= 0:
                if self.mode == "raise":
                    raise SimulatedCrashError(f"simulated crash before deleting {p}")
                out.append(DeleteResult(p, Outcome.FAILED, "simulated failure"))
                continue
            d = parse_blob_path(p)
            if d is None:
                self.targets = None
            else:
                if self.targets is None:
                    self.targets = link_targets(self.root)
                assert d not in self.targets, f"{p} deleted while a link names it"
            out.extend(await self.inner.delete([p]))
            self.order.append(p)
            if self.budget is not None:
                self.budget -= 1
        return out


def state(s: Store) -> tuple[set[str], set[str]]:
    """Files and directories (a collector never rewrites a file, it only deletes)."""
    files, dirs = set(), set()
    for dirpath, dirnames, filenames in os.walk(s.dir):
        rel = os.path.relpath(dirpath, s.dir)
        dirs.update(os.path.normpath(os.path.join(rel, d)) for d in dirnames)
        files.update(os.path.normpath(os.path.join(rel, f)) for f in filenames)
    return files, dirs


def restore(s: Store, snapshot: dict[str, Any]) -> None:
    """Put back every file of ``snapshot`` missing from ``s`` (runs only ever delete)."""
    for path, (data, mtime_ns) in snapshot.items():
        full = s.dir / path
        if not full.exists():
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(data)
            os.utime(full, ns=(mtime_ns, mtime_ns))


@pytest.mark.parametrize("mode", ["raise", "fail"])
def test_interrupted_runs_converge_and_never_orphan_a_link(tmp_path: Path, mode: str) -> None:
    """Interrupted after k deletions then re-run, the end state equals one clean run's."""
    b = RegistryBuilder()
    rich(b)
    s = Store("local", tmp_path)
    s.write(b)
    template = s.snapshot()
    order: list[str] = []
    collect(Faulty(LocalBackend(s.dir), s.dir, order, None, mode), delete_untagged=True, grace=ZERO)
    expected = state(s)
    total = len(order)
    assert total > 40
    # Both sides of every phase boundary (links -> blobs ...), and a coarse sweep.
    phase = {RevisionLink: 0, TagIndexLink: 0, LegacySignatureLink: 0, LayerLink: 1}
    kinds = [phase.get(type(classify(p)), type(classify(p))) for p in order]
    boundaries = {i for i in range(1, total) if kinds[i] != kinds[i - 1]}
    assert len(boundaries) == 3  # links | layer links | blobs | uploads
    chosen = {0, total - 1, *range(0, total, total // 6)}
    chosen |= {k for i in boundaries for k in (i - 1, i)}
    for k in sorted(chosen):
        restore(s, template)
        assert state(s)[0] == set(template)
        order = []
        faulty = Faulty(LocalBackend(s.dir), s.dir, order, k, mode)
        if mode == "raise":
            with pytest.raises(SimulatedCrashError):
                collect(faulty, delete_untagged=True, grace=ZERO)
        else:
            assert not collect(faulty, delete_untagged=True, grace=ZERO).ok
        assert len(order) == k
        again = Faulty(LocalBackend(s.dir), s.dir, order, None, mode)
        assert collect(again, delete_untagged=True, grace=ZERO).ok
        assert state(s) == expected, f"interrupted after {k} deletions"


# -- per-path failures -----------------------------------------------------------------------


def test_failed_revision_deletion_skips_every_later_phase(disk: Store) -> None:
    """A revision link that fails to go: exit 1, failures listed, no link or blob deleted after."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    before = disk.files()
    backend = FailSome(LocalBackend(disk.dir), lambda p: p.startswith(f"{R}app/_manifests/rev"))
    out = disk.dir.parent / "deletions.jsonl"
    report = collect(backend, delete_untagged=True, deletions_out=out)
    after = disk.files()
    deleted = before - after
    assert not report.ok
    assert report.exit_code == 1
    assert deleted, "the other revision links of the phase were deleted"
    linked = (RevisionLink, TagIndexLink, LegacySignatureLink)
    assert all(isinstance(classify(p), linked) for p in deleted)
    failed = {f.path for f in report.result.failures}  # type: ignore[union-attr]
    assert failed == {
        p
        for d in report.plan.by_category(Category.REVISION)
        for p in d.paths
        if p.startswith(f"{R}app/")
    }
    assert len(failed) == 2
    doc = report.to_dict()
    assert {f["path"] for f in doc["failures"]} == failed
    assert {f["error"] for f in doc["failures"]} == {"AccessDenied: nope"}
    assert {f["category"] for f in doc["failures"]} == {"revision"}
    assert {f["repository"] for f in doc["failures"]} == {"app"}
    listed = planfiles.deletions(out)
    assert len(listed) == len(report.plan.deletions)
    statuses = {(d["category"], d["status"]) for d in listed}
    assert ("revision", "failed") in statuses
    errors = {d["error"] for d in listed if d["status"] == "failed"}
    assert errors == {f"{p}: AccessDenied: nope" for p in failed}
    assert all("error" not in d for d in listed if d["status"] != "failed")
    assert {s for c, s in statuses if c in ("layer-link", "blob", "upload", "repository")} == {
        "skipped"
    }
    assert doc["ok"] is False
    assert backend.dir_calls == 0
    assert "FAILED" in report.render()
    assert all(f in after for f in failed)


def test_failed_blob_deletion_skips_uploads_and_directories(disk: Store) -> None:
    """A blob that fails to go: uploads and empty repositories are not touched."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    victim = blob(sha256(b"orphan"))
    backend = FailSome(LocalBackend(disk.dir), lambda p: p == victim)
    before = disk.files()
    report = collect(backend, delete_untagged=True)
    deleted = before - disk.files()
    assert not report.ok
    assert [f.path for f in report.result.failures] == [victim]  # type: ignore[union-attr]
    assert not any("/_uploads/" in p for p in deleted)
    assert backend.dir_calls == 0
    assert victim in disk.files()
    assert blobs_of(deleted), "the other blobs were deleted"
    statuses = report.result.status  # type: ignore[union-attr]
    for d, status in zip(report.plan.deletions, statuses, strict=True):
        if d.category in (Category.UPLOAD, Category.REPOSITORY):
            assert status == "skipped"
