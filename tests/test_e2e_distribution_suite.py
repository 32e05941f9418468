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
layers and a config pushed by digest, without a tag; so here. The suite of the
2.x releases (distribution 2.8, what Debian ships) builds most of the same cases
from signed schema1 images — a manifest list over schema1 images, a schema1 and
a schema2 image sharing a layer: the ``2.8`` flavour pushes those (the registry
started with ``compatibility.schema1.enabled``), on disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import cli

from tests.conftest import require_tool
from tests.rigs import e2e, oci
from tests.rigs.e2e import Layout, s3_args
from tests.rigs.push import RegistryError
from tests.rigs.registry import RealRegistry, S3Storage

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.rigs.push import RegistryClient

pytestmark = pytest.mark.registry

NO_GRACE = ("--grace", "0s", "--uploads-older-than", "0s")


#: Registry 2.8.2 accepts (signed) schema1 pushes only when told to.
SCHEMA1 = {"compatibility": {"schema1": {"enabled": True}}}

Pushed = oci.Image | oci.Schema1


@dataclass
class Case:
    """A fresh registry, and whether random images are schema1 (the 2.x suite's)."""

    reg: RealRegistry
    schema1: bool

    def random_image(
        self, repo: str, seed: str, n_layers: int = 2, *, schema2: bool = False
    ) -> Pushed:
        """``uploadRandomSchema{1,2}Image``: an image with layers of its own, pushed by digest.

        Schema1 in the 2.x flavour, unless ``schema2`` (where that suite too uses schema2).
        """
        image: Pushed
        if self.schema1 and not schema2:
            image = oci.schema1_manifest(seed, name=repo, tag="latest", n_layers=n_layers)
        else:
            image = oci.docker_image(seed, n_layers=n_layers, platform=oci.Platform())
        self.reg.client().push_image(repo, None, image)
        return image


