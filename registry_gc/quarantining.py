"""``quarantine ls | restore | purge``: what live mode's quarantine holds, for operators.

:func:`list_quarantine` lists the runs in the quarantine; :func:`restore_quarantined`
puts named blobs back (with the links the runs deleted that named them);
:func:`purge_quarantine` first restores whatever live manifests need, then
deletes the runs a verification has covered for long enough. The quarantine's
layout and the live run are in :mod:`registry_gc.quarantine` and
:mod:`registry_gc.live`.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import attrs

from . import _sync
from ._errors import NotFoundError
from ._render import human_bytes, iso_time, table
from ._run import open_root, survey
from .backends import Outcome
from .layout import BLOBS_PREFIX, Digest, LayerLink, RevisionLink, blob_path, classify
from .live import restore_needed
from .options import DEFAULT_GRACE, Options
from .quarantine import (
    QuarantinedBlob,
    QuarantineRun,
    prune_quarantine_dirs,
    purge_runs,
    read_quarantine,
    require_live_capabilities,
    restore_blobs,
    restore_links,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._run import ProgressCallback, Root
    from .backends import Backend

__all__ = [
    "QuarantineListing",
    "QuarantinePurge",
    "QuarantineRestore",
    "list_quarantine",
    "purge_quarantine",
    "restore_quarantined",
]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@attrs.frozen
class QuarantineListing:
    """The runs in the quarantine, oldest first."""

    url: str
    runs: tuple[QuarantineRun, ...]
    now: datetime.datetime
    strays: tuple[str, ...] = ()

    @property
    def blobs(self) -> int:
        """Blob copies held."""
        return sum(len(r.blobs) for r in self.runs)

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(r.size for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ``registry-gc/quarantine/v1``)."""
        return {
            "schema": "registry-gc/quarantine/v1",
            "root": self.url,
            "blobs": self.blobs,
            "bytes": self.size,
            "runs": [r.to_dict(now=self.now) for r in self.runs],
            "strays": list(self.strays),
        }

    def render(self) -> str:
        """A table of runs, then the totals."""
        if not self.runs:
            return f"the quarantine of {self.url} is empty"
        rows = [("RUN", "VERIFIED", "BLOBS", "SIZE", "LINKS")]
        rows.extend(
            (
                str(r.id),
                iso_time(r.verified_at) if r.verified_at else "not verified",
                str(len(r.blobs)),
                human_bytes(r.size),
                str(len(r.links)),
            )
            for r in self.runs
        )
        lines = table(rows, right=(2, 3, 4))
        total = human_bytes(self.size)
        lines.append(f"total: {self.blobs} blob(s), {total} in {len(self.runs)} run(s)")
        lines.extend(f"not a quarantine object (left alone): {p}" for p in self.strays[:20])
        return "\n".join(lines)


async def list_quarantine_async(
    root: Root, *, storage_options: Mapping[str, Any] | None = None
) -> QuarantineListing:
    """:func:`list_quarantine`, for callers that run an event loop."""
    backend = open_root(root, storage_options, read_only=True)
    try:
        q = await read_quarantine(backend)
    finally:
        await backend.aclose()
    runs = tuple(q.runs[r] for r in sorted(q.runs))
    return QuarantineListing(backend.url, runs, _now(), tuple(q.strays))


def list_quarantine(
    root: Root, *, storage_options: Mapping[str, Any] | None = None
) -> QuarantineListing:
    """The runs live mode left in the quarantine of the registry at ``root``."""
    return _sync.run(list_quarantine_async(root, storage_options=storage_options))


