"""The nightly run with and without the manifest cache, on a local disk and on S3 (issue 13).

The steady state: a store that was collected yesterday, a day of pushes since. This
script makes it and times the next run:

1. generates a store (:mod:`synth`, ``--blobs``, 10k by default) in a directory and
   collects it (``-m``, no grace) so that it is clean; on S3 (SeaweedFS on 127.0.0.1,
   started here), writes that clean store to a bucket;
2. fills a manifest cache with one dry run on it (``cache fill``);
3. pushes about ``--fraction`` (1 %) of the store's files anew
   (:func:`synth.push_changes`: tags moved to new images, orphan blobs), in the
   directory and, for S3, the same new files to the bucket;
4. times, ``--repeat`` times each, alternating: a dry run without the cache
   (``none``), one with a copy of the filled cache (``cache``), ``-m --grace 0``,
   and the reference's ``docker-registry garbage-collect --dry-run -m`` on the
   same store (``reference``, when the binary is installed).

Each run is one child process (``gc_child.py``): wall time, CPU, peak RSS, the
requests sent by kind (S3) or the objects read (disk), and what the plan deletes,
which must be the same with and without the cache. Prints a Markdown table.

    python benchmarks/steady_cache.py [--blobs N] [--fraction F] [--repeat N] [--no-reference]
                                      [--where disk,s3] [--workdir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import synth  # noqa: E402
from run import (  # noqa: E402
    Measured,
    load1,
    log,
    measure,
    reference_binary,
    reference_config,
    run_reference,
)

BUCKET = "steady-cache"
V2 = "docker/registry/v2"


def _files(root: Path) -> dict[str, float]:
    """Every file under ``root``'s ``docker/registry/v2``: relative path → mtime."""
    out: dict[str, float] = {}
    for d, _, names in os.walk(root / V2):
        for n in names:
            full = os.path.join(d, n)
            out[os.path.relpath(full, root)] = os.stat(full).st_mtime
    return out


def _upload(server: Any, keys: list[str], root: Path) -> None:
    client = server.client()

    def put(key: str) -> None:
        client.put_object(Bucket=BUCKET, Key=key, Body=(root / key).read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))


def _child(
    name: str, target: str, logdir: Path, *extra: str, env: dict[str, str] | None = None
) -> Measured:
    argv = [
        sys.executable,
        str(HERE / "gc_child.py"),
        target,
        "--dry-run",
        "--delete-untagged",
        "--grace",
        "0",
        *extra,
    ]
    m = measure(name, argv, logdir, env=env)
    if m.rc != 0:
        raise RuntimeError(f"{name}: exit {m.rc}, see {m.log}.err")
    return m


def _row(m: Measured) -> dict[str, Any]:
    r = m.result
    return {
        "wall": round(m.wall, 3),
        "cpu": round(m.user + m.sys, 3),
        "max_rss_mib": round(m.max_rss_mib, 1),
        "manifests": r.get("timings", {}).get("manifests"),
        "inventory": r.get("timings", {}).get("inventory"),
        "requests": r.get("requests"),
        "read": (r.get("operations") or {}).get("read"),
        "deleted": r.get("deleted_count"),
        "categories": r.get("categories"),
        "load": [m.load_before, m.load_after],
    }


