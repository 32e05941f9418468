"""The ``registry-gc`` command line: a thin layer over the library.

Commands: ``gc`` (mark and sweep), ``rm`` (remove repositories, tags or
manifests, then collect), ``ls`` (repositories, tags, digests, platforms,
sizes), ``du`` (total, live, reclaimable, shared and unique bytes),
``fsck`` (is every tag pullable from storage) and ``demo`` (write a small
registry to try the others on). Each but ``demo`` takes the storage as
``ROOT`` (a directory or a URL) or as the registry's own ``config.yml``
(``--config``, or the file the registry image reads by default).

Exit codes:

- 0 — success (and, for a dry run, nothing went wrong while planning); ``fsck``: no problem
- 1 — ``gc``/``rm``: some deletions failed (the report lists them), later phases were skipped;
  ``fsck``: problems found (each is listed)
- 2 — bad usage or bad input: an option, a name, a name not in the store, a config file,
  ``demo``: a DIR that is not empty
- 3 — refused: the collector found something that makes a sweep unsafe, or ROOT holds no
  registry; nothing was deleted
- 4 — the storage failed (listing or reading)
- 130 — interrupted; a re-run converges
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from . import __version__, _sync
from ._cli_policy import add_policy_arguments, policy_from_args
from ._errors import ConfigError, RefusedError, RegistryGCError, StorageError, TargetNotEmptyError
from ._progress import Progress, make_progress, with_listing_progress
from .apply import execute
from .backends import ReadOnlyBackend, open_backend
from .collector import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN, collect
from .config import CONFIG_PATH_ENV, RegistryConfig, find_default_config, load_registry_config
from .durations import parse_duration
from .fetch import fetch_manifests
from .inspect import (
    disk_usage,
    fsck_async,
    list_repositories,
    read_platforms,
    select_repositories,
)
from .inventory import scan
from .layout import V2_PREFIX, Repository
from .mark import mark
from .metrics import RunRecorder
from .plan import Category, make_plan
from .remove import (
    ImageRef,
    Removal,
    explicit_plan,
    manifests_to_remove,
    parse_image,
    resolve_removal,
)
from .report import Report, human_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from .backends import Backend
    from .inspect import FsckResult, RepositorySummary, Usage
    from .inventory import Inventory
    from .plan import Plan

__all__ = ["build_parser", "main", "run"]

log = logging.getLogger("registry_gc")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 deletions failed (gc, rm) or problems found (fsck); 2 bad usage or "
    "input; 3 refused (nothing deleted); 4 storage error; 130 interrupted."
)

# Storage options whose values are credentials: never echoed.
_SECRET_OPTIONS = frozenset(
    {"key", "secret", "token", "password", "account_key", "client_secret", "sas_token"}
)


def _duration_arg(text: str) -> timedelta:
    """:func:`~registry_gc.parse_duration` for argparse: a bad value is a usage error."""
    try:
        return parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _storage_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"invalid storage option {text!r}: use KEY=VALUE (VALUE may be JSON)"
        raise argparse.ArgumentTypeError(msg)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


# -- the parser --------------------------------------------------------------------------


def _add_storage(p: argparse.ArgumentParser, *, root: bool = True) -> None:
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
        type=_storage_option,
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec storage option (repeatable), e.g. -o endpoint_url=http://127.0.0.1:9000",
    )
    p.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint (shorthand for -o endpoint_url=URL)",
    )
    p.add_argument(
        "--allow-empty", action="store_true", help="do not fail when ROOT holds no registry data"
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (public for the docs)."""
    parser = argparse.ArgumentParser(
        prog="registry-gc",
        description="Reclaim storage from Docker/OCI registries built on CNCF distribution.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"registry-gc {__version__}")
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
    gc.add_argument(
        "--allow-no-manifests",
        action="store_true",
        help="sweep even when blobs exist but no manifest at all (normally refused)",
    )
    add_policy_arguments(gc)
    _add_output(gc)
    _add_metrics(gc)
    gc.set_defaults(func=_cmd_gc)

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
    _add_output(rm)
    _add_metrics(rm)
    rm.set_defaults(func=_cmd_rm)

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
    ls.set_defaults(func=_cmd_ls)

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
    du.set_defaults(func=_cmd_du)

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
    fsck.set_defaults(func=_cmd_fsck)

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
    demo.set_defaults(func=_cmd_demo)
    return parser


# -- where the storage is ------------------------------------------------------------------


@attrs.frozen
class _Target:
    url: str
    options: dict[str, Any] = attrs.field(repr=False)
    config: RegistryConfig | None = None

    def redact(self, text: str) -> str:
        if self.config is not None:
            text = self.config.redact(text)
        for key, value in self.options.items():
            if key in _SECRET_OPTIONS and isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "***")
        return text


