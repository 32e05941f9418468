"""_s3_list: ListObjectsV2 bodies read without botocore's parser, exactly as botocore reads them."""

from __future__ import annotations

import datetime
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import aiobotocore.session
import botocore.handlers
import botocore.session
import pytest
from botocore.parsers import RestXMLParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import StorageError
from registry_gc.backends import S3Backend, _s3_list
from registry_gc.backends._s3_client import fast_timestamp
from registry_gc.backends._s3_list import ListPage, page_from_parsed, parse_list_page
from registry_gc.testing import collect, run

from tests.rigs.proxy import Request, Response, StorageProxy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.rigs.s3 import MotoS3, SeaweedS3

_OUTPUT = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2")
_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ROOT = b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
_WHEN = "2026-12-04T10:38:06Z"
_WHEN_DT = datetime.datetime(2026, 12, 4, 10, 38, 6, tzinfo=datetime.timezone.utc)


def _botocore(body: bytes) -> ListPage:
    """The page botocore makes of ``body``: its parser, then its url-decoding of listings."""
    parser = RestXMLParser(timestamp_parser=fast_timestamp)
    parsed = parser.parse({"body": body, "headers": {}, "status_code": 200}, _OUTPUT.output_shape)
    botocore.handlers.decode_list_object_v2(parsed, context={"encoding_type_auto_set": True})
    return page_from_parsed(parsed)


def _record(key: str, size: int = 7, when: str = _WHEN) -> str:
    """A ``<Contents>`` as SeaweedFS writes it (Go's escaping, children in its order)."""
    return (
        f"<Contents><Key>{key}</Key><ETag>&#34;d41d8cd98f00b204e9800998ecf8427e&#34;</ETag>"
        f"<Size>{size}</Size><StorageClass>STANDARD</StorageClass>"
        f"<LastModified>{when}</LastModified></Contents>"
    )


def _body(*parts: str, head: bytes = _HEAD) -> bytes:
    return head + _ROOT + "".join(parts).encode() + b"</ListBucketResult>"


def _url(key: str) -> str:
    """A key as S3 sends it with ``EncodingType=url``."""
    return urllib.parse.quote(key, safe="/")


def _same_as_botocore(body: bytes) -> ListPage:
    """Read ``body`` both ways, check that they agree, return the page."""
    page = parse_list_page(body, fast_timestamp)
    assert page is not None
    assert page == _botocore(body)
    return page


# -- the reader, on bodies ------------------------------------------------------------


def test_a_seaweedfs_page() -> None:
    """A truncated page of url-encoded keys: keys, sizes, times, ETags, the continuation token."""
    keys = ["docker/registry/v2/blobs/sha256/00/00ab/data", "docker/registry/v2/repositories/a"]
    body = _body(
        "<Name>b</Name><Prefix>docker/</Prefix><MaxKeys>1000</MaxKeys>",
        "<IsTruncated>true</IsTruncated>",
        *(_record(_url(k), i) for i, k in enumerate(keys)),
        "<NextContinuationToken>docker/registry/v2/x&amp;y</NextContinuationToken>",
        "<EncodingType>url</EncodingType><KeyCount>2</KeyCount>",
    )
    page = _same_as_botocore(body)
    assert page == ListPage(
        keys,
        [0, 1],
        [_WHEN_DT] * 2,
        ["d41d8cd98f00b204e9800998ecf8427e"] * 2,
        [],
        truncated=True,
        token="docker/registry/v2/x&y",
    )


def test_empty_result() -> None:
    """No Contents at all: nothing listed, not truncated, no token."""
    body = _body(
        "<Name>b</Name><Prefix>none/</Prefix><KeyCount>0</KeyCount>",
        "<IsTruncated>false</IsTruncated>",
    )
    assert _same_as_botocore(body) == ListPage([], [], [], [], [], truncated=False, token=None)


def test_entities_without_url_encoding() -> None:
    """Without EncodingType url, keys are XML-unescaped and nothing else (``+`` and ``%`` stay)."""
    key = "a&b<c>\"d'e f+g%20h\tnew\nline"
    escaped = escape(key, {'"': "&#34;", "'": "&#39;", "\t": "&#x9;", "\n": "&#xA;"})
    page = _same_as_botocore(_body(_record(escaped), "<IsTruncated>false</IsTruncated>"))
    assert page.keys == [key]


