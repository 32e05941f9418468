"""The collector's contract (DESIGN §4), scenario by scenario, through ``collect()``.

Builder trees are written to a local directory (real mtimes) or to memory://
(modification times set from the builder's ages), collected, and the exact set
of deleted paths is compared with what the contract says.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from registry_gc import ReadOnlyError, RefusedError, collect, fetch
from registry_gc import _run as run_module
from registry_gc.backends import (
    DeleteResult,
    LocalBackend,
    Outcome,
    ReadOnlyBackend,
    WrappingBackend,
    open_backend,
)
from registry_gc.layout import (
    REPOSITORIES_PREFIX,
    Digest,
    LayerLink,
    LegacySignatureLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    blob_path,
    classify,
    parse_blob_path,
)
from registry_gc.manifests import MAX_MANIFEST_SIZE
from registry_gc.plan import Category

from tests.rigs.builder import (
    ARTIFACT_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    RegistryBuilder,
    sha256,
)
from tests.rigs.layouts import buildkit_cache, legacy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from registry_gc import Report
    from registry_gc.backends import Backend

UTC = datetime.timezone.utc
R = REPOSITORIES_PREFIX
ZERO = datetime.timedelta(0)
HOUR = 3600.0
DAY = 86400.0


# -- paths ------------------------------------------------------------------------------


def rev(repo: str, d: Digest) -> str:
    """The revision link of ``d`` in ``repo``."""
    return RevisionLink(Repository._trusted(repo), d).path


def lnk(repo: str, d: Digest) -> str:
    """The _layers link of ``d`` in ``repo``."""
    return LayerLink(Repository._trusted(repo), d).path


def blob(d: Digest) -> str:
    """The blob data path of ``d``."""
    return blob_path(d)


def cur(repo: str, tag: str) -> str:
    """The current link of ``tag``."""
    return TagCurrentLink(Repository._trusted(repo), Tag._trusted(tag)).path


def idx(repo: str, tag: str, d: Digest) -> str:
    """The index entry of ``d`` under ``tag``."""
    return TagIndexLink(Repository._trusted(repo), Tag._trusted(tag), d).path


def upload_paths(repo: str, uid: str) -> set[str]:
    """The three files the builder writes for an upload."""
    r = Repository._trusted(repo)
    return {UploadFile(r, uid, n).path for n in ("data", "startedat", "hashstates/sha256/0")}


def owned(b: RegistryBuilder, repo: str, d: Digest) -> set[str]:
    """What image/index ``d`` holds in ``repo``: revision, manifest blob, blobs, links, children."""
    out = {rev(repo, d), blob(d)}
    for x in b.contents[d]["blobs"]:
        out |= {blob(x), lnk(repo, x)}
    for child in b.contents[d]["children"]:
        out |= owned(b, repo, child)
    return out


def blobs_of(paths: set[str]) -> set[str]:
    """The blob data paths among ``paths``."""
    return {p for p in paths if parse_blob_path(p) is not None}


# -- stores -----------------------------------------------------------------------------


class Store:
    """A builder tree written to a local directory or a memory:// root."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.dir = tmp_path / "registry"
        self.fs = fsspec.filesystem("memory")
        self.mem_root = f"/rgc-col-{uuid.uuid4().hex}"

    @property
    def local(self) -> bool:
        """Whether the store is a local directory."""
        return self.kind == "local"

    @property
    def root(self) -> str:
        """What to pass to collect()."""
        return str(self.dir) if self.local else "memory://" + self.mem_root

    def write(self, b: RegistryBuilder, now: float | None = None) -> None:
        """Write ``b`` with modification times ``now - age``."""
        now = time.time() if now is None else now
        if self.local:
            b.write_local(self.dir, now=now)
            return
        b.write_fs(self.fs, self.mem_root)
        for path in b.files:
            t = datetime.datetime.fromtimestamp(now - b.ages.get(path, b.default_age), UTC)
            f = self.fs.store[f"{self.mem_root}/{path}"]
            f.created = f.modified = t

    def snapshot(self) -> dict[str, Any]:
        """Every file: path -> (content, mtime) on disk, path -> content in memory."""
        out: dict[str, Any] = {}
        if self.local:
            for dirpath, _, files in os.walk(self.dir):
                for f in files:
                    full = os.path.join(dirpath, f)
                    with open(full, "rb") as fh:
                        out[os.path.relpath(full, self.dir)] = (
                            fh.read(),
                            os.stat(full).st_mtime_ns,
                        )
            return out
        if not self.fs.exists(self.mem_root):
            return out
        for full in self.fs.find(self.mem_root):
            out[full[len(self.mem_root) + 1 :]] = self.fs.cat(full)
        return out

    def files(self) -> set[str]:
        """Every file path."""
        return set(self.snapshot())

    def dirs(self) -> set[str]:
        """Every directory (local stores only)."""
        assert self.local
        return {
            os.path.relpath(os.path.join(dp, d), self.dir)
            for dp, dirs, _ in os.walk(self.dir)
            for d in dirs
        }

    def cleanup(self) -> None:
        """Drop the memory tree."""
        if self.fs.exists(self.mem_root):
            self.fs.rm(self.mem_root, recursive=True)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A local directory and a memory:// root, in turn."""
    s = Store(request.param, tmp_path)
    yield s
    s.cleanup()


@pytest.fixture
def disk(tmp_path: Path) -> Store:
    """A local directory (mtimes, directories)."""
    return Store("local", tmp_path)


