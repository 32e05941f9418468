"""Scale property test: big generated registries, collected several times as they change.

Where ``tests/test_property.py`` collects one small random registry once, this test
grows a larger one — many repositories with nested names, layers shared and mounted
across repositories, indexes nested three deep, referrer chains, moved and removed
tags, manifests deleted by digest, uploads — on ``memory://`` with a simulated clock,
and runs the collector after each of several rounds of changes, with time passing in
between (objects cross the grace boundary from one round to the next) and with or
without ``delete_untagged`` per round. After every run an oracle written here from
DESIGN §4 (it shares no code with ``registry_gc.mark``) says what must survive and
what must be gone; a second run at the same time must find nothing to do.
"""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import RefusedError, collect
from registry_gc.layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    classify,
    parse_blob_path,
)

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from collections.abc import Iterable

    from registry_gc import Report

UTC = datetime.timezone.utc
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
GRACE = HOUR
UPLOADS = 24 * HOUR
T0 = 1.9e9  # the simulated clock starts here (seconds since the epoch)

REPOS = ["a", "a/b", "a/b/c", "lib/x", "lib/x/y", "team-1/app", "team-1/app/tools", "z"]
TAGS = ["latest", "v1", "v2", "stable"]
#: Ages around the grace period (never exactly on it).
AGES = [10 * DAY, 3 * HOUR, HOUR + 90, HOUR - 90, 5 * MINUTE]
#: Time passing between rounds.
ADVANCES = [0.0, 17 * MINUTE, 2 * HOUR + 7, 2 * DAY]

repos = st.sampled_from(REPOS)
tags = st.none() | st.sampled_from(TAGS)
ages = st.sampled_from(AGES)
picks = st.integers(0, 10**6)

OPS = st.one_of(
    st.tuples(st.just("image"), repos, tags, ages, st.sampled_from(["oci", "docker"]), picks),
    st.tuples(st.just("multiarch"), repos, tags, ages, st.integers(1, 3)),
    st.tuples(st.just("nested"), repos, tags, ages, st.integers(2, 3)),
    st.tuples(st.just("referrers"), picks, st.integers(1, 3), tags, ages),
    st.tuples(st.just("move"), st.sampled_from(TAGS), picks, ages),
    st.tuples(st.just("untag"), picks, st.sampled_from(TAGS)),
    st.tuples(st.just("delete"), picks),
    st.tuples(st.just("mount"), picks, repos, ages),
    st.tuples(st.just("orphan-blob"), ages),
    st.tuples(st.just("orphan-link"), repos, ages),
    st.tuples(st.just("upload"), repos, ages),
)
ROUND = st.tuples(
    st.lists(OPS, min_size=4, max_size=18),
    st.sampled_from(ADVANCES),
    st.booleans(),  # delete_untagged
)


