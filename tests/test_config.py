"""The registry's configuration: config.yml + REGISTRY_STORAGE_* → where the storage is.

Overrides follow distribution's ``configuration/parser.go``; the two quirks
pinned here (a nested mapping read from the file cannot be overridden key by
key; a second driver from the environment is refused) were checked against
the real ``docker-registry`` 2.8.2 binary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml
from registry_gc import ConfigError
from registry_gc import config as config_module
from registry_gc.config import (
    CONFIG_PATH_ENV,
    find_default_config,
    load_registry_config,
    parse_registry_config,
)

if TYPE_CHECKING:
    from pathlib import Path

ACCESS = "AKIAEXAMPLEACCESS"
SECRET = "wJalrXUtnFEMI-very-secret-KEY"

#: What Debian's docker-registry package ships as /etc/docker/registry/config.yml.
DEBIAN_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
"""


def s3_config(**overrides: object) -> dict:
    """An S3 configuration as the test rig's registry writes it."""
    s3 = {
        "accesskey": ACCESS,
        "secretkey": SECRET,
        "region": "us-east-1",
        "regionendpoint": "http://127.0.0.1:8333",
        "bucket": "images",
        "rootdirectory": "/reg",
        "secure": False,
        "v4auth": True,
    }
    s3.update(overrides)
    return {
        "version": 0.1,
        "storage": {
            "s3": s3,
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": False}},
        },
    }


# -- filesystem --------------------------------------------------------------------------


def test_filesystem_rootdirectory_is_the_root() -> None:
    """storage.filesystem.rootdirectory is the backend path, with no options."""
    cfg = parse_registry_config(DEBIAN_CONFIG, env={})
    assert (cfg.driver, cfg.url, dict(cfg.storage_options)) == (
        "filesystem",
        "/var/lib/docker-registry",
        {},
    )


@pytest.mark.parametrize("storage", ["filesystem", {"filesystem": None}, {"filesystem": {}}])
def test_filesystem_without_rootdirectory_uses_the_registry_default(storage: object) -> None:
    """A filesystem driver without parameters stores under /var/lib/registry, as distribution."""
    assert parse_registry_config({"storage": storage}, env={}).url == "/var/lib/registry"


