"""``fsck``: can every tag be pulled from storage, as distribution serves it?

For each tag, :func:`check` walks what a pull needs with
:func:`registry_gc.graph.walk` — reading the store as the registry does: a
manifest is served through its revision link or (registry 2.1.0) its
``_layers`` link, index entries that are blobs are blobs — and checks that
the tag's ``current`` link names a digest; every manifest is linked into the
repository, present, hashes to its digest and can be decoded; every config,
layer and blob entry is present and linked into the repository (``_layers``),
and every link holds the digest its path says. With ``verify_blobs``, every
blob is hashed too.

:func:`check_store` is the pure core; :func:`check` reads what it needs.

Why one module of over 600 lines: it is ``fsck`` and its result, on the
shared graph walk of :mod:`registry_gc.graph`; the problems it reports and
the walk that finds them change together.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs

from . import _sync
from ._errors import InvalidReferenceError
from ._reads import read_each
from ._run import open_root, refuse_empty
from .backends._hashing import hash_blobs, new_hash
from .fetch import Unreadable, fetch_manifests
from .graph import Graph, Role, walk
from .inventory import scan
from .layout import Digest, LayerLink, Repository, RevisionLink, TagCurrentLink, blob_path
from .listing import select_repositories
from .manifests import MAX_MANIFEST_SIZE, Manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._run import ProgressCallback, Root
    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry, TagEntry

__all__ = ["CheckResult", "Problem", "check", "check_async", "check_store", "links_to_read"]

log = logging.getLogger(__name__)


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
class CheckResult:
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

    @property
    def exit_code(self) -> int:
        """0 when every tag can be pulled; 1 when problems were found."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ``registry-gc/fsck/v1``)."""
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


@attrs.frozen
class _Link:
    """A link a pull goes through, and the digest it must name."""

    path: str
    target: Digest
    kind: str  # broken-revision-link | broken-layer-link
    what: str
    repository: str
    digest: Digest


def _link_target(data: bytes) -> Digest | None:
    try:
        return Digest(data.decode("ascii"))
    except (UnicodeDecodeError, InvalidReferenceError):
        return None


def _parse_problem(error: str) -> str:
    # The manifest error ends with advice for the collector; keep the cause only.
    cause = error.split("; distribution cannot decode it", 1)[0]
    return cause.split(": ", 1)[1] if ": " in cause else cause


