"""The registry's own configuration: where its storage is, read as the registry reads it.

:func:`load_registry_config` reads a distribution ``config.yml``, applies the
``REGISTRY_STORAGE*`` environment overrides the way the registry applies them,
and turns the ``storage`` section into a backend URL and storage options
(:class:`RegistryConfig`): ``filesystem`` → a path, ``s3`` → ``s3://bucket/prefix``,
``gcs`` → ``gs://bucket/prefix``, ``azure`` → ``az://container/prefix``
(``az://container//`` for distribution 2.x, whose blob names start with ``/``).

>>> cfg = parse_registry_config(
...     {"storage": {"s3": {"bucket": "images", "region": "eu-west-1", "rootdirectory": "/reg"}}},
...     env={"REGISTRY_STORAGE_S3_BUCKET": "other"},
... )
>>> cfg.url
's3://other/reg'

How the registry applies environment variables (``configuration/parser.go``),
and so how this module does: variables are applied in sorted order; the name
after ``REGISTRY_`` is split on ``_`` and matched, upper-cased, against the
keys of the configuration; the value is parsed as YAML; a missing key is
created (lower-case). One quirk is kept on purpose: a mapping nested *inside*
a driver's parameters and read from the file (``maintenance.readonly``) has
keys the registry cannot match, so ``REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED``
is ignored when the file already has ``readonly:`` — set the whole mapping,
``REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}'``, instead.

The top-level ``redis`` section (where a ``redis`` blob-descriptor cache
lives) becomes :attr:`RegistryConfig.redis`, a :class:`RedisConfig`, with the
``REGISTRY_REDIS*`` overrides applied; both spellings are read, distribution
2.x's (``addr``) and 3.x's (``addrs``, ``username``, ``tls``, sentinel).

Credentials end up in :attr:`RegistryConfig.storage_options` and
:attr:`RegistryConfig.redis` only: never in :attr:`~RegistryConfig.url`,
``repr``, :meth:`~RegistryConfig.describe`, :meth:`~RegistryConfig.to_dict` or
an error message.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs
import yaml

from ._drivers import SUPPORTED_DRIVERS, secrets_of, storage_location
from ._errors import ConfigError
from ._redis_config import RedisConfig, RedisTLS, load_raw, read_redis_section

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_CONFIG_PATHS",
    "SUPPORTED_DRIVERS",
    "RedisConfig",
    "RedisTLS",
    "RegistryConfig",
    "find_default_config",
    "load_registry_config",
    "parse_registry_config",
]

log = logging.getLogger(__name__)

#: Where the registry images keep their configuration (``registry:3``, then ``registry:2``).
DEFAULT_CONFIG_PATHS: tuple[str, ...] = (
    "/etc/distribution/config.yml",
    "/etc/docker/registry/config.yml",
)
#: The registry reads its configuration from this variable when no path is given.
CONFIG_PATH_ENV: Final = "REGISTRY_CONFIGURATION_PATH"

# Keys of ``storage`` that configure the registry rather than name a driver.
_NOT_DRIVERS: Final = frozenset({"maintenance", "cache", "delete", "redirect", "tag"})
_ENV_PREFIX: Final = "REGISTRY_STORAGE"


class _StrMap(dict[str, Any]):
    """A mapping the registry can override key by key from the environment.

    In Go, ``storage`` and each driver's parameters are ``map[string]…``; a
    mapping deeper in, read by yaml.v2, is ``map[interface{}]interface{}``,
    whose keys the override code cannot match. Mappings created by an
    override itself are ``map[string]interface{}`` again.
    """


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.1 like yaml.v2, except that timestamps stay strings (as in the registry)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@attrs.frozen
class RegistryConfig:
    """Where a registry's storage is, read from its configuration.

    ``url`` and ``storage_options`` are what :func:`~registry_gc.open_backend`
    takes. ``storage_options`` may hold credentials: it is left out of
    ``repr`` and of :meth:`to_dict`.
    """

    #: The configuration file (or ``<mapping>`` when parsed from data).
    source: str
    #: ``filesystem``, ``s3``, ``gcs`` or ``azure``.
    driver: str
    #: A local path or ``s3://``, ``gs://``, ``az://`` URL; never holds credentials.
    url: str
    storage_options: Mapping[str, Any] = attrs.field(repr=False, factory=dict)
    #: ``inmemory`` or ``redis`` when ``storage.cache.blobdescriptor`` is set, else ``None``.
    blob_descriptor_cache: str | None = None
    #: ``storage.maintenance.readonly.enabled``: the registry refuses pushes.
    read_only: bool = False
    #: Things the registry would do differently, or refuse; each names its key.
    warnings: tuple[str, ...] = ()
    #: Credential values, to redact from any text that could echo them.
    secrets: tuple[str, ...] = attrs.field(repr=False, default=())
    #: The top-level ``redis`` section, or None when it names no address.
    redis: RedisConfig | None = None

    @property
    def restart_required(self) -> bool:
        """Whether the registry must be restarted after a sweep: it caches blob descriptors."""
        return self.blob_descriptor_cache is not None

    def redact(self, text: str) -> str:
        """``text`` with every credential of this configuration replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def describe(self) -> str:
        """One line for messages: the storage and where the configuration came from."""
        details: list[str] = []
        opts = self.storage_options
        endpoint = opts.get("endpoint_url") or opts.get("account_url")
        if isinstance(endpoint, str):
            parts = urlsplit(endpoint)
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            details.append(f"endpoint {parts.scheme}://{host}" if parts.scheme else endpoint)
        client = opts.get("client_kwargs")
        if isinstance(client, dict) and client.get("region_name"):
            details.append(f"region {client['region_name']}")
        if any(k in opts for k in ("key", "secret", "account_key", "token", "client_secret")):
            details.append("credentials from the configuration")
        extra = f" ({', '.join(details)})" if details else ""
        return f"{self.driver} storage {self.url}{extra}, from {self.source}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, without credentials."""
        return {
            "path": self.source,
            "driver": self.driver,
            "root": self.url,
            "blob_descriptor_cache": self.blob_descriptor_cache,
            "read_only": self.read_only,
            "restart_required": self.restart_required,
            "warnings": [self.redact(w) for w in self.warnings],
            "redis": self.redis.to_dict() if self.redis is not None else None,
        }


