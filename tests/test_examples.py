"""The examples in examples/ run: the library example, the cron job, the Kubernetes CronJob.

Each runs against a builder store with ``registry-gc`` on PATH (a wrapper
around this interpreter); the Kubernetes job's script runs with a fake
``kubectl`` that records what it is asked, in order.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from registry_gc.layout import BlobData, RevisionLink

from tests.conftest import require_tool
from tests.rigs.builder import RegistryBuilder

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRON = EXAMPLES / "cron"
KUBERNETES = EXAMPLES / "kubernetes" / "cronjob.yaml"


class Store:
    """A builder store with one tagged image and one old untagged one."""

    def __init__(self, root: Path) -> None:
        b = RegistryBuilder(seed=21)
        self.live = b.image("app", "v1")
        self.dead = b.image("app", None)
        b.write_local(root)
        self.root = root

    def has(self, digest: str) -> bool:
        """Whether the revision link and the manifest blob are still there."""
        rev = RevisionLink("app", digest).path  # type: ignore[arg-type]
        return (self.root / rev).exists() and (self.root / BlobData(digest).path).exists()  # type: ignore[arg-type]


def tools(tmp_path: Path, log: Path | None = None) -> Path:
    """A bin directory with a ``registry-gc`` wrapper (logging its calls to ``log``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    note = f'echo "registry-gc $*" >> {shlex.quote(str(log))}\n' if log else ""
    wrapper = bin_dir / "registry-gc"
    wrapper.write_text(f'#!/bin/sh\n{note}exec {shlex.quote(sys.executable)} -m registry_gc "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def environment(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of an example: no REGISTRY_* from the machine, bin_dir first on PATH.

    This worktree first on the Python path: an editable install of another copy of the
    package (a shared virtualenv) would otherwise be what the examples run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def metric(path: Path, name: str) -> float:
    """The value of an unlabelled metric in a metrics file."""
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in {path}")


def config_file(tmp_path: Path, root: Path, *, cache: bool = False) -> Path:
    """A registry config.yml for a filesystem root."""
    storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(root)}}
    if cache:
        storage["cache"] = {"blobdescriptor": "inmemory"}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": 0.1, "storage": storage}))
    return path


# -- the library example -----------------------------------------------------------------


def test_library_example_dry_runs_a_store(tmp_path: Path) -> None:
    """examples/library_usage.py prints what gc -m would delete, and deletes nothing."""
    store = Store(tmp_path / "store")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_usage.py"), str(store.root), "--top", "3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert "top reasons" in result.stdout
    assert store.has(store.dead)


# -- cron ----------------------------------------------------------------------------------


