"""The registry's blob-descriptor cache: the redis section of config.yml, and forgetting entries.

Three layers of evidence for the key scheme:

- config parsing against distribution's ``configuration.go`` (2.8.2 and 3.1.1
  spellings) and ``parser.go`` (environment overrides);
- a real ``redis-server`` populated by :func:`tests.rigs.redis.set_descriptor`,
  which sends the commands distribution's ``setDescriptor`` sends: exactly the
  entries asked for go, everything else stays;
- the real registry (Debian ``docker-registry`` 2.8.2) with
  ``storage.cache.blobdescriptor: redis``: it writes the keys this module
  removes, it vouches for a blob deleted behind its back (HEAD 200), and after
  ``forget()`` it answers 404 and takes the layer again on the next push.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import ConfigError, Digest, InvalidReferenceError, StorageError
from registry_gc.cache import (
    INMEMORY_NOTICE,
    DescriptorCache,
    ForgetResult,
    InMemoryCache,
    NoCache,
    RedisDescriptorCache,
    blob_key,
    descriptor_cache,
    repository_blob_key,
    repository_set_key,
)
from registry_gc.config import (
    RedisConfig,
    RedisTLS,
    load_registry_config,
    parse_registry_config,
)

from tests.conftest import require_module, require_tool
from tests.rigs import oci
from tests.rigs.procs import ManagedProcess, free_port, wait_until
from tests.rigs.redis import (
    OCTET_STREAM,
    RedisClusterRig,
    RedisServer,
    cached_stat,
    dump,
    make_tls_files,
    set_descriptor,
)
from tests.rigs.registry import RealRegistry, blob_data_key, layer_link_key

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator
    from pathlib import Path

    from registry_gc.config import RegistryConfig

PASSWORD = "redis-Pa55word-not-to-show"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(name: str) -> Digest:
    """A valid sha256 digest, different per ``name``."""
    return Digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def config_with(redis: object = None, cache: str | None = "redis", **top: Any) -> dict:
    """A filesystem registry configuration with ``redis`` and ``storage.cache``."""
    doc: dict[str, Any] = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/srv"}}}
    if cache is not None:
        doc["storage"]["cache"] = {"blobdescriptor": cache}
    if redis is not None:
        doc["redis"] = redis
    doc.update(top)
    return doc


def forget(
    source: RegistryConfig | DescriptorCache | str,
    blobs: Collection[str] = (),
    links: Collection[tuple[str, str]] = (),
) -> ForgetResult:
    """Open the cache (from a config, or a URL), forget, close: one event loop."""

    async def run() -> ForgetResult:
        if isinstance(source, str):
            cache: DescriptorCache = descriptor_cache(url=source)
        elif isinstance(source, DescriptorCache):
            cache = source
        else:
            cache = descriptor_cache(source)
        try:
            return await cache.forget(blobs, links)
        finally:
            await cache.aclose()

    return asyncio.run(run())


# -- the redis section: distribution 2.8 ---------------------------------------------------


def test_redis_section_as_distribution_2_reads_it() -> None:
    """addr, password, db and the timeouts of 2.8 are read; pool settings do not matter."""
    text = f"""
version: 0.1
storage:
  filesystem: {{rootdirectory: /srv}}
  cache: {{blobdescriptor: redis}}
