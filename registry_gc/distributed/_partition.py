"""How a store splits into parts: blob shards by digest prefix, repository partitions by name.

**Blob shards.** ``blobs/<alg>/<xx>/`` holds the blobs whose digest starts
with the two hex digits ``xx``. Shard ``i`` of ``S`` owns the prefixes
``xx`` with ``int(xx, 16) * S // 256 == i``: its listing, the manifests among
its blobs (read once each, however many repositories hold them), and its
part of the sweep. Anything keyed by digest — a manifest to read, a blob
whose presence a repository asks about, a blob found live — goes to the
shard of that digest (:func:`shard_of`), so no worker holds all of it.

**Repository partitions.** ``repositories/`` splits by the names under it,
found with one delimiter listing (:class:`~registry_gc.backends.SupportsListDir`).
A name that is only a namespace (``library/``: no ``_manifests``, no file of
its own, only directories below) splits again, down to :data:`MAX_DEPTH`
levels, while there are fewer than :data:`UNITS_PER_PARTITION` names per
partition. A repository and every repository nested in it are in one unit
(``a``, ``a/b``, ``a/b/c`` together): what the collector decides for a
repository depends only on its own directory, nested ones included (an
empty repository with a fresh directory below it is kept). Units are dealt
to partitions in turn.

Objects that a delimiter listing finds directly in ``blobs/``,
``blobs/<alg>/`` or ``repositories/`` (never written by a registry) go to
the first shard or partition, which reports them as the single-process run
does. Without :class:`~registry_gc.backends.SupportsListDir`, one task lists
the whole store first and the parts are cut from that listing
(:func:`split_listing`).
"""

from __future__ import annotations

import asyncio
import bisect
from typing import TYPE_CHECKING, TypeVar

import attrs

from ..backends import SupportsListDir, SupportsMultipartUploads
from ..layout import BLOBS_PREFIX, REPOSITORIES_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..backends import Backend, MultipartUpload, ObjectInfo

__all__ = [
    "MAX_DEPTH",
    "UNITS_PER_PARTITION",
    "Part",
    "Partitioning",
    "by_shard",
    "discover",
    "shard_of",
    "split_listing",
]

_S = TypeVar("_S", bound=str)

#: Split ``repositories/`` until there are this many units per partition (or no namespace left).
UNITS_PER_PARTITION = 4
#: Namespaces are split at most this many levels below ``repositories/``.
MAX_DEPTH = 3
#: Delimiter listings in flight at once while discovering the parts.
_PARALLEL = 16


def shard_of(digest: str, shards: int) -> int:
    """The shard of ``digest`` (or of a ``blobs/<alg>/<xx>`` name ``xx``), of ``shards``.

    >>> shard_of("sha256:" + "80" * 32, 4), shard_of("sha256:" + "ff" * 32, 4)
    (2, 3)
    """
    _, colon, hexpart = digest.partition(":")
    two = hexpart[:2] if colon else digest[:2]
    if len(two) != 2:
        return 0
    try:
        value = int(two, 16)
    except ValueError:
        return 0
    return value * shards // 256


def by_shard(digests: Iterable[_S], shards: int) -> list[set[_S]]:
    """``digests`` grouped by :func:`shard_of`, one set per shard."""
    out: list[set[_S]] = [set() for _ in range(shards)]
    for d in digests:
        out[shard_of(d, shards)].add(d)
    return out


@attrs.frozen
class Part:
    """What one listing task lists: directories, and what was found on the way to them."""

    #: directory prefixes to list, each ending in ``/``
    units: tuple[str, ...] = ()
    #: objects a delimiter listing found directly in a directory above the units
    listed: tuple[ObjectInfo, ...] = ()
    #: open multipart uploads under the units (``None``: the part lists them itself)
    uploads: tuple[MultipartUpload, ...] | None = None


@attrs.frozen
class Partitioning:
    """The blob shards and the repository partitions of one run."""

    shards: tuple[Part, ...]
    partitions: tuple[Part, ...]
    #: delimiter listings made to find them
    listings: int = 0


def _deal(units: Sequence[str], n: int) -> list[list[str]]:
    """``units`` dealt to ``n`` groups in turn, in name order."""
    groups: list[list[str]] = [[] for _ in range(n)]
    for i, unit in enumerate(sorted(units)):
        groups[i % n].append(unit)
    return groups


