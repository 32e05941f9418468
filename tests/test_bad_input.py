"""Bad input: a corpus of broken, hostile or odd storage trees, and what a run does with each.

Every item is generated (no fixed files): it is added to a baseline registry that
holds live images *and* old garbage (so that a sweep has something to delete), then
``collect(delete_untagged=True, grace=0)`` runs on a local disk. Each item must give
either a clear error naming the object (:class:`~registry_gc.RefusedError` or
:class:`~registry_gc.StorageError`, and then not one file changes), or a reported
anomaly (kind and path) — and in every case, nothing that could be live is deleted:
every blob a tag reaches (computed here, from what was built) survives, and every tag
of the baseline still has all it needs to be pulled.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from registry_gc import RefusedError, StorageError, cli, collect
from registry_gc.layout import (
    REPOSITORIES_PREFIX,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    UploadFile,
    blob_path,
    classify,
)
from registry_gc.manifests import MAX_MANIFEST_SIZE

from tests.rigs.builder import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryBuilder, sha256

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ZERO = datetime.timedelta(0)
DAY = 86400.0
R = REPOSITORIES_PREFIX
UTC = datetime.timezone.utc


# -- the baseline and its oracle -------------------------------------------------------------------


def baseline(b: RegistryBuilder) -> None:
    """Live images (one sharing a layer with garbage), and old garbage of several kinds."""
    shared = b.layer("keep")
    b.image("keep", "t", shared=[shared])
    b.multiarch("keep", "multi")
    b.image("keep", None, shared=[shared])  # dead under -m
    b.image("keep/nested", "v1")
    b.blob(b"an orphan blob")
    b.upload("keep", age=3 * DAY)


def reached(b: RegistryBuilder) -> dict[str, set[str]]:
    """Tag (``repo:tag``) → every path a pull of it needs, by the builder's own records."""
    out: dict[str, set[str]] = {}

    def walk(repo: Repository, d: Digest, acc: set[str]) -> None:
        acc |= {blob_path(d), RevisionLink(repo, d).path}
        for x in b.contents[d]["blobs"]:
            acc |= {blob_path(x), LayerLink(repo, x).path}
        for child in b.contents[d]["children"]:
            walk(repo, child, acc)

    for path, data in b.files.items():
        key = classify(path)
        if not isinstance(key, TagCurrentLink):
            continue
        try:
            target = Digest(data.decode())
        except (UnicodeDecodeError, ValueError):
            continue
        if target in b.contents and RevisionLink(key.repository, target).path in b.files:
            acc: set[str] = {path}
            walk(key.repository, target, acc)
            if acc <= set(b.files):
                out[f"{key.repository}:{key.tag}"] = acc
    return out


def files_of(root: Path) -> dict[str, bytes]:
    """Every file (symbolic links as what they point at) under ``root``: path → bytes."""
    out: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(os.fsencode(root), followlinks=True):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(full, os.fsencode(root)))
            out[rel] = os.readlink(full) if os.path.islink(full) else open(full, "rb").read()  # noqa: SIM115
    return out


@dataclass
class Expect:
    """What a corpus item must produce."""

    outcome: str  #: "refused", "anomaly" or "storage-error"
    #: text the error (or one problem, or the anomaly's message) must contain
    names: list[str] = field(default_factory=list)
    #: (anomaly kind, path) pairs that must be reported
    anomalies: list[tuple[str, str]] = field(default_factory=list)
    #: paths that must survive the run (beyond what tags reach)
    keep: list[str] = field(default_factory=list)
    delete_untagged: bool = True


# -- the corpus ------------------------------------------------------------------------------------


def tagged_bytes(b: RegistryBuilder, data: bytes, repo: str = "bad") -> Expect:
    """A tagged manifest whose bytes are ``data``: the run refuses, naming repo and digest."""
    d = b.manifest(repo, data, tag="t")
    return Expect("refused", [str(d), f"'{repo}'"])


def tolerated_bytes(b: RegistryBuilder, data: bytes) -> Expect:
    """A tagged manifest Go decodes although Python's json would not: read, kept, no refusal."""
    d = b.manifest("bad", data, tag="t")
    return Expect("anomaly", keep=[RevisionLink(Repository("bad"), d).path, blob_path(d)])


