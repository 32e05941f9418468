"""The registry's blob-descriptor cache: forget what a run removed or moved.

A running registry configured with ``storage.cache.blobdescriptor`` answers
"this blob exists" from its cache without looking at the storage
(``cachedBlobStatter.Stat``). Once a run has deleted a blob, or moved it out of
the registry's sight, the cache still vouches for it: ``HEAD`` answers 200,
clients skip uploading the layer, manifests that need it are accepted, and
pulls then fail. What to do depends on the cache:

- none (:class:`NoCache`): nothing; the registry reads the storage every time;
- ``redis`` (:class:`RedisDescriptorCache`): remove exactly the entries of
  every blob and link the run removed or moved, with
  :meth:`~RedisDescriptorCache.forget`;
- ``inmemory`` (:class:`InMemoryCache`): nothing can reach the registry's
  memory from outside. :attr:`InMemoryCache.notice` says what that costs (a
  restart after the run, or failed pulls until a later run restores what a new
  push needed), and :meth:`~InMemoryCache.forget` reports the entries left
  stale (``cleared`` is false) so that the caller can let the operator choose.

The redis keys are distribution's (``registry/storage/cache/redis``, the same
in 2.8 and 3.x, manifests included in 3.x): the hash ``blobs::<digest>``, the
set ``repository::<repo>::blobs`` and the hash
``repository::<repo>::blobs::<digest>``. Which commands remove them, and why
they are enough: :meth:`RedisDescriptorCache.forget`, and ``docs/cache.md``.

>>> import asyncio
>>> result = asyncio.run(NoCache().forget([Digest("sha256:" + "a" * 64)]))
>>> result.cleared, result.blobs
(True, 1)
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConfigError, StorageError
from .layout import Digest, Repository

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from types import ModuleType, TracebackType

    from typing_extensions import Self

    from ._redis_config import RedisConfig
    from .config import RegistryConfig

__all__ = [
    "INMEMORY_NOTICE",
    "DescriptorCache",
    "ForgetResult",
    "InMemoryCache",
    "NoCache",
    "RedisDescriptorCache",
    "blob_key",
    "descriptor_cache",
    "repository_blob_key",
    "repository_set_key",
]

log = logging.getLogger(__name__)

#: What an ``inmemory`` cache costs a run that removes or moves blobs while the registry runs.
INMEMORY_NOTICE: Final = (
    "the registry caches blob descriptors in its own memory (storage.cache.blobdescriptor: "
    "inmemory), which registry-gc cannot reach: after a run removes or moves blobs, the running "
    "registry still answers that they exist, so a push can skip uploading such a layer and have "
    "its manifest accepted, and that image fails to pull. Choose one: restart the registry after "
    "every run that removed or moved blobs (the restart empties the cache), or accept pull "
    "failures of such pushes until a later run restores the blobs they need (or they are pushed "
    "again after a restart); or configure a redis cache, whose entries a run removes, or none"
)

# Commands per pipeline round trip: bounded, so that a million forgotten blobs
# neither build one enormous request nor hold every reply at once.
_BATCH: Final = 1000
# Seconds, when the configuration gives none (go-redis' dial default; its 3 s
# read default is short for a busy server, and a run can wait).
_DEFAULT_CONNECT_TIMEOUT: Final = 5.0
_DEFAULT_TIMEOUT: Final = 10.0
_EXTRA_HINT: Final = "pip install 'registry-gc[redis]'"


def blob_key(digest: str) -> str:
    """``blobs::<digest>``: the global hash of a blob (and, in 3.x, of a manifest)."""
    return f"blobs::{digest}"


def repository_set_key(repository: str) -> str:
    """``repository::<repo>::blobs``: the set of digests cached as linked in the repository."""
    return f"repository::{repository}::blobs"


def repository_blob_key(repository: str, digest: str) -> str:
    """``repository::<repo>::blobs::<digest>``: the repository's own hash (its ``mediatype``)."""
    return f"repository::{repository}::blobs::{digest}"