def _looks_like_root(text: str) -> bool:
    # Image names never start with '/', '.' or '~' and never contain '://'.
    return (
        "://" in text
        or text.startswith(("/", ".", "~"))
        or os.path.isdir(text)
        or os.path.isfile(text)
    )


def _split_operands(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """``[ROOT] NAME…``: the first operand is ROOT unless the storage comes from a config."""
    operands: list[str] = list(args.operands)
    if args.config:
        return None, operands
    if operands and _looks_like_root(operands[0]):
        return operands[0], operands[1:]
    if find_default_config() is not None:
        return None, operands
    if operands:
        return operands[0], operands[1:]
    return None, []


def _target(args: argparse.Namespace, root: str | None) -> _Target:
    config_path: str | None = args.config
    if root and config_path:
        msg = f"give ROOT ({root}) or --config ({config_path}), not both"
        raise argparse.ArgumentTypeError(msg)
    if root and os.path.isfile(root):
        # `registry garbage-collect CONFIG`: a file is a configuration, never a root.
        log.info("%s is a file: reading it as the registry's configuration", root)
        config_path, root = root, None
    if not root and not config_path:
        found = find_default_config()
        if found is None:
            msg = (
                f"no ROOT given, no --config, and no default configuration file "
                f"(${CONFIG_PATH_ENV}, /etc/distribution/config.yml or "
                "/etc/docker/registry/config.yml): say where the registry's storage is"
            )
            raise argparse.ArgumentTypeError(msg)
        config_path = str(found)
        log.info("using the registry's configuration %s", config_path)
    overrides: dict[str, Any] = dict(args.storage_options)
    if args.endpoint_url:
        overrides["endpoint_url"] = args.endpoint_url
    if config_path:
        cfg = load_registry_config(config_path)
        for warning in cfg.warnings:
            log.warning("%s", cfg.redact(warning))
        log.info("storage: %s", cfg.describe())
        return _Target(cfg.url, _merged(cfg.storage_options, overrides), cfg)
    assert root is not None
    return _Target(root, overrides)


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``; mappings (``client_kwargs``, …) are merged too."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _open(target: _Target, *, read_only: bool, progress: Progress) -> Backend:
    backend = open_backend(target.url, target.options)
    if read_only:
        backend = ReadOnlyBackend(backend)
    return with_listing_progress(backend, progress)


def _refuse_empty(inventory: Inventory, args: argparse.Namespace) -> None:
    if inventory.empty and not args.allow_empty:
        msg = (
            f"no registry found at {inventory.url}: nothing under {V2_PREFIX}. Give the "
            "registry's rootdirectory (the directory that holds docker/registry/v2), or "
            "--allow-empty if the registry is really empty"
        )
        raise RefusedError(msg, [msg])


# -- output ---------------------------------------------------------------------------------


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


def _emit(args: argparse.Namespace, data: Mapping[str, Any], text: Callable[[], str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        # Names read from storage may not be UTF-8 (surrogates): escape what stdout cannot encode.
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        print(text().encode(encoding, "backslashreplace").decode(encoding))  # noqa: T201


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    stamp = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return stamp.isoformat().replace("+00:00", "Z")


def _restart_notice(target: _Target, report: Report) -> None:
    cfg = target.config
    if cfg is None or not cfg.restart_required or report.dry_run or not report.deleted_count:
        return
    log.warning(
        "%s enables storage.cache.blobdescriptor (%s): restart the running registry now (for "
        "redis, or flush its keys blobs::* and repository::*), or pushes may skip layers that "
        "were just deleted",
        cfg.source,
        cfg.blob_descriptor_cache,
    )


def _race_notice(target: _Target, args: argparse.Namespace) -> None:
    cfg = target.config
    if cfg is None or args.dry_run:
        return
    if cfg.read_only:
        log.info(
            "%s has storage.maintenance.readonly enabled: no push can race the sweep", cfg.source
        )
    elif not args.grace:
        log.warning(
            "--grace 0 while the registry accepts pushes (%s does not enable "
            "storage.maintenance.readonly): a push racing this run can lose its layers; stop the "
            "registry or put it in read-only mode first",
            cfg.source,
        )


def _report_dict(report: Report, target: _Target, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    data = report.to_dict()
    data.update(extra)
    if target.config is not None:
        data["registry_config"] = target.config.to_dict()
    return data


# -- gc -------------------------------------------------------------------------------------


def _cmd_gc(args: argparse.Namespace) -> int:
    with RunRecorder(args.metrics_file, command="gc", dry_run=args.dry_run) as recorder:
        return _gc(args, recorder)


def _gc(args: argparse.Namespace, recorder: RunRecorder) -> int:
    target = args.target = _target(args, args.root)
    policy = policy_from_args(args)
    if policy is not None and not args.delete_untagged:
        log.warning(
            "a retention policy removes tags only; the images behind them stay as untagged "
            "revisions unless -m/--delete-untagged is given too"
        )
    _race_notice(target, args)
    progress = make_progress(quiet=args.quiet)
    with progress:
        report = recorder.report = collect(
            recorder.wrap(_open(target, read_only=False, progress=progress)),
            delete_untagged=args.delete_untagged,
            dry_run=args.dry_run,
            grace=args.grace,
            uploads_older_than=args.uploads_older_than,
            allow_no_manifests=args.allow_no_manifests,
            allow_empty=args.allow_empty,
            prune_damaged=args.prune_damaged,
            policy=policy,
            progress=progress.collector() if progress.active else None,
        )
    _emit(args, _report_dict(report, target), lambda: report.render(verbose=args.verbose > 0))
    _restart_notice(target, report)
    return report.exit_code


# -- rm -------------------------------------------------------------------------------------


def _cmd_rm(args: argparse.Namespace) -> int:
    with RunRecorder(args.metrics_file, command="rm", dry_run=args.dry_run) as recorder:
        return _remove(args, recorder)


def _remove(args: argparse.Namespace, recorder: RunRecorder) -> int:
    root, images = _split_operands(args)
    if not images:
        taken = f" (took {root!r} as ROOT; image names never start with '/', '.' or '~')"
        msg = f"no IMAGE to remove{taken if root else ''}: give REPO, REPO:TAG or REPO@DIGEST"
        raise argparse.ArgumentTypeError(msg)
    refs = [parse_image(image) for image in images]
    target = args.target = _target(args, root)
    _race_notice(target, args)
    progress = make_progress(quiet=args.quiet)
    with progress:
        backend = recorder.wrap(_open(target, read_only=args.dry_run, progress=progress))
        report, removal, kept = _sync.run(_rm(backend, refs, args, progress))
        recorder.report = report
    verb = "would remove" if args.dry_run else "removed"
    for ref in kept:
        log.warning(
            "manifest %s is still needed (a child of a live index, or a referrer of a live "
            "image): kept",
            ref,
        )

    def text() -> str:
        lines = [f"registry-gc rm: {verb} " + ", ".join(f"{r.kind} {r}" for r in refs)]
        if kept:
            lines.append(f"  kept, still needed by a live image: {', '.join(kept)}")
        return "\n".join([*lines, report.render(verbose=args.verbose > 0)])

    extra = {"command": "rm", "removal": {**removal.to_dict(), "gc": not args.no_gc, "kept": kept}}
    _emit(args, _report_dict(report, target, **extra), text)
    _restart_notice(target, report)
    return report.exit_code


async def _rm(
    backend: Backend, refs: Sequence[ImageRef], args: argparse.Namespace, progress: Progress
) -> tuple[Report, Removal, list[str]]:
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        inventory = await scan(backend)
        timings["inventory"] = time.monotonic() - t
        _refuse_empty(inventory, args)
        removal = resolve_removal(inventory, refs)
        cutoff = (inventory.started - args.grace).timestamp()
        manifests_read = 0
        if args.no_gc:
            plan = explicit_plan(inventory, removal, cutoff=cutoff)
        else:
            t = time.monotonic()
            manifests = await fetch_manifests(
                backend,
                inventory,
                progress=lambda done, total: progress.update("manifests", done, total),
            )
            manifests_read = len(manifests)
            timings["manifests"] = time.monotonic() - t
            t = time.monotonic()
            removed = manifests_to_remove(inventory, manifests, removal)
            options: dict[str, Any] = {
                "delete_untagged": args.delete_untagged,
                "cutoff": cutoff,
                "removed_tags": removal.tags,
                "removed_repositories": removal.repositories,
                "removed_manifests": removed,
            }
            marks = mark(inventory, manifests, prune_damaged=args.prune_damaged, **options)
            uploads_cutoff = (inventory.started - args.uploads_older_than).timestamp()
            try:
                plan = make_plan(inventory, marks, uploads_cutoff=uploads_cutoff, **options)
            except RefusedError as e:
                hint = "; rm --no-gc removes the names without collecting"
                raise RefusedError(f"{e}{hint}", e.problems) from None
            timings["plan"] = time.monotonic() - t
        deleted = {
            (d.repository, d.digest) for d in plan.deletions if d.category is Category.REVISION
        }
        kept = [
            f"{r}@{d}"
            for r, ds in sorted(removal.manifests.items())
            for d in sorted(ds)
            if (r, d) not in deleted
        ]
        report = Report(
            inventory,
            plan,
            args.dry_run,
            args.grace.total_seconds(),
            args.uploads_older_than.total_seconds(),
            timings=timings,
            manifests_read=manifests_read,
        )
        if not args.dry_run:
            t = time.monotonic()
            report.result = await execute(backend, plan, progress=progress.collector())
            timings["apply"] = time.monotonic() - t
        timings["total"] = sum(timings.values())
        return report, removal, kept
    finally:
        await backend.aclose()


# -- ls -------------------------------------------------------------------------------------


def _cmd_ls(args: argparse.Namespace) -> int:
    root, names = _split_operands(args)
    for name in names:
        if not any(c in name for c in "*?["):
            Repository(name)  # validate before touching the storage
    target = args.target = _target(args, root)
    progress = make_progress(quiet=args.quiet)
    with progress:
        backend = _open(target, read_only=True, progress=progress)
        url, repos = _sync.run(_ls(backend, names, args, progress))
    data = {
        "schema": "registry-gc/ls/v1",
        "root": url,
        "repositories": [_ls_dict(r) for r in repos],
    }
    _emit(args, data, lambda: _ls_text(repos, url, no_trunc=args.no_trunc, untagged=args.all))
    return EXIT_OK


async def _ls(
    backend: Backend, names: Sequence[str], args: argparse.Namespace, progress: Progress
) -> tuple[str, list[RepositorySummary]]:
    try:
        inventory = await scan(backend)
        _refuse_empty(inventory, args)
        selected = select_repositories(inventory, names)
        scope = attrs.evolve(
            inventory, repositories={r: inventory.repositories[r] for r in selected}
        )
        manifests = await fetch_manifests(
            backend, scope, progress=lambda done, total: progress.update("manifests", done, total)
        )
        platforms: dict[str, str] = {}
        if not args.no_platforms:
            wanted = {
                t.current
                for r in scope.repositories.values()
                for t in r.tags.values()
                if t.current is not None
            }
            if args.all:
                wanted.update(d for r in scope.repositories.values() for d in r.revisions)
            platforms = await read_platforms(
                backend,
                scope,
                manifests,
                wanted,
                progress=lambda n: progress.advance("configs", n),
            )
        repos = list_repositories(
            scope, manifests, selected, untagged=args.all, platforms=platforms
        )
        return inventory.url, repos
    finally:
        await backend.aclose()


def _ls_dict(repo: RepositorySummary) -> dict[str, Any]:
    data = repo.to_dict()
    for tag in data["tags"]:
        tag["modified"] = _iso(tag["modified"])
    return data


def _short(digest: str | None, *, no_trunc: bool) -> str:
    if digest is None:
        return "-"
    return digest if no_trunc else digest[: digest.index(":") + 13]


def _table(rows: list[tuple[str, ...]], right: Iterable[int] = ()) -> list[str]:
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _ls_text(
    repos: Sequence[RepositorySummary], url: str, *, no_trunc: bool, untagged: bool
) -> str:
    if not repos:
        return f"no repositories in {url}"
    rows: list[tuple[str, ...]] = [("REPOSITORY", "TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE")]
    notes: list[str] = []
    for repo in repos:
        if repo.problem:
            notes.append(f"{repo.name}: {repo.problem}")
        for tag in repo.tags:
            image = tag.image
            problem = tag.problem or (image.problem if image is not None else None)
            if problem:
                notes.append(f"{repo.name}:{tag.name}: {problem}")
            rows.append(
                (
                    repo.name,
                    tag.name,
                    _short(tag.digest, no_trunc=no_trunc),
                    (image.kind or "?") if image is not None else "?",
                    ",".join(image.platforms) if image is not None and image.platforms else "-",
                    human_bytes(image.size) if image is not None else "-",
                )
            )
        if untagged:
            rows.extend(
                (
                    repo.name,
                    "<untagged>",
                    _short(image.digest, no_trunc=no_trunc),
                    image.kind or "?",
                    ",".join(image.platforms) or "-",
                    human_bytes(image.size),
                )
                for image in repo.untagged
            )
        if not repo.tags and not (untagged and repo.untagged):
            rows.append((repo.name, "-", "-", "-", "-", "-"))
    lines = _table(rows, right=[5])
    if any(r.untagged_count for r in repos) and not untagged:
        n = sum(r.untagged_count for r in repos)
        lines.append(f"({n} untagged revision(s) not shown: use -a)")
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


# -- du -------------------------------------------------------------------------------------


def _cmd_du(args: argparse.Namespace) -> int:
    target = args.target = _target(args, args.root)
    progress = make_progress(quiet=args.quiet)
    with progress:
        backend = _open(target, read_only=True, progress=progress)
        usage = _sync.run(_du(backend, args, progress))
    order: dict[str, Callable[[Any], Any]] = {
        "name": lambda r: r.name,
        "size": lambda r: (-r.size, r.name),
        "unique": lambda r: (-r.unique, r.name),
        "reclaimable": lambda r: (-(r.reclaimable or 0), r.name),
    }
    usage = attrs.evolve(
        usage, repositories=tuple(sorted(usage.repositories, key=order[args.sort]))
    )
    _emit(args, usage.to_dict(), lambda: _du_text(usage))
    return EXIT_OK


async def _du(backend: Backend, args: argparse.Namespace, progress: Progress) -> Usage:
    try:
        inventory = await scan(backend)
        _refuse_empty(inventory, args)
        manifests = await fetch_manifests(
            backend,
            inventory,
            progress=lambda done, total: progress.update("manifests", done, total),
        )
        cutoff = (inventory.started - args.grace).timestamp()
        uploads_cutoff = (inventory.started - args.uploads_older_than).timestamp()
        marks = mark(
            inventory,
            manifests,
            delete_untagged=args.delete_untagged,
            cutoff=cutoff,
            prune_damaged=args.prune_damaged,
        )
        plan: Plan | None
        try:
            plan = make_plan(
                inventory,
                marks,
                delete_untagged=args.delete_untagged,
                cutoff=cutoff,
                uploads_cutoff=uploads_cutoff,
            )
        except RefusedError:
            plan = None  # marks.problems says why; du shows them
        return disk_usage(inventory, manifests, marks, plan, delete_untagged=args.delete_untagged)
    finally:
        await backend.aclose()


def _du_text(usage: Usage) -> str:
    lines = [f"registry-gc du on {usage.url}"]
    rows: list[tuple[str, ...]] = [
        ("total", f"{usage.blobs} blobs", human_bytes(usage.size)),
        ("live", f"{usage.live_blobs} blobs", human_bytes(usage.live_size)),
    ]
    if usage.reclaimable_size is not None:
        command = "registry-gc gc -m" if usage.delete_untagged else "registry-gc gc"
        rows.append(
            (
                "reclaimable",
                f"{usage.reclaimable_blobs} blobs",
                f"{human_bytes(usage.reclaimable_size)}   (by {command}, uploads included)",
            )
        )
    lines.extend("  " + line for line in _table(rows, right=[1]))
    if usage.reclaimable_size is None:
        lines.append("  reclaimable: unknown, a run would refuse to sweep:")
        lines.extend(f"    - {p}" for p in usage.problems)
    if usage.grace_size:
        lines.append(f"  kept for the grace period: {human_bytes(usage.grace_size)}")
    if usage.uploads:
        lines.append(f"  uploads in progress: {usage.uploads} ({human_bytes(usage.uploads_size)})")
    if usage.repositories:
        table: list[tuple[str, ...]] = [
            ("REPOSITORY", "TAGS", "MANIFESTS", "SIZE", "UNIQUE", "SHARED", "RECLAIMABLE")
        ]
        table.extend(
            (
                r.name,
                str(r.tags),
                str(r.live_manifests),
                human_bytes(r.size),
                human_bytes(r.unique),
                human_bytes(r.shared),
                "?" if r.reclaimable is None else human_bytes(r.reclaimable),
            )
            for r in usage.repositories
        )
        lines.append("")
        lines.extend(_table(table, right=range(1, 7)))
    return "\n".join(lines)


# -- fsck -----------------------------------------------------------------------------------


def _cmd_fsck(args: argparse.Namespace) -> int:
    root, names = _split_operands(args)
    for name in names:
        if not any(c in name for c in "*?["):
            Repository(name)
    target = args.target = _target(args, root)
    progress = make_progress(quiet=args.quiet)
    with progress:
        backend = _open(target, read_only=True, progress=progress)
        result = _sync.run(_fsck(backend, names, args, progress))
    _emit(args, result.to_dict(), lambda: result.render(verbose=args.verbose > 0))
    if not result.ok and args.quiet:
        for problem in result.problems:
            print(f"registry-gc: fsck: [{problem.kind}] {problem.message}", file=sys.stderr)  # noqa: T201
    return EXIT_OK if result.ok else EXIT_FAILED


async def _fsck(
    backend: Backend, names: Sequence[str], args: argparse.Namespace, progress: Progress
) -> FsckResult:
    try:
        inventory = await scan(backend)
        _refuse_empty(inventory, args)
        selected = select_repositories(inventory, names) if names else None

        def tick(phase: str, n: int, total: int | None) -> None:
            progress.advance(phase, n, total)

        return await fsck_async(
            backend,
            inventory,
            repositories=selected,
            verify_blobs=args.verify_blobs,
            progress=tick,
        )
    finally:
        await backend.aclose()


# -- demo -----------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import write_demo_registry  # noqa: PLC0415 - only this command needs it

    demo = write_demo_registry(args.directory)
    _emit(args, demo.to_dict(), demo.render)
    return EXIT_OK


# -- running ----------------------------------------------------------------------------------


def _fail(code: int, message: str, args: argparse.Namespace | None, problems: list[str]) -> int:
    target = getattr(args, "target", None)
    if isinstance(target, _Target):
        message = target.redact(message)
        problems = [target.redact(p) for p in problems]
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


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; names after options (``ls ROOT -a REPO``) still count as operands."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        if hasattr(args, "operands") and not any(e.startswith("-") for e in extras):
            args.operands = [*args.operands, *extras]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (for tests and embedding)."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has printed
        return EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    _setup_logging(args)
    try:
        code: int = args.func(args)
    except RefusedError as e:
        return _fail(EXIT_REFUSED, str(e), args, e.problems)
    except StorageError as e:
        return _fail(EXIT_STORAGE, str(e), args, [])
    except BrokenPipeError:
        raise
    except TargetNotEmptyError as e:
        return _fail(EXIT_USAGE, str(e), args, [])
    except OSError as e:
        return _fail(EXIT_STORAGE, f"storage error: {e}", args, [])
    except (RegistryGCError, ValueError, argparse.ArgumentTypeError) as e:
        return _fail(EXIT_USAGE, str(e), args, [])
    except KeyboardInterrupt:
        return _fail(
            EXIT_INTERRUPTED, "interrupted; run again to finish (a re-run converges)", args, []
        )
    return code
