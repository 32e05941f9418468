"""The benchmarks' floor of registry-gc's listing (``benchmarks/walk_child.py``).

The floor is what the dry run is measured against; a floor that listed nothing (a
wrong root ends its listings with ``done`` all the same) would make any run look slow
and the comparison meaningless, so it must fail instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import synth

WALK_CHILD = Path(__file__).resolve().parent.parent / "benchmarks" / "walk_child.py"


def _run(*args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, str(WALK_CHILD), *args], capture_output=True, text=True, check=False
    )
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("names_only", [False, True])
def test_the_floor_lists_both_trees_of_a_store(tmp_path: Path, names_only: bool) -> None:
    """Both listings end with ``done`` after chunks of the store; names alone list as much."""
    synth.write_local(synth.Spec.for_blobs(300, seed=1), str(tmp_path))
    code, out = _run(str(tmp_path), *(["--names-only"] if names_only else []))
    assert code == 0
    assert out["ok"] is True
    assert out["names_only"] is names_only
    listings = out["listings"]
    assert isinstance(listings, list)
    assert [Path(str(o["top"])).name for o in listings] == ["blobs", "repositories"]
    assert all(o["last"] == "done" and o["frames"] > 1 and o["bytes"] > 1000 for o in listings)


def test_a_root_without_a_store_fails_the_floor(tmp_path: Path) -> None:
    """Nothing listed is a failed floor (exit 1), not a fast one."""
    code, out = _run(str(tmp_path))
    assert code == 1
    assert out["ok"] is False