class TimedBuilder(RegistryBuilder):
    """A builder that stamps every file with an absolute time from a simulated clock."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.clock = T0
        #: path → modification time (seconds since the epoch)
        self.mtimes: dict[str, float] = {}
        #: paths written since the store was last synced
        self.dirty: set[str] = set()

    def put(self, path: str, data: bytes, age: float | None = None) -> None:
        """Write one file, stamped ``clock - age``."""
        super().put(path, data, age)
        self.mtimes[path] = self.clock - self.ages[path]
        self.dirty.add(path)

    def remove(self, path: str) -> None:
        """Remove one file."""
        super().remove(path)
        self.mtimes.pop(path, None)


class World:
    """The registry being grown, and what the test knows about it."""

    def __init__(self, seed: int) -> None:
        self.b = TimedBuilder(seed)
        #: every manifest ever built: (repository, digest)
        self.manifests: list[tuple[str, Digest]] = []
        #: referrer → subject
        self.subject: dict[Digest, Digest] = {}
        #: layer blobs available for sharing, and the bytes to upload them again
        self.layers: list[Digest] = []
        self.data: dict[Digest, bytes] = {}

    # -- what exists now ---------------------------------------------------------------

    def present(self, repo: str, d: Digest) -> bool:
        """Whether ``repo@d`` can be referred to: revision link and blob are there."""
        r = Repository._trusted(repo)
        return RevisionLink(r, d).path in self.b.files and BlobData(d).path in self.b.files

    def existing(self) -> list[tuple[str, Digest]]:
        """Manifests that exist now, in build order, each once."""
        return [m for m in dict.fromkeys(self.manifests) if self.present(*m)]

    def record(self, repo: str, d: Digest) -> None:
        """Remember a manifest built in ``repo`` (and, for images, its layers)."""
        self.manifests.append((repo, d))
        for x in self.b.contents[d]["blobs"][1:]:
            self.layers.append(x)
            self.data.setdefault(x, self.b.files[BlobData(x).path])

    def ensure_blob(self, d: Digest, age: float) -> None:
        """Upload ``d`` again if a run deleted it (what a client does when HEAD says 404)."""
        if BlobData(d).path not in self.b.files:
            self.b.put(BlobData(d).path, self.data[d], age)

    # -- operations ----------------------------------------------------------------------

    def apply(self, op: tuple[Any, ...]) -> None:
        """Build one operation."""
        b, kind = self.b, op[0]
        if kind == "image":
            _, repo, tag, age, flavour, pick = op
            shared = []
            if self.layers and pick % 3:
                shared = [self.layers[(pick + i * 7) % len(self.layers)] for i in range(pick % 3)]
                for x in shared:
                    self.ensure_blob(x, age)
            d = b.image(repo, tag, kind=flavour, shared=list(dict.fromkeys(shared)), age=age)
            self.record(repo, d)
        elif kind == "multiarch":
            _, repo, tag, age, arches = op
            d = b.multiarch(repo, tag, arches=arches, age=age)
            for child in b.contents[d]["children"]:
                self.record(repo, child)
            self.record(repo, d)
        elif kind == "nested":
            _, repo, tag, age, depth = op
            level = b.multiarch(repo, None, arches=2, age=age)
            for child in b.contents[level]["children"]:
                self.record(repo, child)
            self.record(repo, level)
            for i in range(depth - 1):
                leaf = b.image(repo, None, age=age)
                self.record(repo, leaf)
                level = b.index(repo, tag if i == depth - 2 else None, [level, leaf], age=age)
                self.record(repo, level)
        elif kind == "referrers":
            _, pick, length, tag, age = op
            candidates = self.existing()
            if not candidates:
                return
            repo, subject = candidates[pick % len(candidates)]
            for i in range(length):
                r = b.referrer(repo, subject, tag=tag if i == length - 1 else None, age=age)
                self.subject[r] = subject
                self.record(repo, r)
                subject = r
        elif kind == "move":
            _, tag, pick, age = op
            candidates = self.existing()
            if candidates:
                repo, target = candidates[pick % len(candidates)]
                b.tag(repo, tag, target, age)
        elif kind == "untag":
            _, pick, tag = op
            b.untag(REPOS[pick % len(REPOS)], tag)
        elif kind == "delete":
            candidates = self.existing()
            if candidates:
                b.delete_revision(*candidates[op[1] % len(candidates)])
        elif kind == "mount":
            _, pick, repo, age = op
            if self.layers:
                x = self.layers[pick % len(self.layers)]
                if BlobData(x).path in b.files:
                    b.link_layer(repo, x, age)
        elif kind == "orphan-blob":
            b.blob(b.random_bytes(48), age=op[1])
        elif kind == "orphan-link":
            _, repo, age = op
            b.layer(repo, age=age)
        else:
            _, repo, age = op
            b.upload(repo, age=age)


# -- the oracle ------------------------------------------------------------------------------------


class Oracle:
    """What must survive a run at ``now``, from the files, their times and the build records."""

    def __init__(self, world: World, *, now: float, delete_untagged: bool) -> None:
        b = world.b
        self.cutoff = now - GRACE
        self.files = set(b.files)
        self.young = {p for p in b.files if b.mtimes[p] > self.cutoff}
        self.contents = b.contents
        revisions: dict[str, set[Digest]] = {}
        self.tags: dict[tuple[str, str], Digest] = {}
        young_link_targets: set[Digest] = set()
        for path in b.files:
            key = classify(path)
            if isinstance(key, RevisionLink):
                revisions.setdefault(key.repository, set()).add(key.digest)
            elif isinstance(key, TagCurrentLink):
                self.tags[key.repository, key.tag] = Digest(b.files[path].decode())
            elif isinstance(key, LayerLink) and path in self.young:
                young_link_targets.add(key.digest)
        self.revisions = revisions
        self.live: dict[str, set[Digest]] = {}
        self.needed: dict[str, set[Digest]] = {}
        self.live_blobs = set(young_link_targets)
        for repo in set(revisions) | {r for r, _ in self.tags}:
            revs = revisions.get(repo, set())
            roots = {d for (r, _), d in self.tags.items() if r == repo}
            roots |= {d for d in revs if RevisionLink(Repository(repo), d).path in self.young}
            if not delete_untagged:
                roots |= {d for d in revs if BlobData(d).path in self.files}
            live = self._closure(roots, revs, world.subject)
            self.live[repo] = live
            self.needed[repo] = {x for d in live for x in self.contents[d]["blobs"]}
            self.live_blobs |= live | self.needed[repo]

    def _closure(
        self, roots: Iterable[Digest], revisions: set[Digest], subject: dict[Digest, Digest]
    ) -> set[Digest]:
        """Roots, index children (any depth), and referrers of anything live, to a fixed point."""
        live: set[Digest] = set()
        todo = list(roots)
        while todo:
            d = todo.pop()
            if d in live:
                continue
            live.add(d)
            todo.extend(self.contents.get(d, {}).get("children", ()))
            todo.extend(r for r in revisions if subject.get(r) == d)
        return live

    def problems(self, after: set[str], mtimes: dict[str, float]) -> list[str]:
        """Everything the run got wrong, as messages."""
        out: list[str] = []
        for path in self.files:
            present, young = path in after, path in self.young
            key = classify(path)
            digest = parse_blob_path(path)
            if young and not present:
                out.append(f"young {path} was deleted")
            elif digest is not None:
                live = digest in self.live_blobs
                if live and not present:
                    out.append(f"live blob {path} was deleted")
                elif not live and not young and present:
                    out.append(f"old unreferenced blob {path} survived")
            elif isinstance(key, RevisionLink):
                live = key.digest in self.live.get(key.repository, set())
                if live and not present:
                    out.append(f"live revision {path} was deleted")
                elif not live and not young and present:
                    out.append(f"old dead revision {path} survived")
            elif isinstance(key, LayerLink):
                needed = key.digest in self.needed.get(key.repository, set())
                if needed and not present:
                    out.append(f"needed layer link {path} was deleted")
                elif not needed and not young and present:
                    out.append(f"old unneeded layer link {path} survived")
            elif isinstance(key, TagCurrentLink) and not present:
                out.append(f"tag current link {path} was deleted")
            elif isinstance(key, TagIndexLink):
                kept = RevisionLink(key.repository, key.digest).path in after
                if kept and not present:
                    out.append(f"history {path} of a kept revision was deleted")
                elif not kept and not young and present:
                    out.append(f"stale history {path} survived")
        out.extend(self._uploads(after, mtimes))
        for (repo, tag), d in self.tags.items():
            out.extend(f"{repo}:{tag} cannot be pulled: {p}" for p in self._pull(after, repo, d))
        return out

    def _uploads(self, after: set[str], mtimes: dict[str, float]) -> list[str]:
        uploads: dict[tuple[str, str], list[str]] = {}
        for path in self.files:
            key = classify(path)
            if isinstance(key, UploadFile):
                uploads.setdefault((key.repository, key.upload), []).append(path)
        out = []
        for (repo, uid), paths in uploads.items():
            started = mtimes[next(p for p in paths if p.endswith("/startedat"))]
            stale = started <= self.cutoff + GRACE - UPLOADS and all(
                p not in self.young for p in paths
            )
            gone = [p for p in paths if p not in after]
            if stale and len(gone) != len(paths):
                out.append(f"stale upload {repo}/{uid} survived")
            if not stale and gone:
                out.append(f"upload {repo}/{uid} in use lost {gone}")
        return out

    def _pull(self, after: set[str], repo: str, d: Digest) -> list[str]:
        """What a pull of ``repo@d`` needs that the run deleted (a push may have left holes)."""
        r = Repository(repo)
        needs = [BlobData(d).path, RevisionLink(r, d).path]
        for x in self.contents[d]["blobs"]:
            needs += [BlobData(x).path, LayerLink(r, x).path]
        lost = [p for p in needs if p in self.files and p not in after]
        for child in self.contents[d]["children"]:
            lost.extend(self._pull(after, repo, child))
        return lost


# -- the store -------------------------------------------------------------------------------------


class MemoryStore:
    """The world's files on memory://, with the builder's modification times."""

    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory")
        self.root = f"/rgc-scale-{uuid.uuid4().hex}"

    def sync(self, b: TimedBuilder) -> None:
        """Make the store hold exactly the builder's files (new, rewritten, removed)."""
        for path in self.files() - set(b.files):
            self.fs.rm_file(f"{self.root}/{path}")
        for path in b.dirty & set(b.files):
            full = f"{self.root}/{path}"
            self.fs.pipe_file(full, b.files[path])
            f = self.fs.store[full]
            f.created = f.modified = datetime.datetime.fromtimestamp(b.mtimes[path], UTC)
        b.dirty.clear()

    def files(self) -> set[str]:
        """Every path in the store."""
        if not self.fs.exists(self.root):
            return set()
        return {p[len(self.root) + 1 :] for p in self.fs.find(self.root)}

    def cleanup(self) -> None:
        """Remove the tree."""
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)


