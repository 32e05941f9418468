"""Names-only runs: look at what the plan needs, and plan again, until it is the full run's plan.

``collect(names_only=True)`` (``gc --names-only``) lists the store by name
alone (:class:`~registry_gc.backends.SupportsNamesOnly`): no size, no time,
and every digest-named directory of ``blobs/``, ``_layers`` and tag
``index`` taken to hold its ``data`` or ``link``. Its inventory has sizes -1
and times :data:`~registry_gc.inventory.NOT_LOOKED` — the oldest possible.
A :class:`Resolver` then makes exact, with one ``stat`` each
(:meth:`~registry_gc.backends.SupportsNamesOnly.stat`), what the run acts on:

1. before manifests are judged and read, the blobs read as manifests (their
   presence and size decide whether and how they are read);
2. after each plan, every object of every deletion, the blob each deleted
   link or revision names (present or not gives the reason), every object
   kept for the grace period (its age and size are reported), and the links
   whose presence decides what is live: ``_layers`` links of manifests (a
   2.1.0 revision), the tag history of tags without a ``current`` link, and
   every link of a repository kept whole (damaged, or an invalid name: what
   it links is kept, and a young revision's damage is reported too);

and plans again whenever it looked at something new, until a plan relies on
nothing it has not looked at. An object looked at and found young is kept
for the grace period (and protects what it references); one found missing
— a ``<hex>`` directory without its file, or with something else than a
regular file — has its directory listed as the full listing lists it (with
a ``stat`` of each file), so that what replaces it is what a full run saw.

Why the last plan is the full run's plan: an object nobody looked at counts
as old and present. Found young, an object is only ever kept, never deleted
for it, and it protects what it references only when it is itself garbage
— then it was a candidate, and it was looked at. Found missing, a blob
changes a run only where the run reads it (a manifest: looked at first) or
deletes something on its account (a link's reason: looked at). So when
every candidate and everything kept has been looked at, what was not looked
at changes nothing the plan deletes or keeps.

What a names-only run does not see, by design: anything about an object
it never looks at. A live image's layer whose ``<hex>`` directory lacks its
``data`` is not reported (``missing-blob``: a full run or ``fsck`` reports
it), such a directory is not removed, and a live blob whose ``data`` is a
symbolic link the full listing refuses is not refused. Totals of bytes are
not measured (:attr:`~registry_gc.plan.Plan.sizes_measured`), nor the times
of objects never looked at (``unknown-time`` counts only those looked at).
A refused run (a damaged store) looks at every blob first, so that its
report is the full run's.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING, Final, Protocol

from ._errors import ConfigError
from ._run import Timings, refuse_empty
from ._scanning import STRUCTURE_ANOMALIES, _Builder, invalid_tag, repository_anomalies
from .backends import (
    UNKNOWN_TIME,
    Backend,
    SupportsListBatches,
    SupportsNamesOnly,
)
from .fetch import fetch_manifests, is_manifest
from .inventory import NOT_LOOKED, Inventory, RepositoryEntry, scan
from .layout import (
    BLOBS_PREFIX,
    REPOSITORIES_PREFIX,
    BlobData,
    LayerLink,
    LegacySignatureLink,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    blob_path,
    classify,
)
from .plan import Category, make_plan

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

    from ._run import ProgressCallback
    from .fetch import ManifestTable
    from .layout import Digest
    from .manifest_cache import ManifestCache
    from .mark import Marks
    from .options import Removals
    from .plan import Plan
    from .policy import TagDecisions

__all__ = ["CHUNK", "Resolver", "check_names_only", "survey_names"]

log = logging.getLogger(__name__)

#: Paths looked at in one call (and held at once).
CHUNK: Final = 10_000
_UNKNOWN: Final = UNKNOWN_TIME.timestamp()


class NamesOnlyBackend(Backend, SupportsNamesOnly, Protocol):
    """A backend that lists names alone."""


def check_names_only(*, policy: bool, live: bool, dry_run: bool, elsewhere: bool) -> None:
    """Refuse, before anything is read, what a names-only run cannot do exactly."""
    if policy:
        msg = (
            "names_only (--names-only) does not combine with a retention policy: a policy "
            "reads the times of tags it keeps, which a names-only run does not look at. Run "
            "the policy without --names-only"
        )
        raise ConfigError(msg)
    if live and not dry_run:
        msg = (
            "names_only (--names-only) does not combine with live mode: live mode compares "
            "the store before and after with times of objects it does not delete. Run live "
            "without --names-only"
        )
        raise ConfigError(msg)
    if elsewhere:
        msg = (
            "names_only (--names-only) runs in one process, on a local disk: not in a "
            "distributed run or from an S3 Inventory"
        )
        raise ConfigError(msg)


def names_only_backend(backend: Backend) -> NamesOnlyBackend:
    """``backend``, when it lists names alone; :class:`ConfigError` otherwise."""
    if not isinstance(backend, SupportsNamesOnly):
        msg = (
            f"names_only (--names-only) needs a store that lists names alone (a local disk); "
            f"{backend.url} does not: run without --names-only"
        )
        raise ConfigError(msg)
    return backend


class Resolver:
    """Looks at the objects of a names-only inventory that a run needs (see the module)."""

    def __init__(self, backend: NamesOnlyBackend, inventory: Inventory) -> None:
        self.backend = backend
        self.inventory = inventory
        self.builder = _Builder(inventory, None)
        self.builder.records = None  # the blob listing is over: blobs go to the table
        #: paths looked at with a ``stat``
        self.looked = 0
        #: digest directories listed because their file was not what the names said
        self.relisted = 0
        #: objects looked at since the last marking that change what marking decides:
        #: missing ones, and revision and ``_layers`` links younger than :attr:`threshold`
        #: (marking reads no other time)
        self.surprises = 0
        #: the grace cut-off of the run's marking (``-inf`` until it marks)
        self.threshold = NOT_LOOKED

    # -- which objects are still unseen ---------------------------------------------------

    def _repo(self, name: str) -> RepositoryEntry | None:
        return self.inventory.repositories.get(name)  # type: ignore[call-overload,no-any-return]

    def unlooked(self, path: str) -> bool:  # noqa: PLR0911 - one answer per kind of object
        """Whether ``path`` is an object of the inventory whose size and time are not known."""
        key = classify(path)
        inv = self.inventory
        index = inv.index
        if isinstance(key, BlobData):
            i = index.find(key.digest)
            return inv.blobs.has_id(i) and inv.blobs.size_of_id(i) == -1
        repo = self._repo(key.repository) if key.repository is not None else None
        if repo is None:
            return False
        if isinstance(key, RevisionLink):
            return repo.revisions.time_of_id(index.find(key.digest)) == NOT_LOOKED
        if isinstance(key, LayerLink):
            return repo.layers.time_of_id(index.find(key.digest)) == NOT_LOOKED
        if isinstance(key, TagIndexLink | TagCurrentLink):
            tag = repo.tags.get(key.tag)
            if tag is None:
                return False
            if isinstance(key, TagCurrentLink):
                return tag.current_mtime == NOT_LOOKED
            return tag.index.time_of_id(index.find(key.digest)) == NOT_LOOKED
        if isinstance(key, UploadFile):
            upload = repo.uploads.get(key.upload)
            found = upload.files.get(key.name) if upload is not None else None
            return found is not None and found[1] == NOT_LOOKED
        if isinstance(key, LegacySignatureLink):
            sigs = repo.signatures.get(key.revision, [])
            return any(d == key.digest and m == NOT_LOOKED for d, m in sigs)
        return False

    # -- looking ----------------------------------------------------------------------

    async def look(self, paths: Iterable[str]) -> int:
        """Look at each of ``paths`` not looked at yet, :data:`CHUNK` at a time; how many."""
        chunk: dict[str, None] = {}
        n = 0
        for path in paths:
            if path not in chunk and self.unlooked(path):
                chunk[path] = None
                if len(chunk) >= CHUNK:
                    n += await self._look(list(chunk))
                    chunk.clear()
        if chunk:
            n += await self._look(list(chunk))
        return n

    async def look_blob_ids(self, ids: Iterable[int]) -> None:
        """Look at the blobs of digest ids ``ids`` (those listed and not looked at)."""
        blobs, index = self.inventory.blobs, self.inventory.index
        await self.look(
            blob_path(index.digest(i))
            for i in sorted(ids)
            if blobs.has_id(i) and blobs.size_of_id(i) == -1
        )

    async def _look(self, paths: list[str]) -> int:
        found = await self.backend.stat(paths)
        self.looked += len(paths)
        relist = [posixpath.dirname(p) for p in paths if self._record(p, found.get(p))]
        for directory in relist:
            await self._relist(directory)
        if relist:
            self._reshape(
                {
                    d[len(REPOSITORIES_PREFIX) :].split("/_")[0]
                    for d in relist
                    if d.startswith(REPOSITORIES_PREFIX)
                }
            )
        return len(paths)

    def _reshape(self, names: set[str]) -> None:
        """Make the anomalies of repositories that lost a listed link what a full listing says.

        A tag that only a link now found missing made is no tag; whether the
        repository has ``_layers`` may have changed.
        """
        inv = self.inventory
        repos = [r for n in names if (r := self._repo(n)) is not None]
        for repo in repos:
            for name in [
                n for n, t in repo.tags.items() if t.current_mtime is None and not t.index
            ]:
                del repo.tags[name]
        gone = {r.name for r in repos}
        inv.anomalies = [
            a for a in inv.anomalies if not (a.repository in gone and a.kind in STRUCTURE_ANOMALIES)
        ]
        for repo in repos:
            inv.anomalies.extend(a for t in repo.tags if (a := invalid_tag(repo, t)) is not None)
            inv.anomalies.extend(repository_anomalies(repo))

    def _record(self, path: str, found: tuple[int, float] | None) -> bool:
        """Put what was found into the inventory; ``True``: list the file's directory."""
        key = classify(path)
        inv = self.inventory
        if found is None or (
            isinstance(key, RevisionLink | LayerLink) and found[1] > self.threshold
        ):
            self.surprises += 1
        if isinstance(key, BlobData):
            if found is None:
                inv.blobs.discard_id(inv.index.find(key.digest))
                inv.objects -= 1  # listed by its directory's name; the listing again counts
                return True
            inv.blobs.add(key.digest, *found)
            return False
        repo = self._repo(key.repository) if key.repository is not None else None
        if repo is None:  # pragma: no cover - unlooked() said it is in the inventory
            return False
        if isinstance(key, LayerLink | TagIndexLink):
            links = repo.layers if isinstance(key, LayerLink) else repo.tags[key.tag].index
            if found is None:
                del links[key.digest]
                inv.objects -= 1
                return True
            links[key.digest] = found[1]
            return False
        if found is None:
            # A file the listing saw as one, gone (or changed) since: someone else is
            # changing the store. Of unknown age, so never deleted for its age.
            log.warning("%s: gone since it was listed; kept as of unknown age", path)
            found = (0, _UNKNOWN)
        _set_time(repo, key, found)
        return False

    async def _relist(self, directory: str) -> None:
        """List a digest directory whose file is not what its name said, as a full listing does."""
        self.relisted += 1
        log.info("%s: not what its name says; listing it", directory)
        builder, backend = self.builder, self.backend
        if isinstance(backend, SupportsListBatches):
            add = (
                builder.add_blob_batch
                if directory.startswith(BLOBS_PREFIX)
                else builder.add_repository_batch
            )
            async for chunk in backend.list_batches(directory):
                for batch in chunk:
                    add(batch)
        else:
            async for info in backend.list(directory):
                builder.add_info(info)

    # -- what a plan relies on ----------------------------------------------------------

    def relied(self, plan: Plan, marks: Marks, manifests: ManifestTable) -> Iterator[str]:
        """Every object ``plan`` deletes, keeps, or decides on (see the module)."""
        inv = self.inventory
        for d in plan.deletions:
            yield from d.paths
            if d.digest is not None and d.category in _NAMING:
                repo = self._repo(d.repository) if d.repository is not None else None
                target = _canonical(d.digest, repo)
                if target is not None:
                    yield blob_path(target)
        for k in plan.kept:
            if k.category is Category.UPLOAD:
                repo = self._repo(k.repository) if k.repository is not None else None
                upload = repo.uploads.get(k.path.rsplit("/", 1)[1]) if repo is not None else None
                if upload is not None:
                    yield from (UploadFile(repo.name, upload.id, f).path for f in upload.files)  # type: ignore[union-attr]
            elif k.category is not Category.REPOSITORY:
                yield k.path
        for repo in list(inv.repositories.values()):
            whole = repo.name in marks.damaged or repo.name_problem is not None
            yield from _deciding_links(repo, manifests, whole=whole)

    async def settle(
        self,
        decide: Callable[[], Awaitable[tuple[Marks, Removals, TagDecisions | None]]],
        manifests: ManifestTable,
    ) -> tuple[Marks, Removals, TagDecisions | None, Plan]:
        """Mark and plan until the plan relies on nothing not looked at; the last of each."""
        rounds = 0
        marks: Marks | None = None
        self.surprises = 0
        while True:
            rounds += 1
            if marks is None or self.surprises:
                # Something looked at changes what marking decides: mark again.
                # Otherwise the marks stand, and planning again takes the sizes
                # and times looked at (blobs, uploads, tag history kept or not).
                self.surprises = 0
                marks, removals, decisions = await decide()
                self.threshold = marks.cutoffs.grace
                if marks.problems and await self._look_all_blobs():
                    marks = None  # refused, perhaps on a count of blobs not all there
                    continue
            plan = make_plan(self.inventory, marks)  # raises on problems: nothing deleted
            if not await self.look(self.relied(plan, marks, manifests)):
                break
        plan.sizes_measured = self.inventory.blobs.sizes_known()
        log.info(
            "names only: %d object(s) looked at, %d directory(ies) listed again, %d plan(s)",
            self.looked,
            self.relisted,
            rounds,
        )
        return marks, removals, decisions, plan

    async def _look_all_blobs(self) -> int:
        blobs, index = self.inventory.blobs, self.inventory.index
        return await self.look(
            blob_path(index.digest(i)) for i in list(blobs.ids()) if blobs.size_of_id(i) == -1
        )


