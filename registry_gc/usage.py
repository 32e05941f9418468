"""``du``: what the registry stores, what is live, and what a run would free.

:func:`disk_usage` is the command: it lists the store, reads the manifests,
marks and plans exactly as :func:`~registry_gc.collect` would with the same
:class:`~registry_gc.Options`, deletes nothing, and returns a :class:`Usage`
that renders as a table or as JSON. :func:`measure` is its pure core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import _sync
from ._deletions import deleted_bytes
from ._errors import RefusedError
from ._render import human_bytes, table
from ._run import open_root, survey
from .graph import Graph, Role, walk
from .mark import mark
from .options import Options
from .plan import Category, make_plan
from .quarantine import read_quarantine

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._run import ProgressCallback, Root
    from .fetch import ManifestTable
    from .inventory import Inventory
    from .layout import Digest
    from .mark import Marks
    from .plan import Plan

__all__ = ["RepositoryUsage", "SortKey", "Usage", "disk_usage", "disk_usage_async", "measure"]

#: How :meth:`Usage.sorted` orders repositories.
SortKey = Literal["name", "size", "unique", "reclaimable"]


@attrs.frozen
class RepositoryUsage:
    """Storage one repository uses."""

    name: str
    tags: int
    #: manifests a run would keep (tagged, their children and referrers, and
    #: without ``delete_untagged`` every revision)
    live_manifests: int
    #: bytes of the distinct blobs its live manifests need
    size: int
    #: the part of ``size`` no other repository's live manifests need
    unique: int
    #: the part of ``size`` other repositories need too
    shared: int
    #: bytes a run would free among the blobs this repository references or links, plus its
    #: stale uploads (a blob referenced from several repositories counts in each); ``None``
    #: when a run would refuse
    reclaimable: int | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "tags": self.tags,
            "live_manifests": self.live_manifests,
            "bytes": self.size,
            "unique_bytes": self.unique,
            "shared_bytes": self.shared,
            "reclaimable_bytes": self.reclaimable,
        }


_ORDER: dict[str, Callable[[RepositoryUsage], Any]] = {
    "name": lambda r: r.name,
    "size": lambda r: (-r.size, r.name),
    "unique": lambda r: (-r.unique, r.name),
    "reclaimable": lambda r: (-(r.reclaimable or 0), r.name),
}


@attrs.frozen
class Usage:
    """Storage the whole registry uses, and what a run would free."""

    url: str
    delete_untagged: bool
    blobs: int
    size: int
    live_blobs: int
    live_size: int
    #: what a run with the same options would free; ``None`` when it would refuse
    reclaimable_blobs: int | None
    reclaimable_size: int | None
    #: garbage a run would keep for now, because it is younger than the grace period
    grace_size: int
    uploads: int
    uploads_size: int
    repositories: tuple[RepositoryUsage, ...]
    #: why a run would refuse to sweep (then nothing is reclaimable)
    problems: tuple[str, ...] = ()
    #: blob copies live mode's quarantine holds (outside docker/registry/v2), and their bytes
    quarantine_blobs: int = 0
    quarantine_size: int = 0

    def sorted(self, by: SortKey) -> Usage:
        """The same usage with repositories ordered by name, or largest first."""
        return attrs.evolve(self, repositories=tuple(sorted(self.repositories, key=_ORDER[by])))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ``registry-gc/du/v1``)."""
        return {
            "schema": "registry-gc/du/v1",
            "root": self.url,
            "delete_untagged": self.delete_untagged,
            "total": {"blobs": self.blobs, "bytes": self.size},
            "live": {"blobs": self.live_blobs, "bytes": self.live_size},
            "reclaimable": {"blobs": self.reclaimable_blobs, "bytes": self.reclaimable_size},
            "kept_for_grace_bytes": self.grace_size,
            "uploads": {"count": self.uploads, "bytes": self.uploads_size},
            "repositories": [r.to_dict() for r in self.repositories],
            "problems": list(self.problems),
            "quarantine": {"blobs": self.quarantine_blobs, "bytes": self.quarantine_size},
        }

    def render(self) -> str:
        """Totals, then a table of repositories."""
        lines = [f"registry-gc du on {self.url}"]
        rows: list[tuple[str, ...]] = [
            ("total", f"{self.blobs} blobs", human_bytes(self.size)),
            ("live", f"{self.live_blobs} blobs", human_bytes(self.live_size)),
        ]
        if self.reclaimable_size is not None:
            command = "registry-gc gc -m" if self.delete_untagged else "registry-gc gc"
            rows.append(
                (
                    "reclaimable",
                    f"{self.reclaimable_blobs} blobs",
                    f"{human_bytes(self.reclaimable_size)}   (by {command}, uploads included)",
                )
            )
        lines.extend("  " + line for line in table(rows, right=[1]))
        if self.reclaimable_size is None:
            lines.append("  reclaimable: unknown, a run would refuse to sweep:")
            lines.extend(f"    - {p}" for p in self.problems)
        if self.grace_size:
            lines.append(f"  kept for the grace period: {human_bytes(self.grace_size)}")
        if self.uploads:
            lines.append(
                f"  uploads in progress: {self.uploads} ({human_bytes(self.uploads_size)})"
            )
        if self.quarantine_blobs:
            lines.append(
                f"  in live mode's quarantine: {self.quarantine_blobs} blobs "
                f"({human_bytes(self.quarantine_size)}; registry-gc quarantine ls)"
            )
        if self.repositories:
            rows = [("REPOSITORY", "TAGS", "MANIFESTS", "SIZE", "UNIQUE", "SHARED", "RECLAIMABLE")]
            rows.extend(
                (
                    r.name,
                    str(r.tags),
                    str(r.live_manifests),
                    human_bytes(r.size),
                    human_bytes(r.unique),
                    human_bytes(r.shared),
                    "?" if r.reclaimable is None else human_bytes(r.reclaimable),
                )
                for r in self.repositories
            )
            lines.append("")
            lines.extend(table(rows, right=range(1, 7)))
        return "\n".join(lines)


