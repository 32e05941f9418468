"""ListObjectsV2 pages read straight from their XML body, without botocore's parser.

botocore reads a 2xx S3 response twice: once into an ElementTree only to see
whether it is an ``<Error>`` (``_handle_200_error``), then through its
service model, a dict per object built shape by shape, and then it
url-decodes every key. For a page of 1000 keys that is most of the client's
CPU for the request (64 ms of it, against 10 ms now, measured under load:
see "S3 client CPU" in ``docs/benchmarks.md``). :func:`parse_list_page` reads
the fields the backend uses (``Key``, ``Size``, ``LastModified``, ``ETag``,
``CommonPrefixes``, ``IsTruncated``, ``NextContinuationToken``) with one
regular expression for records whose children come in the order of the
first, and a few ``str.find`` per record otherwise. :func:`install` puts it
in place of that first reading on a client, for 2xx ListObjectsV2 responses
only: the request, its signature, its retries and the parsing of every other
response stay botocore's.

It reads only bodies of the plain form every S3 server sends: one
``<ListBucketResult>`` root whose tags are bare names (no prefix, no
attribute), text without markup, and XML's five entities or character
references. Anything else — a comment, CDATA, a processing instruction or
DOCTYPE, a self-closing element, a carriage return, a repeated or missing
field, a non-UTF-8 encoding, a body cut off — makes it return ``None``, and
botocore reads that body as it always did. Keys come out as botocore gives
them: entities decoded, and url-decoded (``unquote_plus``) when the response
says ``EncodingType`` ``url`` (botocore asks for it on every listing that
does not set it, and the backend never does).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

import attrs

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable, Mapping

__all__ = [
    "PAGE_FIELD",
    "ListPage",
    "install",
    "page_from_parsed",
    "parse_list_page",
    "unquote_etag",
]

#: The field of a parsed ListObjectsV2 response that holds its :class:`ListPage`.
PAGE_FIELD = "RegistryGCListPage"
#: The operation whose responses are read here.
_OPERATION = "ListObjectsV2"
_ROOT_OPEN = "<ListBucketResult"
_ROOT_CLOSE = "</ListBucketResult>"
_XML_SPACE = " \t\n\r"
#: The plain form: text without markup, and tags that are bare names (no
#: prefix, attribute, space or ``/>``; no comment, CDATA, processing
#: instruction or DOCTYPE either, which all begin ``<!`` or ``<?``).
_PLAIN = re.compile(r"[^<]*(?:</?[A-Za-z][A-Za-z0-9]*>[^<]*)*")
#: An ``&`` that is not one of XML's entities or a character reference.
_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);)")
#: Bytes XML forbids (all controls but tab and newline), and ``\r``, which it rewrites.
_CONTROLS = bytes([*range(0x09), *range(0x0B, 0x20)])
#: U+FFFE and U+FFFF in UTF-8, which XML forbids too.
_NON_CHARACTERS = re.compile(b"\xef\xbf[\xbe\xbf]")
_REFERENCE = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]+)|#x([0-9A-Fa-f]+));")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
#: An element of text only: ``<Name>text</Name>``.
_SIMPLE = re.compile(r"<([A-Za-z][A-Za-z0-9]*)>[^<]*</\1>")
#: The fields of a ``<Contents>`` record that are read, in the order they are returned.
_FIELDS = ("Key", "Size", "LastModified")
#: A field read when a record has it (S3 always sends it; an empty text when missing).
_OPTIONAL = "ETag"
#: A record's raw texts: key, size, time, ETag.
_Row = tuple[str, str, str, str]


class _UnusualBodyError(ValueError):
    """The body is not of the plain form :func:`parse_list_page` reads."""


@attrs.frozen(slots=True)
class ListPage:
    """One ListObjectsV2 response, as columns.

    Object ``i`` is ``keys[i]``, of ``sizes[i]`` bytes (0 when the response
    gives no size), modified at ``modified[i]``, with the entity tag
    ``etags[i]`` (unquoted; ``None`` when the response gives none). Keys ending in ``/``
    (directory placeholders) are included. ``prefixes`` are the
    ``CommonPrefixes`` of a delimiter listing; ``token`` the continuation
    token of the next page, if any.
    """

    keys: list[str]
    sizes: list[int]
    modified: list[datetime.datetime]
    etags: list[str | None]
    prefixes: list[str]
    truncated: bool
    token: str | None


def unquote_etag(text: str) -> str | None:
    """An ETag without its double quotes (``W/`` kept); ``None`` for an empty one."""
    text = text.strip('"')
    return text or None


def _etag(raw: str) -> str | None:
    """A record's ETag from its raw text, quoted as Go (``&#34;``) or S3 (``&quot;``) write it."""
    for quote in ("&#34;", "&quot;"):
        if raw.startswith(quote) and raw.endswith(quote) and len(raw) > 2 * len(quote):
            inner = raw[len(quote) : -len(quote)]
            if "&" not in inner and '"' not in inner and "<" not in inner:
                return inner
    return unquote_etag(_text(raw))


