"""End to end on S3 (SeaweedFS): registry-gc against the real registry (2.8.2) over a bucket.

A smaller scenario than the filesystem one (``test_e2e_registry.py``; both use
the model of what must survive in ``tests/rigs/e2e.py``): a re-pushed tag, a
multi-arch index, a layer shared across repositories by mount, a referrer, an
image pushed by digest only and an unfinished upload (on S3: ``startedat`` and
hash-state objects plus an open multipart upload).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from registry_gc.manifest_cache import ManifestCache

from tests.conftest import require_tool
from tests.rigs import oci
from tests.rigs.e2e import (
    NO_GRACE,
    Layout,
    Model,
    assert_live_layout,
    assert_pulls,
    gc,
    s3_args,
)
from tests.rigs.registry import RealRegistry, S3Storage

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.s3 import SeaweedS3

pytestmark = [pytest.mark.registry, pytest.mark.s3]


def push_scenario(reg: RealRegistry) -> Model:
    """Push the S3 scenario; return its model."""
    client = reg.client()
    m = Model()
    base = oci.layer("s3e2e-base", media_type=oci.DOCKER_LAYER)
    versions = [oci.docker_image(f"s3e2e-app-{i}", shared_layers=[base]) for i in range(3)]
    for version in versions:  # one tag, new content each time
        m.push(client, "app", "latest", version)
    m.push(client, "app", None, oci.referrer(versions[-1], "s3e2e-sig"))
    m.push(client, "app", None, oci.referrer(versions[0], "s3e2e-old-sig"))
    m.push(client, "app", None, oci.docker_image("s3e2e-dev", shared_layers=[base]))
    assert client.mount_blob("team/multi", base.digest, from_repo="app")
    m.push(client, "team/multi", "v1", oci.multiarch("s3e2e-multi", shared_layers=[base]))
    client.start_upload("app", b"partial layer")
    return m


def collect_and_check(
    reg: RealRegistry, server: SeaweedS3, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Push, run registry-gc -m over S3, then: every tag pulls, exactly the live set is left."""
    assert reg.s3 is not None
    model = push_scenario(reg)
    before = Layout.parse(reg.keys())
    assert before.blobs == model.blobs
    assert before.uploads
    v2_prefix = f"{reg.s3.key_prefix}docker/registry/v2/"
    (mpu,) = server.list_multipart_uploads(reg.s3.bucket, v2_prefix)
    assert mpu["Key"].startswith(f"{v2_prefix}repositories/app/_uploads/")

    args = s3_args(reg.s3)
    report = gc(capsys, args[0], *args[1:], "--delete-untagged", *NO_GRACE)
    assert report["ok"]
    assert report["totals"]["deletions"] > 0

    client = reg.client()
    for repo, tags in model.tagged().items():
        assert client.tags(repo) == tags
        for tag in tags:
            assert_pulls(reg, repo, tag, tmp_path / "pulls")
    live = model.live(delete_untagged=True)
    sig = next(
        d
        for d, man in model.manifests["app"].items()
        if man.subject is not None and man.subject.digest == model.tags["app"]["latest"]
    )
    assert sig in live["app"]
    assert_pulls(reg, "app", sig, tmp_path / "pulls")
    # Exactly the live blobs, revisions and links; the stale upload's keys are gone,
    # and so is its data (the open multipart upload, aborted).
    assert_live_layout(Layout.parse(reg.keys()), model, live)
    assert server.list_multipart_uploads(reg.s3.bucket, v2_prefix) == []

    # A second run finds nothing left to do.
    again = gc(capsys, args[0], *args[1:], "--delete-untagged", *NO_GRACE)
    assert again["totals"]["deletions"] == 0


def test_delete_untagged_on_s3_leaves_exactly_the_live_set(
    registry_s3: RealRegistry,
    s3_server: SeaweedS3,
    skopeo_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """-m over s3://BUCKET/reg: every tag pulls, the blobs are the live set, uploads gone."""
    collect_and_check(registry_s3, s3_server, capsys, tmp_path)


def test_delete_untagged_on_s3_bucket_root(
    s3_server: SeaweedS3,
    s3_bucket: str,
    skopeo_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same with rootdirectory "/" (keys from the bucket root, URL s3://BUCKET)."""
    require_tool("docker-registry")
    storage = S3Storage.on(s3_server, s3_bucket, rootdirectory="/")
    with RealRegistry(tmp_path / "registry", s3=storage) as reg:
        collect_and_check(reg, s3_server, capsys, tmp_path)


def test_nightly_runs_with_a_manifest_cache_leave_exactly_the_live_set(
    registry_s3: RealRegistry,
    s3_server: SeaweedS3,
    skopeo_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two -m runs with ``--manifest-cache``, pushes between them: every tag pulls, exactly.

    The second run takes the manifests it saw from the cache and reads only the new
    ones; the store it leaves is the live set of the registry's own model, and the
    cache holds the manifests the store still has.
    """
    reg = registry_s3
    assert reg.s3 is not None
    cache = tmp_path / "manifests.db"
    args = [*s3_args(reg.s3), "--delete-untagged", *NO_GRACE, "--manifest-cache", str(cache)]
    model = push_scenario(reg)
    gc(capsys, *args)
    with ManifestCache(cache) as mc:
        first = set(mc.digests())

    client = reg.client()
    base = oci.layer("s3e2e-base", media_type=oci.DOCKER_LAYER)
    model.push(client, "app", "latest", oci.docker_image("s3e2e-app-next", shared_layers=[base]))
    model.push(client, "team/multi", "v2", oci.multiarch("s3e2e-multi-2", shared_layers=[base]))
    report = gc(capsys, *args)
    assert report["ok"]
    assert report["totals"]["deletions"] > 0
    live = model.live(delete_untagged=True)
    for repo, tags in model.tagged().items():
        assert client.tags(repo) == tags
        for tag in tags:
            assert_pulls(reg, repo, tag, tmp_path / "pulls")
    assert_live_layout(Layout.parse(reg.keys()), model, live)
    # The next run has nothing to do, and forgets the manifests the last one deleted.
    assert gc(capsys, *args)["totals"]["deletions"] == 0
    with ManifestCache(cache) as mc:
        held = set(mc.digests())
    assert held == {d for digests in live.values() for d in digests}
    assert held - first  # the new pushes' manifests were read and added
