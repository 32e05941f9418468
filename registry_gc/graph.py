"""One walk of a repository's manifest graph, as the registry resolves it. Pure.

From some starting manifests, :func:`walk` follows index entries (children),
the reverse ``subject`` edge (a referrer of a reached manifest is reached),
and the digests of bodies whose reading is ambiguous, and collects what the
repository must keep for those manifests to be served: manifest blobs, the
blobs they reference, and the ``_layers`` links a pull goes through.

It reads the repository as distribution does:

- a manifest is served if the repository links it through
  ``_manifests/revisions`` **or** ``_layers`` (``manifestLinkPathFns``:
  registry 2.1.0 linked manifests under ``_layers``), so a known-kind
  manifest linked only under ``_layers`` is a revision (:attr:`Graph.legacy`);
- an index entry whose media type is not a manifest type (a BuildKit cache
  lists layer blobs) is a blob to keep, not a manifest to parse; one with no
  media type is a manifest when it reads as one, else a blob;
- what it cannot read where a manifest must be — a missing manifest, one
  distribution cannot decode, a kind it does not know — is reported in
  :attr:`Reach.damage` / :attr:`Reach.uncertain`, for the caller to decide
  (the collector keeps everything such a repository links).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING

import attrs

from ._columns import LinkTimes
from .fetch import ManifestTable, Unreadable, is_manifest
from .manifests import Manifest

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Mapping

    from ._manifest_table import Entry
    from .inventory import BlobTable, RepositoryEntry
    from .layout import Digest

__all__ = ["Graph", "Reach", "Role", "walk"]


class Role(enum.Enum):
    """How the walk reached a digest: what it is expected to be."""

    TAG = "a tag"
    ROOT = "a revision kept as a root"
    HISTORY = "the history of a tag whose current link is broken"
    CHILD = "an index"  #: an entry with a manifest media type
    CHILD_UNTYPED = "an index entry without a media type"
    CHILD_BLOB = "an index entry that is a blob"
    REFERRER = "a referrer of a kept manifest"
    NAMED = "an ambiguous manifest body"

    @property
    def expects_manifest(self) -> bool:
        """Whether something that is not a readable manifest here is damage."""
        return self not in {Role.CHILD_BLOB, Role.NAMED, Role.CHILD_UNTYPED}


@attrs.frozen
class Graph:
    """A repository's manifests as the registry resolves them."""

    repo: RepositoryEntry
    table: ManifestTable
    present: BlobTable
    #: manifests linked only under ``_layers`` (registry 2.1.0): digest → link mtime
    legacy: dict[Digest, float]
    #: revisions and legacy revisions: digest → link mtime
    manifests: dict[Digest, float]
    #: subject digest → the manifests of this repository that refer to it
    referrers: dict[Digest, list[Digest]]

    @classmethod
    def of(cls, repo: RepositoryEntry, table: ManifestTable, present: BlobTable) -> Graph:
        """Build the graph of ``repo`` from the fetched manifests."""
        layers = repo.layers
        if (
            isinstance(table, ManifestTable)
            and isinstance(layers, LinkTimes)
            and layers.index is table.index
        ):
            # By id: a layer link is rarely a manifest, and its digest is made only if it is.
            index, revisions = table.index, repo.revisions
            legacy = {
                index.digest(i): mtime
                for i, mtime in zip(layers.ids(), layers.times(), strict=True)
                if table.is_manifest_id(i)
                and index.is_sha256(i)
                and index.digest(i) not in revisions
            }
        else:
            legacy = {
                d: mtime
                for d, mtime in layers.items()
                if d.algorithm == "sha256" and d not in repo.revisions and is_manifest(table.get(d))
            }
        manifests = {**repo.revisions, **legacy}
        if legacy or not _in_digest_order(repo.revisions):
            # Walks start from these in this order, and the first way a walk reaches a
            # missing manifest names it in the report: the same order whatever was listed.
            manifests = dict(sorted(manifests.items()))
        referrers: dict[Digest, list[Digest]] = defaultdict(list)
        # A table gives the subjects alone, making no Manifest (that was a third of graph.of).
        subject_of = table.subject if isinstance(table, ManifestTable) else partial(_subject, table)
        for digest in manifests:
            subject = subject_of(digest)
            if subject is not None:
                referrers[subject].append(digest)
        return cls(repo, table, present, legacy, manifests, dict(referrers))

    def canonical(self, ref: Digest) -> Digest | None:
        """The blob a reference resolves to here (alias links name sha256 blobs)."""
        if ref.algorithm == "sha256":
            return ref
        return self.repo.layer_aliases.get(ref)

    def is_manifest_here(self, digest: Digest) -> bool:
        """Whether the registry would serve ``digest`` as a manifest of this repository."""
        return digest in self.manifests or (
            digest in self.repo.layers and is_manifest(self.table.get(digest))
        )


def _subject(table: Mapping[Digest, Entry], digest: Digest) -> Digest | None:
    """The subject of manifest ``digest`` in a plain mapping of entries."""
    m = table.get(digest)
    return m.subject if isinstance(m, Manifest) else None


