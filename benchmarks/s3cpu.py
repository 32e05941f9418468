"""The S3 client's CPU per request (issue 13): before and after reading listings ourselves.

Starts SeaweedFS (``tests/rigs/s3.py``) on 127.0.0.1, writes a synthetic store
(:mod:`synth`, ``--blobs``, 10k by default) to two buckets and ``--list-keys``
empty objects (blob-shaped keys, written through the filer: 300 000 took
12 minutes on 2 busy cores, so 1M about 40) to a third, then measures, in child processes,
the registry-gc of two trees:

- ``before``: ``--before`` (default: where this branch left ``main``), taken
  with ``git archive`` — botocore parses every ListObjectsV2 response;
- ``after``: this checkout.

For each tree: CPU (``time.process_time``, the whole process) per request of
each kind on its own — a listing of the large bucket (also: keys listed per
CPU-second), ``--gets`` GetObject of small objects, and DeleteObjects of
``--deletes`` keys (1000 a request) — and of a whole ``collect()``, dry run
and real run (``delete_untagged=True``, ``grace=0``), with the requests it
sent by kind and requests per CPU-second (per core: the run is one thread).

    python benchmarks/s3cpu.py [--blobs N] [--list-keys N] [--data DIR] [--json FILE]

``--data DIR`` keeps SeaweedFS's data there, so that a second run reuses the
buckets already written (a bucket is refilled only if its count is short).
Prints a Markdown table; the load average is given beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
V2 = "docker/registry/v2"
FILLED_MARK = "bench-filled-"
#: The store the gc runs collect (one bucket for each tree: a real run deletes).
STORE_BUCKETS = {"before": "cpu-store-before", "after": "cpu-store-after"}
LIST_BUCKET = "cpu-list"


def log(msg: str) -> None:
    print(f"[s3cpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# -- the child: one measurement, in the tree given ---------------------------------------


def _blob_key(i: int) -> str:
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return f"{V2}/blobs/sha256/{h[:2]}/{h}/data"


def _measure(backend: Any, warm: Any, work: Any) -> dict[str, Any]:
    """CPU and wall time of ``work()``, after ``warm()`` in the same event loop (and client).

    Also the requests ``work()`` sent, and what it returned.
    """
    out: dict[str, Any] = {}

    async def go() -> None:
        try:
            await warm()
            backend.request_counts.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            out["result"] = await work()
            out["cpu"] = time.process_time() - cpu
            out["wall"] = time.perf_counter() - wall
            out["requests"] = dict(backend.request_counts)
        finally:
            await backend.aclose()

    asyncio.run(go())
    return out


def child(args: argparse.Namespace) -> int:
    sys.path.insert(0, args.tree)
    import registry_gc  # noqa: PLC0415 - from the tree measured
    from registry_gc.backends import S3Backend  # noqa: PLC0415

    options = json.loads(os.environ["BENCH_S3_OPTIONS"])
    out: dict[str, Any] = {"tree": str(Path(registry_gc.__file__).parent)}
    if args.what == "list":
        backend = S3Backend(LIST_BUCKET, "", options)
        # A small listing connects and warms up, then the one measured.
        m = _measure(
            backend,
            lambda: _count(backend, V2 + "/blobs/sha256/00/"),
            lambda: _count(backend, V2 + "/blobs/"),
        )
        out.update(m, keys=m["result"])
    elif args.what == "get":
        backend = S3Backend(LIST_BUCKET, "", options)
        paths = [_blob_key(i) for i in range(args.gets)]
        m = _measure(
            backend, lambda: _read_all(backend, paths[:10]), lambda: _read_all(backend, paths)
        )
        out.update(m, found=m["result"])
    elif args.what == "delete":
        backend = S3Backend(LIST_BUCKET, "", options)
        paths = [f"scratch/{args.tag}/{i:07d}" for i in range(args.deletes + 1000)]
        # The first 1000 connect and warm up; the rest are measured.
        m = _measure(
            backend,
            lambda: _delete_all(backend, paths[:1000]),
            lambda: _delete_all(backend, paths[1000:]),
        )
        out.update(m, deleted=m["result"])
    else:
        backend = S3Backend(args.bucket, "", options)
        cpu, wall = time.process_time(), time.perf_counter()
        report = registry_gc.collect(
            backend,
            dry_run=args.what == "dry",
            delete_untagged=True,
            grace=datetime.timedelta(0),
        )
        out.update(
            cpu=time.process_time() - cpu,
            wall=time.perf_counter() - wall,
            requests=dict(backend.request_counts),
            ok=report.ok,
            deleted=report.deleted_count,
            objects_listed=report.inventory.objects,
        )
    out.pop("result", None)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


async def _count(backend: Any, prefix: str) -> int:
    n = 0
    async for _ in backend.list(prefix):
        n += 1
    return n


async def _read_all(backend: Any, paths: list[str]) -> int:
    got = await backend.read(paths)
    return sum(v is not None for v in got.values())


async def _delete_all(backend: Any, paths: list[str]) -> int:
    results = await backend.delete(paths)
    return sum(r.outcome.name == "DELETED" for r in results)


# -- the parent: the store, the trees, the table -----------------------------------------


def _bucket_count(server: Any, bucket: str) -> int | None:
    """The number a completed fill left in the bucket's marker object, if any."""
    client = server.client()
    with contextlib.suppress(Exception):
        page = client.list_objects_v2(Bucket=bucket, Prefix=FILLED_MARK)
        for obj in page.get("Contents", []):
            return int(obj["Key"][len(FILLED_MARK) :])
    return None


