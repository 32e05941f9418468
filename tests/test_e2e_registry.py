"""End to end on a filesystem store: registry-gc against the real registry (2.8.2).

One rich store is built once per module by pushing through ``docker-registry
serve``; every test works on its own copy (``shutil.copytree``) so that tests
stay independent. What must survive is computed from what was pushed, by a
reachability walk of our own (tags, index children, referrers of live
manifests; ``tests/rigs/e2e.py``), never by asking the package.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from registry_gc import Category, collect

from tests.conftest import require_tool
from tests.rigs import oci, planfiles
from tests.rigs.e2e import (
    NO_GRACE,
    REPO_KEY,
    V2,
    Layout,
    Manifest,
    Model,
    assert_live_layout,
    assert_pulls,
    gc,
    gc_listed,
)
from tests.rigs.push import RegistryError
from tests.rigs.registry import RealRegistry, blob_data_key
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from tests.rigs.push import RegistryClient

pytestmark = pytest.mark.registry


# -- the scenario store ---------------------------------------------------------------


@dataclass
class Scenario:
    """The pristine store (never modified: tests copy it), its model and notable objects."""

    storage: Path
    model: Model
    objs: dict[str, Manifest]
    layers: dict[str, oci.Blob]


def build_scenario(
    client: RegistryClient,
) -> tuple[Model, dict[str, Manifest], dict[str, oci.Blob]]:
    """Push the rich scenario through the registry API; return what was pushed."""
    m = Model()
    sig_type = oci.SIGNATURE_ARTIFACT
    base = oci.layer("e2e-base", media_type=oci.DOCKER_LAYER)  # shared by every repository

    # app: one tag re-pushed five times, new content each time.
    versions = [oci.docker_image(f"e2e-app-{i}", shared_layers=[base]) for i in range(5)]
    for version in versions:
        m.push(client, "app", "latest", version)
    final = versions[-1]
    m.push(client, "app", "stable", final)  # several tags on one manifest
    m.push(client, "app", "5.0", final)
    m.push(client, "app", "4.0", versions[3])  # an older revision still tagged
    # Referrers (pushed by digest, with a subject) of the tagged image, and a
    # signature of the SBOM: live through the reverse edge, transitively.
    sig = oci.referrer(final, "e2e-app-sig", artifact_type=sig_type)
    sbom = oci.referrer(final, "e2e-app-sbom")
    sbom_sig = oci.referrer(sbom, "e2e-app-sbom-sig", artifact_type=sig_type)
    for ref in (sig, sbom, sbom_sig):
        m.push(client, "app", None, ref)
    # A referrer of a revision the tag moved away from.
    m.push(
        client, "app", None, oci.referrer(versions[1], "e2e-app-old-sig", artifact_type=sig_type)
    )
    # An image pushed by digest only, and its SBOM.
    dev = oci.docker_image("e2e-app-dev", shared_layers=[base])
    m.push(client, "app", None, dev)
    m.push(client, "app", None, oci.referrer(dev, "e2e-app-dev-sbom"))
    # A tag moved, then its old revision deleted through the API: the tag's index
    # keeps an entry for a revision that is gone.
    rc1 = oci.docker_image("e2e-app-rc1", shared_layers=[base])
    m.push(client, "app", "rc", rc1)
    m.push(client, "app", "rc", oci.docker_image("e2e-app-rc2", shared_layers=[base]))
    m.delete(client, "app", rc1.digest)
    # A tagged image deleted through the API (the registry drops its tag).
    gone = oci.docker_image("e2e-app-gone", shared_layers=[base])
    m.push(client, "app", "gone", gone)
    m.delete(client, "app", gone.digest)
    # A layer uploaded for a manifest that never came.
    m.push_blob(client, "app", oci.layer("e2e-orphan"))
    client.start_upload("app", b"half a layer")

    # multi: a multi-arch OCI index re-pushed under its tag, a Docker manifest list,
    # the shared layer mounted (not uploaded) from app, a signature of the index.
    assert client.mount_blob("multi", base.digest, from_repo="app")
    # A mounted blob no manifest of multi uses: that link is never needed there.
    assert client.mount_blob("multi", versions[0].layers[-1].digest, from_repo="app")
    m.push(client, "multi", "v1", oci.multiarch("e2e-multi-old", shared_layers=[base]))
    index = oci.multiarch("e2e-multi", shared_layers=[base])
    m.push(client, "multi", "v1", index)
    m.push(client, "multi", "list", oci.multiarch("e2e-mlist", kind="docker", shared_layers=[base]))
    index_sig = oci.referrer(index, "e2e-multi-sig", artifact_type=sig_type)
    m.push(client, "multi", None, index_sig)
    client.start_upload("multi", b"another half")

    # Nested repositories a, a/b, a/b/c; a/b loses its only image (deleted through
    # the API) and keeps an unfinished upload: once both go, a/b is empty, a/b/c not.
    m.push(client, "a", "v1", oci.oci_image("e2e-a"))
    assert client.mount_blob("a/b", base.digest, from_repo="app")
    ab = oci.docker_image("e2e-ab", shared_layers=[base])
    m.push(client, "a/b", "v1", ab)
    m.delete(client, "a/b", ab.digest)
    client.start_upload("a/b", b"abandoned")
    assert client.mount_blob("a/b/c", base.digest, from_repo="app")
    m.push(client, "a/b/c", "v1", oci.docker_image("e2e-abc", shared_layers=[base]))

    # scratch: a repository that only ever got a push by digest (no tags directory).
    m.push(client, "scratch", None, oci.oci_image("e2e-scratch"))

    objs: dict[str, Manifest] = {
        "final": final,
        "old": versions[0],
        "sig": sig,
        "sbom_sig": sbom_sig,
        "dev": dev,
        "index": index,
        "index_sig": index_sig,
    }
    layers = {"base": base, "old_own": versions[0].layers[-1]}
    return m, objs, layers


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The rich store, pushed once per module through a real registry (then stopped)."""
    require_tool("docker-registry")
    require_tool("skopeo")
    work = tmp_path_factory.mktemp("e2e-scenario")
    storage = work / "storage"
    with RealRegistry(work / "registry", root_dir=storage) as reg:
        model, objs, layers = build_scenario(reg.client())
        # The model is complete: the store holds exactly the blobs it knows of.
        assert Layout.parse(v2_keys(storage)).blobs == model.blobs
    return Scenario(storage, model, objs, layers)