class Run:
    """One collect() over a store, with the file sets before and after."""

    def __init__(self, store: Store, **kw: Any) -> None:
        self.before = store.files()
        self.report: Report = collect(store.root, **kw)
        self.after = store.files()

    @property
    def deleted(self) -> set[str]:
        """Paths that existed before and not after."""
        return self.before - self.after

    def planned(self) -> set[str]:
        """Every path the plan lists."""
        return {p for d in self.report.plan.deletions for p in d.paths}

    def reason(self, path: str) -> tuple[str, str]:
        """(category, reason) of the deletion that lists ``path``."""
        for d in self.report.plan.deletions:
            if path in d.paths:
                return d.category.value, d.reason
        raise KeyError(path)

    def kept(self) -> dict[str, str]:
        """Path -> category of everything kept for the grace period."""
        return {k.path: k.category.value for k in self.report.plan.kept}

    def anomalies(self) -> dict[str, set[str]]:
        """Anomaly kind -> paths."""
        out: dict[str, set[str]] = {}
        for a in self.report.plan.anomalies:
            out.setdefault(a.kind, set()).add(a.path)
        return out


def run(store: Store, b: RegistryBuilder | None = None, **kw: Any) -> Run:
    """Write ``b`` (if given), collect, and check the report agrees with the storage."""
    if b is not None:
        store.write(b)
    r = Run(store, **kw)
    if not kw.get("dry_run"):
        assert r.deleted == r.planned(), "the report must list exactly what was deleted"
        assert r.report.ok
    else:
        assert r.deleted == set()
    return r


# -- roots: tags and revisions ------------------------------------------------------------


def repushed(b: RegistryBuilder, n: int = 5) -> tuple[Digest, list[Digest]]:
    """``app:latest`` pushed ``n`` times over a shared base layer."""
    base = b.layer("app")
    return base, [b.image("app", "latest", shared=[base]) for _ in range(n)]


def test_repushed_tag_without_delete_untagged_deletes_nothing(store: Store) -> None:
    """Without delete_untagged every revision is a root: nothing of old pushes is deleted."""
    b = RegistryBuilder()
    repushed(b)
    r = run(store, b, grace=ZERO)
    assert r.deleted == set()
    assert r.report.plan.deletions == []


def test_repushed_tag_with_delete_untagged_frees_old_revisions(store: Store) -> None:
    """With delete_untagged, old revisions, their tag history, unshared blobs and links go."""
    b = RegistryBuilder()
    base, pushes = repushed(b)
    r = run(store, b, delete_untagged=True)
    expected: set[str] = set()
    for p in pushes[:-1]:
        expected |= owned(b, "app", p) | {idx("app", "latest", p)}
    expected -= {blob(base), lnk("app", base)}
    assert r.deleted == expected
    assert r.after == owned(b, "app", pushes[-1]) | {
        cur("app", "latest"),
        idx("app", "latest", pushes[-1]),
    }
    for p in pushes[:-1]:
        assert r.reason(rev("app", p)) == ("revision", "untagged")
        assert r.reason(idx("app", "latest", p)) == ("tag-index", "stale-tag-history")
        assert r.reason(blob(p)) == ("blob", "unreferenced")
        for x in b.contents[p]["blobs"]:
            if x != base:
                assert r.reason(lnk("app", x)) == ("layer-link", "unreferenced")
                assert r.reason(blob(x)) == ("blob", "unreferenced")


def test_several_tags_on_one_manifest_and_a_moved_tag(store: Store) -> None:
    """A manifest with several tags stays; the revision a moved tag left goes, with its history."""
    b = RegistryBuilder()
    d1 = b.image("t", "a")
    b.tag("t", "b", d1)
    d2 = b.image("t", "c")
    b.tag("t", "c", d1)  # moved from d2 to d1
    assert run(store, b, grace=ZERO).deleted == set()
    r = run(store, delete_untagged=True, grace=ZERO)
    assert r.deleted == owned(b, "t", d2) | {idx("t", "c", d2)}
    for tag in ("a", "b", "c"):
        assert cur("t", tag) in r.after
        assert idx("t", tag, d1) in r.after
    assert owned(b, "t", d1) <= r.after


# -- indexes --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_tagged_multiarch_children_survive_delete_untagged(store: Store, kind: str) -> None:
    """Untagged platform images of a tagged index or manifest list, and their blobs, survive -m."""
    b = RegistryBuilder()
    top = b.multiarch("multi", "latest", kind=kind, arches=3)
    children = b.contents[top]["children"]
    assert len(children) == 3
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == set()
    assert owned(b, "multi", top) <= r.after
    assert "child-not-in-repository" not in r.anomalies()


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_untagged_index_goes_with_children_unless_tagged_or_shared(store: Store, kind: str) -> None:
    """An untagged index and its children go; a tagged child and one shared by a live index stay."""
    b = RegistryBuilder()
    shared, gone, tagged = (b.image("m", None, kind=kind) for _ in range(3))
    live_index = b.index("m", "v1", [shared], kind=kind)
    b.tag("m", "only-child", tagged)
    dead_index = b.index("m", None, [shared, gone, tagged], kind=kind)
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == owned(b, "m", gone) | {rev("m", dead_index), blob(dead_index)}
    assert owned(b, "m", live_index) | owned(b, "m", tagged) <= r.after


def test_nested_index_keeps_every_level_and_an_untagged_one_goes_entirely(store: Store) -> None:
    """An index of indexes is followed to the leaves; untagged, all of it and its repository go."""
    b = RegistryBuilder()
    inner = b.multiarch("n", None, arches=2)
    top = b.index("n", "v1", [inner, b.image("n", None)])
    dead_inner = b.multiarch("dead", None, arches=2)
    dead_top = b.index("dead", None, [dead_inner])
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == owned(b, "dead", dead_top)
    assert r.after == owned(b, "n", top) | {cur("n", "v1"), idx("n", "v1", top)}
    assert [(d.category, d.reason) for d in r.report.plan.by_category(Category.REPOSITORY)] == [
        (Category.REPOSITORY, "empty-repository")
    ]


# -- referrers --------------------------------------------------------------------------------


