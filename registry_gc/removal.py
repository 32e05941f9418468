"""Explicit removals: what ``registry-gc rm`` takes, checked and resolved against the store.

``rm`` arguments are validated against distribution's grammar before the
storage is touched (:func:`parse_image`), then resolved against an inventory
(:func:`resolve_removal`: every name must exist). The manifests a removed tag
leaves behind are found by :func:`manifests_to_remove`; the collector then
deletes them unless something live still needs them. :func:`explicit_plan`
deletes exactly what was named and nothing else (``rm --no-gc``).
:func:`remove` is the command: all of it, in one call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Final, NoReturn

import attrs

from . import _sync
from ._errors import InvalidReferenceError, NotFoundError, RefusedError
from ._run import Timings, open_root, refuse_empty, survey
from .apply import execute
from .collector import sweep, write_plan_files
from .graph import Graph, Role, walk
from .inventory import scan
from .layout import Digest, Repository, Tag, repository_prefix
from .mark import Marks
from .options import Options, Removals
from .plan import Category, make_plan
from .planfile import check_writable
from .report import Report

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence

    from ._run import ProgressCallback, Root
    from .fetch import ManifestTable
    from .inventory import Inventory
    from .plan import Plan

__all__ = [
    "ImageRef",
    "Removal",
    "RemoveReport",
    "explicit_plan",
    "manifests_to_remove",
    "parse_image",
    "removals_of",
    "remove",
    "remove_async",
    "resolve_removal",
]


@attrs.frozen
class ImageRef:
    """An ``rm`` argument: a repository, ``repository:tag`` or ``repository@digest``."""

    repository: Repository
    tag: Tag | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        if self.tag is not None:
            return f"{self.repository}:{self.tag}"
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return str(self.repository)

    @property
    def kind(self) -> str:
        """``repository``, ``tag`` or ``manifest``."""
        if self.tag is not None:
            return "tag"
        return "manifest" if self.digest is not None else "repository"


#: What makes an ``rm`` argument no image name at all, checked before it is split.
_TEXT_PROBLEMS: Final[tuple[tuple[Callable[[str], bool], str], ...]] = (
    (
        lambda t: not t,
        "it is empty; give REPOSITORY, REPOSITORY:TAG or REPOSITORY@sha256:DIGEST",
    ),
    (
        lambda t: "\x00" in t or any(c.isspace() for c in t),
        "it contains a NUL byte or white space",
    ),
    (lambda t: "\\" in t, "a backslash is not part of any image name"),
    (
        lambda t: "%" in t,
        "percent-encoded characters (such as %2F for '/') are not allowed in names",
    ),
    (
        lambda t: t.startswith(("/", "~")),
        (
            "an absolute path is not an image name: give the repository name as the registry "
            "knows it (library/alpine, not /library/alpine)"
        ),
    ),
)


def _name_problem(name: str, *, with_digest: bool, with_tag: bool) -> str | None:
    """What is wrong with the repository part of an ``rm`` argument, if anything."""
    parts = name.split("/")
    if "." in parts or ".." in parts:
        return "'.' and '..' are not repository name components"
    if "" in parts:
        return "empty name component (a leading, trailing or doubled '/')"
    if ":" in name:
        return (
            "a registry address (host:port/) is not part of the name in storage: give the "
            "repository name only"
        )
    if with_digest and with_tag:
        return "give either a tag or a digest, not both"
    return None


def parse_image(text: str) -> ImageRef:
    """Validate an ``rm`` argument against distribution's grammar, before anything is touched.

    >>> parse_image("library/alpine:3.20")
    ImageRef(repository='library/alpine', tag='3.20', digest=None)
    >>> parse_image("library/../etc")
    Traceback (most recent call last):
    ...
    registry_gc._errors.InvalidReferenceError: invalid image 'library/../etc': ...
    """
    shown = repr(text[:300])

    def fail(why: str) -> NoReturn:
        msg = f"invalid image {shown}: {why}"
        raise InvalidReferenceError(msg)

    why = next((message for bad, message in _TEXT_PROBLEMS if bad(text)), None)
    if why is not None:
        fail(why)
    name, at, digest = text.partition("@")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    why = _name_problem(name, with_digest=bool(at), with_tag=tag is not None)
    if why is not None:
        fail(why)
    try:
        repository = Repository(name)
        if at:
            return ImageRef(repository, None, Digest(digest))
        return ImageRef(repository, Tag(tag) if tag is not None else None)
    except InvalidReferenceError as e:
        fail(str(e))


@attrs.frozen
class Removal:
    """What ``rm`` removes, resolved against the store."""

    requested: tuple[ImageRef, ...]
    repositories: frozenset[Repository]
    #: tags removed, by name or because they point at a removed manifest (as distribution's
    #: DELETE untags them)
    tags: Mapping[Repository, frozenset[Tag]]
    #: manifests removed by digest
    manifests: Mapping[Repository, frozenset[Digest]]
    #: the tags removed by name (their history goes too; a tag only untagged keeps it)
    named_tags: Mapping[Repository, frozenset[Tag]] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "images": [str(r) for r in self.requested],
            "repositories": sorted(self.repositories),
            "tags": {r: sorted(t) for r, t in sorted(self.tags.items())},
            "manifests": {r: sorted(d) for r, d in sorted(self.manifests.items())},
        }


def resolve_removal(inventory: Inventory, refs: Sequence[ImageRef]) -> Removal:
    """Check that every ``ref`` names something in the store; raise :class:`NotFoundError` if not.

    A repository removal subsumes tags and manifests of that repository. A
    manifest removal untags the tags that point at it.
    """
    missing: list[str] = []
    repositories: set[Repository] = set()
    tags: dict[Repository, set[Tag]] = defaultdict(set)
    named: dict[Repository, set[Tag]] = defaultdict(set)
    manifests: dict[Repository, set[Digest]] = defaultdict(set)
    for ref in refs:
        entry = inventory.repositories.get(ref.repository)
        if entry is None:
            nested = sorted(r for r in inventory.repositories if r.startswith(ref.repository + "/"))
            hint = ""
            if nested:
                hint = (
                    f" (it only holds the repositories {', '.join(nested[:5])}"
                    f"{' …' if len(nested) > 5 else ''}: remove those by name)"
                )
            missing.append(f"repository {ref.repository!r} does not exist{hint}")
        elif ref.tag is not None and ref.tag not in entry.tags:
            known = ", ".join(sorted(entry.tags)[:10]) or "none"
            missing.append(f"tag {ref} does not exist (tags of {ref.repository}: {known})")
        elif ref.digest is not None and ref.digest not in entry.revisions:
            missing.append(f"manifest {ref} is not a revision of repository {ref.repository}")
        elif ref.tag is not None:
            tags[ref.repository].add(ref.tag)
            named[ref.repository].add(ref.tag)
        elif ref.digest is not None:
            manifests[ref.repository].add(ref.digest)
            tags[ref.repository].update(
                name for name, t in entry.tags.items() if t.current == ref.digest
            )
        else:
            repositories.add(ref.repository)
    if missing:
        what = (
            missing[0]
            if len(missing) == 1
            else f"{len(missing)} images not found: " + "; ".join(missing)
        )
        msg = f"{what} in {inventory.url}; nothing was deleted"
        raise NotFoundError(msg)
    return Removal(
        requested=tuple(refs),
        repositories=frozenset(repositories),
        tags={r: frozenset(t) for r, t in tags.items() if r not in repositories},
        manifests={r: frozenset(d) for r, d in manifests.items() if r not in repositories},
        named_tags={r: frozenset(t) for r, t in named.items() if r not in repositories},
    )


def manifests_to_remove(
    inventory: Inventory, manifests: ManifestTable, removal: Removal
) -> dict[Repository, set[Digest]]:
    """The revisions ``removal`` makes deletable: what its tags pointed at, and below.

    For each tag removed by name, its current manifest and its history; for
    each removed manifest, itself; then their index children and referrers
    (``subject``), recursively (:func:`~registry_gc.graph.walk`) — except what
    a surviving tag points at. The collector keeps any of them that is still
    live (a child of a live index, a referrer of a live image).
    """
    out: dict[Repository, set[Digest]] = {}
    for name in sorted(set(removal.tags) | set(removal.manifests)):
        repo = inventory.repositories[name]
        gone = removal.tags.get(name, frozenset())
        surviving = {
            t.current for n, t in repo.tags.items() if n not in gone and t.current is not None
        }
        start = [(d, Role.ROOT) for d in removal.manifests.get(name, ())]
        for tag_name in removal.named_tags.get(name, frozenset()):
            tag = repo.tags[tag_name]
            if tag.current is not None:
                start.append((tag.current, Role.TAG))
            start.extend((d, Role.HISTORY) for d in tag.index)
        graph = Graph.of(repo, manifests, inventory.blobs)
        reach = walk(graph, start, skip=surviving)
        out[name] = {d for d in reach.manifests if d in graph.manifests}
    return out


def removals_of(removal: Removal, manifests: Mapping[Repository, set[Digest]]) -> Removals:
    """What the collector removes for ``removal``: its tags and repositories, and ``manifests``."""
    return Removals(tags=removal.tags, repositories=removal.repositories, manifests=manifests)


def explicit_plan(inventory: Inventory, removal: Removal, *, options: Options) -> Plan:
    """A plan that deletes exactly what ``removal`` names and nothing else (``rm --no-gc``).

    Tag directories, the revision links of removed manifests, and whole
    repositories (their ``_manifests``, ``_layers`` and ``_uploads``; nested
    repositories stay). No blob, no other link.
    """
    removals = removals_of(removal, {r: set(d) for r, d in removal.manifests.items()})
    marks = Marks(options=options, removals=removals, cutoffs=options.cutoffs(inventory.started))
    for name, repo in inventory.repositories.items():
        gone = removal.manifests.get(name, frozenset())
        marks.live[name] = {d for d in repo.revisions if d not in gone}
        marks.needed_links[name] = set(repo.layers)
    marks.blobs = set(inventory.blobs)
    plan = make_plan(inventory, marks)
    plan.deletions = [d for d in plan.deletions if d.reason.explicit]
    plan.kept = []
    plan.stale_empty_dirs = []
    whole = {repository_prefix(r).rstrip("/") for r in removal.repositories}
    plan.removed_repositories = frozenset(plan.removed_repositories & whole)
    keep = set(plan.protected_dirs)
    for name in {*removal.tags, *removal.manifests}:
        prefix = repository_prefix(name)
        keep.add(prefix.rstrip("/"))
        keep.update(prefix + d for d in ("_manifests", "_manifests/tags", "_manifests/revisions"))
    plan.protected_dirs = frozenset(keep)
    return plan


@attrs.frozen
class RemoveReport:
    """What ``remove`` did: the removal, the run's report, and the manifests still needed."""

    removal: Removal
    report: Report
    #: whether the run also collected what the removal left unreferenced (not ``--no-gc``)
    collected: bool
    #: removed manifests kept because something live still needs them (``repo@digest``)
    kept: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 on success; 1 when a deletion failed or was skipped."""
        return self.report.exit_code

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON form with the removal (``command: rm``)."""
        data = self.report.to_dict()
        data["command"] = "rm"
        data["removal"] = {**self.removal.to_dict(), "gc": self.collected, "kept": list(self.kept)}
        return data

    def render(self, *, verbose: bool = False) -> str:
        """A readable summary for a terminal."""
        verb = "would remove" if self.report.dry_run else "removed"
        refs = self.removal.requested
        lines = [f"registry-gc rm: {verb} " + ", ".join(f"{r.kind} {r}" for r in refs)]
        if self.kept:
            lines.append(f"  kept, still needed by a live image: {', '.join(self.kept)}")
        return "\n".join([*lines, self.report.render(verbose=verbose)])


