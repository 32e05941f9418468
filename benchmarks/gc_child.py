"""One registry-gc run, in its own process, so that ``run.py`` can measure its peak RSS.

Prints one JSON object on stdout: wall time inside the process, the collector's
timings, what was (or would be) deleted, the peak RSS of the listing's helper
process (``helper_max_rss_mib``; the run's own peak RSS is measured by
``run.py``), and for S3 the requests sent by type.

    python benchmarks/gc_child.py ROOT [--dry-run] [--delete-untagged] [--grace SECONDS]
                                       [--deletions-out FILE] [--names-only] [--count]
                                       [--manifest-cache FILE]

``ROOT`` is a directory, ``memory://…`` or ``s3://bucket[/prefix]``; S3 storage options
(endpoint, credentials) come as JSON in the environment variable ``BENCH_S3_OPTIONS``.
``--names-only`` runs ``collect(names_only=True)``; ``--count`` (a directory) counts the
objects of each backend operation (``CountingBackend``: ``list``, ``list_names``, ``stat``,
``read``, ``delete``) and prints them as ``operations``. ``--manifest-cache FILE`` runs
``collect(manifest_cache=FILE)``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

# The checkout this file is in, before any installed registry_gc: what is measured is this tree.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def figures(report: Any) -> dict[str, Any]:
    """What a run's report (a ``registry_gc.Report``) says, as the benchmark tables read it.

    Takes the report as it is, importing nothing: the import time is measured.
    """
    inv = report.inventory
    return {
        "timings": report.timings,
        "ok": report.ok,
        "deleted_count": report.deleted_count,
        "deleted_bytes": report.deleted_bytes,
        "categories": {k: v["objects"] for k, v in report.categories().items() if v["objects"]},
        "objects_listed": inv.objects,
        "blobs": len(inv.blobs),
        "repositories": len(inv.repositories),
        "tags": sum(len(r.tags) for r in inv.repositories.values()),
        "tags_with_current": sum(
            1 for r in inv.repositories.values() for t in r.tags.values() if t.current_mtime
        ),
        "manifests_read": report.manifests_read,
        "anomalies": len(inv.anomalies),
    }


def main(argv: list[str] | None = None) -> int:
    # Run as from a terminal, whatever the parent did: a background job inherits SIGINT
    # ignored, and then asyncio.run() skips its SIGINT handling, which costs time here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t_start = time.perf_counter()
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--delete-untagged", action="store_true")
    parser.add_argument("--grace", type=float, default=0.0, help="seconds")
    parser.add_argument("--deletions-out", default=None, help="stream every deletion here")
    parser.add_argument("--names-only", action="store_true", help="collect(names_only=True)")
    parser.add_argument("--count", action="store_true", help="count backend operations")
    parser.add_argument("--manifest-cache", default=None, help="collect(manifest_cache=FILE)")
    args = parser.parse_args(argv)

    import registry_gc  # noqa: PLC0415 - import time is part of what is measured

    backend = None
    root: object = args.root
    if args.root.startswith("s3://"):
        from registry_gc.backends._s3 import S3Backend  # noqa: PLC0415

        options = json.loads(os.environ.get("BENCH_S3_OPTIONS", "{}"))
        backend = S3Backend.from_url(args.root, options)
        root = backend
    counting = None
    if args.count and "://" not in args.root:
        from registry_gc.backends import CountingBackend, LocalBackend  # noqa: PLC0415

        counting = CountingBackend(LocalBackend(args.root))
        root = counting
    t_import = time.perf_counter()
    report = registry_gc.collect(
        root,  # type: ignore[arg-type]
        dry_run=args.dry_run,
        delete_untagged=args.delete_untagged,
        grace=datetime.timedelta(seconds=args.grace),
        deletions_out=args.deletions_out,
        names_only=args.names_only,
        manifest_cache=args.manifest_cache,
    )
    t_end = time.perf_counter()
    out = {
        "wall_in_process": t_end - t_start,
        "import_and_setup": t_import - t_start,
        "collect": t_end - t_import,
        # The listing's helper process (a local disk), the largest child waited for.
        "helper_max_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        **figures(report),
    }
    if counting is not None:
        out["operations"] = dict(counting.objects)
    if backend is not None:
        out["requests"] = dict(getattr(backend, "request_counts", {}))
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