redis:
  addr: cache.internal:6380
  password: {PASSWORD}
  db: 2
  dialtimeout: 10ms
  readtimeout: 1m30s
  writetimeout: 250ms
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
"""
    cfg = parse_registry_config(text, env={})
    assert cfg.redis == RedisConfig(
        addresses=("cache.internal:6380",),
        db=2,
        password=PASSWORD,
        dial_timeout=0.01,
        read_timeout=90.0,
        write_timeout=0.25,
    )
    assert (cfg.redis.mode, cfg.redis.endpoints(), cfg.warnings) == (
        "single",
        (("cache.internal", 6380),),
        (),
    )


def test_no_address_means_no_redis() -> None:
    """No section, or one without addr/addrs, is no redis; with a redis cache that is a warning."""
    assert parse_registry_config(config_with(cache=None), env={}).redis is None
    cfg = parse_registry_config(config_with({"db": 1, "password": PASSWORD}), env={})
    assert cfg.redis is None
    assert any("names no address" in w and "refuses to start" in w for w in cfg.warnings)
    # Without a redis cache, a section without address is nothing to warn about.
    assert parse_registry_config(config_with({"db": 1}, cache=None), env={}).warnings == ()


# -- the redis section: distribution 3.x ---------------------------------------------------


def test_redis_section_as_distribution_3_reads_it() -> None:
    """addrs, username, password, db and tls (certificate, key, rootcas) of 3.1 are read."""
    cfg = parse_registry_config(
        config_with(
            {
                "addrs": ["cache.internal:6379"],
                "username": "registry",
                "password": PASSWORD,
                "db": 4,
                "clientname": "registry",
                "poolsize": 10,
                "tls": {
                    "certificate": "/etc/redis/client.crt",
                    "key": "/etc/redis/client.key",
                    "rootcas": ["/etc/redis/ca.pem", "/etc/redis/ca2.pem"],
                },
            }
        ),
        env={},
    )
    assert cfg.redis == RedisConfig(
        addresses=("cache.internal:6379",),
        db=4,
        username="registry",
        password=PASSWORD,
        tls=RedisTLS(
            certificate="/etc/redis/client.crt",
            key="/etc/redis/client.key",
            root_cas=("/etc/redis/ca.pem", "/etc/redis/ca2.pem"),
        ),
    )
    assert cfg.warnings == ()


def test_clientcas_of_distribution_3_0_are_ca_files() -> None:
    """3.0.0 spelled the CA files clientcas (renamed rootcas in 3.1): both verify the server."""
    cfg = parse_registry_config(
        config_with({"addrs": ["c:6379"], "tls": {"clientcas": ["/ca.pem"]}}), env={}
    )
    assert cfg.redis is not None
    assert cfg.redis.tls == RedisTLS(root_cas=("/ca.pem",))
    # An empty tls section is no TLS, as in distribution.
    cfg = parse_registry_config(config_with({"addrs": ["c:6379"], "tls": {}}), env={})
    assert cfg.redis is not None
    assert cfg.redis.tls is None


@pytest.mark.parametrize(
    ("section", "mode"),
    [
        ({"addrs": ["a:6379"]}, "single"),
        ({"addrs": ["a:7000", "b:7001", "c:7002"]}, "cluster"),
        ({"addrs": ["a:26379", "b:26379"], "mastername": "primary"}, "sentinel"),
        ({"addrs": ["a:26379"], "mastername": "primary"}, "sentinel"),
        ({"addr": "a:6379"}, "single"),
    ],
)
def test_mode_is_what_go_redis_universal_client_picks(section: dict, mode: str) -> None:
    """A master name means sentinel, two addresses or more a cluster, one a single server."""
    cfg = parse_registry_config(config_with(section), env={})
    assert cfg.redis is not None
    assert cfg.redis.mode == mode


def test_addr_and_addrs_that_differ_warn_and_addrs_wins() -> None:
    """A file with 2.x addr and 3.x addrs that disagree: addrs is used, and a warning says so."""
    cfg = parse_registry_config(config_with({"addr": "old:6379", "addrs": ["new:6379"]}), env={})
    assert cfg.redis is not None
    assert cfg.redis.addresses == ("new:6379",)
    assert any("differ" in w and "addrs" in w for w in cfg.warnings)
    same = parse_registry_config(config_with({"addr": "a:6379", "addrs": ["a:6379"]}), env={})
    assert same.warnings == ()


# -- strings, numbers and durations as Go reads them ---------------------------------------


def test_plain_scalars_keep_their_text_as_in_a_go_string_field() -> None:
    """password: 0123 is "0123" (not 83), yes is "yes", ~ is unset, a quoted "null" is text."""
    cases = {"0123": "0123", "yes": "yes", "1e3": "1e3", "~": None, '"null"': "null", "''": None}
    for written, expected in cases.items():
        text = f"storage: {{filesystem: {{}}}}\nredis:\n  addr: c:6379\n  password: {written}\n"
        cfg = parse_registry_config(text, env={})
        assert cfg.redis is not None
        assert cfg.redis.password == expected, written


def test_a_parsed_mapping_gives_strings_too() -> None:
    """From an already parsed mapping, a number or boolean password becomes its text."""
    cfg = parse_registry_config(config_with({"addr": "c:6379", "password": 1234}), env={})
    assert cfg.redis is not None
    assert cfg.redis.password == "1234"


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("2000000000", 2.0),  # yaml.v2 decodes an integer into a Duration as nanoseconds
        ("750us", 0.00075),
        ("0", None),  # zero: the client's default
        ("-1s", None),  # go-redis: no timeout; a run never waits forever
    ],
)
def test_timeouts_are_go_durations(written: str, seconds: float | None) -> None:
    """A timeout is read as Go reads a Duration: ParseDuration, or an integer of nanoseconds."""
    text = f"storage: {{filesystem: {{}}}}\nredis: {{addr: 'c:6379', dialtimeout: {written}}}\n"
    cfg = parse_registry_config(text, env={})
    assert cfg.redis is not None
    if seconds is None:
        assert cfg.redis.dial_timeout is None
    else:
        assert cfg.redis.dial_timeout == pytest.approx(seconds)
    assert cfg.warnings == ()


def test_values_the_registry_refuses_are_warnings() -> None:
    """A db that is no integer, a timeout that is no duration, an address without port: warnings."""
    cfg = parse_registry_config(
        config_with({"addr": "nocolon", "db": "abc", "readtimeout": "forever"}), env={}
    )
    assert cfg.redis is not None
    assert cfg.redis.db == 0
    assert cfg.redis.read_timeout is None
    text = " | ".join(cfg.warnings)
    assert "redis.db must be an integer" in text
    assert "redis.readtimeout" in text
    assert "'nocolon' is not host:port" in text
    with pytest.raises(ConfigError, match="not host:port"):
        cfg.redis.endpoints()


# -- environment overrides -----------------------------------------------------------------


def test_environment_overrides_fields_one_by_one() -> None:
    """REGISTRY_REDIS_ADDR/_PASSWORD/_DB replace the file's; tls keys too, unlike storage's."""
    doc = config_with({"addr": "file:6379", "password": "from-file", "tls": {"key": "/k"}})
    cfg = parse_registry_config(
        doc,
        env={
            "REGISTRY_REDIS_ADDR": "env:6380",
            "REGISTRY_REDIS_PASSWORD": PASSWORD,
            "REGISTRY_REDIS_DB": "5",
            "REGISTRY_REDIS_TLS_CERTIFICATE": "/c",
            "REGISTRY_REDISX_DB": "7",  # another name: not ours
        },
    )
    assert cfg.redis == RedisConfig(
        addresses=("env:6380",), db=5, password=PASSWORD, tls=RedisTLS(certificate="/c", key="/k")
    )


def test_environment_creates_the_section() -> None:
    """Without a redis section in the file, REGISTRY_REDIS_ADDRS creates it (3.x spelling)."""
    cfg = parse_registry_config(
        config_with(), env={"REGISTRY_REDIS_ADDRS": "[a:7000, b:7001]", "REGISTRY_REDIS_DB": "0"}
    )
    assert cfg.redis is not None
    assert (cfg.redis.addresses, cfg.redis.mode) == (("a:7000", "b:7001"), "cluster")
    assert cfg.warnings == ()


def test_environment_replaces_the_whole_section_then_applies_the_rest_in_sorted_order() -> None:
    """REGISTRY_REDIS replaces the section; REGISTRY_REDIS_DB, sorted after it, applies on top."""
    cfg = parse_registry_config(
        config_with({"addr": "file:6379", "password": "from-file-pw"}),
        env={"REGISTRY_REDIS_DB": "3", "REGISTRY_REDIS": "{addrs: ['env:6379'], db: 1}"},
    )
    assert cfg.redis == RedisConfig(addresses=("env:6379",), db=3)


def test_environment_sets_list_elements_by_index_as_distribution_3_1() -> None:
    """REGISTRY_REDIS_ADDRS_<n>: n below the length replaces, n equal appends, n past it warns."""
    cfg = parse_registry_config(
        config_with({"addrs": ["a:1", "b:2"]}),
        env={"REGISTRY_REDIS_ADDRS_0": "x:1", "REGISTRY_REDIS_ADDRS_2": "c:3"},
    )
    assert cfg.redis is not None
    assert cfg.redis.addresses == ("x:1", "b:2", "c:3")
    cfg = parse_registry_config(config_with(), env={"REGISTRY_REDIS_ADDRS_0": "only:6379"})
    assert cfg.redis is not None
    assert cfg.redis.addresses == ("only:6379",)
    cfg = parse_registry_config(
        config_with({"addrs": ["a:1"]}), env={"REGISTRY_REDIS_ADDRS_5": "z:9"}
    )
    assert cfg.redis is not None
    assert cfg.redis.addresses == ("a:1",)
    assert any("index 5 is past the end of addrs" in w for w in cfg.warnings)


def test_environment_payload_keeps_its_text() -> None:
    """A numeric-looking password from the environment stays the text given."""
    cfg = parse_registry_config(
        config_with({"addr": "c:6379"}), env={"REGISTRY_REDIS_PASSWORD": "007"}
    )
    assert cfg.redis is not None
    assert cfg.redis.password == "007"


# -- credentials ---------------------------------------------------------------------------


def test_redis_credentials_are_never_shown() -> None:
    """Passwords and user names are in no repr, to_dict, describe or warning; redact hides them."""
    sentinel_password = "sentinel-Pa55-hidden"
    cfg = parse_registry_config(
        config_with(
            {
                "addrs": ["s1:26379", "s2:26379"],
                "mastername": "primary",
                "username": "user-hidden",
                "password": PASSWORD,
                "sentinelusername": "sentinel-user-hidden",
                "sentinelpassword": sentinel_password,
                "db": "not-a-number " + PASSWORD,
            }
        ),
        env={},
    )
    assert cfg.redis is not None
    shown = " ".join(
        [
            repr(cfg),
            repr(cfg.redis),
            json.dumps(cfg.to_dict()),
            cfg.describe(),
            cfg.redis.describe(),
            *cfg.warnings,
        ]
    )
    for secret in (PASSWORD, sentinel_password, "user-hidden", "sentinel-user-hidden"):
        assert secret not in shown
    assert cfg.to_dict()["redis"] == {
        "mode": "sentinel",
        "addresses": ["s1:26379", "s2:26379"],
        "db": 0,
        "master_name": "primary",
        "tls": False,
        "password": True,
    }
    assert cfg.redact(f"AUTH {PASSWORD} / {sentinel_password}") == "AUTH *** / ***"


# -- the factory -----------------------------------------------------------------------------


def test_no_cache_configured_means_nothing_to_forget() -> None:
    """Without storage.cache.blobdescriptor the registry reads the storage: NoCache, cleared."""
    cache = descriptor_cache(parse_registry_config(config_with(cache=None), env={}))
    assert isinstance(cache, NoCache)
    assert descriptor_cache() == NoCache()
    result = forget(cache, [digest_of("a"), digest_of("a")], [("app", digest_of("a"))])
    assert result == ForgetResult("none", blobs=1, links=1)
    assert result.cleared


def test_unknown_cache_kind_is_no_cache() -> None:
    """A blobdescriptor value distribution does not know disables its caching: NoCache."""
    cfg = parse_registry_config(config_with(cache="memcached"), env={})
    assert isinstance(descriptor_cache(cfg), NoCache)


def test_inmemory_cannot_be_forgotten_and_says_what_it_costs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """inmemory: can_forget is false, forget() reports the entries left stale and the choice."""
    cfg = parse_registry_config(config_with(cache="inmemory"), env={}, source="/etc/reg.yml")
    cache = descriptor_cache(cfg)
    assert isinstance(cache, InMemoryCache)
    assert (cache.kind, cache.can_forget) == ("inmemory", False)
    assert cache.notice.startswith("/etc/reg.yml: ")
    for words in ("cannot reach", "restart the registry", "fails to pull", "later run restores"):
        assert words in INMEMORY_NOTICE
    with caplog.at_level(logging.WARNING, logger="registry_gc.cache"):
        result = forget(cache, [digest_of("a"), digest_of("b")], [("app", digest_of("a"))])
    assert result == ForgetResult("inmemory", blobs=2, links=1, cleared=False)
    assert "may still vouch" in result.render()
    assert [r.getMessage() for r in caplog.records] == [cache.notice]


def test_redis_without_an_address_is_a_config_error() -> None:
    """blobdescriptor: redis and no address: the registry would not start; no cache to reach."""
    cfg = parse_registry_config(config_with({"password": PASSWORD}), env={}, source="/r.yml")
    with pytest.raises(ConfigError, match=r"/r\.yml: .*names no address") as info:
        descriptor_cache(cfg)
    assert PASSWORD not in str(info.value)


def test_a_url_for_a_registry_whose_cache_is_not_redis_is_refused() -> None:
    """A redis URL cannot clear an inmemory cache, nor a registry that caches nothing."""
    for cache in ("inmemory", None):
        cfg = parse_registry_config(config_with(cache=cache), env={})
        with pytest.raises(ConfigError, match="redis URL"):
            descriptor_cache(cfg, url="redis://127.0.0.1:6379/0")


def test_a_missing_redis_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a redis cache and no redis-py, the ConfigError says to install registry-gc[redis]."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    cfg = parse_registry_config(config_with({"addr": "c:6379"}), env={})
    with pytest.raises(ConfigError, match=r"registry-gc\[redis\]"):
        descriptor_cache(cfg)
    with pytest.raises(ConfigError, match=r"registry-gc\[redis\]"):
        descriptor_cache(url="redis://c:6379/0")


def test_not_a_redis_url_is_refused_without_its_password() -> None:
    """An http:// URL is refused; the message shows the URL with its password starred."""
    with pytest.raises(ConfigError, match=r"not a redis URL") as info:
        descriptor_cache(url=f"http://user:{PASSWORD}@c:6379/0")
    assert PASSWORD not in str(info.value)
    assert "user:***@c:6379" in str(info.value)