@attrs.frozen
class QuarantineRestore:
    """What :func:`restore_quarantined` put back."""

    url: str
    #: digests moved back into ``blobs/``
    restored: tuple[str, ...]
    #: digests whose blob was already in place (a push uploaded it again)
    present: tuple[str, ...]
    #: link paths written back
    links: tuple[str, ...]
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def exit_code(self) -> int:
        """0, or 1 when something could not be restored."""
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "schema": "registry-gc/quarantine-restore/v1",
            "root": self.url,
            "restored": list(self.restored),
            "already_present": list(self.present),
            "links": list(self.links),
            "failures": [{"path": p, "error": e} for p, e in self.failures],
        }

    def render(self) -> str:
        """One line per blob and a line for the links."""
        lines = [f"restored {d}" for d in self.restored]
        lines.extend(
            f"{d} is already in blobs/ (the copy stays in the quarantine)" for d in self.present
        )
        lines.append(f"wrote back {len(self.links)} link(s)")
        lines.extend(f"FAILED {p}: {e}" for p, e in self.failures)
        return "\n".join(lines)


async def _present(backend: Backend, digests: Iterable[Digest]) -> set[Digest]:
    out: set[Digest] = set()
    for d in digests:
        async for info in backend.list(blob_path(d).rpartition("/")[0] + "/"):
            if info.path == blob_path(d):
                out.add(d)
    return out


async def restore_quarantined_async(
    root: Root, digests: Iterable[str], *, storage_options: Mapping[str, Any] | None = None
) -> QuarantineRestore:
    """:func:`restore_quarantined`, for callers that run an event loop."""
    wanted = [Digest(d) for d in digests]
    backend = open_root(root, storage_options)
    try:
        require_live_capabilities(backend)
        q = await read_quarantine(backend)
        copies: dict[Digest, QuarantinedBlob] = {}
        for d in wanted:
            found = q.blob(d)
            links = [j for j in q.links().values() if j.target == d]  # any kind: it was there
            if found is None and not links:
                msg = (
                    f"{d} is not in the quarantine of {backend.url} (no run moved it there, or "
                    "it was purged); `registry-gc quarantine ls` lists what is"
                )
                raise NotFoundError(msg, path=f"{BLOBS_PREFIX}…", digest=str(d))
            if found is not None:
                copies[d] = found
        present = await _present(backend, copies)
        to_move = [c for d, c in copies.items() if d not in present]
        failures: list[tuple[str, str]] = []
        restored: list[str] = []
        for entry, r in zip(to_move, await restore_blobs(backend, to_move), strict=True):
            if r.outcome is Outcome.DELETED:
                restored.append(str(entry.digest))
            else:
                failures.append((entry.path, r.error or "the quarantined copy is gone"))
        await prune_quarantine_dirs(backend, [c.path for c in to_move])
        journal = [
            j
            for j in q.links().values()
            if j.target in set(wanted) and isinstance(classify(j.path), (LayerLink, RevisionLink))
        ]
        written = await restore_links(backend, journal) if not failures else []
        return QuarantineRestore(
            backend.url,
            tuple(restored),
            tuple(str(d) for d in sorted(present)),
            tuple(written),
            tuple(failures),
        )
    finally:
        await backend.aclose()


def restore_quarantined(
    root: Root, digests: Iterable[str], *, storage_options: Mapping[str, Any] | None = None
) -> QuarantineRestore:
    """Move blobs ``digests`` back from the quarantine, and write back the links naming them.

    Raises :class:`~registry_gc.NotFoundError` (nothing restored) when a digest
    is neither a quarantined blob nor the target of a journaled link.
    """
    return _sync.run(restore_quarantined_async(root, digests, storage_options=storage_options))


