"""Damaged repositories and signatures kept elsewhere, against the real registry (2.8.2).

Images are pushed over HTTP through ``docker-registry serve``; the damage is done to
the storage behind the registry's back (a manifest blob removed), as a crash or an
operator would. What the registry served before a run, it serves after, digests
checked; a damaged repository is kept whole and reported by name, the rest of the
store is collected. cosign's ``COSIGN_REPOSITORY`` signature tags, in a repository of
their own, survive ``--delete-orphan-referrers`` while their image exists anywhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import cli

from tests.conftest import require_tool
from tests.rigs import oci, planfiles
from tests.rigs.push import RegistryError
from tests.rigs.registry import blob_data_key
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.registry import RealRegistry

pytestmark = pytest.mark.registry

NO_GRACE = ("--grace", "0s", "--uploads-older-than", "0s")


def gc(
    capsys: pytest.CaptureFixture[str], root: Path, *args: str
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Run ``registry-gc gc ROOT --json`` with ``args``: exit code, report, deletion lines."""
    capsys.readouterr()
    out = planfiles.out_file()
    code = cli.run(["gc", str(root), *NO_GRACE, "--json", "--deletions-out", str(out), *args])
    listed = planfiles.deletions(out) if out.exists() else []
    return code, json.loads(capsys.readouterr().out), listed


def served(registry: RealRegistry, repo: str, ref: str) -> bytes | None:
    """The manifest the registry serves for ``repo:ref`` (digest checked), or None."""
    client = registry.client()
    try:
        got = client.get_manifest(repo, ref)
    except RegistryError:
        return None
    digest = "sha256:" + hashlib.sha256(got.data).hexdigest()
    assert got.digest in ("", digest), "the registry served bytes that do not match"
    return got.data


def pulls(registry: RealRegistry, repo: str, ref: str, dest: Path) -> bool:
    """Whether skopeo copies every manifest, config and layer of repo:ref (digests checked)."""
    return (
        pull_all(registry.url, repo, ref, dest / f"{repo.replace('/', '_')}-{ref}").returncode == 0
    )


