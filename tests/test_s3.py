"""S3Backend: the shared suite over SeaweedFS, and what is specific to S3 (moto, faults)."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import http.server
import math
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import ConfigError, StorageError
from registry_gc.backends import (
    DeleteResult,
    MultipartUpload,
    Outcome,
    S3Backend,
    SupportsDirectories,
    SupportsListDir,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsRequestCounts,
    SupportsWrite,
    open_backend,
)
from registry_gc.backends._s3_client import fast_timestamp
from registry_gc.testing import (
    BLOBS,
    REPOS,
    V2,
    BackendSuite,
    blob_path,
    collect,
    files,
    run,
    write_many,
)

from tests.rigs.procs import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from registry_gc.testing import Writer

    from tests.rigs.s3 import MotoS3, SeaweedS3

#: The registry root inside the bucket for the S3 suite (``rootdirectory: /reg``).
S3_ROOT = "reg"


# -- S3 (SeaweedFS) -------------------------------------------------------------------


@pytest.mark.s3
class TestS3(BackendSuite):
    """S3Backend over SeaweedFS, registry root ``reg/`` inside the bucket."""

    capabilities = (
        SupportsMultipartUploads,
        SupportsMove,
        SupportsWrite,
        SupportsRequestCounts,
        SupportsListDir,
    )

    @pytest.fixture
    def backend(self, s3_server: SeaweedS3, s3_bucket: str) -> Iterator[S3Backend]:
        """S3Backend over a fresh bucket, root ``reg``."""
        backend = S3Backend.from_url(f"s3://{s3_bucket}/{S3_ROOT}", s3_server.storage_options())
        yield backend
        asyncio.run(backend.aclose())

    @pytest.fixture
    def writer(self, s3_server: SeaweedS3, s3_bucket: str) -> Writer:
        """PUT with boto3."""
        return s3_server.putter(s3_bucket, S3_ROOT)

    def test_url_and_repr(self, backend: S3Backend, s3_bucket: str) -> None:
        """The url is s3://bucket/root and the repr shows it."""
        assert backend.url == f"s3://{s3_bucket}/{S3_ROOT}"
        assert repr(backend) == f"S3Backend('s3://{s3_bucket}/{S3_ROOT}')"
        assert isinstance(backend, SupportsMultipartUploads)
        assert isinstance(backend, SupportsRequestCounts)

    def test_no_directories(self, backend: S3Backend) -> None:
        """An object store has no directories: no SupportsDirectories, no remove_empty_dirs."""
        assert not isinstance(backend, SupportsDirectories)
        assert not hasattr(backend, "remove_empty_dirs")

    def test_no_head_object_and_one_get_per_read(self, backend: S3Backend, writer: Writer) -> None:
        """Listing and reading never send HeadObject; a read is exactly one GetObject per path."""
        objects = {f"{REPOS}r/_layers/sha256/{i:02x}/link": b"sha256:x" for i in range(20)}
        write_many(writer, objects)
        paths = [*objects, REPOS + "r/missing"]
        run(backend, lambda: collect(backend, ""))
        run(backend, lambda: collect(backend, BLOBS))
        got = run(backend, lambda: backend.read(paths))
        assert got[REPOS + "r/missing"] is None
        assert backend.request_counts["HeadObject"] == 0
        assert backend.request_counts["GetObject"] == len(paths)
        assert set(backend.request_counts) <= {"ListObjectsV2", "GetObject"}

    @pytest.fixture(scope="class")
    @classmethod
    def populated(cls, s3_server: SeaweedS3) -> Iterator[tuple[str, list[str], list[str]]]:
        """A bucket written once for the class: 2001 blobs and 1001 links under ``reg/``."""
        bucket = s3_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
        blobs = [blob_path(str(i)) for i in range(2001)]
        links = [f"{REPOS}r/_layers/sha256/{i:04x}/link" for i in range(1001)]
        s3_server.put_many(bucket, {f"{S3_ROOT}/{p}": b"x" for p in blobs + links})
        yield bucket, blobs, links
        s3_server.drop_bucket(bucket)

    @pytest.fixture
    def large_store(
        self, s3_server: SeaweedS3, populated: tuple[str, list[str], list[str]]
    ) -> Iterator[tuple[S3Backend, list[str]]]:
        """The class's populated bucket, through a fresh backend."""
        bucket, blobs, _ = populated
        backend = S3Backend.from_url(f"s3://{bucket}/{S3_ROOT}", s3_server.storage_options())
        yield backend, blobs
        asyncio.run(backend.aclose())

    def test_listing_request_count(
        self, s3_server: SeaweedS3, populated: tuple[str, list[str], list[str]]
    ) -> None:
        """2001 blobs list in ⌈n/1000⌉ + fan-out requests; a flat prefix in ⌈n/1000⌉."""
        bucket, blobs, links = populated
        backend = S3Backend.from_url(f"s3://{bucket}/{S3_ROOT}", s3_server.storage_options())

        listed = run(backend, lambda: collect(backend, BLOBS))
        assert len(listed) == len(blobs)
        # Two delimiter listings (blobs/, blobs/sha256/) find the 16 stems 0…f.
        fan_out = 2 + 16
        assert backend.request_counts["ListObjectsV2"] <= math.ceil(len(blobs) / 1000) + fan_out

        backend.request_counts.clear()
        listed = run(backend, lambda: collect(backend, REPOS + "r/"))
        assert len(listed) == len(links)
        assert backend.request_counts["ListObjectsV2"] <= math.ceil(len(links) / 1000) + 1

        backend.request_counts.clear()
        listed = run(backend, lambda: collect(backend, ""))
        assert len(listed) == len(blobs) + len(links)
        # Delimiter listings of the root, docker/, registry/, v2/, blobs/, sha256/ and
        # repositories/; then 16 blob stems and one "r" stem.
        assert backend.request_counts["ListObjectsV2"] <= 4 + 7 + 16 + 1
        assert set(backend.request_counts) == {"ListObjectsV2"}

    def test_multipart_uploads_list_and_abort(
        self, backend: S3Backend, s3_server: SeaweedS3, s3_bucket: str
    ) -> None:
        """Open multipart uploads list with root-relative keys and aware times, then abort."""
        client = s3_server.client()
        path = REPOS + "app/_uploads/1b9c6a3e/data"
        created = client.create_multipart_upload(Bucket=s3_bucket, Key=f"{S3_ROOT}/{path}")
        client.upload_part(
            Bucket=s3_bucket,
            Key=f"{S3_ROOT}/{path}",
            UploadId=created["UploadId"],
            PartNumber=1,
            Body=b"partial layer",
        )
        now = datetime.datetime.now(datetime.timezone.utc)

        uploads = run(backend, lambda: backend.list_multipart_uploads(REPOS))
        assert [(u.key, u.upload_id) for u in uploads] == [(path, created["UploadId"])]
        assert uploads[0].initiated.utcoffset() == datetime.timedelta(0)
        assert abs(uploads[0].initiated - now) < datetime.timedelta(minutes=5)
        assert run(backend, lambda: backend.list_multipart_uploads(BLOBS)) == []

        results = run(backend, lambda: backend.abort_multipart_uploads(uploads))
        assert results == [DeleteResult(path, Outcome.DELETED)]
        assert run(backend, lambda: backend.list_multipart_uploads("")) == []
        assert s3_server.list_multipart_uploads(s3_bucket) == []

    def test_empty_root_prefix(self, s3_server: SeaweedS3, s3_bucket: str) -> None:
        """With ``rootdirectory: /`` the keys start at docker/registry/v2 and paths equal keys."""
        backend = S3Backend.from_url(f"s3://{s3_bucket}/", s3_server.storage_options())
        assert backend.url == f"s3://{s3_bucket}"
        assert backend.root == ""
        writer = s3_server.putter(s3_bucket, "")
        objects = {blob_path("a"): b"a", REPOS + "x/_layers/sha256/ab/link": b"l"}
        write_many(writer, objects)
        assert set(files(run(backend, lambda: collect(backend, "")))) == set(objects)
        assert set(files(run(backend, lambda: collect(backend, BLOBS)))) == {blob_path("a")}
        assert run(backend, lambda: backend.read(list(objects))) == objects
        results = run(backend, lambda: backend.delete(list(objects)))
        assert all(r.outcome is Outcome.DELETED for r in results)
        assert s3_server.list_keys(s3_bucket) == {}

    def test_listing_skips_unexpected_names_nowhere(
        self, backend: S3Backend, writer: Writer
    ) -> None:
        """Keys the layout does not expect (odd algorithms, stray files) are listed all the same."""
        odd = [
            BLOBS + "sha512/ab/" + "ab" * 64 + "/data",
            BLOBS + "README",
            BLOBS + "sha256/README",
            BLOBS + "sha256/zz/odd",
            BLOBS + "sha256/0",
            V2 + "stray",
            "outside-v2",
            blob_path("normal"),
            REPOS + "_odd",
            REPOS + "r/x",
        ]
        write_many(writer, dict.fromkeys(odd, b"?"))
        everything = [i.path for i in run(backend, lambda: collect(backend, ""))]
        assert sorted(everything) == sorted(odd)
        blobs = [i.path for i in run(backend, lambda: collect(backend, BLOBS))]
        assert sorted(blobs) == sorted(p for p in odd if p.startswith(BLOBS))

    @pytest.mark.filterwarnings("ignore::ResourceWarning")
    def test_reuse_after_a_loop_closed_without_shutdown(
        self, backend: S3Backend, writer: Writer
    ) -> None:
        """A loop closed bare (no shutdown_asyncgens) strands its client; the next makes one."""
        writer(REPOS + "x/link", b"1")
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(backend.read([REPOS + "x/link"])) == {
                REPOS + "x/link": b"1"
            }
        finally:
            loop.close()
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {REPOS + "x/link": b"1"}

    def test_listing_uses_the_fast_timestamp_parser(
        self, backend: S3Backend, writer: Writer
    ) -> None:
        """LastModified is parsed by fromisoformat: tzinfo is timezone.utc, not dateutil's."""
        writer(REPOS + "x/link", b"1")
        (info,) = run(backend, lambda: collect(backend, REPOS))
        assert info.modified.tzinfo is datetime.timezone.utc

    def test_loops_do_not_leak_warnings(
        self, backend: S3Backend, writer: Writer, recwarn: pytest.WarningsRecorder
    ) -> None:
        """Switching event loops without aclose leaves no unclosed-session warnings behind."""
        import gc  # noqa: PLC0415

        writer(REPOS + "x/link", b"1")
        gc.collect()  # garbage of earlier tests (boto3 clients) warns now, not below
        recwarn.clear()
        for _ in range(3):
            asyncio.run(backend.read([REPOS + "x/link"]))
        asyncio.run(backend.aclose())
        gc.collect()
        leaks = [str(w.message) for w in recwarn if "nclosed" in str(w.message)]
        assert not leaks