def run_or_refused(url: str, files: set[str], **kw: Any) -> Report | None:
    """Collect; ``None`` when the store has blobs but no manifest, which must be refused."""
    manifests = any(isinstance(classify(p), (RevisionLink, TagCurrentLink)) for p in files)
    if not manifests and any(parse_blob_path(p) is not None for p in files):
        with pytest.raises(RefusedError, match="nothing was deleted") as info:
            collect(url, allow_empty=True, **kw)
        assert "not a single manifest" in info.value.problems[0]
        return None
    return collect(url, allow_empty=True, **kw)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    first=st.lists(OPS, min_size=20, max_size=40),
    rounds=st.lists(ROUND, min_size=2, max_size=3),
)
def test_rounds_of_changes_and_runs_match_the_oracle(
    seed: int, first: list[tuple[Any, ...]], rounds: list[tuple[Any, ...]]
) -> None:
    """After every round of pushes, untags, deletes and time passing, a run matches the oracle."""
    world = World(seed)
    store = MemoryStore()
    url = "memory://" + store.root
    try:
        for op in first:
            world.apply(op)
        for ops, advance, delete_untagged in [([], 0.0, False), *rounds]:
            world.b.clock += advance
            for op in ops:
                world.apply(op)
            store.sync(world.b)
            now = datetime.datetime.fromtimestamp(world.b.clock, UTC)
            oracle = Oracle(world, now=world.b.clock, delete_untagged=delete_untagged)
            kw: dict[str, Any] = {"delete_untagged": delete_untagged, "now": now}
            report = run_or_refused(url, set(world.b.files), **kw)
            if report is None:
                assert store.files() == set(world.b.files), "a refused run deletes nothing"
                continue
            assert report.ok
            after = store.files()
            problems = oracle.problems(after, world.b.mtimes)
            assert not problems, "\n".join(sorted(problems)[:20])
            assert {p for d in report.plan.deletions for p in d.paths} == set(world.b.files) - after
            again = run_or_refused(url, after, **kw)
            assert again is None or again.plan.deletions == [], "a second run has nothing to do"
            for path in set(world.b.files) - after:
                world.b.remove(path)
    finally:
        store.cleanup()


