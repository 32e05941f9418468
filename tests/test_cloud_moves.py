"""GCS and Azure moves and writes: the requests they cost, and how they fail.

GCS: a move of N objects costs N ``objects.rewrite`` (more only when GCS
answers with a ``rewriteToken`` to continue) and ⌈N/100⌉ batch requests
carrying N ``objects.delete``; a write, one ``objects.insert`` (media upload)
per object. Azure: N ``Copy Blob`` (plus ``Get Blob Properties`` polls while a
copy is pending) and ⌈N/256⌉ Blob Batch requests carrying N ``Delete Blob``;
a write, one ``Put Blob`` per object. Failures that fake-gcs-server and
Azurite never produce are injected by a proxy between backend and server.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from typing import TYPE_CHECKING

import pytest
from registry_gc import StorageError
from registry_gc.backends import DeleteResult, Outcome
from registry_gc.testing import QUARANTINE, REPOS, blob_path, run, write_many

from tests.rigs.proxy import Request, Response, StorageProxy
from tests.test_azure import _backend as _azure_backend
from tests.test_azure import _writer as _azure_writer
from tests.test_gcs import _backend as _gcs_backend
from tests.test_gcs import _batch_rewriter, _gcs_error
from tests.test_gcs import _writer as _gcs_writer

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.rigs.azure import Azurite
    from tests.rigs.gcs import FakeGCS

ROOT = "reg"


def _links(n: int) -> dict[str, bytes]:
    return {f"{REPOS}r/_layers/sha256/{i:04x}/link": f"sha256:{i:064x}".encode() for i in range(n)}


# -- GCS ------------------------------------------------------------------------------


@pytest.mark.gcs
def test_gcs_move_costs_one_rewrite_each_and_a_batch_per_100(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """250 moves: 250 objects.rewrite, 3 batch requests of 250 objects.delete; bytes intact."""
    objects = _links(250)
    write_many(_gcs_writer(gcs_server, gcs_bucket, ROOT), objects)
    backend = _gcs_backend(gcs_server, gcs_bucket)
    moves = [(p, QUARANTINE + p) for p in objects]

    results = run(backend, lambda: backend.move(moves))

    assert results == [DeleteResult(p, Outcome.DELETED) for p in objects]
    assert dict(backend.request_counts) == {
        "objects.rewrite": 250,
        "batch": math.ceil(250 / 100),
        "objects.delete": 250,
    }
    assert gcs_server.list_keys(gcs_bucket) == {
        f"{ROOT}/{QUARANTINE}{p}": len(d) for p, d in objects.items()
    }
    moved = run(backend, lambda: backend.read([QUARANTINE + p for p in objects]))
    assert dict(moved) == {QUARANTINE + p: d for p, d in objects.items()}


def _rewrite_answers(
    answers: list[dict[str, object]],
) -> Callable[[Request, Callable[[Request], Response]], Response | None]:
    """An intercept answering the first rewrite requests with ``answers``, then the server's."""

    def intercept(request: Request, _: Callable[[Request], Response]) -> Response | None:
        if request.method == "POST" and "/rewriteTo/" in request.path and answers:
            body = json.dumps({"kind": "storage#rewriteResponse", **answers.pop(0)}).encode()
            return Response(200, {"Content-Type": "application/json"}, body)
        return None

    return intercept


