"""Building the :class:`~registry_gc.inventory.Inventory`: ``blobs/`` first, then ``repositories/``.

The blobs are listed first because every other table stores digests as ids of
the index the blob listing makes (:mod:`registry_gc._digests`). Listings come
either as columns, directory by directory (:class:`~registry_gc.backends.SupportsListBatches`),
where the directory is parsed once and the names of its links and blobs go
straight into typed arrays, or object by object (:meth:`Backend.list
<registry_gc.backends.Backend.list>`), each path classified by
:func:`registry_gc.layout.classify`. Both end in the same tables.

Why one module of over 600 lines: one job, turning listings into the
inventory's tables, for whole stores and for a distributed run's parts alike;
the tables themselves are in :mod:`registry_gc._columns` and
:mod:`registry_gc._digests`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import time
from array import array
from binascii import a2b_hex
from typing import TYPE_CHECKING, Final

from ._columns import LinkTimes
from ._digests import SortedRecords
from ._errors import InvalidReferenceError
from ._reads import read_each
from .backends import (
    UNKNOWN_TIME,
    ListedBatch,
    SupportsListAhead,
    SupportsListBatches,
    SupportsMultipartUploads,
    SupportsNamesOnly,
)
from .inventory import (
    NOT_LOOKED,
    PROGRESS_STEP,
    Anomaly,
    BlobTable,
    Inventory,
    RepositoryEntry,
    TagEntry,
    UploadEntry,
)
from .layout import (
    BLOBS_PREFIX,
    REPOSITORIES_PREFIX,
    BlobData,
    Digest,
    LayerLink,
    LegacySignatureLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    Unrecognized,
    UploadFile,
    blob_digest,
    classify,
    repository_name_problem,
    split_repository,
    tag_name_problem,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Sequence
    from typing import Any

    from ._digests import DigestIndex
    from .backends import Backend, ListingAhead, MultipartUpload, ObjectInfo
    from .manifest_cache import ManifestCache

__all__ = ["STRUCTURE_ANOMALIES", "build", "invalid_tag", "repository_anomalies"]

log = logging.getLogger(__name__)

_UNKNOWN: Final = UNKNOWN_TIME.timestamp()
_BLOB_DIR: Final = re.compile(re.escape(BLOBS_PREFIX) + r"sha256/([0-9a-f]{2})")
_BLOB_NAME: Final = re.compile(r"([0-9a-f]{64})/data")
_LINK_NAME: Final = re.compile(r"([0-9a-f]{64})/link")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")

# What a directory of a repository holds, for the batches' fast paths.
_LAYERS: Final = 1  #: ``_layers/sha256``: ``<hex>/link``
_TAG_INDEX: Final = 2  #: ``_manifests/tags/<tag>/index/sha256``: ``<hex>/link``
_REVISION: Final = 3  #: ``_manifests/revisions/sha256/<hex>``: ``link``
#: Parsed directories kept at once (a repository's few directories repeat).
_DIR_CACHE: Final = 4096


class _Builder:
    """Accumulates listed objects into an :class:`Inventory`."""

    def __init__(
        self, inv: Inventory, progress: Callable[[str, int, int | None], None] | None
    ) -> None:
        self.inv = inv
        self.progress = progress
        self.next_report = PROGRESS_STEP
        #: sha256 blobs, while ``blobs/`` is listed
        self.records: SortedRecords | None = SortedRecords()
        #: blobs of other algorithms, added once the index exists
        self.late_blobs: list[tuple[str, int, float]] = []
        self.index: DigestIndex = inv.blobs.index
        #: tag ``current`` links to read: path → (repository, tag)
        self.current_links: dict[str, tuple[RepositoryEntry, TagEntry]] = {}
        #: the ETags the listing gave the ``current`` links (object stores): path → ETag
        self.current_etags: dict[str, str] = {}
        #: ``_layers`` alias links to read: path → (repository, the digest of the path)
        self.alias_links: dict[str, tuple[RepositoryEntry, Digest]] = {}
        #: what is wrong with the ``current`` links read so far: path → why
        self.link_problems: dict[str, str] = {}
        #: what the alias links read so far name
        self.alias_targets: dict[str, Digest | None] = {}
        self.unknown_times = 0
        self.unknown_example = ""
        self._dirs: dict[str, tuple[int, RepositoryEntry, object] | None] = {}

    # -- counting ------------------------------------------------------------------------

    def _listed(self, n: int) -> None:
        self.inv.objects += n
        if self.progress is not None and self.inv.objects >= self.next_report:
            self.progress("listing", self.inv.objects, None)
            self.next_report = self.inv.objects + PROGRESS_STEP

    def _unknown(self, path: str) -> None:
        self.unknown_times += 1
        self.unknown_example = self.unknown_example or path

    # -- blobs -----------------------------------------------------------------------------

    def add_blob_batch(self, batch: ListedBatch) -> None:
        """A directory of ``blobs/``: ``sha256/<xx>`` names go to the records directly."""
        m = _BLOB_DIR.fullmatch(batch.directory)
        if m is None or self.records is None:
            self._add_each(batch)
            return
        xx = m.group(1)
        keys, sizes, mtimes = self.records.group(int(xx, 16))
        match = _BLOB_NAME.fullmatch
        unknown = _UNKNOWN
        for name, size, mtime in zip(batch.names, batch.sizes, batch.mtimes, strict=True):
            found = match(name)
            if found is None or not name.startswith(xx):
                self.add_path(f"{batch.directory}/{name}", size, mtime)
                continue
            keys += a2b_hex(found.group(1))  # half the time of bytes.fromhex (lower-case hex)
            sizes.append(size)
            mtimes.append(mtime)
            if mtime >= unknown:
                self._unknown(f"{batch.directory}/{name}")
            self.inv.objects += 1
        self._listed(0)
        self._add_dirs(batch)

    def finish_blobs(self) -> None:
        """Sort the blob records into the index and the blob table; add the others."""
        assert self.records is not None
        keys, sizes, mtimes = self.records.finish()
        self.records = None
        from ._digests import DigestIndex  # noqa: PLC0415

        index = DigestIndex._from_sorted(keys)  # noqa: SLF001
        self.inv.blobs = BlobTable(index, sizes, mtimes)
        self.index = index
        for digest, size, mtime in self.late_blobs:
            self.inv.blobs.add(digest, size, mtime)
        self.late_blobs = []

    # -- repositories ----------------------------------------------------------------------

    def _dir(self, directory: str) -> tuple[int, RepositoryEntry, object] | None:
        """What a directory of ``repositories/`` holds, for the fast paths (cached)."""
        cache = self._dirs
        if directory in cache:
            return cache[directory]
        if len(cache) >= _DIR_CACHE:
            cache.clear()
        found: tuple[int, RepositoryEntry, object] | None = None
        split = split_repository(directory + "/")
        if split is not None:
            name, rest = split
            n = len(rest)
            if n == 3 and rest[0] == "_layers" and rest[1] == "sha256":
                found = (_LAYERS, self.repo(name), None)
            elif n == 6 and rest[:2] == ["_manifests", "tags"] and rest[3:5] == ["index", "sha256"]:
                repo = self.repo(name)
                if rest[2]:
                    repo.has_manifests = True
                    found = (_TAG_INDEX, repo, self.tag(repo, Tag._trusted(rest[2])))  # noqa: SLF001
            elif (
                n == 5
                and rest[:3] == ["_manifests", "revisions", "sha256"]
                and _HEX64.fullmatch(rest[3])
            ):
                repo = self.repo(name)
                found = (_REVISION, repo, rest[3])
        cache[directory] = found
        return found

    def add_repository_batch(self, batch: ListedBatch) -> None:
        """A directory of ``repositories/``: links of the common kinds go to the arrays directly."""
        kind = self._dir(batch.directory)
        if kind is None:
            self._add_each(batch)
            return
        what, repo, extra = kind
        if what == _REVISION:
            repo.has_manifests = True
            assert isinstance(extra, str)
            self._add_revision_batch(batch, repo.revisions, extra)
            return
        if what == _LAYERS:
            links = repo.layers
        else:
            assert isinstance(extra, TagEntry)
            links = extra.index
        intern_raw = self.index.intern_raw
        append_id = links.append_id
        match = _LINK_NAME.fullmatch
        unknown = _UNKNOWN
        for name, size, mtime in zip(batch.names, batch.sizes, batch.mtimes, strict=True):
            found = match(name)
            if found is None:
                self.add_path(f"{batch.directory}/{name}", size, mtime)
                continue
            # a2b_hex: half the time of bytes.fromhex (the pattern took lower-case hex only).
            append_id(intern_raw(a2b_hex(found.group(1))), mtime)
            if mtime >= unknown:
                self._unknown(f"{batch.directory}/{name}")
            self.inv.objects += 1
        self._listed(0)
        self._add_dirs(batch)

    def _add_revision_batch(self, batch: ListedBatch, links: LinkTimes, hex_digest: str) -> None:
        """A revision's directory: its ``link`` names the directory's digest, ``hex_digest``."""
        for name, size, mtime in zip(batch.names, batch.sizes, batch.mtimes, strict=True):
            if name != "link":
                self.add_path(f"{batch.directory}/{name}", size, mtime)
                continue
            links.append_id(self.index.intern_raw(a2b_hex(hex_digest)), mtime)
            if mtime >= _UNKNOWN:
                self._unknown(f"{batch.directory}/{name}")
            self.inv.objects += 1
        self._listed(0)
        self._add_dirs(batch)

    def _add_each(self, batch: ListedBatch) -> None:
        directory = batch.directory
        for name, size, mtime in zip(batch.names, batch.sizes, batch.mtimes, strict=True):
            self.add_path(f"{directory}/{name}" if directory else name, size, mtime)
        self._add_dirs(batch)

    def _add_dirs(self, batch: ListedBatch) -> None:
        for path, mtime in batch.empty_dirs:
            if mtime >= _UNKNOWN:
                self._unknown(path)
            self.add_dir(path, mtime)

    def repo(self, name: str) -> RepositoryEntry:
        repos = self.inv.repositories
        key = Repository._trusted(name)  # noqa: SLF001
        entry = repos.get(key)
        if entry is None:
            index = self.index
            entry = RepositoryEntry(
                key,
                repository_name_problem(name),
                revisions=LinkTimes(index),
                layers=LinkTimes(index),
            )
            repos[key] = entry
            if entry.name_problem is not None:
                self.inv.anomalies.append(
                    Anomaly(
                        "invalid-repository-name",
                        REPOSITORIES_PREFIX + name + "/",
                        f"repository directory {name!r} is not a valid repository name "
                        f"({entry.name_problem}); distribution cannot serve it, so registry-gc "
                        "deletes nothing in it but keeps every blob it references",
                        name,
                    )
                )
        return entry

    def tag(self, repo: RepositoryEntry, name: Tag) -> TagEntry:
        entry = repo.tags.get(name)
        if entry is None:
            entry = TagEntry(name, index=LinkTimes(self.index))
            repo.tags[name] = entry
            invalid = invalid_tag(repo, name)
            if invalid is not None:
                self.inv.anomalies.append(invalid)
        return entry

    # -- one object at a time --------------------------------------------------------------

    def add_info(self, info: ObjectInfo) -> None:
        """An object as :meth:`Backend.list` yields it."""
        mtime = info.modified.timestamp()
        if info.is_dir:
            if mtime >= _UNKNOWN:
                self._unknown(info.path)
            self.add_dir(info.path, mtime)
            return
        self.add_path(info.path, info.size, mtime)
        if info.etag is not None and info.path.endswith("/current/link"):
            self.current_etags[info.path] = info.etag
        self._listed(0)

    def add_path(self, path: str, size: int, mtime: float) -> None:  # noqa: C901, PLR0912
        """One listed file, classified by its path."""
        self.inv.objects += 1
        if mtime >= _UNKNOWN:
            self._unknown(path)
        blob = blob_digest(path)
        if blob is not None:
            raw = bytes.fromhex(blob[7:]) if blob.startswith("sha256:") else None
            if self.records is not None and raw is not None:
                self.records.add(raw, size, mtime)
            elif self.records is not None:
                self.late_blobs.append((blob, size, mtime))
            else:
                self.inv.blobs.add(blob, size, mtime)
            return
        key = classify(path)
        if isinstance(key, Unrecognized):
            self.unrecognized(key)
            return
        if isinstance(key, BlobData):  # pragma: no cover - blob_digest took these
            self.inv.blobs.add(key.digest, size, mtime)
            return
        repo = self.repo(key.repository)
        index = self.index
        if isinstance(key, RevisionLink):
            repo.has_manifests = True
            repo.revisions.append_id(index.intern(key.digest), mtime)
        elif isinstance(key, TagCurrentLink):
            repo.has_manifests = True
            tag = self.tag(repo, key.tag)
            tag.current_mtime = mtime
            tag.current_size = size
            self.current_links[path] = (repo, tag)
        elif isinstance(key, TagIndexLink):
            repo.has_manifests = True
            self.tag(repo, key.tag).index.append_id(index.intern(key.digest), mtime)
        elif isinstance(key, LayerLink):
            repo.layers.append_id(index.intern(key.digest), mtime)
            if key.digest.algorithm != "sha256":
                self.alias_links[path] = (repo, key.digest)
        elif isinstance(key, UploadFile):
            upload = repo.uploads.get(key.upload)
            if upload is None:
                upload = repo.uploads[key.upload] = UploadEntry(key.upload)
            upload.files[key.name] = (size, mtime)
        elif isinstance(key, LegacySignatureLink):
            repo.has_manifests = True
            repo.signatures.setdefault(key.revision, []).append((key.digest, mtime))

    def add_multipart(self, upload: MultipartUpload) -> None:
        key = classify(upload.key)
        if isinstance(key, UploadFile):
            repo = self.repo(key.repository)
            entry = repo.uploads.get(key.upload)
            if entry is None:
                entry = repo.uploads[key.upload] = UploadEntry(key.upload)
            entry.multipart.append(upload)
            return
        self.inv.anomalies.append(
            Anomaly(
                "unrecognized-multipart-upload",
                upload.key,
                f"open multipart upload of {upload.key} (id {upload.upload_id[:16]}…) is not a "
                "registry upload; left alone",
                key.repository if isinstance(key, Unrecognized) else None,
            )
        )

    def unrecognized(self, key: Unrecognized) -> None:
        if key.repository is not None:
            repo = self.repo(key.repository)
            repo.unrecognized.append(key.path)
            if "/_manifests/" in key.path:
                repo.has_manifests = True
        self.inv.anomalies.append(
            Anomaly(
                "unrecognized-path",
                key.path,
                f"{key.path}: {key.reason}; left in place",
                key.repository,
            )
        )

    def add_dir(self, path: str, mtime: float) -> None:
        self.inv.empty_dirs[path] = mtime
        if self.records is not None:
            return  # under blobs/
        split = split_repository(path + "/")
        if split is not None:
            name, rest = split
            repo = self.repo(name)
            if rest and rest[0] == "_manifests":
                repo.has_manifests = True

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> None:
        if self.unknown_times:
            self.inv.anomalies.append(
                Anomaly(
                    "unknown-time",
                    self.unknown_example,
                    f"{self.unknown_times} object(s), {self.unknown_example} among them, have a "
                    "modification time the storage does not give or Python cannot represent: "
                    "they count as written just now, so none is deleted for its age",
                )
            )
        for path, (repo, tag) in self.current_links.items():
            problem = self.link_problems.get(path)
            if problem is not None:
                self.inv.anomalies.append(_broken_current(repo, tag, path, problem))
        for path, (repo, digest) in self.alias_links.items():
            target = self.alias_targets.get(path)
            if target is None:
                self.inv.anomalies.append(
                    Anomaly(
                        "broken-link",
                        path,
                        f"{path}: alias layer link does not hold a valid digest; it is "
                        "deleted unless a live manifest of the repository needs it",
                        repo.name,
                    )
                )
            repo.layer_aliases[digest] = target
        # Repositories and tags in name order, whatever order the listings gave them in:
        # the report and the plan files list them alike for the same store.
        repos = self.inv.repositories
        ordered = sorted(repos.items())
        repos.clear()
        repos.update(ordered)
        for repo in repos.values():
            if repo.tags:
                repo.tags = dict(sorted(repo.tags.items()))
            repo.layers.ids()  # sorted now, once, rather than on a first lookup
            repo.revisions.ids()
            for tag in repo.tags.values():
                tag.index.ids()
            self.inv.anomalies.extend(repository_anomalies(repo))

    def read_link(self, path: str, data: bytes | None) -> None:
        """The content of a tag's ``current`` link or of an alias link, as it is read."""
        found = self.current_links.get(path)
        if found is not None:
            problem = _set_current(found[1], data)
            if problem is not None:
                self.link_problems[path] = problem
            return
        if path in self.alias_links:
            self.alias_targets[path] = _alias_target(data)