def test_a_bad_address_is_a_config_error_naming_the_file() -> None:
    """An address without a port fails when the cache is opened, naming the configuration."""
    cfg = parse_registry_config(config_with({"addr": "cache"}), env={}, source="/r.yml")
    with pytest.raises(ConfigError, match=r"/r\.yml: redis address 'cache' is not host:port"):
        descriptor_cache(cfg)


# -- the key scheme, against a real redis-server -----------------------------------------------


def populate(client: Any) -> dict[str, Digest]:
    """Entries as distribution writes them: two repositories, shared and own blobs, a manifest.

    ``app`` links shared, a-only and (3.x) its manifest; ``other`` links shared and
    o-only. One more key belongs to someone else.
    """
    d = {name: digest_of(name) for name in ("shared", "a-only", "o-only", "manifest")}
    set_descriptor(client, d["shared"], 100, "app")
    set_descriptor(client, d["a-only"], 200, "app")
    set_descriptor(client, d["shared"], 100, "other")
    set_descriptor(client, d["o-only"], 300, "other")
    # distribution 3.x caches manifest descriptors under the same keys.
    set_descriptor(client, d["manifest"], 400, "app", media_type=OCI_MANIFEST)
    client.set("unrelated::key", "kept")
    return d


def test_set_descriptor_writes_what_distribution_writes(redis_db: RedisServer) -> None:
    """The fixture's writes give the three kinds of keys distribution's cache keeps."""
    client = redis_db.client()
    d = populate(client)
    keys = dump(client)
    assert keys[blob_key(d["shared"])] == {
        "digest": d["shared"],
        "size": "100",
        "mediatype": OCTET_STREAM,
    }
    assert keys[repository_set_key("app")] == {d["shared"], d["a-only"], d["manifest"]}
    assert keys[repository_blob_key("app", d["manifest"])] == {"mediatype": OCI_MANIFEST}
    assert len(keys) == 4 + 2 + 5 + 1  # blob hashes, sets, repository hashes, unrelated


