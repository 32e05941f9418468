"""In-process measurements on fsspec's memory filesystem, run by ``run.py`` in a child.

``inventory N``: generate about N blobs into a dict-backed :class:`DictBackend` (the
backend protocol over a plain dict: no filesystem cost, no listing cache), then
measure with tracemalloc what :func:`registry_gc.take_inventory` keeps: the whole
inventory, and the blob table alone (the bytes freed when it is dropped), per blob.

``collect N``: generate about N blobs into ``memory://`` and time a dry run and a
real run (``delete_untagged=True``, ``grace=0``) of :func:`registry_gc.collect`.

Prints one JSON object.
"""

from __future__ import annotations

import datetime
import gc
import json
import signal
import sys
import time
import tracemalloc
from pathlib import Path

# synth, and this checkout before any installed registry_gc: what is measured is this tree.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import synth  # noqa: E402


class DictBackend:
    """The backend protocol over ``{path: bytes}``: lists and reads, never deletes."""

    def __init__(self, files: dict[str, bytes], mtime: float) -> None:
        self.files = files
        self.modified = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)

    @property
    def url(self) -> str:
        return "dict://"

    async def list(self, prefix: str):
        from registry_gc.backends import ObjectInfo  # noqa: PLC0415

        prefix = prefix.rstrip("/") + "/" if prefix else ""
        for path, data in self.files.items():
            if path.startswith(prefix):
                yield ObjectInfo(path, len(data), self.modified)

    async def read(self, paths):
        return {p: self.files.get(p) for p in paths}

    async def delete(self, paths):
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def inventory(blobs: int) -> dict[str, object]:
    from registry_gc import take_inventory  # noqa: PLC0415

    spec = synth.Spec.for_blobs(blobs)
    t = time.perf_counter()
    files_iter, exp = synth.generate(spec)
    files = dict(files_iter)
    generate = time.perf_counter() - t
    backend = DictBackend(files, time.time() - synth.DEFAULT_AGE)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    inv = take_inventory(backend)
    seconds = time.perf_counter() - t
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    whole = current - base
    n_blobs = len(inv.blobs)
    inv.blobs = None  # type: ignore[assignment]
    gc.collect()
    without_blobs = tracemalloc.get_traced_memory()[0] - base
    del inv
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    blob_table = whole - without_blobs
    return {
        "blobs": n_blobs,
        "keys": exp.keys,
        "generate_seconds": generate,
        "take_inventory_seconds_traced": seconds,
        "inventory_bytes": whole,
        "inventory_bytes_per_blob": whole / n_blobs,
        "inventory_bytes_per_key": whole / exp.keys,
        "blob_table_bytes": blob_table,
        "blob_table_bytes_per_blob": blob_table / n_blobs,
        "peak_traced_bytes_during_scan": peak - base,
        "left_after_drop": after,
    }


def collect(blobs: int) -> dict[str, object]:
    import registry_gc  # noqa: PLC0415

    spec = synth.Spec.for_blobs(blobs)
    t = time.perf_counter()
    exp = synth.write_memory(spec, "/col")
    generate = time.perf_counter() - t
    out: dict[str, object] = {"blobs": exp.blobs, "keys": exp.keys, "generate_seconds": generate}
    for mode in ("dry", "real"):
        t = time.perf_counter()
        report = registry_gc.collect(
            "memory:///col",
            dry_run=mode == "dry",
            delete_untagged=True,
            grace=datetime.timedelta(0),
        )
        out[mode] = {
            "wall": time.perf_counter() - t,
            "timings": report.timings,
            "deleted_count": report.deleted_count,
            "ok": report.ok,
        }
    import fsspec  # noqa: PLC0415

    fs = fsspec.filesystem("memory")
    prefix = "/col/docker/registry/v2/blobs/"
    left = {
        "sha256:" + p.rsplit("/", 2)[-2]
        for p in list(fs.store)
        if p.startswith(prefix) and p.endswith("/data")
    }
    out["blobs_left"] = len(left)
    out["blobs_left_as_expected"] = left == exp.live
    return out


def main() -> int:
    # Run as from a terminal, whatever the parent did: a background job inherits SIGINT
    # ignored, and then asyncio.run() skips its SIGINT handling, which costs time here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode, blobs = sys.argv[1], int(sys.argv[2])
    result = inventory(blobs) if mode == "inventory" else collect(blobs)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
