"""distribution's own garbage-collection tests, rebuilt through the real registry.

``registry/storage/garbagecollect_test.go`` (distribution v3) builds each of its
cases through the storage API in-process and runs ``MarkAndSweep``. Here every
case is pushed over HTTP through ``docker-registry serve`` (2.8.2), on disk and
on S3 (SeaweedFS); then ``registry-gc gc`` runs on the store with the options
the Go test gives ``MarkAndSweep`` (``RemoveUntagged`` is ``--delete-untagged``;
no grace period: the store was written seconds ago). Each test checks what the
Go test checks, and what it cannot: every manifest that must survive is still
served by the registry, by digest and by tag, with every blob it names
(bytes checked), and what the Go collector deletes is deleted here too — with
the links that named it, which the Go collector leaves.

The case names follow the Go tests'. A random schema2 image there is two random
layers and a config pushed by digest, without a tag; so here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import cli

from tests.conftest import require_tool
from tests.rigs import oci
from tests.rigs.e2e import s3_args
from tests.rigs.push import RegistryError
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.push import RegistryClient
    from tests.rigs.registry import RealRegistry

pytestmark = pytest.mark.registry

NO_GRACE = ("--grace", "0s", "--uploads-older-than", "0s")
_BLOB = re.compile(r"blobs/sha256/[0-9a-f]{2}/([0-9a-f]{64})/data")
_REVISION = re.compile(r"repositories/(.+)/_manifests/revisions/sha256/([0-9a-f]{64})/link")
_LAYER = re.compile(r"repositories/(.+)/_layers/sha256/([0-9a-f]{64})/link")


@pytest.fixture(params=["disk", "s3"])
def reg(request: pytest.FixtureRequest) -> RealRegistry:
    """A fresh registry 2.8.2, on a local directory or on a SeaweedFS bucket."""
    fixture = "registry" if request.param == "disk" else "registry_s3"
    registry: RealRegistry = request.getfixturevalue(fixture)
    return registry


def gc(capsys: pytest.CaptureFixture[str], registry: RealRegistry, *args: str) -> dict[str, Any]:
    """``registry-gc gc`` of the registry's store with ``args``; exit 0; the JSON report."""
    target = [str(registry.root_dir)] if registry.root_dir is not None else []
    if registry.s3 is not None:
        target = s3_args(registry.s3)
    capsys.readouterr()
    code = cli.run(["gc", *target, *NO_GRACE, "--json", *args])
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, f"{captured.out}\n{captured.err}"
    report: dict[str, Any] = json.loads(captured.out)
    return report


def blobs(registry: RealRegistry) -> set[str]:
    """``allBlobs``: the digest of every blob in ``blobs/`` (what ``Blobs().Enumerate`` sees)."""
    keys = registry.keys()
    return {f"sha256:{m[1]}" for k in keys if (m := _BLOB.fullmatch(k))}


def revisions(registry: RealRegistry, repo: str) -> set[str]:
    """``allManifests``: the digests of ``repo``'s revision links."""
    keys = registry.keys()
    found = (_REVISION.fullmatch(k) for k in keys)
    return {f"sha256:{m[2]}" for m in found if m and m[1] == repo}


def layer_links(registry: RealRegistry, repo: str) -> set[str]:
    """The digests of ``repo``'s ``_layers`` links."""
    keys = registry.keys()
    found = (_LAYER.fullmatch(k) for k in keys)
    return {f"sha256:{m[2]}" for m in found if m and m[1] == repo}


def push_random_image(client: RegistryClient, repo: str, seed: str, n_layers: int = 2) -> oci.Image:
    """``uploadRandomSchema2Image``: a schema2 image with its own layers, pushed by digest."""
    image = oci.docker_image(seed, n_layers=n_layers, platform=oci.Platform())
    client.push_image(repo, None, image)
    return image


def push_list(
    client: RegistryClient, repo: str, children: list[oci.Image], tag: str | None = None
) -> oci.Index:
    """``MakeManifestList`` of ``children``, pushed (by digest unless ``tag``)."""
    listed = oci.docker_manifest_list(children)
    client.push_manifest(repo, tag or listed.digest, listed)
    return listed