def _has(client: Any, bucket: str, key: str) -> bool:
    with contextlib.suppress(Exception):
        client.head_object(Bucket=bucket, Key=key)
        return True
    return False


def _make_bucket(server: Any, bucket: str) -> None:
    with contextlib.suppress(Exception):
        server.client().create_bucket(Bucket=bucket)


async def _filer_put(filer: str, bucket: str, keys: list[str], concurrency: int = 64) -> None:
    """Empty objects through SeaweedFS's filer: about 3x the rate of S3 PUTs from Python."""
    import aiohttp  # noqa: PLC0415

    todo = iter(keys)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            for key in todo:
                directory, _, name = key.rpartition("/")
                form = aiohttp.FormData()
                form.add_field("file", b"", filename=name)
                async with s.post(f"{filer}/buckets/{bucket}/{directory}/", data=form) as r:
                    if r.status >= 300:
                        raise RuntimeError(f"filer PUT {key}: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def fill_list_bucket(server: Any, n: int) -> float:
    _make_bucket(server, LIST_BUCKET)
    if (_bucket_count(server, LIST_BUCKET) or 0) >= n:
        return 0.0
    t = time.perf_counter()
    filer = f"http://127.0.0.1:{server.ports['filer']}"
    step = 50_000
    for start in range(0, n, step):
        keys = [_blob_key(i) for i in range(start, min(n, start + step))]
        asyncio.run(_filer_put(filer, LIST_BUCKET, keys))
        log(f"{LIST_BUCKET}: {start + len(keys)} / {n} keys")
    client = server.client()
    for obj in client.list_objects_v2(Bucket=LIST_BUCKET, Prefix=FILLED_MARK).get("Contents", []):
        client.delete_object(Bucket=LIST_BUCKET, Key=obj["Key"])
    client.put_object(Bucket=LIST_BUCKET, Key=f"{FILLED_MARK}{n}", Body=b"")
    return time.perf_counter() - t


def fill_stores(server: Any, blobs: int, seed: int) -> dict[str, Any]:
    import synth  # noqa: PLC0415

    spec = synth.Spec.for_blobs(blobs, seed=seed)
    mark = f"{FILLED_MARK}{blobs}-{seed}"
    client = server.client()
    if all(_has(client, b, mark) for b in STORE_BUCKETS.values()):
        # Written by an earlier benchmark whose real runs did not happen.
        files, exp = synth.generate(spec)
        for _ in files:  # Expected is complete once every file went by.
            pass
        return {"store": exp.counts(), "seconds": 0.0}
    for b in STORE_BUCKETS.values():
        # A real run of a previous benchmark collected them: start again from nothing.
        server.drop_bucket(b)
        _make_bucket(server, b)
    t = time.perf_counter()
    exp = synth.write_s3(spec, server.client, [(b, "") for b in STORE_BUCKETS.values()])
    for b in STORE_BUCKETS.values():
        client.put_object(Bucket=b, Key=mark, Body=b"")
    return {"store": exp.counts(), "seconds": time.perf_counter() - t}


def fill_scratch(server: Any, tag: str, n: int) -> None:
    filer = f"http://127.0.0.1:{server.ports['filer']}"
    asyncio.run(_filer_put(filer, LIST_BUCKET, [f"scratch/{tag}/{i:07d}" for i in range(n)]))


def run_child(
    name: str, tree: Path, what: str, options: dict[str, Any], *extra: str
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_S3_OPTIONS": json.dumps(options)}
    argv = [sys.executable, __file__, "child", what, "--tree", str(tree), *extra]
    load = load1()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} in {tree}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = [load, load1()]
    n = sum(out["requests"].values())
    log(f"{name} {what}: {out['cpu']:.2f} s CPU, {n} requests, load {load}")
    return out


def before_tree(ref: str, work: Path) -> Path:
    tree = work / "before"
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "registry_gc"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def measure_tree(name: str, tree: Path, server: Any, args: argparse.Namespace) -> dict[str, Any]:
    options = server.storage_options()
    out: dict[str, Any] = {}
    out["list"] = run_child(name, tree, "list", options)
    out["get"] = run_child(name, tree, "get", options, "--gets", str(args.gets))
    fill_scratch(server, name, args.deletes + 1000)
    out["delete"] = run_child(
        name, tree, "delete", options, "--deletes", str(args.deletes), "--tag", name
    )
    bucket = STORE_BUCKETS[name]
    out["dry"] = run_child(name, tree, "dry", options, "--bucket", bucket)
    # The real run changes the store: an interrupted benchmark must write it again.
    client = server.client()
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=FILLED_MARK).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    out["real"] = run_child(name, tree, "real", options, "--bucket", bucket)
    return out


