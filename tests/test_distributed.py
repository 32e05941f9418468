"""Tests of registry_gc.distributed: the same plan as one process, on a cluster of two workers.

The cluster is the session's ``dask_client`` (a LocalCluster of two worker processes); the
in-process executor runs the same tasks in this process, for the quick checks. Longer
property runs: ``nox -s distributed`` (``REGISTRY_GC_DIST_EXAMPLES``).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import (
    ConfigError,
    DistributedError,
    Options,
    RefusedError,
    Removals,
    collect,
    parse_policy,
)
from registry_gc.backends import LocalBackend
from registry_gc.distributed import (
    InProcessExecutor,
    StorageSpec,
    collect_distributed,
    credential_options,
    shard_of,
    without_credentials,
)
from registry_gc.distributed._partition import discover, split_listing
from registry_gc.layout import REPOSITORIES_PREFIX, Repository, Tag

from tests.rigs import dask as rigs
from tests.rigs.builder import RegistryBuilder
from tests.rigs.scenarios import mixed_registry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from registry_gc import Report

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

R = REPOSITORIES_PREFIX
ZERO = datetime.timedelta(0)
UTC = datetime.timezone.utc
EXAMPLES = int(os.environ.get("REGISTRY_GC_DIST_EXAMPLES", "10"))


def _write(b: RegistryBuilder, root: Path, now: datetime.datetime) -> str:
    b.write_local(root, now=now.timestamp())
    return str(root)


def _both(
    b: RegistryBuilder,
    tmp_path: Path,
    run: Callable[[str, datetime.datetime], Report],
    options: Options,
    *,
    removals: Removals | None = None,
    dry_run: bool = True,
) -> tuple[Report, Report, str, str]:
    """The same store twice: one run in this process, one by ``run``; both reports, both roots."""
    now = datetime.datetime.now(UTC)
    one = _write(b, tmp_path / "one", now)
    two = _write(b, tmp_path / "two", now)
    single = collect(one, options, dry_run=dry_run, removals=removals, now=now)
    other = run(two, now)
    return single, other, one, two


# -- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 16, 256])
def test_shards_are_contiguous_ranges_of_the_hex_prefix(shards: int) -> None:
    """Every blobs/<alg>/<xx> prefix has one shard; shards are contiguous, none empty."""
    owners = [shard_of(f"{i:02x}", shards) for i in range(256)]
    assert owners == sorted(owners)
    assert set(owners) == set(range(shards))
    assert shard_of("sha256:" + "ab" * 32, shards) == shard_of("ab", shards)
    assert shard_of("zz", shards) == 0


def test_a_spec_refuses_credentials_and_names_them_not_their_values() -> None:
    """Credentials in the options refuse the run, at any depth; names shown, values never."""
    with pytest.raises(ConfigError, match=r"secret, client_kwargs\.aws_session_token") as e:
        StorageSpec(
            "s3://bucket",
            {"secret": "hunter2", "client_kwargs": {"aws_session_token": "tok3n"}},
        )
    assert "hunter2" not in str(e.value)
    assert "tok3n" not in str(e.value)
    ok = StorageSpec("s3://b", {"endpoint_url": "http://x", "client_kwargs": {"region_name": "r"}})
    assert ok.options["client_kwargs"] == {"region_name": "r"}
    assert StorageSpec("s3://b", {"key": "k"}, local=True).options == {"key": "k"}


def test_credential_options_and_without_them() -> None:
    """credential_options names key/secret/token/account_key…; without_credentials drops them."""
    options = {
        "key": "a",
        "secret": "b",
        "endpoint_url": "http://e",
        "account_key": "c",
        "connection_string": "d",
        "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}},
        "client_kwargs": {"aws_secret_access_key": "e", "region_name": "r"},
    }
    assert credential_options(options) == [
        "key",
        "secret",
        "account_key",
        "connection_string",
        "client_kwargs.aws_secret_access_key",
    ]
    assert without_credentials(options) == {
        "endpoint_url": "http://e",
        "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}},
        "client_kwargs": {"region_name": "r"},
    }


def test_discovery_splits_namespaces_but_keeps_repositories_whole(tmp_path: Path) -> None:
    """lib/ (a namespace) splits into its repositories; a/ (a repository, with a/b) is one unit."""
    b = RegistryBuilder()
    for name in ("lib/x", "lib/y", "lib/z/w", "a", "a/b"):
        b.image(name, "v1")
    b.put(f"{R}stray", b"x")
    b.write_local(tmp_path)
    parts = _run(discover(LocalBackend(tmp_path), 4, 3))
    assert parts is not None
    units = sorted(u for p in parts.partitions for u in p.units)
    assert units == [f"{R}a/", f"{R}lib/x/", f"{R}lib/y/", f"{R}lib/z/w/"]
    assert [o.path for p in parts.partitions for o in p.listed] == [f"{R}stray"]
    blob_units = [u for s in parts.shards for u in s.units]
    assert blob_units
    assert all(
        shard_of(u.rstrip("/").rpartition("/")[2], 4) == i
        for i, s in enumerate(parts.shards)
        for u in s.units
    )


def test_a_listing_is_cut_with_nested_repositories_together(tmp_path: Path) -> None:
    """split_listing: every object of a/… (a and a/b) in one partition; blobs by prefix."""
    b = RegistryBuilder()
    for name in ("a", "a/b", "c", "d"):
        b.image(name, "v1")
    b.write_local(tmp_path)
    listed = _run(_all(LocalBackend(tmp_path)))
    shards, partitions, _ = split_listing(listed, [], 4, 3)
    assert sum(map(len, shards)) + sum(map(len, partitions)) == len(listed)
    owner = {}
    for i, part in enumerate(partitions):
        for info in part:
            owner.setdefault(info.path[len(R) :].split("/")[0], set()).add(i)
    assert all(len(v) == 1 for v in owner.values())
    for i, shard in enumerate(shards):
        assert all(shard_of(o.path.split("/")[5], 4) == i for o in shard)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _all(backend: LocalBackend) -> list[Any]:
    out = [i async for i in backend.list("docker/registry/v2/blobs/")]
    out += [i async for i in backend.list(R)]
    return out


# -- the same plan, in this process ------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_in_process_tasks_plan_what_one_process_plans(
    tmp_path: Path, seed: int, partitions: int
) -> None:
    """The distributed steps, run in this process, give exactly the single-process plan."""
    options = Options(delete_untagged=seed % 2 == 1, prune_damaged=seed == 3)
    single, dist, _, _ = _both(
        rigs.random_registry(seed),
        tmp_path,
        lambda root, now: collect_distributed(
            root, InProcessExecutor(), options, dry_run=True, now=now, partitions=partitions
        ),
        options,
    )
    assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    assert dist.manifests_read == single.manifests_read
    assert dist.inventory.objects == single.inventory.objects
    assert len(dist.inventory.repositories) == len(single.inventory.repositories)
    assert dist.to_dict()["totals"] == single.to_dict()["totals"]


def test_without_delimiter_listings_a_first_pass_cuts_the_parts() -> None:
    """A backend without SupportsListDir (memory://) is listed once, then cut: the same plan."""
    b = mixed_registry()
    root = f"/rgc-dist-{uuid.uuid4().hex}"
    b.write_fs(fsspec.filesystem("memory"), root)
    try:
        now = datetime.datetime.now(UTC)
        options = Options(delete_untagged=True, grace=ZERO)
        single = collect("memory://" + root, options, dry_run=True, now=now)
        dist = collect(
            "memory://" + root,
            options,
            dry_run=True,
            now=now,
            client=InProcessExecutor(),
            partitions=3,
        )
        assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
        assert dist.deleted_count > 0
    finally:
        fsspec.filesystem("memory").rm(root, recursive=True)


def test_removals_by_name_plan_the_same(tmp_path: Path) -> None:
    """Removals (rm of a repository and of a tag) give the single-process plan."""
    removals = Removals(
        tags={Repository("team/api"): {Tag("latest")}},
        repositories={Repository("old/gone")},
    )
    options = Options(delete_untagged=True, grace=ZERO)
    single, dist, _, _ = _both(
        mixed_registry(),
        tmp_path,
        lambda root, now: collect_distributed(
            root,
            InProcessExecutor(),
            options,
            dry_run=True,
            now=now,
            removals=removals,
            partitions=3,
        ),
        options,
        removals=removals,
    )
    assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    assert any(d.reason == "removed-repository" for d in dist.plan.deletions)


def test_refusals_are_the_same_and_nothing_is_deleted(tmp_path: Path) -> None:
    """An undecodable live manifest in one partition refuses the run, with the same problems."""
    b = mixed_registry()
    bad = b.manifest("zz/broken", b"{not json", tag="v1")
    now = datetime.datetime.now(UTC)
    root = _write(b, tmp_path / "s", now)
    before = rigs.tree(root)
    options = Options(delete_untagged=True, grace=ZERO)
    with pytest.raises(RefusedError) as single:
        collect(root, options, now=now)
    with pytest.raises(RefusedError) as dist:
        collect(root, options, now=now, client=InProcessExecutor(), partitions=4)
    assert str(dist.value) == str(single.value)
    assert dist.value.problems == single.value.problems
    assert str(bad) in dist.value.problems[0]
    assert rigs.tree(root) == before


def test_no_manifest_and_no_registry_are_refused_as_in_one_process(tmp_path: Path) -> None:
    """Blobs without any manifest, and an empty root, are refused with the same messages."""
    b = RegistryBuilder()
    b.blob(b"lonely")
    root = _write(b, tmp_path / "blobs-only", datetime.datetime.now(UTC))
    for where in (root, str(tmp_path / "nothing")):
        with pytest.raises(RefusedError) as single:
            collect(where, grace=ZERO)
        with pytest.raises(RefusedError) as dist:
            collect(where, grace=ZERO, client=InProcessExecutor(), partitions=2)
        assert (str(dist.value), dist.value.problems) == (str(single.value), single.value.problems)


def test_live_policies_and_backend_objects_are_refused(tmp_path: Path) -> None:
    """live=True, a policy, or a Backend as root cannot run distributed: ConfigError."""
    ex = InProcessExecutor()
    with pytest.raises(ConfigError, match="live mode is not available in a distributed run"):
        collect(str(tmp_path), live=True, client=ex)
    policy = parse_policy('rules:\n  - repositories: ["app/*"]\n    keep_last: 1\n')
    with pytest.raises(ConfigError, match="retention policies are not available"):
        collect(str(tmp_path), policy=policy, client=ex)
    with pytest.raises(ConfigError, match="give root as a URL or a path"):
        collect(LocalBackend(tmp_path), client=ex)
    with pytest.raises(TypeError, match=r"distributed\.Client or an Executor"):
        collect(str(tmp_path), client=object())


@pytest.mark.parametrize("option", ["plan_out", "deletions_out"])
def test_plan_files_are_refused_before_anything_is_read_or_deleted(
    tmp_path: Path, option: str
) -> None:
    """plan_out/deletions_out with a client or an inventory: ConfigError, no file, no deletion."""
    root = _write(mixed_registry(), tmp_path / "s", datetime.datetime.now(UTC))
    before = rigs.tree(root)
    out = tmp_path / "plan.jsonl"
    with pytest.raises(ConfigError, match=r"plan files .* are not available in a distributed run"):
        collect(root, grace=ZERO, delete_untagged=True, client=InProcessExecutor(), **{option: out})
    with pytest.raises(ConfigError, match="not available in a run from an S3 Inventory"):
        collect(root, grace=ZERO, inventory=str(tmp_path / "manifest.json"), **{option: out})
    assert not out.exists()
    assert rigs.tree(root) == before


# -- the same plan, on two worker processes ----------------------------------------------------


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    size=st.integers(2, 10),
    partitions=st.integers(1, 6),
    delete_untagged=st.booleans(),
    prune_damaged=st.booleans(),
    grace_hours=st.sampled_from([0, 1]),
)
def test_property_cluster_plans_what_one_process_plans(
    dask_client: Any,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    size: int,
    partitions: int,
    delete_untagged: bool,
    prune_damaged: bool,
    grace_hours: int,
) -> None:
    """On random stores, two worker processes plan exactly what one process plans."""
    tmp = tmp_path_factory.mktemp("prop")
    options = Options(
        delete_untagged=delete_untagged,
        prune_damaged=prune_damaged,
        grace=datetime.timedelta(hours=grace_hours),
    )
    b = rigs.random_registry(seed, size)
    now = datetime.datetime.now(UTC)
    root = _write(b, tmp, now)
    single = _outcome(lambda: collect(root, options, dry_run=True, now=now))
    dist = _outcome(
        lambda: collect(
            root, options, dry_run=True, now=now, client=dask_client, partitions=partitions
        )
    )
    _assert_same_outcome(single, dist)
    shutil.rmtree(tmp)


