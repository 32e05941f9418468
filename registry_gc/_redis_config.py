"""The top-level ``redis`` section of a registry's configuration, read as distribution reads it.

The registry connects to redis for its blob-descriptor cache
(``storage.cache.blobdescriptor: redis``). The section has two spellings:

- distribution 2.x (``configuration.go``, a struct of its own): ``addr``
  (``host:port``), ``password``, ``db``, ``dialtimeout``, ``readtimeout``,
  ``writetimeout`` and ``pool`` (``maxidle``, ``maxactive``, ``idletimeout``);
  no TLS, no user name. An empty ``addr`` means redis is not configured.
- distribution 3.x: go-redis' ``UniversalOptions`` inline — ``addrs`` (a
  list), ``username``, ``password``, ``db``, ``mastername`` with
  ``sentinelusername``/``sentinelpassword`` (sentinel), the same timeouts,
  pool sizes — and ``tls`` (``certificate``, ``key``, and the CA files:
  ``rootcas`` since 3.1, ``clientcas`` in 3.0.0). No ``addrs`` means redis is
  not configured. As go-redis' ``NewUniversalClient`` decides: a master name
  means sentinel, two addresses or more a cluster, one a single server.

One file may be read by either version, so both spellings are read; when
``addr`` and ``addrs`` disagree, ``addrs`` wins and a warning says so.

``REGISTRY_REDIS_*`` environment variables override the file as the
registry's ``configuration/parser.go`` applies them to a struct: in sorted
order, the name after ``REGISTRY_REDIS_`` split on ``_`` and matched,
case-insensitively, against the field names (which here are the YAML keys);
the value parsed as YAML. ``REGISTRY_REDIS`` alone replaces the whole
section. Unlike a storage driver's parameters, ``tls`` and ``pool`` are
structs, so their keys can be overridden one by one
(``REGISTRY_REDIS_TLS_CERTIFICATE``); 3.1 also takes a list element by index
(``REGISTRY_REDIS_ADDRS_0``).

Strings are taken as the registry's YAML library takes them into a string
field: a plain scalar keeps its text (``password: 0123`` is ``"0123"``, not
83; ``yes`` is ``"yes"``), ``~`` and ``null`` are empty. Problems the
registry would refuse, or that leave redis unusable, become warnings here:
only a run that needs the cache fails on them (:func:`registry_gc.cache.descriptor_cache`).

Credentials (``password``, ``sentinelpassword``, and the user names) are
never in ``repr``, :meth:`RedisConfig.to_dict`, :meth:`RedisConfig.describe`
or a message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import attrs
import yaml

from ._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["RedisConfig", "RedisTLS", "read_redis_section", "redis_secrets"]

_ENV: Final = "REGISTRY_REDIS"
# Fields that are structs in distribution: their keys can be overridden one by one.
_STRUCTS: Final = frozenset({"tls", "pool"})
# Fields that are lists in distribution 3.x: 3.1 sets their elements by index.
_LISTS: Final = frozenset({"addrs", "rootcas", "clientcas"})
# Go's time.ParseDuration units, in seconds.
_GO_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,  # Go accepts U+03BC too
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION: Final = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_PORT_MAX: Final = 65535


class _RawLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML whose plain booleans, numbers and timestamps stay their text (nulls stay null)."""


def _scalar_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


for _tag in ("bool", "int", "float", "timestamp"):
    _RawLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar_text)


def load_raw(text: str) -> object:
    """``text`` as YAML, scalars as a Go string field would take them (see the module doc)."""
    return yaml.load(text, Loader=_RawLoader)  # noqa: S506 - a SafeLoader subclass


@attrs.frozen
class RedisTLS:
    """The ``redis.tls`` section (distribution 3.x): client certificate and CA files."""

    #: Path of the client certificate (PEM), or None.
    certificate: str | None = None
    #: Path of the client certificate's private key (PEM), or None.
    key: str | None = None
    #: CA files that verify the server (``rootcas``; ``clientcas`` in 3.0.0).
    root_cas: tuple[str, ...] = ()


