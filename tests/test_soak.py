"""Soaks: pushers racing ``registry-gc gc -m --grace 0s`` run back to back (issue 12).

Four pusher threads push, for ``$REGISTRY_GC_SOAK_SECONDS`` (30 by default, longer until
three runs have raced them; ``nox -s soak`` runs 600), what races a sweep — new images
on layers of old untagged images (HEAD, then skip the upload), cross-repository mounts
of old blobs, old untagged manifests pushed again by digest and then tagged, tags
re-pushed, manifests deleted through the API — against the real registry (2.8.2), while
the collector runs back to back and, after each run, every tag's last acknowledged image
is downloaded by digest (the rig: ``tests/rigs/soak.py``). When the pushers stop, one
more run; then every image that must survive is pulled with ``skopeo copy --all`` and
checked digest by digest.

- ``test_without_live_mode_acknowledged_pushes_break``: the demonstration of why live
  mode exists. Without ``--live``, a run deletes what its listing saw as garbage even
  when a push re-used it since, and images the registry acknowledged break.
- ``test_live_mode_loses_no_acknowledged_push``: with ``--live`` (quarantine, settle,
  restore), on disk and on S3 (SeaweedFS), with no blob-descriptor cache, a redis one
  and an in-memory one: no acknowledged push is lost. With no cache or redis, nothing
  is ever seen broken between runs either; with the in-memory cache (which no run can
  empty) an image may be broken for a while, until a run restores what it needs
  (docs/cache.md).

CI runs four of the seven: the one without ``--live``, and the live pairs in
``CI_PAIRS`` (on disk with no cache and with the in-memory cache, on S3 with redis);
``nox -s soak`` runs all seven (``REGISTRY_GC_SOAK_MATRIX=full``).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import in_ci, require_module, require_tool
from tests.rigs.registry import RealRegistry, S3Storage
from tests.rigs.soak import (
    MAX_STRETCH,
    MIN_RUNS,
    Soak,
    SoakResult,
    gc_env,
    operations_seen,
    soak_seconds,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.redis import RedisServer
    from tests.rigs.s3 import SeaweedS3

SECONDS = soak_seconds()
#: pushing, the runs after it, the final pulls; generous, a soak on S3 under load is slow
TIMEOUT = int(MAX_STRETCH * SECONDS) + 900
#: what a live run is told (the soak adds nothing else)
LIVE_FLAGS = ("--live", "--settle", "1s")

pytestmark = [pytest.mark.soak, pytest.mark.registry, pytest.mark.slow]


def collector(reg: RealRegistry, *, live: bool) -> list[str]:
    """``registry-gc gc --config CONFIG -m --grace 0s --json`` (and the live flags)."""
    argv = [sys.executable, "-m", "registry_gc", "gc", "--config", str(reg.config_path)]
    argv += ["-m", "--grace", "0s", "--json"]
    return argv + list(LIVE_FLAGS) if live else argv


@functools.cache
def _has_live_mode() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "registry_gc", "gc", "--help"],
        capture_output=True,
        text=True,
        env=gc_env(),
        check=True,
    ).stdout
    return all(flag in help_text for flag in ("--live", "--settle"))


def require_live_mode() -> None:
    """Skip (fail in CI) when ``registry-gc gc`` has no ``--live``/``--settle`` yet."""
    if _has_live_mode():
        return
    msg = "registry-gc gc has no --live/--settle (issue 12, live mode)"
    if in_ci():
        pytest.fail(f"{msg}; required in CI", pytrace=False)
    pytest.skip(msg)


def cache_config(cache: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The registry's ``storage.cache`` (and ``redis``) sections for ``cache``."""
    if cache == "none":
        return {}
    if cache == "inmemory":
        return {"storage": {"cache": {"blobdescriptor": "inmemory"}}}
    redis: RedisServer = request.getfixturevalue("redis_db")
    return {
        "storage": {"cache": {"blobdescriptor": "redis"}},
        "redis": {"addr": redis.address, "db": 1, "dialtimeout": "2s"},
    }


