"""The commands: each parses its arguments, makes one library call, and emits the result."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._progress import make_progress
from .._resolve import check_names_only
from ..applying import apply_planfile
from ..checking import check
from ..collector import collect
from ..config import find_default_config, load_registry_config
from ..layout import Digest, Repository
from ..listing import list_images
from ..metrics import RunRecorder
from ..options import Options
from ..planfile import read_plan, same_root
from ..removal import parse_image, remove
from ..usage import disk_usage
from ._cluster import elsewhere
from ._output import emit
from ._policy import policy_from_args
from ._target import live_cache, split_operands, target_of

if TYPE_CHECKING:
    import argparse

    from ..report import Report
    from ._target import Target

__all__ = [
    "apply",
    "demo",
    "du",
    "fsck",
    "gc",
    "ls",
    "quarantine_ls",
    "quarantine_purge",
    "quarantine_restore",
    "rm",
]

log = logging.getLogger("registry_gc")


def _options(args: argparse.Namespace) -> Options:
    """The :class:`~registry_gc.Options` the collection flags give."""
    return Options(
        delete_untagged=args.delete_untagged,
        grace=args.grace,
        uploads_older_than=args.uploads_older_than,
        prune_damaged=args.prune_damaged,
        allow_no_manifests=getattr(args, "allow_no_manifests", False),
        allow_empty=args.allow_empty,
    )


def _with_config(data: dict[str, Any], target: Target) -> dict[str, Any]:
    if target.config is not None:
        data["registry_config"] = target.config.to_dict()
    return data


def _restart_notice(target: Target, report: Report) -> None:
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


def _race_notice(target: Target, args: argparse.Namespace) -> None:
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
            "registry or put it in read-only mode first, or collect with --live",
            cfg.source,
        )


def _validate_names(names: list[str]) -> None:
    for name in names:
        if not any(c in name for c in "*?["):
            Repository(name)  # validate before touching the storage


def gc(args: argparse.Namespace) -> int:
    """``registry-gc gc``: :func:`~registry_gc.collect`."""
    with RunRecorder(args.metrics_file, command="gc", dry_run=args.dry_run) as recorder:
        target = args.target = target_of(args, args.root)
        policy = policy_from_args(args)
        if policy is not None and not args.delete_untagged:
            log.warning(
                "a retention policy removes tags only; the images behind them stay as untagged "
                "revisions unless -m/--delete-untagged is given too"
            )
        if args.names_only:
            check_names_only(
                policy=policy is not None, live=args.live, dry_run=args.dry_run, elsewhere=False
            )
        cache = live_cache(args, target)
        if not args.live:
            _race_notice(target, args)
        with (
            make_progress(quiet=args.quiet) as progress,
            elsewhere(args, target, policy=policy is not None) as away,
        ):
            if away is not None:
                report = recorder.report = collect(
                    target.url,
                    _options(args),
                    dry_run=args.dry_run,
                    policy=policy,
                    progress=progress.callback(),
                    live=args.live,
                    storage_options=away.storage_options,
                    client=away.client,
                    partitions=args.partitions,
                    inventory=args.inventory,
                    inventory_max_age=args.inventory_max_age,
                )
            else:
                report = recorder.report = collect(
                    recorder.wrap(target.open()),
                    _options(args),
                    dry_run=args.dry_run,
                    policy=policy,
                    progress=progress.callback(),
                    live=args.live,
                    cache=cache,
                    settle=args.settle,
                    plan_out=args.plan_out,
                    deletions_out=args.deletions_out,
                    names_only=args.names_only,
                    manifest_cache=args.manifest_cache,
                )
    emit(
        args,
        lambda: _with_config(report.to_dict(), target),
        lambda: report.render(verbose=args.verbose > 0),
    )
    if not args.live:
        _restart_notice(target, report)
    return report.exit_code


def rm(args: argparse.Namespace) -> int:
    """``registry-gc rm``: :func:`~registry_gc.remove`."""
    with RunRecorder(args.metrics_file, command="rm", dry_run=args.dry_run) as recorder:
        root, images = split_operands(args)
        if not images:
            taken = f" (took {root!r} as ROOT; image names never start with '/', '.' or '~')"
            msg = f"no IMAGE to remove{taken if root else ''}: give REPO, REPO:TAG or REPO@DIGEST"
            raise ConfigError(msg)
        refs = [parse_image(image) for image in images]
        target = args.target = target_of(args, root)
        _race_notice(target, args)
        with make_progress(quiet=args.quiet) as progress:
            removed = remove(
                recorder.wrap(target.open()),
                refs,
                _options(args),
                collect=not args.no_gc,
                dry_run=args.dry_run,
                progress=progress.callback(),
                plan_out=args.plan_out,
                deletions_out=args.deletions_out,
            )
            recorder.report = removed.report
    for ref in removed.kept:
        log.warning(
            "manifest %s is still needed (a child of a live index, or a referrer of a live "
            "image): kept",
            ref,
        )
    emit(
        args,
        _with_config(removed.to_dict(), target),
        lambda: removed.render(verbose=args.verbose > 0),
    )
    _restart_notice(target, removed.report)
    return removed.exit_code


def _plan_root(args: argparse.Namespace) -> str | None:
    """ROOT, or with neither ROOT nor --config the plan's own root.

    The registry's default configuration is used instead when it names that
    same root (its credentials come with it).
    """
    if args.root or args.config:
        return str(args.root) if args.root else None
    with read_plan(args.plan) as reader:
        named = reader.header.root
    default = find_default_config()
    if default is None:
        return named
    try:
        configured = load_registry_config(default).url
    except ConfigError:
        return named  # an unusable default configuration: the plan says where
    return None if same_root(configured, named) else named


def apply(args: argparse.Namespace) -> int:
    """``registry-gc apply``: :func:`~registry_gc.apply_planfile`."""
    with RunRecorder(args.metrics_file, command="apply", dry_run=args.dry_run) as recorder:
        target = args.target = target_of(args, _plan_root(args))
        with make_progress(quiet=args.quiet) as progress:
            applied = apply_planfile(
                recorder.wrap(target.open()),
                args.plan,
                max_age=args.max_age,
                dry_run=args.dry_run,
                progress=progress.callback(),
                deletions_out=args.deletions_out,
            )
            recorder.report = applied.report
    emit(
        args,
        _with_config(applied.to_dict(), target),
        lambda: applied.render(verbose=args.verbose > 0),
    )
    _restart_notice(target, applied.report)
    return applied.exit_code


def ls(args: argparse.Namespace) -> int:
    """``registry-gc ls``: :func:`~registry_gc.list_images`."""
    root, names = split_operands(args)
    _validate_names(names)
    target = args.target = target_of(args, root)
    with make_progress(quiet=args.quiet) as progress:
        listing = list_images(
            target.open(),
            names,
            untagged=args.all,
            platforms=not args.no_platforms,
            allow_empty=args.allow_empty,
            progress=progress.callback(),
        )
    emit(args, listing.to_dict(), lambda: listing.render(full_digests=args.no_trunc))
    return 0


def du(args: argparse.Namespace) -> int:
    """``registry-gc du``: :func:`~registry_gc.disk_usage`."""
    target = args.target = target_of(args, args.root)
    with make_progress(quiet=args.quiet) as progress:
        usage = disk_usage(target.open(), _options(args), progress=progress.callback())
    usage = usage.sorted(args.sort)
    emit(args, usage.to_dict(), usage.render)
    return 0


def fsck(args: argparse.Namespace) -> int:
    """``registry-gc fsck``: :func:`~registry_gc.check`."""
    root, names = split_operands(args)
    _validate_names(names)
    target = args.target = target_of(args, root)
    with make_progress(quiet=args.quiet) as progress:
        result = check(
            target.open(),
            names,
            verify_blobs=args.verify_blobs,
            allow_empty=args.allow_empty,
            progress=progress.callback(),
        )
    emit(args, result.to_dict(), lambda: result.render(verbose=args.verbose > 0))
    if not result.ok and args.quiet:
        for problem in result.problems:
            print(f"registry-gc: fsck: [{problem.kind}] {problem.message}", file=sys.stderr)  # noqa: T201
    return result.exit_code


def demo(args: argparse.Namespace) -> int:
    """``registry-gc demo``: :func:`~registry_gc.demo.write_demo_registry`."""
    from ..demo import write_demo_registry  # noqa: PLC0415 - only this command needs it

    written = write_demo_registry(args.directory)
    emit(args, written.to_dict(), written.render)
    return 0


def quarantine_ls(args: argparse.Namespace) -> int:
    """``registry-gc quarantine ls``: :func:`~registry_gc.list_quarantine`."""
    from ..quarantining import list_quarantine  # noqa: PLC0415

    target = args.target = target_of(args, args.root)
    listing = list_quarantine(target.open())
    emit(args, listing.to_dict(), listing.render)
    return 0


def quarantine_restore(args: argparse.Namespace) -> int:
    """``registry-gc quarantine restore``: :func:`~registry_gc.restore_quarantined`."""
    from ..quarantining import restore_quarantined  # noqa: PLC0415

    root, digests = split_operands(args)
    if not digests:
        msg = "no DIGEST to restore: give sha256:… (see registry-gc quarantine ls)"
        raise ConfigError(msg)
    for d in digests:
        try:
            Digest(d)
        except ValueError as e:
            msg = f"{d!r} is not a digest ({e}); give sha256:<64 hex digits>"
            raise ConfigError(msg) from None
    target = args.target = target_of(args, root)
    restored = restore_quarantined(target.open(), digests)
    emit(args, restored.to_dict(), restored.render)
    return restored.exit_code


def quarantine_purge(args: argparse.Namespace) -> int:
    """``registry-gc quarantine purge``: :func:`~registry_gc.purge_quarantine`."""
    from ..quarantining import purge_quarantine  # noqa: PLC0415

    target = args.target = target_of(args, args.root)
    with make_progress(quiet=args.quiet) as progress:
        purged = purge_quarantine(
            target.open(),
            older_than=args.older_than,
            options=Options(delete_untagged=args.delete_untagged),
            dry_run=args.dry_run,
            progress=progress.callback(),
        )
    emit(args, purged.to_dict(), purged.render)
    return purged.exit_code