def unknown_kind(b: RegistryBuilder, data: bytes) -> Expect:
    """A tagged manifest of a kind distribution does not know: its repository is kept whole."""
    d = b.manifest("bad", data, tag="t")
    b.link_layer("bad", b.blob(b"a layer only the repository links"))
    inside = [p for p in b.files if p.startswith(f"{R}bad/")]
    return Expect(
        "anomaly",
        anomalies=[("unknown-manifest-kind", blob_path(d)), ("damaged-repository", f"{R}bad/")],
        keep=[*inside, *(blob_path(Digest(b.files[p].decode())) for p in inside)],
    )


def valid_manifest(b: RegistryBuilder, layer: str) -> dict[str, Any]:
    """An OCI manifest with a real config and one layer descriptor naming ``layer``."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": b.layer("bad", b"{}"), "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": 1}],
    }


def truncated(b: RegistryBuilder) -> Expect:
    """A manifest cut in the middle."""
    whole = json.dumps(valid_manifest(b, b.layer("bad"))).encode()
    return tagged_bytes(b, whole[: len(whole) // 2])


def over_limit(b: RegistryBuilder) -> Expect:
    """A well-formed manifest one byte over distribution's 4 MiB."""
    doc = valid_manifest(b, b.layer("bad"))
    doc["annotations"] = {"pad": ""}
    size = len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * (MAX_MANIFEST_SIZE + 1 - size)
    data = json.dumps(doc).encode()
    assert len(data) == MAX_MANIFEST_SIZE + 1
    return tagged_bytes(b, data)


def wrong_reference(digest: str) -> Callable[[RegistryBuilder], Expect]:
    """A manifest referencing a malformed digest (length, algorithm, case)."""

    def build(b: RegistryBuilder) -> Expect:
        doc = valid_manifest(b, digest)
        d = b.manifest("bad", doc, tag="t")
        config = Digest(doc["config"]["digest"])
        repo = Repository("bad")
        return Expect(
            "anomaly",
            anomalies=[("invalid-reference", blob_path(d))],
            keep=[RevisionLink(repo, d).path, blob_path(d), LayerLink(repo, config).path],
        )

    return build


def zero_byte_blobs(b: RegistryBuilder) -> Expect:
    """An empty layer in a live image is kept; an old empty orphan blob is garbage."""
    empty = b.layer("zero", b"")
    b.image("zero", "t", shared=[empty])
    return Expect("anomaly", keep=[blob_path(empty)])


def current_link(content: bytes) -> Callable[[RegistryBuilder], Expect]:
    """A tag whose current link holds ``content`` (empty, garbage, truncated, wrong algorithm)."""

    def build(b: RegistryBuilder) -> Expect:
        d = b.image("links", "t")
        path = TagCurrentLink(Repository("links"), Tag("t")).path
        b.put(path, content)
        return Expect(
            "anomaly",
            anomalies=[("broken-link", path)],
            keep=[RevisionLink(Repository("links"), d).path, blob_path(d), path],
        )

    return build


def missing_targets(b: RegistryBuilder) -> Expect:
    """A tag at a missing manifest, and a live image with a missing layer: reported, kept."""
    lost = b.image("holes", "lost")
    b.remove(blob_path(lost))
    broken = b.image("holes", "broken")
    layer = b.contents[broken]["blobs"][1]
    b.remove(blob_path(layer))
    repo = Repository("holes")
    return Expect(
        "anomaly",
        anomalies=[
            ("missing-manifest", blob_path(lost)),
            ("missing-blob", blob_path(layer)),
            ("damaged-repository", f"{R}holes/"),
        ],
        keep=[RevisionLink(repo, lost).path, LayerLink(repo, layer).path, blob_path(broken)],
    )


def bad_path(path: str) -> Callable[[RegistryBuilder], Expect]:
    """A file whose path holds a digest of the wrong length, algorithm or case."""

    def build(b: RegistryBuilder) -> Expect:
        b.put(path, b"sha256:" + b"0" * 64)
        return Expect("anomaly", anomalies=[("unrecognized-path", path)], keep=[path])

    return build


def invalid_repository(name: str) -> Callable[[RegistryBuilder], Expect]:
    """An untagged image (and an old upload) in a directory that is no valid repository name."""

    def build(b: RegistryBuilder) -> Expect:
        repo = Repository._trusted(name)
        layer = b.blob(b"layer of " + name.encode())
        config = b.blob(b"{}" + name.encode())
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 1},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": 1}],
        }
        d = b.blob(json.dumps(doc).encode())
        b.put(RevisionLink(repo, d).path, d.encode())
        for x in (config, layer):
            b.put(LayerLink(repo, x).path, x.encode())
        b.put(UploadFile(repo, "old", "data").path, b"x", age=30 * DAY)
        inside = [p for p in b.files if p.startswith(f"{R}{name}/")]
        return Expect(
            "anomaly",
            anomalies=[("invalid-repository-name", f"{R}{name}/")],
            keep=[*inside, blob_path(d), blob_path(config), blob_path(layer)],
        )

    return build


