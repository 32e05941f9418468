"""Semantic versions in tags: what parses, and semver.org 2.0 precedence."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_gc.policy import parse_semver

SEMVER_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0-rc.1",
    "v1.1.0",
    "1.10.0",
    "2.0.0",
]


def test_semver_orders_prereleases_as_semver_org_says() -> None:
    """The semver.org 2.0 precedence example holds, pre-releases before their release."""
    versions = [parse_semver(t) for t in SEMVER_CHAIN]
    assert all(v is not None for v in versions)
    for lower, higher in itertools.pairwise(versions):
        assert lower is not None
        assert higher is not None
        assert lower < higher, (lower, higher)
    shuffled = random.Random(7).sample(SEMVER_CHAIN, len(SEMVER_CHAIN))
    assert sorted(shuffled, key=parse_semver) == SEMVER_CHAIN


def test_semver_ignores_build_metadata_for_ordering() -> None:
    """``+build`` (or ``_build`` in a tag) does not change precedence."""
    a, b, rc = (
        parse_semver("1.0.0+20260101"),
        parse_semver("1.0.0_exp.sha.5114f85"),
        parse_semver("1.0.0-rc.1_b7"),
    )
    assert a is not None
    assert b is not None
    assert rc is not None
    assert (a.build, b.build, rc.build) == ("20260101", "exp.sha.5114f85", "b7")
    assert a.precedence == b.precedence
    assert not a < b
    assert not b < a
    assert rc < a


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "1.0",
        "1",
        "01.0.0",
        "1.02.0",
        "1.0.0-01",
        "1.0.0-",
        "1.0.0+",
        "V1.0.0",
        "1.0.0-a..b",
    ],
)
def test_non_semver_tags_do_not_parse(tag: str) -> None:
    """Anything but ``v?MAJOR.MINOR.PATCH(-pre)?(+build)?`` (no leading zeros) is not semver."""
    assert parse_semver(tag) is None


def _reference_compare(a: str, b: str) -> int:
    """semver.org §11, written out directly: -1, 0 or 1."""

    def split(v: str) -> tuple[list[int], list[str] | None]:
        v = v.lstrip("v").replace("_", "+").split("+")[0]
        core, _, pre = v.partition("-")
        return [int(x) for x in core.split(".")], (pre.split(".") if pre else None)

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if pa is None or pb is None:
        return 0 if pa == pb else (1 if pa is None else -1)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


_num = st.integers(0, 12).map(str)
_alnum = st.sampled_from(["alpha", "beta", "rc", "a1", "x-y", "RC", "0a"])
_version = st.builds(
    lambda core, pre, build: (
        ".".join(core) + (("-" + ".".join(pre)) if pre else "") + (("+" + build) if build else "")
    ),
    st.lists(_num, min_size=3, max_size=3),
    st.lists(st.one_of(_num, _alnum), max_size=3),
    st.sampled_from(["", "b1", "exp.sha"]),
)


@settings(max_examples=400, deadline=None)
@given(_version, _version)
def test_semver_precedence_matches_the_spec(a: str, b: str) -> None:
    """For random versions, precedence agrees with a direct reading of semver.org §11."""
    va, vb = parse_semver(a), parse_semver(b)
    assert va is not None
    assert vb is not None
    got = (va.precedence > vb.precedence) - (va.precedence < vb.precedence)
    assert got == _reference_compare(a, b)
