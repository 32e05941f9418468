r"""JSON as Go's ``encoding/json`` decodes it into distribution's structs.

distribution reads every manifest with ``json.Unmarshal`` into Go structs,
and what it verifies on a push and serves on a pull is what *that* reading
sees. Python's :mod:`json` reads the same bytes differently in ways that
matter for what a manifest references. This module reproduces Go's reading
(sources: ``encoding/json/decode.go`` and ``fold.go`` of the Go release the
registry was built with; the rules are the same from Go 1.13 to 1.23):

- **keys match fields case-insensitively** (``"Layers"``, ``"LAYERS"``), with
  Unicode simple folding, so ``"layer\u017f"`` (a long s) and ``"\u212aey"``
  (the Kelvin sign) match ``layers`` and ``key``; an exact match is preferred, and
  distribution's field names never fold onto each other (``object()``);
- **a repeated key decodes again into the same field**: the last scalar wins,
  an object is *merged* into the struct already there, and an array decodes
  into the existing slice element by element, so fields of element ``i`` from
  an earlier occurrence survive when the later one lacks them (``array()``);
- **null** sets a slice, map or pointer to nil and leaves a string, number or
  struct unchanged (``literalStore``);
- **invalid UTF-8 inside a string** is replaced with U+FFFD, not rejected;
  outside strings it is a syntax error (``unquote``, ``checkValid``);
- a value of the **wrong type** (``"layers": {}``, ``"size": "1"``, a number
  with a fraction or an exponent into an integer) makes ``Unmarshal`` fail
  (``UnmarshalTypeError``, returned after the rest is decoded);
- **unknown fields** are ignored, whatever their type.

Repeated array fields are the one place where the exact result depends on
details of the Go runtime (slice capacity growth), so :func:`decode` reports
every repeated key in :attr:`Decoded.repeated`; callers keep the union of
every occurrence there instead of guessing.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "Decoded",
    "GoDecodeError",
    "GoStruct",
    "GoType",
    "Pairs",
    "decode",
    "digest_strings",
    "fold",
    "loads",
    "struct",
]


class GoDecodeError(ValueError):
    """Go's ``json.Unmarshal`` would fail on this input (syntax or type)."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object as its ``(key, value)`` pairs, in document order, repeats included."""

    __slots__ = ()


class GoNumber(str):
    """A JSON number with a fraction or an exponent, kept as its text."""

    __slots__ = ()


def _reject_constant(name: str) -> NoReturn:
    # Go rejects NaN and Infinity: they are not JSON.
    raise GoDecodeError(f"{name} is not valid JSON")


def loads(data: bytes) -> object:
    """Parse ``data`` keeping every object's pairs (:class:`Pairs`) and number texts.

    Invalid UTF-8 inside strings survives as lone surrogates (Go replaces it
    with U+FFFD; either way it matches no field name and is no digest).

    Raises:
        GoDecodeError: the bytes are not one JSON value (Go's ``checkValid``).
    """
    text = data.decode("utf-8", "surrogateescape")
    try:
        return json.loads(
            text,
            object_pairs_hook=Pairs,
            parse_float=GoNumber,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise GoDecodeError(msg) from None
    except RecursionError:
        msg = "invalid JSON: nested too deeply"
        raise GoDecodeError(msg) from None
    except ValueError as exc:  # an integer beyond int_max_str_digits
        msg = f"invalid JSON: {str(exc)[:200]}"
        raise GoDecodeError(msg) from None


# Unicode characters outside ASCII whose simple case folding reaches an ASCII
# letter: U+017F LATIN SMALL LETTER LONG S (s) and U+212A KELVIN SIGN (k).
_FOLD_TO_ASCII: Final = str.maketrans({"\u017f": "s", "\u212a": "k"})


def fold(key: str) -> str | None:
    """The key folded as Go folds it for field matching, or ``None`` if it cannot match.

    distribution's field names are ASCII, so a key containing any other
    non-ASCII character never matches one.
    """
    folded = key.translate(_FOLD_TO_ASCII)
    if not folded.isascii():
        return None
    return folded.lower()


# -- types -------------------------------------------------------------------------------


@attrs.frozen
class GoType:
    """A Go type a JSON value decodes into: ``kind`` and, for containers, ``elem``."""

    kind: str  # "string" | "int" | "slice" | "map" | "struct" | "ptr" | "any"
    elem: GoType | GoStruct | None = None


@attrs.frozen
class GoStruct:
    """A Go struct: JSON field name → type. Field names are ASCII."""

    fields: Mapping[str, GoType | GoStruct]
    _by_fold: Mapping[str, str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_fold", {name.lower(): name for name in self.fields})

    def field_of(self, key: str) -> str | None:
        """The field a JSON key decodes into, by Go's rule, or ``None`` (ignored)."""
        if key in self.fields:
            return key
        folded = fold(key)
        return None if folded is None else self._by_fold.get(folded)

    def extend(self, **fields: GoType | GoStruct) -> GoStruct:
        """This struct with more (or overriding) fields: Go's embedding, shallower wins."""
        return GoStruct({**self.fields, **fields})


STRING: Final = GoType("string")
INT: Final = GoType("int")
ANY: Final = GoType("any")


def struct(**fields: GoType | GoStruct) -> GoStruct:
    """A struct type from keyword fields (use ``**{"os.version": STRING}`` for dotted names)."""
    return GoStruct(fields)


def slice_of(elem: GoType | GoStruct) -> GoType:
    """``[]elem``."""
    return GoType("slice", elem)


def map_of(elem: GoType | GoStruct) -> GoType:
    """``map[string]elem``."""
    return GoType("map", elem)


def ptr(elem: GoStruct) -> GoType:
    """``*elem``."""
    return GoType("ptr", elem)


# -- decoding ----------------------------------------------------------------------------

#: A decoded Go value: str, int, list (a slice), dict (a struct or a map), or None (nil).
Value: TypeAlias = Any

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@attrs.define
class Decoded:
    """The result of :func:`decode`: the value, and what made it depend on Go's details."""

    value: Value
    #: dotted paths of fields that appeared more than once in one object
    repeated: list[str] = attrs.Factory(list)
    #: keys that matched a field only case-insensitively (``"Layers"`` → ``layers``)
    folded: list[str] = attrs.Factory(list)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, GoNumber)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list) and not isinstance(value, Pairs):
        return "an array"
    return "an object"


