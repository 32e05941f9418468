"""One listing pass → everything the registry holds, compact, in memory.

The inventory lists ``blobs/`` and ``repositories/`` (concurrently), classifies
every path with :mod:`registry_gc.layout`, and reads only what the path does
not already say: the tags' ``current`` links, and the rare ``_layers`` alias
links (sha384/sha512 paths, whose content names the canonical sha256 blob).

Timestamps are kept as float seconds since the epoch (UTC) to stay small:
the blob table costs about 200 bytes per blob.
"""

from __future__ import annotations

import array
import asyncio
import datetime
import logging
import time
from typing import TYPE_CHECKING

import attrs

from . import _sync
from ._errors import InvalidReferenceError
from ._reads import read_each
from .backends import UNKNOWN_TIME, SupportsMultipartUploads
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
    from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
    from typing import Any

    from .backends import Backend, MultipartUpload, ObjectInfo

__all__ = [
    "Anomaly",
    "BlobTable",
    "Inventory",
    "RepositoryEntry",
    "TagEntry",
    "UploadEntry",
    "scan",
    "take_inventory",
]

log = logging.getLogger(__name__)

_UNKNOWN = UNKNOWN_TIME.timestamp()


@attrs.frozen
class Anomaly:
    """Something in the store that does not fit the layout, or looks broken.

    Reported, never deleted by accident. ``kind`` is a stable identifier
    (``unrecognized-path``, ``invalid-repository-name``, ``broken-link`` …).
    """

    kind: str
    path: str
    message: str
    repository: str | None = None


class BlobTable:
    """Every blob in ``blobs/``: digest → size and modification time, compactly.

    Keys are kept as plain strings (a :class:`Digest` costs 48 bytes more per
    object); iteration hands out :class:`Digest` again.
    """

    __slots__ = ("_index", "_mtimes", "_sizes")

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._sizes = array.array("q")
        self._mtimes = array.array("d")

    def add(self, digest: str, size: int, mtime: float) -> None:
        """Record a blob (a second record of the same digest replaces the first)."""
        i = self._index.get(digest)
        if i is None:
            key = digest if type(digest) is str else str.__str__(digest)
            self._index[key] = len(self._sizes)
            self._sizes.append(size)
            self._mtimes.append(mtime)
        else:
            self._sizes[i] = size
            self._mtimes[i] = mtime

    def __contains__(self, digest: object) -> bool:
        return digest in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Digest]:
        trusted = Digest._trusted  # noqa: SLF001
        return (trusted(k) for k in self._index)

    def size(self, digest: str) -> int:
        """The size in bytes of the blob's ``data``."""
        return self._sizes[self._index[digest]]

    def mtime(self, digest: str) -> float:
        """When ``data`` was last written, in seconds since the epoch."""
        return self._mtimes[self._index[digest]]

    def total_size(self) -> int:
        """The bytes held by every blob."""
        return sum(self._sizes)


@attrs.define(slots=True)
class TagEntry:
    """A tag directory. ``current`` is ``None`` when its link is missing or broken."""

    name: Tag
    current: Digest | None = None
    current_mtime: float | None = None
    current_size: int = 0
    #: Revisions the tag ever pointed at: digest → link mtime.
    index: dict[Digest, float] = attrs.Factory(dict)


@attrs.define(slots=True)
class UploadEntry:
    """An upload in progress: ``_uploads/<id>/…``."""

    id: str
    #: name (``data``, ``startedat``, ``hashstates/sha256/0``) → (size, mtime)
    files: dict[str, tuple[int, float]] = attrs.Factory(dict)
    #: open multipart uploads of its ``data`` (object stores: invisible to listing)
    multipart: list[MultipartUpload] = attrs.Factory(list)

    def _times(self) -> list[float]:
        times = [m for _, m in self.files.values()]
        times.extend(u.initiated.timestamp() for u in self.multipart)
        return times

    @property
    def started(self) -> float:
        """When the upload started: the ``startedat`` file's write time, else the oldest file's."""
        if "startedat" in self.files:
            return self.files["startedat"][1]
        return min(self._times())

    @property
    def last_activity(self) -> float:
        """When any of its files was last written (or a multipart upload initiated)."""
        return max(self._times())

    @property
    def size(self) -> int:
        """Bytes held by its files."""
        return sum(s for s, _ in self.files.values())