#: The anomalies :func:`repository_anomalies` gives (and the tag names :meth:`_Builder.tag` checks).
STRUCTURE_ANOMALIES: Final = frozenset(
    {"invalid-tag-name", "tag-without-current-link", "no-manifests-directory"}
)


def repository_anomalies(repo: RepositoryEntry) -> list[Anomaly]:
    """What the listed shape of ``repo`` says is wrong: tags without a link, no ``_manifests``."""
    out = []
    for name, tag in repo.tags.items():
        if tag.current_mtime is None:
            out.append(
                Anomaly(
                    "tag-without-current-link",
                    f"{REPOSITORIES_PREFIX}{repo.name}/_manifests/tags/{name}/current/link",
                    f"tag {name!r} in repository {repo.name!r} has no current link "
                    "(an interrupted tag write or delete); the tag does not resolve",
                    repo.name,
                )
            )
    if not repo.has_manifests and repo.name_problem is None and (repo.layers or repo.uploads):
        out.append(
            Anomaly(
                "no-manifests-directory",
                f"{REPOSITORIES_PREFIX}{repo.name}/",
                f"repository directory {repo.name!r} has _layers or _uploads but no "
                "_manifests (a push that never wrote a manifest); distribution 3.x does "
                "not list it as a repository",
                repo.name,
            )
        )
    return out


