"""A whole collector run on S3 costs requests at the floor, and S3's per-key errors are honoured.

For a registry of K keys, T tags and M manifests to read, with D keys to
delete, a run costs about ⌈K/1000⌉ ListObjectsV2 (plus the prefix fan-out),
exactly T + M GetObject (no HeadObject ever), one ListMultipartUploads, and
⌈D/1000⌉ DeleteObjects per deletion phase.
"""

from __future__ import annotations

import asyncio
import datetime
import math
from typing import TYPE_CHECKING

import pytest
from registry_gc import collect
from registry_gc.backends import S3Backend
from registry_gc.layout import BLOBS_PREFIX, REPOSITORIES_PREFIX
from registry_gc.plan import PHASES

from tests.rigs.builder import RegistryBuilder
from tests.rigs.scenarios import many_repositories, mixed_registry

if TYPE_CHECKING:
    from tests.rigs.s3 import MotoS3, SeaweedS3

pytestmark = pytest.mark.s3

NO_GRACE = datetime.timedelta(0)


def write(server: SeaweedS3 | MotoS3, bucket: str, prefix: str, b: RegistryBuilder) -> None:
    """Put every file of the builder under ``bucket/prefix``."""
    b.write_keys(server.putter(bucket), prefix)


def test_a_run_costs_the_request_floor(s3_server: SeaweedS3, s3_bucket: str) -> None:
    """List pages ≈ ⌈K/1000⌉ + fan-out, GETs = T + M exactly, no HEAD, ⌈D/1000⌉ deletes a phase."""
    b = many_repositories()
    write(s3_server, s3_bucket, "reg", b)
    keys = len(b.files)
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    backend = S3Backend.from_url(f"s3://{s3_bucket}/reg", s3_server.storage_options())

    report = collect(backend, delete_untagged=True, grace=NO_GRACE, uploads_older_than=NO_GRACE)

    counts = backend.request_counts
    assert report.ok
    assert report.deleted_count > 0
    assert counts["HeadObject"] == 0
    assert counts["GetObject"] == tags + report.manifests_read
    first_chars = {
        p[len(REPOSITORIES_PREFIX)] for p in b.files if p.startswith(REPOSITORIES_PREFIX)
    }
    # One stream per blob stem (16) and per first character of repository names,
    # each ending in a partial page, plus one delimiter listing per level walked.
    streams = 16 + len(first_chars)
    assert counts["ListObjectsV2"] <= math.ceil(keys / 1000) + streams + 6, counts
    assert counts["ListMultipartUploads"] == 1
    deleted = report.deleted_count
    assert counts["DeleteObjects"] <= math.ceil(deleted / 1000) + len(PHASES) - 1, counts
    # The store really holds what the report says: the deleted keys are gone.
    left = s3_server.list_keys(s3_bucket, "reg/")
    assert len(left) == keys - deleted
    for d in report.plan.deletions:
        for p in d.paths:
            assert f"reg/{p}" not in left


def test_a_second_run_reads_and_deletes_nothing_more_than_it_must(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    """After a sweep, a re-run sends no DeleteObjects and GETs only the tags and manifests left."""
    b = many_repositories()
    write(s3_server, s3_bucket, "", b)
    opts = s3_server.storage_options()
    collect(f"s3://{s3_bucket}", storage_options=opts, delete_untagged=True, grace=NO_GRACE)
    backend = S3Backend.from_url(f"s3://{s3_bucket}", opts)
    report = collect(backend, delete_untagged=True, grace=NO_GRACE)
    assert report.deleted_count == 0
    assert backend.request_counts["DeleteObjects"] == 0
    tags = sum(1 for p in b.files if p.endswith("/current/link"))
    assert backend.request_counts["GetObject"] == tags + report.manifests_read


def test_per_key_delete_errors_fail_the_run_and_keep_the_registry_consistent(
    moto_server: MotoS3, moto_bucket: str
) -> None:
    """Blobs S3 refuses to delete are reported by key; the exit is non-zero; nothing live goes."""
    b = mixed_registry()
    write(moto_server, moto_bucket, "reg", b)
    moto_server.deny(moto_bucket, f"reg/{BLOBS_PREFIX}")
    before = moto_server.list_keys(moto_bucket, "reg/")
    backend = S3Backend.from_url(f"s3://{moto_bucket}/reg", moto_server.storage_options())

    report = collect(backend, delete_untagged=True, grace=NO_GRACE, uploads_older_than=NO_GRACE)

    assert not report.ok
    assert report.exit_code == 1
    assert report.result is not None
    failed = {f.path for f in report.result.failures}
    planned_blobs = {
        p for d in report.plan.deletions if d.category.value == "blob" for p in d.paths
    }
    assert failed == planned_blobs
    assert all("AccessDenied" in f.error for f in report.result.failures)
    after = moto_server.list_keys(moto_bucket, "reg/")
    # Every blob is still there; links were deleted only where no live manifest needs them,
    # and uploads (a later phase) were skipped.
    assert {k for k in before if "/blobs/" in k} == {k for k in after if "/blobs/" in k}
    assert any("/_uploads/" in k for k in after)
    # A clean re-run, once the policy is lifted, converges.
    moto_server.client().delete_bucket_policy(Bucket=moto_bucket)
    second = collect(
        f"s3://{moto_bucket}/reg",
        storage_options=moto_server.storage_options(),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
    )
    assert second.ok
    third = collect(
        f"s3://{moto_bucket}/reg",
        storage_options=moto_server.storage_options(),
        delete_untagged=True,
        grace=NO_GRACE,
        uploads_older_than=NO_GRACE,
        dry_run=True,
    )
    assert third.deleted_count == 0


def test_repositories_under_one_namespace_are_listed_completely_and_in_parallel(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    """Every repository under library/: each namespace split by its names, nothing lost twice."""
    b = RegistryBuilder(seed=3)
    for i in range(12):
        b.image(f"library/{'abcdef'[i % 6]}pp{i}", "v1", layers=1)
    b.put(REPOSITORIES_PREFIX + "stray-file", b"x")
    write(s3_server, s3_bucket, "", b)
    backend = S3Backend.from_url(f"s3://{s3_bucket}", s3_server.storage_options())

    async def listing() -> list[str]:
        try:
            return [i.path async for i in backend.list(REPOSITORIES_PREFIX)]
        finally:
            await backend.aclose()

    listed = asyncio.run(listing())
    expected = [p for p in b.files if p.startswith(REPOSITORIES_PREFIX)]
    assert sorted(listed) == sorted(expected)
    # repositories/ (delimiter), library/ (delimiter), then one stream per stem a…f.
    assert backend.request_counts["ListObjectsV2"] >= 2 + 6