@attrs.frozen
class RedisConfig:
    """How the registry reaches its redis: the ``redis`` section of its configuration.

    >>> cfg = RedisConfig(addresses=("cache:6379",), db=1, password="s3cret")
    >>> cfg
    RedisConfig(addresses=('cache:6379',), db=1, master_name=None, tls=None, dial_timeout=None, read_timeout=None, write_timeout=None)
    >>> cfg.describe()
    'redis cache:6379 db 1 (with a password)'
    """  # noqa: E501 - a repr is one line

    #: ``host:port`` of the server, the cluster's seed nodes, or the sentinels.
    addresses: tuple[str, ...]
    #: The database number (single server and sentinel; a cluster has only 0).
    db: int = 0
    #: The ACL user name (3.x), or None. Not in ``repr``.
    username: str | None = attrs.field(default=None, repr=False)
    #: The password, or None. Not in ``repr``.
    password: str | None = attrs.field(default=None, repr=False)
    #: The sentinel master name (3.x ``mastername``): the addresses are sentinels.
    master_name: str | None = None
    #: The sentinels' own user name (3.x), or None. Not in ``repr``.
    sentinel_username: str | None = attrs.field(default=None, repr=False)
    #: The sentinels' own password (3.x), or None. Not in ``repr``.
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    #: TLS settings (3.x), or None for plain TCP.
    tls: RedisTLS | None = None
    #: Seconds to connect (``dialtimeout``), or None for the client's default.
    dial_timeout: float | None = None
    #: Seconds to wait for a reply (``readtimeout``), or None for the client's default.
    read_timeout: float | None = None
    #: Seconds to send a command (``writetimeout``), or None for the client's default.
    write_timeout: float | None = None

    @property
    def mode(self) -> str:
        """``sentinel`` (a master name), ``cluster`` (several addresses) or ``single``."""
        if self.master_name:
            return "sentinel"
        return "cluster" if len(self.addresses) > 1 else "single"

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """The addresses as ``(host, port)`` pairs.

        Raises:
            ConfigError: an address is not ``host:port``.
        """
        return tuple(_endpoint(address) for address in self.addresses)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential values, longest first, for redaction."""
        return redis_secrets(self.password, self.sentinel_password)

    def describe(self) -> str:
        """One line for messages, without credentials."""
        where = ", ".join(self.addresses)
        if self.mode == "sentinel":
            text = f"redis sentinel master {self.master_name} via {where} db {self.db}"
        elif self.mode == "cluster":
            text = f"redis cluster {where}"
        else:
            text = f"redis {where} db {self.db}"
        extras = []
        if self.tls is not None:
            extras.append("TLS")
        if self.password:
            extras.append("with a password")
        return f"{text} ({', '.join(extras)})" if extras else text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, without credentials."""
        return {
            "mode": self.mode,
            "addresses": list(self.addresses),
            "db": self.db,
            "master_name": self.master_name,
            "tls": self.tls is not None,
            "password": bool(self.password),
        }


def redis_secrets(*values: str | None) -> tuple[str, ...]:
    """Credential values to redact, longest first (so that one inside another goes whole).

    As for the storage's credentials, values shorter than 4 characters are left
    out: replacing every ``a`` in a message would hide more than it protects.
    """
    return tuple(sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True))


