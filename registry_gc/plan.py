"""Plan: inventory + marks + options → every deletion, with its reason and size. Pure.

What is garbage (DESIGN §4.3-4.5), per repository: revision links of
manifests that are not live; tag ``index/`` entries of revisions that are
gone; ``_layers`` links no live manifest of the repository needs; uploads
older than the upload age; the repository itself once nothing is left in it.
Globally: blobs no live manifest references. Nothing modified within the
grace period is deleted: it is listed in :attr:`Plan.kept` instead.

Deletions are grouped in :data:`PHASES`, the order :mod:`registry_gc.apply`
executes them in, so that an interruption at any point leaves a consistent
registry (nothing is deleted while something that references it remains).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from ._errors import RefusedError
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

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator

    from .backends import MultipartUpload
    from .inventory import Anomaly, Inventory, RepositoryEntry
    from .mark import Marks
    from .options import Removals

__all__ = ["PHASES", "Category", "Deletion", "Kept", "Plan", "Reason", "make_plan"]


class Category(enum.Enum):
    """What a deletion removes."""

    TAG = "tag"
    REVISION = "revision"
    TAG_INDEX = "tag-index"
    LAYER_LINK = "layer-link"
    BLOB = "blob"
    UPLOAD = "upload"
    REPOSITORY = "repository"


class Reason(str, enum.Enum):
    """Why something is deleted. A ``str``: ``Reason.UNTAGGED == "untagged"``."""

    #: a manifest no tag reaches (``delete_untagged``), and what only it needed
    UNTAGGED = "untagged"
    #: a blob or ``_layers`` link nothing live references
    UNREFERENCED = "unreferenced"
    #: a link whose target is missing
    DANGLING_LINK = "dangling-link"
    #: tag history of a revision that is gone
    STALE_TAG_HISTORY = "stale-tag-history"
    #: an upload started long ago and idle since
    STALE_UPLOAD = "stale-upload"
    #: a repository with nothing left in it
    EMPTY_REPOSITORY = "empty-repository"
    #: removed by name (``rm REPO:TAG``, a retention policy)
    REMOVED_TAG = "removed-tag"
    #: removed by name (``rm REPO``)
    REMOVED_REPOSITORY = "removed-repository"
    #: removed by name (``rm REPO@DIGEST``, a policy's orphan referrer)
    REMOVED_MANIFEST = "removed-manifest"

    def __str__(self) -> str:
        return self.value

    @property
    def explicit(self) -> bool:
        """Whether the thing was removed by name rather than found to be garbage."""
        return self in _EXPLICIT


_EXPLICIT = frozenset({Reason.REMOVED_TAG, Reason.REMOVED_REPOSITORY, Reason.REMOVED_MANIFEST})


#: The order deletions are applied in; categories in one phase go together.
PHASES: tuple[tuple[Category, ...], ...] = (
    (Category.TAG,),
    (Category.REVISION, Category.TAG_INDEX),
    (Category.LAYER_LINK,),
    (Category.BLOB,),
    (Category.UPLOAD,),
    (Category.REPOSITORY,),
)


@attrs.frozen
class Deletion:
    """One thing to delete: its storage paths, the bytes it frees and why."""

    category: Category
    reason: Reason
    paths: tuple[str, ...]
    size: int = 0
    repository: str | None = None
    digest: str | None = None
    #: a tag name or an upload id, when there is one
    name: str | None = None
    #: open multipart uploads to abort (stale uploads on object stores)
    multipart: tuple[MultipartUpload, ...] = ()


@attrs.frozen
class Kept:
    """Garbage kept only because it was written within the grace period."""

    category: Category
    path: str
    #: seconds since it was written, at planning time
    age: float
    size: int = 0
    repository: str | None = None
    digest: str | None = None


@attrs.define
class Plan:
    """Everything a run will delete, and everything it keeps for the grace period."""

    url: str
    started: datetime.datetime
    #: timestamp; objects modified after it are inside the grace period
    cutoff: float
    delete_untagged: bool
    deletions: list[Deletion] = attrs.Factory(list)
    kept: list[Kept] = attrs.Factory(list)
    anomalies: list[Anomaly] = attrs.Factory(list)
    #: empty directories found by the listing and older than the grace period
    stale_empty_dirs: list[str] = attrs.Factory(list)
    #: directories never removed even when empty (the layout the registry expects)
    protected_dirs: frozenset[str] = frozenset()
    #: repositories whose directory may go entirely (emptied or removed)
    removed_repositories: frozenset[str] = frozenset()
    #: totals for the report
    total_blobs: int = 0
    total_bytes: int = 0
    live_blobs: int = 0
    live_bytes: int = 0

    def by_category(self, *categories: Category) -> Iterator[Deletion]:
        """The deletions of the given categories, in plan order."""
        wanted = set(categories)
        return (d for d in self.deletions if d.category in wanted)

    @property
    def paths(self) -> list[str]:
        """Every path the plan deletes, in plan order."""
        return [p for d in self.deletions for p in d.paths]


def make_plan(inventory: Inventory, marks: Marks) -> Plan:
    """Turn marks into a plan; raise :class:`RefusedError` when marking found problems.

    The options, explicit removals and cut-offs are the ones marking used
    (the ``options``, ``removals`` and ``cutoffs`` of :class:`~registry_gc.Marks`).
    Explicit removals are deleted whatever their age.
    """
    if marks.problems:
        n = len(marks.problems)
        msg = f"refusing to sweep {inventory.url}: {n} problem(s) found; nothing was deleted"
        raise RefusedError(msg, marks.problems)
    removals = marks.removals
    cutoffs = marks.cutoffs
    plan = Plan(inventory.url, inventory.started, cutoffs.grace, marks.options.delete_untagged)
    plan.anomalies = [*inventory.anomalies, *marks.anomalies]
    now = cutoffs.now
    cutoff = cutoffs.grace
    protected: set[str] = {
        V2_PREFIX.rstrip("/"),
        BLOBS_PREFIX.rstrip("/"),
        REPOSITORIES_PREFIX.rstrip("/"),
        *(BLOBS_PREFIX + alg for alg in ("sha256", "sha384", "sha512")),
    }
    emptied: set[str] = set()
    for repo in inventory.repositories.values():
        if repo.name_problem is not None:
            continue  # never touched: reported as an anomaly by the inventory
        gone = repo.name in removals.repositories
        dropped = set(removals.manifests_of(repo.name))
        _plan_repository(
            plan,
            repo,
            inventory,
            marks,
            now=now,
            cutoff=cutoff,
            uploads_cutoff=cutoffs.uploads,
            removed_tags=set(repo.tags) if gone else _removed_tags(repo, removals, dropped),
            removed_manifests=dropped,
            whole=gone,
            emptied=emptied,
            protected=protected,
        )
    blobs = inventory.blobs
    for digest in blobs:
        size = blobs.size(digest)
        plan.total_blobs += 1
        plan.total_bytes += size
        mtime = blobs.mtime(digest)
        if digest in marks.grace_blobs:
            # Unreachable from any root, but referenced by something fresh.
            plan.kept.append(
                Kept(Category.BLOB, blob_path(digest), now - mtime, size, None, digest)
            )
            continue
        if digest in marks.blobs:
            plan.live_blobs += 1
            plan.live_bytes += size
            continue
        if mtime > cutoff:
            plan.kept.append(
                Kept(Category.BLOB, blob_path(digest), now - mtime, size, None, digest)
            )
            continue
        plan.deletions.append(
            Deletion(Category.BLOB, Reason.UNREFERENCED, (blob_path(digest),), size, None, digest)
        )
    # Nothing inside a directory with an invalid repository name is touched, not even
    # an empty directory.
    untouchable = tuple(
        repository_prefix(r.name) for r in inventory.repositories.values() if r.name_problem
    )
    plan.stale_empty_dirs = sorted(
        p
        for p, m in inventory.empty_dirs.items()
        if m <= cutoff and not (p + "/").startswith(untouchable)
    )
    plan.protected_dirs = frozenset(protected)
    plan.removed_repositories = frozenset(emptied)
    order = {c: i for i, phase in enumerate(PHASES) for c in phase}
    plan.deletions.sort(key=lambda d: order[d.category])
    return plan


def _removed_tags(
    repo: RepositoryEntry, removals: Removals, removed_manifests: set[Digest]
) -> set[Tag]:
    """Tags removed by name, and the tags on removed manifests (as distribution's DELETE does)."""
    out = {t for t in removals.tags_of(repo.name) if t in repo.tags}
    out.update(t.name for t in repo.tags.values() if t.current in removed_manifests)
    return out


def _plan_repository(
    plan: Plan,
    repo: RepositoryEntry,
    inventory: Inventory,
    marks: Marks,
    *,
    now: float,
    cutoff: float,
    uploads_cutoff: float,
    removed_tags: set[Tag],
    removed_manifests: set[Digest],
    whole: bool,
    emptied: set[str],
    protected: set[str],
) -> None:
    name = repo.name
    live = marks.live.get(name, set())
    needed = marks.needed_links.get(name, set())
    grace_live = marks.grace_live.get(name, set())
    grace_links = marks.grace_links.get(name, set())
    legacy = marks.legacy.get(name, {})
    damaged = name in marks.damaged and not whole
    out = plan.deletions
    blobs = inventory.blobs
    explicit = Reason.REMOVED_REPOSITORY if whole else None
    prefix = repository_prefix(name)

    for tag_name in sorted(removed_tags):
        tag = repo.tags[tag_name]
        paths = [TagIndexLink(name, tag_name, d).path for d in tag.index]
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

    deleted_revisions: set[Digest] = set()
    revisions = {**repo.revisions, **legacy}
    for digest, mtime in revisions.items():
        if digest in live and not whole:
            continue
        forced = whole or digest in removed_manifests
        if damaged and not forced:
            continue  # kept whole: it cannot be fully read (reported by mark)
        if not forced and (mtime > cutoff or digest in grace_live):
            plan.kept.append(
                Kept(
                    Category.REVISION, RevisionLink(name, digest).path, now - mtime, 0, name, digest
                )
            )
            continue
        if forced:
            reason = explicit or Reason.REMOVED_MANIFEST
        elif digest not in blobs:
            reason = Reason.DANGLING_LINK
        else:
            reason = Reason.UNTAGGED
        link = LayerLink(name, digest) if digest in legacy else RevisionLink(name, digest)
        revision_paths = (
            link.path,
            *(
                LegacySignatureLink(name, digest, s).path
                for s, _ in repo.signatures.get(digest, ())
            ),
        )
        deleted_revisions.add(digest)
        out.append(Deletion(Category.REVISION, reason, revision_paths, 0, name, digest))
    # Legacy signature links of revisions that no longer exist at all.
    for revision, sigs in repo.signatures.items():
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
            deleted_revisions.add(revision)

    surviving_tags = [t for t in repo.tags.values() if t.name not in removed_tags]
    for tag in surviving_tags:
        for digest, mtime in tag.index.items():
            if digest == tag.current:
                continue
            if digest in revisions and digest not in deleted_revisions:
                continue  # history of a revision that stays
            if mtime > cutoff or damaged:
                continue
            out.append(
                Deletion(
                    Category.TAG_INDEX,
                    Reason.STALE_TAG_HISTORY,
                    (TagIndexLink(name, tag.name, digest).path,),
                    0,
                    name,
                    digest,
                    tag.name,
                )
            )

    layers_left = 0
    for digest, mtime in repo.layers.items():
        if digest in legacy:
            if digest not in deleted_revisions:
                layers_left += 1
            continue  # a revision of registry 2.1.0: planned with the revisions above
        if not whole and (digest in needed or damaged):
            layers_left += 1
            continue
        if not whole and (mtime > cutoff or digest in grace_links):
            layers_left += 1
            plan.kept.append(
                Kept(
                    Category.LAYER_LINK, LayerLink(name, digest).path, now - mtime, 0, name, digest
                )
            )
            continue
        target = digest if digest.algorithm == "sha256" else repo.layer_aliases.get(digest)
        if explicit:
            reason = explicit
        elif target is None or target not in blobs:
            reason = Reason.DANGLING_LINK
        else:
            reason = Reason.UNREFERENCED
        out.append(
            Deletion(Category.LAYER_LINK, reason, (LayerLink(name, digest).path,), 0, name, digest)
        )

    uploads_left = 0
    for upload in repo.uploads.values():
        old_enough = upload.started <= uploads_cutoff
        if not whole and old_enough and upload.last_activity > cutoff:
            # Old, but written to within the grace period: still in use.
            plan.kept.append(
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

    revisions_left = len((revisions.keys() | repo.signatures.keys()) - deleted_revisions)
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
        young = [m for p, m in inventory.empty_dirs.items() if p.startswith(prefix) and m > cutoff]
        if young:
            plan.kept.append(
                Kept(Category.REPOSITORY, prefix.rstrip("/"), now - max(young), 0, name)
            )
            empty = False
    if empty:
        leftovers = tuple(repo.unrecognized) if whole else ()
        out.append(
            Deletion(Category.REPOSITORY, explicit or Reason.EMPTY_REPOSITORY, leftovers, 0, name)
        )
        emptied.add(prefix.rstrip("/"))
        return
    protected.update(
        prefix + d for d in ("_layers", "_manifests", "_manifests/revisions", "_manifests/tags")
    )
    protected.add(prefix.rstrip("/"))
    for tag in surviving_tags:
        protected.add(f"{prefix}_manifests/tags/{tag.name}")
        protected.add(f"{prefix}_manifests/tags/{tag.name}/current")
