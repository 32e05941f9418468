"""Azure Blob Storage, through azure-storage-blob's async pipeline.

The options are adlfs's (``account_name``, ``account_key``,
``connection_string``, ``sas_token``, ``client_id``/``client_secret``/
``tenant_id``, ``credential``, ``anon``, ``account_host``, and the same
``AZURE_STORAGE_*`` environment variables), resolved as adlfs resolves them;
the requests go through the SDK's pipeline (signing, retries) and are
shaped here:

- **flat listing**: ``List Blobs`` with a prefix and no delimiter, 5000 blobs
  a page, the XML read straight from the response (the SDK's own models
  cost about six times the client CPU per blob); ``blobs/`` and
  ``repositories/`` are split into concurrent streams exactly as the S3
  backend splits them.
- **one GET per read**: ``Get Blob`` without a range, never
  ``Get Blob Properties`` first (the SDK's downloader asks for a range and
  sends a second GET for an empty blob).
- **bulk deletes**: ``Blob Batch`` requests of up to 256 ``Delete Blob``
  calls, several in flight; each call's own status is reported (404
  ``BlobNotFound`` is ``MISSING``; a lease, a snapshot or a denied
  permission is ``FAILED`` with Azure's error code and message).
- **one retry layer**: the SDK's retry policy decides what is retried (408,
  5xx except 501/505, connection errors), at most ``retries`` times per
  request, with jittered exponential backoff (the SDK's default waits 15 s
  and more before each retry); a call of a batch that answers 5xx is sent
  again in a later batch, from the same budget.

Registries of distribution 2.x wrote blob names with a leading ``/``
(``/docker/registry/v2/…``); such a root is written ``az://container//``
(the key prefix is ``/``).

Connections belong to an event loop, as for :class:`~registry_gc.backends.S3Backend`.

The storage options and credentials are resolved in ``_azure_options``, what
the object stores share is in ``_objectstore``. This module stays one (about
850 lines) because what is left is one class whose parts — the pipeline and
its retry policy, listing, reads, batched deletes, moves and writes — all go
through the same connection, retry budget and request counter: split, each
part would reach into the others' private state.

Why one module of over 600 lines: one backend, one API — the pipeline, the
retry policy and the Blob Batch formats belong to it alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import email.utils
import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import attrs

from .._errors import ConfigError, StorageError
from ._azure_options import IGNORED_OPTIONS, OPTIONS, Options, env
from ._base import DeleteResult, ObjectInfo, Outcome
from ._hashing import new_hash
from ._moving import checked_moves, copy_then_delete
from ._objectstore import (
    Listing,
    LoopBound,
    backoff,
    list_objects,
    run_pool,
    subdirectories,
)
from ._paths import checked_path

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence

    import aiohttp
    from azure.core.pipeline import PipelineRequest
    from azure.core.rest import AsyncHttpResponse, HttpRequest
    from azure.storage.blob.aio import ContainerClient

__all__ = ["AzureBackend"]

logger = logging.getLogger(__name__)

_UTC = datetime.timezone.utc

#: List Blobs returns at most 5000 blobs a page.
_PAGE = 5000
#: A Blob Batch request carries at most 256 calls.
_BATCH = 256
#: Batch requests in flight at once.
_DELETE_BATCHES_IN_FLIGHT = 8
#: Moves copied before their sources are deleted (four batch requests).
_MOVE_CHUNK = 4 * _BATCH
#: Seconds to wait for a pending copy, and between its first and last polls.
_COPY_WAIT = 600.0
_POLL_FIRST = 0.2
_POLL_MAX = 5.0
#: The content type distribution gives the objects it writes.
_CONTENT_TYPE = "application/octet-stream"
#: Attempts at reading a response body: the pipeline retries a request but not
#: a body cut off after the headers arrived; only that case is retried here.
_BODY_ATTEMPTS = 3
#: Objects hashed at once by :meth:`AzureBackend.digest`.
_DIGEST_CONCURRENCY = 8
#: Retries after the first attempt, per request (and per blob of a batch).
_DEFAULT_RETRIES = 5
#: Seconds to connect, and to wait for each read of a response.
_CONNECT_TIMEOUT = 10
_DEFAULT_READ_TIMEOUT = 60
#: Statuses of a call inside a batch worth another batch (as the SDK retries requests).
_RETRY_STATUS = frozenset({408, 500, 502, 503, 504})


def _error_code(headers: Mapping[str, str]) -> str:
    return str(headers.get("x-ms-error-code") or "")


def _xml_message(body: bytes) -> str:
    """The ``<Message>`` of an Azure XML error body (first line), or ``""``."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - a response from the configured endpoint
    except ET.ParseError:
        return ""
    message = root.findtext("Message") or ""
    return message.strip().splitlines()[0] if message.strip() else ""