def assert_served(registry: RealRegistry, repo: str, obj: oci.Image | oci.Index) -> None:
    """The registry serves ``obj`` by digest, and every blob it names, bytes checked."""
    client = registry.client()
    got = client.get_manifest(repo, obj.digest)
    assert got.data == obj.manifest.data, f"{repo}@{obj.digest} is served changed"
    for blob in obj.blobs:
        data = client.get_blob(repo, blob.digest)
        assert hashlib.sha256(data).hexdigest() == blob.hex, f"{repo}: blob {blob.digest}"
    if isinstance(obj, oci.Index):
        for child in obj.children:
            assert_served(registry, repo, child)


def assert_gone(registry: RealRegistry, repo: str, obj: oci.Image) -> None:
    """The registry serves neither ``obj`` nor any of its blobs."""
    client = registry.client()
    with pytest.raises(RegistryError) as e:
        client.get_manifest(repo, obj.digest)
    assert e.value.status == 404
    for blob in obj.blobs:
        assert not client.blob_exists(repo, blob.digest), f"{repo}: {blob.digest} still served"


def assert_pulls(registry: RealRegistry, repo: str, ref: str, dest: Path) -> None:
    """``skopeo copy --all`` of repo:ref fetches every manifest and blob (digests checked)."""
    require_tool("skopeo")
    result = pull_all(registry.url, repo, ref, dest / f"{repo.replace('/', '_')}-{ref}")
    assert result.returncode == 0, f"{repo}:{ref}: {result.stderr}\n{registry.log_tail()}"


