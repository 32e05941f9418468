"""Tests of registry_gc._progress: rich bars on a terminal only; plain output elsewhere.

The first tests run the command line in a fresh interpreter, so that what it
imports is its own, with standard error a pipe or a pseudo-terminal; the last
ones drive :func:`~registry_gc._progress.make_progress` in this process.
"""

from __future__ import annotations

import datetime
import io
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from registry_gc import collect
from registry_gc._progress import make_progress
from registry_gc.backends import LocalBackend
from registry_gc.demo import write_demo_registry

from tests.rigs.scene import Scene

ROOT = Path(__file__).resolve().parent.parent

#: Runs the CLI with argv, then prints which lazily imported modules were imported.
SCRIPT = """
import sys
from registry_gc.cli import run
code = run(sys.argv[1:])
print("imported:", *sorted(m for m in ("rich", "prometheus_client") if m in sys.modules))
sys.exit(code)
"""


def python(*args: str, stderr: int, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run this interpreter on ``args`` with this worktree first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}
    return subprocess.run(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=ROOT,  # the worktree, not whatever other copy of the package the cwd holds
        timeout=timeout,
        check=False,
    )


def on_a_terminal(*argv: str) -> tuple[subprocess.CompletedProcess[bytes], str]:
    """Run the CLI with standard error on a pseudo-terminal; return the result and what it drew."""
    controller, terminal = pty.openpty()
    try:
        result = python("-c", SCRIPT, *argv, stderr=terminal)
    finally:
        os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal side is closed and everything was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    return result, drawn.decode("utf-8", "replace")


@pytest.fixture
def demo(tmp_path: Path) -> str:
    """A demo registry."""
    return write_demo_registry(tmp_path / "demo").root


def test_importing_the_cli_imports_neither_rich_nor_prometheus_client() -> None:
    """``import registry_gc.cli`` leaves rich and prometheus_client out: start-up stays fast."""
    code = (
        "import sys, registry_gc.cli; "
        "print(*sorted(m for m in ('rich', 'prometheus_client') if m in sys.modules))"
    )
    result = python("-c", code, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\n"


def test_the_metrics_file_imports_prometheus_client_only(demo: str, tmp_path: Path) -> None:
    """``--metrics-file`` imports prometheus_client; not a terminal, so still no rich."""
    prom = str(tmp_path / "gc.prom")
    result = python("-c", SCRIPT, "gc", demo, "-q", "--metrics-file", prom, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["imported: prometheus_client"]


def test_plain_output_and_no_rich_when_stderr_is_not_a_terminal(demo: str) -> None:
    """Under cron or in a pipe: no bars, nothing on stderr, rich never imported."""
    result = python("-c", SCRIPT, "gc", demo, "-m", "--dry-run", stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = result.stdout.decode()
    assert "\x1b" not in out
    assert "would delete:" in out
    assert out.splitlines()[-1] == "imported:"


def test_bars_on_a_terminal(demo: str) -> None:
    """With stderr on a terminal, rich draws the phases there; stdout stays plain."""
    result, drawn = on_a_terminal("gc", demo, "-m", "--dry-run")
    assert result.returncode == 0, drawn
    assert "Listing objects" in drawn
    assert "Reading manifests" in drawn
    out = result.stdout.decode()
    assert "\x1b" not in out
    assert "would delete:" in out
    assert out.splitlines()[-1] == "imported: rich"


def test_quiet_draws_no_bars_on_a_terminal(demo: str) -> None:
    """``-q`` on a terminal: no bars and no rich import."""
    result, drawn = on_a_terminal("gc", demo, "-m", "--dry-run", "-q")
    assert result.returncode == 0, drawn
    assert drawn == ""
    assert result.stdout.decode().splitlines() == ["imported:"]


# -- the bars, in process --------------------------------------------------------------------


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Always."""
        return True


def test_progress_is_silent_off_a_terminal() -> None:
    """Not a terminal, or quiet: no bars."""
    assert not make_progress(stream=io.StringIO()).active
    assert not make_progress(stream=FakeTTY(), quiet=True).active


def test_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal, listing, reading manifests and deleting show bars."""
    scene = Scene(tmp_path / "store")
    stream = FakeTTY()
    progress = make_progress(stream=stream)
    assert progress.active
    with progress:
        report = collect(
            LocalBackend(scene.root),
            delete_untagged=True,
            grace=datetime.timedelta(0),
            progress=progress.callback(),
        )
    assert report.deleted_count > 0
    text = stream.getvalue()
    for label in ("Listing objects", "Reading manifests", "Deleting blobs"):
        assert label in text


def test_logs_go_through_the_bars_while_they_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log line written while bars are live is printed by rich; the stream is restored after."""
    stream = FakeTTY()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("registry_gc")
    monkeypatch.setattr(logger, "handlers", [handler])
    level = logger.level
    logger.setLevel(logging.WARNING)  # earlier commands in this process set their own
    try:
        with make_progress(stream=stream) as progress:
            assert handler.stream is not stream
            progress.advance("listing", 3)
            logger.warning("a line in the middle")
    finally:
        logger.setLevel(level)
    assert handler.stream is stream
    assert "a line in the middle" in stream.getvalue()
