"""Tests of registry_gc.inventory: one listing pass over builder trees on memory:// and disk."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import time
import tracemalloc
import uuid
from typing import TYPE_CHECKING

import fsspec
import pytest
from registry_gc import load_manifests
from registry_gc.backends import MultipartUpload, ObjectInfo, open_backend
from registry_gc.inventory import Inventory, scan, take_inventory
from registry_gc.layout import (
    REPOSITORIES_PREFIX,
    BlobData,
    Digest,
    LayerLink,
    LegacySignatureLink,
    Repository,
    Tag,
    TagCurrentLink,
    UploadFile,
    parse_blob_path,
)

from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.dictstore import DictBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
    from pathlib import Path

    from registry_gc.backends import DeleteResult

UTC = datetime.timezone.utc
R = REPOSITORIES_PREFIX


class Store:
    """A place to write a builder tree: a local directory or a memory:// root."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.fs = fsspec.filesystem("memory")
        self.mem_root = f"/rgc-inv-{uuid.uuid4().hex}"

    @property
    def root(self) -> str:
        """The URL or path to give to open_backend/collect."""
        return str(self.tmp_path) if self.kind == "local" else "memory://" + self.mem_root

    def write(self, b: RegistryBuilder, now: float) -> str:
        """Write ``b`` with modification times ``now - age``; return the root."""
        if self.kind == "local":
            b.write_local(self.tmp_path, now=now)
        else:
            b.write_fs(self.fs, self.mem_root)
            for path in b.files:
                t = datetime.datetime.fromtimestamp(now - b.ages.get(path, b.default_age), UTC)
                f = self.fs.store[f"{self.mem_root}/{path}"]
                f.created = f.modified = t
        return self.root

    def cleanup(self) -> None:
        """Drop the memory tree."""
        if self.fs.exists(self.mem_root):
            self.fs.rm(self.mem_root, recursive=True)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A local directory and a memory:// root, in turn."""
    s = Store(request.param, tmp_path)
    yield s
    s.cleanup()


def inventory_of(b: RegistryBuilder, store: Store, now: float | None = None) -> Inventory:
    """Write ``b`` to ``store`` and take its inventory."""
    root = store.write(b, time.time() if now is None else now)
    return take_inventory(open_backend(root))


def kinds(inv: Inventory) -> dict[str, set[str]]:
    """Anomaly kind -> the paths reported with it."""
    out: dict[str, set[str]] = {}
    for a in inv.anomalies:
        out.setdefault(a.kind, set()).add(a.path)
    return out


def layer_digests(b: RegistryBuilder, repo: str) -> set[Digest]:
    """The digests (as in the path) of every _layers link the builder wrote in ``repo``."""
    prefix = f"{R}{repo}/_layers/"
    out = set()
    for p in b.files:
        rest = p[len(prefix) :].split("/") if p.startswith(prefix) else []
        if len(rest) == 3 and rest[2] == "link":
            out.add(Digest(f"{rest[0]}:{rest[1]}"))
    return out


# -- repositories, tags, revisions, links ------------------------------------------------


def test_nested_repositories_are_all_found(store: Store) -> None:
    """'a', 'a/b' and 'a/b/c' are three repositories at once, each with its own contents."""
    b = RegistryBuilder()
    da = b.image("a", "1")
    dab = b.image("a/b", "2")
    dabc = b.image("a/b/c", "3")
    other = b.image("library/alpine", "3.20")
    inv = inventory_of(b, store)
    assert set(inv.repositories) == {"a", "a/b", "a/b/c", "library/alpine"}
    for name, digest, tag in [("a", da, "1"), ("a/b", dab, "2"), ("a/b/c", dabc, "3")]:
        repo = inv.repository(name)
        assert repo.is_repository
        assert repo.name_problem is None
        assert set(repo.revisions) == {digest}
        assert set(repo.tags) == {tag}
        assert repo.tags[tag].current == digest
        assert set(repo.layers) == layer_digests(b, name)
        assert not repo.unrecognized
    assert inv.repository("library/alpine").tags["3.20"].current == other
    assert inv.anomalies == []


def test_repositories_and_tags_come_in_name_order(store: Store) -> None:
    """Whatever order the listing finds them in: the plan and the report list them alike."""
    b = RegistryBuilder()
    names = [f"team{i % 3}/svc-{i:02d}" for i in range(24)]
    for name in reversed(names):  # written last to first
        for tag in ("v9", "v10", "latest", "a"):
            b.image(name, tag)
    inv = inventory_of(b, store)
    assert list(inv.repositories) == sorted(names)
    for repo in inv.repositories.values():
        assert list(repo.tags) == ["a", "latest", "v10", "v9"]