# -- S3 specifics that need moto or fault injection --------------------------------------


def _moto_backend(server: MotoS3, bucket: str, root: str = "", **options: Any) -> S3Backend:
    return S3Backend.from_url(f"s3://{bucket}/{root}", server.storage_options(**options))


@pytest.mark.s3
def test_delete_objects_per_key_errors_are_failed(moto_server: MotoS3, moto_bucket: str) -> None:
    """Keys a DeleteObjects response lists under Errors come back FAILED with code and message."""
    writer = moto_server.putter(moto_bucket, "reg")
    protected = [f"{REPOS}locked/_layers/sha256/{i:02x}/link" for i in range(3)]
    free = [blob_path(str(i)) for i in range(4)]
    write_many(writer, dict.fromkeys(protected + free, b"x"))
    moto_server.deny(moto_bucket, f"reg/{REPOS}locked/")
    backend = _moto_backend(moto_server, moto_bucket, "reg")
    paths = [free[0], protected[0], free[1], protected[1], protected[2], free[2], free[3]]

    results = run(backend, lambda: backend.delete(paths))

    assert [r.path for r in results] == paths
    by_path = {r.path: r for r in results}
    for p in protected:
        assert by_path[p].outcome is Outcome.FAILED
        assert by_path[p].error is not None
        assert by_path[p].error.startswith("AccessDenied: ")
    for p in free:
        assert by_path[p] == DeleteResult(p, Outcome.DELETED)
    left = moto_server.list_keys(moto_bucket)
    assert set(left) == {f"reg/{p}" for p in protected}