def test_forget_removes_exactly_the_entries_of_the_blobs_and_links(redis_db: RedisServer) -> None:
    """Forgetting a blob and links removes those keys and members; every other entry stays."""
    client = redis_db.client()
    d = populate(client)
    before = dump(client)
    result = forget(
        redis_db.url(),
        blobs=[d["a-only"], d["manifest"]],
        links=[("app", d["a-only"]), ("app", d["manifest"]), ("app", d["shared"])],
    )
    assert result == ForgetResult(
        "redis", blobs=2, links=3, blob_entries=2, link_members=3, link_entries=3
    )
    assert result.removed == 8
    assert result.to_dict() == {
        "cache": "redis",
        "blobs": 2,
        "links": 3,
        "blob_entries": 2,
        "link_members": 3,
        "link_entries": 3,
        "cleared": True,
    }
    assert result.render() == (
        "redis blob-descriptor cache: forgot 2 blob(s) and 3 link(s): 2 blob entries, "
        "3 repository memberships, 3 repository entries"
    )
    expected = dict(before)
    for gone in (
        blob_key(d["a-only"]),
        blob_key(d["manifest"]),
        repository_set_key("app"),  # emptied, so redis drops it
        repository_blob_key("app", d["a-only"]),
        repository_blob_key("app", d["manifest"]),
        repository_blob_key("app", d["shared"]),
    ):
        del expected[gone]
    assert dump(client) == expected
    # Nothing of `other`, and not the shared blob's global entry, went.
    assert cached_stat(client, d["shared"], "other")
    assert cached_stat(client, d["o-only"], "other")
    assert client.get("unrelated::key") == "kept"


