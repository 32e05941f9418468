"""A run's figures in the Prometheus text format, for node_exporter's textfile collector.

``registry-gc gc --metrics-file /var/lib/node_exporter/textfile/registry-gc.prom``
writes, at the end of every run — a failed, refused or interrupted one too —
one file that node_exporter's textfile collector exposes, so that a nightly
job that stops succeeding, or a registry whose garbage keeps growing, raises
an alert (``docs/monitoring.md`` has the rules). The file is written to a
temporary name next to ``PATH`` and renamed over it: the collector never reads
half a file.

Every series describes the last run, so every metric is a gauge (no
``_total``): the file is replaced by each run, and a counter that restarts
from zero every night would only confuse ``rate()``. The metrics, their
labels and alert rules on them are listed in ``docs/monitoring.md``; none is
labelled by repository (the cardinality would follow the registry's).

Only what the run got to is written: a run refused before planning writes the
run metrics and no store figures.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "registry-gc.prom")
>>> write_metrics(path, RuntimeError("boom"), started=1.0, finished=2.0)
>>> "registry_gc_run_success 0.0" in open(path).read()
True
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from ._errors import ConfigError, RefusedError, RegistryGCError, StorageError
from .backends import CountingBackend, http_requests
from .plan import Category
from .report import Report

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from prometheus_client import CollectorRegistry, Gauge

    from .backends import Backend
    from .live import LiveResult

__all__ = ["PREFIX", "RunRecorder", "build_registry", "outcome_of", "write_metrics"]

log = logging.getLogger(__name__)

#: Every metric's name starts with this.
PREFIX = "registry_gc"
_LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"


#: How an exception ends a run, first match wins: the command line maps exceptions
#: to exit codes in this order (bad input before the storage).
_OUTCOMES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (KeyboardInterrupt, "interrupted"),
    (RefusedError, "refused"),
    (StorageError, "storage-error"),
    ((RegistryGCError, ValueError), "usage-error"),
    (OSError, "storage-error"),
)


def outcome_of(outcome: Report | BaseException) -> str:
    """The word for how a run ended, in ``registry_gc_run_info{outcome}``.

    One per exit code of the command line: ``success`` (0), ``failed`` (1:
    deletions failed), ``usage-error`` (2), ``refused`` (3), ``storage-error``
    (4), ``interrupted`` (130); ``error`` for anything else.
    """
    if isinstance(outcome, Report):
        return "success" if outcome.ok else "failed"
    return next((word for kinds, word in _OUTCOMES if isinstance(outcome, kinds)), "error")


def _previous_success(path: str) -> float:
    """``registry_gc_last_success_timestamp_seconds`` from the file a previous run wrote, or 0."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return 0.0
    except (OSError, UnicodeDecodeError) as e:
        log.warning("cannot read the previous metrics file %s: %s", path, e)
        return 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == _LAST_SUCCESS:
                    return float(sample.value)
    except ValueError as e:
        log.warning("the previous metrics file %s is not in the Prometheus format: %s", path, e)
    return 0.0


def build_registry(
    outcome: Report | BaseException,
    *,
    command: str = "gc",
    dry_run: bool | None = None,
    started: float,
    finished: float,
    last_success: float = 0.0,
    storage_objects: Mapping[str, int] | None = None,
    storage_requests: Mapping[str, int] | None = None,
) -> CollectorRegistry:
    """The metrics of one run, in a registry of their own (see the module's docstring)."""
    from prometheus_client import CollectorRegistry, Gauge  # noqa: PLC0415 - only with the flag

    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

    report = outcome if isinstance(outcome, Report) else None
    succeeded = report is not None and report.ok
    if report is not None:
        dry_run = report.dry_run

    gauge("run_start_timestamp_seconds", "When the last run started.").set(started)
    gauge("run_end_timestamp_seconds", "When the last run ended.").set(finished)
    gauge("run_success", "1 when the last run succeeded, else 0.").set(1 if succeeded else 0)
    gauge(
        "last_success_timestamp_seconds",
        "When the last successful run ended (0: none recorded yet).",
    ).set(finished if succeeded else last_success)
    info = gauge(
        "run_info",
        "The last run: command, dry run or not, outcome, registry-gc version.",
        ("command", "dry_run", "outcome", "version"),
    )
    dry = "unknown" if dry_run is None else str(dry_run).lower()
    from . import __version__  # noqa: PLC0415 - read on first use (see the package)

    info.labels(command, dry, outcome_of(outcome), __version__).set(1)

    if report is not None:
        _report_metrics(report, gauge)

    if storage_objects:
        objects = gauge(
            "storage_objects",
            "Objects passed to each storage operation in the last run.",
            ("operation",),
        )
        for operation, n in sorted(storage_objects.items()):
            objects.labels(operation).set(n)
    if storage_requests:
        requests = gauge(
            "storage_requests",
            "HTTP requests sent per storage API operation in the last run (retries included).",
            ("operation",),
        )
        for operation, n in sorted(storage_requests.items()):
            requests.labels(operation).set(n)
    return registry


