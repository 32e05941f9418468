"""Live mode (registry_gc.live): quarantine instead of delete, heal what a racing push needs.

The races are played by the tests themselves, at the moments a live run is
most exposed: while it settles (``sleep``), between its first listing and its
second (:class:`Racing`, on the second listing of ``repositories/``), and
just as it starts deleting links (on the first ``delete``). Each race is a
push the registry could acknowledge at that moment: a tag written to an old
untagged manifest (what ``PUT /v2/<repo>/manifests/<tag>`` of that body
writes when its blobs pass the registry's check). After the run, every tag
must pull from storage (``registry_gc.check``), and nothing the end state
keeps may be in the quarantine only.

The real registry and real pushers race live runs in ``tests/test_soak.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import registry_gc.live as live_module
from registry_gc import (
    QUARANTINE_PREFIX,
    NotFoundError,
    Options,
    RefusedError,
    Removals,
    check,
    collect,
    list_quarantine,
    open_backend,
    purge_quarantine,
    restore_quarantined,
)
from registry_gc._run import Timings, survey
from registry_gc.backends import WrappingBackend
from registry_gc.cache import InMemoryCache, NoCache, RedisDescriptorCache
from registry_gc.layout import REPOSITORIES_PREFIX, Digest
from registry_gc.live import sweep_live
from registry_gc.manifest_cache import ManifestCache

from tests.rigs import planfiles
from tests.rigs.builder import OCI_INDEX, OCI_MANIFEST, RegistryBuilder, sha256
from tests.rigs.dictstore import DictBackend
from tests.rigs.faults import FaultyBackend, InjectedFaultError
from tests.rigs.redis import cached_stat, set_descriptor
from tests.rigs.scenarios import rich
from tests.rigs.stores import Store, blob, cur, idx, lnk, rev

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from registry_gc import Report
    from registry_gc.backends import Backend, DeleteResult, ObjectInfo
    from registry_gc.cache import DescriptorCache

ZERO = datetime.timedelta(0)
UTC = datetime.timezone.utc


# -- the store and its races ------------------------------------------------------------------


def scene(seed: int = 3) -> tuple[RegistryBuilder, dict[str, Digest]]:
    """``rich`` garbage, plus ``app:latest`` pushed three times (two old untagged images)."""
    b = RegistryBuilder(seed)
    rich(b)
    base = b.layer("app")
    old1 = b.image("app", "latest", shared=[base])
    old2 = b.image("app", "latest", shared=[base])
    new = b.image("app", "latest", shared=[base])
    return b, {"old1": old1, "old2": old2, "new": new, "base": base}


def retag(store: Store, repo: str, tag: str, digest: Digest) -> None:
    """What the registry writes for ``PUT /v2/<repo>/manifests/<tag>`` of a stored body."""
    for path in (idx(repo, tag, digest), cur(repo, tag), rev(repo, digest)):
        write(store, path, digest.encode())


def write(store: Store, path: str, data: bytes) -> None:
    """Write one object into the store, as the registry would."""
    if store.local:
        full = store.dir / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    else:
        store.fs.pipe_file(f"{store.mem_root}/{path}", data)


def v2(files: set[str]) -> set[str]:
    """The paths inside the registry's tree."""
    return {p for p in files if p.startswith("docker/")}


def quarantined(files: set[str]) -> set[str]:
    """The paths inside the quarantine."""
    return {p for p in files if p.startswith(QUARANTINE_PREFIX)}


def live(store: Store, backend: Backend | None = None, **kw: Any) -> Report:
    """A live run, ``-m --grace 0s``, no cache, no settle, unless told otherwise."""
    kw.setdefault("delete_untagged", True)
    kw.setdefault("grace", ZERO)
    kw.setdefault("cache", NoCache())
    kw.setdefault("settle", ZERO)
    return collect(backend if backend is not None else store.root, live=True, **kw)


