"""The Azure backend against Azurite: the shared suite, the request floor, batches, leases, retries.

For a registry of K blobs, T tags and M manifests to read, with D_p blobs to
delete in phase p, a whole run costs about ⌈K/5000⌉ List Blobs pages (plus the
prefix fan-out), exactly T + M Get Blob (no Get Blob Properties, no ranged
second GET), and Σ⌈D_p/256⌉ Blob Batch requests carrying exactly ΣD_p Delete
Blob calls. Requests are also counted on the wire, by a proxy between the
backend and Azurite. A per-blob failure is real: Azurite refuses to delete a
leased blob (412 ``LeaseIdMissing``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import email
import email.policy
import hashlib
import json
import math
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from registry_gc import BackendNotFoundError, ConfigError, StorageError, collect
from registry_gc import cli as cli_module
from registry_gc import config as config_module
from registry_gc.backends import (
    AzureBackend,
    DeleteResult,
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
from registry_gc.backends import _azure as azure_module
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

from tests.rigs.azure import ACCOUNT, KEY
from tests.rigs.procs import put_untraced
from tests.rigs.proxy import Request, Response, StorageProxy
from tests.rigs.scenarios import blob_paths, live_blobs, many_repositories, mixed_registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from registry_gc.testing import Writer

    from tests.rigs.azure import Azurite
    from tests.rigs.builder import RegistryBuilder

pytestmark = pytest.mark.azure

ROOT = "reg"
NO_GRACE = datetime.timedelta(0)


def _options(server: Azurite | StorageProxy, **extra: Any) -> dict[str, Any]:
    url = f"{server.url}/{ACCOUNT}" if isinstance(server, StorageProxy) else server.account_url
    return {"account_name": ACCOUNT, "account_key": KEY, "account_url": url, **extra}


def _backend(
    server: Azurite | StorageProxy, container: str, root: str = ROOT, **extra: Any
) -> AzureBackend:
    return AzureBackend.from_url(f"az://{container}/{root}", _options(server, **extra))


def _writer(server: Azurite, container: str, base: str) -> Writer:
    """``write(path, data)`` uploading ``base + path`` with one shared SDK client."""
    client = server.service().get_container_client(container)

    def write(path: str, data: bytes) -> None:
        client.upload_blob(base + path, data, overwrite=True)

    return write


def _write_tree(server: Azurite, container: str, prefix: str, b: RegistryBuilder) -> None:
    """Every file of the builder under ``container/prefix`` (the SDK, outside coverage)."""
    b.write_keys(_writer(server, container, ""), prefix)


def _names(server: Azurite, container: str, prefix: str = f"{ROOT}/") -> set[str]:
    """Blob names under ``prefix``, relative to it."""
    return {k.removeprefix(prefix) for k in server.list_keys(container, prefix)}


class TestAzure(BackendSuite):
    """AzureBackend over Azurite, registry root ``reg/`` inside the container."""

    capabilities = (
        SupportsDigest,
        SupportsMove,
        SupportsWrite,
        SupportsRequestCounts,
        SupportsListDir,
    )

    @pytest.fixture
    def backend(self, azurite: Azurite, azure_container: str) -> Iterator[AzureBackend]:
        """AzureBackend over a fresh container, root ``reg``."""
        backend = _backend(azurite, azure_container)
        yield backend
        asyncio.run(backend.aclose())

    @pytest.fixture
    def writer(self, azurite: Azurite, azure_container: str) -> Writer:
        """Upload with the synchronous SDK."""
        return _writer(azurite, azure_container, f"{ROOT}/")

    @pytest.fixture(scope="class")
    @classmethod
    def populated(cls, azurite: Azurite) -> Iterator[tuple[str, list[str], list[str]]]:
        """A container written once for the class: 2001 blobs and 1001 links under ``reg/``."""
        container = azurite.make_container()
        blobs = [blob_path(str(i)) for i in range(2001)]
        links = [f"{REPOS}r/_layers/sha256/{i:04x}/link" for i in range(1001)]
        put_untraced(_writer(azurite, container, f"{ROOT}/"), dict.fromkeys(blobs + links, b"x"))
        yield container, blobs, links
        azurite.delete_container(container)

    @pytest.fixture
    def large_store(
        self, azurite: Azurite, populated: tuple[str, list[str], list[str]]
    ) -> Iterator[tuple[AzureBackend, list[str]]]:
        """The class's populated container, through a fresh backend."""
        container, blobs, _ = populated
        backend = _backend(azurite, container)
        yield backend, blobs
        asyncio.run(backend.aclose())

    def test_url_and_repr(self, backend: AzureBackend, azure_container: str) -> None:
        """The url is az://container/root, the repr shows it, and there are no multipart uploads."""
        assert backend.url == f"az://{azure_container}/{ROOT}"
        assert repr(backend) == f"AzureBackend('az://{azure_container}/{ROOT}')"
        assert not isinstance(backend, SupportsMultipartUploads)
        assert isinstance(backend, SupportsDigest)
        assert isinstance(backend, SupportsRequestCounts)

    def test_no_directories(self, backend: AzureBackend) -> None:
        """An object store has no directories: no SupportsDirectories, no remove_empty_dirs."""
        assert not isinstance(backend, SupportsDirectories)
        assert not hasattr(backend, "remove_empty_dirs")

    def test_one_get_per_read_even_for_an_empty_blob(
        self, azurite: Azurite, azure_container: str, writer: Writer
    ) -> None:
        """A read is one Get Blob per path (an empty blob too); nothing asks for properties."""
        objects = {f"{REPOS}r/_layers/sha256/{i:02x}/link": b"sha256:x" for i in range(20)}
        objects[REPOS + "r/empty"] = b""
        write_many(writer, objects)
        paths = [*objects, REPOS + "r/missing"]
        with StorageProxy(azurite.account_url.rsplit("/", 1)[0]) as proxy:
            backend = _backend(proxy, azure_container)
            run(backend, lambda: listing(backend, ""))
            got = run(backend, lambda: backend.read(paths))
        assert got == {**objects, REPOS + "r/missing": None}
        assert backend.request_counts["GetBlob"] == len(paths)
        assert set(backend.request_counts) == {"ListBlobs", "GetBlob"}
        wire = _classify(proxy.seen())
        assert wire["get"] == len(paths)
        assert wire["ranged"] == wire["head"] == 0
        assert wire["list"] == backend.request_counts["ListBlobs"]

    def test_listing_request_count(
        self,
        azurite: Azurite,
        populated: tuple[str, list[str], list[str]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """2001 blobs list in ⌈n/5000⌉ + fan-out requests; a flat prefix in ⌈n/page⌉ pages."""
        container, blobs, links = populated
        backend = _backend(azurite, container)

        listed = run(backend, lambda: listing(backend, BLOBS))
        assert len(listed) == len(blobs)
        assert backend.request_counts["ListBlobs"] <= math.ceil(len(blobs) / 5000) + 2 + 16

        # Pages of 1000 instead of 5000, so that 1001 links follow a NextMarker.
        monkeypatch.setattr(azure_module, "_PAGE", 1000)
        backend.request_counts.clear()
        listed = run(backend, lambda: listing(backend, REPOS + "r/"))
        assert len(listed) == len(links)
        assert backend.request_counts["ListBlobs"] == math.ceil(len(links) / 1000)
        monkeypatch.undo()

        backend.request_counts.clear()
        listed = run(backend, lambda: listing(backend, ""))
        assert len(listed) == len(blobs) + len(links)
        assert set(backend.request_counts) == {"ListBlobs"}

    def test_distribution_2_leading_slash_names(
        self, azurite: Azurite, azure_container: str
    ) -> None:
        """``az://c//``: blob names start with ``/docker/…`` (distribution 2.x) and round-trip."""
        backend = AzureBackend.from_url(f"az://{azure_container}//", _options(azurite))
        assert backend.url == f"az://{azure_container}//"
        objects = {blob_path("a"): b"a", REPOS + "x/_layers/sha256/ab/link": b"l"}
        write_many(_writer(azurite, azure_container, "/"), objects)
        _writer(azurite, azure_container, "")(REPOS + "not/legacy/link", b"x")
        assert set(files(run(backend, lambda: listing(backend, "")))) == set(objects)
        assert set(files(run(backend, lambda: listing(backend, REPOS)))) == {
            REPOS + "x/_layers/sha256/ab/link"
        }
        assert run(backend, lambda: backend.read(list(objects))) == objects
        results = run(backend, lambda: backend.delete(list(objects)))
        assert all(r.outcome is Outcome.DELETED for r in results)
        assert set(azurite.list_keys(azure_container)) == {REPOS + "not/legacy/link"}

    def test_deletes_go_in_batches_of_256(
        self, azurite: Azurite, azure_container: str, backend: AzureBackend, writer: Writer
    ) -> None:
        """600 paths are 3 Blob Batch requests of 599 calls; a path given twice is sent once."""
        paths = [blob_path(str(i)) for i in range(600)]
        paths[11] = paths[10]
        write_many(writer, dict.fromkeys(paths, b"x"))

        results = run(backend, lambda: backend.delete(paths))

        assert [r.path for r in results] == paths
        assert all(r.outcome is Outcome.DELETED for r in results)
        assert backend.request_counts["BlobBatch"] == 3
        assert backend.request_counts["DeleteBlob"] == 599
        assert azurite.list_keys(azure_container) == {}

    def test_a_leased_blob_is_failed_with_azures_reason(
        self, azurite: Azurite, azure_container: str, backend: AzureBackend, writer: Writer
    ) -> None:
        """A blob under a lease comes back FAILED (412 LeaseIdMissing); the others are deleted."""
        locked = [f"{REPOS}locked/_layers/sha256/{i:02x}/link" for i in range(3)]
        free = [blob_path(str(i)) for i in range(4)]
        write_many(writer, dict.fromkeys(locked + free, b"x"))
        for p in locked:
            azurite.lease(azure_container, f"{ROOT}/{p}")
        paths = [free[0], locked[0], free[1], locked[1], locked[2], free[2], free[3], REPOS + "no"]

        results = run(backend, lambda: backend.delete(paths))

        assert [r.path for r in results] == paths
        by_path = {r.path: r for r in results}
        for p in locked:
            assert by_path[p].outcome is Outcome.FAILED
            assert by_path[p].error is not None
            assert by_path[p].error.startswith("412 LeaseIdMissing: There is currently a lease")
        for p in free:
            assert by_path[p] == DeleteResult(p, Outcome.DELETED)
        assert by_path[REPOS + "no"] == DeleteResult(REPOS + "no", Outcome.MISSING)
        assert _names(azurite, azure_container) == set(locked)
        assert backend.request_counts["BlobBatch"] == 1

    def test_digest_streams_each_blob_once(self, backend: AzureBackend, writer: Writer) -> None:
        """digest() hashes each blob with one Get Blob; a missing blob is None."""
        data = bytes(range(256)) * 5000
        writer(BLOBS + "big", data)
        got = run(backend, lambda: backend.digest([BLOBS + "big", BLOBS + "nope"], "sha256"))
        assert got == {BLOBS + "big": hashlib.sha256(data).hexdigest(), BLOBS + "nope": None}
        assert backend.request_counts["GetBlob"] == 2

    @pytest.mark.filterwarnings("ignore::ResourceWarning")
    def test_reuse_after_a_loop_closed_without_shutdown(
        self, backend: AzureBackend, writer: Writer
    ) -> None:
        """A loop closed bare (no shutdown_asyncgens) strands its client; the next makes one."""
        writer(REPOS + "x/link", b"1")
        loop = asyncio.new_event_loop()
        try:
            got = loop.run_until_complete(backend.read([REPOS + "x/link"]))
        finally:
            loop.close()
        assert got == {REPOS + "x/link": b"1"}
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {REPOS + "x/link": b"1"}

    def test_loops_do_not_leak_warnings(
        self, backend: AzureBackend, writer: Writer, recwarn: pytest.WarningsRecorder
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


def _classify(requests: list[Request]) -> dict[str, int]:
    """Requests by kind, read from method, path, query and headers alone."""
    out = dict.fromkeys(("list", "get", "ranged", "head", "batch", "other"), 0)
    for r in requests:
        comp = r.query.get("comp")
        ranged = any(k.lower() in ("x-ms-range", "range") for k in r.headers)
        if r.method == "HEAD":
            out["head"] += 1
        elif r.method == "GET" and comp == "list":
            out["list"] += 1
        elif r.method == "GET" and comp is None:
            out["ranged" if ranged else "get"] += 1
        elif r.method == "POST" and comp == "batch":
            out["batch"] += 1
        else:
            out["other"] += 1
    return out


class _Throttle:
    """An intercept answering 503 ServerBusy to the first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.throttled = 0

    def __call__(self, request: Request, forward: Callable[[Request], Response]) -> Response | None:
        if self.throttled >= self.failures:
            return None
        self.throttled += 1
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
            b"<Message>Ingress is over the account limit.</Message></Error>"
        )
        headers = {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"}
        return Response(503, headers, body)


def _batch_blob_names(request: Request) -> list[str]:
    """The blob names of a Blob Batch request's Delete calls, in order (stdlib parser)."""
    content_type = next(v for k, v in request.headers.items() if k.lower() == "content-type")
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body,
        policy=email.policy.compat32,
    )
    names = []
    for part in message.get_payload():
        path = str(part.get_payload()).split()[1]
        # /devstoreaccount1/<container>/<name> (Azurite serves the account in the path)
        names.append(urllib.parse.unquote(path.partition("?")[0]).split("/", 3)[3])
    return names


def _busy_parts(
    busy: dict[str, int],
) -> Callable[[Request, Callable[[Request], Response]], Response | None]:
    """An intercept turning the answers of the calls deleting ``busy`` names into 503 ServerBusy.

    The batch still reaches Azurite (whose signature covers the whole body):
    the blob is gone there, as after a real 503 that came after the work.
    """

    def intercept(request: Request, forward: Callable[[Request], Response]) -> Response | None:
        if request.method != "POST" or request.query.get("comp") != "batch":
            return None
        names = _batch_blob_names(request)
        response = forward(request)
        content_type = next(v for k, v in response.headers.items() if k.lower() == "content-type")
        boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
        chunks = response.body.split(b"--" + boundary)
        for i, name in enumerate(names, start=1):
            if busy.get(name, 0) > 0:
                busy[name] -= 1
                head, sep, rest = chunks[i].partition(b"HTTP/1.1 ")
                _, _, after = rest.partition(b"\r\n")  # drop the real status line
                busy_line = b"503 Server Busy\r\nx-ms-error-code: ServerBusy\r\n"
                chunks[i] = head + sep + busy_line + after
        return Response(response.status, response.headers, (b"--" + boundary).join(chunks))

    return intercept


def test_transient_errors_are_retried_by_one_layer(azurite: Azurite, azure_container: str) -> None:
    """503 ServerBusy is retried by the SDK's policy (each attempt counted, on the wire too)."""
    _writer(azurite, azure_container, f"{ROOT}/")(REPOS + "x/link", b"sha256:x")
    throttle = _Throttle(2)
    upstream = azurite.account_url.rsplit("/", 1)[0]
    with StorageProxy(upstream, throttle) as proxy:
        backend = _backend(proxy, azure_container)
        listed = run(backend, lambda: listing(backend, REPOS + "x/"))
        assert [i.path for i in listed] == [REPOS + "x/link"]
        assert backend.request_counts["ListBlobs"] == 3

        throttle.failures += 1
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {
            REPOS + "x/link": b"sha256:x"
        }
        assert backend.request_counts["GetBlob"] == 2

        throttle.failures += 1
        results = run(backend, lambda: backend.delete([REPOS + "x/link"]))
        assert results == [DeleteResult(REPOS + "x/link", Outcome.DELETED)]
        assert backend.request_counts["BlobBatch"] == 2
        http = sum(n for op, n in backend.request_counts.items() if op != "DeleteBlob")
        assert len(proxy.seen()) == http


def test_retries_are_bounded_and_then_fail(azurite: Azurite, azure_container: str) -> None:
    """With persistent 503s, N retries mean N+1 requests, then a StorageError or FAILED."""
    _writer(azurite, azure_container, f"{ROOT}/")(REPOS + "x/link", b"x")
    upstream = azurite.account_url.rsplit("/", 1)[0]
    with StorageProxy(upstream, _Throttle(10**6)) as proxy:
        backend = _backend(proxy, azure_container, retries=1)
        pattern = rf"az://{azure_container}/{ROOT}/{REPOS}x/link: 503 ServerBusy"
        with pytest.raises(StorageError, match=pattern):
            run(backend, lambda: backend.read([REPOS + "x/link"]))
        assert len(proxy.seen()) == 2
        results = run(backend, lambda: backend.delete([REPOS + "x/link", REPOS + "y/link"]))
        assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
        assert all(r.error is not None and "ServerBusy" in r.error for r in results)
        assert len(proxy.seen()) == 4
    assert _names(azurite, azure_container) == {REPOS + "x/link"}


def test_a_call_answering_503_is_sent_again_in_a_later_batch(
    azurite: Azurite, azure_container: str
) -> None:
    """Only the calls that answered 503 go in the next batch, from the same retry budget."""
    paths = [blob_path(str(i)) for i in range(5)]
    write_many(_writer(azurite, azure_container, f"{ROOT}/"), dict.fromkeys(paths, b"x"))
    busy = {f"{ROOT}/{paths[1]}": 2, f"{ROOT}/{paths[3]}": 1}
    upstream = azurite.account_url.rsplit("/", 1)[0]
    with StorageProxy(upstream, _busy_parts(busy)) as proxy:
        backend = _backend(proxy, azure_container)
        results = run(backend, lambda: backend.delete(paths))
        batches = [_batch_blob_names(r) for r in proxy.seen(lambda r: r.method == "POST")]
    assert [len(names) for names in batches] == [5, 2, 1]
    # Azurite did delete them the first time; the 503 came after: the re-sent delete is a 404.
    expected = [Outcome.DELETED, Outcome.MISSING, Outcome.DELETED, Outcome.MISSING, Outcome.DELETED]
    assert [r.outcome for r in results] == expected
    assert backend.request_counts["DeleteBlob"] == 8
    assert azurite.list_keys(azure_container) == {}


# -- a whole run ---------------------------------------------------------------------------


def test_a_run_costs_the_request_floor(azurite: Azurite, azure_container: str) -> None:
    """List pages ≈ ⌈K/5000⌉ + fan-out, GETs = T + M, no properties, Σ⌈D/256⌉ batches."""
    b = many_repositories()
    _write_tree(azurite, azure_container, ROOT, b)
    keys = len(b.files)
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    with StorageProxy(azurite.account_url.rsplit("/", 1)[0]) as proxy:
        backend = _backend(proxy, azure_container)
        report = collect(backend, delete_untagged=True, grace=NO_GRACE, uploads_older_than=NO_GRACE)
        wire = _classify(proxy.seen())

    counts = backend.request_counts
    assert report.ok
    assert report.deleted_count > 0
    assert counts["GetBlob"] == tags + report.manifests_read
    first_chars = {p[len(REPOS)] for p in b.files if p.startswith(REPOS)}
    assert counts["ListBlobs"] <= math.ceil(keys / 5000) + 16 + len(first_chars) + 6, counts
    per_phase = [
        sum(len(d.paths) for d in report.plan.deletions if d.category in phase) for phase in PHASES
    ]
    assert counts["BlobBatch"] == sum(math.ceil(n / 256) for n in per_phase), (counts, per_phase)
    assert counts["DeleteBlob"] == report.deleted_count
    assert set(counts) == {"ListBlobs", "GetBlob", "BlobBatch", "DeleteBlob"}
    assert wire == {
        "list": counts["ListBlobs"],
        "get": counts["GetBlob"],
        "ranged": 0,
        "head": 0,
        "batch": counts["BlobBatch"],
        "other": 0,
    }
    left = _names(azurite, azure_container)
    assert len(left) == keys - report.deleted_count
    for d in report.plan.deletions:
        for p in d.paths:
            assert p not in left


def test_a_run_with_leased_blobs_fails_by_name_and_converges_later(
    azurite: Azurite, azure_container: str
) -> None:
    """Leased blobs fail the run by name, nothing live goes; once the leases go, a run converges."""
    b = mixed_registry()
    _write_tree(azurite, azure_container, ROOT, b)
    client = azurite.service().get_container_client(azure_container)
    names = azurite.list_keys(azure_container, f"{ROOT}/{BLOBS_PREFIX}")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        leases = list(
            pool.map(lambda n: client.get_blob_client(n).acquire_lease(lease_duration=-1), names)
        )
    before = _names(azurite, azure_container)

    report = collect(
        _backend(azurite, azure_container),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )

    assert not report.ok
    assert report.exit_code == 1
    assert report.result is not None
    planned = {p for d in report.plan.deletions if d.category.value == "blob" for p in d.paths}
    assert {f.path for f in report.result.failures} == planned
    assert all(f.error.startswith("412 LeaseIdMissing") for f in report.result.failures)
    after = _names(azurite, azure_container)
    assert {p for p in before if p.startswith(BLOBS)} == {p for p in after if p.startswith(BLOBS)}
    assert any("/_uploads/" in p for p in after)  # a later phase: skipped
    for lease in leases:
        lease.break_lease(lease_break_period=0)
    second = collect(
        _backend(azurite, azure_container),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )
    assert second.ok
    assert {p for p in _names(azurite, azure_container) if p.startswith(BLOBS)} < {
        p for p in after if p.startswith(BLOBS)
    }


def test_a_synthetic_store_keeps_exactly_the_live_blobs(
    azurite: Azurite, azure_container: str
) -> None:
    """After a collect, the container holds exactly the blobs an independent walk finds live."""
    b = mixed_registry()
    _write_tree(azurite, azure_container, ROOT, b)
    expected = blob_paths(live_blobs(b))
    assert expected < b.paths(BLOBS)

    report = collect(
        f"az://{azure_container}/{ROOT}",
        storage_options=_options(azurite),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )

    assert report.ok
    left = _names(azurite, azure_container)
    assert {p for p in left if p.startswith(BLOBS)} == expected
    assert not any("/_uploads/" in p for p in left)
    assert not any(p.startswith(f"{REPOS}old/gone/") for p in left)
    again = collect(
        f"az://{azure_container}/{ROOT}",
        storage_options=_options(azurite),
        delete_untagged=True,
        grace=NO_GRACE,
        dry_run=True,
    )
    assert again.deleted_count == 0


def _gc_config(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    storage: dict[str, Any],
    *extra: str,
) -> tuple[int, dict[str, Any]]:
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": storage}))
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    argv = ["gc", "--config", str(config), "-m", "--grace", "0", "--uploads-older-than", "0"]
    code = cli_module.run([*argv, *extra, "--json"])
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        pytest.fail(f"not JSON (exit {code}): {out!r}")


def test_registry_config_with_an_azure_section(
    azurite: Azurite,
    azure_container: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gc --config` reads a distribution 3.x azure section; its serviceurl reaches Azurite."""
    b = mixed_registry(seed=8)
    _write_tree(azurite, azure_container, ROOT, b)
    storage = {
        "azure": {
            "accountname": ACCOUNT,
            "accountkey": KEY,
            "container": azure_container,
            "rootdirectory": f"/{ROOT}",
            "serviceurl": azurite.account_url,
            "credentials": {"type": "shared_key"},
        },
        "delete": {"enabled": True},
    }

    code, report = _gc_config(capsys, monkeypatch, tmp_path / "config.yml", storage)

    assert code == 0, report
    assert report["root"] == f"az://{azure_container}/{ROOT}"
    assert report["registry_config"]["driver"] == "azure"
    left = _names(azurite, azure_container)
    assert {p for p in left if p.startswith(BLOBS)} == blob_paths(live_blobs(b))
    assert KEY not in json.dumps(report)


def test_registry_2_config_reads_leading_slash_names(
    azurite: Azurite,
    azure_container: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 2.x azure section (no credentials): names under ``/``; --endpoint-url reaches Azurite."""
    b = mixed_registry(seed=9)
    write = _writer(azurite, azure_container, "/")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: write(*item), b.files.items()))
    storage = {
        "azure": {"accountname": ACCOUNT, "accountkey": KEY, "container": azure_container},
    }

    code, report = _gc_config(
        capsys,
        monkeypatch,
        tmp_path / "config.yml",
        storage,
        "--endpoint-url",
        azurite.account_url,
    )

    assert code == 0, report
    assert report["root"] == f"az://{azure_container}//"
    left = _names(azurite, azure_container, "/")
    assert {p for p in left if p.startswith(BLOBS)} == blob_paths(live_blobs(b))


# -- opening, options, credentials ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("az://c1x/reg", "az://c1x/reg"),
        ("abfs://c1x/reg", "az://c1x/reg"),
        ("abfss://c1x/reg", "az://c1x/reg"),
        ("abfs://c1x@acct.dfs.core.windows.net/reg", "az://c1x/reg"),
        ("az://c1x//", "az://c1x//"),
        ("az://c1x", "az://c1x"),
    ],
)
def test_azure_urls_open_the_azure_backend(url: str, expected: str) -> None:
    """az://, abfs:// and abfss:// (with adlfs's container@account form) open AzureBackend."""
    backend = open_backend(url, {"account_name": "acct", "anon": True})
    assert isinstance(backend, AzureBackend)
    assert backend.url == expected


def test_unknown_options_are_refused_by_name() -> None:
    """A misspelt storage option is a ConfigError naming it; adlfs's cache options are ignored."""
    with pytest.raises(ConfigError, match=r"unknown storage option\(s\) for az://: acount_key"):
        AzureBackend.from_url("az://c1x", {"acount_key": "x"})
    assert AzureBackend.from_url("az://c1x", {"skip_instance_cache": True}).url == "az://c1x"


def test_credentials_never_shown(azurite: Azurite, azure_container: str) -> None:
    """A wrong account key fails with Azure's reason; no key appears in url, repr or messages."""
    wrong = "V3J vbmcga2V5IGZvciB0aGUgdGVzdA==".replace(" ", "")
    backend = AzureBackend.from_url(
        f"az://{azure_container}/reg",
        {"account_name": ACCOUNT, "account_key": wrong, "account_url": azurite.account_url},
    )
    shown = [backend.url, repr(backend)]
    with pytest.raises(StorageError) as err:
        run(backend, lambda: backend.read([REPOS + "x"]))
    shown.append(str(err.value))
    with pytest.raises(StorageError) as err:
        run(backend, lambda: listing(backend, REPOS))
    shown.append(str(err.value))
    results = run(backend, lambda: backend.delete([REPOS + "x"]))
    assert results[0].outcome is Outcome.FAILED
    shown.append(str(results[0].error))
    conn = f"AccountName={ACCOUNT};AccountKey={wrong};BlobEndpoint={azurite.account_url};"
    by_string = AzureBackend.from_url(f"az://{azure_container}", {"connection_string": conn})
    with pytest.raises(StorageError) as err:
        run(by_string, lambda: by_string.read([REPOS + "x"]))
    shown.append(str(err.value))
    for text in shown:
        assert wrong not in text
    assert "403" in shown[2]
    assert f"az://{azure_container}/reg/" in shown[2]


def test_a_missing_client_library_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without azure-storage-blob, opening az:// says which package and extra to install."""
    import importlib.util  # noqa: PLC0415

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("azure") else real(name, *a),
    )
    with pytest.raises(BackendNotFoundError, match=r"azure: pip install 'registry-gc\[azure\]'"):
        open_backend("az://c1x")
