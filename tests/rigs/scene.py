"""The command-line suites' store: shared layers, tag history, multi-arch, a referrer, nesting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry_gc.layout import Digest, blob_path

from tests.rigs.builder import RegistryBuilder

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


class Scene:
    """A store with shared layers, tag history, a multi-arch tag, a referrer, nesting, an upload."""

    def __init__(self, root: Path, *, age: float | None = None) -> None:
        b = self.b = RegistryBuilder(seed=11)
        if age is not None:
            b.default_age = age
        self.root = root
        self.base = b.layer("library/alpine", b"base" * 500)
        self.v320 = b.image("library/alpine", "3.20", layers=1, shared=[self.base])
        b.tag("library/alpine", "stable", self.v320)
        self.old_prev = b.image("library/alpine", "old", layers=1)
        self.old = b.image("library/alpine", "old", layers=2)
        self.multi = b.multiarch("library/alpine", "latest")
        self.children = b.contents[self.multi]["children"]
        self.untagged = b.image("library/alpine", None)
        self.app = b.image("team/app", "v1", layers=1, shared=[self.base])
        self.signed = b.image("team/app", "v2")
        self.sig = b.referrer("team/app", self.signed)
        self.worker = b.image("team/app/worker", "v1")
        self.upload = b.upload("team/app", size=300)
        b.write_local(root)

    def image_blobs(self, *digests: Digest) -> set[Digest]:
        """Manifest, config and layer digests of images."""
        out: set[Digest] = set()
        for d in digests:
            out.add(d)
            out.update(self.b.contents[d]["blobs"])
        return out

    def size(self, digests: Iterable[Digest]) -> int:
        """Bytes of those blobs."""
        return sum(len(self.b.files[blob_path(d)]) for d in digests)

    def exists(self, path: str) -> bool:
        """Whether the path is in the written store."""
        return (self.root / path).exists()