@attrs.frozen
class ForgetResult:
    """What :meth:`DescriptorCache.forget` did.

    ``blobs`` and ``links`` count what was asked (duplicates once); the other
    counts are what the cache actually held. ``cleared`` is false only when
    the cache cannot be reached from outside (``inmemory``): then the registry
    may still vouch for every one of them.
    """

    #: ``redis``, ``inmemory`` or ``none``.
    cache: str
    #: Blob digests asked to forget.
    blobs: int = 0
    #: ``(repository, digest)`` links asked to forget.
    links: int = 0
    #: ``blobs::<digest>`` hashes removed.
    blob_entries: int = 0
    #: Digests removed from ``repository::<repo>::blobs`` sets.
    link_members: int = 0
    #: ``repository::<repo>::blobs::<digest>`` hashes removed.
    link_entries: int = 0
    #: Whether the registry's cache no longer vouches for any of them.
    cleared: bool = True

    @property
    def removed(self) -> int:
        """Keys and set members removed, in all."""
        return self.blob_entries + self.link_members + self.link_entries

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "cache": self.cache,
            "blobs": self.blobs,
            "links": self.links,
            "blob_entries": self.blob_entries,
            "link_members": self.link_members,
            "link_entries": self.link_entries,
            "cleared": self.cleared,
        }

    def render(self) -> str:
        """One line for people."""
        asked = f"{self.blobs} blob(s) and {self.links} link(s)"
        if self.cache == "none":
            return f"no blob-descriptor cache: nothing to forget for {asked}"
        if not self.cleared:
            return (
                f"inmemory blob-descriptor cache: the running registry may still vouch for {asked} "
                "(its memory cannot be cleared from outside)"
            )
        return (
            f"redis blob-descriptor cache: forgot {asked}: {self.blob_entries} blob entries, "
            f"{self.link_members} repository memberships, {self.link_entries} repository entries"
        )


@runtime_checkable
class DescriptorCache(Protocol):
    """A registry's blob-descriptor cache, as a run sees it: one operation, :meth:`forget`.

    ``kind`` is ``redis``, ``inmemory`` or ``none``; ``can_forget`` is false
    when entries cannot be removed from outside (``inmemory``).
    :meth:`aclose` releases connections; the caches are async context managers.
    """

    kind: ClassVar[str]
    can_forget: ClassVar[bool]

    async def forget(
        self,
        blobs: Collection[str] = (),
        links: Collection[tuple[str, str]] = (),
    ) -> ForgetResult:
        """Make the registry forget ``blobs`` (digests) and ``links`` (repository, digest).

        Pass every blob the run deleted or moved — a manifest's digest too, when
        its blob goes (3.x caches manifests) — and every ``_layers`` link and
        manifest revision link the run removed, as ``(repository, digest)``. A
        blob known under an alias (a ``sha512`` layer link naming a ``sha256``
        blob) has entries under each digest: pass each.
        """
        ...

    async def aclose(self) -> None:
        """Release what the cache holds open (connections); idempotent."""
        ...


def _digests(blobs: Iterable[str]) -> list[Digest]:
    return list(dict.fromkeys(d if isinstance(d, Digest) else Digest(d) for d in blobs))


def _links(links: Iterable[tuple[str, str]]) -> list[tuple[Repository, Digest]]:
    return list(
        dict.fromkeys(
            (
                r if isinstance(r, Repository) else Repository(r),
                d if isinstance(d, Digest) else Digest(d),
            )
            for r, d in links
        )
    )