def test_no_deletion_no_effect(reg: RealRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """TestNoDeletionNoEffect: untagged images and list, no -m: nothing is deleted."""
    client = reg.client()
    image1 = push_random_image(client, "palailogos", "nde-1")
    image2 = push_random_image(client, "palailogos", "nde-2")
    image3 = push_random_image(client, "palailogos", "nde-3")
    listed = push_list(client, "palailogos", [image1, image2])
    before = reg.keys()

    report = gc(capsys, reg)

    assert report["totals"]["deletions"] == 0
    assert reg.keys() == before
    for obj in (image1, image2, image3, listed):
        assert_served(reg, "palailogos", obj)


def test_delete_manifest_if_tag_not_found(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestDeleteManifestIfTagNotFound: a tag moved off a manifest; -m deletes only that one.

    A dry run first changes nothing; the real run deletes the manifest the tag left
    (and its layers), keeps the one it points to, and that one still pulls.
    """
    client = reg.client()
    repo = "deletemanifests"
    manifest1 = push_random_image(client, repo, "dmt-1", n_layers=3)
    manifest2 = push_random_image(client, repo, "dmt-2", n_layers=3)
    client.push_manifest(repo, "test", manifest1)
    client.push_manifest(repo, "test", manifest2)
    before_blobs, before_revisions = blobs(reg), revisions(reg, repo)
    before = reg.keys()

    dry = gc(capsys, reg, "-m", "--dry-run")
    assert dry["totals"]["deletions"] > 0
    assert reg.keys() == before

    gc(capsys, reg, "-m")
    assert blobs(reg) == before_blobs - {b.digest for b in (manifest1.manifest, *manifest1.blobs)}
    assert revisions(reg, repo) == before_revisions - {manifest1.digest}
    assert_gone(reg, repo, manifest1)
    assert_served(reg, repo, manifest2)
    assert client.get_manifest(repo, "test").digest == manifest2.digest
    assert_pulls(reg, repo, "test", tmp_path)


def test_gc_with_missing_manifests(reg: RealRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """TestGCWithMissingManifests: a repository whose ``_manifests`` is gone.

    The Go test expects every blob deleted. A store in which no manifest is left
    at all looks like a wrong root or a broken listing to registry-gc: it deletes
    nothing and says so (exit 3) — until ``--allow-no-manifests``, when every blob
    goes, with the links that named them.
    """
    client = reg.client()
    image = push_random_image(client, "testrepo", "gmm-1")
    fs, root = reg.storage_fs()
    fs.rm(f"{root.rstrip('/')}/repositories/testrepo/_manifests", recursive=True)
    assert revisions(reg, "testrepo") == set()
    before = reg.keys()

    target = [str(reg.root_dir)] if reg.s3 is None else s3_args(reg.s3)
    capsys.readouterr()
    code = cli.run(["gc", *target, *NO_GRACE])
    captured = capsys.readouterr()
    assert code == cli.EXIT_REFUSED, captured.out + captured.err
    assert "--allow-no-manifests" in captured.err
    assert reg.keys() == before

    gc(capsys, reg, "--allow-no-manifests")
    assert blobs(reg) == set()
    assert layer_links(reg, "testrepo") == set()
    assert not client.blob_exists("testrepo", image.config.digest)


def test_deletion_has_effect(reg: RealRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """TestDeletionHasEffect: manifests deleted through the API lose their layers; one stays."""
    client = reg.client()
    repo = "komnenos"
    image1 = push_random_image(client, repo, "dhe-1")
    image2 = push_random_image(client, repo, "dhe-2")
    image3 = push_random_image(client, repo, "dhe-3")
    client.delete_manifest(repo, image2.digest)
    client.delete_manifest(repo, image3.digest)

    gc(capsys, reg)

    left = blobs(reg)
    assert image1.digest in left
    assert {b.digest for b in image1.blobs} <= left
    for gone in (image2, image3):
        assert not {b.digest for b in gone.layers} & left
        assert gone.digest not in left
        assert not {b.digest for b in gone.blobs} & layer_links(reg, repo)
    assert_served(reg, repo, image1)


def test_deletion_with_shared_layer(reg: RealRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """TestDeletionWithSharedLayer: a deleted manifest's layer shared with a kept one stays."""
    client = reg.client()
    repo = "tzimiskes"
    layers1 = [oci.layer(f"dsl-1/{i}", media_type=oci.DOCKER_LAYER) for i in range(3)]
    layers2 = [oci.layer(f"dsl-2/{i}", media_type=oci.DOCKER_LAYER) for i in range(3)]
    manifest1 = oci.docker_image("dsl-m1", n_layers=0, shared_layers=layers1)
    manifest2 = oci.docker_image("dsl-m2", n_layers=0, shared_layers=[*layers2, layers1[0]])
    client.push_image(repo, None, manifest1)
    client.push_image(repo, None, manifest2)
    client.delete_manifest(repo, manifest2.digest)

    gc(capsys, reg)

    left = blobs(reg)
    assert {b.digest for b in layers1} <= left
    assert not {b.digest for b in layers2} & left
    assert manifest2.digest not in left
    assert_served(reg, repo, manifest1)


def test_orphan_blob_deleted(reg: RealRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """TestOrphanBlobDeleted: a blob uploaded to a repository and named by no manifest goes.

    So does its ``_layers`` link (the Go collector leaves that link dangling); the
    repository's image stays.
    """
    client = reg.client()
    repo = "michael_z_doukas"
    orphan = oci.layer("obd-orphan", media_type=oci.DOCKER_LAYER)
    client.push_blob(repo, orphan)
    image = push_random_image(client, repo, "obd-1")
    assert orphan.digest in layer_links(reg, repo)

    gc(capsys, reg)

    assert orphan.digest not in blobs(reg)
    assert orphan.digest not in layer_links(reg, repo)
    assert not client.blob_exists(repo, orphan.digest)
    assert_served(reg, repo, image)


def test_tagged_manifestlist_with_untagged_manifest(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestTaggedManifestlistWithUntaggedManifest: -m keeps a tagged list's untagged children."""
    client = reg.client()
    repo = "foo/taggedlist/untaggedmanifest"
    image1 = push_random_image(client, repo, "tlum-1")
    image2 = push_random_image(client, repo, "tlum-2")
    listed = push_list(client, repo, [image1, image2], tag="test")
    before = blobs(reg)

    report = gc(capsys, reg, "-m")

    assert report["totals"]["deletions"] == 0
    assert blobs(reg) == before
    assert {image1.digest, image2.digest, listed.digest} <= revisions(reg, repo)
    assert_served(reg, repo, listed)
    assert_pulls(reg, repo, "test", tmp_path)


def test_untagged_manifestlist_with_untagged_manifest(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """TestUnTaggedManifestlistWithUntaggedManifest: -m deletes every blob, and the repository.

    Every object of the repository goes; on disk its directories too, so the
    registry's catalog no longer names it.
    """
    client = reg.client()
    repo = "foo/untaggedlist/untaggedmanifest"
    image1 = push_random_image(client, repo, "ulum-1")
    image2 = push_random_image(client, repo, "ulum-2")
    push_list(client, repo, [image1, image2])

    gc(capsys, reg, "-m")

    assert blobs(reg) == set()
    keys = reg.keys()
    assert not any(k.startswith(f"repositories/{repo}/") for k in keys)
    if reg.root_dir is not None:
        assert repo not in client.catalog()
    # SeaweedFS keeps a folder after its last object goes (its delimiter listings
    # show it as a prefix), so the registry's catalog there still names the
    # repository, as it does after the registry's own deletes: docs/backends.md.


def test_untagged_manifestlist_with_tagged_manifest(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestUnTaggedManifestlistWithTaggedManifest: -m deletes the list, keeps the tagged images."""
    client = reg.client()
    repo = "foo/untaggedlist/taggedmanifest"
    image1 = push_random_image(client, repo, "ultm-1")
    image2 = push_random_image(client, repo, "ultm-2")
    client.push_manifest(repo, "image1", image1)
    client.push_manifest(repo, "image2", image2)
    listed = push_list(client, repo, [image1, image2])

    gc(capsys, reg, "-m")

    assert listed.digest not in blobs(reg)
    assert revisions(reg, repo) == {image1.digest, image2.digest}
    for tag, image in (("image1", image1), ("image2", image2)):
        assert_served(reg, repo, image)
        assert_pulls(reg, repo, tag, tmp_path)


def test_tagged_manifestlist_with_deleted_reference(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """TestTaggedManifestlistWithDeletedreference: an untagged list whose children were deleted.

    (The Go test pushes the list without a tag, despite its name.) -m deletes every blob.
    """
    client = reg.client()
    repo = "foo/untaggedlist/deleteref"
    image1 = push_random_image(client, repo, "tldr-1")
    image2 = push_random_image(client, repo, "tldr-2")
    push_list(client, repo, [image1, image2])
    client.delete_manifest(repo, image1.digest)
    client.delete_manifest(repo, image2.digest)

    gc(capsys, reg, "-m")

    assert blobs(reg) == set()


def test_a_tagged_list_whose_children_were_deleted_is_kept_whole(
    reg: RealRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """The case the Go test's name describes: a *tagged* list whose children were API-deleted.

    The registry still serves the list; its children are gone by digest (no revision
    links), so the list cannot be pulled whole — but their blobs are named by a live
    list: registry-gc keeps them (and reports the missing revisions), so that pushing
    the children again heals the image.
    """
    client = reg.client()
    repo = "foo/taggedlist/deleteref"
    image1 = push_random_image(client, repo, "tlwd-1")
    image2 = push_random_image(client, repo, "tlwd-2")
    listed = push_list(client, repo, [image1, image2], tag="test")
    client.delete_manifest(repo, image1.digest)
    client.delete_manifest(repo, image2.digest)
    before = blobs(reg)

    gc(capsys, reg, "-m")

    assert listed.digest in blobs(reg)
    assert client.get_manifest(repo, "test").digest == listed.digest
    assert {image1.digest, image2.digest} <= before
    for image in (image1, image2):
        assert image.digest in blobs(reg), "a child a live list names stays in blobs/"
        client.push_manifest(repo, image.digest, image)
    assert_served(reg, repo, listed)