def run_cron(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run run-gc.sh with registry-gc on PATH and reports under tmp_path/reports."""
    env.setdefault("REPORT_DIR", str(tmp_path / "reports"))
    return subprocess.run(
        ["bash", str(CRON / "run-gc.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment(tools(tmp_path), **env),
    )


def test_cron_script_collects_and_leaves_a_report(tmp_path: Path) -> None:
    """run-gc.sh runs gc -m with the default grace, logs one line and keeps the JSON report."""
    store = Store(tmp_path / "store")
    result = run_cron(tmp_path, REGISTRY_ROOT=str(store.root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert store.has(store.live)
    assert not store.has(store.dead)
    assert "registry-gc: exit 0: deleted " in result.stdout
    reports = sorted((tmp_path / "reports").glob("gc-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["ok"] is True
    (listing,) = (tmp_path / "reports").glob("gc-*.deletions.jsonl")
    lines = [json.loads(line) for line in listing.read_text().splitlines()]
    assert lines[-1] == {
        "end": True,
        "deletions": report["totals"]["deletions"],
        "bytes": report["totals"]["bytes"],
    }
    assert {line["status"] for line in lines[1:-1]} == {"deleted"}
    assert report["options"] == {
        "delete_untagged": True,
        "grace_seconds": 3600.0,
        "uploads_older_than_seconds": 86400.0,
    }


def test_cron_script_writes_metrics_when_asked(tmp_path: Path) -> None:
    """With METRICS_FILE, each run leaves its metrics there: success, then a refused run."""
    store = Store(tmp_path / "store")
    metrics = tmp_path / "registry-gc.prom"
    result = run_cron(tmp_path, REGISTRY_ROOT=str(store.root), METRICS_FILE=str(metrics))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--metrics-file {metrics}" in result.stdout
    assert metric(metrics, "registry_gc_run_success") == 1
    (tmp_path / "empty").mkdir()
    result = run_cron(tmp_path, REGISTRY_ROOT=str(tmp_path / "empty"), METRICS_FILE=str(metrics))
    assert result.returncode == 3
    assert metric(metrics, "registry_gc_run_success") == 0
    assert metric(metrics, "registry_gc_last_success_timestamp_seconds") > 0


def test_cron_script_restarts_a_registry_that_caches_blob_descriptors(tmp_path: Path) -> None:
    """With storage.cache.blobdescriptor, RESTART_COMMAND runs after a sweep that deleted."""
    store = Store(tmp_path / "store")
    config = config_file(tmp_path, store.root, cache=True)
    marker = tmp_path / "restarted"
    restart = f"touch {shlex.quote(str(marker))}"
    result = run_cron(tmp_path, REGISTRY_CONFIG=str(config), RESTART_COMMAND=restart)
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.exists()
    marker.unlink()
    result = run_cron(tmp_path, REGISTRY_CONFIG=str(config), RESTART_COMMAND=restart)
    assert result.returncode == 0
    assert "deleted 0 objects" in result.stdout
    assert not marker.exists()  # nothing deleted: no restart


def test_cron_script_passes_registry_gc_failures_on(tmp_path: Path) -> None:
    """A root without a registry: the script exits 3 like registry-gc, with the error."""
    (tmp_path / "empty").mkdir()
    result = run_cron(tmp_path, REGISTRY_ROOT=str(tmp_path / "empty"))
    assert result.returncode == 3
    assert "error: no registry found" in result.stdout


def test_cron_script_does_not_overlap(tmp_path: Path) -> None:
    """A second run while the first holds the lock exits 75 without running registry-gc."""
    store = Store(tmp_path / "store")
    reports = tmp_path / "reports"
    reports.mkdir()
    with (reports / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = run_cron(tmp_path, REGISTRY_ROOT=str(store.root))
    assert result.returncode == 75
    assert store.has(store.dead)


def test_cron_file_runs_the_script_nightly_as_root() -> None:
    """registry-gc.cron: one job line, five schedule fields, root, the installed script."""
    lines = [
        line
        for line in (CRON / "registry-gc.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split()
    assert len(fields) >= 7
    minute, hour, *_ = fields[:5]
    assert minute.isdigit()
    assert hour.isdigit()
    assert fields[5] == "root"
    assert fields[6] == "/usr/local/sbin/registry-gc-nightly"
    text = (CRON / "registry-gc.cron").read_text()
    assert "install -m 0755 run-gc.sh /usr/local/sbin/registry-gc-nightly" in text


# -- Kubernetes -------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """The documents of cronjob.yaml by kind."""
    docs = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs)
    return by_kind


def test_kubernetes_manifests_parse_and_fit_together() -> None:
    """The CronJob, its ServiceAccount, RBAC and script ConfigMap reference each other."""
    docs = manifests()
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"}
    cronjob = docs["CronJob"]
    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert docs["RoleBinding"]["subjects"][0]["name"] == pod["serviceAccountName"]
    assert docs["RoleBinding"]["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    verbs = {v for rule in docs["Role"]["rules"] for v in rule["verbs"]}
    assert {"patch", "watch"} <= verbs
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scripts"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REGISTRY_CONFIG"] == "/etc/docker/registry/config.yml"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/docker/registry"] == "registry-config"
    metrics_dir, _, metrics_name = env["METRICS_FILE"].rpartition("/")
    assert volumes[mounts[metrics_dir]]["hostPath"]["type"] == "DirectoryOrCreate"
    assert metrics_name.endswith(".prom")
    assert container["command"] == ["/bin/bash", "/scripts/gc-live.sh"]
    assert "gc-live.sh" in docs["ConfigMap"]["data"]
    assert env["BLOBDESCRIPTOR_CACHE"] == ""


def test_kubernetes_script_references_the_right_command() -> None:
    """The job's script runs gc in live mode with the registry's config and -m."""
    script = manifests()["ConfigMap"]["data"]["gc-live.sh"]
    assert 'registry-gc gc --config "$config" -m --live' in script
    assert "READONLY" not in script
    purge = 'registry-gc quarantine purge --config "$config"'
    assert script.index("rollout restart") < script.index(purge)


def run_k8s_script(
    tmp_path: Path, config: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the ConfigMap's script with a fake kubectl; return the result and the call log."""
    script = tmp_path / "gc-live.sh"
    script.write_text(manifests()["ConfigMap"]["data"]["gc-live.sh"])
    log = tmp_path / "calls.log"
    bin_dir = tools(tmp_path, log)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "kubectl $*" >> {shlex.quote(str(log))}\n')
    kubectl.chmod(0o755)
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment(
            bin_dir,
            REGISTRY_CONFIG=str(config),
            DEPLOYMENT="registry",
            POD_NAMESPACE="registry",
            GC_ARGS="--grace 0s --settle 0s",
            **env,
        ),
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_kubernetes_script_collects_live_without_touching_the_registry(tmp_path: Path) -> None:
    """No cache: one live run, no restart, no read-only switch; the garbage is gone."""
    store = Store(tmp_path / "store")
    metrics = tmp_path / "registry-gc.prom"
    config = config_file(tmp_path, store.root)
    result, calls = run_k8s_script(tmp_path, config, METRICS_FILE=str(metrics))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        (
            f"registry-gc gc --config {config} -m --live --metrics-file {metrics} "
            "--grace 0s --settle 0s"
        ),
    ]
    assert store.has(store.live)
    assert not store.has(store.dead)
    assert metric(metrics, "registry_gc_run_success") == 1
    assert metric(metrics, "registry_gc_live_verified") == 1


