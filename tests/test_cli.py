"""Tests of the registry-gc command line (registry_gc.cli.run and the console script)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
from typing import TYPE_CHECKING

import pytest
from registry_gc import __version__
from registry_gc.cli import run
from registry_gc.layout import BlobData, RevisionLink

from tests.rigs import planfiles
from tests.rigs.builder import RegistryBuilder
from tests.rigs.procs import untraced_environ

ROOT = pathlib.Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc.layout import Digest


def registry(root: Path) -> tuple[RegistryBuilder, Digest]:
    """A registry with one tagged image and one old untagged image; returns the untagged one."""
    b = RegistryBuilder()
    b.image("app", "latest")
    dead = b.image("app", None)
    b.write_local(root)
    return b, dead


def exists(root: Path, path: str) -> bool:
    """Whether ``path`` (relative to the registry root) exists."""
    return (root / path).exists()


def test_gc_delete_untagged_with_zero_grace_deletes_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gc ROOT -m --grace 0s` deletes the untagged image, prints a summary and exits 0."""
    _, dead = registry(tmp_path)
    assert run(["gc", str(tmp_path), "-m", "--grace", "0s"]) == 0
    assert not exists(tmp_path, BlobData(dead).path)
    assert not exists(tmp_path, RevisionLink("app", dead).path)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "deleted:" in out
    assert "restart" in out  # the blob-descriptor cache notice


def test_gc_without_m_keeps_untagged_revisions(tmp_path: Path) -> None:
    """Without -m every revision is kept."""
    _, dead = registry(tmp_path)
    assert run(["gc", str(tmp_path), "--grace", "0s", "-q"]) == 0
    assert exists(tmp_path, BlobData(dead).path)


def test_dry_run_deletes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run lists what would go, deletes nothing, exits 0."""
    b, _ = registry(tmp_path)
    assert run(["gc", str(tmp_path), "-m", "--grace", "0s", "--dry-run", "-v"]) == 0
    assert all(exists(tmp_path, p) for p in b.files)
    out = capsys.readouterr().out
    assert "dry run" in out
    assert "would delete" in out


def test_json_output_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one JSON summary; the deletions themselves go to --deletions-out."""
    _, dead = registry(tmp_path)
    out = tmp_path / "deletions.jsonl"
    argv = [
        "gc",
        str(tmp_path),
        "-m",
        "-d",
        "--json",
        "--grace",
        "90m",
        "--deletions-out",
        str(out),
    ]
    assert run(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "registry-gc/report/v2"
    assert "deletions" not in doc
    assert doc["dry_run"] is True
    assert doc["ok"] is True
    assert doc["options"]["delete_untagged"] is True
    assert doc["options"]["grace_seconds"] == 5400
    assert doc["options"]["uploads_older_than_seconds"] == 86400
    listed = planfiles.deletions(out)
    assert RevisionLink("app", dead).path in planfiles.paths(listed)  # type: ignore[arg-type]
    assert len(listed) == doc["totals"]["deletions"]
    assert {d["status"] for d in listed} == {"planned"}


def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-q prints nothing on success."""
    registry(tmp_path)
    assert run(["gc", str(tmp_path), "-m", "-q"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


@pytest.mark.parametrize(
    "text", ["", "5x", "1h 30m", "-1s", "h", "1H", "30", "1h30", "s10", "1e3s", "1000000000d"]
)
def test_invalid_duration_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """A bad --grace or --uploads-older-than is a usage error (2) naming the value."""
    registry(tmp_path)
    for option in ("--grace", "--uploads-older-than"):
        assert run(["gc", str(tmp_path), f"{option}={text}"]) == 2
        err = capsys.readouterr().err
        assert "invalid duration" in err
        assert repr(text.strip()) in err
        assert option in err


def test_invalid_storage_option_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o without KEY=VALUE is a usage error."""
    assert run(["gc", str(tmp_path), "-o", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_refusal_exits_3_naming_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tagged manifest that does not parse: exit 3, nothing deleted, digest and repo on stderr."""
    b = RegistryBuilder()
    b.image("app", None)
    bad = b.manifest("broken/repo", b"{not json", tag="t")
    b.write_local(tmp_path)
    assert run(["gc", str(tmp_path), "-m", "--grace", "0s"]) == 3
    assert all(exists(tmp_path, p) for p in b.files)
    err = capsys.readouterr().err
    assert "registry-gc: error: refusing" in err
    assert bad in err
    assert "broken/repo" in err


def test_refusal_with_json_prints_an_error_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json a refusal still prints parseable JSON with ok=false and the problems."""
    b = RegistryBuilder()
    bad = b.manifest("app", b"[", tag="t")
    b.write_local(tmp_path)
    assert run(["gc", str(tmp_path), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert any(bad in p for p in doc["problems"])


def test_missing_root_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A root that does not exist (or holds no registry) is refused: exit 3."""
    assert run(["gc", str(tmp_path / "nope")]) == 3
    assert "no registry found" in capsys.readouterr().err
    assert run(["gc", str(tmp_path), "--allow-empty", "-q"]) == 0


def test_blobs_without_manifests_need_allow_no_manifests(tmp_path: Path) -> None:
    """Blobs but no manifest: exit 3; --allow-no-manifests sweeps them."""
    b = RegistryBuilder()
    d = b.blob(b"orphan")
    b.write_local(tmp_path)
    assert run(["gc", str(tmp_path), "--grace", "0s", "-q"]) == 3
    assert exists(tmp_path, BlobData(d).path)
    assert run(["gc", str(tmp_path), "--grace", "0s", "-q", "--allow-no-manifests"]) == 0
    assert not exists(tmp_path, BlobData(d).path)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version and exits 0."""
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"registry-gc {__version__}"


def test_a_local_run_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    """A gc of a local disk imports no object-store backend, no Dask, no metadata, no SQLite.

    Each is tens of milliseconds of every run's start; ``registry_gc.__version__``
    and ``registry_gc.backends.S3Backend`` still resolve when asked for.
    """
    registry(tmp_path)
    script = (
        "import sys\n"
        "from registry_gc.cli import run\n"
        f"code = run(['gc', {str(tmp_path)!r}, '-q', '--dry-run'])\n"
        "unwanted = ('importlib.metadata', 'registry_gc.backends._s3', 'registry_gc.backends._gcs',"
        " 'registry_gc.backends._azure', 'registry_gc.distributed', 'botocore', 'gcsfs',"
        " 'sqlite3')\n"
        "print(code, sorted(m for m in unwanted if m in sys.modules))\n"
        "import registry_gc, registry_gc.backends\n"
        "print(registry_gc.__version__ == __import__('importlib.metadata').metadata"
        ".version('registry-gc'), registry_gc.backends.S3Backend.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=untraced_environ(),  # coverage itself imports sqlite3 (its data file)
    ).stdout.splitlines()
    assert out == ["0 []", "True S3Backend"]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the usage is printed and the exit code is 2."""
    assert run([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_console_script(tmp_path: Path) -> None:
    """The installed registry-gc script runs gc and exits with its code."""
    script = os.path.join(sysconfig.get_path("scripts"), "registry-gc")
    assert os.path.exists(script), "registry-gc is installed (pip install -e .)"
    _, dead = registry(tmp_path)
    # This worktree's package, whichever copy the installed script's environment points at.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [script, "gc", str(tmp_path), "-m", "--grace", "0s", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert not exists(tmp_path, BlobData(dead).path)
    proc = subprocess.run(
        [script, "gc", str(tmp_path / "nope")], capture_output=True, text=True, check=False, env=env
    )
    assert proc.returncode == 3
    assert "no registry found" in proc.stderr
