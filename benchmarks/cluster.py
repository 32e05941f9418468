"""Distributed runs on SeaweedFS with latency: one process, then Dask with 1 and 2 workers.

For each store size (``--keys``, about 2.2 keys per blob, the shape of ``synth.py``), a
bucket is written once; every run goes through ``s3proxy.CountingProxy``, which adds
``--latency-ms`` to every request and counts them by operation. Per size:

- ``one process``: ``collect(url, dry_run=True)``, no Dask;
- ``1 worker`` and ``2 workers``: ``collect(url, dry_run=True, client=…)`` on a
  ``LocalCluster`` of that many worker processes (one thread each; the workers get the
  S3 credentials in their environment, the task graph holds none). The cluster is
  started before the clock starts;
- ``2 workers, real``: the deleting run, then the blobs left are checked against what the
  generator says must stay.

The wall time, the requests by operation, the load average before and after each run
(other work on the machine shows there) go to ``--out`` (JSON), and a Markdown table to
standard output. ``benchmarks/model.py`` fits the cost model on that file.

    python benchmarks/cluster.py --keys 10000 50000 --latency-ms 10 \\
        --out benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synth
from s3proxy import CountingProxy

#: Keys per blob of synth's default shape (110k keys for 50k blobs), to size a store by keys.
KEYS_PER_BLOB = 2.2
ZERO = datetime.timedelta(0)


def log(msg: str) -> None:
    print(f"[dist {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def _cpu() -> float:
    """This process's CPU seconds (run on each worker by ``Client.run``)."""
    return time.process_time()


def workers_cpu(client: Any) -> float:
    """The CPU seconds of every worker process so far (0 without a cluster)."""
    return sum(client.run(_cpu).values()) if client is not None else 0.0


def timed(name: str, proxy: CountingProxy, run: Any, client: Any = None) -> dict[str, Any]:
    """Run ``run()``; its wall and CPU time, requests, load and what the report says."""
    proxy.reset()
    before = load1()
    cpu = time.process_time()
    wcpu = workers_cpu(client)
    start = time.perf_counter()
    report = run()
    wall = time.perf_counter() - start
    requests = dict(proxy.reset())
    out = {
        "name": name,
        "wall": round(wall, 3),
        "driver_cpu": round(time.process_time() - cpu, 3),
        "workers_cpu": round(workers_cpu(client) - wcpu, 3),
        "requests": requests,
        "total_requests": sum(requests.values()),
        "load_before": before,
        "load_after": load1(),
        "objects": report.inventory.objects,
        "manifests_read": report.manifests_read,
        "deletions": len(report.plan.deletions),
        "deleted_objects": sum(len(d.paths) for d in report.plan.deletions),
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
    }
    log(
        f"{name}: {wall:.2f} s (CPU: driver {out['driver_cpu']:.1f} s, "
        f"workers {out['workers_cpu']:.1f} s), {out['total_requests']} requests "
        f"({', '.join(f'{k} {v}' for k, v in sorted(requests.items()))}), load {before}"
    )
    return out


def cluster(workers: int, env: dict[str, str]) -> Any:
    from distributed import LocalCluster  # noqa: PLC0415

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env=env,
    )


def one_size(server: Any, keys: int, latency: float, seed: int) -> dict[str, Any]:
    """Write a store of about ``keys`` keys; time every kind of run on it."""
    from registry_gc import Options, collect  # noqa: PLC0415

    from distributed import Client  # noqa: PLC0415

    spec = synth.Spec.for_blobs(round(keys / KEYS_PER_BLOB), seed=seed)
    bucket = f"dist-{keys}-{seed}"
    server.client().create_bucket(Bucket=bucket)
    t = time.perf_counter()
    exp = synth.write_s3(spec, server.client, [(bucket, "")])
    log(f"wrote {exp.keys} keys ({exp.blobs} blobs) in {time.perf_counter() - t:.0f} s")
    section: dict[str, Any] = {"store": exp.counts(), "runs": []}
    env = {
        "AWS_ACCESS_KEY_ID": server.key,
        "AWS_SECRET_ACCESS_KEY": server.secret,
        "AWS_DEFAULT_REGION": server.region,
    }
    options = Options(delete_untagged=True, grace=ZERO)
    url = f"s3://{bucket}"
    with CountingProxy("127.0.0.1", server.port, latency=latency) as proxy:
        region = {"region_name": server.region}
        where = {"endpoint_url": proxy.endpoint_url, "client_kwargs": region}
        with_keys = server.storage_options(endpoint_url=proxy.endpoint_url)
        section["runs"].append(
            timed(
                "one process",
                proxy,
                lambda: collect(url, options, dry_run=True, storage_options=with_keys),
            )
        )
        for workers in (1, 2):
            with cluster(workers, env) as c, Client(c) as client:
                name = f"{workers} worker{'s' if workers > 1 else ''}"
                section["runs"].append(
                    timed(
                        name,
                        proxy,
                        lambda client=client: collect(
                            url, options, dry_run=True, storage_options=where, client=client
                        ),
                        client,
                    )
                )
                if workers == 2:
                    real = timed(
                        "2 workers, real",
                        proxy,
                        lambda client=client: collect(
                            url, options, storage_options=where, client=client
                        ),
                        client,
                    )
                    left = {
                        "sha256:" + k.rsplit("/", 2)[-2]
                        for k in server.list_keys(bucket, prefix=f"{synth.V2}/blobs/")
                        if k.endswith("/data")
                    }
                    real["blobs_left_as_expected"] = left == exp.live
                    section["runs"].append(real)
    return section


def markdown(results: dict[str, Any]) -> str:
    lines = [
        (
            f"SeaweedFS on 127.0.0.1, {results['latency_ms']:g} ms added to every request, "
            f"{results['cpus']} CPUs; load average before each run in the last column."
        ),
        "",
        (
            "| keys | run | wall (s) | CPU driver + workers (s) | requests | list | get | delete "
            "| load |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        keys = size["store"]["keys"]
        for r in size["runs"]:
            req = r["requests"]
            lists = sum(v for k, v in req.items() if k.startswith("List"))
            gets = req.get("GetObject", 0) + req.get("HeadObject", 0)
            deletes = req.get("DeleteObjects", 0) + req.get("DeleteObject", 0)
            lines.append(
                f"| {keys:,} | {r['name']} | {r['wall']:.1f} | "
                f"{r['driver_cpu']:.1f} + {r['workers_cpu']:.1f} | {r['total_requests']:,} | "
                f"{lists:,} | {gets:,} | {deletes:,} | {r['load_before']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tests.rigs.s3 import SeaweedS3  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--keys", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--latency-ms", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed.json"))
    args = p.parse_args(argv)
    results: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "cpus": os.cpu_count(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory() as work, SeaweedS3(data_dir=Path(work) / "weed") as server:
        for keys in args.keys:
            results["sizes"].append(one_size(server, keys, args.latency_ms / 1000, args.seed))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
