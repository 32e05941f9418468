"""The GCS backend against fake-gcs-server: the shared suite, the request floor, batches, retries.

For a registry of K objects, T tags and M manifests to read, with D_p objects
to delete in phase p, a whole run costs about ⌈K/1000⌉ ``objects.list`` pages
(plus the prefix fan-out), exactly T + M ``alt=media`` GETs (no metadata GET,
no HEAD), and Σ⌈D_p/100⌉ batch requests carrying exactly ΣD_p
``objects.delete`` calls. Requests are also counted on the wire, by a proxy
between the backend and the server.

fake-gcs-server never refuses a delete (any failure is a 404), so the
per-object failure is injected by that proxy, which answers the batch as GCS
answers for objects under a retention policy (403 ``retentionPolicyNotMet``);
the batch-response parser is also checked on a response in GCS's own format.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import hashlib
import json
import math
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from registry_gc import BackendNotFoundError, StorageError, collect
from registry_gc import cli as cli_module
from registry_gc import config as config_module
from registry_gc.backends import (
    DeleteResult,
    FsspecBackend,
    GCSBackend,
    Outcome,
    SupportsDigest,
    SupportsDirectories,
    SupportsListDir,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsRequestCounts,
    SupportsWrite,
    open_backend,
)
from registry_gc.backends._gcs_api import parse_batch_response, parse_time
from registry_gc.layout import BLOBS_PREFIX
from registry_gc.plan import PHASES
from registry_gc.testing import (
    BLOBS,
    REPOS,
    BackendSuite,
    blob_path,
    files,
    run,
    write_many,
)
from registry_gc.testing import collect as listing

from tests.rigs.procs import put_untraced
from tests.rigs.proxy import Request, Response, StorageProxy
from tests.rigs.scenarios import blob_paths, live_blobs, many_repositories, mixed_registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from registry_gc.testing import Writer

    from tests.rigs.builder import RegistryBuilder
    from tests.rigs.gcs import FakeGCS

pytestmark = pytest.mark.gcs

ROOT = "reg"
NO_GRACE = datetime.timedelta(0)
UTC = datetime.timezone.utc


def _writer(server: FakeGCS, bucket: str, root: str) -> Writer:
    base = f"{root}/" if root else ""

    def write(path: str, data: bytes) -> None:
        server.put(bucket, base + path, data)

    return write


def _backend(
    server: FakeGCS | StorageProxy, bucket: str, root: str = ROOT, **options: Any
) -> GCSBackend:
    endpoint = server.url if isinstance(server, StorageProxy) else server.endpoint_url
    return GCSBackend.from_url(
        f"gs://{bucket}/{root}", {"endpoint_url": endpoint, "token": "anon", **options}
    )


def _write_tree(server: FakeGCS, bucket: str, prefix: str, b: RegistryBuilder) -> None:
    """Every file of the builder under ``bucket/prefix`` (the JSON API, outside coverage)."""
    b.write_keys(_writer(server, bucket, ""), prefix)


class TestGCS(BackendSuite):
    """GCSBackend over fake-gcs-server, registry root ``reg/`` inside the bucket."""

    capabilities = (
        SupportsDigest,
        SupportsMove,
        SupportsWrite,
        SupportsRequestCounts,
        SupportsListDir,
    )

    @pytest.fixture
    def backend(self, gcs_server: FakeGCS, gcs_bucket: str) -> Iterator[GCSBackend]:
        """GCSBackend over a fresh bucket, root ``reg``."""
        backend = _backend(gcs_server, gcs_bucket)
        yield backend
        asyncio.run(backend.aclose())

    @pytest.fixture
    def writer(self, gcs_server: FakeGCS, gcs_bucket: str) -> Writer:
        """Upload with the JSON API (urllib)."""
        return _writer(gcs_server, gcs_bucket, ROOT)

    @pytest.fixture(scope="class")
    @classmethod
    def populated(cls, gcs_server: FakeGCS) -> tuple[str, list[str], list[str]]:
        """A bucket written once for the class: 2001 blobs and 1001 links under ``reg/``."""
        bucket = gcs_server.make_bucket()
        blobs = [blob_path(str(i)) for i in range(2001)]
        links = [f"{REPOS}r/_layers/sha256/{i:04x}/link" for i in range(1001)]
        put_untraced(_writer(gcs_server, bucket, ROOT), dict.fromkeys(blobs + links, b"x"))
        return bucket, blobs, links

    @pytest.fixture
    def large_store(
        self, gcs_server: FakeGCS, populated: tuple[str, list[str], list[str]]
    ) -> Iterator[tuple[GCSBackend, list[str]]]:
        """The class's populated bucket, through a fresh backend."""
        bucket, blobs, _ = populated
        backend = _backend(gcs_server, bucket)
        yield backend, blobs
        asyncio.run(backend.aclose())

    def test_url_and_repr(self, backend: GCSBackend, gcs_bucket: str) -> None:
        """The url is gs://bucket/root, the repr shows it, and there are no multipart uploads."""
        assert backend.url == f"gs://{gcs_bucket}/{ROOT}"
        assert repr(backend) == f"GCSBackend('gs://{gcs_bucket}/{ROOT}')"
        assert not isinstance(backend, SupportsMultipartUploads)
        assert isinstance(backend, SupportsDigest)
        assert isinstance(backend, SupportsRequestCounts)

    def test_no_directories(self, backend: GCSBackend) -> None:
        """An object store has no directories: no SupportsDirectories, no remove_empty_dirs."""
        assert not isinstance(backend, SupportsDirectories)
        assert not hasattr(backend, "remove_empty_dirs")

    def test_one_media_get_per_read_and_no_metadata_request(
        self, gcs_server: FakeGCS, gcs_bucket: str, writer: Writer
    ) -> None:
        """A read is one alt=media GET per path; listing and reading send no metadata GET."""
        objects = {f"{REPOS}r/_layers/sha256/{i:02x}/link": b"sha256:x" for i in range(20)}
        write_many(writer, objects)
        paths = [*objects, REPOS + "r/missing"]
        with StorageProxy(gcs_server.endpoint_url) as proxy:
            backend = _backend(proxy, gcs_bucket)
            run(backend, lambda: listing(backend, ""))
            got = run(backend, lambda: backend.read(paths))
        assert got[REPOS + "r/missing"] is None
        assert backend.request_counts["objects.get"] == len(paths)
        assert set(backend.request_counts) == {"objects.list", "objects.get"}
        wire = _classify(proxy.seen(), gcs_bucket)
        assert wire["media"] == len(paths)
        assert wire["metadata"] == wire["head"] == 0
        assert wire["list"] == backend.request_counts["objects.list"]

    def test_listing_request_count(
        self, gcs_server: FakeGCS, populated: tuple[str, list[str], list[str]]
    ) -> None:
        """2001 blobs list in ⌈n/1000⌉ + fan-out requests; a flat prefix in ⌈n/1000⌉."""
        bucket, blobs, links = populated
        backend = _backend(gcs_server, bucket)

        listed = run(backend, lambda: listing(backend, BLOBS))
        assert len(listed) == len(blobs)
        # Two delimiter listings (blobs/, blobs/sha256/) find the 16 stems 0…f.
        assert backend.request_counts["objects.list"] <= math.ceil(len(blobs) / 1000) + 2 + 16

        backend.request_counts.clear()
        listed = run(backend, lambda: listing(backend, REPOS + "r/"))
        assert len(listed) == len(links)
        assert backend.request_counts["objects.list"] == math.ceil(len(links) / 1000)

        backend.request_counts.clear()
        listed = run(backend, lambda: listing(backend, ""))
        assert len(listed) == len(blobs) + len(links)
        assert backend.request_counts["objects.list"] <= 4 + 7 + 16 + 1
        assert set(backend.request_counts) == {"objects.list"}

    def test_empty_root_prefix(self, gcs_server: FakeGCS, gcs_bucket: str) -> None:
        """Without a rootdirectory the names start at docker/registry/v2 and paths equal names."""
        backend = _backend(gcs_server, gcs_bucket, root="")
        assert backend.url == f"gs://{gcs_bucket}"
        objects = {blob_path("a"): b"a", REPOS + "x/_layers/sha256/ab/link": b"l"}
        write_many(_writer(gcs_server, gcs_bucket, ""), objects)
        assert set(files(run(backend, lambda: listing(backend, "")))) == set(objects)
        assert run(backend, lambda: backend.read(list(objects))) == objects
        results = run(backend, lambda: backend.delete(list(objects)))
        assert all(r.outcome is Outcome.DELETED for r in results)
        assert gcs_server.list_keys(gcs_bucket) == {}

    def test_deletes_go_in_batches_of_100(
        self, gcs_server: FakeGCS, gcs_bucket: str, backend: GCSBackend
    ) -> None:
        """250 paths are 3 batch requests of 250 calls; a path given twice is sent once."""
        paths = [blob_path(str(i)) for i in range(250)]
        paths[11] = paths[10]
        gcs_server.filesystem().pipe({f"{gcs_bucket}/{ROOT}/{p}": b"x" for p in paths})

        results = run(backend, lambda: backend.delete(paths))

        assert [r.path for r in results] == paths
        assert all(r.outcome is Outcome.DELETED for r in results)
        assert backend.request_counts["batch"] == 3
        assert backend.request_counts["objects.delete"] == 249
        assert gcs_server.list_keys(gcs_bucket) == {}

    def test_digest_streams_each_object_once(self, backend: GCSBackend, writer: Writer) -> None:
        """digest() hashes each object with one GET; a missing object is None."""
        data = bytes(range(256)) * 5000
        writer(BLOBS + "big", data)
        got = run(backend, lambda: backend.digest([BLOBS + "big", BLOBS + "nope"], "sha256"))
        assert got == {BLOBS + "big": hashlib.sha256(data).hexdigest(), BLOBS + "nope": None}
        assert backend.request_counts["objects.get"] == 2

    @pytest.mark.filterwarnings("ignore::ResourceWarning")
    def test_reuse_after_a_loop_closed_without_shutdown(
        self, backend: GCSBackend, writer: Writer
    ) -> None:
        """A loop closed bare (no shutdown_asyncgens) strands its session; the next makes one."""
        writer(REPOS + "x/link", b"1")
        loop = asyncio.new_event_loop()
        try:
            got = loop.run_until_complete(backend.read([REPOS + "x/link"]))
        finally:
            loop.close()
        assert got == {REPOS + "x/link": b"1"}
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {REPOS + "x/link": b"1"}

    def test_loops_do_not_leak_warnings(
        self, backend: GCSBackend, writer: Writer, recwarn: pytest.WarningsRecorder
    ) -> None:
        """Switching event loops without aclose leaves no unclosed-session warnings behind."""
        import gc  # noqa: PLC0415

        writer(REPOS + "x/link", b"1")
        gc.collect()
        recwarn.clear()
        for _ in range(3):
            asyncio.run(backend.read([REPOS + "x/link"]))
        asyncio.run(backend.aclose())
        gc.collect()
        assert not [str(w.message) for w in recwarn if "nclosed" in str(w.message)]


