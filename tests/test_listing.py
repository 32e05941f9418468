"""listing (ls): select repositories, summarise tags, images, platforms and sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from registry_gc import NotFoundError, load_manifests, take_inventory
from registry_gc.backends import LocalBackend
from registry_gc.layout import blob_path
from registry_gc.listing import platform_of_config, select_repositories, summarize

from tests.rigs.builder import RegistryBuilder
from tests.rigs.healthy import Store
from tests.rigs.layouts import buildkit_cache, legacy

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store() -> Store:
    """A fresh healthy store (not yet written)."""
    return Store()


def test_select_repositories(store: Store, tmp_path: Path) -> None:
    """Exact names and shell patterns; an unknown exact name is NotFoundError."""
    inventory = take_inventory(store.write(tmp_path))
    assert select_repositories(inventory, []) == ["app", "multi", "signed", "win"]
    assert select_repositories(inventory, ["s*", "app"]) == ["app", "signed"]
    assert select_repositories(inventory, ["zz*"]) == []
    with pytest.raises(NotFoundError, match="no repository 'nope'"):
        select_repositories(inventory, ["nope"])


def test_platform_of_config() -> None:
    """os/architecture[/variant] from an image config; nothing from anything else."""
    assert platform_of_config(b'{"os": "linux", "architecture": "amd64"}') == "linux/amd64"
    assert platform_of_config(b'{"os": "linux"}') is None
    assert platform_of_config(b"[1]") is None
    assert platform_of_config(b"\xff") is None


def test_list_repositories(store: Store, tmp_path: Path) -> None:
    """Tags with digest, kind, platforms and size; untagged revisions counted and listed."""
    backend = store.write(tmp_path)
    inventory = take_inventory(backend)
    manifests = load_manifests(backend, inventory)
    repos = {r.name: r for r in summarize(inventory, manifests, untagged=True)}
    app = repos["app"]
    assert [t.name for t in app.tags] == ["docker", "stable", "v1"]
    v1 = app.tags[2]
    assert v1.digest == store.image
    assert v1.image is not None
    assert v1.image.kind == "oci-manifest"
    blobs = [store.image, *store.b.contents[store.image]["blobs"]]
    assert v1.image.size == sum(len(store.b.files[blob_path(d)]) for d in blobs)
    assert (app.untagged_count, [u.digest for u in app.untagged]) == (1, [store.untagged])
    multi = repos["multi"].tags[0].image
    assert multi is not None
    assert (multi.kind, multi.platforms) == ("oci-index", ("linux/amd64", "linux/arm64"))
    assert repos["signed"].untagged_count == 1  # the referrer is not reached by tags
    assert repos["win"].tags[0].image.missing == 0  # type: ignore[union-attr]


def test_listing_reads_the_store_as_the_registry_does(tmp_path: Path) -> None:
    """A 2.1.0 revision under _layers is a revision; a BuildKit cache index has no problem."""
    b = RegistryBuilder(seed=6)
    buildkit_cache(b, "cache", "buildcache")
    legacy(b, "old", "t")
    b.write_local(tmp_path)
    backend = LocalBackend(tmp_path)
    inventory = take_inventory(backend)
    repos = {r.name: r for r in summarize(inventory, load_manifests(backend, inventory))}
    assert repos["old"].tags[0].problem is None
    assert repos["old"].revisions == 1
    cache = repos["cache"].tags[0]
    assert (cache.problem, cache.image.problem, cache.image.missing) == (None, None, 0)  # type: ignore[union-attr]
