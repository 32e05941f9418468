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

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator, Sequence

    from .backends import MultipartUpload
    from .inventory import Anomaly, Inventory
    from .mark import Marks

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
    #: in phase order: a list, or (from :func:`make_plan`) a compact sequence of the same
    deletions: Sequence[Deletion] = attrs.Factory(list)
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
    #: ``False`` when the sizes behind ``total_bytes`` and ``live_bytes`` were not all
    #: measured (a names-only run looks only at what it deletes or keeps): those two
    #: are then not reported
    sizes_measured: bool = True

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
    from ._planning import plan  # noqa: PLC0415 - the planner imports this module

    return plan(inventory, marks)
