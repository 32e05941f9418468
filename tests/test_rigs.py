"""Prove the test rigs work against the real components (registry 2.8.2, skopeo, S3)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import require_tool
from tests.rigs import oci, soak
from tests.rigs import registry as rig_registry
from tests.rigs.procs import (
    ManagedProcess,
    StartupError,
    free_port,
    free_port_pairs,
    put_untraced,
    untraced_environ,
    untraced_executor,
    wait_for_port,
)
from tests.rigs.proxy import Response, StorageProxy
from tests.rigs.push import RegistryClient, RegistryError
from tests.rigs.registry import (
    RealRegistry,
    S3Storage,
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
    upload_prefix,
)
from tests.rigs.s3 import SeaweedS3
from tests.rigs.skopeo import inspect_raw, pull_all, skopeo_copy_to_registry

if TYPE_CHECKING:
    from tests.rigs.s3 import MotoS3


# -- helpers ---------------------------------------------------------------------------


def assert_pulls(reg: RealRegistry, repo: str, ref: str, dest: Path) -> None:
    """Assert that skopeo copies REPO:REF (all children, configs, layers) successfully."""
    result = pull_all(
        reg.url, repo, ref, dest / f"{repo.replace('/', '_')}-{ref.replace(':', '_')}"
    )
    assert result.returncode == 0, (
        f"skopeo pull of {repo}:{ref} failed\n{result.stderr}\n--- registry log ---\n"
        f"{reg.log_tail(15)}"
    )


def assert_image_on_storage(keys: dict[str, int], repo: str, image: oci.Image | oci.Index) -> None:
    """Assert every blob, revision link and layer link of ``image`` exists in ``keys``."""
    for man in oci.iter_manifests(image):
        assert blob_data_key(man.digest) in keys, f"manifest blob of {man.digest}"
        assert revision_link_key(repo, man.digest) in keys, f"revision link of {man.digest}"
        for blob in man.blobs:
            assert keys.get(blob_data_key(blob.digest)) == blob.size, f"blob {blob.digest}"
            assert layer_link_key(repo, blob.digest) in keys, f"layer link {repo} {blob.digest}"


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- pure rigs -------------------------------------------------------------------------


def test_builders_are_deterministic() -> None:
    """The same seed gives the same bytes and digests; different seeds differ."""
    assert oci.docker_image("a").digest == oci.docker_image("a").digest
    assert oci.oci_image("a").digest != oci.oci_image("b").digest
    assert oci.multiarch("m").digest == oci.multiarch("m").digest
    assert oci.layer(1).data == oci.layer(1).data


def test_layers_are_real_tar_gz_matching_config_diff_ids() -> None:
    """Layers are gzip'd tars whose uncompressed digest is the config's diff_id."""
    image = oci.oci_image("t", n_layers=2, layer_size=300)
    diff_ids = json.loads(image.config.data)["rootfs"]["diff_ids"]
    for lay, diff_id in zip(image.layers, diff_ids, strict=True):
        raw = gzip.decompress(lay.data)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            (member,) = tar.getmembers()
            assert member.size == 300


def test_manifest_shapes() -> None:
    """Manifests carry the right media types, descriptors, platforms and subject."""
    shared = oci.layer("shared", media_type=oci.DOCKER_LAYER)
    img = oci.docker_image("d", shared_layers=[shared])
    doc = json.loads(img.data)
    assert doc["mediaType"] == oci.DOCKER_MANIFEST
    assert doc["config"]["mediaType"] == oci.DOCKER_CONFIG
    assert doc["layers"][0]["digest"] == shared.digest
    assert len(doc["layers"]) == 3

    idx = oci.multiarch("m", kind="docker")
    idoc = json.loads(idx.data)
    assert idoc["mediaType"] == oci.DOCKER_MANIFEST_LIST
    assert [m["platform"]["architecture"] for m in idoc["manifests"]] == ["amd64", "arm64"]
    assert [m["digest"] for m in idoc["manifests"]] == [c.digest for c in idx.children]

    ref = oci.referrer(img, "sbom")
    rdoc = json.loads(ref.data)
    assert rdoc["subject"] == img.manifest.descriptor()
    assert rdoc["artifactType"] == oci.SBOM_ARTIFACT
    assert rdoc["config"]["mediaType"] == oci.OCI_EMPTY
    assert ref.config.data == b"{}"

    s1 = oci.schema1_manifest("s", name="r", tag="t")
    assert s1.media_type == oci.SCHEMA1_SIGNED_MANIFEST
    assert s1.data.startswith(s1.canonical.data[:-2])
    assert json.loads(s1.data)["signatures"][0]["header"]["alg"] == "ES256"
    assert "signatures" not in json.loads(s1.canonical.data)


def test_all_blobs_covers_nested_indexes() -> None:
    """all_blobs() lists the index, each child manifest, config and layer once."""
    shared = oci.layer("s")
    idx = oci.oci_index([oci.multiarch("m", shared_layers=[shared]), oci.oci_image("x")])
    blobs = oci.all_blobs(idx)
    # 2 indexes + 3 image manifests + 3 configs + (2 own + 1 shared) + 2 own layers of x
    assert len(blobs) == 2 + 3 + 3 + 3 + 2
    assert shared.digest in blobs


def test_oci_layout_writer(tmp_path: Path) -> None:
    """write_oci_layout writes oci-layout, index.json with ref names and every blob."""
    idx = oci.multiarch("m")
    img = oci.oci_image("i")
    root = oci.write_oci_layout(tmp_path / "layout", {"multi": idx, "img": img})
    index = json.loads((root / "index.json").read_text())
    names = {
        d["annotations"]["org.opencontainers.image.ref.name"]: d["digest"]
        for d in index["manifests"]
    }
    assert names == {"multi": idx.digest, "img": img.digest}
    for blob in [*oci.all_blobs(idx).values(), *oci.all_blobs(img).values()]:
        assert (root / "blobs" / "sha256" / blob.hex).read_bytes() == blob.data


# -- process rigs ----------------------------------------------------------------------


def test_free_port_pairs_are_distinct_and_free() -> None:
    """free_port_pairs gives distinct ports p with p and p+10000 all distinct."""
    ports = free_port_pairs(5)
    everything = ports + [p + 10000 for p in ports]
    assert len(set(everything)) == 10
    assert all(p + 10000 <= 65535 for p in ports)


def test_startup_failure_reports_log_tail(tmp_path: Path) -> None:
    """A process that dies before its port opens raises StartupError with its log tail."""
    proc = ManagedProcess(["sh", "-c", "echo boom-marker; exit 3"], log_path=tmp_path / "l.log")
    proc.start()
    try:
        with pytest.raises(StartupError, match="boom-marker"):
            wait_for_port("127.0.0.1", free_port(), timeout=10, proc=proc)
        assert proc.returncode == 3
    finally:
        proc.stop()


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    """stop() kills the leader and the children it started in its process group."""
    pidfile = tmp_path / "child.pid"
    proc = ManagedProcess(
        ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], log_path=tmp_path / "l.log"
    )
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pidfile.read_text())
    finally:
        proc.stop(grace=2)
    assert not proc.running
    deadline = time.monotonic() + 5
    while _alive(child):
        assert time.monotonic() < deadline, "child survived stop()"
        time.sleep(0.05)


def test_require_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing tool skips the test, except with CI=true where it fails it."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool("no-such-tool-xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        require_tool("no-such-tool-xyz")
    assert require_tool("sh").endswith("sh")


# -- the real registry, filesystem -----------------------------------------------------


@pytest.mark.registry
def test_push_every_kind_then_pull_all_and_check_layout(
    registry: RealRegistry, skopeo_bin: str, tmp_path: Path
) -> None:
    """Every manifest kind pushes, pulls back with skopeo --all, and lands in the layout."""
    client = registry.client()
    shared = oci.layer("shared-base", media_type=oci.DOCKER_LAYER)
    docker_img = oci.docker_image("docker", shared_layers=[shared])
    oci_img = oci.oci_image("oci")
    sbom = oci.referrer(oci_img, "sbom")
    sig = oci.referrer(oci_img, "sig", artifact_type=oci.SIGNATURE_ARTIFACT)
    index = oci.multiarch("index")
    mlist = oci.multiarch("mlist", kind="docker", shared_layers=[shared])
    nested = oci.oci_image("nested")

    assert client.push_image("lib/docker", "v1", docker_img) == docker_img.digest
    assert client.push_image("lib/oci", "v1", oci_img) == oci_img.digest
    assert client.push_image("lib/oci", None, sbom) == sbom.digest
    assert client.push_image("lib/oci", None, sig) == sig.digest
    assert client.push_image("lib/multi", "oci", index) == index.digest
    assert client.push_image("a/b/c", "v1", nested) == nested.digest
    # The shared layer is mounted, not uploaded, into the second repository.
    assert client.mount_blob("lib/mlist", shared.digest, from_repo="lib/docker") is True
    assert client.push_image("lib/mlist", "latest", mlist) == mlist.digest
    upload = client.start_upload("lib/oci", b"half a layer")

    assert sorted(client.catalog()) == ["a/b/c", "lib/docker", "lib/mlist", "lib/multi", "lib/oci"]
    assert client.tags("lib/multi") == ["oci"]
    fetched = client.get_manifest("lib/mlist", "latest")
    assert (fetched.media_type, fetched.digest, fetched.data) == (
        oci.DOCKER_MANIFEST_LIST,
        mlist.digest,
        mlist.data,
    )
    assert client.blob_exists("lib/mlist", shared.digest)
    assert not client.blob_exists("a/b/c", shared.digest)

    for repo, ref in [
        ("lib/docker", "v1"),
        ("lib/oci", "v1"),
        ("lib/oci", sbom.digest),
        ("lib/oci", sig.digest),
        ("lib/multi", "oci"),
        ("lib/mlist", "latest"),
        ("a/b/c", "v1"),
    ]:
        assert_pulls(registry, repo, ref, tmp_path / "pulls")
    assert (
        hashlib.sha256(inspect_raw(registry.url, "lib/multi", "oci")).hexdigest()
        == index.manifest.hex
    )

    keys = registry.keys()
    v2 = registry.v2_dir
    tagged: list[tuple[str, str, oci.Image | oci.Index]] = [
        ("lib/docker", "v1", docker_img),
        ("lib/oci", "v1", oci_img),
        ("lib/multi", "oci", index),
        ("lib/mlist", "latest", mlist),
        ("a/b/c", "v1", nested),
    ]
    for repo, tag, obj in tagged:
        assert (v2 / tag_current_key(repo, tag)).read_text() == obj.digest
        assert tag_index_key(repo, tag, obj.digest) in keys
        assert_image_on_storage(keys, repo, obj)
    for referrer in (sbom, sig):
        assert_image_on_storage(keys, "lib/oci", referrer)
        assert not any("/_manifests/tags/" in k and referrer.digest in k for k in keys)
    # Link files hold exactly "sha256:<hex>", no newline.
    assert (v2 / layer_link_key("lib/mlist", shared.digest)).read_bytes() == shared.digest.encode()
    assert (v2 / revision_link_key("lib/oci", sbom.digest)).read_text() == sbom.digest
    # The shared layer is stored once.
    assert (v2 / blob_data_key(shared.digest)).read_bytes() == shared.data
    # An unfinished upload: data, startedat and hash states at offsets 0 and len(chunk).
    up = upload_prefix("lib/oci", upload.uuid)
    assert keys[f"{up}/data"] == len(b"half a layer")
    assert f"{up}/startedat" in keys
    assert {k for k in keys if k.startswith(f"{up}/hashstates/")} == {
        f"{up}/hashstates/sha256/0",
        f"{up}/hashstates/sha256/{len(b'half a layer')}",
    }
    # Nested repository: a/b/c is a repository, a and a/b are not.
    assert not (v2 / "repositories/a/_manifests").exists()
    assert (v2 / "repositories/a/b/c/_manifests").is_dir()


@pytest.mark.registry
def test_skopeo_pushes_an_oci_layout_with_preserved_digests(
    registry: RealRegistry, skopeo_bin: str, tmp_path: Path
) -> None:
    """Skopeo copies an OCI layout (index and image) to the registry, digests unchanged."""
    index = oci.multiarch("sk-index")
    image = oci.oci_image("sk-image")
    layout = oci.write_oci_layout(tmp_path / "layout", {"multi": index, "one": image})
    skopeo_copy_to_registry(layout, "multi", registry.url, "sk/multi", "v1")
    skopeo_copy_to_registry(layout, "one", registry.url, "sk/one", "v1")
    client = registry.client()
    assert client.get_manifest("sk/multi", "v1").digest == index.digest
    assert client.get_manifest("sk/one", "v1").digest == image.digest
    for child in index.children:
        assert client.manifest_exists("sk/multi", child.digest)
    assert_image_on_storage(registry.keys(), "sk/multi", index)


@pytest.mark.registry
@pytest.mark.parametrize("what", ["layer", "config", "child-manifest"])
def test_pull_all_fails_when_something_is_missing(
    registry: RealRegistry, skopeo_bin: str, tmp_path: Path, what: str
) -> None:
    """pull_all fails once a layer, config or child manifest blob is deleted from the store."""
    client = registry.client()
    index = oci.multiarch("victim")
    client.push_image("app", "v1", index)
    assert_pulls(registry, "app", "v1", tmp_path / "before")
    arm = index.children[1]
    assert isinstance(arm, oci.Image)
    victim = {"layer": arm.layers[-1], "config": arm.config, "child-manifest": arm.manifest}[what]
    registry.delete_key(blob_data_key(victim.digest))
    # No blob descriptor cache: the deletion is visible at once, without restart.
    result = pull_all(registry.url, "app", "v1", tmp_path / "after")
    assert result.returncode != 0
    assert "404" in result.stderr or "unknown" in result.stderr.lower(), result.stderr


@pytest.mark.registry
def test_delete_manifest_removes_revision_link_and_tag(registry: RealRegistry) -> None:
    """DELETE of a manifest removes its revision link and the tags pointing at it."""
    client = registry.client()
    keep = oci.oci_image("keep")
    gone = oci.oci_image("gone")
    client.push_image("app", "keep", keep)
    client.push_image("app", "gone", gone)
    v2 = registry.v2_dir
    assert (v2 / revision_link_key("app", gone.digest)).exists()
    client.delete_manifest("app", gone.digest)
    assert not (v2 / revision_link_key("app", gone.digest)).exists()
    assert not client.manifest_exists("app", gone.digest)
    assert client.tags("app") == ["keep"]
    # Blobs and layer links stay until a GC; the tag index entry is kept too.
    keys = registry.keys()
    assert blob_data_key(gone.digest) in keys
    assert layer_link_key("app", gone.layers[0].digest) in keys
    with pytest.raises(RegistryError) as err:
        client.get_manifest("app", "gone")
    assert err.value.status == 404


@pytest.mark.registry
def test_reference_garbage_collect_runs(
    registry: RealRegistry, skopeo_bin: str, tmp_path: Path
) -> None:
    """Reference GC: dry run deletes nothing; a real run frees a deleted image's own blobs."""
    client = registry.client()
    shared = oci.layer("shared")
    keep = oci.oci_image("keep", shared_layers=[shared])
    gone = oci.oci_image("gone", shared_layers=[shared])
    client.push_image("app", "keep", keep)
    client.push_image("app", "gone", gone)
    client.delete_manifest("app", gone.digest)
    before = registry.keys()

    dry = registry.garbage_collect(delete_untagged=False, dry_run=True)
    assert "eligible for deletion" in dry.stdout
    assert registry.keys() == before

    registry.garbage_collect(delete_untagged=True)
    after = registry.keys()
    for blob in (gone.manifest, gone.config, *gone.layers[1:]):
        assert blob_data_key(blob.digest) not in after
    for blob in oci.all_blobs(keep).values():
        assert blob_data_key(blob.digest) in after
    # 2.8.2 leaves the _layers links of deleted blobs behind.
    assert layer_link_key("app", gone.config.digest) in after
    assert_pulls(registry, "app", "keep", tmp_path)


