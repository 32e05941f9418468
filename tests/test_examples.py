"""The examples in examples/ run: the library example, the cron job, the Kubernetes CronJob.

Each runs against a builder store with ``registry-gc`` on PATH (a wrapper
around this interpreter); the Kubernetes job's script runs with a fake
``kubectl`` that records what it is asked, in order.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from registry_gc.layout import BlobData, RevisionLink

from tests.rigs.builder import RegistryBuilder

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
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
    """The environment of an example: no REGISTRY_* from the machine, bin_dir first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


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
    assert report["options"] == {
        "delete_untagged": True,
        "grace_seconds": 3600.0,
        "uploads_older_than_seconds": 86400.0,
    }


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
    assert container["command"] == ["/bin/bash", "/scripts/gc-read-only.sh"]
    assert "gc-read-only.sh" in docs["ConfigMap"]["data"]


def test_kubernetes_script_references_the_right_command() -> None:
    """The job's script runs gc with the registry's config and -m, between the switches."""
    script = manifests()["ConfigMap"]["data"]["gc-read-only.sh"]
    gc = 'registry-gc gc --config "${REGISTRY_CONFIG:-/etc/docker/registry/config.yml}" -m'
    read_only = "'REGISTRY_STORAGE_MAINTENANCE_READONLY={\"enabled\":true}'"
    assert gc in script
    assert read_only in script
    assert script.index("trap restore EXIT") < script.index(read_only) < script.index(gc)


def run_k8s_script(
    tmp_path: Path, config: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the ConfigMap's script with a fake kubectl; return the result and the call log."""
    script = tmp_path / "gc-read-only.sh"
    script.write_text(manifests()["ConfigMap"]["data"]["gc-read-only.sh"])
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
            GC_ARGS="--grace 1h",
        ),
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_kubernetes_script_puts_the_registry_read_only_around_the_run(tmp_path: Path) -> None:
    """Read-only on and rolled out, then gc, then read-write and a restart, in that order."""
    store = Store(tmp_path / "store")
    result, calls = run_k8s_script(tmp_path, config_file(tmp_path, store.root))
    assert result.returncode == 0, result.stdout + result.stderr
    ro = 'REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}'
    assert calls == [
        f"kubectl -n registry set env deployment/registry {ro}",
        "kubectl -n registry rollout status deployment/registry --timeout 10m",
        f"registry-gc gc --config {tmp_path / 'config.yml'} -m --grace 1h",
        "kubectl -n registry set env deployment/registry REGISTRY_STORAGE_MAINTENANCE_READONLY-",
        "kubectl -n registry rollout restart deployment/registry",
        "kubectl -n registry rollout status deployment/registry --timeout 10m",
    ]
    assert store.has(store.live)
    assert not store.has(store.dead)


def test_kubernetes_script_restores_the_registry_when_gc_fails(tmp_path: Path) -> None:
    """A failing sweep still puts the registry back in read-write mode; the job fails."""
    result, calls = run_k8s_script(tmp_path, tmp_path / "missing.yml")
    assert result.returncode == 2
    assert calls[-3:] == [
        "kubectl -n registry set env deployment/registry REGISTRY_STORAGE_MAINTENANCE_READONLY-",
        "kubectl -n registry rollout restart deployment/registry",
        "kubectl -n registry rollout status deployment/registry --timeout 10m",
    ]
