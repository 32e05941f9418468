"""The Azure backend's storage options: adlfs's, resolved as adlfs resolves them.

Each option may also come from its ``AZURE_STORAGE_<NAME>`` environment
variable; the credential is the first of: a ``credential`` object, an
account key, a SAS token, a service principal, anonymous access, and
``DefaultAzureCredential``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["IGNORED_OPTIONS", "OPTIONS", "Options", "as_bool", "env"]

_DEFAULT_SUFFIX = "core.windows.net"

#: adlfs options that mean nothing here (caching, file objects, the event loop).
IGNORED_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        "blocksize",
        "default_fill_cache",
        "default_cache_type",
        "version_aware",
        "assume_container_exists",
        "max_concurrency",
        "socket_timeout",
        "location_mode",
        "request_session",
    }
)
OPTIONS = frozenset(
    {
        "account_name",
        "account_key",
        "connection_string",
        "sas_token",
        "credential",
        "client_id",
        "client_secret",
        "tenant_id",
        "anon",
        "account_host",
        "account_url",
        "endpoint_url",
        "retries",
        "timeout",
    }
)
_TRUE = frozenset({True, "1", "true", "True", "TRUE", "t", "yes"})


def env(name: str) -> str | None:
    """The environment variable ``name``, ``None`` when unset or empty."""
    return os.environ.get(name) or None


def as_bool(value: object) -> bool:
    """Whether an option's value means true, as adlfs reads it."""
    return value in _TRUE


@attrs.frozen
class Options:
    """The storage options of one backend (``where`` names it in messages)."""

    values: Mapping[str, Any]
    where: str

    def get(self, name: str) -> str | None:
        """An option, or its ``AZURE_STORAGE_<NAME>`` environment variable (as adlfs reads them)."""
        value = self.values.get(name)
        if value is None or value == "":
            return env(f"AZURE_STORAGE_{name.upper()}")
        return str(value)

    def account_url(self, account: str | None) -> str:
        """The service URL: ``account_url`` (or ``endpoint_url``), ``account_host``, or Azure's."""
        url = self.values.get("account_url") or self.values.get("endpoint_url")
        if url:
            return str(url).rstrip("/")
        host = self.values.get("account_host")
        if host:
            return f"https://{host}"
        if not account:
            raise ConfigError(
                f"no Azure storage account for {self.where}: set account_name (or "
                "AZURE_STORAGE_ACCOUNT_NAME), a connection_string or an account_url"
            )
        return f"https://{account}.blob.{_DEFAULT_SUFFIX}"

    def credential(self, account: str | None) -> tuple[Any, bool]:
        """The credential as adlfs picks it, and whether it must be closed by us."""
        given = self.values.get("credential")
        if given is not None:
            return given, False
        key = self.get("account_key")
        if key:
            from azure.core.credentials import AzureNamedKeyCredential  # noqa: PLC0415

            if not account:
                raise ConfigError(f"an account_key needs an account_name ({self.where})")
            return AzureNamedKeyCredential(account, str(key)), False
        sas = self.get("sas_token")
        if sas:
            from azure.core.credentials import AzureSasCredential  # noqa: PLC0415

            return AzureSasCredential(str(sas).lstrip("?")), False
        client_id = self.get("client_id")
        if client_id:
            from azure.identity.aio import ClientSecretCredential  # noqa: PLC0415

            credential = ClientSecretCredential(
                tenant_id=str(self.get("tenant_id") or ""),
                client_id=str(client_id),
                client_secret=str(self.get("client_secret") or ""),
            )
            return credential, True
        anon = self.values.get("anon")
        if anon is None:
            anon = as_bool(env("AZURE_STORAGE_ANON") or "false")
        if as_bool(anon):
            return None, False
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

        return DefaultAzureCredential(), True
