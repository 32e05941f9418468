"""A local Azure Blob Storage server for tests: Azurite (npm package ``azurite``).

``bash .ci/run`` installs it under ``.ci/node/`` (``npm install --prefix .ci/node azurite``);
an ``azurite-blob`` on ``PATH`` is used otherwise. :class:`Azurite` starts the blob
service on 127.0.0.1 and a free port, in memory, and stops it by process group (the
npm shim's node child included). It serves the well-known development account
``devstoreaccount1`` in the URL path (``http://127.0.0.1:PORT/devstoreaccount1``), and
implements leases and Blob Batch: a leased blob refuses a delete with 412
``LeaseIdMissing``, the natural per-blob failure.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rigs.procs import LOCALHOST, ManagedProcess, StartupError, free_port, wait_until

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

#: Azurite's well-known development account.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Where ``.ci/run`` installs it.
LOCAL_BIN = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules" / ".bin"


def azurite_binary() -> str | None:
    """The ``azurite-blob`` executable: ``.ci/node``'s, else one on ``PATH``, else None."""
    local = LOCAL_BIN / "azurite-blob"
    if local.is_file():
        return str(local)
    return shutil.which("azurite-blob")


class Azurite:
    """Azurite's blob service on 127.0.0.1 (in memory, HTTP).

    :meth:`storage_options` are what :class:`~registry_gc.backends.AzureBackend`
    takes (account name, key and the service URL); :meth:`connection_string`
    is what adlfs and the SDK take.
    """

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.account_url = ""
        self.proc: ManagedProcess | None = None
        self._work_dir: Path | None = None

    def start(self) -> Azurite:
        """Start the blob service and wait until it answers; return self."""
        binary = azurite_binary()
        if binary is None:
            msg = "azurite-blob is not installed (npm install --prefix .ci/node azurite)"
            raise StartupError(msg)
        # Azurite may write a debug log or metadata next to where it runs: keep it out
        # of the tree.
        self._work_dir = Path(tempfile.mkdtemp(prefix="rig-azurite-"))
        for attempt in range(1, 4):
            self.port = free_port()
            self.account_url = f"http://{LOCALHOST}:{self.port}/{ACCOUNT}"
            self.proc = ManagedProcess(
                [
                    binary,
                    "--blobHost",
                    LOCALHOST,
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--loose",
                ],
                name="azurite-blob",
                cwd=self._work_dir,
            ).start()
            try:
                wait_until(
                    self._ready,
                    timeout=self.startup_timeout,
                    what=f"Azurite at {self.account_url}",
                    proc=self.proc,
                    interval=0.2,
                )
            except StartupError as exc:
                self.proc.stop()
                if attempt < 3 and "EADDRINUSE" in str(exc):
                    continue
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _ready(self) -> bool:
        if self.proc is None or not self.proc.owns_ports([self.port]):
            return False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.account_url}?comp=list", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered (unauthenticated): it is up
        except OSError:
            return False

    def connection_string(self) -> str:
        """The development account's connection string for this server."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """``account_name``, ``account_key`` and ``account_url``, merged with ``extra``."""
        return {
            "account_name": ACCOUNT,
            "account_key": KEY,
            "account_url": self.account_url,
            **extra,
        }

    def service(self) -> Any:
        """A synchronous ``BlobServiceClient`` on this server."""
        from azure.storage.blob import BlobServiceClient  # noqa: PLC0415

        return BlobServiceClient.from_connection_string(self.connection_string())

    def make_container(self, name: str | None = None) -> str:
        """Create a container (a unique ``t-<hex>`` name when ``name`` is None); return it."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        with self.service() as svc:
            svc.create_container(name)
        return name

    def delete_container(self, name: str) -> None:
        """Delete a container and its blobs (Azurite slows down as it holds more blobs)."""
        with self.service() as svc:
            svc.delete_container(name)

    def put(self, container: str, name: str, data: bytes) -> None:
        """Upload one blob."""
        with self.service() as svc:
            svc.get_blob_client(container, name).upload_blob(data, overwrite=True)

    def list_keys(self, container: str, prefix: str = "") -> dict[str, int]:
        """``{name: size}`` of every blob under ``prefix``."""
        with self.service() as svc:
            cc = svc.get_container_client(container)
            return {b.name: int(b.size) for b in cc.list_blobs(name_starts_with=prefix or None)}

    def lease(self, container: str, name: str) -> str:
        """Take an infinite lease on a blob (a delete without the lease id then fails)."""
        with self.service() as svc:
            lease = svc.get_blob_client(container, name).acquire_lease(lease_duration=-1)
            return str(lease.id)

    def filesystem(self) -> Any:
        """An adlfs filesystem on this server."""
        from adlfs import AzureBlobFileSystem  # noqa: PLC0415

        return AzureBlobFileSystem(
            connection_string=self.connection_string(), skip_instance_cache=True
        )

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its working directory."""
        if self.proc is not None:
            self.proc.stop(grace=5.0)
            self.proc.cleanup_log()
            self.proc = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

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