def test_a_repository_with_a_lost_manifest_is_kept_whole(
    registry: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A revision whose manifest blob vanished: its repository keeps everything, the rest goes."""
    require_tool("skopeo")
    client = registry.client()
    base = oci.layer("damaged-base")
    live = oci.oci_image("live", shared_layers=[base])
    old = oci.oci_image("old", shared_layers=[base])  # untagged: garbage under -m
    lost = oci.oci_image("lost", shared_layers=[base])
    client.push_image("app", "old", old)
    client.push_image("app", "lost", lost)
    client.push_image("app", "v1", live)
    other_old = oci.oci_image("other-old")
    client.push_image("other", "v1", other_old)
    client.push_image("other", "v1", oci.oci_image("other-new"))
    assert registry.root_dir is not None
    root = registry.root_dir
    v2 = registry.v2_dir
    (v2 / blob_data_key(lost.digest)).unlink()  # behind the registry's back
    client.delete_manifest("app", old.digest)  # an API delete: old's blobs become garbage
    app = root / "docker/registry/v2/repositories/app"
    before = {p.relative_to(root): p.read_bytes() for p in app.rglob("*") if p.is_file()}

    code, report, listed = gc(capsys, root, "-m")
    assert code == cli.EXIT_OK, report
    after = {p.relative_to(root): p.read_bytes() for p in app.rglob("*") if p.is_file()}
    assert after == before, "no file in the damaged repository is touched"
    kinds = {(a["kind"], a["repository"]) for a in report["anomalies"]}
    assert ("missing-manifest", "app") in kinds
    assert ("damaged-repository", "app") in kinds
    damaged = next(a for a in report["anomalies"] if a["kind"] == "damaged-repository")
    assert "registry-gc rm app@" in damaged["message"]
    deleted = {(d["category"], d["repository"], d["digest"]) for d in listed}
    assert ("revision", "other", other_old.digest) in deleted, "the rest is collected"
    assert all(d["repository"] != "app" for d in listed)
    own = [b for b in old.blobs if b.digest != base.digest]  # old's config and layers
    for blob in own:
        assert (v2 / blob_data_key(blob.digest)).exists(), "what app links stays"
    assert served(registry, "app", "v1") == live.manifest.data
    assert pulls(registry, "app", "v1", tmp_path)
    assert pulls(registry, "other", "v1", tmp_path)

    # Opting in collects it as if the lost manifest were absent.
    code, report, listed = gc(capsys, root, "-m", "--prune-damaged")
    assert code == cli.EXIT_OK, report
    # The tag on the lost manifest stays (tags go only when asked); what only the lost
    # manifest referenced is unreferenced now.
    assert (v2 / "repositories/app/_manifests/tags/lost/current/link").exists()
    lost_own = [b for b in lost.blobs if b.digest != base.digest]
    assert not any((v2 / blob_data_key(b.digest)).exists() for b in lost_own)
    assert not any((v2 / blob_data_key(b.digest)).exists() for b in own)
    assert served(registry, "app", "v1") == live.manifest.data
    assert pulls(registry, "app", "v1", tmp_path)


def test_cosign_repository_signatures_follow_their_image(
    registry: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Signature tags in another repository stay while the image exists, go once it is gone."""
    require_tool("skopeo")
    client = registry.client()
    image = oci.oci_image("signed")
    gone = oci.oci_image("gone")
    client.push_image("app", "v1", image)
    client.push_image("app", "v0", gone)
    sig = oci.referrer(
        image, "sig", artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json"
    )
    orphan = oci.referrer(gone, "orphan-sig")
    sig_tag = "sha256-" + image.digest.split(":", 1)[1] + ".sig"
    orphan_tag = "sha256-" + gone.digest.split(":", 1)[1] + ".sig"
    # COSIGN_REPOSITORY=.../signatures: the signatures live in a repository of their own.
    for blob in oci.referrer(image, "x").blobs:  # the empty config, once
        client.push_blob("signatures", blob)
    client.push_image("signatures", sig_tag, sig)
    client.push_image("signatures", orphan_tag, orphan)
    client.delete_manifest("app", gone.digest)  # the image of the orphan signature goes
    assert registry.root_dir is not None

    code, report, _listed = gc(capsys, registry.root_dir, "-m", "--delete-orphan-referrers")
    assert code == cli.EXIT_OK, report
    decisions = {(t["repository"], t["tag"]): t for t in report["tags"]}
    kept = decisions["signatures", sig_tag]
    assert kept["action"] == "keep"
    assert "in app" in kept["rule"], "the message says where the image is"
    dropped = decisions["signatures", orphan_tag]
    assert dropped["action"] == "delete"
    assert "is in no repository of the store" in dropped["rule"]
    assert served(registry, "signatures", sig_tag) == sig.manifest.data
    assert served(registry, "signatures", orphan_tag) is None
    assert pulls(registry, "signatures", sig_tag, tmp_path)
    assert pulls(registry, "app", "v1", tmp_path)


def test_an_untagged_signature_in_another_repository_follows_its_subject(
    registry: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A referrer pushed by digest into its own repository is kept while its subject is live."""
    require_tool("skopeo")
    client = registry.client()
    image = oci.oci_image("subject")
    client.push_image("app", "v1", image)
    sig = oci.referrer(image, "by-digest")
    client.push_image("app-sigs", None, sig)
    client.push_image("app-sigs", "keep-repo", oci.oci_image("unrelated"))
    assert registry.root_dir is not None
    code, report, listed = gc(capsys, registry.root_dir, "-m")
    assert code == cli.EXIT_OK, report
    assert not [d for d in listed if d["digest"] == sig.digest]
    assert served(registry, "app-sigs", sig.digest) == sig.manifest.data
    assert pulls(registry, "app-sigs", sig.digest, tmp_path)