# -- what went over the wire ------------------------------------------------------------


def _classify(requests: list[Request], bucket: str) -> dict[str, int]:
    """Requests by kind, read from method, path and query alone."""
    out = dict.fromkeys(("list", "media", "metadata", "head", "batch", "other"), 0)
    objects = f"/storage/v1/b/{bucket}/o"
    for r in requests:
        path = r.path.partition("?")[0]
        if r.method == "HEAD":
            out["head"] += 1
        elif r.method == "GET" and path == objects:
            out["list"] += 1
        elif r.method == "GET" and path.startswith(objects + "/"):
            out["media" if r.query.get("alt") == "media" else "metadata"] += 1
        elif r.method == "POST" and path == "/batch/storage/v1":
            out["batch"] += 1
        else:
            out["other"] += 1
    return out


def _batch_calls(request: Request) -> list[tuple[str, str, str]]:
    """``(Content-ID, method, object name)`` of each call of a batch request (stdlib parser)."""
    content_type = next(v for k, v in request.headers.items() if k.lower() == "content-type")
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body,
        policy=email.policy.compat32,
    )
    calls = []
    for part in message.get_payload():
        method, path = str(part.get_payload()).split()[:2]
        name = urllib.parse.unquote(path.partition("?")[0].split("/o/", 1)[1])
        calls.append((str(part["Content-ID"]), method, name))
    return calls


