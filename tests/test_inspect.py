"""inspect: ls, du and fsck over builder stores, and the streaming-digest capability.

fsck is checked against every corruption the builder can inject — each test
breaks one thing in an otherwise healthy store and expects exactly one kind
of problem, naming the object and the tags it breaks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING

import fsspec
import pytest
from registry_gc import NotFoundError, load_manifests, take_inventory
from registry_gc.backends import FsspecBackend, LocalBackend, ReadOnlyBackend, open_backend
from registry_gc.backends._hashing import SupportsDigest, digest_paths, new_hash, streaming
from registry_gc.inspect import (
    check_store,
    disk_usage,
    fsck,
    list_repositories,
    paths_to_read,
    platform_of_config,
    select_repositories,
)
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
from registry_gc.mark import mark
from registry_gc.plan import make_plan

from tests.rigs.builder import RegistryBuilder, sha256

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from registry_gc.backends import Backend
    from registry_gc.inspect import FsckResult


def rev(repo: str, d: Digest) -> str:
    """The revision link path."""
    return RevisionLink(Repository._trusted(repo), d).path


def lnk(repo: str, d: Digest) -> str:
    """The _layers link path."""
    return LayerLink(Repository._trusted(repo), d).path


def current(repo: str, tag: str) -> str:
    """The tag's current link path."""
    return TagCurrentLink(Repository._trusted(repo), Tag._trusted(tag)).path


class Store:
    """A healthy builder store with a few kinds of images, and handles on them."""

    def __init__(self) -> None:
        b = self.b = RegistryBuilder(seed=7)
        self.image = b.image("app", "v1", layers=2)
        b.tag("app", "stable", self.image)
        self.docker = b.image("app", "docker", kind="docker")
        self.index = b.multiarch("multi", "latest")
        self.children = b.contents[self.index]["children"]
        self.foreign = b.image("win", "ltsc", foreign=1)
        self.signed = b.image("signed", "v1")
        self.sig = b.referrer("signed", self.signed)
        self.untagged = b.image("app", None)

    def layer(self, digest: Digest, i: int = 1) -> Digest:
        """The i-th blob (0: config) of an image."""
        return self.b.contents[digest]["blobs"][i]

    def write(self, root: Path) -> LocalBackend:
        """Write the tree under root and open it."""
        self.b.write_local(root)
        return LocalBackend(root)


@pytest.fixture
def store() -> Store:
    """A fresh healthy store (not yet written)."""
    return Store()


def check(
    backend: Backend, *, verify: bool = False, repos: Sequence[str] | None = None
) -> FsckResult:
    """Run fsck on the backend."""
    inventory = take_inventory(backend)
    scope = [Repository(r) for r in repos] if repos is not None else None
    return fsck(backend, inventory, repositories=scope, verify_blobs=verify)


def kinds(result: FsckResult) -> list[str]:
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


# -- hashing -------------------------------------------------------------------------------


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


def test_local_digest_streams_in_chunks(tmp_path: Path) -> None:
    """LocalBackend.digest hashes a file larger than one chunk; a missing file is None."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big").write_bytes(data)
    backend = LocalBackend(tmp_path)
    assert isinstance(backend, SupportsDigest)
    got = asyncio.run(backend.digest(["big", "nope"], "sha512"))
    assert got == {"big": hashlib.sha512(data).hexdigest(), "nope": None}


def test_fsspec_digest() -> None:
    """FsspecBackend.digest hashes through fs.open."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/hashing/a", b"abc")
    try:
        got = asyncio.run(FsspecBackend(fs, "/hashing").digest(["a", "b"], "sha256"))
        assert got == {"a": hashlib.sha256(b"abc").hexdigest(), "b": None}
    finally:
        fs.rm("/hashing", recursive=True)


