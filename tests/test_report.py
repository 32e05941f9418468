"""Tests of registry_gc.report: counts and bytes per category and repository, the JSON, the text."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from registry_gc import Options, Report, make_plan, mark
from registry_gc import report as report_module
from registry_gc.layout import LayerLink, LegacySignatureLink, RevisionLink, classify

from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.scenarios import rich
from tests.rigs.stores import ZERO, R, Store, blob, blobs_of, run, surveyed

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

DOCUMENTED_KEYS = {
    "schema",
    "root",
    "dry_run",
    "ok",
    "options",
    "store",
    "totals",
    "categories",
    "repositories",
    "kept",
    "anomalies",
    "failures",
}


def test_report_counts_bytes_and_json(store: Store) -> None:
    """Counts and bytes per category and repository match the deletions; the JSON is complete."""
    b = RegistryBuilder()
    rich(b)
    b.blob(b"young", age=60)
    store.write(b)
    sizes = {p: len(data) for p, data in b.files.items()}
    r = run(
        store,
        delete_untagged=True,
        uploads_older_than=datetime.timedelta(hours=2),
        prune_damaged=True,  # rich() holds a dangling revision: count its deletion too
    )
    report = r.report
    doc = json.loads(json.dumps(report.to_dict()))
    assert set(doc) >= DOCUMENTED_KEYS
    assert doc["schema"] == "registry-gc/report/v2"
    assert "deletions" not in doc, "the per-deletion list goes to --deletions-out (v2)"
    assert doc["root"] == report.plan.url
    assert (doc["dry_run"], doc["ok"]) == (False, True)
    assert doc["options"] == {
        "delete_untagged": True,
        "grace_seconds": 3600.0,
        "uploads_older_than_seconds": 7200.0,
    }
    deleted_blobs = blobs_of(r.deleted)
    uploads = {p for p in r.deleted if "/_uploads/" in p}
    cats = doc["categories"]
    assert cats["blob"] == {
        "count": len(deleted_blobs),
        "bytes": sum(sizes[p] for p in deleted_blobs),
        "objects": len(deleted_blobs),
    }
    assert cats["upload"]["bytes"] == sum(sizes[p] for p in uploads)
    assert cats["upload"]["objects"] == len(uploads)
    assert cats["upload"]["count"] == len(uploads) // 3
    assert cats["layer-link"]["objects"] == sum(
        isinstance(classify(p), LayerLink) for p in r.deleted
    )
    revisions = sum(isinstance(classify(p), RevisionLink) for p in r.deleted)
    signatures = sum(isinstance(classify(p), LegacySignatureLink) for p in r.deleted)
    assert (revisions, signatures) == (11, 1)
    assert cats["revision"] == {"count": 11, "bytes": 0, "objects": 12}
    assert sum(c["objects"] for c in cats.values()) == len(r.deleted)
    totals = doc["totals"]
    assert totals["objects"] == len(r.deleted)
    assert totals["bytes"] == sum(sizes[p] for p in deleted_blobs | uploads)
    assert totals["deletions"] == len(report.plan.deletions)
    assert totals["kept_for_grace"] == 1
    assert [k.path for k in report.plan.kept] == [blob(sha256(b"young"))]
    assert set(doc["kept"]) == set(cats)
    assert doc["kept"]["blob"] == {"count": 1, "bytes": len(b"young")}
    assert sum(k["count"] for k in doc["kept"].values()) == 1
    assert totals["failed"] == 0
    assert doc["failures"] == []
    assert doc["store"]["blobs"] == len(blobs_of(set(b.files)))
    assert doc["store"]["bytes"] == sum(sizes[p] for p in blobs_of(set(b.files)))
    per_repo: dict[str, dict[str, int]] = {}
    for d in report.plan.deletions:
        if d.repository is not None:
            entry = per_repo.setdefault(d.repository, {})
            entry[d.category.value] = entry.get(d.category.value, 0) + 1
    assert {k: v["categories"] for k, v in doc["repositories"].items()} == per_repo
    assert doc["repositories"]["y"]["bytes"] == sum(
        sizes[p] for p in uploads if p.startswith(f"{R}y/")
    )
    # rich() holds a dangling revision, collected on request (prune_damaged) but reported.
    assert {a["kind"] for a in doc["anomalies"]} == {"no-manifests-directory", "missing-manifest"}
    assert report.deleted_count == len(r.deleted)
    text = report.render(verbose=True)
    assert "deleted:" in text
    assert "restart" in text


def test_verbose_render_caps_the_deletion_list(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-v`` lists at most VERBOSE_DELETIONS deletions and says how many more there are."""
    b = RegistryBuilder()
    rich(b)
    r = run(store, b, dry_run=True, delete_untagged=True, prune_damaged=True)
    total = len(r.report.plan.deletions)
    assert total > 3
    monkeypatch.setattr(report_module, "VERBOSE_DELETIONS", 2)
    text = r.report.render(verbose=True)
    listed = [line for line in text.splitlines() if line.startswith("    [")]
    assert len(listed) == 2
    assert f"… and {total - 2} more deletion(s)" in text


def test_the_json_does_not_grow_with_the_deletions(tmp_path: Path) -> None:
    """The JSON is a summary: ten times the garbage blobs, the same document but for numbers."""

    def doc_of(n: int, where: Path) -> dict[str, Any]:
        b = RegistryBuilder(seed=n)
        b.image("app", "v1")
        for i in range(n):
            b.blob(f"garbage {i}".encode())
        inventory, manifests = surveyed(b, where)
        plan = make_plan(inventory, mark(inventory, manifests, Options(grace=ZERO)))
        assert len(plan.deletions) == n
        return json.loads(json.dumps(Report(inventory, plan, dry_run=True).to_dict()))

    small, large = doc_of(20, tmp_path / "small"), doc_of(200, tmp_path / "large")
    assert small["totals"]["deletions"] == 20
    assert large["totals"]["deletions"] == 200

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k not in {"root", "started"}}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    assert shape(small) == shape(large)
