"""The command line on builder stores: every command, flag, error and exit code.

Commands run in-process through ``registry_gc.cli.run``; the default
configuration files and ``REGISTRY_*`` variables of the machine are hidden
from every test.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from registry_gc import cli
from registry_gc import config as config_module
from registry_gc.cli import _target as cli_target
from registry_gc.cli import run
from registry_gc.cli._target import target_of
from registry_gc.layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    blob_path,
)

from tests.rigs import planfiles
from tests.rigs.builder import RegistryBuilder
from tests.rigs.scene import Scene

if TYPE_CHECKING:
    from pathlib import Path

V2 = "docker/registry/v2/"
SECRET = "sup3r-s3cret-value-42"
ACCESS = "AKIAACCESSKEYEXAMPLE"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default configuration file, no REGISTRY_* variable from the machine."""
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", ())
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def cli_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line; return (exit code, stdout, stderr)."""
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run the command line with --json; return (exit code, parsed stdout)."""
    code, out, err = cli_run(capsys, *args, "--json")
    try:
        return code, json.loads(out)
    except ValueError:
        pytest.fail(f"not JSON (exit {code}): {out!r}\nstderr: {err}")


def files(root: Path) -> set[str]:
    """Every file under root, relative."""
    out = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def rev(repo: str, d: Digest) -> str:
    """A revision link path."""
    return RevisionLink(Repository._trusted(repo), d).path


def tag_dir(repo: str, tag: str) -> str:
    """A tag's directory, with a trailing slash."""
    return f"{V2}repositories/{repo}/_manifests/tags/{tag}/"


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    """The scene written under tmp_path/store."""
    return Scene(tmp_path / "store")


def write_config(tmp_path: Path, storage: dict[str, Any], name: str = "config.yml") -> Path:
    """A registry config.yml with that storage section."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 0.1, "storage": storage}))
    return path


def cli_listed(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """:func:`cli_json` with --deletions-out: exit code, report, and the deletion lines."""
    out = planfiles.out_file()
    code, report = cli_json(capsys, *args, "--deletions-out", str(out))
    return code, report, planfiles.deletions(out) if out.exists() else []


def deleted_blobs(listed: list[dict[str, Any]]) -> set[str]:
    """Digests of the blobs among the deletion lines of --deletions-out."""
    return {d["digest"] for d in listed if d["category"] == "blob"}


# -- gc --------------------------------------------------------------------------------------


def test_gc_dry_run_still_works(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """The gc command keeps its flags, its JSON report and exit code 0."""
    before = files(scene.root)
    code, report, listed = cli_listed(capsys, "gc", scene.root, "-m", "-d", "--grace", "0")
    assert code == 0
    assert report["schema"] == "registry-gc/report/v2"
    assert report["dry_run"] is True
    assert scene.untagged in {d["digest"] for d in listed}
    assert files(scene.root) == before


def test_gc_takes_the_registry_config_like_registry_garbage_collect(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """`registry-gc gc CONFIG -m -d`: a file as ROOT is the registry's configuration."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    code, report = cli_json(capsys, "gc", cfg, "-m", "-d")
    assert code == 0
    assert report["root"] == str(scene.root)
    assert report["registry_config"]["path"] == str(cfg)
    assert report["registry_config"]["driver"] == "filesystem"


