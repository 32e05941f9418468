r"""The quarantine: where live mode puts garbage blobs instead of deleting them.

A live run (:func:`registry_gc.collect` with ``live=True``) moves each garbage
blob out of ``docker/registry/v2``, where the registry can no longer find it,
into a directory of its own beside it, and records every link it deletes in
a journal first. A later step — the same run's verification, or any later
run — moves a quarantined blob back, and writes a journaled link again, when
a live manifest turns out to need it (a push raced the run); what stays
unneeded is purged once it has been out of the registry's tree for longer
than the grace period *and* a verification has looked at the store since.

Layout, under the registry's root directory (never under ``docker/``)::

    registry-gc/quarantine/<run>/run.json               written first: who, when, options
    registry-gc/quarantine/<run>/links/<nnnnnn>.tsv     journal: "<target>\\t<link path>"
    registry-gc/quarantine/<run>/docker/registry/v2/blobs/<alg>/<xx>/<hex>/data
    registry-gc/quarantine/<run>/verified.json          the run's verification finished

``<run>`` is the run's start time and a random suffix
(``20261203T221500.123456Z-3f9a1c``): run ids sort by start time.

>>> import datetime
>>> from registry_gc.layout import Digest
>>> from registry_gc.quarantine import QUARANTINE_PREFIX, RunId, quarantine_blob_path
>>> run = RunId.new(datetime.datetime(2026, 12, 3, 22, 15, tzinfo=datetime.timezone.utc))
>>> quarantine_blob_path(run, Digest("sha256:" + "ab" * 32)).startswith(
...     QUARANTINE_PREFIX + str(run) + "/docker/registry/v2/blobs/sha256/ab/"
... )
True
>>> run.started.isoformat()
'2026-12-03T22:15:00+00:00'
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import StorageError
from ._render import iso_time
from .backends import Outcome, SupportsDirectories, SupportsMove, SupportsWrite
from .layout import (
    V2_PREFIX,
    Digest,
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    blob_path,
    classify,
    parse_blob_path,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from .backends import Backend, DeleteResult, ObjectInfo

__all__ = [
    "QUARANTINE_PREFIX",
    "JournaledLink",
    "PurgeResult",
    "Quarantine",
    "QuarantineRun",
    "QuarantinedBlob",
    "RunId",
    "journal_links",
    "mark_verified",
    "prune_quarantine_dirs",
    "purge_runs",
    "quarantine_blob_path",
    "read_quarantine",
    "require_live_capabilities",
    "restore_blobs",
    "restore_links",
    "start_run",
]

log = logging.getLogger(__name__)

#: Where the quarantine lives, relative to the registry's root directory.
QUARANTINE_PREFIX = "registry-gc/quarantine/"
#: Journal lines per journal object.
JOURNAL_CHUNK = 20000

_RUN_ID = re.compile(r"(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{6})\Z")
_RUN_TIME = "%Y%m%dT%H%M%S.%fZ"


@attrs.frozen(order=True)
class RunId:
    """A live run's id: its start time (UTC, microseconds) and a random suffix."""

    started: datetime.datetime
    suffix: str

    @classmethod
    def new(cls, now: datetime.datetime | None = None) -> RunId:
        """A fresh id for a run starting ``now``."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return cls(now.astimezone(datetime.timezone.utc), secrets.token_hex(3))

    @classmethod
    def parse(cls, text: str) -> RunId | None:
        """The id ``text`` names, or ``None`` when it is not a run id."""
        m = _RUN_ID.match(text)
        if m is None:
            return None
        try:
            started = datetime.datetime.strptime(m.group(1), _RUN_TIME).replace(
                tzinfo=datetime.timezone.utc
            )
        except ValueError:
            return None
        return cls(started, m.group(2))

    def __str__(self) -> str:
        return f"{self.started.strftime(_RUN_TIME)}-{self.suffix}"

    @property
    def prefix(self) -> str:
        """The run's directory in the quarantine, with a trailing slash."""
        return f"{QUARANTINE_PREFIX}{self}/"


def quarantine_blob_path(run: RunId, digest: Digest) -> str:
    """Where run ``run`` keeps blob ``digest``."""
    return run.prefix + blob_path(digest)


