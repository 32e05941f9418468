"""Property test: random registries, an independent oracle of what is live, and collect().

The oracle below is written from DESIGN §4 alone (it does not use mark.py): roots
are the tags' current manifests, every revision without ``delete_untagged``, and
anything written within the grace period; the live set is closed over index
children and over referrers (a manifest whose subject is live), per repository;
blobs are live globally.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import RefusedError, collect
from registry_gc.layout import (
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    UploadFile,
    blob_path,
    classify,
    parse_blob_path,
)

from tests.rigs.builder import RegistryBuilder

GRACE = timedelta(hours=1)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
AGES = [10 * DAY, 2 * HOUR, 5 * MINUTE]  # old, old (just past the grace), young
REPOS = ["a", "a/b", "c/d/e"]
TAGS = ["latest", "v1", "v2"]

repos = st.sampled_from(REPOS)
ages = st.sampled_from(AGES)
tags = st.none() | st.sampled_from(TAGS)
picks = st.integers(min_value=0, max_value=10**6)

OPS = st.one_of(
    st.tuples(st.just("image"), repos, tags, ages, st.sampled_from(["oci", "docker"]), picks),
    st.tuples(st.just("multiarch"), repos, tags, ages, st.integers(1, 3)),
    st.tuples(st.just("nested"), repos, tags, ages),
    st.tuples(st.just("referrer"), tags, ages, picks),
    st.tuples(st.just("move"), st.sampled_from(TAGS), ages, picks),
    st.tuples(st.just("upload"), repos, ages, st.booleans()),
    st.tuples(st.just("orphan-blob"), ages),
    st.tuples(st.just("orphan-link"), repos, ages),
)


class World:
    """A builder plus what the test knows about what it built."""

    def __init__(self, seed: int) -> None:
        self.b = RegistryBuilder(seed)
        #: repo -> manifests built in it, in order
        self.manifests: dict[str, list[Digest]] = {r: [] for r in REPOS}
        #: every manifest built, with its repository
        self.everything: list[tuple[str, Digest]] = []
        #: referrer -> its subject
        self.subject: dict[Digest, Digest] = {}
        #: layers available for sharing
        self.layers: list[Digest] = []

    def apply(self, op: tuple[Any, ...]) -> None:
        """Build one operation."""
        self._apply(op)
        self.everything = [(r, d) for r in REPOS for d in self.manifests[r]]

    def _apply(self, op: tuple[Any, ...]) -> None:
        b = self.b
        kind = op[0]
        if kind == "image":
            _, repo, tag, age, flavour, pick = op
            shared = [self.layers[pick % len(self.layers)]] if self.layers and pick % 2 else []
            d = b.image(repo, tag, kind=flavour, shared=shared, age=age, layers=1 + pick % 2)
            self.layers.extend(b.contents[d]["blobs"][1:])
            self.manifests[repo].append(d)
        elif kind == "multiarch":
            _, repo, tag, age, arches = op
            d = b.multiarch(repo, tag, arches=arches, age=age)
            self.manifests[repo].extend([*b.contents[d]["children"], d])
        elif kind == "nested":
            _, repo, tag, age = op
            inner = b.multiarch(repo, None, arches=2, age=age)
            leaf = b.image(repo, None, age=age)
            d = b.index(repo, tag, [inner, leaf], age=age)
            self.manifests[repo].extend([*b.contents[inner]["children"], inner, leaf, d])
        elif kind == "referrer":  # of any manifest built so far, in its repository
            _, tag, age, pick = op
            if not self.everything:
                return
            repo, subject = self.everything[pick % len(self.everything)]
            d = b.referrer(repo, subject, tag=tag, age=age)
            self.subject[d] = subject
            self.manifests[repo].append(d)
        elif kind == "move":  # point a tag at any manifest built so far
            _, tag, age, pick = op
            if self.everything:
                repo, target = self.everything[pick % len(self.everything)]
                b.tag(repo, tag, target, age)
        elif kind == "upload":
            _, repo, age, active = op
            uid = b.upload(repo, age=age)
            if active:
                b.age(UploadFile(Repository(repo), uid, "hashstates/sha256/0").path, MINUTE)
        elif kind == "orphan-blob":
            b.blob(b.random_bytes(64), age=op[1])
        else:
            _, repo, age = op
            b.layer(repo, age=age)


class Oracle:
    """What must survive, computed from the files and the builder's records alone."""

    def __init__(self, world: World, *, delete_untagged: bool) -> None:
        b = world.b
        self.files = dict(b.files)
        self.ages = {p: b.ages[p] for p in b.files}
        self.young = {p for p, age in self.ages.items() if age < GRACE.total_seconds()}
        self.contents = b.contents
        self.revisions: dict[str, set[Digest]] = {}
        self.layer_links: dict[str, set[Digest]] = {}
        self.tags: dict[str, dict[str, Digest]] = {}
        young_targets: set[Digest] = set()
        for path in self.files:
            key = classify(path)
            if isinstance(key, RevisionLink):
                self.revisions.setdefault(key.repository, set()).add(key.digest)
            elif isinstance(key, LayerLink):
                self.layer_links.setdefault(key.repository, set()).add(key.digest)
                if path in self.young:
                    young_targets.add(key.digest)
            elif isinstance(key, TagCurrentLink):
                self.tags.setdefault(key.repository, {})[key.tag] = Digest(
                    self.files[path].decode()
                )
        self.live: dict[str, set[Digest]] = {}
        self.needed: dict[str, set[Digest]] = {}
        self.live_blobs: set[Digest] = set(young_targets)
        for repo in set(self.revisions) | set(self.tags):
            revisions = self.revisions.get(repo, set())
            roots = set(self.tags.get(repo, {}).values())
            roots |= {d for d in revisions if self.rev_path(repo, d) in self.young}
            if not delete_untagged:
                roots |= revisions
            live = self.closure(roots, revisions, world.subject)
            self.live[repo] = live
            self.needed[repo] = {x for d in live for x in self.contents[d]["blobs"]}
            self.live_blobs |= live | self.needed[repo]

    @staticmethod
    def rev_path(repo: str, d: Digest) -> str:
        """The revision link path."""
        return RevisionLink(Repository._trusted(repo), d).path

    def closure(
        self, roots: set[Digest], revisions: set[Digest], subject: dict[Digest, Digest]
    ) -> set[Digest]:
        """Roots, their index children, and referrers of anything live, to a fixed point."""
        live = set(roots)
        changed = True
        while changed:
            changed = False
            for d in list(live):
                for child in self.contents[d]["children"]:
                    if child not in live:
                        live.add(child)
                        changed = True
            for r in revisions:
                if r not in live and subject.get(r) in live:
                    live.add(r)
                    changed = True
        return live


