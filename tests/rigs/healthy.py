"""A healthy builder store with a few kinds of images, for the inspection commands' tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry_gc.backends import LocalBackend

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc.layout import Digest


class Store:
    """A healthy builder store with a few kinds of images, and handles on them."""

    def __init__(self) -> None:
        b = self.b = RegistryBuilder(seed=7)
        self.image = b.image("app", "v1", layers=2)
        b.tag("app", "stable", self.image)
        self.docker = b.image("app", "docker", kind="docker")
        self.index = b.multiarch("multi", "latest")
        self.children = b.contents[self.index]["children"]
        self.foreign = b.image("win", "ltsc", foreign=1)
        self.signed = b.image("signed", "v1")
        self.sig = b.referrer("signed", self.signed)
        self.untagged = b.image("app", None)

    def layer(self, digest: Digest, i: int = 1) -> Digest:
        """The i-th blob (0: config) of an image."""
        return self.b.contents[digest]["blobs"][i]

    def write(self, root: Path) -> LocalBackend:
        """Write the tree under root and open it."""
        self.b.write_local(root)
        return LocalBackend(root)
