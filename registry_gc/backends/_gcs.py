"""Google Cloud Storage, talking to the JSON API directly over aiohttp.

gcsfs resolves the credentials (``token``: a service-account key file or
mapping, ``google_default``, ``cloud``, ``anon``, …, or its discovery order
when none is given), and then this backend sends the requests itself:

- **flat listing**: ``objects.list`` with a prefix and no delimiter, 1000
  objects a page, asking only for ``name``, ``size`` and ``updated``;
  ``blobs/`` and ``repositories/`` are split into concurrent streams exactly
  as the S3 backend splits them (a few delimiter listings find the stems).
- **one GET per read**: ``objects.get`` with ``alt=media``, never a metadata
  request first.
- **bulk deletes**: JSON API batch requests of up to 100 ``objects.delete``
  each, several in flight; each part's own status is reported (``404`` is
  ``MISSING``, anything else that is not a success is ``FAILED`` with GCS's
  message).
- **server-side moves**: ``objects.rewrite`` (again with its
  ``rewriteToken`` until done), then batch deletes of the sources copied;
  writes are one media upload each.
- **one retry layer**, this one: 408, 429, 5xx and connection errors are
  retried with jittered exponential backoff, at most ``retries`` times per
  request — and per object in a batch, where a part that answers 429 or 5xx
  is sent again in a later batch from the same budget. gcsfs's own retry
  decorator is never involved.
- **no gRPC**: gcsfs's ``GCSFileSystem`` (whose current version probes every
  bucket's type over gRPC and can wait 60 s for it) is never instantiated;
  only its credential handling is used.

Connections belong to an event loop, as for :class:`~registry_gc.backends.S3Backend`:
the session is created lazily in the loop that first uses it and recreated
when a call comes from another loop; :meth:`GCSBackend.aclose` closes it.

Pointing it at an emulator: ``endpoint_url`` (``http://127.0.0.1:4443``), or
the ``STORAGE_EMULATOR_HOST`` environment variable that Google's own clients
read (with it, and no ``token``, requests are anonymous, as Google's clients
make them).

The JSON API's formats (timestamps, error bodies, batch requests) are in
``_gcs_api``, what the object stores share in ``_objectstore``. This module
stays one (about 800 lines) because what is left is one class whose parts —
credentials and their refresh, the retry layer, listing, reads, batched
deletes, moves and writes — all go through the same connection, retry budget
and request counter: split, each part would reach into the others' private
state.

Why one module of over 600 lines: one backend, one API — the connection,
the retry budget and the GCS request and batch formats belong to it alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime
import json
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import attrs

from .._errors import ConfigError, StorageError
from ._base import DeleteResult, ObjectInfo, Outcome
from ._gcs_api import (
    Part,
    batch_body,
    error_message,
    is_missing_bucket,
    match_parts,
    parse_batch_response,
    parse_time,
)
from ._hashing import CHUNK_SIZE, new_hash
from ._moving import checked_moves, copy_then_delete
from ._objectstore import Listing, LoopBound, backoff, list_objects, run_pool, subdirectories
from ._paths import checked_path

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence

    import aiohttp
    import google.auth.credentials
    import yarl
    from gcsfs.credentials import GoogleCredentials

__all__ = ["GCSBackend"]

logger = logging.getLogger(__name__)

_UTC = datetime.timezone.utc

#: objects.list returns at most 1000 objects a page.
_PAGE = 1000
#: A JSON API batch request carries at most 100 calls.
_BATCH = 100
#: Batch requests in flight at once.
_DELETE_BATCHES_IN_FLIGHT = 8
#: Moves copied before their sources are deleted (ten batch requests).
_MOVE_CHUNK = 10 * _BATCH
#: What a rewrite answers with: whether it is done, how to go on, and the sizes.
_REWRITE_FIELDS = "done,rewriteToken,objectSize,resource(size)"
#: The content type distribution gives the objects it writes.
_CONTENT_TYPE = "application/octet-stream"
#: Objects hashed at once by :meth:`GCSBackend.digest` (each streams up to a layer).
_DIGEST_CONCURRENCY = 8
#: Retries after the first attempt, per request (and per object of a batch).
_DEFAULT_RETRIES = 5
#: Seconds to connect, and to wait for each read of a response.
_CONNECT_TIMEOUT = 10.0
_DEFAULT_READ_TIMEOUT = 60.0
#: HTTP statuses worth another attempt (Google's retry guidance).
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_DEFAULT_ENDPOINT = "https://storage.googleapis.com"
_LIST_FIELDS = "items(name,size,updated,md5Hash),nextPageToken"
_LIST_FIELDS_DELIMITED = "items(name,size,updated,md5Hash),prefixes,nextPageToken"
#: gcsfs constructor options that mean nothing here (caching, file objects, the event loop).
_IGNORED_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "cache_timeout",
        "max_paths",
        "consistency",
        "block_size",
        "default_location",
        "version_aware",
        "check_connection",
        "secure_serialize",
        "session_kwargs",
    }
)
_OPTIONS = frozenset(
    {"token", "project", "access", "requester_pays", "endpoint_url", "anon", "retries", "timeout"}
)
#: Fields of a service-account key (or authorized-user token) that are secrets.
_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
#: Token values that name a way to find credentials (not a credential themselves).
_TOKEN_METHODS = frozenset({"google_default", "cache", "cloud", "anon", "browser"})
#: gcsfs's token for "no credentials".
_ANONYMOUS = "anon"
#: An access token this close to expiry is refreshed first.
_REFRESH_MARGIN = datetime.timedelta(minutes=2)


def _rewrite_progress(body: bytes) -> tuple[str | None, str | None]:
    """What a 200 answer to ``objects.rewrite`` says, as ``(token, why)``.

    ``(None, None)``: the copy is done, and whole. ``(token, None)``: send the
    rewrite again with ``rewriteToken=token``. ``(None, why)``: the copy failed.
    """
    try:
        answer: dict[str, Any] = json.loads(body)
    except ValueError:
        return None, f"not JSON: {body[:80]!r}"
    if answer.get("done"):
        size = answer.get("objectSize")
        copied = (answer.get("resource") or {}).get("size")
        if size is not None and copied is not None and int(size) != int(copied):
            return None, f"the copy has {copied} bytes, the source {size}"
        return None, None
    token = answer.get("rewriteToken")
    if not token:
        return None, "the rewrite is neither done nor to be continued"
    return str(token), None


# -- the backend ------------------------------------------------------------------------


@attrs.define(slots=True)
class _Connection:
    """An aiohttp session and the credentials, bound to the event loop that made it."""

    session: aiohttp.ClientSession
    credentials: Any
    refresh_lock: asyncio.Lock


@attrs.define(slots=True)
class _Budget:
    """Retries left for one request, or for one object across the batches that carry it."""

    left: int
    used: int = 0

    async def spend(self) -> bool:
        """Wait the backoff and return ``True``, or return ``False`` when none is left."""
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        await asyncio.sleep(backoff(self.used))
        return True


def _md5_hex(value: object) -> str | None:
    """An object's ``md5Hash`` (base64, as listed) in hex; ``None`` if it has none (composites)."""
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


