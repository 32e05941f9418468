"""One process on a SQLite store (:mod:`sqlitestore`), so that ``run.py`` can measure its peak RSS.

``collect FILE``: ``collect(store, dry_run=True, delete_untagged=True, grace=0)``.
``real FILE``: the same run, for real: the rows of every deletion are deleted (FILE is
changed for good: give it a copy).
``list FILE``: the listing alone (``list_batches`` of ``blobs/`` and ``repositories/``,
every batch dropped once counted): what the store itself costs in memory.
``baseline FILE``: the imports the other two make, and nothing else.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import sys
import time
from pathlib import Path

# sqlitestore, and this checkout before any installed registry_gc: what is measured is this tree.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import registry_gc  # noqa: E402
import sqlitestore  # noqa: E402
from gc_child import figures  # noqa: E402
from registry_gc.layout import BLOBS_PREFIX, REPOSITORIES_PREFIX  # noqa: E402


def collect(path: str, *, real: bool = False) -> dict[str, object]:
    backend = sqlitestore.SQLiteBackend(path, writable=real)
    t = time.perf_counter()
    report = registry_gc.collect(
        backend, dry_run=not real, delete_untagged=True, grace=datetime.timedelta(0)
    )
    failed = len(report.result.failures) if report.result is not None else 0
    return {"collect": time.perf_counter() - t, **figures(report), "failed": failed}


def listing(path: str) -> dict[str, object]:
    backend = sqlitestore.SQLiteBackend(path)

    async def run() -> tuple[int, int]:
        objects = batches = 0
        for prefix in (BLOBS_PREFIX, REPOSITORIES_PREFIX):
            async for chunk in backend.list_batches(prefix):
                batches += len(chunk)
                objects += sum(len(b.names) for b in chunk)
        await backend.aclose()
        return objects, batches

    t = time.perf_counter()
    objects, batches = asyncio.run(run())
    return {"list": time.perf_counter() - t, "objects_listed": objects, "batches": batches}


def main() -> int:
    # Run as from a terminal, whatever the parent did: a background job inherits SIGINT
    # ignored, and then asyncio.run() skips its SIGINT handling, which costs time here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode, path = sys.argv[1], sys.argv[2]
    t = time.perf_counter()
    if mode in ("collect", "real"):
        result = collect(path, real=mode == "real")
    elif mode == "list":
        result = listing(path)
    else:
        result = {}
    result["wall_in_process"] = time.perf_counter() - t
    print(json.dumps(result))
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