class _ClosedOnExit:
    """``async with`` for the caches: :meth:`aclose` on the way out."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Nothing to release (a cache holding connections overrides this)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@attrs.frozen
class NoCache(_ClosedOnExit):
    """The registry caches nothing (no ``storage.cache.blobdescriptor``): nothing to forget."""

    kind: ClassVar[str] = "none"
    can_forget: ClassVar[bool] = True

    async def forget(
        self, blobs: Collection[str] = (), links: Collection[tuple[str, str]] = ()
    ) -> ForgetResult:
        """Nothing to do: the registry reads the storage every time."""
        return ForgetResult("none", blobs=len(_digests(blobs)), links=len(_links(links)))


@attrs.frozen
class InMemoryCache(_ClosedOnExit):
    """The registry caches in its own memory (``inmemory``): nothing outside can clear it.

    :meth:`forget` removes nothing and says so (``cleared`` false);
    :attr:`notice` is the text to show the operator, who chooses between a
    restart and transient pull failures (see :data:`INMEMORY_NOTICE`).
    """

    kind: ClassVar[str] = "inmemory"
    can_forget: ClassVar[bool] = False

    #: The configuration that says so (a path, or ``<mapping>``).
    source: str = "<mapping>"

    @property
    def notice(self) -> str:
        """What the cache costs a run that removes or moves blobs, and the operator's choices."""
        return f"{self.source}: {INMEMORY_NOTICE}"

    async def forget(
        self, blobs: Collection[str] = (), links: Collection[tuple[str, str]] = ()
    ) -> ForgetResult:
        """Remove nothing (it cannot): the result has ``cleared`` false."""
        result = ForgetResult(
            "inmemory", blobs=len(_digests(blobs)), links=len(_links(links)), cleared=False
        )
        if result.blobs or result.links:
            log.warning("%s", self.notice)
        return result


