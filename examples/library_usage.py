"""A dry run through the library: what would go, and the main reasons why.

Usage::

    python examples/library_usage.py /var/lib/registry
    python examples/library_usage.py s3://my-bucket/registry

ROOT is the registry's storage root (the directory that holds
``docker/registry/v2``) or a URL such as ``s3://bucket/prefix``. Nothing is
deleted: the run is a dry run with ``delete_untagged=True``, as
``registry-gc gc ROOT --delete-untagged --dry-run`` would do.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import registry_gc


def main(argv: list[str] | None = None) -> int:
    """Run the dry run and print its summary and top reasons; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "root", help="registry root: a directory or a URL such as s3://bucket/prefix"
    )
    parser.add_argument("--top", type=int, default=5, help="how many reasons to show (default 5)")
    args = parser.parse_args(argv)

    try:
        report = registry_gc.collect(args.root, delete_untagged=True, dry_run=True)
    except registry_gc.RefusedError as e:
        print(f"refused, nothing would be deleted: {e}", file=sys.stderr)
        for problem in e.problems:
            if problem != str(e):
                print(f"  - {problem}", file=sys.stderr)
        return 3
    except OSError as e:  # registry_gc.StorageError is one too
        print(f"storage error: {e}", file=sys.stderr)
        return 4
    except (registry_gc.RegistryGCError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(report.render())

    # Deletions by (category, reason), largest first by bytes freed.
    count: Counter[tuple[str, str]] = Counter()
    size: Counter[tuple[str, str]] = Counter()
    for deletion in report.plan.deletions:
        key = (deletion.category.value, deletion.reason)
        count[key] += 1
        size[key] += deletion.size
    if count:
        print(f"\ntop reasons (of {len(count)}):")
        for key, n in sorted(count.items(), key=lambda kv: (-size[kv[0]], -kv[1]))[: args.top]:
            category, reason = key
            print(f"  {category:<10} {reason:<20} {n:>8}  {size[key]:>14,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