def _set_time(repo: RepositoryEntry, key: object, found: tuple[int, float]) -> None:
    """Record the size and time of a repository's file that is not a digest directory's."""
    size, mtime = found
    if isinstance(key, RevisionLink):
        repo.revisions[key.digest] = mtime
    elif isinstance(key, TagCurrentLink):
        tag = repo.tags[key.tag]
        tag.current_size, tag.current_mtime = size, mtime
    elif isinstance(key, UploadFile):
        repo.uploads[key.upload].files[key.name] = (size, mtime)
    elif isinstance(key, LegacySignatureLink):
        sigs = repo.signatures[key.revision]
        sigs[:] = [(d, mtime if d == key.digest else m) for d, m in sigs]


#: Deletions whose reason depends on whether the blob they name is there.
_NAMING: Final = frozenset({Category.REVISION, Category.LAYER_LINK, Category.TAG_INDEX})


def _canonical(digest: str, repo: RepositoryEntry | None) -> Digest | None:
    if digest.startswith("sha256:"):
        return digest  # type: ignore[return-value]
    if repo is None:
        return None
    return repo.layer_aliases.get(digest)  # type: ignore[call-overload,no-any-return]


def _deciding_links(
    repo: RepositoryEntry, manifests: ManifestTable, *, whole: bool
) -> Iterator[str]:
    """Links of ``repo`` whose presence decides what is live, though they are not deleted.

    In a repository kept whole (``whole``), every ``_layers`` link and tag
    history entry (all of them are roots, or keep their blobs) and every
    revision link (a young one is walked, and what it reaches is reported);
    elsewhere, the history of tags without a ``current`` link (it is their
    roots) and the ``_layers`` links of manifests (2.1.0 revisions; children
    served here).
    """
    name = repo.name
    if whole:
        yield from (RevisionLink(name, d).path for d in list(repo.revisions))
    for tag in list(repo.tags.values()):
        if whole or tag.current is None:
            yield from (TagIndexLink(name, tag.name, d).path for d in list(tag.index))
    layers = repo.layers
    if whole:
        yield from (LayerLink(name, d).path for d in list(layers))
    elif layers.index is manifests.index:
        # By id: a layer link is rarely a manifest, and its digest is made only if it is.
        digest = layers.index.digest
        ids = [i for i in layers.ids() if manifests.is_manifest_id(i)]
        yield from (LayerLink(name, digest(i)).path for i in ids)
    else:
        yield from (LayerLink(name, d).path for d in list(layers) if is_manifest(manifests.get(d)))


async def survey_names(
    backend: Backend,
    *,
    allow_empty: bool = False,
    progress: ProgressCallback | None = None,
    timings: Timings | None = None,
    cache: ManifestCache | None = None,
) -> tuple[Inventory, ManifestTable, Resolver]:
    """:func:`~registry_gc._run.survey` by names alone: inventory, manifests, resolver."""
    names = names_only_backend(backend)
    timings = timings if timings is not None else Timings()
    with timings.step("inventory"):
        inventory = await scan(names, progress=progress, names_only=True)
    refuse_empty(inventory, allow_empty=allow_empty)
    resolver = Resolver(names, inventory)
    with timings.step("manifests"):
        manifests = await fetch_manifests(
            names,
            inventory,
            progress=(lambda done, total: progress("manifests", done, total)) if progress else None,
            look=resolver.look_blob_ids,
            cache=cache,
        )
        if cache is not None:
            cache.forget_unused()
    return inventory, manifests, resolver