@attrs.frozen
class QuarantinedBlob:
    """One blob a run moved into the quarantine."""

    run: RunId
    digest: Digest
    size: int
    #: when the copy was last written (on a disk a rename keeps the blob's own time)
    modified: datetime.datetime

    @property
    def path(self) -> str:
        """Where it is now."""
        return quarantine_blob_path(self.run, self.digest)

    @property
    def original(self) -> str:
        """Where it was, and goes back to."""
        return blob_path(self.digest)


@attrs.frozen
class JournaledLink:
    """A link a run deleted: its path, and what it named (what a restore writes back)."""

    run: RunId
    path: str
    target: Digest


@attrs.define
class QuarantineRun:
    """Everything one run left in the quarantine."""

    id: RunId
    blobs: dict[Digest, QuarantinedBlob] = attrs.Factory(dict)
    #: link path → what it named
    links: dict[str, JournaledLink] = attrs.Factory(dict)
    #: the journal objects, run.json, verified.json and anything else under the run
    files: list[str] = attrs.Factory(list)
    #: when the run's verification began (``None``: it never finished one)
    verified_at: datetime.datetime | None = None
    #: what run.json says (tool, root, options, host)
    info: dict[str, Any] = attrs.Factory(dict)

    @property
    def size(self) -> int:
        """Bytes its blobs hold."""
        return sum(b.size for b in self.blobs.values())

    def to_dict(self, *, now: datetime.datetime | None = None) -> dict[str, Any]:
        """The run as JSON-ready data."""
        out: dict[str, Any] = {
            "run": str(self.id),
            "started": iso_time(self.id.started),
            "verified_at": iso_time(self.verified_at) if self.verified_at else None,
            "blobs": len(self.blobs),
            "bytes": self.size,
            "links": len(self.links),
        }
        if now is not None:
            out["age_seconds"] = round((now - self.id.started).total_seconds(), 3)
        return out


@attrs.define
class Quarantine:
    """What the quarantine holds: every run's blobs and journaled links.

    Read it with :func:`read_quarantine`; the live run keeps it current as it
    moves blobs in and out.
    """

    runs: dict[RunId, QuarantineRun] = attrs.Factory(dict)
    #: objects under the quarantine that fit no run's layout: never touched
    strays: list[str] = attrs.Factory(list)

    def run(self, run: RunId) -> QuarantineRun:
        """The entry of ``run`` (created empty when the quarantine has none yet)."""
        return self.runs.setdefault(run, QuarantineRun(run))

    def blob(self, digest: str) -> QuarantinedBlob | None:
        """The newest quarantined copy of ``digest``, if any."""
        for run in sorted(self.runs, reverse=True):
            found: QuarantinedBlob | None = self.runs[run].blobs.get(digest)  # type: ignore[call-overload]
            if found is not None:
                return found
        return None

    def links(self) -> dict[str, JournaledLink]:
        """Every journaled link path, with what it named (the newest journal wins).

        Journals name every link a run deleted; only ``_layers`` and revision
        links are ever written back (tags and their history were deleted on
        purpose, or name revisions that are gone).
        """
        out: dict[str, JournaledLink] = {}
        for run in sorted(self.runs):
            out.update(self.runs[run].links)
        return out

    @property
    def blob_count(self) -> int:
        """Blob copies held (a digest quarantined by two runs counts twice)."""
        return sum(len(r.blobs) for r in self.runs.values())

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(r.size for r in self.runs.values())

    def covered_at(self, run: RunId) -> datetime.datetime | None:
        """When a verification first looked at the store after ``run`` moved its blobs.

        A run's verification covers the run itself and every run that started
        before it (runs do not overlap: one finished before the next began).
        """
        times = [
            r.verified_at
            for rid, r in self.runs.items()
            if rid >= run and r.verified_at is not None
        ]
        return min(times) if times else None

    def purgeable(
        self, *, now: datetime.datetime, grace: datetime.timedelta
    ) -> list[QuarantineRun]:
        """Runs a verification has covered at least ``grace`` ago, oldest first."""
        out = []
        for rid in sorted(self.runs):
            covered = self.covered_at(rid)
            if covered is not None and now - covered >= grace:
                out.append(self.runs[rid])
        return out


