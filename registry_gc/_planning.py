"""How :func:`~registry_gc.plan.make_plan` works: per repository, then the blobs, by digest id.

Everything is decided on digest ids of the inventory's index (links, revisions,
the marks), so that a registry of ten million blobs is planned without a
string per blob; the deletions go into a :class:`~registry_gc._deletions.DeletionList`
as rows. Tables built by hand (with an index of their own) are translated
into the inventory's index first.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from ._columns import IdFlags, IdSet, LinkTimes
from ._deletions import DeletionList
from .layout import (
    BLOBS_PREFIX,
    REPOSITORIES_PREFIX,
    V2_PREFIX,
    Digest,
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    blob_path,
    repository_prefix,
)
from .plan import Category, Deletion, Kept, Plan, Reason

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from ._digests import DigestIndex
    from .inventory import Inventory, RepositoryEntry
    from .mark import Marks
    from .options import Removals

__all__ = ["plan"]


def _ids(digests: Collection[str] | None, index: DigestIndex) -> set[int]:
    """The ids of a set of digests (an :class:`IdSet` of the index: its own ids)."""
    if not digests:
        return set()
    if isinstance(digests, IdSet) and digests.index is index:
        return set(digests.ids())
    return {index.intern(d) for d in digests}


def _columns(
    links: LinkTimes | dict[Digest, float], index: DigestIndex
) -> tuple[array[int], array[float]]:
    """Ids and times of a link table, in the inventory's index."""
    if isinstance(links, LinkTimes) and links.index is index:
        return links.ids(), links.times()
    ids = array("i")
    times = array("d")
    for d, m in links.items():
        ids.append(index.intern(d))
        times.append(m)
    return ids, times


