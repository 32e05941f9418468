"""check (fsck): every corruption the builder can inject, one at a time.

Each test breaks one thing in an otherwise healthy store and expects exactly
one kind of problem, naming the object and the tags it breaks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import TYPE_CHECKING

import fsspec
import pytest
from registry_gc import load_manifests, take_inventory
from registry_gc.backends import FsspecBackend, LocalBackend
from registry_gc.checking import CheckResult, check_store, links_to_read
from registry_gc.checking import check as run_check
from registry_gc.layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    blob_path,
)

from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.healthy import Store
from tests.rigs.layouts import buildkit_cache, legacy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from registry_gc.backends import Backend


def rev(repo: str, d: Digest) -> str:
    """The revision link path."""
    return RevisionLink(Repository._trusted(repo), d).path


def lnk(repo: str, d: Digest) -> str:
    """The _layers link path."""
    return LayerLink(Repository._trusted(repo), d).path


def current(repo: str, tag: str) -> str:
    """The tag's current link path."""
    return TagCurrentLink(Repository._trusted(repo), Tag._trusted(tag)).path


@pytest.fixture
def store() -> Store:
    """A fresh healthy store (not yet written)."""
    return Store()


def check(
    backend: Backend, *, verify: bool = False, repos: Sequence[str] | None = None
) -> CheckResult:
    """Run fsck (registry_gc.check) on the backend."""
    return run_check(backend, repos or (), verify_blobs=verify)


def kinds(result: CheckResult) -> list[str]:
    """The kinds of problems found, in order."""
    return [p.kind for p in result.problems]


# -- a healthy store ---------------------------------------------------------------------


def test_healthy_store_passes(store: Store, tmp_path: Path) -> None:
    """No problem on a healthy store: OCI, Docker, multi-arch, foreign layers, referrers."""
    result = check(store.write(tmp_path), verify=True)
    assert result.ok, result.render()
    assert result.problems == ()
    assert (result.repositories, result.tags) == (4, 6)
    assert result.manifests == 7  # 3 app/win/signed images + docker + index + 2 children
    assert result.hashed == len(take_inventory(LocalBackend(tmp_path)).blobs)
    assert "no problems" in result.render()


def test_healthy_store_on_memory_fsspec_with_verify(store: Store) -> None:
    """The check and --verify-blobs work through a generic fsspec backend (streaming digest)."""
    fs = fsspec.filesystem("memory")
    root = "/fsck-healthy"
    store.b.write_fs(fs, root)
    try:
        result = check(FsspecBackend(fs, root), verify=True)
        assert result.ok, result.render()
        assert result.hashed > 0
    finally:
        fs.rm(root, recursive=True)


# -- one corruption at a time -------------------------------------------------------------


def test_missing_layer_blob(store: Store, tmp_path: Path) -> None:
    """A layer blob deleted behind the registry's back: missing-blob, with the tags it breaks."""
    layer = store.layer(store.image)
    store.b.remove(blob_path(layer))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-blob"]
    problem = result.problems[0]
    assert problem.path == blob_path(layer)
    assert problem.tags == ("app:stable", "app:v1")
    assert f"layer {layer}" in problem.message
    assert "cannot be pulled" in problem.message
    assert "registry-gc rm app:" in problem.message


def test_missing_config_blob_is_named_a_config(store: Store, tmp_path: Path) -> None:
    """A missing config is reported as a config."""
    config = store.layer(store.docker, 0)
    store.b.remove(blob_path(config))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-blob"]
    assert f"config {config}" in result.problems[0].message


def test_missing_layer_link(store: Store, tmp_path: Path) -> None:
    """A layer not linked into the repository: the registry answers BLOB_UNKNOWN."""
    layer = store.layer(store.image, 2)
    store.b.remove(lnk("app", layer))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-layer-link"]
    assert result.problems[0].path == lnk("app", layer)


def test_broken_layer_link_content(store: Store, tmp_path: Path) -> None:
    """A layer link that holds garbage, or another digest, is broken."""
    layer = store.layer(store.image)
    other = store.layer(store.docker)
    store.b.put(lnk("app", layer), b"sha256:not-a-digest")
    store.b.put(lnk("app", store.layer(store.image, 2)), other.encode())
    result = check(store.write(tmp_path))
    assert kinds(result) == ["broken-layer-link", "broken-layer-link"]
    assert any(f"names {other}" in p.message for p in result.problems)


def test_manifest_bytes_not_matching_the_digest(store: Store, tmp_path: Path) -> None:
    """Manifest data replaced by other (valid) JSON: digest-mismatch, with the real digest."""
    data = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}'
    store.b.put(blob_path(store.docker), data)
    result = check(store.write(tmp_path))
    assert kinds(result) == ["digest-mismatch"]
    assert f"hashes to {sha256(data)}" in result.problems[0].message
    assert result.problems[0].tags == ("app:docker",)