def _char(code: int) -> str:
    """The character of an XML character reference; ``ValueError`` for one XML forbids."""
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD:
        return chr(code)
    if 0x10000 <= code <= 0x10FFFF:
        return chr(code)
    raise _UnusualBodyError(f"character reference to U+{code:04X}")


def _reference(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name:
        return _ENTITIES[name]
    return _char(int(decimal) if decimal else int(hexadecimal, 16))


def _text(text: str) -> str:
    """Element text with its entities and character references decoded."""
    if "<" in text:
        # An element inside this one: botocore would read the text before it only.
        raise _UnusualBodyError("markup inside a field")
    if "&" not in text:
        return text
    if _BARE_AMPERSAND.search(text):
        raise _UnusualBodyError("an & that is no reference")
    return _REFERENCE.sub(_reference, text)


def _raw(fragment: str, name: str) -> str | None:
    """The text of the one ``<name>`` of ``fragment``, as written (``None`` if it has none)."""
    start = fragment.find(f"<{name}>")
    if start < 0:
        return None
    start += len(name) + 2
    end = fragment.find(f"</{name}>", start)
    if end < 0 or fragment.find(f"<{name}>", end) >= 0:
        raise _UnusualBodyError(f"{name} unclosed or repeated")
    text = fragment[start:end]
    if "<" in text:
        # An element inside this one: botocore would read the text before it only.
        raise _UnusualBodyError("markup inside a field")
    return text


def _field(fragment: str, name: str) -> str | None:
    """The decoded text of the one ``<name>`` of ``fragment`` (``None`` if it has none)."""
    text = _raw(fragment, name)
    return None if text is None else _text(text)


def _split(fragment: str, name: str) -> tuple[list[str], str]:
    """The bodies of the ``<name>`` elements of ``fragment``, and the fragment without them."""
    parts = fragment.split(f"<{name}>")
    close = f"</{name}>"
    bodies: list[str] = []
    rest = [parts[0]]
    for part in parts[1:]:
        end = part.find(close)
        if end < 0:
            raise _UnusualBodyError(f"{name} unclosed")
        bodies.append(part[:end])
        rest.append(part[end + len(close) :])
    if close in rest[0]:
        raise _UnusualBodyError(f"{name} closed before it opened")
    return bodies, "".join(rest)


def _inner(body: bytes) -> str:
    """The text between ``<ListBucketResult …>`` and ``</ListBucketResult>``."""
    if len(body.translate(None, _CONTROLS)) != len(body) or _NON_CHARACTERS.search(body):
        raise _UnusualBodyError("a character XML forbids, or a carriage return")
    text = body.decode("utf-8")
    if text.startswith("<?xml"):
        end = text.find("?>")
        declaration = text[:end].lower().replace("'", '"')
        if end < 0 or ("encoding" in declaration and 'encoding="utf-8"' not in declaration):
            raise _UnusualBodyError("not UTF-8")
        text = text[end + 2 :]
    text = text.strip(_XML_SPACE)
    if not text.startswith(_ROOT_OPEN) or not text.endswith(_ROOT_CLOSE):
        raise _UnusualBodyError("not a ListBucketResult")
    open_end = text.find(">")
    tag = text[len(_ROOT_OPEN) : open_end]
    if (tag and tag[0] not in _XML_SPACE) or "<" in tag or tag.endswith("/"):
        raise _UnusualBodyError("not a ListBucketResult")
    return text[open_end + 1 : -len(_ROOT_CLOSE)]


def _check_plain(fragment: str) -> None:
    """Raise unless ``fragment`` is of the plain form (see :data:`_PLAIN`)."""
    if (
        not _PLAIN.fullmatch(fragment)
        # As many opening as closing tags (nesting is the server's to get right).
        or fragment.count("<") != 2 * fragment.count("</")
        or _BARE_AMPERSAND.search(fragment)
        or "]]>" in fragment
    ):
        raise _UnusualBodyError("markup this reader does not handle")


@attrs.frozen
class _RecordShape:
    """A pattern matching every ``<Contents>`` record whose children come in one order."""

    pattern: re.Pattern[str]
    #: Where Key, Size, LastModified and ETag are among the pattern's groups (ETag: -1
    #: when the records have none).
    order: tuple[int, int, int, int]
    #: Tags per record, its own included.
    tags: int


@functools.lru_cache(maxsize=16)
def _record_shape(children: tuple[str, ...]) -> _RecordShape | None:
    """The shape of records with these children (each once, text only), if it has the fields."""
    if len(set(children)) != len(children) or not set(_FIELDS) <= set(children):
        return None
    parts = ["<Contents>"]
    groups: list[str] = []
    for name in children:
        if name in _FIELDS or name == _OPTIONAL:
            parts.append(f"<{name}>([^<]*)</{name}>")
            groups.append(name)
        else:
            parts.append(f"<{name}>[^<]*</{name}>")
    parts.append("</Contents>")
    k, s, m = (groups.index(name) for name in _FIELDS)
    e = groups.index(_OPTIONAL) if _OPTIONAL in groups else -1
    return _RecordShape(re.compile("".join(parts)), (k, s, m, e), 2 + 2 * len(children))


def _rows(inner: str) -> tuple[list[_Row], str] | None:
    """Key, size, time and ETag of every record, if all have the first's children; and the rest.

    Read with one regular expression, built for the order of the first
    record's children; ``None`` when a record differs, so that
    :func:`_rows_one_by_one` reads them.
    """
    first = inner.find("<Contents>")
    if first < 0:
        return [], inner
    end = inner.find("</Contents>", first)
    record = inner[first + len("<Contents>") : end]
    children = tuple(_SIMPLE.findall(record))
    shape = _record_shape(children)
    if shape is None or 2 * len(children) != record.count("<"):
        return None
    last = inner.rfind("</Contents>") + len("</Contents>")
    middle = inner[first:last]
    found = shape.pattern.findall(middle)
    # Every record matched, and nothing but records lies between the first and the last.
    if len(found) != middle.count("<Contents>") or middle.count("<") != len(found) * shape.tags:
        return None
    k, s, m, e = shape.order
    if e < 0:
        rows = [(row[k], row[s], row[m], "") for row in found]
    else:
        rows = [(row[k], row[s], row[m], row[e]) for row in found]
    return rows, inner[:first] + inner[last:]


def _rows_one_by_one(inner: str) -> tuple[list[_Row], str]:
    """Key, size, time (each exactly once) and ETag (at most once) of every record; the rest.

    Raw texts, as :func:`_rows` gives them: :func:`_contents` decodes them once.
    """
    records, top = _split(inner, "Contents")
    n = len(records)
    if (
        inner.count("<Key>") != n
        or inner.count("<Size>") != n
        or inner.count("<LastModified>") != n
    ):
        raise _UnusualBodyError("a field missing, repeated or outside its record")
    rows: list[_Row] = []
    for record in records:
        key, size, when = (_raw(record, name) for name in _FIELDS)
        if key is None or size is None or when is None:
            raise _UnusualBodyError("a field missing")
        rows.append((key, size, when, _raw(record, _OPTIONAL) or ""))
    return rows, top


def _contents(
    rows: list[_Row], timestamp: Callable[[str], datetime.datetime], *, url: bool
) -> tuple[list[str], list[int], list[datetime.datetime], list[str | None]]:
    """Keys, sizes, times and ETags of the records' raw texts."""
    keys = [_text(key) if "&" in key else key for key, _, _, _ in rows]
    if url:
        keys = [unquote_plus(key) if "%" in key or "+" in key else key for key in keys]
    sizes = [int(_text(size)) if size else 0 for _, size, _, _ in rows]
    times: dict[str, datetime.datetime] = {}
    modified: list[datetime.datetime] = []
    for _, _, when, _ in rows:
        parsed = times.get(when)
        if parsed is None:
            parsed = times[when] = timestamp(_text(when))
        modified.append(parsed)
    return keys, sizes, modified, [_etag(etag) for _, _, _, etag in rows]


def _read(body: bytes, timestamp: Callable[[str], datetime.datetime]) -> ListPage:
    inner = _inner(body)
    rows_rest = _rows(inner)
    if rows_rest is None:
        _check_plain(inner)
        rows, top = _rows_one_by_one(inner)
    else:
        # The records matched a strict pattern; the rest is checked here.
        rows, top = rows_rest
        _check_plain(top)
    common, top = _split(top, "CommonPrefixes")
    url = _field(top, "EncodingType") == "url"
    keys, sizes, modified, etags = _contents(rows, timestamp, url=url)
    prefixes = [_field(record, "Prefix") for record in common]
    if None in prefixes:
        raise _UnusualBodyError("a CommonPrefixes without its Prefix")
    return ListPage(
        keys=keys,
        sizes=sizes,
        modified=modified,
        etags=etags,
        prefixes=[unquote_plus(p) if url else p for p in prefixes if p is not None],
        truncated=_field(top, "IsTruncated") == "true",
        token=_field(top, "NextContinuationToken"),
    )


def parse_list_page(body: bytes, timestamp: Callable[[str], datetime.datetime]) -> ListPage | None:
    """The page a ListObjectsV2 response body holds, or ``None`` if botocore must read it.

    ``timestamp`` parses ``LastModified`` (the parser botocore is given).

    >>> from registry_gc.backends._s3_client import fast_timestamp
    >>> body = (
    ...     b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Contents>'
    ...     b"<Key>a%20%26%20b</Key><Size>3</Size><LastModified>2026-01-02T03:04:05Z"
    ...     b"</LastModified></Contents><IsTruncated>false</IsTruncated>"
    ...     b"<EncodingType>url</EncodingType></ListBucketResult>"
    ... )
    >>> page = parse_list_page(body, fast_timestamp)
    >>> page.keys, page.sizes, page.truncated
    (['a & b'], [3], False)
    >>> parse_list_page(b"<ListBucketResult><!-- hm --></ListBucketResult>", fast_timestamp)
    """
    try:
        return _read(body, timestamp)
    except (ValueError, OverflowError):
        # UnicodeDecodeError and a bad Size or LastModified too: botocore decides.
        return None


def page_from_parsed(parsed: Mapping[str, Any]) -> ListPage:
    """The :class:`ListPage` of a response botocore parsed (and url-decoded) itself."""
    contents = parsed.get("Contents", ())
    return ListPage(
        keys=[obj["Key"] for obj in contents],
        sizes=[int(obj.get("Size") or 0) for obj in contents],
        modified=[obj["LastModified"] for obj in contents],
        etags=[unquote_etag(obj.get("ETag") or "") for obj in contents],
        prefixes=[p["Prefix"] for p in parsed.get("CommonPrefixes", ())],
        truncated=bool(parsed.get("IsTruncated")),
        token=parsed.get("NextContinuationToken"),
    )


def _read_listing(
    check_200_error: Callable[..., None] | None,
    timestamp: Callable[[str], datetime.datetime],
    operation_model: _Operation,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any] | None = None,
    **kwargs: object,
) -> None:
    """``before-parse.s3.*``: read a ListObjectsV2 body, else botocore's own 200-error check.

    A 2xx ListObjectsV2 body :func:`parse_list_page` reads is a whole
    ``ListBucketResult`` (neither an ``<Error>`` nor cut off, which is all
    botocore's check looks for): its page goes into the parsed response, and
    the body is emptied, which leaves botocore's parser nothing to do but
    the status, headers and request id. Every other response is left to
    botocore, its check included.
    """
    if (
        customized_response_dict is not None
        and operation_model.name == _OPERATION
        and response_dict.get("status_code") == 200
    ):
        page = parse_list_page(response_dict["body"], timestamp)
        if page is not None:
            customized_response_dict[PAGE_FIELD] = page
            customized_response_dict["IsTruncated"] = page.truncated
            if page.token is not None:
                customized_response_dict["NextContinuationToken"] = page.token
            response_dict["body"] = b""
            return
    if check_200_error is not None:
        check_200_error(
            operation_model=operation_model,
            response_dict=response_dict,
            customized_response_dict=customized_response_dict,
            **kwargs,
        )


