"""Mark: which manifests, layer links and blobs are live. Pure: data in, data out.

Per repository, the roots are every tag's ``current`` manifest and — without
``delete_untagged`` — every revision (including manifests registry 2.1.0
linked under ``_layers``); revisions younger than the grace period are kept
too. From the roots, :func:`registry_gc.graph.walk` follows index entries
and the reverse ``subject`` edge (a referrer whose subject is live is live).
Blob marks are global by digest; manifest and ``_layers`` marks are per
repository. Anything written within the grace period protects what it
points at, so a push racing the collector keeps its blobs.

A repository the run cannot fully read is **damaged**: a tag, index entry or
revision whose manifest is missing, an untagged revision that cannot be
decoded (it may be a referrer), or a live manifest of a kind distribution
does not know. Nobody can tell what its images need, so everything it links
is kept (:attr:`Marks.damaged` says why), unless the caller opts in with
``prune_damaged``. A live manifest that is present but cannot be decoded,
and a store with blobs but not a single manifest, are refused outright
(:attr:`Marks.problems`): nothing is deleted anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._columns import IdFlags, IdSet
from ._digests import DigestIndex
from .fetch import ManifestTable, Unreadable
from .graph import Graph, Reach, Role, walk
from .inventory import Anomaly
from .layout import RevisionLink, TagCurrentLink, blob_path, repository_prefix
from .manifests import Manifest
from .options import Cutoffs, Options, Removals

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable, Collection, MutableSet
    from collections.abc import Set as AbstractSet

    from .inventory import BlobTable, Inventory, RepositoryEntry
    from .layout import Digest, Repository, Tag

__all__ = ["Marks", "mark", "no_manifests_problem"]


@attrs.define
class Marks:
    """The result of marking, with the options, removals and cut-offs it was made with."""

    options: Options = attrs.Factory(Options)
    removals: Removals = attrs.Factory(Removals)
    cutoffs: Cutoffs = attrs.Factory(lambda: Cutoffs(0.0, 0.0, 0.0))

    #: live manifests, per repository (:func:`mark` gives compact, frozen sets of ids)
    live: dict[Repository, AbstractSet[Digest]] = attrs.Factory(dict)
    #: ``_layers`` link digests (as written in manifests) each repository needs
    needed_links: dict[Repository, AbstractSet[Digest]] = attrs.Factory(dict)
    #: live blobs, global by digest (manifests, configs, layers); from :func:`mark`, a
    #: byte per digest id of the inventory
    blobs: MutableSet[Digest] = attrs.Factory(set)
    #: blobs kept only because something written within the grace period references them
    grace_blobs: set[Digest] = attrs.Factory(set)
    #: untagged manifests kept only because of the grace period (with what they reach)
    grace_live: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: ``_layers`` links kept only for ``grace_live`` manifests
    grace_links: dict[Repository, set[Digest]] = attrs.Factory(dict)
    #: manifests linked only under ``_layers`` (registry 2.1.0), per repository: digest → mtime
    legacy: dict[Repository, dict[Digest, float]] = attrs.Factory(dict)
    #: repositories kept whole because they cannot be fully read: the reasons, each naming
    #: its object
    damaged: dict[Repository, list[str]] = attrs.Factory(dict)
    #: reasons not to sweep at all; each names its object
    problems: list[str] = attrs.Factory(list)
    anomalies: list[Anomaly] = attrs.Factory(list)


def mark(
    inventory: Inventory,
    manifests: ManifestTable,
    options: Options | None = None,
    *,
    removals: Removals | None = None,
    now: datetime.datetime | None = None,
    live_elsewhere: Collection[Digest] = (),
) -> Marks:
    """Mark everything live in ``inventory``.

    ``options`` decide the roots (``delete_untagged``), the grace period,
    whether damaged repositories are collected (``prune_damaged``) and whether
    a store without manifests may be swept; ``removals`` are explicit removals
    (``rm``, retention policies). The grace period counts back from ``now``
    (default: when the listing started). The result carries all three, so that
    :func:`~registry_gc.plan.make_plan` plans with exactly what marking used.

    ``live_elsewhere`` are manifests live in repositories ``inventory`` does not
    hold (it holds part of the store: :mod:`registry_gc.distributed`): their
    referrers here are live too, as a subject live in any repository makes them.
    """
    options = options or Options()
    removals = removals or Removals()
    cutoffs = options.cutoffs(now or inventory.started)
    index = inventory.index
    marks = Marks(options=options, removals=removals, cutoffs=cutoffs, blobs=IdFlags(index))
    manifest_count = 0
    workers: list[_Referrers] = []
    for repo in inventory.repositories.values():
        graph = Graph.of(repo, manifests, inventory.blobs)
        manifest_count += len(graph.manifests) + sum(
            1 for t in repo.tags.values() if t.current is not None
        )
        if graph.legacy:
            marks.legacy[repo.name] = graph.legacy
        if repo.name in removals.repositories and repo.name_problem is None:
            marks.live[repo.name] = IdSet(index)
            marks.needed_links[repo.name] = IdSet(index)
            continue
        worker = _Repository(
            graph,
            marks,
            delete_untagged=options.delete_untagged,
            cutoff=cutoffs.grace,
            prune_damaged=options.prune_damaged,
            skip_tags=set(removals.tags_of(repo.name)),
            skip_manifests=set(removals.manifests_of(repo.name)),
        )
        worker.mark()
        referrers = worker.referrers()
        if referrers is not None:
            workers.append(referrers)
    _referrers_across_repositories(workers, marks, live_elsewhere)
    marks.grace_blobs = {d for d in marks.grace_blobs if d not in marks.blobs}
    marks.blobs |= marks.grace_blobs
    if manifest_count == 0 and len(inventory.blobs) > 0 and not options.allow_no_manifests:
        marks.problems.append(no_manifests_problem(inventory.url, len(inventory.blobs)))
    return marks


def no_manifests_problem(url: str, blobs: int) -> str:
    """Why a store with ``blobs`` blobs and not one manifest is not swept."""
    return (
        f"{url}: found {blobs} blobs but not a single manifest "
        "(no revision link, no tag) — is this the registry's root directory, and is every "
        "repository readable? registry-gc will not delete every blob on that evidence; "
        "if the registry really holds no image any more, run again allowing a store "
        "without manifests (allow_no_manifests)"
    )


def _referrers_across_repositories(
    workers: list[_Referrers], marks: Marks, live_elsewhere: Collection[Digest] = ()
) -> None:
    """Keep referrers whose subject is live in another repository, until nothing changes.

    A subject names a manifest by digest; OCI puts the referrer in the subject's
    repository, but cosign's ``COSIGN_REPOSITORY`` (and other tools) put
    signatures, attestations and SBOMs in a repository of their own.
    """
    if not workers:
        return
    index = _index_of(marks)
    flags = bytearray(len(index))
    everything: set[Digest] = set(live_elsewhere)
    for live in marks.live.values():
        if isinstance(live, IdSet) and live.index is index:
            for i in live.ids():
                flags[i] = 1
        else:
            everything.update(live)

    def first(subject: Digest) -> bool:
        if subject in everything:
            return True
        i = index.find(subject)
        return 0 <= i < len(flags) and flags[i] == 1

    frontier: Callable[[Digest], bool] = first
    while True:
        added: set[Digest] = set()
        for worker in workers:
            added |= worker.adopt(frontier)
        if not added:
            return
        frontier = added.__contains__


@attrs.frozen
class _Referrers:
    """A marked repository that holds referrers: what adopting more of them takes.

    (Not the graph itself: rebuilt when needed, so that a million revisions are
    not held by every repository at once.)
    """

    repo: RepositoryEntry
    table: ManifestTable
    present: BlobTable
    marks: Marks
    skip_manifests: set[Digest]
    #: subject → the manifests here that refer to it
    referrers: dict[Digest, list[Digest]]

    def adopt(self, subjects: Callable[[Digest], bool]) -> set[Digest]:
        """Walk the referrers here whose subject ``subjects`` holds; return what became live."""
        name = self.repo.name
        live = self.marks.live[name]
        start = [
            (r, Role.REFERRER)
            for subject, referrers in self.referrers.items()
            if subjects(subject)
            for r in referrers
            if r not in live and r not in self.skip_manifests
        ]
        if not start:
            return set()
        reach = walk(Graph.of(self.repo, self.table, self.present), start, skip=live)
        marks = self.marks
        marks.blobs |= reach.blobs
        index = _index_of(marks)
        marks.live[name] = IdSet.of(index, (*live, *reach.manifests))
        marks.needed_links[name] = IdSet.of(index, (*marks.needed_links[name], *reach.links))
        return reach.manifests


def _index_of(marks: Marks) -> DigestIndex:
    """The index the marks' sets use (a fresh one for marks built by hand)."""
    return marks.blobs.index if isinstance(marks.blobs, IdFlags) else DigestIndex()