@pytest.mark.gcs
def test_gcs_rewrite_continues_with_its_token(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """A rewrite that is not done is sent again with its rewriteToken until it is."""
    src = blob_path("big")
    write_many(_gcs_writer(gcs_server, gcs_bucket, ROOT), {src: b"layer"})
    first = {"done": False, "rewriteToken": "token-1", "objectSize": "5"}
    with StorageProxy(gcs_server.endpoint_url, _rewrite_answers([first])) as proxy:
        backend = _gcs_backend(proxy, gcs_bucket)
        results = run(backend, lambda: backend.move([(src, QUARANTINE + src)]))
    assert results == [DeleteResult(src, Outcome.DELETED)]
    rewrites = proxy.seen(lambda r: "/rewriteTo/" in r.path)
    assert [r.query.get("rewriteToken") for r in rewrites] == [None, "token-1"]
    assert backend.request_counts["objects.rewrite"] == 2
    assert gcs_server.list_keys(gcs_bucket) == {f"{ROOT}/{QUARANTINE}{src}": 5}


@pytest.mark.gcs
@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"done": True, "objectSize": "5", "resource": {"size": "4"}}, "has 4 bytes, the source 5"),
        ({"done": False, "objectSize": "5"}, "neither done nor to be continued"),
    ],
)
def test_gcs_a_rewrite_that_does_not_add_up_keeps_the_source(
    gcs_server: FakeGCS, gcs_bucket: str, answer: dict[str, object], why: str
) -> None:
    """A rewrite whose sizes differ, or that neither ends nor continues, is FAILED; no delete."""
    src = blob_path("a")
    write_many(_gcs_writer(gcs_server, gcs_bucket, ROOT), {src: b"layer"})
    with StorageProxy(gcs_server.endpoint_url, _rewrite_answers([answer])) as proxy:
        backend = _gcs_backend(proxy, gcs_bucket)
        (result,) = run(backend, lambda: backend.move([(src, QUARANTINE + src)]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert result.error.startswith(f"cannot copy it to gs://{gcs_bucket}/{ROOT}/{QUARANTINE}")
    assert why in result.error
    assert backend.request_counts["batch"] == 0
    assert gcs_server.list_keys(gcs_bucket) == {f"{ROOT}/{src}": 5}


@pytest.mark.gcs
def test_gcs_a_source_gcs_refuses_to_delete_is_failed_and_both_hold_it(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    """A batch call refused after a complete rewrite: FAILED, the copy and the source kept."""
    locked, free = blob_path("locked"), blob_path("free")
    write_many(_gcs_writer(gcs_server, gcs_bucket, ROOT), {locked: b"l", free: b"f"})
    message = "Object is subject to bucket's retention policy and cannot be deleted"

    def answer(name: str) -> tuple[int, bytes] | None:
        if name == f"{ROOT}/{locked}":
            return 403, _gcs_error(403, "retentionPolicyNotMet", message)
        return None

    with StorageProxy(gcs_server.endpoint_url, _batch_rewriter(gcs_bucket, answer)) as proxy:
        backend = _gcs_backend(proxy, gcs_bucket)
        results = run(backend, lambda: backend.move([(p, QUARANTINE + p) for p in (locked, free)]))

    assert results[1] == DeleteResult(free, Outcome.DELETED)
    assert results[0].outcome is Outcome.FAILED
    assert results[0].error == (
        f"copied to {QUARANTINE}{locked}, but the source could not be deleted, so both hold "
        f"the bytes: 403 retentionPolicyNotMet: {message}"
    )
    assert set(gcs_server.list_keys(gcs_bucket)) == {
        f"{ROOT}/{locked}",
        f"{ROOT}/{QUARANTINE}{locked}",
        f"{ROOT}/{QUARANTINE}{free}",
    }


@pytest.mark.gcs
def test_gcs_writes_are_one_media_upload_each(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """Each written object is one objects.insert, typed application/octet-stream."""
    items = {**_links(3), QUARANTINE + "journal": b'{"run": 1}\n'}
    backend = _gcs_backend(gcs_server, gcs_bucket)
    run(backend, lambda: backend.write(items))
    assert dict(backend.request_counts) == {"objects.insert": len(items)}
    assert dict(run(backend, lambda: backend.read(list(items)))) == items
    name = urllib.parse.quote(f"{ROOT}/{QUARANTINE}journal", safe="")
    metadata = gcs_server._call("GET", f"/storage/v1/b/{gcs_bucket}/o/{name}")
    assert metadata["contentType"] == "application/octet-stream"


@pytest.mark.gcs
def test_gcs_a_refused_write_names_the_object(gcs_server: FakeGCS) -> None:
    """A media upload refused (here: no such bucket) raises StorageError with the path."""
    backend = _gcs_backend(gcs_server, "no-such-bucket-for-writes")
    where = "cannot write gs://no-such-bucket-for-writes/reg/j"
    with pytest.raises(StorageError, match=where) as e:
        run(backend, lambda: backend.write({"j": b"1"}))
    assert e.value.path == "j"


# -- Azure ----------------------------------------------------------------------------


@pytest.mark.azure
def test_azure_move_costs_one_copy_each_and_a_batch_per_256(
    azurite: Azurite, azure_container: str
) -> None:
    """300 moves: 300 Copy Blob, 2 Blob Batch of 300 Delete Blob; bytes intact."""
    objects = _links(300)
    write_many(_azure_writer(azurite, azure_container, f"{ROOT}/"), objects)
    backend = _azure_backend(azurite, azure_container)
    moves = [(p, QUARANTINE + p) for p in objects]

    results = run(backend, lambda: backend.move(moves))

    assert results == [DeleteResult(p, Outcome.DELETED) for p in objects]
    assert dict(backend.request_counts) == {
        "CopyBlob": 300,
        "BlobBatch": math.ceil(300 / 256),
        "DeleteBlob": 300,
    }
    assert azurite.list_keys(azure_container) == {
        f"{ROOT}/{QUARANTINE}{p}": len(d) for p, d in objects.items()
    }
    moved = run(backend, lambda: backend.read([QUARANTINE + p for p in objects]))
    assert dict(moved) == {QUARANTINE + p: d for p, d in objects.items()}


@pytest.mark.azure
def test_azure_a_leased_source_is_failed_and_both_hold_it(
    azurite: Azurite, azure_container: str
) -> None:
    """A leased source is copied but cannot be deleted: FAILED, Azure's reason, both kept."""
    leased, free = blob_path("leased"), blob_path("free")
    write_many(_azure_writer(azurite, azure_container, f"{ROOT}/"), {leased: b"l", free: b"f"})
    azurite.lease(azure_container, f"{ROOT}/{leased}")
    backend = _azure_backend(azurite, azure_container)

    results = run(backend, lambda: backend.move([(p, QUARANTINE + p) for p in (leased, free)]))

    assert results[1] == DeleteResult(free, Outcome.DELETED)
    assert results[0].outcome is Outcome.FAILED
    assert results[0].error is not None
    assert results[0].error.startswith(
        f"copied to {QUARANTINE}{leased}, but the source could not be deleted, so both hold "
        "the bytes: 412 LeaseIdMissing: "
    )
    assert set(azurite.list_keys(azure_container)) == {
        f"{ROOT}/{leased}",
        f"{ROOT}/{QUARANTINE}{leased}",
        f"{ROOT}/{QUARANTINE}{free}",
    }


def _copy_states(
    states: list[str],
) -> Callable[[Request, Callable[[Request], Response]], Response | None]:
    """An intercept reporting the Copy Blob, then each poll, with the next of ``states``."""

    def intercept(request: Request, forward: Callable[[Request], Response]) -> Response | None:
        copying = any(k.lower() == "x-ms-copy-source" for k in request.headers)
        if not states or not (copying or request.method == "HEAD"):
            return None
        got = forward(request)
        headers = {k: v for k, v in got.headers.items() if k.lower() != "x-ms-copy-status"}
        headers["x-ms-copy-status"] = states.pop(0)
        if headers["x-ms-copy-status"] == "failed":
            headers["x-ms-copy-status-description"] = "500 InternalError: injected"
        return Response(got.status, headers, got.body)

    return intercept


@pytest.mark.azure
def test_azure_a_pending_copy_is_polled_until_it_succeeds(
    azurite: Azurite, azure_container: str
) -> None:
    """A copy Azure reports pending is polled with Get Blob Properties; then the source goes."""
    src = blob_path("a")
    write_many(_azure_writer(azurite, azure_container, f"{ROOT}/"), {src: b"layer"})
    upstream = azurite.account_url.rsplit("/", 1)[0]
    with StorageProxy(upstream, _copy_states(["pending", "pending", "success"])) as proxy:
        backend = _azure_backend(proxy, azure_container)
        results = run(backend, lambda: backend.move([(src, QUARANTINE + src)]))
    assert results == [DeleteResult(src, Outcome.DELETED)]
    assert backend.request_counts["CopyBlob"] == 1
    assert backend.request_counts["GetBlobProperties"] == 2
    assert set(azurite.list_keys(azure_container)) == {f"{ROOT}/{QUARANTINE}{src}"}


@pytest.mark.azure
def test_azure_a_copy_that_fails_keeps_the_source(azurite: Azurite, azure_container: str) -> None:
    """A pending copy that ends failed is FAILED with Azure's description; no delete is sent."""
    src = blob_path("a")
    write_many(_azure_writer(azurite, azure_container, f"{ROOT}/"), {src: b"layer"})
    upstream = azurite.account_url.rsplit("/", 1)[0]
    with StorageProxy(upstream, _copy_states(["pending", "failed"])) as proxy:
        backend = _azure_backend(proxy, azure_container)
        (result,) = run(backend, lambda: backend.move([(src, QUARANTINE + src)]))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert result.error.endswith("ended failed: 500 InternalError: injected")
    assert backend.request_counts["BlobBatch"] == 0
    assert f"{ROOT}/{src}" in azurite.list_keys(azure_container)


@pytest.mark.azure
def test_azure_writes_are_one_put_blob_each(azurite: Azurite, azure_container: str) -> None:
    """Each written blob is one Put Blob, typed application/octet-stream."""
    items = {**_links(3), QUARANTINE + "journal": b'{"run": 1}\n'}
    backend = _azure_backend(azurite, azure_container)
    run(backend, lambda: backend.write(items))
    assert dict(backend.request_counts) == {"PutBlob": len(items)}
    assert dict(run(backend, lambda: backend.read(list(items)))) == items
    with azurite.service() as svc:
        blob = svc.get_blob_client(azure_container, f"{ROOT}/{QUARANTINE}journal")
        content_type = blob.get_blob_properties().content_settings.content_type
    assert content_type == "application/octet-stream"


@pytest.mark.azure
def test_azure_a_refused_write_names_the_object(azurite: Azurite) -> None:
    """A Put Blob refused (here: no such container) raises StorageError with the path."""
    backend = _azure_backend(azurite, "no-such-container-for-writes")
    with pytest.raises(StorageError, match="404 ContainerNotFound") as e:
        run(backend, lambda: backend.write({"j": b"1"}))
    assert e.value.path == "j"