def test_forgotten_entries_are_misses_for_distributions_lookup(redis_db: RedisServer) -> None:
    """After forget(), the registry's own Stat algorithm misses exactly what was forgotten."""
    client = redis_db.client()
    d = populate(client)
    assert cached_stat(client, d["a-only"], "app")
    assert cached_stat(client, d["shared"], "app")
    assert cached_stat(client, d["a-only"])
    forget(redis_db.url(), blobs=[d["a-only"]])
    # A forgotten blob misses in every repository and globally, though its set member stays.
    assert not cached_stat(client, d["a-only"], "app")
    assert not cached_stat(client, d["a-only"])
    assert client.sismember(repository_set_key("app"), d["a-only"])
    forget(redis_db.url(), links=[("app", d["shared"])])
    # A forgotten link misses in its repository only.
    assert not cached_stat(client, d["shared"], "app")
    assert cached_stat(client, d["shared"], "other")
    assert cached_stat(client, d["shared"])


def test_forgetting_again_is_harmless(redis_db: RedisServer) -> None:
    """Entries already gone are no error: the second forget() removes nothing and says so."""
    client = redis_db.client()
    d = populate(client)
    blobs, links = [d["a-only"]], [("app", d["a-only"])]
    assert forget(redis_db.url(), blobs, links).removed == 3
    assert forget(redis_db.url(), blobs, links) == ForgetResult("redis", blobs=1, links=1)


