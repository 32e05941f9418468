"""Names-only runs (``collect(names_only=True)``): the full run's plan, from names and a few looks.

The property test builds random registries (the generator of ``tests/test_property.py``),
damages them — leaf files missing from their ``<hex>`` directories, stray files in
garbage ones, manifests missing (damaged repositories), objects aged around the
grace cutoff — and checks that a names-only dry run plans exactly what a full
dry run plans: the same deletions (paths, reasons, sizes), the same objects kept
for the grace period (with their ages and sizes), the same anomalies, or the
same refusal. The full run is itself held to an independent oracle there.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from registry_gc import ConfigError, RefusedError, collect
from registry_gc.backends import (
    CountingBackend,
    LocalBackend,
    ReadOnlyBackend,
    SupportsNamesOnly,
    WrappingBackend,
    open_backend,
)
from registry_gc.cli import run as cli
from registry_gc.layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    TagIndexLink,
    blob_path,
    classify,
)

from tests.rigs.builder import RegistryBuilder
from tests.rigs.faults import FaultyBackend, InjectedFaultError
from tests.test_property import OPS, World

if TYPE_CHECKING:
    from registry_gc import Report

UTC = datetime.timezone.utc
GRACE = datetime.timedelta(hours=1)
HOUR = 3600.0
NOW = 1.9e9
#: Ages on both sides of the grace cutoff, close to it.
NEAR = [HOUR - 90, HOUR + 90, HOUR - 1, HOUR + 1]

DAMAGE = st.tuples(
    st.sampled_from(
        [
            "hollow-manifest",
            "broken-manifest",
            "hollow-orphan",
            "broken-orphan",
            "hollow-layer-link",
            "hollow-tag-index",
            "near",
        ]
    ),
    st.integers(0, 10**6),
    st.sampled_from(NEAR),
)


def outcome(report: Report) -> dict[str, Any]:
    """What a plan decides, in an order that does not depend on listing order."""
    plan = report.plan
    return {
        "deletions": sorted(
            (d.category.value, d.reason.value, d.paths, d.size, d.repository, d.digest, d.name)
            for d in plan.deletions
        ),
        "kept": sorted(
            (k.category.value, k.path, k.age, k.size, k.repository, k.digest) for k in plan.kept
        ),
        "anomalies": sorted((a.kind, a.path, a.message, a.repository) for a in plan.anomalies),
        "removed_repositories": sorted(plan.removed_repositories),
        "live_blobs": plan.live_blobs,
        "total_blobs": plan.total_blobs,
    }


class Damaged:
    """A built registry, damaged: files removed from their ``<hex>`` directories, strays added."""

    def __init__(self, world: World) -> None:
        self.b = world.b
        #: ``<hex>`` directories left empty
        self.hollow: set[str] = set()

    def _choose(self, paths: list[str], pick: int) -> str | None:
        paths = sorted(p for p in paths if p in self.b.files)
        return paths[pick % len(paths)] if paths else None

    def manifests(self) -> list[str]:
        """The blob paths of every manifest built."""
        return [BlobData(d).path for d in self.b.contents]

    def orphans(self) -> list[str]:
        """Blobs no manifest references (garbage, or kept for the grace period)."""
        named: set[Digest] = set(self.b.contents)
        for c in self.b.contents.values():
            named.update(c["blobs"])
        return [
            p
            for p in self.b.files
            if isinstance(classify(p), BlobData) and p.split("/")[-2] not in {d.hex for d in named}
        ]

    def apply(self, kind: str, pick: int, age: float) -> None:
        """Damage one object."""
        files = list(self.b.files)
        if kind == "near":
            path = self._choose(files, pick)
            if path is not None:
                self.b.age(path, age)
            return
        pools = {
            "manifest": self.manifests,
            "orphan": self.orphans,
            "layer-link": lambda: [p for p in files if isinstance(classify(p), LayerLink)],
            "tag-index": lambda: [p for p in files if isinstance(classify(p), TagIndexLink)],
        }
        how, what = kind.split("-", 1)
        path = self._choose(pools[what](), pick)
        if path is None:
            return
        self.b.remove(path)
        directory = path.rsplit("/", 1)[0]
        if how == "hollow":
            self.hollow.add(directory)
        else:
            self.b.put(f"{directory}/stray", b"not the registry's", age)

    def write(self, root: Path) -> None:
        """Write the tree, with the hollow directories."""
        self.b.write_local(root, now=NOW)
        for d in self.hollow:
            (root / d).mkdir(parents=True, exist_ok=True)
            os.utime(root / d, (NOW - 10 * 86400, NOW - 10 * 86400))


def run(root: Path, *, names_only: bool, delete_untagged: bool, **extra: Any) -> dict[str, Any]:
    """A dry run's outcome, or the refusal's problems (``extra``: more of ``collect``'s options)."""
    now = datetime.datetime.fromtimestamp(NOW, UTC)
    try:
        report = collect(
            root,
            dry_run=True,
            delete_untagged=delete_untagged,
            grace=GRACE,
            now=now,
            allow_empty=True,
            names_only=names_only,
            **extra,
        )
    except RefusedError as e:
        return {"refused": sorted(e.problems)}
    return outcome(report)


@settings(
    max_examples=int(os.environ.get("NAMES_ONLY_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(OPS, min_size=2, max_size=10),
    damage=st.lists(DAMAGE, max_size=6),
    delete_untagged=st.booleans(),
)
# Found by this test: a missing manifest reached first by a walk from another root (its
# anomaly names the role); a young revision in a damaged repository (only a look tells);
# a repository whose only link is missing (no "no-manifests-directory").
@example(
    seed=0,
    ops=[("image", "a", None, 864000.0, "oci", 0), ("nested", "a", None, 864000.0)],
    damage=[("hollow-manifest", 0, 3510.0)],
    delete_untagged=False,
)
@example(
    seed=1,
    ops=[("image", "a", None, 300.0, "oci", 0), ("image", "a", None, 864000.0, "oci", 0)],
    damage=[("hollow-manifest", 0, 3510.0)],
    delete_untagged=True,
)
@example(
    seed=0,
    ops=[
        ("nested", "a", None, 864000.0),
        ("referrer", None, 864000.0, 0),
        ("orphan-link", "c/d/e", 864000.0),
        ("referrer", None, 864000.0, 0),
        ("orphan-link", "a", 864000.0),
    ],
    damage=[("hollow-layer-link", 28244, 3510.0)],
    delete_untagged=False,
)
def test_names_only_plans_what_the_full_run_plans(
    seed: int,
    ops: list[tuple[Any, ...]],
    damage: list[tuple[str, int, float]],
    delete_untagged: bool,
) -> None:
    """On damaged random stores, a names-only dry run plans exactly the full dry run's plan."""
    world = World(seed)
    for op in ops:
        world.apply(op)
    damaged = Damaged(world)
    for kind, pick, age in damage:
        damaged.apply(kind, pick, age)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        damaged.write(root)
        full = run(root, names_only=False, delete_untagged=delete_untagged)
        names = run(root, names_only=True, delete_untagged=delete_untagged)
    assert names == full


# -- the guarantees, one by one -------------------------------------------------------------


def build(root: Path, b: RegistryBuilder) -> None:
    """Write ``b`` under ``root`` with its ages counted back from :data:`NOW`."""
    b.write_local(root, now=NOW)


def dry(root: Path | Any, **kwargs: Any) -> Report:
    """A dry run at :data:`NOW` with a one-hour grace."""
    return collect(
        root, dry_run=True, grace=GRACE, now=datetime.datetime.fromtimestamp(NOW, UTC), **kwargs
    )


def test_a_young_garbage_blob_is_kept_and_an_old_one_deleted(tmp_path: Path) -> None:
    """Times come from looking: a young orphan is kept for the grace, an old one deleted."""
    b = RegistryBuilder(1)
    b.image("app", "latest")
    young = b.blob(b"young orphan", age=60)
    old = b.blob(b"old orphan", age=2 * HOUR)
    build(tmp_path, b)
    report = dry(tmp_path, names_only=True)
    assert [d.digest for d in report.plan.deletions] == [old]
    assert [(k.digest, k.size, k.age) for k in report.plan.kept] == [(young, 12, 60.0)]
    assert report.plan.deletions[0].size == len(b"old orphan")


def test_a_young_revision_link_keeps_its_manifests_blobs(tmp_path: Path) -> None:
    """An untagged revision written within the grace keeps its manifest and layers (with -m)."""
    b = RegistryBuilder(2)
    b.image("app", "latest")
    fresh = b.image("app", None, age=60)
    stale = b.image("app", None, age=3 * HOUR)
    build(tmp_path, b)
    names = dry(tmp_path, names_only=True, delete_untagged=True)
    full = dry(tmp_path, delete_untagged=True)
    assert outcome(names) == outcome(full)
    deleted = {d.digest for d in names.plan.deletions}
    assert stale in deleted
    assert fresh not in deleted
    assert not set(b.contents[fresh]["blobs"]) & deleted


def test_a_hollow_blob_directory_is_listed_and_removed_as_the_full_run_does(
    tmp_path: Path,
) -> None:
    """A ``<hex>`` directory without ``data`` is no blob: its empty directory goes, nothing else."""
    b = RegistryBuilder(3)
    b.image("app", "latest")
    gone = b.blob(b"gone", age=2 * HOUR)
    b.remove(BlobData(gone).path)
    build(tmp_path, b)
    (tmp_path / BlobData(gone).path).parent.mkdir(parents=True)
    names = dry(tmp_path, names_only=True)
    assert outcome(names) == outcome(dry(tmp_path))
    assert names.plan.deletions == []
    assert BlobData(gone).path.rsplit("/", 1)[0] in names.plan.stale_empty_dirs


def test_a_run_deletes_only_what_it_looked_at_and_stats_only_what_changed(
    tmp_path: Path,
) -> None:
    """On a store collected once, the next names-only run stats the new objects, not the store."""
    b = RegistryBuilder(4)
    for i in range(40):
        b.image(f"repo{i % 5}", f"t{i}", layers=3)
    build(tmp_path, b)
    first = collect(tmp_path, grace=GRACE, now=datetime.datetime.fromtimestamp(NOW, UTC))
    assert first.ok
    objects = sum(1 for p in tmp_path.rglob("*") if p.is_file())
    # Changes: one tag moved to a new image, a garbage blob, an upload left behind.
    c = RegistryBuilder(5)
    c.default_age = 2 * HOUR
    new = c.image("repo0", "t0", layers=2)
    c.blob(b"garbage", age=2 * HOUR)
    c.upload("repo1", age=3 * 86400)
    c.write_local(tmp_path, now=NOW)
    changed = len(c.files)
    counting = CountingBackend(LocalBackend(tmp_path))
    report = collect(
        counting,
        grace=GRACE,
        delete_untagged=True,
        now=datetime.datetime.fromtimestamp(NOW, UTC),
        names_only=True,
    )
    assert report.ok
    stats = counting.objects["stat"]
    manifests = report.manifests_read
    assert counting.objects["list_names"] >= objects
    assert counting.objects["list"] == 0
    # The manifests it reads (every revision: as a full run reads them) and what changed.
    assert stats <= manifests + 3 * changed, (stats, manifests, changed)
    assert stats < objects / 4, (stats, objects)
    assert report.plan.deletions, "the moved tag's old image and the garbage go"
    assert new in {
        t.current for r in report.inventory.repositories.values() for t in r.tags.values()
    }


def test_a_real_names_only_run_leaves_what_a_real_full_run_leaves(tmp_path: Path) -> None:
    """Not dry: the names-only run deletes what the full run deletes, file for file."""
    b = RegistryBuilder(6)
    b.image("app", "latest")
    b.image("app", "latest", age=3 * HOUR)  # moves the tag: the first image is untagged
    b.image("lib/x", None, age=3 * HOUR)
    b.blob(b"orphan", age=3 * HOUR)
    b.blob(b"young orphan", age=60)
    b.upload("app", age=2 * 86400)
    trees = []
    for names_only in (False, True):
        root = tmp_path / str(names_only)
        build(root, b)
        report = collect(
            root,
            grace=GRACE,
            delete_untagged=True,
            now=datetime.datetime.fromtimestamp(NOW, UTC),
            names_only=names_only,
        )
        assert report.ok
        trees.append(sorted(p.relative_to(root).as_posix() for p in root.rglob("*")))
    assert trees[0] == trees[1]
    assert len(trees[0]) < len(b.files) + 40


def test_sizes_not_measured_are_reported_as_such(tmp_path: Path) -> None:
    """The store's byte totals are null in JSON and "sizes not measured" in text."""
    b = RegistryBuilder(7)
    b.image("app", "latest")
    build(tmp_path, b)
    report = dry(tmp_path, names_only=True)
    assert not report.plan.sizes_measured
    assert report.to_dict()["store"]["bytes"] is None
    assert report.to_dict()["store"]["live_bytes"] is None
    assert "sizes not measured" in report.render()
    assert dry(tmp_path).to_dict()["store"]["bytes"] > 0


def test_a_refused_run_looks_at_every_blob_and_refuses_as_the_full_run(tmp_path: Path) -> None:
    """Blobs but no manifest: refused with the full run's count, hollow directories not counted."""
    b = RegistryBuilder(8)
    kept = [b.blob(f"blob {i}".encode()) for i in range(3)]
    build(tmp_path, b)
    (tmp_path / blob_path(Digest("sha256:" + "ab" * 32))).parent.mkdir(parents=True)
    with pytest.raises(RefusedError) as full:
        dry(tmp_path)
    counting = CountingBackend(LocalBackend(tmp_path))
    with pytest.raises(RefusedError) as names:
        dry(counting, names_only=True)
    assert names.value.problems == full.value.problems
    assert "found 3 blobs" in names.value.problems[0]
    assert counting.objects["stat"] == len(kept) + 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"live": True}, "live mode"),
        ({"policy": object()}, "retention policy"),
        ({"inventory": "s3://b/manifest.json"}, "one process"),
    ],
)
def test_names_only_refuses_what_it_cannot_do_exactly(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    """A policy, live mode (not dry), or a run elsewhere: ConfigError before anything is read."""
    counting = CountingBackend(LocalBackend(tmp_path))
    with pytest.raises(ConfigError, match=match):
        collect(counting, names_only=True, **kwargs)
    assert not counting.objects


def test_names_only_refuses_a_store_that_cannot_list_names(tmp_path: Path) -> None:
    """An object store (here memory://) lists no names alone: refused, nothing read."""
    with pytest.raises(ConfigError, match="lists names alone"):
        collect("memory://names-only-refused", dry_run=True, names_only=True)
    assert not isinstance(open_backend("memory://x"), SupportsNamesOnly)
    assert isinstance(LocalBackend(tmp_path), SupportsNamesOnly)


def test_wrappers_forward_the_capability_and_a_failed_stat_fails_the_run(tmp_path: Path) -> None:
    """Read-only and counting wrappers list names; the k-th failing stat stops the run."""
    b = RegistryBuilder(9)
    b.image("app", "latest")
    b.blob(b"orphan", age=3 * HOUR)
    build(tmp_path, b)
    for wrapper in (ReadOnlyBackend, CountingBackend, WrappingBackend, FaultyBackend):
        assert isinstance(wrapper(LocalBackend(tmp_path)), SupportsNamesOnly), wrapper
    faulty = FaultyBackend(LocalBackend(tmp_path), fail_stat_at=2)
    with pytest.raises(InjectedFaultError, match="stat call #2"):
        dry(faulty, names_only=True)
    assert faulty.count("delete") == 0
    assert sorted(os.listdir(tmp_path / "docker/registry/v2/blobs/sha256"))


def test_the_local_backend_lists_names_without_stat_and_stats_regular_files(
    tmp_path: Path,
) -> None:
    """``list_names`` gives -1 sizes for files; ``stat`` answers ``None`` for a non-file."""
    b = RegistryBuilder(10)
    d = b.blob(b"data", age=2 * HOUR)
    build(tmp_path, b)
    backend = LocalBackend(tmp_path)

    async def go() -> tuple[list[Any], Any]:
        batches = [x async for chunk in backend.list_names("docker/") for x in chunk]
        hollow = "docker/registry/v2/blobs/sha256/00/" + "00" * 32 + "/data"
        (tmp_path / hollow).parent.mkdir(parents=True)
        found = await backend.stat([BlobData(d).path, hollow, "docker/registry/v2/blobs"])
        return batches, found

    batches, found = asyncio.run(go())
    sizes = [s for batch in batches for s in batch.sizes]
    assert sizes == [-1]
    assert found[BlobData(d).path] == (4, pytest.approx(NOW - 2 * HOUR))
    assert list(found.values())[1:] == [None, None]


def test_cli_gc_names_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gc --names-only`` runs one; with ``--policy`` it exits 2 before reading anything."""
    b = RegistryBuilder(11)
    b.image("app", "latest")
    b.blob(b"orphan")
    b.write_local(tmp_path, now=time.time())
    assert cli(["gc", str(tmp_path), "--names-only", "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"bytes": null' in out
    policy = tmp_path / "policy.yml"
    policy.write_text("rules: []\n")
    assert cli(["gc", str(tmp_path), "--names-only", "--policy", str(policy)]) == 2
    assert "retention policy" in capsys.readouterr().err


def test_alias_links_are_looked_at_before_they_are_read(tmp_path: Path) -> None:
    """A hollow sha512 ``_layers`` directory is no broken link: the full run's plan, no more."""
    b = RegistryBuilder(12)
    d = b.image("app", "latest")
    layer = b.contents[d]["blobs"][1]
    alias = Digest("sha512:" + "cd" * 64)
    b.put(LayerLink(Repository("app"), alias).path, layer.encode(), age=3 * HOUR)
    build(tmp_path, b)
    hollow = Digest("sha512:" + "ef" * 64)
    (tmp_path / LayerLink(Repository("app"), hollow).path).parent.mkdir(parents=True)
    names = dry(tmp_path, names_only=True)
    assert outcome(names) == outcome(dry(tmp_path))
    assert not [a for a in names.plan.anomalies if a.kind == "broken-link"]
    assert [d.digest for d in names.plan.deletions] == [alias]


def test_a_names_only_plan_file_carries_what_was_looked_at(tmp_path: Path) -> None:
    """Every path of a names-only plan file has the size and time a full run's has."""
    b = RegistryBuilder(13)
    b.image("app", "latest")
    b.image("app", None, age=3 * HOUR)
    b.blob(b"orphan", age=3 * HOUR)
    build(tmp_path / "store", b)
    lines = []
    for names_only in (False, True):
        out = tmp_path / f"plan-{names_only}.jsonl"
        dry(tmp_path / "store", delete_untagged=True, names_only=names_only, plan_out=out)
        lines.append([json.loads(line) for line in out.read_text().splitlines()][1:])
    assert lines[0] == lines[1]
    paths = [p for line in lines[1] for p in line.get("paths", [])]
    assert paths
    assert all(p[2] is not None for p in paths)


def test_what_names_only_does_not_see_is_what_the_docs_say(tmp_path: Path) -> None:
    """A live layer's hollow directory: same deletions, but no ``missing-blob`` (docs/safety.md)."""
    b = RegistryBuilder(14)
    d = b.image("app", "latest")
    b.blob(b"orphan", age=3 * HOUR)
    layer = b.contents[d]["blobs"][1]
    b.remove(BlobData(layer).path)
    build(tmp_path, b)
    (tmp_path / BlobData(layer).path).parent.mkdir(parents=True)
    full, names = outcome(dry(tmp_path)), outcome(dry(tmp_path, names_only=True))
    assert names["deletions"] == full["deletions"]
    assert names["kept"] == full["kept"]
    assert [a[0] for a in full["anomalies"]] == ["missing-blob"]
    assert names["anomalies"] == []
    assert names["live_blobs"] == full["live_blobs"] + 1, "the hollow directory counts"