class _Planner:
    """Planning one inventory with one set of marks."""

    def __init__(self, inventory: Inventory, marks: Marks, plan: Plan) -> None:
        self.inventory = inventory
        self.marks = marks
        self.plan = plan
        self.index = inventory.index
        self.out = DeletionList(self.index)
        self.now = marks.cutoffs.now
        self.cutoff = marks.cutoffs.grace
        self.uploads_cutoff = marks.cutoffs.uploads
        self.protected: set[str] = {
            V2_PREFIX.rstrip("/"),
            BLOBS_PREFIX.rstrip("/"),
            REPOSITORIES_PREFIX.rstrip("/"),
            *(BLOBS_PREFIX + alg for alg in ("sha256", "sha384", "sha512")),
        }
        self.emptied: set[str] = set()

    def kept(self, category: Category, path: str, mtime: float, **fields: object) -> None:
        self.plan.kept.append(Kept(category, path, self.now - mtime, **fields))  # type: ignore[arg-type]

    # -- the blobs -----------------------------------------------------------------------

    def blobs(self) -> None:
        plan, marks, index = self.plan, self.marks, self.index
        table = self.inventory.blobs
        live = marks.blobs
        flags = live.flags() if isinstance(live, IdFlags) and live.index is index else None
        grace = _ids(marks.grace_blobs, index)
        cutoff = self.cutoff
        add = self.out.add
        sizes, mtimes = table.columns()
        total = live_count = live_bytes = 0
        n_flags = len(flags) if flags is not None else 0
        for i in table.ids():
            sorted_part = i < len(sizes)
            size = sizes[i] if sorted_part else table.size_of_id(i)
            total += size
            if i in grace:
                # Unreachable from any root, but referenced by something fresh.
                mtime = mtimes[i] if sorted_part else table.mtime_of_id(i)
                self.kept(
                    Category.BLOB,
                    blob_path(index.digest(i)),
                    mtime,
                    size=size,
                    digest=index.digest(i),
                )
                continue
            if (i < n_flags and flags[i]) if flags is not None else index.digest(i) in live:
                live_count += 1
                live_bytes += size
                continue
            mtime = mtimes[i] if sorted_part else table.mtime_of_id(i)
            if mtime > cutoff:
                self.kept(
                    Category.BLOB,
                    blob_path(index.digest(i)),
                    mtime,
                    size=size,
                    digest=index.digest(i),
                )
                continue
            add(Category.BLOB, Reason.UNREFERENCED, None, i, size=size)
        plan.total_blobs = len(table)
        plan.total_bytes = total
        plan.live_blobs = live_count
        plan.live_bytes = live_bytes

    # -- one repository ------------------------------------------------------------------

    def repository(  # noqa: C901, PLR0912, PLR0915 - one pass over a repository, in the safe order
        self,
        repo: RepositoryEntry,
        *,
        removed_tags: set[Tag],
        removed_manifests: set[int],
        whole: bool,
    ) -> None:
        marks, index, out = self.marks, self.index, self.out
        now, cutoff = self.now, self.cutoff
        name = repo.name
        live = _ids(marks.live.get(name), index)
        needed = _ids(marks.needed_links.get(name), index)
        grace_live = _ids(marks.grace_live.get(name), index)
        grace_links = _ids(marks.grace_links.get(name), index)
        legacy = {index.intern(d): m for d, m in marks.legacy.get(name, {}).items()}
        damaged = name in marks.damaged and not whole
        blobs = self.inventory.blobs
        explicit = Reason.REMOVED_REPOSITORY if whole else None
        prefix = repository_prefix(name)

        for tag_name in sorted(removed_tags):
            tag = repo.tags[tag_name]
            # In digest order, whatever the ids (a part of the store has its own index).
            paths = [TagIndexLink(name, tag_name, d).path for d in sorted(tag.index)]
            if tag.current_mtime is not None:
                paths.insert(0, TagCurrentLink(name, tag_name).path)
            out.append(
                Deletion(
                    Category.TAG,
                    explicit or Reason.REMOVED_TAG,
                    tuple(paths),
                    0,
                    name,
                    tag.current,
                    tag_name,
                )
            )

        deleted_revisions: set[int] = set()
        revision_ids, revision_times = _columns(repo.revisions, index)
        revisions = dict(zip(revision_ids, revision_times, strict=True))
        revisions.update(legacy)
        signatures = repo.signatures
        for i, mtime in revisions.items():
            if i in live and not whole:
                continue
            forced = whole or i in removed_manifests
            if damaged and not forced:
                continue  # kept whole: it cannot be fully read (reported by mark)
            if not forced and (mtime > cutoff or i in grace_live):
                digest = index.digest(i)
                self.kept(
                    Category.REVISION,
                    RevisionLink(name, digest).path,
                    mtime,
                    repository=name,
                    digest=digest,
                )
                continue
            if forced:
                reason = explicit or Reason.REMOVED_MANIFEST
            elif not blobs.has_id(i):
                reason = Reason.DANGLING_LINK
            else:
                reason = Reason.UNTAGGED
            deleted_revisions.add(i)
            sigs = signatures.get(index.digest(i)) if signatures else None
            if not sigs:
                out.add(Category.REVISION, reason, name, i, legacy=i in legacy)
                continue
            digest = index.digest(i)
            link = LayerLink(name, digest) if i in legacy else RevisionLink(name, digest)
            revision_paths = (
                link.path,
                *(LegacySignatureLink(name, digest, s).path for s, _ in sigs),
            )
            out.append(Deletion(Category.REVISION, reason, revision_paths, 0, name, digest))
        # Legacy signature links of revisions that no longer exist at all.
        for revision, sigs in signatures.items():
            if revision not in repo.revisions and (whole or all(m <= cutoff for _, m in sigs)):
                sig_paths = tuple(LegacySignatureLink(name, revision, s).path for s, _ in sigs)
                out.append(
                    Deletion(
                        Category.REVISION,
                        explicit or Reason.DANGLING_LINK,
                        sig_paths,
                        0,
                        name,
                        revision,
                    )
                )
                deleted_revisions.add(index.intern(revision))

        surviving_tags = [t for t in repo.tags.values() if t.name not in removed_tags]
        for tag in surviving_tags:
            current = index.find(tag.current) if tag.current is not None else -1
            ids, times = _columns(tag.index, index)
            for i, mtime in zip(ids, times, strict=True):
                if i == current:
                    continue
                if i in revisions and i not in deleted_revisions:
                    continue  # history of a revision that stays
                if mtime > cutoff or damaged:
                    continue
                out.add(Category.TAG_INDEX, Reason.STALE_TAG_HISTORY, name, i, tag=tag.name)

        layers_left = 0
        ids, times = _columns(repo.layers, index)
        aliases = repo.layer_aliases
        for i, mtime in zip(ids, times, strict=True):
            if i in legacy:
                if i not in deleted_revisions:
                    layers_left += 1
                continue  # a revision of registry 2.1.0: planned with the revisions above
            if not whole and (i in needed or damaged):
                layers_left += 1
                continue
            if not whole and (mtime > cutoff or i in grace_links):
                layers_left += 1
                digest = index.digest(i)
                self.kept(
                    Category.LAYER_LINK,
                    LayerLink(name, digest).path,
                    mtime,
                    repository=name,
                    digest=digest,
                )
                continue
            if explicit:
                reason = explicit
            elif index.is_sha256(i):
                reason = Reason.UNREFERENCED if blobs.has_id(i) else Reason.DANGLING_LINK
            else:
                target = aliases.get(index.digest(i))
                reason = (
                    Reason.UNREFERENCED
                    if target is not None and target in blobs
                    else Reason.DANGLING_LINK
                )
            out.add(Category.LAYER_LINK, reason, name, i)

        uploads_left = 0
        for upload in repo.uploads.values():
            old_enough = upload.started <= self.uploads_cutoff
            if not whole and old_enough and upload.last_activity > cutoff:
                # Old, but written to within the grace period: still in use.
                self.plan.kept.append(
                    Kept(
                        Category.UPLOAD,
                        f"{prefix}_uploads/{upload.id}",
                        now - upload.last_activity,
                        upload.size,
                        name,
                    )
                )
            if not (whole or (old_enough and upload.last_activity <= cutoff)):
                uploads_left += 1
                continue
            upload_paths = tuple(UploadFile(name, upload.id, f).path for f in sorted(upload.files))
            out.append(
                Deletion(
                    Category.UPLOAD,
                    explicit or Reason.STALE_UPLOAD,
                    upload_paths,
                    upload.size,
                    name,
                    None,
                    upload.id,
                    tuple(upload.multipart),
                )
            )

        signature_revisions = {index.intern(r) for r in signatures}
        revisions_left = len((revisions.keys() | signature_revisions) - deleted_revisions)
        empty = (
            not damaged
            and not surviving_tags
            and revisions_left <= 0
            and layers_left == 0
            and uploads_left == 0
            and (whole or not repo.unrecognized)
        )
        if empty and not whole:
            # Directories only, but one of them is fresh: a push may be creating
            # the repository right now.
            young = [
                m
                for p, m in self.inventory.empty_dirs.items()
                if p.startswith(prefix) and m > cutoff
            ]
            if young:
                self.plan.kept.append(
                    Kept(Category.REPOSITORY, prefix.rstrip("/"), now - max(young), 0, name)
                )
                empty = False
        if empty:
            leftovers = tuple(repo.unrecognized) if whole else ()
            out.append(
                Deletion(
                    Category.REPOSITORY, explicit or Reason.EMPTY_REPOSITORY, leftovers, 0, name
                )
            )
            self.emptied.add(prefix.rstrip("/"))
            return
        protected = self.protected
        protected.update(
            prefix + d for d in ("_layers", "_manifests", "_manifests/revisions", "_manifests/tags")
        )
        protected.add(prefix.rstrip("/"))
        for tag in surviving_tags:
            protected.add(f"{prefix}_manifests/tags/{tag.name}")
            protected.add(f"{prefix}_manifests/tags/{tag.name}/current")


