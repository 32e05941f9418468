"""The floor of a real run: unlink exactly the files a plan file names, nothing else.

    python benchmarks/unlink_child.py ROOT PLAN_FILE

Reads the deletion lines of ``PLAN_FILE`` (``--deletions-out`` of a dry run: one JSON
object per deletion, its ``paths`` as ``[path, size, mtime]``), then unlinks each path
under ``ROOT`` with one ``os.unlink`` and nothing more: no listing, no check. Then,
timed apart, one ``os.rmdir`` of each unlinked file's own directory (the registry gives
nearly every file a directory of its own, which registry-gc removes and the reference
mostly leaves): the floor of that part of the clean-up. Prints one JSON object: files
unlinked, files already gone, seconds (the unlinks), directories removed and
``rmdir_seconds``.
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
    t = time.perf_counter()
    removed = 0
    for directory in dict.fromkeys(os.path.dirname(p) for p in paths):
        try:
            os.rmdir(directory)
        except OSError:  # not empty: other files live there
            continue
        removed += 1
    rmdir_seconds = time.perf_counter() - t
    result = {
        "unlinked": len(paths) - gone,
        "already_gone": gone,
        "seconds": seconds,
        "dirs_removed": removed,
        "rmdir_seconds": rmdir_seconds,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