class GCSBackend:
    """A registry root in a GCS bucket (the gcs driver's ``bucket`` + ``rootdirectory``).

    Args:
        bucket: the bucket name.
        root: the object-name prefix of the registry root; empty for no
            ``rootdirectory`` (names then start at ``docker/registry/v2/``).
        storage_options: ``token`` (as gcsfs takes it: a key file path, a
            key mapping, ``google_default``, ``anon``, …), ``project``,
            ``requester_pays``, ``endpoint_url``, ``retries`` (default 5),
            ``timeout`` (seconds per read of a response, default 60),
            ``access``. Credentials never appear in :attr:`url`, ``repr`` or
            error messages.
        concurrency: requests in flight at once for reads (and the size of
            the connection pool).

    >>> backend = GCSBackend.from_url("gs://my-bucket/registry", {"token": "anon"})
    >>> backend.url
    'gs://my-bucket/registry'

    ``request_counts`` counts every HTTP request sent, retries included, by
    JSON API method (``objects.list``, ``objects.get``, ``objects.rewrite``,
    ``objects.insert``, ``batch``), and the calls inside batch requests by
    theirs (``objects.delete``): GCS bills each of those as an operation.
    The backend moves (:class:`~registry_gc.backends.SupportsMove`) and
    writes (:class:`~registry_gc.backends.SupportsWrite`) objects.
    """

    def __init__(
        self,
        bucket: str,
        root: str = "",
        storage_options: Mapping[str, Any] | None = None,
        *,
        concurrency: int = 64,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid GCS bucket name {bucket!r}")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
        self._bucket = bucket
        self._root = root.strip("/")
        self._base = f"{self._root}/" if self._root else ""
        options = {k: v for k, v in (storage_options or {}).items() if k not in _IGNORED_OPTIONS}
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown storage option(s) for gs://: {', '.join(unknown)} "
                f"(accepted: {', '.join(sorted(_OPTIONS))}, concurrency)"
            )
        self._token: object = options.get("token")
        if options.get("anon") in (True, "true", "True", 1) and self._token is None:
            self._token = _ANONYMOUS
        self._project = str(options.get("project") or os.environ.get("GCSFS_DEFAULT_PROJECT", ""))
        self._access = str(options.get("access") or "full_control")
        self._retries = int(options.get("retries", _DEFAULT_RETRIES))
        self._read_timeout = float(options.get("timeout", _DEFAULT_READ_TIMEOUT))
        endpoint = options.get("endpoint_url")
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if not endpoint and emulator and emulator != "default":
            endpoint = emulator if "://" in emulator else f"http://{emulator}"
            if self._token is None:
                # As Google's clients do for an emulator: no credentials.
                self._token = _ANONYMOUS
        self._endpoint = str(endpoint or _DEFAULT_ENDPOINT).rstrip("/")
        requester_pays = options.get("requester_pays")
        #: The project billed for a requester-pays bucket (``userProject``);
        #: ``requester_pays=True`` bills the credentials' project, known once connected.
        self._user_project: str | None = None
        self._bill_credentials_project = False
        if requester_pays in (True, "true", "True"):
            self._user_project = self._project or None
            self._bill_credentials_project = self._user_project is None
        elif isinstance(requester_pays, str) and requester_pays not in ("", "false", "False"):
            self._user_project = requester_pays
        self._secrets = self._find_secrets(self._token)
        self._concurrency = concurrency
        self._conns = LoopBound(self._connect, self._close, self._abandon)
        #: HTTP requests sent (retries included) and calls inside batches, by method.
        self.request_counts: collections.Counter[str] = collections.Counter()

    @staticmethod
    def _find_secrets(token: object) -> tuple[str, ...]:
        found: list[str] = []
        if isinstance(token, str) and token not in _TOKEN_METHODS and not os.path.exists(token):
            found.append(token)  # a raw access token
        elif isinstance(token, dict):
            found.extend(str(token[k]) for k in _SECRET_FIELDS if token.get(k))
        return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> GCSBackend:
        """Open ``gs://bucket/optional/prefix`` (``gcs://`` too).

        ``storage_options`` as for the constructor, plus ``concurrency`` (default 64).
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("gs", "gcs"):
            # Not echoed: a mistyped URL may carry anything, credentials included.
            raise ConfigError("not a GCS URL: expected gs://bucket/optional/prefix")
        bucket, _, root = rest.partition("/")
        if "@" in bucket:
            raise ConfigError(
                "credentials in a gs:// URL are not supported; pass them as the token "
                "storage option (a service-account key file or mapping)"
            )
        if not bucket:
            raise ConfigError(f"no bucket in {url!r}: expected gs://bucket/optional/prefix")
        options = dict(storage_options or {})
        concurrency = int(options.pop("concurrency", 64))
        return cls(bucket, root, options, concurrency=concurrency)

    # -- naming ---------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def root(self) -> str:
        """The registry root's name prefix inside the bucket, without slashes (may be empty)."""
        return self._root

    @property
    def endpoint(self) -> str:
        """The JSON API endpoint (``https://storage.googleapis.com`` unless overridden)."""
        return self._endpoint

    @property
    def url(self) -> str:
        """``gs://bucket/prefix``, without credentials."""
        return f"gs://{self._bucket}/{self._root}" if self._root else f"gs://{self._bucket}"

    def __repr__(self) -> str:
        return f"GCSBackend({self.url!r})"

    def _key(self, path: str) -> str:
        return self._base + checked_path(path)

    def _dir_key(self, prefix: str) -> str:
        """The name prefix of a "directory": ``''`` for the root, else ending in ``/``."""
        key = (self._base + checked_path(prefix, prefix=True)).rstrip("/")
        return f"{key}/" if key else ""

    def _where(self, key: str) -> str:
        return f"gs://{self._bucket}/{key}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _storage_error(self, action: str, key: str, why: str) -> StorageError:
        return StorageError(
            f"cannot {action} {self._where(key)}: {self._scrub(why)}",
            path=key[len(self._base) :],
        )

    def _object_path(self, key: str) -> str:
        return f"/storage/v1/b/{quote(self._bucket, safe='')}/o/{quote(key, safe='')}"

    def _query(self, params: Mapping[str, str]) -> str:
        query = dict(params)
        if self._user_project:
            query["userProject"] = self._user_project
        return urlencode(query, quote_via=quote) if query else ""

    def _api_url(self, path: str, params: Mapping[str, str] | None = None) -> yarl.URL:
        import yarl  # noqa: PLC0415 - with aiohttp, on first use

        query = self._query(params or {})
        text = f"{self._endpoint}{path}" + (f"?{query}" if query else "")
        # encoded=True: the object name's %2F must reach the server as is.
        return yarl.URL(text, encoded=True)

    # -- connection -----------------------------------------------------------------

    async def _connection(self) -> _Connection:
        """The session of the running loop, created on first use."""
        return await self._conns.get()

    def _credentials(self) -> GoogleCredentials:
        """The credentials, resolved by gcsfs (blocking: files, a metadata server may be read)."""
        from gcsfs.credentials import GoogleCredentials  # noqa: PLC0415 - heavy, GCS only

        on_google = self._endpoint == _DEFAULT_ENDPOINT
        return GoogleCredentials(self._project, self._access, self._token, on_google=on_google)

    async def _connect(self) -> _Connection:
        import aiohttp  # noqa: PLC0415 - GCS dependencies load on first use

        try:
            credentials = await asyncio.to_thread(self._credentials)
        except Exception as e:
            raise StorageError(f"cannot connect to {self.url}: {self._describe(e)}") from e
        if self._bill_credentials_project:
            project = getattr(credentials, "project", None)
            if not project:
                msg = f"requester_pays for {self.url} needs a project: set the project option"
                raise ConfigError(msg)
            self._user_project = str(project)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=_CONNECT_TIMEOUT, sock_read=self._read_timeout
            ),
        )
        return _Connection(session=session, credentials=credentials, refresh_lock=asyncio.Lock())

    @staticmethod
    async def _close(conn: _Connection) -> None:
        await conn.session.close()

    def _abandon(self, conn: _Connection) -> None:
        """Drop a session whose event loop ended without finalizing it."""
        with contextlib.suppress(Exception):
            connector = conn.session.connector
            if connector is not None and not connector.closed:
                connector._close()  # noqa: SLF001 - its loop is gone: close synchronously
        logger.debug("dropped the GCS session of another event loop for %s", self.url)

    async def aclose(self) -> None:
        """Close the session's connections; the next call opens new ones."""
        await self._conns.aclose()

    async def _auth(self, conn: _Connection) -> dict[str, str]:
        """The ``Authorization`` header, refreshing the token (in a thread) when it is stale."""
        holder = conn.credentials
        creds = getattr(holder, "credentials", None)
        if creds is None:
            return {}  # anonymous
        if not self._fresh(creds):
            async with conn.refresh_lock:
                if not self._fresh(creds):
                    try:
                        await asyncio.to_thread(holder.maybe_refresh)
                    except Exception as e:
                        msg = f"cannot refresh the credentials for {self.url}: {self._describe(e)}"
                        raise StorageError(msg) from e
        headers: dict[str, str] = {}
        creds.apply(headers)
        return headers

    @staticmethod
    def _fresh(creds: google.auth.credentials.Credentials) -> bool:
        if not creds.valid:
            return False
        expiry = getattr(creds, "expiry", None)
        if expiry is None:
            return True
        now = datetime.datetime.now(_UTC).replace(tzinfo=None)
        return bool(expiry - now > _REFRESH_MARGIN)

    async def _send(
        self,
        conn: _Connection,
        operation: str,
        method: str,
        url: yarl.URL,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        budget: _Budget | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One call, with the retry layer: the final ``(status, headers, body)``.

        408, 429 and 5xx answers and connection errors are retried while
        ``budget`` lasts; the last answer is returned whatever its status, and
        the last connection error is raised.
        """
        import aiohttp  # noqa: PLC0415

        budget = budget if budget is not None else _Budget(self._retries)
        while True:
            auth = await self._auth(conn)
            self.request_counts[operation] += 1
            try:
                async with conn.session.request(
                    method, url, headers={**auth, **(headers or {})}, data=data
                ) as response:
                    body = await response.read()
                    status = response.status
                    response_headers = response.headers
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                if await budget.spend():
                    logger.debug("retrying %s %s after %r", operation, url, e)
                    continue
                raise
            if status in _RETRY_STATUS and await budget.spend():
                logger.debug("retrying %s %s after HTTP %d", operation, url, status)
                continue
            return status, response_headers, body

    # -- list -----------------------------------------------------------------------

    async def _pages(
        self, conn: _Connection, prefix: str, *, delimiter: str = ""
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Raw objects.list pages of ``prefix``, one request each, in sequence."""
        params = {
            "prefix": prefix,
            "maxResults": str(_PAGE),
            "fields": _LIST_FIELDS_DELIMITED if delimiter else _LIST_FIELDS,
        }
        if delimiter:
            params["delimiter"] = delimiter
        path = f"/storage/v1/b/{quote(self._bucket, safe='')}/o"
        while True:
            try:
                status, _, body = await self._send(
                    conn, "objects.list", "GET", self._api_url(path, params)
                )
            except Exception as e:
                raise self._storage_error("list", prefix, self._describe(e)) from e
            if status != 200:
                raise self._storage_error("list", prefix, error_message(status, body))
            try:
                page: dict[str, Any] = json.loads(body)
            except ValueError as e:
                raise self._storage_error("list", prefix, f"not JSON: {body[:80]!r}") from e
            yield page
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def _infos(self, items: Iterable[dict[str, Any]]) -> list[ObjectInfo]:
        cut = len(self._base)
        out = []
        for obj in items:
            name: str = obj["name"]
            # Directory placeholders (zero-byte "a/b/" objects the console creates).
            if name.endswith("/"):
                continue
            out.append(
                ObjectInfo(
                    name[cut:],
                    int(obj.get("size") or 0),
                    parse_time(obj["updated"]),
                    etag=_md5_hex(obj.get("md5Hash")),
                )
            )
        return out

    async def _children(self, conn: _Connection, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        """One delimiter listing of ``prefix``: its sub-"directories" and its direct objects."""
        dirs: list[str] = []
        objects: list[ObjectInfo] = []
        async for page in self._pages(conn, prefix, delimiter="/"):
            dirs.extend(page.get("prefixes", ()))
            objects.extend(self._infos(page.get("items", ())))
        return dirs, objects

    # -- read -----------------------------------------------------------------------

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """One ``alt=media`` GET per path, ``concurrency`` at a time; missing maps to ``None``.

        Never sends a metadata request. Any error other than "no such object"
        (after the retries) raises :class:`~registry_gc.StorageError` naming
        ``gs://bucket/name``.
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
        url = self._api_url(self._object_path(key), {"alt": "media"})
        try:
            status, _, body = await self._send(conn, "objects.get", "GET", url)
        except Exception as e:
            raise self._storage_error("read", key, self._describe(e)) from e
        if status == 200:
            return body
        if status == 404 and not is_missing_bucket(body):
            return None
        raise self._storage_error("read", key, error_message(status, body))

    async def digest(self, paths: Sequence[str], algorithm: str) -> dict[str, str | None]:
        """Hash objects while streaming them (the ``SupportsDigest`` capability).

        One ``alt=media`` GET each (again from the start if the transfer
        breaks, within the retries), a few objects at a time, 1 MiB in memory each.
        """
        import aiohttp  # noqa: PLC0415

        new_hash(algorithm)
        keys = {p: self._key(p) for p in paths}
        if not keys:
            return {}
        conn = await self._connection()
        out: dict[str, str | None] = {}

        async def one(path: str) -> None:
            key = keys[path]
            url = self._api_url(self._object_path(key), {"alt": "media"})
            budget = _Budget(self._retries)
            while True:
                h = new_hash(algorithm)
                auth = await self._auth(conn)
                self.request_counts["objects.get"] += 1
                try:
                    async with conn.session.get(url, headers=auth) as response:
                        if response.status == 200:
                            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                                h.update(chunk)
                            out[path] = h.hexdigest()
                            return
                        status, body = response.status, await response.read()
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    if await budget.spend():
                        continue
                    raise self._storage_error("read", key, self._describe(e)) from e
                if status in _RETRY_STATUS and await budget.spend():
                    continue
                if status == 404 and not is_missing_bucket(body):
                    out[path] = None
                    return
                raise self._storage_error("read", key, error_message(status, body))

        await run_pool(min(_DIGEST_CONCURRENCY, len(keys)), keys, one)
        return {p: out[p] for p in keys}

    # -- delete ---------------------------------------------------------------------

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete with JSON API batch requests of up to 100 calls, several in flight.

        Each call's own answer decides its path's result: 2xx is ``DELETED``,
        404 ``MISSING``, 429 and 5xx are sent again in a later batch (within
        the retries), anything else is ``FAILED`` with ``"<status> <reason>:
        <message>"``. A batch request that fails as a whole (after the
        retries) makes every path of its batch ``FAILED``.
        """
        keys = [self._key(p) for p in paths]
        if not keys:
            return []
        results: list[DeleteResult | None] = [None] * len(keys)
        conn = await self._connection()

        async def batch(start: int) -> None:
            idx = range(start, min(start + _BATCH, len(keys)))
            # A name given twice is sent once (a second call would answer 404).
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
        """Delete up to 100 names with batch requests; the outcome of each name."""
        outcomes: dict[str, tuple[Outcome, str | None]] = {}
        pending = keys
        # One budget for the whole batch: a request retried for a connection
        # error and a part retried for a 503 draw from the same retries.
        budget = _Budget(self._retries)
        while pending:
            answers = await self._batch_request(conn, pending, budget)
            if isinstance(answers, str):
                logger.warning(
                    "batch delete of %d objects in %s failed: %s", len(pending), self.url, answers
                )
                outcomes.update(dict.fromkeys(pending, (Outcome.FAILED, answers)))
                return outcomes
            retry: list[str] = []
            for key, part in zip(pending, answers, strict=True):
                if part is None:
                    outcomes[key] = (Outcome.FAILED, "no answer for this object in the batch")
                elif 200 <= part.status < 300:
                    outcomes[key] = (Outcome.DELETED, None)
                elif part.status == 404 and not is_missing_bucket(part.body):
                    outcomes[key] = (Outcome.MISSING, None)
                elif part.status in _RETRY_STATUS and budget.left > 0:
                    retry.append(key)
                else:
                    message = self._scrub(error_message(part.status, part.body))
                    outcomes[key] = (Outcome.FAILED, message)
            if retry:
                await budget.spend()  # left > 0 was checked for each of them
            pending = retry
        return outcomes

    async def _batch_request(
        self, conn: _Connection, keys: list[str], budget: _Budget
    ) -> list[Part | None] | str:
        """One batch request deleting ``keys``: each call's answer, or why the request failed."""
        boundary = f"registry-gc-{uuid.uuid4().hex}"
        token = uuid.uuid4().hex
        query = self._query({})
        calls = [self._object_path(k) + (f"?{query}" if query else "") for k in keys]
        body = batch_body(boundary, token, calls)
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        url = self._api_url("/batch/storage/v1")
        try:
            status, response_headers, content = await self._send(
                conn, "batch", "POST", url, headers=headers, data=body, budget=budget
            )
        except Exception as e:  # noqa: BLE001 - reported per object, never dropped
            return self._describe(e)
        self.request_counts["objects.delete"] += len(keys)
        if status != 200:
            return self._scrub(error_message(status, content))
        try:
            parts = parse_batch_response(response_headers.get("Content-Type", ""), content)
        except ValueError as e:
            return f"unreadable batch response: {e}"
        return match_parts(parts, token, len(keys))

    # -- move and write -------------------------------------------------------------

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> list[DeleteResult]:
        """Rewrite server-side, then delete the sources copied (the ``SupportsMove`` capability).

        One ``objects.rewrite`` per object (sent again with its
        ``rewriteToken`` until done: within one location and storage class
        GCS is done in one call), whose answer's sizes must agree; up to
        ``concurrency`` at once, 1000 pairs at a time, the sources of each
        1000 copied then deleted in batch requests of 100 (whose per-object
        failures make their moves ``FAILED``: the copy exists, and the error
        says so). A missing source (404) is ``MISSING``; any other rewrite
        failure is ``FAILED`` and leaves the source as it was. ``sizes`` is
        not needed.
        """
        del sizes
        pairs = checked_moves(moves)
        if not pairs:
            return []
        conn = await self._connection()

        async def copy(src: str, dst: str) -> DeleteResult | None:
            return await self._rewrite(conn, src, dst)

        return await copy_then_delete(
            pairs, copy, self.delete, workers=self._concurrency, chunk=_MOVE_CHUNK
        )

    async def _rewrite(self, conn: _Connection, src: str, dst: str) -> DeleteResult | None:
        """Copy ``src`` to ``dst`` whole: ``None``, or the ``MISSING``/``FAILED`` result."""
        src_key, dst_key = self._key(src), self._key(dst)
        bucket = quote(self._bucket, safe="")
        path = f"{self._object_path(src_key)}/rewriteTo/b/{bucket}/o/{quote(dst_key, safe='')}"
        params = {"fields": _REWRITE_FIELDS}

        def failed(why: str) -> DeleteResult:
            msg = f"cannot copy it to {self._where(dst_key)}, so it stays: {self._scrub(why)}"
            return DeleteResult(src, Outcome.FAILED, msg)

        while True:
            url = self._api_url(path, params)
            try:
                status, _, body = await self._send(conn, "objects.rewrite", "POST", url, data=b"")
            except Exception as e:  # noqa: BLE001 - reported per move, never dropped
                return failed(self._describe(e))
            if status == 404 and not is_missing_bucket(body):
                return DeleteResult(src, Outcome.MISSING)
            if status != 200:
                return failed(error_message(status, body))
            token, why = _rewrite_progress(body)
            if why is not None:
                return failed(why)
            if token is None:
                return None  # done
            params["rewriteToken"] = token

    async def write(self, items: Mapping[str, bytes]) -> None:
        """One media upload per item, ``concurrency`` at a time (the ``SupportsWrite`` capability).

        The first failure (after the retries) raises
        :class:`~registry_gc.StorageError` naming ``gs://bucket/name``.
        """
        keys = {p: self._key(p) for p in items}
        if not keys:
            return
        conn = await self._connection()
        path = f"/upload/storage/v1/b/{quote(self._bucket, safe='')}/o"
        headers = {"Content-Type": _CONTENT_TYPE}

        async def one(item: str) -> None:
            key = keys[item]
            url = self._api_url(path, {"uploadType": "media", "name": key, "fields": "name"})
            try:
                status, _, body = await self._send(
                    conn, "objects.insert", "POST", url, headers=headers, data=items[item]
                )
            except Exception as e:
                raise self._storage_error("write", key, self._describe(e)) from e
            if status != 200:
                raise self._storage_error("write", key, error_message(status, body))

        await run_pool(min(self._concurrency, len(keys)), keys, one)

    def _listing(self, conn: _Connection) -> Listing:
        async def pages(prefix: str) -> AsyncGenerator[list[ObjectInfo], None]:
            async with contextlib.aclosing(self._pages(conn, prefix)) as raw:
                async for page in raw:
                    yield self._infos(page.get("items", ()))

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

        Flat ``objects.list`` (no delimiter, 1000 objects a page), never a
        request per directory. ``blobs/``, ``repositories/`` and the path down
        to them are first split with a few delimiter listings into disjoint
        name ranges that are listed concurrently; any other prefix is one
        stream of sequential pages. Names ending in ``/`` (directory
        placeholders) are skipped.
        """
        key_prefix = self._dir_key(prefix)
        conn = await self._connection()
        async with contextlib.aclosing(list_objects(self._listing(conn), key_prefix)) as infos:
            async for info in infos:
                yield info
