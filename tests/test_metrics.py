"""``--metrics-file``: the run's figures in the Prometheus text format, read back with its parser.

Every value is checked against the run's own JSON report; runs that fail or
are refused write the file too, and keep the last success of the previous one.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import exposition
from prometheus_client.parser import text_string_to_metric_families
from registry_gc import collect
from registry_gc.backends import LocalBackend
from registry_gc.cli import run
from registry_gc.demo import write_demo_registry
from registry_gc.metrics import RunRecorder, write_metrics
from registry_gc.plan import Category

from tests.rigs.doubles import FailSome

if TYPE_CHECKING:
    from tests.rigs.s3 import MotoS3

#: Every metric (docs/monitoring.md describes each).
NAMES = {
    f"registry_gc_{name}"
    for name in (
        "run_start_timestamp_seconds",
        "run_end_timestamp_seconds",
        "run_success",
        "last_success_timestamp_seconds",
        "run_info",
        "phase_duration_seconds",
        "stored_bytes",
        "stored_blobs",
        "stored_objects",
        "live_bytes",
        "live_blobs",
        "deleted_bytes",
        "deleted_objects",
        "reclaimable_bytes",
        "grace_kept_bytes",
        "anomalies",
        "failed_deletions",
        "storage_objects",
        "storage_requests",
    )
}
#: Written by live runs only (``gc --live``).
LIVE_NAMES = {
    f"registry_gc_{name}"
    for name in (
        "quarantine_bytes",
        "quarantine_blobs",
        "quarantine_held",
        "live_moved_bytes",
        "live_restored_blobs",
        "live_restored_links",
        "live_restore_failures",
        "live_purged_bytes",
        "live_verified",
    )
}
MONITORING = Path(__file__).resolve().parent.parent / "docs" / "monitoring.md"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def read(path: Path) -> tuple[dict[str, str], Samples]:
    """Parse a metrics file: family name → type, and (sample name, labels) → value."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        types[family.name] = family.type
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value."""
    return samples[f"registry_gc_{name}", tuple(sorted(labels.items()))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """A labelled metric as label value → sample value."""
    return {
        dict(labels)[label]: v for (n, labels), v in samples.items() if n == f"registry_gc_{name}"
    }


def gc(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict[str, Any] | None]:
    """Run ``registry-gc gc ARGS --json``; return the exit code and the JSON (None if none)."""
    code = run(["gc", *map(str, args), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


@pytest.fixture
def demo(tmp_path: Path) -> str:
    """A demo registry."""
    return write_demo_registry(tmp_path / "demo").root


def test_a_live_run_writes_its_quarantine_figures(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live run (gc --live) adds the quarantine and live figures, with its values."""
    path = tmp_path / "gc.prom"
    code, report = gc(
        capsys,
        demo,
        "-m",
        "--live",
        "--cache",
        "inmemory",
        "--settle",
        "0s",
        "--metrics-file",
        path,
    )
    assert code == 0
    assert report is not None
    types, samples = read(path)
    assert set(types) == (NAMES | LIVE_NAMES) - {"registry_gc_storage_requests"}
    live = report["live"]
    assert samples[("registry_gc_quarantine_held", ())] == 1
    assert samples[("registry_gc_quarantine_bytes", ())] == live["quarantine"]["bytes"] > 0
    assert samples[("registry_gc_live_moved_bytes", ())] == live["moved_bytes"]
    assert samples[("registry_gc_live_verified", ())] == 1
    assert samples[("registry_gc_live_restore_failures", ())] == 0