def _report_metrics(report: Report, gauge: Callable[..., Gauge]) -> None:
    plan, result = report.plan, report.result
    phases = gauge("phase_duration_seconds", "Seconds per phase of the last run.", ("phase",))
    for phase, seconds in report.timings.items():
        if phase != "total":
            phases.labels(phase).set(seconds)
    if plan.sizes_measured:  # a names-only run does not measure them
        gauge("stored_bytes", "Bytes of all blobs in the store.").set(plan.total_bytes)
        gauge("live_bytes", "Bytes of the blobs still needed.").set(plan.live_bytes)
    gauge("stored_blobs", "Blobs in the store.").set(plan.total_blobs)
    gauge("stored_objects", "Objects (files, keys) listed in the store.").set(
        report.inventory.objects
    )
    gauge("live_blobs", "Blobs still needed.").set(plan.live_blobs)

    deleted_bytes = gauge(
        "deleted_bytes", "Bytes deleted by the last run, per category.", ("category",)
    )
    deleted_objects = gauge(
        "deleted_objects", "Objects deleted by the last run, per category.", ("category",)
    )
    done = report.categories() if result is not None else {}
    for category in Category:
        figures = done.get(category.value, {})
        deleted_bytes.labels(category.value).set(figures.get("bytes", 0))
        deleted_objects.labels(category.value).set(figures.get("objects", 0))

    status = result.status if result is not None else ["planned"] * len(plan.deletions)
    left = sum(d.size for d, s in zip(plan.deletions, status, strict=True) if s != "deleted")
    gauge(
        "reclaimable_bytes",
        "Garbage left in the store after the last run: what a sweep would free now.",
    ).set(left)
    gauge("grace_kept_bytes", "Garbage kept for the grace period.").set(
        sum(k.size for k in plan.kept)
    )
    gauge("anomalies", "Anomalies the last run found.").set(len(plan.anomalies))
    gauge("failed_deletions", "Deletions that failed in the last run.").set(
        len(result.failures) if result is not None else 0
    )
    if report.live is not None:
        _live_metrics(report.live, gauge)


def _live_metrics(live: LiveResult, gauge: Callable[..., Gauge]) -> None:
    """A live run's quarantine: what it holds, what moved, came back and went."""
    gauge("quarantine_bytes", "Bytes in the quarantine after the last live run.").set(
        live.quarantine_bytes
    )
    gauge("quarantine_blobs", "Blob copies in the quarantine after the last live run.").set(
        live.quarantine_blobs
    )
    gauge("quarantine_held", "1 when the quarantine is held (the cache cannot be cleared).").set(
        1 if live.held else 0
    )
    gauge("live_moved_bytes", "Bytes the last live run moved into the quarantine.").set(
        live.moved_bytes
    )
    gauge("live_restored_blobs", "Blobs the last live run restored for racing pushes.").set(
        len(live.restored_blobs)
    )
    gauge("live_restored_links", "Links the last live run wrote back for racing pushes.").set(
        len(live.restored_links)
    )
    gauge("live_restore_failures", "What the last live run needed and could not restore.").set(
        len(live.restore_failures)
    )
    gauge("live_purged_bytes", "Bytes the last live run purged from the quarantine.").set(
        live.purged_bytes
    )
    gauge("live_verified", "1 when the last live run verified the store after removing.").set(
        1 if live.verified else 0
    )


def write_metrics(
    path: str | os.PathLike[str],
    outcome: Report | BaseException,
    *,
    command: str = "gc",
    dry_run: bool | None = None,
    started: float,
    finished: float,
    storage_objects: Mapping[str, int] | None = None,
    storage_requests: Mapping[str, int] | None = None,
) -> None:
    """Write the metrics of a run that ended with ``outcome`` to ``path``, atomically.

    ``outcome`` is the run's :class:`~registry_gc.Report`, or the exception
    that ended it; ``dry_run`` says what was asked when there is no report
    (the label is ``unknown`` otherwise). ``started`` and ``finished`` are Unix times;
    ``storage_objects`` counts objects per storage operation (a
    :class:`~registry_gc.backends.CountingBackend`'s ``objects``) and
    ``storage_requests`` HTTP requests per API operation (an S3 backend's
    ``request_counts``). The last success is kept from the file already at
    ``path`` when this run did not succeed.
    """
    from prometheus_client import write_to_textfile  # noqa: PLC0415 - only with the flag

    target = os.fspath(path)
    registry = build_registry(
        outcome,
        command=command,
        dry_run=dry_run,
        started=started,
        finished=finished,
        last_success=_previous_success(target),
        storage_objects=storage_objects,
        storage_requests=storage_requests,
    )
    # A temporary file next to PATH, renamed over it: the collector never reads half a file.
    write_to_textfile(target, registry)


class RunRecorder:
    """Times a command, counts its storage operations, and writes its metrics when it ends.

    A context manager around the whole command; with ``path=None`` it does
    nothing. Give it the run's backend through :meth:`wrap` and the report
    through its ``report`` attribute; when the block raises, the exception is the
    outcome (and is not swallowed).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None, *, command: str, dry_run: bool = False
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.command = command
        self.dry_run = dry_run
        self.report: Report | None = None
        self.started = 0.0
        self._backend: CountingBackend | None = None
        if self.path is not None:
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                msg = f"metrics file {self.path}: directory {directory} does not exist"
                raise ConfigError(msg, path=self.path)

    def wrap(self, backend: Backend) -> Backend:
        """``backend``, counting its operations when metrics are written."""
        if self.path is None:
            return backend
        self._backend = CountingBackend(backend)
        return self._backend

    def __enter__(self) -> RunRecorder:
        self.started = time.time()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.path is None:
            return
        outcome: Report | BaseException
        if exc is not None:
            outcome = exc
        elif self.report is not None:
            outcome = self.report
        else:  # pragma: no cover - a command that returned without a report
            outcome = RuntimeError("the run ended without a report")
        counting = self._backend
        try:
            write_metrics(
                self.path,
                outcome,
                command=self.command,
                dry_run=self.dry_run,
                started=self.started,
                finished=time.time(),
                storage_objects=dict(counting.objects) if counting is not None else None,
                storage_requests=http_requests(counting) if counting is not None else None,
            )
        except OSError as e:
            message = f"cannot write the metrics file {self.path}: {e}"
            if exc is not None:
                # One line, no traceback: the run's own error is the one to report.
                log.error("%s", message)  # noqa: TRY400
                return
            raise StorageError(message) from e