async def remove_async(
    root: Root,
    images: Sequence[str | ImageRef],
    options: Options | None = None,
    *,
    collect: bool = True,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> RemoveReport:
    """:func:`remove`, for callers that run an event loop."""
    refs = [i if isinstance(i, ImageRef) else parse_image(i) for i in images]
    if not refs:
        msg = "nothing to remove: give REPOSITORY, REPOSITORY:TAG or REPOSITORY@DIGEST"
        raise InvalidReferenceError(msg)
    options = options or Options()
    check_writable(plan_out, deletions_out)
    backend = open_root(root, storage_options, read_only=dry_run)
    try:
        timings = Timings()
        if not collect:
            with timings.step("inventory"):
                inventory = await scan(backend, progress=progress)
            refuse_empty(inventory, allow_empty=options.allow_empty)
            removal = resolve_removal(inventory, refs)
            plan = explicit_plan(inventory, removal, options=options)
            report = Report(
                inventory,
                plan,
                dry_run,
                options,
                timings=timings,
                removals=removals_of(removal, {r: set(d) for r, d in removal.manifests.items()}),
            )
            write_plan_files(report, plan_out=plan_out)
            if not dry_run:
                with timings.step("apply"):
                    report.result = await execute(backend, report.plan, progress=progress)
            write_plan_files(report, deletions_out=deletions_out)
            timings["total"] = timings.total()
            return RemoveReport(removal, report, collected=False)
        inventory, manifests = await survey(
            backend, allow_empty=options.allow_empty, progress=progress, timings=timings
        )
        removal = resolve_removal(inventory, refs)
        removed = manifests_to_remove(inventory, manifests, removal)
        try:
            report = await sweep(
                backend,
                inventory,
                manifests,
                options=options,
                removals=removals_of(removal, removed),
                policy=None,
                dry_run=dry_run,
                now=None,
                timings=timings,
                progress=progress,
                plan_out=plan_out,
                deletions_out=deletions_out,
            )
        except RefusedError as e:
            hint = "; collect=False removes the names without collecting"
            raise RefusedError(f"{e}{hint}", e.problems) from None
        deleted = {
            (d.repository, d.digest)
            for d in report.plan.deletions
            if d.category is Category.REVISION
        }
        kept = tuple(
            f"{r}@{d}"
            for r, ds in sorted(removal.manifests.items())
            for d in sorted(ds)
            if (r, d) not in deleted
        )
        return RemoveReport(removal, report, collected=True, kept=kept)
    finally:
        await backend.aclose()


def remove(
    root: Root,
    images: Sequence[str | ImageRef],
    options: Options | None = None,
    *,
    collect: bool = True,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    plan_out: str | os.PathLike[str] | None = None,
    deletions_out: str | os.PathLike[str] | None = None,
) -> RemoveReport:
    """Remove repositories, tags or manifests by name, then collect what they leave behind.

    ``images`` are ``repository``, ``repository:tag`` or ``repository@digest``
    (strings or :class:`~registry_gc.removal.ImageRef`), validated against distribution's grammar
    before the storage is touched and resolved against the store (every name
    must exist: :class:`~registry_gc.NotFoundError` otherwise, nothing deleted).
    Removing a repository keeps the repositories nested under it; removing a
    manifest untags the tags on it, as distribution's ``DELETE`` does. With
    ``collect`` (the default), the same run collects what the removal made
    unreferenced, with ``options`` as :func:`~registry_gc.collect` takes them
    (a manifest still needed by a live image is kept and listed in ``kept``);
    without it, exactly the names go and nothing else. ``plan_out`` and
    ``deletions_out`` write plan files as for :func:`~registry_gc.collect`.

    >>> report = remove("memory://empty", ["app:old"], dry_run=True)
    Traceback (most recent call last):
    ...
    registry_gc._errors.RefusedError: no registry found at memory:///empty: ...
    """
    return _sync.run(
        remove_async(
            root,
            images,
            options,
            collect=collect,
            dry_run=dry_run,
            storage_options=storage_options,
            progress=progress,
            plan_out=plan_out,
            deletions_out=deletions_out,
        )
    )
