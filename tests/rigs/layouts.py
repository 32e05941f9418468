"""Layouts the registry serves that a plain reading gets wrong: 2.1.0 revisions, BuildKit caches."""

from __future__ import annotations

from registry_gc.layout import BlobData, Digest, Repository, RevisionLink

from tests.rigs.builder import OCI_INDEX, OCI_LAYER, RegistryBuilder


def legacy(b: RegistryBuilder, repo: str, tag: str | None) -> Digest:
    """An image as registry 2.1.0 stored it: the manifest linked under _layers, no revision link."""
    d = b.image(repo, tag)
    b.remove(RevisionLink(Repository(repo), d).path)
    b.link_layer(repo, d)
    return d


def buildkit_cache(b: RegistryBuilder, repo: str, tag: str | None) -> tuple[Digest, list[Digest]]:
    """A BuildKit registry cache: an index whose entries are layer blobs and a cache config."""
    blobs = [b.layer(repo), b.layer(repo), b.layer(repo, b'{"layers": [], "records": []}')]
    types = [OCI_LAYER, OCI_LAYER, "application/vnd.buildkit.cacheconfig.v0"]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": t, "digest": x, "size": len(b.files[BlobData(x).path])}
            for t, x in zip(types, blobs, strict=True)
        ],
    }
    return b.manifest(repo, doc, tag), blobs