@pytest.mark.s3
def test_delete_batches_of_1000(moto_server: MotoS3, moto_bucket: str) -> None:
    """2500 paths go out as 3 DeleteObjects, each with Content-MD5 and a CRC32, all DELETED."""
    backend = _moto_backend(moto_server, moto_bucket)
    paths = [blob_path(str(i)) for i in range(2500)]
    paths[10] = paths[11]  # a path given twice is deleted once, reported twice
    moto_server.put_many(moto_bucket, dict.fromkeys(paths[:20], b"x"))
    headers: list[dict[str, str]] = []

    async def go() -> list[DeleteResult]:
        conn = await backend._connection()

        def capture(request: Any, **_: Any) -> None:
            headers.append(dict(request.headers))

        conn.client.meta.events.register("before-send.s3.DeleteObjects", capture)
        return await backend.delete(paths)

    results = run(backend, go)
    assert [r.path for r in results] == paths
    assert all(r.outcome is Outcome.DELETED for r in results)
    assert backend.request_counts["DeleteObjects"] == 3
    assert moto_server.list_keys(moto_bucket) == {}
    assert len(headers) == 3
    for h in headers:
        names = {k.lower() for k in h}
        assert "content-md5" in names
        assert "x-amz-checksum-crc32" in names


class _SlowDownProxy:
    """An HTTP proxy to an S3 server that answers ``503 SlowDown`` to the first N requests.

    Used to check that botocore's retries (and only those) handle throttling:
    the requests really go over the network and really come back as 503s.
    """

    _BODY = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message>"
        b"<RequestId>rig</RequestId></Error>"
    )

    def __init__(self, upstream: str, failures: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.failures = failures
        self.seen = 0
        self.throttled = 0
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    proxy.seen += 1
                    throttle = proxy.throttled < proxy.failures
                    if throttle:
                        proxy.throttled += 1
                if throttle:
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(proxy._BODY)))
                    self.end_headers()
                    self.wfile.write(proxy._BODY)
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding")
                    }
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def slowdown(moto_server: MotoS3) -> Iterator[Any]:
    """A factory of SlowDown proxies in front of the moto server, closed afterwards."""
    proxies: list[_SlowDownProxy] = []

    def make(failures: int) -> _SlowDownProxy:
        proxy = _SlowDownProxy(moto_server.endpoint_url, failures)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.mark.s3