@pytest.mark.parametrize("content", [b"garbage", b"", b"sha256:" + b"a" * 63, b"md5:abc"])
def test_broken_current_link(store: Store, tmp_path: Path, content: bytes) -> None:
    """A current link that does not hold a digest breaks the tag."""
    store.b.put(current("app", "stable"), content)
    result = check(store.write(tmp_path))
    assert kinds(result) == ["broken-current-link"]
    assert result.problems[0].tags == ("app:stable",)
    assert "registry-gc rm app:stable" in result.problems[0].message


def test_missing_current_link(store: Store, tmp_path: Path) -> None:
    """A tag directory with history but no current link (an interrupted write)."""
    store.b.remove(current("app", "stable"))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-current-link"]
    assert result.warnings == ()  # the inventory's anomaly is the problem, not also a warning


def test_missing_manifest_blob(store: Store, tmp_path: Path) -> None:
    """The tag's manifest blob is gone: missing-manifest."""
    store.b.remove(blob_path(store.docker))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-manifest"]
    assert result.problems[0].path == blob_path(store.docker)


def test_missing_revision_link_of_a_tag_target(store: Store, tmp_path: Path) -> None:
    """A tag pointing at a manifest without a revision link: the registry cannot serve it."""
    store.b.remove(rev("app", store.docker))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-revision-link"]


def test_broken_revision_link(store: Store, tmp_path: Path) -> None:
    """A revision link naming another digest is broken."""
    store.b.put(rev("app", store.docker), store.image.encode())
    result = check(store.write(tmp_path))
    assert kinds(result) == ["broken-revision-link"]
    assert f"names {store.image}" in result.problems[0].message


def test_missing_child_blob(store: Store, tmp_path: Path) -> None:
    """A platform image of a multi-arch tag whose blob is gone: missing-child."""
    child = store.children[1]
    store.b.remove(blob_path(child))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-child"]
    problem = result.problems[0]
    assert f"child manifest {child}" in problem.message
    assert "linux/arm64" in problem.message
    assert problem.tags == ("multi:latest",)


def test_missing_child_revision_link(store: Store, tmp_path: Path) -> None:
    """A child manifest not linked into the repository cannot be pulled."""
    child = store.children[0]
    store.b.remove(rev("multi", child))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-revision-link"]
    assert f"child manifest {child}" in result.problems[0].message


def test_layer_of_a_child_missing(store: Store, tmp_path: Path) -> None:
    """Problems below an index are attributed to the index's tag."""
    layer = store.layer(store.children[0])
    store.b.remove(blob_path(layer))
    result = check(store.write(tmp_path))
    assert kinds(result) == ["missing-blob"]
    assert result.problems[0].tags == ("multi:latest",)


def test_unparseable_manifest(store: Store, tmp_path: Path) -> None:
    """A tag whose manifest is not JSON (but matches its digest)."""
    store.b.manifest("broken", b"{not json", tag="v1")
    result = check(store.write(tmp_path))
    assert kinds(result) == ["unparseable-manifest"]
    assert "invalid JSON" in result.problems[0].message


def test_foreign_layer_absent_is_fine(store: Store, tmp_path: Path) -> None:
    """Layers with urls (non-distributable) are not in storage, and that is not a problem."""
    result = check(store.write(tmp_path), verify=True)
    assert result.ok


def test_problem_lists_every_tag_it_breaks_once(store: Store, tmp_path: Path) -> None:
    """Two tags on one image with one missing layer: one problem naming both tags."""
    store.b.remove(blob_path(store.layer(store.image)))
    result = check(store.write(tmp_path))
    assert len(result.problems) == 1
    assert "tags app:stable, app:v1 cannot be pulled" in result.problems[0].message


def test_untagged_revisions_are_not_checked(store: Store, tmp_path: Path) -> None:
    """Only what tags need is checked: a broken untagged revision is not a tag problem."""
    store.b.remove(blob_path(store.layer(store.untagged)))
    assert check(store.write(tmp_path)).ok


def test_scope_limits_the_check(store: Store, tmp_path: Path) -> None:
    """With repositories given, only their tags are checked."""
    store.b.remove(blob_path(store.layer(store.image)))
    backend = store.write(tmp_path)
    assert check(backend, repos=["multi", "signed"]).ok
    assert kinds(check(backend, repos=["app"])) == ["missing-blob"]


def test_links_to_read_and_the_pure_check(store: Store, tmp_path: Path) -> None:
    """links_to_read names the links a check reads; check_store decides from data alone."""
    backend = store.write(tmp_path)
    inventory = take_inventory(backend)
    manifests = load_manifests(backend, inventory)
    scope = sorted(inventory.repositories)
    paths = links_to_read(inventory, manifests, scope)
    assert rev("app", store.image) in paths
    assert lnk("app", store.layer(store.image)) in paths
    assert rev("multi", store.children[0]) in paths, "children's links too"
    contents = asyncio.run(backend.read(sorted(paths)))
    assert check_store(inventory, manifests, scope, contents).ok
    broken = {**contents, rev("app", store.image): b"garbage"}
    result = check_store(inventory, manifests, scope, broken)
    assert [p.kind for p in result.problems] == ["broken-revision-link"]