class RedisDescriptorCache(_ClosedOnExit):
    """The registry's redis blob-descriptor cache, reached with redis-py's asyncio client.

    Build it with :meth:`from_config` (the registry's ``redis`` section) or
    :meth:`from_url`; close it with :meth:`aclose` (or ``async with``). It
    connects on first use, and must be used from one event loop.

    Args:
        client: a ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``.
        where: how messages name it (never with a credential).
        secrets: credential values to redact from error messages.
        others: further clients to close with it (a sentinel's own connections).
    """

    kind: ClassVar[str] = "redis"
    can_forget: ClassVar[bool] = True

    def __init__(
        self,
        client: Any,  # noqa: ANN401 - redis-py's clients share no base type
        *,
        where: str,
        secrets: tuple[str, ...] = (),
        others: tuple[Any, ...] = (),
    ) -> None:
        self._client = client
        self._others = others
        self.where = where
        self._secrets = secrets
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisDescriptorCache {self.where}>"

    @classmethod
    def from_config(cls, config: RedisConfig) -> RedisDescriptorCache:
        """Reach redis as the registry does, from its ``redis`` section.

        One address: that server and ``db``; several: a cluster; a master name:
        the sentinels at the addresses, then that master and ``db`` (as go-redis'
        ``NewUniversalClient`` decides). ``tls`` turns TLS on, with the client
        certificate and CA files it names; the server's host name is checked.

        Raises:
            ConfigError: the redis client is not installed (the ``redis``
                extra), an address is not ``host:port``, or a TLS file cannot
                be read.
        """
        asyncio_redis = _redis_asyncio()
        endpoints = config.endpoints()
        common: dict[str, Any] = {
            "username": config.username,
            "password": config.password,
            "socket_connect_timeout": config.dial_timeout or _DEFAULT_CONNECT_TIMEOUT,
            "socket_timeout": max(
                config.read_timeout or _DEFAULT_TIMEOUT, config.write_timeout or 0
            ),
            **_tls_options(config),
        }
        where = config.describe()
        if config.mode == "sentinel":
            sentinel_module = importlib.import_module("redis.asyncio.sentinel")
            sentinel_options = {
                **common,
                "username": config.sentinel_username,
                "password": config.sentinel_password,
            }
            sentinel = sentinel_module.Sentinel(
                list(endpoints), sentinel_kwargs=sentinel_options, **common
            )
            client = sentinel.master_for(config.master_name, db=config.db)
            return cls(
                client, where=where, secrets=config.secrets, others=tuple(sentinel.sentinels)
            )
        if config.mode == "cluster":
            cluster_module = importlib.import_module("redis.asyncio.cluster")
            nodes = [cluster_module.ClusterNode(host, port) for host, port in endpoints]
            client = cluster_module.RedisCluster(startup_nodes=nodes, **common)
            return cls(client, where=where, secrets=config.secrets)
        host, port = endpoints[0]
        client = asyncio_redis.Redis(host=host, port=port, db=config.db, **common)
        return cls(client, where=where, secrets=config.secrets)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = _DEFAULT_TIMEOUT) -> RedisDescriptorCache:
        """Reach redis at ``url``: ``redis://[[user]:password@]host:port/db``, ``rediss://`` (TLS), ``unix://``.

        Raises:
            ConfigError: the URL is not a redis URL, or the client is not installed.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            msg = (
                f"not a redis URL: {_strip_password(url)!r} (expected redis://host:port/db, "
                "rediss://host:port/db or unix:///path.sock)"
            )
            raise ConfigError(msg)
        asyncio_redis = _redis_asyncio()
        secrets = tuple(s for s in (parts.password,) if s)
        try:
            client = asyncio_redis.from_url(
                url, socket_connect_timeout=_DEFAULT_CONNECT_TIMEOUT, socket_timeout=timeout
            )
        except ValueError as e:
            text = str(e)
            for secret in secrets:
                text = text.replace(secret, "***")
            msg = f"invalid redis URL {_strip_password(url)!r}: {text}"
            raise ConfigError(msg) from None
        return cls(client, where=f"redis {_strip_password(url)}", secrets=secrets)

    async def forget(
        self, blobs: Collection[str] = (), links: Collection[tuple[str, str]] = ()
    ) -> ForgetResult:
        """Remove the entries of ``blobs`` and ``links``; see :class:`DescriptorCache`.

        Per blob ``DEL blobs::<digest>``; per link ``SREM
        repository::<repo>::blobs <digest>`` and ``DEL
        repository::<repo>::blobs::<digest>``; pipelined, a thousand commands per
        round trip. Entries already gone are no error. A lookup in a repository
        needs the set member, the global hash and the repository's hash: without
        the global hash a blob misses everywhere, without the other two a link
        misses in its repository (either alone is enough; 3.x's ``Clear`` removes
        both). A miss sends the registry to the storage.

        ``DEL`` rather than the registry's own ``HDEL blobs::<digest> digest size
        mediatype``: both 2.8 and 3.x read the hash with ``HMGET`` and take a
        missing ``digest`` or ``size`` as a miss, which a missing key is; ``DEL``
        also drops fields the three names do not cover (``length``, the name of
        ``size`` before 2.1), and works whatever the key holds.

        Raises:
            InvalidReferenceError: a digest or repository name is malformed
                (nothing was sent).
            StorageError: redis refused or could not be reached; the batches
                sent before it are applied, and forgetting again is safe.
        """
        digests = _digests(blobs)
        pairs = _links(links)
        commands: list[tuple[str, str, str | None]] = [("del", blob_key(d), None) for d in digests]
        for repo, digest in pairs:
            commands.append(("srem", repository_set_key(repo), digest))
            commands.append(("del", repository_blob_key(repo, digest), None))
        replies: list[int] = []
        try:
            for start in range(0, len(commands), _BATCH):
                replies.extend(await self._send(commands[start : start + _BATCH]))
        except Exception as e:
            if not _is_redis_failure(e):
                raise
            msg = (
                f"could not remove blob-descriptor cache entries from {self.where}: "
                f"{self._redact(str(e)) or type(e).__name__}; {len(replies)} of {len(commands)} "
                "commands were applied. Forgetting again is safe; until it succeeds, the "
                "registry may vouch for blobs that are gone (restarting it does not help: the "
                "entries are in redis)"
            )
            raise StorageError(msg) from None
        blob_entries = sum(replies[: len(digests)])
        rest = replies[len(digests) :]
        result = ForgetResult(
            "redis",
            blobs=len(digests),
            links=len(pairs),
            blob_entries=blob_entries,
            link_members=sum(rest[0::2]),
            link_entries=sum(rest[1::2]),
        )
        log.info("%s: %s", self.where, result.render())
        return result

    async def _send(self, commands: list[tuple[str, str, str | None]]) -> list[int]:
        async with self._client.pipeline(transaction=False) as pipe:
            for op, key, member in commands:
                if op == "srem":
                    pipe.srem(key, member)
                else:
                    pipe.delete(key)
            return [int(r) for r in await pipe.execute()]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        """Close the connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        for client in (self._client, *self._others):
            await client.aclose()


