"""Tests of registry_gc.fetch: reading the manifests a run needs, within a memory budget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from registry_gc import collect, fetch, take_inventory
from registry_gc.backends import WrappingBackend, open_backend
from registry_gc.layout import Digest
from registry_gc.manifests import Manifest, parse_manifest

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


def test_table_subject_and_holds_manifest_agree_with_its_entries() -> None:
    """``subject`` and ``holds_manifest`` answer what ``get`` tells, for rows and whole entries."""
    subject = Digest("sha256:" + "5" * 64)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 1}
    descriptor = {**layer, "digest": "sha256:" + "1" * 64}
    bodies: dict[str, dict[str, Any]] = {
        "image with subject": {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {**descriptor, "mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [descriptor],
            "subject": {**descriptor, "digest": subject},
        },
        "image": {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {**descriptor, "mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [],
        },
        "index with subject": {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
            "subject": {**descriptor, "digest": subject},
        },
        "unknown kind with subject": {
            "schemaVersion": 2,
            "mediaType": "application/x-unknown",
            "subject": {**descriptor, "digest": subject},
        },
    }
    table = fetch.ManifestTable()
    entries: dict[Digest, Any] = {}
    for k, body in enumerate(bodies.values()):
        entries[Digest(f"sha256:{k:064x}")] = parse_manifest(json.dumps(body).encode())
    entries[Digest("sha256:" + "e" * 64)] = fetch.Unreadable(missing=True)
    entries[Digest("sha256:" + "f" * 64)] = fetch.Unreadable(missing=False, error="bad")
    for digest, entry in entries.items():
        table[digest] = entry
    for digest in [*entries, Digest("sha256:" + "9" * 64), Digest("sha512:" + "9" * 128)]:
        entry = table.get(digest)
        assert table.holds_manifest(digest) == isinstance(entry, Manifest), digest
        expected = entry.subject if isinstance(entry, Manifest) else None
        assert table.subject(digest) == expected, digest
    assert [table.subject(d) for d in list(entries)[:4]] == [subject, None, subject, subject]