def test_load_reads_a_file(tmp_path: Path) -> None:
    """load_registry_config reads the YAML file and names it as the source."""
    path = tmp_path / "config.yml"
    path.write_text(DEBIAN_CONFIG)
    cfg = load_registry_config(path, env={})
    assert (cfg.source, cfg.url) == (str(path), "/var/lib/docker-registry")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A configuration file that does not exist is named in the error."""
    with pytest.raises(ConfigError, match=r"nope\.yml: no such file"):
        load_registry_config(tmp_path / "nope.yml", env={})


# -- s3 --------------------------------------------------------------------------------


def test_s3_maps_to_s3fs_options() -> None:
    """bucket/rootdirectory → URL; keys, endpoint, region and path style → s3fs options."""
    cfg = parse_registry_config(s3_config(), env={})
    assert cfg.driver == "s3"
    assert cfg.url == "s3://images/reg"
    assert dict(cfg.storage_options) == {
        "key": ACCESS,
        "secret": SECRET,
        "endpoint_url": "http://127.0.0.1:8333",
        "client_kwargs": {"region_name": "us-east-1"},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }


@pytest.mark.parametrize(
    ("secure", "scheme"),
    [(True, "https"), (False, "http"), ("false", "http"), ("TRUE", "https"), (None, "https")],
)
def test_regionendpoint_without_scheme_takes_it_from_secure(secure: object, scheme: str) -> None:
    """A regionendpoint without a scheme gets https, or http when secure is false (as the SDK)."""
    cfg = parse_registry_config(s3_config(regionendpoint="minio:9000", secure=secure), env={})
    assert cfg.storage_options["endpoint_url"] == f"{scheme}://minio:9000"


def test_regionendpoint_with_a_scheme_is_kept() -> None:
    """An endpoint that names its scheme is used as written, whatever secure says."""
    cfg = parse_registry_config(
        s3_config(regionendpoint="https://s3.example", secure=False), env={}
    )
    assert cfg.storage_options["endpoint_url"] == "https://s3.example"


@pytest.mark.parametrize(
    ("params", "style"),
    [
        ({"forcepathstyle": False}, "virtual"),
        ({"forcepathstyle": "true", "regionendpoint": None}, "path"),
        ({"regionendpoint": None}, None),
    ],
)
def test_forcepathstyle_sets_the_addressing_style(params: dict, style: str | None) -> None:
    """With forcepathstyle true/false → path/virtual; unset on AWS → botocore decides."""
    cfg = parse_registry_config(s3_config(**params), env={})
    got = cfg.storage_options.get("config_kwargs", {}).get("s3", {}).get("addressing_style")
    assert got == style


def test_s3_without_endpoint_and_insecure_disables_ssl() -> None:
    """secure: false on AWS itself (no regionendpoint) means plain HTTP."""
    cfg = parse_registry_config(s3_config(regionendpoint=None, secure=False), env={})
    assert cfg.storage_options["use_ssl"] is False
    assert "endpoint_url" not in cfg.storage_options


def test_s3_skipverify_sessiontoken_accelerate_dualstack() -> None:
    """The other connection parameters reach botocore."""
    cfg = parse_registry_config(
        s3_config(skipverify=True, sessiontoken="tok-123456", accelerate=True, usedualstack="1"),
        env={},
    )
    opts = cfg.storage_options
    assert opts["token"] == "tok-123456"
    assert opts["client_kwargs"]["verify"] is False
    assert opts["config_kwargs"]["s3"] == {
        "addressing_style": "path",
        "use_accelerate_endpoint": True,
        "use_dualstack_endpoint": True,
    }


@pytest.mark.parametrize("root", ["/", "", None])
def test_s3_root_of_the_bucket(root: object) -> None:
    """A rootdirectory of / (or none) is the bucket's root."""
    assert parse_registry_config(s3_config(rootdirectory=root), env={}).url == "s3://images"


def test_s3aws_is_the_s3_driver() -> None:
    """The S3 driver is also registered as s3aws (distribution 2.x)."""
    doc = s3_config()
    doc["storage"]["s3aws"] = doc["storage"].pop("s3")
    cfg = parse_registry_config(doc, env={})
    assert (cfg.driver, cfg.url) == ("s3", "s3://images/reg")


def test_s3_without_credentials_uses_the_default_chain() -> None:
    """No accesskey/secretkey: no key options, so botocore's chain (env, role) applies."""
    cfg = parse_registry_config(s3_config(accesskey=None, secretkey=None), env={})
    assert "key" not in cfg.storage_options
    assert "secret" not in cfg.storage_options


@pytest.mark.parametrize(("key", "value"), [("bucket", None), ("region", ""), ("bucket", "")])
def test_s3_required_parameters(key: str, value: object) -> None:
    """A missing bucket or region is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=rf"storage\.s3\.{key} is not set"):
        parse_registry_config(s3_config(**{key: value}), env={})


def test_a_non_boolean_flag_is_refused() -> None:
    """secure: maybe is not a boolean; the error names the key."""
    with pytest.raises(ConfigError, match=r"storage\.s3\.secure must be a boolean"):
        parse_registry_config(s3_config(secure="maybe"), env={})


# -- gcs and azure ---------------------------------------------------------------------


def test_gcs_with_keyfile() -> None:
    """gcs: gs://bucket/prefix, the keyfile as gcsfs's token."""
    doc = {"storage": {"gcs": {"bucket": "b", "keyfile": "/k.json", "rootdirectory": "/r"}}}
    cfg = parse_registry_config(doc, env={})
    assert (cfg.driver, cfg.url, dict(cfg.storage_options)) == (
        "gcs",
        "gs://b/r",
        {"token": "/k.json"},
    )


