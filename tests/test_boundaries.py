"""Boundaries: what a run may touch, which roots it refuses, and what it never shows.

Nothing outside ``<root>/docker/registry/v2/`` is deleted (files around the tree,
edited plans, pruned directories); a root that holds no registry is refused unless
``--allow-empty``; credentials (storage options, a registry config.yml, environment
overrides) never appear in output, logs, reports or errors.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import yaml
from registry_gc import RefusedError, StorageError, cli, collect
from registry_gc.apply import apply_plan, directories_to_prune
from registry_gc.backends import LocalBackend
from registry_gc.cli import _output as cli_output
from registry_gc.config import load_registry_config
from registry_gc.layout import V2_PREFIX
from registry_gc.plan import Category, Deletion

from tests.rigs.builder import RegistryBuilder
from tests.rigs.faults import FaultyBackend

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.rigs.s3 import MotoS3, SeaweedS3

ZERO = datetime.timedelta(0)
DAY = 86400.0
SECRET_KEY = "SECRETKEY123"
SECRET_VALUE = "SECRETVALUE456"
SECRETS = (SECRET_KEY, SECRET_VALUE, "SECRETNESTED789", "SECRETENV000")


def garbage_everywhere(b: RegistryBuilder) -> None:
    """A registry where a -m run with no grace deletes something of every category."""
    for _ in range(3):
        b.image("app", "latest")
    b.image("gone", None)
    b.multiarch("multi", None)
    b.blob(b"orphan")
    b.upload("app", age=3 * DAY)


def snapshot(root: Path) -> dict[str, Any]:
    """Every file (content, mtime) and directory (mtime) under ``root``."""
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = (f.read(), os.stat(full).st_mtime_ns)
        for name in dirs:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root) + "/"] = os.stat(full).st_mtime_ns
    return out


def outside_v2(snap: dict[str, Any]) -> dict[str, Any]:
    """The entries of a snapshot that are not under docker/registry/v2/."""
    return {p: v for p, v in snap.items() if not p.startswith(V2_PREFIX)}


# -- nothing outside docker/registry/v2 ------------------------------------------------------------


def test_unrelated_files_around_the_registry_tree_are_never_touched(tmp_path: Path) -> None:
    """Siblings, parents, look-alike prefixes and empty directories outside v2 stay as they are."""
    root = tmp_path / "root"
    b = RegistryBuilder(seed=1)
    garbage_everywhere(b)
    b.write_local(root)
    old = 1e9
    strays = [
        "README",
        "docker/notes.txt",
        "docker/registry/other/blobs/sha256/ab/abcd/data",
        "docker/registry/other/repositories/app/_layers/sha256/" + "1" * 64 + "/link",
        "docker/registry/v2-old/blobs/sha256/ab/" + "ab" * 32 + "/data",
        "docker/registry/v2.bak/repositories/app/_uploads/x/data",
        "docker/registry/v2/README",
        "docker/registry/v2/other/data",
        "docker/registry/v20/repositories/x/_manifests/revisions/sha256/" + "2" * 64 + "/link",
    ]
    for path in strays:
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(b"not yours")
        os.utime(full, (old, old))
    for empty in ("empty", "docker/registry/empty", "docker/registry/v2-old/repositories/gone"):
        (root / empty).mkdir(parents=True, exist_ok=True)
        os.utime(root / empty, (old, old))
    (tmp_path / "sibling-of-root").write_bytes(b"next door")
    before = snapshot(root)
    report = collect(root, delete_untagged=True, grace=ZERO, uploads_older_than=ZERO)
    assert report.ok
    assert report.deleted_count > 20
    assert {d.category for d in report.plan.deletions} >= set(Category) - {Category.TAG}
    after = snapshot(root)
    assert outside_v2(after) == outside_v2(before)
    for path in strays:
        assert (root / path).read_bytes() == b"not yours", path
    assert (tmp_path / "sibling-of-root").read_bytes() == b"next door"


def test_directory_pruning_never_leaves_the_registry_tree(tmp_path: Path) -> None:
    """directories_to_prune: only directories strictly below v2, never v2/blobs or repositories."""
    b = RegistryBuilder(seed=2)
    garbage_everywhere(b)
    b.write_local(tmp_path)
    plan = collect(tmp_path, delete_untagged=True, grace=ZERO, dry_run=True).plan
    hostile = [
        "docker/registry/other/x/y",
        "docker/registry/v2",
        "docker/x",
        "/etc/passwd",
        "docker/registry/v2/../../../etc/x",
        "docker/registry/v2-old/blobs/sha256/ab/cd/data",
        *plan.paths,
    ]
    dirs = directories_to_prune(plan, hostile)
    assert dirs
    top = {"docker/registry/v2", "docker/registry/v2/blobs", "docker/registry/v2/repositories"}
    for d in dirs:
        assert d.startswith(V2_PREFIX), d
        assert d not in top
        assert ".." not in d.split("/"), d


EDITS = {
    "absolute": "/etc/passwd",
    "relative-outside": "docker/registry/other/file",
    "parent-of-root": "../outside/file",
    "dot-dot-inside": "docker/registry/v2/repositories/../../../../outside/file",
    "look-alike-prefix": "docker/registry/v2-old/blobs/sha256/ab/cd/data",
    "root-file": "README",
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_plan_with_a_path_outside_v2_is_refused_whole(tmp_path: Path, edit: str) -> None:
    """apply_plan refuses a plan with one path outside v2 before deleting anything at all."""
    root = tmp_path / "root"
    b = RegistryBuilder(seed=3)
    garbage_everywhere(b)
    b.write_local(root)
    for path in ("docker/registry/other/file", "README", "docker/registry/v2-old/blobs/x"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"keep")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/file").write_bytes(b"keep")
    plan = collect(root, delete_untagged=True, grace=ZERO, dry_run=True).plan
    assert plan.deletions
    bad = Deletion(Category.BLOB, "unreferenced", (EDITS[edit],), 1)
    edited = attrs.evolve(plan, deletions=[*plan.deletions, bad])
    before = snapshot(tmp_path)
    with pytest.raises(RefusedError, match="nothing deleted") as info:
        apply_plan(LocalBackend(root), edited)
    assert EDITS[edit] in str(info.value)
    assert snapshot(tmp_path) == before
    # Smuggled into an existing deletion's paths instead: refused all the same.
    first = plan.deletions[0]
    smuggled = attrs.evolve(first, paths=(*first.paths, EDITS[edit]))
    with pytest.raises(RefusedError):
        apply_plan(LocalBackend(root), attrs.evolve(plan, deletions=[smuggled]))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("field", ["stale_empty_dirs", "removed_repositories"])
def test_an_edited_plan_never_prunes_a_directory_outside_v2(tmp_path: Path, field: str) -> None:
    """Directories a plan names (empty ones, removed repositories) are pruned only below v2."""
    root = tmp_path / "root"
    b = RegistryBuilder(seed=6)
    garbage_everywhere(b)
    b.write_local(root)
    for empty in ("outside-empty", "root/docker/registry/empty"):
        (tmp_path / empty).mkdir(parents=True)
    plan = collect(root, delete_untagged=True, grace=ZERO, dry_run=True).plan
    hostile = [
        "docker/registry/v2/../../../../outside-empty",
        "docker/registry/empty",
        str(tmp_path / "outside-empty"),
    ]
    value: Any = [*getattr(plan, field), *hostile]
    edited = attrs.evolve(
        plan, **{field: frozenset(value) if field != "stale_empty_dirs" else value}
    )
    recorder = FaultyBackend(LocalBackend(root))
    assert apply_plan(recorder, edited).ok
    pruned = [p for c in recorder.calls if c.kind == "remove-dirs" for p in c.paths]
    assert pruned, "directories inside v2 were pruned"
    for d in pruned:
        assert d.startswith(V2_PREFIX), d
        assert ".." not in d.split("/"), d
    assert (tmp_path / "outside-empty").is_dir()
    assert (root / "docker/registry/empty").is_dir()


def test_the_local_backend_refuses_paths_that_leave_the_root(tmp_path: Path) -> None:
    """Even called directly, LocalBackend.delete refuses absolute and '..' paths."""
    (tmp_path / "root").mkdir()
    (tmp_path / "victim").write_bytes(b"keep")
    backend = LocalBackend(tmp_path / "root")
    for path in (str(tmp_path / "victim"), "../victim", "docker/registry/v2/../../../../victim"):
        with pytest.raises(StorageError, match="refusing path"):
            asyncio.run(backend.delete([path]))
    assert (tmp_path / "victim").read_bytes() == b"keep"


# -- a root that holds no registry -----------------------------------------------------------------


def wrong_roots(tmp_path: Path) -> dict[str, Path]:
    """Places a user may give instead of the registry's root directory."""
    real = tmp_path / "var/lib/registry"
    b = RegistryBuilder(seed=4)
    garbage_everywhere(b)
    b.write_local(real)
    (tmp_path / "empty").mkdir()
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated/data.bin").write_bytes(b"x")
    (tmp_path / "bare/docker/registry/v2").mkdir(parents=True)
    return {
        "empty-directory": tmp_path / "empty",
        "unrelated-files": tmp_path / "unrelated",
        "missing-directory": tmp_path / "missing",
        "bare-v2-directory": tmp_path / "bare",
        "the-v2-directory-itself": real / "docker/registry/v2",
        "a-parent-of-the-root": tmp_path / "var/lib",
    }


