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

__all__ = ["Target", "split_operands", "storage_option", "target_of"]

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