def descriptor_cache(
    config: RegistryConfig | None = None, *, url: str | None = None
) -> DescriptorCache:
    """The blob-descriptor cache of the registry that ``config`` describes, ready to forget.

    ``storage.cache.blobdescriptor`` decides: ``redis`` → a
    :class:`RedisDescriptorCache` reached as the registry reaches it (the
    ``redis`` section), or at ``url`` when given (for a redis that this machine
    reaches at another address, e.g. ``redis://127.0.0.1:6379/0``);
    ``inmemory`` → an :class:`InMemoryCache`; unset, or a value distribution
    does not know (it then caches nothing) → a :class:`NoCache`. Without
    ``config``: ``url`` alone gives a :class:`RedisDescriptorCache`, nothing a
    :class:`NoCache`.

    >>> from registry_gc.config import parse_registry_config
    >>> cfg = parse_registry_config(
    ...     {"storage": {"filesystem": {}, "cache": {"blobdescriptor": "inmemory"}}}
    ... )
    >>> cache = descriptor_cache(cfg)
    >>> cache.kind, cache.can_forget
    ('inmemory', False)

    Raises:
        ConfigError: the configuration says ``redis`` but has no usable
            ``redis`` section; ``url`` is given for a registry whose cache is
            not redis; the redis client is not installed (the ``redis`` extra).
    """
    if config is None:
        return RedisDescriptorCache.from_url(url) if url is not None else NoCache()
    kind = config.blob_descriptor_cache
    if kind not in ("redis", "inmemory"):
        if url is not None:
            msg = (
                f"{config.source} sets no redis blob-descriptor cache "
                f"(storage.cache.blobdescriptor is {kind or 'unset'}): a redis URL has nothing "
                "to clear"
            )
            raise ConfigError(msg)
        return NoCache()
    if kind == "inmemory":
        if url is not None:
            msg = (
                f"{config.source} caches blob descriptors in the registry's memory "
                "(storage.cache.blobdescriptor: inmemory), not in redis: a redis URL cannot "
                "clear them"
            )
            raise ConfigError(msg)
        return InMemoryCache(config.source)
    if url is not None:
        return RedisDescriptorCache.from_url(url)
    if config.redis is None:
        msg = (
            f"{config.source}: storage.cache.blobdescriptor is redis but the redis section "
            "names no address (redis.addr in distribution 2.x, redis.addrs in 3.x); give the "
            "redis URL explicitly"
        )
        raise ConfigError(msg)
    try:
        return RedisDescriptorCache.from_config(config.redis)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {config.redact(str(e))}") from None


# -- helpers -----------------------------------------------------------------------


def _redis_asyncio() -> ModuleType:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError:
        msg = (
            "the registry's blob-descriptor cache is in redis, and the redis client is not "
            f"installed: {_EXTRA_HINT}"
        )
        raise ConfigError(msg) from None


def _is_redis_failure(error: Exception) -> bool:
    if isinstance(error, OSError):
        return True
    try:
        exceptions = importlib.import_module("redis.exceptions")
    except ImportError:  # pragma: no cover - a client exists, so does its module
        return False
    return isinstance(error, exceptions.RedisError)


def _tls_options(config: RedisConfig) -> dict[str, Any]:
    tls = config.tls
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl": True, "ssl_check_hostname": True}
    if tls.certificate and tls.key:
        options.update(ssl_certfile=tls.certificate, ssl_keyfile=tls.key)
    if tls.root_cas:
        pems: list[str] = []
        for path in tls.root_cas:
            try:
                with open(path, encoding="ascii") as f:
                    pems.append(f.read())
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) else "not a PEM file"
                msg = f"cannot read the redis CA file {path}: {reason}"
                raise ConfigError(msg) from None
        options["ssl_ca_data"] = "\n".join(pems)
    return options


def _strip_password(url: str) -> str:
    """``url`` without its password (the user name, host and port stay)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