def _describe_status(
    status: int, headers: Mapping[str, str], body: bytes, reason: str | None
) -> str:
    code = _error_code(headers)
    message = _xml_message(body) or reason
    head = f"{status} {code}" if code else str(status)
    return f"{head}: {message}" if message else head


def _copy_shortfall(headers: Mapping[str, str], copy_id: str | None) -> str | None:
    """Why the finished copy ``copy_id`` (its blob's ``headers``) is not whole, or ``None``."""
    state = headers.get("x-ms-copy-status")
    if state not in (None, "success"):
        why = headers.get("x-ms-copy-status-description") or ""
        return f"the copy {copy_id} ended {state}: {why}".rstrip(": ")
    done, _, total = (headers.get("x-ms-copy-progress") or "").partition("/")
    if total and done != total:
        return f"the copy {copy_id} holds {done} of {total} bytes"
    return None


@attrs.define(slots=True)
class _Connection:
    """A container client (pipeline, session, credential), bound to the loop that made it."""

    session: aiohttp.ClientSession
    container: ContainerClient
    #: A credential this backend created, closed with the client (else ``None``).
    credential: Any
    #: The container URL without query, and the SAS query to add to every request.
    base: str
    sas: str


def _retry_policy(retries: int) -> Any:  # noqa: ANN401 - the SDK's policy class
    """The SDK's exponential retry policy (which statuses it retries), with our backoff."""
    from azure.storage.blob.aio import ExponentialRetry  # noqa: PLC0415

    class _Retry(ExponentialRetry):
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            # settings["count"] is 1 before the first retry.
            return backoff(int(settings["count"]))

    return _Retry(retry_total=retries)


@attrs.define(slots=True)
class _Budget:
    """Retries left for one blob across the batches that carry it."""

    left: int
    used: int = 0

    async def spend(self) -> None:
        self.left -= 1
        self.used += 1
        await asyncio.sleep(backoff(self.used))