def test_names_follow_the_prometheus_conventions(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """registry_gc_ prefix, snake case, unit suffixes, gauges only and so never _total."""
    path = tmp_path / "gc.prom"
    assert gc(capsys, demo, "-m", "--metrics-file", path)[0] == 0
    types, samples = read(path)
    assert set(types) == NAMES - {"registry_gc_storage_requests"}  # local disk: no HTTP
    for name, kind in types.items():
        assert re.fullmatch(r"registry_gc_[a-z]+(_[a-z]+)*", name), name
        assert kind == "gauge", name
        assert not name.endswith(("_total", "_count", "_sum", "_bucket", "_created")), name
    units = {n for n in types if n.endswith(("_bytes", "_seconds"))}
    assert {n for n in types if "timestamp" in n} <= {n for n in units if n.endswith("_seconds")}
    assert {n for n in types if "duration" in n} <= units
    assert "registry_gc_run_info" in types
    labels = {k for (_, ls), _ in samples.items() for k, _ in ls}
    assert labels == {"category", "command", "dry_run", "operation", "outcome", "phase", "version"}


def test_a_sweep_writes_its_figures(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start, end, success, deleted bytes and objects per category, live and stored, as reported."""
    path = tmp_path / "gc.prom"
    before = time.time()
    code, doc = gc(capsys, demo, "-m", "--metrics-file", path)
    assert code == 0
    assert doc is not None
    _, samples = read(path)
    start, end = (
        value(samples, "run_start_timestamp_seconds"),
        value(samples, "run_end_timestamp_seconds"),
    )
    assert before <= start <= end <= time.time()
    assert value(samples, "run_success") == 1
    assert value(samples, "last_success_timestamp_seconds") == end
    version = doc["version"]
    info = ("gc", "false", "success", version)
    assert (
        value(
            samples, "run_info", command=info[0], dry_run=info[1], outcome=info[2], version=info[3]
        )
        == 1
    )
    for category, figures in doc["categories"].items():
        assert value(samples, "deleted_bytes", category=category) == figures["bytes"]
        assert value(samples, "deleted_objects", category=category) == figures["objects"]
    assert set(by_label(samples, "deleted_bytes", "category")) == {c.value for c in Category}
    assert (
        sum(by_label(samples, "deleted_bytes", "category").values()) == doc["totals"]["bytes"] > 0
    )
    assert value(samples, "reclaimable_bytes") == 0
    assert value(samples, "stored_bytes") == doc["store"]["bytes"]
    assert value(samples, "stored_blobs") == doc["store"]["blobs"]
    assert value(samples, "stored_objects") == doc["store"]["objects"]
    assert value(samples, "live_bytes") == doc["store"]["live_bytes"]
    assert value(samples, "live_blobs") == doc["store"]["live_blobs"]
    assert value(samples, "anomalies") == doc["totals"]["anomalies"] == 0
    assert value(samples, "failed_deletions") == 0
    assert value(samples, "grace_kept_bytes") == doc["totals"]["kept_for_grace_bytes"] == 0
    phases = by_label(samples, "phase_duration_seconds", "phase")
    assert set(phases) == {"inventory", "manifests", "plan", "apply"}
    assert phases == pytest.approx(
        {k: v for k, v in doc["timings"].items() if k != "total"}, abs=1e-3
    )
    storage = by_label(samples, "storage_objects", "operation")
    assert storage["list"] >= doc["store"]["objects"]
    assert storage["delete"] >= doc["totals"]["objects"]
    assert "registry_gc_storage_requests" not in {n for n, _ in samples}  # local disk: no HTTP


def test_a_dry_run_reports_what_is_reclaimable(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run deletes nothing; reclaimable bytes are what a sweep would free; dry_run="true"."""
    path = tmp_path / "gc.prom"
    code, doc = gc(capsys, demo, "-m", "--dry-run", "--metrics-file", path)
    assert code == 0
    assert doc is not None
    _, samples = read(path)
    assert set(by_label(samples, "deleted_bytes", "category").values()) == {0}
    assert value(samples, "reclaimable_bytes") == doc["totals"]["bytes"] > 0
    assert by_label(samples, "run_info", "dry_run") == {"true": 1}
    assert "delete" not in by_label(samples, "storage_objects", "operation")


def test_a_refused_run_writes_the_file_and_keeps_the_last_success(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused: success 0, outcome "refused", no store figures; the last success stays."""
    path = tmp_path / "gc.prom"
    assert gc(capsys, demo, "--metrics-file", path)[0] == 0
    succeeded = value(read(path)[1], "last_success_timestamp_seconds")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gc(capsys, empty, "--metrics-file", path)[0] == 3
    _, samples = read(path)
    assert value(samples, "run_success") == 0
    assert value(samples, "last_success_timestamp_seconds") == succeeded > 0
    assert value(samples, "run_end_timestamp_seconds") > succeeded
    assert by_label(samples, "run_info", "outcome") == {"refused": 1}
    assert by_label(samples, "run_info", "dry_run") == {"false": 1}
    assert not {n for n, _ in samples} & {"registry_gc_stored_bytes", "registry_gc_deleted_bytes"}


def test_a_first_run_that_fails_records_no_success(tmp_path: Path) -> None:
    """With no previous file, a failed run's last success is 0 (and "usage-error" for bad input)."""
    path = tmp_path / "gc.prom"
    assert run(["gc", "--config", str(tmp_path / "missing.yml"), "--metrics-file", str(path)]) == 2
    _, samples = read(path)
    assert value(samples, "run_success") == 0
    assert value(samples, "last_success_timestamp_seconds") == 0
    assert by_label(samples, "run_info", "outcome") == {"usage-error": 1}


def test_failed_deletions_count_and_stay_reclaimable(demo: str, tmp_path: Path) -> None:
    """Deletions that fail: success 0, outcome "failed", their bytes still reclaimable."""
    backend = FailSome(LocalBackend(demo), lambda p: "/_manifests/revisions/" in p)
    report = collect(backend, delete_untagged=True)
    assert report.result is not None
    assert report.result.failures
    path = tmp_path / "gc.prom"
    write_metrics(path, report, started=1.0, finished=2.0)
    _, samples = read(path)
    assert value(samples, "run_success") == 0
    assert by_label(samples, "run_info", "outcome") == {"failed": 1}
    assert value(samples, "failed_deletions") == len(report.result.failures)
    left = sum(
        d.size
        for d, s in zip(report.plan.deletions, report.result.status, strict=True)
        if s != "deleted"
    )
    assert value(samples, "reclaimable_bytes") == left > 0
    assert value(samples, "deleted_bytes", category="blob") == 0  # later phases were skipped


def test_the_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails leaves the previous file whole and no temporary file behind."""
    path = tmp_path / "gc.prom"
    write_metrics(path, RuntimeError("first"), started=1.0, finished=2.0)
    before = path.read_bytes()

    def broken(*_: object, **__: object) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(exposition, "generate_latest", broken)
    with pytest.raises(OSError, match="disk full"):
        write_metrics(path, RuntimeError("second"), started=3.0, finished=4.0)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["gc.prom"]


def test_an_interrupted_run_is_recorded(tmp_path: Path) -> None:
    """Ctrl-C inside the run: the file says "interrupted", and the interrupt goes on."""
    path = tmp_path / "gc.prom"
    with pytest.raises(KeyboardInterrupt), RunRecorder(path, command="gc"):
        raise KeyboardInterrupt
    _, samples = read(path)
    assert by_label(samples, "run_info", "outcome") == {"interrupted": 1}
    assert value(samples, "run_success") == 0


def test_a_missing_directory_is_refused_before_the_run(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--metrics-file in a directory that does not exist: exit 2, nothing deleted."""
    before = sorted(p for p in Path(demo).rglob("*"))
    code = run(["gc", demo, "-m", "--metrics-file", str(tmp_path / "nope" / "gc.prom")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p for p in Path(demo).rglob("*")) == before


def test_rm_writes_metrics_too(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rm`` records its run, as command "rm"."""
    path = tmp_path / "rm.prom"
    assert run(["rm", demo, "acme/web:v1.0", "--json", "--metrics-file", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    _, samples = read(path)
    assert by_label(samples, "run_info", "command") == {"rm": 1}
    tags = doc["categories"]["tag"]["objects"]
    assert value(samples, "deleted_objects", category="tag") == tags > 0


def test_the_monitoring_page_describes_every_metric() -> None:
    """docs/monitoring.md names every metric the file can hold, and no other."""
    named = set(re.findall(r"registry_gc_[a-z_]+[a-z]", MONITORING.read_text()))
    assert named == NAMES | LIVE_NAMES


@pytest.mark.s3
def test_s3_requests_per_operation(
    demo: str, tmp_path: Path, moto_server: MotoS3, moto_bucket: str
) -> None:
    """On S3: HTTP requests per API operation, consistent with the objects read and deleted."""
    fs = moto_server.filesystem()
    fs.put(f"{demo}/docker", f"{moto_bucket}/reg/", recursive=True)
    path = tmp_path / "gc.prom"
    options = [f"{k}={json.dumps(v)}" for k, v in moto_server.storage_options().items()]
    argv = [
        "gc",
        f"s3://{moto_bucket}/reg",
        "-m",
        "--grace",
        "0",
        "-q",
        "--metrics-file",
        str(path),
    ]
    for option in options:
        argv += ["-o", option]
    assert run(argv) == 0
    _, samples = read(path)
    requests = by_label(samples, "storage_requests", "operation")
    objects = by_label(samples, "storage_objects", "operation")
    assert requests["ListObjectsV2"] >= 1
    assert requests["GetObject"] == objects["read"]
    assert 1 <= requests["DeleteObjects"] <= objects["delete"]
    assert "HeadObject" not in requests
