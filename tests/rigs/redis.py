"""A real ``redis-server`` (Debian package ``redis-server``) as a test rig.

:class:`RedisServer` runs ``redis-server`` on 127.0.0.1 and a free port, with no
persistence (``--save "" --appendonly no``) and its working directory in a
temporary directory, optionally with a password (``requirepass``).
:class:`RedisClusterRig` runs three of them as a cluster (``redis-cli --cluster create``);
with :func:`make_tls_files`, one serves TLS only and requires a client certificate.
:func:`set_descriptor` writes a blob descriptor exactly as distribution's redis
cache does (``registry/storage/cache/redis/redis.go``), and :func:`dump` lists
every key with its content, so that tests compare the whole keyspace.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rigs.procs import (
    LOCALHOST,
    ManagedProcess,
    StartupError,
    free_port,
    free_port_pairs,
    run,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    import redis
    from typing_extensions import Self

REDIS_BINARY = "redis-server"
#: What distribution stores as ``mediatype`` for a blob (``blobStore.Put``/``Stat``).
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, a server certificate for 127.0.0.1, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a throw-away CA and the certificates it signs (``cryptography``) into ``directory``."""
    from cryptography import x509  # noqa: PLC0415 - only the TLS tests need it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def builder(subject: str, issuer: str, public: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("registry-gc test CA", "registry-gc test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        builder("127.0.0.1", "registry-gc test CA", server_key.public_key())
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write("server", server, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = builder("registry", "registry-gc test CA", client_key.public_key()).sign(
        ca_key, hashes.SHA256()
    )
    write("client", client, client_key)
    return TlsFiles(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


class RedisServer:
    """``redis-server`` on ``127.0.0.1:<free port>``, in memory only.

    Args:
        workdir: its working directory and log (a temporary directory when None).
        password: ``requirepass`` (the default user's password), or None.
        extra_args: more ``redis-server`` options (``--cluster-enabled yes``).
        tls: serve TLS only (on :attr:`port`), requiring a client certificate.
        port: the port (a free one when None).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        tls: TlsFiles | None = None,
        port: int | None = None,
    ) -> None:
        self.extra_args = list(extra_args)
        self.tls = tls
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rig-redis-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.password = password
        self.port = port or free_port()
        self.proc: ManagedProcess | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``redis.addr`` spells it."""
        return f"{LOCALHOST}:{self.port}"

    def url(self, db: int = 0) -> str:
        """``redis://[:password@]127.0.0.1:PORT/db``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.address}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A synchronous redis-py client on ``db`` (strings decoded)."""
        import redis  # noqa: PLC0415 - the optional client

        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {
                "ssl": True,
                "ssl_ca_certs": str(self.tls.ca),
                "ssl_certfile": str(self.tls.client_cert),
                "ssl_keyfile": str(self.tls.client_key),
            }
        return redis.Redis(
            host=LOCALHOST,
            port=self.port,
            db=db,
            password=self.password,
            decode_responses=True,
            **tls,
        )

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; return self."""
        binary = shutil.which(REDIS_BINARY)
        if binary is None:
            raise StartupError(f"`{REDIS_BINARY}` is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind", LOCALHOST,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        if self.tls is not None:
            argv[argv.index("--port") + 1] = "0"
            argv += [
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", "yes",
            ]  # fmt: skip
        argv += self.extra_args
        self.proc = proc = ManagedProcess(
            argv, name="redis-server", cwd=self.workdir, log_path=self.workdir / "redis.log"
        )
        proc.start()
        try:
            wait_until(
                lambda: proc.owns_ports([self.port]) and self.client().ping(),
                timeout=20.0,
                what=f"redis-server at {self.address}",
                proc=proc,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (its process group); idempotent."""
        if self.proc is not None:
            self.proc.stop(grace=5.0)
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def flush(self) -> None:
        """Empty every database."""
        self.client().flushall()

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
        return f"<RedisServer {self.address} running={self.proc is not None and self.proc.running}>"


class RedisClusterRig:
    """Three ``redis-server`` masters (no replicas) joined into one cluster, in ``workdir``."""

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        # Each node also listens on its port + 10000 (the cluster bus).
        self.nodes = [
            RedisServer(
                self.workdir / f"node{i}",
                extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
                port=port,
            )
            for i, port in enumerate(free_port_pairs(3, offset=10000))
        ]

    @property
    def addresses(self) -> list[str]:
        """``127.0.0.1:PORT`` of each node."""
        return [node.address for node in self.nodes]

    def start(self) -> RedisClusterRig:
        """Start the nodes, assign the slots (``redis-cli --cluster create``), wait until ok."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise StartupError("`redis-cli` is not installed (Debian package redis-tools)")
        try:
            for node in self.nodes:
                node.start()
            run(
                [cli, "--cluster", "create", *self.addresses, "--cluster-yes"],
                timeout=60,
                check=True,
            )
            wait_until(
                lambda: all(
                    "cluster_state:ok" in str(node.client().execute_command("CLUSTER", "INFO"))
                    for node in self.nodes
                ),
                timeout=30.0,
                what="the redis cluster",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node; idempotent."""
        for node in self.nodes:
            node.stop()

    def client(self) -> redis.RedisCluster:
        """A synchronous redis-py cluster client (strings decoded)."""
        import redis  # noqa: PLC0415 - the optional client

        return redis.RedisCluster(host=LOCALHOST, port=self.nodes[0].port, decode_responses=True)


# -- distribution's writes, and the whole keyspace ------------------------------------


def set_descriptor(
    client: redis.Redis,
    digest: str,
    size: int,
    repository: str | None = None,
    media_type: str = OCTET_STREAM,
) -> None:
    """Write a descriptor as distribution's redis cache does (``setDescriptor``).

    Global (``repository`` None): ``HMSET blobs::<d> digest <d> size <n>``, then
    ``HSETNX blobs::<d> mediatype <mt>``. Scoped to a repository: ``SADD
    repository::<r>::blobs <d>``, the global write, then ``HSET
    repository::<r>::blobs::<d> mediatype <mt>`` — the same commands, in the
    same order, in 2.8.2 (redigo) and 3.1.1 (go-redis).
    """
    if repository is not None:
        client.sadd(f"repository::{repository}::blobs", digest)
    client.execute_command("HMSET", f"blobs::{digest}", "digest", digest, "size", size)
    client.hsetnx(f"blobs::{digest}", "mediatype", media_type)
    if repository is not None:
        client.hset(f"repository::{repository}::blobs::{digest}", "mediatype", media_type)


def cached_stat(client: redis.Redis, digest: str, repository: str | None = None) -> bool:
    """Whether distribution's redis cache answers ``Stat`` for ``digest`` (a hit).

    Its algorithm, in both versions: scoped to a repository, ``SISMEMBER`` first
    (false → miss); then ``HMGET blobs::<d> digest size mediatype`` (a nil digest
    or size → miss); scoped, then ``HGET repository::<r>::blobs::<d> mediatype``
    (nil → a miss in 3.x, an error — so a fall back to the storage too — in 2.8).
    """
    if repository is not None and not client.sismember(f"repository::{repository}::blobs", digest):
        return False
    found_digest, size, _ = client.hmget(f"blobs::{digest}", ["digest", "size", "mediatype"])
    if found_digest is None or size is None:
        return False
    return repository is None or (
        client.hget(f"repository::{repository}::blobs::{digest}", "mediatype") is not None
    )


def dump(client: redis.Redis) -> dict[str, Any]:
    """Every key of the client's database with its content: hashes as dicts, sets as sets."""
    out: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "set":
            out[key] = client.smembers(key)
        elif kind == "string":
            out[key] = client.get(key)
        else:  # pragma: no cover - distribution writes no other kind
            out[key] = kind
    return out
