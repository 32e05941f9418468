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

>>> import io
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

import contextlib
import datetime
import json
import os
import tempfile
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import attrs

from ._errors import ConfigError, InvalidReferenceError, PlanFileError
from ._render import iso_time
from .backends import UNKNOWN_TIME
from .layout import (
    V2_PREFIX,
    BlobData,
    Digest,
    LayerLink,
    LegacySignatureLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    Unrecognized,
    UploadFile,
    blob_digest,
    classify,
)
from .options import Options, Removals
from .plan import Category, Deletion, Reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from .apply import Status
    from .inventory import Inventory, RepositoryEntry
    from .layout import Key
    from .plan import Plan

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

#: The format of plan files; bumped on any incompatible change.
SCHEMA: Final = "registry-gc/plan/v1"
_SCHEMA_FAMILY: Final = "registry-gc/plan/"
_UNKNOWN: Final = UNKNOWN_TIME.timestamp()
#: A status a ``--deletions-out`` line may carry besides :class:`~registry_gc.Status`:
#: ``apply`` dropped the entry (see :attr:`PlanEntry.dropped`).
DROPPED: Final = "dropped"


@attrs.frozen
class PathRecord:
    """One storage path of a deletion, with its size and modification time as listed.

    ``None`` where the listing does not say (the size of a link, a time the
    storage does not give).
    """

    path: str
    size: int | None = None
    mtime: datetime.datetime | None = None

    def to_json(self) -> list[Any]:
        """``[path, size, mtime]`` as the file holds it."""
        return [self.path, self.size, None if self.mtime is None else iso_time(self.mtime)]


