"""Connecting to S3: s3fs sets up the session, botocore's client is tuned for registry-gc.

s3fs resolves credentials, profiles, endpoints, anonymous access and region
handling; the client it makes is then used directly by
:class:`~registry_gc.backends.S3Backend`, with:

- botocore's ``standard`` retries (the one retry layer) and a connection pool
  as large as the backend's concurrency;
- a timestamp parser that reads ``LastModified`` with ``fromisoformat``
  (about 3x less client CPU per listed page than dateutil);
- ListObjectsV2 bodies read by ``_s3_list`` rather than by botocore's
  parser (several times less client CPU per listed page again);
- ``Content-MD5`` on DeleteObjects, which some S3-compatible servers require.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import hashlib
from typing import TYPE_CHECKING, Any

import attrs

from . import _s3_list

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FORCED_OPTIONS", "S3Connection", "abandon", "close", "connect", "fast_timestamp"]

#: botocore's retries (standard mode): attempts after the first one.
DEFAULT_RETRIES = 5
#: Storage options of s3fs that the backend decides itself.
FORCED_OPTIONS = (
    "asynchronous",
    "loop",
    "skip_instance_cache",
    "use_listings_cache",
    "max_concurrency",
)


def fast_timestamp(value: object) -> datetime.datetime:
    """Parse a botocore timestamp with ``fromisoformat``, falling back to botocore's parser.

    Listing bodies carry ISO 8601 (``2026-01-02T03:04:05.000Z``); response
    headers carry RFC 1123 (``Fri, 02 Jan 2026 03:04:05 GMT``), which only the
    fallback understands. ``fromisoformat`` before Python 3.11 rejects ``Z``.
    """
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
        if text.endswith(" GMT"):
            # Every GetObject's Last-Modified header: 20x faster than botocore's parser.
            try:
                return email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                pass
    from botocore.utils import parse_timestamp  # noqa: PLC0415 - only on the slow path

    result: datetime.datetime = parse_timestamp(value)
    return result


def _add_content_md5(request: object, **_: object) -> None:
    """Add ``Content-MD5`` to DeleteObjects (botocore >= 1.36 only sends a CRC32).

    S3 requires *a* checksum on DeleteObjects and accepts either; some
    S3-compatible servers still insist on Content-MD5 (``MissingContentMD5``,
    s3fs issue #931). Sending both costs one MD5 of a <= 1000-key XML body.
    """
    body = getattr(request, "body", None)
    headers = getattr(request, "headers", None)
    if isinstance(body, (bytes, bytearray)) and headers is not None:
        if "Content-MD5" in headers:
            return
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        headers["Content-MD5"] = base64.b64encode(digest).decode("ascii")


@attrs.define(slots=True)
class S3Connection:
    """An s3fs filesystem and its aiobotocore client, bound to the event loop that made it."""

    fs: Any
    client: Any


async def connect(
    storage_options: Mapping[str, Any], concurrency: int, on_request: Callable[..., None]
) -> S3Connection:
    """A client for s3fs's ``storage_options``, in the running loop.

    ``on_request(event_name)`` is called before every HTTP request is sent
    (``before-send.s3.<Operation>``), retries included.
    """
    import aiobotocore.session  # noqa: PLC0415 - heavy, and only for S3
    import s3fs  # noqa: PLC0415

    options = dict(storage_options)
    config: dict[str, Any] = {
        # aiohttp's pool limit caps requests in flight; botocore defaults to 10.
        "max_pool_connections": concurrency,
        "retries": {"max_attempts": DEFAULT_RETRIES, "mode": "standard"},
    }
    user_config = dict(options.pop("config_kwargs", None) or {})
    # Merged, so that {"retries": {"max_attempts": 2}} keeps standard mode.
    config["retries"] = {**config["retries"], **(user_config.pop("retries", None) or {})}
    config.update(user_config)
    fs = s3fs.S3FileSystem(
        asynchronous=True,
        skip_instance_cache=True,
        use_listings_cache=False,
        # No HeadObject before a read (s3fs's cat_file otherwise sends one).
        max_concurrency=1,
        config_kwargs=config,
        **options,
    )
    if fs.session is None:
        # Our own session, built from the session kwargs (``profile``) as
        # s3fs would, so that the fast timestamp parser is installed on
        # it. A session passed in by the caller is used untouched.
        session = aiobotocore.session.AioSession(**fs.kwargs)
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=fast_timestamp
        )
        fs.session = session
    client = await fs.set_session()
    events = client.meta.events
    events.register("before-send.s3", on_request)
    events.register("before-sign.s3.DeleteObjects", _add_content_md5)
    _s3_list.install(events, fast_timestamp)
    return S3Connection(fs=fs, client=client)


async def close(conn: S3Connection) -> None:
    """Close the client's connections (in the loop that made it)."""
    await conn.client.close()


def abandon(conn: S3Connection) -> None:
    """Drop a client whose event loop ended without finalizing it (``loop.close()`` alone).

    Its sockets belong to that loop and cannot be closed from this one;
    marking the aiohttp connectors closed releases what can be released and
    stops aiohttp warning about an unclosed session later.
    """
    with contextlib.suppress(Exception):
        http = conn.client._endpoint.http_session  # noqa: SLF001
        for session in list((http._sessions or {}).values()):  # noqa: SLF001
            connector = session.connector
            if connector is not None and not connector.closed:
                connector._close()  # noqa: SLF001
