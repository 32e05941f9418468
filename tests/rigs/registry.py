"""The real reference registry (Debian ``docker-registry`` 2.8.2) as a test rig.

:class:`RealRegistry` writes a ``config.yml`` and runs ``docker-registry serve`` on
127.0.0.1 and a free port, over a filesystem root directory or over S3 (SeaweedFS or
moto). The configuration always has deletes enabled, upload purging off, redirects off,
the access log off, no storage health check and **no blob descriptor cache**, so what the
registry serves always reflects the storage (no restart needed after a GC or after a
test deletes files behind its back; :meth:`RealRegistry.restart` exists anyway).
``extra_config`` can set one: ``tests/test_cache.py`` runs it with
``storage.cache.blobdescriptor: redis`` and a ``redis`` section.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.rigs.procs import (
    LOCALHOST,
    ManagedProcess,
    StartupError,
    free_port,
    http_status,
    run,
    wait_until,
)
from tests.rigs.push import RegistryClient

if TYPE_CHECKING:
    import subprocess
    from types import TracebackType

    from typing_extensions import Self

    from tests.rigs.s3 import S3Server

REGISTRY_BINARY = "docker-registry"
#: Path of the registry layout below the driver's root directory.
V2_PREFIX = "docker/registry/v2"


@dataclass(frozen=True)
class S3Storage:
    """Where an S3-backed registry keeps its data.

    ``rootdirectory`` is the registry's key prefix inside the bucket, as written in the
    config (``"/"`` for the bucket root, ``"/reg"`` for ``reg/docker/registry/v2/...``).
    """

    endpoint_url: str
    bucket: str
    rootdirectory: str = "/"
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"

    @classmethod
    def on(cls, server: S3Server, bucket: str, rootdirectory: str = "/") -> S3Storage:
        """Describe ``bucket`` on a rig S3 server."""
        return cls(
            endpoint_url=server.endpoint_url,
            bucket=bucket,
            rootdirectory=rootdirectory,
            key=server.key,
            secret=server.secret,
            region=server.region,
        )

    def storage_options(self) -> dict[str, Any]:
        """The fsspec/s3fs options to reach this bucket."""
        return {
            "key": self.key,
            "secret": self.secret,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }

    def driver_config(self) -> dict[str, Any]:
        """The registry configuration's ``storage`` entry for this bucket: ``{"s3": {...}}``."""
        return {
            "s3": {
                "accesskey": self.key,
                "secretkey": self.secret,
                "region": self.region,
                "regionendpoint": self.endpoint_url,
                "bucket": self.bucket,
                "rootdirectory": self.rootdirectory,
                "secure": False,
                "v4auth": True,
            }
        }

    @property
    def key_prefix(self) -> str:
        """The object-key prefix of the registry root: ``""`` or ``"reg/"`` (no leading /)."""
        stripped = self.rootdirectory.strip("/")
        return f"{stripped}/" if stripped else ""


def _algo_hex(digest: str) -> tuple[str, str]:
    algo, _, hexpart = digest.partition(":")
    if not hexpart:
        raise ValueError(f"not a digest: {digest!r}")
    return algo, hexpart


def blob_data_key(digest: str) -> str:
    """``blobs/<alg>/<hex[:2]>/<hex>/data`` (relative to the ``docker/registry/v2`` root)."""
    algo, hexpart = _algo_hex(digest)
    return f"blobs/{algo}/{hexpart[:2]}/{hexpart}/data"


def layer_link_key(repo: str, digest: str) -> str:
    """``repositories/<repo>/_layers/<alg>/<hex>/link``."""
    algo, hexpart = _algo_hex(digest)
    return f"repositories/{repo}/_layers/{algo}/{hexpart}/link"


def revision_link_key(repo: str, digest: str) -> str:
    """``repositories/<repo>/_manifests/revisions/<alg>/<hex>/link``."""
    algo, hexpart = _algo_hex(digest)
    return f"repositories/{repo}/_manifests/revisions/{algo}/{hexpart}/link"


def tag_current_key(repo: str, tag: str) -> str:
    """``repositories/<repo>/_manifests/tags/<tag>/current/link``."""
    return f"repositories/{repo}/_manifests/tags/{tag}/current/link"


def tag_index_key(repo: str, tag: str, digest: str) -> str:
    """``repositories/<repo>/_manifests/tags/<tag>/index/<alg>/<hex>/link``."""
    algo, hexpart = _algo_hex(digest)
    return f"repositories/{repo}/_manifests/tags/{tag}/index/{algo}/{hexpart}/link"