def _per_request(m: dict[str, Any]) -> tuple[float, int]:
    n = sum(m["requests"].values())
    return (m["cpu"] / n * 1000 if n else float("nan")), n


def markdown(results: dict[str, Any]) -> str:
    trees = [t for t in ("before", "after") if t in results["trees"]]
    lines = [
        (
            f"SeaweedFS on 127.0.0.1; store: {results['store']}; listing: "
            f"{results['list_keys']} keys; load (1 min) {results['load']}."
        ),
        "",
        "| measurement | " + " | ".join(trees) + " |",
        "| --- |" + " --- |" * len(trees),
    ]
    rows: list[tuple[str, Any]] = [
        ("listing: CPU ms per ListObjectsV2 (1000 keys)", lambda m: _per_request(m["list"])[0]),
        ("listing: keys per CPU-second", lambda m: m["list"]["keys"] / m["list"]["cpu"]),
        ("GetObject: CPU ms per request", lambda m: _per_request(m["get"])[0]),
        ("DeleteObjects: CPU ms per request (1000 keys)", lambda m: _per_request(m["delete"])[0]),
    ]
    for mode in ("dry", "real"):
        rows.append((f"gc {mode} run: CPU ms per request", lambda m, k=mode: _per_request(m[k])[0]))
        rows.append(
            (
                f"gc {mode} run: requests per CPU-second",
                lambda m, k=mode: 1000 / _per_request(m[k])[0],
            )
        )
        rows.append((f"gc {mode} run: CPU s", lambda m, k=mode: m[k]["cpu"]))
        rows.append((f"gc {mode} run: requests", lambda m, k=mode: m[k]["requests"]))
    for label, get in rows:
        cells = []
        for t in trees:
            value = get(results["trees"][t])
            cells.append(f"{value:,.2f}" if isinstance(value, float) else str(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("child")
    c.add_argument("what", choices=["list", "get", "delete", "dry", "real"])
    c.add_argument("--tree", required=True)
    c.add_argument("--bucket", default="")
    c.add_argument("--gets", type=int, default=3000)
    c.add_argument("--deletes", type=int, default=20000)
    c.add_argument("--tag", default="x")
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--list-keys", type=int, default=300_000)
    parser.add_argument("--gets", type=int, default=3000)
    parser.add_argument("--deletes", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="SeaweedFS data directory, kept")
    parser.add_argument("--before", default=None, help="git ref (default: merge-base with main)")
    parser.add_argument("--trees", default="before,after")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.command == "child":
        return child(args)

    sys.path[:0] = [str(HERE), str(REPO)]
    from tests.rigs.s3 import SeaweedS3  # noqa: PLC0415

    ref = (
        args.before
        or subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    work = Path(tempfile.mkdtemp(prefix="s3cpu-"))
    trees = {"before": before_tree(ref, work), "after": REPO}
    results: dict[str, Any] = {"before_ref": ref, "list_keys": args.list_keys, "trees": {}}
    data = Path(args.data) if args.data else work / "seaweed"
    with SeaweedS3(data_dir=data) as server:
        log(f"SeaweedFS at {server.endpoint_url}, data in {data}")
        seconds = fill_list_bucket(server, args.list_keys)
        log(f"{LIST_BUCKET}: {args.list_keys} keys ({seconds:.0f} s to write)")
        store = fill_stores(server, args.blobs, args.seed)
        results["store"] = store["store"]
        log(f"stores: {store['store']} ({store['seconds']:.0f} s to write)")
        loads = [load1()]
        for name in args.trees.split(","):
            results["trees"][name] = measure_tree(name, trees[name], server, args)
            loads.append(load1())
        results["load"] = f"{min(loads)}-{max(loads)}"
    text = markdown(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