def test_tags_current_and_index_revisions_and_layer_links(store: Store) -> None:
    """The current digest is read from current/link; index entries and revisions come from paths."""
    b = RegistryBuilder()
    base = b.layer("app")
    pushes = [b.image("app", "latest", shared=[base]) for _ in range(3)]
    b.tag("app", "stable", pushes[0])
    untagged = b.image("app", None)
    inv = inventory_of(b, store)
    repo = inv.repository("app")
    assert set(repo.revisions) == {*pushes, untagged}
    assert set(repo.tags) == {"latest", "stable"}
    assert repo.tags["latest"].current == pushes[-1]
    assert set(repo.tags["latest"].index) == set(pushes)
    assert repo.tags["stable"].current == pushes[0]
    assert set(repo.tags["stable"].index) == {pushes[0]}
    assert repo.tags["latest"].current_size == len(pushes[-1])
    assert set(repo.layers) == layer_digests(b, "app")
    assert base in repo.layers
    assert repo.layer_aliases == {}


def test_revision_and_link_mtimes_are_recorded(store: Store) -> None:
    """Revision, index and layer link modification times are the stored ones."""
    now = time.time()
    b = RegistryBuilder()
    d = b.image("app", "t", age=7200)
    b.age(f"{R}app/_manifests/revisions/sha256/{d.hex}/link", 60)
    inv = inventory_of(b, store, now)
    repo = inv.repository("app")
    assert repo.revisions[d] == pytest.approx(now - 60, abs=1)
    assert repo.tags["t"].index[d] == pytest.approx(now - 7200, abs=1)
    assert repo.tags["t"].current_mtime == pytest.approx(now - 7200, abs=1)
    for mtime in repo.layers.values():
        assert mtime == pytest.approx(now - 7200, abs=1)


def test_alias_layer_links_are_read_for_their_canonical_target(store: Store) -> None:
    """_layers/sha512/<hex>/link is read: it names the canonical sha256 blob."""
    b = RegistryBuilder()
    b.image("app", "t")
    data = b"a layer pushed by its sha512"
    canonical = b.blob(data)
    alias = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    b.link_layer("app", canonical)
    b.put(LayerLink(Repository("app"), alias).path, canonical.encode())
    alias384 = Digest("sha384:" + "3" * 96)
    b.put(LayerLink(Repository("app"), alias384).path, canonical.encode() + b"\n")
    inv = inventory_of(b, store)
    repo = inv.repository("app")
    assert alias in repo.layers
    assert canonical in repo.layers
    assert repo.layer_aliases == {alias: canonical, alias384: canonical}
    assert "broken-link" not in kinds(inv)


def test_unreadable_alias_link_is_a_broken_link_anomaly(store: Store) -> None:
    """An alias link that does not hold a digest maps to None and is reported."""
    b = RegistryBuilder()
    b.image("app", "t")
    alias = Digest("sha512:" + "5" * 128)
    path = LayerLink(Repository("app"), alias).path
    b.put(path, b"not a digest")
    inv = inventory_of(b, store)
    assert inv.repository("app").layer_aliases == {alias: None}
    assert kinds(inv)["broken-link"] == {path}


def test_legacy_signature_links_are_recorded(store: Store) -> None:
    """Pre-2.5 revisions/<d>/signatures/<s>/link entries are kept per revision."""
    b = RegistryBuilder()
    d = b.image("old", "t")
    sig = b.blob(b"signature")
    b.put(LegacySignatureLink(Repository("old"), d, sig).path, sig.encode())
    inv = inventory_of(b, store)
    repo = inv.repository("old")
    assert [s for s, _ in repo.signatures[d]] == [sig]
    assert set(repo.revisions) == {d}
    assert inv.anomalies == []


# -- uploads and blobs -------------------------------------------------------------------


def test_uploads_started_last_activity_and_size(store: Store) -> None:
    """An upload's start is its startedat mtime; its last activity the newest file; size the sum."""
    now = time.time()
    b = RegistryBuilder()
    b.image("app", "t")
    uid = b.upload("app", size=321, age=3 * 3600)
    r = Repository("app")
    b.age(UploadFile(r, uid, "data").path, 2 * 3600)
    b.age(UploadFile(r, uid, "hashstates/sha256/0").path, 60)
    inv = inventory_of(b, store, now)
    up = inv.repository("app").uploads[uid]
    assert set(up.files) == {"data", "startedat", "hashstates/sha256/0"}
    assert up.started == pytest.approx(now - 3 * 3600, abs=1)
    assert up.last_activity == pytest.approx(now - 60, abs=1)
    assert up.size == 321 + len(b"2026-01-01T00:00:00Z") + len(b"state")