def _in_digest_order(links: LinkTimes | dict[Digest, float]) -> bool:
    """Whether ``links`` iterate in digest order: ids of the index's sorted part only."""
    if not isinstance(links, LinkTimes):
        return False
    ids = links.ids()
    return not ids or ids[-1] < links.index.sorted_count


@attrs.frozen
class Missing:
    """A reference whose blob is not in the store."""

    manifest: Digest
    ref: Digest
    blob: Digest | None


@attrs.frozen
class Damage:
    """A manifest the walk needed and could not use."""

    digest: Digest
    role: Role
    #: why: "missing", or the decoding error
    problem: str
    missing: bool


@attrs.define
class Reach:
    """What a walk reached."""

    #: manifests reached (they must stay served)
    manifests: set[Digest] = attrs.Factory(set)
    #: blobs to keep (manifests, configs, layers, blob entries), canonical digests
    blobs: set[Digest] = attrs.Factory(set)
    #: ``_layers`` link digests (as named) to keep: those a pull goes through, the
    #: canonical links of aliases, and the links of manifests (2.1.0 revisions)
    links: set[Digest] = attrs.Factory(set)
    #: the subset of ``links`` a pull needs: configs, layers and blob entries as named
    #: (a foreign layer's link only when its blob is present)
    required: set[Digest] = attrs.Factory(set)
    missing: list[Missing] = attrs.Factory(list)
    damage: list[Damage] = attrs.Factory(list)
    #: reached manifests of a kind distribution does not know
    uncertain: list[Digest] = attrs.Factory(list)
    #: (index, child) pairs whose child manifest has no link in the repository
    unlinked_children: list[tuple[Digest, Digest]] = attrs.Factory(list)


def walk(
    graph: Graph,
    start: Iterable[tuple[Digest, Role]],
    *,
    skip: Collection[Digest] = (),
    into: Reach | None = None,
    referrers: bool = True,
) -> Reach:
    """Everything ``start`` reaches in ``graph``; ``skip`` holds manifests already walked.

    With ``into``, the walk adds to that result and does not walk again what
    it already holds. ``referrers=False`` follows children only, not the
    reverse ``subject`` edge (what one image is made of, without its signatures).
    """
    reach = into if into is not None else Reach()
    seen = reach.manifests
    table = graph.table
    stack = list(start)
    while stack:
        digest, role = stack.pop()
        if digest in seen or digest in skip:
            continue
        m = table.get(digest)
        if not role.expects_manifest and not graph.is_manifest_here(digest) and not is_manifest(m):
            _reach_blob(graph, reach, digest, role)
            continue
        seen.add(digest)
        reach.blobs.add(digest)
        reach.links.add(digest)  # a legacy revision's link; a manifest downloadable as a blob
        if referrers:
            stack.extend((r, Role.REFERRER) for r in graph.referrers.get(digest, ()))
        if isinstance(m, Unreadable) or m is None:
            missing = m is None or m.missing
            problem = "missing" if missing else m.error  # type: ignore[union-attr]
            reach.damage.append(Damage(digest, role, problem, missing=missing))
            continue
        if m.uncertain:
            reach.uncertain.append(digest)
        _reach_references(graph, reach, digest, m)
        stack.extend(_children(graph, reach, digest, m))
        stack.extend((x, Role.NAMED) for x in m.extra)
    return reach


def _reach_blob(graph: Graph, reach: Reach, digest: Digest, role: Role) -> None:
    """Reach ``digest`` as a blob (an entry that is one, or a name that is no manifest here).

    Its bytes and its link are kept; the walk looks no further.
    """
    present = digest in graph.present
    if role is Role.CHILD_UNTYPED and not present:
        reach.damage.append(Damage(digest, role, "missing", missing=True))
    elif role is Role.CHILD_BLOB and not present:
        reach.missing.append(Missing(digest, digest, None))
    if role is not Role.NAMED or present:
        reach.links.add(digest)
        reach.blobs.add(digest)
    if role is Role.CHILD_BLOB:
        reach.required.add(digest)


def _reach_references(graph: Graph, reach: Reach, digest: Digest, m: Manifest) -> None:
    """Reach the blobs manifest ``digest`` references (config, layers), and their links."""
    present = graph.present
    for ref in m.blobs:
        reach.links.add(ref)
        blob = graph.canonical(ref)
        if ref not in m.foreign or (blob is not None and blob in present):
            reach.required.add(ref)
        if blob is not None:
            reach.blobs.add(blob)
            # Named by an alias (sha384/sha512): the registry also wrote, and may
            # resolve through, the canonical sha256 link.
            reach.links.add(blob)
        absent = ref not in present and (blob is None or blob not in present)
        if absent and ref not in m.foreign:
            reach.missing.append(Missing(digest, ref, blob))


def _children(
    graph: Graph, reach: Reach, digest: Digest, m: Manifest
) -> Iterator[tuple[Digest, Role]]:
    """The entries of index ``digest``, each with the role its media type gives it."""
    for child in m.children:
        if child.is_blob:
            yield child.digest, Role.CHILD_BLOB
        elif child.media_type is None:
            yield child.digest, Role.CHILD_UNTYPED
        else:
            if not graph.is_manifest_here(child.digest):
                reach.unlinked_children.append((digest, child.digest))
            yield child.digest, Role.CHILD
