"""Tests of registry_gc.graph: one walk of a repository's manifest graph, called directly.

Builder trees are written to a local directory and read back (inventory and
manifests); :func:`~registry_gc.graph.walk` is then run on one repository's
:class:`~registry_gc.graph.Graph` and what it reached is compared with what the
registry would serve.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc.graph import Damage, Graph, Missing, Reach, Role, walk
from registry_gc.layout import Digest, Repository

from tests.rigs.builder import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, RegistryBuilder
from tests.rigs.layouts import buildkit_cache, legacy
from tests.rigs.stores import blob, lnk, surveyed

if TYPE_CHECKING:
    from pathlib import Path


def graph_of(b: RegistryBuilder, root: Path, repo: str) -> Graph:
    """Write ``b`` under ``root``; the graph of ``repo`` as the collector builds it."""
    inventory, manifests = surveyed(b, root)
    return Graph.of(inventory.repositories[Repository(repo)], manifests, inventory.blobs)


def image_blobs(b: RegistryBuilder, *digests: Digest) -> set[Digest]:
    """Manifest, config and layer digests of images."""
    return {x for d in digests for x in (d, *b.contents[d]["blobs"])}


def test_roles_that_expect_a_manifest() -> None:
    """Only blob entries, untyped entries and ambiguous names may turn out to be blobs."""
    may_be_blobs = {Role.CHILD_BLOB, Role.CHILD_UNTYPED, Role.NAMED}
    for role in Role:
        assert role.expects_manifest is (role not in may_be_blobs), role


# -- images and indexes ----------------------------------------------------------------------


def test_a_tag_reaches_its_manifest_config_and_layers(tmp_path: Path) -> None:
    """An image: one manifest; its blobs and links; config and layers are required links."""
    b = RegistryBuilder()
    d = b.image("app", "t", layers=3)
    b.image("app", "other")
    reach = walk(graph_of(b, tmp_path, "app"), [(d, Role.TAG)])
    assert reach.manifests == {d}
    assert reach.blobs == image_blobs(b, d)
    assert reach.links == image_blobs(b, d)
    assert reach.required == set(b.contents[d]["blobs"])
    assert (reach.missing, reach.damage, reach.uncertain) == ([], [], [])


def test_an_index_reaches_its_children_and_their_blobs(tmp_path: Path) -> None:
    """A multi-arch index: every child manifest, and every blob they reference."""
    b = RegistryBuilder()
    top = b.multiarch("m", "t", arches=3)
    children = b.contents[top]["children"]
    reach = walk(graph_of(b, tmp_path, "m"), [(top, Role.TAG)])
    assert reach.manifests == {top, *children}
    assert reach.blobs == {top} | image_blobs(b, *children)
    assert reach.unlinked_children == []


def test_an_index_entry_without_a_link_in_the_repository_is_reported(tmp_path: Path) -> None:
    """A child whose revision link is gone: the (index, child) pair is in unlinked_children."""
    b = RegistryBuilder()
    top = b.multiarch("m", "t", arches=2)
    child = b.contents[top]["children"][0]
    b.remove(f"docker/registry/v2/repositories/m/_manifests/revisions/sha256/{child.hex}/link")
    reach = walk(graph_of(b, tmp_path, "m"), [(top, Role.TAG)])
    assert reach.unlinked_children == [(top, child)]
    assert child in reach.manifests


def test_skip_and_into(tmp_path: Path) -> None:
    """skip= stops at manifests already walked; into= adds to a result without walking again."""
    b = RegistryBuilder()
    top = b.multiarch("m", "t", arches=2)
    first, second = b.contents[top]["children"]
    graph = graph_of(b, tmp_path, "m")
    reach = walk(graph, [(top, Role.TAG)], skip={first})
    assert reach.manifests == {top, second}
    assert not set(b.contents[first]["blobs"]) & reach.blobs
    earlier = Reach(manifests={second})
    again = walk(graph, [(top, Role.TAG)], into=earlier)
    assert again is earlier
    assert again.manifests == {top, first, second}
    assert not set(b.contents[second]["blobs"]) & again.blobs, "second was walked already"


# -- referrers -------------------------------------------------------------------------------


def test_referrers_are_reached_only_when_asked(tmp_path: Path) -> None:
    """A signature (and its own signature) of a reached image is reached; referrers=False stops."""
    b = RegistryBuilder()
    img = b.image("r", "v1")
    sig = b.referrer("r", img)
    sig_of_sig = b.referrer("r", sig)
    other = b.referrer("r", b.image("r", None))
    graph = graph_of(b, tmp_path, "r")
    assert graph.referrers[img] == [sig]
    reach = walk(graph, [(img, Role.TAG)])
    assert reach.manifests == {img, sig, sig_of_sig}
    assert other not in reach.manifests
    assert walk(graph, [(img, Role.TAG)], referrers=False).manifests == {img}


# -- as the registry reads: 2.1.0 revisions, blob entries, aliases, foreign layers ------------


def test_a_manifest_linked_only_under_layers_is_a_revision(tmp_path: Path) -> None:
    """A 2.1.0 revision is in Graph.legacy and manifests; the walk keeps its _layers link."""
    b = RegistryBuilder()
    d = legacy(b, "old", "t")
    graph = graph_of(b, tmp_path, "old")
    assert set(graph.legacy) == {d}
    assert d in graph.manifests
    assert graph.is_manifest_here(d)
    reach = walk(graph, [(d, Role.TAG)])
    assert reach.manifests == {d}
    assert d in reach.links
    assert reach.blobs == image_blobs(b, d)


def test_index_entries_that_are_blobs_are_required_blobs(tmp_path: Path) -> None:
    """A BuildKit cache: its entries are kept and required as blobs, never walked as manifests."""
    b = RegistryBuilder()
    d, entries = buildkit_cache(b, "cache", "t")
    reach = walk(graph_of(b, tmp_path, "cache"), [(d, Role.TAG)])
    assert reach.manifests == {d}
    assert set(entries) <= reach.blobs
    assert set(entries) <= reach.links
    assert reach.required == set(entries)
    assert (reach.missing, reach.damage) == ([], [])


def index_over(b: RegistryBuilder, repo: str, entries: list[dict[str, Any]]) -> Digest:
    """A tagged OCI index with these raw entries."""
    return b.manifest(repo, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, "t")


def test_absent_entries_blob_ones_missing_untyped_ones_damage(tmp_path: Path) -> None:
    """An absent blob entry is a missing blob; an absent entry without a media type is damage."""
    b = RegistryBuilder()
    gone_blob = Digest("sha256:" + "b" * 64)
    gone_untyped = Digest("sha256:" + "c" * 64)
    top = index_over(
        b,
        "i",
        [
            {"mediaType": OCI_LAYER, "digest": gone_blob, "size": 1},
            {"digest": gone_untyped, "size": 1},
        ],
    )
    reach = walk(graph_of(b, tmp_path, "i"), [(top, Role.TAG)])
    assert reach.manifests == {top}
    assert reach.missing == [Missing(gone_blob, gone_blob, None)]
    assert reach.damage == [Damage(gone_untyped, Role.CHILD_UNTYPED, "missing", missing=True)]
    assert {gone_blob, gone_untyped} <= reach.links
    assert gone_blob in reach.required


def test_an_untyped_entry_that_reads_as_a_manifest_is_walked(tmp_path: Path) -> None:
    """An entry without a media type whose blob is an image manifest here is a child."""
    b = RegistryBuilder()
    child = b.image("i", None)
    top = index_over(b, "i", [{"digest": child, "size": 1}])
    reach = walk(graph_of(b, tmp_path, "i"), [(top, Role.TAG)])
    assert reach.manifests == {top, child}
    assert image_blobs(b, child) <= reach.blobs


def test_an_alias_reference_keeps_the_canonical_link_too(tmp_path: Path) -> None:
    """A layer named by its sha512 digest: the alias and the sha256 link, and the sha256 blob."""
    b = RegistryBuilder()
    data = b"a layer pushed by its sha512 digest"
    canonical = b.blob(data)
    alias = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    b.put(lnk("app", alias), canonical.encode())
    b.link_layer("app", canonical)
    config = b.layer("app", b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": alias, "size": len(data)}],
    }
    d = b.manifest("app", doc, tag="t")
    graph = graph_of(b, tmp_path, "app")
    assert graph.canonical(alias) == canonical
    reach = walk(graph, [(d, Role.TAG)])
    assert {alias, canonical} <= reach.links
    assert reach.blobs == {d, config, canonical}
    assert reach.required == {config, alias}
    assert reach.missing == []


def test_foreign_layers_are_required_only_when_present(tmp_path: Path) -> None:
    """An absent foreign layer (urls) is neither missing nor required; its link is still kept."""
    b = RegistryBuilder()
    d = b.image("k", "t", kind="docker", foreign=1)
    path = blob(d)
    layers = json.loads(b.files[path])["layers"]
    foreign = next(Digest(x["digest"]) for x in layers if "urls" in x)
    reach = walk(graph_of(b, tmp_path, "k"), [(d, Role.TAG)])
    assert foreign in reach.links
    assert foreign not in reach.required
    assert reach.missing == []
    assert set(b.contents[d]["blobs"]) <= reach.required


def test_an_absent_layer_is_missing(tmp_path: Path) -> None:
    """A layer whose blob is gone: Missing(manifest, layer, layer); the link is still required."""
    b = RegistryBuilder()
    d = b.image("app", "t")
    lost = b.contents[d]["blobs"][1]
    b.remove(blob(lost))
    reach = walk(graph_of(b, tmp_path, "app"), [(d, Role.TAG)])
    assert reach.missing == [Missing(d, lost, lost)]
    assert lost in reach.required
    assert reach.damage == []


# -- what cannot be read ---------------------------------------------------------------------


def test_a_missing_manifest_is_damage_with_its_role(tmp_path: Path) -> None:
    """A tag at a manifest whose blob is gone: missing damage, naming the role that reached it."""
    b = RegistryBuilder()
    d = b.image("app", "t")
    b.remove(blob(d))
    reach = walk(graph_of(b, tmp_path, "app"), [(d, Role.TAG)])
    assert reach.damage == [Damage(d, Role.TAG, "missing", missing=True)]
    assert reach.manifests == {d}
    assert reach.blobs == {d}, "nothing it references is known"


def test_an_undecodable_manifest_is_damage_with_the_reason(tmp_path: Path) -> None:
    """A manifest distribution cannot decode: damage, not missing, with the decoding error."""
    b = RegistryBuilder()
    d = b.manifest("bad", b"{corrupt", tag="t")
    reach = walk(graph_of(b, tmp_path, "bad"), [(d, Role.ROOT)])
    (damage,) = reach.damage
    assert (damage.digest, damage.role, damage.missing) == (d, Role.ROOT, False)
    assert "JSON" in damage.problem


def test_a_manifest_of_an_unknown_kind_is_uncertain_and_keeps_what_it_names(
    tmp_path: Path,
) -> None:
    """An unknown media type: reported uncertain; the digests it names are kept as blobs."""
    b = RegistryBuilder()
    named = b.layer("odd")
    d = b.manifest(
        "odd",
        {"schemaVersion": 2, "mediaType": "application/x.unknown", "parts": [{"id": named}]},
        tag="t",
    )
    reach = walk(graph_of(b, tmp_path, "odd"), [(d, Role.TAG)])
    assert reach.uncertain == [d]
    assert reach.manifests == {d}
    assert named in reach.blobs
    assert named in reach.links
    assert reach.damage == []


@pytest.mark.parametrize("present", [True, False])
def test_an_ambiguous_name_is_kept_only_when_present(tmp_path: Path, present: bool) -> None:
    """A digest an unknown body names is kept (blob and link) only if such a blob exists."""
    b = RegistryBuilder()
    named = b.layer("odd") if present else Digest("sha256:" + "e" * 64)
    d = b.manifest(
        "odd", {"schemaVersion": 2, "mediaType": "application/x.unknown", "x": named}, tag="t"
    )
    reach = walk(graph_of(b, tmp_path, "odd"), [(d, Role.TAG)])
    assert (named in reach.blobs) is present
    assert (named in reach.links) is present
    assert reach.damage == []
    assert reach.missing == []