def _batch_answer(answers: list[tuple[str, int, bytes]]) -> Response:
    """A batch response in GCS's format: one ``application/http`` part per call."""
    boundary = f"batch_{uuid.uuid4().hex}"
    reasons = {200: "OK", 204: "No Content", 403: "Forbidden", 404: "Not Found", 503: "Unavailable"}
    chunks = []
    for content_id, status, body in answers:
        head = (
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            f"Content-ID: <response-{content_id.strip('<>')}>\r\n\r\n"
            f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
            f"Content-Type: application/json; charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        chunks.append(head.encode() + body + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(
        200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, b"".join(chunks)
    )


def _gcs_error(status: int, reason: str, message: str) -> bytes:
    error = {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}
    return json.dumps({"error": error}).encode()


def _batch_rewriter(
    bucket: str, answer: Callable[[str], tuple[int, bytes] | None]
) -> Callable[[Request, Callable[[Request], Response]], Response | None]:
    """An intercept answering each batch call with ``answer(name)``, or the server's own answer.

    Calls ``answer`` leaves alone are sent to fake-gcs-server one by one.
    """

    def intercept(request: Request, forward: Callable[[Request], Response]) -> Response | None:
        if request.method != "POST" or not request.path.startswith("/batch/"):
            return None
        answers = []
        for content_id, method, name in _batch_calls(request):
            injected = answer(name)
            if injected is None:
                quoted = urllib.parse.quote(name, safe="")
                got = forward(Request(method, f"/storage/v1/b/{bucket}/o/{quoted}", {}, b""))
                answers.append((content_id, got.status, got.body))
            else:
                answers.append((content_id, *injected))
        return _batch_answer(answers)

    return intercept