# -- --verify-blobs -------------------------------------------------------------------------------


def test_verify_blobs_finds_a_corrupted_layer(store: Store, tmp_path: Path) -> None:
    """Same size, different bytes: only hashing can tell; --verify-blobs does."""
    layer = store.layer(store.image)
    data = bytearray(store.b.files[blob_path(layer)])
    data[0] ^= 0xFF
    store.b.put(blob_path(layer), bytes(data))
    backend = store.write(tmp_path)
    assert check(backend).ok
    result = check(backend, verify=True)
    assert kinds(result) == ["corrupt-blob"]
    problem = result.problems[0]
    assert problem.tags == ("app:stable", "app:v1")
    assert f"hashes to sha256:{hashlib.sha256(data).hexdigest()}" in problem.message


def test_verify_blobs_reports_a_corrupt_blob_no_tag_needs(store: Store, tmp_path: Path) -> None:
    """Every blob is hashed: a corrupt unreferenced blob is a problem without tags."""
    orphan = store.b.blob(b"orphan bytes")
    store.b.put(blob_path(orphan), b"orphan byteZ")
    result = check(store.write(tmp_path), verify=True)
    assert kinds(result) == ["corrupt-blob"]
    assert result.problems[0].tags == ()


def test_verify_blobs_with_scope_hashes_only_what_the_scope_needs(
    store: Store, tmp_path: Path
) -> None:
    """With repositories given, only the blobs their tags need are hashed."""
    backend = store.write(tmp_path)
    everything = check(backend, verify=True).hashed
    some = check(backend, verify=True, repos=["signed"]).hashed
    assert 0 < some < everything


def test_layer_link_alias_is_followed(tmp_path: Path) -> None:
    """A sha512 layer reference resolves through its alias link to the sha256 blob."""
    b = RegistryBuilder(seed=9)
    data = b"layer data" * 10
    canonical = b.blob(data)
    alias = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    repo = Repository("alias")
    b.put(LayerLink(repo, canonical).path, canonical.encode())
    b.put(LayerLink(repo, alias).path, canonical.encode())
    config = b.layer("alias", b'{"os": "linux", "architecture": "amd64"}')
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "x", "digest": config, "size": 1},
        "layers": [{"mediaType": "x", "digest": alias, "size": len(data)}],
    }
    b.manifest("alias", doc, tag="v1")
    b.write_local(tmp_path)
    assert check(LocalBackend(tmp_path), verify=True).ok
    # And a missing alias link is a missing layer link.
    os.remove(tmp_path / LayerLink(repo, alias).path)
    assert "missing-layer-link" in kinds(check(LocalBackend(tmp_path)))


def test_tag_history_entry_is_not_needed(store: Store, tmp_path: Path) -> None:
    """A tag's index/ history of a deleted revision does not affect pulls."""
    store.b.put(TagIndexLink(Repository("app"), Tag("v1"), sha256(b"gone")).path, b"x")
    assert check(store.write(tmp_path)).ok


def test_warnings_carry_inventory_anomalies(store: Store, tmp_path: Path) -> None:
    """A stray file is a warning, not a problem: exit code unaffected."""
    store.b.put("docker/registry/v2/repositories/app/_manifests/stray", b"x")
    result = check(store.write(tmp_path))
    assert result.ok
    assert [w.kind for w in result.warnings] == ["unrecognized-path"]
    assert "warnings (1)" in result.render()


def test_blob_data_paths_are_what_fsck_reports(store: Store, tmp_path: Path) -> None:
    """Problem paths are storage paths, relative to the root, usable as they are."""
    layer = store.layer(store.image)
    store.b.remove(BlobData(layer).path)
    result = check(store.write(tmp_path))
    assert not (tmp_path / result.problems[0].path).exists()
    assert result.problems[0].path.startswith("docker/registry/v2/blobs/sha256/")


def test_registry_layouts_the_registry_serves_are_healthy(tmp_path: Path) -> None:
    """A BuildKit cache index (blob entries) and a 2.1.0 revision under _layers pull fine."""
    b = RegistryBuilder(seed=5)
    _, entries = buildkit_cache(b, "cache", "buildcache")
    old = legacy(b, "old", "t")
    b.write_local(tmp_path)
    result = check(LocalBackend(tmp_path), verify=True)
    assert result.ok, result.render()
    assert result.manifests == 2
    # The blob entries are checked as blobs: a missing link is a problem.
    os.remove(tmp_path / LayerLink(Repository("cache"), entries[0]).path)
    assert kinds(check(LocalBackend(tmp_path))) == ["missing-layer-link"]
    # And the legacy revision's link is the one the registry resolves it through.
    os.remove(tmp_path / LayerLink(Repository("old"), old).path)
    assert "missing-revision-link" in kinds(check(LocalBackend(tmp_path)))