def test_url_encoding_is_undone_as_botocore_does() -> None:
    """With EncodingType url, keys and common prefixes are unquote_plus'ed, the token is not."""
    body = _body(
        _record("a%20b+c%2Bd%25e%26f%3Cg"),
        _record("%E6%97%A5%E6%9C%AC/%C3%A9t%C3%A9/%F0%9F%90%B3"),
        "<CommonPrefixes><Prefix>p%20q/</Prefix></CommonPrefixes>",
        "<IsTruncated>true</IsTruncated><NextContinuationToken>t%20+</NextContinuationToken>",
        "<EncodingType>url</EncodingType>",
    )
    page = _same_as_botocore(body)
    assert page.keys == ["a b c+d%e&f<g", "日本/été/🐳"]
    assert page.prefixes == ["p q/"]
    assert page.token == "t%20+"


def test_unicode_keys_as_utf8() -> None:
    """Keys sent as UTF-8 text (no url encoding) come through unchanged."""
    keys = ["日本/été/🐳", "ключ", "a\u00a0b"]
    page = _same_as_botocore(_body(*(_record(k) for k in keys)))
    assert page.keys == keys


def test_common_prefixes_of_a_delimiter_listing() -> None:
    """CommonPrefixes come out in order, beside the objects; the top-level Prefix is not one."""
    body = _body(
        "<Prefix>r/</Prefix><Delimiter>/</Delimiter>",
        _record("r/x"),
        "<CommonPrefixes><Prefix>r/a/</Prefix></CommonPrefixes>",
        "<CommonPrefixes><Prefix>r/b/</Prefix></CommonPrefixes>",
        "<IsTruncated>false</IsTruncated>",
    )
    page = _same_as_botocore(body)
    assert page.keys == ["r/x"]
    assert page.prefixes == ["r/a/", "r/b/"]


def test_aws_layout_pretty_printed_and_nested() -> None:
    """AWS's order, indentation, an Owner inside a record, a record without its ETag."""
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix/>
  <KeyCount>2</KeyCount>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>my-image.jpg</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
    <Size>434234</Size>
    <StorageClass>STANDARD</StorageClass>
    <Owner><ID>75aa57</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>
  </Contents>
  <Contents>
    <Key>b</Key><LastModified>2009-10-12T17:50:31.000Z</LastModified><Size>1</Size>
  </Contents>
</ListBucketResult>"""
    # "<Prefix/>" is left to botocore; the same body without it is read here.
    assert parse_list_page(body, fast_timestamp) is None
    page = _same_as_botocore(body.replace(b"<Prefix/>", b"<Prefix></Prefix>"))
    assert page.keys == ["my-image.jpg", "b"]
    assert page.sizes == [434234, 1]


def test_records_of_varying_shape() -> None:
    """Records whose children differ in order or number are read one by one, the same."""
    odd = (
        "<Contents><Size>5</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
        "<Key>z</Key></Contents>"
    )
    page = _same_as_botocore(_body(_record("a"), odd, _record("b")))
    assert page.keys == ["a", "z", "b"]
    assert page.sizes == [7, 5, 7]
    assert page.etags == [
        "d41d8cd98f00b204e9800998ecf8427e",
        None,
        "d41d8cd98f00b204e9800998ecf8427e",
    ]


def test_entities_in_records_of_varying_shape_are_decoded_once() -> None:
    """Read one by one, a key's text is decoded once, as botocore does: ``&amp;lt;`` is ``&lt;``."""
    odd = (
        "<Contents><Size>5</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
        "<Key>z&amp;lt;y &amp;#34;</Key></Contents>"
    )
    page = _same_as_botocore(_body(_record("a&amp;lt;b"), odd))
    assert page.keys == ["a&lt;b", "z&lt;y &#34;"]


def test_etags_unquoted_and_none_when_absent() -> None:
    """ETags come without their quotes, written as entities or not; a record without one: None."""
    plain = (
        '<Contents><Key>p</Key><ETag>"0123456789abcdef0123456789abcdef-2"</ETag>'
        f"<Size>1</Size><LastModified>{_WHEN}</LastModified></Contents>"
    )
    bare = f"<Contents><Key>n</Key><Size>2</Size><LastModified>{_WHEN}</LastModified></Contents>"
    aws = plain.replace('"', "&quot;", 2)  # as AWS writes it
    odd = plain.replace('"', "&#34;", 1)  # one quote as an entity, one not
    for body in (
        _body(plain, plain),
        _body(bare, bare),
        _body(_record("r"), plain),
        _body(aws, odd),
    ):
        page = _same_as_botocore(body)
        assert all(e is None or '"' not in e for e in page.etags)
    assert _same_as_botocore(_body(bare, bare)).etags == [None, None]
    assert _same_as_botocore(_body(plain)).etags == ["0123456789abcdef0123456789abcdef-2"]


