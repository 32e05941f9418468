"""The backend protocols, the forwarding wrappers, the path guard and open_backend.

Each built-in backend has a test module of its own (test_local, test_fsspec_backend,
test_s3, test_gcs, test_azure) that runs the shared suite of :mod:`registry_gc.testing`.
"""

from __future__ import annotations

import array
import asyncio
import collections
import datetime
import itertools
import sys
import textwrap
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import pytest
from registry_gc import BackendNotFoundError, ReadOnlyError, StorageError
from registry_gc.backends import (
    CAPABILITIES,
    ENTRY_POINT_GROUP,
    Backend,
    CountingBackend,
    DeleteResult,
    FsspecBackend,
    ListedBatch,
    LocalBackend,
    MultipartUpload,
    ObjectInfo,
    Outcome,
    ReadOnlyBackend,
    SupportsDigest,
    SupportsDirectories,
    SupportsListAhead,
    SupportsListBatches,
    SupportsListDir,
    SupportsMove,
    SupportsMultipartUploads,
    SupportsNamesOnly,
    SupportsRequestCounts,
    SupportsWrite,
    WrappingBackend,
    checked_path,
    http_requests,
    open_backend,
)
from registry_gc.backends._wrapper import _FORWARDERS, capabilities, members

from tests.rigs.faults import FaultyBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path

NOW = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
UPLOAD = MultipartUpload("docker/registry/v2/repositories/a/_uploads/u/data", "id", NOW)
BATCH = ListedBatch("q", ["x"], array.array("q", [1]), array.array("d", [NOW.timestamp()]))


# -- in-test backends with every combination of capabilities ------------------------------