def invalid_tag(repo: RepositoryEntry, name: Tag) -> Anomaly | None:
    """The anomaly of tag ``name`` of ``repo`` when it is not a valid tag name."""
    problem = tag_name_problem(name)
    if problem is None:
        return None
    return Anomaly(
        "invalid-tag-name",
        f"{REPOSITORIES_PREFIX}{repo.name}/_manifests/tags/{name}/",
        f"tag {name!r} in repository {repo.name!r} is not a valid tag ({problem}); "
        "it is kept, and what it points at is kept",
        repo.name,
    )


def _alias_target(data: bytes | None) -> Digest | None:
    if data is None:
        return None
    try:
        return Digest(data.decode("ascii").strip())
    except (UnicodeDecodeError, InvalidReferenceError):
        return None


def _set_current(tag: TagEntry, data: bytes | None) -> str | None:
    """Set ``tag.current`` from its link's bytes; what is wrong with them, if anything."""
    if data is None:
        return "vanished while it was being read"
    try:
        tag.current = Digest(data.decode("ascii"))
    except UnicodeDecodeError:
        return "does not hold a digest (not ASCII)"
    except InvalidReferenceError:
        return f"holds {data[:80]!r}, not a digest"
    return None


def _broken_current(repo: RepositoryEntry, tag: TagEntry, path: str, problem: str) -> Anomaly:
    return Anomaly(
        "broken-link",
        path,
        f"current link of tag {tag.name!r} in repository {repo.name!r} {problem}; "
        "the tag is left in place and nothing it may point at is deleted on its account",
        repo.name,
    )


