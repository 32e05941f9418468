"""The argument parser: every command, its options and their help."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._errors import ConfigError
from ..applying import DEFAULT_MAX_AGE
from ..durations import parse_duration
from ..options import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN
from . import _commands as commands
from ._policy import add_policy_arguments
from ._target import storage_option

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta
    from typing import Any

__all__ = ["EXIT_CODES_HELP", "build_parser"]

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 deletions failed (gc, rm, apply) or problems found (fsck); 2 bad usage or "
    "input; 3 refused (nothing deleted); 4 storage error; 130 interrupted."
)


def _duration_arg(text: str) -> timedelta:
    """:func:`~registry_gc.parse_duration` for argparse: a bad value is a usage error."""
    try:
        return parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_storage(
    p: argparse.ArgumentParser, *, root: bool = True, allow_empty: bool = True
) -> None:
    if root:
        p.add_argument(
            "root",
            metavar="ROOT",
            nargs="?",
            help="the registry's rootdirectory (the directory holding docker/registry/v2) or an "
            "fsspec URL such as s3://bucket/prefix; optional with --config, or when the "
            "registry's default configuration file exists",
        )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="the registry's config.yml: its storage section, with the REGISTRY_STORAGE_* "
        "environment overrides, says where the storage is (instead of ROOT)",
    )
    p.add_argument(
        "-o",
        "--storage-option",
        dest="storage_options",
        action="append",
        type=storage_option,
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec storage option (repeatable), e.g. -o endpoint_url=http://127.0.0.1:9000",
    )
    p.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint (shorthand for -o endpoint_url=URL)",
    )
    if allow_empty:
        p.add_argument(
            "--allow-empty",
            action="store_true",
            help="do not fail when ROOT holds no registry data",
        )


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
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


def _add_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write the run's figures to PATH in the Prometheus text format, for "
        "node_exporter's textfile collector (atomically; also when the run fails)",
    )


def _add_plan_files(p: argparse.ArgumentParser, *, plan_out: bool = True) -> None:
    if plan_out:
        p.add_argument(
            "--plan-out",
            metavar="FILE",
            help="write the plan to FILE (JSON Lines) before deleting anything; with --dry-run, "
            "a plan to review and run later with `registry-gc apply FILE`",
        )
    p.add_argument(
        "--deletions-out",
        metavar="FILE",
        help="after the run, write every deletion with what became of it to FILE (JSON Lines, "
        "the plan file format with a status per line)",
    )


def _add_collect(p: argparse.ArgumentParser, *, dry_run: bool = True, verb: str = "delete") -> None:
    """The options that decide what is garbage (``gc``, ``rm``, ``du``)."""
    p.add_argument(
        "-m",
        "--delete-untagged",
        action="store_true",
        help=f"also {verb} manifests no tag reaches (children of live indexes and referrers "
        "of live images are kept)",
    )
    if dry_run:
        p.add_argument(
            "-d",
            "--dry-run",
            action="store_true",
            help="delete nothing; report what a real run would",
        )
    p.add_argument(
        "--grace",
        type=_duration_arg,
        default=DEFAULT_GRACE,
        metavar="DURATION",
        help=f"never {verb} anything modified more recently than this (default 1h)",
    )
    p.add_argument(
        "--prune-damaged",
        action="store_true",
        help=f"also {verb} in repositories that cannot be fully read (a missing or undecodable "
        "manifest, an unknown kind), as if what cannot be read were absent; by default they "
        "are kept whole and reported",
    )
    p.add_argument(
        "--uploads-older-than",
        type=_duration_arg,
        default=DEFAULT_UPLOADS_OLDER_THAN,
        metavar="DURATION",
        help=f"{verb} unfinished uploads started longer ago than this (default 24h)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number of at least 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_distributed(p: argparse.ArgumentParser) -> None:
    """Running on a Dask cluster, and S3 Inventory as the listing of blobs."""
    group = p.add_argument_group(
        "distributed runs (docs: distributed.md; pip install 'registry-gc[distributed]')"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster of this scheduler (tcp://host:8786): workers open the "
        "storage with the credentials of their own environment; none is sent to them",
    )
    where.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="run on a Dask cluster of N worker processes on this machine",
    )
    group.add_argument(
        "--partitions",
        type=_positive,
        metavar="N",
        help="split the run into N repository partitions and N blob shards (at most 256; "
        "default: twice the workers)",
    )
    group.add_argument(
        "--inventory",
        metavar="URL",
        help="take the blobs from this S3 Inventory report (its manifest.json, CSV or Parquet) "
        "instead of listing them; every blob to delete is checked against the store first",
    )
    group.add_argument(
        "--inventory-max-age",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="refuse an S3 Inventory report older than this (default 3d)",
    )


def _add_live(p: argparse.ArgumentParser) -> None:
    """Live mode: collecting while the registry serves pushes."""
    p.add_argument(
        "--live",
        action="store_true",
        help="collect while the registry keeps serving pushes: move garbage blobs into a "
        "quarantine beside docker/registry/v2 instead of deleting them, look at the store "
        "again after --settle, and put back whatever a racing push needs (docs: live.md)",
    )
    p.add_argument(
        "--settle",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="with --live: how long to wait after removing before verifying; longer than any "
        "single request to the registry takes (default 10s)",
    )
    p.add_argument(
        "--cache",
        choices=["none", "redis", "inmemory"],
        help="with --live: the registry's blob-descriptor cache (storage.cache.blobdescriptor), "
        "when no --config says it. Unknown, the quarantine is kept as for inmemory",
    )
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help="with --live: the registry's redis cache, as this machine reaches it "
        "(redis://[:password@]host:port/db, rediss://…); default: the configuration's redis",
    )


def _add_gc_only(gc: argparse.ArgumentParser) -> None:
    """The options of ``gc`` alone: how it lists, and what it sweeps."""
    gc.add_argument(
        "--names-only",
        action="store_true",
        help="list names alone, without a stat of each file, and look at sizes and times only "
        "of the manifests read and of what the plan deletes or keeps (a local disk): a nightly "
        "run costs what changed; the plan is the full run's. Not with --policy or --live "
        "(unless --dry-run); the store's byte totals are not measured",
    )
    gc.add_argument(
        "--manifest-cache",
        metavar="FILE",
        help="keep the manifests (and, on S3 and GCS, the tag links) this run reads in FILE "
        "(SQLite, made if missing) and read from the storage only those it does not hold: a "
        "nightly run on an object store then costs its listing and what changed. Each body is "
        "hashed before use; a run that reads the whole store forgets what the store no longer has",
    )
    gc.add_argument(
        "--allow-no-manifests",
        action="store_true",
        help="sweep even when blobs exist but no manifest at all (normally refused)",
    )


def _add_quarantine(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """``registry-gc quarantine ls | restore | purge``."""
    q = sub.add_parser(
        "quarantine",
        help="what live mode's quarantine holds: ls, restore DIGEST…, purge",
        description="Live runs (gc --live) move garbage blobs into a quarantine beside "
        "docker/registry/v2 (registry-gc/quarantine/<run>/) and journal the links they delete. "
        "List it, put blobs back, or purge what has been verified unneeded for long enough.",
        epilog=EXIT_CODES_HELP,
    )
    actions = q.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("ls", help="list the runs in the quarantine", epilog=EXIT_CODES_HELP)
    _add_storage(ls)
    _add_output(ls)
    ls.set_defaults(func=commands.quarantine_ls)
    restore = actions.add_parser(
        "restore",
        help="move blobs back into blobs/ and write back the links that named them",
        usage="registry-gc quarantine restore [options] [ROOT] DIGEST [DIGEST ...]",
        epilog=EXIT_CODES_HELP,
    )
    restore.add_argument(
        "operands", nargs="+", metavar="DIGEST", help="sha256:… (preceded by ROOT unless --config)"
    )
    _add_storage(restore, root=False)
    _add_output(restore)
    restore.set_defaults(func=commands.quarantine_restore)
    purge = actions.add_parser(
        "purge",
        help="restore what live manifests need, then delete runs verified long enough ago",
        description="Restore from the quarantine whatever a live manifest needs, then delete "
        "every run that a verification covered longer ago than --older-than. With an "
        "in-memory blob-descriptor cache, restart the registry first.",
        epilog=EXIT_CODES_HELP,
    )
    _add_storage(purge)
    purge.add_argument(
        "--older-than",
        type=_duration_arg,
        default=DEFAULT_GRACE,
        metavar="DURATION",
        help="purge runs verified longer ago than this (default 1h)",
    )
    purge.add_argument(
        "-m",
        "--delete-untagged",
        action="store_true",
        help="count manifests no tag reaches as unneeded (by default every revision is live, "
        "so whatever any revision needs is restored rather than purged)",
    )
    purge.add_argument(
        "-d", "--dry-run", action="store_true", help="restore and delete nothing; report"
    )
    _add_output(purge)
    purge.set_defaults(func=commands.quarantine_purge)


def _add_apply(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apply = sub.add_parser(
        "apply",
        help="execute a plan written by gc --plan-out, after checking it against the store",
        usage="registry-gc apply [options] PLAN [ROOT]",
        description="Execute a plan file written by `gc --dry-run --plan-out PLAN` (or `rm`), "
        "on the root it was made for. The store is listed and planned again with the plan's "
        "options first: an entry is deleted only if it is still garbage, with the same paths, "
        "sizes and times, and nothing that stays needs it; everything else is left alone and "
        "counted as changed since the plan. A plan for another root, older than --max-age, "
        "cut short or edited outside the registry's tree is refused (exit 3).",
        epilog=EXIT_CODES_HELP,
    )
    apply.add_argument("plan", metavar="PLAN", help="the plan file")
    apply.add_argument(
        "root",
        metavar="ROOT",
        nargs="?",
        help="the registry's root, as for gc; by default the root the plan names (or the "
        "registry's default configuration file, when it exists)",
    )
    _add_storage(apply, root=False, allow_empty=False)
    apply.add_argument(
        "--max-age",
        type=_duration_arg,
        default=DEFAULT_MAX_AGE,
        metavar="DURATION",
        help="refuse a plan whose listing is older than this (default 24h)",
    )
    apply.add_argument(
        "-d",
        "--dry-run",
        action="store_true",
        help="delete nothing; report what would be executed and what changed since the plan",
    )
    _add_plan_files(apply, plan_out=False)
    _add_output(apply)
    _add_metrics(apply)
    apply.set_defaults(func=commands.apply)


class _Version(argparse.Action):
    """``--version``: print the version and exit; looked up only then (see the package)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        from .. import __version__  # noqa: PLC0415

        sys.stdout.write(f"registry-gc {__version__}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (public for the docs)."""
    parser = argparse.ArgumentParser(
        prog="registry-gc",
        description="Reclaim storage from Docker/OCI registries built on CNCF distribution.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gc = sub.add_parser(
        "gc",
        help="mark and sweep: delete what no tag (or, without -m, no revision) needs",
        description="Garbage-collect the registry's storage directly. Nothing younger than "
        "the grace period is deleted; a live manifest that cannot be parsed stops the run "
        "before anything is deleted. ROOT may also be the registry's config.yml, as for "
        "`registry garbage-collect CONFIG`.",
        epilog=EXIT_CODES_HELP,
    )
    _add_storage(gc)
    _add_collect(gc)
    _add_live(gc)
    _add_distributed(gc)
    _add_gc_only(gc)
    add_policy_arguments(gc)
    _add_plan_files(gc)
    _add_output(gc)
    _add_metrics(gc)
    gc.set_defaults(func=commands.gc)

    rm = sub.add_parser(
        "rm",
        help="remove repositories, tags or manifests, then collect what they alone kept",
        usage="registry-gc rm [options] [ROOT] IMAGE [IMAGE ...]",
        description="Remove whole repositories (REPO), tags (REPO:TAG) or manifests "
        "(REPO@sha256:…), then garbage-collect in the same run (unless --no-gc), so that "
        "the bytes they alone held are freed. Every IMAGE is checked against "
        "distribution's grammar, then against the store, before anything is deleted. "
        "Removing a repository leaves the repositories nested under it alone.",
        epilog=EXIT_CODES_HELP,
    )
    rm.add_argument(
        "operands",
        nargs="+",
        metavar="IMAGE",
        help="REPO, REPO:TAG or REPO@DIGEST (preceded by ROOT unless --config is given or the "
        "registry's default configuration file exists)",
    )
    _add_storage(rm, root=False)
    _add_collect(rm)
    rm.add_argument(
        "--no-gc",
        action="store_true",
        help="delete only the tag directories, revision links and repositories named; "
        "collect nothing",
    )
    _add_plan_files(rm)
    _add_output(rm)
    _add_metrics(rm)
    rm.set_defaults(func=commands.rm)

    _add_apply(sub)

    ls = sub.add_parser(
        "ls",
        help="list repositories, tags, digests, platforms and sizes",
        usage="registry-gc ls [options] [ROOT] [REPO ...]",
        description="List repositories and their tags: digest, kind, platforms and size of "
        "each image. REPO is a name or a shell pattern (library/*).",
        epilog=EXIT_CODES_HELP,
    )
    ls.add_argument(
        "operands", nargs="*", metavar="REPO", help="repositories to list (default all)"
    )
    _add_storage(ls, root=False)
    ls.add_argument("-a", "--all", action="store_true", help="also list revisions no tag reaches")
    ls.add_argument("--no-trunc", action="store_true", help="show whole digests")
    ls.add_argument(
        "--no-platforms",
        action="store_true",
        help="do not read image configs for the platform of single-platform images (faster)",
    )
    _add_output(ls)
    ls.set_defaults(func=commands.ls)

    du = sub.add_parser(
        "du",
        help="total, live and reclaimable bytes; per repository, unique and shared bytes",
        description="Show how much storage the registry uses, how much of it is live, and how "
        "much `registry-gc gc` with the same options would free; per repository, the bytes "
        "its live images use, split into unique (only it needs them) and shared.",
        epilog=EXIT_CODES_HELP,
    )
    _add_storage(du)
    _add_collect(du, dry_run=False, verb="count as reclaimable")
    du.add_argument(
        "--sort",
        choices=["name", "size", "unique", "reclaimable"],
        default="name",
        help="order of the repositories (default name; the others largest first)",
    )
    _add_output(du)
    du.set_defaults(func=commands.du)

    fsck = sub.add_parser(
        "fsck",
        help="check that every tag can be pulled from storage",
        usage="registry-gc fsck [options] [ROOT] [REPO ...]",
        description="Check, for every tag, what a pull needs from storage: the current link, "
        "the revision link, the manifest blob (present, matching its digest, parseable), "
        "every child manifest, config and layer blob (present and linked into the "
        "repository). Exits 1 when it finds problems, each listed with its object.",
        epilog=EXIT_CODES_HELP,
    )
    fsck.add_argument("operands", nargs="*", metavar="REPO", help="repositories to check")
    _add_storage(fsck, root=False)
    fsck.add_argument(
        "--verify-blobs",
        action="store_true",
        help="also hash every blob and compare with its digest (reads all the data)",
    )
    _add_output(fsck)
    fsck.set_defaults(func=commands.fsck)

    _add_quarantine(sub)

    demo = sub.add_parser(
        "demo",
        help="write a small demo registry to try registry-gc on",
        description="Write, into DIR (new or empty), the storage of a small registry after "
        "a month of use: a tag pushed twenty times, signed images, a multi-arch tag pushed "
        "twice and an abandoned upload, in the layout distribution writes. DIR is then a "
        "ROOT for every other command, and a rootdirectory `docker-registry serve` serves.",
        epilog=EXIT_CODES_HELP,
    )
    demo.add_argument("directory", metavar="DIR", help="where to write it (new or empty)")
    _add_output(demo)
    demo.set_defaults(func=commands.demo)
    return parser