def test_gcs_with_inline_credentials_redacts_the_private_key() -> None:
    """An inline service account key becomes the token; its private key is a secret."""
    creds = {
        "type": "service_account",
        "private_key": "-----BEGIN KEY-----abc",
        "client_email": "x@y",
    }
    cfg = parse_registry_config({"storage": {"gcs": {"bucket": "b", "credentials": creds}}}, env={})
    assert cfg.url == "gs://b"
    assert cfg.storage_options["token"] == creds
    assert "BEGIN KEY" not in repr(cfg) + cfg.describe() + json.dumps(cfg.to_dict())
    assert cfg.redact("oops -----BEGIN KEY-----abc") == "oops ***"


def test_azure_shared_key() -> None:
    """Azure 3.x: az://container/prefix with account name and key; a realm sets the service URL."""
    doc = {
        "storage": {
            "azure": {
                "accountname": "acct",
                "accountkey": SECRET,
                "container": "registry",
                "realm": "core.chinacloudapi.cn",
                "rootdirectory": "/r/",
                "credentials": {"type": "shared_key"},
            }
        }
    }
    cfg = parse_registry_config(doc, env={})
    assert cfg.url == "az://registry/r"
    assert dict(cfg.storage_options) == {
        "account_name": "acct",
        "account_key": SECRET,
        "account_url": "https://acct.blob.core.chinacloudapi.cn",
    }
    assert SECRET not in repr(cfg) + cfg.describe() + json.dumps(cfg.to_dict())