def offline_end_state(tmp_path: Path, b: RegistryBuilder, kind: str, **kw: Any) -> set[str]:
    """The v2 files an offline run leaves of the same tree."""
    other = Store(kind, tmp_path / f"offline-{os.urandom(4).hex()}")
    other.write(b)
    try:
        collect(other.root, delete_untagged=True, grace=ZERO, **kw)
        return v2(other.files())
    finally:
        other.cleanup()


def pulls(store: Store, *tags: tuple[str, str, Digest]) -> None:
    """Every tag of the store pulls from storage, and each named tag points where it should."""
    result = check(store.root)
    assert result.ok, [p.message for p in result.problems]
    files = store.files()
    for repo, tag, digest in tags:
        assert cur(repo, tag) in files
        assert rev(repo, digest) in files
        assert blob(digest) in files


class Racing(WrappingBackend):
    """Runs ``race()`` once, just before the ``nth`` listing of ``repositories/`` (or a delete)."""

    def __init__(
        self, inner: Backend, race: Callable[[], None], *, nth: int = 2, on_delete: bool = False
    ) -> None:
        super().__init__(inner)
        self.race, self.nth, self.on_delete = race, nth, on_delete
        self.listings = 0
        self.raced = False

    def _maybe(self) -> None:
        if not self.raced:
            self.raced = True
            self.race()

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List, racing first when this is the chosen listing."""
        if prefix == REPOSITORIES_PREFIX and not self.on_delete:
            self.listings += 1
            if self.listings == self.nth:
                self._maybe()
        async for info in self.inner.list(prefix):
            yield info

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete, racing first when racing on deletes."""
        if self.on_delete:
            self._maybe()
        return await self.inner.delete(paths)


def open_store(store: Store) -> Backend:
    """A backend over the store (to wrap)."""
    return open_backend(store.root)


# -- a live run without races -----------------------------------------------------------------


def test_without_races_it_ends_where_an_offline_run_ends(store: Store, tmp_path: Path) -> None:
    """Unraced, a live run leaves exactly what an offline run leaves, and an empty quarantine."""
    b, d = scene()
    store.write(b)
    report = live(store)
    files = store.files()
    assert v2(files) == offline_end_state(tmp_path, b, store.kind)
    # grace 0 and a cache that forgets: verified, then purged in the same run
    assert quarantined(files) == set()
    figures = report.live
    assert figures is not None
    assert figures.verified
    assert figures.moved_blobs > 0
    assert figures.purged_blobs == figures.moved_blobs
    assert figures.links_removed > 0
    assert figures.restored_blobs == []
    assert figures.restored_links == []
    assert report.ok
    assert report.exit_code == 0
    pulls(store, ("app", "latest", d["new"]))
    data = report.to_dict()["live"]
    assert data["moved_blobs"] == figures.moved_blobs
    assert data["quarantine"] == {"runs": 0, "blobs": 0, "bytes": 0}


def test_moved_blobs_are_byte_for_byte_in_the_quarantine(disk: Store) -> None:
    """A moved blob keeps its bytes; the journal names every deleted link with its content."""
    b, _d = scene()
    disk.write(b)
    before = disk.snapshot()
    report = live(disk, cache=None)  # unknown cache: held, so the copies stay
    assert report.live is not None
    assert report.live.held
    after = disk.snapshot()
    moved = {p: after[p] for p in quarantined(set(after)) if p.endswith("/data")}
    assert len(moved) == report.live.moved_blobs > 0
    for path, (data, _) in moved.items():
        original = path.split("/", 3)[3]
        assert before[original][0] == data
        assert original not in after
    # the journal names every link the run deleted, with what it held
    journal = b"".join(
        after[p][0] for p in quarantined(set(after)) if "/links/" in p and p.endswith(".tsv")
    ).decode()
    deleted_links = {p for p in before if p.endswith("/link") and p not in after}
    journaled = {line.split("\t")[1]: line.split("\t")[0] for line in journal.splitlines()}
    assert deleted_links - {p for p in deleted_links if "/_manifests/tags/" in p} <= set(journaled)
    for path, target in journaled.items():
        assert before[path][0].decode() == target