def test_referrers_follow_their_subject(store: Store) -> None:
    """Referrers of live manifests (and of those referrers) live; of dead ones die; tags win."""
    b = RegistryBuilder()
    img = b.image("r", "v1")
    sig = b.referrer("r", img)
    sbom = b.referrer("r", img, artifact_type="application/spdx+json")
    sig_of_sig = b.referrer("r", sig)
    multi = b.multiarch("r", "multi")
    child_sig = b.referrer("r", b.contents[multi]["children"][0])
    index_sig = b.referrer("r", multi)
    dead = b.image("r", None)
    dead_sig = b.referrer("r", dead)
    dead_sig_sig = b.referrer("r", dead_sig)
    orphan_subject = b.image("r", None)
    tagged_sig = b.referrer("r", orphan_subject, tag=f"sha256-{orphan_subject.hex}")
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == (
        owned(b, "r", dead)
        | owned(b, "r", dead_sig)
        | owned(b, "r", dead_sig_sig)
        | owned(b, "r", orphan_subject)
    )
    for d in (img, sig, sbom, sig_of_sig, multi, child_sig, index_sig, tagged_sig):
        assert owned(b, "r", d) <= r.after


def test_referrers_are_kept_without_delete_untagged(store: Store) -> None:
    """Without -m a referrer is a revision like any other: kept even when its subject is gone."""
    b = RegistryBuilder()
    ghost = b.blob(b"a subject whose blob will be lost")
    b.referrer("r", ghost)
    b.remove(blob(ghost))
    b.image("r", "v1")
    assert run(store, b, grace=ZERO).deleted == set()


# -- sharing across repositories ---------------------------------------------------------------


def test_layer_shared_across_repositories_keeps_the_blob_not_the_dead_link(store: Store) -> None:
    """A layer dead in one repository loses its link there; the blob stays for the other one."""
    b = RegistryBuilder()
    layer = b.layer("x")
    dead = b.image("x", None, shared=[layer])
    live = b.image("y", "t", shared=[layer])
    b.image("x", "keep")  # so that x is not emptied
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == owned(b, "x", dead) - {blob(layer)}
    assert r.reason(lnk("x", layer)) == ("layer-link", "unreferenced")
    assert {blob(layer), lnk("y", layer)} <= r.after
    assert owned(b, "y", live) <= r.after


def test_manifest_in_two_repositories_tagged_in_one(store: Store) -> None:
    """A revision untagged in one repository goes there (with its links); its blobs stay."""
    b = RegistryBuilder()
    d = b.image("p", "t")
    b.put(rev("q", d), d.encode())
    for x in b.contents[d]["blobs"]:
        b.link_layer("q", x)
    assert run(store, b, grace=ZERO).deleted == set()
    r = run(store, delete_untagged=True, grace=ZERO)
    assert r.deleted == {rev("q", d)} | {lnk("q", x) for x in b.contents[d]["blobs"]}
    assert r.reason(rev("q", d)) == ("revision", "untagged")
    assert owned(b, "p", d) <= r.after
    assert [d.repository for d in r.report.plan.by_category(Category.REPOSITORY)] == ["q"]


# -- grace --------------------------------------------------------------------------------------


def grace_tree(b: RegistryBuilder) -> dict[str, Any]:
    """Young garbage of every category next to old garbage."""
    b.image("g", "keep")
    young_rev = b.image("g", None)  # old blobs and links ...
    b.age(rev("g", young_rev), 600)  # ... but a revision link written 10 minutes ago
    old_blob = b.blob(b"old, referenced by nothing but a young link")
    b.link_layer("g", old_blob, age=600)
    young_blob = b.blob(b"young and unreferenced", age=600)
    young_link = b.layer("g", b"young blob, young link", age=600)
    uid = b.upload("g", age=3 * DAY)  # started long ago ...
    b.age(UploadFile(Repository("g"), uid, "hashstates/sha256/0").path, 600)  # ... active
    old_garbage = b.image("g", None)
    return {
        "young_rev": young_rev,
        "old_blob": old_blob,
        "young_blob": young_blob,
        "young_link": young_link,
        "upload": uid,
        "old_garbage": old_garbage,
    }


def test_grace_keeps_young_objects_of_every_category_and_lists_them(store: Store) -> None:
    """Young revision links, layer links, blobs and uploads are kept and listed in plan.kept."""
    b = RegistryBuilder()
    t = grace_tree(b)
    r = run(store, b, delete_untagged=True)
    assert r.deleted == owned(b, "g", t["old_garbage"])
    young_rev = t["young_rev"]
    assert owned(b, "g", young_rev) <= r.after, "a young revision protects its blobs and links"
    assert {blob(t["old_blob"]), lnk("g", t["old_blob"])} <= r.after
    upload_dir = f"{R}g/_uploads/{t['upload']}"
    # The young revision is kept with everything it reaches (all old), and reported so.
    reached = {blob(x): "blob" for x in [young_rev, *b.contents[young_rev]["blobs"]]}
    reached |= {lnk("g", x): "layer-link" for x in b.contents[young_rev]["blobs"]}
    young = {
        rev("g", young_rev): "revision",
        lnk("g", t["old_blob"]): "layer-link",
        blob(t["young_blob"]): "blob",
        lnk("g", t["young_link"]): "layer-link",
        blob(t["young_link"]): "blob",
        upload_dir: "upload",
    }
    assert r.kept() == {**reached, blob(t["old_blob"]): "blob", **young}
    for k in r.report.plan.kept:
        assert k.age == pytest.approx(600 if k.path in young else 10 * DAY, abs=60), k.path
    assert upload_paths("g", t["upload"]) <= r.after


def test_grace_zero_deletes_the_young_garbage_too(store: Store) -> None:
    """With grace=0 the same young garbage is deleted."""
    b = RegistryBuilder()
    t = grace_tree(b)
    r = run(store, b, delete_untagged=True, grace=ZERO)
    expected = (
        owned(b, "g", t["old_garbage"])
        | owned(b, "g", t["young_rev"])
        | {blob(t["old_blob"]), lnk("g", t["old_blob"]), blob(t["young_blob"])}
        | {blob(t["young_link"]), lnk("g", t["young_link"])}
        | upload_paths("g", t["upload"])
    )
    assert r.deleted == expected
    assert r.report.plan.kept == []