@pytest.fixture(params=["disk", "s3", "disk-2.8"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    """A registry 2.8.2 on a local directory or a SeaweedFS bucket; random images per flavour."""
    require_tool("docker-registry")
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        storage = S3Storage.on(server, bucket, rootdirectory="/reg")
        registry = RealRegistry(tmp_path / "registry", s3=storage, extra_config=SCHEMA1)
    else:
        registry = RealRegistry(
            tmp_path / "registry", root_dir=tmp_path / "storage", extra_config=SCHEMA1
        )
    try:
        registry.start()
        yield Case(registry, schema1=request.param == "disk-2.8")
    finally:
        registry.stop()


def target(registry: RealRegistry) -> list[str]:
    """The command line's arguments naming the registry's store (a directory, or S3 and options)."""
    return s3_args(registry.s3) if registry.s3 is not None else [str(registry.root_dir)]


def gc(capsys: pytest.CaptureFixture[str], registry: RealRegistry, *args: str) -> dict[str, Any]:
    """``registry-gc gc`` of the registry's store with ``args``; exit 0; the JSON report."""
    report: dict[str, Any] = e2e.gc(capsys, *target(registry), *NO_GRACE, *args)
    return report


def blobs(registry: RealRegistry) -> set[str]:
    """``allBlobs``: the digest of every blob in ``blobs/`` (what ``Blobs().Enumerate`` sees)."""
    return Layout.parse(registry.keys()).blobs


def revisions(registry: RealRegistry, repo: str) -> set[str]:
    """``allManifests``: the digests of ``repo``'s revision links."""
    return Layout.parse(registry.keys()).revisions[repo]


def layer_links(registry: RealRegistry, repo: str) -> set[str]:
    """The digests of ``repo``'s ``_layers`` links."""
    return Layout.parse(registry.keys()).layers[repo]


def push_list(
    client: RegistryClient, repo: str, children: list[Pushed], tag: str | None = None
) -> oci.Blob:
    """``MakeManifestList`` of ``children`` (schema1 or 2), pushed by digest unless ``tag``."""
    entries = []
    for child in children:
        body = child.canonical if isinstance(child, oci.Schema1) else child.manifest
        media_type = child.media_type
        entries.append(
            {
                "mediaType": media_type,
                "size": body.size,
                "digest": child.digest,
                "platform": oci.Platform().as_json(),
            }
        )
    doc = {"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST_LIST, "manifests": entries}
    listed = oci.Blob(oci.canonical_json(doc), oci.DOCKER_MANIFEST_LIST)
    client.push_manifest(repo, tag or listed.digest, listed)
    return listed


def assert_served(registry: RealRegistry, repo: str, obj: Pushed) -> None:
    """The registry serves ``obj`` by digest, and every blob it names, bytes checked.

    A schema1 manifest is served re-signed: its digest is checked, not its bytes.
    """
    client = registry.client()
    got = client.get_manifest(repo, obj.digest)
    if isinstance(obj, oci.Schema1):
        assert got.digest == obj.digest, f"{repo}@{obj.digest} is served changed"
    else:
        assert got.data == obj.manifest.data, f"{repo}@{obj.digest} is served changed"
    for blob in obj.blobs:
        data = client.get_blob(repo, blob.digest)
        assert hashlib.sha256(data).hexdigest() == blob.hex, f"{repo}: blob {blob.digest}"


def assert_list_served(
    registry: RealRegistry, repo: str, listed: oci.Blob, children: list[Pushed]
) -> None:
    """The registry serves the list ``listed`` as pushed, and each child whole."""
    assert registry.client().get_manifest(repo, listed.digest).data == listed.data
    for child in children:
        assert_served(registry, repo, child)


def assert_gone(registry: RealRegistry, repo: str, obj: Pushed) -> None:
    """The registry serves neither ``obj`` nor any of its blobs."""
    client = registry.client()
    with pytest.raises(RegistryError) as e:
        client.get_manifest(repo, obj.digest)
    assert e.value.status == 404
    for blob in obj.blobs:
        assert not client.blob_exists(repo, blob.digest), f"{repo}: {blob.digest} still served"


def assert_pulls(registry: RealRegistry, repo: str, ref: str, dest: Path) -> None:
    """:func:`tests.rigs.e2e.assert_pulls` (``skopeo copy --all``), skopeo required."""
    require_tool("skopeo")
    e2e.assert_pulls(registry, repo, ref, dest)


def test_no_deletion_no_effect(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """TestNoDeletionNoEffect: untagged images and a list of two, no -m: nothing is deleted."""
    reg, repo = case.reg, "palailogos"
    image1 = case.random_image(repo, "nde-1")
    image2 = case.random_image(repo, "nde-2")
    image3 = case.random_image(repo, "nde-3", schema2=True)
    listed = push_list(reg.client(), repo, [image1, image2])
    before = reg.keys()

    report = gc(capsys, reg)

    assert report["totals"]["deletions"] == 0
    assert reg.keys() == before
    assert_list_served(reg, repo, listed, [image1, image2])
    assert_served(reg, repo, image3)


def test_delete_manifest_if_tag_not_found(
    case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestDeleteManifestIfTagNotFound: a tag moved off a manifest; -m deletes only that one.

    A dry run first changes nothing; the real run deletes the manifest the tag left
    (and its layers), keeps the one it points to, and that one still pulls.
    """
    reg, repo = case.reg, "deletemanifests"
    client = reg.client()
    manifest1 = case.random_image(repo, "dmt-1", n_layers=3)
    manifest2 = case.random_image(repo, "dmt-2", n_layers=3)
    client.push_manifest(repo, "test", manifest1)
    client.push_manifest(repo, "test", manifest2)
    before_blobs, before_revisions = blobs(reg), revisions(reg, repo)
    before = reg.keys()

    dry = gc(capsys, reg, "-m", "--dry-run")
    assert dry["totals"]["deletions"] > 0
    assert reg.keys() == before

    gc(capsys, reg, "-m")
    assert blobs(reg) == before_blobs - {manifest1.digest, *(b.digest for b in manifest1.blobs)}
    assert revisions(reg, repo) == before_revisions - {manifest1.digest}
    assert_gone(reg, repo, manifest1)
    assert_served(reg, repo, manifest2)
    assert client.get_manifest(repo, "test").digest == manifest2.digest
    assert_pulls(reg, repo, "test", tmp_path)


def test_gc_with_missing_manifests(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """TestGCWithMissingManifests: a repository whose ``_manifests`` is gone.

    The Go test expects every blob deleted. A store in which no manifest is left
    at all looks like a wrong root or a broken listing to registry-gc: it deletes
    nothing and says so (exit 3) — until ``--allow-no-manifests``, when every blob
    goes, with the links that named them.
    """
    reg = case.reg
    image = case.random_image("testrepo", "gmm-1")
    fs, root = reg.storage_fs()
    fs.rm(f"{root.rstrip('/')}/repositories/testrepo/_manifests", recursive=True)
    assert revisions(reg, "testrepo") == set()
    before = reg.keys()

    capsys.readouterr()
    code = cli.run(["gc", *target(reg), *NO_GRACE])
    captured = capsys.readouterr()
    assert code == cli.EXIT_REFUSED, captured.out + captured.err
    assert "--allow-no-manifests" in captured.err
    assert reg.keys() == before

    gc(capsys, reg, "--allow-no-manifests")
    assert blobs(reg) == set()
    assert layer_links(reg, "testrepo") == set()
    assert not reg.client().blob_exists("testrepo", image.blobs[0].digest)


def test_deletion_has_effect(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """TestDeletionHasEffect: manifests deleted through the API lose their layers; one stays."""
    reg, repo = case.reg, "komnenos"
    client = reg.client()
    image1 = case.random_image(repo, "dhe-1")
    image2 = case.random_image(repo, "dhe-2")
    image3 = case.random_image(repo, "dhe-3", schema2=True)
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


def test_deletion_with_shared_layer(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """TestDeletionWithSharedLayer: a deleted manifest's layer shared with a kept one stays.

    In the 2.x suite the kept manifest is schema1 and the deleted one schema2.
    """
    reg, repo = case.reg, "tzimiskes"
    client = reg.client()
    layers1 = [oci.layer(f"dsl-1/{i}", media_type=oci.DOCKER_LAYER) for i in range(3)]
    layers2 = [oci.layer(f"dsl-2/{i}", media_type=oci.DOCKER_LAYER) for i in range(3)]
    manifest1: Pushed
    if case.schema1:
        manifest1 = oci.schema1_manifest("dsl-m1", name=repo, n_layers=0, shared_layers=layers1)
    else:
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


def test_orphan_blob_deleted(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """TestOrphanBlobDeleted: a blob uploaded to a repository and named by no manifest goes.

    So does its ``_layers`` link (the Go collector leaves that link dangling); the
    repository's image stays.
    """
    reg, repo = case.reg, "michael_z_doukas"
    client = reg.client()
    orphan = oci.layer("obd-orphan", media_type=oci.DOCKER_LAYER)
    client.push_blob(repo, orphan)
    image = case.random_image(repo, "obd-1", schema2=True)
    assert orphan.digest in layer_links(reg, repo)

    gc(capsys, reg)

    assert orphan.digest not in blobs(reg)
    assert orphan.digest not in layer_links(reg, repo)
    assert not client.blob_exists(repo, orphan.digest)
    assert_served(reg, repo, image)


def test_tagged_manifestlist_with_untagged_manifest(
    case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestTaggedManifestlistWithUntaggedManifest: -m keeps a tagged list's untagged children."""
    reg, repo = case.reg, "foo/taggedlist/untaggedmanifest"
    image1 = case.random_image(repo, "tlum-1")
    image2 = case.random_image(repo, "tlum-2")
    listed = push_list(reg.client(), repo, [image1, image2], tag="test")
    before = blobs(reg)

    report = gc(capsys, reg, "-m")

    assert report["totals"]["deletions"] == 0
    assert blobs(reg) == before
    assert {image1.digest, image2.digest, listed.digest} <= revisions(reg, repo)
    assert_list_served(reg, repo, listed, [image1, image2])
    assert_pulls(reg, repo, "test", tmp_path)


def test_untagged_manifestlist_with_untagged_manifest(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    """TestUnTaggedManifestlistWithUntaggedManifest: -m deletes every blob, and the repository.

    Every object of the repository goes; on disk its directories too, so the
    registry's catalog no longer names it.
    """
    reg, repo = case.reg, "foo/untaggedlist/untaggedmanifest"
    image1 = case.random_image(repo, "ulum-1")
    image2 = case.random_image(repo, "ulum-2")
    push_list(reg.client(), repo, [image1, image2])

    gc(capsys, reg, "-m")

    assert blobs(reg) == set()
    keys = reg.keys()
    assert not any(k.startswith(f"repositories/{repo}/") for k in keys)
    if reg.root_dir is not None:
        assert repo not in reg.client().catalog()
    # SeaweedFS keeps a folder after its last object goes (its delimiter listings
    # show it as a prefix), so the registry's catalog there still names the
    # repository, as it does after the registry's own deletes: docs/backends.md.


def test_untagged_manifestlist_with_tagged_manifest(
    case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TestUnTaggedManifestlistWithTaggedManifest: -m deletes the list, keeps the tagged images."""
    reg, repo = case.reg, "foo/untaggedlist/taggedmanifest"
    client = reg.client()
    image1 = case.random_image(repo, "ultm-1")
    image2 = case.random_image(repo, "ultm-2")
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
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    """TestTaggedManifestlistWithDeletedreference: an untagged list whose children were deleted.

    (The Go test pushes the list without a tag, despite its name.) -m deletes every blob.
    """
    reg, repo = case.reg, "foo/untaggedlist/deleteref"
    client = reg.client()
    image1 = case.random_image(repo, "tldr-1")
    image2 = case.random_image(repo, "tldr-2")
    push_list(client, repo, [image1, image2])
    client.delete_manifest(repo, image1.digest)
    client.delete_manifest(repo, image2.digest)

    gc(capsys, reg, "-m")

    assert blobs(reg) == set()


def test_a_tagged_list_whose_children_were_deleted_is_kept_whole(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    """The case the Go test's name describes: a *tagged* list whose children were API-deleted.

    The registry still serves the list; its children are gone by digest (no revision
    links), so the list cannot be pulled whole — but their blobs are named by a live
    list: registry-gc keeps them (and reports the missing revisions), so that pushing
    the children again heals the image.
    """
    reg, repo = case.reg, "foo/taggedlist/deleteref"
    client = reg.client()
    image1 = case.random_image(repo, "tlwd-1")
    image2 = case.random_image(repo, "tlwd-2")
    listed = push_list(client, repo, [image1, image2], tag="test")
    client.delete_manifest(repo, image1.digest)
    client.delete_manifest(repo, image2.digest)

    gc(capsys, reg, "-m")

    assert listed.digest in blobs(reg)
    assert client.get_manifest(repo, "test").digest == listed.digest
    for image in (image1, image2):
        assert image.digest in blobs(reg), "a child a live list names stays in blobs/"
        assert {b.digest for b in image.blobs} <= blobs(reg)
        client.push_image(repo, None, image)
    assert_list_served(reg, repo, listed, [image1, image2])
