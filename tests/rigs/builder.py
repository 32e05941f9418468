"""Build distribution v2 storage trees as data, then write them to any store.

The builder writes exactly the files the registry would write (blob data,
revision links, tag current and index links, layer links, uploads) and can
also write what the registry never would on purpose: dangling links, missing
blobs, corrupt manifests, stray files. Each file carries an age (seconds
before "now") so grace periods can be tested on stores that keep mtimes.

>>> b = RegistryBuilder()
>>> img = b.image("library/alpine", tag="3.20")
>>> link = "docker/registry/v2/repositories/library/alpine/_manifests/tags/3.20/current/link"
>>> b.files[link] == img.encode()
True
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from registry_gc.layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
)

from tests.rigs.procs import put_untraced

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import fsspec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"


def sha256(data: bytes) -> Digest:
    """The sha256 digest of ``data``."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


class RegistryBuilder:
    """A v2 tree as ``path → bytes`` (and ``path → age in seconds``)."""

    def __init__(self, seed: int = 0) -> None:
        self.files: dict[str, bytes] = {}
        self.ages: dict[str, float] = {}
        self.rng = random.Random(seed)
        #: digest → the blobs it needs (config + layers), children and subject, as built
        self.contents: dict[Digest, dict[str, Any]] = {}
        self.default_age = 10 * 24 * 3600.0  # old by default: outside any grace period

    # -- raw files ---------------------------------------------------------

    def put(self, path: str, data: bytes, age: float | None = None) -> None:
        """Write one file."""
        self.files[path] = data
        self.ages[path] = self.default_age if age is None else age

    def remove(self, path: str) -> None:
        """Remove one file (e.g. to make a blob missing)."""
        del self.files[path]
        self.ages.pop(path, None)

    def remove_prefix(self, prefix: str) -> None:
        """Remove every file under ``prefix``."""
        for p in [p for p in self.files if p.startswith(prefix)]:
            self.remove(p)

    def age(self, path: str, seconds: float) -> None:
        """Set a file's age."""
        self.ages[path] = seconds

    # -- registry objects --------------------------------------------------

    def blob(self, data: bytes, age: float | None = None) -> Digest:
        """Put ``data`` in ``blobs/`` and return its digest."""
        d = sha256(data)
        self.put(BlobData(d).path, data, age)
        return d

    def random_bytes(self, size: int) -> bytes:
        """Deterministic pseudo-random bytes."""
        return self.rng.randbytes(size)

    def link_layer(self, repo: str, digest: Digest, age: float | None = None) -> None:
        """Write ``_layers/<alg>/<hex>/link`` in ``repo``."""
        self.put(LayerLink(Repository(repo), digest).path, digest.encode(), age)

    def layer(self, repo: str, data: bytes | None = None, age: float | None = None) -> Digest:
        """A blob linked into ``repo``."""
        d = self.blob(
            data if data is not None else self.random_bytes(self.rng.randint(50, 400)), age
        )
        self.link_layer(repo, d, age)
        return d

    def manifest(
        self,
        repo: str,
        doc: dict[str, Any] | bytes,
        tag: str | None = None,
        age: float | None = None,
    ) -> Digest:
        """Store a manifest (a dict is JSON-encoded) as a revision of ``repo``; tag it if asked."""
        data = doc if isinstance(doc, bytes) else json.dumps(doc, indent=3).encode()
        d = self.blob(data, age)
        self.put(RevisionLink(Repository(repo), d).path, d.encode(), age)
        if tag is not None:
            self.tag(repo, tag, d, age)
        return d

    def tag(self, repo: str, tag: str, digest: Digest, age: float | None = None) -> None:
        """Point ``tag`` at ``digest`` (index entry first, then current, as distribution does)."""
        r, t = Repository._trusted(repo), Tag._trusted(tag)
        self.put(TagIndexLink(r, t, digest).path, digest.encode(), age)
        self.put(TagCurrentLink(r, t).path, digest.encode(), age)

    def untag(self, repo: str, tag: str) -> None:
        """Delete a tag directory (distribution 3.x DELETE by tag)."""
        self.remove_prefix(f"docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/")

    def delete_revision(self, repo: str, digest: Digest) -> None:
        """What DELETE by digest does: remove the revision link and untag tags pointing at it."""
        self.remove(RevisionLink(Repository(repo), digest).path)
        prefix = f"docker/registry/v2/repositories/{repo}/_manifests/tags/"
        for p in list(self.files):
            if (
                p.startswith(prefix)
                and p.endswith("/current/link")
                and self.files[p] == digest.encode()
            ):
                self.untag(repo, p[len(prefix) :].split("/")[0])

    def image(
        self,
        repo: str,
        tag: str | None = None,
        *,
        layers: int = 2,
        shared: Sequence[Digest] = (),
        kind: str = "oci",
        subject: Digest | None = None,
        artifact_type: str | None = None,
        foreign: int = 0,
        age: float | None = None,
        platform: tuple[str, str] = ("linux", "amd64"),
    ) -> Digest:
        """An image: config, ``layers`` new layers and the ``shared`` ones, linked into ``repo``.

        ``kind``: ``oci``, ``docker`` or ``schema1``.
        """
        layer_digests = [self.layer(repo, age=age) for _ in range(layers)]
        for d in shared:
            self.link_layer(repo, d, age)
            layer_digests.append(d)
        layer_type = DOCKER_LAYER if kind == "docker" else OCI_LAYER
        descs: list[dict[str, Any]] = [
            {"mediaType": layer_type, "digest": d, "size": len(self.files[BlobData(d).path])}
            for d in layer_digests
        ]
        for i in range(foreign):
            data = f"foreign {repo} {i} {self.rng.random()}".encode()
            descs.append(
                {
                    "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    "digest": sha256(data),
                    "size": len(data),
                    "urls": ["https://example.invalid/layer"],
                }
            )
        if kind == "schema1":
            doc: dict[str, Any] = {
                "schemaVersion": 1,
                "name": repo,
                "tag": tag or "latest",
                "architecture": platform[1],
                "fsLayers": [{"blobSum": d} for d in reversed(layer_digests)],
                "history": [{"v1Compatibility": "{}"} for _ in layer_digests],
            }
            d = self.manifest(repo, doc, tag, age)
            self.contents[d] = {"blobs": list(layer_digests), "children": []}
            return d
        config = json.dumps(
            {
                "architecture": platform[1],
                "os": platform[0],
                "created": "2026-01-01T00:00:00Z",
                "rootfs": {"type": "layers", "diff_ids": [str(x) for x in layer_digests]},
                "nonce": self.rng.random(),
            }
        ).encode()
        config_digest = self.layer(repo, config, age)
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if kind == "docker" else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if kind == "docker" else OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": descs,
        }
        if artifact_type:
            doc["artifactType"] = artifact_type
        if subject is not None:
            doc["subject"] = {
                "mediaType": OCI_MANIFEST,
                "digest": subject,
                "size": len(self.files[BlobData(subject).path]),
            }
        d = self.manifest(repo, doc, tag, age)
        self.contents[d] = {
            "blobs": [config_digest, *layer_digests],
            "children": [],
            "subject": subject,
        }
        return d

    def referrer(
        self,
        repo: str,
        subject: Digest,
        artifact_type: str = "application/vnd.dev.cosign.artifact.sig.v1+json",
        tag: str | None = None,
        age: float | None = None,
    ) -> Digest:
        """A signature/SBOM-like manifest whose ``subject`` is ``subject``, pushed by digest."""
        return self.image(
            repo, tag, layers=1, subject=subject, artifact_type=artifact_type, age=age
        )

    def index(
        self,
        repo: str,
        tag: str | None,
        children: Iterable[Digest],
        *,
        kind: str = "oci",
        subject: Digest | None = None,
        age: float | None = None,
    ) -> Digest:
        """An OCI index (or Docker manifest list with ``kind="docker"``) over ``children``."""
        entries = []
        for i, c in enumerate(children):
            data = self.files[BlobData(c).path]
            mt = json.loads(data).get("mediaType", OCI_MANIFEST)
            entries.append(
                {
                    "mediaType": mt,
                    "digest": c,
                    "size": len(data),
                    "platform": {
                        "os": "linux",
                        "architecture": ["amd64", "arm64", "s390x", "ppc64le"][i % 4],
                    },
                }
            )
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if kind == "docker" else OCI_INDEX,
            "manifests": entries,
        }
        if subject is not None:
            doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
        d = self.manifest(repo, doc, tag, age)
        self.contents[d] = {
            "blobs": [],
            "children": [e["digest"] for e in entries],
            "subject": subject,
        }
        return d

    def multiarch(
        self,
        repo: str,
        tag: str | None,
        *,
        kind: str = "oci",
        arches: int = 2,
        age: float | None = None,
    ) -> Digest:
        """A multi-arch image: ``arches`` untagged platform images under a tagged index."""
        children = [
            self.image(repo, None, kind="docker" if kind == "docker" else "oci", age=age)
            for _ in range(arches)
        ]
        return self.index(repo, tag, children, kind=kind, age=age)

    def upload(
        self, repo: str, *, size: int = 100, age: float | None = None, upload_id: str | None = None
    ) -> str:
        """An unfinished upload: data, startedat, a hash state."""
        uid = upload_id or str(uuidlib.UUID(int=self.rng.getrandbits(128)))
        r = Repository(repo)
        self.put(UploadFile(r, uid, "data").path, self.random_bytes(size), age)
        self.put(UploadFile(r, uid, "startedat").path, b"2026-01-01T00:00:00Z", age)
        self.put(UploadFile(r, uid, "hashstates/sha256/0").path, b"state", age)
        return uid

    # -- derived views -------------------------------------------------------

    def paths(self, prefix: str = "") -> set[str]:
        """Every file path under ``prefix``."""
        return {p for p in self.files if p.startswith(prefix)}

    # -- writing -------------------------------------------------------------

    def write_local(self, root: str | os.PathLike[str], now: float | None = None) -> None:
        """Write the tree under a local directory, with mtimes = now - age."""
        now = time.time() if now is None else now
        for path, data in self.files.items():
            full = os.path.join(os.fspath(root), path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
            t = now - self.ages.get(path, self.default_age)
            os.utime(full, (t, t))

    def write_fs(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        """Write the tree through an fsspec filesystem (mtimes are whatever the store sets)."""
        root = root.rstrip("/")
        fs.pipe({f"{root}/{p}" if root else p: data for p, data in self.files.items()})

    def write_keys(self, put: Callable[[str, bytes], object], root: str = "") -> None:
        """Write the tree with ``put(key, data)``, from threads outside coverage.

        For an object store's own client (``S3Server.putter``, ``FakeGCS.put``, the
        Azure SDK): :func:`tests.rigs.procs.put_untraced`. Times are the store's.
        """
        root = root.strip("/")
        put_untraced(put, {f"{root}/{p}" if root else p: data for p, data in self.files.items()})