def test_young_link_protects_blob_without_delete_untagged(store: Store) -> None:
    """A layer link written within the grace keeps its (old, unreferenced) blob, -m or not."""
    b = RegistryBuilder()
    b.image("g", "keep")
    old = b.blob(b"old")
    b.link_layer("g", old, age=60)
    r = run(store, b)
    assert r.deleted == set()
    assert r.kept() == {blob(old): "blob", lnk("g", old): "layer-link"}


def test_now_moves_the_grace_cutoff_on_memory(tmp_path: Path) -> None:
    """On memory://, where every object is new, now= decides what is older than the grace."""
    s = Store("memory", tmp_path)
    try:
        b = RegistryBuilder()
        b.image("app", "t")
        dead = b.image("app", None)
        b.write_fs(s.fs, s.mem_root)  # created now, whatever the builder's ages
        r = Run(s, delete_untagged=True)
        assert r.deleted == set()
        assert rev("app", dead) in r.kept()
        later = datetime.datetime.now(UTC) + datetime.timedelta(hours=2)
        r = Run(s, delete_untagged=True, now=later)
        assert r.deleted == owned(b, "app", dead)
    finally:
        s.cleanup()


# -- uploads ------------------------------------------------------------------------------------


def test_uploads_stale_young_active_and_uploads_older_than(store: Store) -> None:
    """Stale uploads go; younger than the upload age or recently active ones stay."""
    b = RegistryBuilder()
    b.image("u", "t")
    stale = b.upload("u", size=1000, age=3 * DAY)
    young = b.upload("u", age=2 * HOUR)
    active = b.upload("u", age=3 * DAY)
    b.age(UploadFile(Repository("u"), active, "hashstates/sha256/0").path, 300)
    r = run(store, b)
    assert r.deleted == upload_paths("u", stale)
    assert r.reason(next(iter(upload_paths("u", stale)))) == ("upload", "stale-upload")
    (d,) = r.report.plan.by_category(Category.UPLOAD)
    assert (d.name, d.repository) == (stale, "u")
    assert d.size == 1000 + len(b"2026-01-01T00:00:00Z") + len(b"state")
    assert f"{R}u/_uploads/{young}" not in r.kept(), "not garbage yet: not kept for the grace"
    r = run(store, uploads_older_than=datetime.timedelta(hours=1))
    assert r.deleted == upload_paths("u", young)
    assert upload_paths("u", active) <= r.after


# -- repositories ---------------------------------------------------------------------------------


def test_empty_repository_is_removed_but_not_a_nested_one(disk: Store) -> None:
    """A repository left with nothing is removed from disk; a nested repository under it stays."""
    b = RegistryBuilder()
    dead = b.image("e", None)
    nested = b.image("e/n", "t")
    r = run(disk, b, delete_untagged=True)
    assert r.deleted == owned(b, "e", dead)
    assert owned(b, "e/n", nested) <= r.after
    dirs = disk.dirs()
    base = "docker/registry/v2/repositories/e"
    assert {f"{base}/_manifests", f"{base}/_layers"}.isdisjoint(dirs)
    assert {base, f"{base}/n/_manifests/revisions", f"{base}/n/_layers"} <= dirs
    (d,) = r.report.plan.by_category(Category.REPOSITORY)
    assert (d.repository, d.reason, d.paths) == ("e", "empty-repository", ())


def test_layers_only_repository_is_cleaned_and_removed(disk: Store) -> None:
    """A repository with only _layers (an aborted push): links, blobs and directory go."""
    b = RegistryBuilder()
    b.image("ok", "t")
    layers = [b.layer("aborted") for _ in range(3)]
    r = run(disk, b)
    assert r.deleted == {lnk("aborted", x) for x in layers} | {blob(x) for x in layers}
    assert not any(d.startswith(f"{R}aborted") for d in disk.dirs())
    assert [d.repository for d in r.report.plan.by_category(Category.REPOSITORY)] == ["aborted"]


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


# -- dangling and missing ---------------------------------------------------------------------


def dangling(b: RegistryBuilder) -> dict[str, Digest]:
    """A repository with dangling links and lost manifests; returns the names of its parts."""
    b.image("d", "t")
    ghost_layer = sha256(b"never uploaded")
    b.link_layer("d", ghost_layer)
    ghost_revision = sha256(b"manifest blob lost")
    b.put(rev("d", ghost_revision), ghost_revision.encode())
    broken = b.image("d", "broken")
    lost = b.contents[broken]["blobs"][1]
    b.remove(blob(lost))
    lost_manifest = b.image("d", "lost")
    b.remove(blob(lost_manifest))
    lost_child_index = b.multiarch("d", "multi")
    lost_child = b.contents[lost_child_index]["children"][0]
    b.remove(blob(lost_child))
    return {
        "ghost_layer": ghost_layer,
        "ghost_revision": ghost_revision,
        "lost": lost,
        "lost_manifest": lost_manifest,
        "lost_child": lost_child,
        "lost_child_index": lost_child_index,
    }


def test_missing_manifests_keep_their_repository_whole(store: Store) -> None:
    """A dangling revision, a tag or index entry at a missing manifest: the repository is kept."""
    b = RegistryBuilder()
    parts = dangling(b)
    b.image("other", "t")
    b.image("other", "t")
    before = set(b.files)
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert {p for p in before if "/repositories/d/" in p} <= r.after
    found = r.anomalies()
    assert {blob(parts["lost_manifest"]), blob(parts["lost_child"])} <= found["missing-manifest"]
    assert blob(parts["ghost_revision"]) in found["missing-manifest"]
    assert "docker/registry/v2/repositories/d/" in found["damaged-repository"]
    assert r.deleted, "another repository's garbage is still collected"


