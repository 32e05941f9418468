"""A mixed registry for object-store end-to-end tests, and an independent oracle of what survives.

:func:`mixed_registry` builds re-pushed tags, a multi-arch image, referrers
(on live and on garbage manifests, and a referrer of a referrer), layers
shared across repositories, an untagged repository, a stray blob and uploads.
:func:`live_blobs` computes, from the builder's own record of what it wrote
(tag links, revision links, children, subjects) and without registry-gc, the
blobs a ``collect(delete_untagged=True, grace=0)`` must keep.

For the module suites: :func:`repushed` (one tag pushed again and again) and
:func:`rich` (garbage of every kind, in many repositories); for the request
counts of the object-store backends: :func:`many_repositories` (26 of them).
"""

from __future__ import annotations

from registry_gc.layout import BlobData, Digest, LegacySignatureLink, Repository

from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.stores import DAY, rev

_REPOS = "docker/registry/v2/repositories/"


def mixed_registry(seed: int = 5) -> RegistryBuilder:
    """About 300 files over 5 repositories, with every kind of live and garbage object."""
    b = RegistryBuilder(seed=seed)
    base = b.layer("library/alpine")
    b.image("library/alpine", "3.20", layers=2, shared=[base])
    old = b.image("library/alpine", "3.21", layers=1, shared=[base])
    b.referrer("library/alpine", old)  # its subject is overwritten below: garbage
    current = b.image("library/alpine", "3.21", layers=1, shared=[base])
    sbom = b.referrer("library/alpine", current, "application/spdx+json")
    b.referrer("library/alpine", sbom)  # a signature of the SBOM: live through the chain
    for _ in range(3):
        api = b.image("team/api", "latest", layers=3, shared=[base], kind="docker")
    b.referrer("team/api", api)
    b.multiarch("team/web", "1.0", arches=3)
    b.multiarch("team/web", None, arches=2)  # an untagged index: it and its children go
    gone = b.image("old/gone", "v1", layers=2, shared=[base])
    b.referrer("old/gone", gone)
    b.untag("old/gone", "v1")
    b.upload("team/api")
    b.upload("team/web", size=300)
    b.blob(b"a stray blob nothing links")
    return b


def live_blobs(b: RegistryBuilder) -> set[Digest]:
    """The digests of the blobs that must survive collecting ``b`` with ``delete_untagged``.

    Roots are the tags' ``current`` manifests; an index keeps its children; a
    revision whose subject is live in its repository is live; a live manifest
    keeps its own blob, its config and layers. Blobs are kept globally by digest.
    """
    revisions: dict[str, set[Digest]] = {}
    roots: set[tuple[str, Digest]] = set()
    for path, data in b.files.items():
        if not path.startswith(_REPOS):
            continue
        rest = path[len(_REPOS) :]
        if "/_manifests/revisions/" in rest:
            repo = rest.split("/_manifests/")[0]
            revisions.setdefault(repo, set()).add(Digest(data.decode()))
        elif rest.endswith("/current/link") and "/_manifests/tags/" in rest:
            roots.add((rest.split("/_manifests/")[0], Digest(data.decode())))
    live: set[tuple[str, Digest]] = set()
    stack = list(roots)
    while stack:
        while stack:
            repo, digest = stack.pop()
            if (repo, digest) in live:
                continue
            live.add((repo, digest))
            stack.extend((repo, c) for c in b.contents.get(digest, {}).get("children", ()))
        stack = [
            (repo, r)
            for repo, revs in revisions.items()
            for r in revs
            if (repo, r) not in live
            and (subject := b.contents.get(r, {}).get("subject")) is not None
            and (repo, subject) in live
        ]
    kept = {d for _, d in live}
    for _, d in live:
        kept.update(b.contents.get(d, {}).get("blobs", ()))
    return kept


def blob_paths(digests: set[Digest]) -> set[str]:
    """The ``blobs/…/data`` paths of ``digests``."""
    return {BlobData(d).path for d in digests}


def repushed(b: RegistryBuilder, n: int = 5) -> tuple[Digest, list[Digest]]:
    """``app:latest`` pushed ``n`` times over a shared base layer."""
    base = b.layer("app")
    return base, [b.image("app", "latest", shared=[base]) for _ in range(n)]


def rich(b: RegistryBuilder) -> None:
    """A registry with garbage of every kind, in many repositories."""
    base, _ = repushed(b, 3)
    b.multiarch("multi", "latest")
    b.multiarch("multi", None, kind="docker")
    img = b.image("ref", "v1")
    b.referrer("ref", b.referrer("ref", img))
    b.referrer("ref", b.image("ref", None))
    layer = b.layer("x")
    b.image("x", None, shared=[layer, base])
    b.image("y", "t", shared=[layer])
    b.image("e", None)
    b.image("e/n", "t")
    b.layer("aborted")
    b.upload("aborted", age=3 * DAY)
    b.upload("y", age=3 * DAY)
    b.link_layer("y", sha256(b"ghost"))
    b.put(rev("y", sha256(b"ghost manifest")), sha256(b"ghost manifest").encode())
    old = b.image("old", None)
    sig = b.blob(b"legacy signature")
    b.put(LegacySignatureLink(Repository("old"), old, sig).path, sig.encode())
    b.blob(b"orphan")


def many_repositories() -> RegistryBuilder:
    """About 1,500 keys: re-pushed tags, multi-arch images, referrers, uploads, 26 repositories."""
    b = RegistryBuilder(seed=7)
    shared = [b.layer("base") for _ in range(3)]
    for i in range(26):
        repo = f"{chr(ord('a') + i)}{i}/app"
        for _ in range(3):  # the last push wins the tag
            img = b.image(repo, "latest", layers=4, shared=shared[: i % 3])
        b.referrer(repo, img)
        if i % 4 == 0:
            b.multiarch(repo, "multi", arches=2)
        if i % 5 == 0:
            b.upload(repo)
    return b
