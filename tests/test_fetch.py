"""Tests of registry_gc.fetch: reading the manifests a run needs, within a memory budget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from registry_gc import collect, fetch, take_inventory
from registry_gc.backends import WrappingBackend, open_backend
from registry_gc.layout import Digest

from tests.rigs.builder import RegistryBuilder
from tests.rigs.stores import ZERO, Store, blob


class _Metered(WrappingBackend):
    """A backend wrapper that records the most bytes held by read() calls at once."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.now = 0
        self.peak = 0

    async def read(self, paths: Any) -> Any:
        got = await self.inner.read(paths)
        size = sum(len(v) for v in got.values() if v is not None)
        self.now += size
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0)  # let other batches run while these bytes are held
        self.now -= size
        return got


def test_manifest_reads_hold_bounded_memory(disk: Store) -> None:
    """However many large manifests there are, the bytes read at once stay within the budget."""
    b = RegistryBuilder()
    pad = "x" * (3 * 1024 * 1024)  # 3 MiB per manifest body
    for i in range(40):
        d = b.image("big", f"t{i}")
        doc = json.loads(b.files[blob(d)])
        doc["annotations"] = {"pad": pad, "i": str(i)}
        b.manifest("big", doc, tag=f"t{i}")
    b.write_local(disk.dir)
    backend = _Metered(open_backend(str(disk.dir)))
    report = collect(backend, delete_untagged=True, grace=ZERO, dry_run=True)
    assert report.manifests_read >= 80
    budget = fetch.PARALLEL_BATCHES * fetch.BATCH_BYTES
    assert 3 * 1024 * 1024 < backend.peak <= budget


def test_one_round_reads_exactly_the_digests_given(disk: Store) -> None:
    """read_manifests reads the digests given and no more; named_digests says what comes next."""
    b = RegistryBuilder()
    index = b.multiarch("app", "v1", arches=2)
    b.write_local(disk.dir)
    backend = open_backend(str(disk.dir))
    inventory = take_inventory(backend)
    table: fetch.ManifestTable = {}
    fresh = asyncio.run(fetch.read_manifests(backend, inventory.blobs, {index}, table))
    assert set(table) == {index}
    assert fresh == [table[index]]
    children = set(b.contents[index]["children"])
    assert set(fetch.named_digests(fresh)) == children
    missing = Digest("sha256:" + "ab" * 32)
    asyncio.run(fetch.read_manifests(backend, inventory.blobs, {missing}, table))
    assert table[missing] == fetch.Unreadable(missing=True)