class _ReadOnlyish:
    """A backend with read but no streaming digest."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.url = inner.url
        self.reads: list[list[str]] = []

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        self.reads.append(list(paths))
        return await self.inner.read(paths)


def test_digest_falls_back_to_reading_one_object_at_a_time(tmp_path: Path) -> None:
    """A backend without the capability is hashed by reading each object alone."""
    (tmp_path / "x").write_bytes(b"x")
    backend = _ReadOnlyish(LocalBackend(tmp_path))
    assert streaming(backend) is None  # type: ignore[arg-type]
    got = asyncio.run(digest_paths(backend, ["x", "y"], "sha256"))  # type: ignore[arg-type]
    assert got == {"x": hashlib.sha256(b"x").hexdigest(), "y": None}
    assert backend.reads == [["x"], ["y"]]


def test_read_only_wrapper_keeps_streaming(tmp_path: Path) -> None:
    """Hashing only reads: a ReadOnlyBackend over a streaming backend streams too."""
    (tmp_path / "x").write_bytes(b"x")
    ro = ReadOnlyBackend(LocalBackend(tmp_path))
    assert streaming(ro) is ro
    assert asyncio.run(digest_paths(ro, ["x"], "sha256")) == {"x": hashlib.sha256(b"x").hexdigest()}


def test_only_registry_algorithms_are_hashed() -> None:
    """sha256, sha384, sha512; anything else is refused before any read."""
    assert new_hash("sha384").name == "sha384"
    with pytest.raises(ValueError, match="md5"):
        new_hash("md5")


# -- the pure core -------------------------------------------------------------------------


def test_paths_to_read_converges_and_check_store_needs_them(store: Store, tmp_path: Path) -> None:
    """paths_to_read grows round by round (index children); check_store refuses partial data."""
    backend = store.write(tmp_path)
    inventory = take_inventory(backend)
    scope = sorted(inventory.repositories)
    contents: dict[str, bytes | None] = {}
    rounds = 0
    while wanted := paths_to_read(inventory, scope, contents):
        rounds += 1
        contents.update(asyncio.run(backend.read(sorted(wanted))))
    # Manifests; then their layer links and the index's children; then the children's links.
    assert rounds == 3
    with pytest.raises(ValueError, match="needs"):
        check_store(inventory, scope, {})
    assert check_store(inventory, scope, contents).ok


def test_select_repositories(store: Store, tmp_path: Path) -> None:
    """Exact names and shell patterns; an unknown exact name is NotFoundError."""
    inventory = take_inventory(store.write(tmp_path))
    assert select_repositories(inventory, []) == ["app", "multi", "signed", "win"]
    assert select_repositories(inventory, ["s*", "app"]) == ["app", "signed"]
    assert select_repositories(inventory, ["zz*"]) == []
    with pytest.raises(NotFoundError, match="no repository 'nope'"):
        select_repositories(inventory, ["nope"])


def test_platform_of_config() -> None:
    """os/architecture[/variant] from an image config; nothing from anything else."""
    assert platform_of_config(b'{"os": "linux", "architecture": "amd64"}') == "linux/amd64"
    assert platform_of_config(b'{"os": "linux"}') is None
    assert platform_of_config(b"[1]") is None
    assert platform_of_config(b"\xff") is None


def test_list_repositories(store: Store, tmp_path: Path) -> None:
    """Tags with digest, kind, platforms and size; untagged revisions counted and listed."""
    backend = store.write(tmp_path)
    inventory = take_inventory(backend)
    manifests = load_manifests(backend, inventory)
    repos = {r.name: r for r in list_repositories(inventory, manifests, untagged=True)}
    app = repos["app"]
    assert [t.name for t in app.tags] == ["docker", "stable", "v1"]
    v1 = app.tags[2]
    assert v1.digest == store.image
    assert v1.image is not None
    assert v1.image.kind == "oci-manifest"
    blobs = [store.image, *store.b.contents[store.image]["blobs"]]
    assert v1.image.size == sum(len(store.b.files[blob_path(d)]) for d in blobs)
    assert (app.untagged_count, [u.digest for u in app.untagged]) == (1, [store.untagged])
    multi = repos["multi"].tags[0].image
    assert multi is not None
    assert (multi.kind, multi.platforms) == ("oci-index", ("linux/amd64", "linux/arm64"))
    assert repos["signed"].untagged_count == 1  # the referrer is not reached by tags
    assert repos["win"].tags[0].image.missing == 0  # type: ignore[union-attr]


def test_disk_usage_unique_and_shared(tmp_path: Path) -> None:
    """A layer two repositories share is shared bytes in both; the rest is unique."""
    b = RegistryBuilder(seed=3)
    base = b.layer("one", b"B" * 1000)
    b.image("one", "v1", layers=1, shared=[base])
    b.image("two", "v1", layers=1, shared=[base])
    b.blob(b"orphan" * 100)
    b.write_local(tmp_path)
    backend = LocalBackend(tmp_path)
    inventory = take_inventory(backend)
    manifests = load_manifests(backend, inventory)
    now = time.time()
    marks = mark(inventory, manifests, delete_untagged=False, cutoff=now)
    plan = make_plan(inventory, marks, delete_untagged=False, cutoff=now, uploads_cutoff=now)
    usage = disk_usage(inventory, manifests, marks, plan, delete_untagged=False)
    one, two = usage.repositories
    assert one.shared == two.shared == 1000
    assert one.size == one.unique + one.shared
    assert usage.reclaimable_size == 600
    assert usage.size == usage.live_size + 600
    assert json.loads(json.dumps(usage.to_dict()))["reclaimable"]["bytes"] == 600


def test_open_backend_local_supports_digest(tmp_path: Path) -> None:
    """The backends registry-gc opens for a path stream their hashes."""
    assert isinstance(open_backend(tmp_path), SupportsDigest)


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
