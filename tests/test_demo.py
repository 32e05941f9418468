"""The demo registry (``registry-gc demo DIR``): real content, the registry's own layout, pullable.

The end-to-end tests are the verdict: the real registry serves the demo
directory and skopeo pulls every tag from it, before and after ``gc -m``; and
pushing the same content through the real registry gives the same files.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import tarfile
from pathlib import Path
from typing import Any

import pytest
from registry_gc import TargetNotEmptyError, collect
from registry_gc.cli import run
from registry_gc.demo import (
    BUILDS,
    FIRST_SIGNED_BUILD,
    TOOLS,
    WEB,
    DemoRegistry,
    write_demo_registry,
)

from tests.conftest import require_tool
from tests.rigs.oci import Blob
from tests.rigs.registry import RealRegistry
from tests.rigs.skopeo import pull_all

V2 = Path("docker/registry/v2")
NOW = 1_790_000_000.0
HOUR = 3600.0


@pytest.fixture
def demo(tmp_path: Path) -> DemoRegistry:
    """A demo registry written into ``tmp_path/"demo"``."""
    return write_demo_registry(tmp_path / "demo")


def files(root: Path) -> dict[str, Path]:
    """Every file under ``root``, by its path relative to ``root``."""
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def blob(root: Path, digest: str) -> bytes:
    """The bytes of a blob of the store at ``root``."""
    hexpart = digest.split(":", 1)[1]
    return (root / V2 / "blobs/sha256" / hexpart[:2] / hexpart / "data").read_bytes()


def revisions(root: Path, repo: str) -> dict[str, dict[str, Any]]:
    """The manifests a repository holds a revision of: digest → parsed manifest."""
    base = root / V2 / "repositories" / repo / "_manifests/revisions/sha256"
    return {f"sha256:{d.name}": json.loads(blob(root, f"sha256:{d.name}")) for d in base.iterdir()}


def referrers(root: Path, repo: str) -> dict[str, str]:
    """Digest of each manifest with a ``subject`` → the subject's digest."""
    return {d: m["subject"]["digest"] for d, m in revisions(root, repo).items() if "subject" in m}


# -- content and layout ------------------------------------------------------------------


def test_the_same_content_and_times_every_time(tmp_path: Path) -> None:
    """Two demos written with the same ``now`` are the same files, bytes and times."""
    one = write_demo_registry(tmp_path / "one", now=NOW)
    two = write_demo_registry(tmp_path / "two", now=NOW)
    a, b = files(tmp_path / "one"), files(tmp_path / "two")
    assert a.keys() == b.keys()
    for name, path in a.items():
        assert path.read_bytes() == b[name].read_bytes(), name
        assert path.stat().st_mtime == b[name].stat().st_mtime, name
    assert one.tags == two.tags
    assert one.files == len(a)
    assert one.bytes == sum(p.stat().st_size for n, p in a.items() if "/blobs/" in n)


def test_what_it_holds(demo: DemoRegistry) -> None:
    """Twenty pushes of one tag, a release with a .sig tag, referrers, an index pushed twice."""
    root = Path(demo.root)
    tags = {f"{r}:{t}" for r, t in demo.tags}
    release = demo.tags[WEB, "v1.0"]
    assert tags == {
        "acme/web:latest",
        "acme/web:v1.0",
        f"acme/web:sha256-{release.split(':')[1]}.sig",
        "acme/tools:stable",
    }
    history = root / V2 / "repositories" / WEB / "_manifests/tags/latest/index/sha256"
    assert len(list(history.iterdir())) == BUILDS
    signed = set(referrers(root, WEB).values())
    assert len(signed) == BUILDS - FIRST_SIGNED_BUILD
    assert demo.tags[WEB, "latest"] in signed
    index = json.loads(blob(root, demo.tags[TOOLS, "stable"]))
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    assert len(revisions(root, TOOLS)) == 6  # two indexes of two images each
    uploads = list((root / V2 / "repositories" / WEB / "_uploads").iterdir())
    assert len(uploads) == 1