@attrs.frozen(kw_only=True)
class PlanHeader:
    """The first line of a plan file: where, when and with what the plan was made."""

    #: the backend URL of the registry root (never with credentials)
    root: str
    #: when the file was written
    created: datetime.datetime
    #: when the listing the plan rests on started (its age counts from here)
    listing_started: datetime.datetime
    #: ``registry-gc <version>``
    tool: str
    options: Options
    #: what was removed by name (``rm``, a retention policy): apply plans with the same
    removals: Removals
    #: whether the run that wrote the file deleted nothing
    dry_run: bool

    def age(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        """How long ago the listing started (at ``now``, default now)."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now - self.listing_started

    def to_dict(self) -> dict[str, Any]:
        """The header line's JSON object."""
        o, r = self.options, self.removals
        return {
            "schema": SCHEMA,
            "root": self.root,
            "created": iso_time(self.created),
            "listing_started": iso_time(self.listing_started),
            "tool": self.tool,
            "options": {
                "delete_untagged": o.delete_untagged,
                "grace": o.grace.total_seconds(),
                "uploads_older_than": o.uploads_older_than.total_seconds(),
                "prune_damaged": o.prune_damaged,
                "allow_no_manifests": o.allow_no_manifests,
                "allow_empty": o.allow_empty,
            },
            "removals": {
                "tags": {k: sorted(v) for k, v in sorted(r.tags.items())},
                "manifests": {k: sorted(v) for k, v in sorted(r.manifests.items())},
                "repositories": sorted(r.repositories),
            },
            "dry_run": self.dry_run,
        }

    @classmethod
    def of(
        cls,
        inventory: Inventory,
        options: Options,
        removals: Removals,
        *,
        dry_run: bool,
        created: datetime.datetime | None = None,
    ) -> PlanHeader:
        """The header of a plan made from ``inventory`` with ``options`` and ``removals``."""
        from . import __version__  # noqa: PLC0415 - the package imports this module

        return cls(
            root=inventory.url,
            created=created or datetime.datetime.now(datetime.timezone.utc),
            listing_started=inventory.started,
            tool=f"registry-gc {__version__}",
            options=options,
            removals=removals,
            dry_run=dry_run,
        )


@attrs.frozen(kw_only=True)
class PlanEntry:
    """One deletion line of a plan file, as read."""

    #: its line number in the file (the header is line 1)
    line: int
    category: Category
    reason: Reason
    repository: str | None
    digest: str | None
    #: a tag name or an upload id
    name: str | None
    size: int
    paths: tuple[PathRecord, ...]
    #: open multipart uploads to abort: (key, upload id)
    multipart: tuple[tuple[str, str], ...] = ()
    #: what a run did with it (``--deletions-out``); ``None`` in a plan
    status: str | None = None
    error: str | None = None
    #: why ``apply`` did not execute it (with status ``dropped``)
    dropped: str | None = None

    @property
    def identity(self) -> tuple[str, str | None, str | None, str | None]:
        """What the deletion is about, whatever its paths: how a fresh plan's deletion is found.

        A tag by its name (its digest may have moved), an upload by its id, a
        repository by its name; everything else by repository and digest (and
        tag, for tag history).
        """
        return identity_of(self.category, self.repository, self.digest, self.name)


def identity_of(
    category: Category, repository: str | None, digest: str | None, name: str | None
) -> tuple[str, str | None, str | None, str | None]:
    """:attr:`PlanEntry.identity` of a deletion given by its fields."""
    if category in {Category.TAG, Category.UPLOAD, Category.REPOSITORY}:
        digest = None
    return (category.value, repository, digest, name)


@attrs.frozen
class PlanFooter:
    """The last line of a plan file: how many deletions it lists, and their bytes."""

    deletions: int
    bytes: int


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
        if digest not in blobs:
            return None
        return PathRecord(path, blobs.size(digest), _stamp(blobs.mtime(digest)))
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


def _dumps(obj: Mapping[str, Any]) -> str:
    # ASCII only: names read from storage may hold surrogates (not UTF-8), which escape.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True) + "\n"


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
        for i, d in enumerate(plan.deletions):
            status = statuses[i] if statuses is not None else None
            error = next((f"{p}: {errors[p]}" for p in d.paths if p in errors), None)
            writer.add(d, records_of(inventory, d.paths), status=status, error=error)
    return PlanFooter(writer.count, writer.bytes)


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


# -- reading ------------------------------------------------------------------------------------

_REDO: Final = "write the plan again (gc --dry-run --plan-out FILE)"


class PlanReader:
    """A plan file read one entry at a time; the header is read (and checked) at once.

    Iterating yields every :class:`PlanEntry`, checking each line as it comes;
    at the end, :attr:`footer` holds the footer, and a file without one raises
    :class:`~registry_gc.PlanFileError`, as does any line that is not what the
    format says (naming the file and the line). ``name`` is the file's name in
    messages.
    """

    def __init__(self, lines: Iterable[str], *, name: str) -> None:
        self.name = name
        self._lines = iter(lines)
        self._number = 0
        self.footer: PlanFooter | None = None
        self.entries = 0
        first = self._next_object()
        if first is None:
            self._fail(None, "is empty: it is not a plan file", what=_REDO)
        self.header = _parse_header(first, self)

    def _fail(self, line: int | None, message: str, *, what: str = _REDO) -> NoReturn:
        where = f"plan file {self.name}" + (f", line {line}" if line is not None else "")
        msg = f"{where}: {message}; nothing was deleted: {what}"
        raise PlanFileError(msg, path=self.name, line=line)

    def _next_object(self) -> dict[str, Any] | None:
        for text in self._lines:
            self._number += 1
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError as e:
                detail = getattr(e, "msg", str(e))
                column = getattr(e, "colno", None)
                at = f" at column {column}" if column is not None else ""
                self._fail(self._number, f"not valid JSON ({detail}{at}): the file is damaged")
            if not isinstance(value, dict):
                self._fail(self._number, f"a {type(value).__name__}, not a JSON object")
            return value
        return None

    def __iter__(self) -> Iterator[PlanEntry]:
        while True:
            obj = self._next_object()
            if obj is None:
                self._fail(
                    None,
                    f"ends after line {self._number} without its footer line "
                    '({"end": true, …}): it was cut short',
                )
            if obj.get("end") is True:
                self.footer = _parse_footer(obj, self)
                extra = self._next_object()
                if extra is not None:
                    self._fail(self._number, "a line after the footer")
                return
            self.entries += 1
            yield _parse_entry(obj, self)

    def fail(self, line: int | None, message: str, *, what: str = _REDO) -> NoReturn:
        """Raise :class:`~registry_gc.PlanFileError` about ``line`` of this file."""
        self._fail(line, message, what=what)

    @property
    def line(self) -> int:
        """The number of the line read last."""
        return self._number


@contextlib.contextmanager
def read_plan(path: str | os.PathLike[str]) -> Iterator[PlanReader]:
    """Open the plan file at ``path``: a context manager giving its :class:`PlanReader`.

    A file that cannot be opened raises :class:`~registry_gc.ConfigError`;
    one that is no plan file, :class:`~registry_gc.PlanFileError`.
    """
    name = os.fspath(path)
    try:
        f = open(name, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        msg = f"cannot read the plan file {name}: {e.strerror or e}"
        raise ConfigError(msg, path=name) from e
    with f:
        try:
            yield PlanReader(f, name=name)
        except UnicodeDecodeError as e:
            msg = f"plan file {name} is not UTF-8 text ({e.reason}); nothing was deleted"
            raise PlanFileError(msg, path=name) from None


# -- parsing one line ---------------------------------------------------------------------------


def _field(obj: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], r: PlanReader) -> Any:  # noqa: ANN401
    if key not in obj:
        r.fail(r.line, f"has no {key!r}")
    value = obj[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        r.fail(r.line, f"{key!r} is {value!r}, not of the expected type")
    if not isinstance(value, kinds):
        r.fail(r.line, f"{key!r} is {value!r}, not of the expected type")
    return value


def _time(value: Any, key: str, r: PlanReader) -> datetime.datetime:  # noqa: ANN401
    try:
        t = datetime.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        r.fail(r.line, f"{key!r} is {value!r}, not an RFC 3339 time with a zone")
    return t


def _seconds(value: Any, key: str, r: PlanReader) -> datetime.timedelta:  # noqa: ANN401
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        r.fail(r.line, f"options.{key} is {value!r}, not a number of seconds")
    return datetime.timedelta(seconds=value)


def _parse_header(obj: dict[str, Any], r: PlanReader) -> PlanHeader:
    schema = obj.get("schema")
    if not isinstance(schema, str) or not schema.startswith(_SCHEMA_FAMILY):
        r.fail(r.line, "has no registry-gc plan header: it is not a plan file")
    if schema != SCHEMA:
        from . import __version__  # noqa: PLC0415

        r.fail(
            r.line,
            f"is in format {schema!r}, which registry-gc {__version__} does not read "
            f"(it reads {SCHEMA!r})",
            what="apply it with the registry-gc that wrote it, or plan again with this one",
        )
    o = _field(obj, "options", dict, r)
    try:
        options = Options(
            delete_untagged=_field(o, "delete_untagged", bool, r),
            grace=_seconds(_field(o, "grace", (int, float), r), "grace", r),
            uploads_older_than=_seconds(
                _field(o, "uploads_older_than", (int, float), r), "uploads_older_than", r
            ),
            prune_damaged=_field(o, "prune_damaged", bool, r),
            allow_no_manifests=_field(o, "allow_no_manifests", bool, r),
            allow_empty=_field(o, "allow_empty", bool, r),
        )
    except ConfigError as e:
        r.fail(r.line, f"options: {e}")
    return PlanHeader(
        root=_field(obj, "root", str, r),
        created=_time(_field(obj, "created", str, r), "created", r),
        listing_started=_time(_field(obj, "listing_started", str, r), "listing_started", r),
        tool=_field(obj, "tool", str, r),
        options=options,
        removals=_parse_removals(_field(obj, "removals", dict, r), r),
        dry_run=_field(obj, "dry_run", bool, r),
    )


def _parse_removals(obj: dict[str, Any], r: PlanReader) -> Removals:
    def names(key: str) -> list[str]:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            r.fail(r.line, f"removals.{key} is not a list of names")
        return value

    def per_repository(key: str) -> dict[str, list[str]]:
        value = obj.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()
        ):
            r.fail(r.line, f"removals.{key} is not an object of lists of names")
        return value

    try:
        return Removals(
            tags={Repository(k): {Tag(t) for t in v} for k, v in per_repository("tags").items()},
            repositories={Repository(n) for n in names("repositories")},
            manifests={
                Repository(k): {Digest(d) for d in v}
                for k, v in per_repository("manifests").items()
            },
        )
    except InvalidReferenceError as e:
        r.fail(r.line, f"removals: {e}")


def _parse_footer(obj: dict[str, Any], r: PlanReader) -> PlanFooter:
    deletions = _field(obj, "deletions", int, r)
    size = _field(obj, "bytes", int, r)
    return PlanFooter(deletions, size)


def _optional_str(obj: Mapping[str, Any], key: str, r: PlanReader) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        r.fail(r.line, f"{key!r} is {value!r}, not a string or null")
    return value


def _parse_path(item: Any, r: PlanReader) -> PathRecord:  # noqa: ANN401
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
        r.fail(r.line, f"path {item!r} is not [path, size, time]")
    path, size, mtime = item
    parts = path.split("/")
    if not path.startswith(V2_PREFIX) or ".." in parts or "." in parts or "" in parts:
        r.fail(
            r.line,
            f"deletes {path!r}, which is not a path inside {V2_PREFIX}: the file was edited",
            what="registry-gc deletes nothing outside the registry's tree; plan again",
        )
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        r.fail(r.line, f"the size of {path} is {size!r}, not a byte count or null")
    return PathRecord(path, size, None if mtime is None else _time(mtime, path, r))


def _parse_entry(obj: dict[str, Any], r: PlanReader) -> PlanEntry:
    try:
        category = Category(_field(obj, "category", str, r))
        reason = Reason(_field(obj, "reason", str, r))
    except ValueError as e:
        r.fail(r.line, str(e))
    size = _field(obj, "size", int, r)
    if size < 0:
        r.fail(r.line, f"size is {size}, not a byte count")
    paths = _field(obj, "paths", list, r)
    multipart = obj.get("multipart", [])
    if not isinstance(multipart, list) or not all(
        isinstance(u, list) and len(u) == 2 and all(isinstance(x, str) for x in u)
        for u in multipart
    ):
        r.fail(r.line, "multipart is not a list of [key, upload id]")
    records = tuple(_parse_path(p, r) for p in paths)
    for key, _ in multipart:
        _parse_path([key, None, None], r)
    status = _optional_str(obj, "status", r)
    return PlanEntry(
        line=r.line,
        category=category,
        reason=reason,
        repository=_optional_str(obj, "repository", r),
        digest=_optional_str(obj, "digest", r),
        name=_optional_str(obj, "name", r),
        size=size,
        paths=records,
        multipart=tuple((k, u) for k, u in multipart),
        status=status,
        error=_optional_str(obj, "error", r),
        dropped=_optional_str(obj, "dropped", r),
    )
