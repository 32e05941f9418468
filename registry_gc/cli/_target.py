"""Where the storage is: ``ROOT``, ``--config`` or the registry's default configuration."""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError
from ..backends import open_backend
from ..config import CONFIG_PATH_ENV, RegistryConfig, find_default_config, load_registry_config

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..backends import Backend
    from ..cache import DescriptorCache

__all__ = ["Target", "live_cache", "split_operands", "storage_option", "target_of"]

log = logging.getLogger("registry_gc")

# Storage options whose values are credentials: never echoed.
_SECRET_OPTIONS = frozenset(
    {"key", "secret", "token", "password", "account_key", "client_secret", "sas_token"}
)


def storage_option(text: str) -> tuple[str, Any]:
    """``-o KEY=VALUE``: VALUE is JSON when it parses as JSON, else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"invalid storage option {text!r}: use KEY=VALUE (VALUE may be JSON)"
        raise argparse.ArgumentTypeError(msg)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@attrs.frozen
class Target:
    """The storage a command works on, and how to hide its credentials."""

    url: str
    options: dict[str, Any] = attrs.field(repr=False)
    config: RegistryConfig | None = None

    def redact(self, text: str) -> str:
        """``text`` with every credential of the storage replaced by ``***``."""
        if self.config is not None:
            text = self.config.redact(text)
        for key, value in self.options.items():
            if key in _SECRET_OPTIONS and isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "***")
        return text

    def open(self) -> Backend:
        """The backend of the storage."""
        return open_backend(self.url, self.options)


def _looks_like_root(text: str) -> bool:
    # Image names never start with '/', '.' or '~' and never contain '://'.
    return (
        "://" in text
        or text.startswith(("/", ".", "~"))
        or os.path.isdir(text)
        or os.path.isfile(text)
    )


def split_operands(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """``[ROOT] NAME…``: the first operand is ROOT unless the storage comes from a config."""
    operands: list[str] = list(args.operands)
    if args.config:
        return None, operands
    if operands and _looks_like_root(operands[0]):
        return operands[0], operands[1:]
    if find_default_config() is not None:
        return None, operands
    if operands:
        return operands[0], operands[1:]
    return None, []


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``; mappings (``client_kwargs``, …) are merged too."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def target_of(args: argparse.Namespace, root: str | None) -> Target:
    """The storage ``args`` name: ``ROOT``, ``--config``, or the default configuration."""
    config_path: str | None = args.config
    if root and config_path:
        msg = f"give ROOT ({root}) or --config ({config_path}), not both"
        raise ConfigError(msg)
    if root and os.path.isfile(root):
        # `registry garbage-collect CONFIG`: a file is a configuration, never a root.
        log.info("%s is a file: reading it as the registry's configuration", root)
        config_path, root = root, None
    if not root and not config_path:
        found = find_default_config()
        if found is None:
            msg = (
                f"no ROOT given, no --config, and no default configuration file "
                f"(${CONFIG_PATH_ENV}, /etc/distribution/config.yml or "
                "/etc/docker/registry/config.yml): say where the registry's storage is"
            )
            raise ConfigError(msg)
        config_path = str(found)
        log.info("using the registry's configuration %s", config_path)
    overrides: dict[str, Any] = dict(args.storage_options)
    if args.endpoint_url:
        overrides["endpoint_url"] = args.endpoint_url
    if config_path:
        cfg = load_registry_config(config_path)
        for warning in cfg.warnings:
            log.warning("%s", cfg.redact(warning))
        log.info("storage: %s", cfg.describe())
        return Target(cfg.url, _merged(cfg.storage_options, overrides), cfg)
    assert root is not None
    return Target(root, overrides)


def _check_live_flags(args: argparse.Namespace, target: Target) -> bool:
    """Refuse live mode's flags that contradict each other; whether the run is live (not dry)."""
    live = bool(getattr(args, "live", False))
    flags = {"--settle": args.settle, "--cache": args.cache, "--redis-url": args.redis_url}
    given = [flag for flag, value in flags.items() if value is not None]
    if given and not live:
        msg = f"{', '.join(given)} only mean something with --live"
        raise ConfigError(msg)
    choice, url, config = args.cache, args.redis_url, target.config
    if url is not None and choice not in (None, "redis"):
        msg = f"--redis-url names a redis cache, but --cache says {choice}"
        raise ConfigError(msg)
    if choice == "redis" and url is None and (config is None or config.redis is None):
        msg = "--cache redis needs --redis-url, or a --config whose redis section names the server"
        raise ConfigError(msg)
    return live and not getattr(args, "dry_run", False)


def live_cache(args: argparse.Namespace, target: Target) -> DescriptorCache | None:
    """The registry's blob-descriptor cache for ``--live``: ``None`` when nobody says.

    ``--redis-url`` and ``--cache`` say it; else the configuration does. Without
    either the cache is unknown, and the run keeps its quarantine.
    """
    from ..cache import (  # noqa: PLC0415 - the redis client loads only for live runs
        InMemoryCache,
        NoCache,
        RedisDescriptorCache,
        descriptor_cache,
    )

    if not _check_live_flags(args, target):
        return None
    config = target.config
    if args.cache in ("none", "inmemory"):
        source = config.source if config is not None else "--cache inmemory"
        return NoCache() if args.cache == "none" else InMemoryCache(source)
    if args.redis_url is not None:
        return RedisDescriptorCache.from_url(args.redis_url)
    if args.cache == "redis":
        assert config is not None
        assert config.redis is not None
        return RedisDescriptorCache.from_config(config.redis)
    if config is not None:
        return descriptor_cache(config)
    log.warning(
        "--live without --config or --cache: the registry's blob-descriptor cache is unknown, "
        "so the quarantine is kept rather than purged (say --cache none, or give --config)"
    )
    return None
