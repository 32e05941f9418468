"""Tests of registry_gc._gojson: Go's encoding/json rules, as distribution decodes manifests."""

from __future__ import annotations

import pytest
from registry_gc import _gojson as go

POINT = go.struct(x=go.INT, name=go.STRING, tags=go.slice_of(go.STRING))
SHAPE = go.struct(
    points=go.slice_of(POINT),
    origin=go.ptr(POINT),
    center=POINT,
    labels=go.map_of(go.STRING),
)


def decode(text: str, typ: go.GoStruct = SHAPE) -> dict:
    """Decode JSON text into ``typ``."""
    return go.decode(typ, go.loads(text.encode())).value


@pytest.mark.parametrize(
    ("key", "folded"),
    [("Layers", "layers"), ("layer\u017f", "layers"), ("\u212aey", "key"), ("l\u00e4", None)],
)
def test_fold(key: str, folded: str | None) -> None:
    """Keys fold with Unicode simple folding; only U+017F and U+212A reach ASCII letters."""
    assert go.fold(key) == folded


def test_field_lookup_prefers_exact_then_folded() -> None:
    """A key matches its field exactly or case-insensitively; other keys match nothing."""
    assert POINT.field_of("name") == "name"
    assert POINT.field_of("NAME") == "name"
    assert POINT.field_of("nam") is None


def test_repeated_keys_decode_into_the_same_value() -> None:
    """Scalars: last wins; structs merge; pointers merge; maps merge."""
    v = decode(
        '{"center": {"x": 1}, "CENTER": {"name": "c"}, "origin": {"x": 2}, "Origin": {"name": "o"},'
        ' "labels": {"a": "1"}, "labels": {"b": "2"}}'
    )
    assert v["center"] == {"x": 1, "name": "c"}
    assert v["origin"] == {"x": 2, "name": "o"}
    assert v["labels"] == {"a": "1", "b": "2"}


def test_slices_reuse_elements_and_truncate() -> None:
    """A repeated array decodes element i into the old element i; the length is the new one."""
    out = go.decode(SHAPE, go.loads(b'{"points": [{"x": 1}, {"x": 2}], "points": [{"name": "p"}]}'))
    assert out.value["points"] == [{"x": 1, "name": "p"}]
    assert out.repeated == ["points"]


def test_null_semantics() -> None:
    """Null: nil for slices, maps and pointers; no change for strings, ints and structs."""
    v = decode(
        '{"points": [{"x": 1, "x": null}], "origin": {"x": 1}, "origin": null, '
        '"center": {"x": 3}, "center": null, "labels": {"a": "b"}, "labels": null}'
    )
    assert v["points"] == [{"x": 1}]
    assert v["origin"] is None
    assert v["center"] == {"x": 3}
    assert v["labels"] is None


def test_empty_array_is_not_nil() -> None:
    """[] decodes to an empty, non-nil slice (distribution's `Manifests != nil` test)."""
    assert decode('{"points": []}')["points"] == []
    assert "points" not in decode("{}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"points": {}}', "points must be an array, not an object"),
        ('{"center": {"x": "1"}}', "center.x must be an integer, not a string"),
        ('{"center": {"x": 1.0}}', "center.x must be an integer, not a number"),
        ('{"center": {"x": 1e2}}', "center.x must be an integer"),
        ('{"center": {"x": true}}', "center.x must be an integer, not a boolean"),
        ('{"center": {"x": 9223372036854775808}}', "center.x must be an integer"),
        ('{"labels": {"a": 1}}', "labels['a'] must be a string, not a number"),
        ('{"center": {"tags": ["a", 2]}}', "center.tags[1] must be a string"),
        ("[1]", "not an object"),
    ],
)
def test_type_errors_fail_the_decode(text: str, message: str) -> None:
    """A value of the wrong type in a known field makes the whole decode fail (first error)."""
    with pytest.raises(go.GoDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(text)


def test_type_errors_in_unknown_fields_do_not_matter() -> None:
    """Unknown fields are skipped without looking at their type."""
    assert decode('{"unknown": {"x": "1"}, "center": {"x": 1, "other": [null]}}') == {
        "center": {"x": 1}
    }


def test_int64_bounds() -> None:
    """Integers within int64 decode; the extremes included."""
    assert decode('{"center": {"x": -9223372036854775808}}')["center"]["x"] == -(2**63)


def test_invalid_utf8_inside_strings_is_tolerated_outside_is_not() -> None:
    """Go replaces invalid UTF-8 in strings; outside strings it is a syntax error."""
    assert decode_bytes(b'{"center": {"name": "\xff\xfe"}}')["center"]["name"]
    with pytest.raises(go.GoDecodeError, match="invalid JSON"):
        go.loads(b'{"center": \xff}')


def decode_bytes(data: bytes) -> dict:
    """Decode raw JSON bytes into SHAPE."""
    return go.decode(SHAPE, go.loads(data)).value


def test_digest_strings_finds_every_digest_value() -> None:
    """digest_strings yields digest-valued strings at any depth, not keys, not other strings."""
    d1, d2 = "sha256:" + "a" * 64, "sha512:" + "b" * 128
    doc = go.loads(
        (
            f'{{"x": ["{d1}", {{"y": "{d2}"}}], "{d1}": 1, "z": "sha256:{"A" * 64}", "n": 1.5}}'
        ).encode()
    )
    assert sorted(go.digest_strings(doc)) == sorted([d1, d2])
