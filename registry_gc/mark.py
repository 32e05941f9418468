"""Mark: which manifests, layer links and blobs are live. Pure: data in, data out.

Per repository, the roots are every tag's ``current`` manifest and — without
``delete_untagged`` — every revision; revisions younger than the grace period
are roots too. From the roots, marking follows index/list children and the
reverse ``subject`` edge (a referrer whose subject is live is live). Blob
marks are global by digest; manifest and ``_layers`` marks are per
repository. Anything written within the grace period protects what it points
at, so a push racing the collector keeps its blobs.

Problems that make a sweep unsafe (a live manifest that cannot be parsed, a
store with blobs but no manifest at all) are collected in
:attr:`Marks.problems`; the planner refuses to produce deletions when there
are any.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import attrs

from .fetch import Unreadable
from .inventory import Anomaly
from .layout import Digest, RevisionLink, TagCurrentLink, blob_path
from .manifests import Manifest

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry
    from .layout import Repository, Tag

__all__ = ["Marks", "mark"]


@attrs.define
class Marks:
    """The result of marking."""

    #: live manifests, per repository
    live: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: ``_layers`` link digests (as written in manifests) each repository needs
    needed_links: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: live blobs, global by digest (manifests, configs, layers)
    blobs: set[Digest] = attrs.Factory(set)
    #: blobs kept only because something written within the grace period references them
    grace_blobs: set[Digest] = attrs.Factory(set)
    #: untagged manifests kept only because of the grace period (with what they reach)
    grace_live: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: ``_layers`` links kept only for ``grace_live`` manifests
    grace_links: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: reasons not to sweep at all; each names its object
    problems: list[str] = attrs.Factory(list)
    anomalies: list[Anomaly] = attrs.Factory(list)


def _canonical(repo: RepositoryEntry, digest: Digest) -> Digest | None:
    """The blob a reference resolves to in ``repo`` (alias links name sha256 blobs)."""
    if digest.algorithm == "sha256":
        return digest
    return repo.layer_aliases.get(digest)


def mark(
    inventory: Inventory,
    manifests: ManifestTable,
    *,
    delete_untagged: bool,
    cutoff: float,
    allow_no_manifests: bool = False,
    removed_tags: Mapping[Repository, Collection[Tag]] | None = None,
    removed_repositories: Collection[Repository] = (),
    removed_manifests: Mapping[Repository, Collection[Digest]] | None = None,
) -> Marks:
    """Mark everything live in ``inventory``.

    ``cutoff`` is a timestamp (seconds since the epoch): objects modified after
    it are inside the grace period and protect what they reference.
    ``removed_*`` are explicit removals: removed repositories mark nothing,
    removed tags are no roots, removed manifests are no roots (and the tags
    pointing at them are no roots either, as when distribution deletes a
    manifest by digest).
    """
    marks = Marks()
    manifest_count = 0
    removed_tags = removed_tags or {}
    removed_manifests = removed_manifests or {}
    gone = set(removed_repositories)
    for repo in inventory.repositories.values():
        manifest_count += len(repo.revisions) + sum(
            1 for t in repo.tags.values() if t.current is not None
        )
        if repo.name in gone and repo.name_problem is None:
            marks.live[repo.name] = set()
            marks.needed_links[repo.name] = set()
            continue
        _mark_repository(
            repo,
            inventory,
            manifests,
            marks,
            delete_untagged=delete_untagged,
            cutoff=cutoff,
            skip_tags=set(removed_tags.get(repo.name, ())),
            skip_manifests=set(removed_manifests.get(repo.name, ())),
        )
    marks.grace_blobs -= marks.blobs
    marks.blobs |= marks.grace_blobs
    if manifest_count == 0 and len(inventory.blobs) > 0 and not allow_no_manifests:
        marks.problems.append(
            f"{inventory.url}: found {len(inventory.blobs)} blobs but not a single manifest "
            "(no revision link, no tag) — is this the registry's root directory, and is every "
            "repository readable? registry-gc will not delete every blob on that evidence; "
            "if the registry really holds no image any more, run again with "
            "--allow-no-manifests"
        )
    return marks


def _mark_repository(
    repo: RepositoryEntry,
    inventory: Inventory,
    manifests: ManifestTable,
    marks: Marks,
    *,
    delete_untagged: bool,
    cutoff: float,
    skip_tags: set[Tag],
    skip_manifests: set[Digest],
) -> None:
    name = repo.name
    protect_all = repo.name_problem is not None
    if protect_all:
        skip_tags, skip_manifests = set(), set()
    blobs_present = inventory.blobs

    roots: list[Digest] = [
        t.current
        for t in repo.tags.values()
        if t.current is not None and t.name not in skip_tags and t.current not in skip_manifests
    ]
    for t in repo.tags.values():
        if t.current is None and t.name not in skip_tags:
            # The current link is missing or unreadable: what the tag points at is
            # unknown, so everything it ever pointed at stays.
            roots.extend(d for d in t.index if d not in skip_manifests)
    tag_targets = set(roots)
    fresh: list[Digest] = []
    for digest, mtime in repo.revisions.items():
        if digest in skip_manifests:
            continue
        if protect_all or (not delete_untagged and digest in blobs_present):
            # Every revision is a root, except one whose manifest blob is gone:
            # that link is dangling and cannot be served.
            roots.append(digest)
        elif mtime > cutoff:
            fresh.append(digest)

    referrers: dict[Digest, list[Digest]] = defaultdict(list)
    for digest in repo.revisions:
        m = manifests.get(digest)
        if isinstance(m, Manifest) and m.subject is not None:
            referrers[m.subject].append(digest)

    def walk(
        start: list[Digest], seen: set[Digest], blobs: set[Digest], links: set[Digest]
    ) -> None:
        """Mark what ``start`` reaches (children, referrers) into ``seen``/``blobs``/``links``."""
        stack = list(start)
        while stack:
            digest = stack.pop()
            if digest in seen or digest in live:
                continue
            seen.add(digest)
            stack.extend(referrers.get(digest, ()))
            m = manifests.get(digest)
            if isinstance(m, Manifest):
                blobs.add(digest)
                for ref in m.blobs:
                    links.add(ref)
                    blob = _canonical(repo, ref)
                    if blob is not None:
                        blobs.add(blob)
                    absent = ref not in blobs_present and (
                        blob is None or blob not in blobs_present
                    )
                    if absent and ref not in m.foreign:
                        marks.anomalies.append(
                            Anomaly(
                                "missing-blob",
                                blob_path(blob or ref),
                                f"manifest {digest} in repository {name!r} references blob "
                                f"{ref}, which is not in the store: that image cannot be pulled",
                                name,
                            )
                        )
                for child in m.children:
                    stack.append(child.digest)
                    if child.digest not in repo.revisions:
                        marks.anomalies.append(
                            Anomaly(
                                "child-not-in-repository",
                                RevisionLink(name, child.digest).path,
                                f"index {digest} in repository {name!r} lists {child.digest}, "
                                "which has no revision link in the repository: that platform "
                                "cannot be pulled (its blobs are kept)",
                                name,
                            )
                        )
            elif isinstance(m, Unreadable) and not m.missing:
                blobs.add(digest)
                marks.problems.append(
                    f"live manifest {digest} in repository {name!r} cannot be used: {m.error}. "
                    "registry-gc cannot know what it references, so it deletes nothing; delete "
                    f"the revision (registry-gc rm {name}@{digest}) or restore the manifest"
                )
            else:
                # The manifest blob is missing. Keep the links that name it.
                where = "a tag" if digest in tag_targets else "an index or a referrer"
                marks.anomalies.append(
                    Anomaly(
                        "missing-manifest",
                        blob_path(digest),
                        f"manifest {digest} in repository {name!r}, needed by {where}, is "
                        "missing from the store: that image cannot be pulled",
                        name,
                    )
                )

    live: set[Digest] = set()
    needed: set[Digest] = set()
    walk(roots, live, marks.blobs, needed)
    # Untagged revisions written within the grace period are kept, with all
    # they reach, but reported as kept for the grace rather than as live.
    grace_live: set[Digest] = set()
    grace_links: set[Digest] = set()
    walk(fresh, grace_live, marks.grace_blobs, grace_links)
    marks.grace_live[name] = grace_live
    marks.grace_links[name] = grace_links - needed

    for tag in repo.tags.values():
        if tag.current is not None and tag.current not in repo.revisions:
            marks.anomalies.append(
                Anomaly(
                    "tag-without-revision",
                    TagCurrentLink(name, tag.name).path,
                    f"tag {tag.name!r} in repository {name!r} points at {tag.current}, which has "
                    "no revision link in the repository: the tag cannot be pulled",
                    name,
                )
            )

    # Legacy signature links of live revisions stay, so their blobs stay.
    for revision, sigs in repo.signatures.items():
        if revision in live or protect_all:
            marks.blobs.update(d for d, _ in sigs)

    # A link written within the grace period (or any link of a repository we
    # never touch) protects its blob.
    for digest, mtime in repo.layers.items():
        if protect_all or mtime > cutoff:
            blob = _canonical(repo, digest)
            if blob is not None:
                (marks.blobs if protect_all else marks.grace_blobs).add(blob)
            if protect_all:
                needed.add(digest)

    marks.live[name] = live
    marks.needed_links[name] = needed
