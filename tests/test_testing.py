"""registry_gc.testing: the shared suite runs on a third-party backend, skipping what it lacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from registry_gc.backends import CAPABILITIES, ENTRY_POINT_GROUP, open_backend
from registry_gc.testing import BackendSuite, Writer

from tests.rigs.dictstore import DictBackend

REPO = Path(__file__).resolve().parent.parent


class TestDictBackend(BackendSuite):
    """A dict-backed backend with the core protocol only passes the core suite."""

    capabilities = ()

    @pytest.fixture
    def backend(self) -> DictBackend:
        """A fresh, empty dict store."""
        return DictBackend("suite")

    @pytest.fixture
    def writer(self, backend: DictBackend) -> Writer:
        """Writes straight into the dict."""
        return backend.put


def test_importing_registry_gc_does_not_import_pytest() -> None:
    """Pytest is needed only by registry_gc.testing, which `import registry_gc` never loads."""
    code = (
        "import sys, registry_gc, registry_gc.backends, registry_gc.cli; "
        "print('pytest' in sys.modules, 'registry_gc.testing' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "False"]


#: The test module of a plugin package, as the documentation shows it.
PLUGIN_TESTS = """
import pytest
from registry_gc.backends import open_backend
from registry_gc.testing import BackendSuite


class TestDictBackend(BackendSuite):
    @pytest.fixture
    def backend(self):
        return open_backend("dict://plugin-suite")  # through the entry point

    @pytest.fixture
    def writer(self, backend):
        return backend.put
"""


def test_a_plugin_backend_runs_the_suite_through_its_entry_point(tmp_path: Path) -> None:
    """A backend registered by entry point passes the core; each capability's tests skip."""
    info = tmp_path / "site" / "dictstore_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dictstore-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndict = tests.rigs.dictstore:open_dict\n"
    )
    (tmp_path / "test_plugin.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", "-o",
         "addopts=", "test_plugin.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    skipped = int(re.search(r"(\d+) skipped", summary).group(1))  # type: ignore[union-attr]
    assert "failed" not in summary
    assert passed >= 20  # the core tests (28 today)
    # Every capability-specific test skipped, the missing capability named as the reason.
    reasons = re.findall(r"SKIPPED \[(\d+)\] .*: DictBackend does not implement (\w+)", out.stdout)
    assert {name for _, name in reasons} == {c.__name__ for c in CAPABILITIES}
    assert sum(int(n) for n, _ in reasons) + _no_capability_skips(out.stdout) == skipped


def _no_capability_skips(output: str) -> int:
    """Tests skipped for no capability taking paths at all, or no declared capabilities."""
    found = re.findall(
        r"SKIPPED \[(\d+)\] .*: (?:DictBackend has no capability that takes paths"
        r"|\w+ declares no capabilities)",
        output,
    )
    return sum(int(n) for n in found)


def test_the_plugin_backend_opens_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_backend finds the dict:// entry point of an installed distribution."""
    info = tmp_path / "dictstore_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dictstore-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndict = tests.rigs.dictstore:open_dict\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = open_backend("dict://named")
    assert isinstance(backend, DictBackend)
    assert backend.url == "dict://named"
