"""``ls``: repositories, their tags, and what each tag points at.

:func:`list_images` is the command: it lists the store, reads the manifests
and (for platforms) the image configs, and returns a :class:`Listing` that
renders as a table or as JSON. :func:`summarize` is its pure core, over an
inventory and the manifests; it walks each tag with
:func:`registry_gc.graph.walk`, so an image is what a pull of it needs, read
as the registry reads it.
"""

from __future__ import annotations

import fnmatch
import json
from typing import TYPE_CHECKING, Any

import attrs

from . import _sync
from ._errors import NotFoundError
from ._render import human_bytes, iso_timestamp, table
from ._run import open_root, survey
from .fetch import Unreadable, read_configs
from .graph import Graph, Reach, Role, walk
from .layout import Digest, Repository, blob_path
from .manifests import Manifest

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ._run import ProgressCallback, Root
    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry, TagEntry

__all__ = [
    "ImageSummary",
    "Listing",
    "RepositorySummary",
    "TagSummary",
    "list_images",
    "list_images_async",
    "platform_of_config",
    "select_repositories",
    "summarize",
]


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def select_repositories(inventory: Inventory, names: Iterable[str] = ()) -> list[Repository]:
    """The repositories ``names`` select, sorted; every repository when there are none.

    A name is exact (``library/alpine``) or a shell pattern (``library/*``).
    An exact name that is not in the store raises :class:`~registry_gc.NotFoundError`;
    an invalid one, :class:`~registry_gc.InvalidReferenceError`.
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
            "listing every repository shows what is there"
        )
        raise NotFoundError(msg, repository=missing[0])
    return sorted(chosen)


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
        """The JSON form: the image's fields, flattened, plus the tag's name and time."""
        out: dict[str, Any] = {
            "name": self.name,
            "digest": self.digest,
            "modified": iso_timestamp(self.modified),
        }
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


def _image(graph: Graph, digest: Digest) -> Reach:
    """What a pull of ``digest`` needs: its manifests and blobs, not its referrers."""
    return walk(graph, [(digest, Role.TAG)], referrers=False)


def _summarize(graph: Graph, digest: Digest, platforms: Mapping[Digest, str]) -> ImageSummary:
    m = graph.table.get(digest)
    if m is None or isinstance(m, Unreadable):
        if m is None or m.missing:
            problem = f"manifest blob {blob_path(digest)} is missing"
        else:
            problem = m.error
        return ImageSummary(digest, None, None, None, (), 0, 1, problem)
    reach = _image(graph, digest)
    present = graph.present
    missing = {x.ref for x in reach.missing} | {d.digest for d in reach.damage if d.missing}
    size = sum(present.size(b) for b in reach.blobs if b in present)
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
        len(missing),
        None,
    )


def _tag_summary(graph: Graph, tag: TagEntry, platforms: Mapping[Digest, str]) -> TagSummary:
    if tag.current is None:
        why = "has no current link" if tag.current_mtime is None else "current link is broken"
        return TagSummary(tag.name, None, tag.current_mtime, None, why)
    image = _summarize(graph, tag.current, platforms)
    problem = None
    if tag.current not in graph.manifests:
        problem = "no revision link in the repository: the tag cannot be pulled"
    return TagSummary(tag.name, tag.current, tag.current_mtime, image, problem)


def _repository(
    inventory: Inventory,
    repo: RepositoryEntry,
    manifests: ManifestTable,
    platforms: Mapping[Digest, str],
    *,
    untagged: bool,
) -> RepositorySummary:
    graph = Graph.of(repo, manifests, inventory.blobs)
    tags = [_tag_summary(graph, repo.tags[t], platforms) for t in sorted(repo.tags)]
    reached = Reach()
    for tag in repo.tags.values():
        if tag.current is not None:
            walk(graph, [(tag.current, Role.TAG)], into=reached, referrers=False)
    loose = sorted(d for d in graph.manifests if d not in reached.manifests)
    needed = set(reached.blobs)
    for d in loose:
        needed |= _image(graph, d).blobs
    problem = None
    if repo.name_problem is not None:
        problem = f"invalid repository name: {repo.name_problem}"
    elif not repo.has_manifests:
        problem = "no _manifests directory: distribution does not list it as a repository"
    return RepositorySummary(
        name=repo.name,
        tags=tuple(tags),
        revisions=len(graph.manifests),
        untagged_count=len(loose),
        untagged=tuple(_summarize(graph, d, platforms) for d in loose) if untagged else (),
        layer_links=len(repo.layers),
        uploads=len(repo.uploads),
        size=sum(inventory.blobs.size(b) for b in needed if b in inventory.blobs),
        problem=problem,
    )


def summarize(
    inventory: Inventory,
    manifests: ManifestTable,
    repositories: Iterable[Repository] | None = None,
    *,
    untagged: bool = False,
    platforms: Mapping[Digest, str] | None = None,
) -> list[RepositorySummary]:
    """Summarise ``repositories`` (default: all): tags, digests, kinds, platforms, sizes. Pure.

    ``platforms`` maps an image config digest to its platform (see
    :func:`list_images`); without it, single-platform images show none.
    ``untagged`` also summarises every revision no tag reaches.
    """
    names = sorted(inventory.repositories) if repositories is None else list(repositories)
    return [
        _repository(
            inventory, inventory.repositories[n], manifests, platforms or {}, untagged=untagged
        )
        for n in names
    ]


def _short(digest: str | None, *, full: bool) -> str:
    if digest is None:
        return "-"
    return digest if full else digest[: digest.index(":") + 13]


@attrs.frozen
class Listing:
    """What ``ls`` shows: the selected repositories of the store at ``url``."""

    url: str
    repositories: tuple[RepositorySummary, ...]
    #: whether untagged revisions were summarised too
    untagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ``registry-gc/ls/v1``)."""
        return {
            "schema": "registry-gc/ls/v1",
            "root": self.url,
            "repositories": [r.to_dict() for r in self.repositories],
        }

    def render(self, *, full_digests: bool = False) -> str:
        """A table: one row per tag (and untagged revision), then notes on problems."""
        repos = self.repositories
        if not repos:
            return f"no repositories in {self.url}"
        rows: list[tuple[str, ...]] = [("REPOSITORY", "TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE")]
        notes: list[str] = []
        for repo in repos:
            if repo.problem:
                notes.append(f"{repo.name}: {repo.problem}")
            for tag in repo.tags:
                image = tag.image
                problem = tag.problem or (image.problem if image is not None else None)
                if problem:
                    notes.append(f"{repo.name}:{tag.name}: {problem}")
                rows.append(
                    (
                        repo.name,
                        tag.name,
                        _short(tag.digest, full=full_digests),
                        (image.kind or "?") if image is not None else "?",
                        ",".join(image.platforms) if image is not None and image.platforms else "-",
                        human_bytes(image.size) if image is not None else "-",
                    )
                )
            if self.untagged:
                rows.extend(
                    (
                        repo.name,
                        "<untagged>",
                        _short(image.digest, full=full_digests),
                        image.kind or "?",
                        ",".join(image.platforms) or "-",
                        human_bytes(image.size),
                    )
                    for image in repo.untagged
                )
            if not repo.tags and not (self.untagged and repo.untagged):
                rows.append((repo.name, "-", "-", "-", "-", "-"))
        lines = table(rows, right=[5])
        if any(r.untagged_count for r in repos) and not self.untagged:
            n = sum(r.untagged_count for r in repos)
            lines.append(f"({n} untagged revision(s) not shown: use -a)")
        lines.extend(f"note: {n}" for n in notes)
        return "\n".join(lines)


