"""S3 Inventory as a listing source: the blobs of a registry from an inventory's snapshot.

Listing a billion keys takes a million requests and hours of client CPU; an
`S3 Inventory <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory.html>`_
report lists them for nothing, once a day or a week. A run given one
(``collect(root, inventory="s3://…/manifest.json")``, ``gc --inventory``)
takes ``blobs/`` from the report's data files (CSV, or Parquet with the
``inventory`` extra's pyarrow) and lists ``repositories/`` itself, fresh.

**Why nothing written after the snapshot can be deleted wrongly.** The
snapshot is used only as a list of *candidates*, never as evidence for a
deletion:

1. ``repositories/`` — tags, revisions, ``_layers`` links, uploads — is
   listed fresh and the manifests are read fresh, so what is live is decided
   on the store as it is now, exactly as without an inventory;
2. a blob the snapshot does not have cannot be planned for deletion (the
   blob deletions come only from the snapshot's blobs); when marking looks
   at a blob the snapshot lacks (a manifest names it, a link points at it),
   the store is asked again (one listing of the blob's directory), so a blob
   pushed after the snapshot counts as present, and a manifest among them is
   read, as a fresh listing would have found them;
3. every blob planned for deletion is checked against the store just before
   the plan is made (a listing of its ``blobs/<alg>/<xx>/`` directory, or of
   its own directory when that takes fewer requests): one gone since is
   dropped, one written since the grace cut-off (put again by a push) is kept
   for the grace, whatever the snapshot said;
4. an inventory older than ``max_age`` (default :data:`DEFAULT_MAX_AGE`), or
   of another bucket, or of an unknown format, is refused before anything is
   read: a stale snapshot only finds fewer candidates, but an old one is a
   sign that deliveries stopped.

So a deletion needs the fresh marks to call a blob garbage *and* the store,
looked at again, to hold it unchanged since before the grace cut-off: the
snapshot can only make a run delete less.

The report's manifest (``manifest.json``) names the data files
(``files[].key``, ``size``, ``MD5checksum``), their ``fileFormat`` and
``fileSchema``, the ``sourceBucket`` and ``creationTimestamp``; each data
file's checksum is verified before it is used. Rows of versioned buckets
count only when they are the latest version and not a delete marker.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import io
import json
import os
import posixpath
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_plus

import attrs

from ._errors import ConfigError, RefusedError, StorageError
from .distributed._partition import shard_of
from .distributed._snapshot import Columns
from .layout import BLOBS_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from .distributed._state import RunContext

__all__ = [
    "DEFAULT_MAX_AGE",
    "FORMATS",
    "InventoryFile",
    "InventorySnapshot",
    "check_snapshot",
    "load_snapshot",
    "load_snapshot_task",
    "read_snapshot_file",
    "registry_bucket",
]

#: An inventory older than this is refused (S3 delivers daily or weekly).
DEFAULT_MAX_AGE: Final = datetime.timedelta(days=3)
#: The data file formats read (ORC is not).
FORMATS: Final = ("CSV", "Parquet")
#: Storage options of registry-gc's own backends that fsspec does not take.
_BACKEND_OPTIONS: Final = ("concurrency", "multipart_copy_threshold", "multipart_copy_part_size")
_UTC = datetime.timezone.utc


@attrs.frozen
class InventoryFile:
    """One data file of an inventory report."""

    url: str
    size: int = 0
    md5: str = ""


@attrs.frozen
class InventorySnapshot:
    """An S3 Inventory report, as its ``manifest.json`` describes it."""

    manifest: str
    source_bucket: str
    file_format: str
    #: the CSV columns, in order (``fileSchema``)
    columns: tuple[str, ...]
    files: tuple[InventoryFile, ...]
    created: datetime.datetime

    def age(self, now: datetime.datetime) -> datetime.timedelta:
        """How old the snapshot is at ``now``."""
        return now - self.created


def _fsspec_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (options or {}).items() if k not in _BACKEND_OPTIONS}


def _read(url: str, options: Mapping[str, Any] | None) -> bytes:
    import fsspec  # noqa: PLC0415

    try:
        with fsspec.open(url, "rb", **_fsspec_options(options)) as f:
            data: bytes = f.read()
    except FileNotFoundError as e:
        raise StorageError(f"no S3 Inventory file at {url}", path=url) from e
    except OSError as e:
        raise StorageError(f"cannot read the S3 Inventory file {url}: {e}", path=url) from e
    return data


def _bucket_of(destination: str) -> str:
    """``arn:aws:s3:::bucket`` (or a plain name) → ``bucket``."""
    return destination.rsplit(":", 1)[-1] if destination.startswith("arn:") else destination


def _file_url(manifest: str, destination: str, key: str) -> str:
    """Where a data file is: in the destination bucket, or beside a local copy of the report."""
    scheme, sep, _ = manifest.partition("://")
    if sep and scheme not in ("file", "local"):
        return f"{scheme}://{_bucket_of(destination)}/{key}"
    path = manifest.split("://", 1)[1] if sep else manifest
    # A local copy of the destination bucket: the report's keys are from its top.
    top = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.exists(os.path.join(top, key)):
            return os.path.join(top, key)
        parent = os.path.dirname(top)
        if parent == top:
            return os.path.join(os.path.dirname(os.path.abspath(path)), posixpath.basename(key))
        top = parent


def _created(doc: Mapping[str, Any], url: str) -> datetime.datetime:
    try:
        millis = int(doc["creationTimestamp"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(
            f"{url}: no creationTimestamp (milliseconds): not an S3 Inventory manifest"
        ) from e
    return datetime.datetime.fromtimestamp(millis / 1000, _UTC)


def load_snapshot(url: str, storage_options: Mapping[str, Any] | None = None) -> InventorySnapshot:
    """Read an S3 Inventory ``manifest.json`` (``s3://…`` or a local copy of the report)."""
    try:
        doc = json.loads(_read(url, storage_options))
    except ValueError as e:
        raise ConfigError(f"{url} is not JSON: not an S3 Inventory manifest") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise ConfigError(f"{url} has no files[]: not an S3 Inventory manifest")
    file_format = str(doc.get("fileFormat", ""))
    if file_format not in FORMATS:
        msg = (
            f"{url}: fileFormat {file_format!r} is not one registry-gc reads "
            f"({', '.join(FORMATS)}); configure the inventory for CSV or Parquet"
        )
        raise ConfigError(msg)
    destination = str(doc.get("destinationBucket", ""))
    files = tuple(
        InventoryFile(
            _file_url(url, destination, str(f["key"])),
            int(f.get("size") or 0),
            str(f.get("MD5checksum") or ""),
        )
        for f in doc["files"]
    )
    columns = tuple(c.strip() for c in str(doc.get("fileSchema", "")).split(","))
    if file_format == "CSV" and "Key" not in columns:
        raise ConfigError(f"{url}: the fileSchema has no Key column")
    return InventorySnapshot(
        url, str(doc.get("sourceBucket", "")), file_format, columns, files, _created(doc, url)
    )


def check_snapshot(
    snapshot: InventorySnapshot,
    *,
    bucket: str,
    now: datetime.datetime,
    max_age: datetime.timedelta = DEFAULT_MAX_AGE,
) -> None:
    """Refuse a snapshot of another bucket, or older than ``max_age`` (:class:`RefusedError`)."""
    problems: list[str] = []
    if snapshot.source_bucket != bucket:
        problems.append(
            f"{snapshot.manifest} is an inventory of bucket {snapshot.source_bucket!r}, "
            f"not of the registry's bucket {bucket!r}"
        )
    age = snapshot.age(now)
    if age > max_age:
        problems.append(
            f"{snapshot.manifest} was made {snapshot.created:%Y-%m-%d %H:%M} UTC, "
            f"{age.total_seconds() / 3600:.1f} hours ago: older than the limit "
            f"({max_age.total_seconds() / 3600:.1f} hours). Use the latest report, or raise "
            "the limit (inventory_max_age, --inventory-max-age) if deliveries are weekly"
        )
    elif age < -datetime.timedelta(hours=1):
        problems.append(
            f"{snapshot.manifest} was made {snapshot.created:%Y-%m-%d %H:%M} UTC, in the future: "
            "check this machine's clock"
        )
    if problems:
        msg = f"refusing the S3 Inventory {snapshot.manifest}; nothing was deleted"
        raise RefusedError(msg, problems, path=snapshot.manifest)


def _csv_rows(data: bytes, columns: tuple[str, ...]) -> Iterator[tuple[str, int, float]]:
    """(key, size, mtime) of each current object in a CSV data file (gzip'ed or not)."""
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    where = {name: i for i, name in enumerate(columns)}
    key_at, size_at, time_at = where["Key"], where.get("Size"), where.get("LastModifiedDate")
    latest_at, marker_at = where.get("IsLatest"), where.get("IsDeleteMarker")
    for row in csv.reader(io.StringIO(text.decode("utf-8"))):
        if len(row) < len(columns):
            continue
        if latest_at is not None and row[latest_at].lower() == "false":
            continue
        if marker_at is not None and row[marker_at].lower() == "true":
            continue
        size = int(row[size_at]) if size_at is not None and row[size_at] else 0
        stamp = row[time_at] if time_at is not None else ""
        mtime = _timestamp(stamp)
        yield unquote_plus(row[key_at]), size, mtime


def _timestamp(text: str) -> float:
    """An inventory's ``LastModifiedDate``; unknown counts as now (never old enough)."""
    if not text:
        return datetime.datetime.now(_UTC).timestamp()
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.timestamp()


def _parquet_rows(data: bytes) -> Iterator[tuple[str, int, float]]:
    """(key, size, mtime) of each current object in a Parquet data file."""
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError as e:
        msg = "reading a Parquet S3 Inventory needs pyarrow: pip install 'registry-gc[inventory]'"
        raise ConfigError(msg) from e
    table = pq.read_table(io.BytesIO(data))
    names = set(table.column_names)
    n = table.num_rows
    keys = table.column("key").to_pylist()
    sizes = table.column("size").to_pylist() if "size" in names else [0] * n
    times = (
        table.column("last_modified_date").to_pylist()
        if "last_modified_date" in names
        else [None] * n
    )
    latest = table.column("is_latest").to_pylist() if "is_latest" in names else [True] * n
    markers = (
        table.column("is_delete_marker").to_pylist() if "is_delete_marker" in names else [False] * n
    )
    now = datetime.datetime.now(_UTC).timestamp()
    for key, size, when, is_latest, marker in zip(keys, sizes, times, latest, markers, strict=True):
        if is_latest is False or marker is True:
            continue
        if isinstance(when, datetime.datetime):
            mtime = (when if when.tzinfo else when.replace(tzinfo=_UTC)).timestamp()
        else:
            mtime = now
        yield str(key), int(size or 0), mtime


def _registry_prefix(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, the key prefix of ``blobs/``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a"):
        raise ConfigError(f"an S3 Inventory lists an S3 bucket; {url} is not s3://bucket/prefix")
    bucket, _, root = rest.partition("/")
    root = root.strip("/")
    return bucket, (f"{root}/" if root else "") + BLOBS_PREFIX


def read_snapshot_file(
    ctx: RunContext, snapshot: InventorySnapshot, index: int
) -> tuple[Columns, ...]:
    """Data file ``index`` of the report: the registry's blob objects in it, by shard.

    A task of a distributed run; the file's MD5 checksum is verified first.
    """
    meta = snapshot.files[index]
    data = _read(meta.url, ctx.spec.options)
    if meta.md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != meta.md5.lower():
        msg = f"{meta.url} does not match its MD5checksum in {snapshot.manifest}: a damaged copy"
        raise StorageError(msg, path=meta.url)
    _, prefix = _registry_prefix(ctx.spec.url)
    base = prefix[: -len(BLOBS_PREFIX)]
    rows = (
        _parquet_rows(data)
        if snapshot.file_format == "Parquet"
        else _csv_rows(data, snapshot.columns)
    )
    out = [Columns() for _ in range(ctx.shards)]
    for key, size, mtime in rows:
        if not key.startswith(prefix) or key.endswith("/"):
            continue
        path = key[len(base) :]
        parts = path[len(BLOBS_PREFIX) :].split("/")
        out[shard_of(parts[1], ctx.shards) if len(parts) >= 3 else 0].append(path, size, mtime)
    return tuple(out)


def registry_bucket(url: str) -> str:
    """The bucket of an ``s3://`` registry root (an S3 Inventory is of one bucket)."""
    return _registry_prefix(url)[0]


def load_snapshot_task(ctx: RunContext, url: str) -> InventorySnapshot:
    """:func:`load_snapshot` as a task of a distributed run (the driver holds no credentials)."""
    return load_snapshot(url, ctx.spec.options)