def test_dangling_links_and_missing_manifests_pruned_on_request(store: Store) -> None:
    """With prune_damaged: links to missing blobs go unless needed; a tag at a lost one stays."""
    b = RegistryBuilder()
    parts = dangling(b)
    ghost_layer, ghost_revision, lost = parts["ghost_layer"], parts["ghost_revision"], parts["lost"]
    lost_manifest, lost_child = parts["lost_manifest"], parts["lost_child"]
    lost_child_index = parts["lost_child_index"]
    r = run(store, b, grace=ZERO, prune_damaged=True)
    # What a lost manifest referenced is unknown: its layers are unreferenced garbage.
    unknowable = (owned(b, "d", lost_manifest) | owned(b, "d", lost_child)) - {
        rev("d", lost_manifest),
        rev("d", lost_child),
        blob(lost_manifest),
        blob(lost_child),
    }
    assert r.deleted == {lnk("d", ghost_layer), rev("d", ghost_revision)} | unknowable
    assert r.reason(lnk("d", ghost_layer)) == ("layer-link", "dangling-link")
    assert r.reason(rev("d", ghost_revision)) == ("revision", "dangling-link")
    assert lnk("d", lost) in r.after, "needed by a live manifest: kept though its blob is gone"
    assert {cur("d", "lost"), rev("d", lost_manifest), rev("d", lost_child)} <= r.after
    assert owned(b, "d", lost_child_index) - unknowable - {blob(lost_child)} <= r.after
    found = r.anomalies()
    assert blob(lost) in found["missing-blob"]
    assert {blob(lost_manifest), blob(lost_child)} <= found["missing-manifest"]
    r = run(store, delete_untagged=True, grace=ZERO, prune_damaged=True)
    assert r.deleted == set()


BROKEN_CURRENT = [b"", b"sha256:0123", b"garbage"]


@pytest.mark.parametrize("content", BROKEN_CURRENT)
def test_broken_current_link_without_delete_untagged_deletes_nothing(
    store: Store, content: bytes
) -> None:
    """An empty/truncated/garbage current link is reported; without -m nothing is deleted."""
    b = RegistryBuilder()
    b.image("app", "t")
    b.put(cur("app", "t"), content)
    r = run(store, b, grace=ZERO)
    assert r.deleted == set()
    assert r.anomalies() == {"broken-link": {cur("app", "t")}}


def test_truncated_current_link_protects_what_the_tag_may_point_at(store: Store) -> None:
    """With -m, a tag whose current link was truncated keeps the revision in its index."""
    b = RegistryBuilder()
    b.image("app", "keep")
    d = b.image("app", "t")
    b.put(cur("app", "t"), d.encode()[:20])
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert owned(b, "app", d) | {idx("app", "t", d)} <= r.after


def test_alias_layer_links(store: Store) -> None:
    """Alias links protect the canonical blob while needed; unneeded or unreadable ones go."""
    b = RegistryBuilder()
    data = b"a layer pushed by its sha512 digest"
    canonical = b.blob(data)
    alias = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    b.put(lnk("app", alias), canonical.encode())
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": b.layer("app", b"{}"), "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": alias, "size": len(data)}],
    }
    live = b.manifest("app", doc, tag="t")
    dead_data = b"another sha512 layer, of a dead image"
    dead_canonical = b.blob(dead_data)
    dead_alias = Digest("sha512:" + hashlib.sha512(dead_data).hexdigest())
    b.put(lnk("app", dead_alias), dead_canonical.encode())
    broken = Digest("sha384:" + "3" * 96)
    b.put(lnk("app", broken), b"not a digest")
    r = run(store, b, grace=ZERO)
    assert r.deleted == {lnk("app", dead_alias), blob(dead_canonical), lnk("app", broken)}
    assert r.reason(lnk("app", dead_alias)) == ("layer-link", "unreferenced")
    assert r.reason(lnk("app", broken)) == ("layer-link", "dangling-link")
    assert {lnk("app", alias), blob(canonical), blob(live)} <= r.after
    (anomaly,) = r.report.plan.anomalies
    assert (anomaly.kind, anomaly.path) == ("broken-link", lnk("app", broken))
    assert "left in place" not in anomaly.message, "the link is deleted, the message must not lie"


def test_tag_pointing_at_a_manifest_with_no_revision_is_reported(store: Store) -> None:
    """A tag whose manifest has no revision link: anomaly, and its blobs are kept."""
    b = RegistryBuilder()
    d = b.image("d", "t")
    b.remove(rev("d", d))
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == set()
    assert r.anomalies() == {"tag-without-revision": {cur("d", "t")}}


# -- manifest kinds ------------------------------------------------------------------------------


