"""Tests of registry_gc.plan: what is deleted and why, what is kept for the grace period.

Through ``collect()`` on builder stores (``tests/rigs/stores.py``): grace,
uploads, empty repositories, invalid repository names.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import Options, RefusedError, Removals, collect, make_plan, mark
from registry_gc._deletions import DeletionList, deleted_bytes
from registry_gc.layout import (
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    UploadFile,
)
from registry_gc.plan import PHASES, Category

from tests.rigs.builder import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryBuilder, sha256
from tests.rigs.scenarios import rich
from tests.rigs.stores import (
    DAY,
    HOUR,
    UTC,
    ZERO,
    R,
    Run,
    Store,
    blob,
    lnk,
    owned,
    rev,
    run,
    surveyed,
    upload_paths,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


# -- grace -----------------------------------------------------------------------------------


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


# -- uploads ---------------------------------------------------------------------------------


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


# -- repositories ----------------------------------------------------------------------------


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


# -- invalid repository names ----------------------------------------------------------------


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


# -- explicit removals -----------------------------------------------------------------------


def test_collect_removed_manifest_also_removes_the_tags_on_it(tmp_path: Path) -> None:
    """Removing a manifest untags the tags pointing at it, as distribution's DELETE does.

    mark() already treats those tags as no roots ("as when distribution deletes a
    manifest by digest"), but make_plan only deletes tag directories named in
    removed_tags: the tag is left dangling at a revision that no longer exists
    (the registry answers MANIFEST_UNKNOWN for it and still lists it).
    """
    b = RegistryBuilder(seed=2)
    doomed = b.image("app", "v1")
    b.image("app", "v2")
    b.write_local(tmp_path)
    collect(
        tmp_path,
        removals=Removals(manifests={Repository("app"): {doomed}}),
        grace=datetime.timedelta(0),
    )
    assert not (tmp_path / rev("app", doomed)).exists()
    assert not (tmp_path / TagCurrentLink(Repository("app"), Tag("v1")).path).exists()


# -- make_plan() called directly -------------------------------------------------------------


def test_make_plan_refuses_marks_with_problems(tmp_path: Path) -> None:
    """Marks with problems: RefusedError carrying every one, saying nothing was deleted."""
    b = RegistryBuilder()
    b.manifest("bad", b"{corrupt", tag="t")
    b.image("ok", None)
    inventory, manifests = surveyed(b, tmp_path)
    marks = mark(inventory, manifests, Options(delete_untagged=True, grace=ZERO))
    with pytest.raises(RefusedError, match=r"1 problem\(s\) found; nothing was deleted") as info:
        make_plan(inventory, marks)
    assert info.value.problems == marks.problems


def test_deletions_come_in_the_order_of_the_phases(tmp_path: Path) -> None:
    """Tags, revisions and tag history, layer links, blobs, uploads, then repositories."""
    b = RegistryBuilder()
    rich(b)
    inventory, manifests = surveyed(b, tmp_path)
    removals = Removals(tags={Repository("y"): {Tag("t")}})
    options = Options(delete_untagged=True, grace=ZERO, prune_damaged=True)
    plan = make_plan(inventory, mark(inventory, manifests, options, removals=removals))
    order = {c: i for i, phase in enumerate(PHASES) for c in phase}
    phases = [order[d.category] for d in plan.deletions]
    assert phases == sorted(phases)
    assert set(phases) == set(range(len(PHASES))), "rich() has garbage for every phase"


def test_the_deleted_bytes_are_the_sum_of_the_deletions_sizes(tmp_path: Path) -> None:
    """``deleted_bytes`` sums the size column of the plan's list as making each deletion would."""
    b = RegistryBuilder()
    rich(b)
    inventory, manifests = surveyed(b, tmp_path)
    options = Options(delete_untagged=True, grace=ZERO, prune_damaged=True)
    plan = make_plan(inventory, mark(inventory, manifests, options))
    assert isinstance(plan.deletions, DeletionList)
    by_hand = sum(d.size for d in plan.deletions)
    assert by_hand > 0, "rich() has blobs to delete"
    assert deleted_bytes(plan.deletions) == by_hand
    assert deleted_bytes(list(plan.deletions)) == by_hand


def test_the_plan_counts_from_the_cutoffs_marking_used(tmp_path: Path) -> None:
    """A blob written a minute ago is kept; marked as of two hours later, it is deleted."""
    b = RegistryBuilder()
    b.image("app", "t")
    young = b.blob(b"young and unreferenced", age=60)
    inventory, manifests = surveyed(b, tmp_path)
    plan = make_plan(inventory, mark(inventory, manifests))
    assert [k.path for k in plan.kept] == [blob(young)]
    assert plan.deletions == []
    later = datetime.datetime.now(UTC) + datetime.timedelta(hours=2)
    plan = make_plan(inventory, mark(inventory, manifests, now=later))
    assert [d.paths for d in plan.deletions] == [(blob(young),)]
    assert plan.kept == []
