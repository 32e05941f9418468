"""Tests of registry_gc.s3inventory: S3 Inventory reports as the listing of blobs.

The reports are written here, as S3 writes them (``manifest.json`` beside gzip'ed CSV or
Parquet data files, each with its MD5), from a listing of a SeaweedFS bucket; the runs read
a local copy of the report. The safety argument under test: a snapshot can only make a run
delete less — what is written after it is never a wrong deletion, a stale one is refused.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from registry_gc import ConfigError, Options, RefusedError, StorageError, check, collect
from registry_gc.layout import BlobData
from registry_gc.s3inventory import (
    DEFAULT_MAX_AGE,
    InventorySnapshot,
    check_snapshot,
    load_snapshot,
    registry_bucket,
)

from tests.rigs import dask as rigs
from tests.rigs.builder import RegistryBuilder
from tests.rigs.scenarios import mixed_registry

if TYPE_CHECKING:
    from pathlib import Path

    from tests.rigs.s3 import SeaweedS3

UTC = datetime.timezone.utc
ZERO = datetime.timedelta(0)
DAY = datetime.timedelta(days=1)
CSV_SCHEMA = "Bucket, Key, Size, LastModifiedDate, IsLatest, IsDeleteMarker"


def _listing(s3: SeaweedS3, bucket: str) -> list[tuple[str, int, datetime.datetime]]:
    """(key, size, last modified) of every object of ``bucket``, as S3 Inventory lists them."""
    out = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.extend((o["Key"], int(o["Size"]), o["LastModified"]) for o in page.get("Contents", []))
    return out


def _csv(bucket: str, rows: list[tuple[str, int, datetime.datetime]]) -> bytes:
    lines = [
        f'"{bucket}","{key}","{size}","{when.strftime("%Y-%m-%dT%H:%M:%S.000Z")}","true","false"'
        for key, size, when in rows
    ]
    # A version that is not the latest, and a delete marker: neither is an object now.
    if rows:
        key, size, when = rows[0]
        lines.append(
            f'"{bucket}","{key}x","{size}","{when:%Y-%m-%dT%H:%M:%S.000Z}","false","false"'
        )
        lines.append(f'"{bucket}","{key}y","0","{when:%Y-%m-%dT%H:%M:%S.000Z}","true","true"')
    return gzip.compress(("\n".join(lines) + "\n").encode())


def _parquet(bucket: str, rows: list[tuple[str, int, datetime.datetime]]) -> bytes:
    table = pa.table(
        {
            "bucket": [bucket] * len(rows),
            "key": [k for k, _, _ in rows],
            "size": [s for _, s, _ in rows],
            "last_modified_date": [w for _, _, w in rows],
            "is_latest": [True] * len(rows),
            "is_delete_marker": [False] * len(rows),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_report(
    where: Path,
    bucket: str,
    rows: list[tuple[str, int, datetime.datetime]],
    *,
    created: datetime.datetime,
    file_format: str = "CSV",
    files: int = 2,
    source_bucket: str | None = None,
) -> str:
    """An S3 Inventory report of ``rows`` in ``where`` (data files and manifest.json); its URL."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "data").mkdir(exist_ok=True)
    entries = []
    for i in range(files):
        part = rows[i::files]
        if file_format == "CSV":
            data, name = _csv(bucket, part), f"data/part-{i}.csv.gz"
        else:
            data, name = _parquet(bucket, part), f"data/part-{i}.parquet"
        (where / name).write_bytes(data)
        entries.append(
            {"key": name, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}
        )
    manifest = {
        "sourceBucket": source_bucket or bucket,
        "destinationBucket": "arn:aws:s3:::inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created.timestamp() * 1000)),
        "fileFormat": file_format,
        "fileSchema": CSV_SCHEMA if file_format == "CSV" else "message s3.inventory {}",
        "files": entries,
    }
    (where / "manifest.json").write_text(json.dumps(manifest))
    return str(where / "manifest.json")