class _Decoder:
    def __init__(self) -> None:
        self.out = Decoded(None)
        self.error: str | None = None
        # Go type kind -> how a JSON value decodes into it.
        self.by_kind: dict[str, Callable[[GoType, object, Value, str], Value]] = {
            "any": self.anything,
            "string": self.string,
            "int": self.integer,
            "slice": self.slice,
            "map": self.map,
            "ptr": self.pointer,
        }

    def fail(self, where: str, value: object, want: str) -> None:
        # Go records the first type error, keeps decoding, and returns it at the end.
        if self.error is None:
            self.error = f"{where or 'the manifest'} must be {want}, not {_type_name(value)}"

    def value(self, typ: GoType | GoStruct, value: object, current: Value, where: str) -> Value:
        if isinstance(typ, GoStruct):
            return self.struct(typ, value, current, where)
        decode = self.by_kind.get(typ.kind)
        if decode is None:  # pragma: no cover - a bug in a schema
            msg = f"unknown Go type kind {typ.kind!r}"
            raise AssertionError(msg)
        return decode(typ, value, current, where)

    def anything(self, _typ: GoType, _value: object, current: Value, _where: str) -> Value:
        # A field whose value is not read (Go's interface{}): any JSON is accepted.
        return current

    def string(self, _typ: GoType, value: object, current: Value, where: str) -> Value:
        if value is None:
            return current
        if isinstance(value, str) and not isinstance(value, GoNumber):
            return value
        self.fail(where, value, "a string")
        return current

    def integer(self, _typ: GoType, value: object, current: Value, where: str) -> Value:
        if value is None:
            return current
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return value
        self.fail(where, value, "an integer")
        return current

    def pointer(self, typ: GoType, value: object, current: Value, where: str) -> Value:
        if value is None:
            return None
        assert isinstance(typ.elem, GoStruct)
        return self.struct(typ.elem, value, current if current is not None else {}, where)

    def slice(self, typ: GoType, value: object, current: Value, where: str) -> Value:
        if value is None:
            return None
        if not isinstance(value, list) or isinstance(value, Pairs):
            self.fail(where, value, "an array")
            return current
        assert typ.elem is not None
        old: list[Value] = current if isinstance(current, list) else []
        # Element i decodes into the existing element i (Go reuses it), else a zero value.
        return [
            self.value(typ.elem, item, old[i] if i < len(old) else None, f"{where}[{i}]")
            for i, item in enumerate(value)
        ]

    def map(self, typ: GoType, value: object, current: Value, where: str) -> Value:
        if value is None:
            return None
        if not isinstance(value, Pairs):
            self.fail(where, value, "an object")
            return current
        assert typ.elem is not None
        out: dict[str, Value] = dict(current) if isinstance(current, dict) else {}
        for key, item in value:  # map keys are exact; a repeated key: the last wins
            out[key] = self.value(typ.elem, item, None, f"{where}[{key[:60]!r}]")
        return out

    def struct(self, typ: GoStruct, value: object, current: Value, where: str) -> Value:
        if value is None:
            return current
        if not isinstance(value, Pairs):
            self.fail(where, value, "an object")
            return current
        out: dict[str, Value] = dict(current) if isinstance(current, dict) else {}
        seen: set[str] = set()
        for key, item in value:
            name = typ.field_of(key)
            if name is None:
                continue
            path = f"{where}.{name}" if where else name
            if name in seen:
                self.out.repeated.append(path)
            seen.add(name)
            if name != key:
                self.out.folded.append(f"{where}.{key}" if where else key)
            out[name] = self.value(typ.fields[name], item, out.get(name), path)
        return out


def decode(typ: GoStruct, document: object) -> Decoded:
    """Decode a :func:`loads` result into ``typ`` as Go's ``json.Unmarshal`` would.

    A struct decodes to a dict holding only the fields present (absent means
    Go's zero value); a slice to a list, ``None`` for nil.

    Raises:
        GoDecodeError: Go would return an error (the first type mismatch).
    """
    decoder = _Decoder()
    if not isinstance(document, Pairs):
        if document is None:  # json.Unmarshal("null", &s) succeeds and changes nothing
            decoder.out.value = {}
            return decoder.out
        msg = f"the JSON is {_type_name(document)}, not an object"
        raise GoDecodeError(msg)
    decoder.out.value = decoder.struct(typ, document, {}, "")
    if decoder.error is not None:
        raise GoDecodeError(decoder.error)
    return decoder.out


_DIGEST: Final = re.compile(r"(?:sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})\Z")


def digest_strings(document: object) -> Iterator[str]:
    """Every string in the document (values, at any depth) that is a valid digest."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, Pairs):
            stack.extend(v for _, v in item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not isinstance(item, GoNumber) and _DIGEST.match(item):
            yield item