def test_slowdown_is_retried(moto_server: MotoS3, moto_bucket: str, slowdown: Any) -> None:
    """503 SlowDown answers are retried by botocore (each attempt counted) and then succeed."""
    write_many(moto_server.putter(moto_bucket, ""), {REPOS + "x/link": b"sha256:x"})
    proxy = slowdown(2)
    backend = _moto_backend(moto_server, moto_bucket, endpoint_url=proxy.endpoint_url)

    listed = run(backend, lambda: collect(backend, REPOS + "x/"))
    assert [i.path for i in listed] == [REPOS + "x/link"]
    assert proxy.throttled == 2
    assert backend.request_counts["ListObjectsV2"] == 3  # 2 throttled + 1 answered

    proxy.failures += 1
    assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {REPOS + "x/link": b"sha256:x"}
    assert backend.request_counts["GetObject"] == 2

    proxy.failures += 1
    results = run(backend, lambda: backend.delete([REPOS + "x/link"]))
    assert results == [DeleteResult(REPOS + "x/link", Outcome.DELETED)]
    assert backend.request_counts["DeleteObjects"] == 2
    assert proxy.seen == sum(backend.request_counts.values())


@pytest.mark.s3
def test_retries_are_one_layer_and_then_fail(
    moto_server: MotoS3, moto_bucket: str, slowdown: Any
) -> None:
    """When throttling persists, N retries mean N+1 requests, then a StorageError or FAILED."""
    write_many(moto_server.putter(moto_bucket, ""), {REPOS + "x/link": b"x"})
    proxy = slowdown(10**6)
    backend = _moto_backend(
        moto_server,
        moto_bucket,
        endpoint_url=proxy.endpoint_url,
        config_kwargs={"retries": {"max_attempts": 1}},
    )

    with pytest.raises(StorageError, match=rf"s3://{moto_bucket}/{REPOS}x/link: SlowDown"):
        run(backend, lambda: backend.read([REPOS + "x/link"]))
    assert proxy.seen == 2

    paths = [REPOS + "x/link", REPOS + "y/link"]
    results = run(backend, lambda: backend.delete(paths))
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert all(r.error is not None and r.error.startswith("SlowDown") for r in results)
    assert proxy.seen == 4
    assert moto_server.list_keys(moto_bucket) == {REPOS + "x/link": 1}


