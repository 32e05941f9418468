"""``gc --scheduler`` / ``--workers`` / ``--inventory``: where a run's work is done."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from ._target import Target

__all__ = ["Away", "elsewhere"]

log = logging.getLogger("registry_gc")

#: S3 storage options that local worker processes get as environment variables instead.
_S3_ENVIRONMENT = {
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
    "token": "AWS_SESSION_TOKEN",
}


@attrs.frozen
class Away:
    """A run whose work is not done by this process alone."""

    #: the ``distributed.Client`` (``None``: an S3 Inventory run in this process)
    client: Any
    storage_options: dict[str, Any]


def _client(args: argparse.Namespace, target: Target) -> Iterator[Away]:
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415 - an optional extra
    except ImportError as e:
        msg = f"--scheduler and --workers run on Dask: pip install 'registry-gc[distributed]' ({e})"
        raise ConfigError(msg) from e
    # Imported here: the package costs 20 ms, and most runs stay in this process.
    from ..distributed import credential_options, without_credentials  # noqa: PLC0415

    secret = credential_options(target.options)
    if secret:
        log.warning(
            "storage options %s are credentials: they are not sent to the workers, which use "
            "the credentials of their own environment",
            ", ".join(secret),
        )
    options = without_credentials(target.options)
    if args.workers:
        # Worker processes on this machine: S3 credentials of the configuration reach them
        # as environment variables of their own processes, never in the task graph.
        env = {
            name: str(target.options[option])
            for option, name in _S3_ENVIRONMENT.items()
            if target.url.startswith(("s3://", "s3a://")) and target.options.get(option)
        }
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                env=env,
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            yield Away(client, options)
    else:
        with Client(args.scheduler) as client:  # type: ignore[no-untyped-call]
            yield Away(client, options)


#: What a distributed (or S3 Inventory) run cannot do: (attribute, flag, why).
_NOT_ELSEWHERE = (
    ("live", "--live", "live mode runs in one process (or stop the registry for the sweep)"),
    ("plan_out", "--plan-out", "plan files are written by a run in one process"),
    ("deletions_out", "--deletions-out", "plan files are written by a run in one process"),
    ("names_only", "--names-only", "names-only runs look at a local disk in one process"),
    ("manifest_cache", "--manifest-cache", "its workers read their manifests themselves"),
)


def _refuse_combinations(args: argparse.Namespace, how: str, *, policy: bool) -> None:
    """Refuse, before any cluster starts or anything is read, what ``how`` cannot do safely."""
    wrong = [f"{flag} ({why})" for attr, flag, why in _NOT_ELSEWHERE if getattr(args, attr, None)]
    if policy:
        wrong.append("a retention policy (policies run in one process)")
    if wrong:
        msg = f"{how} cannot be combined with {'; '.join(wrong)}: nothing was read or deleted"
        raise ConfigError(msg)


@contextlib.contextmanager
def elsewhere(
    args: argparse.Namespace, target: Target, *, policy: bool = False
) -> Iterator[Away | None]:
    """The cluster (or S3 Inventory run) ``args`` ask for, for the run; ``None``: this process.

    A combination the distributed run cannot do safely (live mode, plan files,
    a retention ``policy``) is refused (:class:`ConfigError`) before anything starts.
    """
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    inventory = getattr(args, "inventory", None)
    if not (scheduler or workers or inventory):
        for flag, value in (
            ("--partitions", getattr(args, "partitions", None)),
            ("--inventory-max-age", getattr(args, "inventory_max_age", None)),
        ):
            if value is not None:
                msg = f"{flag} only means something with --scheduler, --workers or --inventory"
                raise ConfigError(msg)
        yield None
        return
    how = "--scheduler" if scheduler else "--workers" if workers else "--inventory"
    _refuse_combinations(args, how, policy=policy)
    if scheduler or workers:
        yield from _client(args, target)
        return
    yield Away(None, dict(target.options))