def install(events: _Events, timestamp: Callable[[str], datetime.datetime]) -> None:
    """Have a client's ``events`` read its ListObjectsV2 bodies with :func:`parse_list_page`.

    Its parsed ListObjectsV2 responses then hold a :class:`ListPage` under
    :data:`PAGE_FIELD`, and no ``Contents`` or ``CommonPrefixes``: only for a
    client whose every caller knows (the backend's own), which never sets
    ``EncodingType`` itself.

    botocore parses every 2xx S3 body once before its parser does, to look
    for an ``<Error>`` root (``_handle_200_error``, on ``before-parse.s3.*``);
    :func:`_read_listing` takes its place and calls it for every other
    response. A botocore without it gets the reader after its own handlers.
    """
    import botocore.handlers  # noqa: PLC0415 - heavy, and only for S3

    check = getattr(botocore.handlers, "_handle_200_error", None)
    if callable(check):
        events.unregister("before-parse.s3.*", check)
        events.register_first(
            "before-parse.s3.*", functools.partial(_read_listing, check, timestamp)
        )
    else:  # pragma: no cover - botocore renamed it
        events.register(
            f"before-parse.s3.{_OPERATION}", functools.partial(_read_listing, None, timestamp)
        )


class _Operation(Protocol):
    """What is read of a botocore operation model: its name."""

    @property
    def name(self) -> str: ...


class _Events(Protocol):
    """A botocore client's event emitter (``client.meta.events``)."""

    def register_first(self, event_name: str, handler: Callable[..., None]) -> None: ...

    def register(self, event_name: str, handler: Callable[..., None]) -> None: ...

    def unregister(self, event_name: str, handler: Callable[..., None]) -> None: ...
