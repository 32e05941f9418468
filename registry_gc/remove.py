"""Explicit removals: what ``registry-gc rm`` takes, checked and resolved against the store.

``rm`` arguments are validated against distribution's grammar before the
storage is touched (:func:`parse_image`), then resolved against an inventory
(:func:`resolve_removal`: every name must exist). The manifests a removed tag
leaves behind are found by :func:`manifests_to_remove`; the collector then
deletes them unless something live still needs them. :func:`explicit_plan`
deletes exactly what was named and nothing else (``rm --no-gc``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from ._errors import InvalidReferenceError, NotFoundError
from .layout import Digest, Repository, Tag, repository_prefix
from .manifests import Manifest
from .mark import Marks
from .plan import make_plan

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .fetch import ManifestTable
    from .inventory import Inventory
    from .plan import Plan

__all__ = [
    "ImageRef",
    "Removal",
    "explicit_plan",
    "manifests_to_remove",
    "parse_image",
    "resolve_removal",
]

_EXPLICIT_REASONS = frozenset({"removed-tag", "removed-manifest", "removed-repository"})


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

    if not text:
        fail("it is empty; give REPOSITORY, REPOSITORY:TAG or REPOSITORY@sha256:DIGEST")
    if "\x00" in text or any(c.isspace() for c in text):
        fail("it contains a NUL byte or white space")
    if "\\" in text:
        fail("a backslash is not part of any image name")
    if "%" in text:
        fail("percent-encoded characters (such as %2F for '/') are not allowed in names")
    if text.startswith(("/", "~")):
        fail(
            "an absolute path is not an image name: give the repository name as the registry "
            "knows it (library/alpine, not /library/alpine)"
        )
    name, at, digest = text.partition("@")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    parts = name.split("/")
    if "." in parts or ".." in parts:
        fail("'.' and '..' are not repository name components")
    if "" in parts:
        fail("empty name component (a leading, trailing or doubled '/')")
    if ":" in name:
        fail(
            "a registry address (host:port/) is not part of the name in storage: give the "
            "repository name only"
        )
    if at and tag is not None:
        fail("give either a tag or a digest, not both")
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
    (``subject``), recursively — except what a surviving tag points at. The
    collector keeps any of them that is still live (a child of a live index,
    a referrer of a live image).
    """
    out: dict[Repository, set[Digest]] = {}
    for name in sorted(set(removal.tags) | set(removal.manifests)):
        repo = inventory.repositories[name]
        gone = removal.tags.get(name, frozenset())
        surviving = {
            t.current for n, t in repo.tags.items() if n not in gone and t.current is not None
        }
        stack: list[Digest] = list(removal.manifests.get(name, ()))
        for tag_name in removal.named_tags.get(name, frozenset()):
            tag = repo.tags[tag_name]
            if tag.current is not None:
                stack.append(tag.current)
            stack.extend(tag.index)
        referrers: dict[Digest, list[Digest]] = defaultdict(list)
        for d in repo.revisions:
            m = manifests.get(d)
            if isinstance(m, Manifest) and m.subject is not None:
                referrers[m.subject].append(d)
        found: set[Digest] = set()
        while stack:
            d = stack.pop()
            if d in found or d in surviving:
                continue
            found.add(d)
            m = manifests.get(d)
            if isinstance(m, Manifest):
                stack.extend(c.digest for c in m.children)
            stack.extend(referrers.get(d, ()))
        out[name] = {d for d in found if d in repo.revisions}
    return out


def explicit_plan(inventory: Inventory, removal: Removal, *, cutoff: float) -> Plan:
    """A plan that deletes exactly what ``removal`` names and nothing else (``rm --no-gc``).

    Tag directories, the revision links of removed manifests, and whole
    repositories (their ``_manifests``, ``_layers`` and ``_uploads``; nested
    repositories stay). No blob, no other link.
    """
    marks = Marks()
    for name, repo in inventory.repositories.items():
        gone = removal.manifests.get(name, frozenset())
        marks.live[name] = {d for d in repo.revisions if d not in gone}
        marks.needed_links[name] = set(repo.layers)
    marks.blobs = set(inventory.blobs)
    plan = make_plan(
        inventory,
        marks,
        delete_untagged=False,
        cutoff=cutoff,
        uploads_cutoff=float("-inf"),
        removed_tags=removal.tags,
        removed_repositories=removal.repositories,
        removed_manifests=removal.manifests,
    )
    plan.deletions = [d for d in plan.deletions if d.reason in _EXPLICIT_REASONS]
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