@pytest.mark.s3
@settings(
    max_examples=max(2, EXAMPLES // 3),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    size=st.integers(2, 8),
    partitions=st.integers(1, 5),
    delete_untagged=st.booleans(),
)
def test_property_s3_cluster_plans_what_one_process_plans(
    dask_client: Any,
    worker_s3: Any,
    seed: int,
    size: int,
    partitions: int,
    delete_untagged: bool,
) -> None:
    """SeaweedFS, random stores: the workers (their own credentials) plan what one process does."""
    bucket = worker_s3.make_bucket()
    try:
        rigs.random_registry(seed, size).write_keys(worker_s3.putter(bucket), "reg")
        url = f"s3://{bucket}/reg"
        where = {
            "endpoint_url": worker_s3.endpoint_url,
            "client_kwargs": {"region_name": "us-east-1"},
        }
        options = Options(delete_untagged=delete_untagged, grace=ZERO)
        now = datetime.datetime.now(UTC)
        single = _outcome(
            lambda: collect(
                url, options, dry_run=True, now=now, storage_options=worker_s3.storage_options()
            )
        )
        dist = _outcome(
            lambda: collect(
                url,
                options,
                dry_run=True,
                now=now,
                storage_options=where,
                client=dask_client,
                partitions=partitions,
            )
        )
        _assert_same_outcome(single, dist)
    finally:
        worker_s3.drop_bucket(bucket)


def _outcome(run: Callable[[], Report]) -> Report | RefusedError:
    """The report of ``run``, or the refusal it raised."""
    try:
        return run()
    except RefusedError as e:
        return e


def _assert_same_outcome(single: Report | RefusedError, dist: Report | RefusedError) -> None:
    """Both refused with the same problems, or both planned the same."""
    if isinstance(single, RefusedError):
        assert isinstance(dist, RefusedError), "the single run refused; the distributed one not"
        assert dist.problems == single.problems
        return
    assert not isinstance(dist, RefusedError), dist
    assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    assert dist.manifests_read == single.manifests_read


def test_a_real_run_leaves_what_one_process_leaves_in_phase_order(
    dask_client: Any, tmp_path: Path
) -> None:
    """Real runs: the same files left; no blob deleted before every link deletion ended."""
    log = str(tmp_path / "deletes.jsonl")
    dask_client.register_plugin(rigs.DeleteLog(log), name=rigs.DeleteLog.name)
    try:
        options = Options(delete_untagged=True, grace=ZERO)
        single, dist, one, two = _both(
            mixed_registry(),
            tmp_path,
            lambda root, now: collect(root, options, now=now, client=dask_client, partitions=4),
            options,
            dry_run=False,
        )
    finally:
        dask_client.unregister_worker_plugin(rigs.DeleteLog.name)
    assert single.ok
    assert dist.ok
    assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    assert rigs.tree(two) == rigs.tree(one)
    assert dist.result.directories_removed == single.result.directories_removed
    lines = rigs.read_delete_log(log)
    links_end = max(x["end"] for x in lines if "layer-link" in x["categories"])
    blobs_start = min(x["start"] for x in lines if "blob" in x["categories"])
    revisions_end = max(x["end"] for x in lines if "revision" in x["categories"])
    assert revisions_end <= links_end <= blobs_start


# -- S3: the same plan, and no credential in the task graph --------------------------------------


@pytest.mark.s3
def test_s3_cluster_plans_and_deletes_what_one_process_does_no_secret_travels(
    dask_client: Any, worker_s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SeaweedFS: same plan, same keys left; the workers' secret is in no task and no log."""
    spy = rigs.GraphSpy(rigs.WORKER_SECRET.encode())
    dask_client.register_plugin(spy, name=spy.name)
    b = mixed_registry(seed=9)
    one, two = worker_s3.make_bucket(), worker_s3.make_bucket()
    for bucket in (one, two):
        b.write_keys(worker_s3.putter(bucket), "reg")
    where = {"endpoint_url": worker_s3.endpoint_url, "client_kwargs": {"region_name": "us-east-1"}}
    now = datetime.datetime.now(UTC)
    options = Options(delete_untagged=True, grace=ZERO)
    caplog.set_level("DEBUG")
    single = collect(
        f"s3://{one}/reg", options, now=now, storage_options=worker_s3.storage_options()
    )
    dist = collect(
        f"s3://{two}/reg", options, now=now, storage_options=where, client=dask_client, partitions=3
    )
    assert dist.ok
    assert rigs.plan_key(dist.plan) == rigs.plan_key(single.plan)
    assert dist.plan.url == f"s3://{two}/reg"
    left_one = {k.split("/", 1)[1] for k in worker_s3.list_keys(one)}
    left_two = {k.split("/", 1)[1] for k in worker_s3.list_keys(two)}
    assert left_one == left_two
    found, tasks = dask_client.run_on_scheduler(
        lambda dask_scheduler: (
            dask_scheduler.plugins[rigs.GraphSpy.name].found,
            dask_scheduler.plugins[rigs.GraphSpy.name].tasks,
        )
    )
    assert tasks > 20
    assert found == []
    secret = rigs.WORKER_SECRET
    logs = dask_client.get_worker_logs()
    assert all(secret not in line for lines in logs.values() for _, line in lines)
    assert secret not in caplog.text
    assert not any(secret in str(v) for v in (dist.to_dict(), dist.render(verbose=True)))
    with pytest.raises(ConfigError, match="never sends credentials"):
        collect(
            f"s3://{two}/reg",
            storage_options={**where, "key": rigs.WORKER_KEY, "secret": secret},
            client=dask_client,
        )
    for bucket in (one, two):
        worker_s3.drop_bucket(bucket)


# -- faults on the workers -----------------------------------------------------------------------


def _faulty_run(
    dask_client: Any, tmp_path: Path, fault: Any
) -> tuple[BaseException | Report, str, str, Report, set[str]]:
    """A run with ``fault`` on the workers, and one in this process on a copy.

    Returns the faulty run's report (or exception), both roots, the clean run's
    report, and the files of the store before either run.
    """
    options = Options(delete_untagged=True, grace=ZERO)
    now = datetime.datetime.now(UTC)
    b = mixed_registry()
    faulty = _write(b, tmp_path / "faulty", now)
    clean = _write(b, tmp_path / "clean", now)
    before = rigs.tree(faulty)
    dask_client.register_plugin(fault, name=fault.name)
    outcome: BaseException | Report
    try:
        outcome = collect(faulty, options, now=now, client=dask_client, partitions=3)
    except BaseException as e:
        outcome = e
    finally:
        dask_client.unregister_worker_plugin(fault.name)
    expected = collect(clean, options, now=now)
    return outcome, faulty, clean, expected, before


def _again(dask_client: Any, root: str) -> Report:
    """The same run again, without the fault (now: directories the first run emptied are old)."""
    return collect(root, grace=ZERO, delete_untagged=True, client=dask_client)


@pytest.mark.parametrize("target", ["discover", "scan", "read_manifests", "mark", "make_plan"])
def test_a_task_failing_before_the_sweep_stops_the_run_and_deletes_nothing(
    dask_client: Any, tmp_path: Path, target: str
) -> None:
    """A task raising while listing, reading, marking or planning: DistributedError, no change."""
    now = datetime.datetime.now(UTC)
    root = _write(mixed_registry(), tmp_path / "s", now)
    before = rigs.tree(root)
    fault = rigs.StageFault(target)
    dask_client.register_plugin(fault, name=fault.name)
    try:
        with pytest.raises(DistributedError, match=f"injected fault in {target}") as e:
            collect(root, grace=ZERO, delete_untagged=True, now=now, client=dask_client)
    finally:
        dask_client.unregister_worker_plugin(fault.name)
    assert "nothing was deleted" in str(e.value)
    assert "registry-gc-" in str(e.value), "the error names the task"
    assert rigs.tree(root) == before
    again = collect(root, grace=ZERO, delete_untagged=True, now=now, client=dask_client)
    assert again.ok
    assert again.deleted_count > 0


def test_a_worker_killed_while_reading_stops_the_run_or_finishes_it_right(
    dask_client: Any, tmp_path: Path
) -> None:
    """A worker dying mid-read: the run stops (nothing deleted) or its plan is the right one."""
    fault = rigs.StageFault("read_manifests", kill=True, once_file=str(tmp_path / "killed"))
    outcome, faulty, clean, expected, before = _faulty_run(dask_client, tmp_path, fault)
    assert (tmp_path / "killed").exists()
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, DistributedError), outcome
        assert "nothing was deleted" in str(outcome)
        assert rigs.tree(faulty) == before
        assert _again(dask_client, faulty).ok
    else:
        assert outcome.ok
        assert rigs.plan_key(outcome.plan)["deletions"] == rigs.plan_key(expected.plan)["deletions"]
    assert rigs.tree(faulty) == rigs.tree(clean)


def test_a_worker_killed_while_deleting_links_is_replaced_and_the_run_completes(
    dask_client: Any, tmp_path: Path
) -> None:
    """A worker dying in the layer-link phase: its chunk runs again elsewhere; result right."""
    fault = rigs.StageFault(
        "execute", kill=True, once_file=str(tmp_path / "killed"), category="layer-link"
    )
    outcome, faulty, clean, expected, _ = _faulty_run(dask_client, tmp_path, fault)
    assert (tmp_path / "killed").exists()
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.ok
    assert rigs.tree(faulty) == rigs.tree(clean)
    assert expected.ok


def test_a_failed_deletion_phase_skips_every_later_phase_everywhere(
    dask_client: Any, tmp_path: Path
) -> None:
    """Every layer-link chunk raising: blobs and later phases are skipped; a re-run converges."""
    fault = rigs.StageFault("execute", category="layer-link")
    outcome, faulty, clean, _, before = _faulty_run(dask_client, tmp_path, fault)
    assert not isinstance(outcome, BaseException), outcome
    assert not outcome.ok
    assert outcome.exit_code == 1
    statuses = {
        (d.category.value, outcome.status(i).value) for i, d in enumerate(outcome.plan.deletions)
    }
    assert ("layer-link", "failed") in statuses
    assert ("blob", "skipped") in statuses
    assert not any(c == "blob" and s == "deleted" for c, s in statuses)
    assert all("injected fault in execute" in f.error for f in outcome.result.failures)
    blobs = {p for p in before if "/blobs/" in p and p.endswith("/data")}
    assert blobs <= rigs.tree(faulty), "no blob is deleted while links of it may remain"
    assert _again(dask_client, faulty).ok
    assert rigs.tree(faulty) == rigs.tree(clean)


def test_an_interrupted_run_leaves_no_blob_of_a_remaining_link_and_a_rerun_converges(
    dask_client: Any, tmp_path: Path
) -> None:
    """Interrupted in the layer-link phase: no blob deleted yet; running again finishes the job."""
    now = datetime.datetime.now(UTC)
    b = mixed_registry()
    root = _write(b, tmp_path / "s", now)
    clean = _write(b, tmp_path / "c", now)
    blobs_before = {p for p in rigs.tree(root) if p.endswith("/data") and "/blobs/" in p}

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "layer-link":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(
            root, grace=ZERO, delete_untagged=True, now=now, client=dask_client, progress=progress
        )
    blobs_after = {p for p in rigs.tree(root) if p.endswith("/data") and "/blobs/" in p}
    assert blobs_after == blobs_before
    assert _again(dask_client, root).ok
    collect(clean, grace=ZERO, delete_untagged=True, now=now)
    assert rigs.tree(root) == rigs.tree(clean)