def _snapshot(**kw: Any) -> InventorySnapshot:
    return InventorySnapshot(
        manifest=kw.get("manifest", "s3://inv/manifest.json"),
        source_bucket=kw.get("source_bucket", "reg"),
        file_format="CSV",
        columns=("Bucket", "Key"),
        files=(),
        created=kw["created"],
    )


# -- the report's manifest ---------------------------------------------------------------------


def test_a_report_is_read_from_its_manifest(tmp_path: Path) -> None:
    """manifest.json: format, schema, bucket, time, and each data file beside the local copy."""
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    url = write_report(tmp_path / "inv", "reg", [("k", 1, created)], created=created)
    snap = load_snapshot(url)
    assert snap.source_bucket == "reg"
    assert snap.file_format == "CSV"
    assert snap.columns[:2] == ("Bucket", "Key")
    assert snap.created == created
    assert [f.url for f in snap.files] == [
        str(tmp_path / "inv" / "data" / f"part-{i}.csv.gz") for i in range(2)
    ]
    assert all(len(f.md5) == 32 for f in snap.files)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fileFormat": "ORC"}, "fileFormat 'ORC' is not one registry-gc reads"),
        ({"creationTimestamp": None}, "no creationTimestamp"),
        ({"fileSchema": "Bucket, Size"}, "no Key column"),
        ({"files": None}, "has no files"),
    ],
)
def test_a_manifest_registry_gc_cannot_read_is_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    """Another format, no creation time, no Key column, no files: ConfigError naming the file."""
    url = write_report(tmp_path, "reg", [], created=datetime.datetime.now(UTC))
    doc = json.loads((tmp_path / "manifest.json").read_text())
    doc.update(change)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message) as e:
        load_snapshot(url)
    assert url in str(e.value)


def test_not_json_is_refused(tmp_path: Path) -> None:
    """A manifest that is not JSON at all: ConfigError."""
    (tmp_path / "manifest.json").write_text("<xml/>")
    with pytest.raises(ConfigError, match="is not JSON"):
        load_snapshot(str(tmp_path / "manifest.json"))


def test_stale_future_and_foreign_snapshots_are_refused() -> None:
    """Older than the limit, from the future, or of another bucket: RefusedError, each named."""
    now = datetime.datetime(2026, 6, 1, tzinfo=UTC)
    check_snapshot(_snapshot(created=now - DEFAULT_MAX_AGE + DAY), bucket="reg", now=now)
    with pytest.raises(RefusedError, match="nothing was deleted") as stale:
        check_snapshot(_snapshot(created=now - DEFAULT_MAX_AGE - DAY), bucket="reg", now=now)
    assert "older than the limit (72.0 hours)" in stale.value.problems[0]
    check_snapshot(
        _snapshot(created=now - 5 * DAY), bucket="reg", now=now, max_age=datetime.timedelta(days=7)
    )
    with pytest.raises(RefusedError) as future:
        check_snapshot(_snapshot(created=now + DAY), bucket="reg", now=now)
    assert "in the future" in future.value.problems[0]
    with pytest.raises(RefusedError) as foreign:
        check_snapshot(_snapshot(created=now, source_bucket="other"), bucket="reg", now=now)
    assert "of bucket 'other', not of the registry's bucket 'reg'" in foreign.value.problems[0]


def test_only_an_s3_root_takes_an_inventory(tmp_path: Path) -> None:
    """An inventory lists a bucket: a local root with one is a ConfigError."""
    assert registry_bucket("s3://bucket/some/root") == "bucket"
    with pytest.raises(ConfigError, match="is not s3://bucket/prefix"):
        collect(str(tmp_path), inventory=str(tmp_path / "manifest.json"))


# -- runs on SeaweedFS ---------------------------------------------------------------------------


def _store(s3: SeaweedS3, bucket: str, b: RegistryBuilder) -> str:
    b.write_keys(s3.putter(bucket), "reg")
    return f"s3://{bucket}/reg"