@attrs.define(slots=True)
class RepositoryEntry:
    """Everything under ``repositories/<name>/``."""

    name: Repository
    #: Why the name is not valid per distribution's grammar; ``None`` when it is.
    name_problem: str | None = None
    #: ``True`` when a ``_manifests`` directory exists (distribution 3.x's rule).
    has_manifests: bool = False
    tags: dict[Tag, TagEntry] = attrs.Factory(dict)
    #: revision digest → link mtime
    revisions: dict[Digest, float] = attrs.Factory(dict)
    #: layer link digest (as in the path) → link mtime
    layers: dict[Digest, float] = attrs.Factory(dict)
    #: alias layer links (sha384/sha512 paths) → the canonical digest they name (None: unreadable)
    layer_aliases: dict[Digest, Digest | None] = attrs.Factory(dict)
    uploads: dict[str, UploadEntry] = attrs.Factory(dict)
    #: legacy (pre-2.5) signature links: revision digest → [(signature digest, mtime)]
    signatures: dict[Digest, list[tuple[Digest, float]]] = attrs.Factory(dict)
    #: paths inside the repository that fit nothing: never deleted; they keep it from being empty
    unrecognized: list[str] = attrs.Factory(list)

    @property
    def is_repository(self) -> bool:
        """Whether distribution would serve it: it has ``_manifests`` and a valid name."""
        return self.has_manifests and self.name_problem is None


@attrs.define
class Inventory:
    """What one listing pass found under ``docker/registry/v2/``."""

    url: str
    #: When the listing started (aware UTC). Grace periods count back from here.
    started: datetime.datetime
    repositories: dict[Repository, RepositoryEntry] = attrs.Factory(dict)
    blobs: BlobTable = attrs.Factory(BlobTable)
    anomalies: list[Anomaly] = attrs.Factory(list)
    #: empty directories (hierarchical stores only): path → mtime
    empty_dirs: dict[str, float] = attrs.Factory(dict)
    #: objects listed in total (blobs, links, uploads, anything else)
    objects: int = 0
    #: seconds spent listing and reading links
    seconds: float = 0.0

    def repository(self, name: str) -> RepositoryEntry:
        """The entry of repository ``name`` (raises ``KeyError`` if absent)."""
        return self.repositories[Repository._trusted(name)]  # noqa: SLF001

    @property
    def empty(self) -> bool:
        """``True`` when nothing at all was found: probably not a registry root."""
        return self.objects == 0 and not self.empty_dirs