class _Core:
    """The core protocol only, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    @property
    def url(self) -> str:
        return "test://"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        self.calls.append(("list", prefix))
        yield ObjectInfo(prefix + "x", 1, NOW)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        self.calls.append(("read", list(paths)))
        return dict.fromkeys(paths, b"data")

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        self.calls.append(("delete", list(paths)))
        return [DeleteResult(p, Outcome.DELETED) for p in paths]

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))


class _Directories:
    calls: list[tuple[str, object]]

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        self.calls.append(("remove_empty_dirs", list(dirs)))
        return [DeleteResult(d, Outcome.NOT_EMPTY) for d in dirs]


class _Digest:
    calls: list[tuple[str, object]]

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        self.calls.append(("digest", (list(paths), algorithm)))
        return dict.fromkeys(paths, "ab" * 32)


class _Multipart:
    calls: list[tuple[str, object]]

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        self.calls.append(("list_multipart_uploads", prefix))
        return [UPLOAD]

    async def abort_multipart_uploads(
        self, uploads: Sequence[MultipartUpload]
    ) -> list[DeleteResult]:
        self.calls.append(("abort_multipart_uploads", list(uploads)))
        return [DeleteResult(u.key, Outcome.DELETED) for u in uploads]


class _Move:
    calls: list[tuple[str, object]]

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> list[DeleteResult]:
        self.calls.append(("move", (list(moves), sizes)))
        return [DeleteResult(src, Outcome.DELETED) for src, _ in moves]


class _Write:
    calls: list[tuple[str, object]]

    async def write(self, items: Mapping[str, bytes]) -> None:
        self.calls.append(("write", dict(items)))


class _ListBatches:
    calls: list[tuple[str, object]]

    async def list_batches(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        self.calls.append(("list_batches", prefix))
        yield [BATCH]


class _Ahead:
    """A listing begun ahead, as a test backend hands it out."""

    def __init__(self, calls: list[tuple[str, object]], prefix: str) -> None:
        self.calls = calls
        self.prefix = prefix

    async def __aiter__(self) -> AsyncIterator[list[ListedBatch]]:
        self.calls.append(("list_ahead read", self.prefix))
        yield [BATCH]

    async def aclose(self) -> None:
        self.calls.append(("list_ahead closed", self.prefix))


class _ListAhead:
    calls: list[tuple[str, object]]

    def list_ahead(self, prefix: str, *, names_only: bool = False) -> _Ahead:
        self.calls.append(("list_ahead", (prefix, names_only)))
        return _Ahead(self.calls, prefix)


class _ListDir:
    calls: list[tuple[str, object]]

    async def list_dir(self, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        self.calls.append(("list_dir", prefix))
        return [prefix + "d"], [ObjectInfo(prefix + "o", 2, NOW)]


class _NamesOnly:
    calls: list[tuple[str, object]]

    async def list_names(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        self.calls.append(("list_names", prefix))
        yield [BATCH]

    async def stat(self, paths: Sequence[str]) -> Mapping[str, tuple[int, float] | None]:
        self.calls.append(("stat", list(paths)))
        return dict.fromkeys(paths, (1, 2.0))


class _Counts:
    _counts: ClassVar[collections.Counter[str]] = collections.Counter({"GetObject": 3})

    @property
    def request_counts(self) -> collections.Counter[str]:
        return self._counts


_IMPLEMENTATIONS: dict[type, type] = {
    SupportsDirectories: _Directories,
    SupportsDigest: _Digest,
    SupportsMultipartUploads: _Multipart,
    SupportsMove: _Move,
    SupportsWrite: _Write,
    SupportsRequestCounts: _Counts,
    SupportsListBatches: _ListBatches,
    SupportsListDir: _ListDir,
    SupportsNamesOnly: _NamesOnly,
    SupportsListAhead: _ListAhead,
}

#: Every subset of the optional capabilities.
SUBSETS = [
    frozenset(c)
    for n in range(len(CAPABILITIES) + 1)
    for c in itertools.combinations(CAPABILITIES, n)
]


def _backend(caps: frozenset[type]) -> Any:
    """A backend with the core and exactly ``caps``."""
    mixins = tuple(_IMPLEMENTATIONS[c] for c in CAPABILITIES if c in caps)
    name = "".join(c.__name__.removeprefix("Supports") for c in CAPABILITIES if c in caps)
    return type(f"Core{name}", (*mixins, _Core), {})()


def _ids(caps: frozenset[type]) -> str:
    return "+".join(sorted(c.__name__.removeprefix("Supports") for c in caps)) or "core"


def _names(caps: frozenset[type]) -> list[str]:
    return sorted(c.__name__ for c in caps)


# -- the protocols ----------------------------------------------------------------------


def test_the_core_protocol_is_small() -> None:
    """Backend is url, list, read, delete and aclose: no flag, no directory method."""
    assert members(Backend) == ("aclose", "delete", "list", "read", "url")
    assert isinstance(_Core(), Backend)


def test_one_protocol_per_capability() -> None:
    """Each capability is a runtime-checkable protocol of its own, with the members named."""
    assert {c: members(c) for c in CAPABILITIES} == {
        SupportsDirectories: ("remove_empty_dirs",),
        SupportsDigest: ("digest",),
        SupportsMultipartUploads: ("abort_multipart_uploads", "list_multipart_uploads"),
        SupportsMove: ("move",),
        SupportsWrite: ("write",),
        SupportsRequestCounts: ("request_counts",),
        SupportsListBatches: ("list_batches",),
        SupportsListDir: ("list_dir",),
        SupportsNamesOnly: ("list_names", "stat"),
        SupportsListAhead: ("list_ahead",),
    }
    for capability in CAPABILITIES:
        assert issubclass(capability, Protocol)  # type: ignore[arg-type]
        assert capabilities(_backend(frozenset({capability}))) == {capability}
        assert not isinstance(_Core(), capability)


def test_the_built_in_backends_have_their_capabilities(tmp_path: Path) -> None:
    """Every built-in backend moves and writes; local adds directories, S3 multipart uploads."""
    import fsspec  # noqa: PLC0415
    from registry_gc.backends import AzureBackend, GCSBackend, S3Backend  # noqa: PLC0415

    assert _names(capabilities(LocalBackend(tmp_path))) == [
        "SupportsDigest",
        "SupportsDirectories",
        "SupportsListAhead",
        "SupportsListBatches",
        "SupportsListDir",
        "SupportsMove",
        "SupportsNamesOnly",
        "SupportsWrite",
    ]
    assert _names(capabilities(FsspecBackend(fsspec.filesystem("memory"), "/x"))) == [
        "SupportsDigest",
        "SupportsMove",
        "SupportsWrite",
    ]
    assert _names(capabilities(S3Backend("bucket"))) == [
        "SupportsListDir",
        "SupportsMove",
        "SupportsMultipartUploads",
        "SupportsRequestCounts",
        "SupportsWrite",
    ]
    for cloud in (GCSBackend("bucket"), AzureBackend("container")):
        assert _names(capabilities(cloud)) == [
            "SupportsDigest",
            "SupportsListDir",
            "SupportsMove",
            "SupportsRequestCounts",
            "SupportsWrite",
        ]


# -- the forwarding wrapper ---------------------------------------------------------------


def test_each_forwarding_mixin_covers_exactly_its_protocol() -> None:
    """The wrapper forwards every member of every capability, and nothing else."""
    assert set(_FORWARDERS) == set(CAPABILITIES)
    for capability, mixin in _FORWARDERS.items():
        assert members(mixin) == members(capability)


WRAPPERS = [
    pytest.param(WrappingBackend, id="WrappingBackend"),
    pytest.param(ReadOnlyBackend, id="ReadOnlyBackend"),
    pytest.param(CountingBackend, id="CountingBackend"),
    pytest.param(FaultyBackend, id="FaultyBackend"),
]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("caps", SUBSETS, ids=_ids)
def test_a_wrapper_has_exactly_the_capabilities_of_its_backend(
    wrapper: type[WrappingBackend], caps: frozenset[type]
) -> None:
    """isinstance(wrapper, SupportsX) is true exactly when the wrapped backend supports X."""
    inner = _backend(caps)
    wrapped = wrapper(inner)
    assert isinstance(wrapped, Backend)
    assert isinstance(wrapped, wrapper)
    if wrapper is FaultyBackend:
        # It overrides ``list`` (to inject faults) and not ``list_batches``: see the next test.
        caps = caps - {SupportsListBatches, SupportsListAhead}
    assert capabilities(wrapped) == caps
    assert type(wrapped).__name__ == wrapper.__name__
    assert repr(wrapped) == f"{wrapper.__name__}({inner!r})"
    for capability in set(CAPABILITIES) - caps:
        for name in members(capability):
            # Absent, or None (Python's "not available"): never a method to call.
            assert getattr(wrapped, name, None) is None


@pytest.mark.parametrize("caps", SUBSETS, ids=_ids)
def test_nested_wrappers_keep_exactly_the_capabilities(caps: frozenset[type]) -> None:
    """However wrappers nest, the outermost has the innermost backend's capabilities."""
    inner = _backend(caps)
    nested = ReadOnlyBackend(CountingBackend(WrappingBackend(inner)))
    assert capabilities(nested) == caps
    faulty = ReadOnlyBackend(CountingBackend(FaultyBackend(WrappingBackend(inner))))
    assert capabilities(faulty) == caps - {SupportsListBatches, SupportsListAhead}
    assert http_requests(nested) == ({"GetObject": 3} if SupportsRequestCounts in caps else None)