@attrs.frozen
class QuarantinePurge:
    """What :func:`purge_quarantine` restored and purged."""

    url: str
    dry_run: bool
    restored_blobs: tuple[str, ...]
    restored_links: tuple[str, ...]
    #: the runs purged (or, in a dry run, that would be)
    purged: tuple[QuarantineRun, ...]
    #: runs kept: not covered by a verification, or covered too recently
    kept: tuple[QuarantineRun, ...]
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def exit_code(self) -> int:
        """0, or 1 when something could not be restored or purged."""
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "schema": "registry-gc/quarantine-purge/v1",
            "root": self.url,
            "dry_run": self.dry_run,
            "restored": {"blobs": list(self.restored_blobs), "links": list(self.restored_links)},
            "purged": [r.to_dict() for r in self.purged],
            "purged_blobs": sum(len(r.blobs) for r in self.purged),
            "purged_bytes": sum(r.size for r in self.purged),
            "kept": [r.to_dict() for r in self.kept],
            "failures": [{"path": p, "error": e} for p, e in self.failures],
        }

    def render(self) -> str:
        """What was restored, purged and kept."""
        verb = "would purge" if self.dry_run else "purged"
        blobs = sum(len(r.blobs) for r in self.purged)
        size = human_bytes(sum(r.size for r in self.purged))
        lines = []
        if self.restored_blobs or self.restored_links:
            lines.append(
                f"restored {len(self.restored_blobs)} blob(s) and {len(self.restored_links)} "
                "link(s) that live manifests need"
            )
        lines.append(f"{verb} {blobs} blob(s) ({size}) of {len(self.purged)} run(s)")
        if self.kept:
            lines.append(
                f"kept {len(self.kept)} run(s): not yet verified, or verified too recently"
            )
        lines.extend(f"FAILED {p}: {e}" for p, e in self.failures)
        return "\n".join(lines)


async def purge_quarantine_async(
    root: Root,
    *,
    older_than: datetime.timedelta = DEFAULT_GRACE,
    options: Options | None = None,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> QuarantinePurge:
    """:func:`purge_quarantine`, for callers that run an event loop."""
    options = options or Options()
    backend = open_root(root, storage_options, read_only=dry_run)
    try:
        if not dry_run:
            require_live_capabilities(backend)
        inventory, manifests = await survey(backend, allow_empty=True, progress=progress)
        q = await read_quarantine(backend)
        restored_blobs: tuple[str, ...] = ()
        restored_links: tuple[str, ...] = ()
        failures: list[tuple[str, str]] = []
        if not dry_run:
            healed = await restore_needed(
                backend, inventory, manifests, options=options, quarantine=q
            )
            restored_blobs, restored_links = tuple(healed.blobs), tuple(healed.links)
            failures.extend(healed.failures)
        eligible = q.purgeable(now=_now(), grace=older_than) if not failures else []
        if dry_run:
            needed = _needed_in_dry_run(inventory, manifests, options, q)
            eligible = [r for r in eligible if not (set(r.blobs) & needed)]
        kept = tuple(q.runs[r] for r in sorted(q.runs) if q.runs[r] not in eligible)
        if eligible and not dry_run:
            purged = await purge_runs(backend, eligible)
            failures.extend(purged.failures)
        return QuarantinePurge(
            backend.url,
            dry_run,
            restored_blobs,
            restored_links,
            tuple(eligible),
            kept,
            tuple(failures),
        )
    finally:
        await backend.aclose()


def _needed_in_dry_run(inventory: Any, manifests: Any, options: Options, q: Any) -> set[Digest]:  # noqa: ANN401
    """Quarantined digests the store's live manifests need (a dry run restores nothing)."""
    from .mark import mark  # noqa: PLC0415

    marks = mark(inventory, manifests, options)
    return {d for d in marks.blobs if d not in inventory.blobs and q.blob(d) is not None}


def purge_quarantine(
    root: Root,
    *,
    older_than: datetime.timedelta = DEFAULT_GRACE,
    options: Options | None = None,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> QuarantinePurge:
    """Restore what the store's live manifests need, then purge runs that are old enough.

    A run is purged once a verification (its own, or a later live run's)
    covered it at least ``older_than`` ago. Marking uses ``options`` (default:
    every revision is live, the most that can be needed). With an in-memory
    blob-descriptor cache, run it after the registry has restarted.
    """
    return _sync.run(
        purge_quarantine_async(
            root,
            older_than=older_than,
            options=options,
            dry_run=dry_run,
            storage_options=storage_options,
            progress=progress,
        )
    )
