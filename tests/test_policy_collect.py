"""Retention policies through ``collect(policy=...)`` on builder stores in a local directory.

Each test writes a tree with :class:`~tests.rigs.builder.RegistryBuilder`
(everything old enough to be outside the grace period unless said otherwise),
runs the collector with a policy and compares the files before and after.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from registry_gc import collect
from registry_gc.cli import run as cli_run
from registry_gc.layout import (
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    blob_path,
)
from registry_gc.policy import Policy, Rule

from tests.rigs.builder import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryBuilder

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc import Report

V2 = "docker/registry/v2/"


def tag_dir(repo: str, tag: str) -> str:
    """The directory of ``tag`` in ``repo``."""
    return f"{V2}repositories/{repo}/_manifests/tags/{tag}"


def owned(b: RegistryBuilder, repo: str, d: Digest) -> set[str]:
    """The revision link, manifest blob, blobs and layer links of image ``d`` in ``repo``."""
    r = Repository(repo)
    out = {RevisionLink(r, d).path, blob_path(d)}
    for x in b.contents[d]["blobs"]:
        out |= {blob_path(x), LayerLink(r, x).path}
    for child in b.contents[d]["children"]:
        out |= owned(b, repo, child)
    return out


def files(root: Path) -> set[str]:
    """Every file under ``root``, relative."""
    return {
        os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names
    }


def tag_files(before: set[str], repo: str, tag: str) -> set[str]:
    """The files of one tag directory."""
    return {p for p in before if p.startswith(tag_dir(repo, tag) + "/")}


def run(root: Path, policy: Policy, **kwargs: object) -> tuple[Report, set[str]]:
    """Collect ``root`` with ``policy``; return the report and the deleted files."""
    before = files(root)
    report = collect(root, policy=policy, **kwargs)  # type: ignore[arg-type]
    return report, before - files(root)


def test_a_tag_sharing_its_manifest_goes_alone(tmp_path: Path) -> None:
    """Deleting one of two tags on a manifest removes the tag directory only."""
    b = RegistryBuilder()
    m = b.image("app", "keep")
    b.tag("app", "drop", m)
    b.write_local(tmp_path)
    report, gone = run(tmp_path, Policy([Rule(delete_tags=["drop"])]), delete_untagged=True)
    assert gone == tag_files(files(tmp_path) | gone, "app", "drop")
    assert gone
    assert not (tmp_path / tag_dir("app", "drop")).exists()
    assert owned(b, "app", m) <= files(tmp_path)
    assert (tmp_path / tag_dir("app", "keep") / "current" / "link").read_text() == m
    assert report.ok


def test_manifests_only_deleted_tags_kept_are_swept_in_the_same_run(tmp_path: Path) -> None:
    """With delete_untagged the manifest and blobs of a deleted tag go in the same run."""
    b = RegistryBuilder()
    old = b.image("app", "v1", age=10 * 86400)
    new = b.image("app", "v2", age=86400)
    b.write_local(tmp_path)
    before = files(tmp_path)
    report, gone = run(tmp_path, Policy([Rule(keep_last=1)]), delete_untagged=True)
    assert gone == owned(b, "app", old) | tag_files(before, "app", "v1")
    assert owned(b, "app", new) <= files(tmp_path)
    reasons = {(d.category.value, d.reason) for d in report.plan.deletions}
    assert ("tag", "removed-tag") in reasons
    assert ("revision", "untagged") in reasons


def test_without_delete_untagged_only_the_tag_goes(tmp_path: Path) -> None:
    """Without delete_untagged the deleted tag's manifest stays as an untagged revision."""
    b = RegistryBuilder()
    old = b.image("app", "v1", age=10 * 86400)
    b.image("app", "v2", age=86400)
    b.write_local(tmp_path)
    before = files(tmp_path)
    _, gone = run(tmp_path, Policy([Rule(keep_last=1)]))
    assert gone == tag_files(before, "app", "v1")
    assert owned(b, "app", old) <= files(tmp_path)