class _Builder:
    """Accumulates listed objects into an :class:`Inventory`."""

    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.current_links: list[tuple[RepositoryEntry, TagEntry, str]] = []
        self.unknown_times = 0
        self.unknown_example = ""
        self.alias_links: list[tuple[RepositoryEntry, Digest, str]] = []

    def repo(self, name: str) -> RepositoryEntry:
        repos = self.inv.repositories
        key = Repository._trusted(name)  # noqa: SLF001
        entry = repos.get(key)
        if entry is None:
            entry = RepositoryEntry(key, repository_name_problem(name))
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
            entry = TagEntry(name)
            repo.tags[name] = entry
            problem = tag_name_problem(name)
            if problem is not None:
                self.inv.anomalies.append(
                    Anomaly(
                        "invalid-tag-name",
                        f"{REPOSITORIES_PREFIX}{repo.name}/_manifests/tags/{name}/",
                        f"tag {name!r} in repository {repo.name!r} is not a valid tag ({problem}); "
                        "it is kept, and what it points at is kept",
                        repo.name,
                    )
                )
        return entry

    def add(self, info: ObjectInfo) -> None:
        self.inv.objects += 1
        path = info.path
        mtime = info.modified.timestamp()
        if mtime >= _UNKNOWN:
            self.unknown_times += 1
            self.unknown_example = self.unknown_example or path
        if info.is_dir:
            self.inv.objects -= 1
            self.add_dir(path, mtime)
            return
        blob = blob_digest(path)
        if blob is not None:
            self.inv.blobs.add(blob, info.size, mtime)
            return
        key = classify(path)
        if isinstance(key, Unrecognized):
            self.unrecognized(key)
            return
        if isinstance(key, BlobData):  # pragma: no cover - parse_blob_path took these
            self.inv.blobs.add(key.digest, info.size, mtime)
            return
        repo = self.repo(key.repository)
        if isinstance(key, RevisionLink):
            repo.has_manifests = True
            repo.revisions[key.digest] = mtime
        elif isinstance(key, TagCurrentLink):
            repo.has_manifests = True
            tag = self.tag(repo, key.tag)
            tag.current_mtime = mtime
            tag.current_size = info.size
            self.current_links.append((repo, tag, path))
        elif isinstance(key, TagIndexLink):
            repo.has_manifests = True
            self.tag(repo, key.tag).index[key.digest] = mtime
        elif isinstance(key, LayerLink):
            repo.layers[key.digest] = mtime
            if key.digest.algorithm != "sha256":
                self.alias_links.append((repo, key.digest, path))
        elif isinstance(key, UploadFile):
            upload = repo.uploads.get(key.upload)
            if upload is None:
                upload = repo.uploads[key.upload] = UploadEntry(key.upload)
            upload.files[key.name] = (info.size, mtime)
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
        split = split_repository(path + "/")
        if split is not None:
            name, rest = split
            repo = self.repo(name)
            if rest and rest[0] == "_manifests":
                repo.has_manifests = True
        elif path.startswith(REPOSITORIES_PREFIX) and len(path) > len(REPOSITORIES_PREFIX):
            # An empty directory with no _ component: a repository directory
            # (or namespace) with nothing in it.
            pass

    def finish(self, contents: dict[str, bytes | None]) -> None:
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
        for repo, tag, path in self.current_links:
            self._set_current(repo, tag, path, contents.get(path))
        for repo, digest, path in self.alias_links:
            data = contents.get(path)
            target: Digest | None = None
            if data is not None:
                try:
                    target = Digest(data.decode("ascii").strip())
                except (UnicodeDecodeError, InvalidReferenceError):
                    target = None
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
        for repo in self.inv.repositories.values():
            for name, tag in repo.tags.items():
                if tag.current_mtime is None:
                    self.inv.anomalies.append(
                        Anomaly(
                            "tag-without-current-link",
                            f"{REPOSITORIES_PREFIX}{repo.name}/_manifests/tags/{name}/current/link",
                            f"tag {name!r} in repository {repo.name!r} has no current link "
                            "(an interrupted tag write or delete); the tag does not resolve",
                            repo.name,
                        )
                    )
            if (
                not repo.has_manifests
                and repo.name_problem is None
                and (repo.layers or repo.uploads)
            ):
                self.inv.anomalies.append(
                    Anomaly(
                        "no-manifests-directory",
                        f"{REPOSITORIES_PREFIX}{repo.name}/",
                        f"repository directory {repo.name!r} has _layers or _uploads but no "
                        "_manifests (a push that never wrote a manifest); distribution 3.x does "
                        "not list it as a repository",
                        repo.name,
                    )
                )

    def _set_current(
        self, repo: RepositoryEntry, tag: TagEntry, path: str, data: bytes | None
    ) -> None:
        if data is None:
            problem = "vanished while it was being read"
        else:
            try:
                tag.current = Digest(data.decode("ascii"))
            except UnicodeDecodeError:
                problem = "does not hold a digest (not ASCII)"
            except InvalidReferenceError:
                problem = f"holds {data[:80]!r}, not a digest"
            else:
                return
        self.inv.anomalies.append(
            Anomaly(
                "broken-link",
                path,
                f"current link of tag {tag.name!r} in repository {repo.name!r} {problem}; "
                "the tag is left in place and nothing it may point at is deleted on its account",
                repo.name,
            )
        )


