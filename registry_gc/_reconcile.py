"""Reconciling a plan file with a fresh plan: what still holds, what is dropped and why. Pure.

Used by :func:`registry_gc.apply_planfile`. An entry of the file matches the
fresh plan's deletion of the same thing (:attr:`~registry_gc.planfile.PlanEntry.identity`)
when the paths are the same and each is as the file recorded it
(:class:`_Matcher`); :func:`still_needed` then takes back what something that
stays needs; :func:`executed_plan` is the part of the fresh plan to execute.
"""

from __future__ import annotations

import array
import enum
from collections import defaultdict
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from .graph import Graph, Role, walk
from .layout import Digest, Repository, Tag, repository_prefix
from .manifests import Manifest
from .plan import Category, Plan
from .planfile import identity_of, record_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry
    from .plan import Deletion
    from .planfile import PathRecord, PlanEntry, PlanReader

__all__ = ["CODES", "Dropped", "executed_plan", "reconcile", "still_needed"]


class Dropped(str, enum.Enum):
    """Why an entry of a plan file was not executed. A ``str``: ``Dropped.GONE == "gone"``."""

    #: every path of it was deleted already
    GONE = "gone"
    #: a path changed size or time, or the deletion has other paths now
    CHANGED = "changed"
    #: the fresh plan does not delete it: live again, or kept for the grace period
    NO_LONGER_GARBAGE = "no-longer-garbage"
    #: still garbage, but something this apply keeps needs it
    STILL_NEEDED = "still-needed"

    def __str__(self) -> str:
        return self.value


#: The drop reasons in a fixed order: a plan entry's fate is ``-1 - CODES.index(reason)``.
CODES: Final = tuple(Dropped)


# -- matching the file against a fresh plan -----------------------------------------------------


def _unchanged(recorded: Iterable[PathRecord], inventory: Inventory) -> bool:
    """Whether every path is still there with the size and time the file recorded."""
    for r in recorded:
        now = record_of(inventory, r.path)
        if now is None:
            return False
        if r.size is not None and now.size != r.size:
            return False
        if r.mtime is not None and now.mtime != r.mtime:
            return False
    return True


def _gone(entry: PlanEntry, inventory: Inventory) -> bool:
    """Whether nothing of the entry is in the store any more."""
    if entry.paths:
        return all(record_of(inventory, r.path) is None for r in entry.paths)
    repo = inventory.repositories.get(Repository._trusted(entry.repository or ""))  # noqa: SLF001
    if entry.category is Category.UPLOAD:
        return repo is None or entry.name not in repo.uploads
    return repo is None


@attrs.define
class _Matcher:
    """The fresh plan's deletions by identity, and which the file's entries took."""

    fresh: Plan
    inventory: Inventory
    index: dict[tuple[str, str | None, str | None, str | None], list[int]]
    #: fresh index → the line of the file that took it
    taken: dict[int, int] = attrs.Factory(dict)
    #: fresh index → the position of that entry among the file's entries
    position: dict[int, int] = attrs.Factory(dict)

    @classmethod
    def of(cls, fresh: Plan, inventory: Inventory) -> _Matcher:
        index: dict[tuple[str, str | None, str | None, str | None], list[int]] = defaultdict(list)
        for i, d in enumerate(fresh.deletions):
            index[identity_of(d.category, d.repository, d.digest, d.name)].append(i)
        return cls(fresh, inventory, dict(index))

    def match(self, entry: PlanEntry, reader: PlanReader, position: int) -> int | Dropped:
        """The fresh deletion ``entry`` (the file's ``position``-th) still is, or why not."""
        candidates = self.index.get(entry.identity, [])
        paths = {r.path for r in entry.paths}
        uploads = set(entry.multipart)
        for i in candidates:
            d = self.fresh.deletions[i]
            if set(d.paths) != paths or {(u.key, u.upload_id) for u in d.multipart} != uploads:
                continue
            if i in self.taken:
                reader.fail(
                    entry.line,
                    f"repeats the deletion of line {self.taken[i]}: the file was edited",
                    what="remove one of the two lines",
                )
            if not _unchanged(entry.paths, self.inventory):
                return Dropped.CHANGED
            self.taken[i] = entry.line
            self.position[i] = position
            return i
        if _gone(entry, self.inventory):
            return Dropped.GONE
        if candidates or not _unchanged(entry.paths, self.inventory):
            return Dropped.CHANGED
        return Dropped.NO_LONGER_GARBAGE


# -- what stays needs what it references --------------------------------------------------------


def still_needed(
    fresh: Plan, keep: set[int], inventory: Inventory, manifests: ManifestTable
) -> set[int]:
    """The deletions in ``keep`` that something staying needs; ``keep`` loses them too.

    What stays is every deletion of ``fresh`` not in ``keep``. A tag that stays
    keeps its manifest; a revision that stays keeps what it reaches (children,
    referrers, blobs, ``_layers`` links, tag history), in its repository and,
    for referrers, in any; a ``_layers`` link keeps its blob; a repository with
    anything left in it is not removed. Repeated until nothing more is needed.
    """
    needs = _Needs.of(fresh, keep, inventory, manifests)
    needs.run()
    return needs.needed


#: A kept deletion by (category, repository, digest); repositories have no digest.
_Key: TypeAlias = "tuple[Category, str | None, str | None]"