def _endpoint(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= _PORT_MAX:
        msg = f"redis address {address!r} is not host:port"
        raise ConfigError(msg)
    return host, int(port)


# -- reading -------------------------------------------------------------------------


def read_redis_section(
    section: object, env: Mapping[str, str], source: str, warnings: list[str]
) -> RedisConfig | None:
    """The ``redis`` section (as loaded by :func:`load_raw`) with ``env`` applied.

    None when it names no address (the registry then has no redis). Anything the
    registry would refuse or that cannot be used is appended to ``warnings``.
    """
    where = f"{source}: redis"
    fields = _as_fields(section, where, warnings)
    fields = _apply_environment(fields, env, warnings)
    if fields is None:
        return None
    addresses = _addresses(fields, where, warnings)
    if not addresses:
        return None
    db = _int(fields.get("db"), f"{where}.db", warnings)
    return RedisConfig(
        addresses=addresses,
        db=db,
        username=_str(fields.get("username")),
        password=_str(fields.get("password")),
        master_name=_str(fields.get("mastername")),
        sentinel_username=_str(fields.get("sentinelusername")),
        sentinel_password=_str(fields.get("sentinelpassword")),
        tls=_tls(fields.get("tls"), f"{where}.tls", warnings),
        dial_timeout=_duration(fields.get("dialtimeout"), f"{where}.dialtimeout", warnings),
        read_timeout=_duration(fields.get("readtimeout"), f"{where}.readtimeout", warnings),
        write_timeout=_duration(fields.get("writetimeout"), f"{where}.writetimeout", warnings),
    )


def _as_fields(value: object, where: str, warnings: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        warnings.append(f"{where} must be a mapping (the registry refuses to start)")
        return None
    # yaml.v2 matches keys case-sensitively: only the lower-case spelling is a field.
    return {k: v for k, v in value.items() if isinstance(k, str)}


def _apply_environment(
    fields: dict[str, Any] | None, env: Mapping[str, str], warnings: list[str]
) -> dict[str, Any] | None:
    for name in sorted(env):
        if name != _ENV and not name.startswith(_ENV + "_"):
            continue
        value = _env_value(name, env[name], warnings)
        if value is _INVALID:
            continue
        path = name.split("_")[2:]
        if not path:
            if value is not None and not isinstance(value, dict):
                warnings.append(
                    f"environment variable {name} must be a YAML mapping (the registry "
                    "refuses to start)"
                )
                continue
            fields = dict(value or {})
            continue
        fields = {} if fields is None else fields
        _override(fields, path, value, name, warnings)
    return fields


_INVALID: Final = object()


def _env_value(name: str, payload: str, warnings: list[str]) -> object:
    try:
        return load_raw(payload)
    except yaml.YAMLError:
        # Never the payload itself: it may be a password.
        warnings.append(
            f"environment variable {name} is not valid YAML (the registry refuses to start)"
        )
        return _INVALID


def _override(
    target: dict[str, Any], path: list[str], value: object, name: str, warnings: list[str]
) -> None:
    """Set ``path`` in ``target`` as ``overwriteStruct`` does (fields matched upper-cased)."""
    head, rest = path[0], path[1:]
    # Go matches field names upper-cased; here each field's name is its YAML key.
    key = head.lower()
    if not rest:
        target[key] = value
        return
    current = target.get(key)
    if current is None and key in _LISTS:
        current = target[key] = []
    if isinstance(current, list) and len(rest) == 1 and rest[0].isdigit():
        # distribution 3.1: a list element by index; one past the end appends.
        index = int(rest[0])
        if index > len(current):
            warnings.append(
                f"environment variable {name}: index {index} is past the end of {key} (the "
                "registry refuses to start)"
            )
        elif index == len(current):
            current.append(value)
        else:
            current[index] = value
        return
    if key.lower() not in _STRUCTS and not isinstance(current, dict):
        # Not a struct: the registry ignores it ("unrecognized environment variable").
        return
    if not isinstance(current, dict):
        current = {}
        target[key] = current
    _override(current, rest, value, name, warnings)


def _str(value: object) -> str | None:
    """A string field as Go's YAML decoding leaves it; empty means unset."""
    if value is None or isinstance(value, (dict, list)):
        return None
    # A bool comes from an already parsed mapping: Go would have kept its text.
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text or None


def _addresses(fields: Mapping[str, Any], where: str, warnings: list[str]) -> tuple[str, ...]:
    addr = _str(fields.get("addr"))
    raw = fields.get("addrs")
    addrs: tuple[str, ...] = ()
    if isinstance(raw, list):
        addrs = tuple(a for a in (_str(item) for item in raw) if a)
    elif raw is not None:
        warnings.append(
            f"{where}.addrs must be a list of host:port (the registry refuses to start); "
            "reading it as one address"
        )
        addrs = (a,) if (a := _str(raw)) else ()
    if addr and addrs and addrs != (addr,):
        warnings.append(
            f"{where}.addr ({addr}, read by distribution 2.x) and {where}.addrs "
            f"({', '.join(addrs)}, read by 3.x) differ: registry-gc uses addrs"
        )
    found = addrs or ((addr,) if addr else ())
    for address in found:
        try:
            _endpoint(address)
        except ConfigError as e:
            warnings.append(f"{where}: {e}")
    return found


def _int(value: object, where: str, warnings: list[str]) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    parsed = yaml.safe_load(value) if isinstance(value, str) else None
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        return parsed
    warnings.append(f"{where} must be an integer (the registry refuses to start); using 0")
    return 0


def _duration(value: object, where: str, warnings: list[str]) -> float | None:
    """Seconds, from a Go duration (``500ms``, ``1m30s``) or an integer of nanoseconds."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        seconds: float | None = int(text) * 1e-9  # yaml.v2 decodes an integer as nanoseconds
    else:
        seconds = _go_duration(text)
    if seconds is None:
        warnings.append(
            f"{where}: {text[:40]!r} is not a duration such as 500ms or 5s (the registry "
            "refuses to start)"
        )
        return None
    # Zero is the client's default; go-redis reads a negative timeout as none at all,
    # which a run never wants (it would wait forever on a dead server).
    return seconds if seconds > 0 else None


def _go_duration(text: str) -> float | None:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _GO_DURATION.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return sign * total if body else None


def _tls(value: object, where: str, warnings: list[str]) -> RedisTLS | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        warnings.append(f"{where} must be a mapping (the registry refuses to start)")
        return None
    cas: list[str] = []
    for key in ("rootcas", "clientcas"):
        listed = value.get(key)
        if isinstance(listed, list):
            cas.extend(c for c in (_str(item) for item in listed) if c)
        elif listed is not None:
            warnings.append(f"{where}.{key} must be a list of files")
    tls = RedisTLS(
        certificate=_str(value.get("certificate")),
        key=_str(value.get("key")),
        root_cas=tuple(dict.fromkeys(cas)),
    )
    # As distribution 3.x: TLS only when something is set.
    if tls == RedisTLS():
        return None
    if (tls.certificate is None) != (tls.key is None):
        warnings.append(
            f"{where}: certificate and key go together; with only one, the registry "
            "connects without a client certificate"
        )
    return tls
