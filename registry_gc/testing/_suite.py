"""The behaviour every storage backend shares, as a test base class.

A backend's test class subclasses :class:`BackendSuite` and provides two
fixtures (in the style of zarr-python's ``zarr/testing/store.py``):

- ``backend``: a :class:`~registry_gc.backends.Backend` over an empty registry root;
- ``writer``: ``write(path, data)`` puts an object at a root-relative path,
  bypassing the backend. A path ending in ``/`` makes a *directory
  placeholder*: a zero-byte ``a/b/`` key on an object store, an empty
  directory on a filesystem. It must be safe to call from several threads.

The core tests run on every backend. The tests of an optional capability
(:data:`~registry_gc.backends.CAPABILITIES`) run on a backend that has it and
are skipped, with the capability named as the reason, on one that has not.

Every test drives the backend with ``asyncio.run`` and closes it in the same
event loop, as the collector does.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from .. import ReadOnlyError, StorageError
from ..backends import (
    CAPABILITIES,
    Backend,
    CountingBackend,
    DeleteResult,
    MultipartUpload,
    ObjectInfo,
    Outcome,
    ReadOnlyBackend,
    SupportsDigest,
    SupportsDirectories,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsRequestCounts,
    SupportsWrite,
    WrappingBackend,
)
from ..backends._wrapper import capabilities
from ._common import (
    BLOBS,
    REFUSED,
    REPOS,
    V2,
    Writer,
    blob_path,
    collect,
    files,
    needs,
    run,
    skip_without,
    write_many,
)
from ._listing import ListingCapabilityTests
from ._moves import MoveAndWriteTests

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["BackendSuite"]


class BackendSuite(MoveAndWriteTests, ListingCapabilityTests):
    """Tests every backend passes. Subclasses provide ``backend`` and ``writer`` fixtures.

    Test names start with the method or capability they exercise
    (``test_list_…``, ``test_directories_…``); a subclass may add tests of
    its own, and override a fixture such as ``large_store``.
    """

    #: The optional capabilities the backend has, when the subclass declares them
    #: (see :func:`~registry_gc.testing.deselect_without_capabilities`); ``None``: found out
    #: at run time.
    capabilities: tuple[type, ...] | None = None

    @pytest.fixture
    def backend(self) -> Backend:
        """A backend over an empty registry root."""
        raise NotImplementedError

    def test_capabilities_are_what_the_suite_declares(self, backend: Backend) -> None:
        """A declared set of capabilities is exactly the one the backend implements."""
        if self.capabilities is None:
            pytest.skip(f"{type(self).__name__} declares no capabilities")
        found = {c for c in CAPABILITIES if isinstance(backend, c)}
        assert found == set(self.capabilities)

    @pytest.fixture
    def writer(self) -> Writer:
        """``write(path, data)``, bypassing the backend."""
        raise NotImplementedError

    # -- list ------------------------------------------------------------------------

    def test_list_missing_prefix_yields_nothing(self, backend: Backend) -> None:
        """Listing a prefix that does not exist yields nothing and does not raise."""
        assert run(backend, lambda: collect(backend, REPOS + "nope/")) == []
        assert run(backend, lambda: collect(backend, "")) == []

    def test_list_is_recursive_with_relative_paths_sizes_and_times(
        self, backend: Backend, writer: Writer
    ) -> None:
        """Listing is recursive, with root-relative paths, sizes and UTC mtimes close to now."""
        objects = {
            REPOS + "a/_layers/sha256/ab/link": b"sha256:" + b"a" * 64,
            REPOS + "a/b/c/_manifests/tags/v1/current/link": b"sha256:" + b"b" * 64,
            REPOS + "a/_uploads/u1/data": b"",
            BLOBS + "sha256/ab/abcd/data": b"x" * 1234,
        }
        write_many(writer, objects)
        before = datetime.datetime.now(datetime.timezone.utc)

        listed = files(run(backend, lambda: collect(backend, REPOS)))
        assert set(listed) == {p for p in objects if p.startswith(REPOS)}
        for path, info in listed.items():
            assert info.size == len(objects[path])
            assert info.modified.tzinfo is not None
            assert info.modified.utcoffset() == datetime.timedelta(0)
            assert abs(info.modified - before) < datetime.timedelta(minutes=5)

        everything = files(run(backend, lambda: collect(backend, "")))
        assert set(everything) == set(objects)

    def test_list_prefix_is_a_directory(self, backend: Backend, writer: Writer) -> None:
        """``a/b`` and ``a/b/`` list the same, and never ``a/bc/…`` (a sibling sharing a stem)."""
        write_many(writer, {REPOS + "ab/x/link": b"1", REPOS + "abc/x/link": b"2"})
        with_slash = files(run(backend, lambda: collect(backend, REPOS + "ab/")))
        without = files(run(backend, lambda: collect(backend, REPOS + "ab")))
        assert set(with_slash) == set(without) == {REPOS + "ab/x/link"}

    def test_directory_placeholders_never_listed(self, backend: Backend, writer: Writer) -> None:
        """A directory placeholder is never listed as an object (only as an empty directory)."""
        writer(REPOS + "a/_uploads/", b"")
        writer(REPOS + "a/_layers/sha256/ab/link", b"sha256:ab")
        infos = run(backend, lambda: collect(backend, V2))
        assert set(files(infos)) == {REPOS + "a/_layers/sha256/ab/link"}
        assert not any(i.path.endswith("/") for i in infos)

    def test_list_can_stop_early(self, backend: Backend, writer: Writer) -> None:
        """A consumer may stop a listing half-way; the backend stays usable."""
        write_many(writer, {blob_path(str(i)): b"x" for i in range(50)})

        async def first_few() -> list[ObjectInfo]:
            out: list[ObjectInfo] = []
            async for info in backend.list(BLOBS):
                out.append(info)
                if len(out) == 3:
                    break
            return out

        assert len(run(backend, first_few)) == 3
        assert len(files(run(backend, lambda: collect(backend, BLOBS)))) == 50

    @pytest.fixture
    def large_store(self, backend: Backend, writer: Writer) -> tuple[Backend, list[str]]:
        """A backend holding 3000 blobs, and their paths (subclasses may share one store)."""
        paths = [blob_path(str(i)) for i in range(3000)]
        write_many(writer, dict.fromkeys(paths, b"b"))
        return backend, paths

    def test_large_listing_is_complete_without_duplicates(
        self, large_store: tuple[Backend, list[str]]
    ) -> None:
        """3000 blobs across the ``blobs/sha256/xx/`` directories list exactly once each."""
        backend, paths = large_store
        infos = [i for i in run(backend, lambda: collect(backend, BLOBS)) if not i.is_dir]
        assert len(infos) == len(paths)
        assert {i.path for i in infos} == set(paths)
        sha = files(run(backend, lambda: collect(backend, BLOBS + "sha256/")))
        assert set(sha) == set(paths)

    # -- read ------------------------------------------------------------------------

    def test_read_many(self, backend: Backend, writer: Writer) -> None:
        """Reading many paths gives each object's bytes; a missing one is None, an empty one b''."""
        objects = {
            f"{REPOS}r/_layers/sha256/{i:02x}/link": f"sha256:{i}".encode() for i in range(40)
        }
        objects[REPOS + "r/empty"] = b""
        write_many(writer, objects)
        missing = REPOS + "r/missing/link"
        paths = [*objects, missing]
        got = run(backend, lambda: backend.read(paths))
        assert dict(got) == {**objects, missing: None}
        assert run(backend, lambda: backend.read([])) == {}

    # -- delete ----------------------------------------------------------------------

    def test_delete_many_in_order(self, backend: Backend, writer: Writer) -> None:
        """Deleting returns one DELETED result per path, in the order given, and the objects go."""
        paths = [blob_path(str(i)) for i in range(30)]
        write_many(writer, dict.fromkeys(paths, b"x"))
        writer(REPOS + "keep/link", b"k")
        results = run(backend, lambda: backend.delete(paths))
        assert results == [DeleteResult(p, Outcome.DELETED) for p in paths]
        assert set(files(run(backend, lambda: collect(backend, "")))) == {REPOS + "keep/link"}
        assert run(backend, lambda: backend.delete([])) == []

    def test_delete_missing_is_not_failed(self, backend: Backend, writer: Writer) -> None:
        """Deleting a path that does not exist is not a failure (MISSING, or DELETED on S3)."""
        writer(REPOS + "x/link", b"x")
        paths = [REPOS + "x/link", REPOS + "x/nope", BLOBS + "sha256/00/00/data"]
        results = run(backend, lambda: backend.delete(paths))
        assert [r.path for r in results] == paths
        assert results[0].outcome is Outcome.DELETED
        assert all(r.ok and r.outcome in (Outcome.DELETED, Outcome.MISSING) for r in results)

    # -- the path guard --------------------------------------------------------------

    @pytest.mark.parametrize("path", [p for p in REFUSED if p])
    def test_list_refuses_paths_leaving_the_root(self, backend: Backend, path: str) -> None:
        """Listing a prefix with ``..``, a leading ``/`` or a NUL byte raises StorageError."""
        with pytest.raises(StorageError) as e:
            run(backend, lambda: collect(backend, path))
        assert e.value.path == path

    @pytest.mark.parametrize("path", REFUSED)
    def test_read_refuses_paths_leaving_the_root(self, backend: Backend, path: str) -> None:
        """Reading a path with ``..``, a leading ``/``, a NUL byte, or an empty path, raises."""
        with pytest.raises(StorageError) as e:
            run(backend, lambda: backend.read([REPOS + "x/link", path]))
        assert e.value.path == path

    @pytest.mark.parametrize("path", REFUSED)
    def test_delete_refuses_paths_leaving_the_root(
        self, backend: Backend, writer: Writer, path: str
    ) -> None:
        """Deleting a refused path raises StorageError(path=), deleting nothing."""
        writer(REPOS + "x/link", b"x")
        with pytest.raises(StorageError) as e:
            run(backend, lambda: backend.delete([REPOS + "x/link", path]))
        assert e.value.path == path
        # The bad path is refused before any other path of the call is touched.
        assert REPOS + "x/link" in files(run(backend, lambda: collect(backend, "")))

    @pytest.mark.parametrize("path", REFUSED)
    @needs(SupportsDirectories, SupportsDigest, SupportsMultipartUploads)
    def test_capabilities_refuse_paths_leaving_the_root(self, backend: Backend, path: str) -> None:
        """Every optional capability the backend has refuses the same paths as the core."""
        calls: list[Callable[[], Awaitable[Any]]] = []
        if isinstance(backend, SupportsDirectories):
            dirs = backend
            calls.append(lambda: dirs.remove_empty_dirs([REPOS + "x", path]))
        if isinstance(backend, SupportsDigest):
            hashing = backend
            calls.append(lambda: hashing.digest([REPOS + "x/link", path], "sha256"))
        if isinstance(backend, SupportsMultipartUploads):
            multipart = backend
            upload = MultipartUpload(
                path, "upload-id", datetime.datetime.now(datetime.timezone.utc)
            )
            calls.append(lambda: multipart.abort_multipart_uploads([upload]))
            if path:
                calls.append(lambda: multipart.list_multipart_uploads(path))
        if not calls:
            pytest.skip(f"{type(backend).__name__} has no capability that takes paths")
        for call in calls:
            with pytest.raises(StorageError) as e:
                run(backend, call)
            assert e.value.path == path

    # -- wrappers ----------------------------------------------------------------------

    def test_wrappers_have_the_capabilities_of_the_backend(self, backend: Backend) -> None:
        """Every wrapper, however nested, has exactly the optional capabilities of the backend."""
        expected = capabilities(backend)
        wrappers = [
            WrappingBackend(backend),
            ReadOnlyBackend(backend),
            CountingBackend(backend),
            ReadOnlyBackend(CountingBackend(WrappingBackend(backend))),
        ]
        for wrapper in wrappers:
            assert isinstance(wrapper, Backend)
            assert capabilities(wrapper) == expected, wrapper
            assert wrapper.url == backend.url

    def test_read_only_wrapper(self, backend: Backend, writer: Writer) -> None:
        """ReadOnlyBackend lists and reads, refuses every change with ReadOnlyError."""
        writer(REPOS + "x/link", b"sha256:x")
        ro = ReadOnlyBackend(backend)
        assert ro.url == backend.url
        assert set(files(run(ro, lambda: collect(ro, REPOS)))) == {REPOS + "x/link"}
        assert run(ro, lambda: ro.read([REPOS + "x/link"])) == {REPOS + "x/link": b"sha256:x"}
        with pytest.raises(ReadOnlyError):
            run(ro, lambda: ro.delete([REPOS + "x/link"]))
        if isinstance(ro, SupportsDirectories):
            dirs = ro
            with pytest.raises(ReadOnlyError):
                run(ro, lambda: dirs.remove_empty_dirs([REPOS + "x"]))
        if isinstance(ro, SupportsMultipartUploads):
            multipart = ro
            now = datetime.datetime.now(datetime.timezone.utc)
            upload = MultipartUpload(REPOS + "x/_uploads/u/data", "id", now)
            with pytest.raises(ReadOnlyError):
                run(ro, lambda: multipart.abort_multipart_uploads([upload]))
        if isinstance(ro, SupportsMove):
            moving = ro
            with pytest.raises(ReadOnlyError) as e:
                run(ro, lambda: moving.move([(REPOS + "x/link", "elsewhere/link")]))
            assert e.value.path == REPOS + "x/link"
        if isinstance(ro, SupportsWrite):
            writing = ro
            with pytest.raises(ReadOnlyError) as e:
                run(ro, lambda: writing.write({REPOS + "x/link": b"changed"}))
            assert e.value.path == REPOS + "x/link"
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {
            REPOS + "x/link": b"sha256:x"
        }
        assert set(files(run(backend, lambda: collect(backend, "")))) == {REPOS + "x/link"}

    # -- lifecycle -------------------------------------------------------------------

    def test_aclose_then_reuse(self, backend: Backend, writer: Writer) -> None:
        """After aclose the backend works again (in the same event loop)."""
        writer(REPOS + "x/link", b"1")

        async def twice() -> tuple[Any, Any]:
            first = await backend.read([REPOS + "x/link"])
            await backend.aclose()
            await backend.aclose()  # idempotent
            second = await collect(backend, REPOS)
            return first, second

        first, second = run(backend, twice)
        assert first == {REPOS + "x/link": b"1"}
        assert set(files(second)) == {REPOS + "x/link"}

    def test_reuse_across_event_loops(self, backend: Backend, writer: Writer) -> None:
        """One backend serves several ``asyncio.run`` calls, even without aclose in between."""
        writer(REPOS + "x/link", b"1")
        for _ in range(3):
            got = asyncio.run(backend.read([REPOS + "x/link"]))
            assert got == {REPOS + "x/link": b"1"}
        assert set(files(asyncio.run(collect(backend, REPOS)))) == {REPOS + "x/link"}
        run(backend, lambda: backend.delete([REPOS + "x/link"]))
        assert run(backend, lambda: backend.read([REPOS + "x/link"])) == {REPOS + "x/link": None}

    def test_protocol(self, backend: Backend) -> None:
        """The backend satisfies the Backend protocol and its url is a plain string."""
        assert isinstance(backend, Backend)
        assert isinstance(backend.url, str)
        assert backend.url in repr(backend)

    # -- SupportsDirectories -----------------------------------------------------------

    @needs(SupportsDirectories)
    def test_directories_empty_ones_are_listed(self, backend: Backend, writer: Writer) -> None:
        """An empty directory is listed with is_dir=True and size 0; non-empty ones are not."""
        if not isinstance(backend, SupportsDirectories):
            skip_without(backend, SupportsDirectories)
        writer(REPOS + "gone/_uploads/", b"")
        writer(REPOS + "full/_layers/sha256/ab/link", b"x")
        infos = run(backend, lambda: collect(backend, REPOS))
        dirs = {i.path: i for i in infos if i.is_dir}
        assert set(dirs) == {REPOS + "gone/_uploads"}
        assert dirs[REPOS + "gone/_uploads"].size == 0
        assert dirs[REPOS + "gone/_uploads"].modified.tzinfo is not None

    @needs(SupportsDirectories)
    def test_directories_removed_when_empty(self, backend: Backend, writer: Writer) -> None:
        """remove_empty_dirs removes empty directories, keeps non-empty ones, reports missing."""
        if not isinstance(backend, SupportsDirectories):
            skip_without(backend, SupportsDirectories)
        writer(REPOS + "a/b/c/", b"")
        writer(REPOS + "full/link", b"x")
        paths = [REPOS + "a/b/c", REPOS + "a/b/", REPOS + "full", REPOS + "never"]
        results = run(backend, lambda: backend.remove_empty_dirs(paths))
        assert [r.outcome for r in results] == [
            Outcome.DELETED,
            Outcome.DELETED,
            Outcome.NOT_EMPTY,
            Outcome.MISSING,
        ]
        assert [r.path for r in results] == paths
        listed = run(backend, lambda: collect(backend, REPOS))
        assert {i.path for i in listed} == {REPOS + "a", REPOS + "full/link"}

    # -- SupportsDigest ----------------------------------------------------------------

    @needs(SupportsDigest)
    def test_digest_streams_what_read_reads(self, backend: Backend, writer: Writer) -> None:
        """Hashing streams objects larger than a chunk and empty ones; a missing one is None."""
        if not isinstance(backend, SupportsDigest):
            skip_without(backend, SupportsDigest)
        big = bytes(range(256)) * (9 * 1024)  # 2.25 MiB: more than two 1 MiB chunks
        objects = {blob_path("big"): big, blob_path("empty"): b"", REPOS + "x/link": b"sha256:x"}
        write_many(writer, objects)
        paths = [*objects, blob_path("missing")]
        for algorithm in ("sha256", "sha512"):
            got = run(backend, functools.partial(backend.digest, paths, algorithm))
            expected = {p: hashlib.new(algorithm, d).hexdigest() for p, d in objects.items()}
            assert got == {**expected, blob_path("missing"): None}
        assert run(backend, lambda: backend.digest([], "sha256")) == {}

    @needs(SupportsDigest)
    def test_digest_refuses_other_algorithms(self, backend: Backend, writer: Writer) -> None:
        """Hashing with an algorithm other than sha256/384/512 raises ValueError."""
        if not isinstance(backend, SupportsDigest):
            skip_without(backend, SupportsDigest)
        writer(REPOS + "x/link", b"x")
        with pytest.raises(ValueError, match="md5"):
            run(backend, lambda: backend.digest([REPOS + "x/link"], "md5"))

    # -- SupportsMultipartUploads ------------------------------------------------------

    @needs(SupportsMultipartUploads)
    def test_multipart_uploads_none_in_an_empty_root(self, backend: Backend) -> None:
        """An empty root has no open multipart uploads; aborting none returns no results."""
        if not isinstance(backend, SupportsMultipartUploads):
            skip_without(backend, SupportsMultipartUploads)
        assert run(backend, lambda: backend.list_multipart_uploads("")) == []
        assert run(backend, lambda: backend.list_multipart_uploads(REPOS)) == []
        assert run(backend, lambda: backend.abort_multipart_uploads([])) == []

    # -- SupportsRequestCounts ---------------------------------------------------------

    @needs(SupportsRequestCounts)
    def test_request_counts_count_requests(self, backend: Backend, writer: Writer) -> None:
        """request_counts counts each request by operation name, and can be cleared."""
        if not isinstance(backend, SupportsRequestCounts):
            skip_without(backend, SupportsRequestCounts)
        writer(REPOS + "x/link", b"x")
        backend.request_counts.clear()
        run(backend, lambda: backend.read([REPOS + "x/link"]))
        counts = dict(backend.request_counts)
        assert counts
        assert sum(counts.values()) >= 1
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items())
        backend.request_counts.clear()
        assert sum(backend.request_counts.values()) == 0