def measure_where(where: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Steps 1-4 on a local disk (``disk``) or on S3 (``s3``)."""
    src = work / f"{where}-store"
    spec = synth.Spec.for_blobs(args.blobs, seed=args.seed)
    logdir = work / "logs" / where
    log(f"{where}: generating {args.blobs} blobs into {src}")
    shutil.rmtree(src, ignore_errors=True)
    synth.write_local(spec, str(src))
    subprocess.run(
        [sys.executable, str(HERE / "gc_child.py"), str(src), "--delete-untagged"],
        check=True,
        capture_output=True,
    )
    clean = _files(src)
    server = None
    env = None
    target = str(src)
    extra: tuple[str, ...] = ("--count",)
    if where == "s3":
        from tests.rigs.s3 import SeaweedS3  # noqa: PLC0415

        server = SeaweedS3(data_dir=work / "seaweed").start()
        server.make_bucket(BUCKET)
        t = time.perf_counter()
        _upload(server, sorted(clean), src)
        log(f"s3: {len(clean)} keys written in {time.perf_counter() - t:.0f} s")
        env = {**os.environ, "BENCH_S3_OPTIONS": json.dumps(server.storage_options())}
        target = f"s3://{BUCKET}"
        extra = ()
    try:
        filled = work / f"{where}-filled.db"
        filled.unlink(missing_ok=True)
        fill = _child(
            f"{where} cache fill", target, logdir, *extra, "--manifest-cache", str(filled), env=env
        )
        changes = synth.push_changes(str(src), args.fraction, seed=args.seed + 1)
        after = _files(src)
        pushed = sorted(k for k, t in after.items() if clean.get(k) != t)
        if server is not None:
            _upload(server, pushed, src)
        log(f"{where}: pushed {changes} ({len(pushed)} files), {len(after)} files now")
        runs: dict[str, list[dict[str, Any]]] = {"none": [], "cache": []}
        config = None
        if args.reference and reference_binary() is not None:
            runs["reference"] = []
            if server is None:
                storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(src)}}
            else:
                from tests.rigs.registry import S3Storage  # noqa: PLC0415

                storage = S3Storage.on(server, BUCKET).driver_config()
            config = reference_config(work / f"{where}-reference.yml", storage)
        for i in range(args.repeat):
            runs["none"].append(_row(_child(f"{where} none {i}", target, logdir, *extra, env=env)))
            copy = work / f"{where}-run.db"
            shutil.copyfile(filled, copy)
            runs["cache"].append(
                _row(
                    _child(
                        f"{where} cache {i}",
                        target,
                        logdir,
                        *extra,
                        "--manifest-cache",
                        str(copy),
                        env=env,
                    )
                )
            )
            if config is not None:
                ref = run_reference(f"{where} reference {i}", config, logdir, dry=True)
                runs["reference"].append({**_row(ref), "deleted": ref.result})
        want = runs["none"][0]["categories"]
        same = all(r["categories"] == want for k in ("none", "cache") for r in runs[k])
        return {
            "files": len(after),
            "pushed_files": len(pushed),
            "changes": vars(changes),
            "fill": _row(fill),
            "runs": runs,
            "same_plan": same,
            "cache_bytes": filled.stat().st_size,
        }
    finally:
        if server is not None:
            server.stop()


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def markdown(results: dict[str, Any]) -> str:
    """One table per storage: the medians of each kind of run."""
    lines = []
    for where, res in results["where"].items():
        title = (
            f"#### {where}: {res['files']} files, {res['pushed_files']} pushed anew "
            f"({res['changes']}); cache file {res['cache_bytes'] / 1e6:.1f} MB"
        )
        header = (
            "| run | wall s (median) | CPU s (median) | manifests phase s | peak RSS MiB | "
            "requests or objects read | deletions | load |"
        )
        lines += ["", title, "", header, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for kind, rows in res["runs"].items():
            first = rows[0]
            deleted = first["deleted"]
            asked: object
            if kind == "reference":
                asked, phase = "-", "-"
                if isinstance(deleted, dict):
                    deleted = (
                        f"{deleted['eligible_blobs']} blobs + "
                        f"{deleted['eligible_manifests']} manifests"
                    )
            else:
                asked = first["requests"] or {"read": first["read"]}
                phase = f"{statistics.median(r['manifests'] for r in rows):.2f}"
            lines.append(
                f"| {kind} | {_median(rows, 'wall'):.2f} | {_median(rows, 'cpu'):.2f} | "
                f"{phase} | {_median(rows, 'max_rss_mib'):.0f} | {asked} | {deleted} | "
                f"{min(r['load'][0] for r in rows)}-{max(r['load'][1] for r in rows)} |"
            )
        lines.append("")
        lines.append(
            f"Same deletions with and without the cache: {'yes' if res['same_plan'] else '**no**'}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--where", default="disk,s3")
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the reference (when docker-registry is installed)",
    )
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="steady-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"blobs": args.blobs, "fraction": args.fraction, "where": {}}
    for where in args.where.split(","):
        results["where"][where] = measure_where(where, args, work)
        log(f"{where}: done, load {load1()}")
    text = markdown(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
