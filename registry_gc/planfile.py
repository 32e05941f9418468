"""Plan files: a plan as JSON Lines, written as it is iterated and read back as a stream.

One format serves two purposes: ``gc --plan-out`` writes the plan for review
(and :func:`~registry_gc.apply_planfile` executes it later, after checking it
against the store again), and ``--deletions-out`` writes what became of every
deletion of a run. Neither is ever held whole in memory as text: the writer
writes one line per deletion as the plan is iterated, the reader hands out
one entry at a time.

Line 1 is the header, then one line per deletion, then a footer::

    {"schema": "registry-gc/plan/v1", "root": "/var/lib/registry", "created": "…Z",
     "listing_started": "…Z", "tool": "registry-gc 0.1.0", "options": {…},
     "removals": {"tags": {}, "manifests": {}, "repositories": []}, "dry_run": true}
    {"category": "blob", "reason": "unreferenced", "repository": null, "digest": "sha256:…",
     "name": null, "size": 1234, "paths": [["docker/registry/v2/blobs/…/data", 1234, "…Z"]],
     "multipart": []}
    {"end": true, "deletions": 1, "bytes": 1234}

Each path carries the size and modification time the listing saw (``null``
where the listing does not say: links have no recorded size), so that a later
apply can tell whether the object changed. A file without its footer was cut
short and is refused. ``docs/json-schema.md`` describes every field.

>>> import datetime, io
>>> from registry_gc import Category, Deletion, Options, Reason, Removals
>>> text = io.StringIO()
>>> header = PlanHeader(
...     root="memory:///r",
...     created=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
...     listing_started=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
...     tool="registry-gc 1.0",
...     options=Options(),
...     removals=Removals(),
...     dry_run=True,
... )
>>> with PlanWriter(text, header) as writer:
...     writer.add(Deletion(Category.UPLOAD, Reason.STALE_UPLOAD, (), 0, "app", None, "u1"))
>>> _ = text.seek(0)
>>> reader = PlanReader(text, name="plan.jsonl")
>>> [(e.category.value, e.name) for e in reader]
[('upload', 'u1')]
>>> reader.footer
PlanFooter(deletions=1, bytes=0)
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from json.encoder import encode_basestring_ascii
from typing import IO, TYPE_CHECKING, Any, Final

from ._columns import LinkTimes
from ._deletions import DeletionList, Spelled
from ._errors import ConfigError
from ._planformat import (
    DROPPED,
    SCHEMA,
    PathRecord,
    PlanEntry,
    PlanFooter,
    PlanHeader,
    identity_of,
)
from ._planread import PlanReader, read_plan
from ._render import iso_time
from .backends import UNKNOWN_TIME
from .layout import (
    BlobData,
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    Unrecognized,
    UploadFile,
    blob_digest,
    classify,
)
from .plan import Category, Deletion

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from .apply import Status
    from .inventory import Inventory, RepositoryEntry
    from .layout import Key, Repository
    from .plan import Plan, Reason

__all__ = [
    "DROPPED",
    "SCHEMA",
    "PathRecord",
    "PlanEntry",
    "PlanFooter",
    "PlanHeader",
    "PlanReader",
    "PlanWriter",
    "check_writable",
    "identity_of",
    "read_plan",
    "record_of",
    "records_of",
    "same_root",
    "write_plan",
]

_UNKNOWN: Final = UNKNOWN_TIME.timestamp()


# -- what the listing knew of each path ---------------------------------------------------------


def _stamp(mtime: float) -> datetime.datetime | None:
    if mtime >= _UNKNOWN:
        return None
    try:
        return datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def record_of(inventory: Inventory, path: str) -> PathRecord | None:
    """What ``inventory`` knows of ``path``: its size and time; ``None`` when it is not there."""
    digest = blob_digest(path)
    if digest is not None:
        blobs = inventory.blobs
        i = blobs.index.find(digest)  # one lookup for the three questions
        if not blobs.has_id(i):
            return None
        return PathRecord(path, blobs.size_of_id(i), _stamp(blobs.mtime_of_id(i)))
    key = classify(path)
    if isinstance(key, BlobData):  # pragma: no cover - blob_digest took these
        return None
    repo = inventory.repositories.get(key.repository) if key.repository is not None else None
    if repo is None:
        return None
    if isinstance(key, Unrecognized):
        return PathRecord(path) if path in repo.unrecognized else None
    found = _link_facts(repo, key)
    return None if found is None else PathRecord(path, found[0], _stamp(found[1]))


def _link_facts(repo: RepositoryEntry, key: Key) -> tuple[int | None, float] | None:
    """The size (if known) and time the inventory holds for a file of ``repo``."""
    size: int | None = None
    mtime: float | None = None
    if isinstance(key, RevisionLink):
        mtime = repo.revisions.get(key.digest)
    elif isinstance(key, LayerLink):
        mtime = repo.layers.get(key.digest)
    elif isinstance(key, TagCurrentLink | TagIndexLink):
        tag = repo.tags.get(key.tag)
        if tag is not None and isinstance(key, TagIndexLink):
            mtime = tag.index.get(key.digest)
        elif tag is not None:
            size, mtime = tag.current_size, tag.current_mtime
    elif isinstance(key, UploadFile):
        upload = repo.uploads.get(key.upload)
        if upload is not None and key.name in upload.files:
            size, mtime = upload.files[key.name]
    elif isinstance(key, LegacySignatureLink):
        sigs = repo.signatures.get(key.revision, ())
        mtime = next((m for d, m in sigs if d == key.digest), None)
    return None if mtime is None else (size, mtime)


def records_of(inventory: Inventory, paths: Iterable[str]) -> tuple[PathRecord, ...]:
    """:func:`record_of` each path; a path the inventory does not hold gets no size or time."""
    return tuple(record_of(inventory, p) or PathRecord(p) for p in paths)


# -- writing ----------------------------------------------------------------------------------


def _fields(
    category: Category, reason: Reason, repository: str | None, digest: str | None
) -> dict[str, Any]:
    return {
        "category": category.value,
        "reason": reason.value,
        "repository": repository,
        "digest": digest,
    }


# ASCII only: names read from storage may hold surrogates (not UTF-8), which escape.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


#: A string as the encoder writes it (quoted, escaped, ASCII): the C function it calls itself.
_quote: Final = encode_basestring_ascii


def _dumps(obj: Mapping[str, Any]) -> str:
    return _ENCODER.encode(obj) + "\n"


class PlanWriter:
    """Writes a plan file a line at a time: the header at once, each deletion as it comes.

    ``target`` is a path (written to a temporary file beside it and renamed
    over it when :meth:`close` writes the footer, so that a reader never sees
    half a file under that name) or an open text file. As a context manager,
    the footer is written on a normal exit and nothing is left behind on an
    exception.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], header: PlanHeader) -> None:
        self.header = header
        self.count = 0
        self.bytes = 0
        self._final: str | None = None
        self._temp: str | None = None
        if isinstance(target, str | os.PathLike):
            self._final = os.fspath(target)
            directory = os.path.dirname(os.path.abspath(self._final))
            try:
                fd, self._temp = tempfile.mkstemp(
                    prefix=f".{os.path.basename(self._final)}.", suffix=".tmp", dir=directory
                )
            except OSError as e:
                msg = f"cannot write the plan file {self._final}: {e.strerror or e}"
                raise ConfigError(msg, path=self._final) from e
            self._file: IO[str] = open(fd, "w", encoding="ascii", newline="\n")  # noqa: SIM115
        else:
            self._file = target
        self._file.write(_dumps(header.to_dict()))

    def add(
        self,
        deletion: Deletion,
        records: Sequence[PathRecord] | None = None,
        *,
        status: Status | str | None = None,
        error: str | None = None,
    ) -> None:
        """Write one deletion; ``records`` are its paths as listed (default: paths alone)."""
        if records is None:
            records = [PathRecord(p) for p in deletion.paths]
        line = _fields(deletion.category, deletion.reason, deletion.repository, deletion.digest)
        line["name"] = deletion.name
        line["size"] = deletion.size
        line["paths"] = [r.to_json() for r in records]
        line["multipart"] = [[u.key, u.upload_id] for u in deletion.multipart]
        self._write(line, deletion.size, status=status, error=error)

    def add_entry(
        self,
        entry: PlanEntry,
        *,
        status: Status | str | None = None,
        error: str | None = None,
        dropped: str | None = None,
    ) -> None:
        """Write an entry read from another plan file, with what became of it."""
        line = _fields(entry.category, entry.reason, entry.repository, entry.digest)
        line["name"] = entry.name
        line["size"] = entry.size
        line["paths"] = [r.to_json() for r in entry.paths]
        line["multipart"] = [[k, u] for k, u in entry.multipart]
        self._write(line, entry.size, status=status, error=error, dropped=dropped)

    def _write(
        self,
        line: dict[str, Any],
        size: int,
        *,
        status: Status | str | None,
        error: str | None,
        dropped: str | None = None,
    ) -> None:
        if status is not None:
            line["status"] = str(status)
        if error is not None:
            line["error"] = error
        if dropped is not None:
            line["dropped"] = dropped
        self._file.write(_dumps(line))
        self.count += 1
        self.bytes += size

    def write_lines(self, lines: list[str], size: int) -> None:
        """Write lines spelled elsewhere (each ends in a newline); ``size``: their bytes."""
        self._file.write("".join(lines))
        self.count += len(lines)
        self.bytes += size

    def close(self) -> PlanFooter:
        """Write the footer (and, for a path, move the file into place)."""
        footer = PlanFooter(self.count, self.bytes)
        self._file.write(
            _dumps({"end": True, "deletions": footer.deletions, "bytes": footer.bytes})
        )
        self._file.flush()
        if self._final is not None and self._temp is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._final)
            self._temp = None
        return footer

    def abort(self) -> None:
        """Leave nothing behind (a path target only)."""
        if self._temp is not None:
            self._file.close()
            os.unlink(self._temp)
            self._temp = None

    def __enter__(self) -> PlanWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_plan(
    target: str | os.PathLike[str] | IO[str],
    header: PlanHeader,
    inventory: Inventory,
    plan: Plan,
    *,
    statuses: Sequence[Status] | None = None,
    errors: Mapping[str, str] | None = None,
) -> PlanFooter:
    """Write every deletion of ``plan`` with its paths as ``inventory`` lists them.

    With ``statuses`` (one per deletion), each line says what became of it;
    ``errors`` maps a failed path to the storage's answer.
    """
    errors = errors or {}
    with PlanWriter(target, header) as writer:
        deletions = plan.deletions
        if isinstance(deletions, DeletionList) and deletions.digests is inventory.index:
            _write_rows(writer, inventory, deletions, statuses, errors)
        else:
            for i, d in enumerate(deletions):
                status = statuses[i] if statuses is not None else None
                writer.add(
                    d, records_of(inventory, d.paths), status=status, error=_error(d, errors)
                )
    return PlanFooter(writer.count, writer.bytes)