# -- helpers --------------------------------------------------------------------------


def copy_store(scn: Scenario, dest: Path) -> Path:
    """A private copy of the scenario store (mtimes preserved); return its root."""
    shutil.copytree(scn.storage, dest, symlinks=True)
    return dest


def files(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root`` (relative path → size, mtime in ns, sha256)."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, digest)
    return out


def v2_keys(root: Path) -> set[str]:
    """Keys of every file, relative to ``docker/registry/v2``."""
    return {k.removeprefix(V2) for k in files(root)}


def api_tags(client: RegistryClient) -> dict[str, list[str]]:
    """Repository → tags, as the registry lists them (catalog, then tags/list)."""
    out = {}
    for repo in client.catalog():
        try:
            tags = client.tags(repo)
        except RegistryError as exc:
            # 2.8.2 answers NAME_UNKNOWN for a repository without a tags directory
            # (pushed by digest only).
            if exc.status != 404:
                raise
            continue
        if tags:
            out[repo] = tags
    return out


# -- tests ----------------------------------------------------------------------------


def test_delete_untagged_leaves_exactly_the_live_set_while_the_registry_serves(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-m with no grace leaves exactly the live set; the running registry serves every tag."""
    model = scenario.model
    root = copy_store(scenario, tmp_path / "storage")
    with RealRegistry(tmp_path / "registry", root_dir=root) as reg:
        client = reg.client()
        tags_before = api_tags(client)
        assert tags_before == model.tagged()
        pid = reg.proc.pid if reg.proc else None

        # Live content is served while the collector sweeps around it.
        # Live content is served before, while and after the collector sweeps.
        stop, errors, served = threading.Event(), [], [0]
        final = scenario.objs["final"]

        def poll() -> None:
            poller = reg.client()
            try:
                while not stop.is_set():
                    assert poller.get_manifest("app", "latest").digest == final.digest
                    assert poller.get_blob("app", final.config.digest) == final.config.data
                    served[0] += 1
            except Exception as exc:  # reported below
                errors.append(exc)

        def wait_for_more(than: int) -> None:
            for _ in range(1000):
                if served[0] > than or errors:
                    return
                stop.wait(0.01)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            wait_for_more(0)
            report = gc(capsys, root, "--delete-untagged", *NO_GRACE)
            wait_for_more(served[0])
        finally:
            stop.set()
            poller.join()
        assert not errors
        assert served[0] >= 2
        assert report["ok"]
        assert report["totals"]["deletions"] > 0
        assert report["totals"]["failed"] == 0

        # Same process, no restart; every tag that existed still exists and pulls.
        assert reg.running
        assert reg.proc is not None
        assert reg.proc.pid == pid
        assert api_tags(client) == tags_before
        for repo, tags in tags_before.items():
            for tag in tags:
                assert_pulls(reg, repo, tag, tmp_path / "pulls")
        # Referrers of live images are still there, transitively.
        for name, repo in (("sig", "app"), ("sbom_sig", "app"), ("index_sig", "multi")):
            assert_pulls(reg, repo, scenario.objs[name].digest, tmp_path / "pulls")
        # The untagged image and the re-tagged-away revision are gone.
        assert not client.manifest_exists("app", scenario.objs["dev"].digest)
        assert not client.manifest_exists("app", scenario.objs["old"].digest)
        # Emptied repositories (scratch, a/b) leave the catalog; a/b/c stays.
        assert sorted(client.catalog()) == ["a", "a/b/c", "app", "multi"]

    live = model.live(delete_untagged=True)
    assert_live_layout(Layout.parse(v2_keys(root)), model, live)
    # Repositories left with nothing are gone; nested ones under them stay.
    repos = root / V2 / "repositories"
    assert not (repos / "scratch").exists()
    assert sorted(p.name for p in (repos / "a/b").iterdir()) == ["c"]
    assert (repos / "a/b/c/_manifests").is_dir()
    assert not list(repos.rglob("_uploads"))


def test_names_only_leaves_what_a_full_run_leaves_and_every_tag_pulls(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gc -m --names-only --grace 0s``: the full run's store, file for file; every tag pulls."""
    model = scenario.model
    names = copy_store(scenario, tmp_path / "names")
    full = copy_store(scenario, tmp_path / "full")
    report = gc(capsys, names, "--delete-untagged", "--names-only", *NO_GRACE)
    expected = gc(capsys, full, "--delete-untagged", *NO_GRACE)
    assert report["ok"]
    assert report["totals"]["deletions"] == expected["totals"]["deletions"] > 0
    assert report["totals"]["bytes"] == expected["totals"]["bytes"]
    assert report["store"]["bytes"] is None
    assert files(names) == files(full)
    live = model.live(delete_untagged=True)
    assert_live_layout(Layout.parse(v2_keys(names)), model, live)
    with RealRegistry(tmp_path / "registry", root_dir=names) as reg:
        tags = api_tags(reg.client())
        assert tags == model.tagged()
        for repo, repo_tags in tags.items():
            for tag in repo_tags:
                assert_pulls(reg, repo, tag, tmp_path / "pulls")


def test_without_delete_untagged_keeps_the_blobs_the_reference_keeps(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -m, the blobs left equal the reference GC's; we also clean links and uploads."""
    model = scenario.model
    ours = copy_store(scenario, tmp_path / "ours")
    theirs = copy_store(scenario, tmp_path / "theirs")
    gc(capsys, ours, *NO_GRACE)
    ref = RealRegistry(tmp_path / "ref", root_dir=theirs).garbage_collect(delete_untagged=False)
    assert "blobs marked" in ref.stdout

    our_keys, their_keys = v2_keys(ours), v2_keys(theirs)
    our_layout, their_layout = Layout.parse(our_keys), Layout.parse(their_keys)
    live = model.live(delete_untagged=False)
    assert their_layout.blobs == model.live_blobs(live)
    assert our_layout.blobs == their_layout.blobs
    assert_live_layout(our_layout, model, live)

    # Where we differ, on purpose: we never delete what the reference keeps except
    # - `_layers` links no live manifest of the repository needs (mounted blobs never
    #   used there, links of deleted images; 2.8.2 never cleans `_layers`),
    # - unfinished uploads (the reference leaves them to the registry's purger),
    # - tag index entries of revisions that are gone (the reference keeps them).
    # Blobs, revision links and tags are identical.
    assert our_keys <= their_keys
    needed = model.needed_links(live)
    expected_extra = {
        k for k in their_layout.layer_keys if _layer_digest(k) not in needed[_repo_of(k)]
    }
    expected_extra |= their_layout.uploads
    expected_extra |= {
        k for k, (repo, digest) in their_layout.tag_index_keys.items() if digest not in live[repo]
    }
    assert their_keys - our_keys == expected_extra
    # The scenario has each kind of difference.
    assert their_layout.uploads
    assert any("/_manifests/tags/rc/index/" in k for k in expected_extra)
    assert any(k.startswith("repositories/multi/_layers/") for k in expected_extra)


def _repo_of(key: str) -> str:
    m = REPO_KEY.fullmatch(key)
    assert m is not None
    return m["repo"]


def _layer_digest(key: str) -> str:
    m = re.search(r"/_layers/(\w+)/([0-9a-f]+)/link$", key)
    assert m is not None
    return f"{m[1]}:{m[2]}"


def test_reference_delete_untagged_loses_data_registry_gc_does_not(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference 2.8.2 -m breaks a multi-arch tag and drops a signature; registry-gc keeps both."""
    # On the rich store the reference refuses outright: `scratch` has revisions but
    # no tags directory, and 2.8.2's tag lookup aborts the whole run on it.
    refused = copy_store(scenario, tmp_path / "refused")
    before = files(refused)
    result = RealRegistry(tmp_path / "ref0", root_dir=refused).garbage_collect(
        delete_untagged=True, check=False
    )
    assert result.returncode != 0
    assert "failed to retrieve tags" in result.stdout + result.stderr
    assert files(refused) == before

    # So the data loss is shown on a small store where every repository has a tag.
    small = tmp_path / "small"
    image = oci.docker_image("loss-app")
    index = oci.multiarch("loss-multi")
    sig = oci.referrer(image, "loss-sig", artifact_type=oci.SIGNATURE_ARTIFACT)
    with RealRegistry(tmp_path / "build", root_dir=small) as reg:
        client = reg.client()
        client.push_image("app", "v1", image)
        client.push_image("app", None, sig)
        client.push_image("multi", "v1", index)
    theirs = shutil.copytree(small, tmp_path / "theirs", symlinks=True)
    ours = shutil.copytree(small, tmp_path / "ours", symlinks=True)

    with RealRegistry(tmp_path / "ref", root_dir=theirs) as reg:
        reg.garbage_collect(delete_untagged=True)
        client = reg.client()
        assert pull_all(reg.url, "multi", "v1", tmp_path / "theirs-multi").returncode != 0
        for child in index.children:  # the platform images are gone
            assert not client.manifest_exists("multi", child.digest)
        assert not client.manifest_exists("app", sig.digest)  # the signature is gone
        assert_pulls(reg, "app", "v1", tmp_path / "theirs-pulls")

    gc(capsys, ours, "--delete-untagged", *NO_GRACE)
    with RealRegistry(tmp_path / "ours-registry", root_dir=ours) as reg:
        client = reg.client()
        assert_pulls(reg, "multi", "v1", tmp_path / "ours-pulls")
        assert client.get_manifest("app", sig.digest).data == sig.data
        assert_pulls(reg, "app", sig.digest, tmp_path / "ours-pulls")
        assert_pulls(reg, "app", "v1", tmp_path / "ours-pulls")


@pytest.mark.parametrize("delete_untagged", [True, False], ids=["m", "no-m"])
def test_dry_run_deletes_nothing_and_lists_exactly_what_a_real_run_deletes(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str], delete_untagged: bool
) -> None:
    """--dry-run --json changes no file, and its deletions' paths are what a real run deletes."""
    root = copy_store(scenario, tmp_path / "storage")
    flags = ("--delete-untagged",) if delete_untagged else ()
    before = files(root)
    dirs_before = sorted(p for p, _, _ in os.walk(root))
    dry, dry_listed = gc_listed(capsys, root, *flags, *NO_GRACE, "--dry-run")
    assert files(root) == before
    assert sorted(p for p, _, _ in os.walk(root)) == dirs_before
    assert dry["dry_run"]
    planned = [p for d in dry_listed for p, _, _ in d["paths"]]
    assert len(planned) == len(set(planned))
    assert {d["status"] for d in dry_listed} == {"planned"}

    real, real_listed = gc_listed(capsys, root, *flags, *NO_GRACE)
    after = files(root)
    assert set(after) <= set(before)
    deleted = set(before) - set(after)
    assert deleted
    assert set(planned) == deleted
    assert planfiles.paths(real_listed) == deleted
    assert {d["status"] for d in real_listed} == {"deleted"}
    assert real["totals"]["objects"] == len(deleted)


def test_default_grace_deletes_nothing_from_a_fresh_store(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the default 1h grace, -m on a store pushed just now deletes nothing at all."""
    root = copy_store(scenario, tmp_path / "storage")
    before = files(root)
    report = gc(capsys, root, "--delete-untagged", "--uploads-older-than", "0s")
    assert report["options"]["grace_seconds"] == 3600
    assert report["totals"]["deletions"] == 0
    assert files(root) == before


def test_default_grace_reports_fresh_garbage_as_kept(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every blob a no-grace -m run would delete is kept, and counted, by a default-grace run."""
    model = scenario.model
    root = copy_store(scenario, tmp_path / "storage")
    report = gc(capsys, root, "--delete-untagged", "--uploads-older-than", "0s")
    garbage = model.blobs - model.live_blobs(model.live(delete_untagged=True))
    # The JSON sums what is kept; the library's plan lists it.
    library = collect(
        root, delete_untagged=True, uploads_older_than=datetime.timedelta(0), dry_run=True
    )
    kept = {k.digest for k in library.plan.kept if k.category is Category.BLOB}
    assert {k.path for k in library.plan.kept if k.category is Category.BLOB} == {
        V2 + blob_data_key(d) for d in kept
    }
    assert kept <= garbage  # nothing live is reported as kept
    assert kept == garbage
    assert report["kept"]["blob"]["count"] == len(garbage)
    assert report["totals"]["kept_for_grace"] == len(library.plan.kept)


def test_a_second_run_deletes_nothing(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running the collector (with or without -m) finds nothing more to delete."""
    root = copy_store(scenario, tmp_path / "storage")
    first = gc(capsys, root, "--delete-untagged", *NO_GRACE)
    assert first["totals"]["deletions"] > 0
    after_first = files(root)
    for flags in (("--delete-untagged",), ()):
        again = gc(capsys, root, *flags, *NO_GRACE)
        assert again["totals"]["deletions"] == 0
        assert again["totals"]["objects"] == 0
        assert files(root) == after_first


def test_a_layer_deleted_by_gc_is_uploaded_again_by_the_next_push(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After GC (no restart), a push re-using a deleted layer re-uploads it and pulls back."""
    root = copy_store(scenario, tmp_path / "storage")
    layer = scenario.layers["old_own"]
    with RealRegistry(tmp_path / "registry", root_dir=root) as reg:
        client = reg.client()
        assert client.blob_exists("app", layer.digest)
        _, listed = gc_listed(capsys, root, "--delete-untagged", *NO_GRACE)
        assert V2 + blob_data_key(layer.digest) in planfiles.paths(listed)
        # The registry no longer has it, in any repository (no stale descriptor cache).
        assert not client.blob_exists("app", layer.digest)
        assert not client.blob_exists("multi", layer.digest)
        assert not client.mount_blob("a", layer.digest, from_repo="app")
        image = oci.docker_image(
            "e2e-reuse", shared_layers=[scenario.layers["base"], layer], n_layers=1
        )
        client.push_image("app", "reuse", image)  # push_blob uploads what is missing
        assert (root / V2 / blob_data_key(layer.digest)).read_bytes() == layer.data
        assert client.blob_exists("app", layer.digest)
        assert_pulls(reg, "app", "reuse", tmp_path / "pulls")
        # The new image is live for the next run.
        gc(capsys, root, "--delete-untagged", *NO_GRACE)
        assert_pulls(reg, "app", "reuse", tmp_path / "pulls-again")
