"""Distributed runs under test: random stores, plans compared, worker plugins that spy or fail.

- :func:`random_registry` — a seeded random store with every kind of object the
  collector decides about (nested and namespaced repositories, multi-arch and
  nested indexes, referrers in their own and in other repositories, re-tags,
  untagged revisions, 2.1.0 revisions, BuildKit caches, missing manifests,
  uploads, orphan blobs and links, stray files, young objects).
- :func:`plan_key` — a plan as a comparable value (order within a phase is the
  listing's, so it is sorted; the example of ``unknown-time`` is any object).
- :class:`GraphSpy` — a scheduler plugin that pickles every task the scheduler
  receives and records whether a given byte string (a secret) is in it.
- :class:`StageFault` — a worker plugin that makes one pipeline function raise,
  or kill its worker process, on the workers (restored on teardown).
- :class:`DeleteLog` — a worker plugin that appends each delete call (paths, start,
  end) to a file, to check the order of deletions across workers.
- :func:`tree` — the files and directories under a local root.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin
from registry_gc.layout import BlobData, Digest

from tests.rigs.builder import RegistryBuilder
from tests.rigs.layouts import buildkit_cache, legacy

if TYPE_CHECKING:
    from registry_gc import Plan

__all__ = [
    "WORKER_KEY",
    "WORKER_SECRET",
    "DeleteLog",
    "GraphSpy",
    "StageFault",
    "plan_key",
    "random_registry",
    "tree",
]

#: The S3 credentials of the session's workers (and of ``worker_s3``): unique, so that a
#: search for them in a task graph or a log finds nothing else.
WORKER_KEY = "RGCW" + uuid.uuid4().hex[:16].upper()
WORKER_SECRET = "rgc-worker-secret-" + uuid.uuid4().hex

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
AGES = [10 * DAY, 10 * DAY, 10 * DAY, 2 * HOUR, 5 * MINUTE]
REPOS = ["a", "a/b", "lib/x", "lib/y", "lib/z/w", "team/api", "sigs", "c"]
TAGS = ["latest", "v1", "v2"]


def worker_environment() -> dict[str, str]:
    """The environment of the session's worker processes: their S3 credentials."""
    return {
        "AWS_ACCESS_KEY_ID": WORKER_KEY,
        "AWS_SECRET_ACCESS_KEY": WORKER_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def random_registry(seed: int, size: int = 8) -> RegistryBuilder:
    """A random store of about ``size`` operations per repository kind (deterministic)."""
    rnd = random.Random(seed)
    b = RegistryBuilder(seed)
    built: list[tuple[str, Digest]] = []
    layers: list[Digest] = []

    def repo() -> str:
        return rnd.choice(REPOS)

    def tag() -> str | None:
        return rnd.choice([None, *TAGS, *TAGS])

    for _ in range(size * 3):
        op = rnd.randrange(16)
        age = rnd.choice(AGES)
        r = repo()
        if op <= 3:
            shared = [rnd.choice(layers)] if layers and rnd.random() < 0.5 else []
            d = b.image(r, tag(), shared=shared, age=age, kind=rnd.choice(["oci", "docker"]))
            layers.extend(b.contents[d]["blobs"][1:])
            built.append((r, d))
        elif op == 4:
            d = b.multiarch(r, tag(), arches=rnd.randint(1, 3), age=age)
            built.extend((r, c) for c in b.contents[d]["children"])
            built.append((r, d))
        elif op == 5:
            inner = b.multiarch(r, None, arches=2, age=age)
            leaf = b.image(r, None, age=age)
            built.append((r, b.index(r, tag(), [inner, leaf], age=age)))
        elif op in (6, 7) and built:
            # A referrer of anything built so far: in its repository, or (cosign's
            # COSIGN_REPOSITORY) in another one.
            where, subject = rnd.choice(built)
            target = where if op == 6 else rnd.choice(REPOS)
            built.append((target, b.referrer(target, subject, tag=tag(), age=age)))
        elif op == 8 and built:
            where, target = rnd.choice(built)
            b.tag(where, rnd.choice(TAGS), target, age)
        elif op == 9:
            for t in TAGS:
                if rnd.random() < 0.3:
                    b.untag(r, t)
        elif op == 10:
            b.upload(r, age=age)
        elif op == 11:
            b.blob(b.random_bytes(60), age=age)
        elif op == 12:
            b.layer(r, age=age)
        elif op == 13:
            built.append((r, legacy(b, r, tag())))
        elif op == 14:
            d, _ = buildkit_cache(b, r, tag())
            built.append((r, d))
        elif op == 15 and built and rnd.random() < 0.3:
            # Damage: a manifest's blob lost (its repository is kept whole), or a stray file.
            _, gone = rnd.choice(built)
            path = BlobData(gone).path
            if path in b.files and rnd.random() < 0.5:
                b.remove(path)
            else:
                b.put(f"docker/registry/v2/repositories/{r}/_manifests/stray", b"x", age)
    return b


def _anomaly(kind: str, path: str, message: str) -> tuple[str, str, str]:
    if kind == "unknown-time":  # the example named is whichever object came first
        return kind, "", re.sub(r"^(\d+) object\(s\), .+? among them", r"\1 object(s)", message)
    return kind, path, message


def plan_key(plan: Plan) -> dict[str, Any]:
    """Everything a plan says, as a value that compares equal when two plans say the same."""
    return {
        "deletions": sorted(
            (d.category.value, d.reason.value, d.paths, d.size, d.repository, d.digest, d.name)
            for d in plan.deletions
        ),
        "phases": phases_of(plan),
        "kept": sorted(
            (k.category.value, k.path, round(k.age, 3), k.size, k.repository, k.digest)
            for k in plan.kept
        ),
        "anomalies": sorted(_anomaly(a.kind, a.path, a.message) for a in plan.anomalies),
        "stale_empty_dirs": plan.stale_empty_dirs,
        "protected_dirs": sorted(plan.protected_dirs),
        "removed_repositories": sorted(plan.removed_repositories),
        "totals": (plan.total_blobs, plan.total_bytes, plan.live_blobs, plan.live_bytes),
        "cutoff": plan.cutoff,
    }


def phases_of(plan: Plan) -> list[int]:
    """The phase of each deletion, in plan order, repeats collapsed (never decreasing)."""
    from registry_gc.plan import PHASES  # noqa: PLC0415

    order = {c: i for i, phase in enumerate(PHASES) for c in phase}
    out: list[int] = []
    for d in plan.deletions:
        if not out or out[-1] != order[d.category]:
            out.append(order[d.category])
    return out


def tree(root: str | os.PathLike[str]) -> set[str]:
    """Every file (and directory, with a trailing slash) under a local root."""
    out: set[str] = set()
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        for name in files:
            out.add(os.path.normpath(os.path.join(rel, name)))
        for name in dirs:
            out.add(os.path.normpath(os.path.join(rel, name)) + "/")
    return out


class GraphSpy(SchedulerPlugin):
    """Pickles every task the scheduler receives; records those holding ``needle``."""

    name = "registry-gc-graph-spy"

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.tasks = 0
        self.bytes = 0
        self.found: list[str] = []

    def update_graph(self, scheduler: Any, *, tasks: Any, **kwargs: Any) -> None:
        """Inspect the tasks just submitted."""
        from distributed.protocol.pickle import dumps  # noqa: PLC0415

        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is None or ts.run_spec is None:
                continue
            blob = dumps(ts.run_spec)
            self.tasks += 1
            self.bytes += len(blob)
            if self.needle in blob:
                self.found.append(str(key))


class StageFault(WorkerPlugin):
    """Make ``registry_gc.distributed._tasks.<name>`` raise (or kill the worker) on workers.

    ``when(args)`` chooses the calls (all by default). With ``kill``, the worker
    process exits at once (its nanny starts another); with ``once_file``, only the
    first matching call anywhere does so (the file marks it done).
    """

    name = "registry-gc-stage-fault"

    def __init__(
        self,
        target: str,
        *,
        kill: bool = False,
        once_file: str | None = None,
        category: str | None = None,
    ) -> None:
        self.target = target
        self.kill = kill
        self.once_file = once_file
        self.category = category
        self._saved: Any = None

    def setup(self, worker: Any) -> None:
        """Replace the function."""
        from registry_gc.distributed import _tasks  # noqa: PLC0415

        original = getattr(_tasks, self.target)
        self._saved = original
        fault = self

        def faulty(*args: Any, **kwargs: Any) -> Any:
            if fault.category is not None:
                plan = args[1] if len(args) > 1 else None
                cats = {d.category.value for d in getattr(plan, "deletions", ())}
                if fault.category not in cats:
                    return original(*args, **kwargs)
            if fault.once_file is not None:
                try:
                    fd = os.open(fault.once_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return original(*args, **kwargs)
                os.close(fd)
            if fault.kill:
                os._exit(17)
            msg = f"injected fault in {fault.target}"
            raise RuntimeError(msg)

        setattr(_tasks, self.target, faulty)

    def teardown(self, worker: Any) -> None:
        """Put the function back."""
        from registry_gc.distributed import _tasks  # noqa: PLC0415

        if self._saved is not None:
            setattr(_tasks, self.target, self._saved)


class DeleteLog(WorkerPlugin):
    """Wrap every deletion task's ``execute``: append ``{paths, start, end}`` lines to ``path``."""

    name = "registry-gc-delete-log"

    def __init__(self, path: str) -> None:
        self.path = path
        self._saved: Any = None

    def setup(self, worker: Any) -> None:
        """Wrap ``execute``."""
        from registry_gc.distributed import _tasks  # noqa: PLC0415

        original = self._saved = _tasks.execute
        log = self.path

        async def logged(backend: Any, plan: Any, **kwargs: Any) -> Any:
            start = time.time()
            result = await original(backend, plan, **kwargs)
            line = {
                "start": start,
                "end": time.time(),
                "categories": sorted({d.category.value for d in plan.deletions}),
                "paths": [p for d in plan.deletions for p in d.paths],
                "pid": os.getpid(),
            }
            _append(log, line)
            return result

        _tasks.execute = logged

    def teardown(self, worker: Any) -> None:
        """Put ``execute`` back."""
        from registry_gc.distributed import _tasks  # noqa: PLC0415

        if self._saved is not None:
            _tasks.execute = self._saved


def _append(path: str, line: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def read_delete_log(path: str) -> list[dict[str, Any]]:
    """The lines :class:`DeleteLog` wrote."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def secret_free(value: Any, needle: bytes) -> bool:
    """Whether ``value`` pickled holds no ``needle``."""
    return needle not in pickle.dumps(value)
