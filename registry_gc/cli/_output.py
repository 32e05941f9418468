"""What the command line prints: logs, results, errors, and the library's words as flags."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

__all__ = ["as_flags", "emit", "fail", "setup_logging"]

#: The library names an option by its keyword; a user of the command line knows its flag.
_FLAGS = {
    "allow_no_manifests": "--allow-no-manifests",
    "allow_empty": "--allow-empty",
    "prune_damaged": "--prune-damaged",
    "delete_untagged": "--delete-untagged",
    "collect=False": "rm --no-gc",
    "max_age": "--max-age",
}
_OPTION_WORDS = re.compile(r"\b(" + "|".join(re.escape(k) for k in _FLAGS) + r")(?![\w=])")


def as_flags(text: str) -> str:
    """``text`` with the library's option names replaced by the command-line flags."""
    return _OPTION_WORDS.sub(lambda m: _FLAGS[m.group(1)], text)


def setup_logging(args: argparse.Namespace) -> None:
    """Logs on standard error, at the level ``-v``, ``-q`` or ``--log-level`` ask for."""
    if args.log_level:
        level = getattr(logging, args.log_level.upper())
    elif args.quiet:
        level = logging.ERROR
    elif args.verbose >= 2:
        level = logging.DEBUG
    elif args.verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("registry-gc: %(levelname)s: %(message)s"))
    root = logging.getLogger("registry_gc")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def emit(
    args: argparse.Namespace,
    data: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    text: Callable[[], str],
) -> None:
    """The result on standard output: JSON with ``--json``, else text (nothing with ``-q``).

    ``data`` may be a callable, called only for JSON.
    """
    if args.json:
        json.dump(data() if callable(data) else data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        # Names read from storage may not be UTF-8 (surrogates): escape what stdout cannot encode.
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        print(as_flags(text()).encode(encoding, "backslashreplace").decode(encoding))  # noqa: T201


def fail(
    code: int,
    message: str,
    args: argparse.Namespace | None,
    problems: list[str],
    redact: Callable[[str], str] | None = None,
) -> int:
    """Report an error (JSON too with ``--json``) and return ``code``."""
    message = as_flags(message)
    problems = [as_flags(p) for p in problems]
    if redact is not None:
        message = redact(message)
        problems = [redact(p) for p in problems]
    if args is not None and getattr(args, "json", False):
        json.dump({"ok": False, "error": message, "problems": problems}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"registry-gc: error: {message}", file=sys.stderr)  # noqa: T201
    for p in problems:
        if p != message:
            print(f"  - {p}", file=sys.stderr)  # noqa: T201
    return code