def test_forget_removes_the_whole_hash_legacy_fields_included(redis_db: RedisServer) -> None:
    """DEL, not HDEL of three fields: a pre-2.1 ``length`` field does not keep the key alive."""
    client = redis_db.client()
    digest = digest_of("legacy")
    client.hset(blob_key(digest), mapping={"digest": digest, "length": "5", "mediatype": "x"})
    assert forget(redis_db.url(), [digest]).blob_entries == 1
    assert client.exists(blob_key(digest)) == 0


def test_forget_many_entries_in_batches(redis_db: RedisServer) -> None:
    """Thousands of blobs and links (several pipeline round trips) all go, counted exactly."""
    client = redis_db.client()
    digests = [digest_of(f"blob-{i}") for i in range(2500)]
    with client.pipeline(transaction=False) as pipe:
        for i, digest in enumerate(digests):
            set_descriptor(pipe, digest, i, f"repo{i % 7}")
        pipe.execute()
    links = [(f"repo{i % 7}", digest) for i, digest in enumerate(digests[:1200])]
    result = forget(redis_db.url(), digests, links)
    assert result == ForgetResult(
        "redis",
        blobs=2500,
        links=1200,
        blob_entries=2500,
        link_members=1200,
        link_entries=1200,
    )
    remaining = dump(client)
    assert not any(key.startswith("blobs::") for key in remaining)
    assert sum(len(v) for k, v in remaining.items() if k.count("::") == 2) == 1300


def test_malformed_names_are_refused_before_anything_is_sent(redis_db: RedisServer) -> None:
    """A bad digest or repository name raises InvalidReferenceError and removes nothing."""
    client = redis_db.client()
    d = populate(client)
    before = dump(client)
    with pytest.raises(InvalidReferenceError):
        forget(redis_db.url(), [d["a-only"], "sha256:nothex"])
    with pytest.raises(InvalidReferenceError):
        forget(redis_db.url(), links=[("App/../x", d["a-only"])])
    assert dump(client) == before


def test_config_reaches_the_db_and_password_the_registry_uses(tmp_path: Path) -> None:
    """From config.yml (addr, password, db 3), forget() authenticates and works in db 3 only."""
    require_tool("redis-server")
    with RedisServer(tmp_path / "redis", password=PASSWORD) as server:
        in_db3, in_db0 = server.client(db=3), server.client(db=0)
        digest = digest_of("x")
        set_descriptor(in_db3, digest, 1, "app")
        set_descriptor(in_db0, digest, 1, "app")
        cfg_path = tmp_path / "config.yml"
        cfg_path.write_text(
            "version: 0.1\nstorage:\n  filesystem: {rootdirectory: /srv}\n"
            "  cache: {blobdescriptor: redis}\n"
            f"redis:\n  addr: {server.address}\n  password: {PASSWORD}\n  db: 3\n"
        )
        result = forget(load_registry_config(cfg_path, env={}), [digest], [("app", digest)])
        assert result.removed == 3
        assert dump(in_db3) == {}
        assert len(dump(in_db0)) == 3


def test_wrong_password_is_a_storage_error_that_does_not_show_it(tmp_path: Path) -> None:
    """A refused AUTH raises StorageError naming the server, never the password."""
    require_tool("redis-server")
    with RedisServer(tmp_path / "redis", password=PASSWORD) as server:
        wrong = "wrong-" + PASSWORD
        cfg = parse_registry_config(
            config_with({"addr": server.address, "password": wrong}), env={}
        )
        with pytest.raises(StorageError, match=server.address) as info:
            forget(cfg, [digest_of("x")])
        assert wrong not in str(info.value)
        assert "Forgetting again is safe" in str(info.value)


def test_unreachable_redis_is_a_storage_error(redis_server: RedisServer) -> None:
    """Nothing listening: StorageError naming the address, after the connect timeout."""
    address = f"127.0.0.1:{free_port()}"
    cfg = parse_registry_config(config_with({"addr": address, "dialtimeout": "2s"}), env={})
    with pytest.raises(StorageError, match=f"redis {address} db 0"):
        forget(cfg, [digest_of("x")])


def test_url_selects_the_database(redis_db: RedisServer) -> None:
    """redis://host:port/2 forgets in database 2 only."""
    digest = digest_of("x")
    set_descriptor(redis_db.client(db=2), digest, 1)
    set_descriptor(redis_db.client(db=0), digest, 1)
    assert forget(redis_db.url(db=2), [digest]).blob_entries == 1
    assert redis_db.client(db=2).exists(blob_key(digest)) == 0
    assert redis_db.client(db=0).exists(blob_key(digest)) == 1


