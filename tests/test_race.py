"""Pushes racing the sweep, against the real registry serving the same storage.

``test_pushes_racing_gc_runs_with_the_default_grace_all_pull`` is the race itself:
a thread pushes continuously (new tags, re-pushes of a tag, images sharing an old
live layer, multi-arch indexes, new repositories) while ``registry-gc gc -m`` runs
again and again with the default grace over a store full of *old* garbage; every
tag and every manifest pushed must still pull afterwards.

The other tests pin down, deterministically, what the grace period protects and what
it cannot (docs/safety.md, "The grace period"):

- protected: anything written within the grace *and seen by the listing* — a fresh
  layer link (a mount) protects its old blob; a fresh revision (a manifest pushed by
  digest) protects all it reaches; and a tag whose ``current`` link is being rewritten
  (empty for a moment) keeps everything in its index, whatever the grace;
- **not** protected (a documented limit, not a bug): a push that re-uses a blob that
  was unreferenced when the run listed the store — mounted, or skipped after a HEAD —
  and writes its links *after* the listing. The run deletes the blob and the new image
  does not pull. Run the registry read-only (or stopped) during a sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from registry_gc import cli, collect, parse_duration
from registry_gc.apply import apply_plan
from registry_gc.backends import LocalBackend
from registry_gc.backends import _local as local_module
from registry_gc.backends._localscan import HELPER_ENV
from registry_gc.layout import Digest, Repository, Tag, TagCurrentLink, blob_path
from registry_gc.plan import Category

from tests.conftest import require_tool
from tests.rigs import oci, planfiles
from tests.rigs.builder import RegistryBuilder
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.rigs.push import RegistryClient
    from tests.rigs.registry import RealRegistry

DAY = 86400.0
#: How long the pusher races the collector.
RACE_SECONDS = 4.0


def age_everything(root: Path, seconds: float = 10 * DAY) -> None:
    """Make every file and directory under ``root`` ``seconds`` old."""
    t = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (t, t))


def gc_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    """``registry_gc.cli.run([*argv, "--json"])``: exit code and the parsed report."""
    capsys.readouterr()
    code = cli.run([*argv, "--json"])
    out, err = capsys.readouterr()
    assert out, err
    return code, json.loads(out)


def pulls(reg: RealRegistry, repo: str, ref: str, dest: Path) -> tuple[bool, str]:
    """Whether ``repo:ref`` (or ``repo@digest``) pulls completely with skopeo; its stderr."""
    result = pull_all(reg.url, repo, ref, dest)
    return result.returncode == 0, result.stderr


# -- the race --------------------------------------------------------------------------------------


@dataclass
class Pusher:
    """Pushes continuously in a thread until stopped; remembers what it pushed."""

    client: RegistryClient
    base: oci.Blob
    stop: threading.Event = field(default_factory=threading.Event)
    #: repository → tag → digest (the last push wins)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (repository, manifest) of everything pushed, children included
    pushed: list[tuple[str, oci.Image | oci.Index]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    count: int = 0

    def push(self, repo: str, tag: str | None, obj: oci.Image | oci.Index) -> None:
        """Push one image or index and record it."""
        self.client.push_image(repo, tag, obj)
        for man in oci.iter_manifests(obj):
            assert isinstance(man, oci.Image | oci.Index)
            self.pushed.append((repo, man))
        if tag is not None:
            self.tags.setdefault(repo, {})[tag] = obj.digest

    def run(self) -> None:
        """The thread's body: one push after another, in turn of five kinds."""
        i = 0
        while not self.stop.is_set():
            i += 1
            seed = f"race-{i}"
            try:
                kind = i % 5
                if kind == 0:  # a new tag
                    self.push("app", f"n{i}", oci.docker_image(seed, shared_layers=[self.base]))
                elif kind == 1:  # a tag re-pushed with new content
                    self.push("app", "latest", oci.docker_image(seed, shared_layers=[self.base]))
                elif kind == 2:  # a second repository, same shared layer (already linked)
                    self.push("team/app", "v2", oci.oci_image(seed, shared_layers=[self.base]))
                elif kind == 3:  # a multi-arch index re-pushed
                    self.push("multi", "v1", oci.multiarch(seed, shared_layers=[self.base]))
                else:  # new repositories (the shared layer uploaded again there)
                    image = oci.docker_image(seed, shared_layers=[self.base])
                    self.push(f"new/r{i % 3}", "t", image)
                    self.push(f"new/r{i % 3}", None, oci.referrer(image, f"{seed}-sig"))
                self.count += 1
            except Exception as e:  # a push that fails is a finding too
                self.errors.append(f"push {i}: {e}")