def test_plan_and_deletions_files_of_a_live_run(disk: Store, tmp_path: Path) -> None:
    """--plan-out gets the plan both looks agreed on; --deletions-out what became of each line."""
    b, _d = scene()
    disk.write(b)
    before = set(disk.files())
    plan_out, deletions_out = tmp_path / "plan.jsonl", tmp_path / "deletions.jsonl"
    report = live(disk, plan_out=plan_out, deletions_out=deletions_out)
    assert report.live is not None
    header, planned, _ = planfiles.read(plan_out)
    assert header["root"]
    assert len(planned) == len(report.plan.deletions) > 0
    done = planfiles.deletions(deletions_out)
    assert [e["paths"] for e in done] == [e["paths"] for e in planned]
    assert {e["status"] for e in done} == {"deleted"}
    gone = planfiles.paths(done)
    assert gone <= before
    assert not gone & set(disk.files())
    # the blobs among them went through the quarantine (moved, then purged: grace 0)
    assert report.live.moved_blobs == sum(
        1 for p in gone if p.startswith("docker/registry/v2/blobs/")
    )


# -- races ------------------------------------------------------------------------------------


def test_a_push_during_the_settle_time_gets_everything_back(store: Store) -> None:
    """A tag pushed onto removed garbage while the run settles: the verification restores it."""
    b, d = scene()
    store.write(b)

    async def push_while_settling(_: float) -> None:
        retag(store, "app", "old", d["old1"])  # its blobs and links were just removed

    report = _live_with_sleep(store, push_while_settling)
    figures = report.live
    assert figures is not None
    assert str(d["old1"]) in figures.restored_blobs
    assert {lnk("app", x) for x in b.contents[d["old1"]]["blobs"]} - {lnk("app", d["base"])} <= set(
        figures.restored_links
    )
    assert figures.verified
    assert report.ok
    pulls(store, ("app", "latest", d["new"]), ("app", "old", d["old1"]))
    # the rest is gone, the restored image is not in the quarantine any more
    assert not any(str(d["old1"]).split(":")[1] in p for p in quarantined(store.files()))


def test_a_run_with_a_manifest_cache_heals_a_push_during_the_settle_time(store: Store) -> None:
    """The first look takes every manifest from the cache; the push is restored all the same."""
    b, d = scene()
    store.write(b)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifests.db"
        collect(store.root, dry_run=True, delete_untagged=True, grace=ZERO, manifest_cache=path)

        async def push_while_settling(_: float) -> None:
            retag(store, "app", "old", d["old1"])

        with ManifestCache(path) as mc:
            report = _live_with_sleep(store, push_while_settling, manifest_cache=mc)
            assert mc.hits == len(b.contents)
            assert mc.added == 0
    assert report.live is not None
    assert str(d["old1"]) in report.live.restored_blobs
    assert report.live.verified
    assert report.ok
    pulls(store, ("app", "latest", d["new"]), ("app", "old", d["old1"]))


def _live_with_sleep(
    store: Store | str,
    sleep: Callable[[float], Any],
    *,
    storage_options: dict[str, Any] | None = None,
    cache: DescriptorCache | None = None,
    manifest_cache: ManifestCache | None = None,
) -> Report:
    """A live run (``-m --grace 0s``) whose settle time is ``sleep``: the race happens there."""
    root = store.root if isinstance(store, Store) else store

    async def go() -> Report:
        backend = open_backend(root, storage_options)
        try:
            timings = Timings()
            inventory, manifests = await survey(backend, timings=timings, cache=manifest_cache)
            return await sweep_live(
                backend,
                inventory,
                manifests,
                options=Options(delete_untagged=True, grace=ZERO),
                removals=Removals(),
                policy=None,
                now=None,
                timings=timings,
                progress=None,
                cache=cache or NoCache(),
                settle=ZERO,
                sleep=sleep,
            )
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_an_index_pushed_over_removed_manifests_gets_their_revisions_back(store: Store) -> None:
    """The registry checks an index's children when it is pushed, then writes the index."""
    b, d = scene()
    store.write(b)
    children = [d["old1"], d["old2"]]

    async def push_index(_: float) -> None:
        entries = [
            {"mediaType": OCI_MANIFEST, "digest": c, "size": len(b.files[blob(c)])}
            for c in children
        ]
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        digest = sha256(data.encode())
        write(store, blob(digest), data.encode())
        retag(store, "app", "multi", digest)

    report = _live_with_sleep(store, push_index)
    figures = report.live
    assert figures is not None
    for c in children:
        assert str(c) in figures.restored_blobs
        assert rev("app", c) in figures.restored_links
    assert figures.verified
    pulls(store, ("app", "latest", d["new"]))


