"""A plan's deletions as columns: a million deletions in tens of megabytes, not a gigabyte.

A :class:`~registry_gc.plan.Deletion` with its path costs about 500 bytes. A
run on a registry that was never collected plans more deletions than it has
blobs, nearly all of one path each whose path the layout spells from a
repository, a digest and maybe a tag: a blob, a ``_layers`` link, a revision
link, a tag history entry. :class:`DeletionList` keeps those as a row of
small integers (category, reason, repository, digest id, tag, size: about 20
bytes) and makes the :class:`~registry_gc.plan.Deletion` when it is asked
for one; any other deletion (a tag, an upload, a repository, a revision with
legacy signature links) is kept as it is. It is a ``Sequence[Deletion]``:
``len``, indexing and iteration, in plan order.

Rows go into the phase they belong to (:meth:`DeletionList.add`), so the list
is in phase order without sorting; :meth:`DeletionList.tally` adds up a
plan's counts and bytes without making any deletion.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, NamedTuple, overload

from .layout import (
    V2_PREFIX,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagIndexLink,
    blob_path,
)
from .plan import PHASES, Category, Deletion, Reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._digests import DigestIndex

__all__ = ["DeletionList", "Spelled", "Tally", "deleted_bytes"]


class Spelled(NamedTuple):
    """A one-path deletion as :meth:`DeletionList.spelled` hands it out, without a Deletion."""

    category: Category
    reason: Reason
    repository: Repository | None
    #: the digest's id in the list's :class:`~registry_gc._digests.DigestIndex`
    digest_id: int
    digest: Digest
    tag: Tag | None
    size: int
    path: str
    #: a revision registry 2.1.0 linked under ``_layers`` (its path is a layer link's)
    legacy: bool


_CATEGORIES: Final = tuple(Category)
_REASONS: Final = tuple(Reason)
_CATEGORY_CODE: Final = {c: i for i, c in enumerate(_CATEGORIES)}
_REASON_CODE: Final = {r: i for i, r in enumerate(_REASONS)}
_PHASE_OF: Final = {c: i for i, phase in enumerate(PHASES) for c in phase}
#: category → (phase, category code): one enum hash per add, not two (``Enum.__hash__`` is Python)
_SLOT: Final = {c: (_PHASE_OF[c], code) for c, code in _CATEGORY_CODE.items()}
#: The ``kind`` of a row whose deletion is kept whole.
_OBJECT: Final = 255
#: A revision registry 2.1.0 linked under ``_layers``: a revision, at a layer link's path.
_LEGACY: Final = 254


class _Rows:
    """The columns of one phase's rows."""

    __slots__ = ("digest", "kind", "name", "objects", "reason", "repo", "size")

    def __init__(self) -> None:
        self.kind = bytearray()  # category code, or _OBJECT / _LEGACY
        self.reason = bytearray()
        self.repo = array("i")
        self.digest = array("i")
        self.name = array("i")
        self.size = array("q")
        #: row → the deletion, for rows kept whole
        self.objects: dict[int, Deletion] = {}

    def __len__(self) -> int:
        return len(self.kind)

    def extend(self, other: _Rows) -> None:
        base = len(self)
        self.kind += other.kind
        self.reason += other.reason
        self.repo.extend(other.repo)
        self.digest.extend(other.digest)
        self.name.extend(other.name)
        self.size.extend(other.size)
        self.objects.update((base + i, d) for i, d in other.objects.items())