def _not_looked(batch: ListedBatch) -> ListedBatch:
    """``batch`` with the time of every object listed by name alone (size -1) ``NOT_LOOKED``."""
    sizes = batch.sizes
    if -1 not in sizes:
        return batch
    mtimes = array(
        "d", (NOT_LOOKED if s == -1 else m for s, m in zip(sizes, batch.mtimes, strict=True))
    )
    return ListedBatch(batch.directory, batch.names, sizes, mtimes, batch.empty_dirs)


async def _list(
    backend: Backend,
    prefix: str,
    builder: _Builder,
    *,
    blobs: bool,
    names_only: bool = False,
    ahead: ListingAhead | None = None,
) -> None:
    """List ``prefix`` into ``builder`` (``ahead``: the listing of it already under way)."""
    if ahead is not None:
        await _take_ahead(ahead, builder, blobs=blobs, names_only=names_only)
    elif names_only:
        assert isinstance(backend, SupportsNamesOnly)
        add = builder.add_blob_batch if blobs else builder.add_repository_batch
        async for chunk in backend.list_names(prefix):
            for batch in chunk:
                add(_not_looked(batch))
    elif isinstance(backend, SupportsListBatches):
        add = builder.add_blob_batch if blobs else builder.add_repository_batch
        async for chunk in backend.list_batches(prefix):
            for batch in chunk:
                add(batch)
    else:
        async for info in backend.list(prefix):
            builder.add_info(info)