def test_the_generated_registries_are_big_and_varied() -> None:
    """A fixed example exercises the scale the property claims (so the strategies are sane)."""
    world = World(1)
    for i in range(40):
        repo, tag = REPOS[i % len(REPOS)], TAGS[i % len(TAGS)]
        world.apply(("image", repo, tag, AGES[i % len(AGES)], "oci", i))
        world.apply(("nested", repo, None, AGES[0], 3))
        world.apply(("referrers", i * 13, 3, None, AGES[0]))
        world.apply(("mount", i * 5, REPOS[(i + 3) % len(REPOS)], AGES[1]))
    files = world.b.files
    repos_seen = {k.repository for p in files if isinstance(k := classify(p), RevisionLink)}
    assert repos_seen == set(REPOS)
    assert len(files) > 1500
    depth3 = [
        d
        for d, c in world.b.contents.items()
        if any(world.b.contents[x]["children"] for x in c["children"])
    ]
    assert depth3, "indexes of indexes"
    chains = [r for r, s in world.subject.items() if s in world.subject]
    assert chains, "referrers of referrers"
    shared = {x for p in files if isinstance(k := classify(p), LayerLink) for x in [k.digest]}
    linked_twice = [x for x in shared if sum(p.endswith(f"{x.hex}/link") for p in files) > 1]
    assert linked_twice, "layers linked into several repositories"
    oracle = Oracle(world, now=world.b.clock, delete_untagged=True)
    assert set(oracle.live) == set(REPOS)
    assert oracle.live_blobs < {d for p in files if (d := parse_blob_path(p)) is not None}