def test_top_level_fields_between_records_are_seen() -> None:
    """IsTruncated, a token and CommonPrefixes between records are read, not skipped."""
    body = _body(
        _record("a"),
        "<IsTruncated>true</IsTruncated>",
        _record("b"),
        "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>",
        _record("c"),
        "<NextContinuationToken>t</NextContinuationToken>",
        _record("d"),
    )
    page = _same_as_botocore(body)
    assert page.keys == ["a", "b", "c", "d"]
    assert page.prefixes == ["p/"]
    assert page.truncated
    assert page.token == "t"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("comment", _body(_record("a"), "<!-- <IsTruncated>true</IsTruncated> -->")),
        (
            "CDATA",
            _body(
                "<Contents><Key><![CDATA[a]]></Key><Size>1</Size><LastModified>x</LastModified></Contents>"
            ),
        ),
        ("namespace prefix", _body("<s3:IsTruncated>true</s3:IsTruncated>", _record("a"))),
        ("attribute", _body('<IsTruncated a="b">true</IsTruncated>', _record("a"))),
        ("space in a tag", _body("<IsTruncated >true</IsTruncated >", _record("a"))),
        ("self-closing", _body(_record("a"), "<IsTruncated/>")),
        ("carriage return", _body(_record("a\rb"))),
        ("bare ampersand", _body(_record("a&b"))),
        ("forbidden character reference", _body(_record("a&#0;b"))),
        ("unknown entity", _body(_record("a&nbsp;b"))),
        (
            "markup in a key",
            _body(
                "<Contents><Key>a<b>c</b></Key><Size>1</Size><LastModified>"
                + _WHEN
                + "</LastModified></Contents>"
            ),
        ),
        (
            "repeated field",
            _body(_record("a"), "<IsTruncated>false</IsTruncated><IsTruncated>true</IsTruncated>"),
        ),
        ("no LastModified", _body("<Contents><Key>a</Key><Size>1</Size></Contents>")),
        (
            "no Size",
            _body("<Contents><Key>a</Key><LastModified>" + _WHEN + "</LastModified></Contents>"),
        ),
        ("bad Size", _body(_record("a").replace("<Size>7", "<Size>seven"))),
        ("cut off", _body(_record("a"))[:-40]),
        ("an Error", _HEAD + b"<Error><Code>SlowDown</Code><Message>m</Message></Error>"),
        ("another root", _HEAD + b"<ListBucketResults></ListBucketResults>"),
        ("latin-1", _body(_record("a"), head=b'<?xml version="1.0" encoding="ISO-8859-1"?>')),
        ("invalid UTF-8", _body(_record("a")).replace(b"<Key>a", b"<Key>a\xff")),
        ("DOCTYPE", b"<!DOCTYPE x>" + _body(_record("a"), head=b"")),
        ("non-character", _body(_record("a\ufffe"))),
    ],
)
def test_unusual_bodies_are_left_to_botocore(name: str, body: bytes) -> None:
    """Anything but the plain form is not read here (botocore parses it, or fails, as before)."""
    assert parse_list_page(body, fast_timestamp) is None, name


_KEY_CHARS = st.characters(
    codec="utf-8",
    exclude_categories=("Cs",),
    exclude_characters="\r\x00\ufffe\uffff",
    # XML 1.0 forbids the other controls but tab and newline even as references.
    max_codepoint=0x10FFFF,
).filter(lambda c: c in "\t\n" or ord(c) >= 0x20)


def _odd_record(key: str, size: int) -> str:
    """A record of another shape than :func:`_record`'s: no ETag, children in another order."""
    return (
        f"<Contents><Size>{size}</Size><LastModified>{_WHEN}</LastModified>"
        f"<Key>{key}</Key></Contents>"
    )