def _needs(graph: Graph, digests: Iterable[Digest]) -> set[Digest]:
    """Manifest blobs, configs, layers and blob entries (canonical) that ``digests`` need."""
    return walk(graph, [(d, Role.ROOT) for d in digests], referrers=False).blobs


def measure(
    inventory: Inventory, manifests: ManifestTable, marks: Marks, plan: Plan | None
) -> Usage:
    """Total, live and reclaimable bytes, and per repository: size, unique and shared bytes.

    ``marks`` and ``plan`` are what a run with the same options computes;
    ``plan`` is ``None`` when that run would refuse (``marks.problems``). Pure.
    """
    present = inventory.blobs
    graphs = {
        name: Graph.of(repo, manifests, present) for name, repo in inventory.repositories.items()
    }
    live_refs: dict[str, set[Digest]] = {}
    users: dict[Digest, int] = {}
    for name, graph in graphs.items():
        refs = {b for b in _needs(graph, marks.live.get(name, set())) if b in present}
        live_refs[name] = refs
        for b in refs:
            users[b] = users.get(b, 0) + 1
    freed: dict[str, int] = {}
    upload_bytes: dict[str, int] = {}
    if plan is not None:
        for d in plan.deletions:
            if d.category is Category.BLOB and d.digest is not None:
                freed[d.digest] = d.size
            elif d.category is Category.UPLOAD and d.repository is not None:
                upload_bytes[d.repository] = upload_bytes.get(d.repository, 0) + d.size
    repos: list[RepositoryUsage] = []
    for name in sorted(inventory.repositories):
        repo, graph = inventory.repositories[name], graphs[name]
        refs = live_refs[name]
        size = sum(present.size(b) for b in refs)
        unique = sum(present.size(b) for b in refs if users[b] == 1)
        reclaimable: int | None = None
        if plan is not None:
            every = _needs(
                graph, [*graph.manifests, *(t.current for t in repo.tags.values() if t.current)]
            )
            every.update(t for t in (graph.canonical(d) for d in repo.layers) if t is not None)
            reclaimable = sum(freed[b] for b in every if b in freed) + upload_bytes.get(name, 0)
        repos.append(
            RepositoryUsage(
                name=name,
                tags=len(repo.tags),
                live_manifests=len(marks.live.get(name, ())),
                size=size,
                unique=unique,
                shared=size - unique,
                reclaimable=reclaimable,
            )
        )
    live = [b for b in marks.blobs if b in present]
    uploads = [u for r in inventory.repositories.values() for u in r.uploads.values()]
    reclaimable_blobs = reclaimable_size = None
    grace = 0
    if plan is not None:
        reclaimable_blobs = len(freed)
        reclaimable_size = deleted_bytes(plan.deletions)
        grace = sum(k.size for k in plan.kept)
    return Usage(
        url=inventory.url,
        delete_untagged=marks.options.delete_untagged,
        blobs=len(present),
        size=present.total_size(),
        live_blobs=len(live),
        live_size=sum(present.size(b) for b in live),
        reclaimable_blobs=reclaimable_blobs,
        reclaimable_size=reclaimable_size,
        grace_size=grace,
        uploads=len(uploads),
        uploads_size=sum(u.size for u in uploads),
        repositories=tuple(repos),
        problems=tuple(marks.problems),
    )


async def disk_usage_async(
    root: Root,
    options: Options | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> Usage:
    """:func:`disk_usage`, for callers that run an event loop."""
    options = options or Options()
    backend = open_root(root, storage_options, read_only=True)
    try:
        inventory, manifests = await survey(
            backend, allow_empty=options.allow_empty, progress=progress
        )
        marks = mark(inventory, manifests, options)
        plan: Plan | None
        try:
            plan = make_plan(inventory, marks)
        except RefusedError:
            plan = None  # marks.problems says why; the usage shows them
        quarantine = await read_quarantine(backend, journals=False)
        return attrs.evolve(
            measure(inventory, manifests, marks, plan),
            quarantine_blobs=quarantine.blob_count,
            quarantine_size=quarantine.size,
        )
    finally:
        await backend.aclose()


def disk_usage(
    root: Root,
    options: Options | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> Usage:
    """How much the registry at ``root`` stores, needs, and what a run would free.

    ``options`` are those of the run to measure (``delete_untagged``, the
    grace period, …). Nothing is deleted. When that run would refuse, the
    usage says why (:attr:`Usage.problems`) and what is reclaimable is unknown.
    """
    return _sync.run(
        disk_usage_async(root, options, storage_options=storage_options, progress=progress)
    )
