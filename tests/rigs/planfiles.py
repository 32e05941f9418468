"""Plan files as the suites read them: the JSON lines of ``--plan-out`` and ``--deletions-out``.

Read as plain JSON, independently of :mod:`registry_gc.planfile`, so that the
suites check the format itself. :func:`read` returns the header, the deletion
lines and the footer (and fails the test when the footer is missing or wrong);
:func:`deletions` only the deletion lines; :func:`paths` every path they list.
:func:`out_file` names a fresh file in a temporary directory, for helpers that
have no ``tmp_path``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]], dict]:
    """Header, deletion lines and footer of the plan file at ``path``."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    header, *entries, footer = lines
    assert header["schema"] == "registry-gc/plan/v1", header
    assert footer.get("end") is True, f"{path} has no footer: {footer}"
    assert footer["deletions"] == len(entries), footer
    assert footer["bytes"] == sum(e["size"] for e in entries), footer
    return header, entries, footer


def deletions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The deletion lines of the plan file at ``path``."""
    return read(path)[1]


def paths(entries: Iterable[dict[str, Any]]) -> set[str]:
    """Every storage path the deletion lines list."""
    return {p for e in entries for p, _, _ in e["paths"]}


def out_file(name: str = "deletions.jsonl") -> Path:
    """A path in a new temporary directory (removed with the rest of the system's temp)."""
    return Path(tempfile.mkdtemp(prefix="rgc-plan-")) / name