# -- deletes: per-object failures, and the one retry layer ------------------------------------


def test_per_object_delete_failures_are_failed(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """Calls of a batch that GCS refuses come back FAILED with status, reason and message."""
    writer = _writer(gcs_server, gcs_bucket, ROOT)
    locked = [f"{REPOS}locked/_layers/sha256/{i:02x}/link" for i in range(3)]
    free = [blob_path(str(i)) for i in range(4)]
    write_many(writer, dict.fromkeys(locked + free, b"x"))
    message = "Object is subject to bucket's retention policy and cannot be deleted"

    def answer(name: str) -> tuple[int, bytes] | None:
        if "/locked/" in name:
            return 403, _gcs_error(403, "retentionPolicyNotMet", message)
        return None

    paths = [free[0], locked[0], free[1], locked[1], locked[2], free[2], free[3], REPOS + "gone"]
    with StorageProxy(gcs_server.endpoint_url, _batch_rewriter(gcs_bucket, answer)) as proxy:
        backend = _backend(proxy, gcs_bucket)
        results = run(backend, lambda: backend.delete(paths))

    assert [r.path for r in results] == paths
    by_path = {r.path: r for r in results}
    for p in locked:
        assert by_path[p].outcome is Outcome.FAILED
        assert by_path[p].error == f"403 retentionPolicyNotMet: {message}"
    for p in free:
        assert by_path[p] == DeleteResult(p, Outcome.DELETED)
    assert by_path[REPOS + "gone"] == DeleteResult(REPOS + "gone", Outcome.MISSING)
    assert set(gcs_server.list_keys(gcs_bucket)) == {f"{ROOT}/{p}" for p in locked}
    assert backend.request_counts["batch"] == 1


def test_a_run_with_refused_deletes_fails_and_keeps_the_registry_consistent(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """Blobs GCS refuses to delete fail the run by name; links and blobs stay consistent."""
    b = mixed_registry()
    _write_tree(gcs_server, gcs_bucket, ROOT, b)
    before = gcs_server.list_keys(gcs_bucket, f"{ROOT}/")

    def answer(name: str) -> tuple[int, bytes] | None:
        if name.removeprefix(ROOT + "/").startswith(BLOBS_PREFIX):
            return 403, _gcs_error(403, "forbidden", "caller does not have storage.objects.delete")
        return None

    with StorageProxy(gcs_server.endpoint_url, _batch_rewriter(gcs_bucket, answer)) as proxy:
        backend = _backend(proxy, gcs_bucket)
        report = collect(backend, delete_untagged=True, grace=NO_GRACE, uploads_older_than=NO_GRACE)

    assert not report.ok
    assert report.exit_code == 1
    assert report.result is not None
    planned = {p for d in report.plan.deletions if d.category.value == "blob" for p in d.paths}
    assert {f.path for f in report.result.failures} == planned
    assert all(f.error.startswith("403 forbidden: ") for f in report.result.failures)
    after = gcs_server.list_keys(gcs_bucket, f"{ROOT}/")
    assert {k for k in before if "/blobs/" in k} == {k for k in after if "/blobs/" in k}
    assert any("/_uploads/" in k for k in after)  # a later phase: skipped
    second = collect(
        _backend(gcs_server, gcs_bucket),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )
    assert second.ok
    assert second.deleted_count > 0


class _Flaky:
    """An intercept answering 503 to the first ``failures`` requests (whole requests)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.throttled = 0

    def __call__(self, request: Request, forward: Callable[[Request], Response]) -> Response | None:
        if self.throttled < self.failures:
            self.throttled += 1
            return Response(
                503,
                {"Content-Type": "application/json"},
                _gcs_error(503, "backendError", "Backend Error"),
            )
        return None


def test_transient_errors_are_retried_by_one_layer(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """503s are retried (each attempt counted, on the wire too) and then succeed."""
    write_many(_writer(gcs_server, gcs_bucket, ROOT), {REPOS + "x/link": b"sha256:x"})
    flaky = _Flaky(2)
    with StorageProxy(gcs_server.endpoint_url, flaky) as proxy:
        backend = _backend(proxy, gcs_bucket)
        listed = run(backend, lambda: listing(backend, REPOS + "x/"))
        assert [i.path for i in listed] == [REPOS + "x/link"]
        assert backend.request_counts["objects.list"] == 3

        flaky.failures += 1
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {
            REPOS + "x/link": b"sha256:x"
        }
        assert backend.request_counts["objects.get"] == 2

        flaky.failures += 1
        results = run(backend, lambda: backend.delete([REPOS + "x/link"]))
        assert results == [DeleteResult(REPOS + "x/link", Outcome.DELETED)]
        assert backend.request_counts["batch"] == 2
        http = sum(n for op, n in backend.request_counts.items() if op != "objects.delete")
        assert len(proxy.seen()) == http


def test_retries_are_bounded_and_then_fail(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """With persistent 503s, N retries mean N+1 requests, then a StorageError or FAILED."""
    write_many(_writer(gcs_server, gcs_bucket, ROOT), {REPOS + "x/link": b"x"})
    with StorageProxy(gcs_server.endpoint_url, _Flaky(10**6)) as proxy:
        backend = _backend(proxy, gcs_bucket, retries=1)
        with pytest.raises(StorageError, match=rf"gs://{gcs_bucket}/{ROOT}/{REPOS}x/link: 503"):
            run(backend, lambda: backend.read([REPOS + "x/link"]))
        assert len(proxy.seen()) == 2
        results = run(backend, lambda: backend.delete([REPOS + "x/link", REPOS + "y/link"]))
        assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
        assert all(r.error is not None and r.error.startswith("503") for r in results)
        assert len(proxy.seen()) == 4
    assert set(gcs_server.list_keys(gcs_bucket)) == {f"{ROOT}/{REPOS}x/link"}


def test_a_call_answering_503_is_sent_again_in_a_later_batch(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """Only the calls that answered 503 go in the next batch; the others are not re-sent."""
    paths = [blob_path(str(i)) for i in range(5)]
    write_many(_writer(gcs_server, gcs_bucket, ROOT), dict.fromkeys(paths, b"x"))
    flaky = {f"{ROOT}/{paths[1]}": 2, f"{ROOT}/{paths[3]}": 1}

    def answer(name: str) -> tuple[int, bytes] | None:
        if flaky.get(name, 0) > 0:
            flaky[name] -= 1
            return 503, _gcs_error(503, "backendError", "Backend Error")
        return None

    with StorageProxy(gcs_server.endpoint_url, _batch_rewriter(gcs_bucket, answer)) as proxy:
        backend = _backend(proxy, gcs_bucket)
        results = run(backend, lambda: backend.delete(paths))
        batches = [_batch_calls(r) for r in proxy.seen(lambda r: r.method == "POST")]
    assert results == [DeleteResult(p, Outcome.DELETED) for p in paths]
    assert [len(calls) for calls in batches] == [5, 2, 1]
    assert backend.request_counts["objects.delete"] == 8
    assert gcs_server.list_keys(gcs_bucket) == {}


# -- the batch response parser, on GCS's own format ------------------------------------------

#: A batch response shaped as storage.googleapis.com sends it (CRLF, ``batch_`` boundary,
#: ``response-`` Content-IDs, part headers, JSON error bodies).
_GCS_RESPONSE = (
    "--batch_5QWpQo0Ix8k_AAkhYGcmWhw\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-9f86d081+1>\r\n"
    "\r\n"
    "HTTP/1.1 204 No Content\r\n"
    "Content-Type: application/json\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 GMT\r\n"
    "Expires: Mon, 01 Jan 1990 00:00:00 GMT\r\n"
    "Cache-Control: no-cache, no-store, max-age=0, must-revalidate\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "\r\n"
    "--batch_5QWpQo0Ix8k_AAkhYGcmWhw\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-9f86d081+3>\r\n"
    "\r\n"
    "HTTP/1.1 403 Forbidden\r\n"
    "Content-Type: application/json; charset=UTF-8\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 GMT\r\n"
    "Content-Length: 251\r\n"
    "\r\n"
    '{\n  "error": {\n    "code": 403,\n    "message": "Object \'b/o3\' is under active '
    'Temporary hold and cannot be deleted, overwritten or archived until hold is removed.",\n'
    '    "errors": [\n      {\n        "message": "held",\n        "domain": "global",\n'
    '        "reason": "forbidden"\n      }\n    ]\n  }\n}\n'
    "\r\n"
    "--batch_5QWpQo0Ix8k_AAkhYGcmWhw\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-9f86d081+2>\r\n"
    "\r\n"
    "HTTP/1.1 404 Not Found\r\n"
    "Content-Type: application/json; charset=UTF-8\r\n"
    "Content-Length: 50\r\n"
    "\r\n"
    '{"error":{"code":404,"message":"No such object: b/o2"}}\r\n'
    "--batch_5QWpQo0Ix8k_AAkhYGcmWhw--\r\n"
)


def test_batch_response_parser_reads_gcs_format() -> None:
    """Each part's Content-ID, status and JSON body come out of a GCS-formatted response."""
    parts = parse_batch_response(
        "multipart/mixed; boundary=batch_5QWpQo0Ix8k_AAkhYGcmWhw", _GCS_RESPONSE.encode()
    )
    assert [(p.content_id, p.status) for p in parts] == [
        ("<response-9f86d081+1>", 204),
        ("<response-9f86d081+3>", 403),
        ("<response-9f86d081+2>", 404),
    ]
    assert parts[0].body == b""
    assert json.loads(parts[1].body)["error"]["errors"][0]["reason"] == "forbidden"
    assert json.loads(parts[2].body)["error"]["code"] == 404


def test_batch_response_parser_refuses_what_it_cannot_read() -> None:
    """A non-multipart answer, or a part without a status line, is a ValueError, not a guess."""
    with pytest.raises(ValueError, match="not a multipart"):
        parse_batch_response("application/json", b"{}")
    with pytest.raises(ValueError, match="status line"):
        parse_batch_response("multipart/mixed; boundary=x", b"--x\r\nA: b\r\n\r\nnope\r\n--x--")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:00.123Z", datetime.datetime(2026, 11, 27, 10, 0, 0, 123000, UTC)),
        ("2026-11-27T10:00:00.07975Z", datetime.datetime(2026, 11, 27, 10, 0, 0, 79750, UTC)),
        ("2026-11-27T10:00:00Z", datetime.datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T11:00:00+01:00", datetime.datetime(2026, 11, 27, 10, tzinfo=UTC)),
    ],
)
def test_updated_timestamps(text: str, expected: datetime.datetime) -> None:
    """RFC 3339 ``updated`` values (any fraction length, Z or an offset) parse to aware UTC."""
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


# -- a whole run ---------------------------------------------------------------------------


def test_a_run_costs_the_request_floor(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """List pages ≈ ⌈K/1000⌉ + fan-out, GETs = T + M, no metadata GET, Σ⌈D/100⌉ batches."""
    b = many_repositories()
    _write_tree(gcs_server, gcs_bucket, ROOT, b)
    keys = len(b.files)
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    with StorageProxy(gcs_server.endpoint_url) as proxy:
        backend = _backend(proxy, gcs_bucket)
        report = collect(backend, delete_untagged=True, grace=NO_GRACE, uploads_older_than=NO_GRACE)
        wire = _classify(proxy.seen(), gcs_bucket)

    counts = backend.request_counts
    assert report.ok
    assert report.deleted_count > 0
    assert counts["objects.get"] == tags + report.manifests_read
    first_chars = {p[len(REPOS)] for p in b.files if p.startswith(REPOS)}
    assert counts["objects.list"] <= math.ceil(keys / 1000) + 16 + len(first_chars) + 6, counts
    per_phase = [
        sum(len(d.paths) for d in report.plan.deletions if d.category in phase) for phase in PHASES
    ]
    assert counts["batch"] == sum(math.ceil(n / 100) for n in per_phase), (counts, per_phase)
    assert counts["objects.delete"] == report.deleted_count
    assert set(counts) == {"objects.list", "objects.get", "batch", "objects.delete"}
    # The same, counted on the wire.
    assert wire == {
        "list": counts["objects.list"],
        "media": counts["objects.get"],
        "metadata": 0,
        "head": 0,
        "batch": counts["batch"],
        "other": 0,
    }
    left = gcs_server.list_keys(gcs_bucket, f"{ROOT}/")
    assert len(left) == keys - report.deleted_count
    for d in report.plan.deletions:
        for p in d.paths:
            assert f"{ROOT}/{p}" not in left


def test_a_synthetic_store_keeps_exactly_the_live_blobs(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """After a collect, the bucket holds exactly the blobs an independent walk finds live."""
    b = mixed_registry()
    _write_tree(gcs_server, gcs_bucket, ROOT, b)
    expected = blob_paths(live_blobs(b))
    assert expected < b.paths(BLOBS)  # there is garbage to collect

    report = collect(
        f"gs://{gcs_bucket}/{ROOT}",
        storage_options=gcs_server.storage_options(),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )

    assert report.ok
    left = {k.removeprefix(f"{ROOT}/") for k in gcs_server.list_keys(gcs_bucket, f"{ROOT}/")}
    assert {p for p in left if p.startswith(BLOBS)} == expected
    assert not any("/_uploads/" in p for p in left)
    assert not any(p.startswith(f"{REPOS}old/gone/") for p in left)
    again = collect(
        f"gs://{gcs_bucket}/{ROOT}",
        storage_options=gcs_server.storage_options(),
        delete_untagged=True,
        grace=NO_GRACE,
        dry_run=True,
    )
    assert again.deleted_count == 0


def test_registry_config_with_a_gcs_section(
    gcs_server: FakeGCS,
    gcs_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gc --config` reads the gcs section; STORAGE_EMULATOR_HOST points it at the emulator."""
    b = mixed_registry(seed=8)
    _write_tree(gcs_server, gcs_bucket, ROOT, b)
    config = tmp_path / "config.yml"
    storage = {
        "gcs": {"bucket": gcs_bucket, "rootdirectory": f"/{ROOT}"},
        "delete": {"enabled": True},
    }
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": storage}))
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    # What Google's clients (and the registry's Go SDK) read to reach an emulator.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url.removeprefix("http://"))

    code = cli_module.run(
        ["gc", "--config", str(config), "-m", "--grace", "0", "--uploads-older-than", "0", "--json"]
    )
    out = capsys.readouterr().out

    assert code == 0, out
    report = json.loads(out)
    assert report["root"] == f"gs://{gcs_bucket}/{ROOT}"
    assert report["registry_config"]["driver"] == "gcs"
    left = {k.removeprefix(f"{ROOT}/") for k in gcs_server.list_keys(gcs_bucket, f"{ROOT}/")}
    assert {p for p in left if p.startswith(BLOBS)} == blob_paths(live_blobs(b))


# -- opening, options, credentials ------------------------------------------------------------


@pytest.mark.parametrize("url", ["gs://bucket/reg", "gcs://bucket/reg", "GS://bucket/reg"])
def test_gs_urls_open_the_gcs_backend(url: str) -> None:
    """gs:// and gcs:// open GCSBackend; other fsspec schemes still get the generic backend."""
    backend = open_backend(url, {"token": "anon"})
    assert isinstance(backend, GCSBackend)
    assert backend.url == "gs://bucket/reg"
    assert isinstance(open_backend("memory://x"), FsspecBackend)


def test_unknown_options_are_refused_by_name() -> None:
    """A misspelt storage option is a ConfigError naming it and the accepted ones."""
    with pytest.raises(Exception, match=r"unknown storage option\(s\) for gs://: endpointurl"):
        GCSBackend.from_url("gs://b", {"endpointurl": "http://x"})
    assert (
        GCSBackend.from_url("gs://b", {"skip_instance_cache": True, "anon": True}).url == "gs://b"
    )


def test_emulator_host_variable_means_anonymous_requests_to_it(
    gcs_server: FakeGCS, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With STORAGE_EMULATOR_HOST and no token, requests go to the emulator unauthenticated."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url.removeprefix("http://"))
    gcs_server.put(gcs_bucket, "docker/registry/v2/x", b"1")
    backend = GCSBackend(gcs_bucket)
    assert backend.endpoint == gcs_server.endpoint_url
    assert run(backend, lambda: backend.read(["docker/registry/v2/x"])) == {
        "docker/registry/v2/x": b"1"
    }


def test_credentials_never_shown(gcs_server: FakeGCS) -> None:
    """A service-account key's private key appears in no url, repr or error message."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    secret = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1d-secret-id",
        "private_key": secret,
        "client_email": "gc@p.iam.gserviceaccount.com",
        "token_uri": gcs_server.endpoint_url + "/token",
    }
    backend = GCSBackend.from_url(
        "gs://b/reg", {"token": token, "endpoint_url": gcs_server.endpoint_url}
    )
    shown = [backend.url, repr(backend)]
    with pytest.raises(StorageError) as err:
        run(backend, lambda: backend.read([REPOS + "x"]))
    shown.append(str(err.value))
    body = secret.splitlines()[1]
    for text in shown:
        assert body not in text
        assert "k1d-secret-id" not in text
    assert "gs://b/reg" in shown[-1]


def test_requester_pays_bills_the_project_on_every_call(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """requester_pays adds userProject to listings, reads and each call of a batch."""
    gcs_server.put(gcs_bucket, f"{ROOT}/{REPOS}x/link", b"1")
    with StorageProxy(gcs_server.endpoint_url) as proxy:
        backend = _backend(proxy, gcs_bucket, project="billed", requester_pays=True)
        run(backend, lambda: listing(backend, REPOS))
        run(backend, lambda: backend.read([REPOS + "x/link"]))
        run(backend, lambda: backend.delete([REPOS + "x/link"]))
    requests = proxy.seen()
    assert requests
    assert all(r.query.get("userProject") == "billed" for r in requests if r.method == "GET")
    (batch,) = [r for r in requests if r.method == "POST"]
    assert b"?userProject=billed HTTP/1.1" in batch.body


@pytest.mark.parametrize(("url", "package", "extra"), [("gs://b", "gcsfs", "gcs")])
def test_a_missing_client_library_is_named_with_its_extra(
    url: str, package: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its client library, opening the URL says which package and extra to install."""
    import importlib.util  # noqa: PLC0415

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith(package) else real(name, *a),
    )
    with pytest.raises(
        BackendNotFoundError, match=rf"{package}: pip install 'registry-gc\[{extra}\]'"
    ):
        open_backend(url)
