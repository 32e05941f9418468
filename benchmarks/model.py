"""A cost model of a collection on S3, fitted on ``benchmarks/cluster.py``'s measurements.

Requests grow linearly with the keys of the store: ``requests = a + b x keys`` per
kind (list, get, delete), fitted on the measured sizes. Time is modelled from CPU, not
from the wall clock of a shared 2-core machine (where the workers, the scheduler, the
driver, SeaweedFS and the latency proxy compete for the same cores):

- the *driver* (the process calling ``collect``) is serial: its CPU time,
  ``d0 + d1 x keys``, fitted on every Dask run;
- the *workers'* CPU time, summed over workers, ``w0 + w1 x keys``, is spread over
  ``W`` workers, one core each;
- ``t0``, the time a run spends on neither (scheduling rounds, the barrier between
  phases, waiting on requests), the smallest residual of the measured runs;

so ``wall(N, W) = t0 + driver(N) + workers(N) / W``, bounded below by the latency of
the requests (``requests x latency / (W x 64)``: 64 requests in flight per worker) and
by S3's request-rate limits: 5 500 GET/HEAD/LIST and 3 500 PUT/POST/DELETE requests per
second per partitioned prefix — one prefix for a new bucket, up to the 256
``blobs/sha256/<xx>/`` prefixes (and more under ``repositories/``) once S3 has split
the bucket under sustained load.

Prices (S3 Standard, us-east-1, as published in 2026): LIST, PUT, COPY, POST
$0.005 per 1 000; GET, HEAD $0.0004 per 1 000; DELETE free — a multi-object delete
(``DeleteObjects``) is a POST, and is priced as one here, which overstates it if it
is billed as a DELETE; an S3 Inventory report $0.0025 per million objects listed.

    python benchmarks/model.py benchmarks/results/distributed.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PRICE = {"list": 0.005 / 1000, "get": 0.0004 / 1000, "delete": 0.005 / 1000}
INVENTORY_PER_MILLION = 0.0025
RATE = {"get": 5500.0, "delete": 3500.0}  # per second per partitioned prefix
IN_FLIGHT = 64  # requests in flight per worker (the backends' default concurrency)
KEYS = [10_000_000, 100_000_000, 1_000_000_000]
WORKERS = [1, 8, 64]


def kinds(requests: dict[str, int]) -> dict[str, int]:
    """Requests by price class."""
    out = {"list": 0, "get": 0, "delete": 0}
    for op, n in requests.items():
        if op.startswith("List"):
            out["list"] += n
        elif op in ("GetObject", "HeadObject"):
            out["get"] += n
        elif op.startswith("Delete"):
            out["delete"] += n
    return out


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n < 2 or sxx == 0:
        return 0.0, my / mx if mx else 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def fit(results: dict[str, Any]) -> dict[str, Any]:
    """Request lines per kind; the driver's and the workers' CPU lines; the residual time."""
    req: dict[str, list[tuple[float, float]]] = {"list": [], "get": [], "delete": []}
    one_list: list[tuple[float, float]] = []
    apply_driver: list[tuple[float, float]] = []
    apply_workers: list[tuple[float, float]] = []
    apply_wait: list[tuple[float, float]] = []
    driver: list[tuple[float, float]] = []
    workers: list[tuple[float, float]] = []
    single: list[tuple[float, float]] = []
    runs: list[tuple[float, int, dict[str, Any]]] = []
    for size in results["sizes"]:
        keys = float(size["store"]["keys"])
        for r in size["runs"]:
            k = kinds(r["requests"])
            if r["name"] == "2 workers":
                req["list"].append((keys, k["list"]))
                req["get"].append((keys, k["get"]))
            elif r["name"] == "2 workers, real":
                req["delete"].append((keys, k["delete"]))
                dry = next(x for x in size["runs"] if x["name"] == "2 workers")
                apply_driver.append((keys, r["driver_cpu"] - dry["driver_cpu"]))
                apply_workers.append((keys, r["workers_cpu"] - dry["workers_cpu"]))
                cpu = (r["driver_cpu"] - dry["driver_cpu"]) + (
                    r["workers_cpu"] - dry["workers_cpu"]
                ) / 2
                apply_wait.append((keys, r["timings"]["apply"] - cpu))
            elif r["name"] == "one process":
                single.append((keys, r["driver_cpu"]))
                one_list.append((keys, k["list"]))
            if r["name"] in ("1 worker", "2 workers"):
                driver.append((keys, r["driver_cpu"]))
                workers.append((keys, r["workers_cpu"]))
                runs.append((keys, 1 if r["name"] == "1 worker" else 2, r))

    def fitted(points: list[tuple[float, float]]) -> tuple[float, float]:
        return line([x for x, _ in points], [y for _, y in points])

    requests = {k: fitted(v) for k, v in req.items()}
    # Up to 100k keys every blobs/<alg>/<xx>/ prefix fits in one LIST page, so the
    # distributed runs' LIST slope is nearly flat; past that, pages of 1 000 keys count,
    # as they do in one process: its slope, with the distributed runs' intercept.
    requests["list"] = (requests["list"][0], max(requests["list"][1], fitted(one_list)[1]))
    model: dict[str, Any] = {
        "requests": requests,
        "apply_driver": fitted(apply_driver),
        "apply_workers": fitted(apply_workers),
        "apply_wait": fitted(apply_wait),
        "driver": fitted(driver),
        "workers": fitted(workers),
        "one_process_cpu": fitted(single),
        "latency": results["latency_ms"] / 1000,
    }
    residuals = [r["wall"] - r["driver_cpu"] - r["workers_cpu"] / w for _, w, r in runs]
    model["t0"] = max(0.0, min(residuals)) if residuals else 0.0
    return model


def _at(ab: tuple[float, float], keys: float) -> float:
    return max(0.0, ab[0] + ab[1] * keys)


def project(model: dict[str, Any], keys: int, workers: int, partitions: int) -> dict[str, Any]:
    """Requests, cost and wall time of a run on ``keys`` keys with ``workers`` workers."""
    req = {k: _at(ab, keys) for k, ab in model["requests"].items()}
    cost = sum(req[k] * PRICE[k] for k in req)
    plan = model["t0"] + _at(model["driver"], keys) + _at(model["workers"], keys) / workers
    # Deleting: the driver's and the workers' CPU, and the time the store takes to delete
    # (measured with 2 workers; taken as spreading over the workers too).
    apply = (
        _at(model["apply_driver"], keys)
        + _at(model["apply_workers"], keys) / workers
        + _at(model["apply_wait"], keys) * 2 / workers
    )
    compute = plan + apply
    total = sum(req.values())
    floor = max(
        total * model["latency"] / (workers * IN_FLIGHT),
        (req["list"] + req["get"]) / (RATE["get"] * partitions),
        req["delete"] / (RATE["delete"] * partitions),
    )
    return {
        "requests": req,
        "cost": cost,
        "plan": plan,
        "wall": max(compute, floor),
        "bound": floor > compute,
        "driver": _at(model["driver"], keys) + _at(model["apply_driver"], keys),
    }


def hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(model: dict[str, Any]) -> str:
    r = model["requests"]
    per = ", ".join(f"{k} {a:.0f} + {b * 1000:.2f} per 1 000 keys" for k, (a, b) in r.items())
    d, w, one = model["driver"], model["workers"], model["one_process_cpu"]
    ad, aw, wait = model["apply_driver"], model["apply_workers"], model["apply_wait"]
    out = [
        f"Fitted requests: {per}.",
        (
            f"Deleting: driver {ad[1] * 1e6:.1f} µs, workers {aw[1] * 1e6:.1f} µs of CPU and "
            f"{wait[1] * 1e6:.1f} µs of waiting on the store per key (2 workers)."
        ),
        (
            f"Fitted CPU: driver {d[0]:.2f} s + {d[1] * 1e6:.1f} µs per key; workers (summed) "
            f"{w[0]:.2f} s + {w[1] * 1e6:.1f} µs per key; t0 = {model['t0']:.2f} s. "
            f"One process without Dask: {one[0]:.2f} s + {one[1] * 1e6:.1f} µs of CPU per key."
        ),
        "",
        (
            "| keys | workers | LIST | GET | DeleteObjects | request cost | plan "
            "| plan + delete (1 prefix) | plan + delete (256 prefixes) | of which driver |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for keys in KEYS:
        for workers in WORKERS:
            a = project(model, keys, workers, 1)
            b = project(model, keys, workers, 256)
            req = a["requests"]
            mark_a = " (rate limit)" if a["bound"] else ""
            mark_b = " (requests)" if b["bound"] else ""
            out.append(
                f"| {keys:,} | {workers} | {req['list']:,.0f} | {req['get']:,.0f} | "
                f"{req['delete']:,.0f} | ${a['cost']:,.2f} | {hours(b['plan'])} | "
                f"{hours(a['wall'])}{mark_a} | {hours(b['wall'])}{mark_b} | "
                f"{hours(a['driver'])} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "benchmarks/results/distributed.json")
    model = fit(json.loads(path.read_text()))
    print(markdown(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
