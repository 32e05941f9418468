"""What the tasks of a distributed run hand each other. Plain values: they travel between workers.

Results that stay on a worker and feed later tasks (a listing, a round of
reads, the marks of a partition) carry a ``token``, made afresh each time the
task runs. The driver records the token it saw; a later task that gets a
result with another token knows that result was lost with its worker and
computed again — from a second listing of a store that may have changed —
and stops the run (:class:`LostPartError`): one run plans from one listing.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import attrs

from .._errors import DistributedError
from .._manifest_table import ManifestTable

if TYPE_CHECKING:
    import datetime

    from ..inventory import Anomaly, Inventory
    from ..layout import Digest
    from ..manifests import Manifest
    from ..mark import Marks
    from ..options import Options, Removals
    from ..plan import Deletion, Kept
    from ._spec import StorageSpec

__all__ = [
    "Answer",
    "BlobMarks",
    "JoinState",
    "LostPartError",
    "PartPlan",
    "PartitionListing",
    "PartitionMarks",
    "Requests",
    "RunContext",
    "ShardListing",
    "ShardMessage",
    "ShardPlan",
    "ShardState",
    "Summary",
    "new_token",
]


def new_token() -> str:
    """A fresh token for a result that stays on its worker."""
    return uuid.uuid4().hex


class LostPartError(DistributedError):
    """A task got a part of the run that was computed again after its worker was lost."""


@attrs.frozen
class RunContext:
    """What every task of one run knows: no credential, nothing large."""

    run: str
    spec: StorageSpec
    shards: int
    partitions: int
    options: Options
    removals: Removals
    #: the time the grace period counts back from
    now: datetime.datetime
    #: when the run started listing
    started: datetime.datetime
    #: an S3 Inventory's snapshot supplies the blobs (see :mod:`registry_gc.s3inventory`)
    snapshot: bool = False


@attrs.frozen
class Summary:
    """The small part of a result the driver reads: its token and counts."""

    token: str
    counts: dict[str, int] = attrs.Factory(dict)
    names: tuple[str, ...] = ()


@attrs.frozen
class ShardListing:
    """The blobs of one shard (and what the listing found odd there)."""

    token: str
    index: int
    inventory: Inventory


@attrs.frozen
class PartitionListing:
    """The repositories of one partition, and what it asks of each shard first."""

    token: str
    index: int
    inventory: Inventory
    requests: tuple[Requests, ...] = ()


@attrs.frozen
class Requests:
    """What a partition asks of one shard before the first round."""

    #: manifests to read in the first round: revisions, tags, tag history
    wanted: frozenset[Digest] = frozenset()
    #: digests whose manifest (if any) and presence the partition needs back
    interest: frozenset[Digest] = frozenset()
    #: ``_layers`` links that may be manifests of registry 2.1.0 (read in round two)
    candidates: frozenset[Digest] = frozenset()


@attrs.frozen
class ShardMessage:
    """What a shard sends another after a round."""

    #: manifests named by what this round read, to read in the next
    wanted: frozenset[Digest] = frozenset()
    #: digest → the partitions that need it back
    interest: dict[Digest, frozenset[int]] = attrs.Factory(dict)
    #: blobs named as layers by the first round's manifests (not 2.1.0 revisions)
    layers: frozenset[Digest] = frozenset()


@attrs.frozen
class ShardState:
    """A shard after a round of reads: every manifest of its digests read so far."""

    token: str
    index: int
    round: int
    table: ManifestTable
    #: digest → the partitions that asked for it (directly or through a manifest)
    interest: dict[Digest, frozenset[int]]
    #: layer links to consider in round two
    candidates: frozenset[Digest]
    #: one message per shard
    outgoing: tuple[ShardMessage, ...]
    read: int = 0
    #: digests looked at again (a snapshot run), found or not
    looked: frozenset[Digest] = frozenset()


@attrs.frozen
class Answer:
    """What a shard tells a partition: manifests and blobs of the digests it asked about."""

    entries: ManifestTable = attrs.Factory(ManifestTable)
    #: digest → (size, mtime) of each that is in the store
    present: dict[Digest, tuple[int, float]] = attrs.Factory(dict)


@attrs.frozen
class PartitionMarks:
    """A partition, marked: its view of the blobs and manifests, and its marks."""

    token: str
    index: int
    inventory: Inventory
    table: ManifestTable
    marks: Marks
    #: subjects live in other partitions it has been told of
    elsewhere: frozenset[Digest]
    manifest_count: int
    #: live manifests already sent to the shards
    sent: frozenset[Digest]
    #: one set per shard: live manifests not sent before
    out_live: tuple[frozenset[Digest], ...]
    #: one set per shard: subjects of referrers here that are not live here
    out_waits: tuple[frozenset[Digest], ...]


@attrs.frozen
class JoinState:
    """A shard's part of the join of live manifests with the subjects referrers wait for."""

    token: str
    index: int
    live: frozenset[Digest]
    #: subject → the partitions waiting for it
    waits: dict[Digest, frozenset[int]]
    #: (subject, partition) pairs told already
    told: frozenset[tuple[Digest, int]]
    #: one set per partition: subjects newly found live
    notify: tuple[frozenset[Digest], ...]


@attrs.frozen
class BlobMarks:
    """What one partition found live (and kept for the grace) among one shard's blobs."""

    live: frozenset[Digest] = frozenset()
    grace: frozenset[Digest] = frozenset()


@attrs.frozen
class PartPlan:
    """A partition's plan: everything but blobs; or the problems that refuse the run."""

    problems: tuple[str, ...] = ()
    deletions: tuple[Deletion, ...] = ()
    kept: tuple[Kept, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    stale_empty_dirs: tuple[str, ...] = ()
    protected_dirs: frozenset[str] = frozenset()
    removed_repositories: frozenset[str] = frozenset()
    #: one per shard
    blob_marks: tuple[BlobMarks, ...] = ()


@attrs.frozen
class ShardPlan:
    """A shard's plan: its blobs."""

    deletions: tuple[Deletion, ...] = ()
    kept: tuple[Kept, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    stale_empty_dirs: tuple[str, ...] = ()
    protected_dirs: frozenset[str] = frozenset()
    total_blobs: int = 0
    total_bytes: int = 0
    live_blobs: int = 0
    live_bytes: int = 0
    manifests_read: int = 0
    #: candidates dropped by the fresh look (an S3 Inventory run): gone, or written since
    rechecked: int = 0


def manifest_refs(m: Manifest) -> set[Digest]:
    """Every digest a manifest names: blobs, index entries, digests of ambiguous bodies."""
    out = set(m.blobs)
    out.update(c.digest for c in m.children)
    out.update(m.extra)
    return out