@pytest.mark.parametrize(
    "which",
    [
        "empty-directory",
        "unrelated-files",
        "missing-directory",
        "bare-v2-directory",
        "the-v2-directory-itself",
        "a-parent-of-the-root",
    ],
)
def test_a_root_without_a_registry_is_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    """No registry under ROOT: exit 3 / RefusedError naming ROOT; --allow-empty deletes nothing."""
    root = wrong_roots(tmp_path)[which]
    before = snapshot(tmp_path)
    with pytest.raises(RefusedError, match="no registry found") as info:
        collect(root, delete_untagged=True, grace=ZERO)
    assert str(root) in str(info.value)
    assert "docker/registry/v2" in str(info.value)
    capsys.readouterr()
    assert cli.run(["gc", str(root), "-m", "--grace", "0s"]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "no registry found" in err
    assert "--allow-empty" in err
    assert snapshot(tmp_path) == before
    report = collect(root, delete_untagged=True, grace=ZERO, allow_empty=True)
    assert report.plan.deletions == []
    assert cli.run(["gc", str(root), "-m", "--grace", "0s", "--allow-empty"]) == cli.EXIT_OK
    assert snapshot(tmp_path) == before


# -- credentials -----------------------------------------------------------------------------------


class Captured:
    """Everything a CLI run printed or logged, as one string."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []

    def text(self, out: str, err: str) -> str:
        """stdout, stderr and every captured record (message, exception, repr)."""
        parts = [out, err]
        for r in self.records:
            parts.append(r.getMessage())
            parts.append(repr(r.args))
            if r.exc_info and r.exc_info[1] is not None:
                parts.append(repr(r.exc_info[1]))
                parts.append(str(r.exc_info[1]))
        return "\n".join(parts)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """Capture every record of registry_gc's loggers (and WARNING+ of all others)."""
    cap = Captured()
    handler = _ListHandler(cap.records)
    real_setup = cli_output.setup_logging

    def setup(args: Any) -> None:
        real_setup(args)
        logging.getLogger("registry_gc").addHandler(handler)

    monkeypatch.setattr(cli, "setup_logging", setup)
    others = logging.getLogger()
    warn = _ListHandler(cap.records)
    warn.setLevel(logging.WARNING)
    others.addHandler(warn)
    yield cap
    others.removeHandler(warn)
    logging.getLogger("registry_gc").removeHandler(handler)


def run_cli(capsys: pytest.CaptureFixture[str], cap: Captured, *argv: str) -> tuple[int, str]:
    """Run the CLI; return its exit code and everything it showed or logged."""
    capsys.readouterr()
    code = cli.run(list(argv))
    out, err = capsys.readouterr()
    return code, cap.text(out, err)


def assert_no_secret(text: str) -> None:
    """None of the secret strings appears in ``text``."""
    for secret in SECRETS:
        assert secret not in text, (
            f"{secret} leaked: ...{text[max(0, text.find(secret) - 200) :][:400]}"
        )


def s3_options(endpoint: str, key: str, secret: str) -> list[str]:
    """-o options for an S3 endpoint with the given credentials (and a nested secret)."""
    kwargs = {"region_name": "us-east-1"}
    return [
        "-o",
        f"endpoint_url={endpoint}",
        "-o",
        f"key={key}",
        "-o",
        f"secret={secret}",
        "-o",
        f"client_kwargs={json.dumps(kwargs)}",
    ]


def fill_bucket(server: Any, bucket: str) -> None:
    """Write a registry with garbage under s3://bucket/reg."""
    b = RegistryBuilder(seed=5)
    garbage_everywhere(b)
    b.write_keys(server.putter(bucket), "reg")


@pytest.mark.s3
def test_credentials_never_appear_on_a_successful_s3_run(
    moto_server: MotoS3,
    moto_bucket: str,
    captured: Captured,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Moto accepts any key:: -vv, --json, dry run and real run never echo the credentials."""
    fill_bucket(moto_server, moto_bucket)
    url = f"s3://{moto_bucket}/reg"
    opts = s3_options(moto_server.endpoint_url, SECRET_KEY, SECRET_VALUE)
    for extra in (["-d", "--json"], ["-d", "-vv"], ["-vv", "--json", "-m", "--grace", "0s"]):
        code, text = run_cli(capsys, captured, "gc", url, *opts, *extra)
        assert code == cli.EXIT_OK, text[-2000:]
        assert_no_secret(text)
    for command in (["ls"], ["du"], ["fsck"]):
        code, text = run_cli(capsys, captured, *command, url, *opts, "-vv", "--json")
        assert code in (cli.EXIT_OK, cli.EXIT_FAILED), text[-2000:]
        assert_no_secret(text)
    assert any(r.name.startswith("registry_gc") for r in captured.records), "logs were captured"


@pytest.mark.s3
@pytest.mark.parametrize(("key", "secret"), [(SECRET_KEY, SECRET_VALUE), ("testing", SECRET_VALUE)])
def test_credentials_never_appear_in_errors_from_a_server_that_checks_them(
    s3_server: SeaweedS3,
    s3_bucket: str,
    captured: Captured,
    capsys: pytest.CaptureFixture[str],
    key: str,
    secret: str,
) -> None:
    """SeaweedFS refuses a wrong key or secret: exit 4, and the error does not echo them."""
    fill_bucket(s3_server, s3_bucket)
    url = f"s3://{s3_bucket}/reg"
    before = s3_server.list_keys(s3_bucket)
    token = json.dumps({"region_name": "us-east-1", "aws_session_token": SECRETS[2]})
    for extra in (["-vv", "--json", "-m"], ["-vv", "-d"], ["-o", f"client_kwargs={token}"]):
        opts = s3_options(s3_server.endpoint_url, key, secret)
        code, text = run_cli(capsys, captured, "gc", url, *opts, *extra)
        assert code == cli.EXIT_STORAGE, text[-2000:]
        assert f"s3://{s3_bucket}/reg" in text
        assert_no_secret(text)
    assert s3_server.list_keys(s3_bucket) == before


def registry_config(tmp_path: Path, endpoint: str, bucket: str, key: str, secret: str) -> Path:
    """A distribution config.yml with S3 storage and credentials (and a blob descriptor cache)."""
    cfg = {
        "version": 0.1,
        "storage": {
            "s3": {
                "accesskey": key,
                "secretkey": secret,
                "region": "us-east-1",
                "regionendpoint": endpoint,
                "bucket": bucket,
                "rootdirectory": "/reg",
                "secure": False,
            },
            "cache": {"blobdescriptor": "inmemory"},
            "delete": {"enabled": True},
        },
        "http": {"addr": ":5000", "secret": "not-a-storage-secret"},
    }
    path = tmp_path / f"config-{uuid.uuid4().hex[:8]}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_registry_config_never_shows_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RegistryConfig: url, repr, describe(), to_dict() and redact() hide file and env secrets."""
    path = registry_config(tmp_path, "http://127.0.0.1:9", "bucket", SECRET_KEY, SECRET_VALUE)
    monkeypatch.setenv("REGISTRY_STORAGE_S3_SESSIONTOKEN", SECRETS[3])
    cfg = load_registry_config(path)
    assert cfg.storage_options["secret"] == SECRET_VALUE, "the credentials are used"
    assert cfg.storage_options["token"] == SECRETS[3], "the environment override applies"
    shown = "\n".join(
        [cfg.url, repr(cfg), cfg.describe(), json.dumps(cfg.to_dict()), *cfg.warnings]
    )
    assert_no_secret(shown)
    assert_no_secret(cfg.redact(f"error: {SECRET_KEY} / {SECRET_VALUE} / {SECRETS[3]}"))


@pytest.mark.s3
def test_registry_config_credentials_never_appear_on_a_run_or_an_error(
    moto_server: MotoS3,
    moto_bucket: str,
    s3_server: SeaweedS3,
    s3_bucket: str,
    tmp_path: Path,
    captured: Captured,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--config with accesskey/secretkey: a run (moto) and an auth error (SeaweedFS) stay clean."""
    fill_bucket(moto_server, moto_bucket)
    ok = registry_config(tmp_path, moto_server.endpoint_url, moto_bucket, SECRET_KEY, SECRET_VALUE)
    for extra in (["-d", "-vv"], ["-vv", "--json", "-m", "--grace", "0s"]):
        code, text = run_cli(capsys, captured, "gc", "--config", str(ok), *extra)
        assert code == cli.EXIT_OK, text[-2000:]
        assert_no_secret(text)
    assert "restart the running registry" in text, "the real run deleted, and said so"
    fill_bucket(s3_server, s3_bucket)
    bad = registry_config(tmp_path, s3_server.endpoint_url, s3_bucket, SECRET_KEY, SECRET_VALUE)
    for extra in (["-vv"], ["--json", "-m"]):
        code, text = run_cli(capsys, captured, "gc", "--config", str(bad), *extra)
        assert code == cli.EXIT_STORAGE, text[-2000:]
        assert_no_secret(text)
