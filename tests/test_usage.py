"""usage (du): total, live and reclaimable bytes; unique and shared per repository."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING

from registry_gc import Options, load_manifests, take_inventory
from registry_gc.backends import LocalBackend
from registry_gc.mark import mark
from registry_gc.plan import make_plan
from registry_gc.usage import measure

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from pathlib import Path


def test_disk_usage_unique_and_shared(tmp_path: Path) -> None:
    """A layer two repositories share is shared bytes in both; the rest is unique."""
    b = RegistryBuilder(seed=3)
    base = b.layer("one", b"B" * 1000)
    b.image("one", "v1", layers=1, shared=[base])
    b.image("two", "v1", layers=1, shared=[base])
    b.blob(b"orphan" * 100)
    b.write_local(tmp_path)
    backend = LocalBackend(tmp_path)
    inventory = take_inventory(backend)
    manifests = load_manifests(backend, inventory)
    marks = mark(inventory, manifests, Options(grace=datetime.timedelta(0)))
    usage = measure(inventory, manifests, marks, make_plan(inventory, marks))
    one, two = usage.repositories
    assert one.shared == two.shared == 1000
    assert one.size == one.unique + one.shared
    assert usage.reclaimable_size == 600
    assert usage.size == usage.live_size + 600
    assert json.loads(json.dumps(usage.to_dict()))["reclaimable"]["bytes"] == 600