async def list_images_async(
    root: Root,
    names: Sequence[str] = (),
    *,
    untagged: bool = False,
    platforms: bool = True,
    allow_empty: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> Listing:
    """:func:`list_images`, for callers that run an event loop."""
    for name in names:
        if not _is_pattern(name):
            Repository(name)  # validate before touching the storage
    backend = open_root(root, storage_options, read_only=True)
    try:
        selected: list[Repository] = []

        def narrow(inventory: Inventory) -> Inventory:
            selected.extend(select_repositories(inventory, names))
            return attrs.evolve(
                inventory, repositories={r: inventory.repositories[r] for r in selected}
            )

        scope, manifests = await survey(
            backend, allow_empty=allow_empty, narrow=narrow, progress=progress
        )
        found: dict[Digest, str] = {}
        if platforms:
            wanted: set[Digest] = set()
            for r in scope.repositories.values():
                wanted.update(t.current for t in r.tags.values() if t.current is not None)
                if untagged:
                    wanted.update(r.revisions)
            configs = {
                m.config
                for d in wanted
                if isinstance(m := manifests.get(d), Manifest)
                and m.config is not None
                and not m.is_index
            }
            tick = (lambda n: progress("configs", n, None)) if progress else None
            found = await read_configs(backend, scope, configs, platform_of_config, progress=tick)
        summaries = summarize(scope, manifests, selected, untagged=untagged, platforms=found)
        return Listing(scope.url, tuple(summaries), untagged)
    finally:
        await backend.aclose()


def list_images(
    root: Root,
    names: Sequence[str] = (),
    *,
    untagged: bool = False,
    platforms: bool = True,
    allow_empty: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> Listing:
    """List the repositories ``names`` select (default: all), their tags and images.

    ``names`` are repository names or shell patterns (``library/*``); an exact
    name not in the store raises :class:`~registry_gc.NotFoundError`. Each tag
    shows its digest, kind, platforms (read from the image configs unless
    ``platforms=False``) and the bytes its image needs; ``untagged`` also
    lists the revisions no tag reaches.
    """
    return _sync.run(
        list_images_async(
            root,
            names,
            untagged=untagged,
            platforms=platforms,
            allow_empty=allow_empty,
            storage_options=storage_options,
            progress=progress,
        )
    )