def test_layers_are_gzipped_tars_matching_the_configs(demo: DemoRegistry) -> None:
    """Every layer is a valid tar.gz whose uncompressed digest is the config's diff_id."""
    root = Path(demo.root)
    checked = 0
    for repo in (WEB, TOOLS):
        for manifest in revisions(root, repo).values():
            if "layers" not in manifest or manifest["config"]["mediaType"].endswith(
                "empty.v1+json"
            ):
                continue
            config = json.loads(blob(root, manifest["config"]["digest"]))
            if not config["rootfs"]["diff_ids"][0].startswith("sha256:") or not config["os"]:
                continue  # cosign's .sig image: its "layer" is the signed payload
            for descriptor, diff_id in zip(
                manifest["layers"], config["rootfs"]["diff_ids"], strict=True
            ):
                data = blob(root, descriptor["digest"])
                assert len(data) == descriptor["size"]
                raw = gzip.decompress(data)
                assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
                with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                    assert tar.getnames()
                checked += 1
    assert checked == 3 * BUILDS + 4


def test_every_file_is_older_than_the_grace_period(tmp_path: Path) -> None:
    """Pushes span 30 days, the last about a day ago; the upload started 3 days ago, as it says."""
    write_demo_registry(tmp_path / "demo", now=NOW)
    times = {name: p.stat().st_mtime for name, p in files(tmp_path / "demo").items()}
    assert max(times.values()) <= NOW - 23 * HOUR
    assert min(times.values()) >= NOW - 30 * 24 * HOUR
    (started,) = (p for n, p in files(tmp_path / "demo").items() if n.endswith("/startedat"))
    three_days_ago = datetime.datetime.fromtimestamp(NOW - 72 * HOUR, datetime.timezone.utc)
    assert started.read_text() == three_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert started.stat().st_mtime == NOW - 72 * HOUR


def test_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    """A non-empty DIR (or a file) is refused, nothing is written; the CLI exits 2."""
    target = tmp_path / "registry"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(TargetNotEmptyError, match="is not empty"):
        write_demo_registry(target)
    assert os.listdir(target) == ["keep.txt"]
    assert run(["demo", str(target)]) == 2
    assert run(["demo", str(target / "keep.txt")]) == 2
    assert (target / "keep.txt").read_text() == "mine"
    assert run(["demo", str(tmp_path / "new" / "dir")]) == 0


def test_the_command_says_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``registry-gc demo DIR --json``: the files, the bytes and every tag with its digest."""
    assert run(["demo", str(tmp_path / "demo"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    again = write_demo_registry(tmp_path / "again")
    assert doc["schema"] == "registry-gc/demo/v1"
    assert doc["root"] == str(tmp_path / "demo")
    assert (doc["files"], doc["bytes"]) == (again.files, again.bytes)
    assert {(t["repository"], t["tag"]): t["digest"] for t in doc["tags"]} == again.tags


def test_dry_run_on_the_demo(demo: DemoRegistry) -> None:
    """A dry run with -m: the 18 old builds, 4 of their signatures, the old index; no tag."""
    report = collect(demo.root, delete_untagged=True, dry_run=True)
    root = Path(demo.root)
    deleted = {(d.category.value, d.repository, d.digest) for d in report.plan.deletions}
    live_children = [
        m["digest"] for m in json.loads(blob(root, demo.tags[TOOLS, "stable"]))["manifests"]
    ]
    live = [*demo.tags.values(), *live_children]
    live += [r for r, s in referrers(root, WEB).items() if s == demo.tags[WEB, "latest"]]
    assert len(live) == 7
    assert not {d for _, _, d in deleted} & set(live)
    categories = {k: v["count"] for k, v in report.categories().items() if v["count"]}
    assert categories == {
        "revision": (BUILDS - 2) + (BUILDS - FIRST_SIGNED_BUILD - 1) + 3,
        "tag-index": (BUILDS - 2) + 1,
        "layer-link": 45,
        "blob": 70,
        "upload": 1,
    }
    assert {d.reason for d in report.plan.deletions} == {
        "untagged",
        "stale-tag-history",
        "unreferenced",
        "stale-upload",
    }
    assert not report.plan.anomalies
    assert not report.plan.kept


# -- the README --------------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
DEMO_DIR = "/tmp/registry-gc-demo"


def readme_quick_start() -> tuple[list[str], str]:
    """The quick start's two commands, and the output shown for the first."""
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    (kind, commands), (_, output) = blocks[0], blocks[1]
    assert kind == "console"
    return commands.strip().splitlines(), output