def test_azure_serviceurl_is_the_whole_service_url() -> None:
    """A serviceurl (how distribution's own tests reach Azurite) is kept whole, path included."""
    doc = {
        "storage": {
            "azure": {
                "accountname": "devstoreaccount1",
                "accountkey": SECRET,
                "container": "c",
                "serviceurl": "http://127.0.0.1:10000/devstoreaccount1/",
                "credentials": {"type": "shared_key"},
            }
        }
    }
    cfg = parse_registry_config(doc, env={})
    assert cfg.storage_options["account_url"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert "endpoint http://127.0.0.1:10000" in cfg.describe()


def test_azure_without_credentials_is_distribution_2_layout() -> None:
    """No credentials section (2.x): blob names start with '/', so the root is az://container//."""
    doc = {"storage": {"azure": {"accountname": "a", "accountkey": SECRET, "container": "c"}}}
    cfg = parse_registry_config(doc, env={})
    assert cfg.url == "az://c//"
    assert dict(cfg.storage_options) == {"account_name": "a", "account_key": SECRET}


@pytest.mark.parametrize(
    ("params", "url"),
    [
        ({"trimlegacyrootprefix": True}, "az://c/r"),
        ({"legacyrootprefix": "false"}, "az://c/r"),
        ({"legacyrootprefix": True}, "az://c//r"),
        ({"legacyrootprefix": True, "credentials": {"type": "shared_key"}}, "az://c//r"),
    ],
)
def test_azure_gitlab_legacy_prefix_switches(params: dict[str, object], url: str) -> None:
    """GitLab's trimlegacyrootprefix / legacyrootprefix decide the leading '/' explicitly."""
    azure = {"accountname": "a", "accountkey": SECRET, "container": "c", "rootdirectory": "r"}
    cfg = parse_registry_config({"storage": {"azure": {**azure, **params}}}, env={})
    assert cfg.url == url


@pytest.mark.parametrize("kind", ["default_credentials", "default"])
def test_azure_default_credentials(kind: str) -> None:
    """default_credentials means DefaultAzureCredential (no key); 'default' works but is flagged."""
    azure = {"accountname": "a", "accountkey": SECRET, "container": "c"}
    doc = {"storage": {"azure": {**azure, "credentials": {"type": kind}}}}
    cfg = parse_registry_config(doc, env={})
    assert dict(cfg.storage_options) == {"account_name": "a", "anon": False}
    assert cfg.url == "az://c"
    assert bool(cfg.warnings) is (kind == "default")


def test_azure_unknown_credentials_type_is_refused() -> None:
    """A credentials type distribution does not know is a ConfigError listing the known ones."""
    doc = {
        "storage": {"azure": {"accountname": "a", "container": "c", "credentials": {"type": "x"}}}
    }
    with pytest.raises(ConfigError, match="client_secret, shared_key, default_credentials"):
        parse_registry_config(doc, env={})


def test_azure_client_secret_credentials() -> None:
    """Credentials of type client_secret (distribution 3.x) map to a service principal."""
    doc = {
        "storage": {
            "azure": {
                "accountname": "acct",
                "accountkey": "a-key-3.x-ignores-here",
                "container": "c",
                "credentials": {
                    "type": "client_secret",
                    "clientid": "cid",
                    "tenantid": "tid",
                    "secret": SECRET,
                },
            }
        }
    }
    opts = parse_registry_config(doc, env={}).storage_options
    assert (opts["client_id"], opts["tenant_id"], opts["client_secret"]) == ("cid", "tid", SECRET)
    assert "account_key" not in opts  # a token credential, not the shared key


def test_azure_without_account_is_refused() -> None:
    """An Azure configuration must name its storage account."""
    with pytest.raises(ConfigError, match=r"storage\.azure\.accountname is not set"):
        parse_registry_config({"storage": {"azure": {"container": "c"}}}, env={})


# -- drivers registry-gc cannot reach ------------------------------------------------------


@pytest.mark.parametrize("driver", ["swift", "oss", "middleware-thing"])
def test_unsupported_driver_is_named(driver: str) -> None:
    """A driver registry-gc cannot reach is a ConfigError that names it and the supported ones."""
    with pytest.raises(ConfigError, match=rf"driver '{driver}' is not supported.*filesystem, s3"):
        parse_registry_config({"storage": {driver: {"container": "x"}}}, env={})


def test_inmemory_driver_has_nothing_to_collect() -> None:
    """The inmemory driver keeps nothing on storage: the error says so."""
    with pytest.raises(ConfigError, match="inmemory keeps images in the registry process"):
        parse_registry_config({"storage": "inmemory"}, env={})


def test_no_driver_is_refused() -> None:
    """A storage section with only cache/maintenance names no driver."""
    with pytest.raises(ConfigError, match="no storage driver configured"):
        parse_registry_config({"storage": {"cache": {"blobdescriptor": "inmemory"}}}, env={})


def test_two_drivers_in_the_file_are_refused() -> None:
    """As distribution: exactly one storage type."""
    with pytest.raises(ConfigError, match="exactly one storage type"):
        parse_registry_config({"storage": {"filesystem": {}, "s3": {}}}, env={})


# -- environment overrides -------------------------------------------------------------------


def test_environment_overrides_the_file() -> None:
    """REGISTRY_STORAGE_S3_BUCKET and _ROOTDIRECTORY beat the file."""
    env = {"REGISTRY_STORAGE_S3_BUCKET": "other", "REGISTRY_STORAGE_S3_ROOTDIRECTORY": "/x/y"}
    assert parse_registry_config(s3_config(), env=env).url == "s3://other/x/y"


def test_environment_values_are_yaml() -> None:
    """Values are parsed as YAML, as the registry does: "false" is a boolean."""
    env = {"REGISTRY_STORAGE_S3_SECURE": "false", "REGISTRY_STORAGE_S3_REGIONENDPOINT": "h:1"}
    cfg = parse_registry_config(s3_config(), env=env)
    assert cfg.storage_options["endpoint_url"] == "http://h:1"


def test_environment_creates_missing_keys() -> None:
    """A parameter absent from the file is created by its variable."""
    doc = s3_config()
    del doc["storage"]["s3"]["rootdirectory"]
    cfg = parse_registry_config(doc, env={"REGISTRY_STORAGE_S3_ROOTDIRECTORY": "/made"})
    assert cfg.url == "s3://images/made"


def test_environment_alone_can_configure_the_storage() -> None:
    """With no storage in the file, the variables build it (sorted: REGISTRY_STORAGE first)."""
    env = {
        "REGISTRY_STORAGE_S3_REGION": "eu-west-1",
        "REGISTRY_STORAGE_S3_BUCKET": "b",
        "REGISTRY_STORAGE": "s3",
    }
    cfg = parse_registry_config({"version": 0.1}, env=env)
    assert (cfg.url, cfg.storage_options["client_kwargs"]) == (
        "s3://b",
        {"region_name": "eu-west-1"},
    )


def test_registry_storage_replaces_the_whole_section() -> None:
    """REGISTRY_STORAGE=filesystem replaces storage (cache included); later variables apply."""
    env = {"REGISTRY_STORAGE": "filesystem", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv"}
    cfg = parse_registry_config(DEBIAN_CONFIG, env=env)
    assert (cfg.url, cfg.blob_descriptor_cache) == ("/srv", None)


def test_a_whole_driver_section_from_the_environment() -> None:
    """REGISTRY_STORAGE_S3='{...}' sets the whole section."""
    section = json.dumps({"bucket": "whole", "region": "r", "rootdirectory": "/p"})
    cfg = parse_registry_config({"storage": "s3"}, env={"REGISTRY_STORAGE_S3": section})
    assert cfg.url == "s3://whole/p"


def test_a_second_driver_from_the_environment_is_refused() -> None:
    """As the registry (which panics): a variable adding another driver names both."""
    env = {"REGISTRY_STORAGE_S3_BUCKET": "x"}
    with pytest.raises(ConfigError, match=r"multiple storage drivers.*filesystem, s3"):
        parse_registry_config(DEBIAN_CONFIG, env=env)


def test_other_registry_variables_are_ignored() -> None:
    """Only REGISTRY_STORAGE* concerns the storage; REGISTRY_HTTP_ADDR changes nothing."""
    env = {"REGISTRY_HTTP_ADDR": ":6000", "REGISTRY_STORAGEX": "s3", "OTHER": "1"}
    assert parse_registry_config(DEBIAN_CONFIG, env=env).url == "/var/lib/docker-registry"


def test_nested_key_of_a_mapping_from_the_file_is_ignored_as_the_registry_ignores_it() -> None:
    """REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED does nothing when the file has readonly:.

    distribution 2.8.2 logs "involving map with non-string keys" and keeps serving
    pushes; registry-gc reads the same state and warns how to set it instead.
    """
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"}
    cfg = parse_registry_config(s3_config(), env=env)
    assert cfg.read_only is False
    assert any("REGISTRY_STORAGE_MAINTENANCE_READONLY='{...}'" in w for w in cfg.warnings)


def test_read_only_set_as_a_whole_mapping() -> None:
    """REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}' puts the registry in read-only."""
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY": '{"enabled": true}'}
    cfg = parse_registry_config(s3_config(), env=env)
    assert (cfg.read_only, cfg.warnings) == (True, ())


def test_read_only_built_key_by_key_is_flagged() -> None:
    """A readonly mapping built from _ENABLED alone makes 2.8.2 panic at start: warned."""
    doc = {"storage": {"filesystem": {}}}
    cfg = parse_registry_config(doc, env={"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"})
    assert cfg.read_only is True
    assert any("cannot read storage.maintenance.readonly" in w for w in cfg.warnings)


def test_read_only_from_the_file() -> None:
    """storage.maintenance.readonly.enabled: true is read."""
    doc = s3_config()
    doc["storage"]["maintenance"]["readonly"]["enabled"] = True
    assert parse_registry_config(doc, env={}).read_only is True


# -- the blob descriptor cache -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache", "env", "expected"),
    [
        ({"blobdescriptor": "inmemory"}, {}, "inmemory"),
        ({"blobdescriptor": "redis"}, {}, "redis"),
        ({"layerinfo": "inmemory"}, {}, "inmemory"),
        ({"blobdescriptor": ""}, {}, None),
        (None, {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "redis"}, "redis"),
        ({"blobdescriptor": "inmemory"}, {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": ""}, None),
    ],
)
def test_blob_descriptor_cache_is_detected(cache: object, env: dict, expected: str | None) -> None:
    """storage.cache.blobdescriptor (or its old name layerinfo), after overrides, is reported."""
    doc: dict = {"storage": {"filesystem": {}}}
    if cache is not None:
        doc["storage"]["cache"] = cache
    cfg = parse_registry_config(doc, env=env)
    assert cfg.blob_descriptor_cache == expected
    assert cfg.restart_required is (expected is not None)


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_describe_or_dict() -> None:
    """Keys live in storage_options only; everything printable is free of them."""
    cfg = parse_registry_config(s3_config(), env={})
    text = repr(cfg) + cfg.describe() + json.dumps(cfg.to_dict()) + str(cfg)
    assert ACCESS not in text
    assert SECRET not in text
    assert "credentials from the configuration" in cfg.describe()


def test_endpoint_credentials_are_not_described() -> None:
    """user:password@ in an endpoint URL is left out of describe()."""
    cfg = parse_registry_config(s3_config(regionendpoint="http://u:pw-secret@h:9000"), env={})
    assert "pw-secret" not in cfg.describe()
    assert "http://h:9000" in cfg.describe()


def test_redact_replaces_every_secret() -> None:
    """redact() hides the access key and the secret key in any text."""
    cfg = parse_registry_config(s3_config(), env={})
    assert cfg.redact(f"a {ACCESS} b {SECRET} c") == "a *** b *** c"


def test_invalid_yaml_does_not_echo_the_file(tmp_path: Path) -> None:
    """A YAML error names the line and column, never the line's content (it may hold a key)."""
    path = tmp_path / "config.yml"
    path.write_text(f"storage:\n  s3:\n    secretkey: {SECRET}\n   bad: [\n")
    with pytest.raises(ConfigError) as info:
        load_registry_config(path, env={})
    assert "line" in str(info.value)
    assert SECRET not in str(info.value)


def test_invalid_yaml_in_a_variable_does_not_echo_it() -> None:
    """A variable whose value is not YAML is named; its value (maybe a secret) is not shown."""
    env = {"REGISTRY_STORAGE_S3_SECRETKEY": f"[{SECRET}"}
    with pytest.raises(ConfigError, match="REGISTRY_STORAGE_S3_SECRETKEY") as info:
        parse_registry_config(s3_config(), env=env)
    assert SECRET not in str(info.value)


def test_secret_from_the_environment_is_redacted_too() -> None:
    """A secret key set by a variable is a secret as well."""
    cfg = parse_registry_config(s3_config(), env={"REGISTRY_STORAGE_S3_SECRETKEY": "env-secret-9"})
    assert cfg.storage_options["secret"] == "env-secret-9"
    assert cfg.redact("x env-secret-9") == "x ***"


# -- the default configuration file -----------------------------------------------------------


def test_default_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$REGISTRY_CONFIGURATION_PATH, then /etc/distribution, then /etc/docker/registry."""
    first, second, env_file = tmp_path / "d.yml", tmp_path / "r.yml", tmp_path / "e.yml"
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATHS", (str(first), str(second)))
    assert find_default_config(env={}) is None
    second.write_text("x")
    assert find_default_config(env={}) == second
    first.write_text("x")
    assert find_default_config(env={}) == first
    env_file.write_text("x")
    assert find_default_config(env={CONFIG_PATH_ENV: str(env_file)}) == env_file


def test_the_rig_registry_config_round_trips(tmp_path: Path) -> None:
    """The configuration the test rig gives the real registry parses to its bucket and prefix."""
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(s3_config(), sort_keys=False))
    cfg = load_registry_config(path, env={})
    assert (cfg.url, cfg.read_only, cfg.blob_descriptor_cache) == ("s3://images/reg", False, None)
