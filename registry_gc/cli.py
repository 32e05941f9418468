"""The ``registry-gc`` command line: a thin layer over the library.

Exit codes:

- 0 — success (and, for a dry run, nothing went wrong while planning)
- 1 — some deletions failed (the report lists them); later phases were skipped
- 2 — bad usage or bad input (an option, a name, a config file)
- 3 — refused: the collector found something that makes a sweep unsafe; nothing was deleted
- 4 — the storage failed (listing or reading)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from ._errors import RefusedError, RegistryGCError, StorageError
from .collector import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN, collect

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main", "parse_duration"]

log = logging.getLogger("registry_gc")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_STORAGE = 4

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse ``0``, ``0s``, ``90m``, ``24h``, ``7d``, ``1h30m`` (Go-style, plus ``d`` and ``w``).

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    text = text.strip()
    if text == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        msg = f"invalid duration {text!r}: use a number with a unit, such as 0s, 90m, 24h, 7d or 1h30m"
        raise argparse.ArgumentTypeError(msg)
    return timedelta(seconds=total)


def _storage_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"invalid storage option {text!r}: use KEY=VALUE (VALUE may be JSON)"
        raise argparse.ArgumentTypeError(msg)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "root",
        metavar="ROOT",
        help="the registry's rootdirectory (the directory holding docker/registry/v2) "
        "or an fsspec URL such as s3://bucket/prefix",
    )
    p.add_argument(
        "-o",
        "--storage-option",
        dest="storage_options",
        action="append",
        type=_storage_option,
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec storage option (repeatable), e.g. -o endpoint_url=http://127.0.0.1:9000",
    )
    p.add_argument(
        "--endpoint-url",
        help="S3-compatible endpoint (shorthand for -o endpoint_url=URL)",
    )


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail (repeat for debug logs)"
    )
    p.add_argument(
        "-l",
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level on stderr (default: warning; info with -v, debug with -vv)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (public for the docs)."""
    parser = argparse.ArgumentParser(
        prog="registry-gc",
        description="Reclaim storage from Docker/OCI registries built on CNCF distribution.",
        epilog="Exit codes: 0 ok, 1 deletions failed, 2 bad usage or input, 3 refused (nothing "
        "deleted), 4 storage error.",
    )
    parser.add_argument("--version", action="version", version=f"registry-gc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gc = sub.add_parser(
        "gc",
        help="mark and sweep: delete what no tag (or, without -m, no revision) needs",
        description="Garbage-collect the registry's storage directly. Nothing younger than "
        "the grace period is deleted; a live manifest that cannot be parsed stops the run "
        "before anything is deleted.",
    )
    _add_root(gc)
    gc.add_argument(
        "-m",
        "--delete-untagged",
        action="store_true",
        help="also delete manifests no tag reaches (children of live indexes and referrers "
        "of live images are kept)",
    )
    gc.add_argument(
        "-d", "--dry-run", action="store_true", help="delete nothing; report what a real run would"
    )
    gc.add_argument(
        "--grace",
        type=parse_duration,
        default=DEFAULT_GRACE,
        metavar="DURATION",
        help="keep anything modified more recently than this (default 1h)",
    )
    gc.add_argument(
        "--uploads-older-than",
        type=parse_duration,
        default=DEFAULT_UPLOADS_OLDER_THAN,
        metavar="DURATION",
        help="remove unfinished uploads started longer ago than this (default 24h)",
    )
    gc.add_argument(
        "--allow-no-manifests",
        action="store_true",
        help="sweep even when blobs exist but no manifest at all (normally refused)",
    )
    gc.add_argument(
        "--allow-empty",
        action="store_true",
        help="do not fail when ROOT holds no registry data",
    )
    _add_output(gc)
    gc.set_defaults(func=_cmd_gc)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
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


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = dict(args.storage_options)
    if args.endpoint_url:
        opts["endpoint_url"] = args.endpoint_url
    return opts


def _cmd_gc(args: argparse.Namespace) -> int:
    report = collect(
        args.root,
        storage_options=_options(args),
        delete_untagged=args.delete_untagged,
        dry_run=args.dry_run,
        grace=args.grace,
        uploads_older_than=args.uploads_older_than,
        allow_no_manifests=args.allow_no_manifests,
        allow_empty=args.allow_empty,
    )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(report.render(verbose=args.verbose > 0))  # noqa: T201
    return report.exit_code


def _fail(code: int, message: str, args: argparse.Namespace | None, problems: list[str]) -> int:
    if args is not None and getattr(args, "json", False):
        json.dump({"ok": False, "error": message, "problems": problems}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"registry-gc: error: {message}", file=sys.stderr)  # noqa: T201
    for p in problems:
        if p != message:
            print(f"  - {p}", file=sys.stderr)  # noqa: T201
    return code


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


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (for tests and embedding)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    try:
        code: int = args.func(args)
    except RefusedError as e:
        return _fail(EXIT_REFUSED, str(e), args, e.problems)
    except StorageError as e:
        return _fail(EXIT_STORAGE, str(e), args, [])
    except BrokenPipeError:
        raise
    except OSError as e:
        return _fail(EXIT_STORAGE, f"storage error: {e}", args, [])
    except (RegistryGCError, ValueError) as e:
        return _fail(EXIT_USAGE, str(e), args, [])
    except KeyboardInterrupt:
        return _fail(130, "interrupted; run again to finish (a re-run converges)", args, [])
    return code
