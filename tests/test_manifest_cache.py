"""The manifest cache (``collect(manifest_cache=…)``, ``gc --manifest-cache``): fewer reads.

The property test builds random registries (the generator of ``tests/test_property.py``),
runs once to fill a cache, then damages the store (manifests missing, strays, ages
around the grace cutoff: ``tests/test_names_only.py``'s damage) and the cache file
(bodies swapped, sizes changed, entries dropped), and checks that a dry run with
the cache plans exactly what a dry run without it plans. The other tests hold the
guarantees one by one: what a second run reads, what is never taken from the
cache, what is forgotten, and the errors for a file that cannot be used.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sqlite3
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import ConfigError, collect
from registry_gc.backends import GCSBackend, LocalBackend, S3Backend, WrappingBackend
from registry_gc.cli import run as cli
from registry_gc.layout import BlobData, Digest, blob_path, classify
from registry_gc.manifest_cache import ManifestCache, ManifestCacheError

from tests.rigs.builder import RegistryBuilder
from tests.rigs.procs import put_untraced
from tests.rigs.scenarios import live_blobs, mixed_registry
from tests.test_names_only import DAMAGE, GRACE, NOW, Damaged, outcome, run
from tests.test_property import OPS, World

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from registry_gc import Report

    from tests.rigs.gcs import FakeGCS
    from tests.rigs.s3 import SeaweedS3

UTC = datetime.timezone.utc
AT = datetime.datetime.fromtimestamp(NOW, UTC)


class Reads(WrappingBackend):
    """Records every path read through it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.paths: list[str] = []

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Record, then read."""
        self.paths.extend(paths)
        return await self.inner.read(paths)

    def blobs_read(self) -> set[str]:
        """The blob data files read (manifests, configs)."""
        return {p for p in self.paths if isinstance(classify(p), BlobData)}


def dry(root: Path | Any, **kwargs: Any) -> Report:
    """A dry run at :data:`NOW` with a one-hour grace, ``-m``."""
    return collect(root, dry_run=True, delete_untagged=True, grace=GRACE, now=AT, **kwargs)


def manifest_paths(b: RegistryBuilder) -> set[str]:
    """The blob paths of every manifest ``b`` built."""
    return {blob_path(d) for d in b.contents}


def entries(path: Path) -> dict[str, tuple[int, bytes]]:
    """The cache file's rows: digest → (size, body as stored)."""
    with sqlite3.connect(path) as db:
        return {
            d: (n, body) for d, n, body in db.execute("SELECT digest, size, body FROM manifests")
        }


def rewrite(path: Path, digest: str, *, size: int | None = None, body: bytes | None = None) -> None:
    """Change one row of the cache file behind its back."""
    with sqlite3.connect(path) as db:
        if size is not None:
            db.execute("UPDATE manifests SET size = ? WHERE digest = ?", (size, digest))
        if body is not None:
            db.execute(
                "UPDATE manifests SET body = ? WHERE digest = ?", (zlib.compress(body), digest)
            )


# -- the plan is the same ------------------------------------------------------------------------

CACHE_DAMAGE = st.lists(
    st.tuples(st.sampled_from(["swap", "size", "drop", "garbage"]), st.integers(0, 10**6)),
    max_size=4,
)


def _damage_cache(path: Path, kind: str, pick: int) -> None:
    rows = sorted(entries(path))
    if not rows:
        return
    digest = rows[pick % len(rows)]
    other = rows[(pick + 1) % len(rows)]
    with sqlite3.connect(path) as db:
        if kind == "swap":  # another manifest's body: same store, wrong digest
            db.execute(
                "UPDATE manifests SET body = (SELECT body FROM manifests WHERE digest = ?), "
                "size = (SELECT size FROM manifests WHERE digest = ?) WHERE digest = ?",
                (other, other, digest),
            )
        elif kind == "size":
            db.execute("UPDATE manifests SET size = size + 1 WHERE digest = ?", (digest,))
        elif kind == "drop":
            db.execute("DELETE FROM manifests WHERE digest = ?", (digest,))
        else:
            db.execute("UPDATE manifests SET body = ? WHERE digest = ?", (b"\x00zz", digest))