def test_dry_run_lists_every_deleted_tag_with_its_rule(tmp_path: Path) -> None:
    """A dry run deletes nothing and reports each tag decision, in text and JSON."""
    b = RegistryBuilder()
    b.image("app", "v1", age=10 * 86400)
    b.image("app", "v2", age=86400)
    b.image("lib", "old", age=100 * 86400)
    b.write_local(tmp_path)
    report, gone = run(
        tmp_path,
        Policy([Rule(repositories="app", keep_last=1)]),
        dry_run=True,
        delete_untagged=True,
    )
    assert gone == set()
    rule = 'rule 1 (repositories "app"): not kept by keep_last 1'
    tags = json.loads(json.dumps(report.to_dict()))["tags"]
    assert [(t["repository"], t["tag"], t["action"], t["rule"]) for t in tags] == [
        ("app", "v1", "delete", rule),
        ("app", "v2", "keep", 'rule 1 (repositories "app"): keep_last 1'),
    ]
    assert all(t["digest"].startswith("sha256:") and t["pushed"].endswith("Z") for t in tags)
    text = report.render()
    assert "policy: would delete 1 tag(s) and keep 1" in text
    assert "app:v1 (sha256:" in text
    assert rule in text


def test_a_real_run_reports_what_the_policy_deleted(tmp_path: Path) -> None:
    """After a real run the summary counts the tags the policy deleted."""
    b = RegistryBuilder()
    b.image("app", "v1")
    b.image("app", "v2")
    b.write_local(tmp_path)
    report, _ = run(tmp_path, Policy([Rule(delete_tags=["v1"])]))
    assert "policy: deleted 1 tag(s), kept 1" in report.render()
    assert "app:v1" in report.render(verbose=True)


def test_without_a_policy_the_report_has_no_tag_decisions(tmp_path: Path) -> None:
    """The JSON report's ``tags`` list is empty when no policy ran."""
    b = RegistryBuilder()
    b.image("app", "v1")
    b.write_local(tmp_path)
    report = collect(tmp_path, dry_run=True)
    assert report.to_dict()["tags"] == []
    assert "policy:" not in report.render()


def test_tags_pushed_within_the_grace_period_stay(tmp_path: Path) -> None:
    """A tag written within the grace period is kept, and the report says why."""
    b = RegistryBuilder()
    b.image("app", "fresh", age=600)
    b.image("app", "old")
    b.write_local(tmp_path)
    before = files(tmp_path)
    report, gone = run(tmp_path, Policy([Rule(delete_tags=[".*"])]))
    assert gone == tag_files(before, "app", "old")
    assert (tmp_path / tag_dir("app", "fresh")).exists()
    assert report.decisions is not None
    fresh = report.decisions.get("app", "fresh")
    assert fresh is not None
    assert fresh.rule.startswith("pushed within the grace period (1h)")


def test_referrers_whose_subject_is_gone_are_removed_when_asked(tmp_path: Path) -> None:
    """delete_referrers_without_subject removes a referrer whose subject revision is gone."""
    b = RegistryBuilder()
    subject = b.image("app", None)
    sbom = b.referrer("app", subject, artifact_type="application/spdx+json")
    b.image("app", "v1")
    b.remove(RevisionLink(Repository("app"), subject).path)
    b.write_local(tmp_path)
    kept_copy = tmp_path / "copy"
    b.write_local(kept_copy)

    _, gone_without = run(kept_copy, Policy())
    assert RevisionLink(Repository("app"), sbom).path not in gone_without

    report, gone = run(tmp_path, Policy(delete_referrers_without_subject=True))
    assert owned(b, "app", sbom) <= gone
    assert report.decisions is not None
    assert [(m.digest, m.subject) for m in report.decisions.manifests] == [(sbom, subject)]
    assert f"referrer {sbom} in app" in report.render(verbose=True)


