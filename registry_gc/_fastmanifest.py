"""The common manifest, read ten times faster: Python's :mod:`json` where it cannot differ from Go.

:func:`registry_gc.manifests.parse_manifest` reads a body as distribution's
``encoding/json`` does (:mod:`registry_gc._gojson`), which costs about 100 µs
a manifest in Python: a minute at a million manifests. Nearly every body a
registry holds is plain — valid UTF-8, every key of distribution's structs
spelled exactly once as the struct spells it, every value of the type the
struct wants, a media type distribution knows — and on such a body Python's
reading and Go's agree. :func:`~registry_gc.manifests.parse_plain` reads it
in about 15 µs (the checks are here; ``manifests`` builds the result). On
anything else (a repeated key, a key that matches a field only
case-insensitively, ``null`` where a value belongs, a wrong type, a digest
that is not one, a string with a lone surrogate, an unknown kind, no
``mediaType``) :exc:`NotPlainError` is raised inside, ``None`` comes out,
and the full reading decides. It never gives a result the full reading would
not give (``tests/test_manifests.py`` checks both readings against each other).
"""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn

from .layout import ALGORITHMS, Digest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "NotPlainError",
    "annotations_of",
    "check_keys",
    "descriptor",
    "digest",
    "items_of",
    "load_plain",
    "text",
]

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: Lower-case hex, any length: a regex is ~40 % faster than ``frozenset.issuperset`` on 64 chars.
_HEX: Final = re.compile(r"[0-9a-f]*").fullmatch


class NotPlainError(Exception):
    """The body is not one the fast reading is sure of."""


def _not_plain(*_: object) -> NoReturn:
    raise NotPlainError


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise NotPlainError  # a repeated key: Go decodes it again, into the same field
    return out


def _fields(*names: str) -> tuple[frozenset[str], frozenset[str]]:
    """A struct's field names, and the same lower-cased (what a key must not fold onto)."""
    return frozenset(names), frozenset(n.lower() for n in names)


_LENIENT: Final = ("subject", "artifactType", "annotations")
_IMAGE: Final = _fields("schemaVersion", "mediaType", "config", "layers", *_LENIENT)
_INDEX: Final = _fields("schemaVersion", "mediaType", "manifests", *_LENIENT)
_DESCRIPTOR: Final = _fields("mediaType", "size", "digest", "urls", "annotations", "platform")
_PLATFORM: Final = _fields("architecture", "os", "variant", "os.version", "os.features", "features")


def _keys(obj: dict[str, Any], fields: tuple[frozenset[str], frozenset[str]]) -> None:
    """Refuse a key that Go would match to a field although it is not spelled as the field."""
    exact, lower = fields
    for key in obj:
        if key in exact:
            continue
        if not key.isascii() or key.lower() in lower:
            raise NotPlainError  # folds onto a field (U+017F and U+212A fold to s and k)


def text(value: object) -> str:
    """A string Go reads the same (no lone surrogate: Go makes those U+FFFD)."""
    if type(value) is not str:
        raise NotPlainError
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NotPlainError from None
    return value


def _strings(value: object) -> None:
    if type(value) is not list:
        raise NotPlainError
    for item in value:
        text(item)


def annotations_of(value: object) -> Mapping[str, str] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise NotPlainError
    for k, v in value.items():
        text(k)
        text(v)
    return MappingProxyType(value) if value else None


def _platform(value: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise NotPlainError
    _keys(value, _PLATFORM)
    for name in ("architecture", "os", "variant", "os.version"):
        if name in value:
            text(value[name])
    for name in ("os.features", "features"):
        if name in value:
            _strings(value[name])
    return value


def digest(value: object) -> Digest | None:
    """A reference's digest; absent is ``None``; anything but a valid digest is not plain."""
    if value is None:
        return None
    if type(value) is not str:
        raise NotPlainError
    alg, sep, hexpart = value.partition(":")
    if not sep or ALGORITHMS.get(alg) != len(hexpart) or _HEX(hexpart) is None:
        raise NotPlainError  # empty, or no digest: the full reading notes it
    return Digest._trusted(value)  # noqa: SLF001 - just validated


def descriptor(value: object) -> dict[str, Any]:
    """A descriptor, its fields of the types distribution's struct wants."""
    if type(value) is not dict:
        raise NotPlainError
    _keys(value, _DESCRIPTOR)
    if "mediaType" in value:
        text(value["mediaType"])
    if "size" in value:
        size = value["size"]
        if type(size) is not int or not _INT64_MIN <= size <= _INT64_MAX:
            raise NotPlainError
    if "urls" in value:
        _strings(value["urls"])
    if "annotations" in value:
        annotations_of(value["annotations"])
    if "platform" in value:
        _platform(value["platform"])
    return value


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_not_plain)


def load_plain(data: bytes, limit: int) -> dict[str, Any] | None:
    """``data`` as a JSON object, or ``None``.

    ``None`` unless it is valid UTF-8 of at most ``limit`` bytes, with no
    repeated key and no NaN or Infinity.
    """
    if len(data) > limit:
        return None
    try:
        document = _DECODER.decode(data.decode("utf-8"))
    except (NotPlainError, ValueError, RecursionError):
        return None
    return document if type(document) is dict else None


def check_keys(doc: dict[str, Any], *, index: bool) -> None:
    """Refuse a top-level key that folds onto a field of an index or an image manifest."""
    _keys(doc, _INDEX if index else _IMAGE)


def items_of(doc: dict[str, Any], name: str) -> list[Any]:
    """The array ``name`` (absent: empty)."""
    items = doc.get(name, [])
    if type(items) is not list:
        raise NotPlainError
    return items