@given(
    keys=st.lists(st.text(_KEY_CHARS, min_size=1, max_size=20), max_size=8),
    url=st.booleans(),
    truncated=st.booleans(),
    odd=st.sets(st.integers(0, 7)),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_property_same_page_as_botocore(
    keys: list[str], url: bool, truncated: bool, odd: set[int]
) -> None:
    """For any keys, url-encoded or XML-escaped, the page read is the page botocore reads.

    Records in ``odd`` have another shape, so that a page mixing them is read one by one.
    """
    parts = [
        (_odd_record if i in odd else _record)(
            _url(k) if url else escape(k, {"\t": "&#x9;", "\n": "&#xA;"}), len(k)
        )
        for i, k in enumerate(keys)
    ]
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    page = _same_as_botocore(_body(*parts))
    assert page.keys == keys


# -- the reader inside the backend, against servers ------------------------------------

#: Keys with characters that need escaping in XML, in URLs, or both.
AWKWARD = [
    "reg/a b/c+d",
    "reg/x%20y/%2F",
    "reg/amp&lt;/<tag>\"quote'",
    "reg/日本/été/🐳",
    "reg/tab\there",
    "reg/new\nline",
    "reg/semi;colon=eq?q#h~t",
    "reg/dir/",
    "reg/plus+plus++",
    "reg/trailing space ",
]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each ListObjectsV2 body was read by _s3_list (True) or left to botocore."""
    calls: list[bool] = []
    real = _s3_list.parse_list_page

    def spy(body: bytes, timestamp: Any) -> ListPage | None:
        page = real(body, timestamp)
        calls.append(page is not None)
        return page

    monkeypatch.setattr(_s3_list, "parse_list_page", spy)
    return calls


def _listed(backend: S3Backend, prefix: str) -> dict[str, tuple[int, datetime.datetime]]:
    return {i.path: (i.size, i.modified) for i in run(backend, lambda: collect(backend, prefix))}


def _boto_listing(
    server: SeaweedS3 | MotoS3, bucket: str
) -> dict[str, tuple[int, datetime.datetime]]:
    """Every object under ``reg/`` as boto3 lists it (botocore's parser), root cut off."""
    out = {}
    for page in (
        server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="reg/")
    ):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                out[obj["Key"][4:]] = (int(obj["Size"]), obj["LastModified"])
    return out


@pytest.mark.s3
@pytest.mark.parametrize("server_name", ["s3_server", "moto_server"])
def test_listing_equals_botocore_on_servers(
    request: pytest.FixtureRequest, server_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Awkward keys on SeaweedFS and moto: the backend lists what boto3 lists, read here."""
    server: SeaweedS3 | MotoS3 = request.getfixturevalue(server_name)
    # moto's HTTP router answers 404 to a path with a newline in it.
    keys = [k for k in AWKWARD if server_name != "moto_server" or "\n" not in k]
    bucket = server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
    try:
        client = server.client()
        for i, key in enumerate(keys):
            client.put_object(Bucket=bucket, Key=key, Body=b"x" * i)
        calls = _spy(monkeypatch)
        backend = S3Backend.from_url(f"s3://{bucket}/reg", server.storage_options())
        got = _listed(backend, "")
        dirs, objects = run(backend, lambda: backend.list_dir(""))
        assert calls
        assert all(calls)
        assert got == _boto_listing(server, bucket)
        assert set(got) == {k[4:] for k in keys if not k.endswith("/")}
        top = {o.path for o in objects} | {f"{d}/" for d in dirs}
        assert top >= {"dir/", "trailing space "}
    finally:
        server.drop_bucket(bucket)


@pytest.mark.s3
@given(
    keys=st.lists(
        st.text(
            st.characters(codec="utf-8", min_codepoint=0x20, exclude_categories=("Cs",)),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_property_listing_equals_botocore_on_seaweedfs(
    s3_server: SeaweedS3, keys: list[str]
) -> None:
    """Random keys written to SeaweedFS are listed by the backend exactly as boto3 lists them."""
    bucket = s3_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
    try:
        client = s3_server.client()
        for key in keys:
            client.put_object(Bucket=bucket, Key=f"reg/{key}", Body=key.encode())
        backend = S3Backend.from_url(f"s3://{bucket}/reg", s3_server.storage_options())
        assert _listed(backend, "") == _boto_listing(s3_server, bucket)
    finally:
        s3_server.drop_bucket(bucket)


@pytest.mark.s3
def test_many_pages_equal_botocore(
    s3_server: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2500 keys, three pages and their tokens: the listing boto3 makes, in as many requests."""
    s3_server.put_many(s3_bucket, {f"reg/p/{i:05d} é+&": b"" for i in range(2500)})
    calls = _spy(monkeypatch)
    backend = S3Backend.from_url(f"s3://{s3_bucket}/reg", s3_server.storage_options())
    assert _listed(backend, "p/") == _boto_listing(s3_server, s3_bucket)
    assert backend.request_counts["ListObjectsV2"] == 3
    assert calls == [True] * 3


# -- errors, as before -----------------------------------------------------------------


@pytest.mark.s3
def test_no_such_bucket_raises(moto_server: MotoS3) -> None:
    """Listing a missing bucket raises StorageError with NoSuchBucket, as before."""
    backend = S3Backend.from_url("s3://no-such-bucket-for-lists/reg", moto_server.storage_options())
    with pytest.raises(StorageError, match="NoSuchBucket"):
        run(backend, lambda: collect(backend, "x/"))


def _scripted(answers: list[tuple[int, bytes]]) -> StorageProxy:
    """A local HTTP server answering with scripted ``(status, body)`` pairs, then the last one.

    A :class:`StorageProxy` that answers every request itself (its upstream is
    never reached).
    """
    left = list(answers)

    def answer(_request: Request, _forward: Any) -> Response:
        status, body = left.pop(0) if len(left) > 1 else left[0]
        return Response(status, {"Content-Type": "application/xml"}, body)

    return StorageProxy("http://127.0.0.1:9", intercept=answer)


@pytest.fixture
def scripted() -> Iterator[Any]:
    """A factory of scripted S3 servers, closed afterwards."""
    servers: list[StorageProxy] = []

    def make(answers: list[tuple[int, bytes]]) -> StorageProxy:
        server = _scripted(answers)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def _scripted_backend(server: StorageProxy) -> S3Backend:
    options = {
        "key": "k",
        "secret": "s",
        "endpoint_url": server.url,
        "client_kwargs": {"region_name": "us-east-1"},
        # No waiting between botocore's retries.
        "config_kwargs": {"retries": {"max_attempts": 3}},
    }
    return S3Backend.from_url("s3://b/reg", options)


_GOOD = _body(_record("reg/x/a"), "<IsTruncated>false</IsTruncated>")
_ERROR_200 = _HEAD + b"<Error><Code>InternalError</Code><Message>oops</Message></Error>"


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("an Error with status 200", (200, _ERROR_200)),
        ("a body cut off", (200, _GOOD[:-30])),
        (
            "503 SlowDown",
            (503, _HEAD + b"<Error><Code>SlowDown</Code><Message>m</Message></Error>"),
        ),
    ],
)
def test_bad_answers_are_retried_as_botocore_does(
    scripted: Any, name: str, first: tuple[int, bytes]
) -> None:
    """A 200 whose body is an Error or cut off, or a 503, is retried; then the listing succeeds."""
    server = scripted([first, (200, _GOOD)])
    backend = _scripted_backend(server)
    assert [i.path for i in run(backend, lambda: collect(backend, "x/"))] == ["x/a"], name
    assert backend.request_counts["ListObjectsV2"] == 2


