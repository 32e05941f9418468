"""Inspect a registry's storage: what ``ls``, ``du`` and ``fsck`` show.

The cores are pure functions over an :class:`~registry_gc.Inventory` and a
:data:`~registry_gc.ManifestTable` (``du`` also takes the marks and the plan
a run would make). The few reads they need beyond those — image configs for
``ls``'s platforms; links, manifest bytes and blob hashes for ``fsck`` — are
done by the ``async`` functions at the end, at the edge.

``fsck`` checks what a pull of each tag needs from storage, as distribution
serves it: the tag's ``current`` link names a digest; the manifest has a
revision link in the repository and its blob is present, hashes to its
digest and parses; for an index, the same for every child; for an image,
every config and layer blob is present and linked into the repository
(``_layers``). With ``verify_blobs``, every blob is hashed too.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from typing import TYPE_CHECKING, Any

import attrs

from . import _sync
from ._errors import InvalidReferenceError, ManifestError, NotFoundError
from .backends._hashing import digest_paths, new_hash, streaming
from .fetch import Unreadable
from .layout import (
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    TagCurrentLink,
    blob_path,
)
from .manifests import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from .plan import Category

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from .backends import Backend
    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry, TagEntry
    from .mark import Marks
    from .plan import Plan

__all__ = [
    "FsckResult",
    "ImageSummary",
    "NotFoundError",
    "Problem",
    "RepositorySummary",
    "RepositoryUsage",
    "TagSummary",
    "Usage",
    "check_store",
    "disk_usage",
    "fsck",
    "fsck_async",
    "list_repositories",
    "paths_to_read",
    "platform_of_config",
    "read_platforms",
    "select_repositories",
]

log = logging.getLogger(__name__)

#: Paths asked of the backend in one ``read`` call, and calls in flight at once.
READ_BATCH = 256
PARALLEL_READS = 8
#: Blobs given to one ``digest`` call, and calls in flight at once.
HASH_BATCH = 8
PARALLEL_HASHES = 4
#: Image configs larger than this are not read for their platform.
MAX_CONFIG_SIZE = 1024 * 1024


def _canonical(repo: RepositoryEntry, digest: Digest) -> Digest | None:
    """The blob a reference resolves to in ``repo`` (sha384/sha512 links name sha256 blobs)."""
    if digest.algorithm == "sha256":
        return digest
    return repo.layer_aliases.get(digest)


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def select_repositories(inventory: Inventory, names: Iterable[str] = ()) -> list[Repository]:
    """The repositories ``names`` select, sorted; every repository when there are none.

    A name is exact (``library/alpine``) or a shell pattern (``library/*``).
    An exact name that is not in the store raises :class:`NotFoundError`; an
    invalid one, :class:`~registry_gc.InvalidReferenceError`.
    """
    names = list(names)
    present = sorted(inventory.repositories)
    if not names:
        return present
    chosen: set[Repository] = set()
    missing: list[str] = []
    for name in names:
        if _is_pattern(name):
            chosen.update(r for r in present if fnmatch.fnmatchcase(r, name))
            continue
        repo = Repository(name)
        if repo in inventory.repositories:
            chosen.add(repo)
        else:
            missing.append(name)
    if missing:
        nested = [r for r in present if any(r.startswith(m + "/") for m in missing)]
        hint = f" (nested repositories: {', '.join(nested[:5])})" if nested else ""
        msg = (
            f"no repository {', '.join(repr(m) for m in missing)} in {inventory.url}{hint}; "
            "registry-gc ls ROOT lists them all"
        )
        raise NotFoundError(msg)
    return sorted(chosen)


# -- ls --------------------------------------------------------------------------------


@attrs.frozen
class ImageSummary:
    """What one manifest (an image or an index, with its children) is and holds."""

    digest: Digest
    #: :class:`~registry_gc.ManifestKind` value, ``None`` when it cannot be read
    kind: str | None
    media_type: str | None
    artifact_type: str | None
    #: ``os/architecture[/variant]`` of each platform (from the index, or the config)
    platforms: tuple[str, ...]
    #: bytes of the distinct blobs it needs that are in the store (manifests, configs, layers)
    size: int
    #: blobs it needs that are not in the store (foreign layers aside)
    missing: int
    #: why it cannot be summarised, if it cannot
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "digest": self.digest,
            "kind": self.kind,
            "media_type": self.media_type,
            "artifact_type": self.artifact_type,
            "platforms": list(self.platforms),
            "bytes": self.size,
            "missing_blobs": self.missing,
            "problem": self.problem,
        }


@attrs.frozen
class TagSummary:
    """A tag and the image it points at (``image`` is ``None`` when its link is broken)."""

    name: str
    digest: Digest | None
    #: when the tag last moved (its ``current`` link's modification time), seconds since the epoch
    modified: float | None
    image: ImageSummary | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the image's fields, flattened, plus the tag's name."""
        out: dict[str, Any] = {"name": self.name, "digest": self.digest, "modified": self.modified}
        if self.image is not None:
            out.update({k: v for k, v in self.image.to_dict().items() if k != "digest"})
            if self.problem is None:
                out["problem"] = self.image.problem
        if self.image is None or self.problem is not None:
            out["problem"] = self.problem
        return out


@attrs.frozen
class RepositorySummary:
    """One repository: its tags, and its untagged revisions when asked for."""

    name: str
    tags: tuple[TagSummary, ...]
    revisions: int
    #: revisions that no tag reaches (not a tag's target, nor a child of one)
    untagged_count: int
    untagged: tuple[ImageSummary, ...]
    layer_links: int
    uploads: int
    #: bytes of the distinct blobs its revisions and tags need
    size: int
    #: why distribution would not serve it (invalid name, no ``_manifests``), if so
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "tags": [t.to_dict() for t in self.tags],
            "revisions": self.revisions,
            "untagged_count": self.untagged_count,
            "untagged": [u.to_dict() for u in self.untagged],
            "layer_links": self.layer_links,
            "uploads": self.uploads,
            "bytes": self.size,
            "problem": self.problem,
        }


def platform_of_config(data: bytes) -> str | None:
    """``os/architecture[/variant]`` of an image config, or ``None`` when it has none.

    >>> platform_of_config(b'{"os": "linux", "architecture": "arm64", "variant": "v8"}')
    'linux/arm64/v8'
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    os_, arch, variant = doc.get("os"), doc.get("architecture"), doc.get("variant")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    return f"{os_}/{arch}/{variant}" if isinstance(variant, str) and variant else f"{os_}/{arch}"


def _closure(
    repo: RepositoryEntry, digest: Digest, manifests: ManifestTable
) -> tuple[set[Digest], set[Digest], int, list[Manifest]]:
    """What ``digest`` needs: (manifest digests, blob digests, missing blob count, images)."""
    seen: set[Digest] = set()
    blobs: set[Digest] = set()
    images: list[Manifest] = []
    missing = 0
    stack = [digest]
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        blobs.add(d)
        m = manifests.get(d)
        if not isinstance(m, Manifest):
            continue
        if m.is_index:
            stack.extend(c.digest for c in m.children)
            continue
        images.append(m)
        for ref in m.blobs:
            target = _canonical(repo, ref)
            if target is None:
                if ref not in m.foreign:
                    missing += 1
                continue
            blobs.add(target)
    return seen, blobs, missing, images


def _summarize(
    repo: RepositoryEntry,
    digest: Digest,
    inventory: Inventory,
    manifests: ManifestTable,
    platforms: Mapping[str, str],
) -> ImageSummary:
    m = manifests.get(digest)
    if m is None or isinstance(m, Unreadable):
        if m is None or m.missing:
            problem = f"manifest blob {blob_path(digest)} is missing"
        else:
            problem = m.error
        return ImageSummary(digest, None, None, None, (), 0, 1, problem)
    _, blobs, missing, images = _closure(repo, digest, manifests)
    present = inventory.blobs
    missing += sum(1 for b in blobs if b not in present and not _foreign(b, images))
    size = sum(present.size(b) for b in blobs if b in present)
    if m.is_index:
        found = [str(c.platform) for c in m.children if c.platform is not None]
    else:
        found = [platforms[m.config]] if m.config is not None and m.config in platforms else []
    return ImageSummary(
        digest,
        m.kind.value,
        m.media_type,
        m.artifact_type,
        tuple(dict.fromkeys(found)),
        size,
        missing,
        None,
    )


def _foreign(digest: Digest, images: Sequence[Manifest]) -> bool:
    return any(digest in m.foreign for m in images)


def list_repositories(
    inventory: Inventory,
    manifests: ManifestTable,
    repositories: Iterable[Repository] | None = None,
    *,
    untagged: bool = False,
    platforms: Mapping[str, str] | None = None,
) -> list[RepositorySummary]:
    """Summarise ``repositories`` (default: all): tags, digests, kinds, platforms, sizes.

    ``platforms`` maps an image config digest to its platform (see
    :func:`read_platforms`); without it, single-platform images show none.
    ``untagged`` also summarises every revision no tag reaches.
    """
    platforms = platforms or {}
    names = sorted(inventory.repositories) if repositories is None else list(repositories)
    out: list[RepositorySummary] = []
    for name in names:
        repo = inventory.repositories[name]
        tags: list[TagSummary] = []
        reached: set[Digest] = set()
        needed: set[Digest] = set()
        for tag_name in sorted(repo.tags):
            tag = repo.tags[tag_name]
            tags.append(_tag_summary(repo, tag, inventory, manifests, platforms))
            if tag.current is not None:
                seen, blobs, _, _ = _closure(repo, tag.current, manifests)
                reached |= seen
                needed |= blobs
        loose = sorted(d for d in repo.revisions if d not in reached)
        for d in loose:
            needed |= _closure(repo, d, manifests)[1]
        problem = None
        if repo.name_problem is not None:
            problem = f"invalid repository name: {repo.name_problem}"
        elif not repo.has_manifests:
            problem = "no _manifests directory: distribution does not list it as a repository"
        out.append(
            RepositorySummary(
                name=name,
                tags=tuple(tags),
                revisions=len(repo.revisions),
                untagged_count=len(loose),
                untagged=tuple(_summarize(repo, d, inventory, manifests, platforms) for d in loose)
                if untagged
                else (),
                layer_links=len(repo.layers),
                uploads=len(repo.uploads),
                size=sum(inventory.blobs.size(b) for b in needed if b in inventory.blobs),
                problem=problem,
            )
        )
    return out


def _tag_summary(
    repo: RepositoryEntry,
    tag: TagEntry,
    inventory: Inventory,
    manifests: ManifestTable,
    platforms: Mapping[str, str],
) -> TagSummary:
    if tag.current is None:
        why = "has no current link" if tag.current_mtime is None else "current link is broken"
        return TagSummary(tag.name, None, tag.current_mtime, None, why)
    image = _summarize(repo, tag.current, inventory, manifests, platforms)
    problem = None
    if tag.current not in repo.revisions:
        problem = "no revision link in the repository: the tag cannot be pulled"
    return TagSummary(tag.name, tag.current, tag.current_mtime, image, problem)


# -- du --------------------------------------------------------------------------------


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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
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
        }


def _references(
    repo: RepositoryEntry, digests: Iterable[Digest], manifests: ManifestTable
) -> set[Digest]:
    """Manifest blobs, configs and layers (canonical) of ``digests`` — one level, no children."""
    out: set[Digest] = set()
    for d in digests:
        out.add(d)
        m = manifests.get(d)
        if isinstance(m, Manifest):
            for ref in m.blobs:
                target = _canonical(repo, ref)
                if target is not None:
                    out.add(target)
    return out


def disk_usage(
    inventory: Inventory,
    manifests: ManifestTable,
    marks: Marks,
    plan: Plan | None,
    *,
    delete_untagged: bool,
) -> Usage:
    """Total, live and reclaimable bytes, and per repository: size, unique and shared bytes.

    ``marks`` and ``plan`` are what a run with the same options computes;
    ``plan`` is ``None`` when that run would refuse (``marks.problems``).
    """
    present = inventory.blobs
    live_refs: dict[str, set[Digest]] = {}
    users: dict[Digest, int] = {}
    for name, repo in inventory.repositories.items():
        refs = {
            b for b in _references(repo, marks.live.get(name, set()), manifests) if b in present
        }
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
        repo = inventory.repositories[name]
        refs = live_refs[name]
        size = sum(present.size(b) for b in refs)
        unique = sum(present.size(b) for b in refs if users[b] == 1)
        reclaimable: int | None = None
        if plan is not None:
            every = _references(
                repo,
                [*repo.revisions, *(t.current for t in repo.tags.values() if t.current)],
                manifests,
            )
            every.update(t for t in (_canonical(repo, d) for d in repo.layers) if t is not None)
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
        reclaimable_size = sum(d.size for d in plan.deletions)
        grace = sum(k.size for k in plan.kept)
    return Usage(
        url=inventory.url,
        delete_untagged=delete_untagged,
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


# -- fsck ------------------------------------------------------------------------------


@attrs.frozen
class Problem:
    """Something that keeps a tag from being pulled, or a corrupt blob.

    ``kind`` is a stable identifier: ``missing-current-link``,
    ``broken-current-link``, ``missing-revision-link``, ``broken-revision-link``,
    ``missing-manifest``, ``missing-child``, ``digest-mismatch``,
    ``unparseable-manifest``, ``missing-blob``, ``missing-layer-link``,
    ``broken-layer-link``, ``corrupt-blob``. ``tags`` are the
    ``repository:tag`` references it breaks.
    """

    kind: str
    path: str
    message: str
    repository: str | None = None
    digest: str | None = None
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": self.kind,
            "path": self.path,
            "repository": self.repository,
            "digest": self.digest,
            "tags": list(self.tags),
            "message": self.message,
        }


@attrs.frozen
class FsckResult:
    """What ``fsck`` checked and found."""

    url: str
    repositories: int
    tags: int
    manifests: int
    blobs: int
    links: int
    hashed: int
    problems: tuple[Problem, ...]
    #: things that do not break a tag (stray files, invalid names, …), from the inventory
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """``True`` when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "schema": "registry-gc/fsck/v1",
            "root": self.url,
            "ok": self.ok,
            "checked": {
                "repositories": self.repositories,
                "tags": self.tags,
                "manifests": self.manifests,
                "blobs": self.blobs,
                "links": self.links,
                "hashed": self.hashed,
            },
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def render(self, *, verbose: bool = False) -> str:
        """A readable summary for a terminal."""
        hashed = f", hashed {self.hashed} blobs" if self.hashed else ""
        lines = [
            f"registry-gc fsck on {self.url}",
            (
                f"  checked {self.repositories} repositories, {self.tags} tags, "
                f"{self.manifests} manifests, {self.blobs} blobs, {self.links} links{hashed}"
            ),
        ]
        if self.problems:
            lines.append(f"  PROBLEMS ({len(self.problems)}):")
            lines.extend(f"    - [{p.kind}] {p.message}" for p in self.problems)
        else:
            lines.append("  no problems: every tag can be pulled from storage")
        if self.warnings:
            shown = self.warnings if verbose else self.warnings[:20]
            lines.append(f"  warnings ({len(self.warnings)}):")
            lines.extend(f"    - {w.message}" for w in shown)
            if len(shown) < len(self.warnings):
                lines.append(f"    … and {len(self.warnings) - len(shown)} more (use -v or --json)")
        return "\n".join(lines)


@attrs.define
class _Found:
    kind: str
    path: str
    what: str
    remedy: str
    repository: str | None
    digest: str | None
    tags: list[str] = attrs.Factory(list)


def _parse_problem(error: ManifestError) -> str:
    # parse_manifest's message ends with advice for the collector; keep the cause only.
    text = str(error)
    cause = text.split("; the revision cannot be parsed", 1)[0]
    return cause.split(": ", 1)[1] if ": " in cause else cause


class _Check:
    """One pass over the selected tags: records problems and the reads still needed."""

    def __init__(
        self,
        inventory: Inventory,
        repositories: Sequence[Repository],
        contents: Mapping[str, bytes | None],
        hashes: Mapping[str, str | None],
    ) -> None:
        self.inventory = inventory
        self.repositories = repositories
        self.contents = contents
        self.hashes = hashes
        self.needed: set[str] = set()
        self.found: dict[tuple[str, str], _Found] = {}
        self.manifests: set[tuple[str, Digest]] = set()
        self.blobs: set[Digest] = set()
        self.links: set[str] = set()
        self.tags = 0
        self._parsed: dict[Digest, Manifest | ManifestError] = {}

    # -- bookkeeping --

    def _get(self, path: str) -> tuple[bool, bytes | None]:
        """``(read yet, bytes or None when missing)``; unread paths are recorded as needed."""
        if path not in self.contents:
            self.needed.add(path)
            return False, None
        return True, self.contents[path]

    def _add(
        self,
        kind: str,
        path: str,
        what: str,
        remedy: str,
        *,
        repository: str | None,
        digest: str | None,
        ref: str | None,
    ) -> None:
        found = self.found.get((kind, path))
        if found is None:
            found = self.found[kind, path] = _Found(kind, path, what, remedy, repository, digest)
        if ref is not None and ref not in found.tags:
            found.tags.append(ref)

    def _link_target(self, data: bytes) -> Digest | None:
        try:
            return Digest(data.decode("ascii"))
        except (UnicodeDecodeError, InvalidReferenceError):
            return None

    # -- the walk --

    def run(self) -> None:
        for name in self.repositories:
            repo = self.inventory.repositories[name]
            for tag_name in sorted(repo.tags):
                self.tags += 1
                self._tag(repo, repo.tags[tag_name])

    def _tag(self, repo: RepositoryEntry, tag: TagEntry) -> None:
        ref = f"{repo.name}:{tag.name}"
        if tag.current is None:
            path = TagCurrentLink(repo.name, tag.name).path
            if tag.current_mtime is None:
                kind, what = "missing-current-link", f"tag {ref} has no current link ({path})"
            else:
                kind, what = (
                    "broken-current-link",
                    f"the current link of tag {ref} ({path}) does not hold a digest",
                )
            remedy = f"push the tag again, or remove it (registry-gc rm {ref})"
            self._add(kind, path, what, remedy, repository=repo.name, digest=None, ref=ref)
            return
        self._manifest(repo, tag.current, ref, (), None)

    def _manifest(
        self,
        repo: RepositoryEntry,
        digest: Digest,
        ref: str,
        parents: tuple[Digest, ...],
        platform: str | None,
    ) -> None:
        name = repo.name
        self.manifests.add((name, digest))
        if parents:
            plat = f" ({platform})" if platform else ""
            role = f"child manifest {digest}{plat} of index {parents[-1]}"
        else:
            role = f"manifest {digest}"
        repush = f"push the image again, or remove the tag (registry-gc rm {ref})"
        rev = RevisionLink(name, digest).path
        if digest not in repo.revisions:
            self._add(
                "missing-revision-link",
                rev,
                f"{role} has no revision link in repository {name} ({rev})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
        else:
            self._revision_link(repo, digest, role=role, path=rev, remedy=repush, ref=ref)
        path = blob_path(digest)
        blobs = self.inventory.blobs
        self.blobs.add(digest)
        if digest not in blobs:
            self._add(
                "missing-child" if parents else "missing-manifest",
                path,
                f"{role} in repository {name} is missing from the store ({path})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
            return
        if blobs.size(digest) > MAX_MANIFEST_SIZE:
            self._add(
                "unparseable-manifest",
                path,
                f"{role} in repository {name} is {blobs.size(digest)} bytes, more than "
                f"distribution reads ({MAX_MANIFEST_SIZE})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
            return
        read, data = self._get(path)
        if not read:
            return
        if data is None:
            self._add(
                "missing-child" if parents else "missing-manifest",
                path,
                f"{role} in repository {name} vanished from the store while being checked ({path})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
            return
        manifest = self._parse(digest, data)
        if isinstance(manifest, str):
            self._add(
                "digest-mismatch",
                path,
                f"{role} in repository {name} does not match its digest: {path} hashes to "
                f"{manifest}",
                f"restore the blob from a backup or push the image again, or remove the tag "
                f"(registry-gc rm {ref})",
                repository=name,
                digest=digest,
                ref=ref,
            )
            return
        if isinstance(manifest, ManifestError):
            self._add(
                "unparseable-manifest",
                path,
                f"{role} in repository {name} cannot be parsed: {_parse_problem(manifest)}",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
            return
        if manifest.is_index:
            for child in manifest.children:
                self._manifest(
                    repo,
                    child.digest,
                    ref,
                    (*parents, digest),
                    str(child.platform) if child.platform else None,
                )
            return
        for blob in manifest.blobs:
            self._blob(repo, manifest, digest, blob, ref)

    def _parse(self, digest: Digest, data: bytes) -> Manifest | ManifestError | str:
        """The parsed manifest, its parse error, or (a string) the digest it really has."""
        h = new_hash(digest.algorithm)
        h.update(data)
        actual = f"{digest.algorithm}:{h.hexdigest()}"
        if actual != digest:
            return actual
        cached = self._parsed.get(digest)
        if cached is None:
            try:
                cached = parse_manifest(data)
            except ManifestError as e:
                cached = e
            self._parsed[digest] = cached
        return cached

    def _revision_link(
        self, repo: RepositoryEntry, digest: Digest, *, role: str, path: str, remedy: str, ref: str
    ) -> None:
        self.links.add(path)
        read, data = self._get(path)
        if not read:
            return
        if data is None:
            what = f"{role}: its revision link {path} vanished while being checked"
        else:
            target = self._link_target(data)
            if target == digest:
                return
            holds = "does not hold a digest" if target is None else f"names {target}"
            what = f"the revision link of {role} in repository {repo.name} ({path}) {holds}"
        kind = "missing-revision-link" if data is None else "broken-revision-link"
        self._add(kind, path, what, remedy, repository=repo.name, digest=digest, ref=ref)

    def _blob(
        self,
        repo: RepositoryEntry,
        manifest: Manifest,
        digest: Digest,
        ref_digest: Digest,
        ref: str,
    ) -> None:
        name = repo.name
        role = "config" if ref_digest == manifest.config else "layer"
        what_of = f"{role} {ref_digest} of manifest {digest} in repository {name}"
        repush = f"push the image again, or remove the tag (registry-gc rm {ref})"
        target = _canonical(repo, ref_digest)
        present = target is not None and target in self.inventory.blobs
        foreign = ref_digest in manifest.foreign
        if target is not None:
            self.blobs.add(target)
        if not present and not foreign:
            path = blob_path(target or ref_digest)
            self._add(
                "missing-blob",
                path,
                f"{what_of} is missing from the store ({path})",
                repush,
                repository=name,
                digest=target or ref_digest,
                ref=ref,
            )
        link = LayerLink(name, ref_digest).path
        if ref_digest not in repo.layers:
            if not foreign or present:
                self._add(
                    "missing-layer-link",
                    link,
                    f"{what_of} is not linked into the repository ({link} is missing), so the "
                    "registry does not serve it",
                    "push the image again (the registry links blobs it already has), or remove "
                    f"the tag (registry-gc rm {ref})",
                    repository=name,
                    digest=ref_digest,
                    ref=ref,
                )
        else:
            self._layer_link(
                repo, ref_digest, target=target, link=link, what_of=what_of, remedy=repush, ref=ref
            )
        if present and target is not None and target in self.hashes:
            self._hash(target, ref, name)

    def _layer_link(
        self,
        repo: RepositoryEntry,
        ref_digest: Digest,
        *,
        target: Digest | None,
        link: str,
        what_of: str,
        remedy: str,
        ref: str,
    ) -> None:
        self.links.add(link)
        read, data = self._get(link)
        if not read:
            return
        if data is None:
            kind, what = "missing-layer-link", f"{what_of}: its link {link} vanished"
        else:
            named = self._link_target(data)
            if named is not None and named == (target or ref_digest):
                return
            holds = "does not hold a digest" if named is None else f"names {named}"
            kind, what = "broken-layer-link", f"the link of {what_of} ({link}) {holds}"
        self._add(kind, link, what, remedy, repository=repo.name, digest=ref_digest, ref=ref)

    def _hash(self, digest: Digest, ref: str | None, repository: str | None) -> None:
        actual = self.hashes.get(digest)
        path = blob_path(digest)
        if actual is None:
            what = f"blob {digest} vanished while being hashed ({path})"
            kind = "missing-blob"
        elif actual == digest.hex:
            return
        else:
            what = f"blob {digest} is corrupt: {path} hashes to {digest.algorithm}:{actual}"
            kind = "corrupt-blob"
        remedy = "restore it from a backup, or delete it and push the images that use it again"
        self._add(kind, path, what, remedy, repository=repository, digest=digest, ref=ref)

    def hash_everything(self) -> None:
        """Report every hashed blob that does not match, whether or not a tag needs it."""
        for digest in sorted(self.hashes):
            self._hash(Digest._trusted(digest), None, None)  # noqa: SLF001

    def problems(self) -> tuple[Problem, ...]:
        out = []
        for f in sorted(self.found.values(), key=lambda f: (f.repository or "", f.kind, f.path)):
            if f.tags:
                noun = "tag" if len(f.tags) == 1 else "tags"
                shown = ", ".join(f.tags[:10]) + (" …" if len(f.tags) > 10 else "")
                message = f"{f.what}: {noun} {shown} cannot be pulled; {f.remedy}"
            else:
                message = f"{f.what}; {f.remedy}"
            out.append(Problem(f.kind, f.path, message, f.repository, f.digest, tuple(f.tags)))
        return tuple(out)


def paths_to_read(
    inventory: Inventory,
    repositories: Sequence[Repository],
    contents: Mapping[str, bytes | None],
) -> set[str]:
    """The links and manifest blobs a check of ``repositories`` still needs read.

    Call with what has been read so far (path → bytes, ``None`` when missing)
    until it returns nothing: each round can reveal index children.
    """
    check = _Check(inventory, repositories, contents, {})
    check.run()
    return check.needed - contents.keys()


def check_store(
    inventory: Inventory,
    repositories: Sequence[Repository],
    contents: Mapping[str, bytes | None],
    hashes: Mapping[str, str | None] | None = None,
) -> FsckResult:
    """Check that every tag of ``repositories`` can be pulled; pure.

    ``contents`` holds every path :func:`paths_to_read` asked for; ``hashes``
    maps blob digests to the hex digest their bytes have (``None``: missing).
    """
    hashes = hashes or {}
    check = _Check(inventory, repositories, contents, hashes)
    check.run()
    if check.needed - contents.keys():
        missing = sorted(check.needed - contents.keys())
        msg = f"check_store needs {len(missing)} more path(s) read, first {missing[0]}"
        raise ValueError(msg)
    check.hash_everything()
    selected = set(repositories)
    problem_paths = {f.path for f in check.found.values()}

    def warning(kind: str, path: str, repository: str | None) -> bool:
        if repository is not None and repository not in selected:
            return False
        if path in problem_paths or kind == "tag-without-current-link":
            return False
        return not (kind == "broken-link" and path.endswith("/current/link"))

    warnings = tuple(
        Problem(a.kind, a.path, a.message, a.repository)
        for a in inventory.anomalies
        if warning(a.kind, a.path, a.repository)
    )
    return FsckResult(
        url=inventory.url,
        repositories=len(repositories),
        tags=check.tags,
        manifests=len(check.manifests),
        blobs=len(check.blobs),
        links=len(check.links),
        hashed=len(hashes),
        problems=check.problems(),
        warnings=warnings,
    )


# -- reads at the edge -------------------------------------------------------------------


async def _read_paths(
    backend: Backend, paths: Sequence[str], tick: Callable[[int], None] | None
) -> dict[str, bytes | None]:
    sem = asyncio.Semaphore(PARALLEL_READS)
    out: dict[str, bytes | None] = {}

    async def batch(chunk: Sequence[str]) -> None:
        async with sem:
            got = await backend.read(chunk)
        for p in chunk:
            out[p] = got.get(p)
        if tick is not None:
            tick(len(chunk))

    chunks = [paths[i : i + READ_BATCH] for i in range(0, len(paths), READ_BATCH)]
    await asyncio.gather(*(batch(c) for c in chunks))
    return out


async def read_platforms(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    digests: Collection[Digest],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Read the configs of the images among ``digests``; return config digest → platform."""
    configs: set[Digest] = set()
    for d in digests:
        m = manifests.get(d)
        if isinstance(m, Manifest) and m.config is not None and not m.is_index:
            c = m.config
            if c in inventory.blobs and inventory.blobs.size(c) <= MAX_CONFIG_SIZE:
                configs.add(c)
    got = await _read_paths(backend, sorted(blob_path(c) for c in configs), progress)
    out: dict[str, str] = {}
    for c in configs:
        data = got.get(blob_path(c))
        platform = platform_of_config(data) if data is not None else None
        if platform is not None:
            out[c] = platform
    return out


async def fsck_async(
    backend: Backend,
    inventory: Inventory,
    *,
    repositories: Sequence[Repository] | None = None,
    verify_blobs: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> FsckResult:
    """Check ``repositories`` (default: all) of ``inventory``, reading what it needs.

    With ``verify_blobs``, every blob of the store is hashed (or, when
    ``repositories`` is given, every blob their tags need).
    """
    scope = sorted(inventory.repositories) if repositories is None else list(repositories)
    contents: dict[str, bytes | None] = {}

    def tick(phase: str) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda n: progress(phase, n, None)

    while True:
        wanted = sorted(paths_to_read(inventory, scope, contents))
        if not wanted:
            break
        contents.update(await _read_paths(backend, wanted, tick("links")))
    hashes: dict[str, str | None] = {}
    if verify_blobs:
        if repositories is None:
            targets = list(inventory.blobs)
        else:
            check = _Check(inventory, scope, contents, {})
            check.run()
            targets = sorted(b for b in check.blobs if b in inventory.blobs)
        hashes = await _hash_blobs(backend, targets, progress)
    return check_store(inventory, scope, contents, hashes)


async def _hash_blobs(
    backend: Backend,
    digests: Sequence[Digest],
    progress: Callable[[str, int, int | None], None] | None,
) -> dict[str, str | None]:
    if streaming(backend) is None and digests:
        log.warning(
            "%s cannot stream blobs: each blob is read whole into memory to be hashed",
            backend.url,
        )
    by_algorithm: dict[str, list[Digest]] = {}
    for d in digests:
        by_algorithm.setdefault(d.algorithm, []).append(d)
    sem = asyncio.Semaphore(PARALLEL_HASHES)
    out: dict[str, str | None] = {}
    total = len(digests)

    async def batch(algorithm: str, chunk: Sequence[Digest]) -> None:
        async with sem:
            got = await digest_paths(backend, [blob_path(d) for d in chunk], algorithm)
        for d in chunk:
            out[d] = got.get(blob_path(d))
        if progress is not None:
            progress("hashing", len(chunk), total)

    await asyncio.gather(
        *(
            batch(alg, ds[i : i + HASH_BATCH])
            for alg, ds in by_algorithm.items()
            for i in range(0, len(ds), HASH_BATCH)
        )
    )
    return out


def fsck(
    backend: Backend,
    inventory: Inventory,
    *,
    repositories: Sequence[Repository] | None = None,
    verify_blobs: bool = False,
) -> FsckResult:
    """:func:`fsck_async`, from synchronous code."""
    return _sync.run(
        fsck_async(backend, inventory, repositories=repositories, verify_blobs=verify_blobs)
    )