def test_readme_quick_start_shows_what_it_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's first command, run on a fresh directory, prints exactly what it shows."""
    commands, shown = readme_quick_start()
    assert len(commands) == 2
    assert commands[1] == "pip install nox && nox -s tests"
    steps = [s.strip() for s in commands[0].split("&&")]
    assert steps[0] == "pip install ."
    target = str(tmp_path / "demo")
    printed = []
    for step in steps[1:]:
        argv = step.split()
        assert argv[0] == "registry-gc"
        assert run([target if a == DEMO_DIR else a for a in argv[1:]]) == 0, step
        printed.append(capsys.readouterr().out)
    assert "".join(printed).replace(target, DEMO_DIR) == shown


DOCS = Path(__file__).resolve().parent.parent / "docs"


def demo_sessions(page: Path) -> list[tuple[list[str], str]]:
    """Every ``$ registry-gc … /tmp/registry-gc-demo …`` of a page's console blocks, in order.

    Each with the output the page shows under it (up to the next ``$`` line or the block's end).
    """
    sessions: list[tuple[list[str], str]] = []
    for block in re.findall(r"```console\n(.*?)```", page.read_text(), re.DOTALL):
        current: list[str] | None = None
        for line in block.splitlines(keepends=True):
            if line.startswith("$ "):
                argv = shlex.split(line[2:], comments=True)
                current = argv if argv[0] == "registry-gc" and DEMO_DIR in argv else None
                if current is not None:
                    sessions.append((current, ""))
            elif current is not None:
                argv, shown = sessions[-1]
                sessions[-1] = (argv, shown + line)
    return sessions