@attrs.define
class _Repository:
    """Marking one repository."""

    graph: Graph
    marks: Marks
    delete_untagged: bool
    cutoff: float
    prune_damaged: bool
    skip_tags: set[Tag]
    skip_manifests: set[Digest]

    @property
    def repo(self) -> RepositoryEntry:
        return self.graph.repo

    def roots(self, *, protect: bool) -> list[tuple[Digest, Role]]:
        repo, skip_tags, skip_manifests = self.repo, self.skip_tags, self.skip_manifests
        # By name, not in listing order: what a walk reaches first is reported.
        tags = sorted(repo.tags.values(), key=lambda t: t.name)
        roots = [
            (t.current, Role.TAG)
            for t in tags
            if t.current is not None and t.name not in skip_tags and t.current not in skip_manifests
        ]
        for t in tags:
            if t.name not in skip_tags and (t.current is None or protect):
                # The current link is missing or unreadable: what the tag points at is
                # unknown, so everything it ever pointed at stays.
                roots.extend((d, Role.HISTORY) for d in t.index if d not in skip_manifests)
        present = self.graph.present
        for digest in self.graph.manifests:
            if digest in skip_manifests:
                continue
            if protect or (
                not self.delete_untagged and (digest in present or not self.prune_damaged)
            ):
                roots.append((digest, Role.ROOT))
        return roots

    def findings(self, live: Reach, fresh: Reach) -> list[Anomaly]:
        """What makes the repository impossible to read fully: one anomaly per manifest."""
        name, table = self.repo.name, self.graph.table
        out: dict[Digest, Anomaly] = {}

        def add(kind: str, digest: Digest, text: str) -> None:
            out.setdefault(digest, Anomaly(kind, blob_path(digest), text, name))

        for d in (*live.damage, *fresh.damage):
            if d.missing:
                add(
                    "missing-manifest",
                    d.digest,
                    f"manifest {d.digest}, needed by {d.role.value} in repository {name!r}, is "
                    "missing from the store: that image cannot be pulled",
                )
        for digest in sorted(self.graph.manifests):
            if digest in self.skip_manifests:
                continue
            # A table tells a parsed manifest without making it (nearly all of them are).
            if isinstance(table, ManifestTable) and table.holds_manifest(digest):
                continue
            m = table.get(digest)
            if isinstance(m, Manifest):
                continue
            if _missing(m):
                add(
                    "missing-manifest",
                    digest,
                    f"revision {digest} in repository {name!r} has no manifest blob: what it "
                    "referenced is unknown",
                )
            elif digest not in live.manifests:  # a live one is a refusal (see mark)
                add(
                    "undecodable-manifest",
                    digest,
                    f"untagged revision {digest} in repository {name!r} cannot be decoded "
                    f"({_why(m)}): it may be a referrer (a signature, an SBOM) of a live image",
                )
        for digest in live.uncertain:
            kind = table[digest]
            assert isinstance(kind, Manifest)
            add(
                "unknown-manifest-kind",
                digest,
                f"live manifest {digest} in repository {name!r} is of a kind distribution does "
                f"not know ({kind.media_type[:100]!r}): what it references is not known for sure",
            )
        return list(out.values())

    def mark(self) -> None:
        repo, marks = self.repo, self.marks
        name = repo.name
        protect = repo.name_problem is not None
        if protect:
            self.skip_tags, self.skip_manifests = set(), set()
        live, fresh_reach = self.walk(protect=protect)
        for d in live.damage:
            if not d.missing:
                # Live, present, and distribution cannot decode it either: nobody can know
                # what it needs, and it is not an input to guess about.
                marks.problems.append(
                    f"live manifest {d.digest} in repository {name!r} (needed by {d.role.value}) "
                    f"cannot be used: {d.problem}. registry-gc cannot know what it references, "
                    f"so it deletes nothing; delete the revision (registry-gc rm {name}@{d.digest})"
                    f" or restore the manifest ({blob_path(d.digest)})"
                )
        findings = [] if protect else self.findings(live, fresh_reach)
        if findings and not self.prune_damaged:
            marks.damaged[name] = [a.message for a in findings]
            shown = "; ".join(a.message for a in findings[:3])
            more = f"; and {len(findings) - 3} more" if len(findings) > 3 else ""
            marks.anomalies.extend(findings)
            marks.anomalies.append(
                Anomaly(
                    "damaged-repository",
                    repository_prefix(name),
                    f"repository {name!r} cannot be fully read, so registry-gc keeps everything "
                    f"it links: {shown}{more}. Restore or remove what is named (registry-gc rm "
                    f"{name}@<digest>), or run with prune_damaged to collect it as if what "
                    "cannot be read were absent",
                    name,
                )
            )
            protect = True
            live, fresh_reach = self.walk(protect=True, into=live)
        else:
            marks.anomalies.extend(
                attrs.evolve(a, message=f"{a.message}; collected anyway (prune_damaged)")
                for a in findings
            )
        self.report(live)
        needed = live.links
        # Legacy signature links of live revisions stay, so their blobs stay.
        for revision, sigs in repo.signatures.items():
            if revision in live.manifests or protect:
                marks.blobs |= {d for d, _ in sigs}
        self._fresh_links(needed, protect=protect)
        marks.blobs |= live.blobs
        marks.grace_blobs |= fresh_reach.blobs
        index = _index_of(marks)
        marks.live[name] = IdSet.of(index, live.manifests)
        marks.needed_links[name] = IdSet.of(index, needed)
        marks.grace_live[name] = fresh_reach.manifests
        marks.grace_links[name] = fresh_reach.links - needed

    def referrers(self) -> _Referrers | None:
        """What adopting referrers here later takes; ``None`` when the repository has none."""
        graph = self.graph
        if not graph.referrers:
            return None
        return _Referrers(
            graph.repo, graph.table, graph.present, self.marks, self.skip_manifests, graph.referrers
        )

    def _fresh_links(self, needed: set[Digest], *, protect: bool) -> None:
        """Protect the blobs of links written within the grace period.

        In a repository never touched (``protect``), every link is needed too.
        """
        marks, layers, graph = self.marks, self.repo.layers, self.graph
        name = layers.index.digest
        pairs = (
            (name(i), m)
            for i, m in zip(layers.ids(), layers.times(), strict=True)
            if protect or m > self.cutoff
        )
        for digest, _ in pairs:
            blob = graph.canonical(digest)
            if blob is not None:
                (marks.blobs if protect else marks.grace_blobs).add(blob)
            if protect:
                needed.add(digest)

    def walk(self, *, protect: bool, into: Reach | None = None) -> tuple[Reach, Reach]:
        """Walk from the roots, then — separately — from untagged revisions within the grace."""
        live = walk(self.graph, self.roots(protect=protect), into=into)
        fresh = [
            (d, Role.ROOT)
            for d, mtime in self.graph.manifests.items()
            if mtime > self.cutoff and d not in live.manifests and d not in self.skip_manifests
        ]
        # Untagged revisions written within the grace period are kept, with all they
        # reach, but reported as kept for the grace rather than as live.
        return live, walk(self.graph, fresh, skip=live.manifests)

    def report(self, live: Reach) -> None:
        name, anomalies = self.repo.name, self.marks.anomalies
        for miss in live.missing:
            anomalies.append(
                Anomaly(
                    "missing-blob",
                    blob_path(miss.blob or miss.ref),
                    f"manifest {miss.manifest} in repository {name!r} references blob "
                    f"{miss.ref}, which is not in the store: that image cannot be pulled",
                    name,
                )
            )
        for index, child in live.unlinked_children:
            anomalies.append(
                Anomaly(
                    "child-not-in-repository",
                    RevisionLink(name, child).path,
                    f"index {index} in repository {name!r} lists {child}, which has no revision "
                    "link in the repository: that platform cannot be pulled (its blobs are kept)",
                    name,
                )
            )
        for digest in sorted(live.manifests):
            m = self.graph.table.get(digest)
            ignored = (
                [n for n in m.notes if n.endswith("ignored")] if isinstance(m, Manifest) else []
            )
            if ignored:
                anomalies.append(
                    Anomaly(
                        "invalid-reference",
                        blob_path(digest),
                        f"manifest {digest} in repository {name!r}: {'; '.join(ignored[:5])} "
                        "(no blob can be stored under it; distribution did not verify it either)",
                        name,
                    )
                )
        for tag in self.repo.tags.values():
            if tag.current is not None and tag.current not in self.graph.manifests:
                anomalies.append(
                    Anomaly(
                        "tag-without-revision",
                        TagCurrentLink(name, tag.name).path,
                        f"tag {tag.name!r} in repository {name!r} points at {tag.current}, which "
                        "has no revision link in the repository: the tag cannot be pulled",
                        name,
                    )
                )
        for digest in sorted(self.graph.legacy):
            anomalies.append(
                Anomaly(
                    "legacy-revision",
                    f"{repository_prefix(name)}_layers/sha256/{digest.hex}/link",
                    f"manifest {digest} in repository {name!r} is linked under _layers, as "
                    "registry 2.1.0 linked manifests; distribution serves it from there, so it is "
                    "treated as a revision",
                    name,
                )
            )


def _missing(m: Manifest | Unreadable | None) -> bool:
    return m is None or (isinstance(m, Unreadable) and m.missing)


def _why(m: Manifest | Unreadable | None) -> str:
    return m.error if isinstance(m, Unreadable) else "unknown"