def _deleted(report: Any) -> set[str]:
    return {p for d in report.plan.deletions for p in d.paths}


@pytest.mark.s3
@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
def test_an_inventory_run_plans_what_a_listing_plans(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path, file_format: str
) -> None:
    """A fresh report (CSV or Parquet): exactly the plan of a run that lists everything."""
    url = _store(s3_server, s3_bucket, mixed_registry())
    now = datetime.datetime.now(UTC)
    report = write_report(
        tmp_path, s3_bucket, _listing(s3_server, s3_bucket), created=now, file_format=file_format
    )
    options = Options(delete_untagged=True, grace=ZERO)
    opts = s3_server.storage_options()
    single = collect(url, options, dry_run=True, now=now, storage_options=opts)
    snap = collect(url, options, dry_run=True, now=now, storage_options=opts, inventory=report)
    assert rigs.plan_key(snap.plan) == rigs.plan_key(single.plan)
    assert any(d.category.value == "blob" for d in snap.plan.deletions)


@pytest.mark.s3
def test_a_stale_or_foreign_inventory_is_refused_before_anything_is_deleted(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """Four days old (limit three), or of another bucket: exit-3 refusal, every key still there."""
    url = _store(s3_server, s3_bucket, mixed_registry())
    now = datetime.datetime.now(UTC)
    rows = _listing(s3_server, s3_bucket)
    before = s3_server.list_keys(s3_bucket)
    opts = s3_server.storage_options()
    stale = write_report(tmp_path / "stale", s3_bucket, rows, created=now - 4 * DAY)
    with pytest.raises(RefusedError, match="refusing the S3 Inventory") as e:
        collect(url, grace=ZERO, delete_untagged=True, storage_options=opts, inventory=stale)
    assert "older than the limit" in e.value.problems[0]
    foreign = write_report(tmp_path / "foreign", s3_bucket, rows, created=now, source_bucket="x")
    with pytest.raises(RefusedError, match="refusing the S3 Inventory"):
        collect(url, grace=ZERO, delete_untagged=True, storage_options=opts, inventory=foreign)
    assert s3_server.list_keys(s3_bucket) == before
    # Deliveries once a week: the limit raised, the same report is used.
    weekly = collect(
        url,
        grace=ZERO,
        delete_untagged=True,
        dry_run=True,
        storage_options=opts,
        inventory=stale,
        inventory_max_age=datetime.timedelta(days=7),
    )
    assert weekly.deleted_count > 0


@pytest.mark.s3
def test_a_data_file_that_fails_its_checksum_stops_the_run(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """A data file changed after its manifest was written: the run stops, nothing deleted."""
    url = _store(s3_server, s3_bucket, mixed_registry())
    report = write_report(
        tmp_path, s3_bucket, _listing(s3_server, s3_bucket), created=datetime.datetime.now(UTC)
    )
    part = tmp_path / "data" / "part-1.csv.gz"
    part.write_bytes(gzip.compress(b'"x","y","1","2026-01-01T00:00:00.000Z","true","false"\n'))
    before = s3_server.list_keys(s3_bucket)
    with pytest.raises(StorageError, match="does not match its MD5checksum"):
        collect(
            url,
            grace=ZERO,
            delete_untagged=True,
            storage_options=s3_server.storage_options(),
            inventory=report,
        )
    assert s3_server.list_keys(s3_bucket) == before


@pytest.mark.s3
def test_writes_after_the_snapshot_never_become_wrong_deletions(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """After the snapshot: a push, a re-tag of garbage, a blob gone, an orphan. None goes wrong.

    The report claims every object is ten days old. The push's blobs (not in the
    snapshot) stay; the untagged image tagged again stays whole; the blob deleted since
    is dropped without a failure; the orphan written since is not a candidate. Every
    deletion is one a fresh listing plans too; every tag can still be pulled.
    """
    b = mixed_registry()
    untagged = b.image("old/again", "v1", layers=2)
    b.untag("old/again", "v1")
    lonely = b.blob(b"a stray blob nothing links")
    url = _store(s3_server, s3_bucket, b)
    old = datetime.datetime.now(UTC) - 10 * DAY
    rows = [(k, s, old) for k, s, _ in _listing(s3_server, s3_bucket)]
    report = write_report(tmp_path, s3_bucket, rows, created=datetime.datetime.now(UTC))
    opts = s3_server.storage_options()
    fs = s3_server.filesystem()
    # -- after the snapshot --
    after = RegistryBuilder(seed=77)
    pushed = after.image("new/app", "v1", layers=2)
    after.tag("old/again", "v1", untagged)
    orphan = after.blob(b"an orphan written after the snapshot")
    after.write_fs(fs, f"{s3_bucket}/reg")
    fs.rm(f"{s3_bucket}/reg/" + BlobData(lonely).path)
    options = Options(delete_untagged=True, grace=ZERO)
    fresh = collect(url, options, dry_run=True, storage_options=opts)
    run = collect(url, options, storage_options=opts, inventory=report)
    assert run.ok
    assert run.result.failures == []
    assert _deleted(run) <= _deleted(fresh)
    assert _deleted(fresh) - _deleted(run) == {BlobData(orphan).path}
    keys = {k.split("/", 1)[1] for k in s3_server.list_keys(s3_bucket)}
    needed = {p for p in after.files if p != BlobData(orphan).path}
    assert needed <= keys
    assert {BlobData(d).path for d in b.contents[untagged]["blobs"]} <= keys
    assert BlobData(pushed).path in keys
    assert BlobData(lonely).path not in keys
    checked = check(url, storage_options=opts, verify_blobs=True)
    assert checked.ok, checked.problems


@pytest.mark.s3
def test_the_store_s_time_not_the_snapshot_s_decides_the_grace(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    """The report calls every blob ten days old; the store has them new: grace keeps them all."""
    url = _store(s3_server, s3_bucket, mixed_registry())
    old = datetime.datetime.now(UTC) - 10 * DAY
    rows = [(k, s, old) for k, s, _ in _listing(s3_server, s3_bucket)]
    report = write_report(tmp_path, s3_bucket, rows, created=datetime.datetime.now(UTC))
    opts = s3_server.storage_options()
    options = Options(delete_untagged=True, grace=datetime.timedelta(hours=1))
    now = datetime.datetime.now(UTC)
    single = collect(url, options, dry_run=True, now=now, storage_options=opts)
    run = collect(url, options, dry_run=True, now=now, storage_options=opts, inventory=report)
    assert _deleted(run) == _deleted(single)
    assert not [d for d in run.plan.deletions if d.category.value == "blob"]
    rechecked = {k.path for k in run.plan.kept if k.category.value == "blob" and k.age < 3600}
    assert rechecked, "candidates the snapshot called old were found young in the store"
    assert {k.path for k in run.plan.kept} == {k.path for k in single.plan.kept}


@pytest.mark.s3
def test_a_cluster_reads_the_inventory_with_the_workers_credentials(
    dask_client: Any, worker_s3: SeaweedS3, tmp_path: Path
) -> None:
    """Two worker processes, the report and the store read with their own credentials only."""
    bucket = worker_s3.make_bucket()
    try:
        url = _store(worker_s3, bucket, mixed_registry(seed=3))
        now = datetime.datetime.now(UTC)
        report = write_report(tmp_path, bucket, _listing(worker_s3, bucket), created=now, files=3)
        options = Options(delete_untagged=True, grace=ZERO)
        single = collect(
            url, options, dry_run=True, now=now, storage_options=worker_s3.storage_options()
        )
        where = {
            "endpoint_url": worker_s3.endpoint_url,
            "client_kwargs": {"region_name": "us-east-1"},
        }
        dist = collect(
            url,
            options,
            dry_run=True,
            now=now,
            storage_options=where,
            client=dask_client,
            inventory=report,
            partitions=3,
        )
        assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    finally:
        worker_s3.drop_bucket(bucket)