def test_a_push_before_the_second_listing_is_not_removed_at_all(store: Store) -> None:
    """Garbage at the first listing and in use at the second is dropped from the removal."""
    b, d = scene()
    store.write(b)
    backend = Racing(open_store(store), lambda: retag(store, "app", "old", d["old1"]), nth=2)
    report = live(store, backend)
    assert backend.raced
    figures = report.live
    assert figures is not None
    assert figures.dropped > 0  # garbage at the first listing, in use at the second
    assert figures.restored_blobs == []
    assert figures.restored_links == []
    moved = {p.split("/", 3)[3] for p in quarantined(store.files())}
    assert not moved & {blob(d["old1"]), *(blob(x) for x in b.contents[d["old1"]]["blobs"])}
    pulls(store, ("app", "old", d["old1"]), ("app", "latest", d["new"]))


def test_a_push_as_links_go_gets_them_back_from_this_runs_journal(store: Store) -> None:
    """A push as the run deletes links: the run's own journal and quarantine heal it."""
    b, d = scene()
    store.write(b)
    backend = Racing(
        open_store(store), lambda: retag(store, "app", "old", d["old2"]), on_delete=True
    )
    report = live(store, backend)
    assert backend.raced
    figures = report.live
    assert figures is not None
    layers = set(b.contents[d["old2"]]["blobs"]) - {d["base"]}
    assert {lnk("app", x) for x in layers} <= set(figures.restored_links)
    assert {str(x) for x in layers} <= set(figures.restored_blobs)
    assert figures.verified
    pulls(store, ("app", "old", d["old2"]), ("app", "latest", d["new"]))


def test_the_next_run_heals_what_a_held_run_left_broken(disk: Store) -> None:
    """A push racing a run whose verification missed it is healed by the next run."""
    b, d = scene()
    disk.write(b)
    first = live(disk, cache=InMemoryCache("config.yml"))
    assert first.live is not None
    assert first.live.held
    assert "inmemory" in first.live.held
    held = quarantined(disk.files())
    assert held
    assert first.live.quarantine_blobs == first.live.moved_blobs
    # after the run: a push the registry's memory cache let through
    retag(disk, "app", "late", d["old1"])
    assert not check(disk.root).ok
    second = live(disk, cache=InMemoryCache("config.yml"))
    assert second.live is not None
    assert str(d["old1"]) in second.live.restored_blobs
    pulls(disk, ("app", "late", d["old1"]), ("app", "latest", d["new"]))
    # held: nothing purged, even with a grace of 0
    assert second.live.purged_blobs == 0
    listing = list_quarantine(disk.root)
    assert len(listing.runs) == 1  # the second run found nothing more to move
    assert listing.runs[0].verified_at is not None
    assert listing.blobs == second.live.quarantine_blobs


