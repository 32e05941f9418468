"""End to end: a plan reviewed, the registry used meanwhile, the plan applied; everything pulls.

Against the real registry (2.8.2) on a filesystem and on S3 (SeaweedFS):
push, ``gc -m --dry-run --plan-out``, then — between plan and apply — push
again an image the plan deletes (under a new tag) and mount a layer the plan
deletes into a new image; ``apply`` must drop those entries, delete the rest,
and leave every image ever acknowledged pullable (the model of
``tests/rigs/e2e.py`` says which: everything tagged, and what it reaches).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from registry_gc import cli

from tests.rigs import oci, planfiles
from tests.rigs.e2e import (
    NO_GRACE,
    Layout,
    Model,
    assert_live_layout,
    assert_pulls,
    gc,
    s3_args,
)
from tests.rigs.registry import RealRegistry, blob_data_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.s3 import SeaweedS3

pytestmark = pytest.mark.registry

V2 = "docker/registry/v2/"


def push_scenario(reg: RealRegistry) -> tuple[Model, dict[str, oci.Image]]:
    """A tag pushed twice over a shared base, and a repository whose image was deleted."""
    client = reg.client()
    m = Model()
    base = oci.layer("apply-base", media_type=oci.DOCKER_LAYER)
    old = oci.docker_image("apply-old", shared_layers=[base])
    new = oci.docker_image("apply-new", shared_layers=[base])
    m.push(client, "app", "latest", old)
    m.push(client, "app", "latest", new)  # old: untagged, garbage with -m
    junk = oci.docker_image("apply-junk")
    m.push(client, "junk", "t", junk)
    m.delete(client, "junk", junk.digest)  # deleted through the API: its blobs are garbage
    gone = oci.docker_image("apply-gone")
    m.push(client, "app", None, gone)  # untagged from the start: garbage
    return m, {"old": old, "new": new, "junk": junk, "gone": gone}


def apply_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    """``registry-gc apply ARGS --json``; exit 0."""
    capsys.readouterr()
    code = cli.run(["apply", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, f"{captured.out}\n{captured.err}"
    report: dict = json.loads(captured.out)
    return report


def revive(reg: RealRegistry, model: Model, images: dict[str, oci.Image]) -> str:
    """Between plan and apply: re-tag the old image, mount the junk's layer into a new image."""
    client = reg.client()
    model.push(client, "app", "old", images["old"])  # HEAD 200 for every blob: none uploaded
    shared = images["junk"].layers[0]
    assert client.mount_blob("reuse", shared.digest, from_repo="junk")
    model.push(client, "reuse", "v1", oci.docker_image("apply-reuse", shared_layers=[shared]))
    return shared.digest


def check_applied(
    reg: RealRegistry, model: Model, images: dict[str, oci.Image], report: dict, dest: Path
) -> None:
    """Everything tagged pulls; the store is exactly the live set; the revived stayed."""
    dropped = report["plan"]["dropped"]
    assert dropped["no-longer-garbage"] > 0, dropped
    assert report["plan"]["executed"] > 0
    assert report["ok"]
    for repo, tags in model.tagged().items():
        for tag in tags:
            assert_pulls(reg, repo, tag, dest)
    assert_pulls(reg, "app", images["old"].digest, dest)
    live = model.live(delete_untagged=True)
    assert images["gone"].digest not in live["app"]
    assert_live_layout(Layout.parse(reg.keys()), model, live)


def test_apply_after_pushes_on_a_filesystem(
    registry: RealRegistry,
    skopeo_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Plan, push what revives planned garbage, apply: all pulls, exactly the live set left."""
    model, images = push_scenario(registry)
    root = registry.root_dir
    assert root is not None
    out = tmp_path / "plan.jsonl"
    dry = gc(capsys, root, "-m", *NO_GRACE, "--dry-run", "--plan-out", str(out))
    planned = planfiles.paths(planfiles.deletions(out))
    assert len(planfiles.deletions(out)) == dry["totals"]["deletions"]
    old_layer = images["old"].layers[-1].digest
    assert V2 + blob_data_key(old_layer) in planned
    shared = revive(registry, model, images)
    assert V2 + blob_data_key(shared) in planned

    listing = tmp_path / "applied.jsonl"
    report = apply_json(capsys, str(out), "--deletions-out", str(listing))
    check_applied(registry, model, images, report, tmp_path / "pulls")
    fate = {
        (line["category"], line["digest"]): line.get("dropped") or line["status"]
        for line in planfiles.deletions(listing)
    }
    assert fate["blob", old_layer] == "no-longer-garbage"
    assert fate["blob", shared] == "no-longer-garbage"
    assert fate["blob", images["gone"].digest] == "deleted"
    # Nothing is left for a direct run either.
    assert gc(capsys, root, "-m", *NO_GRACE, "--dry-run")["totals"]["deletions"] == 0


@pytest.mark.s3
def test_apply_after_pushes_on_s3(
    registry_s3: RealRegistry,
    s3_server: SeaweedS3,
    skopeo_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same over S3, with an unfinished upload: its multipart upload is in the plan."""
    storage = registry_s3.s3
    assert storage is not None
    model, images = push_scenario(registry_s3)
    registry_s3.client().start_upload("app", b"partial")
    v2_prefix = f"{storage.key_prefix}{V2}"
    (mpu,) = s3_server.list_multipart_uploads(storage.bucket, v2_prefix)
    args = s3_args(storage)
    out = tmp_path / "plan.jsonl"
    gc(capsys, args[0], *args[1:], "-m", *NO_GRACE, "--dry-run", "--plan-out", str(out))
    header, lines, _ = planfiles.read(out)
    assert header["root"] == args[0]
    (upload,) = [line for line in lines if line["category"] == "upload"]
    assert upload["multipart"] == [[mpu["Key"][len(storage.key_prefix) :], mpu["UploadId"]]]
    revive(registry_s3, model, images)

    report = apply_json(capsys, str(out), *args[1:])  # the root from the plan
    check_applied(registry_s3, model, images, report, tmp_path / "pulls")
    assert s3_server.list_multipart_uploads(storage.bucket, v2_prefix) == []