def _removed_tags(
    repo: RepositoryEntry, removals: Removals, removed_manifests: Iterable[str]
) -> set[Tag]:
    """Tags removed by name, and the tags on removed manifests (as distribution's DELETE does)."""
    gone = set(removed_manifests)
    out = {t for t in removals.tags_of(repo.name) if t in repo.tags}
    out.update(t.name for t in repo.tags.values() if t.current in gone)
    return out


def plan(inventory: Inventory, marks: Marks) -> Plan:
    """:func:`registry_gc.plan.make_plan`, once marking found no problem."""
    removals = marks.removals
    cutoffs = marks.cutoffs
    result = Plan(inventory.url, inventory.started, cutoffs.grace, marks.options.delete_untagged)
    result.anomalies = [*inventory.anomalies, *marks.anomalies]
    planner = _Planner(inventory, marks, result)
    index = planner.index
    for repo in inventory.repositories.values():
        if repo.name_problem is not None:
            continue  # never touched: reported as an anomaly by the inventory
        gone = repo.name in removals.repositories
        dropped = removals.manifests_of(repo.name)
        planner.repository(
            repo,
            removed_tags=set(repo.tags) if gone else _removed_tags(repo, removals, dropped),
            removed_manifests={index.intern(d) for d in dropped},
            whole=gone,
        )
    planner.blobs()
    # Nothing inside a directory with an invalid repository name is touched, not even
    # an empty directory.
    untouchable = tuple(
        repository_prefix(r.name) for r in inventory.repositories.values() if r.name_problem
    )
    result.stale_empty_dirs = sorted(
        p
        for p, m in inventory.empty_dirs.items()
        if m <= planner.cutoff and not (p + "/").startswith(untouchable)
    )
    result.protected_dirs = frozenset(planner.protected)
    result.removed_repositories = frozenset(planner.emptied)
    result.deletions = planner.out.freeze()
    return result