def require_live_capabilities(backend: Backend) -> None:
    """Raise :class:`~registry_gc.RefusedError` unless ``backend`` can move and write objects."""
    from ._errors import RefusedError  # noqa: PLC0415 - keep the import list short

    missing = [
        name
        for name, proto in (("move", SupportsMove), ("write", SupportsWrite))
        if not isinstance(backend, proto)
    ]
    if missing:
        msg = (
            f"live mode needs a storage backend that can {' and '.join(missing)} objects "
            f"(SupportsMove, SupportsWrite); {backend.url} ({type(backend).__name__}) cannot. "
            "Nothing was deleted: run without live mode in a read-only window instead"
        )
        raise RefusedError(msg, [msg], path=backend.url)


def _utc(text: object) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


#: What a journal line may name: every kind of link a run deletes.
_LINKS = (LayerLink, RevisionLink, TagIndexLink, TagCurrentLink, LegacySignatureLink)


def _parse_journal(run: RunId, path: str, data: bytes) -> dict[str, JournaledLink]:
    out: dict[str, JournaledLink] = {}
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        target, sep, link = line.partition("\t")
        key = classify(link) if sep else None
        try:
            digest = Digest(target)
        except ValueError:
            digest = None
        if digest is None or not isinstance(key, _LINKS):
            log.warning("%s line %d: not a journaled link, ignored: %r", path, n, line[:300])
            continue
        out[link] = JournaledLink(run, link, digest)
    return out


def _add_listed(q: Quarantine, info: ObjectInfo, *, journals: bool) -> RunId | None:
    """File one listed object into ``q``; its run when its contents must be read."""
    rest = info.path[len(QUARANTINE_PREFIX) :]
    run_text, _, inner = rest.partition("/")
    run_id = RunId.parse(run_text)
    if run_id is None or not inner:
        q.strays.append(info.path)
        return None
    run = q.run(run_id)
    digest = parse_blob_path(inner) if inner.startswith(V2_PREFIX) else None
    if digest is not None:
        run.blobs[digest] = QuarantinedBlob(run_id, digest, info.size, info.modified)
        return None
    run.files.append(info.path)
    marker = inner in ("run.json", "verified.json")
    journal = journals and inner.startswith("links/") and inner.endswith(".tsv")
    return run_id if marker or journal else None


def _read_marker(run: QuarantineRun, path: str, data: bytes) -> None:
    if path.endswith(".tsv"):
        run.links.update(_parse_journal(run.id, path, data))
        return
    try:
        doc = json.loads(data)
    except ValueError:
        log.warning("%s is not JSON; ignored", path)
        return
    if not isinstance(doc, dict):
        log.warning("%s is not a JSON object; ignored", path)
    elif path.endswith("/verified.json"):
        run.verified_at = _utc(doc.get("verified_at"))
    else:
        run.info = doc


async def read_quarantine(backend: Backend, *, journals: bool = True) -> Quarantine:
    """List the quarantine and read its runs' markers (and journals, unless ``journals=False``)."""
    q = Quarantine()
    to_read: dict[str, RunId] = {}
    async for info in backend.list(QUARANTINE_PREFIX):
        run_id = None if info.is_dir else _add_listed(q, info, journals=journals)
        if run_id is not None:
            to_read[info.path] = run_id
    if to_read:
        for path, data in (await backend.read(list(to_read))).items():
            if data is not None:
                _read_marker(q.runs[to_read[path]], path, data)
    return q


async def _write(backend: Backend, items: Mapping[str, bytes]) -> None:
    if not isinstance(backend, SupportsWrite):  # pragma: no cover - checked up front
        msg = f"{backend.url} cannot write objects"
        raise StorageError(msg, path=backend.url)
    await backend.write(items)


async def start_run(backend: Backend, run: RunId, info: Mapping[str, Any]) -> str:
    """Write the run's ``run.json`` (before the run removes anything); return its path."""
    doc = {"run": str(run), "started": iso_time(run.started), **info}
    path = run.prefix + "run.json"
    await _write(backend, {path: json.dumps(doc, indent=1).encode()})
    return path