def test_schema1_schema2_artifact_and_foreign_layers(store: Store) -> None:
    """Every manifest kind is understood; absent foreign layers are no error."""
    b = RegistryBuilder()
    s1_layer = b.layer("k")
    signed = {
        "schemaVersion": 1,
        "name": "k",
        "tag": "s1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": s1_layer}, {"blobSum": s1_layer}],
        "history": [{"v1Compatibility": "{}"}, {"v1Compatibility": "{}"}],
        "signatures": [
            {
                "header": {
                    "jwk": {"crv": "P-256", "kty": "EC", "x": "x", "y": "y"},
                    "alg": "ES256",
                },
                "signature": "c2ln",
                "protected": "cHJvdGVjdGVk",
            }
        ],
    }
    signed_d = b.manifest("k", signed, tag="s1")
    b.contents[signed_d] = {"blobs": [s1_layer], "children": []}
    schema1_dead = b.image("k", None, kind="schema1")
    docker = b.image("k", "docker", kind="docker")
    docker_dead = b.image("k", None, kind="docker")
    foreign = b.image("k", "foreign", kind="docker", foreign=2)
    payload = b.layer("k", b"an artifact payload")
    artifact = {
        "schemaVersion": 2,
        "mediaType": ARTIFACT_MANIFEST,
        "artifactType": "application/vnd.example+type",
        "blobs": [{"mediaType": OCI_LAYER, "digest": payload, "size": 19}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": docker, "size": 1},
    }
    artifact_d = b.manifest("k", artifact)
    b.contents[artifact_d] = {"blobs": [payload], "children": []}
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == owned(b, "k", schema1_dead) | owned(b, "k", docker_dead)
    for d in (signed_d, docker, foreign, artifact_d):
        assert owned(b, "k", d) <= r.after
    assert r.report.plan.anomalies == []


# -- refusal --------------------------------------------------------------------------------------


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


def test_untagged_corrupt_manifest_damages_its_repository(store: Store) -> None:
    """Under -m an untagged undecodable revision may be a referrer: its repository is kept whole."""
    b = RegistryBuilder()
    b.image("bad", "t")
    old = b.image("bad", "t")  # the first push is now untagged garbage, normally deleted
    d = b.manifest("bad", b"{corrupt")
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert r.deleted == set()
    found = r.anomalies()
    assert blob(d) in found["undecodable-manifest"]
    assert "docker/registry/v2/repositories/bad/" in found["damaged-repository"]
    assert {rev("bad", old), blob(old)} <= r.after, "untagged, but its repository is kept whole"
    assert r.report.plan.deletions == []


def test_untagged_corrupt_manifest_is_pruned_on_request(store: Store) -> None:
    """With prune_damaged an untagged undecodable manifest is garbage: deleted, no refusal."""
    b = RegistryBuilder()
    b.image("bad", "t")
    d = b.manifest("bad", b"{corrupt")
    r = run(store, b, delete_untagged=True, grace=ZERO, prune_damaged=True)
    assert r.deleted == {rev("bad", d), blob(d)}
    assert r.reason(rev("bad", d)) == ("revision", "untagged")
    assert blob(d) in r.anomalies()["undecodable-manifest"]


def test_unknown_manifest_kind_keeps_its_repository_whole(store: Store) -> None:
    """A live manifest of a kind distribution does not know: all its repository links stays."""
    b = RegistryBuilder()
    named = b.layer("odd")
    orphan = b.layer("odd")
    d = b.manifest(
        "odd",
        {"schemaVersion": 2, "mediaType": "application/x.unknown", "parts": [{"id": named}]},
        tag="t",
    )
    b.image("fine", "t")
    b.image("fine", "t")  # garbage in another repository is still collected
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert {lnk("odd", named), lnk("odd", orphan), blob(named), blob(orphan), blob(d)} <= r.after
    assert blob(d) in r.anomalies()["unknown-manifest-kind"]
    assert r.deleted, "the rest of the store is collected"
    assert all("/repositories/odd/" not in p for p in r.deleted)


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


# -- invalid repository names ---------------------------------------------------------------------


def raw_image(b: RegistryBuilder, name: str, extra: Sequence[Digest] = ()) -> set[str]:
    """An untagged image in a repository the builder would refuse to name; returns its paths."""
    r = Repository._trusted(name)
    layers = [b.blob(b.random_bytes(100)) for _ in range(2)]
    config = b.blob(json.dumps({"repository": name, "nonce": b.rng.random()}).encode())
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 1},
        "layers": [{"mediaType": OCI_LAYER, "digest": x, "size": 1} for x in [*layers, *extra]],
    }
    d = b.blob(json.dumps(doc).encode())
    b.put(RevisionLink(r, d).path, d.encode())
    for x in [config, *layers, *extra]:
        b.put(LayerLink(r, x).path, x.encode())
    return {blob(x) for x in [d, config, *layers, *extra]}


def test_invalid_repository_names_are_never_touched(disk: Store) -> None:
    """Nothing under 'Foo' or 'a..b' is deleted, and blobs their manifests use survive."""
    b = RegistryBuilder()
    shared = b.layer("ok")
    dead = b.image("ok", None, shared=[shared])
    b.image("ok", "t")
    untouchable: set[str] = set()
    for name in ("Foo", "a..b"):
        r = Repository._trusted(name)
        untouchable |= raw_image(b, name, [shared])
        b.put(LayerLink(r, sha256(b"missing")).path, sha256(b"missing").encode())
        b.put(f"{R}{name}/_manifests/tags/-weird/current/link", b"garbage")
        b.put(UploadFile(r, "old-upload", "data").path, b"x", age=30 * DAY)
        untouchable |= {p for p in b.files if p.startswith(f"{R}{name}/")}
    b.write_local(disk.dir)
    (disk.dir / f"{R}Foo/_manifests/tags/empty").mkdir(parents=True)
    dirs = {d for d in disk.dirs() if "Foo" in d or "a..b" in d}
    r = run(disk, delete_untagged=True, grace=ZERO)
    assert untouchable <= r.after
    assert dirs <= disk.dirs()
    assert r.deleted == owned(b, "ok", dead) - {blob(shared)}
    assert r.reason(lnk("ok", shared)) == ("layer-link", "unreferenced")
    invalid = {a.repository for a in r.report.plan.anomalies if a.kind == "invalid-repository-name"}
    assert invalid == {"Foo", "a..b"}


# -- the rich registry: dry run, idempotence, interruption ---------------------------------------


def rich(b: RegistryBuilder) -> None:
    """A registry with garbage of every kind, in many repositories."""
    base, _ = repushed(b, 3)
    b.multiarch("multi", "latest")
    b.multiarch("multi", None, kind="docker")
    img = b.image("ref", "v1")
    b.referrer("ref", b.referrer("ref", img))
    b.referrer("ref", b.image("ref", None))
    layer = b.layer("x")
    b.image("x", None, shared=[layer, base])
    b.image("y", "t", shared=[layer])
    b.image("e", None)
    b.image("e/n", "t")
    b.layer("aborted")
    b.upload("aborted", age=3 * DAY)
    b.upload("y", age=3 * DAY)
    b.link_layer("y", sha256(b"ghost"))
    b.put(rev("y", sha256(b"ghost manifest")), sha256(b"ghost manifest").encode())
    old = b.image("old", None)
    sig = b.blob(b"legacy signature")
    b.put(LegacySignatureLink(Repository("old"), old, sig).path, sig.encode())
    b.blob(b"orphan")