@attrs.define
class _Needs:
    """The work of :func:`still_needed`: a queue of what stays, and what it takes back."""

    dels: Sequence[Deletion]
    keep: set[int]
    inventory: Inventory
    manifests: ManifestTable
    at: dict[_Key, int]
    #: (repository, revision) → its kept tag history deletions
    history: dict[tuple[str | None, str | None], list[int]]
    #: subject → kept revision deletions of referrers of it, in any repository
    referrers: dict[str, list[int]]
    needed: set[int] = attrs.Factory(set)
    queue: list[int] = attrs.Factory(list)
    walked: dict[str, set[Digest]] = attrs.Factory(lambda: defaultdict(set))
    graphs: dict[str, Graph] = attrs.Factory(dict)

    @classmethod
    def of(
        cls, fresh: Plan, keep: set[int], inventory: Inventory, manifests: ManifestTable
    ) -> _Needs:
        dels = fresh.deletions
        at: dict[_Key, int] = {}
        history: dict[tuple[str | None, str | None], list[int]] = defaultdict(list)
        referrers: dict[str, list[int]] = defaultdict(list)
        for i in keep:
            d = dels[i]
            if d.category is Category.TAG_INDEX:
                history[d.repository, d.digest].append(i)
                continue
            digest = None if d.category is Category.REPOSITORY else d.digest
            at[d.category, d.repository, digest] = i
            if d.category is Category.REVISION and d.digest is not None:
                m = manifests.get(_digest(d.digest))
                if isinstance(m, Manifest) and m.subject is not None:
                    referrers[m.subject].append(i)
        queue = [i for i in range(len(dels)) if i not in keep]
        return cls(dels, keep, inventory, manifests, at, history, referrers, queue=queue)

    def need(self, i: int | None) -> None:
        if i is not None and i in self.keep:
            self.keep.discard(i)
            self.needed.add(i)
            self.queue.append(i)

    def run(self) -> None:
        while self.queue:
            d = self.dels[self.queue.pop()]
            if d.repository is None:
                continue  # a blob: it needs nothing
            name = d.repository
            self.need(self.at.get((Category.REPOSITORY, name, None)))
            repo = self.inventory.repositories.get(Repository._trusted(name))  # noqa: SLF001
            if repo is None:
                continue
            start: list[tuple[Digest, Role]] = []
            if d.category is Category.TAG and d.name is not None:
                tag = repo.tags.get(Tag._trusted(d.name))  # noqa: SLF001
                if tag is not None and tag.current is not None:
                    start.append((tag.current, Role.TAG))
            elif d.category is Category.REVISION and d.digest is not None:
                start.append((_digest(d.digest), Role.ROOT))
            elif d.category is Category.LAYER_LINK and d.digest is not None:
                link = _digest(d.digest)
                target = link if link.algorithm == "sha256" else repo.layer_aliases.get(link)
                self.need(self.at.get((Category.BLOB, None, target)))
            if start:
                self.reach(repo, start)

    def reach(self, repo: RepositoryEntry, start: list[tuple[Digest, Role]]) -> None:
        name = repo.name
        graph = self.graphs.get(name)
        if graph is None:
            graph = self.graphs[name] = Graph.of(repo, self.manifests, self.inventory.blobs)
        reach = walk(graph, start, skip=self.walked[name])
        self.walked[name] |= reach.manifests
        for m in reach.manifests:
            self.need(self.at.get((Category.REVISION, name, m)))
            for j in (*self.history.get((name, m), ()), *self.referrers.get(m, ())):
                self.need(j)
        for b in reach.blobs:
            self.need(self.at.get((Category.BLOB, None, b)))
        for link in reach.links:
            self.need(self.at.get((Category.LAYER_LINK, name, link)))


def _digest(text: str) -> Digest:
    return Digest._trusted(text)  # noqa: SLF001


def executed_plan(fresh: Plan, keep: Iterable[int]) -> Plan:
    """The part of ``fresh`` to execute: the ``keep`` deletions, in phase order.

    Directories: those the deletions empty, and the empty ones inside
    repositories removed whole; a repository whose removal was dropped keeps
    the layout the registry expects.
    """
    kept = [fresh.deletions[i] for i in sorted(keep)]
    removed = {
        repository_prefix(d.repository)
        for d in kept
        if d.category is Category.REPOSITORY and d.repository
    }
    protected = set(fresh.protected_dirs)
    for d in fresh.deletions:
        if d.category is Category.REPOSITORY and d.repository is not None:
            prefix = repository_prefix(d.repository)
            if prefix not in removed:
                protected.add(prefix.rstrip("/"))
                protected.update(
                    prefix + s
                    for s in ("_layers", "_manifests", "_manifests/revisions", "_manifests/tags")
                )
    return attrs.evolve(
        fresh,
        deletions=kept,
        stale_empty_dirs=[
            p for p in fresh.stale_empty_dirs if (p + "/").startswith(tuple(removed))
        ],
        protected_dirs=frozenset(protected),
        removed_repositories=frozenset(r.rstrip("/") for r in removed) & fresh.removed_repositories,
    )


def reconcile(
    reader: PlanReader, fresh: Plan, inventory: Inventory, manifests: ManifestTable
) -> tuple[set[int], array.array[int]]:
    """The fresh plan's deletions to execute, and the fate of every entry ``reader`` yields.

    The fate is the fresh plan's index of the deletion the entry still is, or
    ``-1 - CODES.index(reason)`` for a :class:`Dropped` reason.
    """
    matcher = _Matcher.of(fresh, inventory)
    decisions = array.array("q")
    for n, entry in enumerate(reader):
        got = matcher.match(entry, reader, n)
        decisions.append(got if isinstance(got, int) else -1 - CODES.index(got))
    keep = set(matcher.taken)
    for i in still_needed(fresh, keep, inventory, manifests):
        decisions[matcher.position[i]] = -1 - CODES.index(Dropped.STILL_NEEDED)
    return keep, decisions