def find_default_config(env: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file the registry would read when given none, if it exists.

    ``$REGISTRY_CONFIGURATION_PATH`` first (as the registry does), then
    :data:`DEFAULT_CONFIG_PATHS` (where the ``registry:3`` and ``registry:2``
    images keep it).
    """
    env = os.environ if env is None else env
    candidates = [env[CONFIG_PATH_ENV]] if env.get(CONFIG_PATH_ENV) else []
    candidates.extend(DEFAULT_CONFIG_PATHS)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def load_registry_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> RegistryConfig:
    """Read the registry configuration at ``path``; apply ``env`` (default: ``os.environ``).

    Raises:
        ConfigError: the file cannot be read or parsed, names no storage driver
            or several, a required parameter is missing, or the driver is not
            one registry-gc can reach. The message names the file and the key,
            never a credential.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"cannot read the registry configuration {source}: no such file"
        raise ConfigError(msg) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8"
        msg = f"cannot read the registry configuration {source}: {reason}"
        raise ConfigError(msg) from None
    return parse_registry_config(text, env=env, source=source)


def parse_registry_config(
    document: Mapping[str, Any] | str,
    *,
    env: Mapping[str, str] | None = None,
    source: str = "<mapping>",
) -> RegistryConfig:
    """Like :func:`load_registry_config`, from YAML text or an already parsed mapping."""
    env = os.environ if env is None else env
    data = _load_yaml(document, source) if isinstance(document, str) else document
    if not isinstance(data, dict):
        msg = f"{source}: the configuration is not a mapping"
        raise ConfigError(msg)
    warnings: list[str] = []
    storage = _storage_from_file(data.get("storage"), source)
    storage = _apply_environment(storage, env, source, warnings)
    driver = _driver(storage, source)
    params = storage[driver]
    secrets = secrets_of(params)
    url, options = storage_location(driver, params, source, warnings)
    cache = _blob_descriptor_cache(storage.get("cache"), source, warnings)
    read_only = _read_only(storage.get("maintenance"), source, warnings)
    redis = _redis(document, data, env=env, source=source, cache=cache, warnings=warnings)
    if redis is not None:
        secrets = tuple(sorted({*secrets, *redis.secrets}, key=len, reverse=True))
    return RegistryConfig(
        source=source,
        driver="s3" if driver == "s3aws" else driver,
        url=url,
        storage_options=options,
        blob_descriptor_cache=cache,
        read_only=read_only,
        warnings=tuple(warnings),
        secrets=secrets,
        redis=redis,
    )


# -- reading -------------------------------------------------------------------------


def _load_yaml(text: str, where: str) -> object:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        # Never str(e): it quotes the offending line, which may hold a credential.
        mark = e.problem_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        msg = f"{where}: invalid YAML{at}: {e.problem or 'syntax error'}"
        raise ConfigError(msg) from None
    except yaml.YAMLError:
        msg = f"{where}: invalid YAML"
        raise ConfigError(msg) from None


def _storage_from_file(value: object, source: str) -> dict[str, _StrMap]:
    """``storage`` as the registry decodes it: a driver name, or a mapping of mappings."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {value: _StrMap()}
    if not isinstance(value, dict):
        msg = f"{source}: storage must be a mapping (or the name of a driver)"
        raise ConfigError(msg)
    out: dict[str, _StrMap] = {}
    for key, params in value.items():
        if params is None:
            params = {}  # noqa: PLW2901 - a null section is an empty one
        if not isinstance(params, dict):
            msg = f"{source}: storage.{key} must be a mapping"
            raise ConfigError(msg)
        out[str(key)] = _StrMap(params)
    drivers = [k for k in out if k not in _NOT_DRIVERS]
    if len(drivers) > 1:
        msg = f"{source}: must provide exactly one storage type. Provided: {', '.join(drivers)}"
        raise ConfigError(msg)
    return out


def _apply_environment(
    storage: dict[str, _StrMap], env: Mapping[str, str], source: str, warnings: list[str]
) -> dict[str, _StrMap]:
    """Apply ``REGISTRY_STORAGE*`` variables, in sorted order, as the registry does."""
    for name in sorted(env):
        if name != _ENV_PREFIX and not name.startswith(_ENV_PREFIX + "_"):
            continue
        payload = env[name]
        path = name.split("_")[2:]
        if not path:
            storage = _storage_from_env(_env_value(name, payload), name, source)
            continue
        _override(storage, path, payload, name, warnings, depth=1)
    return storage


def _env_value(name: str, payload: str) -> object:
    return _load_yaml(payload, f"environment variable {name}")


def _storage_from_env(value: object, name: str, source: str) -> dict[str, _StrMap]:
    if not isinstance(value, (str, dict)):
        msg = f"environment variable {name} must name a storage driver or be a YAML mapping"
        raise ConfigError(msg)
    return _storage_from_file(value, f"{source} with {name}")


def _override(
    target: dict[str, Any],
    path: list[str],
    payload: str,
    name: str,
    warnings: list[str],
    *,
    depth: int,
) -> None:
    """Set ``path`` (upper-case components) in ``target`` (``overwriteMap`` in Go)."""
    if not isinstance(target, _StrMap) and depth > 1:
        warnings.append(
            f"environment variable {name} is ignored, as the registry ignores it: it sets a key "
            "inside a mapping read from YAML; set the whole mapping instead "
            f"({'_'.join(name.split('_')[:-1])}='{{...}}')"
        )
        return
    head, rest = path[0], path[1:]
    if rest:
        for key in list(target):
            if str(key).upper() == head:
                value = target[key]
                if value is None:
                    break  # recreated below, as Go does for a nil map
                if isinstance(value, dict):
                    _override(value, rest, payload, name, warnings, depth=depth + 1)
                else:
                    warnings.append(
                        f"environment variable {name} is ignored, as the registry ignores it: "
                        f"{key} is not a mapping"
                    )
                return
        created = _StrMap()
        _override(created, rest, payload, name, warnings, depth=depth + 1)
        target[head.lower()] = created
        return
    value = _env_value(name, payload)
    if depth == 1:
        # storage.<key> is a driver's parameters: a mapping whose keys can be overridden.
        if value is not None and not isinstance(value, dict):
            msg = f"environment variable {name} must be a YAML mapping"
            raise ConfigError(msg)
        value = _StrMap(value or {})
    target[head.lower()] = value


def _driver(storage: Mapping[str, Any], source: str) -> str:
    drivers = sorted(k for k in storage if k not in _NOT_DRIVERS)
    if len(drivers) > 1:
        msg = (
            f"{source}: multiple storage drivers specified in configuration or environment: "
            f"{', '.join(drivers)} (the registry refuses to start too)"
        )
        raise ConfigError(msg)
    if not drivers:
        msg = (
            f"{source}: no storage driver configured: the storage section names none of "
            f"{', '.join(SUPPORTED_DRIVERS)}"
        )
        raise ConfigError(msg)
    return drivers[0]


# -- parameters ----------------------------------------------------------------------


def _blob_descriptor_cache(cache: object, source: str, warnings: list[str]) -> str | None:
    if not isinstance(cache, dict):
        return None
    value = cache.get("blobdescriptor")
    if value is None:
        value = cache.get("layerinfo")  # its name before distribution 2.1
    text = "" if value is None else str(value).strip()
    if text and text not in ("inmemory", "redis"):
        warnings.append(
            f"{source}: storage.cache.blobdescriptor is {text!r}, which the registry does not "
            "know (it refuses to start)"
        )
    return text or None


def _redis(
    document: Mapping[str, Any] | str,
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    source: str,
    cache: str | None,
    warnings: list[str],
) -> RedisConfig | None:
    """The ``redis`` section; from text, re-read so that strings keep their text as Go's do."""
    section = data.get("redis")
    if isinstance(document, str) and section is not None:
        raw = load_raw(document)
        section = raw.get("redis") if isinstance(raw, dict) else None
    redis = read_redis_section(section, env, source, warnings)
    if cache == "redis" and redis is None:
        warnings.append(
            f"{source}: storage.cache.blobdescriptor is redis but the redis section names no "
            "address (redis.addr in 2.x, redis.addrs in 3.x): the registry refuses to start"
        )
    return redis


def _read_only(maintenance: object, source: str, warnings: list[str]) -> bool:
    if not isinstance(maintenance, dict):
        return False
    readonly = maintenance.get("readonly")
    if readonly is None:
        return False
    if not isinstance(readonly, dict) or isinstance(readonly, _StrMap):
        # 2.x reads it as map[interface{}]interface{} and panics on anything else,
        # including a mapping built key by key from environment variables.
        warnings.append(
            f"{source}: the registry cannot read storage.maintenance.readonly as set (it "
            "refuses to start): give it as a whole mapping, e.g. "
            "REGISTRY_STORAGE_MAINTENANCE_READONLY='{\"enabled\": true}'"
        )
    enabled = readonly.get("enabled") if isinstance(readonly, dict) else None
    return enabled is True