def test_signature_tags_of_images_swept_in_the_run_go_too(tmp_path: Path) -> None:
    """A cosign tag whose image this run deletes is deleted in the same run, when asked."""
    b = RegistryBuilder()
    doomed = b.image("app", "1.0")
    doomed_sig = b.image("app", f"sha256-{doomed.hex}.sig", layers=1)
    stays = b.image("app", "2.0")
    stays_sig = b.image("app", f"sha256-{stays.hex}.sig", layers=1)
    b.write_local(tmp_path)
    plain = tmp_path / "plain"
    b.write_local(plain)
    before = files(tmp_path)
    rules = [Rule(delete_tags=["1.0"])]

    _, gone_plain = run(plain, Policy(rules), delete_untagged=True)
    assert owned(b, "app", doomed) <= gone_plain
    assert not owned(b, "app", doomed_sig) & gone_plain

    report, gone = run(
        tmp_path, Policy(rules, delete_orphan_signature_tags=True), delete_untagged=True
    )
    expected = (
        owned(b, "app", doomed)
        | owned(b, "app", doomed_sig)
        | tag_files(before, "app", "1.0")
        | tag_files(before, "app", f"sha256-{doomed.hex}.sig")
    )
    assert gone == expected
    assert owned(b, "app", stays) | owned(b, "app", stays_sig) <= files(tmp_path)
    assert report.decisions is not None
    decision = report.decisions.get("app", f"sha256-{doomed.hex}.sig")
    assert decision is not None
    assert decision.rule.endswith("is deleted in this run from every repository that held it")


def _image_created(
    b: RegistryBuilder, repo: str, tag: str | None, created: str, age: float
) -> Digest:
    """An OCI image whose config says ``created``."""
    layer = b.layer(repo, age=age)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "created": created, "tag": tag}
    ).encode()
    config_digest = b.layer(repo, config, age)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": 1}],
    }
    d = b.manifest(repo, doc, tag, age)
    b.contents[d] = {"blobs": [config_digest, layer], "children": []}
    return d


def test_created_time_source_reads_the_image_configs(tmp_path: Path) -> None:
    """time_source created ranks by the configs' created time (an index by its newest image)."""
    b = RegistryBuilder()
    day = 86400.0
    _image_created(b, "app", "rebuilt", "2020-01-01T00:00:00Z", 1 * day)
    _image_created(b, "app", "recent", "2026-01-01T10:00:00.123456789+02:00", 5 * day)
    old = _image_created(b, "app", None, "2019-01-01T00:00:00Z", 9 * day)
    newer = _image_created(b, "app", None, "2025-06-01T00:00:00Z", 9 * day)
    b.index("app", "multi", [old, newer], age=9 * day)
    b.write_local(tmp_path)
    by_push, _ = run(tmp_path, Policy([Rule(keep_last=2)]), dry_run=True)
    by_created, _ = run(tmp_path, Policy([Rule(keep_last=2, time_source="created")]), dry_run=True)
    assert by_push.decisions is not None
    assert by_created.decisions is not None
    assert [d.tag for d in by_push.decisions.deleted()] == ["multi"]
    assert [d.tag for d in by_created.decisions.deleted()] == ["rebuilt"]


def test_cli_gc_applies_keep_last_and_reports_the_rule(tmp_path, capsys):
    """`gc --keep-last N -m` deletes the older tags, says which rule did, and keeps N."""
    b = RegistryBuilder()
    for i in range(4):
        b.image("app", f"build-{i}", age=10_000 - i * 1000)  # build-3 is the newest
    b.write_local(tmp_path)
    code = cli_run(["gc", str(tmp_path), "-m", "--keep-last", "2", "--no-keep-latest", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    deleted = {t["tag"] for t in out["tags"] if t["action"] == "delete"}
    assert deleted == {"build-0", "build-1"}
    assert all("keep_last 2" in t["rule"] for t in out["tags"] if t["action"] == "delete")
    tags = tmp_path / "docker/registry/v2/repositories/app/_manifests/tags"
    assert sorted(p.name for p in tags.iterdir()) == ["build-2", "build-3"]
