"""The storage section of a registry's configuration, per driver: a URL and storage options.

``filesystem`` → a path, ``s3`` → ``s3://bucket/prefix``, ``gcs`` →
``gs://bucket/prefix``, ``azure`` → ``az://container/prefix``, with the
parameters each driver of distribution takes turned into the options of
registry-gc's backend for it. Used by :mod:`registry_gc.config`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from ._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SUPPORTED_DRIVERS", "secrets_of", "storage_location"]

#: Storage drivers registry-gc can reach, by the name the configuration uses.
SUPPORTED_DRIVERS: Final = ("filesystem", "s3", "gcs", "azure")

log = logging.getLogger(__name__)

_DEFAULT_FILESYSTEM_ROOT: Final = "/var/lib/registry"
# Parameters whose values are credentials; their values are redacted everywhere.
_SECRET_PARAMETERS: Final = frozenset(
    {"accesskey", "secretkey", "sessiontoken", "accountkey", "secret", "clientsecret"}
)
_SECRET_CREDENTIAL_FIELDS: Final = frozenset(
    {"private_key", "private_key_id", "secret", "client_secret", "accountkey", "refresh_token"}
)
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _param_str(params: Mapping[str, Any], key: str) -> str:
    """A parameter as Go's ``fmt.Sprint`` prints it; ``""`` when absent."""
    value = params.get(key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _param_bool(
    params: Mapping[str, Any], key: str, default: bool | None, where: str
) -> bool | None:
    """A boolean parameter as drivers read it: a bool, or a string ``strconv.ParseBool`` takes."""
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    msg = f"{where}.{key} must be a boolean (true or false)"
    raise ConfigError(msg)


def secrets_of(params: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []

    def add(value: object) -> None:
        text = str(value) if value is not None else ""
        if len(text) >= 4:
            found.append(text)

    for key, value in params.items():
        if str(key).lower() in _SECRET_PARAMETERS:
            add(value)
        elif isinstance(value, dict):
            for inner_key, inner in value.items():
                if str(inner_key).lower() in _SECRET_CREDENTIAL_FIELDS:
                    add(inner)
    # Longest first, so that a secret containing another is replaced whole.
    return tuple(sorted(set(found), key=len, reverse=True))


def storage_location(
    driver: str, params: Mapping[str, Any], source: str, warnings: list[str]
) -> tuple[str, dict[str, Any]]:
    where = f"{source}: storage.{driver}"
    if driver == "filesystem":
        root = _param_str(params, "rootdirectory") or _DEFAULT_FILESYSTEM_ROOT
        return root, {}
    if driver in ("s3", "s3aws"):
        return _s3(params, where, warnings)
    if driver == "gcs":
        return _gcs(params, where)
    if driver == "azure":
        return _azure(params, where, warnings)
    if driver == "inmemory":
        msg = (
            f"{source}: storage driver inmemory keeps images in the registry process's memory: "
            "there is no storage for registry-gc to collect (restarting the registry empties it)"
        )
        raise ConfigError(msg)
    msg = (
        f"{source}: storage driver {driver!r} is not supported by registry-gc (supported: "
        f"{', '.join(SUPPORTED_DRIVERS)}); if an fsspec filesystem reaches that storage, give "
        "its URL as ROOT with -o options instead of --config"
    )
    raise ConfigError(msg)


def _prefix(params: Mapping[str, Any]) -> str:
    return _param_str(params, "rootdirectory").strip("/")


def _required(params: Mapping[str, Any], key: str, where: str, why: str = "") -> str:
    value = _param_str(params, key)
    if not value:
        msg = f"{where}.{key} is not set{why}"
        raise ConfigError(msg)
    return value


def _s3(params: Mapping[str, Any], where: str, warnings: list[str]) -> tuple[str, dict[str, Any]]:
    bucket = _required(params, "bucket", where)
    region = _required(params, "region", where, " (the registry refuses to start without it)")
    endpoint = _param_str(params, "regionendpoint")
    secure = _param_bool(params, "secure", default=True, where=where)
    skip_verify = _param_bool(params, "skipverify", default=False, where=where)
    path_style = _param_bool(params, "forcepathstyle", default=None, where=where)
    accelerate = _param_bool(params, "accelerate", default=False, where=where)
    dual_stack = _param_bool(params, "usedualstack", default=False, where=where)
    if _param_bool(params, "v4auth", default=True, where=where) is False:
        warnings.append(
            f"{where}.v4auth is false (signature version 2): registry-gc always signs "
            "requests with version 4"
        )
    options: dict[str, Any] = {}
    for param, option in (("accesskey", "key"), ("secretkey", "secret"), ("sessiontoken", "token")):
        value = _param_str(params, param)
        if value:
            options[option] = value
    client: dict[str, Any] = {"region_name": region}
    if endpoint:
        if "://" not in endpoint:
            endpoint = ("https://" if secure else "http://") + endpoint
        options["endpoint_url"] = endpoint
    elif not secure:
        options["use_ssl"] = False
    if skip_verify:
        client["verify"] = False
    options["client_kwargs"] = client
    s3 = _s3_config(
        path_style=path_style,
        endpoint=bool(endpoint),
        accelerate=accelerate,
        dual_stack=dual_stack,
    )
    if s3:
        options["config_kwargs"] = {"s3": s3}
    prefix = _prefix(params)
    return (f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"), options


def _s3_config(
    *, path_style: bool | None, endpoint: bool, accelerate: bool | None, dual_stack: bool | None
) -> dict[str, Any]:
    """The ``s3`` configuration of botocore for the addressing and endpoint parameters."""
    s3: dict[str, Any] = {}
    # distribution 2.x forces path-style addressing whenever regionendpoint is
    # set (forcepathstyle defaults to true and only applies then); 3.x honours
    # forcepathstyle everywhere. Path style reaches the same bucket on every
    # S3-compatible server, so it is the default for a custom endpoint.
    if path_style is True or (path_style is None and endpoint):
        s3["addressing_style"] = "path"
    elif path_style is False:
        s3["addressing_style"] = "virtual"
    if accelerate:
        s3["use_accelerate_endpoint"] = True
    if dual_stack:
        s3["use_dualstack_endpoint"] = True
    return s3


def _gcs(params: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    bucket = _required(params, "bucket", where)
    options: dict[str, Any] = {}
    keyfile = _param_str(params, "keyfile")
    credentials = params.get("credentials")
    if keyfile:
        options["token"] = keyfile
    elif isinstance(credentials, dict):
        options["token"] = {str(k): v for k, v in credentials.items()}
    elif credentials is not None:
        msg = f"{where}.credentials must be a mapping (a service account key)"
        raise ConfigError(msg)
    prefix = _prefix(params)
    return (f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"), options


def _azure_credentials(
    params: Mapping[str, Any], credentials: Mapping[str, Any], where: str, warnings: list[str]
) -> tuple[dict[str, Any], str]:
    """The options ``credentials.type`` gives (an account key among them), and the account."""
    account = _param_str(params, "accountname")
    key = _param_str(params, "accountkey")
    options: dict[str, Any] = {}
    kind = _param_str(credentials, "type")
    if kind == "client_secret":
        options["client_id"] = _param_str(credentials, "clientid")
        options["tenant_id"] = _param_str(credentials, "tenantid")
        options["client_secret"] = _param_str(credentials, "secret")
    elif kind in ("default_credentials", "default"):
        options["anon"] = False  # DefaultAzureCredential: workload or managed identity, az login
        if kind == "default":
            warnings.append(
                f"{where}.credentials.type is 'default', which distribution refuses "
                "('invalid credentials type'): it is spelled default_credentials"
            )
    elif kind == "shared_key":
        account = _param_str(credentials, "accountname") or account
        key = _param_str(credentials, "accountkey") or key
    elif kind:
        msg = (
            f"{where}.credentials.type {kind!r} is not one of client_secret, shared_key, "
            "default_credentials"
        )
        raise ConfigError(msg)
    if key and kind in ("", "shared_key"):
        options["account_key"] = key
    return options, account


def _azure_legacy_prefix(params: Mapping[str, Any], where: str, *, has_credentials: bool) -> bool:
    """Whether blob names start with ``/`` (2.x, GitLab's fork unless told otherwise)."""
    trim = _param_bool(params, "trimlegacyrootprefix", default=None, where=where)
    keep = _param_bool(params, "legacyrootprefix", default=None, where=where)
    if trim is True or keep is False:
        return False
    return keep is True or not has_credentials


def _azure(
    params: Mapping[str, Any], where: str, warnings: list[str]
) -> tuple[str, dict[str, Any]]:
    """The azure driver's parameters (2.x, 3.x and GitLab's) as :class:`AzureBackend` options.

    distribution 3.x requires ``credentials.type`` (``shared_key``,
    ``client_secret`` or ``default_credentials``) and names blobs
    ``<rootdirectory>/docker/…``; 2.x has no ``credentials``, no
    ``rootdirectory``, and names blobs ``/docker/…`` (a leading slash, which
    GitLab's fork keeps unless ``trimlegacyrootprefix: true``). So a
    configuration without ``credentials`` is read with that ``/`` prefix.
    """
    container = _required(params, "container", where)
    credentials = params.get("credentials")
    if credentials is not None and not isinstance(credentials, dict):
        msg = f"{where}.credentials must be a mapping with a type"
        raise ConfigError(msg)
    options, account = _azure_credentials(params, credentials or {}, where, warnings)
    if not account:
        msg = f"{where}.accountname is not set"
        raise ConfigError(msg)
    options["account_name"] = account
    service_url = _param_str(params, "serviceurl")
    realm = _param_str(params, "realm") or "core.windows.net"
    if service_url:
        options["account_url"] = service_url.rstrip("/")
    elif realm != "core.windows.net":
        options["account_url"] = f"https://{account}.blob.{realm}"
    prefix = _prefix(params)
    if _azure_legacy_prefix(params, where, has_credentials=credentials is not None):
        log.info(
            "%s has no credentials section (distribution 2.x): its blob names start with '/'",
            where,
        )
        # az://container//prefix: the key prefix is "/" (+ prefix).
        return f"az://{container}//{prefix}", options
    return (f"az://{container}/{prefix}" if prefix else f"az://{container}"), options


# -- what the sweep must know ----------------------------------------------------------
