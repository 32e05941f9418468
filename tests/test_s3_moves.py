"""S3Backend moves and writes: the requests they cost, multipart copies, per-key failures.

A move of N objects whose sizes are given costs N ``CopyObject`` (those at
most ``multipart_copy_threshold``) and ⌈N/1000⌉ ``DeleteObjects``; an object
above the threshold costs a ``HeadObject``, a ``CreateMultipartUpload``, one
``UploadPartCopy`` per part and a ``CompleteMultipartUpload`` instead of its
``CopyObject``. The threshold is lowered here to 5 MiB (S3's smallest part),
so that a 12 MiB object takes the multipart path on SeaweedFS and on moto.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import ConfigError, StorageError
from registry_gc.backends import DeleteResult, Outcome, S3Backend
from registry_gc.backends._s3_copy import part_ranges
from registry_gc.testing import QUARANTINE, REPOS, blob_path, run, write_many

from tests.rigs.proxy import Request, Response, StorageProxy

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.rigs.s3 import MotoS3, S3Server, SeaweedS3

    _Intercept = Callable[[Request, Callable[[Request], Response]], Response | None]

pytestmark = pytest.mark.s3

MIB = 1024 * 1024
ROOT = "reg"


def _backend(server: S3Server, bucket: str, **options: Any) -> S3Backend:
    opts = server.storage_options(**options)
    return S3Backend.from_url(
        f"s3://{bucket}/{ROOT}",
        {**opts, "multipart_copy_threshold": 5 * MIB, "multipart_copy_part_size": 5 * MIB},
    )


def _bytes(server: S3Server, bucket: str, paths: list[str]) -> dict[str, bytes]:
    client = server.client()
    return {p: client.get_object(Bucket=bucket, Key=f"{ROOT}/{p}")["Body"].read() for p in paths}


def _move_small_and_large(server: S3Server, bucket: str) -> None:
    """30 small objects, one of exactly the threshold, one of 12 MiB: the requests and bytes."""
    small = {blob_path(str(i)): f"layer {i}".encode() for i in range(30)}
    at_threshold = {blob_path("at"): os.urandom(5 * MIB)}
    large = {blob_path("large"): os.urandom(12 * MIB)}
    objects = {**small, **at_threshold, **large}
    server.put_many(bucket, {f"{ROOT}/{p}": d for p, d in objects.items()})
    backend = _backend(server, bucket)
    moves = [(p, QUARANTINE + p) for p in objects]
    sizes = {p: len(d) for p, d in objects.items()}

    results = run(backend, lambda: backend.move(moves, sizes=sizes))

    assert results == [DeleteResult(p, Outcome.DELETED) for p in objects]
    assert dict(backend.request_counts) == {
        "CopyObject": len(small) + len(at_threshold),
        "HeadObject": len(large),
        "CreateMultipartUpload": 1,
        "UploadPartCopy": 3,  # 5 + 5 + 2 MiB
        "CompleteMultipartUpload": 1,
        "DeleteObjects": 1,
    }
    keys = server.list_keys(bucket)
    assert keys == {f"{ROOT}/{QUARANTINE}{p}": len(d) for p, d in objects.items()}
    assert _bytes(server, bucket, [QUARANTINE + p for p in objects]) == {
        QUARANTINE + p: d for p, d in objects.items()
    }
    assert server.list_multipart_uploads(bucket) == []


def test_a_move_costs_one_copy_each_and_one_delete_with_multipart_above_the_threshold(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    """SeaweedFS: CopyObject up to the threshold, 3 UploadPartCopy for 12 MiB, 1 DeleteObjects."""
    _move_small_and_large(s3_server, s3_bucket)


def test_the_same_move_on_moto(moto_server: MotoS3, moto_bucket: str) -> None:
    """moto: the same requests for the same move, and the same bytes at the destination."""
    _move_small_and_large(moto_server, moto_bucket)


def test_without_sizes_each_object_is_a_head_first(s3_server: SeaweedS3, s3_bucket: str) -> None:
    """Without sizes, a HeadObject per object chooses the copy (and finds a missing one)."""
    objects = {blob_path("a"): b"a", blob_path("b"): os.urandom(6 * MIB)}
    write_many(s3_server.putter(s3_bucket, ROOT), objects)
    backend = _backend(s3_server, s3_bucket)
    moves = [(p, QUARANTINE + p) for p in objects] + [(blob_path("gone"), QUARANTINE + "gone")]

    results = run(backend, lambda: backend.move(moves))

    assert [r.outcome for r in results] == [Outcome.DELETED, Outcome.DELETED, Outcome.MISSING]
    counts = backend.request_counts
    assert counts["HeadObject"] == 3
    assert counts["CopyObject"] == 1
    assert counts["UploadPartCopy"] == 2  # 5 + 1 MiB
    assert counts["DeleteObjects"] == 1
    assert set(s3_server.list_keys(s3_bucket)) == {f"{ROOT}/{QUARANTINE}{p}" for p in objects}


def test_moves_delete_their_sources_1000_a_request(moto_server: MotoS3, moto_bucket: str) -> None:
    """1001 moves: 1001 CopyObject and 2 DeleteObjects; nothing else, nothing left behind."""
    paths = [f"{REPOS}r/_layers/sha256/{i:04x}/link" for i in range(1001)]
    moto_server.put_many(moto_bucket, {f"{ROOT}/{p}": b"sha256:x" for p in paths})
    backend = _backend(moto_server, moto_bucket)
    moves = [(p, QUARANTINE + p) for p in paths]

    results = run(backend, lambda: backend.move(moves, sizes=dict.fromkeys(paths, 8)))

    assert all(r.outcome is Outcome.DELETED for r in results)
    assert dict(backend.request_counts) == {"CopyObject": 1001, "DeleteObjects": 2}
    assert set(moto_server.list_keys(moto_bucket)) == {f"{ROOT}/{QUARANTINE}{p}" for p in paths}


def test_a_source_s3_refuses_to_delete_is_failed_and_both_hold_it(
    moto_server: MotoS3, moto_bucket: str
) -> None:
    """A per-key DeleteObjects error after a complete copy: FAILED, the copy and the source kept."""
    locked = [f"{REPOS}locked/_layers/sha256/{i:02x}/link" for i in range(2)]
    free = [blob_path(str(i)) for i in range(3)]
    write_many(moto_server.putter(moto_bucket, ROOT), dict.fromkeys(locked + free, b"x"))
    moto_server.deny(moto_bucket, f"{ROOT}/{REPOS}locked/")
    backend = _backend(moto_server, moto_bucket)
    paths = [free[0], locked[0], free[1], locked[1], free[2]]

    results = run(backend, lambda: backend.move([(p, QUARANTINE + p) for p in paths]))

    assert [r.path for r in results] == paths
    for r in results:
        if r.path in free:
            assert r == DeleteResult(r.path, Outcome.DELETED)
        else:
            assert r.outcome is Outcome.FAILED
            assert r.error is not None
            assert r.error.startswith(f"copied to {QUARANTINE}{r.path}, but the source could not")
            assert "both hold the bytes: AccessDenied: " in r.error
    left = set(moto_server.list_keys(moto_bucket))
    assert left == {f"{ROOT}/{QUARANTINE}{p}" for p in paths} | {f"{ROOT}/{p}" for p in locked}
    assert backend.request_counts["DeleteObjects"] == 1


def _failing_part(number: str) -> _Intercept:
    """A proxy interception answering 403 to UploadPartCopy number ``number``."""
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Injected for the test</Message></Error>"
    )

    def intercept(request: Request, _: Callable[[Request], Response]) -> Response | None:
        copy = {k.lower() for k in request.headers} & {"x-amz-copy-source"}
        if request.method == "PUT" and copy and request.query.get("partNumber") == number:
            return Response(403, {"Content-Type": "application/xml"}, body)
        return None

    return intercept


def test_a_failed_part_aborts_the_multipart_copy_and_keeps_the_source(
    moto_server: MotoS3, moto_bucket: str
) -> None:
    """An UploadPartCopy that fails aborts the upload: FAILED, the source kept, no upload left."""
    src = blob_path("large")
    data = os.urandom(11 * MIB)
    write_many(moto_server.putter(moto_bucket, ROOT), {src: data})
    with StorageProxy(moto_server.endpoint_url, _failing_part("2")) as proxy:
        backend = _backend(
            moto_server,
            moto_bucket,
            endpoint_url=proxy.url,
            config_kwargs={"retries": {"max_attempts": 0}},
        )
        sizes = {src: len(data)}
        (result,) = run(backend, lambda: backend.move([(src, QUARANTINE + src)], sizes=sizes))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert result.error.startswith(f"cannot copy it to s3://{moto_bucket}/{ROOT}/{QUARANTINE}")
    assert "AccessDenied: Injected for the test" in result.error
    assert backend.request_counts["AbortMultipartUpload"] == 1
    assert backend.request_counts["CompleteMultipartUpload"] == 0
    assert backend.request_counts["DeleteObjects"] == 0
    assert moto_server.list_multipart_uploads(moto_bucket) == []
    assert moto_server.list_keys(moto_bucket) == {f"{ROOT}/{src}": len(data)}


def test_the_abort_waits_for_the_parts_in_flight(moto_server: MotoS3, moto_bucket: str) -> None:
    """Parts sent before one fails are answered before the abort is sent; none starts after.

    Cancelling a request does not stop the server's copy, and S3 says a part in
    progress when the abort arrives may outlive it. Here part 2 fails at once
    while every other part is held for a while on its way to the server.
    """
    src = blob_path("large")
    data = os.urandom(46 * MIB)  # ten parts of 5 MiB: eight go at once, two wait their turn
    write_many(moto_server.putter(moto_bucket, ROOT), {src: data})
    failing = _failing_part("2")
    events: list[str] = []

    def intercept(request: Request, forward: Callable[[Request], Response]) -> Response | None:
        number = request.query.get("partNumber")
        if request.method == "DELETE" and "uploadId" in request.query:
            events.append("abort")
        if number is None:
            return None
        events.append(f"part {number} sent")
        answer = failing(request, forward)
        if answer is not None:
            events.append(f"part {number} failed")
            return answer
        time.sleep(0.5)
        answer = forward(request)
        events.append(f"part {number} answered")
        return answer

    with StorageProxy(moto_server.endpoint_url, intercept) as proxy:
        backend = _backend(
            moto_server,
            moto_bucket,
            endpoint_url=proxy.url,
            config_kwargs={"retries": {"max_attempts": 0}},
        )
        (result,) = run(backend, lambda: backend.move([(src, QUARANTINE + src)]))
    assert result.outcome is Outcome.FAILED
    sent = {e.split()[1] for e in events if e.endswith(" sent")}
    assert sent == {str(n) for n in range(1, 9)}, "a part started after one failed"
    assert events[-1] == "abort", events
    assert events.count("abort") == 1
    assert "part 2 failed" in events
    assert moto_server.list_multipart_uploads(moto_bucket) == []
    assert moto_server.list_keys(moto_bucket) == {f"{ROOT}/{src}": len(data)}


def test_a_source_changed_during_a_multipart_copy_is_not_half_copied(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    """Every part is pinned to the source's ETag: a new version mid-copy fails it; source kept."""
    src = blob_path("changing")
    write_many(s3_server.putter(s3_bucket, ROOT), {src: os.urandom(11 * MIB)})
    replaced = os.urandom(11 * MIB)
    client = s3_server.client()
    backend = _backend(s3_server, s3_bucket, config_kwargs={"retries": {"max_attempts": 0}})

    async def go() -> list[DeleteResult]:
        conn = await backend._connection()

        def replace_once(**_: Any) -> None:
            if not seen:
                seen.append(1)
                client.put_object(Bucket=s3_bucket, Key=f"{ROOT}/{src}", Body=replaced)

        seen: list[int] = []
        conn.client.meta.events.register("before-send.s3.CreateMultipartUpload", replace_once)
        return await backend.move([(src, QUARANTINE + "changing")])

    (result,) = run(backend, go)
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert "PreconditionFailed" in result.error
    assert s3_server.list_keys(s3_bucket) == {f"{ROOT}/{src}": len(replaced)}
    assert s3_server.list_multipart_uploads(s3_bucket) == []