@pytest.mark.s3
def test_multipart_abort_of_a_gone_upload_is_missing(moto_server: MotoS3, moto_bucket: str) -> None:
    """Aborting an upload that no longer exists is MISSING, not FAILED."""
    backend = _moto_backend(moto_server, moto_bucket)
    gone = MultipartUpload(
        REPOS + "a/_uploads/u/data", "no-such-upload", datetime.datetime.now(datetime.timezone.utc)
    )
    results = run(backend, lambda: backend.abort_multipart_uploads([gone]))
    assert results == [DeleteResult(gone.key, Outcome.MISSING)]


@pytest.mark.s3
def test_credentials_never_shown(moto_server: MotoS3, moto_bucket: str) -> None:
    """Keys and secrets appear neither in url, repr, nor error messages."""
    key, secret = "AKIAREGISTRYGCTEST42", "s3cr3t/Value+ForTheTest"
    options = {**moto_server.storage_options(), "key": key, "secret": secret}
    backend = S3Backend.from_url(f"s3://{moto_bucket}/reg", options)
    shown = [backend.url, repr(backend), str(backend.__dict__.get("_bucket"))]

    missing = S3Backend.from_url("s3://no-such-bucket-here/reg", options)
    with pytest.raises(StorageError) as err:
        run(missing, lambda: missing.read([REPOS + "x/link"]))
    shown.append(str(err.value))
    with pytest.raises(StorageError) as err:
        run(missing, lambda: collect(missing, REPOS))
    shown.append(str(err.value))

    refused = {
        **options,
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "config_kwargs": {"retries": {"max_attempts": 0}, "connect_timeout": 1},
    }
    down = S3Backend.from_url(f"s3://{moto_bucket}/reg", refused)
    with pytest.raises(StorageError) as err:
        run(down, lambda: down.read([REPOS + "x/link"]))
    shown.append(str(err.value))
    results = run(down, lambda: down.delete([REPOS + "x/link"]))
    assert results[0].outcome is Outcome.FAILED
    shown.append(str(results[0].error))

    for text in shown:
        assert key not in text
        assert secret not in text
    assert "NoSuchBucket" in shown[3]
    assert "s3://no-such-bucket-here/reg/" in shown[3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-11-27T10:00:00.000Z",
            datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.timezone.utc),
        ),
        ("2026-11-27T10:00:00Z", datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.timezone.utc)),
        (
            "2026-11-27T11:00:00+01:00",
            datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.timezone.utc),
        ),
        # Response headers use RFC 1123: only botocore's parser reads those.
        (
            "Fri, 27 Nov 2026 10:00:00 GMT",
            datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.timezone.utc),
        ),
    ],
)
def test_fast_timestamp_parser(text: str, expected: datetime.datetime) -> None:
    """The timestamp parser reads ISO 8601 itself and falls back to botocore for the rest."""
    parsed = fast_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_from_url_parsing() -> None:
    """s3:// and s3a:// URLs give bucket and root; concurrency is ours; bad URLs are refused."""
    backend = S3Backend.from_url("s3a://bucket//a/b/", {"concurrency": 8, "anon": True})
    assert (backend.bucket, backend.root, backend.url) == ("bucket", "a/b", "s3://bucket/a/b")
    assert S3Backend.from_url("s3://bucket").url == "s3://bucket"
    assert isinstance(open_backend("s3://bucket/reg", {"anon": True}), S3Backend)
    for bad in ("s3://", "s3:///prefix", "gs://bucket/x", "bucket/x"):
        with pytest.raises(ConfigError):
            S3Backend.from_url(bad)
    with pytest.raises(ConfigError) as err:
        S3Backend.from_url("s3://AKIAXYZ:hunter2@bucket/x")
    assert "hunter2" not in str(err.value)
