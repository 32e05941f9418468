"""Every command end to end on stores the real registry built, on disk and on S3.

Images are pushed through the registry's HTTP API; registry-gc then works on
its storage (in-process, through ``registry_gc.cli.run``) while the registry
keeps serving; what the registry serves afterwards — 404s, catalog, and
complete ``skopeo copy --all`` pulls — is the verdict. The rig's registry has
no blob descriptor cache, so nothing needs a restart.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from registry_gc import config as config_module
from registry_gc.cli import run

from tests.rigs import oci, planfiles
from tests.rigs.registry import blob_data_key
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.registry import RealRegistry

pytestmark = pytest.mark.registry


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default configuration file, no REGISTRY_* variable from the machine."""
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict[str, Any]]:
    """Run registry-gc with --json; return (exit code, parsed stdout)."""
    code = run([str(a) for a in args] + ["--json"])
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out)
    except ValueError:
        pytest.fail(f"not JSON (exit {code}): {out!r}; stderr: {err}")


def listing(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``ls --json`` as repository → tag → digest."""
    return {r["name"]: {t["name"]: t["digest"] for t in r["tags"]} for r in data["repositories"]}


def assert_pulls(registry: RealRegistry, repo: str, ref: str, dest: Path) -> None:
    """Check that skopeo copies every manifest, config and layer of repo:ref, digests verified."""
    target = dest / f"{repo.replace('/', '_')}-{ref.replace(':', '_')}-{len(os.listdir(dest))}"
    result = pull_all(registry.url, repo, ref, target)
    assert result.returncode == 0, f"{repo}:{ref} does not pull: {result.stderr[-2000:]}"


class Pushed:
    """What a scenario pushed, as repository → tag → image."""

    def __init__(self, registry: RealRegistry) -> None:
        client = registry.client()
        base = oci.layer("e2e-base", size=4096)
        self.v1 = oci.oci_image("e2e-app-v1", shared_layers=[base], layer_size=8192)
        self.v2 = oci.docker_image("e2e-app-v2", layer_size=2048)
        self.multi = oci.multiarch("e2e-multi")
        self.team = oci.oci_image("e2e-team", shared_layers=[base])
        self.worker = oci.oci_image("e2e-worker")
        self.tags: dict[str, dict[str, oci.Image | oci.Index]] = {
            "app": {"v1": self.v1, "v2": self.v2, "latest": self.v2},
            "multi": {"latest": self.multi},
            "team/app": {"1": self.team},
            "team/app/worker": {"1": self.worker},
        }
        for repo, tags in self.tags.items():
            for tag, image in tags.items():
                client.push_image(repo, tag, image)

    def expected(self) -> dict[str, dict[str, str]]:
        """Repository → tag → digest, as ls should list them."""
        return {r: {t: i.digest for t, i in tags.items()} for r, tags in self.tags.items()}


def test_every_command_on_a_real_registry(
    registry: RealRegistry,
    skopeo_bin: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """ls, du, fsck, rm (tag, repository), gc on the real layout; the registry agrees throughout."""
    pushed = Pushed(registry)
    client = registry.client()
    root = registry.root_dir
    pulls = tmp_path / "pulls"
    pulls.mkdir()

    code, data = cli(capsys, "ls", root)
    assert code == 0
    assert listing(data) == pushed.expected()
    code, usage = cli(capsys, "du", root)
    assert code == 0
    on_disk = {k: v for k, v in registry.keys().items() if k.startswith("blobs/")}
    assert usage["total"] == {"blobs": len(on_disk), "bytes": sum(on_disk.values())}
    code, checked = cli(capsys, "fsck", root, "--verify-blobs")
    assert (code, checked["ok"], checked["checked"]["tags"]) == (0, True, 6)

    # rm REPO:TAG: the registry stops serving it; everything else still pulls.
    out = tmp_path / "rm-deletions.jsonl"
    code, report = cli(capsys, "rm", root, "app:v1", "--grace", "0", "--deletions-out", out)
    assert code == 0
    assert report["totals"]["bytes"] > 0
    v1_only = {b.digest for b in pushed.v1.layers[1:]} | {pushed.v1.config.digest, pushed.v1.digest}
    listed = planfiles.deletions(out)
    assert {d["digest"] for d in listed if d["category"] == "blob"} == v1_only
    assert {d["status"] for d in listed} == {"deleted"}
    assert not client.manifest_exists("app", "v1")
    assert not client.manifest_exists("app", pushed.v1.digest)
    assert client.tags("app") == ["latest", "v2"]
    for repo, ref in [("app", "v2"), ("app", "latest"), ("multi", "latest"), ("team/app", "1")]:
        assert_pulls(registry, repo, ref, pulls)

    # rm REPO: gone from the catalog; the repository nested under it is untouched.
    code, report = cli(capsys, "rm", root, "team/app", "--grace", "0")
    assert code == 0
    assert sorted(client.catalog()) == ["app", "multi", "team/app/worker"]
    assert not client.manifest_exists("team/app", "1")
    assert_pulls(registry, "team/app/worker", "1", pulls)
    # The base layer team/app shared with app:v1 is gone now; nothing else needed it.
    assert not (registry.v2_dir / blob_data_key(pushed.v1.layers[0].digest)).exists()

    # gc -m, then fsck: a healthy, smaller registry.
    assert cli(capsys, "gc", root, "-m", "--grace", "0")[0] == 0
    code, checked = cli(capsys, "fsck", root, "--verify-blobs")
    assert (code, checked["problems"]) == (0, [])
    assert listing(cli(capsys, "ls", root)[1]) == {
        "app": {"latest": pushed.v2.digest, "v2": pushed.v2.digest},
        "multi": {"latest": pushed.multi.digest},
        "team/app/worker": {"1": pushed.worker.digest},
    }

    # A layer deleted behind the registry's back: fsck and skopeo agree that multi breaks.
    child = pushed.multi.children[1]
    assert isinstance(child, oci.Image)
    registry.delete_key(blob_data_key(child.layers[0].digest))
    code, checked = cli(capsys, "fsck", root)
    assert code == 1
    assert [(p["kind"], p["tags"]) for p in checked["problems"]] == [
        ("missing-blob", ["multi:latest"])
    ]
    result = pull_all(registry.url, "multi", "latest", pulls / "broken")
    assert result.returncode != 0


def test_config_with_environment_override_reaches_the_registry_filesystem(
    registry: RealRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """--config with the registry's own config.yml, and with REGISTRY_STORAGE_* overriding it."""
    pushed = Pushed(registry)
    code, data = cli(capsys, "ls", "--config", registry.config_path)
    assert code == 0
    assert data["root"] == str(registry.root_dir)
    assert listing(data) == pushed.expected()

    config = yaml.safe_load(registry.config_path.read_text())
    config["storage"]["filesystem"]["rootdirectory"] = str(tmp_path / "elsewhere")
    moved = tmp_path / "moved.yml"
    moved.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", str(registry.root_dir))
    code, data = cli(capsys, "ls", "--config", moved)
    assert code == 0
    assert listing(data) == pushed.expected()


@pytest.mark.s3
def test_config_with_environment_override_reaches_the_registry_s3(
    registry_s3: RealRegistry,
    skopeo_bin: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The registry's S3 config.yml (and REGISTRY_STORAGE_S3_* overrides) reach its bucket."""
    pushed = Pushed(registry_s3)
    assert registry_s3.s3 is not None
    code, data = cli(capsys, "ls", "--config", registry_s3.config_path)
    assert code == 0
    assert data["root"] == f"s3://{registry_s3.s3.bucket}/reg"
    assert listing(data) == pushed.expected()

    # The file names another bucket and prefix; the environment puts them right.
    config = yaml.safe_load(registry_s3.config_path.read_text())
    config["storage"]["s3"]["bucket"] = "not-this-bucket"
    config["storage"]["s3"]["rootdirectory"] = "/wrong"
    moved = tmp_path / "moved.yml"
    moved.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("REGISTRY_STORAGE_S3_BUCKET", registry_s3.s3.bucket)
    monkeypatch.setenv("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/reg")
    code, data = cli(capsys, "ls", "--config", moved)
    assert code == 0
    assert listing(data) == pushed.expected()

    # And rm through that configuration: the tag is gone, the others pull.
    code, report = cli(capsys, "rm", "--config", moved, "app:v1", "--grace", "0")
    assert code == 0
    assert report["totals"]["bytes"] > 0
    client = registry_s3.client()
    assert not client.manifest_exists("app", "v1")
    pulls = tmp_path / "pulls"
    pulls.mkdir()
    for repo, ref in [("app", "v2"), ("multi", "latest"), ("team/app", "1")]:
        assert_pulls(registry_s3, repo, ref, pulls)
    code, checked = cli(capsys, "fsck", "--config", moved)
    assert (code, checked["ok"]) == (0, True)