def test_cache_repr_and_messages_hide_the_url_password(tmp_path: Path) -> None:
    """A URL with a password: the cache's repr shows it starred."""
    cache = RedisDescriptorCache.from_url(f"redis://:{PASSWORD}@127.0.0.1:1/0")
    assert PASSWORD not in repr(cache)
    assert "***@127.0.0.1:1" in repr(cache)
    asyncio.run(cache.aclose())


def test_tls_with_a_client_certificate_and_ca_files(tmp_path: Path) -> None:
    """With tls (certificate, key, rootcas), forget() reaches a TLS-only redis checking clients."""
    require_tool("redis-server")
    require_module("cryptography")
    files = make_tls_files(tmp_path / "tls")
    with RedisServer(tmp_path / "redis", tls=files) as server:
        client = server.client()
        digest = digest_of("x")
        set_descriptor(client, digest, 1, "app")
        section = {
            "addrs": [server.address],
            "tls": {
                "certificate": str(files.client_cert),
                "key": str(files.client_key),
                "rootcas": [str(files.ca)],
            },
        }
        cfg = parse_registry_config(config_with(section), env={})
        assert forget(cfg, [digest], [("app", digest)]).removed == 3
        assert dump(client) == {}
        # Without the CA file the server's certificate is not trusted: a StorageError.
        section["tls"] = {"certificate": str(files.client_cert), "key": str(files.client_key)}
        with pytest.raises(StorageError, match=server.address):
            forget(parse_registry_config(config_with(section), env={}), [digest])


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """A CA file that cannot be read fails when the cache is opened, naming the file."""
    cfg = parse_registry_config(
        config_with({"addrs": ["c:6379"], "tls": {"rootcas": [str(tmp_path / "nope.pem")]}}),
        env={},
        source="/r.yml",
    )
    with pytest.raises(ConfigError, match=r"/r\.yml: cannot read the redis CA file .*nope\.pem"):
        descriptor_cache(cfg)


def test_sentinel_mode_reaches_the_master_it_names(tmp_path: Path, redis_db: RedisServer) -> None:
    """A master name and addrs: the sentinels are asked for the master, forget() works there."""
    binary = require_tool("redis-server")
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor primary 127.0.0.1 {redis_db.port} 1\n"
    )
    proc = ManagedProcess(
        [binary, str(conf), "--sentinel"], name="redis-sentinel", log_path=tmp_path / "s.log"
    ).start()
    try:
        import redis  # noqa: PLC0415 - optional; the redis_db fixture checked it is there

        probe = redis.Redis(port=port, decode_responses=True)
        wait_until(
            lambda: probe.sentinel_get_master_addr_by_name("primary") is not None,
            timeout=20,
            what="redis sentinel",
            proc=proc,
        )
        client = redis_db.client(db=1)
        digest = digest_of("x")
        set_descriptor(client, digest, 1, "app")
        cfg = parse_registry_config(
            config_with({"addrs": [f"127.0.0.1:{port}"], "mastername": "primary", "db": 1}),
            env={},
        )
        assert cfg.redis is not None
        assert cfg.redis.mode == "sentinel"
        assert forget(cfg, [digest], [("app", digest)]).removed == 3
        assert dump(client) == {}
    finally:
        proc.stop(grace=5)