def _error(deletion: Deletion, errors: Mapping[str, str]) -> str | None:
    """The storage's answer for the first failed path of ``deletion``, if any."""
    return next((f"{p}: {errors[p]}" for p in deletion.paths if p in errors), None)


#: Lines handed to the file at once by :func:`_write_rows`.
_CHUNK: Final = 512


def _write_rows(
    writer: PlanWriter,
    inventory: Inventory,
    deletions: DeletionList,
    statuses: Sequence[Status] | None,
    errors: Mapping[str, str],
) -> None:
    """:func:`write_plan`'s loop for a plan kept as rows: each line spelled from its row.

    The same text, byte for byte, as :meth:`PlanWriter.add` with
    :func:`records_of` (``tests/test_planfile.py`` holds the two side by side),
    without making a :class:`~registry_gc.plan.Deletion` and classifying its
    path again. Lines go to the file in chunks, in plan order.
    """
    spell = _LineSpeller(inventory)
    chunk: list[str] = []
    total = 0
    for i, row in enumerate(deletions.spelled()):
        status = statuses[i] if statuses is not None else None
        if isinstance(row, Deletion):  # kept whole: written as it is, after what came before
            writer.write_lines(chunk, total)
            chunk, total = [], 0
            error = _error(row, errors)
            writer.add(row, records_of(inventory, row.paths), status=status, error=error)
            continue
        path = row.path
        chunk.append(spell.line(row, status, f"{path}: {errors[path]}" if path in errors else None))
        total += row.size
        if len(chunk) >= _CHUNK:
            writer.write_lines(chunk, total)
            chunk, total = [], 0
    writer.write_lines(chunk, total)