def test_upload_without_startedat_starts_at_its_oldest_file(store: Store) -> None:
    """With no startedat file, the oldest file's time is the start."""
    now = time.time()
    b = RegistryBuilder()
    b.image("app", "t")
    r = Repository("app")
    b.put(UploadFile(r, "u1", "data").path, b"x" * 10, age=5000)
    b.put(UploadFile(r, "u1", "hashstates/sha256/10").path, b"s", age=100)
    inv = inventory_of(b, store, now)
    up = inv.repository("app").uploads["u1"]
    assert up.started == pytest.approx(now - 5000, abs=1)
    assert up.last_activity == pytest.approx(now - 100, abs=1)
    assert up.size == 11


def test_blobs_with_size_and_mtime(store: Store) -> None:
    """Every blobs/…/data is in the blob table with its size and modification time."""
    now = time.time()
    b = RegistryBuilder()
    b.image("app", "t", layers=3)
    young = b.blob(b"young", age=30)
    b.blob(b"x" * 5000, age=4 * 86400)
    inv = inventory_of(b, store, now)
    blobs = {parse_blob_path(p): p for p in b.files if p.startswith("docker/registry/v2/blobs/")}
    assert set(inv.blobs) == set(blobs)
    assert len(inv.blobs) == len(blobs)
    for d, path in blobs.items():
        assert d is not None
        assert inv.blobs.size(d) == len(b.files[path])
        assert inv.blobs.mtime(d) == pytest.approx(now - b.ages[path], abs=1)
    assert inv.blobs.mtime(young) == pytest.approx(now - 30, abs=1)
    assert inv.blobs.total_size() == sum(len(b.files[p]) for p in blobs.values())
    assert inv.objects == len(b.files)
    assert not inv.empty
    assert inv.started.tzinfo is not None
    assert abs(inv.started.timestamp() - time.time()) < 60


def test_sha512_blob_is_accepted(store: Store) -> None:
    """A blob stored under sha512 is listed like any other."""
    b = RegistryBuilder()
    b.image("app", "t")
    d = Digest("sha512:" + "7" * 128)
    b.put(BlobData(d).path, b"data")
    inv = inventory_of(b, store)
    assert d in inv.blobs
    assert inv.blobs.size(d) == 4


# -- anomalies ---------------------------------------------------------------------------


def test_stray_files_and_unknown_directories_are_unrecognized(store: Store) -> None:
    """Files off the layout become 'unrecognized-path' anomalies and mark their repository."""
    b = RegistryBuilder()
    b.image("app", "t")
    b.put("docker/registry/v2/README", b"outside blobs/ and repositories/: never listed")
    strays = {
        f"{R}notes.txt": None,
        f"{R}app/notes.txt": None,
        "docker/registry/v2/blobs/sha256/zz/junk": None,
        f"{R}app/_referrers/sha256/{'a' * 64}/link": "app",
        f"{R}app/_manifests/junk": "app",
    }
    for p in strays:
        b.put(p, b"?")
    inv = inventory_of(b, store)
    assert kinds(inv) == {"unrecognized-path": set(strays)}
    by_path = {a.path: a for a in inv.anomalies}
    for p, repo in strays.items():
        assert by_path[p].repository == repo
        assert p in by_path[p].message
    assert sorted(inv.repository("app").unrecognized) == sorted(
        p for p, r in strays.items() if r == "app"
    )
    assert inv.objects == len(b.files) - 1