def test_a_wrapper_class_made_for_one_backend_serves_another() -> None:
    """type(wrapper)(other) has the capabilities of ``other``, not those of the first backend."""
    full = WrappingBackend(_backend(frozenset(CAPABILITIES)))
    again = type(full)(_Core())
    assert capabilities(again) == frozenset()
    assert isinstance(again, WrappingBackend)


class _ListingWatcher(WrappingBackend):
    """Overrides ``list`` only."""

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend."""
        return super().list(prefix)


class _BatchWatcher(_ListingWatcher):
    """Overrides ``list`` and ``list_batches``."""

    def list_batches(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """List in batches through the wrapped backend."""
        inner: SupportsListBatches = cast("SupportsListBatches", self.inner)
        return inner.list_batches(prefix)


def test_a_wrapper_that_overrides_list_only_lists_through_it() -> None:
    """Overriding ``list`` alone drops the batch, names-only and ahead listings (they bypass it).

    Overriding any listing but not ``list_ahead`` drops the listing ahead.
    """
    inner = _backend(frozenset(CAPABILITIES))
    listing = {SupportsListBatches, SupportsNamesOnly, SupportsListAhead}
    assert capabilities(_ListingWatcher(inner)) == frozenset(CAPABILITIES) - listing
    assert capabilities(_BatchWatcher(inner)) == frozenset(CAPABILITIES) - {
        SupportsNamesOnly,
        SupportsListAhead,
    }
    assert capabilities(WrappingBackend(_ListingWatcher(inner))) == capabilities(
        _ListingWatcher(inner)
    )
    assert getattr(_ListingWatcher(inner), "list_batches", None) is None


def test_the_wrapper_forwards_every_call() -> None:
    """Each core and capability call reaches the wrapped backend and returns its answer."""
    inner = _backend(frozenset(CAPABILITIES))
    w = WrappingBackend(inner)
    assert isinstance(w, SupportsDirectories)
    assert isinstance(w, SupportsDigest)
    assert isinstance(w, SupportsMultipartUploads)
    assert isinstance(w, SupportsMove)
    assert isinstance(w, SupportsWrite)
    assert isinstance(w, SupportsRequestCounts)
    assert isinstance(w, SupportsListBatches)
    assert isinstance(w, SupportsListDir)
    assert isinstance(w, SupportsNamesOnly)
    assert isinstance(w, SupportsListAhead)

    async def ahead() -> list[object]:
        listing = w.list_ahead("r/", names_only=True)
        try:
            return [c async for c in listing]
        finally:
            await listing.aclose()

    async def calls() -> list[object]:
        return [
            [i async for i in w.list("p/")],
            [c async for c in w.list_batches("q/")],
            await w.read(["a"]),
            await w.delete(["b"]),
            await w.remove_empty_dirs(["d"]),
            await w.digest(["e"], "sha256"),
            await w.list_multipart_uploads("u/"),
            await w.abort_multipart_uploads([UPLOAD]),
            await w.move([("f", "g")], sizes={"f": 1}),
            await w.write({"h": b"i"}),
            await w.list_dir("p/"),
            [c async for c in w.list_names("n/")],
            await w.stat(["s"]),
            await ahead(),
            await w.aclose(),
        ]

    got = asyncio.run(calls())
    assert got == [
        [ObjectInfo("p/x", 1, NOW)],
        [[BATCH]],
        {"a": b"data"},
        [DeleteResult("b", Outcome.DELETED)],
        [DeleteResult("d", Outcome.NOT_EMPTY)],
        {"e": "ab" * 32},
        [UPLOAD],
        [DeleteResult(UPLOAD.key, Outcome.DELETED)],
        [DeleteResult("f", Outcome.DELETED)],
        None,
        (["p/d"], [ObjectInfo("p/o", 2, NOW)]),
        [[BATCH]],
        {"s": (1, 2.0)},
        [[BATCH]],
        None,
    ]
    assert [name for name, _ in inner.calls] == [
        "list",
        "list_batches",
        "read",
        "delete",
        "remove_empty_dirs",
        "digest",
        "list_multipart_uploads",
        "abort_multipart_uploads",
        "move",
        "write",
        "list_dir",
        "list_names",
        "stat",
        "list_ahead",
        "list_ahead read",
        "list_ahead closed",
        "aclose",
    ]
    assert inner.calls[8:10] == [("move", ([("f", "g")], {"f": 1})), ("write", {"h": b"i"})]
    assert w.request_counts is inner.request_counts
    assert w.inner is inner
    assert w.url == "test://"


def test_read_only_refuses_every_change_whatever_the_backend() -> None:
    """delete, remove_empty_dirs, abort_multipart_uploads, move, write raise ReadOnlyError."""
    inner = _backend(frozenset(CAPABILITIES))
    ro = ReadOnlyBackend(inner)
    assert isinstance(ro, SupportsDirectories)
    assert isinstance(ro, SupportsMultipartUploads)
    assert isinstance(ro, SupportsDigest)
    assert isinstance(ro, SupportsMove)
    assert isinstance(ro, SupportsWrite)
    for call, path in (
        (lambda: ro.delete(["docker/a"]), "docker/a"),
        (lambda: ro.remove_empty_dirs(["docker/d"]), "docker/d"),
        (lambda: ro.abort_multipart_uploads([UPLOAD]), UPLOAD.key),
        (lambda: ro.move([("docker/m", "q/m")], sizes={"docker/m": 1}), "docker/m"),
        (lambda: ro.write({"q/journal": b"j"}), "q/journal"),
    ):
        with pytest.raises(ReadOnlyError, match="read-only backend test://: refusing") as e:
            asyncio.run(call())
        assert e.value.path == path
    assert inner.calls == []
    assert asyncio.run(ro.list_multipart_uploads("")) == [UPLOAD]
    assert asyncio.run(ro.digest(["x"], "sha256")) == {"x": "ab" * 32}
    assert asyncio.run(ro.read(["x"])) == {"x": b"data"}


def test_read_only_over_a_backend_without_the_capability_has_nothing_to_call() -> None:
    """Over the core alone, the refusing capability methods are not there at all."""
    ro = ReadOnlyBackend(_Core())
    assert not isinstance(ro, SupportsDirectories)
    assert not isinstance(ro, SupportsMultipartUploads)
    assert not isinstance(ro, SupportsMove)
    assert not isinstance(ro, SupportsWrite)
    assert ro.remove_empty_dirs is None  # type: ignore[comparison-overlap]
    assert ro.move is None  # type: ignore[comparison-overlap]
    assert ro.write is None  # type: ignore[comparison-overlap]
    with pytest.raises(ReadOnlyError):
        asyncio.run(ro.delete(["docker/a"]))


def test_counting_counts_every_operation_it_forwards() -> None:
    """CountingBackend counts objects per operation, digests as reads, and forwards them."""
    counting = CountingBackend(_backend(frozenset(CAPABILITIES)))
    assert isinstance(counting, SupportsDirectories)
    assert isinstance(counting, SupportsDigest)
    assert isinstance(counting, SupportsMultipartUploads)

    async def work() -> None:
        [i async for i in counting.list("p/")]
        await counting.read(["a", "b"])
        await counting.digest(["c"], "sha256")
        await counting.delete(["d"])
        await counting.remove_empty_dirs(["e", "f"])
        await counting.list_multipart_uploads("")
        await counting.abort_multipart_uploads([UPLOAD, UPLOAD])
        await counting.move([("g", "q/g"), ("h", "q/h"), ("i", "q/i")])
        await counting.write({"j": b"1", "k": b"2"})

    asyncio.run(work())
    assert counting.objects == {
        "list": 1,
        "read": 3,
        "delete": 1,
        "remove_empty_dirs": 2,
        "list_multipart_uploads": 1,
        "abort_multipart_uploads": 2,
        "move": 3,
        "write": 2,
    }


def test_http_requests_only_from_a_backend_that_counts(tmp_path: Path) -> None:
    """http_requests is None for a local disk, and the counts of a counting backend."""
    assert http_requests(LocalBackend(tmp_path)) is None
    assert http_requests(CountingBackend(LocalBackend(tmp_path))) is None
    assert http_requests(CountingBackend(_backend(frozenset({SupportsRequestCounts})))) == {
        "GetObject": 3
    }


# -- the path guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["docker/registry/v2/blobs/", "a", "a/b/c", "a..b/c", ".../x", "a/./b", "a//b"],
)
def test_paths_inside_the_root_pass(path: str) -> None:
    """Relative paths without '..' components or NUL bytes are returned as they are."""
    assert checked_path(path) == path
    assert checked_path(path, prefix=True) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/docker/registry/v2", "leading '/'"),
        ("..", "'..' component"),
        ("a/../../b", "'..' component"),
        ("a/..", "'..' component"),
        ("a\x00b", "NUL byte"),
        ("", "empty path"),
    ],
)
def test_paths_that_could_leave_the_root_are_refused(path: str, why: str) -> None:
    """A leading '/', a '..' component, a NUL byte and the empty path raise StorageError(path=)."""
    with pytest.raises(StorageError, match=why) as e:
        checked_path(path)
    assert e.value.path == path
    assert repr(path) in str(e.value)


def test_the_empty_prefix_is_the_whole_root() -> None:
    """As a prefix to list, the empty path is the root; the other rules are the same."""
    assert checked_path("", prefix=True) == ""
    with pytest.raises(StorageError):
        checked_path("/", prefix=True)


# -- open_backend --------------------------------------------------------------------------


def test_open_backend_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    """A path or file:// is local, memory:// is fsspec; read_only wraps in ReadOnlyBackend."""
    assert isinstance(open_backend(tmp_path), LocalBackend)
    assert open_backend(f"file://{tmp_path}").url == str(tmp_path)
    assert isinstance(open_backend("memory://open-test"), FsspecBackend)
    ro = open_backend(tmp_path, read_only=True)
    assert isinstance(ro, ReadOnlyBackend)
    assert isinstance(ro, SupportsDirectories)


def test_an_unknown_scheme_names_the_entry_point_group() -> None:
    """A scheme nothing handles is a BackendNotFoundError naming the plugin mechanism."""
    with pytest.raises(BackendNotFoundError, match=ENTRY_POINT_GROUP):
        open_backend("nosuchscheme://x")


def _install_plugin(root: Path, scheme: str, module: str, code: str) -> None:
    """Install a distribution in ``root`` whose entry point registers ``scheme``."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{module}_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{scheme} = {module}:factory\n")


def test_a_plugin_registers_a_scheme_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed entry point in registry_gc.backends opens its scheme, options passed."""
    _install_plugin(
        tmp_path,
        "plugged",
        "plugged_backend",
        """
        from registry_gc.backends import FsspecBackend
        import fsspec

        def factory(url, options):
            backend = FsspecBackend(fsspec.filesystem("memory"), "/plugged")
            backend.seen = (url, options)
            return backend
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plugged_backend", raising=False)
    backend: Any = open_backend("PLUGGED://anything", {"k": "v"})
    assert backend.seen == ("PLUGGED://anything", {"k": "v"})
    assert isinstance(open_backend("plugged://x", read_only=True), ReadOnlyBackend)
