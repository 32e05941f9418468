"""The command line of live mode: ``gc --live`` and ``quarantine ls | restore | purge``."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from registry_gc import QUARANTINE_PREFIX
from registry_gc import config as config_module
from registry_gc.cli import run

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default configuration file, no REGISTRY_* variable from the machine."""
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run the command line; (exit code, stdout, stderr)."""
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict[str, Any]]:
    """Run the command line with --json; (exit code, parsed stdout)."""
    code, out, err = cli(capsys, *args, "--json")
    try:
        return code, json.loads(out)
    except ValueError:
        pytest.fail(f"not JSON (exit {code}): {out!r}\nstderr: {err}")


def files(root: Path) -> set[str]:
    """Every file under ``root``, relative."""
    return {os.path.relpath(os.path.join(dp, f), root) for dp, _, fs in os.walk(root) for f in fs}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``app:latest`` pushed twice: the first image is untagged garbage."""
    b = RegistryBuilder(7)
    base = b.layer("app")
    b.image("app", "latest", shared=[base])
    b.image("app", "latest", shared=[base])
    out = tmp_path / "registry"
    b.write_local(out)
    return out


def config(tmp_path: Path, root: Path, cache: str | None) -> Path:
    """A registry config.yml over ``root`` with the given blob-descriptor cache."""
    storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(root)}}
    if cache is not None:
        storage["cache"] = {"blobdescriptor": cache}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": 0.1, "storage": storage}))
    return path


def test_gc_live_moves_then_purges_with_no_cache(
    capsys: pytest.CaptureFixture[str], root: Path, tmp_path: Path
) -> None:
    """No cache: moved, verified and purged in one run; every tag still checks."""
    cfg = config(tmp_path, root, None)
    code, data = cli_json(
        capsys, "gc", "--config", cfg, "-m", "--grace", "0s", "--live", "--settle", "0s"
    )
    assert code == 0
    live = data["live"]
    assert live["cache"] == "none"
    assert live["moved_blobs"] > 0
    assert live["verified"]
    assert live["purged_blobs"] == live["moved_blobs"]
    assert not any(p.startswith(QUARANTINE_PREFIX) for p in files(root))
    code, out, _ = cli(capsys, "fsck", root)
    assert code == 0, out


def test_gc_live_holds_the_quarantine_with_an_inmemory_cache(
    capsys: pytest.CaptureFixture[str], root: Path, tmp_path: Path
) -> None:
    """inmemory: held, shown by ls and du, purged by the operator (dry run first)."""
    cfg = config(tmp_path, root, "inmemory")
    code, out, err = cli(
        capsys, "gc", "--config", cfg, "-m", "--grace", "0s", "--live", "--settle", "0s"
    )
    assert code == 0
    assert "held" in out
    assert "quarantine purge" in out
    assert "inmemory" in err  # the cache's notice
    held = {p for p in files(root) if p.startswith(QUARANTINE_PREFIX)}
    assert any(p.endswith("/data") for p in held)
    code, data = cli_json(capsys, "quarantine", "ls", root)
    assert code == 0
    assert len(data["runs"]) == 1
    assert data["blobs"] == sum(1 for p in held if p.endswith("/data"))
    assert data["runs"][0]["verified_at"] is not None
    code, data = cli_json(capsys, "du", root)
    assert data["quarantine"]["blobs"] == len([p for p in held if p.endswith("/data")])
    # after a restart of the registry, the operator purges
    code, data = cli_json(capsys, "quarantine", "purge", root, "--older-than", "0s", "--dry-run")
    assert code == 0
    assert data["dry_run"]
    assert data["purged_blobs"] > 0
    assert {p for p in files(root) if p.startswith(QUARANTINE_PREFIX)} == held
    code, data = cli_json(capsys, "quarantine", "purge", root, "--older-than", "0s")
    assert code == 0
    assert data["purged_blobs"] > 0
    assert not any(p.endswith("/data") for p in files(root) if p.startswith(QUARANTINE_PREFIX))


def test_gc_live_without_knowing_the_cache_warns_and_holds(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    """Unknown cache: held; a later run that knows there is none purges."""
    code, data = cli_json(capsys, "gc", root, "-m", "--grace", "0s", "--live", "--settle", "0s")
    assert code == 0
    assert data["live"]["cache"] == "unknown"
    assert data["live"]["held"]
    code, data = cli_json(
        capsys, "gc", root, "-m", "--grace", "0s", "--live", "--settle", "0s", "--cache", "none"
    )
    assert code == 0
    assert data["live"]["held"] is None
    assert data["live"]["purged_blobs"] > 0  # the first run's quarantine, verified by both


def test_restore_command(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    """Restore puts a digest back; an unknown digest or a non-digest is refused."""
    before = files(root)
    cli(capsys, "gc", root, "-m", "--grace", "0s", "--live", "--settle", "0s")
    moved = sorted(
        p.split("/", 3)[3]
        for p in files(root)
        if p.endswith("/data") and p.startswith(QUARANTINE_PREFIX)
    )
    assert moved
    digest = "sha256:" + moved[0].split("/")[-2]
    code, data = cli_json(capsys, "quarantine", "restore", root, digest)
    assert code == 0
    assert data["restored"] == [digest]
    assert moved[0] in files(root)
    assert moved[0] in before
    code, _, err = cli(capsys, "quarantine", "restore", root, "sha256:" + "1" * 64)
    assert code != 0
    assert "not in the quarantine" in err
    code, _out, err = cli(capsys, "quarantine", "restore", root, "latest")
    assert code == 2
    assert "not a digest" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--settle", "1s"], "--settle only mean something with --live"),
        (["--cache", "none"], "--cache only mean something with --live"),
        (
            ["--live", "--cache", "none", "--redis-url", "redis://127.0.0.1:1/0"],
            "--redis-url names a redis cache",
        ),
        (["--live", "--cache", "redis"], "--cache redis needs --redis-url"),
    ],
)
def test_contradicting_flags_are_refused_before_anything_happens(
    capsys: pytest.CaptureFixture[str], root: Path, flags: list[str], message: str
) -> None:
    """Flags that mean nothing, or contradict each other, are usage errors."""
    before = files(root)
    code, _, err = cli(capsys, "gc", root, "-m", "--grace", "0s", *flags)
    assert code == 2
    assert message in err
    assert files(root) == before