def test_kubernetes_script_restarts_and_purges_with_an_inmemory_cache(tmp_path: Path) -> None:
    """inmemory: the run holds the quarantine; the job restarts the registry, then purges."""
    store = Store(tmp_path / "store")
    config = config_file(tmp_path, store.root, cache="inmemory")
    result, calls = run_k8s_script(
        tmp_path, config, METRICS_FILE="", BLOBDESCRIPTOR_CACHE="inmemory"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        f"registry-gc gc --config {config} -m --live --grace 0s --settle 0s",
        "kubectl -n registry rollout restart deployment/registry",
        "kubectl -n registry rollout status deployment/registry --timeout 10m",
        f"registry-gc quarantine purge --config {config} --older-than 0s -m",
    ]
    assert store.has(store.live)
    assert not store.has(store.dead)
    assert not (store.root / "registry-gc" / "quarantine").exists() or not any(
        p.name == "data" for p in (store.root / "registry-gc" / "quarantine").rglob("data")
    )


def test_kubernetes_script_fails_when_gc_fails(tmp_path: Path) -> None:
    """A failing run fails the job, and nothing is restarted or purged."""
    metrics = tmp_path / "registry-gc.prom"
    result, calls = run_k8s_script(tmp_path, tmp_path / "missing.yml", METRICS_FILE=str(metrics))
    assert result.returncode == 2
    assert metric(metrics, "registry_gc_run_success") == 0
    assert not any(c.startswith("kubectl") for c in calls)


# -- alerts -----------------------------------------------------------------------------------

ALERTS = EXAMPLES / "kubernetes" / "alerts.yaml"