class _Check:
    """One pass over the selected tags: problems found, links to read, what was checked."""

    def __init__(
        self,
        inventory: Inventory,
        manifests: ManifestTable,
        repositories: Sequence[Repository],
        mismatches: Mapping[Digest, str],
    ) -> None:
        self.inventory = inventory
        self.manifests = manifests
        self.repositories = repositories
        self.mismatches = mismatches
        self.found: dict[tuple[str, str], _Found] = {}
        self.links: dict[str, tuple[_Link, list[str]]] = {}
        self.checked_manifests: set[tuple[str, Digest]] = set()
        self.blobs: set[Digest] = set()
        #: blob → the (repository, tag) pairs whose pulls need it
        self.needs: dict[Digest, list[tuple[str, str]]] = {}
        self.tags = 0

    def add(
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

    def link(self, link: _Link, ref: str) -> None:
        entry = self.links.setdefault(link.path, (link, []))
        if ref not in entry[1]:
            entry[1].append(ref)

    def run(self) -> None:
        for name in self.repositories:
            repo = self.inventory.repositories[name]
            graph = Graph.of(repo, self.manifests, self.inventory.blobs)
            for tag_name in sorted(repo.tags):
                self.tags += 1
                self.tag(graph, tag_name)

    def tag(self, graph: Graph, tag_name: str) -> None:
        repo = graph.repo
        tag = repo.tags[tag_name]  # type: ignore[index]
        ref = f"{repo.name}:{tag.name}"
        if tag.current is None:
            self.no_current(repo, tag, ref)
            return
        reach = walk(graph, [(tag.current, Role.TAG)], referrers=False)
        parents: dict[Digest, tuple[Digest, str | None]] = {}
        for d in reach.manifests:
            m = graph.table.get(d)
            if isinstance(m, Manifest) and d not in self.mismatches:
                for c in m.children:
                    parents.setdefault(c.digest, (d, str(c.platform) if c.platform else None))
        for d in sorted(reach.manifests):
            self.manifest(graph, d, ref, parents.get(d))
        for d in sorted(reach.manifests):
            m = graph.table.get(d)
            if isinstance(m, Manifest) and d not in self.mismatches:
                self.blobs_of(graph, d, m, ref, reach.manifests)

    def no_current(self, repo: RepositoryEntry, tag: TagEntry, ref: str) -> None:
        path = TagCurrentLink(repo.name, tag.name).path
        if tag.current_mtime is None:
            kind, what = "missing-current-link", f"tag {ref} has no current link ({path})"
        else:
            kind, what = (
                "broken-current-link",
                f"the current link of tag {ref} ({path}) does not hold a digest",
            )
        remedy = f"push the tag again, or remove it (registry-gc rm {ref})"
        self.add(kind, path, what, remedy, repository=repo.name, digest=None, ref=ref)

    def blobs_of(
        self, graph: Graph, digest: Digest, m: Manifest, ref: str, reached: set[Digest]
    ) -> None:
        for blob in m.blobs:
            role = "config" if blob == m.config else "layer"
            what = f"{role} {blob} of manifest {digest}"
            self.blob(graph, what, blob, ref, foreign=blob in m.foreign)
        for c in m.children:
            if c.digest not in reached:
                self.blob(graph, f"blob entry {c.digest} of index {digest}", c.digest, ref)

    def manifest(
        self, graph: Graph, digest: Digest, ref: str, parent: tuple[Digest, str | None] | None
    ) -> None:
        repo, name = graph.repo, graph.repo.name
        self.checked_manifests.add((name, digest))
        if parent is not None:
            plat = f" ({parent[1]})" if parent[1] else ""
            role = f"child manifest {digest}{plat} of index {parent[0]}"
        else:
            role = f"manifest {digest}"
        repush = f"push the image again, or remove the tag (registry-gc rm {ref})"
        rev = RevisionLink(name, digest).path
        if digest in repo.revisions:
            what = f"the revision link of {role} in repository {name} ({rev})"
            self.link(_Link(rev, digest, "broken-revision-link", what, name, digest), ref)
        elif digest in graph.legacy:
            path = LayerLink(name, digest).path
            what = f"the _layers link of {role} in repository {name} ({path})"
            self.link(_Link(path, digest, "broken-revision-link", what, name, digest), ref)
        else:
            self.add(
                "missing-revision-link",
                rev,
                f"{role} has no revision link in repository {name} ({rev})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
        path = blob_path(digest)
        self.need(digest, name, ref)
        m = graph.table.get(digest)
        if digest in self.mismatches:
            self.add(
                "digest-mismatch",
                path,
                f"{role} in repository {name} does not match its digest: {path} hashes to "
                f"{self.mismatches[digest]}",
                "restore the blob from a backup or push the image again, or remove the tag "
                f"(registry-gc rm {ref})",
                repository=name,
                digest=digest,
                ref=ref,
            )
        elif m is None or (isinstance(m, Unreadable) and m.missing):
            self.add(
                "missing-child" if parent else "missing-manifest",
                path,
                f"{role} in repository {name} is missing from the store ({path})",
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )
        elif isinstance(m, Unreadable):
            size = graph.present.size(digest) if digest in graph.present else 0
            what = (
                f"{role} in repository {name} is {size} bytes, more than distribution reads "
                f"({MAX_MANIFEST_SIZE})"
                if size > MAX_MANIFEST_SIZE
                else f"{role} in repository {name} cannot be parsed: {_parse_problem(m.error)}"
            )
            self.add(
                "unparseable-manifest",
                path,
                what,
                repush,
                repository=name,
                digest=digest,
                ref=ref,
            )

    def blob(
        self, graph: Graph, what_of: str, ref_digest: Digest, ref: str, *, foreign: bool = False
    ) -> None:
        repo, name = graph.repo, graph.repo.name
        what_of = f"{what_of} in repository {name}"
        repush = f"push the image again, or remove the tag (registry-gc rm {ref})"
        target = graph.canonical(ref_digest)
        present = target is not None and target in graph.present
        if present and target is not None:
            self.need(target, name, ref)
        elif target is not None:
            self.blobs.add(target)
        if not present and not foreign:
            path = blob_path(target or ref_digest)
            self.add(
                "missing-blob",
                path,
                f"{what_of} is missing from the store ({path})",
                repush,
                repository=name,
                digest=target or ref_digest,
                ref=ref,
            )
        link = LayerLink(name, ref_digest).path
        if ref_digest in repo.layers:
            expected = target or ref_digest
            what = f"the link of {what_of} ({link})"
            self.link(_Link(link, expected, "broken-layer-link", what, name, ref_digest), ref)
        elif not foreign or present:
            self.add(
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

    def read_links(self, contents: Mapping[str, bytes | None]) -> None:
        for path, (link, refs) in self.links.items():
            data = contents.get(path)
            if data is None:
                kind = "missing-" + link.kind.removeprefix("broken-")
                what = f"{link.what} vanished while being checked"
            else:
                named = _link_target(data)
                if named == link.target:
                    continue
                kind = link.kind
                holds = "does not hold a digest" if named is None else f"names {named}"
                what = f"{link.what} {holds}"
            for ref in refs:
                self.add(
                    kind,
                    path,
                    what,
                    f"push the image again, or remove the tag (registry-gc rm {ref})",
                    repository=link.repository,
                    digest=link.digest,
                    ref=ref,
                )

    def need(self, digest: Digest, repository: str, ref: str) -> None:
        """Record that tag ``ref`` needs blob ``digest`` (for the hashes' problems)."""
        self.blobs.add(digest)
        refs = self.needs.setdefault(digest, [])
        if (repository, ref) not in refs:
            refs.append((repository, ref))

    def hashes(self, hashes: Mapping[Digest, str | None]) -> None:
        """Report every hashed blob that does not match, with the tags that need it."""
        for digest in sorted(hashes):
            actual = hashes[digest]
            path = blob_path(digest)
            if actual is None:
                kind, what = "missing-blob", f"blob {digest} vanished while being hashed ({path})"
            elif actual == digest.hex:
                continue
            else:
                kind = "corrupt-blob"
                what = f"blob {digest} is corrupt: {path} hashes to {digest.algorithm}:{actual}"
            remedy = "restore it from a backup, or delete it and push the images that use it again"
            users: list[tuple[str | None, str | None]] = [*self.needs.get(digest, [])]
            for repository, ref in users or [(None, None)]:
                self.add(kind, path, what, remedy, repository=repository, digest=digest, ref=ref)

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


def _warnings(
    inventory: Inventory,
    repositories: Sequence[Repository],
    found: Mapping[tuple[str, str], _Found],
) -> tuple[Problem, ...]:
    """The inventory's anomalies in scope that are not already problems."""
    selected = set(repositories)
    problem_paths = {f.path for f in found.values()}

    def warning(kind: str, path: str, repository: str | None) -> bool:
        if repository is not None and repository not in selected:
            return False
        if path in problem_paths or kind == "tag-without-current-link":
            return False
        return not (kind == "broken-link" and path.endswith("/current/link"))

    return tuple(
        Problem(a.kind, a.path, a.message, a.repository)
        for a in inventory.anomalies
        if warning(a.kind, a.path, a.repository)
    )


def links_to_read(
    inventory: Inventory,
    manifests: ManifestTable,
    repositories: Sequence[Repository],
    mismatches: Mapping[Digest, str] | None = None,
) -> set[str]:
    """The revision and layer links a check of ``repositories`` reads."""
    check = _Check(inventory, manifests, repositories, mismatches or {})
    check.run()
    return set(check.links)


def check_store(
    inventory: Inventory,
    manifests: ManifestTable,
    repositories: Sequence[Repository],
    contents: Mapping[str, bytes | None],
    *,
    mismatches: Mapping[Digest, str] | None = None,
    hashes: Mapping[Digest, str | None] | None = None,
) -> CheckResult:
    """Check that every tag of ``repositories`` can be pulled; pure.

    ``manifests`` is what :func:`~registry_gc.fetch_manifests` read;
    ``mismatches`` maps manifests whose bytes hash to another digest to that
    digest; ``contents`` holds every path :func:`links_to_read` asks for
    (``None``: missing); ``hashes`` maps blob digests to the hex digest their
    bytes have (``None``: missing).
    """
    check = _Check(inventory, manifests, repositories, mismatches or {})
    check.run()
    check.read_links(contents)
    check.hashes(hashes or {})
    return CheckResult(
        url=inventory.url,
        repositories=len(repositories),
        tags=check.tags,
        manifests=len(check.checked_manifests),
        blobs=len(check.blobs),
        links=len(check.links),
        hashed=len(hashes or {}),
        problems=check.problems(),
        warnings=_warnings(inventory, repositories, check.found),
    )


async def check_async(
    root: Root,
    names: Sequence[str] = (),
    *,
    verify_blobs: bool = False,
    allow_empty: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> CheckResult:
    """:func:`check`, for callers that run an event loop."""
    for name in names:
        if not any(c in name for c in "*?["):
            Repository(name)  # validate before touching the storage
    backend = open_root(root, storage_options, read_only=True)
    try:
        inventory = await scan(backend, progress=progress)
        refuse_empty(inventory, allow_empty=allow_empty)
        scope = select_repositories(inventory, names)
        narrowed = attrs.evolve(
            inventory, repositories={r: inventory.repositories[r] for r in scope}
        )
        mismatches: dict[Digest, str] = {}

        def observe(digest: Digest, data: bytes) -> None:
            h = new_hash(digest.algorithm)
            h.update(data)
            if h.hexdigest() != digest.hex:
                mismatches[digest] = f"{digest.algorithm}:{h.hexdigest()}"

        manifests = await fetch_manifests(
            backend,
            narrowed,
            observe=observe,
            progress=(lambda done, total: progress("manifests", done, total)) if progress else None,
        )
        for d in mismatches:  # what the bytes say is not what the digest names: stop there
            manifests[d] = Unreadable(missing=False, error="digest mismatch")
        paths = sorted(links_to_read(inventory, manifests, scope, mismatches))
        contents: dict[str, bytes | None] = {}
        tick: Callable[[int], None] | None = None
        if progress is not None:
            done = [0]

            def tick(n: int) -> None:
                done[0] += n
                progress("links", done[0], len(paths))

        await read_each(backend, paths, contents.__setitem__, tick=tick)
        hashes: dict[Digest, str | None] = {}
        if verify_blobs:
            if not names:
                targets = sorted(inventory.blobs)
            else:
                needed = _Check(inventory, manifests, scope, mismatches)
                needed.run()
                targets = sorted(b for b in needed.blobs if b in inventory.blobs)
            hashes = await hash_blobs(backend, targets, progress)
        return check_store(
            inventory, manifests, scope, contents, mismatches=mismatches, hashes=hashes
        )
    finally:
        await backend.aclose()


def check(
    root: Root,
    names: Sequence[str] = (),
    *,
    verify_blobs: bool = False,
    allow_empty: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> CheckResult:
    """Check that every tag of the repositories ``names`` select (default: all) can be pulled.

    ``names`` are repository names or shell patterns. With ``verify_blobs``,
    every blob of the store is hashed (or, with ``names``, every blob their
    tags need). Nothing is deleted or changed.
    """
    return _sync.run(
        check_async(
            root,
            names,
            verify_blobs=verify_blobs,
            allow_empty=allow_empty,
            storage_options=storage_options,
            progress=progress,
        )
    )