async def _take_ahead(
    ahead: ListingAhead, builder: _Builder, *, blobs: bool, names_only: bool
) -> None:
    add = builder.add_blob_batch if blobs else builder.add_repository_batch
    async for chunk in ahead:
        for batch in chunk:
            add(_not_looked(batch) if names_only else batch)


async def _look_at_aliases(backend: Backend, builder: _Builder) -> None:
    """Names only: ``stat`` the alias links before they are read, as a full listing had them.

    A digest directory listed by name may lack its ``link``: then it is listed
    as the full listing lists it, and what it holds is recorded instead.
    """
    assert isinstance(backend, SupportsNamesOnly)
    found = await backend.stat(list(builder.alias_links))
    hollow = []
    for path, looked in found.items():
        repo, digest = builder.alias_links[path]
        if looked is None:
            del builder.alias_links[path]
            del repo.layers[digest]
            hollow.append(path.rsplit("/", 1)[0])
        else:
            repo.layers[digest] = looked[1]
    for directory in hollow:
        await _list(backend, directory, builder, blobs=False)


#: Prefixes listed at once by a :func:`build` of given ``prefixes``.
PARALLEL_PREFIXES = 16


async def _gather_bounded(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Await ``coros``, at most :data:`PARALLEL_PREFIXES` at a time."""
    sem = asyncio.Semaphore(PARALLEL_PREFIXES)

    async def one(coro: Coroutine[Any, Any, None]) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def _list_part(
    backend: Backend,
    builder: _Builder,
    prefixes: Sequence[str],
    listed: Iterable[ObjectInfo],
    uploads: Iterable[MultipartUpload] | None,
) -> None:
    """A part of the store: ``blobs/`` prefixes first (they make the index), then the others.

    ``listed`` are objects found on the way to the prefixes; ``uploads`` the open
    multipart uploads under them (``None``: listed here, under each prefix
    inside ``repositories/``).
    """
    found = list(listed)
    blob_prefixes = [p for p in prefixes if p.startswith(BLOBS_PREFIX)]
    other_prefixes = [p for p in prefixes if not p.startswith(BLOBS_PREFIX)]
    for info in found:
        if info.path.startswith(BLOBS_PREFIX):
            builder.add_info(info)
    await _gather_bounded([_list(backend, p, builder, blobs=True) for p in blob_prefixes])
    builder.finish_blobs()
    for info in found:
        if not info.path.startswith(BLOBS_PREFIX):
            builder.add_info(info)
    for upload in uploads or ():
        builder.add_multipart(upload)

    async def multipart(prefix: str) -> None:
        if isinstance(backend, SupportsMultipartUploads):
            for upload in await backend.list_multipart_uploads(prefix):
                builder.add_multipart(upload)

    mine = [p for p in other_prefixes if p.startswith(REPOSITORIES_PREFIX)]
    await _gather_bounded(
        [
            *(_list(backend, p, builder, blobs=False) for p in other_prefixes),
            *(multipart(p) for p in (mine if uploads is None else ())),
        ]
    )


async def _list_whole(
    backend: Backend, builder: _Builder, blobs_from: Inventory | None, *, names_only: bool
) -> None:
    """The whole store: ``blobs/`` (or ``blobs_from``'s table), then ``repositories/``.

    A backend that can list ahead (:class:`~registry_gc.backends.SupportsListAhead`)
    lists ``repositories/`` while ``blobs/`` is listed; its chunks are read
    once the blob index exists.
    """
    inv = builder.inv
    ahead = None
    if blobs_from is None and isinstance(backend, SupportsListAhead):
        ahead = backend.list_ahead(REPOSITORIES_PREFIX, names_only=names_only)
    try:
        if blobs_from is not None:
            inv.blobs = blobs_from.blobs
            inv.objects = len(blobs_from.blobs)
            builder.records = None
            builder.index = inv.blobs.index
        else:
            await _list(backend, BLOBS_PREFIX, builder, blobs=True, names_only=names_only)
            builder.finish_blobs()

        async def multipart() -> None:
            if isinstance(backend, SupportsMultipartUploads):
                for upload in await backend.list_multipart_uploads(REPOSITORIES_PREFIX):
                    builder.add_multipart(upload)

        await asyncio.gather(
            _list(
                backend,
                REPOSITORIES_PREFIX,
                builder,
                blobs=False,
                names_only=names_only,
                ahead=ahead,
            ),
            multipart(),
        )
    finally:
        if ahead is not None:
            await ahead.aclose()


async def _read_links_with(
    cache: ManifestCache, backend: Backend, builder: _Builder, paths: list[str]
) -> None:
    """Read ``paths`` (links), taking from ``cache`` the ``current`` links it holds.

    A ``current`` link whose listed ETag is the MD5 of a body the cache holds is that
    body (:meth:`~registry_gc.manifest_cache.ManifestCache.take_links` checks it);
    the others are read, and kept when their ETag is their MD5.
    """
    etags = builder.current_etags
    held = cache.take_links(etags[p] for p in paths if p in etags)
    rest = []
    for path in paths:
        body = held.get(etags.get(path, ""))
        if body is None:
            rest.append(path)
        else:
            builder.read_link(path, body)

    def read_link(path: str, data: bytes | None) -> None:
        builder.read_link(path, data)
        etag = etags.get(path)
        if data is not None and etag is not None:
            cache.add_link(etag, data)

    await read_each(backend, rest, read_link)


async def build(
    backend: Backend,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    blobs_from: Inventory | None = None,
    prefixes: Sequence[str] | None = None,
    listed: Iterable[ObjectInfo] = (),
    uploads: Iterable[MultipartUpload] | None = None,
    names_only: bool = False,
    cache: ManifestCache | None = None,
) -> Inventory:
    """:func:`registry_gc.inventory.scan`."""
    t0 = time.monotonic()
    inv = Inventory(backend.url, datetime.datetime.now(datetime.timezone.utc))
    inv.names_only = names_only
    builder = _Builder(inv, progress)
    if prefixes is not None:
        await _list_part(backend, builder, prefixes, listed, uploads)
    else:
        await _list_whole(backend, builder, blobs_from, names_only=names_only)
    log.info(
        "listed %s: %d objects, %d blobs (%d bytes), %d repositories",
        backend.url,
        inv.objects,
        len(inv.blobs),
        inv.blobs.total_size(),
        len(inv.repositories),
    )
    if progress is not None:
        progress("listing", inv.objects, inv.objects)
    if names_only and builder.alias_links:
        await _look_at_aliases(backend, builder)
    to_read = [*builder.current_links, *builder.alias_links]
    if cache is None:
        await read_each(backend, to_read, builder.read_link)
    else:
        await _read_links_with(cache, backend, builder, to_read)
    builder.finish()
    inv.seconds = time.monotonic() - t0
    return inv