def test_a_wrong_size_never_makes_a_short_copy(moto_server: MotoS3, moto_bucket: str) -> None:
    """A size above the threshold but short of the truth: the HeadObject's size cuts the parts."""
    src = blob_path("large")
    data = os.urandom(11 * MIB)
    write_many(moto_server.putter(moto_bucket, ROOT), {src: data})
    backend = _backend(moto_server, moto_bucket)
    moves = [(src, QUARANTINE + src)]
    results = run(backend, lambda: backend.move(moves, sizes={src: 6 * MIB}))
    assert results == [DeleteResult(src, Outcome.DELETED)]
    assert backend.request_counts["UploadPartCopy"] == 3
    assert _bytes(moto_server, moto_bucket, [QUARANTINE + src]) == {QUARANTINE + src: data}


def test_writes_are_one_put_each_with_the_registrys_content_type(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    """Each written object is one PutObject, typed application/octet-stream as distribution's."""
    items = {f"{REPOS}r/_layers/sha256/{i:02x}/link": f"sha256:{i:064x}".encode() for i in range(5)}
    items[QUARANTINE + "journal"] = b'{"run": 1}\n'
    backend = _backend(s3_server, s3_bucket)
    run(backend, lambda: backend.write(items))
    assert dict(backend.request_counts) == {"PutObject": len(items)}
    client = s3_server.client()
    for path, data in items.items():
        answer = client.get_object(Bucket=s3_bucket, Key=f"{ROOT}/{path}")
        assert answer["Body"].read() == data
        assert answer["ContentType"] == "application/octet-stream"


def test_a_write_that_fails_names_the_object(moto_server: MotoS3) -> None:
    """A PutObject refused (here: no such bucket) raises StorageError with the path and key."""
    backend = _backend(moto_server, "no-such-bucket-for-writes")
    where = "s3://no-such-bucket-for-writes/reg/j: NoSuchBucket"
    with pytest.raises(StorageError, match=where) as e:
        run(backend, lambda: backend.write({"j": b"1"}))
    assert e.value.path == "j"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"multipart_copy_threshold": 5 * 1024 * MIB + 1}, "multipart_copy_threshold must be"),
        ({"multipart_copy_threshold": -1}, "multipart_copy_threshold must be"),
        ({"multipart_copy_part_size": MIB}, "multipart_copy_part_size must be"),
        ({"multipart_copy_part_size": 6 * 1024 * MIB}, "multipart_copy_part_size must be"),
    ],
)
def test_multipart_copy_options_are_checked(options: dict[str, int], message: str) -> None:
    """The threshold is at most 5 GiB (one CopyObject); a part is 5 MiB to 5 GiB."""
    with pytest.raises(ConfigError, match=message):
        S3Backend.from_url("s3://bucket/reg", {"anon": True, **options})
    backend = S3Backend.from_url("s3://bucket/reg", {"anon": True, "multipart_copy_threshold": "0"})
    assert backend.url == "s3://bucket/reg"