class _Lister:
    """Delimiter listings, bounded and counted."""

    def __init__(self, backend: SupportsListDir) -> None:
        self.backend = backend
        self.count = 0
        self._sem = asyncio.Semaphore(_PARALLEL)

    async def __call__(self, prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        async with self._sem:
            self.count += 1
            return await self.backend.list_dir(prefix)


async def _blob_units(lister: _Lister, shards: int) -> tuple[list[list[str]], list[ObjectInfo]]:
    """``blobs/<alg>/<xx>/`` per shard, and the objects found above them."""
    units: list[list[str]] = [[] for _ in range(shards)]
    algorithms, listed = await lister(BLOBS_PREFIX)
    below = await asyncio.gather(*(lister(a + "/") for a in algorithms))
    for dirs, objects in below:
        listed.extend(objects)
        for d in dirs:
            units[shard_of(d.rpartition("/")[2], shards)].append(d + "/")
    return units, listed


async def _repository_units(lister: _Lister, target: int) -> tuple[list[str], list[ObjectInfo]]:
    """Directories under ``repositories/`` each holding whole repositories, and stray objects."""
    names, listed = await lister(REPOSITORIES_PREFIX)
    units = list(names)
    for _ in range(MAX_DEPTH - 1):
        if len(units) >= target or not units:
            break
        looks = await asyncio.gather(*(lister(u + "/") for u in units))
        split: list[str] = []
        for unit, (dirs, objects) in zip(units, looks, strict=True):
            namespace = (
                dirs and not objects and not any(d.rpartition("/")[2].startswith("_") for d in dirs)
            )
            split.extend(dirs if namespace else [unit])
        if split == units:
            break
        units = split
    return [u + "/" for u in units], listed


def _route(
    uploads: Iterable[MultipartUpload], groups: list[list[str]]
) -> list[list[MultipartUpload]]:
    """Each upload to the group whose unit holds its key (the first group when none does)."""
    owner = sorted((u, i) for i, units in enumerate(groups) for u in units)
    keys = [u for u, _ in owner]
    out: list[list[MultipartUpload]] = [[] for _ in groups]
    for upload in uploads:
        at = bisect.bisect_right(keys, upload.key) - 1
        if at >= 0 and upload.key.startswith(keys[at]):
            out[owner[at][1]].append(upload)
        else:
            out[0].append(upload)
    return out


async def discover(
    backend: Backend, shards: int, partitions: int, *, blobs: bool = True
) -> Partitioning | None:
    """The parts of the store, by delimiter listings; ``None`` when the backend cannot.

    With ``blobs=False`` the shards list nothing (their blobs come from
    elsewhere: an S3 Inventory).
    """
    if not isinstance(backend, SupportsListDir):
        return None
    lister = _Lister(backend)
    if blobs:
        blob_units, blob_listed = await _blob_units(lister, shards)
    else:
        blob_units, blob_listed = [[] for _ in range(shards)], []
    repo_units, repo_listed = await _repository_units(lister, partitions * UNITS_PER_PARTITION)
    groups = _deal(repo_units, partitions)
    if isinstance(backend, SupportsMultipartUploads):
        routed: list[list[MultipartUpload]] = _route(
            await backend.list_multipart_uploads(REPOSITORIES_PREFIX), groups
        )
    else:
        routed = [[] for _ in groups]
    shard_parts = tuple(
        Part(tuple(u), tuple(blob_listed) if i == 0 else (), ()) for i, u in enumerate(blob_units)
    )
    partition_parts = tuple(
        Part(tuple(g), tuple(repo_listed) if i == 0 else (), tuple(routed[i]))
        for i, g in enumerate(groups)
    )
    return Partitioning(shard_parts, partition_parts, lister.count)


def _partition_of_path(path: str, tops: dict[str, int]) -> int:
    top = path[len(REPOSITORIES_PREFIX) :].partition("/")[0]
    return tops.get(top, 0) if top else 0


def split_listing(
    objects: Iterable[ObjectInfo],
    uploads: Iterable[MultipartUpload],
    shards: int,
    partitions: int,
) -> tuple[list[list[ObjectInfo]], list[list[ObjectInfo]], list[list[MultipartUpload]]]:
    """Cut a listing of the whole store into shards and partitions, by the same rules.

    Returns the objects of each shard, the objects of each partition, and
    the multipart uploads of each partition. A partition holds whole
    top-level names of ``repositories/`` (with every repository nested in them).
    """
    blob_objects: list[list[ObjectInfo]] = [[] for _ in range(shards)]
    repo_files: list[ObjectInfo] = []
    for info in objects:
        if info.path.startswith(BLOBS_PREFIX):
            parts = info.path[len(BLOBS_PREFIX) :].split("/")
            shard = shard_of(parts[1], shards) if len(parts) >= 3 else 0
            blob_objects[shard].append(info)
        else:
            repo_files.append(info)
    names: set[str] = set()
    for info in repo_files:
        rest = info.path[len(REPOSITORIES_PREFIX) :]
        top, slash, _ = rest.partition("/")
        if top and (slash or info.is_dir):
            names.add(top)
    tops = {name: i % partitions for i, name in enumerate(sorted(names))}
    repo_objects: list[list[ObjectInfo]] = [[] for _ in range(partitions)]
    for info in repo_files:
        rest = info.path[len(REPOSITORIES_PREFIX) :]
        top, slash, _ = rest.partition("/")
        owned = top and (slash or info.is_dir)
        repo_objects[tops[top] if owned else 0].append(info)
    routed: list[list[MultipartUpload]] = [[] for _ in range(partitions)]
    for upload in uploads:
        routed[_partition_of_path(upload.key, tops)].append(upload)
    return blob_objects, repo_objects, routed