def test_dry_run_deletes_nothing_and_reports_what_a_real_run_deletes(disk: Store) -> None:
    """A dry run changes nothing; its listed paths are exactly what the next real run deletes."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    before, dirs = disk.snapshot(), disk.dirs()
    dry = collect(disk.root, delete_untagged=True, dry_run=True)
    assert disk.snapshot() == before
    assert disk.dirs() == dirs
    doc = dry.to_dict()
    assert doc["dry_run"] is True
    assert {d["status"] for d in doc["deletions"]} == {"planned"}
    would = {p for d in doc["deletions"] for p in d["paths"]}
    assert len(would) > 40
    real = run(disk, delete_untagged=True)
    assert real.deleted == would
    assert dry.categories() == real.report.categories()
    assert dry.repositories() == real.report.repositories()
    assert dry.deleted_bytes == real.report.deleted_bytes


class Delegating(WrappingBackend):
    """A backend that delegates every call to another (with its capabilities, and no others)."""

    @property
    def inner(self) -> Any:
        """The wrapped backend, untyped: the doubles below call its capabilities directly."""
        return self._inner


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


# -- per-path failures ----------------------------------------------------------------------------


class FailSome(Delegating):
    """Returns FAILED for the paths ``fail`` selects, deletes the others."""

    def __init__(self, inner: Backend, fail: Callable[[str], bool]) -> None:
        super().__init__(inner)
        self.fail = fail
        self.dir_calls = 0

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Fail the selected paths, delete the rest."""
        ok = [p for p in paths if not self.fail(p)]
        done = {r.path: r for r in await self.inner.delete(ok)} if ok else {}
        return [done.get(p) or DeleteResult(p, Outcome.FAILED, "AccessDenied: nope") for p in paths]

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        """Count the calls."""
        self.dir_calls += 1
        return await self.inner.remove_empty_dirs(dirs)


def test_failed_revision_deletion_skips_every_later_phase(disk: Store) -> None:
    """A revision link that fails to go: exit 1, failures listed, no link or blob deleted after."""
    b = RegistryBuilder()
    rich(b)
    b.write_local(disk.dir)
    before = disk.files()
    backend = FailSome(LocalBackend(disk.dir), lambda p: p.startswith(f"{R}app/_manifests/rev"))
    report = collect(backend, delete_untagged=True)
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
    statuses = {(d["category"], d["status"]) for d in doc["deletions"]}
    assert ("revision", "failed") in statuses
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


# -- report ---------------------------------------------------------------------------------------


DOCUMENTED_KEYS = {
    "schema",
    "root",
    "dry_run",
    "ok",
    "options",
    "store",
    "totals",
    "categories",
    "repositories",
    "deletions",
    "kept",
    "anomalies",
    "failures",
}


def test_report_counts_bytes_and_json(store: Store) -> None:
    """Counts and bytes per category and repository match the deletions; the JSON is complete."""
    b = RegistryBuilder()
    rich(b)
    b.blob(b"young", age=60)
    store.write(b)
    sizes = {p: len(data) for p, data in b.files.items()}
    r = run(
        store,
        delete_untagged=True,
        uploads_older_than=datetime.timedelta(hours=2),
        prune_damaged=True,  # rich() holds a dangling revision: count its deletion too
    )
    report = r.report
    doc = json.loads(json.dumps(report.to_dict()))
    assert set(doc) >= DOCUMENTED_KEYS
    assert doc["schema"] == "registry-gc/report/v1"
    assert doc["root"] == report.plan.url
    assert (doc["dry_run"], doc["ok"]) == (False, True)
    assert doc["options"] == {
        "delete_untagged": True,
        "grace_seconds": 3600.0,
        "uploads_older_than_seconds": 7200.0,
    }
    deleted_blobs = blobs_of(r.deleted)
    uploads = {p for p in r.deleted if "/_uploads/" in p}
    cats = doc["categories"]
    assert cats["blob"] == {
        "count": len(deleted_blobs),
        "bytes": sum(sizes[p] for p in deleted_blobs),
        "objects": len(deleted_blobs),
    }
    assert cats["upload"]["bytes"] == sum(sizes[p] for p in uploads)
    assert cats["upload"]["objects"] == len(uploads)
    assert cats["upload"]["count"] == len(uploads) // 3
    assert cats["layer-link"]["objects"] == sum(
        isinstance(classify(p), LayerLink) for p in r.deleted
    )
    revisions = sum(isinstance(classify(p), RevisionLink) for p in r.deleted)
    signatures = sum(isinstance(classify(p), LegacySignatureLink) for p in r.deleted)
    assert (revisions, signatures) == (11, 1)
    assert cats["revision"] == {"count": 11, "bytes": 0, "objects": 12}
    assert sum(c["objects"] for c in cats.values()) == len(r.deleted)
    totals = doc["totals"]
    assert totals["objects"] == len(r.deleted)
    assert totals["bytes"] == sum(sizes[p] for p in deleted_blobs | uploads)
    assert totals["deletions"] == len(doc["deletions"])
    assert totals["kept_for_grace"] == len(doc["kept"]) == 1
    assert doc["kept"][0]["path"] == blob(sha256(b"young"))
    assert totals["failed"] == 0
    assert doc["failures"] == []
    assert doc["store"]["blobs"] == len(blobs_of(set(b.files)))
    assert doc["store"]["bytes"] == sum(sizes[p] for p in blobs_of(set(b.files)))
    per_repo: dict[str, dict[str, int]] = {}
    for d in doc["deletions"]:
        if d["repository"] is not None:
            entry = per_repo.setdefault(d["repository"], {})
            entry[d["category"]] = entry.get(d["category"], 0) + 1
    assert {k: v["categories"] for k, v in doc["repositories"].items()} == per_repo
    assert doc["repositories"]["y"]["bytes"] == sum(
        sizes[p] for p in uploads if p.startswith(f"{R}y/")
    )
    # rich() holds a dangling revision, collected on request (prune_damaged) but reported.
    assert {a["kind"] for a in doc["anomalies"]} == {"no-manifests-directory", "missing-manifest"}
    assert report.deleted_count == len(r.deleted)
    text = report.render(verbose=True)
    assert "deleted:" in text
    assert "restart" in text


