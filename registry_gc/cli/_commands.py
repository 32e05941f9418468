"""The commands: each parses its arguments, makes one library call, and emits the result."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._progress import make_progress
from ..checking import check
from ..collector import collect
from ..layout import Repository
from ..listing import list_images
from ..metrics import RunRecorder
from ..options import Options
from ..removal import parse_image, remove
from ..usage import disk_usage
from ._output import emit
from ._policy import policy_from_args
from ._target import split_operands, target_of

if TYPE_CHECKING:
    import argparse

    from ..report import Report
    from ._target import Target

__all__ = ["demo", "du", "fsck", "gc", "ls", "rm"]

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
            "registry or put it in read-only mode first",
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
        _race_notice(target, args)
        with make_progress(quiet=args.quiet) as progress:
            report = recorder.report = collect(
                recorder.wrap(target.open()),
                _options(args),
                dry_run=args.dry_run,
                policy=policy,
                progress=progress.callback(),
            )
    emit(
        args,
        lambda: _with_config(report.to_dict(), target),
        lambda: report.render(verbose=args.verbose > 0),
    )
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