async def journal_links(
    backend: Backend, run: RunId, links: Sequence[tuple[str, Digest]], *, first: int = 0
) -> list[str]:
    """Journal ``links`` (path, target) under ``run``: before any of them is deleted.

    Returns the journal objects written; ``first`` numbers the first.
    """
    items: dict[str, bytes] = {}
    for n, i in enumerate(range(0, len(links), JOURNAL_CHUNK)):
        chunk = links[i : i + JOURNAL_CHUNK]
        body = "".join(f"{target}\t{path}\n" for path, target in chunk)
        items[f"{run.prefix}links/{first + n:06d}.tsv"] = body.encode()
    if items:
        await _write(backend, items)
    return list(items)


async def mark_verified(backend: Backend, run: RunId, at: datetime.datetime) -> str:
    """Record that ``run``'s verification began at ``at`` and restored all it needed."""
    doc = {"run": str(run), "verified_at": iso_time(at)}
    path = run.prefix + "verified.json"
    await _write(backend, {path: json.dumps(doc).encode()})
    return path


async def restore_blobs(backend: Backend, blobs: Sequence[QuarantinedBlob]) -> list[DeleteResult]:
    """Move each quarantined blob back to its place in ``blobs/``; one result each (path: copy)."""
    if not blobs:
        return []
    if not isinstance(backend, SupportsMove):  # pragma: no cover - checked up front
        msg = f"{backend.url} cannot move objects"
        raise StorageError(msg, path=backend.url)
    return await backend.move(
        [(b.path, b.original) for b in blobs], sizes={b.path: b.size for b in blobs}
    )


async def restore_links(backend: Backend, links: Iterable[JournaledLink]) -> list[str]:
    """Write each journaled link back as the registry wrote it; return the paths written."""
    items = {link.path: str(link.target).encode() for link in links}
    if items:
        await _write(backend, items)
    return list(items)


@attrs.define
class PurgeResult:
    """What purging runs deleted."""

    runs: list[str] = attrs.Factory(list)
    blobs: int = 0
    size: int = 0
    failures: list[tuple[str, str]] = attrs.Factory(list)


async def purge_runs(backend: Backend, runs: Sequence[QuarantineRun]) -> PurgeResult:
    """Delete ``runs`` from the quarantine: blob copies first, the run's markers last.

    A run whose blob copies cannot all be deleted keeps its journal and
    markers, so that a later purge finds it again.
    """
    result = PurgeResult()
    for run in runs:
        paths = [b.path for b in run.blobs.values()]
        failed = [r for r in await backend.delete(paths) if r.outcome is Outcome.FAILED]
        result.failures.extend((r.path, r.error or "failed") for r in failed)
        if failed:
            log.warning("purge of run %s: %d blob(s) could not be deleted", run.id, len(failed))
            continue
        files = sorted(run.files, key=lambda p: p.endswith(("run.json", "verified.json")))
        journal = [p for p in files if not p.endswith(("run.json", "verified.json"))]
        markers = [p for p in files if p.endswith(("run.json", "verified.json"))]
        for group in (journal, markers):
            failed = [r for r in await backend.delete(group) if r.outcome is Outcome.FAILED]
            result.failures.extend((r.path, r.error or "failed") for r in failed)
            if failed:
                break
        else:
            result.runs.append(str(run.id))
        result.blobs += len(run.blobs)
        result.size += run.size
    await prune_quarantine_dirs(
        backend, [p for run in runs for p in (*(b.path for b in run.blobs.values()), *run.files)]
    )
    return result


async def prune_quarantine_dirs(backend: Backend, paths: Iterable[str]) -> None:
    """Remove the directories of ``paths`` that are now empty (stores with directories)."""
    if not isinstance(backend, SupportsDirectories):
        return
    stop = QUARANTINE_PREFIX.rstrip("/")
    dirs: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent.startswith(QUARANTINE_PREFIX) and parent != stop:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    if dirs:
        ordered = sorted(dirs, key=lambda d: (-d.count("/"), d))
        for r in await backend.remove_empty_dirs(ordered):
            if r.outcome is Outcome.FAILED:
                log.warning("could not remove directory %s: %s", r.path, r.error)