def seed_old_store(client: RegistryClient, base: oci.Blob) -> dict[str, dict[str, str]]:
    """Old content: live tags sharing ``base``, and garbage of every kind; return the tags."""
    tags: dict[str, dict[str, str]] = {}

    def push(repo: str, tag: str | None, obj: oci.Image | oci.Index) -> None:
        client.push_image(repo, tag, obj)
        if tag is not None:
            tags.setdefault(repo, {})[tag] = obj.digest

    push("app", "old", oci.docker_image("seed-old", shared_layers=[base]))
    for i in range(4):  # three dead revisions behind latest
        push("app", "latest", oci.docker_image(f"seed-latest-{i}", shared_layers=[base]))
    assert client.mount_blob("team/app", base.digest, from_repo="app")
    push("team/app", "v1", oci.oci_image("seed-team", shared_layers=[base]))
    for i in range(2):
        push("multi", "v1", oci.multiarch(f"seed-multi-{i}", shared_layers=[base]))
    client.push_blob("app", oci.layer("seed-orphan"))
    client.start_upload("app", b"abandoned long ago")
    return tags


@pytest.mark.registry
def test_pushes_racing_gc_runs_with_the_default_grace_all_pull(
    registry: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Continuous pushes while gc -m (default grace) sweeps old garbage: everything pushed pulls."""
    require_tool("skopeo")
    client = registry.client()
    root = registry.root_dir
    assert root is not None
    base = oci.layer("race-base", media_type=oci.DOCKER_LAYER)
    old_tags = seed_old_store(client, base)
    age_everything(root)
    pusher = Pusher(client, base)
    thread = threading.Thread(target=pusher.run, name="pusher")
    thread.start()
    runs: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + RACE_SECONDS
        n = 0
        while time.monotonic() < deadline or len(runs) < 3:
            n += 1
            # Fresh *old* garbage for each run, in the repository being pushed to.
            stale = oci.layer(f"stale-{n}")
            client.push_blob("app", stale)
            for rel in (
                blob_path(Digest(stale.digest)),
                f"docker/registry/v2/repositories/app/_layers/sha256/{stale.hex}/link",
            ):
                os.utime(root / rel, (time.time() - 10 * DAY,) * 2)
            code, report = gc_json(capsys, "gc", str(root), "-m")
            assert "totals" in report, report
            runs.append((code, report["totals"]["objects"]))
    finally:
        pusher.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert pusher.errors == []
    assert pusher.count >= 10, "the pusher really raced the runs"
    assert [code for code, _ in runs] == [cli.EXIT_OK] * len(runs)
    assert all(deleted > 0 for _, deleted in runs), "every run deleted old garbage"

    tags = {repo: dict(t) for repo, t in old_tags.items()}
    for repo, t in pusher.tags.items():
        tags.setdefault(repo, {}).update(t)
    assert set(tags) >= {"app", "team/app", "multi", "new/r0"}
    for repo, repo_tags in tags.items():
        for tag, digest in repo_tags.items():
            ok, err = pulls(registry, repo, tag, tmp_path / f"pull-{repo}-{tag}")
            assert ok, f"{repo}:{tag} ({digest}) does not pull: {err}"
    # Untagged pushes (moved tags, children, referrers) are younger than the grace: all there.
    for repo, man in pusher.pushed:
        assert client.manifest_exists(repo, man.digest), f"{repo}@{man.digest}"
        if isinstance(man, oci.Image):
            for blob in man.blobs:
                assert client.blob_exists(repo, blob.digest), f"{repo}: {blob.digest}"
    # A last run after the race has nothing left that is old: the store is consistent.
    code, report = gc_json(capsys, "gc", str(root), "-m")
    assert code == cli.EXIT_OK
    assert report["anomalies"] == []


# -- what the grace period cannot protect ----------------------------------------------------------


def dead_image(client: RegistryClient, root: Path) -> oci.Image:
    """An image pushed to ``old`` long ago, then deleted by digest: its blobs are garbage."""
    image = oci.docker_image("limit-old", n_layers=2)
    client.push_image("old", "v1", image)
    client.delete_manifest("old", image.digest)
    client.push_image("old", "keep", oci.docker_image("limit-keep"))  # the repository lives on
    age_everything(root)
    return image


@pytest.mark.registry
@pytest.mark.parametrize("grace", ["0s", "1h"])
@pytest.mark.parametrize("how", ["mount", "head-skip"])
def test_limit_reusing_an_unreferenced_blob_after_the_listing_breaks_the_new_image(
    registry: RealRegistry, tmp_path: Path, grace: str, how: str
) -> None:
    """Documents the limit: a blob re-used after the listing is deleted, whatever the grace."""
    require_tool("skopeo")
    client = registry.client()
    root = registry.root_dir
    assert root is not None
    old = dead_image(client, root)
    layer = old.layers[0]
    # 1. The run lists the store and plans: the old layer is unreferenced, and old.
    report = collect(root, delete_untagged=True, dry_run=True, grace=parse_duration(grace))
    assert blob_path(Digest(layer.digest)) in report.plan.paths
    # 2. Meanwhile a push re-uses that blob without uploading it.
    image = oci.docker_image("limit-new", shared_layers=[layer])
    repo = "new" if how == "mount" else "old"
    if how == "mount":
        assert client.mount_blob(repo, layer.digest, from_repo="old")
    else:
        assert client.blob_exists(repo, layer.digest), "HEAD says it is there: not uploaded"
    client.push_image(repo, "v1", image)
    ok, _ = pulls(registry, repo, "v1", tmp_path / "before")
    assert ok, "the new image pulls before the sweep"
    # 3. The run applies its plan: the blob goes, and the new image is broken.
    assert apply_plan(LocalBackend(root), report.plan).ok
    assert not (root / blob_path(Digest(layer.digest))).exists()
    ok, err = pulls(registry, repo, "v1", tmp_path / "after")
    assert not ok, "the documented limit: this image lost a layer"
    assert layer.digest in err


# -- what the grace period protects ----------------------------------------------------------------


@pytest.mark.registry
@pytest.mark.parametrize("how", ["mount", "untagged-manifest"])
def test_grace_a_fresh_link_listed_by_the_run_protects_an_old_unreferenced_blob(
    registry: RealRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    """A mount (fresh layer link) or a manifest by digest (fresh revision) before the run: kept."""
    require_tool("skopeo")
    client = registry.client()
    root = registry.root_dir
    assert root is not None
    old = dead_image(client, root)
    layer = old.layers[0]
    image = oci.docker_image("grace-new", shared_layers=[layer])
    repo = "new" if how == "mount" else "old"
    if how == "mount":
        assert client.mount_blob(repo, layer.digest, from_repo="old")
    else:  # config and own layer uploaded; the old layer skipped (HEAD 200); pushed by digest
        client.push_image(repo, None, image)
    code, report = gc_json(capsys, "gc", str(root), "-m")
    assert code == cli.EXIT_OK
    assert report["totals"]["objects"] > 0, "the rest of the old image was swept"
    assert report["kept"]["blob"]["count"] >= 1, "reported as kept for the grace period"
    assert (root / blob_path(Digest(layer.digest))).exists()
    # The push completes after the run: it pulls.
    client.push_image(repo, "v1", image)
    ok, err = pulls(registry, repo, "v1", tmp_path / "after")
    assert ok, err
    # Once the grace has passed, an unfinished push (a mount and nothing else) is swept.
    if how == "mount":
        client.delete_manifest(repo, image.digest)
        age_everything(root)
        out = tmp_path / "deletions.jsonl"
        code, report = gc_json(capsys, "gc", str(root), "-m", "--deletions-out", str(out))
        assert blob_path(Digest(layer.digest)) in planfiles.paths(planfiles.deletions(out))


@pytest.mark.registry
@pytest.mark.parametrize("grace", ["1h", "0s"])
def test_a_tag_rewritten_during_the_run_keeps_its_image(
    registry: RealRegistry,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    grace: str,
) -> None:
    """Re-pushing a tag empties its current link for a moment: its index keeps the image."""
    require_tool("skopeo")
    client = registry.client()
    root = registry.root_dir
    assert root is not None
    image = oci.docker_image("rewrite")
    client.push_image("app", "same", image)
    client.push_image("app", "other", oci.docker_image("rewrite-other"))
    client.push_image("app", None, oci.docker_image("rewrite-untagged"))  # garbage
    age_everything(root)
    # The registry re-pushes the same manifest: revision link and tag index first (fresh),
    # then it truncates current/link and writes it again. The run lists in that moment.
    client.push_manifest("app", "same", image)
    current = root / TagCurrentLink(Repository("app"), Tag("same")).path
    content = current.read_bytes()
    current.write_bytes(b"")
    code, report = gc_json(capsys, "gc", str(root), "-m", "--grace", grace)
    assert code == cli.EXIT_OK
    assert ("broken-link", str(current.relative_to(root))) in {
        (a["kind"], a["path"]) for a in report["anomalies"]
    }
    assert report["totals"]["objects"] > 0, "the untagged image was swept"
    current.write_bytes(content)  # the registry finishes writing the link
    ok, err = pulls(registry, "app", "same", tmp_path / "after")
    assert ok, err


def test_files_vanishing_while_the_run_lists_them_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the registry deletes between directory read and stat (a finished upload): skipped.

    The listing runs in this process, where ``os.scandir`` is patched: the
    helper process that lists ``repositories/`` otherwise runs the same walk
    (``registry_gc.backends._walk``) out of the patch's reach.
    """
    monkeypatch.setenv(HELPER_ENV, "0")
    b = RegistryBuilder(seed=1)
    b.image("app", "t")
    uid = b.upload("app", age=3 * DAY)
    b.write_local(tmp_path)
    upload = tmp_path / f"docker/registry/v2/repositories/app/_uploads/{uid}"
    real_scandir = os.scandir

    class Vanishing:
        """scandir of the upload directory; the whole upload is gone before any stat."""

        def __init__(self, path: str) -> None:
            self.inner = real_scandir(path)

        def __enter__(self) -> Vanishing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            entries = list(self.inner)
            shutil.rmtree(upload)  # the registry finished (or cancelled) the upload
            return iter(entries)

    def scandir(path: object) -> object:
        if isinstance(path, str) and path == str(upload):
            return Vanishing(path)
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(local_module.os, "scandir", scandir)
    report = collect(tmp_path, delete_untagged=True)
    assert report.ok
    assert list(report.plan.by_category(Category.UPLOAD)) == []
    assert report.inventory.repository("app").uploads == {}
