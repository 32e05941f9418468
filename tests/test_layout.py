"""Tests of registry_gc.layout: names, digests, and storage path <-> typed key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_gc import InvalidReferenceError
from registry_gc.layout import (
    ALGORITHMS,
    BLOBS_PREFIX,
    REPOSITORIES_PREFIX,
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
    blob_path,
    classify,
    parse_blob_path,
    repository_name_problem,
    repository_prefix,
    split_repository,
    tag_name_problem,
)

H64 = "0123456789abcdef" * 4
H96 = "0123456789abcdef" * 6
H128 = "0123456789abcdef" * 8
D256 = Digest("sha256:" + H64)
D384 = Digest("sha384:" + H96)
D512 = Digest("sha512:" + H128)
R = REPOSITORIES_PREFIX


# -- Digest ---------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "n"), [("sha256", 64), ("sha384", 96), ("sha512", 128)])
def test_digest_accepts_each_algorithm_with_its_exact_hex_length(alg: str, n: int) -> None:
    """sha256/384/512 with exactly 64/96/128 lower-case hex digits are digests."""
    hexpart = ("0123456789abcdef" * 8)[:n]
    d = Digest(f"{alg}:{hexpart}")
    assert d == f"{alg}:{hexpart}"
    assert (d.algorithm, d.hex) == (alg, hexpart)
    assert Digest.from_parts(alg, hexpart) == d
    assert isinstance(d, str)


@pytest.mark.parametrize(("alg", "n"), [("sha256", 64), ("sha384", 96), ("sha512", 128)])
@pytest.mark.parametrize("delta", [-1, 1])
def test_digest_rejects_a_hex_length_off_by_one(alg: str, n: int, delta: int) -> None:
    """One hex digit too few or too many is not a digest."""
    with pytest.raises(InvalidReferenceError, match="invalid digest"):
        Digest(f"{alg}:" + "a" * (n + delta))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        ":" + H64,
        H64,
        "SHA256:" + H64,
        "sha256:" + H64.upper(),
        "sha256:" + H64[:-1] + "g",
        "md5:" + H64[:32],
        "sha1:" + H64[:40],
        "sha256:" + H96,  # the hex length of another algorithm
        "sha512:" + H64,
        "sha256:" + H64 + "\n",
        " sha256:" + H64,
        "sha256:" + H64 + ":",
        "sha256+b64u:" + H64,
    ],
)
def test_digest_rejects_malformed_values(value: str) -> None:
    """Anything but <sha256|sha384|sha512>:<lower-case hex of the exact length> is rejected."""
    with pytest.raises(InvalidReferenceError):
        Digest(value)


def test_digest_error_is_a_value_error_and_truncates_huge_input() -> None:
    """The error is a ValueError and does not echo megabytes of input."""
    with pytest.raises(ValueError, match="invalid digest") as info:
        Digest("x" * 100_000)
    assert len(str(info.value)) < 400


# -- Repository -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "library/alpine",
        "a/b/c/d/e",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a.b_c__d-e--f",
        "x" * 255,
        "/".join(["abc"] * 63) + "/xyz",  # 255 characters
    ],
)
def test_repository_accepts_the_distribution_grammar(name: str) -> None:
    """Components [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* joined by '/', up to 255 characters."""
    assert len(name) <= 255
    assert Repository(name) == name
    assert repository_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("x" * 256, "256 characters"),
        ("/".join(["abc"] * 64) + "d", "256 characters"),
        ("Foo", "component 'Foo'"),
        ("library/Alpine", "component 'Alpine'"),
        ("a..b", "component 'a..b'"),
        ("..", "component '..'"),
        ("a/../b", "component '..'"),
        (".", "component '.'"),
        ("a/", "component ''"),
        ("/a", "component ''"),
        ("a//b", "component ''"),
        ("a%2Fb", "component 'a%2Fb'"),
        ("a%2fb", "component 'a%2fb'"),
        ("a___b", "component"),
        ("a_", "component"),
        ("-a", "component"),
        ("a.-b", "component"),
        ("a b", "component"),
        ("a:b", "component"),
        ("a\\b", "component"),
    ],
)
def test_repository_rejects_names_outside_the_grammar(name: str, problem: str) -> None:
    """Upper case, '..', empty components, percent-encoding and over-long names are invalid."""
    reason = repository_name_problem(name)
    assert reason is not None
    assert problem in reason
    with pytest.raises(InvalidReferenceError, match="invalid repository name"):
        Repository(name)


# -- Tag --------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_x", "A", "9", "a-b_c.d", "X" * 128])
def test_tag_accepts_the_distribution_grammar(tag: str) -> None:
    """[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}: upper case and a leading '_' are fine."""
    assert Tag(tag) == tag
    assert tag_name_problem(tag) is None


@pytest.mark.parametrize("tag", ["", ".x", "-x", "X" * 129, "a/b", "a:b", "a+b", "a b", "é"])
def test_tag_rejects_names_outside_the_grammar(tag: str) -> None:
    """Empty, leading '.' or '-', more than 128 characters, or other characters are invalid."""
    assert tag_name_problem(tag) is not None
    with pytest.raises(InvalidReferenceError, match="invalid tag"):
        Tag(tag)


# -- paths ------------------------------------------------------------------------------


def test_blob_path_and_repository_prefix() -> None:
    """A blob lives at blobs/<alg>/<hex[:2]>/<hex>/data; a repository at repositories/<name>/."""
    assert blob_path(D256) == f"docker/registry/v2/blobs/sha256/01/{H64}/data"
    assert blob_path(D512) == f"docker/registry/v2/blobs/sha512/01/{H128}/data"
    assert repository_prefix("a/b") == "docker/registry/v2/repositories/a/b/"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"{BLOBS_PREFIX}sha256/01/{H64}/data", D256),
        (f"{BLOBS_PREFIX}sha384/01/{H96}/data", D384),
        (f"{BLOBS_PREFIX}sha512/01/{H128}/data", D512),
        (f"{BLOBS_PREFIX}sha256/02/{H64}/data", None),  # wrong two-letter directory
        (f"{BLOBS_PREFIX}sha256/01/{H64}/data/", None),
        (f"{BLOBS_PREFIX}sha256/01/{H64}/", None),
        (f"{BLOBS_PREFIX}sha256/01/{H64}/link", None),
        (f"{BLOBS_PREFIX}sha256/01/{H64}", None),
        (f"{BLOBS_PREFIX}md5/01/{H64[:32]}/data", None),
        (f"{BLOBS_PREFIX}sha256/01/{H64.upper()}/data", None),
        (f"{BLOBS_PREFIX}sha256/01/{H96}/data", None),
        (f"{BLOBS_PREFIX}sha256/01/x/{H64}/data", None),
        (f"{R}a/_layers/sha256/{H64}/link", None),
        (f"blobs/sha256/01/{H64}/data", None),  # no docker/registry/v2 prefix
    ],
)
def test_parse_blob_path(path: str, expected: Digest | None) -> None:
    """Only a well-formed blobs/<alg>/<hex[:2]>/<hex>/data path yields a digest."""
    assert parse_blob_path(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"{R}a/_layers/x", ("a", ["_layers", "x"])),
        (f"{R}a/b/c/_manifests/tags", ("a/b/c", ["_manifests", "tags"])),
        (f"{R}Foo/_uploads/u/data", ("Foo", ["_uploads", "u", "data"])),
        (f"{R}a/b", None),
        (f"{R}_layers/x", None),
        (f"{BLOBS_PREFIX}sha256", None),
    ],
)
def test_split_repository(path: str, expected: tuple[str, list[str]] | None) -> None:
    """The repository name is every component before the first '_' component."""
    assert split_repository(path) == expected


def _repo(name: str) -> Repository:
    return Repository._trusted(name)


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{BLOBS_PREFIX}sha256/01/{H64}/data", BlobData(D256)),
        (f"{BLOBS_PREFIX}sha512/01/{H128}/data", BlobData(D512)),
        (f"{R}a/_layers/sha256/{H64}/link", LayerLink(_repo("a"), D256)),
        (f"{R}a/b/c/_layers/sha512/{H128}/link", LayerLink(_repo("a/b/c"), D512)),
        (f"{R}a/_layers/sha384/{H96}/link", LayerLink(_repo("a"), D384)),
        (f"{R}a/_manifests/revisions/sha256/{H64}/link", RevisionLink(_repo("a"), D256)),
        (
            f"{R}lib/x/_manifests/tags/v1.0/current/link",
            TagCurrentLink(_repo("lib/x"), Tag("v1.0")),
        ),
        (
            f"{R}a/_manifests/tags/_t/index/sha256/{H64}/link",
            TagIndexLink(_repo("a"), Tag("_t"), D256),
        ),
        (
            f"{R}a/_manifests/revisions/sha256/{H64}/signatures/sha256/{'f' * 64}/link",
            LegacySignatureLink(_repo("a"), D256, Digest("sha256:" + "f" * 64)),
        ),
        (f"{R}a/_uploads/u-1/data", UploadFile(_repo("a"), "u-1", "data")),
        (f"{R}a/_uploads/u-1/startedat", UploadFile(_repo("a"), "u-1", "startedat")),
        (
            f"{R}a/_uploads/u-1/hashstates/sha256/1048576",
            UploadFile(_repo("a"), "u-1", "hashstates/sha256/1048576"),
        ),
    ],
)
def test_classify_every_kind_of_path(path: str, key: object) -> None:
    """Each layout path classifies to its typed key, whose .path gives the path back."""
    got = classify(path)
    assert got == key
    assert got.path == path


@pytest.mark.parametrize(
    "name", ["Foo", "a..b", "a/../b", "x" * 300, "lib/Alpine", "a%2Fb", "a/b%2fc"]
)
def test_classify_keeps_invalid_repository_names_instead_of_crashing(name: str) -> None:
    """A directory whose name breaks the grammar still classifies, with the name as found."""
    key = classify(f"{R}{name}/_manifests/revisions/sha256/{H64}/link")
    assert key == RevisionLink(_repo(name), D256)
    key = classify(f"{R}{name}/_layers/sha256/{H64}/link")
    assert isinstance(key, LayerLink)
    assert key.repository == name


@pytest.mark.parametrize(
    ("path", "repository"),
    [
        # stray files
        ("docker/registry/v2/README", None),
        ("docker/registry/v2/repositories/a/README", None),
        ("docker/registry/v2/repositories/README", None),
        ("docker/registry/v2/repositories/_layers/sha256/x/link", None),
        (f"{BLOBS_PREFIX}sha256/01/{H64}/data.tmp", None),
        (f"{BLOBS_PREFIX}README", None),
        (f"{R}a/_layers/sha256/{H64}/link.bak", "a"),
        (f"{R}a/_layers/sha256/{H64}/data", "a"),
        (f"{R}a/_layers/sha256/{H64}", "a"),
        (f"{R}a/_layers/md5/{H64[:32]}/link", "a"),
        (f"{R}a/_layers/sha256/{H128}/link", "a"),  # sha256 with a sha512-length hex
        (f"{R}a/_layers/sha256/{H64.upper()}/link", "a"),
        (f"{R}a/_manifests/revisions/sha256/{H64}/link/x", "a"),
        (f"{R}a/_manifests/revisions/sha256/xyz/link", "a"),
        (f"{R}a/_manifests/revisions/sha256/{H64}/signatures/sha256/bad/link", "a"),
        (f"{R}a/_manifests/tags/t/current/data", "a"),
        (f"{R}a/_manifests/tags/t/index/sha256/{H64}/data", "a"),
        (f"{R}a/_manifests/tags/t/index/md5/{H64}/link", "a"),
        (f"{R}a/_manifests/tags//current/link", "a"),
        (f"{R}a/_manifests/other", "a"),
        (f"{R}a/_manifests", "a"),
        # unknown _ directories (future layout, e.g. a referrers index)
        (f"{R}a/_referrers/sha256/{H64}/link", "a"),
        (f"{R}a/_whatever", "a"),
        (f"{R}a/b/_uploads", "a/b"),
        (f"{R}a/_uploads/u1", "a"),
        # S3 "directory" placeholders and keys ending in '/'
        (f"{R}a/", None),
        (f"{R}a/_layers/", "a"),
        (f"{R}a/_layers/sha256/{H64}/link/", "a"),
        (f"{R}a/_manifests/revisions/sha256/{H64}/", "a"),
        (f"{R}a/_manifests/tags/t/current/link/", "a"),
        (f"{R}a/_uploads/", "a"),
        (f"{R}a/_uploads/u1/", "a"),
        (f"{R}a/_uploads//data", "a"),
        (f"{BLOBS_PREFIX}sha256/01/{H64}/", None),
        ("docker/registry/v2/", None),
        ("", None),
    ],
)
def test_classify_unrecognized_paths(path: str, repository: str | None) -> None:
    """Anything off the layout is Unrecognized (with its repository when inside one)."""
    key = classify(path)
    assert isinstance(key, Unrecognized), key
    assert key.path == path
    assert key.repository == repository
    assert key.reason


def test_classify_path_inside_a_nested_unknown_directory_belongs_to_the_outer_name() -> None:
    """A '_' component ends the repository name: a/_x/b/_layers/... is unknown inside 'a'."""
    key = classify(f"{R}a/_x/b/_layers/sha256/{H64}/link")
    assert isinstance(key, Unrecognized)
    assert key.repository == "a"


# -- properties -------------------------------------------------------------------------

_COMPONENT = st.from_regex(r"[a-z0-9]{1,4}(?:(?:\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}", fullmatch=True)
NAMES = st.lists(_COMPONENT, min_size=1, max_size=4).map("/".join)
TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)


@st.composite
def digests(draw: st.DrawFn) -> Digest:
    """A valid digest of any accepted algorithm."""
    alg = draw(st.sampled_from(sorted(ALGORITHMS)))
    n = ALGORITHMS[alg]
    hexpart = draw(st.text("0123456789abcdef", min_size=n, max_size=n))
    return Digest(f"{alg}:{hexpart}")


UPLOAD_IDS = st.uuids().map(str)
UPLOAD_NAMES = st.sampled_from(["data", "startedat", "hashstates/sha256/0", "hashstates/sha512/9"])


@st.composite
def keys(draw: st.DrawFn) -> object:
    """Any layout key with valid names."""
    repo = Repository(draw(NAMES))
    kind = draw(st.sampled_from(["blob", "rev", "current", "index", "layer", "sig", "upload"]))
    d = draw(digests())
    if kind == "blob":
        return BlobData(d)
    if kind == "rev":
        return RevisionLink(repo, d)
    if kind == "current":
        return TagCurrentLink(repo, Tag(draw(TAGS)))
    if kind == "index":
        return TagIndexLink(repo, Tag(draw(TAGS)), d)
    if kind == "layer":
        return LayerLink(repo, d)
    if kind == "sig":
        return LegacySignatureLink(repo, d, draw(digests()))
    return UploadFile(repo, draw(UPLOAD_IDS), draw(UPLOAD_NAMES))


@settings(max_examples=200, deadline=None)
@given(keys())
def test_key_path_classify_round_trip(key: object) -> None:
    """For valid names, tags and digests (validated on construction), classify(key.path) == key."""
    path = key.path  # type: ignore[attr-defined]
    assert path.startswith("docker/registry/v2/")
    assert classify(path) == key


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", BLOBS_PREFIX, REPOSITORIES_PREFIX, REPOSITORIES_PREFIX + "a/_"]),
    st.text(st.sampled_from("ab_/.:-0123456789fF%\x00é"), max_size=40),
)
def test_classify_never_raises(prefix: str, rest: str) -> None:
    """Classify turns any string into a key, never raises, and the key's path is the input."""
    assert classify(prefix + rest).path == prefix + rest