#: Listed objects between two ``listing`` progress reports.
PROGRESS_STEP = 500


async def scan(
    backend: Backend,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    blobs_from: Inventory | None = None,
    prefixes: Sequence[str] | None = None,
    listed: Iterable[ObjectInfo] = (),
    uploads: Iterable[MultipartUpload] | None = None,
) -> Inventory:
    """List the registry once and build its :class:`Inventory` (async).

    ``progress("listing", listed, None)`` is called every :data:`PROGRESS_STEP` objects.
    With ``blobs_from``, only ``repositories/`` is listed again and the blobs are
    that inventory's (a live run looks again at what pushes changed: links,
    tags, revisions; a blob is only ever written before the link that names it).

    A part of the store (:mod:`registry_gc.distributed` lists one per worker):
    ``prefixes`` are the directories to list instead of ``blobs/`` and
    ``repositories/``, ``listed`` objects found on the way to them (by a
    delimiter listing) and ``uploads`` the open multipart uploads under them,
    listed already (``None``: listed here, under each prefix inside
    ``repositories/``). The inventory then holds exactly what those hold.
    """
    t0 = time.monotonic()
    inv = Inventory(backend.url, datetime.datetime.now(datetime.timezone.utc))
    builder = _Builder(inv)
    if blobs_from is not None:
        inv.blobs = blobs_from.blobs
        inv.objects = len(blobs_from.blobs)

    async def consume(prefix: str) -> None:
        async for info in backend.list(prefix):
            builder.add(info)
            if progress is not None and inv.objects % PROGRESS_STEP == 0:
                progress("listing", inv.objects, None)

    async def multipart(prefix: str) -> None:
        if isinstance(backend, SupportsMultipartUploads):
            for upload in await backend.list_multipart_uploads(prefix):
                builder.add_multipart(upload)

    if prefixes is not None:
        for info in listed:
            builder.add(info)
        for upload in uploads or ():
            builder.add_multipart(upload)
        mine = [p for p in prefixes if p.startswith(REPOSITORIES_PREFIX)]
        await _gather_bounded(
            [
                *(consume(p) for p in prefixes),
                *(multipart(p) for p in (mine if uploads is None else ())),
            ]
        )
    elif blobs_from is None:
        await asyncio.gather(
            consume(BLOBS_PREFIX), consume(REPOSITORIES_PREFIX), multipart(REPOSITORIES_PREFIX)
        )
    else:
        await consume(REPOSITORIES_PREFIX)
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
    to_read = [p for _, _, p in builder.current_links] + [p for _, _, p in builder.alias_links]
    contents: dict[str, bytes | None] = {}
    await read_each(backend, to_read, contents.__setitem__)
    builder.finish(contents)
    inv.seconds = time.monotonic() - t0
    return inv


#: Prefixes listed at once by a :func:`scan` of given ``prefixes``.
PARALLEL_PREFIXES = 16


async def _gather_bounded(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Await ``coros``, at most :data:`PARALLEL_PREFIXES` at a time."""
    sem = asyncio.Semaphore(PARALLEL_PREFIXES)

    async def one(coro: Coroutine[Any, Any, None]) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def take_inventory(backend: Backend) -> Inventory:
    """List the registry once and build its :class:`Inventory`.

    >>> from registry_gc.backends import open_backend
    >>> inv = take_inventory(open_backend("memory://empty-registry"))
    >>> inv.empty
    True
    """
    return _sync.run(scan(backend))