HEX = "ab" + "0" * 62
CORPUS: dict[str, Callable[[RegistryBuilder], Expect]] = {
    "corrupt-json": lambda b: tagged_bytes(b, b'{"schemaVersion": 2, "mediaType": '),
    "truncated-json": truncated,
    "json-array": lambda b: tagged_bytes(b, b"[1, 2, 3]"),
    "json-null": lambda b: tagged_bytes(b, b"null"),
    "not-utf8": lambda b: tolerated_bytes(b, b'{"schemaVersion": 2, "x": "\xff\xfe"}'),
    "not-utf8-outside-strings": lambda b: tagged_bytes(b, b'{"schemaVersion": 2, \xff: 1}'),
    "zero-byte-manifest": lambda b: tagged_bytes(b, b""),
    "unknown-media-type": lambda b: unknown_kind(
        b, b'{"schemaVersion": 2, "mediaType": "application/x.unknown", "layers": []}'
    ),
    "schema-version-3": lambda b: unknown_kind(b, b'{"schemaVersion": 3}'),
    "over-4-MiB": over_limit,
    "digest-too-short": wrong_reference("sha256:abc"),
    "digest-md5": wrong_reference("md5:" + "a" * 32),
    "digest-sha1": wrong_reference("sha1:" + "a" * 40),
    "digest-upper-case": wrong_reference("sha256:" + "A" * 64),
    "zero-byte-blobs": zero_byte_blobs,
    "current-link-empty": current_link(b""),
    "current-link-garbage": current_link(b"garbage\x00\xff"),
    "current-link-truncated": current_link(b"sha256:0123"),
    "current-link-md5": current_link(b"md5:" + b"a" * 32),
    "current-link-newline": current_link(b"sha256:" + b"a" * 64 + b"\n"),
    "missing-manifest-and-layer": missing_targets,
    "blob-path-short-hex": bad_path("docker/registry/v2/blobs/sha256/ab/abcd/data"),
    "blob-path-md5": bad_path(f"docker/registry/v2/blobs/md5/ab/{'ab' * 16}/data"),
    "blob-path-upper-case": bad_path(f"docker/registry/v2/blobs/sha256/AB/{HEX.upper()}/data"),
    "blob-path-wrong-fanout": bad_path(f"docker/registry/v2/blobs/sha256/cd/{HEX}/data"),
    "layer-link-sha1": bad_path(f"{R}keep/_layers/sha1/{'a' * 40}/link"),
    "revision-63-hex": bad_path(f"{R}keep/_manifests/revisions/sha256/{HEX[:63]}/link"),
    "tag-index-short": bad_path(f"{R}keep/_manifests/tags/t/index/sha256/abc/link"),
    "repository-upper-case": invalid_repository("Upper"),
    "repository-nested-upper-case": invalid_repository("keep/Sub"),
    "repository-dot-dot-in-name": invalid_repository("a..b"),
    "repository-percent-encoded-slash": invalid_repository("a%2Fb"),
    "repository-space": invalid_repository("with space"),
    "repository-too-long": invalid_repository("x" * 200 + "/" + "y" * 60),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_item_gives_a_named_error_or_anomaly_and_keeps_everything_live(
    tmp_path: Path, case: str
) -> None:
    """Each item: refusal naming it (nothing changes) or an anomaly; every tag still pulls."""
    b = RegistryBuilder(seed=hash(case) & 0xFFFF)
    baseline(b)
    expect = CORPUS[case](b)
    b.write_local(tmp_path)
    before = files_of(tmp_path)
    needed = reached(b)
    assert {"keep:t", "keep:multi", "keep/nested:v1"} <= set(needed)
    m = expect.delete_untagged
    if expect.outcome == "refused":
        with pytest.raises(RefusedError, match="nothing was deleted") as info:
            collect(tmp_path, delete_untagged=m, grace=ZERO)
        assert files_of(tmp_path) == before
        assert len(info.value.problems) == 1
        for text in expect.names:
            assert text in info.value.problems[0]
        return
    report = collect(tmp_path, delete_untagged=m, grace=ZERO)
    assert report.ok
    after = files_of(tmp_path)
    assert len(after) < len(before), "the baseline's garbage was swept"
    found = {(a.kind, a.path) for a in report.plan.anomalies}
    assert set(expect.anomalies) <= found
    missing = {p for p in expect.keep if p not in after}
    assert not missing, f"deleted although it could be live: {sorted(missing)[:3]}"
    for tag, paths in needed.items():
        assert paths <= set(after), f"{tag} lost {sorted(paths - set(after))[:3]}"


@pytest.mark.parametrize("case", ["corrupt-json", "digest-md5", "repository-upper-case"])
def test_corpus_through_the_cli_exit_codes_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Via the CLI: a refusal exits 3 and lists the problem; an anomaly is in the JSON, exit 0."""
    b = RegistryBuilder(seed=3)
    baseline(b)
    expect = CORPUS[case](b)
    b.write_local(tmp_path)
    before = files_of(tmp_path)
    capsys.readouterr()
    code = cli.run(["gc", str(tmp_path), "-m", "--grace", "0s", "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    if expect.outcome == "refused":
        assert code == cli.EXIT_REFUSED
        assert files_of(tmp_path) == before
        assert doc["ok"] is False
        assert all(text in doc["problems"][0] for text in expect.names)
        assert expect.names[0] in err
    else:
        assert code == cli.EXIT_OK, err
        assert {(a["kind"], a["path"]) for a in doc["anomalies"]} >= set(expect.anomalies)


@pytest.mark.parametrize("where", ["revision", "layer"])
@pytest.mark.parametrize("content", [b"", b"garbage", b"sha256:0123", b"md5:" + b"a" * 32])
def test_garbage_revision_and_layer_link_contents_keep_everything_and_fsck_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, content: bytes
) -> None:
    """A run decides by path (the content is not read): nothing is lost; fsck names the link."""
    b = RegistryBuilder(seed=4)
    baseline(b)
    d = b.image("links", "t")
    repo = Repository("links")
    path = (
        RevisionLink(repo, d).path
        if where == "revision"
        else LayerLink(repo, b.contents[d]["blobs"][1]).path
    )
    b.put(path, content)
    b.write_local(tmp_path)
    report = collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert report.ok
    after = files_of(tmp_path)
    for tag, paths in reached(b).items():
        assert paths <= set(after), tag
    assert after[path] == content
    capsys.readouterr()
    code = cli.run(["fsck", str(tmp_path), "links", "--json"])
    out, _ = capsys.readouterr()
    assert code == cli.EXIT_FAILED
    problems = json.loads(out)["problems"]
    assert {p["kind"] for p in problems if p["path"] == path} == {f"broken-{where}-link"}


# -- names with a ".." component (possible on object stores, not on a disk) ------------------------


@pytest.mark.parametrize("name", ["..", "x/../y", "x/..", "./z"])
def test_dot_dot_components_on_an_object_store_are_never_touched(name: str) -> None:
    """memory:// keys with '..'/'.' components: an invalid repository, reported, never deleted."""
    b = RegistryBuilder(seed=5)
    baseline(b)
    expect = invalid_repository(name)(b)
    fs = fsspec.filesystem("memory")
    root = f"/rgc-bad-{uuid.uuid4().hex}"
    b.write_fs(fs, root)
    for path in b.files:
        f = fs.store[f"{root}/{path}"]
        f.created = f.modified = datetime.datetime.fromtimestamp(1e9, UTC)
    try:
        report = collect("memory://" + root, delete_untagged=True, grace=ZERO)
        after = {p[len(root) + 1 :] for p in fs.find(root)}
    finally:
        fs.rm(root, recursive=True)
    assert report.ok
    assert any(a.kind == "invalid-repository-name" for a in report.plan.anomalies)
    assert set(expect.keep) <= after
    for tag, paths in reached(b).items():
        assert paths <= after, tag
    assert not [p for p in report.plan.paths if ".." in p.split("/") or "/./" in p]


# -- non-UTF-8 file names --------------------------------------------------------------------------


def test_non_utf8_file_names_are_reported_and_never_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names that are not UTF-8 under repositories/ and blobs/: scanned, reported, left alone."""
    b = RegistryBuilder(seed=7)
    baseline(b)
    b.write_local(tmp_path)
    v2 = os.fsencode(tmp_path / "docker/registry/v2")
    odd = [
        v2 + b"/repositories/caf\xe9/_manifests/revisions/sha256/x/link",
        v2 + b"/repositories/keep/_layers/sha256/\xff\xfe/link",
        v2 + b"/repositories/keep/_uploads/\xff/data",
        v2 + b"/blobs/sha256/ab/\xff\xfe/data",
        v2 + b"/blobs/\xe9/data",
    ]
    for path in odd:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"x")
        os.utime(path, (1e9, 1e9))
    report = collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert report.ok
    assert report.deleted_count > 0
    assert all(os.path.exists(p) for p in odd)
    kinds = {a.kind for a in report.plan.anomalies}
    assert {"invalid-repository-name", "unrecognized-path"} <= kinds
    assert any("\udcff" in a.path for a in report.plan.anomalies)
    after = files_of(tmp_path)
    for tag, paths in reached(b).items():
        assert paths <= set(after), tag
    # The reports render (text and JSON) without failing on the undecodable names.
    assert "\\udcff" in json.dumps(report.to_dict())
    report.render(verbose=True)
    for extra in ([], ["--json"], ["-v"]):
        capsys.readouterr()
        code = cli.run(["gc", str(tmp_path), "-m", "--grace", "0s", *extra])
        out, err = capsys.readouterr()
        assert code == cli.EXIT_OK, err
        assert "caf" in out
    assert all(os.path.exists(p) for p in odd)


# -- symbolic links --------------------------------------------------------------------------------


def test_symlinked_repository_inside_the_tree_is_refused_as_an_alias(
    tmp_path: Path,
) -> None:
    """repositories/alias -> repositories/keep: data under two names is refused, nothing goes."""
    b = RegistryBuilder(seed=8)
    baseline(b)
    b.write_local(tmp_path)
    repos = tmp_path / R
    os.symlink(repos / "keep", repos / "alias")
    before = files_of(tmp_path)
    with pytest.raises(StorageError, match="two names") as info:
        collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert "repositories/alias" in str(info.value)
    assert files_of(tmp_path) == before


def test_two_links_to_one_directory_outside_the_tree_are_refused(tmp_path: Path) -> None:
    """Two repositories linked to one directory in the root: two names, one data; nothing goes."""
    b = RegistryBuilder(seed=11)
    baseline(b)
    b.write_local(tmp_path)
    repos = tmp_path / R
    shared = tmp_path / "shared-repo"
    shutil.move(repos / "keep", shared)
    os.symlink(shared, repos / "keep")
    os.symlink(shared, repos / "second")
    before = files_of(tmp_path)
    with pytest.raises(StorageError, match="two names") as info:
        collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert "repositories/" in str(info.value)
    assert files_of(tmp_path) == before


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    """A directory on tmpfs (/dev/shm), which keeps 64-bit file times; removed afterwards."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm (tmpfs) on this machine")
    path = Path(tempfile.mkdtemp(prefix="registry-gc-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.parametrize("far", [2**40, -(2**40)], ids=["year-36812", "before-year-1"])
def test_a_timestamp_python_cannot_represent_counts_as_young(tmpfs_dir: Path, far: int) -> None:
    """A blob whose mtime no datetime can hold (tmpfs keeps 64-bit times) is kept and reported."""
    b = RegistryBuilder(seed=12)
    baseline(b)
    orphan = sha256(b"an orphan from another age")
    b.put(blob_path(orphan), b"an orphan from another age")
    b.write_local(tmpfs_dir)
    os.utime(tmpfs_dir / blob_path(orphan), (far, far))
    assert int(os.stat(tmpfs_dir / blob_path(orphan)).st_mtime) == far
    report = collect(tmpfs_dir, delete_untagged=True, grace=ZERO)
    assert report.ok
    assert (tmpfs_dir / blob_path(orphan)).exists()
    assert blob_path(orphan) in {k.path for k in report.plan.kept}
    assert "unknown-time" in {a.kind for a in report.plan.anomalies}
    assert report.deleted_count > 0, "the rest of the garbage still goes"


def test_blobs_directory_symlinked_elsewhere_inside_the_root_is_swept_through_the_link(
    tmp_path: Path,
) -> None:
    """blobs/sha256 -> <root>/bulk/sha256: garbage goes through the link, live blobs and it stay."""
    b = RegistryBuilder(seed=9)
    baseline(b)
    b.write_local(tmp_path)
    orphan = blob_path(sha256(b"an orphan blob"))
    real = tmp_path / "bulk" / "sha256"
    real.parent.mkdir()
    shutil.move(tmp_path / "docker/registry/v2/blobs/sha256", real)
    os.symlink(real, tmp_path / "docker/registry/v2/blobs/sha256")
    report = collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert report.ok
    assert orphan in report.plan.paths
    assert not (tmp_path / orphan).exists()
    assert (tmp_path / "docker/registry/v2/blobs/sha256").is_symlink()
    after = files_of(tmp_path)
    for tag, paths in reached(b).items():
        assert paths <= set(after), tag


def test_symlinked_blob_files_inside_the_root(tmp_path: Path) -> None:
    """A live blob's data as a link into the root is read through it; a garbage one is unlinked."""
    b = RegistryBuilder(seed=10)
    baseline(b)
    live_manifest = Digest(b.files[TagCurrentLink(Repository("keep"), Tag("t")).path].decode())
    orphan = sha256(b"an orphan blob")
    b.write_local(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    for d in (live_manifest, orphan):
        target = store / d.hex
        shutil.move(tmp_path / blob_path(d), target)
        os.symlink(target, tmp_path / blob_path(d))
    report = collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert report.ok
    assert blob_path(orphan) in report.plan.paths
    assert not os.path.lexists(tmp_path / blob_path(orphan)), "the link is gone"
    assert (store / orphan.hex).exists(), "its target (outside v2) is not"
    assert (tmp_path / blob_path(live_manifest)).is_symlink()
    after = files_of(tmp_path)
    for tag, paths in reached(b).items():
        assert paths <= set(after), tag


@pytest.mark.parametrize("what", ["repository-dir", "blob-file", "link-file"])
def test_symlink_out_of_the_root_refuses_naming_the_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    """A link leading out of the root: StorageError naming it, exit 4, not one file changes."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    b = RegistryBuilder(seed=11)
    baseline(b)
    b.write_local(root)
    outside.mkdir()
    (outside / "precious").write_bytes(b"sha256:" + b"1" * 64)
    if what == "repository-dir":
        link = f"{R}evil"
        os.symlink(outside, root / link)
    elif what == "blob-file":
        link = blob_path(sha256(b"an orphan blob"))
        (root / link).unlink()
        os.symlink(outside / "precious", root / link)
    else:
        link = f"{R}keep/_layers/sha256/{'1' * 64}/link"
        (root / link).parent.mkdir(parents=True)
        os.symlink(outside / "precious", root / link)
    before, outside_before = files_of(root), files_of(outside)
    with pytest.raises(StorageError, match="outside the registry root") as info:
        collect(root, delete_untagged=True, grace=ZERO)
    assert link in str(info.value)
    capsys.readouterr()
    assert cli.run(["gc", str(root), "-m", "--grace", "0s"]) == cli.EXIT_STORAGE
    assert link in capsys.readouterr().err
    assert files_of(root) == before
    assert files_of(outside) == outside_before


def test_directory_aliased_into_another_repository_loses_nothing(tmp_path: Path) -> None:
    """repositories/b/_layers -> repositories/a/_layers: refused by name, nothing deleted."""
    b = RegistryBuilder(seed=12)
    baseline(b)
    b.image("a", "t")
    b.image("b", "t")
    b.write_local(tmp_path)
    repos = tmp_path / R
    shutil.rmtree(repos / "b/_layers")
    os.symlink(repos / "a/_layers", repos / "b/_layers")
    before = files_of(tmp_path)
    with pytest.raises(StorageError, match="two names"):
        collect(tmp_path, delete_untagged=True, grace=ZERO)
    after = files_of(tmp_path)
    assert after == before
    assert reached(b)["a:t"] <= set(after)


def test_live_blob_linked_to_a_garbage_blob_file_survives(tmp_path: Path) -> None:
    """A live blob's data links to an orphan blob's file: refused, both stay readable."""
    b = RegistryBuilder(seed=13)
    baseline(b)
    img = b.image("dedup", "t")
    layer = b.contents[img]["blobs"][1]
    b.write_local(tmp_path)
    data = (tmp_path / blob_path(layer)).read_bytes()
    twin = tmp_path / blob_path(sha256(b"an orphan blob"))
    twin.write_bytes(data)
    os.utime(twin, (1e9, 1e9))
    (tmp_path / blob_path(layer)).unlink()
    os.symlink(twin, tmp_path / blob_path(layer))
    with pytest.raises(StorageError, match="two names"):
        collect(tmp_path, delete_untagged=True, grace=ZERO)
    assert twin.exists()
    assert (tmp_path / blob_path(layer)).exists()
    assert (tmp_path / blob_path(layer)).read_bytes() == data