class DeletionList(Sequence[Deletion]):
    """A plan's deletions, in plan (phase) order, as columns (see the module)."""

    def __init__(self, index: DigestIndex) -> None:
        self.digests = index
        self._phases = [_Rows() for _ in PHASES]
        self._rows: _Rows | None = None
        self._bounds = [0]
        self._repos: list[Repository] = []
        self._repo_code: dict[str, int] = {}
        self._names: list[Tag] = []
        self._name_code: dict[str, int] = {}

    # -- filling ------------------------------------------------------------------------

    def _code(self, value: str, codes: dict[str, int], values: list[str]) -> int:
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(values)
            values.append(value)
        return code

    def add(
        self,
        category: Category,
        reason: Reason,
        repository: Repository | None,
        digest_id: int,
        *,
        size: int = 0,
        tag: Tag | None = None,
        legacy: bool = False,
    ) -> None:
        """Add a one-path deletion the layout spells: a blob, a link, a revision, a tag entry."""
        if self._rows is not None:
            msg = "the deletion list is frozen"
            raise RuntimeError(msg)
        phase, code = _SLOT[category]
        rows = self._phases[phase]
        rows.kind.append(_LEGACY if legacy else code)
        rows.reason.append(_REASON_CODE[reason])
        if repository is None:
            rows.repo.append(-1)
        else:
            # _code, inlined for the common case (a repository already seen): ~10 % of an add.
            repo_code = self._repo_code.get(repository)
            if repo_code is None:
                repo_code = self._code(repository, self._repo_code, self._repos)  # type: ignore[arg-type]
            rows.repo.append(repo_code)
        rows.digest.append(digest_id)
        rows.name.append(-1 if tag is None else self._code(tag, self._name_code, self._names))  # type: ignore[arg-type]
        rows.size.append(size)

    def append(self, deletion: Deletion) -> None:
        """Add any deletion, kept whole (it goes into its phase)."""
        if self._rows is not None:
            msg = "the deletion list is frozen"
            raise RuntimeError(msg)
        rows = self._phases[_PHASE_OF[deletion.category]]
        rows.objects[len(rows)] = deletion
        rows.kind.append(_OBJECT)
        rows.reason.append(_REASON_CODE[deletion.reason])
        rows.repo.append(-1)
        rows.digest.append(-1)
        rows.name.append(-1)
        rows.size.append(deletion.size)

    def freeze(self) -> DeletionList:
        """Put the phases one after the other; nothing is added afterwards."""
        if self._rows is None:
            rows = _Rows()
            for phase in self._phases:
                rows.extend(phase)
                self._bounds.append(len(rows))
            self._rows = rows
            self._phases = []
        return self

    @property
    def _all(self) -> _Rows:
        self.freeze()
        assert self._rows is not None
        return self._rows

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        if self._rows is None:
            return sum(len(p) for p in self._phases)
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> Deletion: ...
    @overload
    def __getitem__(self, i: slice) -> list[Deletion]: ...
    def __getitem__(self, i: int | slice) -> Deletion | list[Deletion]:
        if isinstance(i, slice):
            return [self._make(k) for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            msg = "deletion index out of range"
            raise IndexError(msg)
        return self._make(i)

    def __iter__(self) -> Iterator[Deletion]:
        return (self._make(i) for i in range(len(self)))

    def category_of(self, i: int) -> Category:
        """The category of deletion ``i``, without making it."""
        rows = self._all
        kind = rows.kind[i]
        if kind == _OBJECT:
            return rows.objects[i].category
        return Category.REVISION if kind == _LEGACY else _CATEGORIES[kind]

    def phase_range(self, phase: int) -> range:
        """The indices of the deletions of ``PHASES[phase]`` (they are contiguous)."""
        self.freeze()
        return range(self._bounds[phase], self._bounds[phase + 1])

    def size_of(self, i: int) -> int:
        """The bytes deletion ``i`` frees (without making it)."""
        return self._all.size[i]

    def total_size(self) -> int:
        """The bytes every deletion frees (without making one)."""
        return sum(self._all.size)

    def paths_of(self, i: int) -> tuple[str, ...]:
        """The paths of deletion ``i`` (without making the deletion for a one-path row)."""
        row = self._row(self._all, i)
        return row.paths if isinstance(row, Deletion) else (row.path,)

    def spelled(self) -> Iterator[Deletion | Spelled]:
        """Every deletion in plan order, a one-path row as its fields rather than a Deletion.

        A row kept whole comes as its :class:`~registry_gc.plan.Deletion`; a
        one-path row as a :class:`Spelled` tuple, which also carries the digest's
        id, for readers that look it up by id.
        """
        rows = self._all
        return (self._row(rows, i) for i in range(len(rows)))

    def _row(self, rows: _Rows, i: int) -> Deletion | Spelled:
        """Row ``i``: its deletion if kept whole, else its fields and its one path."""
        kind = rows.kind[i]
        if kind == _OBJECT:
            return rows.objects[i]
        did = rows.digest[i]
        digest = self.digests.digest(did)
        code = rows.repo[i]
        name = rows.name[i]
        repo = None if code < 0 else self._repos[code]
        tag = None if name < 0 else self._names[name]
        category = Category.REVISION if kind == _LEGACY else _CATEGORIES[kind]
        if category is Category.BLOB:
            path = blob_path(digest)
        elif kind == _LEGACY or category is Category.LAYER_LINK:
            path = LayerLink(repo, digest).path  # type: ignore[arg-type]
        elif category is Category.REVISION:
            path = RevisionLink(repo, digest).path  # type: ignore[arg-type]
        else:
            path = TagIndexLink(repo, tag, digest).path  # type: ignore[arg-type]
        return Spelled(
            category,
            _REASONS[rows.reason[i]],
            repo,
            did,
            digest,
            tag,
            rows.size[i],
            path,
            kind == _LEGACY,
        )

    def _make(self, i: int) -> Deletion:
        row = self._row(self._all, i)
        if isinstance(row, Deletion):
            return row
        return Deletion(
            row.category, row.reason, (row.path,), row.size, row.repository, row.digest, row.tag
        )

    def names(self) -> Iterable[str]:
        """Every repository and tag name the one-path rows spell paths with."""
        return (*self._repos, *self._names)

    def objects(self) -> Iterable[tuple[int, Deletion]]:
        """The rows kept whole: (index, deletion)."""
        return self._all.objects.items()

    def unsafe_path(self) -> str | None:
        """A path of the plan outside ``docker/registry/v2`` or with a ``..`` component, if any.

        The one-path rows are spelled by the layout, so only their names can
        hold a ``..``: the names are checked, and each row kept whole.
        """
        for name in self.names():
            if ".." in name.split("/"):
                return f"{V2_PREFIX}…/{name}/…"
        for _, d in self.objects():
            for p in d.paths:
                if not p.startswith(V2_PREFIX) or ".." in p.split("/"):
                    return p
        return None

    def tally(self, counted: Sequence[int] | None = None) -> Tally:
        """Counts and bytes of the deletions (those ``counted`` marks, when given).

        The rows are first summed per (kind, reason, repository) code, in the order each
        first occurs, then handed to the tally one sum each: a row costs a tuple and a
        dict update instead of a :meth:`Tally.add` (with its enum hashing), and the tally's
        dicts fill in the same order as row by row.
        """
        rows = self._all
        kinds, reasons, repos, sizes = rows.kind, rows.reason, rows.repo, rows.size
        objects = rows.objects
        #: (kind, reason, repository code) → [count, bytes]; (_OBJECT, row, 0) for a row kept whole
        sums: dict[tuple[int, int, int], list[int]] = {}
        columns = zip(kinds, reasons, repos, sizes, strict=True)
        for i, (kind, reason, code, size) in enumerate(columns):
            if counted is not None and not counted[i]:
                continue
            key = (kind, i, 0) if kind == _OBJECT else (kind, reason, code)
            entry = sums.get(key)
            if entry is None:
                sums[key] = [1, size]
            else:
                entry[0] += 1
                entry[1] += size
        tally = Tally()
        for (kind, reason, code), (count, size) in sums.items():
            if kind == _OBJECT:
                d = objects[reason]
                tally.add(d.category, d.reason, d.repository, d.size, len(d.paths))
                continue
            tally.add(
                Category.REVISION if kind == _LEGACY else _CATEGORIES[kind],
                _REASONS[reason],
                None if code < 0 else self._repos[code],
                size,
                count,
                count=count,
            )
        return tally

    def __repr__(self) -> str:
        return f"DeletionList({len(self)} deletions)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeletionList | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class Tally:
    """Counts, bytes and objects per category, per repository and per reason."""

    def __init__(self) -> None:
        #: category → [count, bytes, objects]
        self.categories: dict[Category, list[int]] = {c: [0, 0, 0] for c in Category}
        #: repository → [count, bytes, {category: count}]
        self.repositories: dict[str, tuple[list[int], dict[Category, int]]] = {}
        #: category → {reason: count}
        self.reasons: dict[Category, dict[Reason, int]] = {}
        self.count = 0
        self.bytes = 0
        self.objects = 0

    def add(
        self,
        category: Category,
        reason: Reason,
        repository: str | None,
        size: int,
        objects: int,
        *,
        count: int = 1,
    ) -> None:
        """Count one deletion (or ``count`` alike ones, ``size`` and ``objects`` their sums)."""
        c = self.categories[category]
        c[0] += count
        c[1] += size
        c[2] += objects
        self.count += count
        self.bytes += size
        self.objects += objects
        by_reason = self.reasons.setdefault(category, {})
        by_reason[reason] = by_reason.get(reason, 0) + count
        if repository is not None:
            entry = self.repositories.get(repository)
            if entry is None:
                entry = self.repositories[repository] = ([0, 0], {})
            entry[0][0] += count
            entry[0][1] += size
            entry[1][category] = entry[1].get(category, 0) + count

    @classmethod
    def of(cls, deletions: Iterable[Deletion], counted: Sequence[int] | None = None) -> Tally:
        """The tally of any deletions (those ``counted`` marks, when given)."""
        tally = cls()
        for i, d in enumerate(deletions):
            if counted is None or counted[i]:
                tally.add(d.category, d.reason, d.repository, d.size, len(d.paths))
        return tally


def deleted_bytes(deletions: Sequence[Deletion]) -> int:
    """The bytes ``deletions`` free: the size column's sum for a :class:`DeletionList`."""
    if isinstance(deletions, DeletionList):
        return deletions.total_size()
    return sum(d.size for d in deletions)