def test_part_ranges_cover_the_object_in_at_most_10000_parts() -> None:
    """Parts cover every byte once, in order; a huge object gets larger parts, never 10,001."""
    assert part_ranges(12 * MIB, 5 * MIB) == [
        (0, 5 * MIB - 1),
        (5 * MIB, 10 * MIB - 1),
        (10 * MIB, 12 * MIB - 1),
    ]
    assert part_ranges(5 * MIB, 5 * MIB) == [(0, 5 * MIB - 1)]
    huge = 5 * 1024 * 1024 * MIB  # 5 TiB, S3's largest object
    ranges = part_ranges(huge, 5 * MIB)
    assert len(ranges) <= 10_000
    assert ranges[0][0] == 0
    assert ranges[-1][1] == huge - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    assert {last - first + 1 for first, last in ranges[:-1]} == {-(-huge // 10_000)}


def test_a_move_runs_in_any_event_loop(moto_server: MotoS3, moto_bucket: str) -> None:
    """Moves and writes work across asyncio.run calls on one backend, as reads do."""
    backend = _backend(moto_server, moto_bucket)
    for i in range(2):
        asyncio.run(backend.write({f"x{i}": b"x"}))
        assert asyncio.run(backend.move([(f"x{i}", f"y{i}")])) == [
            DeleteResult(f"x{i}", Outcome.DELETED)
        ]
    asyncio.run(backend.aclose())
    assert set(moto_server.list_keys(moto_bucket)) == {f"{ROOT}/y0", f"{ROOT}/y1"}