def test_a_body_botocore_cannot_parse_either_raises(scripted: Any) -> None:
    """A persistent 200 Error surfaces as StorageError once retries are spent, naming the code."""
    server = scripted([(200, _ERROR_200)])
    backend = _scripted_backend(server)
    with pytest.raises(StorageError, match="InternalError"):
        run(backend, lambda: collect(backend, "x/"))
    assert backend.request_counts["ListObjectsV2"] == 4


def test_a_callers_session_gets_the_reader_too(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader is installed on the client's events, whatever session made it."""
    server = scripted([(200, _GOOD)])
    calls = _spy(monkeypatch)
    options = {
        "key": "k",
        "secret": "s",
        "endpoint_url": server.url,
        "session": aiobotocore.session.AioSession(),
    }
    backend = S3Backend.from_url("s3://b/reg", options)
    assert [i.path for i in run(backend, lambda: collect(backend, "x/"))] == ["x/a"]
    assert calls == [True]


def test_access_denied_raises_without_retries(scripted: Any) -> None:
    """A 403 AccessDenied raises StorageError naming the code at once, as before."""
    denied = _HEAD + b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    server = scripted([(403, denied)])
    backend = _scripted_backend(server)
    with pytest.raises(StorageError, match=r"s3://b/reg/x/: AccessDenied: Access Denied"):
        run(backend, lambda: collect(backend, "x/"))
    assert backend.request_counts["ListObjectsV2"] == 1
