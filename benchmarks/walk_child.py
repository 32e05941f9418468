"""registry-gc's listing alone, as its dry run lists a local disk: the floor of its walk.

``walk_child.py ROOT [--names-only]`` starts the two listings a local dry run starts
(:mod:`registry_gc.backends._walk`, ``python -I -S _walk.py ROOT TOP``): ``blobs/`` and
``repositories/``, each in a process of its own with up to eight threads, at once. Their
frames are read and counted, not decoded: nothing is done with the listing. So the time
is what listing every name (and, without ``--names-only``, the ``lstat`` of every file)
costs this machine with registry-gc's walk, with no collector behind it — beside
``find``'s walk of one thread, the floor a dry run cannot go below while it lists as it
does.

Prints one JSON object: the wall time, and per listing its frames and bytes (a listing
that ended without its ``done`` frame, with an error frame, or with nothing listed fails
the run).
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from registry_gc.backends import _walk  # noqa: E402


def read_frames(stream: IO[bytes], out: dict[str, Any]) -> None:
    """Count the frames and bytes of one helper's output; decode only the last frame.

    A frame cut short ends the count: the last one whole is then not ``done``.
    """
    frames = size = 0
    last = b""
    while (data := _walk.read_frame(stream)) is not None:
        last = data
        frames += 1
        size += 8 + len(data)
    out["frames"] = frames
    out["bytes"] = size
    out["last"] = marshal.loads(last)[0] if last else None


def main(argv: list[str]) -> int:
    root = os.path.abspath(argv[0])
    extra = ["--names-only"] if "--names-only" in argv[1:] else []
    prefixes = (_walk.BLOBS_PREFIX, _walk.REPOSITORIES_PREFIX)
    tops = [os.path.join(root, p.rstrip("/")) for p in prefixes]
    t = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-S", _walk.__file__, root, top, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        for top in tops
    ]
    outs: list[dict[str, Any]] = [{"top": top} for top in tops]
    readers = [
        threading.Thread(target=read_frames, args=(p.stdout, o))
        for p, o in zip(procs, outs, strict=True)
    ]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t
    # A chunk frame at least: a wrong root lists nothing and still ends with "done".
    ok = codes == [0, 0] and all(o["last"] == "done" and o["frames"] > 1 for o in outs)
    print(json.dumps({"walk": wall, "ok": ok, "names_only": bool(extra), "listings": outs}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
