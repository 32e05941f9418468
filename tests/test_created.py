"""Image ``created`` times, read at the edge for ``time_source: created`` rules."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import TYPE_CHECKING

import pytest
from registry_gc.backends import CountingBackend, LocalBackend
from registry_gc.created import created_of_config, read_created_times
from registry_gc.fetch import fetch_manifests
from registry_gc.inventory import scan
from registry_gc.policy import Policy, Rule

from tests.rigs.builder import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryBuilder

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc.layout import Digest

UTC = datetime.timezone.utc
DAY = 86400.0


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2024-05-01T00:00:00Z", datetime.datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01t00:00:00z", datetime.datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01 00:00:00Z", datetime.datetime(2024, 5, 1, tzinfo=UTC)),
        (" 2024-05-01T00:00:00Z\n", datetime.datetime(2024, 5, 1, tzinfo=UTC)),
        (
            "2026-01-01T10:00:00.123456789+02:00",
            datetime.datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            "2026-01-01T10:00:00.5-01:30",
            datetime.datetime(2026, 1, 1, 11, 30, 0, 500000, tzinfo=UTC),
        ),
    ],
)
def test_created_of_config_reads_rfc3339_times(created: str, expected: datetime.datetime) -> None:
    """RFC 3339 with any offset and up to nanoseconds (truncated to microseconds)."""
    doc = json.dumps({"architecture": "amd64", "created": created}).encode()
    assert created_of_config(doc) == expected.timestamp()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        b"{}",
        b'{"created": 1714521600}',
        b'{"created": "2024-05-01"}',
        b'{"created": "2024-05-01T00:00:00"}',
        b'{"created": "2024-13-01T00:00:00Z"}',
        b'{"created": "2024-02-30T00:00:00Z"}',
        b"[" * 100_000,
    ],
)
def test_created_of_config_gives_none_for_anything_else(data: bytes) -> None:
    """Configs that are not JSON objects with a valid RFC 3339 ``created`` give None."""
    assert created_of_config(data) is None


def _image(b: RegistryBuilder, repo: str, tag: str | None, created: str | None) -> Digest:
    """An OCI image whose config says ``created`` (no such field when None)."""
    config_doc = {"architecture": "amd64", "os": "linux", "tag": tag}
    if created is not None:
        config_doc["created"] = created
    config = json.dumps(config_doc).encode()
    config_digest = b.layer(repo, config, 9 * DAY)
    layer = b.layer(repo, age=9 * DAY)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": 1}],
    }
    return b.manifest(repo, doc, tag, 9 * DAY)


def _read(root: Path, policy: Policy) -> tuple[dict[Digest, float], int]:
    """read_created_times over the store at ``root``: the times and the config reads it made."""

    async def go() -> tuple[dict[Digest, float], int]:
        backend = CountingBackend(LocalBackend(root))
        inventory = await scan(backend)
        manifests = await fetch_manifests(backend, inventory)
        before = backend.objects["read"]
        times = await read_created_times(backend, inventory, manifests, policy)
        return times, backend.objects["read"] - before

    return asyncio.run(go())


def _when(text: str) -> float:
    """A naive ISO time, as UTC seconds since the epoch."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_read_created_times_reads_the_configs_of_tagged_images(tmp_path: Path) -> None:
    """Tag targets get their config's created; an index its newest image's; gaps are left out."""
    b = RegistryBuilder()
    plain = _image(b, "app", "plain", "2020-01-01T00:00:00Z")
    old = _image(b, "app", None, "2019-01-01T00:00:00Z")
    newer = _image(b, "app", None, "2025-06-01T00:00:00Z")
    multi = b.index("app", "multi", [old, newer], age=9 * DAY)
    _image(b, "app", "undated", None)
    _image(b, "other", "elsewhere", "2021-01-01T00:00:00Z")
    b.write_local(tmp_path)
    times, reads = _read(
        tmp_path, Policy([Rule(repositories="app", keep_last=1, time_source="created")])
    )
    assert times == {plain: _when("2020-01-01T00:00:00"), multi: _when("2025-06-01T00:00:00")}
    assert reads == 4  # plain, old, newer, undated: not the repository no created rule covers


def test_read_created_times_reads_nothing_without_a_created_rule(tmp_path: Path) -> None:
    """Rules that rank by push time need no config: nothing is read."""
    b = RegistryBuilder()
    _image(b, "app", "plain", "2020-01-01T00:00:00Z")
    b.write_local(tmp_path)
    assert _read(tmp_path, Policy([Rule(keep_last=1)])) == ({}, 0)
