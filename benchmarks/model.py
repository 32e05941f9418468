"""A cost model of a collection on S3, fitted on ``benchmarks/cluster.py``'s measurements.

Requests grow linearly with the keys of the store (``requests = a + b x keys`` per
kind — list, get, delete — fitted on the measured sizes); the wall time of a Dask run
is ``c + keys x (s + p / workers)`` (fixed cost, a per-key part that does not spread
over workers, a part that does), fitted by least squares on the runs with 1 and 2
workers. A projection is bounded below by S3's request-rate limits: 5 500 GET/HEAD/LIST
and 3 500 PUT/POST/DELETE requests per second per partitioned prefix — one prefix for a
new bucket, up to the 256 ``blobs/sha256/<xx>/`` prefixes (and more under
``repositories/``) once S3 has split the bucket under sustained load.

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


def solve3(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares for three unknowns (normal equations, Gaussian elimination)."""
    a = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
    b = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in range(3)]
    for i in range(3):
        piv = max(range(i, 3), key=lambda k: abs(a[k][i]))
        a[i], a[piv], b[i], b[piv] = a[piv], a[i], b[piv], b[i]
        for k in range(i + 1, 3):
            f = a[k][i] / a[i][i]
            a[k] = [x - f * y for x, y in zip(a[k], a[i], strict=True)]
            b[k] -= f * b[i]
    out = [0.0, 0.0, 0.0]
    for i in (2, 1, 0):
        out[i] = (b[i] - sum(a[i][j] * out[j] for j in range(i + 1, 3))) / a[i][i]
    return out


def fit(results: dict[str, Any]) -> dict[str, Any]:
    """Request lines per kind (dry runs of 2 workers; deletes from the real runs); time."""
    dry: dict[str, list[tuple[float, int]]] = {"list": [], "get": [], "delete": []}
    one: dict[str, list[tuple[float, int]]] = {"list": [], "get": []}
    time_rows: list[list[float]] = []
    times: list[float] = []
    single: list[tuple[float, float]] = []
    for size in results["sizes"]:
        keys = float(size["store"]["keys"])
        for r in size["runs"]:
            k = kinds(r["requests"])
            if r["name"] == "2 workers":
                dry["list"].append((keys, k["list"]))
                dry["get"].append((keys, k["get"]))
            if r["name"] == "2 workers, real":
                dry["delete"].append((keys, k["delete"]))
            if r["name"] == "one process":
                one["list"].append((keys, k["list"]))
                one["get"].append((keys, k["get"]))
                single.append((keys, r["wall"]))
            if r["name"] in ("1 worker", "2 workers"):
                workers = 1 if r["name"] == "1 worker" else 2
                time_rows.append([1.0, keys, keys / workers])
                times.append(r["wall"])
    model: dict[str, Any] = {
        "requests": {k: line([x for x, _ in v], [y for _, y in v]) for k, v in dry.items()},
        "requests_one": {k: line([x for x, _ in v], [y for _, y in v]) for k, v in one.items()},
        "one_process": line([x for x, _ in single], [y for _, y in single]),
    }
    c, s, p = solve3(time_rows, times) if len(times) >= 3 else (0.0, 0.0, 0.0)
    model["time"] = {"fixed": c, "serial_per_key": s, "parallel_per_key": p}
    return model


def project(model: dict[str, Any], keys: int, workers: int, partitions: int) -> dict[str, Any]:
    """Requests, cost and wall time of a run on ``keys`` keys with ``workers`` workers."""
    req = {k: max(0.0, a + b * keys) for k, (a, b) in model["requests"].items()}
    cost = sum(req[k] * PRICE[k] for k in req)
    t = model["time"]
    compute = t["fixed"] + keys * (max(t["serial_per_key"], 0.0) + t["parallel_per_key"] / workers)
    floor = max(
        (req["list"] + req["get"]) / (RATE["get"] * partitions),
        req["delete"] / (RATE["delete"] * partitions),
    )
    return {
        "requests": req,
        "cost": cost,
        "wall": max(compute, floor),
        "rate_bound": floor > compute,
    }


def hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(model: dict[str, Any]) -> str:
    r = model["requests"]
    t = model["time"]
    out = [
        (
            "Fitted (2 workers; deletes from the real runs): "
            + ", ".join(f"{k} = {a:.0f} + {b * 1000:.3f} per 1 000 keys" for k, (a, b) in r.items())
            + "."
        ),
        (
            f"Time with Dask: {t['fixed']:.1f} s + keys x ({t['serial_per_key'] * 1e6:.1f} µs "
            f"+ {t['parallel_per_key'] * 1e6:.1f} µs / workers). One process, no Dask: "
            f"{model['one_process'][0]:.1f} s + keys x {model['one_process'][1] * 1e6:.1f} µs."
        ),
        "",
        (
            "| keys | workers | LIST | GET | DeleteObjects | request cost | wall (1 prefix) "
            "| wall (256 prefixes) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for keys in KEYS:
        for workers in WORKERS:
            a = project(model, keys, workers, 1)
            b = project(model, keys, workers, 256)
            req = a["requests"]
            mark_a = " (rate limit)" if a["rate_bound"] else ""
            mark_b = " (rate limit)" if b["rate_bound"] else ""
            out.append(
                f"| {keys:,} | {workers} | {req['list']:,.0f} | {req['get']:,.0f} | "
                f"{req['delete']:,.0f} | ${a['cost']:,.2f} | {hours(a['wall'])}{mark_a} | "
                f"{hours(b['wall'])}{mark_b} |"
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
