"""The ``registry-gc`` command line: a thin layer over the library.

Commands: ``gc`` (mark and sweep), ``rm`` (remove repositories, tags or
manifests, then collect), ``apply`` (execute a reviewed plan file, re-checked
against the store), ``ls`` (repositories, tags, digests, platforms,
sizes), ``du`` (total, live, reclaimable, shared and unique bytes),
``fsck`` (is every tag pullable from storage) and ``demo`` (write a small
registry to try the others on). Each but ``demo`` takes the storage as
``ROOT`` (a directory or a URL) or as the registry's own ``config.yml``
(``--config``, or the file the registry image reads by default).

Exit codes:

- 0 — success (and, for a dry run, nothing went wrong while planning); ``fsck``: no problem
- 1 — ``gc``/``rm``/``apply``: some deletions failed (the report lists them), later phases
  were skipped; ``fsck``: problems found (each is listed)
- 2 — bad usage or bad input: an option, a name, a name not in the store, a config file,
  ``demo``: a DIR that is not empty
- 3 — refused: the collector found something that makes a sweep unsafe, or ROOT holds no
  registry, or ``apply``'s plan file is cut short, too old, for another root or edited
  outside the registry's tree; nothing was deleted
- 4 — the storage failed (listing or reading)
- 130 — interrupted; a re-run converges
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from .._errors import RefusedError, RegistryGCError, StorageError
from ..durations import parse_duration
from ._output import fail, setup_logging
from ._parser import build_parser
from ._target import Target

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_STORAGE",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "parse_duration",
    "run",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``registry-gc`` console script."""
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # stdout was closed early (``| head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; names after options (``ls ROOT -a REPO``) still count as operands."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        if hasattr(args, "operands") and not any(e.startswith("-") for e in extras):
            args.operands = [*args.operands, *extras]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _exit_code(error: RegistryGCError) -> int:
    if isinstance(error, RefusedError):
        return EXIT_REFUSED
    if isinstance(error, StorageError):
        return EXIT_STORAGE
    return EXIT_USAGE  # a name, an option, a file: what the user gave is wrong


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (for tests and embedding)."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has printed
        return EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    setup_logging(args)

    def redact(text: str) -> str:
        found = getattr(args, "target", None)
        return found.redact(text) if isinstance(found, Target) else text

    try:
        code: int = args.func(args)
    except RegistryGCError as e:
        problems = e.problems if isinstance(e, RefusedError) else []
        return fail(_exit_code(e), str(e), args, problems, redact)
    except argparse.ArgumentTypeError as e:
        return fail(EXIT_USAGE, str(e), args, [], redact)
    except BrokenPipeError:
        raise
    except OSError as e:  # the storage's own error, not wrapped by a backend
        return fail(EXIT_STORAGE, f"storage error: {e}", args, [], redact)
    except KeyboardInterrupt:
        message = "interrupted; run again to finish (a re-run converges)"
        return fail(EXIT_INTERRUPTED, message, args, [], redact)
    return code