def _plan(root: Path, cache: Path | None) -> dict[str, Any]:
    return run(root, names_only=False, delete_untagged=True, manifest_cache=cache)


@settings(
    max_examples=int(os.environ.get("MANIFEST_CACHE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(OPS, min_size=2, max_size=10),
    damage=st.lists(DAMAGE, max_size=6),
    cache_damage=CACHE_DAMAGE,
)
def test_a_run_with_the_cache_plans_what_a_run_without_it_plans(
    seed: int,
    ops: list[tuple[Any, ...]],
    damage: list[tuple[str, int, float]],
    cache_damage: list[tuple[str, int]],
) -> None:
    """Filled on the store, then the store and the cache damaged: the plan is the uncached one."""
    world = World(seed)
    for op in ops:
        world.apply(op)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "root", Path(tmp) / "manifests.db"
        world.b.write_local(root, now=NOW)
        first = _plan(root, cache)
        assert first == _plan(root, None)
        for kind, pick in cache_damage:
            _damage_cache(cache, kind, pick)
        damaged = Damaged(world)
        for kind, pick, age in damage:
            damaged.apply(kind, pick, age)
        other = Path(tmp) / "damaged"
        damaged.write(other)
        assert _plan(other, cache) == _plan(other, None)


# -- the guarantees, one by one -------------------------------------------------------------------


def test_a_second_run_reads_no_manifest_and_plans_the_same(tmp_path: Path) -> None:
    """Every manifest of the store comes from the cache the second time; nothing else changes."""
    b = mixed_registry()
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    plain = Reads(LocalBackend(tmp_path / "root"))
    without = dry(plain)
    first = Reads(LocalBackend(tmp_path / "root"))
    filled = dry(first, manifest_cache=cache)
    second = Reads(LocalBackend(tmp_path / "root"))
    again = dry(second, manifest_cache=cache)
    assert outcome(filled) == outcome(again) == outcome(without)
    manifests = manifest_paths(b)
    assert manifests <= first.blobs_read()
    assert not second.blobs_read() & manifests
    assert second.blobs_read() == plain.blobs_read() - manifests  # configs are still read
    assert set(second.paths) - second.blobs_read() == set(plain.paths) - plain.blobs_read()
    assert set(entries(cache)) == {str(d) for d in b.contents if blob_path(d) in first.paths}
    # what the run keeps is what the oracle keeps, with and without
    blobs = {d.digest for d in again.plan.deletions if d.category.value == "blob"}
    assert blobs
    assert not live_blobs(b) & blobs


def test_an_entry_that_does_not_hash_to_its_digest_is_read_again_and_replaced(
    tmp_path: Path,
) -> None:
    """A body swapped for another manifest's, of the listed size: rejected, read, rewritten."""
    b = RegistryBuilder(3)
    first = b.image("app", "latest", layers=1)
    second = b.image("app", "v2", layers=1)
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    dry(tmp_path / "root", manifest_cache=cache)
    size_first, _ = entries(cache)[first]
    # the second manifest's bytes, trimmed or padded to the first's size
    wrong = (b.files[blob_path(second)] + b" " * size_first)[:size_first]
    rewrite(cache, first, body=wrong)
    reads = Reads(LocalBackend(tmp_path / "root"))
    with ManifestCache(cache) as mc:
        report = dry(reads, manifest_cache=mc)
        assert (mc.hits, mc.rejected, mc.added) == (1, 1, 1)
    assert blob_path(first) in reads.paths
    assert blob_path(second) not in reads.paths
    assert zlib.decompress(entries(cache)[first][1]) == b.files[blob_path(first)]
    assert outcome(report) == outcome(dry(tmp_path / "root"))


def test_an_entry_of_another_size_than_the_blob_listed_is_not_used(tmp_path: Path) -> None:
    """The listed size must be the entry's: otherwise the blob is read from the storage."""
    b = RegistryBuilder(4)
    digest = b.image("app", "latest")
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    dry(tmp_path / "root", manifest_cache=cache)
    size, _ = entries(cache)[digest]
    rewrite(cache, digest, size=size + 1)
    reads = Reads(LocalBackend(tmp_path / "root"))
    with ManifestCache(cache) as mc:
        dry(reads, manifest_cache=mc)
        assert (mc.hits, mc.rejected) == (0, 1)
    assert blob_path(digest) in reads.paths
    assert entries(cache)[digest][0] == size


def test_a_manifest_the_store_lost_is_missing_whatever_the_cache_holds(tmp_path: Path) -> None:
    """A cached manifest whose blob is gone: the repository is damaged, as without a cache."""
    b = RegistryBuilder(5)
    lost = b.image("app", "latest", layers=2)
    b.image("other", "latest")
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    dry(tmp_path / "root", manifest_cache=cache)
    assert lost in entries(cache)
    (tmp_path / "root" / blob_path(lost)).unlink()
    with ManifestCache(cache) as mc:
        report = dry(tmp_path / "root", manifest_cache=mc)
        assert mc.hits == 1  # the other repository's manifest only
    assert outcome(report) == outcome(dry(tmp_path / "root"))
    assert any(a.repository == "app" for a in report.plan.anomalies)
    assert not {d.digest for d in report.plan.deletions} & set(b.contents[lost]["blobs"])


def test_a_real_run_then_a_push_reads_only_the_new_manifests_and_forgets_the_deleted(
    tmp_path: Path,
) -> None:
    """After a real run the cache holds what survived; a push adds only its manifest."""
    b = RegistryBuilder(6)
    old = b.image("app", "latest", layers=1)
    b.image("app", "latest", layers=1)  # old is untagged now: garbage with -m
    keep = b.image("lib", "1.0", layers=1)
    root = tmp_path / "root"
    b.write_local(root, now=NOW)
    cache = tmp_path / "manifests.db"
    collect(root, delete_untagged=True, grace=GRACE, now=AT, manifest_cache=cache)
    assert old in entries(cache)  # read by the run that deleted it
    before = set(b.files)
    new = b.image("lib", "2.0", layers=1)
    for path in set(b.files) - before:  # the push: its blobs and links
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b.files[path])
        os.utime(root / path, (NOW - 7200, NOW - 7200))
    reads = Reads(LocalBackend(root))
    with ManifestCache(cache) as mc:
        report = dry(reads, manifest_cache=mc)
        assert mc.added == 1
        assert mc.forgotten == 1
    assert reads.blobs_read() & manifest_paths(b) == {blob_path(new)}
    assert set(entries(cache)) == set(b.contents) - {old}
    assert keep in entries(cache)
    assert not report.plan.deletions


def test_what_is_read_to_find_out_whether_it_is_a_manifest_is_not_kept(tmp_path: Path) -> None:
    """An orphan ``_layers`` link to a JSON blob is read (a 2.1.0 revision?), never kept."""
    b = RegistryBuilder(7)
    b.image("app", "latest", layers=1)
    config = b.blob(b'{"architecture": "amd64", "os": "linux"}')
    b.link_layer("app", config)
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    for _ in range(2):
        reads = Reads(LocalBackend(tmp_path / "root"))
        dry(reads, manifest_cache=cache)
        assert blob_path(config) in reads.paths
    assert str(config) not in entries(cache)


def test_a_names_only_run_uses_the_cache_and_plans_the_full_run(tmp_path: Path) -> None:
    """Names-only runs look at a manifest before taking it from the cache: the same plan."""
    b = mixed_registry()
    b.write_local(tmp_path / "root", now=NOW)
    cache = tmp_path / "manifests.db"
    full = dry(tmp_path / "root", manifest_cache=cache)
    with ManifestCache(cache) as mc:
        names = dry(tmp_path / "root", manifest_cache=mc, names_only=True)
        assert mc.hits == len(manifest_paths(b))
        assert mc.added == 0
    assert outcome(names) == outcome(full)


def test_sha512_manifests_are_hashed_with_their_algorithm(tmp_path: Path) -> None:
    """A manifest pushed by a sha512 digest is cached, and checked, under that digest."""
    b = RegistryBuilder(8)
    digest = b.image("app", "latest")
    data = b.files[blob_path(digest)]
    long = Digest(f"sha512:{hashlib.sha512(data).hexdigest()}")
    with ManifestCache(tmp_path / "m.db") as mc:
        mc.add(long, data)
        mc.add(digest, data)
        assert dict(mc.take([(long, len(data)), (digest, len(data))])) == {
            long: data,
            digest: data,
        }
        mc.add(Digest(f"sha512:{'0' * 128}"), data)  # a body that is not this digest's
        assert not dict(mc.take([(Digest(f"sha512:{'0' * 128}"), len(data))]))
        assert mc.rejected == 1


# -- errors -------------------------------------------------------------------------------


def test_a_file_that_is_not_a_cache_is_refused_with_its_path_and_nothing_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A text file given as the cache: a clear error naming it, exit 2, nothing deleted."""
    b = RegistryBuilder(9)
    b.image("app", "latest")
    b.blob(b"garbage", age=10 * 86400)
    b.write_local(tmp_path / "root")
    before = sorted(p for p in (tmp_path / "root").rglob("*"))
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are my notes, not a database\n" * 200)
    code = cli(["gc", str(tmp_path / "root"), "-m", "--manifest-cache", str(bogus)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(bogus) in err
    assert "delete this one" in err
    assert sorted(p for p in (tmp_path / "root").rglob("*")) == before
    assert bogus.read_text().startswith("these are my notes")


def test_a_cache_of_another_format_is_refused(tmp_path: Path) -> None:
    """A file of another format version is not read or changed."""
    path = tmp_path / "m.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE manifests (digest TEXT PRIMARY KEY, size INTEGER, body BLOB)")
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(ManifestCacheError, match="format 7, not 1"):
        ManifestCache(path)
    assert isinstance(ManifestCacheError("x"), ConfigError)


def test_a_cache_cannot_be_given_to_a_distributed_run(tmp_path: Path) -> None:
    """A distributed or S3-Inventory run reads manifests elsewhere: refused before anything."""
    with pytest.raises(ConfigError, match="manifest_cache"):
        collect(tmp_path, inventory="s3://b/manifest.json", manifest_cache=tmp_path / "m.db")
    assert not (tmp_path / "m.db").exists()
    code = cli(["gc", str(tmp_path), "--workers", "2", "--manifest-cache", str(tmp_path / "m.db")])
    assert code == 2
    assert not (tmp_path / "m.db").exists()


def test_cli_gc_with_a_manifest_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gc --manifest-cache FILE`` fills the file and deletes what it deletes without one."""
    b = mixed_registry()
    b.write_local(tmp_path / "a")
    b.write_local(tmp_path / "b")
    cache = tmp_path / "manifests.db"
    args = ["-m", "--grace", "0s", "--uploads-older-than", "0s", "--json"]
    assert cli(["gc", str(tmp_path / "a"), *args]) == 0
    capsys.readouterr()
    assert cli(["gc", str(tmp_path / "b"), *args, "--manifest-cache", str(cache)]) == 0
    capsys.readouterr()
    left = {str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*")}
    assert left == {str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*")}
    assert set(entries(cache)) <= {str(d) for d in b.contents}
    assert entries(cache)


# -- tag links, by the ETag the listing gives (S3) ------------------------------------------------


def _s3_run(server: SeaweedS3, bucket: str, cache: Path | None) -> tuple[Report, dict[str, int]]:
    backend = S3Backend(bucket, "", server.storage_options())
    report = dry(backend, manifest_cache=cache, allow_empty=True)
    return report, dict(backend.request_counts)


@pytest.mark.s3
def test_on_s3_a_second_run_reads_nothing_and_a_moved_tag_is_read_again(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """Tag links come from the cache while their ETag is the MD5 of what it holds.

    A second run over an unchanged bucket sends no GetObject; a tag moved since is
    read again (its ETag changed), and the plan is the plan of a run without a cache.
    """
    b = mixed_registry()
    older = b.image("team/app", "latest", layers=1)
    b.image("team/app", "latest", layers=1)  # older is untagged now
    s3_server.put_many(s3_bucket, b.files)
    cache = tmp_path / "manifests.db"
    uncached, counts = _s3_run(s3_server, s3_bucket, None)
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    assert counts["GetObject"] == len(manifest_paths(b)) + tags
    _s3_run(s3_server, s3_bucket, cache)
    again, counts = _s3_run(s3_server, s3_bucket, cache)
    assert counts.get("GetObject", 0) == 0
    assert outcome(again) == outcome(uncached)

    # The tag moves back to the image it had, as a push of it does: a link body no
    # tag had, so its MD5 is new. (A tag moved to what another tag names is not read:
    # its body, and so its MD5, is the other's.)
    current = "docker/registry/v2/repositories/team/app/_manifests/tags/latest/current/link"
    s3_server.put_many(s3_bucket, {current: str(older).encode()})
    moved, counts = _s3_run(s3_server, s3_bucket, cache)
    assert counts["GetObject"] == 1
    assert outcome(moved) == outcome(_s3_run(s3_server, s3_bucket, None)[0])
    assert outcome(moved) != outcome(again)


@pytest.mark.s3
def test_on_s3_a_link_body_that_is_not_its_md5_is_read_again(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """A link row edited behind the cache's back is rejected, and the link read."""
    b = RegistryBuilder(10)
    b.image("app", "latest")
    b.image("app", "v2")
    s3_server.put_many(s3_bucket, b.files)
    cache = tmp_path / "manifests.db"
    _s3_run(s3_server, s3_bucket, cache)
    with sqlite3.connect(cache) as db:
        (md5,) = db.execute("SELECT md5 FROM links ORDER BY md5 LIMIT 1").fetchone()
        body = b.files["docker/registry/v2/repositories/app/_manifests/tags/v2/current/link"]
        db.execute("UPDATE links SET body = ? WHERE md5 = ?", (body[:-1] + b"0", md5))
    with ManifestCache(cache) as mc:
        report = dry(S3Backend(s3_bucket, "", s3_server.storage_options()), manifest_cache=mc)
        assert (mc.link_hits, mc.rejected, mc.links_added) == (1, 1, 1)
    assert outcome(report) == outcome(_s3_run(s3_server, s3_bucket, None)[0])


def test_links_are_kept_only_under_the_md5_of_their_content(tmp_path: Path) -> None:
    """An ETag that is not the body's MD5 (KMS, multipart ``-N``) keeps nothing, finds nothing."""
    body = b"sha256:" + b"a" * 64
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    with ManifestCache(tmp_path / "m.db") as mc:
        mc.add_link(f"{md5}-2", body)
        mc.add_link("0" * 32, body)
        mc.add_link(md5.upper(), body)
        assert mc.take_links([md5, f"{md5}-2", "0" * 32]) == {}
        mc.add_link(md5, body)
        assert mc.take_links([md5, "0" * 32, "not hex"]) == {md5: body}
        assert mc.forget_unused() == 0
    with ManifestCache(tmp_path / "m.db") as mc:
        assert mc.forget_unused() == 1  # this run used no link
        assert mc.take_links([md5]) == {}


@pytest.mark.gcs
def test_on_gcs_tag_links_come_from_the_cache_by_their_md5hash(
    gcs_server: FakeGCS, gcs_bucket: str, tmp_path: Path
) -> None:
    """GCS lists each object's MD5 (``md5Hash``): a second run reads no manifest or tag link."""
    b = mixed_registry()
    put_untraced(lambda path, data: gcs_server.put(gcs_bucket, path, data), b.files)
    options = {"endpoint_url": gcs_server.endpoint_url, "token": "anon"}

    def gcs_run(cache: Path | None) -> tuple[Report, dict[str, int]]:
        backend = GCSBackend.from_url(f"gs://{gcs_bucket}", options)
        report = dry(backend, manifest_cache=cache)
        return report, dict(backend.request_counts)

    cache = tmp_path / "manifests.db"
    uncached, counts = gcs_run(None)
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    assert counts["objects.get"] == len(manifest_paths(b)) + tags
    gcs_run(cache)
    again, counts = gcs_run(cache)
    assert counts.get("objects.get", 0) == 0
    assert outcome(again) == outcome(uncached)