def test_default_config_is_used_without_root(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ROOT and --config, the registry image's default config.yml is read."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", (str(tmp_path / "no.yml"), str(cfg)))
    code, report = cli_json(capsys, "gc", "-d")
    assert code == 0
    assert report["root"] == str(scene.root)


def test_registry_configuration_path_variable_is_the_default(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$REGISTRY_CONFIGURATION_PATH names the default configuration, as for the registry."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    monkeypatch.setenv("REGISTRY_CONFIGURATION_PATH", str(cfg))
    code, data = cli_json(capsys, "ls")
    assert code == 0
    assert data["root"] == str(scene.root)


def test_no_root_and_no_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing says where the storage is: exit 2, naming the default configuration paths."""
    code, out, err = cli_run(capsys, "gc", "-d")
    assert code == 2
    assert out == ""
    assert "/etc/docker/registry/config.yml" in err
    assert err.count("\n") == 1  # one line


def test_root_and_config_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """ROOT and --config disagree about where the storage is: refused."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    code, _, err = cli_run(capsys, "du", scene.root, "--config", cfg)
    assert code == 2
    assert "not both" in err


def test_blob_descriptor_cache_asks_for_a_restart_after_a_sweep(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """With storage.cache.blobdescriptor, a sweep that deleted something warns to restart."""
    cfg = write_config(
        tmp_path,
        {
            "filesystem": {"rootdirectory": str(scene.root)},
            "cache": {"blobdescriptor": "inmemory"},
        },
    )
    code, out, err = cli_run(capsys, "gc", "--config", cfg, "-m", "-d")
    assert code == 0
    assert "restart the running registry" not in err  # a dry run deleted nothing
    code, out, err = cli_run(capsys, "gc", "--config", cfg, "-m", "--json")
    assert code == 0
    assert json.loads(out)["registry_config"]["restart_required"] is True
    assert "storage.cache.blobdescriptor (inmemory): restart the running registry" in err


def test_config_environment_override_reaches_the_storage(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY beats the file, as for the registry."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(tmp_path / "wrong")}})
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", str(scene.root))
    code, data = cli_json(capsys, "ls", "--config", cfg)
    assert code == 0
    assert [r["name"] for r in data["repositories"]] == [
        "library/alpine",
        "team/app",
        "team/app/worker",
    ]


def test_unsupported_driver_is_exit_2_with_a_json_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unsupported storage driver: exit 2, the driver named, JSON error on stdout."""
    cfg = write_config(tmp_path, {"swift": {"container": "x"}})
    code, data = cli_json(capsys, "ls", "--config", cfg)
    assert code == 2
    assert data["ok"] is False
    assert "'swift' is not supported" in data["error"]


def test_secrets_never_reach_the_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An S3 config whose endpoint is down: the error and the logs hold no credential."""
    cfg = write_config(
        tmp_path,
        {
            "s3": {
                "accesskey": ACCESS,
                "secretkey": SECRET,
                "region": "us-east-1",
                "regionendpoint": f"http://{ACCESS}:{SECRET}@127.0.0.1:1",
                "bucket": "b",
            }
        },
    )
    code, out, err = cli_run(
        capsys,
        "ls",
        "--config",
        cfg,
        "-vv",
        "--json",
        "-o",
        'config_kwargs={"retries": {"max_attempts": 1}}',
    )
    assert code == 4
    assert json.loads(out)["ok"] is False
    assert SECRET not in out + err
    assert ACCESS not in out + err


def test_storage_options_merge_into_the_config_options(tmp_path: Path) -> None:
    """-o client_kwargs=… adds to the config's client_kwargs instead of replacing them."""
    cfg = write_config(
        tmp_path,
        {"s3": {"bucket": "b", "region": "eu-west-1", "regionendpoint": "http://h:1"}},
    )
    args = cli.build_parser().parse_args(
        [
            "gc",
            "--config",
            str(cfg),
            "-o",
            'client_kwargs={"verify": false}',
            "--endpoint-url",
            "http://x:2",
        ]
    )
    target = target_of(args, None)
    assert target.url == "s3://b"
    assert target.options["client_kwargs"] == {"region_name": "eu-west-1", "verify": False}
    assert target.options["endpoint_url"] == "http://x:2"


# -- rm --------------------------------------------------------------------------------------


def test_rm_tag_removes_it_and_what_only_it_kept(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing REPO:TAG deletes the tag, its current manifest and history, and their blobs."""
    code, report, listed = cli_listed(
        capsys, "rm", scene.root, "library/alpine:old", "--grace", "0"
    )
    assert code == 0
    gone = scene.image_blobs(scene.old, scene.old_prev)
    assert deleted_blobs(listed) == gone
    assert report["categories"]["blob"]["bytes"] == scene.size(gone)
    assert report["totals"]["bytes"] >= scene.size(gone) > 0
    assert not scene.exists(tag_dir("library/alpine", "old"))
    assert not scene.exists(rev("library/alpine", scene.old))
    assert not scene.exists(rev("library/alpine", scene.old_prev))
    assert report["removal"]["tags"] == {"library/alpine": ["old"]}
    # Everything else still pulls from storage.
    code, fsck = cli_json(capsys, "fsck", scene.root)
    assert (code, fsck["checked"]["tags"]) == (0, 6)
    assert scene.exists(rev("library/alpine", scene.untagged))  # no -m: untagged stays


def test_rm_tag_keeps_a_manifest_another_tag_points_at(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """3.20 and stable share a manifest: removing 3.20 keeps it (and its blobs) for stable."""
    code, _report, listed = cli_listed(
        capsys, "rm", scene.root, "library/alpine:3.20", "--grace", "0"
    )
    assert code == 0
    assert deleted_blobs(listed) == set()
    assert not scene.exists(tag_dir("library/alpine", "3.20"))
    assert scene.exists(rev("library/alpine", scene.v320))
    assert cli_run(capsys, "fsck", scene.root)[0] == 0


def test_rm_multiarch_tag_removes_its_children(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing a multi-arch tag removes the platform images only it reached."""
    code, _report, listed = cli_listed(
        capsys, "rm", scene.root, "library/alpine:latest", "--grace", "0"
    )
    assert code == 0
    assert deleted_blobs(listed) == {scene.multi} | scene.image_blobs(*scene.children)
    for child in scene.children:
        assert not scene.exists(rev("library/alpine", child))


def test_rm_tag_keeps_a_child_another_live_index_lists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A platform image shared by two indexes stays when one of their tags goes."""
    b = RegistryBuilder(seed=5)
    shared = b.image("m", None)
    own = b.image("m", None)
    b.index("m", "a", [shared, own])
    b.index("m", "b", [shared])
    b.write_local(tmp_path)
    code, _report, listed = cli_listed(capsys, "rm", tmp_path, "m:a", "--grace", "0")
    assert code == 0
    assert (tmp_path / rev("m", shared)).exists()
    assert not (tmp_path / rev("m", own)).exists()
    assert shared not in deleted_blobs(listed)
    assert cli_run(capsys, "fsck", tmp_path)[0] == 0


def test_rm_tag_removes_the_referrers_of_its_image(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """A signature pushed by digest for the removed image goes with it."""
    code, _report, listed = cli_listed(capsys, "rm", scene.root, "team/app:v2", "--grace", "0")
    assert code == 0
    assert {scene.signed, scene.sig} <= deleted_blobs(listed)
    assert not scene.exists(rev("team/app", scene.sig))


def test_rm_repository_keeps_nested_repositories(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing team/app leaves team/app/worker whole; shared blobs stay."""
    code, report, listed = cli_listed(capsys, "rm", scene.root, "team/app", "--grace", "0")
    assert code == 0
    assert report["removal"]["repositories"] == ["team/app"]
    repo_dir = scene.root / V2 / "repositories/team/app"
    assert sorted(os.listdir(repo_dir)) == ["worker"]
    assert scene.base not in deleted_blobs(listed)  # library/alpine still uses it
    code, listing = cli_json(capsys, "ls", scene.root)
    assert [r["name"] for r in listing["repositories"]] == ["library/alpine", "team/app/worker"]
    assert cli_run(capsys, "fsck", scene.root)[0] == 0


def test_rm_digest_untags_the_tags_pointing_at_it(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing REPO@DIGEST removes the revision and, like distribution's DELETE, its tags."""
    ref = f"library/alpine@{scene.v320}"
    code, report, listed = cli_listed(capsys, "rm", scene.root, ref, "--grace", "0")
    assert code == 0
    assert report["removal"]["tags"] == {"library/alpine": ["3.20", "stable"]}
    assert report["removal"]["kept"] == []
    assert not scene.exists(rev("library/alpine", scene.v320))
    assert not scene.exists(tag_dir("library/alpine", "stable"))
    assert scene.base not in deleted_blobs(listed)  # team/app:v1 shares it


def test_rm_digest_keeps_the_history_of_the_tags_it_untags(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing the manifest a tag points at untags it, but its older revisions stay (no -m)."""
    code, report = cli_json(capsys, "rm", scene.root, f"library/alpine@{scene.old}", "--grace", "0")
    assert code == 0
    assert report["removal"]["tags"] == {"library/alpine": ["old"]}
    assert not scene.exists(rev("library/alpine", scene.old))
    assert scene.exists(rev("library/alpine", scene.old_prev))


def test_grace_0_on_a_writable_registry_is_warned(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """--grace 0 with a config that is not read-only warns; a read-only one does not."""
    storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(scene.root)}}
    cfg = write_config(tmp_path, storage)
    err = cli_run(capsys, "gc", "--config", cfg, "--grace", "0")[2]
    assert "a push racing this run can lose its layers" in err
    storage["maintenance"] = {"readonly": {"enabled": True}}
    cfg = write_config(tmp_path, storage, "ro.yml")
    assert "racing" not in cli_run(capsys, "rm", "--config", cfg, "team/app:v1", "--grace", "0")[2]


def test_rm_digest_still_needed_is_kept_and_said(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Removing a platform image of a live multi-arch tag keeps it, and says so."""
    child = scene.children[0]
    code, out, err = cli_run(capsys, "rm", scene.root, f"library/alpine@{child}", "--grace", "0")
    assert code == 0
    assert scene.exists(rev("library/alpine", child))
    assert f"library/alpine@{child} is still needed" in err
    assert "kept, still needed by a live image" in out


def test_rm_no_gc_deletes_only_the_tag_directory(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """--no-gc: exactly the files of the tag directory go; no revision, link or blob."""
    before = files(scene.root)
    code, report = cli_json(capsys, "rm", scene.root, "library/alpine:old", "--no-gc")
    assert code == 0
    removed = before - files(scene.root)
    assert removed == {p for p in before if p.startswith(tag_dir("library/alpine", "old"))}
    assert len(removed) == 3  # current link and two history entries
    assert report["removal"]["gc"] is False
    assert report["totals"]["bytes"] == 0


def test_rm_no_gc_digest_deletes_its_revision_link_and_tags(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """--no-gc with a digest: its revision link and the tags on it, nothing else."""
    before = files(scene.root)
    code = cli_run(capsys, "rm", scene.root, f"library/alpine@{scene.v320}", "--no-gc")[0]
    assert code == 0
    removed = before - files(scene.root)
    expected = {rev("library/alpine", scene.v320)} | {
        p
        for p in before
        if p.startswith((tag_dir("library/alpine", "3.20"), tag_dir("library/alpine", "stable")))
    }
    assert removed == expected


def test_rm_no_gc_repository_deletes_no_blob(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """--no-gc with a repository: its own files only; blobs and nested repositories stay."""
    before = files(scene.root)
    assert cli_run(capsys, "rm", scene.root, "team/app", "--no-gc")[0] == 0
    removed = before - files(scene.root)
    prefix = f"{V2}repositories/team/app/"
    assert removed == {
        p for p in before if p.startswith(prefix) and not p.startswith(prefix + "worker/")
    }


def test_rm_dry_run_shows_exactly_what_a_run_does(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """The dry run's deletions are the real run's, and the dry run deletes nothing."""
    args = ("rm", scene.root, "library/alpine:old", "team/app", "-m", "--grace", "0")
    before = files(scene.root)
    code, dry, dry_listed = cli_listed(capsys, *args, "-d")
    assert code == 0
    code, out, _ = cli_run(capsys, *args, "-d")
    assert "would remove tag library/alpine:old, repository team/app" in out
    assert files(scene.root) == before
    code, real, real_listed = cli_listed(capsys, *args)
    assert code == 0

    def effect(listed: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
        return sorted(
            (d["category"], d["reason"], tuple(p for p, _, _ in d["paths"])) for d in listed
        )

    assert effect(dry_listed) == effect(real_listed)
    assert {d["status"] for d in dry_listed} == {"planned"}
    assert {d["status"] for d in real_listed} == {"deleted"}
    assert dry["totals"]["bytes"] == real["totals"]["bytes"] > 0


@pytest.mark.parametrize(
    "image",
    [
        "../etc",
        "library/../../etc",
        "/var/lib/registry",
        "~/x",
        "a//b",
        "a/",
        "Library/Alpine",
        "a%2Fb",
        "a\\b",
        "a b",
        "x:5000/app",
        "app:tag@sha256:" + "a" * 64,
        "app@sha256:abc",
        "app:-bad",
        "",
    ],
)
def test_rm_rejects_bad_names_before_touching_storage(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    monkeypatch: pytest.MonkeyPatch,
    image: str,
) -> None:
    """Invalid names and path tricks: exit 2, one clear line, and the storage is never opened."""

    def never(*_: object, **__: object) -> None:
        pytest.fail("the storage was opened")

    monkeypatch.setattr(cli_target, "open_backend", never)
    code, out, err = cli_run(capsys, "rm", scene.root, "library/alpine:3.20", image)
    assert code == 2
    assert out == ""
    assert err.startswith("registry-gc: error: invalid image")
    assert err.count("\n") == 1


def test_rm_unknown_names_delete_nothing(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """A name not in the store: exit 2 naming it, and nothing deleted (not even valid ones)."""
    before = files(scene.root)
    code, _, err = cli_run(
        capsys, "rm", scene.root, "library/alpine:old", "library/alpine:nope", "--grace", "0"
    )
    assert code == 2
    assert "tag library/alpine:nope does not exist" in err
    assert "nothing was deleted" in err
    assert files(scene.root) == before
    code, _, err = cli_run(capsys, "rm", scene.root, f"library/alpine@sha256:{'0' * 64}", "nope")
    assert code == 2
    assert "2 images not found" in err


def test_rm_of_a_namespace_says_what_it_holds(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """`rm team` when only team/app exists: not a repository; the nested ones are named."""
    code, _, err = cli_run(capsys, "rm", scene.root, "team")
    assert code == 2
    assert "only holds the repositories team/app, team/app/worker" in err


def test_rm_with_config_takes_every_operand_as_an_image(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """With --config there is no ROOT operand: every operand is an image."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    code, report = cli_json(capsys, "rm", "--config", cfg, "library/alpine:old", "team/app:v1")
    assert code == 0
    assert report["removal"]["tags"] == {"library/alpine": ["old"], "team/app": ["v1"]}


def test_rm_with_the_default_config_is_clean_registry_compatible(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`registry-gc rm --dry-run REPO:TAG`, as clean_registry is run inside the registry image."""
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", (str(cfg),))
    code, report = cli_json(capsys, "rm", "--dry-run", "library/alpine:old")
    assert code == 0
    assert report["removal"]["images"] == ["library/alpine:old"]


def test_rm_root_without_image_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """ROOT alone: there is nothing to remove."""
    code, _, err = cli_run(capsys, "rm", scene.root)
    assert code == 2
    assert "no IMAGE to remove" in err


def test_rm_keeps_fresh_blobs_for_the_grace_period(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A tag pushed a minute ago: the tag goes, its blobs wait for the grace period."""
    scene = Scene(tmp_path / "fresh", age=60.0)
    code, report, listed = cli_listed(capsys, "rm", scene.root, "library/alpine:old")
    assert code == 0
    assert not scene.exists(tag_dir("library/alpine", "old"))
    assert deleted_blobs(listed) == set()
    assert report["totals"]["kept_for_grace"] > 0


def test_rm_delete_untagged_collects_untagged_revisions_too(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """With -m, the run that follows the removal is a gc -m."""
    code, _report, listed = cli_listed(
        capsys, "rm", scene.root, "library/alpine:old", "-m", "--grace", "0"
    )
    assert code == 0
    assert scene.untagged in deleted_blobs(listed)


def test_rm_text_output(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """The text report says what was removed and the bytes freed."""
    code, out, _ = cli_run(capsys, "rm", scene.root, "library/alpine:old", "--grace", "0", "-v")
    assert code == 0
    assert out.startswith("registry-gc rm: removed tag library/alpine:old\n")
    assert "removed-tag" in out
    assert "blob " in out


def test_rm_refused_when_a_live_manifest_is_unreadable_but_no_gc_works(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """A broken live manifest elsewhere: rm refuses (exit 3, with the way out); --no-gc works."""
    scene.b.manifest("broken", b"{nope", tag="v1")
    scene.b.write_local(scene.root)
    before = files(scene.root)
    code, _, err = cli_run(capsys, "rm", scene.root, "library/alpine:old", "--grace", "0")
    assert code == 3
    assert "rm --no-gc removes the names without collecting" in err
    assert files(scene.root) == before
    assert cli_run(capsys, "rm", scene.root, "library/alpine:old", "--no-gc")[0] == 0
    assert not scene.exists(tag_dir("library/alpine", "old"))


# -- plan files ------------------------------------------------------------------------------


def test_gc_plan_out_is_written_before_the_sweep_and_lists_what_goes(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """A real gc --plan-out: the plan, without statuses, is exactly what was deleted."""
    plan = tmp_path / "plan.jsonl"
    listing = tmp_path / "deletions.jsonl"
    before = files(scene.root)
    code, report = cli_json(
        capsys, "gc", scene.root, "-m", "--grace", "0",
        "--plan-out", plan, "--deletions-out", listing,
    )  # fmt: skip
    assert code == 0
    header, planned, footer = planfiles.read(plan)
    assert header["dry_run"] is False
    assert header["root"] == str(scene.root)
    assert header["options"]["delete_untagged"] is True
    assert header["options"]["grace"] == 0
    assert all("status" not in d for d in planned)
    assert planfiles.paths(planned) == before - files(scene.root)
    assert footer["bytes"] == report["totals"]["bytes"]
    _, done, _ = planfiles.read(listing)
    assert [{k: v for k, v in d.items() if k != "status"} for d in done] == planned
    assert {d["status"] for d in done} == {"deleted"}
    assert len(done) == report["totals"]["deletions"]


def test_rm_plan_out_records_the_removals_by_name(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """A dry rm --plan-out: the header names what was removed, so apply removes it too."""
    plan = tmp_path / "plan.jsonl"
    args = ("rm", scene.root, "library/alpine:old", "team/app", "--grace", "0", "-d")
    code, report = cli_json(capsys, *args, "--plan-out", plan)
    assert code == 0
    header, planned, _ = planfiles.read(plan)
    assert header["dry_run"] is True
    removals = header["removals"]
    assert removals["tags"] == {"library/alpine": ["old"]}
    assert removals["repositories"] == ["team/app"]
    assert sorted(removals["manifests"]["library/alpine"]) == sorted([scene.old, scene.old_prev])
    assert {(d["category"], d["reason"]) for d in planned} >= {
        ("tag", "removed-tag"),
        ("repository", "removed-repository"),
    }
    assert len(planned) == report["totals"]["deletions"]


def test_rm_no_gc_deletions_out_lists_only_the_names(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """With rm --no-gc, --deletions-out lists the tag directory alone, deleted."""
    listing = tmp_path / "deletions.jsonl"
    code, _ = cli_json(
        capsys, "rm", scene.root, "library/alpine:old", "--no-gc", "--deletions-out", listing
    )
    assert code == 0
    _, done, _ = planfiles.read(listing)
    assert [(d["category"], d["name"], d["status"]) for d in done] == [("tag", "old", "deleted")]
    (current,) = [p for p in done[0]["paths"] if p[0].endswith("/current/link")]
    assert current[1] == len(scene.old)  # the current link's size, as listed


def test_plan_files_in_a_missing_directory_stop_before_anything(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """An output file whose directory does not exist: exit 2 before the store is touched."""
    before = files(scene.root)
    for flag in ("--plan-out", "--deletions-out"):
        code, _, err = cli_run(
            capsys, "gc", scene.root, "-m", "--grace", "0", flag, tmp_path / "no" / "f"
        )
        assert code == 2, err
        assert "is not a writable directory" in err
        assert files(scene.root) == before


# -- apply -----------------------------------------------------------------------------------


def dry_plan(capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path) -> Path:
    """``gc -m --grace 0 --dry-run --plan-out`` of the scene: the plan file."""
    out = tmp_path / "plan.jsonl"
    code, _, err = cli_run(
        capsys, "gc", scene.root, "-m", "--grace", "0", "-d", "--plan-out", out, "-q"
    )
    assert code == 0, err
    return out


def test_apply_executes_a_reviewed_plan(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """Plan, then apply PLAN ROOT: exit 0, the report names the plan, the garbage is gone."""
    out = dry_plan(capsys, scene, tmp_path)
    planned = planfiles.paths(planfiles.deletions(out))
    before = files(scene.root)
    code, text, err = cli_run(capsys, "apply", out, scene.root)
    assert code == 0, err
    assert f"registry-gc apply {out}: planned " in text
    assert f"plan: {len(planfiles.deletions(out))} deletion(s); " in text
    assert before - files(scene.root) == planned


def test_apply_without_root_uses_the_plans_root_and_prints_json(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """No ROOT, no --config, no default configuration: the header's root; --json adds `plan`."""
    out = dry_plan(capsys, scene, tmp_path)
    listing = tmp_path / "applied.jsonl"
    code, report = cli_json(capsys, "apply", out, "--deletions-out", listing)
    assert code == 0
    assert report["command"] == "apply"
    assert report["schema"] == "registry-gc/report/v2"
    assert report["root"] == str(scene.root)
    assert report["plan"]["file"] == str(out)
    assert report["plan"]["executed"] == report["totals"]["deletions"] > 0
    assert report["plan"]["dropped"] == {
        "gone": 0,
        "changed": 0,
        "no-longer-garbage": 0,
        "still-needed": 0,
    }
    _, lines, _ = planfiles.read(listing)
    assert {line["status"] for line in lines} == {"deleted"}


def test_apply_dry_run_deletes_nothing(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """A dry-run apply: exit 0, nothing deleted, the figures of the real apply."""
    out = dry_plan(capsys, scene, tmp_path)
    before = files(scene.root)
    code, report = cli_json(capsys, "apply", out, "-d")
    assert code == 0
    assert report["dry_run"] is True
    assert files(scene.root) == before
    code, real = cli_json(capsys, "apply", out)
    same = ("deletions", "objects", "bytes", "kept_for_grace", "anomalies")
    assert {k: real["totals"][k] for k in same} == {k: report["totals"][k] for k in same}
    assert real["totals"]["directories_removed"] > report["totals"]["directories_removed"] == 0


def test_apply_uses_the_default_configuration_when_it_names_the_plans_root(
    capsys: pytest.CaptureFixture[str],
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry's default config.yml is used when it is for the plan's root, else not."""
    out = dry_plan(capsys, scene, tmp_path)
    other = write_config(tmp_path, {"filesystem": {"rootdirectory": str(tmp_path / "x")}}, "o.yml")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", (str(other),))
    code, report = cli_json(capsys, "apply", out, "-d")
    assert code == 0
    assert "registry_config" not in report
    same = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}}, "s.yml")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", (str(same),))
    code, report = cli_json(capsys, "apply", out, "-d")
    assert code == 0
    assert report["registry_config"]["path"] == str(same)


def test_apply_refusals_exit_3_and_name_the_plan(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """Another root, an old plan, a plan cut short: exit 3, the file and line named, no change."""
    out = dry_plan(capsys, scene, tmp_path)
    before = files(scene.root)
    elsewhere = tmp_path / "elsewhere"
    Scene(elsewhere)
    code, _, err = cli_run(capsys, "apply", out, elsewhere)
    assert code == 3
    assert f"registry-gc: error: plan file {out}, line 1: was made for {scene.root}" in err
    assert "nothing was deleted" in err
    code, _, err = cli_run(capsys, "apply", out, "--max-age", "0s")
    assert code == 3
    assert "more than --max-age 0s allows" in err
    assert "give a longer --max-age" in err
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))
    code, report = cli_json(capsys, "apply", cut)
    assert code == 3
    assert report["ok"] is False
    assert "cut short" in report["error"]
    assert files(scene.root) == before


def test_apply_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """A missing plan file, a bad --max-age, ROOT and --config together: exit 2."""
    code, _, err = cli_run(capsys, "apply", tmp_path / "none.jsonl", scene.root)
    assert code == 2
    assert "cannot read the plan file" in err
    out = dry_plan(capsys, scene, tmp_path)
    code, _, err = cli_run(capsys, "apply", out, "--max-age", "soon")
    assert code == 2
    assert "invalid duration" in err
    cfg = write_config(tmp_path, {"filesystem": {"rootdirectory": str(scene.root)}})
    code, _, err = cli_run(capsys, "apply", out, scene.root, "--config", cfg)
    assert code == 2
    assert "not both" in err


def test_apply_writes_metrics_as_apply(
    capsys: pytest.CaptureFixture[str], scene: Scene, tmp_path: Path
) -> None:
    """--metrics-file: the run is labelled command="apply"."""
    out = dry_plan(capsys, scene, tmp_path)
    metrics = tmp_path / "m.prom"
    code, _, err = cli_run(capsys, "apply", out, "--metrics-file", metrics, "-q")
    assert code == 0, err
    assert 'command="apply"' in metrics.read_text()
    assert "registry_gc_run_success 1.0" in metrics.read_text()


# -- ls --------------------------------------------------------------------------------------


def test_ls_json(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """Repositories, tags, digests, kinds, platforms and sizes, as JSON."""
    code, data = cli_json(capsys, "ls", scene.root)
    assert code == 0
    assert data["schema"] == "registry-gc/ls/v1"
    repos = {r["name"]: r for r in data["repositories"]}
    assert list(repos) == ["library/alpine", "team/app", "team/app/worker"]
    tags = {t["name"]: t for t in repos["library/alpine"]["tags"]}
    assert list(tags) == ["3.20", "latest", "old", "stable"]
    assert tags["3.20"]["digest"] == scene.v320
    assert tags["3.20"]["bytes"] == scene.size(scene.image_blobs(scene.v320))
    assert tags["3.20"]["platforms"] == ["linux/amd64"]
    assert tags["latest"]["kind"] == "oci-index"
    assert tags["latest"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert tags["old"]["modified"].endswith("Z")
    assert repos["library/alpine"]["untagged_count"] == 2  # the untagged image, old's history
    assert repos["library/alpine"]["untagged"] == []


def test_ls_text_truncates_digests_unless_asked(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """A table with short digests; --no-trunc shows them whole."""
    code, out, _ = cli_run(capsys, "ls", scene.root)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE"]
    assert f"{scene.v320[:19]} " in out
    assert scene.v320 not in out
    assert "untagged revision(s) not shown: use -a" in out
    out = cli_run(capsys, "ls", scene.root, "--no-trunc")[1]
    assert scene.v320 in out


def test_ls_selects_repositories_by_name_and_pattern(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """REPO arguments select; a pattern may match nothing; an unknown name is exit 2."""
    code, data = cli_json(capsys, "ls", scene.root, "team/*")
    assert [r["name"] for r in data["repositories"]] == ["team/app", "team/app/worker"]
    code, data = cli_json(capsys, "ls", scene.root, "library/alpine", "zzz*")
    assert [r["name"] for r in data["repositories"]] == ["library/alpine"]
    code, _, err = cli_run(capsys, "ls", scene.root, "library/nope")
    assert code == 2
    assert "no repository 'library/nope'" in err
    code, _, err = cli_run(capsys, "ls", scene.root, "Bad/Name")
    assert code == 2


def test_ls_all_lists_untagged_and_no_platforms_skips_configs(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """-a adds revisions no tag reaches; --no-platforms reads no config."""
    code, data = cli_json(capsys, "ls", scene.root, "library/alpine", "-a", "--no-platforms")
    assert code == 0
    repo = data["repositories"][0]
    assert {u["digest"] for u in repo["untagged"]} == {scene.untagged, scene.old_prev}
    tags = {t["name"]: t for t in repo["tags"]}
    assert tags["3.20"]["platforms"] == []
    assert tags["latest"]["platforms"] == ["linux/amd64", "linux/arm64"]  # from the index
    out = cli_run(capsys, "ls", scene.root, "library/alpine", "-a")[1]
    assert "<untagged>" in out


def test_ls_options_may_follow_operands(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """`ls ROOT -a REPO`: names after options are still operands."""
    code, data = cli_json(capsys, "ls", scene.root, "-a", "team/app")
    assert code == 0
    assert [r["name"] for r in data["repositories"]] == ["team/app"]


def test_ls_shows_a_broken_tag(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """A tag whose current link is garbage is listed with its problem."""
    path = scene.root / TagCurrentLink(Repository("team/app"), Tag("v1")).path
    path.write_bytes(b"garbage")
    code, out, _ = cli_run(capsys, "ls", scene.root, "team/app")
    assert code == 0
    assert "note: team/app:v1: current link is broken" in out


# -- du --------------------------------------------------------------------------------------


@pytest.mark.parametrize("untagged", [False, True])
def test_du_reclaimable_is_what_gc_would_free(
    capsys: pytest.CaptureFixture[str], scene: Scene, untagged: bool
) -> None:
    """The reclaimable bytes of du are what gc --dry-run frees, with and without -m."""
    flags = ["-m"] if untagged else []
    code, usage = cli_json(capsys, "du", scene.root, *flags, "--grace", "0")
    assert code == 0
    _, report = cli_json(capsys, "gc", scene.root, "-d", *flags, "--grace", "0")
    assert usage["reclaimable"]["bytes"] == report["totals"]["bytes"]
    assert usage["reclaimable"]["blobs"] == report["categories"]["blob"]["count"]
    assert usage["total"]["bytes"] == report["store"]["bytes"]
    assert usage["live"]["bytes"] == report["store"]["live_bytes"]
    assert usage["uploads"] == {"count": 1, "bytes": 300 + len(b"2026-01-01T00:00:00Z") + 5}


def test_du_unique_and_shared_bytes(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """The base layer two repositories use is shared in both; size = unique + shared."""
    code, usage = cli_json(capsys, "du", scene.root)
    assert code == 0
    repos = {r["name"]: r for r in usage["repositories"]}
    base = len(scene.b.files[blob_path(scene.base)])
    assert repos["library/alpine"]["shared_bytes"] == base
    assert repos["team/app"]["shared_bytes"] == base
    assert repos["team/app/worker"]["shared_bytes"] == 0
    for r in repos.values():
        assert r["bytes"] == r["unique_bytes"] + r["shared_bytes"]


def test_du_sort(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """--sort size puts the largest repository first; name is alphabetical."""
    _, by_name = cli_json(capsys, "du", scene.root)
    assert [r["name"] for r in by_name["repositories"]] == sorted(
        r["name"] for r in by_name["repositories"]
    )
    _, by_size = cli_json(capsys, "du", scene.root, "--sort", "size")
    sizes = [r["bytes"] for r in by_size["repositories"]]
    assert sizes == sorted(sizes, reverse=True)
    _, by_reclaim = cli_json(capsys, "du", scene.root, "--sort", "reclaimable", "-m")
    assert by_reclaim["repositories"][0]["name"] == "library/alpine"


def test_du_text(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """The text form: totals, then a table per repository."""
    code, out, _ = cli_run(capsys, "du", scene.root, "-m", "--grace", "0")
    assert code == 0
    assert out.startswith(f"registry-gc du on {scene.root}\n")
    assert "reclaimable" in out
    assert "(by registry-gc gc -m, uploads included)" in out
    assert "REPOSITORY" in out
    assert "UNIQUE" in out


def test_du_when_gc_would_refuse(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """A live manifest that cannot be parsed: du still shows usage, and why gc would refuse."""
    scene.b.manifest("broken", b"{nope", tag="v1")
    scene.b.write_local(scene.root)
    code, usage = cli_json(capsys, "du", scene.root)
    assert code == 0
    assert usage["reclaimable"] == {"blobs": None, "bytes": None}
    assert any("cannot be used" in p for p in usage["problems"])
    out = cli_run(capsys, "du", scene.root)[1]
    assert "reclaimable: unknown, a run would refuse to sweep" in out


# -- fsck ------------------------------------------------------------------------------------


def test_fsck_healthy(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """A healthy store: exit 0, JSON ok, every tag checked."""
    code, data = cli_json(capsys, "fsck", scene.root, "--verify-blobs")
    assert code == 0
    assert data["ok"] is True
    assert data["checked"]["tags"] == 7
    assert data["checked"]["hashed"] == len(scene.b.paths(V2 + "blobs/"))


def test_fsck_problems_exit_1_each_with_its_object(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """Two corruptions: exit 1, both listed with their paths, in text and JSON."""
    layer = scene.b.contents[scene.app]["blobs"][1]
    os.remove(scene.root / BlobData(layer).path)
    os.remove(
        scene.root
        / LayerLink(Repository("team/app/worker"), scene.b.contents[scene.worker]["blobs"][1]).path
    )
    code, data = cli_json(capsys, "fsck", scene.root)
    assert code == 1
    assert data["ok"] is False
    assert sorted(p["kind"] for p in data["problems"]) == ["missing-blob", "missing-layer-link"]
    code, out, _ = cli_run(capsys, "fsck", scene.root)
    assert code == 1
    assert "PROBLEMS (2)" in out
    assert blob_path(layer) in out


def test_fsck_verify_blobs(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """A flipped byte in a layer: found only with --verify-blobs."""
    path = scene.root / BlobData(scene.b.contents[scene.worker]["blobs"][1]).path
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert cli_run(capsys, "fsck", scene.root)[0] == 0
    code, data_ = cli_json(capsys, "fsck", scene.root, "--verify-blobs")
    assert code == 1
    assert [p["kind"] for p in data_["problems"]] == ["corrupt-blob"]
    assert data_["problems"][0]["tags"] == ["team/app/worker:v1"]


def test_fsck_selected_repositories(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """With REPO arguments, fsck checks only those repositories."""
    os.remove(scene.root / BlobData(scene.worker).path)
    assert cli_run(capsys, "fsck", scene.root, "library/alpine")[0] == 0
    assert cli_run(capsys, "fsck", scene.root, "team/app/worker")[0] == 1


def test_fsck_quiet_prints_problems_on_stderr_only(
    capsys: pytest.CaptureFixture[str], scene: Scene
) -> None:
    """-q: nothing on stdout; each problem one line on stderr."""
    os.remove(scene.root / BlobData(scene.worker).path)
    code, out, err = cli_run(capsys, "fsck", scene.root, "-q")
    assert (code, out) == (1, "")
    assert err.startswith("registry-gc: fsck: [missing-manifest]")


# -- every command ---------------------------------------------------------------------------


COMMANDS = [
    ("gc", "-d"),
    ("rm", "library/alpine:old", "-d"),
    ("ls",),
    ("du",),
    ("fsck",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_speaks_json(
    capsys: pytest.CaptureFixture[str], scene: Scene, command: tuple[str, ...]
) -> None:
    """--json on every command: one JSON document on stdout."""
    name, *rest = command
    code, data = cli_json(capsys, name, scene.root, *rest)
    assert code == 0
    assert data["root"] == str(scene.root)


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_is_quiet_with_q(
    capsys: pytest.CaptureFixture[str], scene: Scene, command: tuple[str, ...]
) -> None:
    """-q prints nothing when all is well."""
    name, *rest = command
    assert cli_run(capsys, name, scene.root, *rest, "-q") == (0, "", "")


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_refuses_a_root_without_registry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """An empty ROOT is refused (exit 3) — usually a wrong path; --allow-empty accepts it."""
    name, *rest = command
    code, _, err = cli_run(capsys, name, tmp_path, *rest)
    assert code == 3
    assert "no registry found" in err
    if name != "rm":  # rm of anything in an empty registry finds nothing to remove
        assert cli_run(capsys, name, tmp_path, *rest, "--allow-empty", "-q")[0] == 0


def test_storage_error_is_exit_4(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A link out of the root stops the listing: exit 4, one line naming it."""
    root = tmp_path / "root"
    (root / V2 / "repositories").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / V2 / "repositories" / "evil")
    code, _, err = cli_run(capsys, "ls", root)
    assert code == 4
    assert "outside the registry root" in err


def test_verbose_and_log_level(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """-v logs INFO on stderr; -l error silences it; -l debug adds DEBUG."""
    assert "registry-gc: INFO: listed" in cli_run(capsys, "ls", scene.root, "-v")[2]
    assert cli_run(capsys, "ls", scene.root, "-v", "-l", "error")[2] == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version."""
    code, out, _ = cli_run(capsys, "--version")
    assert code == 0
    assert out.startswith("registry-gc ")


@pytest.mark.parametrize("name", ["gc", "rm", "ls", "du", "fsck"])
def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """Each command's --help ends with the exit codes."""
    code, out, _ = cli_run(capsys, name, "--help")
    assert code == 0
    assert "Exit codes: 0 ok; 1 deletions failed" in " ".join(out.split())


def test_unknown_option_is_exit_2(capsys: pytest.CaptureFixture[str], scene: Scene) -> None:
    """An option a command does not have is a usage error."""
    assert cli_run(capsys, "ls", scene.root, "--frobnicate")[0] == 2