def upload_prefix(repo: str, upload_uuid: str = "") -> str:
    """``repositories/<repo>/_uploads/<uuid>`` (or the ``_uploads`` directory itself)."""
    base = f"repositories/{repo}/_uploads"
    return f"{base}/{upload_uuid}" if upload_uuid else base


def registry_env() -> dict[str, str]:
    """Return the environment for ``docker-registry``.

    ``AWS_CA_BUNDLE`` is removed (2.8.2 panics with ``LoadCustomCABundleError`` on it),
    and so is every ``REGISTRY_*`` variable (they would override the config file).
    """
    return {
        k: v
        for k, v in os.environ.items()
        if k != "AWS_CA_BUNDLE" and not k.startswith("REGISTRY_")
    }


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``base`` recursively (dicts merged, other values replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


class RealRegistry:
    """``docker-registry serve`` on ``127.0.0.1:<free port>`` over a directory or S3.

    Args:
        workdir: directory for ``config.yml`` and ``registry.log`` (created).
        root_dir: filesystem storage root (``storage.filesystem.rootdirectory``); the
            layout is then under ``root_dir/docker/registry/v2``. Exactly one of
            ``root_dir`` and ``s3`` must be given.
        s3: S3 storage (``storage.s3`` with ``regionendpoint``, ``secure: false``,
            ``v4auth: true``); the bucket must exist.
        extra_config: merged (recursively) into the generated config, e.g.
            ``{"compatibility": {"schema1": {"enabled": True}}}``.
        port: the port to listen on (a free one when None; kept across restarts).
        startup_timeout: seconds to wait for ``GET /v2/`` to answer 200.

    Call :meth:`start` (or use ``with``); :meth:`stop` kills its process group.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        root_dir: str | os.PathLike[str] | None = None,
        s3: S3Storage | None = None,
        extra_config: dict[str, Any] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        if (root_dir is None) == (s3 is None):
            raise ValueError("give exactly one of root_dir and s3")
        self.workdir = Path(workdir)
        self.root_dir = Path(root_dir) if root_dir is not None else None
        self.s3 = s3
        self.extra_config = extra_config or {}
        self._auto_port = port is None
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.proc: ManagedProcess | None = None

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``"127.0.0.1:PORT"`` (host:port, as used in image references)."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:PORT"``."""
        return f"http://{self.url}"

    @property
    def storage_root(self) -> str:
        """Where the ``docker/registry/v2`` tree is.

        Filesystem: the absolute local path. S3: ``"<bucket>/<prefix>docker/registry/v2"``
        (an s3fs path without the ``s3://``).
        """
        if self.root_dir is not None:
            return str(self.root_dir / V2_PREFIX)
        assert self.s3 is not None
        return f"{self.s3.bucket}/{self.s3.key_prefix}{V2_PREFIX}"

    @property
    def v2_dir(self) -> Path:
        """The local ``<root>/docker/registry/v2`` directory (filesystem storage only)."""
        if self.root_dir is None:
            raise TypeError("v2_dir: this registry stores its data on S3")
        return self.root_dir / V2_PREFIX

    def storage_fs(self) -> tuple[Any, str]:
        """Return ``(fsspec filesystem, root)`` where ``root`` is the ``docker/registry/v2`` path.

        A local filesystem for a directory store, an uncached s3fs for S3.
        """
        import fsspec  # noqa: PLC0415

        if self.s3 is not None:
            fs = fsspec.filesystem(
                "s3",
                skip_instance_cache=True,
                use_listings_cache=False,
                **self.s3.storage_options(),
            )
            return fs, self.storage_root
        return fsspec.filesystem("file"), self.storage_root

    def keys(self) -> dict[str, int]:
        """Return ``{relative key: size}`` of every file under ``docker/registry/v2``.

        Keys are relative to the v2 root (``blobs/sha256/…/data``,
        ``repositories/<repo>/…``), with ``/`` separators, for both storage kinds.
        """
        fs, root = self.storage_fs()
        if not fs.exists(root):
            return {}
        found = fs.find(root, detail=True)
        prefix = root.rstrip("/") + "/"
        out: dict[str, int] = {}
        for path, info in found.items():
            if info.get("type") == "file" and path.startswith(prefix):
                out[path[len(prefix) :]] = int(info.get("size") or 0)
        return out

    def read_key(self, key: str) -> bytes:
        """Return the bytes of ``key`` (relative to the v2 root)."""
        fs, root = self.storage_fs()
        return bytes(fs.cat_file(f"{root}/{key}"))

    def delete_key(self, key: str) -> None:
        """Delete the file ``key`` (relative to the v2 root) behind the registry's back."""
        fs, root = self.storage_fs()
        fs.rm_file(f"{root}/{key}")

    def client(self) -> RegistryClient:
        """Return a :class:`~tests.rigs.push.RegistryClient` for this registry."""
        return RegistryClient(self.url)

    # -- config ----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Return the registry configuration as a dict (what :meth:`write_config` writes)."""
        storage: dict[str, Any]
        if self.root_dir is not None:
            storage = {"filesystem": {"rootdirectory": str(self.root_dir)}}
        else:
            assert self.s3 is not None
            storage = self.s3.driver_config()
        storage.update(
            {
                "delete": {"enabled": True},
                "redirect": {"disable": True},
                "maintenance": {
                    "uploadpurging": {"enabled": False},
                    "readonly": {"enabled": False},
                },
            }
        )
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": storage,
            "http": {
                "addr": self.url,
                # Fixed, so that upload state tokens survive restart().
                "secret": "registry-gc-test-rig-secret",
            },
            "health": {"storagedriver": {"enabled": False}},
        }
        return _deep_merge(cfg, self.extra_config)

    def write_config(self) -> Path:
        """Write ``config.yml`` into the work directory and return its path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.root_dir is not None:
            self.root_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> RealRegistry:
        """Write the config, start ``docker-registry serve`` and wait until it serves; return self.

        Ready means: ``GET /v2/`` answers 200 **and** the port is held by our process (not
        by some leftover server). When the port was picked automatically and turns out to
        be taken, a new one is picked (up to 3 attempts).
        """
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise StartupError(f"`{REGISTRY_BINARY}` is not installed")
        if self.proc is not None and self.proc.running:
            raise RuntimeError("registry already running")
        attempts = 3 if self._auto_port else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(binary)
            except StartupError as exc:
                if attempt < attempts and "address already in use" in str(exc):
                    self.port = free_port()
                    continue
                raise
            break
        return self

    def _start_once(self, binary: str) -> None:
        self.write_config()
        self.proc = proc = ManagedProcess(
            [binary, "serve", str(self.config_path)],
            name="docker-registry",
            env=registry_env(),
            cwd=self.workdir,
            log_path=self.log_path,
        )
        proc.start()
        url = f"{self.base_url}/v2/"
        try:
            wait_until(
                lambda: proc.owns_ports([self.port]) and http_status(url) == 200,
                timeout=self.startup_timeout,
                what=f"docker-registry at {url}",
                proc=proc,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM to its process group, SIGKILL after 5 s). Idempotent."""
        if self.proc is not None:
            self.proc.stop(grace=5.0)
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and config (drops any in-memory state)."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the registry process is alive."""
        return self.proc is not None and self.proc.running

    def log_tail(self, lines: int = 40) -> str:
        """Return the tail of the registry log."""
        if self.proc is not None:
            return self.proc.log_tail(lines)
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    # -- reference GC ----------------------------------------------------------------

    def garbage_collect(
        self,
        delete_untagged: bool,
        dry_run: bool = False,
        *,
        check: bool = True,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the reference ``docker-registry garbage-collect [--dry-run] [--delete-untagged]``.

        It runs against this registry's config **while the server keeps running**: the
        server has no blob descriptor cache, so nothing needs a restart afterwards; the
        caller must not push concurrently (the reference GC has no grace period). The GC
        logs to stderr; its summary line ("N blobs marked, M blobs and K manifests
        eligible for deletion") is on stdout.

        Raises:
            CommandError: when ``check`` and the exit code is not 0.
        """
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise StartupError(f"`{REGISTRY_BINARY}` is not installed")
        if not self.config_path.exists():
            self.write_config()
        argv = [binary, "garbage-collect"]
        if dry_run:
            argv.append("--dry-run")
        if delete_untagged:
            argv.append("--delete-untagged")
        argv.append(str(self.config_path))
        return run(argv, env=registry_env(), timeout=timeout, check=check, cwd=self.workdir)

    def __enter__(self) -> Self:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"s3://{self.storage_root}" if self.s3 else str(self.root_dir)
        return f"<RealRegistry {self.url} over {where} running={self.running}>"