def pullable(after: set[str], contents: dict[Digest, Any], repo: str, d: Digest) -> list[str]:
    """What is missing for ``repo@d`` to pull: manifest, revision, children, config, layers."""
    r = Repository._trusted(repo)
    missing = [p for p in (blob_path(d), RevisionLink(r, d).path) if p not in after]
    for x in contents[d]["blobs"]:
        missing.extend(p for p in (blob_path(x), LayerLink(r, x).path) if p not in after)
    for child in contents[d]["children"]:
        missing.extend(pullable(after, contents, repo, child))
    return missing


def has_manifests(paths: set[str]) -> bool:
    """Whether any revision link or tag current link is among ``paths``."""
    return any(isinstance(classify(p), (RevisionLink, TagCurrentLink)) for p in paths)


def files_under(root: Path) -> set[str]:
    """Every file path under ``root``, relative, '/'-separated."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(OPS, min_size=2, max_size=10),
    delete_untagged=st.booleans(),
)
def test_collect_keeps_everything_live_and_nothing_old_and_dead(
    seed: int, ops: list[tuple[Any, ...]], delete_untagged: bool
) -> None:
    """Live data survives and pulls, old garbage goes, young objects stay, a re-run is a no-op."""
    world = World(seed)
    for op in ops:
        world.apply(op)
    oracle = Oracle(world, delete_untagged=delete_untagged)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world.b.write_local(root)
        if not has_manifests(set(oracle.files)) and any(map(parse_blob_path, oracle.files)):
            with pytest.raises(RefusedError, match="refusing"):
                collect(root, delete_untagged=delete_untagged, grace=GRACE)
            assert files_under(root) == set(oracle.files)
            return
        report = collect(root, delete_untagged=delete_untagged, grace=GRACE, allow_empty=True)
        assert report.ok
        after = files_under(root)
        if has_manifests(after) or not any(map(parse_blob_path, after)):
            # allow_empty: a run that deleted everything leaves nothing to recognise a registry by
            again = collect(root, delete_untagged=delete_untagged, grace=GRACE, allow_empty=True)
            assert again.plan.deletions == [], "a second run has nothing left to do"

    problems: list[str] = []
    for path in oracle.files:
        key = classify(path)
        present = path in after
        young = path in oracle.young
        if young and not present:
            problems.append(f"young {path} was deleted")
        digest = parse_blob_path(path)
        if digest is not None:
            if digest in oracle.live_blobs and not present:
                problems.append(f"live blob {path} was deleted")
            if digest not in oracle.live_blobs and not young and present:
                problems.append(f"dead old blob {path} survived")
        elif isinstance(key, RevisionLink):
            live = key.digest in oracle.live.get(key.repository, set())
            if live and not present:
                problems.append(f"live revision {path} was deleted")
            if not live and not young and present:
                problems.append(f"dead old revision {path} survived")
        elif isinstance(key, LayerLink):
            needed = key.digest in oracle.needed.get(key.repository, set())
            if needed and not present:
                problems.append(f"needed layer link {path} was deleted")
            if not needed and not young and present:
                problems.append(f"unneeded old layer link {path} survived")
    for repo, tag_map in oracle.tags.items():
        for tag, d in tag_map.items():
            current = TagCurrentLink(Repository._trusted(repo), Tag._trusted(tag)).path
            if current not in after:
                problems.append(f"tag {repo}:{tag} lost its current link")
            missing = pullable(after, oracle.contents, repo, d)
            if missing:
                problems.append(f"{repo}:{tag} -> {d} cannot be pulled: missing {missing}")
    if not delete_untagged:
        for repo, revisions in oracle.revisions.items():
            for d in revisions:
                missing = pullable(after, oracle.contents, repo, d)
                if missing:
                    problems.append(f"{repo}@{d} cannot be pulled: missing {missing}")
    problems.extend(upload_problems(oracle, after))
    assert not problems, "\n".join(problems)


def upload_problems(oracle: Oracle, after: set[str]) -> list[str]:
    """Uploads started over a day ago and idle for the grace go whole; the others stay whole."""
    uploads: dict[str, list[str]] = {}
    for path in oracle.files:
        key = classify(path)
        if isinstance(key, UploadFile):
            uploads.setdefault(f"{key.repository}/{key.upload}", []).append(path)
    problems = []
    for upload, paths in uploads.items():
        started = next(oracle.ages[p] for p in paths if p.endswith("/startedat"))
        stale = started > DAY and not any(p in oracle.young for p in paths)
        gone = [p for p in paths if p not in after]
        if stale and len(gone) != len(paths):
            problems.append(f"stale upload {upload} survived")
        if not stale and gone:
            problems.append(f"upload {upload} in use lost {gone}")
    return problems