@pytest.mark.parametrize("name", ["Foo", "a..b", "lib/Alpine"])
def test_invalid_repository_names_are_reported_not_fatal(store: Store, name: str) -> None:
    """A directory with an invalid name is inventoried, flagged, and not a repository."""
    b = RegistryBuilder()
    b.image("ok", "t")
    d = b.blob(b'{"schemaVersion": 2}')
    r = Repository._trusted(name)
    b.put(f"{R}{name}/_manifests/revisions/sha256/{d.hex}/link", d.encode())
    b.put(f"{R}{name}/_layers/sha256/{d.hex}/link", d.encode())
    inv = inventory_of(b, store)
    repo = inv.repository(name)
    assert repo.name_problem is not None
    assert repo.has_manifests
    assert not repo.is_repository
    assert set(repo.revisions) == {d}
    assert set(repo.layers) == {d}
    found = [a for a in inv.anomalies if a.kind == "invalid-repository-name"]
    assert len(found) == 1
    assert found[0].repository == r
    assert found[0].path == f"{R}{name}/"
    assert inv.repository("ok").is_repository


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "not a digest"),
        (b"garbage", "not a digest"),
        (b"sha256:0123abc", "not a digest"),  # truncated
        (b"sha256:" + b"a" * 63, "not a digest"),  # truncated by one
        (b"sha256:" + b"a" * 64 + b"\n", "not a digest"),
        (b"\xff\xfe", "not ASCII"),
    ],
)
def test_broken_current_links_are_anomalies(store: Store, content: bytes, why: str) -> None:
    """An empty, garbage or truncated current link leaves the tag unresolved and is reported."""
    b = RegistryBuilder()
    d = b.image("app", "t")
    path = TagCurrentLink(Repository("app"), "t").path  # type: ignore[arg-type]
    b.put(path, content)
    inv = inventory_of(b, store)
    tag = inv.repository("app").tags["t"]
    assert tag.current is None
    assert tag.current_mtime is not None
    assert set(tag.index) == {d}
    broken = [a for a in inv.anomalies if a.kind == "broken-link"]
    assert [a.path for a in broken] == [path]
    assert why in broken[0].message
    assert broken[0].repository == "app"


def test_tag_with_index_but_no_current_link_is_reported(store: Store) -> None:
    """A tag directory without current/link (an interrupted write) is an anomaly."""
    b = RegistryBuilder()
    d = b.image("app", "t")
    b.remove(TagCurrentLink(Repository("app"), "t").path)  # type: ignore[arg-type]
    inv = inventory_of(b, store)
    tag = inv.repository("app").tags["t"]
    assert (tag.current, tag.current_mtime) == (None, None)
    assert set(tag.index) == {d}
    assert kinds(inv) == {"tag-without-current-link": {f"{R}app/_manifests/tags/t/current/link"}}


def test_invalid_tag_name_is_reported(store: Store) -> None:
    """A tag directory whose name breaks the tag grammar is flagged."""
    b = RegistryBuilder()
    b.image("app", "-bad")
    inv = inventory_of(b, store)
    assert "-bad" in inv.repository("app").tags
    assert kinds(inv) == {"invalid-tag-name": {f"{R}app/_manifests/tags/-bad/"}}


def test_layers_only_directory_is_not_a_repository(store: Store) -> None:
    """A directory with _layers (and uploads) but no _manifests: an aborted push, reported."""
    b = RegistryBuilder()
    b.image("ok", "t")
    b.layer("aborted")
    b.upload("aborted")
    inv = inventory_of(b, store)
    repo = inv.repository("aborted")
    assert not repo.has_manifests
    assert not repo.is_repository
    assert len(repo.layers) == 1
    assert len(repo.uploads) == 1
    assert kinds(inv) == {"no-manifests-directory": {f"{R}aborted/"}}


# -- empty stores and directories --------------------------------------------------------


def test_empty_directories_on_local_disk(tmp_path: Path) -> None:
    """Empty directories are listed (for cleanup) and a bare _manifests dir makes a repository."""
    b = RegistryBuilder()
    b.image("app", "t")
    b.write_local(tmp_path)
    for d in ("repositories/gone", "repositories/x/_manifests/tags/t", "blobs/sha256/ab"):
        os.makedirs(tmp_path / "docker/registry/v2" / d)
    inv = take_inventory(open_backend(tmp_path))
    assert set(inv.empty_dirs) == {
        f"{R}gone",
        f"{R}x/_manifests/tags/t",
        "docker/registry/v2/blobs/sha256/ab",
    }
    assert inv.repository("x").has_manifests
    assert "gone" not in inv.repositories
    assert inv.objects == len(b.files)


def test_memory_store_reports_no_directories(store: Store) -> None:
    """Object stores have no directories of their own: empty_dirs stays empty."""
    b = RegistryBuilder()
    b.image("app", "t")
    inv = inventory_of(b, store)
    if store.kind == "memory":
        assert inv.empty_dirs == {}
    else:
        assert all(not p.startswith(R + "app/") for p in inv.empty_dirs)


