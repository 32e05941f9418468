"""The floor of a real run: unlink exactly the files a plan file names, nothing else.

    python benchmarks/unlink_child.py ROOT PLAN_FILE

Reads the deletion lines of ``PLAN_FILE`` (``--deletions-out`` of a dry run: one JSON
object per deletion, its ``paths`` as ``[path, size, mtime]``), then unlinks each path
under ``ROOT`` with one ``os.unlink`` and nothing more: no listing, no check, no
directory pruning. Prints one JSON object: files unlinked, files already gone, seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    root, plan = (argv or sys.argv[1:])[:2]
    paths: list[str] = []
    with open(plan, encoding="utf-8") as f:
        next(f)  # the header line
        for line in f:
            paths.extend(os.path.join(root, p[0]) for p in json.loads(line).get("paths", ()))
    t = time.perf_counter()
    gone = 0
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            gone += 1
    seconds = time.perf_counter() - t
    sys.stdout.write(
        json.dumps({"unlinked": len(paths) - gone, "already_gone": gone, "seconds": seconds}) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