def start_registry(
    request: pytest.FixtureRequest, tmp_path: Path, storage: str, cache: str
) -> RealRegistry:
    """A running registry on disk or on a fresh SeaweedFS bucket, with ``cache``."""
    require_tool("docker-registry")
    require_tool("skopeo")
    extra = cache_config(cache, request)
    if storage == "s3":
        require_module("boto3")
        server: SeaweedS3 = request.getfixturevalue("s3_server")
        bucket: str = request.getfixturevalue("s3_bucket")
        s3 = S3Storage.on(server, bucket, rootdirectory="/reg")
        reg = RealRegistry(tmp_path / "registry", s3=s3, extra_config=extra)
    else:
        reg = RealRegistry(tmp_path / "registry", root_dir=tmp_path / "storage", extra_config=extra)
    reg.start()
    request.addfinalizer(reg.stop)
    return reg


def soak(
    reg: RealRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str], *, live: bool, label: str
) -> SoakResult:
    """Run the soak; print its summary (uncaptured: it is the point of the test)."""
    (tmp_path / "pulls").mkdir()
    result = Soak(
        reg, collector(reg, live=live), tmp_path / "pulls", seconds=SECONDS, label=label
    ).run()
    with capsys.disabled():
        print(f"\n{result.summary()}")
    return result


def assert_it_raced(result: SoakResult) -> None:
    """The soak did what it is for: every racing pattern happened, runs collected garbage."""
    seen = operations_seen(result)
    assert all(seen.values()), f"a racing pattern never happened: {seen}"
    assert len(result.runs) >= MIN_RUNS, "too few runs raced the pushers"
    collected = sum(r.deleted for r in result.runs) + result.live_total("moved_blobs")
    assert collected > 0, "no run collected anything"


# -- without live mode: the loss ----------------------------------------------------------------


@pytest.mark.timeout(TIMEOUT)
def test_without_live_mode_acknowledged_pushes_break(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Why live mode exists: gc -m --grace 0s racing pushes breaks images the registry took.

    The same soak as below without ``--live``: a run deletes a blob (or an untagged
    revision) its listing saw as garbage, while a push re-uses it — HEAD 200 and no
    upload, a mount, a re-push by digest — and the registry acknowledges an image that
    then does not pull. Counted as acknowledged images seen broken, after a run or at
    the end.
    """
    reg = start_registry(request, tmp_path, "disk", "none")
    result = soak(reg, tmp_path, capsys, live=False, label="disk, no cache, without --live")
    assert_it_raced(result)
    assert result.broken > 0, "without --live, the race should break acknowledged images"


# -- live mode: nothing acknowledged is lost -----------------------------------------------------


#: The live soaks ``nox -s tests`` (CI) runs: live moves on disk and on S3, and each cache
#: kind once (the cache is the registry's, whatever the storage). ``nox -s soak`` runs all
#: six (``REGISTRY_GC_SOAK_MATRIX=full``); the others are marked ``soak_matrix`` and
#: deselected without it (tests/conftest.py), to keep CI under its 30 minutes.
CI_PAIRS = frozenset({("disk", "none"), ("disk", "inmemory"), ("s3", "redis")})


def _live_pairs() -> list[Any]:
    pairs = []
    for storage in ("disk", "s3"):
        for cache in ("none", "redis", "inmemory"):
            marks = [pytest.mark.s3] if storage == "s3" else []
            if (storage, cache) not in CI_PAIRS:
                marks.append(pytest.mark.soak_matrix)
            pairs.append(pytest.param(storage, cache, marks=marks, id=f"{storage}-{cache}"))
    return pairs


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize(("storage", "cache"), _live_pairs())
def test_live_mode_loses_no_acknowledged_push(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    storage: str,
    cache: str,
) -> None:
    """Live runs back to back under racing pushes: every acknowledged push pulls.

    With no cache or a redis cache (the run forgets what it moved), no image is ever
    seen broken after a run; with an in-memory cache, which vouches for moved blobs
    until the registry restarts, only the end state is held to it.
    """
    require_live_mode()
    reg = start_registry(request, tmp_path, storage, cache)
    result = soak(reg, tmp_path, capsys, live=True, label=f"{storage}, cache {cache}, --live")
    assert_it_raced(result)
    runs = [*result.runs, result.final_run]
    assert [r for r in runs if r is None or r.code != 0] == [], "every live run exits 0"
    assert result.lost == [], result.summary()
    assert result.tag_mismatches == [], result.summary()
    # A run removes, then heals what a racing push made live: while it runs, an
    # acknowledged manifest's revision link can be missing (a DELETE answers 404).
    # Between runs, never.
    assert result.findings_between_runs == [], result.summary()
    if cache != "inmemory":
        assert result.transient == [], result.summary()
