"""End to end: a retention policy applied to a store the real registry (2.8.2) wrote.

Images are pushed through ``docker-registry serve``; push times are then set
on the tags' ``current`` links (what the policy reads as the push time). After
``collect(policy=...)`` the registry must no longer serve the deleted tags,
nor the manifests only they kept, and every kept tag must still pull
completely with ``skopeo copy --all``.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import TYPE_CHECKING

import pytest
from registry_gc import collect
from registry_gc.policy import load_policy

from tests.rigs import oci
from tests.rigs.registry import tag_current_key
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.registry import RealRegistry

pytestmark = pytest.mark.registry

DAY = 86400.0

POLICY = """
delete_orphan_signature_tags: true
rules:
  - repositories: ["app"]
    keep_semver: 2
    keep_within: 7d
    delete_tags: ["feature-.*"]
"""


def test_policy_deletes_tags_by_rule_and_every_kept_tag_still_pulls(
    registry: RealRegistry, skopeo_bin: str, tmp_path: Path
) -> None:
    """Tags go by rule, shared manifests stay, swept ones are gone, kept tags pull."""
    client = registry.client()
    a, b, c = oci.oci_image("a"), oci.docker_image("b"), oci.oci_image("c")
    d = oci.multiarch("d")
    e, g = oci.oci_image("e"), oci.oci_image("g")
    f = oci.oci_image("f")
    sig_b, sig_d = oci.oci_image("sig-b", n_layers=1), oci.oci_image("sig-d", n_layers=1)
    sbom_a = oci.referrer(a, "sbom-a")
    # tag → (image, age in days)
    pushes: dict[str, tuple[oci.Image | oci.Index, float]] = {
        "1.0.0": (a, 100),
        "build-3": (a, 1),
        "1.1.0": (b, 60),
        "build-2": (b, 30),
        "2.0.0-rc.1": (c, 20),
        "2.0.0": (d, 10),
        "latest": (d, 10),
        "feature-x": (e, 40),
        "feature-y": (f, 2),
        "build-1": (g, 50),
        f"sha256-{b.manifest.hex}.sig": (sig_b, 60),
        f"sha256-{d.manifest.hex}.sig": (sig_d, 10),
    }
    for tag, (image, _) in pushes.items():
        client.push_image("app", tag, image)
    client.push_image("app", None, sbom_a)
    client.push_image("other", "ancient", oci.oci_image("other"))
    now = time.time()
    for tag, (_, age) in [*pushes.items(), ("ancient", (None, 400))]:
        repo = "other" if tag == "ancient" else "app"
        link = registry.v2_dir / tag_current_key(repo, tag)
        os.utime(link, (now - age * DAY, now - age * DAY))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)

    assert registry.root_dir is not None
    report = collect(
        registry.root_dir,
        policy=load_policy(policy_file),
        delete_untagged=True,
        grace=datetime.timedelta(0),
    )

    assert report.ok
    assert report.decisions is not None
    deleted = {dec.tag: dec.rule for dec in report.decisions.deleted()}
    assert set(deleted) == {
        "1.0.0",
        "1.1.0",
        "build-1",
        "build-2",
        "feature-x",
        f"sha256-{b.manifest.hex}.sig",
    }
    assert deleted["feature-x"] == 'rule 1 (repositories "app"): delete_tags "feature-.*"'
    assert deleted["1.0.0"] == (
        'rule 1 (repositories "app"): not kept by keep_within 7d or keep_semver 2'
    )
    feature_y = report.decisions.get("app", "feature-y")
    assert feature_y is not None
    assert feature_y.rule == 'rule 1 (repositories "app"): keep_within 7d'
    kept = sorted(set(pushes) - set(deleted))
    assert client.tags("app") == kept
    assert client.tags("other") == ["ancient"]

    for tag in deleted:
        assert not client.manifest_exists("app", tag), tag
    # Manifests only deleted tags kept are gone; a manifest a kept tag shares stays.
    for gone in (b, e, g, sig_b):
        assert not client.manifest_exists("app", gone.digest), gone.digest
    assert client.manifest_exists("app", a.digest)

    pulls = [("app", tag) for tag in kept] + [("app", sbom_a.digest), ("other", "ancient")]
    for repo, ref in pulls:
        dest = tmp_path / "pulls" / f"{repo}-{ref.replace(':', '_')}"
        result = pull_all(registry.url, repo, ref, dest)
        assert result.returncode == 0, (
            f"{repo}:{ref} does not pull\n{result.stderr}\n{registry.log_tail(15)}"
        )