def test_cluster_mode_forgets_keys_on_every_node(tmp_path: Path) -> None:
    """Several addrs: a cluster; keys spread over the nodes' slots all go, the others stay."""
    require_tool("redis-server")
    require_tool("redis-cli")
    rig = RedisClusterRig(tmp_path / "cluster").start()
    try:
        client = rig.client()
        digests = [digest_of(f"c{i}") for i in range(60)]
        for i, digest in enumerate(digests):
            set_descriptor(client, digest, i, f"repo{i % 5}")
        slots_used = {client.keyslot(blob_key(d)) * 3 // 16384 for d in digests}
        assert slots_used == {0, 1, 2}  # keys in each third of the slots: on every node
        cfg = parse_registry_config(config_with({"addrs": rig.addresses}), env={})
        assert cfg.redis is not None
        assert cfg.redis.mode == "cluster"
        result = forget(
            cfg, digests[:40], [(f"repo{i % 5}", d) for i, d in enumerate(digests[:40])]
        )
        assert result == ForgetResult(
            "redis", blobs=40, links=40, blob_entries=40, link_members=40, link_entries=40
        )
        left = dump(client)
        assert {k for k in left if k.startswith("blobs::")} == {blob_key(d) for d in digests[40:]}
        assert sum(len(v) for k, v in left.items() if k.endswith("::blobs")) == 20
    finally:
        rig.stop()


# -- the real registry: the oracle -----------------------------------------------------------


@pytest.fixture
def cached_registry(tmp_path: Path, redis_db: RedisServer) -> Iterator[RealRegistry]:
    """docker-registry 2.8.2 with storage.cache.blobdescriptor: redis, on the test redis, db 1."""
    require_tool("docker-registry")
    reg = RealRegistry(
        tmp_path / "registry",
        root_dir=tmp_path / "storage",
        extra_config={
            "storage": {"cache": {"blobdescriptor": "redis"}},
            "redis": {"addr": redis_db.address, "db": 1, "dialtimeout": "2s"},
        },
    )
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


def registry_cache(reg: RealRegistry) -> RegistryConfig:
    """The registry's own config.yml, read as an operator's run reads it."""
    return load_registry_config(reg.config_path, env={})


@pytest.mark.registry
def test_real_registry_writes_the_keys_forget_removes(
    cached_registry: RealRegistry, redis_db: RedisServer
) -> None:
    """A push into 2.8.2 leaves exactly blobs::<d>, the repository set and hashes; no manifest."""
    image = oci.oci_image("cache-keys", n_layers=2)
    cached_registry.client().push_image("team/app", "v1", image)
    blobs = [b.digest for b in image.blobs]
    expected: dict[str, Any] = {repository_set_key("team/app"): set(blobs)}
    for blob in image.blobs:
        expected[blob_key(blob.digest)] = {
            "digest": blob.digest,
            "size": str(blob.size),
            "mediatype": OCTET_STREAM,
        }
        expected[repository_blob_key("team/app", blob.digest)] = {"mediatype": OCTET_STREAM}
    assert dump(redis_db.client(db=1)) == expected
    # 2.8.2 does not cache manifests (3.x does, under the same keys).
    assert image.digest not in expected[repository_set_key("team/app")]
    result = forget(registry_cache(cached_registry), blobs, [("team/app", d) for d in blobs])
    assert result.removed == 3 * len(blobs)
    assert dump(redis_db.client(db=1)) == {}


@pytest.mark.registry
def test_real_registry_vouches_for_a_deleted_blob_until_it_is_forgotten(
    cached_registry: RealRegistry, redis_db: RedisServer
) -> None:
    """Blob data deleted behind 2.8.2's back: HEAD 200 from the cache; after forget(), 404.

    Then the next push uploads the layer again, and the image pulls whole.
    """
    client = cached_registry.client()
    image = oci.oci_image("stale-blob", n_layers=2)
    client.push_image("app", "v1", image)
    layer = image.layers[0]
    cached_registry.delete_key(blob_data_key(layer.digest))
    # The stale cache: the registry answers from redis without looking at the storage.
    assert client.blob_exists("app", layer.digest)
    assert client.blob_exists("app", layer.digest)
    result = forget(registry_cache(cached_registry), [layer.digest])
    assert (result.blob_entries, result.link_members, result.link_entries) == (1, 0, 0)
    assert not client.blob_exists("app", layer.digest)
    # A miss sends the registry to the storage, which does not have it: nothing re-cached.
    assert not redis_db.client(db=1).exists(blob_key(layer.digest))
    client.push_image("app", "v1", image)
    for blob in image.blobs:
        assert client.get_blob("app", blob.digest) == blob.data


@pytest.mark.registry
@pytest.mark.parametrize("how", ["forget", "SREM only", "DEL only"])
def test_real_registry_vouches_for_a_removed_link_until_it_is_forgotten(
    cached_registry: RealRegistry, redis_db: RedisServer, how: str
) -> None:
    """A _layers link removed behind 2.8.2's back: HEAD 200 in that repository until forgotten.

    Either of forget()'s two commands per link alone makes 2.8.2 miss (the set
    membership, or the repository hash whose HGET then fails); forget() sends
    both, as 3.x's own Clear does.
    """
    client = cached_registry.client()
    image = oci.oci_image("stale-link", n_layers=1)
    client.push_image("app", "v1", image)
    client.push_image("other", "v1", image)
    layer = image.layers[0]
    cached_registry.delete_key(layer_link_key("app", layer.digest))
    assert client.blob_exists("app", layer.digest)
    if how == "forget":
        forget(registry_cache(cached_registry), links=[("app", layer.digest)])
    elif how == "SREM only":
        redis_db.client(db=1).srem(repository_set_key("app"), layer.digest)
    else:
        redis_db.client(db=1).delete(repository_blob_key("app", layer.digest))
    assert not client.blob_exists("app", layer.digest)
    # The blob is still there and linked in `other`: it answers there as before.
    assert client.blob_exists("other", layer.digest)
    assert client.get_blob("other", layer.digest) == layer.data
