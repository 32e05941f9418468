"""Reading plan files: a stream of checked entries, refusals naming the file and the line.

See :mod:`registry_gc.planfile`, which re-exports :class:`PlanReader` and :func:`read_plan`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ._errors import ConfigError, InvalidReferenceError, PlanFileError
from ._planformat import SCHEMA, SCHEMA_FAMILY, PathRecord, PlanEntry, PlanFooter, PlanHeader
from .layout import V2_PREFIX, Digest, Repository, Tag
from .options import Options, Removals
from .plan import Category, Reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = ["PlanReader", "read_plan"]

_REDO: Final = "write the plan again (gc --dry-run --plan-out FILE)"


class PlanReader:
    """A plan file read one entry at a time; the header is read (and checked) at once.

    Iterating yields every :class:`PlanEntry`, checking each line as it comes;
    at the end, ``footer`` holds the footer, and a file without one raises
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
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_FAMILY):
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