# -- read as the registry reads: 2.1.0 _layers revisions, blob entries, memory ------------------


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_a_manifest_linked_only_under_layers_is_a_revision(
    store: Store, delete_untagged: bool
) -> None:
    """A tag at a 2.1.0 revision (linked under _layers only) keeps it, its link and its blobs."""
    b = RegistryBuilder()
    d = legacy(b, "old", "t")
    r = run(store, b, delete_untagged=delete_untagged, grace=ZERO)
    kept = (owned(b, "old", d) - {rev("old", d)}) | {lnk("old", d), cur("old", "t")}
    assert kept <= r.after
    assert r.deleted == set()
    assert lnk("old", d) in r.anomalies()["legacy-revision"]


def test_an_untagged_legacy_revision_is_a_root_without_m_and_garbage_with_m(store: Store) -> None:
    """Untagged, with no history: found by reading the link's blob; -m deletes it as untagged."""
    b = RegistryBuilder()
    b.image("old", "t")
    d = legacy(b, "old", None)
    before = run(store, b, grace=ZERO)
    assert owned(b, "old", d) - {rev("old", d)} <= before.after, "without -m: a root"
    r = run(store, delete_untagged=True, grace=ZERO)
    gone = (owned(b, "old", d) - {rev("old", d)}) | {lnk("old", d)}
    assert gone <= r.deleted
    assert r.reason(lnk("old", d)) == ("revision", "untagged")


def test_a_legacy_revision_found_through_tag_history(store: Store) -> None:
    """A 2.1.0 revision a tag once pointed at is read through its history entry, and kept."""
    b = RegistryBuilder()
    d = legacy(b, "old", "t")
    b.tag("old", "t", b.image("old", None))  # the tag moves on; d stays in its history
    r = run(store, b, grace=ZERO)
    assert (owned(b, "old", d) - {rev("old", d)}) | {lnk("old", d), idx("old", "t", d)} <= r.after


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_a_buildkit_cache_index_keeps_its_blob_entries(store: Store, delete_untagged: bool) -> None:
    """Index entries that are blobs are kept with their links; the run neither refuses nor loses."""
    b = RegistryBuilder()
    d, entries = buildkit_cache(b, "cache", "buildcache")
    b.image("cache", "t")
    b.image("cache", "t")
    r = run(store, b, delete_untagged=delete_untagged, grace=ZERO)
    assert {rev("cache", d), blob(d)} | {blob(x) for x in entries} | {
        lnk("cache", x) for x in entries
    } <= r.after
    assert "missing-manifest" not in r.anomalies()
    assert "damaged-repository" not in r.anomalies()


def test_an_untagged_buildkit_cache_index_goes_with_its_entries(store: Store) -> None:
    """Under -m an untagged cache index is garbage, and the blobs only it named go too."""
    b = RegistryBuilder()
    b.image("cache", "t")
    d, entries = buildkit_cache(b, "cache", None)
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert {rev("cache", d), blob(d)} | {blob(x) for x in entries} <= r.deleted
    assert {lnk("cache", x) for x in entries} <= r.deleted


class _Metered(WrappingBackend):
    """A backend wrapper that records the most bytes held by read() calls at once."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.now = 0
        self.peak = 0

    async def read(self, paths: Any) -> Any:
        got = await self.inner.read(paths)
        size = sum(len(v) for v in got.values() if v is not None)
        self.now += size
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0)  # let other batches run while these bytes are held
        self.now -= size
        return got


def test_manifest_reads_hold_bounded_memory(disk: Store) -> None:
    """However many large manifests there are, the bytes read at once stay within the budget."""
    b = RegistryBuilder()
    pad = "x" * (3 * 1024 * 1024)  # 3 MiB per manifest body
    for i in range(40):
        d = b.image("big", f"t{i}")
        doc = json.loads(b.files[blob(d)])
        doc["annotations"] = {"pad": pad, "i": str(i)}
        b.manifest("big", doc, tag=f"t{i}")
    b.write_local(disk.dir)
    backend = _Metered(open_backend(str(disk.dir)))
    report = collect(backend, delete_untagged=True, grace=ZERO, dry_run=True)
    assert report.manifests_read >= 80
    budget = fetch.PARALLEL_BATCHES * fetch.BATCH_BYTES
    assert 3 * 1024 * 1024 < backend.peak <= budget


def test_a_referrer_in_another_repository_follows_its_subject(store: Store) -> None:
    """COSIGN_REPOSITORY: an untagged signature whose subject is live elsewhere stays under -m."""
    b = RegistryBuilder()
    image = b.image("app", "v1")
    sig = b.referrer("app-sigs", image)
    att = b.referrer("app-sigs", sig)  # a chain: an attestation of the signature
    old = b.image("app", None)
    orphan = b.referrer("app-sigs", old)
    r = run(store, b, delete_untagged=True, grace=ZERO)
    assert owned(b, "app-sigs", sig) | owned(b, "app-sigs", att) <= r.after
    assert {rev("app-sigs", orphan), rev("app", old)} <= r.deleted
