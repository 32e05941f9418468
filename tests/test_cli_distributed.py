"""Tests of ``gc --scheduler / --workers / --inventory`` (registry_gc.cli._cluster).

A distributed run on the command line does what one process does, and refuses — before a
cluster starts or anything is read, exit 2, nothing deleted — what it cannot do safely:
live mode, plan files, retention policies.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import config as config_module
from registry_gc.cli import run

from tests.rigs import dask as rigs
from tests.rigs.scenarios import mixed_registry

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default configuration file, no REGISTRY_* variable from the machine."""
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line; (exit code, stdout, stderr)."""
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _two(tmp_path: Path) -> tuple[str, str]:
    b = mixed_registry()
    one, two = tmp_path / "one", tmp_path / "two"
    now = 1.7e9
    b.write_local(one, now=now)
    b.write_local(two, now=now)
    return str(one), str(two)


def test_gc_on_a_scheduler_leaves_what_gc_in_one_process_leaves(
    dask_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gc --scheduler ADDRESS run: the same JSON totals, the same files left, exit 0."""
    one, two = _two(tmp_path)
    code, out, err = cli(capsys, "gc", one, "-m", "--grace", "0", "--json")
    assert code == 0, err
    single = json.loads(out)
    address = dask_client.scheduler.address
    code, out, err = cli(
        capsys,
        "gc",
        two,
        "-m",
        "--grace",
        "0",
        "--json",
        "--scheduler",
        address,
        "--partitions",
        "3",
    )
    assert code == 0, err
    dist = json.loads(out)
    assert dist["totals"] == single["totals"]
    assert dist["totals"]["deletions"] > 0
    assert rigs.tree(two) == rigs.tree(one)


def test_gc_with_local_workers_plans_what_one_process_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gc --workers 2 --dry-run run starts its own cluster of two processes: the same plan."""
    one, _ = _two(tmp_path)
    code, out, err = cli(capsys, "gc", one, "-m", "--grace", "0", "--json", "--dry-run")
    assert code == 0, err
    single = json.loads(out)
    code, out, err = cli(
        capsys, "gc", one, "-m", "--grace", "0", "--json", "--dry-run", "--workers", "2"
    )
    assert code == 0, err
    assert json.loads(out)["totals"] == single["totals"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--live"], "--live"),
        (["--plan-out", "{tmp}/plan.jsonl"], "--plan-out"),
        (["--deletions-out", "{tmp}/deletions.jsonl"], "--deletions-out"),
        (["--keep-last", "1"], "a retention policy"),
        (["--names-only"], "--names-only"),
    ],
)
@pytest.mark.parametrize("where", [["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:9"]])
def test_what_a_distributed_run_cannot_do_is_refused_before_it_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    named: str,
    where: list[str],
) -> None:
    """--live, plan files, a policy or --names-only with --workers/--scheduler: exit 2, no cluster.

    The scheduler address is a closed port: reaching it would fail differently.
    """
    one, _ = _two(tmp_path)
    before = rigs.tree(one)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, out, err = cli(capsys, "gc", one, "-m", "--grace", "0", *where, *args)
    assert code == 2, (out, err)
    assert f"{where[0]} cannot be combined with {named}" in err
    assert "nothing was read or deleted" in err
    assert rigs.tree(one) == before
    assert not (tmp_path / "plan.jsonl").exists()
    assert not (tmp_path / "deletions.jsonl").exists()


def test_cluster_options_without_a_cluster_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--partitions or --inventory-max-age alone mean nothing: exit 2, named."""
    one, _ = _two(tmp_path)
    code, _, err = cli(capsys, "gc", one, "--partitions", "4")
    assert code == 2
    assert "--partitions only means something with --scheduler" in err
    code, _, err = cli(capsys, "gc", one, "--inventory-max-age", "7d")
    assert code == 2
    assert "--inventory-max-age only means something" in err


def test_a_failed_task_exits_4_and_names_it(
    dask_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task raising on a worker while marking: exit 4 (as a storage failure), nothing deleted."""
    one, _ = _two(tmp_path)
    before = rigs.tree(one)
    fault = rigs.StageFault("mark")
    dask_client.register_plugin(fault, name=fault.name)
    try:
        code, _, err = cli(
            capsys, "gc", one, "-m", "--grace", "0", "--scheduler", dask_client.scheduler.address
        )
    finally:
        dask_client.unregister_worker_plugin(fault.name)
    assert code == 4
    assert "injected fault in mark" in err
    assert "nothing was deleted" in err
    assert rigs.tree(one) == before