#: A run history for ``promtool test rules``, one sample an hour: the nightly
#: run succeeds on nights 1 and 2, fails from night 3 on, and leaves 2 GB more
#: garbage each night it fails.
ALERT_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      - series: registry_gc_last_success_timestamp_seconds{instance="n1"}
        values: 0x23 86400x23 172800x23 172800x23 172800x23
      - series: registry_gc_run_end_timestamp_seconds{instance="n1"}
        values: 0x23 86400x23 172800x23 259200x23 345600x23
      - series: registry_gc_reclaimable_bytes{instance="n1"}
        values: 0x23 0x23 2e9x23 4e9x23 6e9x23
      - series: registry_gc_live_restore_failures{instance="n1"}
        values: 0x23 0x23 3x23 0x23 0x23
      - series: registry_gc_quarantine_held{instance="n1"}
        values: 1x119
      - series: registry_gc_quarantine_bytes{instance="n1"}
        values: 5e8x23 2e9x95
    alert_rule_test:
      - {eval_time: 47h, alertname: RegistryGCLiveRestoreFailed, exp_alerts: []}
      - eval_time: 50h
        alertname: RegistryGCLiveRestoreFailed
        exp_alerts: [{exp_labels: {severity: warning}}]
      - {eval_time: 73h, alertname: RegistryGCLiveRestoreFailed, exp_alerts: []}
      - {eval_time: 70h, alertname: RegistryGCQuarantineHeld, exp_alerts: []}
      - eval_time: 73h
        alertname: RegistryGCQuarantineHeld
        exp_alerts: [{exp_labels: {severity: info}}]
      - {eval_time: 50h, alertname: RegistryGCLastRunFailed, exp_alerts: []}
      - {eval_time: 50h, alertname: RegistryGCNoSuccessfulRun, exp_alerts: []}
      - {eval_time: 50h, alertname: RegistryGCReclaimableBytesGrowing, exp_alerts: []}
      - eval_time: 73h
        alertname: RegistryGCLastRunFailed
        exp_alerts: [{exp_labels: {severity: info}}]
      - {eval_time: 73h, alertname: RegistryGCNoSuccessfulRun, exp_alerts: []}
      - eval_time: 75h
        alertname: RegistryGCNoSuccessfulRun
        exp_alerts: [{exp_labels: {severity: warning}}]
      - {eval_time: 71h, alertname: RegistryGCReclaimableBytesGrowing, exp_alerts: []}
      - eval_time: 73h
        alertname: RegistryGCReclaimableBytesGrowing
        exp_alerts: [{exp_labels: {severity: info, instance: n1}}]
      - {eval_time: 119h, alertname: RegistryGCMetricsAbsent, exp_alerts: []}
  - interval: 1h
    input_series: []
    alert_rule_test:
      - eval_time: 27h
        alertname: RegistryGCMetricsAbsent
        exp_alerts: [{exp_labels: {severity: warning}}]
"""


def alert_rules() -> dict[str, Any]:
    """The PrometheusRule of alerts.yaml."""
    doc: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return doc


def test_alerts_are_a_prometheus_rule_on_registry_gc_metrics() -> None:
    """alerts.yaml: a PrometheusRule whose alerts use only metrics registry-gc writes."""
    doc = alert_rules()
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    rules = [r for group in doc["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == {
        "RegistryGCNoSuccessfulRun",
        "RegistryGCMetricsAbsent",
        "RegistryGCLastRunFailed",
        "RegistryGCReclaimableBytesGrowing",
        "RegistryGCLiveRestoreFailed",
        "RegistryGCQuarantineHeld",
    }
    written = {
        "registry_gc_last_success_timestamp_seconds",
        "registry_gc_run_end_timestamp_seconds",
        "registry_gc_reclaimable_bytes",
        "registry_gc_live_restore_failures",
        "registry_gc_quarantine_held",
        "registry_gc_quarantine_bytes",
    }
    used = {m for r in rules for m in re.findall(r"registry_gc_[a-z_]+", r["expr"])}
    assert used == written
    assert "26 * 3600" in next(
        r["expr"] for r in rules if r["alert"] == "RegistryGCNoSuccessfulRun"
    )


def test_alerts_fire_on_a_run_history(tmp_path: Path) -> None:
    """promtool: failures alert after 26 h without success, garbage growing for a day alerts."""
    promtool = require_tool("promtool")
    groups = alert_rules()["spec"]["groups"]
    (tmp_path / "full.yml").write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run(
        [promtool, "check", "rules", "full.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The history checks when each alert fires; promtool would compare the annotations too.
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yml").write_text(ALERT_TESTS)
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