def test_purge_restores_first_then_deletes_what_is_verified_long_enough(disk: Store) -> None:
    """``quarantine purge`` restores what a live manifest needs before deleting a run."""
    b, d = scene()
    disk.write(b)
    live(disk, cache=None)
    retag(disk, "app", "late", d["old2"])
    dry = purge_quarantine(disk.root, older_than=ZERO, dry_run=True)
    assert dry.purged == ()  # the run holds a blob a live manifest needs
    assert quarantined(disk.files())
    purged = purge_quarantine(disk.root, older_than=ZERO)
    assert str(d["old2"]) in purged.restored_blobs
    assert len(purged.purged) == 1
    assert purged.exit_code == 0
    assert quarantined(disk.files()) == set()
    pulls(disk, ("app", "late", d["old2"]), ("app", "latest", d["new"]))
    assert "purged" in purged.render()


def test_purge_keeps_runs_verified_recently(disk: Store) -> None:
    """A run verified less than ``older_than`` ago stays."""
    b, _ = scene()
    disk.write(b)
    live(disk, cache=None)
    kept = purge_quarantine(disk.root, older_than=datetime.timedelta(hours=1))
    assert kept.purged == ()
    assert len(kept.kept) == 1
    assert quarantined(disk.files())


def test_the_grace_period_runs_from_the_verification(
    disk: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine is purged a grace period after a verification covered it, not before."""
    b, _ = scene()
    disk.write(b)
    hour = datetime.timedelta(hours=1)
    first = live(disk, grace=hour)
    assert first.live is not None
    assert first.live.moved_blobs > 0
    assert first.live.purged_blobs == 0  # verified just now: not an hour ago
    second = live(disk, grace=hour)
    assert second.live is not None
    assert second.live.purged_blobs == 0
    later = datetime.datetime.now(UTC) + 2 * hour
    monkeypatch.setattr(live_module, "_now", lambda: later)
    third = live(disk, grace=hour)
    assert third.live is not None
    assert third.live.purged_blobs == first.live.moved_blobs
    assert quarantined(disk.files()) == set()


def test_restore_puts_a_blob_and_its_links_back(disk: Store) -> None:
    """``quarantine restore``: the blob, and the journaled links naming it, with their content."""
    b, d = scene()
    disk.write(b)
    live(disk, cache=None)
    layer = next(x for x in b.contents[d["old1"]]["blobs"] if x != d["base"])
    assert blob(layer) not in disk.files()
    restored = restore_quarantined(disk.root, [str(layer)])
    assert restored.restored == (str(layer),)
    assert lnk("app", layer) in restored.links
    files = disk.files()
    assert blob(layer) in files
    assert lnk("app", layer) in files
    assert (disk.dir / lnk("app", layer)).read_text() == str(layer)
    again = restore_quarantined(disk.root, [str(layer)])
    assert again.restored == ()
    assert again.present == ()
    with pytest.raises(NotFoundError, match="not in the quarantine"):
        restore_quarantined(disk.root, ["sha256:" + "0" * 64])


def test_live_mode_is_refused_without_moves(tmp_path: Path) -> None:
    """A backend that cannot move and write is refused before anything is deleted."""
    b, _ = scene()
    backend = DictBackend()
    for path, data in b.files.items():
        backend.put(path, data)
    before = dict(backend.objects)
    with pytest.raises(RefusedError, match="live mode needs a storage backend that can move"):
        collect(backend, live=True, delete_untagged=True, grace=ZERO, cache=NoCache())
    assert backend.objects == before


# -- faults -----------------------------------------------------------------------------------


def _calls_of_a_clean_run(store: Store) -> int:
    b, _ = scene()
    store.write(b)
    counting = FaultyBackend(open_store(store))
    live(store, counting)
    store.cleanup()
    return len(counting.calls)


def accepted(store: Store, b: RegistryBuilder, repo: str, digest: Digest) -> bool:
    """Whether the registry would accept ``PUT`` of manifest ``digest`` to ``repo`` now.

    Its check, for an image: every blob the manifest names is linked into the
    repository and its data is present (the manifest's own bytes come with the PUT).
    """
    files = store.files()
    return all(blob(x) in files and lnk(repo, x) in files for x in b.contents[digest]["blobs"])


def test_an_interruption_at_any_call_loses_nothing(store: Store, tmp_path: Path) -> None:
    """Interrupt a live run at every storage call; push; the next run converges, losing nothing.

    The next run ends where an offline run ends (with the push, if the
    registry would have accepted it), with an empty quarantine.
    """
    calls = _calls_of_a_clean_run(Store(store.kind, tmp_path / "count"))
    assert calls > 10
    b, d = scene()
    revived, _ = scene()
    revived.tag("app", "old", d["old1"])
    expected = {
        True: offline_end_state(tmp_path, revived, store.kind),
        False: offline_end_state(tmp_path, b, store.kind),
    }
    outcomes = set()
    for at in range(1, calls + 1):
        one = Store(store.kind, tmp_path / f"at{at}")
        one.write(b)
        faulty = FaultyBackend(open_store(one), interrupt_at=at)
        with pytest.raises(KeyboardInterrupt):
            live(one, faulty)
        # a push between the runs, acknowledged only if the registry would accept it
        pushed = accepted(one, b, "app", d["old1"])
        outcomes.add(pushed)
        if pushed:
            retag(one, "app", "old", d["old1"])
        report = live(one)
        assert report.ok, (at, report.render())
        files = one.files()
        # A tag's history entry (index/…) of a revision the interrupted run removed is not
        # written back when a push revives the revision: history, not needed to pull.
        want = expected[pushed]
        history = {p for p in want - v2(files) if "/_manifests/tags/latest/index/" in p}
        call = faulty.calls[-1]
        assert v2(files) == want - history, (
            f"interrupted at call {at} ({call.kind} #{call.number}, {len(call.paths)} paths); "
            f"the next run: {report.render(verbose=True)}"
        )
        assert quarantined(files) == set(), at
        pulls(one, ("app", "latest", d["new"]))
        if pushed:
            pulls(one, ("app", "old", d["old1"]))
        one.cleanup()
    assert outcomes == {True, False}  # the push raced both before and after the removal


def test_a_failed_restore_is_reported_and_nothing_is_purged(disk: Store) -> None:
    """A restore that fails fails the run: not verified, nothing purged, healed next time."""
    b, d = scene()
    disk.write(b)
    live(disk, cache=None)  # held: the quarantine keeps every moved blob
    retag(disk, "app", "late", d["old1"])
    faulty = FaultyBackend(open_store(disk), fail_keys=lambda p: p.startswith(QUARANTINE_PREFIX))
    report = live(disk, faulty)
    figures = report.live
    assert figures is not None
    assert figures.restore_failures
    assert not figures.verified
    assert not report.ok
    assert report.exit_code == 1
    assert figures.purged_blobs == 0
    assert "FAILED to restore" in report.render()
    assert quarantined(disk.files())  # still there: the next run can restore it
    healed = live(disk)
    assert healed.live is not None
    assert str(d["old1"]) in healed.live.restored_blobs
    pulls(disk, ("app", "late", d["old1"]))


def test_a_failed_move_keeps_the_blob_and_skips_later_phases(disk: Store) -> None:
    """A blob that cannot be moved stays in place, and the run is not verified."""
    b, d = scene()
    disk.write(b)
    victim = next(x for x in b.contents[d["old1"]]["blobs"] if x != d["base"])
    faulty = FaultyBackend(open_store(disk), fail_keys=lambda p: p == blob(victim))
    report = live(disk, faulty)
    assert not report.ok
    assert blob(victim) in disk.files()
    assert report.live is not None
    assert not report.live.verified
    assert report.live.purged_blobs == 0
    pulls(disk, ("app", "latest", d["new"]))


def test_a_failed_journal_write_deletes_nothing(disk: Store) -> None:
    """Without its journal written, a run deletes no link (and moves no blob)."""
    b, _ = scene()
    disk.write(b)
    before = disk.files()
    faulty = FaultyBackend(open_store(disk), fail_write_at=1)
    with pytest.raises(InjectedFaultError):
        live(disk, faulty)
    assert v2(disk.files()) == v2(before)


# -- the registry's cache ---------------------------------------------------------------------


def test_redis_entries_of_what_moved_are_forgotten_twice(disk: Store, redis_db: Any) -> None:
    """The redis cache forgets moved blobs and removed links (twice), and keeps the rest."""
    b, d = scene()
    disk.write(b)
    client = redis_db.client(0)
    old_layers = [x for x in b.contents[d["old1"]]["blobs"] if x != d["base"]]
    kept = b.contents[d["new"]]["blobs"]
    for x in [*old_layers, *kept]:
        set_descriptor(client, x, 10, "app")
    report = live(disk, cache=RedisDescriptorCache.from_url(redis_db.url(0)))
    figures = report.live
    assert figures is not None
    assert figures.cache == "redis"
    assert len(figures.forgotten) == 2
    assert figures.forgotten[0].blob_entries >= len(old_layers)
    for x in old_layers:
        assert not cached_stat(client, x)
        assert not cached_stat(client, x, "app")
    for x in kept:
        assert cached_stat(client, x, "app")
    assert figures.held is None
    assert figures.purged_blobs == figures.moved_blobs


# -- S3 ---------------------------------------------------------------------------------------


@pytest.mark.s3
def test_live_on_s3_heals_a_push_during_the_settle_time(s3_server: Any, s3_bucket: str) -> None:
    """On S3 (SeaweedFS): moves are copies then deletes; a raced push is healed all the same."""
    b, d = scene()
    client = s3_server.client()
    for path, data in b.files.items():
        client.put_object(Bucket=s3_bucket, Key=f"reg/{path}", Body=data)
    url = f"s3://{s3_bucket}/reg"
    options = s3_server.storage_options()

    def keys() -> set[str]:
        out: set[str] = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket):
            out.update(o["Key"][4:] for o in page.get("Contents", []))
        return out

    async def push_while_settling(_: float) -> None:
        for path in (idx("app", "old", d["old1"]), cur("app", "old"), rev("app", d["old1"])):
            client.put_object(Bucket=s3_bucket, Key=f"reg/{path}", Body=str(d["old1"]).encode())

    report = _live_with_sleep(url, push_while_settling, storage_options=options)
    figures = report.live
    assert figures is not None
    assert figures.verified
    assert str(d["old1"]) in figures.restored_blobs
    result = check(url, storage_options=options)
    assert result.ok, [p.message for p in result.problems]
    files = keys()
    assert blob(d["old1"]) in files
    assert quarantined(files) == set()  # grace 0, verified: purged in the same run
    for x in b.contents[d["old2"]]["blobs"]:
        if x not in b.contents[d["new"]]["blobs"] and x not in b.contents[d["old1"]]["blobs"]:
            assert blob(x) not in files


@pytest.mark.s3
def test_live_on_s3_aborts_the_multipart_uploads_of_stale_uploads(
    s3_server: Any, s3_bucket: str
) -> None:
    """The second look lists no multipart uploads: the first look's are aborted all the same."""
    b, _ = scene()
    client = s3_server.client()
    for path, data in b.files.items():
        client.put_object(Bucket=s3_bucket, Key=f"reg/{path}", Body=data)
    upload = "docker/registry/v2/repositories/app/_uploads/0b9d1c6e-0000-4000-8000-000000000001"
    client.put_object(Bucket=s3_bucket, Key=f"reg/{upload}/startedat", Body=b"2026-01-01T00:00:00Z")
    client.create_multipart_upload(Bucket=s3_bucket, Key=f"reg/{upload}/data")
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    report = collect(
        f"s3://{s3_bucket}/reg",
        storage_options=s3_server.storage_options(),
        live=True,
        delete_untagged=True,
        grace=ZERO,
        uploads_older_than=ZERO,
        cache=NoCache(),
        settle=ZERO,
    )
    assert report.ok
    assert report.live is not None
    assert report.live.verified
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