def test_empty_and_missing_roots_are_empty(tmp_path: Path) -> None:
    """A root with nothing under docker/registry/v2 (or no root at all) is an empty inventory."""
    assert take_inventory(open_backend(tmp_path)).empty
    assert take_inventory(open_backend(tmp_path / "does-not-exist")).empty
    assert take_inventory(open_backend(f"memory:///rgc-nothing-{uuid.uuid4().hex}")).empty
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "other").write_bytes(b"x")
    inv = take_inventory(open_backend(tmp_path))
    assert inv.empty  # only docker/registry/v2/ is listed
    assert inv.objects == 0


class _ListingStub:
    """A backend that lists a fixed set of entries and reads from a dict."""

    url = "stub://"

    def __init__(self, entries: dict[str, bytes]) -> None:
        self.entries = entries

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        now = datetime.datetime.now(UTC)
        for p, data in self.entries.items():
            if p.startswith(prefix):
                yield ObjectInfo(p, len(data), now)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        return {p: self.entries.get(p) for p in paths}

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        raise AssertionError("no delete in an inventory")

    async def aclose(self) -> None:
        pass


def test_keys_ending_in_slash_are_anomalies_not_crashes() -> None:
    """Directory placeholder keys ('…/') from a sloppy backend are reported, not fatal."""
    d = sha256(b"x")
    entries = {
        f"{R}app/": b"",
        f"{R}app/_uploads/": b"",
        f"{R}app/_uploads/u1/": b"",
        f"{R}app/_layers/sha256/{d.hex}/": b"",
        f"{R}app/_layers/sha256/{d.hex}/link": d.encode(),
        f"docker/registry/v2/blobs/sha256/{d.hex[:2]}/{d.hex}/": b"",
        BlobData(d).path: b"x",
    }
    inv = asyncio.run(scan(_ListingStub(entries)))  # type: ignore[arg-type]
    assert set(inv.blobs) == {d}
    repo = inv.repository("app")
    assert set(repo.layers) == {d}
    assert repo.uploads == {}
    unrecognized = {a.path for a in inv.anomalies if a.kind == "unrecognized-path"}
    assert unrecognized == {p for p in entries if p.endswith("/")}


#: Loose ceilings (about four times what the columnar tables take: 94 bytes a blob for the
#: inventory with its link tables, 45 a manifest), an order of magnitude under the
#: dict-of-strings representation they replaced (about 1 KiB a blob, 1.5 KiB a manifest).
INVENTORY_BYTES_PER_BLOB = 400
MANIFEST_BYTES_PER_MANIFEST = 400


def test_memory_per_blob_and_per_manifest_stay_small() -> None:
    """The inventory and the manifest table hold a few dozen bytes per blob and per manifest.

    Not a benchmark: a regression to one Python object per digest (hundreds of
    bytes each) fails it.
    """
    b = RegistryBuilder(seed=7)
    for r in range(20):
        for i in range(100):
            b.image(f"team/app{r}", f"v{i % 10}")
    backend = DictBackend("memory-per-blob")
    for path, data in b.files.items():
        backend.put(path, data)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        inventory = take_inventory(backend)
        listed = tracemalloc.get_traced_memory()[0] - base
        manifests = load_manifests(backend, inventory)
        read = tracemalloc.get_traced_memory()[0] - base - listed
    finally:
        tracemalloc.stop()
    blobs = len(inventory.blobs)
    assert blobs == 8000
    assert len(manifests) == 2000
    assert listed / blobs < INVENTORY_BYTES_PER_BLOB
    assert read / len(manifests) < MANIFEST_BYTES_PER_MANIFEST


def test_scan_of_given_prefixes_holds_exactly_what_they_hold(store: Store) -> None:
    """scan(prefixes=…) lists only those directories, plus objects and uploads found already."""
    b = RegistryBuilder()
    b.image("a", "1")
    b.image("a/b", "2")
    b.image("c", "3")
    backend = open_backend(store.write(b, time.time()))
    now = datetime.datetime.now(UTC)
    stray = ObjectInfo(f"{R}stray", 3, now)
    upload = MultipartUpload(f"{R}a/_uploads/u1/data", "id-1", now)
    inv = asyncio.run(scan(backend, prefixes=[f"{R}a/"], listed=[stray], uploads=[upload]))
    assert set(inv.repositories) == {"a", "a/b"}
    assert inv.repository("a").tags[Tag("1")].current is not None  # current links are read
    assert len(inv.blobs) == 0
    assert inv.repository("a").uploads["u1"].multipart == [upload]
    assert kinds(inv)["unrecognized-path"] == {f"{R}stray"}
    assert inv.objects == 1 + len(b.paths(f"{R}a/")), "objects found on the way count too"