@pytest.mark.parametrize("page", ["quickstart.md", "tutorial.md"])
def test_the_docs_show_what_the_demo_commands_print(
    page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in the page's order on a fresh demo, each command prints what the page shows."""
    sessions = demo_sessions(DOCS / page)
    assert len(sessions) >= 3
    assert sessions[0][0][:2] == ["registry-gc", "demo"]
    target = str(tmp_path / "demo")
    for argv, shown in sessions:
        run([target if a == DEMO_DIR else a for a in argv[1:]])
        out, err = capsys.readouterr()
        assert (out + err).replace(target, DEMO_DIR) == shown, " ".join(argv)


# -- the real registry -------------------------------------------------------------------


def serve(root: str | Path, workdir: Path) -> RealRegistry:
    """Start ``docker-registry serve`` over ``root``."""
    require_tool("docker-registry")
    require_tool("skopeo")
    return RealRegistry(workdir, root_dir=root).start()


def assert_everything_pulls(registry: RealRegistry, demo: DemoRegistry, dest: Path) -> None:
    """Every tag pulls completely with skopeo (digests verified) and is what the demo says."""
    client = registry.client()
    assert sorted(client.catalog()) == ["acme/tools", "acme/web"]
    for (repo, tag), digest in demo.tags.items():
        assert client.get_manifest(repo, tag).digest == digest
        result = pull_all(registry.url, repo, tag, dest / f"{repo}-{tag}".replace("/", "_"))
        assert result.returncode == 0, f"{repo}:{tag}: {result.stderr}"


@pytest.mark.registry
def test_the_registry_serves_it_and_every_tag_pulls(demo: DemoRegistry, tmp_path: Path) -> None:
    """docker-registry serves the demo directory; skopeo pulls every tag and every signature."""
    with serve(demo.root, tmp_path / "registry") as registry:
        assert_everything_pulls(registry, demo, tmp_path / "pulls")
        for referrer in referrers(Path(demo.root), WEB):
            result = pull_all(registry.url, WEB, referrer, tmp_path / "sig" / referrer[7:19])
            assert result.returncode == 0, result.stderr


@pytest.mark.registry
def test_after_gc_every_tag_still_pulls(demo: DemoRegistry, tmp_path: Path) -> None:
    """A gc -m run deletes the old builds; every tag and the live signature still pull."""
    root = Path(demo.root)
    untagged = {d for d in revisions(root, WEB) if d not in demo.tags.values()}
    (live_signature,) = (
        r for r, s in referrers(root, WEB).items() if s == demo.tags[WEB, "latest"]
    )
    assert run(["gc", demo.root, "-m", "-q"]) == 0
    assert run(["fsck", demo.root, "--verify-blobs", "-q"]) == 0
    with serve(root, tmp_path / "registry") as registry:
        assert_everything_pulls(registry, demo, tmp_path / "pulls")
        result = pull_all(registry.url, WEB, live_signature, tmp_path / "sig")
        assert result.returncode == 0, result.stderr
        client = registry.client()
        gone = {d for d in untagged if not client.manifest_exists(WEB, d)}
        assert gone == untagged - {live_signature}
        assert len(gone) == (BUILDS - 2) + (BUILDS - FIRST_SIGNED_BUILD - 1)


def replay(root: Path, registry: RealRegistry) -> None:
    """Push the demo's content through the registry's API, in the demo's push order."""
    client = registry.client()
    for repo in (TOOLS, WEB):
        base = root / V2 / "repositories" / repo
        order = []
        for digest, manifest in revisions(root, repo).items():
            link = base / "_manifests/revisions/sha256" / digest[7:] / "link"
            order.append((link.stat().st_mtime, "manifests" in manifest, digest, manifest))
        for _, _, digest, manifest in sorted(order):
            for d in [manifest.get("config"), *manifest.get("layers", [])]:
                if d is not None:
                    client.push_blob(repo, Blob(blob(root, d["digest"]), d["mediaType"]))
            client.push_manifest(repo, digest, Blob(blob(root, digest), manifest["mediaType"]))
        for tag_dir in (base / "_manifests/tags").iterdir():
            history = sorted(
                (link.stat().st_mtime, f"sha256:{link.parent.name}")
                for link in tag_dir.glob("index/sha256/*/link")
            )
            for _, digest in history:
                media_type = json.loads(blob(root, digest))["mediaType"]
                client.push_manifest(repo, tag_dir.name, Blob(blob(root, digest), media_type))
        for upload in (base / "_uploads").iterdir():
            client.start_upload(repo, (upload / "data").read_bytes())


@pytest.mark.registry
def test_the_layout_is_what_the_registry_writes(demo: DemoRegistry, tmp_path: Path) -> None:
    """Pushing the same content through docker-registry writes the same files, byte for byte."""
    with serve(tmp_path / "pushed", tmp_path / "registry") as registry:
        replay(Path(demo.root), registry)
    uuid = re.compile(r"_uploads/[0-9a-f-]{36}/")

    def tree(root: Path) -> dict[str, bytes]:
        out = {uuid.sub("_uploads/UUID/", n): p.read_bytes() for n, p in files(root).items()}
        # The upload started when it started: check the format, not the time.
        started = out.pop("docker/registry/v2/repositories/acme/web/_uploads/UUID/startedat")
        assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", started), started
        return out

    def directories(root: Path) -> set[str]:
        found = (p.relative_to(root).as_posix() + "/" for p in root.rglob("*") if p.is_dir())
        return {uuid.sub("_uploads/UUID/", d) for d in found}

    ours, theirs = tree(Path(demo.root)), tree(tmp_path / "pushed")
    assert sorted(ours) == sorted(theirs)
    assert [n for n in ours if ours[n] != theirs[n]] == []
    assert directories(Path(demo.root)) == directories(tmp_path / "pushed")
    assert any("/hashstates/sha256/" in n and not n.endswith("/0") for n in ours)


@pytest.mark.registry
def test_the_reference_would_delete_what_is_kept(demo: DemoRegistry, tmp_path: Path) -> None:
    """The reference gc -m would also delete the live index's images and the live signature."""
    require_tool("docker-registry")
    root = Path(demo.root)
    ours = {
        d.digest
        for d in collect(root, delete_untagged=True, dry_run=True).plan.deletions
        if d.category.value == "revision"
    }
    registry = RealRegistry(tmp_path / "registry", root_dir=root)
    result = registry.garbage_collect(delete_untagged=True, dry_run=True)
    theirs = set(
        re.findall(r"manifest eligible for deletion: (sha256:[0-9a-f]{64})", result.stdout)
    )
    children = {
        m["digest"] for m in json.loads(blob(root, demo.tags[TOOLS, "stable"]))["manifests"]
    }
    (signature,) = (r for r, s in referrers(root, WEB).items() if s == demo.tags[WEB, "latest"])
    assert ours < theirs
    assert theirs - ours == {*children, signature}
