"""Where the store is, as workers open it: a URL and options that hold no credential.

A distributed run never sends a credential to a worker. The task graph, which
the scheduler keeps, logs and may show on its dashboard, carries a
:class:`StorageSpec` — the URL and the options that say *where* the store is
(``endpoint_url``, a region, addressing style) — and each worker opens the
store with the credentials of its own environment: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a profile, an instance or workload role,
``GOOGLE_APPLICATION_CREDENTIALS``, Azure's ``DefaultAzureCredential``.

An option whose name says it is a credential (``key``, ``secret``, ``token``,
``password``, ``account_key``, a connection string …), at any depth of the
options (``client_kwargs``, ``config_kwargs``), is refused with
:class:`~registry_gc.ConfigError`, naming the option and never its value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError
from ..backends import open_backend

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..backends import Backend

__all__ = ["StorageSpec", "check_no_credentials", "credential_options", "without_credentials"]

#: Option names that are credentials, whole.
_SECRET_NAMES = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "account_key",
        "sas_token",
        "credential",
        "credentials",
        "connection_string",
        "client_secret",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "refresh_token",
        "private_key",
        "private_key_id",
    }
)
#: Parts of option names that make them credentials (``azure_storage_key``, ``sas``…).
_SECRET_PARTS = re.compile(r"secret|password|passwd|token|credential|private_key|account_key|sas")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or bool(_SECRET_PARTS.search(lowered))


def credential_options(options: Mapping[str, Any], where: str = "") -> list[str]:
    """The dotted names of every option in ``options`` that is a credential (values unread)."""
    found: list[str] = []
    for name, value in options.items():
        dotted = f"{where}{name}"
        if _is_secret(str(name)):
            found.append(dotted)
        elif isinstance(value, dict):
            found.extend(credential_options(value, f"{dotted}."))
    return found


def without_credentials(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the credentials (:func:`credential_options`), at any depth."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if _is_secret(str(name)):
            continue
        out[name] = without_credentials(value) if isinstance(value, dict) else value
    return out


def check_no_credentials(options: Mapping[str, Any]) -> None:
    """Refuse, naming them, options that are credentials (:class:`~registry_gc.ConfigError`)."""
    found = credential_options(options)
    if found:
        msg = (
            f"a distributed run never sends credentials to its workers, and these storage options "
            f"are credentials: {', '.join(found)}. Give the workers credentials in their own "
            "environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance "
            "or workload role; GOOGLE_APPLICATION_CREDENTIALS; Azure's environment credentials) "
            "and leave them out of the options"
        )
        raise ConfigError(msg)


@attrs.frozen
class StorageSpec:
    """A store as a worker opens it: ``url`` and ``options`` that hold no credential.

    >>> StorageSpec("s3://registry/prod", {"endpoint_url": "http://minio:9000"}).url
    's3://registry/prod'
    """

    url: str
    options: dict[str, Any] = attrs.field(factory=dict, converter=dict, repr=False)
    #: the tasks run in this process only (:class:`~registry_gc.distributed.InProcessExecutor`):
    #: the options may hold credentials, as for a run without a cluster
    local: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not self.local:
            check_no_credentials(self.options)

    def open(self, *, read_only: bool) -> Backend:
        """The backend, with the credentials of this process's environment."""
        return open_backend(self.url, self.options, read_only=read_only)