@pytest.mark.registry
def test_restart_keeps_port_and_data(registry: RealRegistry) -> None:
    """restart() comes back on the same port, serving what was pushed."""
    client = registry.client()
    image = oci.docker_image("r")
    client.push_image("app", "v1", image)
    url = registry.url
    registry.restart()
    assert registry.url == url
    assert RegistryClient(url).get_manifest("app", "v1").digest == image.digest


@pytest.mark.registry
def test_registry_holds_its_port_and_retries_a_taken_one(
    registry: RealRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's process owns its port; a taken auto-picked port is replaced."""
    assert registry.proc is not None
    assert registry.proc.listening_ports() == {registry.port}
    picks = iter([registry.port])  # first pick: a port our fixture's registry holds
    monkeypatch.setattr(rig_registry, "free_port", lambda: next(picks, free_port()))
    second = RealRegistry(tmp_path / "w2", root_dir=tmp_path / "s2")
    with second:
        assert second.port != registry.port
        assert second.client().ping()


@pytest.mark.registry
def test_schema1_needs_compat_flag_and_is_stored_canonical(tmp_path: Path, skopeo_bin: str) -> None:
    """Signed schema1 pushes only with compatibility.schema1; the blob is the unsigned payload."""
    require_tool("docker-registry")
    s1 = oci.schema1_manifest("s1", name="old/app", tag="v1")
    plain = RealRegistry(tmp_path / "w1", root_dir=tmp_path / "s1")
    with plain:
        with pytest.raises(RegistryError) as err:
            plain.client().push_image("old/app", "v1", s1)
        # 2.8.2 answers 500 UNKNOWN ("manifest schema v1 unsupported") without the flag.
        assert err.value.status == 500
    compat = RealRegistry(
        tmp_path / "w2",
        root_dir=tmp_path / "s2",
        extra_config={"compatibility": {"schema1": {"enabled": True}}},
    )
    with compat:
        assert compat.client().push_image("old/app", "v1", s1) == s1.digest
        assert compat.read_key(blob_data_key(s1.digest)) == s1.canonical.data
        assert compat.read_key(tag_current_key("old/app", "v1")) == s1.digest.encode()
        served = compat.client().get_manifest("old/app", "v1")
        assert served.media_type == oci.SCHEMA1_SIGNED_MANIFEST
        assert_pulls(compat, "old/app", "v1", tmp_path)


# -- S3 --------------------------------------------------------------------------------


@pytest.mark.registry
@pytest.mark.s3
def test_registry_over_s3_push_pull_and_keys(
    registry_s3: RealRegistry,
    s3_server: SeaweedS3,
    s3_bucket: str,
    skopeo_bin: str,
    tmp_path: Path,
) -> None:
    """Over SeaweedFS S3: pushes land under the rootdirectory prefix, pull back, GC runs."""
    client = registry_s3.client()
    image = oci.docker_image("s3-image")
    index = oci.multiarch("s3-index")
    sbom = oci.referrer(index, "s3-sbom")
    client.push_image("team/app", "v1", image)
    client.push_image("team/multi", "v1", index)
    client.push_image("team/multi", None, sbom)
    upload = client.start_upload("team/app", b"partial")
    for repo, ref in [("team/app", "v1"), ("team/multi", "v1"), ("team/multi", sbom.digest)]:
        assert_pulls(registry_s3, repo, ref, tmp_path / "pulls")

    raw = s3_server.list_keys(s3_bucket)
    assert all(k.startswith("reg/docker/registry/v2/") for k in raw)
    fs = s3_server.filesystem()
    listed = {p.removeprefix(f"{s3_bucket}/") for p in fs.find(s3_bucket)}
    assert listed == set(raw)
    keys = registry_s3.keys()
    assert_image_on_storage(keys, "team/app", image)
    assert_image_on_storage(keys, "team/multi", index)
    assert_image_on_storage(keys, "team/multi", sbom)
    assert registry_s3.read_key(tag_current_key("team/multi", "v1")) == index.digest.encode()
    # On S3 an unfinished upload is startedat + hashstates objects and an open multipart
    # upload for its data (no data object).
    up = upload_prefix("team/app", upload.uuid)
    assert f"{up}/startedat" in keys
    assert f"{up}/data" not in keys
    mpus = s3_server.list_multipart_uploads(s3_bucket, "reg/")
    assert [u["Key"] for u in mpus] == [f"reg/docker/registry/v2/{up}/data"]

    gc = registry_s3.garbage_collect(delete_untagged=False, dry_run=True)
    assert "0 blobs and 0 manifests eligible for deletion" in gc.stdout


@pytest.mark.registry
@pytest.mark.s3
def test_registry_over_s3_bucket_root(
    s3_server: SeaweedS3, s3_bucket: str, skopeo_bin: str, tmp_path: Path
) -> None:
    """With rootdirectory "/", the layout starts at the bucket root (docker/registry/v2/)."""
    require_tool("docker-registry")
    storage = S3Storage.on(s3_server, s3_bucket, rootdirectory="/")
    with RealRegistry(tmp_path / "w", s3=storage) as reg:
        image = oci.oci_image("root")
        reg.client().push_image("app", "v1", image)
        assert_pulls(reg, "app", "v1", tmp_path)
        assert reg.storage_root == f"{s3_bucket}/docker/registry/v2"
        assert_image_on_storage(reg.keys(), "app", image)
    raw = s3_server.list_keys(s3_bucket)
    assert raw
    assert all(k.startswith("docker/registry/v2/") for k in raw)


@pytest.mark.s3
def test_moto_reports_per_key_delete_errors(moto_server: MotoS3, moto_bucket: str) -> None:
    """MotoS3.deny makes DeleteObjects return per-key AccessDenied errors."""
    client = moto_server.client()
    for key in ("protected/a", "open/b"):
        client.put_object(Bucket=moto_bucket, Key=key, Body=b"x")
    moto_server.deny(moto_bucket, "protected/")
    resp = client.delete_objects(
        Bucket=moto_bucket,
        Delete={"Objects": [{"Key": "protected/a"}, {"Key": "open/b"}], "Quiet": True},
    )
    assert [(e["Key"], e["Code"]) for e in resp.get("Errors", [])] == [
        ("protected/a", "AccessDenied")
    ]
    assert set(moto_server.list_keys(moto_bucket)) == {"protected/a"}
    fs = moto_server.filesystem()
    assert fs.cat_file(f"{moto_bucket}/protected/a") == b"x"


@pytest.mark.s3
def test_moto_runs_in_a_process_of_its_own_outside_coverage(moto_server: MotoS3) -> None:
    """The moto server runs in its own process, started without coverage's subprocess variables."""
    proc = moto_server.proc
    assert proc is not None
    assert proc.running
    assert proc.pid != os.getpid()
    assert proc.env is not None
    assert not [k for k in proc.env if k.startswith("COVERAGE_PROCESS_")]
    port = int(moto_server.endpoint_url.rsplit(":", 1)[1])
    assert proc.owns_ports([port])


def test_the_soak_runs_the_collector_outside_coverage(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc_env drops coverage's subprocess variables and puts this checkout on PYTHONPATH."""
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", "{}")
    monkeypatch.setenv("COVERAGE_PROCESS_START", "pyproject.toml")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = soak.gc_env()
    assert "COVERAGE_PROCESS_CONFIG" not in env
    assert "COVERAGE_PROCESS_START" not in env
    checkout = str(Path(soak.__file__).resolve().parents[2])
    assert env["PYTHONPATH"].split(os.pathsep) == [checkout, "/elsewhere"]


def _tracer(_frame: object, _event: str, _arg: object) -> None:
    """A trace function that traces nothing: what new threads inherit in the tests below."""


def test_untraced_threads_run_without_a_trace_function() -> None:
    """Threads of untraced_executor and put_untraced clear what new threads inherit.

    Under ``coverage run`` every new thread starts with coverage's tracer (its
    ``threading.settrace`` hook): a plain pool's threads keep it, these do not.
    """
    previous = threading.gettrace()
    threading.settrace(_tracer)
    got: dict[str, tuple[bytes, object]] = {}
    try:
        with ThreadPoolExecutor(1) as plain:
            in_plain = plain.submit(sys.gettrace).result()
        with untraced_executor(2) as pool:
            in_untraced = pool.submit(sys.gettrace).result()
        put_untraced(lambda k, d: got.__setitem__(k, (d, sys.gettrace())), {"a": b"1", "b": b"2"})
    finally:
        threading.settrace(previous)
    assert in_plain is _tracer
    assert in_untraced is None
    assert got == {"a": (b"1", None), "b": (b"2", None)}


def test_the_proxy_serves_from_threads_without_a_trace_function() -> None:
    """The storage proxy's connection threads run outside coverage's tracer, too."""
    seen: list[object] = []

    def answer(_request: object, _forward: object) -> Response:
        seen.append(sys.gettrace())
        return Response(200, {"Content-Type": "text/plain"}, b"ok")

    previous = threading.gettrace()
    threading.settrace(_tracer)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from env
        with (
            StorageProxy("http://127.0.0.1:9", intercept=answer) as proxy,
            opener.open(proxy.url + "/x", timeout=10) as response,
        ):
            assert response.read() == b"ok"
    finally:
        threading.settrace(previous)
    assert seen == [None]


def _collected_soaks(**env: str) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    out = subprocess.run(
        [*argv, "tests/test_soak.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**untraced_environ(), **env},  # a collection, not measured: no coverage
    ).stdout
    return sorted(line.split("::", 1)[1] for line in out.splitlines() if "::" in line)


def test_ci_runs_four_soaks_and_the_soak_session_all_seven() -> None:
    """Without REGISTRY_GC_SOAK_MATRIX=full the soak_matrix pairs are deselected, not lost."""
    live = "test_live_mode_loses_no_acknowledged_push"
    ci = _collected_soaks(REGISTRY_GC_SOAK_MATRIX="")
    assert ci == [
        f"{live}[disk-inmemory]",
        f"{live}[disk-none]",
        f"{live}[s3-redis]",
        "test_without_live_mode_acknowledged_pushes_break",
    ]
    full = _collected_soaks(REGISTRY_GC_SOAK_MATRIX="full")
    pairs = [f"{live}[{s}-{c}]" for s in ("disk", "s3") for c in ("inmemory", "none", "redis")]
    assert full == sorted([*pairs, "test_without_live_mode_acknowledged_pushes_break"])


@pytest.mark.s3
@pytest.mark.slow
def test_two_seaweed_instances_side_by_side(s3_server: SeaweedS3, tmp_path: Path) -> None:
    """A second weed mini starts next to the session one on other ports, data apart."""
    require_tool("weed")
    with SeaweedS3(tmp_path / "second").start() as second:
        assert set(second.ports.values()).isdisjoint(s3_server.ports.values())
        bucket = second.make_bucket()
        second.client().put_object(Bucket=bucket, Key="k", Body=b"v")
        assert second.list_keys(bucket) == {"k": 1}
        assert bucket not in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}


# -- the soak's model and checks (tests/rigs/soak.py) ----------------------------------------------


@pytest.mark.registry
def test_registry_deletes_tags_only_by_digest_as_the_soak_model_says(
    registry: RealRegistry,
) -> None:
    """2.8.2 refuses DELETE by tag; DELETE by digest untags every tag naming it (the model too)."""
    client = registry.client()
    a, b = oci.docker_image("soak-del-a"), oci.docker_image("soak-del-b")
    model = soak.Model(time.monotonic)
    client.push_image("app", "t1", a)
    client.push_manifest("app", "t2", a)
    client.push_image("app", "t3", b)
    for tag, obj in (("t1", a), ("t2", a), ("t3", b)):
        model.tag_acked(0, "app", tag, obj)
    with pytest.raises(RegistryError) as refused:
        client.request("DELETE", "/v2/app/manifests/t1", expect=(202,))
    assert refused.value.status == 400
    client.delete_manifest("app", a.digest)
    model.delete_acked(0, "app", a.digest)
    assert client.tags("app") == ["t3"]
    assert model.tags_now() == {("app", "t3"): b.digest}
    _, expected = model.snapshot()
    assert [(e.repo, e.digest, e.tags) for e in expected] == [("app", b.digest, ("t3",))]


def test_soak_model_expects_last_tags_and_referrers_of_tagged_subjects() -> None:
    """A tag's last acknowledged manifest must pull; a referrer only while its subject is tagged."""
    model = soak.Model(time.monotonic)
    old, new = oci.docker_image("soak-m-old"), oci.multiarch("soak-m-new")
    model.tag_acked(1, "app", "w1-0", old)
    sig = oci.referrer(old, "soak-m-sig")
    model.referrer_acked("app", old.digest, sig)
    _, expected = model.snapshot()
    assert {e.digest for e in expected} == {old.digest, sig.digest}
    child_sig = oci.referrer(new.children[0], "soak-m-child-sig")
    model.tag_acked(1, "app", "w1-0", new)  # old is untagged: it and its referrer may go
    model.referrer_acked("app", new.children[0].digest, child_sig)
    model.referrer_acked("app", old.digest, oci.referrer(old, "late"))  # subject untagged
    _, expected = model.snapshot()
    assert {(e.digest, e.subject) for e in expected} == {
        (new.digest, None),
        (child_sig.digest, new.children[0].digest),
    }
    assert model.pick_retired(random.Random(0), "app") == old
    assert model.pick_retired(random.Random(0), "app", owner=2) is None
    # Re-tagging the old image does not bring back the referrer it had: it may be gone.
    model.tag_acked(1, "app", "w1-1", old)
    _, expected = model.snapshot()
    assert sig.digest not in {e.digest for e in expected}
    # A PUT whose outcome is unknown: the tag is not checked until its next acknowledgement.
    seq, before = model.snapshot()
    model.tag_uncertain(1, "app", "w1-1")
    assert model.tags_now() == {("app", "w1-0"): new.digest}
    assert model.changed_since(next(e for e in before if e.digest == old.digest), seq)
    # A DELETE in flight: the registry may already have removed the revision link.
    seq, before = model.snapshot()
    current = next(e for e in before if e.digest == new.digest)
    assert not model.changed_since(current, seq)
    model.delete_started("app", current.digest)
    assert model.changed_since(current, seq)
    # ... and a snapshot taken while it is in flight does not expect the image at all
    _, during = model.snapshot()
    assert current.digest not in {e.digest for e in during}
    # answered 404 (nothing deleted): the tag is expected again
    model.delete_ended("app", current.digest)
    _, after = model.snapshot()
    assert current.digest in {e.digest for e in after}


def test_soak_live_figures_read_any_report() -> None:
    """The live object's figures, 0 when absent; other numbers kept; lists counted."""
    assert soak.live_figures(None) == dict.fromkeys(soak.LIVE_KEYS, 0)
    assert soak.live_figures({"totals": {"objects": 3}}) == dict.fromkeys(soak.LIVE_KEYS, 0)
    report = {"live": {"moved_blobs": 4, "restored_blobs": [1, 2], "settle": 1.5, "ok": True}}
    assert soak.live_figures(report) == {
        "moved_blobs": 4,
        "restored_blobs": 2,
        "restored_links": 0,
        "purged_blobs": 0,
        "settle": 1,
    }
    assert soak.deleted_objects({"totals": {"objects": 3}}) == 3
    assert soak.deleted_objects(soak.read_report("not json")) == 0


def test_soak_reads_what_a_run_deleted_from_its_deletions_file(tmp_path: Path) -> None:
    """Only lines with status deleted count; a missing or cut file reads as nothing deleted."""
    out = tmp_path / "deletions.jsonl"
    lines = [
        {"schema": "registry-gc/plan/v1"},
        {"status": "deleted", "paths": [["docker/a/data", 3, 1.0], ["docker/a/link", 1, 1.0]]},
        {"status": "failed", "paths": [["docker/b/data", 3, 1.0]]},
    ]
    out.write_text("\n".join(json.dumps(line) for line in lines) + "\n{cut")
    assert soak.deleted_paths(out) == {"docker/a/data", "docker/a/link"}
    assert soak.deleted_paths(tmp_path / "absent.jsonl") == frozenset()
    report = {"live": {"run": "r1", "restored": {"blobs": ["x"], "links": ["y"]}}}
    assert soak.report_paths(report) == ("r1", frozenset({"x", "y"}))
    assert soak.report_paths(None) == ("", frozenset())


@pytest.mark.registry
def test_soak_verify_gets_every_blob_and_names_what_is_missing(registry: RealRegistry) -> None:
    """verify() downloads every manifest, config and layer by digest; a missing one is named."""
    client = registry.client()
    index = oci.multiarch("soak-verify")
    client.push_image("app", "v1", index)
    assert soak.verify(client, "app", index) is None
    child = index.children[1]
    assert isinstance(child, oci.Image)
    registry.delete_key(blob_data_key(child.layers[0].digest))
    missing = soak.verify(client, "app", index)
    assert missing is not None
    assert (missing.what, missing.digest) == ("layer", child.layers[0].digest)
    assert missing.detail.startswith("HTTP 404")


class _LocalStorage:
    """What :meth:`soak.Soak.registry_raced_itself` asks of a registry: its storage."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def storage_fs(self) -> tuple[object, str]:
        import fsspec  # noqa: PLC0415 - heavy, and only here

        return fsspec.filesystem("file"), str(self.root)


def test_a_500_is_the_registry_racing_itself_only_while_the_storage_holds_the_manifest(
    tmp_path: Path,
) -> None:
    """Only a manifest GET's 500 with the blob present and its link naming it is not counted.

    A 404, a layer, a blob moved away behind its link (registry-gc's doing: it also
    answers 500) or a link still empty when looked at stay failures of the soak.
    """
    digest = "sha256:" + "ab" * 32
    looker = type("Looker", (), {"registry": _LocalStorage(tmp_path)})()

    def raced(what: str, detail: str) -> bool:
        return soak.Soak.registry_raced_itself(  # type: ignore[arg-type]
            looker, "app", soak.Missing(what, digest, detail)
        )

    blob = tmp_path / rig_registry.blob_data_key(digest)
    link = tmp_path / rig_registry.revision_link_key("app", digest)
    error = 'HTTP 500 {"errors":[{"code":"UNKNOWN","message":"unknown error"}]}'
    assert not raced("manifest", error)  # nothing in the storage
    link.parent.mkdir(parents=True)
    link.write_text(digest)
    assert not raced("manifest", error)  # the blob moved away: registry-gc's doing
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"{}")
    assert raced("manifest", error)
    assert raced("index", error)
    assert not raced("manifest", "HTTP 404 MANIFEST_UNKNOWN")
    assert not raced("layer", error)
    link.write_text("")
    assert not raced("manifest", error)  # still half-written: cannot tell