class AzureBackend:
    """A registry root in an Azure Blob Storage container (the azure driver's storage).

    Args:
        container: the container name.
        root: the blob-name prefix of the registry root (the driver's
            ``rootdirectory``); empty for none. A root starting with ``/``
            keeps it: ``"/"`` is distribution 2.x's layout, whose blob names
            start with ``/docker/registry/v2/``.
        storage_options: adlfs's options (``account_name``, ``account_key``,
            ``connection_string``, ``sas_token``, ``client_id``,
            ``client_secret``, ``tenant_id``, ``credential``, ``anon``,
            ``account_host``), plus ``account_url`` (the whole service URL,
            such as Azurite's ``http://127.0.0.1:10000/devstoreaccount1``;
            ``endpoint_url`` is taken as a synonym), ``retries`` (default 5)
            and ``timeout`` (seconds per read of a response, default 60).
            Credentials never appear in :attr:`url`, ``repr`` or messages.
        concurrency: requests in flight at once for reads (and the size of
            the connection pool).

    >>> backend = AzureBackend.from_url("az://registry/prod", {"account_name": "acct"})
    >>> backend.url
    'az://registry/prod'

    ``request_counts`` counts every HTTP request sent, retries included, by
    operation (``ListBlobs``, ``GetBlob``, ``CopyBlob``, ``PutBlob``,
    ``GetBlobProperties``, ``BlobBatch``), and the calls inside batches by
    theirs (``DeleteBlob``): Azure bills each of those. The backend moves
    (:class:`~registry_gc.backends.SupportsMove`) and writes
    (:class:`~registry_gc.backends.SupportsWrite`) blobs.
    """

    def __init__(
        self,
        container: str,
        root: str = "",
        storage_options: Mapping[str, Any] | None = None,
        *,
        concurrency: int = 64,
    ) -> None:
        if not container or "/" in container:
            raise ConfigError(f"invalid Azure container name {container!r}")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
        self._container = container
        legacy = root.startswith("/")
        self._root = root.strip("/")
        if legacy:
            self._base = f"/{self._root}/" if self._root else "/"
        else:
            self._base = f"{self._root}/" if self._root else ""
        options = {k: v for k, v in (storage_options or {}).items() if k not in IGNORED_OPTIONS}
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown storage option(s) for az://: {', '.join(unknown)} "
                f"(accepted: {', '.join(sorted(OPTIONS))}, concurrency)"
            )
        self._opts = Options(options, self.url)
        self._retries = int(options.get("retries", _DEFAULT_RETRIES))
        self._read_timeout = int(options.get("timeout", _DEFAULT_READ_TIMEOUT))
        values = (
            options.get(k) or env(f"AZURE_STORAGE_{k.upper()}")
            for k in ("account_key", "connection_string", "sas_token", "client_secret")
        )
        found = [str(v) for v in values if v and len(str(v)) >= 4]
        # A connection string's key and signature are secrets on their own too.
        for text in list(found):
            for field in text.split(";"):
                name, sep, value = field.partition("=")
                if sep and name.strip().lower() in ("accountkey", "sharedaccesssignature"):
                    found.append(value)
        self._secrets = tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))
        self._concurrency = concurrency
        self._conns = LoopBound(self._connect, self._close, self._abandon)
        #: HTTP requests sent (retries included) and calls inside batches, by operation.
        self.request_counts: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> AzureBackend:
        """Open ``az://container/optional/prefix`` (``abfs://``, ``abfss://`` too).

        adlfs's ``abfs://container@account.dfs.core.windows.net/prefix`` form
        names the account in the URL. ``storage_options`` as for the
        constructor, plus ``concurrency`` (default 64).
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("az", "abfs", "abfss"):
            # Not echoed: a mistyped URL may carry anything, credentials included.
            raise ConfigError("not an Azure URL: expected az://container/optional/prefix")
        netloc, _, root = rest.partition("/")
        options = dict(storage_options or {})
        container = netloc
        if "@" in netloc:
            container, _, host = netloc.partition("@")
            account, dot, _ = host.partition(".")
            if not dot or ":" in container or ":" in account:
                raise ConfigError(
                    "credentials in an az:// URL are not supported; pass them as storage "
                    "options (account_key, sas_token, connection_string)"
                )
            options.setdefault("account_name", account)
        if not container:
            raise ConfigError(f"no container in {url!r}: expected az://container/optional/prefix")
        concurrency = int(options.pop("concurrency", 64))
        return cls(container, root, options, concurrency=concurrency)

    # -- naming ---------------------------------------------------------------------

    @property
    def container(self) -> str:
        """The container name."""
        return self._container

    @property
    def root(self) -> str:
        """The blob-name prefix of the registry root, without its final slash (may be empty)."""
        return self._base.rstrip("/") if self._base != "/" else "/"

    @property
    def url(self) -> str:
        """``az://container/prefix`` (``az://container//`` for a ``/`` prefix), no credentials."""
        if self._base.startswith("/"):
            return f"az://{self._container}/{self._base.rstrip('/') or '/'}"
        return f"az://{self._container}/{self._root}" if self._root else f"az://{self._container}"

    def __repr__(self) -> str:
        return f"AzureBackend({self.url!r})"

    def _key(self, path: str) -> str:
        return self._base + checked_path(path)

    def _dir_key(self, prefix: str) -> str:
        """The name prefix of a "directory": the root's base, or ending in ``/``."""
        key = (self._base + checked_path(prefix, prefix=True)).rstrip("/")
        if not prefix.strip("/"):
            return self._base
        return f"{key}/"

    def _where(self, key: str) -> str:
        return f"az://{self._container}/{key}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _describe(self, exc: BaseException) -> str:
        """``<status> <ErrorCode>: <message>`` of an SDK error, with any credential removed."""
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "error_code", None)
        code = getattr(code, "value", code)  # a StorageErrorCode enum, or a string
        if status or code:
            text = str(getattr(exc, "message", None) or exc).strip()
            message = text.splitlines()[0] if text else ""
            head = " ".join(str(x) for x in (status, code) if x)
            return self._scrub(f"{head}: {message}" if message else head)
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _storage_error(self, action: str, key: str, why: str) -> StorageError:
        return StorageError(
            f"cannot {action} {self._where(key)}: {self._scrub(why)}",
            path=key[len(self._base) :],
        )

    # -- connection -----------------------------------------------------------------

    async def _connection(self) -> _Connection:
        """The client of the running loop, created on first use."""
        return await self._conns.get()

    async def _connect(self) -> _Connection:
        import aiohttp  # noqa: PLC0415 - Azure dependencies load on first use
        from azure.core.pipeline.transport import AioHttpTransport  # noqa: PLC0415
        from azure.storage.blob.aio import ContainerClient  # noqa: PLC0415

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._concurrency))
        kwargs: dict[str, Any] = {
            "transport": AioHttpTransport(session=session, session_owner=False),
            "retry_policy": _retry_policy(self._retries),
            "raw_request_hook": self._count_request,
            "connection_timeout": _CONNECT_TIMEOUT,
            "read_timeout": self._read_timeout,
        }
        owned: Any = None
        try:
            connection_string = self._opts.get("connection_string")
            if connection_string:
                container = ContainerClient.from_connection_string(
                    str(connection_string), self._container, **kwargs
                )
            else:
                account = self._opts.get("account_name")
                account_url = self._opts.account_url(account)
                credential, close_it = self._opts.credential(account)
                owned = credential if close_it else None
                container = ContainerClient(
                    account_url, self._container, credential=credential, **kwargs
                )
        except ConfigError:
            await session.close()
            raise
        except Exception as e:
            await session.close()
            raise StorageError(f"cannot connect to {self.url}: {self._describe(e)}") from e
        base, _, sas = str(container.url).partition("?")
        return _Connection(
            session=session,
            container=container,
            credential=owned,
            base=base.rstrip("/"),
            sas=sas,
        )

    @staticmethod
    async def _close(conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.container.close()
        with contextlib.suppress(Exception):
            await conn.session.close()
        if conn.credential is not None:
            await conn.credential.close()

    def _abandon(self, conn: _Connection) -> None:
        """Drop a client whose event loop ended without finalizing it."""
        with contextlib.suppress(Exception):
            config: Any = conn.container._config  # noqa: SLF001
            session = config.transport.session
            connector = session.connector
            if connector is not None and not connector.closed:
                connector._close()  # noqa: SLF001 - its loop is gone: close synchronously
        logger.debug("dropped the Azure client of another event loop for %s", self.url)

    async def aclose(self) -> None:
        """Close the client's connections; the next call opens new ones."""
        await self._conns.aclose()

    def _count_request(self, pipeline_request: PipelineRequest[HttpRequest]) -> None:
        # Runs after the retry policy: once per attempt.
        request = pipeline_request.http_request
        method = request.method
        query = urlsplit(request.url).query
        if "comp=list" in query:
            operation = "ListBlobs"
        elif "comp=batch" in query:
            operation = "BlobBatch"
        elif method == "GET" and "comp=" not in query:
            operation = "GetBlob"
        elif method == "HEAD":
            operation = "GetBlobProperties"
        elif method == "PUT" and request.headers.get("x-ms-copy-source"):
            operation = "CopyBlob"
        elif method == "PUT" and "comp=" not in query:
            operation = "PutBlob"
        elif method == "DELETE":
            operation = "DeleteBlob"
        else:
            operation = f"{method} {query}"
        self.request_counts[operation] += 1

    def _request_url(self, conn: _Connection, name: str | None, query: Mapping[str, str]) -> str:
        url = conn.base if name is None else f"{conn.base}/{quote(name, safe='/~')}"
        params = urlencode(query, quote_via=quote) if query else ""
        if conn.sas:
            params = f"{params}&{conn.sas}" if params else conn.sas
        return f"{url}?{params}" if params else url

    async def _send(
        self,
        conn: _Connection,
        method: str,
        url: str,
        *,
        stream: bool = True,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncHttpResponse:
        """Send one request through the container's pipeline (signing, retries): the response.

        Streamed: the SDK would otherwise decode every body by its content
        type (an XML listing twice, and a blob not at all).
        """
        from azure.core.rest import HttpRequest  # noqa: PLC0415

        request = HttpRequest(
            method,
            url,
            headers={"x-ms-version": conn.container.api_version, **(headers or {})},
            content=content,
        )
        # The container's own pipeline (typed as the synchronous one by the SDK).
        pipeline: Any = conn.container._pipeline  # noqa: SLF001
        response: AsyncHttpResponse = (await pipeline.run(request, stream=stream)).http_response
        return response

    async def _fetch(self, conn: _Connection, url: str) -> tuple[AsyncHttpResponse, bytes]:
        """GET ``url``: the response and its whole body.

        The pipeline retries a request, not a body cut off after the headers
        arrived; only that case is retried here.
        """
        from azure.core.exceptions import (  # noqa: PLC0415
            IncompleteReadError,
            ServiceResponseError,
        )

        for attempt in range(1, _BODY_ATTEMPTS + 1):
            response = await self._send(conn, "GET", url)
            try:
                body: bytes = await response.read()
            except (IncompleteReadError, ServiceResponseError, OSError) as e:
                if attempt == _BODY_ATTEMPTS:
                    raise
                logger.debug("retrying %s after a cut-off body: %r", url.partition("?")[0], e)
                continue
            finally:
                await response.close()
            return response, body
        raise AssertionError("unreachable")  # pragma: no cover

    # -- list -----------------------------------------------------------------------

    async def _pages(
        self, conn: _Connection, prefix: str, *, delimiter: str = ""
    ) -> AsyncGenerator[ET.Element, None]:
        """Raw List Blobs pages (XML) of ``prefix``, one request each, in sequence."""
        query = {
            "restype": "container",
            "comp": "list",
            "prefix": prefix,
            "maxresults": str(_PAGE),
        }
        if delimiter:
            query["delimiter"] = delimiter
        while True:
            url = self._request_url(conn, None, query)
            try:
                response, body = await self._fetch(conn, url)
            except Exception as e:
                raise self._storage_error("list", prefix, self._describe(e)) from e
            if response.status_code != 200:
                why = _describe_status(
                    response.status_code, response.headers, body, response.reason
                )
                raise self._storage_error("list", prefix, why)
            try:
                page = ET.fromstring(body)  # noqa: S314 - a response from the configured endpoint
            except ET.ParseError as e:
                raise self._storage_error("list", prefix, f"unreadable listing: {e}") from e
            yield page
            marker = page.findtext("NextMarker")
            if not marker:
                return
            query["marker"] = marker

    def _infos(self, page: ET.Element, times: dict[str, datetime.datetime]) -> list[ObjectInfo]:
        cut = len(self._base)
        out: list[ObjectInfo] = []
        blobs = page.find("Blobs")
        if blobs is None:
            return out
        for blob in blobs.iterfind("Blob"):
            name = blob.findtext("Name") or ""
            # Directory placeholders (zero-byte "a/b/" blobs some tools create).
            if not name or name.endswith("/"):
                continue
            props = blob.find("Properties")
            size = modified = None
            if props is not None:
                size = props.findtext("Content-Length")
                modified = props.findtext("Last-Modified")
            # Last-Modified has one-second resolution: one parse per distinct value.
            when = times.get(modified or "")
            if when is None:
                when = email.utils.parsedate_to_datetime(modified or "").astimezone(_UTC)
                times[modified or ""] = when
            out.append(ObjectInfo(name[cut:], int(size or 0), when))
        return out

    async def _children(self, conn: _Connection, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        """One delimiter listing of ``prefix``: its sub-"directories" and its direct objects."""
        dirs: list[str] = []
        objects: list[ObjectInfo] = []
        times: dict[str, datetime.datetime] = {}
        async for page in self._pages(conn, prefix, delimiter="/"):
            blobs = page.find("Blobs")
            if blobs is not None:
                dirs.extend(p.findtext("Name") or "" for p in blobs.iterfind("BlobPrefix"))
            objects.extend(self._infos(page, times))
        return [d for d in dirs if d], objects

    # -- read -----------------------------------------------------------------------

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """One Get Blob (no range) per path, ``concurrency`` at a time; missing maps to ``None``.

        Never sends Get Blob Properties. Any error other than ``BlobNotFound``
        (after the retries) raises :class:`~registry_gc.StorageError` naming
        ``az://container/name``.
        """
        keys = {p: self._key(p) for p in paths}
        if not keys:
            return {}
        conn = await self._connection()
        out: dict[str, bytes | None] = {}

        async def one(path: str) -> None:
            out[path] = await self._get(conn, keys[path])

        await run_pool(min(self._concurrency, len(keys)), keys, one)
        return {p: out[p] for p in keys}

    async def _get(self, conn: _Connection, key: str) -> bytes | None:
        try:
            response, body = await self._fetch(conn, self._request_url(conn, key, {}))
        except Exception as e:
            raise self._storage_error("read", key, self._describe(e)) from e
        if response.status_code == 200:
            return body
        if response.status_code == 404 and _error_code(response.headers) != "ContainerNotFound":
            return None
        why = _describe_status(response.status_code, response.headers, body, response.reason)
        raise self._storage_error("read", key, why)

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash blobs while streaming them (the ``SupportsDigest`` capability).

        One Get Blob each, a few blobs at a time, one response chunk in memory each.
        """
        new_hash(algorithm)
        keys = {p: self._key(p) for p in paths}
        if not keys:
            return {}
        conn = await self._connection()
        out: dict[str, str | None] = {}

        async def one(path: str) -> None:
            key = keys[path]
            h = new_hash(algorithm)
            try:
                response = await self._send(conn, "GET", self._request_url(conn, key, {}))
                try:
                    if response.status_code == 200:
                        async for chunk in response.iter_bytes():
                            h.update(chunk)
                        out[path] = h.hexdigest()
                        return
                    status, headers = response.status_code, response.headers
                    body = await response.read()
                    reason = response.reason
                finally:
                    await response.close()
            except Exception as e:
                raise self._storage_error("read", key, self._describe(e)) from e
            if status == 404 and _error_code(headers) != "ContainerNotFound":
                out[path] = None
                return
            raise self._storage_error("read", key, _describe_status(status, headers, body, reason))

        await run_pool(min(_DIGEST_CONCURRENCY, len(keys)), keys, one)
        return {p: out[p] for p in keys}

    # -- delete ---------------------------------------------------------------------

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete with Blob Batch requests of up to 256 calls, several in flight.

        Each call's own answer decides its path's result: 2xx is ``DELETED``,
        404 ``MISSING`` (unless the container is missing), 408 and 5xx are
        sent again in a later batch (within the retries), anything else is
        ``FAILED`` with ``"<status> <ErrorCode>: <message>"``. A batch request
        that fails as a whole (after the retries) makes every path of its
        batch ``FAILED``.
        """
        keys = [self._key(p) for p in paths]
        if not keys:
            return []
        results: list[DeleteResult | None] = [None] * len(keys)
        conn = await self._connection()

        async def batch(start: int) -> None:
            idx = range(start, min(start + _BATCH, len(keys)))
            unique = list(dict.fromkeys(keys[i] for i in idx))
            outcomes = await self._delete_batch(conn, unique)
            for i in idx:
                outcome, error = outcomes[keys[i]]
                results[i] = DeleteResult(paths[i], outcome, error)

        starts = range(0, len(keys), _BATCH)
        await run_pool(min(_DELETE_BATCHES_IN_FLIGHT, len(starts)), starts, batch)
        out = [r for r in results if r is not None]
        assert len(out) == len(keys)
        return out

    async def _delete_batch(
        self, conn: _Connection, keys: list[str]
    ) -> dict[str, tuple[Outcome, str | None]]:
        """Delete up to 256 names with Blob Batch requests; the outcome of each name."""
        outcomes: dict[str, tuple[Outcome, str | None]] = {}
        pending = keys
        # One budget: the SDK's retries of the batch request and the
        # re-sending of calls that answered 5xx draw from the same retries.
        budget = _Budget(self._retries)
        while pending:
            sent = 0

            def hook(pipeline_request: PipelineRequest[HttpRequest]) -> None:
                nonlocal sent
                sent += 1
                self._count_request(pipeline_request)

            answers: list[tuple[int, Mapping[str, str], bytes, str | None]] = []
            try:
                parts = await conn.container.delete_blobs(
                    *pending,
                    raise_on_any_failure=False,
                    retry_total=max(0, budget.left),
                    raw_request_hook=hook,
                )
                answers.extend(
                    [(p.status_code, p.headers, p.body(), p.reason) async for p in parts]
                )
            except Exception as e:  # noqa: BLE001 - reported per blob, never dropped
                failure = self._describe(e)
                logger.warning(
                    "Blob Batch of %d deletes in %s failed: %s", len(pending), self.url, failure
                )
                outcomes.update(dict.fromkeys(pending, (Outcome.FAILED, failure)))
                return outcomes
            finally:
                budget.left -= max(0, sent - 1)
            self.request_counts["DeleteBlob"] += len(pending)
            if len(answers) != len(pending):
                why = f"the batch answered {len(answers)} calls for {len(pending)} deletes"
                outcomes.update(dict.fromkeys(pending, (Outcome.FAILED, why)))
                return outcomes
            retry: list[str] = []
            for key, (status, headers, body, reason) in zip(pending, answers, strict=True):
                if 200 <= status < 300:
                    outcomes[key] = (Outcome.DELETED, None)
                elif status == 404 and _error_code(headers) != "ContainerNotFound":
                    outcomes[key] = (Outcome.MISSING, None)
                elif status in _RETRY_STATUS and budget.left > 0:
                    retry.append(key)
                else:
                    why = self._scrub(_describe_status(status, headers, body, reason))
                    outcomes[key] = (Outcome.FAILED, why)
            if retry:
                await budget.spend()
            pending = retry
        return outcomes

    # -- move and write -------------------------------------------------------------

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> list[DeleteResult]:
        """Copy server-side, then delete the sources copied (the ``SupportsMove`` capability).

        One ``Copy Blob`` per blob (within one account Azure copies at once;
        a copy it reports pending is polled with ``Get Blob Properties``
        until it succeeds or fails); up to ``concurrency`` at once, 1024
        pairs at a time, the sources of each 1024 copied then deleted in
        Blob Batch requests of 256 (whose per-blob failures — a leased
        source, say — make their moves ``FAILED``: the copy exists, and the
        error says so). A missing source (404) is ``MISSING``; any other copy
        failure is ``FAILED`` and leaves the source as it was. ``sizes`` is
        not needed.
        """
        del sizes
        pairs = checked_moves(moves)
        if not pairs:
            return []
        conn = await self._connection()

        async def copy(src: str, dst: str) -> DeleteResult | None:
            return await self._copy(conn, src, dst)

        return await copy_then_delete(
            pairs, copy, self.delete, workers=self._concurrency, chunk=_MOVE_CHUNK
        )

    async def _answer(
        self,
        conn: _Connection,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> tuple[int, Mapping[str, str], bytes, str | None]:
        """Status, headers, body and reason of one request."""
        response = await self._send(conn, method, url, headers=headers, content=content)
        try:
            body: bytes = await response.read()
        finally:
            await response.close()
        return response.status_code, response.headers, body, response.reason

    async def _copy(self, conn: _Connection, src: str, dst: str) -> DeleteResult | None:
        """Copy ``src`` to ``dst`` whole: ``None``, or the ``MISSING``/``FAILED`` result."""
        src_key, dst_key = self._key(src), self._key(dst)
        target = self._request_url(conn, dst_key, {})

        def failed(why: str) -> DeleteResult:
            msg = f"cannot copy it to {self._where(dst_key)}, so it stays: {self._scrub(why)}"
            return DeleteResult(src, Outcome.FAILED, msg)

        source = {"x-ms-copy-source": self._request_url(conn, src_key, {})}
        try:
            status, headers, body, reason = await self._answer(conn, "PUT", target, headers=source)
        except Exception as e:  # noqa: BLE001 - reported per move, never dropped
            return failed(self._describe(e))
        if status == 404 and _error_code(headers) != "ContainerNotFound":
            return DeleteResult(src, Outcome.MISSING)
        if not 200 <= status < 300:
            return failed(_describe_status(status, headers, body, reason))
        copy_id = headers.get("x-ms-copy-id")
        if headers.get("x-ms-copy-status") == "pending":
            polled = await self._poll_copy(conn, target, copy_id)
            if isinstance(polled, str):
                return failed(polled)
            headers = polled
        why = _copy_shortfall(headers, copy_id)
        return None if why is None else failed(why)

    async def _poll_copy(
        self, conn: _Connection, target: str, copy_id: str | None
    ) -> Mapping[str, str] | str:
        """Wait for the pending copy ``copy_id`` at ``target`` to end.

        The destination's headers once the copy is no longer pending, or why
        the wait failed: it timed out, a poll failed, or another copy replaced
        this one.
        """
        waited, delay = 0.0, _POLL_FIRST
        while True:
            if waited >= _COPY_WAIT:
                return f"the copy {copy_id} is still pending after {waited:.0f} s"
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, _POLL_MAX)
            try:
                status, headers, body, reason = await self._answer(conn, "HEAD", target)
            except Exception as e:  # noqa: BLE001 - reported per move, never dropped
                return f"polling the copy {copy_id}: {self._describe(e)}"
            if status != 200:
                return _describe_status(status, headers, body, reason)
            if headers.get("x-ms-copy-id") != copy_id:
                return f"the copy {copy_id} was replaced by another at the destination"
            if headers.get("x-ms-copy-status") != "pending":
                return headers

    async def write(self, items: Mapping[str, bytes]) -> None:
        """One ``Put Blob`` per item, ``concurrency`` at a time (the ``SupportsWrite`` capability).

        The first failure (after the retries) raises
        :class:`~registry_gc.StorageError` naming ``az://container/name``.
        """
        keys = {p: self._key(p) for p in items}
        if not keys:
            return
        conn = await self._connection()
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "x-ms-blob-content-type": _CONTENT_TYPE,
            # Signed: else aiohttp adds one of its own after the signature.
            "Content-Type": _CONTENT_TYPE,
        }

        async def one(item: str) -> None:
            key = keys[item]
            url = self._request_url(conn, key, {})
            try:
                status, answer, body, reason = await self._answer(
                    conn, "PUT", url, headers=headers, content=items[item]
                )
            except Exception as e:
                raise self._storage_error("write", key, self._describe(e)) from e
            if not 200 <= status < 300:
                why = _describe_status(status, answer, body, reason)
                raise self._storage_error("write", key, why)

        await run_pool(min(self._concurrency, len(keys)), keys, one)

    def _listing(self, conn: _Connection) -> Listing:
        async def pages(prefix: str) -> AsyncGenerator[list[ObjectInfo], None]:
            # Last-Modified has one-second resolution: one parse per distinct value.
            times: dict[str, datetime.datetime] = {}
            async with contextlib.aclosing(self._pages(conn, prefix)) as raw:
                async for page in raw:
                    yield self._infos(page, times)

        return Listing(
            base=self._base,
            concurrency=self._concurrency,
            children=lambda prefix: self._children(conn, prefix),
            pages=pages,
        )

    async def list_dir(self, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        """One delimiter listing of ``prefix``: its sub-directories and its objects.

        The :class:`~registry_gc.backends.SupportsListDir` capability; one
        request per page of names.
        """
        conn = await self._connection()
        dirs, objects = await self._children(conn, self._dir_key(prefix))
        return subdirectories(self._base, dirs), objects

    # Defined last: in the class body, the name ``list`` shadows the builtin for
    # every annotation that follows it.
    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every object under ``prefix`` (a directory; ``""`` is the whole root).

        Flat List Blobs (no delimiter, 5000 blobs a page), never a request per
        directory. ``blobs/``, ``repositories/`` and the path down to them are
        first split with a few delimiter listings into disjoint name ranges
        that are listed concurrently; any other prefix is one stream of
        sequential pages. Names ending in ``/`` (directory placeholders) are
        skipped.
        """
        key_prefix = self._dir_key(prefix)
        conn = await self._connection()
        async with contextlib.aclosing(list_objects(self._listing(conn), key_prefix)) as infos:
            async for info in infos:
                yield info