class _LineSpeller:
    """Spells the plan line of a one-path row, as :meth:`PlanWriter.add` would write it.

    A link's time is looked up by the row's digest id, and the strings every
    line repeats (category and reason, repository, status) are encoded once:
    about three times faster than a :class:`~registry_gc.plan.Deletion` per row
    and :func:`record_of` per path (85k lines of the 50k benchmark store: 14.8 s
    before, about 4 s after, on a loaded machine).
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        #: (category, reason) → the line up to the repository's value
        self.heads: dict[tuple[Category, Reason], str] = {}
        #: repository → its JSON string and its inventory entry
        self.repositories: dict[Repository | None, tuple[str, RepositoryEntry | None]] = {}
        #: status → the line's ``"status"`` member
        self.statuses: dict[Status | str | None, str] = {None: ""}

    def line(self, row: Spelled, status: Status | str | None, error: str | None) -> str:
        """The line of ``row`` with its ``status`` and ``error`` (each ``None``: not said)."""
        text = _quote
        head = self.heads.get((row.category, row.reason))
        if head is None:
            head = self.heads[row.category, row.reason] = (
                f'{{"category":{text(row.category.value)},"reason":{text(row.reason.value)},'
            )
        repository = self.repositories.get(row.repository) or self._repository(row.repository)
        tail = self.statuses.get(status)
        if tail is None:
            tail = self.statuses[status] = f',"status":{text(str(status))}'
        if error is not None:
            tail += f',"error":{text(error)}'
        size, mtime = self._record(row, repository[1])
        stamp = None if mtime is None else _stamp(mtime)
        return (
            f'{head}"repository":{repository[0]},"digest":{text(row.digest)},'
            f'"name":{"null" if row.tag is None else text(row.tag)},"size":{row.size},'
            f'"paths":[[{text(row.path)},{"null" if size is None else size},'
            f'{"null" if stamp is None else text(iso_time(stamp))}]],"multipart":[]{tail}}}\n'
        )

    def _repository(self, name: Repository | None) -> tuple[str, RepositoryEntry | None]:
        """A repository's JSON value and its inventory entry, kept for the next row."""
        found = (
            ("null", None)
            if name is None
            else (_quote(name), self.inventory.repositories.get(name))
        )
        self.repositories[name] = found
        return found

    def _record(
        self, row: Spelled, entry: RepositoryEntry | None
    ) -> tuple[int | None, float | None]:
        """The size and time the listing saw for the row's path (``None``: not seen)."""
        if row.category is Category.BLOB:
            blobs = self.inventory.blobs
            if blobs.has_id(row.digest_id):
                return blobs.size_of_id(row.digest_id), blobs.mtime_of_id(row.digest_id)
            return None, None
        if entry is None:
            return None, None
        if row.category is Category.TAG_INDEX:
            tag = entry.tags.get(row.tag) if row.tag is not None else None
            if tag is None:
                return None, None
            links = tag.index
        elif row.category is Category.LAYER_LINK or row.legacy:
            links = entry.layers  # a revision 2.1.0 linked under _layers has a layer link's path
        else:
            links = entry.revisions
        if isinstance(links, LinkTimes) and links.index is self.inventory.index:
            return None, links.time_of_id(row.digest_id)
        return None, links.get(row.digest)


def check_writable(*paths: str | os.PathLike[str] | None) -> None:
    """Raise :class:`~registry_gc.ConfigError` when an output file's directory is missing.

    Checked before a run starts, so that a report to write afterwards never
    fails after the deletions.
    """
    for path in paths:
        if path is None:
            continue
        directory = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            msg = f"cannot write {os.fspath(path)}: {directory} is not a writable directory"
            raise ConfigError(msg, path=os.fspath(path))


def same_root(a: str, b: str) -> bool:
    """Whether two registry roots are the same: local paths resolved, URLs without a final ``/``.

    >>> same_root("s3://bucket/reg/", "S3://bucket/reg")
    True
    """

    def norm(url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return os.path.normpath(os.path.realpath(url))
        if rest.endswith("/") and not rest.endswith("//"):
            rest = rest[:-1]
        return f"{scheme.lower()}://{rest}"

    return norm(a) == norm(b)
