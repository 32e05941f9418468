"""Tests of registry_gc.mark: what stays live (roots, indexes, referrers, sharing, damage).

Scenario by scenario through ``collect()`` on builder stores (``tests/rigs/stores.py``):
the exact set of deleted paths is compared with what marking must keep.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from registry_gc import Options, Removals, mark
from registry_gc.layout import BlobData, Digest, Repository, Tag
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
from tests.rigs.scenarios import repushed
from tests.rigs.stores import ZERO, Store, blob, cur, idx, lnk, owned, rev, run, surveyed

if TYPE_CHECKING:
    from pathlib import Path

# -- roots: tags and revisions ---------------------------------------------------------------


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


# -- indexes ---------------------------------------------------------------------------------


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


# -- referrers -------------------------------------------------------------------------------


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


# -- sharing across repositories -------------------------------------------------------------


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


# -- dangling and missing --------------------------------------------------------------------


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


# -- manifest kinds --------------------------------------------------------------------------


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


# -- damaged repositories --------------------------------------------------------------------


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


# -- read as the registry reads: 2.1.0 _layers revisions, blob entries -----------------------


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
def test_an_index_entry_typed_as_a_blob_that_the_registry_serves_as_a_manifest(
    store: Store, delete_untagged: bool
) -> None:
    """An entry of an unknown media type, linked under _layers and reading as a manifest, is one.

    distribution serves that blob as a manifest (through its ``_layers`` link),
    and what it references with it: its config and layers stay.
    """
    b = RegistryBuilder()
    d = legacy(b, "odd", None)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": "application/vnd.example.manifest.v1+json",
                "digest": d,
                "size": len(b.files[BlobData(d).path]),
            }
        ],
    }
    b.manifest("odd", doc, "t")
    b.image("odd", None)  # garbage under -m: the run does collect
    r = run(store, b, delete_untagged=delete_untagged, grace=ZERO)
    assert (owned(b, "odd", d) - {rev("odd", d)}) | {lnk("odd", d)} <= r.after
    assert r.deleted or not delete_untagged


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


# -- mark() called directly ------------------------------------------------------------------


def test_marks_carry_what_marking_used_and_what_is_live(tmp_path: Path) -> None:
    """Marks hold the options, removals and cut-offs (from the listing's start), and the live."""
    b = RegistryBuilder()
    old = b.image("app", "t")
    new = b.image("app", "t")
    gone = b.image("web", "v1")
    inventory, manifests = surveyed(b, tmp_path)
    options = Options(delete_untagged=True, grace=ZERO)
    removals = Removals(tags={Repository("web"): {Tag("v1")}})
    marks = mark(inventory, manifests, options, removals=removals)
    assert (marks.options, marks.removals) == (options, removals)
    assert marks.cutoffs == options.cutoffs(inventory.started)
    assert marks.live == {Repository("app"): {new}, Repository("web"): set()}
    assert set(b.contents[new]["blobs"]) | {new} <= marks.blobs
    assert not ({old, gone} & marks.blobs)
    assert marks.problems == []


def test_a_live_manifest_that_cannot_be_decoded_is_a_problem_not_an_exception(
    tmp_path: Path,
) -> None:
    """mark() records the problem, naming repository and digest; make_plan is what refuses."""
    b = RegistryBuilder()
    d = b.manifest("bad", b"{corrupt", tag="t")
    inventory, manifests = surveyed(b, tmp_path)
    marks = mark(inventory, manifests)
    (problem,) = marks.problems
    assert f"live manifest {d} in repository 'bad'" in problem
    assert f"registry-gc rm bad@{d}" in problem


def test_blobs_without_any_manifest_are_a_problem_unless_allowed(tmp_path: Path) -> None:
    """A store of blobs and no manifest is a problem; allow_no_manifests lets marking proceed."""
    b = RegistryBuilder()
    b.blob(b"orphan")
    inventory, manifests = surveyed(b, tmp_path)
    (problem,) = mark(inventory, manifests).problems
    assert "allow_no_manifests" in problem
    assert mark(inventory, manifests, Options(allow_no_manifests=True)).problems == []


def test_a_subject_live_elsewhere_keeps_its_referrers_here(tmp_path: Path) -> None:
    """live_elsewhere: a referrer whose subject is live in a repository not marked here is live."""
    b = RegistryBuilder()
    image = b.image("app", "v1")
    sig = b.referrer("app-sigs", image)
    inventory, manifests = surveyed(b, tmp_path)
    del inventory.repositories[Repository("app")]  # a part of the store: app is elsewhere
    opts = Options(delete_untagged=True, allow_no_manifests=True)
    alone = mark(inventory, manifests, opts)
    assert sig not in alone.live[Repository("app-sigs")]
    told = mark(inventory, manifests, opts, live_elsewhere={image})
    assert sig in told.live[Repository("app-sigs")]
