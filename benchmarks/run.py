"""Benchmark registry-gc against the reference ``docker-registry garbage-collect``.

Scenarios (``--scenario``):

- ``local`` (default): a synthetic store (:mod:`synth`, about 50k blobs / 113k keys)
  on a local filesystem. Timed, each in its own process (wall time, peak RSS from
  ``wait4``): registry-gc dry run and real run (``delete_untagged=True``, ``grace=0``),
  and the reference 2.8.2 ``garbage-collect --delete-untagged [--dry-run]``. Real runs
  get fresh copies of the store. What each leaves is checked blob by blob against
  what the generator says must survive; a second store without multi-arch images and
  referrers checks that both tools leave the same blobs. Then the inventory's memory
  per blob (tracemalloc, 200k blobs).
- ``memory``: the same store on fsspec's in-process memory filesystem (registry-gc
  only), and the inventory memory measurement.
- ``s3``: SeaweedFS (``tests/rigs/s3.py``), a 10k-blob store (``--s3-blobs``) written
  to two buckets;
  registry-gc's requests counted by ``S3Backend.request_counts``, the reference's by a
  counting proxy (:mod:`s3proxy`); compared with the request floor
  ``⌈K/1000⌉ LIST + (T+M) GET + ⌈D/1000⌉ DeleteObjects``.
- ``steady`` (issue 13): the local store collected once (``-m``, no grace), then about
  ``--steady-fraction`` (1 %) of its files pushed anew (tags moved to new images, orphan
  blobs, a tenth of them inside the grace period): the next run, ``-m --grace 1h``, timed
  full, names-only (``--names-only``) and the reference, each on a copy, with the objects
  listed by name and the ``stat`` calls counted (``CountingBackend``), and what the full
  and the names-only runs leave compared blob by blob.
- ``steady-cache``: :mod:`steady_cache` — the same kind of steady store (``--blobs``,
  ``--steady-fraction``), on a local disk and on S3 (SeaweedFS): the next dry run
  without and with the manifest cache (``gc --manifest-cache``), and the reference,
  ``--repeat`` times each.
- ``sqlite``: the same store, of ``--blobs`` blobs, served from one SQLite file
  (:mod:`sqlitestore`; ``--store FILE`` reuses one written before by
  ``sqlitestore.py FILE --blobs N --seed S``): a 10M-blob store is more files than the
  disk has inodes. Each in its own process (:mod:`sqlite_child`): the imports alone
  (the baseline), the store's listing alone, registry-gc's dry run and (``--real``)
  its real run on a copy of the file; peak RSS above the baseline, per blob.
- ``all``: local, memory and s3.

Run ``python benchmarks/run.py --help``; ``nox -s bench -- ARGS`` runs this file.
Targets are reported (met or not), never asserted.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import sqlitestore  # noqa: E402
import synth  # noqa: E402

REFERENCE = "docker-registry"
#: How the peak RSS GNU time measured is marked in a child's standard error.
MAXRSS_MARK = "bench-max-rss-kib="
PY = sys.executable

#: Targets from the issues; reported, never asserted. Local disk (issue 13): a dry run in
#: at most 0.5x and a real run in at most 0.7x the reference's wall time.
TARGET_REAL_SPEEDUP = 1 / 0.7
TARGET_DRY_SPEEDUP = 2.0
TARGET_BLOB_TABLE_BYTES = 300.0
TARGET_S3_FLOOR_RATIO = 1.1
TARGET_S3_FEWER_REQUESTS = 20.0
TARGET_S3_WALL_SPEEDUP = 10.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# -- processes ---------------------------------------------------------------------------


@dataclasses.dataclass
class Measured:
    """One timed child process."""

    name: str
    wall: float
    max_rss_mib: float
    user: float
    sys: float
    rc: int
    load_before: float
    load_after: float
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    log: str = ""


def measure(
    name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None
) -> Measured:
    """Run ``argv``; wall time, and peak RSS and CPU of exactly that child (``os.wait4``).

    The peak RSS comes from GNU ``time`` (``/usr/bin/time -f %M``) when it is installed: a
    child forked from this process keeps, across ``exec``, the high-water mark of the pages
    it shared with this one (the benchmark's own 80 MiB), which ``wait4`` reports.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    stem = logdir / name.replace(" ", "_").replace("/", "_")
    out_path, err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
    load_before = load1()
    timer = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
    if timer:
        argv = [timer, "-f", f"{MAXRSS_MARK}%M", *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss_kib = usage.ru_maxrss
    if timer:
        for line in reversed(err_path.read_text(errors="replace").splitlines()):
            if line.startswith(MAXRSS_MARK):
                max_rss_kib = int(line[len(MAXRSS_MARK) :])
                break
    m = Measured(
        name=name,
        wall=wall,
        max_rss_mib=max_rss_kib / 1024,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        rc=proc.returncode,
        load_before=load_before,
        load_after=load1(),
        log=str(stem),
    )
    text = out_path.read_text(errors="replace")
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                m.result = json.loads(line)
            break
    if m.rc != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        log(f"{name}: exit code {m.rc}; stderr tail:\n{tail}")
    log(
        f"{name}: {m.wall:.2f} s wall, {m.max_rss_mib:.0f} MiB peak RSS, "
        f"load {m.load_before} -> {m.load_after}"
    )
    return m


def reference_binary() -> str | None:
    return shutil.which(REFERENCE)


def reference_env() -> dict[str, str]:
    # 2.8.2 panics on AWS_CA_BUNDLE; REGISTRY_* would override the config file.
    return {
        k: v
        for k, v in os.environ.items()
        if k != "AWS_CA_BUNDLE" and not k.startswith("REGISTRY_")
    }


def reference_config(path: Path, storage: dict[str, Any]) -> Path:
    """Write the YAML the reference needs (the test rig's config, without serving)."""
    import yaml  # noqa: PLC0415

    cfg = {
        "version": 0.1,
        "log": {"level": "error", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            **storage,
            "delete": {"enabled": True},
            "redirect": {"disable": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:5000", "secret": "registry-gc-bench"},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_reference(name: str, config: Path, logdir: Path, *, dry: bool) -> Measured:
    argv = [reference_binary() or REFERENCE, "garbage-collect", "--delete-untagged"]
    if dry:
        argv.append("--dry-run")
    argv.append(str(config))
    m = measure(name, argv, logdir, env=reference_env())
    # "N blobs marked, M blobs and K manifests eligible for deletion"
    for line in Path(m.log + ".out").read_text(errors="replace").splitlines():
        if "blobs marked" in line:
            words = line.replace(",", "").split()
            m.result = {
                "marked": int(words[0]),
                "eligible_blobs": int(words[3]),
                "eligible_manifests": int(words[6]),
            }
    return m


def run_registry_gc(
    name: str,
    root: str,
    logdir: Path,
    *,
    dry: bool,
    env: dict[str, str] | None = None,
    deletions_out: Path | None = None,
) -> Measured:
    argv = [PY, str(HERE / "gc_child.py"), root, "--delete-untagged", "--grace", "0"]
    if dry:
        argv.append("--dry-run")
    if deletions_out is not None:
        argv += ["--deletions-out", str(deletions_out)]
    return measure(name, argv, logdir, env=env)


def run_floor(
    work: Path,
    src: Path,
    plan: Path,
    i: int,
    runs: dict[str, list[Measured]],
    *,
    keep: bool,
    unlink: bool,
) -> None:
    """The floor: a bare walk of the tree (``find``, one thread), registry-gc's own listing
    alone (:mod:`walk_child`: its two helper processes at once, nothing behind them);
    unlinking exactly the planned files (a copy), then removing the directories of their
    own that this left empty (:mod:`unlink_child`)."""
    logdir = work / "logs"
    settle(src)
    runs["floor walk"].append(
        measure(f"local floor walk {i}", ["find", str(src), "-printf", "%s %T@\\n"], logdir)
    )
    settle(src)
    runs["floor listing"].append(
        measure(f"local floor listing {i}", [PY, str(HERE / "walk_child.py"), str(src)], logdir)
    )
    if not unlink:
        return
    copy = work / f"local-floor-{i}"
    copy_tree(src, copy)
    settle(copy)
    runs["floor unlink"].append(
        measure(
            f"local floor unlink {i}",
            [PY, str(HERE / "unlink_child.py"), str(copy), str(plan)],
            logdir,
        )
    )
    if not keep:
        remove_tree(copy)


# -- local stores ------------------------------------------------------------------------


def copy_tree(src: Path, dst: Path) -> None:
    if shutil.which("cp"):
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    else:  # pragma: no cover
        shutil.copytree(src, dst, symlinks=True)


def remove_tree(path: Path) -> None:
    if shutil.which("rm"):
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)
    else:  # pragma: no cover
        shutil.rmtree(path, ignore_errors=True)


#: How every timed run starts (``--cache``): ``"warm"``, every file of its store read just
#: before; ``"cold"``, the kernel's page, dentry and inode caches dropped just before.
CACHE = {"state": "warm"}
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def can_drop_caches() -> str | None:
    """Why ``--cache cold`` cannot be measured here, or ``None`` when it can."""
    if not DROP_CACHES.exists():
        return f"{DROP_CACHES} does not exist (not Linux?)"
    if not os.access(DROP_CACHES, os.W_OK):
        return f"{DROP_CACHES} is not writable: --cache cold needs root"
    return None


def settle(path: Path) -> None:
    """Put the caches in the state every timed run starts from (``CACHE``).

    Warm: every file under ``path`` read once. Cold: dirty pages written, then the page,
    dentry and inode caches dropped, so the run reads its store (names, inodes, bytes)
    from the disk, as a nightly run over a store larger than the page cache does.
    """
    if CACHE["state"] == "cold":
        os.sync()
        DROP_CACHES.write_text("3\n")
        return
    subprocess.run(
        f"find {shlex_quote(str(path))} -type f -print0 | xargs -0 -r cat > /dev/null",
        shell=True,
        check=False,
    )


def shlex_quote(s: str) -> str:
    import shlex  # noqa: PLC0415

    return shlex.quote(s)


def local_blobs(root: Path) -> set[str]:
    """Digests of every ``blobs/sha256/<xx>/<hex>/data`` under a local registry root."""
    base = root / synth.V2 / "blobs" / "sha256"
    out: set[str] = set()
    if not base.is_dir():
        return out
    with os.scandir(base) as level1:
        for two in level1:
            if not two.is_dir():
                continue
            with os.scandir(two.path) as level2:
                for blob in level2:
                    if os.path.isfile(os.path.join(blob.path, "data")):
                        out.add("sha256:" + blob.name)
    return out


def check_blobs(left: set[str], expected: set[str], what: str) -> dict[str, Any]:
    ok = left == expected
    out = {
        "blobs_left": len(left),
        "expected": len(expected),
        "as_expected": ok,
        "missing": len(expected - left),
        "extra": len(left - expected),
    }
    log(
        f"check {what}: {len(left)} blobs left, expected {len(expected)}: "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    return out


def median_run(runs: list[Measured]) -> Measured:
    """The run with the median wall time (all runs are kept in the JSON)."""
    ordered = sorted(runs, key=lambda m: m.wall)
    return ordered[(len(ordered) - 1) // 2]


def scenario_local(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    logdir = work / "logs"
    spec = synth.Spec.for_blobs(args.blobs, seed=args.seed)
    t = time.perf_counter()
    if args.store:
        # Written before by ``synth.py DIR --blobs N --seed S``: only the expectations again.
        src = Path(args.store)
        files, exp = synth.generate(spec)
        for _ in files:
            pass
        log(f"using {src} as written by synth.py for {spec}")
    else:
        src = work / "local-src"
        log(f"generating {spec} into {src}")
        exp = synth.write_local(spec, str(src))
    gen_s = time.perf_counter() - t
    log(f"generated {exp.blobs} blobs, {exp.keys} keys in {gen_s:.1f} s")
    ref = args.reference and reference_binary() is not None
    if args.reference and not ref:
        log(f"{REFERENCE} is not installed: the reference runs are skipped")
    section: dict[str, Any] = {
        "spec": dataclasses.asdict(spec),
        "store": exp.counts(),
        "generate_seconds": gen_s,
        "runs": {},
        "checks": {},
    }
    results["local"] = section
    runs: dict[str, list[Measured]] = {
        "rgc dry": [],
        "rgc real": [],
        "ref dry": [],
        "ref real": [],
        "floor walk": [],
        "floor listing": [],
        "floor unlink": [],
        "rgc json": [],
    }

    for i in range(args.repeat):
        settle(src)
        runs["rgc dry"].append(run_registry_gc(f"local rgc dry {i}", str(src), logdir, dry=True))
        # The command line's dry run with --json, every deletion streamed to a plan file
        # (its peak RSS; the plan is what the unlink floor deletes).
        plan = work / f"plan-{i}.jsonl"
        cli = [PY, "-m", "registry_gc", "gc", str(src), "--dry-run", "-m", "--grace", "0s"]
        settle(src)
        runs["rgc json"].append(
            measure(f"local rgc json {i}", [*cli, "--json", "--deletions-out", str(plan)], logdir)
        )
        run_floor(work, src, plan, i, runs, keep=args.keep, unlink=args.real)
        if ref:
            cfg = reference_config(
                work / "ref-src.yml", {"filesystem": {"rootdirectory": str(src)}}
            )
            settle(src)
            runs["ref dry"].append(run_reference(f"local ref dry {i}", cfg, logdir, dry=True))
        for tool in (("rgc", "ref") if ref else ("rgc",)) if args.real else ():
            copy = work / f"local-{tool}-{i}"
            copy_tree(src, copy)
            settle(copy)
            if tool == "rgc":
                m = run_registry_gc(f"local rgc real {i}", str(copy), logdir, dry=False)
                expected = exp.live
            else:
                cfg = reference_config(
                    work / f"ref-{i}.yml", {"filesystem": {"rootdirectory": str(copy)}}
                )
                m = run_reference(f"local ref real {i}", cfg, logdir, dry=False)
                expected = exp.reference_live
            m.result["check"] = check_blobs(local_blobs(copy), expected, m.name)
            runs[f"{tool} real"].append(m)
            if not args.keep:
                remove_tree(copy)

    for key, ms in runs.items():
        if ms:
            section["runs"][key] = [dataclasses.asdict(m) for m in ms]
    counts = {m.result.get("deleted_count") for m in runs["rgc dry"] + runs["rgc real"]}
    section["checks"]["rgc_dry_run_reports_what_real_run_deletes"] = len(counts) == 1
    if ref:
        marked = {m.result.get("marked") for m in runs["ref dry"] + runs["ref real"]}
        section["checks"]["ref_marked_as_modelled"] = marked == {len(exp.reference_live)}
        # What the reference deletes and registry-gc keeps: platform images of
        # multi-arch tags and referrers (2.8.2 treats both as untagged).
        section["checks"]["blobs_only_rgc_keeps"] = len(exp.live - exp.reference_live)
        section["checks"]["blobs_only_ref_keeps"] = len(exp.reference_live - exp.live)

    if ref and args.parity_blobs > 0:
        parity(args, work, section)


#: The nightly run of the steady scenario: the default grace period.
STEADY_GRACE = 3600.0


def run_steady_gc(name: str, root: Path, logdir: Path, *, names_only: bool, dry: bool) -> Measured:
    """One nightly run (``-m``, an hour's grace), its backend operations counted."""
    argv = [PY, str(HERE / "gc_child.py"), str(root), "--delete-untagged", "--count"]
    argv += ["--grace", str(STEADY_GRACE)]
    if names_only:
        argv.append("--names-only")
    if dry:
        argv.append("--dry-run")
    return measure(name, argv, logdir)


def scenario_steady(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    """A collected store, a day of pushes, and the next run: full, names-only, reference."""
    logdir = work / "logs"
    spec = synth.Spec.for_blobs(args.blobs, seed=args.seed)
    src = work / "steady-src"
    log(f"steady: generating {spec} into {src}")
    exp = synth.write_local(spec, str(src))
    first = measure(
        "steady first collect",
        [PY, str(HERE / "gc_child.py"), str(src), "--delete-untagged", "--grace", "0"],
        logdir,
    )
    clean = sum(len(names) for _, _, names in os.walk(src))
    changes = synth.push_changes(str(src), args.steady_fraction, seed=args.seed + 1)
    keys = sum(len(names) for _, _, names in os.walk(src))
    log(f"steady: {clean} files after the first run; pushed {changes}; {keys} files now")
    ref = args.reference and reference_binary() is not None
    section: dict[str, Any] = {
        "spec": dataclasses.asdict(spec),
        "generated": exp.counts(),
        "first_collect": dataclasses.asdict(first),
        "files_after_first_collect": clean,
        "changes": dataclasses.asdict(changes),
        "files": keys,
        "runs": {},
        "checks": {},
    }
    results["steady"] = section
    runs: dict[str, list[Measured]] = {
        "full dry": [],
        "names-only dry": [],
        "full real": [],
        "names-only real": [],
        "reference real": [],
    }
    left: dict[str, set[str]] = {}
    for i in range(args.repeat):
        for kind in ("full", "names-only"):
            settle(src)
            runs[f"{kind} dry"].append(
                run_steady_gc(
                    f"steady {kind} dry {i}", src, logdir, names_only=kind != "full", dry=True
                )
            )
        for kind in ("full", "names-only", "reference") if ref else ("full", "names-only"):
            copy = work / f"steady-{kind}-{i}"
            copy_tree(src, copy)
            settle(copy)
            if kind == "reference":
                cfg = reference_config(
                    work / f"steady-ref-{i}.yml", {"filesystem": {"rootdirectory": str(copy)}}
                )
                m = run_reference(f"steady reference real {i}", cfg, logdir, dry=False)
            else:
                m = run_steady_gc(
                    f"steady {kind} real {i}", copy, logdir, names_only=kind != "full", dry=False
                )
            runs[f"{kind} real"].append(m)
            left[kind] = local_blobs(copy)
            if not args.keep:
                remove_tree(copy)
    for key, ms in runs.items():
        if ms:
            section["runs"][key] = [dataclasses.asdict(m) for m in ms]
    full = runs["full real"] + runs["full dry"]
    names = runs["names-only real"] + runs["names-only dry"]
    section["checks"]["names_only_deletes_what_full_deletes"] = {
        m.result.get("deleted_count") for m in full
    } == {m.result.get("deleted_count") for m in names}
    section["checks"]["names_only_leaves_the_blobs_full_leaves"] = (
        left["full"] == left["names-only"]
    )


def _steady_markdown(steady: dict[str, Any]) -> list[str]:
    ch = steady["changes"]
    lines = [
        "",
        (
            f"### Steady state: {steady['files']} files, {steady['files_after_first_collect']} "
            f"after a first run; then {ch['files']} new files ({ch['retagged']} tags moved to "
            f"new images, {ch['orphans']} orphan blobs; {ch['young']} written within the "
            "grace period)"
        ),
        "",
        _row(
            [
                "run (-m --grace 1h)",
                "wall s",
                "CPU s",
                "peak RSS MiB",
                "listed by name",
                "listed with a stat",
                "stat calls",
                "manifests read",
                "deleted",
                "load 1 min",
            ]
        ),
        _row(["---"] * 10),
    ]
    for key, ms in steady["runs"].items():
        m = sorted(ms, key=lambda m: m["wall"])[(len(ms) - 1) // 2]
        r = m["result"]
        ops = r.get("operations", {})
        if key.startswith("reference"):
            deleted = (
                f"{r.get('eligible_blobs', '?')} blobs + "
                f"{r.get('eligible_manifests', '?')} manifests (no grace)"
            )
            listed = ["", "", "", ""]
        else:
            deleted = f"{r.get('deleted_count', '?')} objects"
            listed = [
                ops.get("list_names", 0),
                ops.get("list", 0),
                ops.get("stat", 0),
                r.get("manifests_read", "?"),
            ]
        lines.append(
            _row(
                [
                    key,
                    f"{m['wall']:.2f}",
                    f"{m['user'] + m['sys']:.2f}",
                    f"{m['max_rss_mib']:.0f}",
                    *listed,
                    deleted,
                    f"{m['load_before']:.2f}",
                ]
            )
        )
    checks = steady["checks"]
    lines += [
        "",
        (
            "Names-only deletes what the full run deletes: "
            f"{'yes' if checks['names_only_deletes_what_full_deletes'] else '**no**'}; "
            "leaves the same blobs: "
            f"{'yes' if checks['names_only_leaves_the_blobs_full_leaves'] else '**no**'}."
        ),
    ]
    return lines


def parity(args: argparse.Namespace, work: Path, section: dict[str, Any]) -> None:
    """A store without multi-arch images and referrers: both tools must leave the same blobs."""
    logdir = work / "logs"
    spec = synth.Spec.for_blobs(args.parity_blobs, seed=args.seed + 1, multiarch=0.0, referrers=0.0)
    src = work / "parity-src"
    exp = synth.write_local(spec, str(src))
    log(f"parity store: {exp.blobs} blobs, {exp.keys} keys (no multi-arch, no referrers)")
    left: dict[str, set[str]] = {}
    out: dict[str, Any] = {"store": exp.counts(), "runs": {}}
    for tool in ("rgc", "ref"):
        copy = work / f"parity-{tool}"
        copy_tree(src, copy)
        settle(copy)
        if tool == "rgc":
            m = run_registry_gc("parity rgc real", str(copy), logdir, dry=False)
        else:
            cfg = reference_config(
                work / "parity.yml", {"filesystem": {"rootdirectory": str(copy)}}
            )
            m = run_reference("parity ref real", cfg, logdir, dry=False)
        left[tool] = local_blobs(copy)
        out["runs"][tool] = dataclasses.asdict(m)
        if not args.keep:
            remove_tree(copy)
    if not args.keep:
        remove_tree(src)
    same = left["rgc"] == left["ref"]
    out["same_blobs_left"] = same
    out["blobs_left"] = {k: len(v) for k, v in left.items()}
    out["only_rgc"] = len(left["rgc"] - left["ref"])
    out["only_ref"] = len(left["ref"] - left["rgc"])
    out["as_expected"] = left["rgc"] == exp.live
    log(f"parity: same blob set left by both: {same} ({out['blobs_left']})")
    section["parity"] = out


def scenario_steady_cache(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    """The next run after a day of pushes, with and without the manifest cache (disk, S3)."""
    import steady_cache  # noqa: PLC0415 - it imports this module

    options = argparse.Namespace(
        blobs=args.blobs,
        fraction=args.steady_fraction,
        seed=args.seed,
        repeat=args.repeat,
        reference=args.reference,
    )
    results["steady_cache"] = {
        where: steady_cache.measure_where(where, options, work) for where in ("disk", "s3")
    }


def scenario_inventory(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    if args.inventory_blobs <= 0:
        return
    m = measure(
        "inventory memory",
        [PY, str(HERE / "memory_child.py"), "inventory", str(args.inventory_blobs)],
        work / "logs",
    )
    results["inventory_memory"] = {
        **m.result,
        "load_before": m.load_before,
        "load_after": m.load_after,
    }


def scenario_memory(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    m = measure(
        "memory collect",
        [PY, str(HERE / "memory_child.py"), "collect", str(args.memory_blobs or args.blobs)],
        work / "logs",
    )
    results["memory"] = {
        **m.result,
        "process_wall": m.wall,
        "max_rss_mib": m.max_rss_mib,
        "load_before": m.load_before,
        "load_after": m.load_after,
    }


def scenario_sqlite(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    logdir = work / "logs"
    spec = synth.Spec.for_blobs(args.blobs, seed=args.seed)
    t = time.perf_counter()
    if args.store:
        db = Path(args.store)
        meta = sqlitestore.store_meta(db)
        if synth.Spec(**meta["spec"]) != spec:
            log(f"{db} holds {meta['spec']}, not {spec}: measuring the store as it is")
        counts = meta["counts"]
        log(f"using {db}: {counts['blobs']} blobs, {counts['keys']} keys")
    else:
        db = work / "store.db"
        log(f"generating {spec} into {db}")
        counts = sqlitestore.write_sqlite(spec, db).counts()
    gen_s = time.perf_counter() - t
    section: dict[str, Any] = {
        "spec": dataclasses.asdict(spec),
        "store": counts,
        "file": str(db),
        "file_bytes": db.stat().st_size,
        "generate_seconds": None if args.store else gen_s,
        "runs": {},
    }
    results["sqlite"] = section
    child = [PY, str(HERE / "sqlite_child.py")]
    modes = (
        ("baseline", "list", "collect", "real") if args.real else ("baseline", "list", "collect")
    )
    for mode in modes:
        runs = []
        for i in range(1 if mode == "baseline" else args.repeat):
            target = db
            if mode == "real":  # the run deletes rows: a copy of the file, once per run
                target = work / "store-real.db"
                log(f"copying {db} to {target}")
                shutil.copyfile(db, target)
            try:
                runs.append(measure(f"sqlite {mode} {i}", [*child, mode, str(target)], logdir))
            finally:
                if target != db:
                    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
                        leftover.unlink(missing_ok=True)
        section["runs"][mode] = [dataclasses.asdict(m) for m in runs]
    base = section["runs"]["baseline"][0]["max_rss_mib"]
    blobs = counts["blobs"]
    for mode in modes[1:]:
        for m in section["runs"][mode]:
            m["bytes_per_blob_above_baseline"] = (m["max_rss_mib"] - base) * 2**20 / blobs


def _sqlite_markdown(sq: dict[str, Any]) -> list[str]:
    st = sq["store"]
    base = sq["runs"]["baseline"][0]
    lines = [
        "",
        (
            f"### SQLite-served store: {st['blobs']} blobs, {st['keys']} keys "
            f"({sq['file_bytes'] / 2**30:.1f} GiB file)"
        ),
        "",
        _row(["run", "wall s", "CPU s", "peak RSS MiB", "above baseline, per blob", "load"]),
        _row(["---"] * 6),
        _row(
            [
                "baseline (imports)",
                f"{base['wall']:.2f}",
                f"{base['user'] + base['sys']:.1f}",
                f"{base['max_rss_mib']:.0f}",
                "",
                base["load_before"],
            ]
        ),
    ]
    whats = (
        ("list", "the store's listing alone"),
        ("collect", "registry-gc dry"),
        ("real", "registry-gc real"),
    )
    for mode, what in whats:
        for m in sq["runs"].get(mode, ()):
            r = m["result"]
            detail = f" ({r.get('deleted_count', '?')} deletions)" if mode != "list" else ""
            lines.append(
                _row(
                    [
                        what + detail,
                        f"{m['wall']:.2f}",
                        f"{m['user'] + m['sys']:.1f}",
                        f"{m['max_rss_mib']:.0f}",
                        f"{m['bytes_per_blob_above_baseline']:.0f} B",
                        f"{m['load_before']} -> {m['load_after']}",
                    ]
                )
            )
    return lines


# -- S3 ------------------------------------------------------------------------------------


def floor_requests(r: dict[str, Any], *, real: bool) -> dict[str, int]:
    """⌈K/1000⌉ LIST + (T+M) GET (+ ⌈D/1000⌉ DeleteObjects for a real run)."""
    lists = math.ceil(r["objects_listed"] / 1000)
    gets = r["tags_with_current"] + r["manifests_read"]
    deletes = math.ceil(r["deleted_count"] / 1000) if real else 0
    return {"LIST": lists, "GET": gets, "DeleteObjects": deletes, "total": lists + gets + deletes}


def s3_blobs(server: Any, bucket: str) -> set[str]:
    keys = server.list_keys(bucket, prefix=f"{synth.V2}/blobs/")
    return {"sha256:" + k.rsplit("/", 2)[-2] for k in keys if k.endswith("/data")}


def scenario_s3(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    from s3proxy import CountingProxy  # noqa: PLC0415
    from tests.rigs.registry import S3Storage  # noqa: PLC0415
    from tests.rigs.s3 import SeaweedS3  # noqa: PLC0415

    logdir = work / "logs"
    blobs = args.s3_blobs
    spec = synth.Spec.for_blobs(blobs, seed=args.seed)
    ref = args.reference and reference_binary() is not None
    section: dict[str, Any] = {"spec": dataclasses.asdict(spec), "runs": {}}
    results["s3"] = section
    log("starting SeaweedFS")
    with SeaweedS3(data_dir=work / "seaweed") as server:
        client = server.client()
        buckets = {"rgc": "bench-rgc", "ref": "bench-ref"}
        for b in buckets.values():
            client.create_bucket(Bucket=b)
        targets = [(buckets["rgc"], "")] + ([(buckets["ref"], "")] if ref else [])
        t = time.perf_counter()
        exp = synth.write_s3(spec, server.client, targets)
        section["store"] = exp.counts()
        section["generate_seconds"] = time.perf_counter() - t
        log(
            f"wrote {exp.keys} keys x {len(targets)} bucket(s) "
            f"in {section['generate_seconds']:.0f} s"
        )
        options = server.storage_options()
        direct = {**os.environ, "BENCH_S3_OPTIONS": json.dumps(options)}
        latency = args.s3_latency_ms / 1000
        section["latency_ms"] = args.s3_latency_ms
        with CountingProxy("127.0.0.1", server.port, latency=latency) as proxy:
            proxied_options = {**options, "endpoint_url": proxy.endpoint_url}
            proxied = {**os.environ, "BENCH_S3_OPTIONS": json.dumps(proxied_options)}
            # With simulated latency every timed run goes through the proxy; without,
            # registry-gc's timed runs are direct (its own counter counts requests) and
            # one extra proxied dry run checks that the two counts agree.
            timed_env = proxied if latency else direct
            url = f"s3://{buckets['rgc']}"
            runs: dict[str, Measured] = {}

            def rgc(key: str, *, dry: bool, env: dict[str, str], via_proxy: bool) -> Measured:
                proxy.reset()
                m = run_registry_gc(f"s3 {key}", url, logdir, dry=dry, env=env)
                m.result["via_proxy"] = via_proxy
                if via_proxy:
                    m.result["proxy_requests"] = dict(proxy.reset())
                runs[key] = m
                return m

            def reference(key: str, *, dry: bool, endpoint: str) -> Measured:
                storage = S3Storage.on(server, buckets["ref"])
                cfg = reference_config(
                    work / f"ref-s3-{key.replace(' ', '-')}.yml",
                    dataclasses.replace(storage, endpoint_url=endpoint).driver_config(),
                )
                proxy.reset()
                m = run_reference(f"s3 {key}", cfg, logdir, dry=dry)
                via_proxy = endpoint == proxy.endpoint_url
                m.result["via_proxy"] = via_proxy
                if via_proxy:
                    m.result["requests"] = dict(proxy.reset())
                runs[key] = m
                return m

            rgc("rgc dry", dry=True, env=timed_env, via_proxy=bool(latency))
            if not latency:
                rgc("rgc dry (proxied)", dry=True, env=proxied, via_proxy=True)
            if ref:
                if not latency:
                    reference("ref dry (direct)", dry=True, endpoint=server.endpoint_url)
                reference("ref dry", dry=True, endpoint=proxy.endpoint_url)
            m = rgc("rgc real", dry=False, env=timed_env, via_proxy=bool(latency))
            m.result["check"] = check_blobs(s3_blobs(server, buckets["rgc"]), exp.live, m.name)
            if ref:
                m = reference("ref real", dry=False, endpoint=proxy.endpoint_url)
                m.result["check"] = check_blobs(
                    s3_blobs(server, buckets["ref"]), exp.reference_live, m.name
                )
        for key, m in runs.items():
            section["runs"][key] = dataclasses.asdict(m)
        for mode in ("dry", "real"):
            r = runs[f"rgc {mode}"].result
            if "objects_listed" in r:
                section[f"floor {mode}"] = floor_requests(r, real=mode == "real")


# -- report ---------------------------------------------------------------------------------


def compile_package() -> bool:
    """Compile registry_gc's bytecode, as ``pip install`` does, so that each run reads it.

    From a source tree with ``PYTHONDONTWRITEBYTECODE`` set (as on these machines), every
    timed child would otherwise compile every module it imports: about 0.3 s of each run
    that an installed tool never spends. ``False`` when the tree is not writable.
    """
    return bool(compileall.compile_dir(REPO / "registry_gc", quiet=1))


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_at_start": list(os.getloadavg()),
        "cache": CACHE["state"],
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import registry_gc  # noqa: PLC0415

        info["registry_gc"] = getattr(registry_gc, "__version__", "?")
    with contextlib.suppress(Exception):
        info["commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    if reference_binary():
        with contextlib.suppress(Exception):
            info["reference"] = subprocess.run(
                [REFERENCE, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
    return info


def _fmt_requests(req: dict[str, int] | None) -> str:
    if not req:
        return ""
    total = sum(req.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(req.items(), key=lambda kv: -kv[1]))
    return f"{total} ({parts})"


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _check_text(m: dict[str, Any]) -> str:
    if m.get("rc"):
        return f"**failed: exit {m['rc']}**"
    c = m["result"].get("check")
    if not c:
        return ""
    return f"{c['blobs_left']} left, {'as expected' if c['as_expected'] else 'MISMATCH'}"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    mach = results["machine"]
    lines.append(
        f"Machine: {mach.get('nproc')} CPUs ({mach.get('cpu', '?')}), "
        f"{mach.get('ram_gib', '?')} GiB RAM, "
        f"Python {mach.get('python')}, load average at start {mach['load_at_start'][0]:.2f}, "
        f"{mach.get('cache', 'warm')} caches before every timed run."
    )
    targets: list[tuple[str, str, str, bool | None]] = []
    local = results.get("local")
    if local:
        st = local["store"]
        lines += [
            "",
            (
                f"### Local filesystem: {st['blobs']} blobs, {st['keys']} keys, "
                f"{st['repositories']} repositories, {st['tags']} tags, {st['revisions']} revisions"
            ),
            "",
            _row(
                [
                    "tool",
                    "run",
                    "wall s (median)",
                    "peak RSS MiB",
                    "CPU s (user+sys)",
                    "deleted",
                    "result",
                    "load 1 min",
                ]
            ),
            _row(["---"] * 8),
        ]
        med: dict[str, dict[str, Any]] = {}
        for key, ms in local["runs"].items():
            walls = [m["wall"] for m in ms]
            m = sorted(ms, key=lambda m: m["wall"])[(len(ms) - 1) // 2]
            med[key] = m
            tool = {"rgc": "registry-gc", "ref": "reference 2.8.2"}.get(key.split()[0], "floor")
            r = m["result"]
            if key == "rgc json":
                deleted = "`gc --dry-run -m --json --deletions-out F`"
            elif key.startswith("rgc"):
                deleted = f"{r.get('deleted_count', '?')} objects"
            elif key == "floor unlink":
                deleted = f"{r.get('unlinked', '?')} files"
                if "rmdir_seconds" in r:
                    deleted += (
                        f" ({r['seconds']:.2f} s), then `rmdir` of their "
                        f"{r['dirs_removed']} own directories ({r['rmdir_seconds']:.2f} s)"
                    )
            elif key == "floor walk":
                deleted = "`find -printf '%s %T@'`"
            elif key == "floor listing":
                deleted = "registry-gc's listing alone (`walk_child.py`)"
            else:
                deleted = (
                    f"{r.get('eligible_blobs', '?')} blobs + "
                    f"{r.get('eligible_manifests', '?')} manifests"
                )
            spread = f" ({min(walls):.1f}-{max(walls):.1f})" if len(walls) > 1 else ""
            lines.append(
                _row(
                    [
                        tool,
                        key.split()[1],
                        f"{m['wall']:.2f}{spread}",
                        f"{m['max_rss_mib']:.0f}",
                        f"{m['user'] + m['sys']:.1f}",
                        deleted,
                        _check_text(m) or ("dry run" if "dry" in key else ""),
                        f"{m['load_before']:.1f}",
                    ]
                )
            )
        if "rgc dry" in med:
            t = med["rgc dry"]["result"].get("timings", {})
            lines.append("")
            lines.append(
                "- registry-gc phases (dry run, in-process): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
                + f"; process wall {med['rgc dry']['wall']:.2f} s"
            )
            helper = med["rgc dry"]["result"].get("helper_max_rss_mib")
            if helper:
                lines.append(
                    f"- the listing's helper process (dry run): {helper:.0f} MiB peak RSS, "
                    "beside the peak RSS of registry-gc's own process in the table"
                )
        if "rgc real" in med:
            t = med["rgc real"]["result"].get("timings", {})
            lines.append(
                "- registry-gc phases (real run): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
                + f"; process wall {med['rgc real']['wall']:.2f} s"
            )
            cats = med["rgc real"]["result"].get("categories", {})
            if cats:
                lines.append(
                    "- registry-gc deleted: " + ", ".join(f"{k} {v}" for k, v in cats.items())
                )
        checks = local.get("checks", {})
        if "blobs_only_rgc_keeps" in checks:
            lines.append(
                "- Blobs registry-gc keeps and the reference deletes (platform images of "
                f"multi-arch tags, referrers): {checks['blobs_only_rgc_keeps']}; the reverse: "
                f"{checks['blobs_only_ref_keeps']}."
            )
        par = local.get("parity")
        if par:
            ps = par["store"]
            rr = par["runs"]
            lines.append(
                "- Parity store without multi-arch/referrers "
                f"({ps['blobs']} blobs, {ps['keys']} keys): "
                f"both leave the same blob set: **{par['same_blobs_left']}** "
                f"({par['blobs_left']}); real run registry-gc {rr['rgc']['wall']:.2f} s, "
                f"reference {rr['ref']['wall']:.2f} s."
            )
        for mode, floor in (
            ("dry", "floor walk"),
            ("dry", "floor listing"),
            ("real", "floor unlink"),
        ):
            if f"rgc {mode}" in med and floor in med and not med[floor].get("rc"):
                lines.append(
                    f"- registry-gc {mode} run {med[f'rgc {mode}']['wall']:.2f} s, "
                    f"{med[f'rgc {mode}']['wall'] / med[floor]['wall']:.1f}x the floor "
                    f"({floor}: {med[floor]['wall']:.2f} s)"
                )
        if "ref dry" in med and "floor listing" in med and not med["floor listing"].get("rc"):
            lines.append(
                "- registry-gc's listing alone (floor listing) took "
                f"{med['floor listing']['wall'] / med['ref dry']['wall']:.2f}x the reference's "
                "dry run: no dry run that lists the store as registry-gc does goes below it"
            )
        for mode, target in (("real", TARGET_REAL_SPEEDUP), ("dry", TARGET_DRY_SPEEDUP)):
            if f"ref {mode}" in med and f"rgc {mode}" in med:
                speedup = med[f"ref {mode}"]["wall"] / med[f"rgc {mode}"]["wall"]
                targets.append(
                    (
                        f"local {mode} run ≥ {target:g}x faster than the reference",
                        f"{speedup:.2f}x",
                        f"{med[f'ref {mode}']['wall']:.2f} s / {med[f'rgc {mode}']['wall']:.2f} s",
                        speedup >= target,
                    )
                )
    inv = results.get("inventory_memory")
    if inv and "blob_table_bytes_per_blob" in inv:
        lines += [
            "",
            f"### Inventory memory ({inv['blobs']} blobs, {inv['keys']} keys; tracemalloc)",
            "",
            _row(["what", "bytes", "per blob", "per key"]),
            _row(["---"] * 4),
            _row(
                [
                    "BlobTable",
                    inv["blob_table_bytes"],
                    f"{inv['blob_table_bytes_per_blob']:.0f}",
                    "",
                ]
            ),
            _row(
                [
                    "whole Inventory",
                    inv["inventory_bytes"],
                    f"{inv['inventory_bytes_per_blob']:.0f}",
                    f"{inv['inventory_bytes_per_key']:.0f}",
                ]
            ),
            _row(
                [
                    "peak during the scan",
                    inv["peak_traced_bytes_during_scan"],
                    f"{inv['peak_traced_bytes_during_scan'] / inv['blobs']:.0f}",
                    "",
                ]
            ),
        ]
        targets.append(
            (
                f"BlobTable ≤ {TARGET_BLOB_TABLE_BYTES:g} B/blob",
                f"{inv['blob_table_bytes_per_blob']:.0f} B",
                "",
                inv["blob_table_bytes_per_blob"] <= TARGET_BLOB_TABLE_BYTES,
            )
        )
    mem = results.get("memory")
    if mem and "dry" in mem:
        lines += [
            "",
            (
                f"### fsspec memory filesystem ({mem['blobs']} blobs, {mem['keys']} keys; "
                "registry-gc only, in one process)"
            ),
            "",
            _row(["run", "wall s", "phases", "deleted", "result"]),
            _row(["---"] * 5),
        ]
        for mode in ("dry", "real"):
            r = mem[mode]
            phases = ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items())
            res = (
                ""
                if mode == "dry"
                else f"{mem['blobs_left']} left, "
                + ("as expected" if mem["blobs_left_as_expected"] else "MISMATCH")
            )
            lines.append(_row([mode, f"{r['wall']:.2f}", phases, r["deleted_count"], res]))
    sq = results.get("sqlite")
    if sq and "collect" in sq.get("runs", {}):
        lines += _sqlite_markdown(sq)
    s3 = results.get("s3")
    if s3 and s3.get("runs"):
        lines += _s3_markdown(s3, targets)
    steady = results.get("steady")
    if steady and steady.get("runs"):
        lines += _steady_markdown(steady)
    if results.get("steady_cache"):
        import steady_cache  # noqa: PLC0415 - it imports this module

        lines += ["", "### Steady state with the manifest cache"]
        lines += steady_cache.markdown({"where": results["steady_cache"]}).splitlines()
    if targets:
        lines += [
            "",
            "### Targets",
            "",
            _row(["target", "measured", "detail", "met"]),
            _row(["---"] * 4),
        ]
        for name, value, detail, ok in targets:
            lines.append(_row([name, value, detail, "yes" if ok else "**no**"]))
    results["targets"] = [
        {"target": n, "measured": v, "detail": d, "met": ok} for n, v, d, ok in targets
    ]
    return "\n".join(lines) + "\n"


def _requests_of(m: dict[str, Any]) -> dict[str, int]:
    r = m["result"]
    return r.get("requests") or r.get("proxy_requests") or {}


def _s3_markdown(s3: dict[str, Any], targets: list[tuple[str, str, str, bool | None]]) -> list[str]:
    st = s3.get("store", {})
    latency = s3.get("latency_ms") or 0
    where = "SeaweedFS on 127.0.0.1" + (
        f", {latency:g} ms added to every request by the proxy" if latency else ""
    )
    lines = [
        "",
        f"### S3 ({where}): {st.get('blobs')} blobs, {st.get('keys')} keys",
        "",
        _row(
            [
                "tool",
                "run",
                "via proxy",
                "wall s",
                "peak RSS MiB",
                "CPU s",
                "requests (by type)",
                "floor",
                "result",
            ]
        ),
        _row(["---"] * 9),
    ]
    runs = s3["runs"]
    for key, m in runs.items():
        r = m["result"]
        mode = "real" if "real" in key else "dry"
        floor = s3.get(f"floor {mode}", {}).get("total", "")
        lines.append(
            _row(
                [
                    "registry-gc" if key.startswith("rgc") else "reference 2.8.2",
                    key.split(" ", 1)[1],
                    "yes" if r.get("via_proxy") else "no",
                    f"{m['wall']:.2f}",
                    f"{m['max_rss_mib']:.0f}",
                    f"{m['user'] + m['sys']:.1f}",
                    _fmt_requests(_requests_of(m)),
                    floor,
                    _check_text(m),
                ]
            )
        )
    cross = runs.get("rgc dry (proxied)")
    if cross and cross["result"].get("requests") and cross["result"].get("proxy_requests"):
        agree = cross["result"]["requests"] == cross["result"]["proxy_requests"]
        lines.append("")
        lines.append(
            "- registry-gc's own request counter and the proxy's agree: "
            f"**{agree}** ({_fmt_requests(cross['result']['proxy_requests'])})."
        )
    for mode in ("dry", "real"):
        rg = runs.get(f"rgc {mode}")
        rf = runs.get(f"ref {mode}")
        floor = s3.get(f"floor {mode}")
        if rg and floor and _requests_of(rg):
            n = sum(_requests_of(rg).values())
            ratio = n / floor["total"]
            targets.append(
                (
                    f"S3 {mode}: requests within {TARGET_S3_FLOOR_RATIO:g}x the floor",
                    f"{ratio:.2f}x",
                    f"{n} / {floor['total']}",
                    ratio <= TARGET_S3_FLOOR_RATIO,
                )
            )
        if rg and rf and _requests_of(rg) and _requests_of(rf):
            a = sum(_requests_of(rf).values())
            b = sum(_requests_of(rg).values())
            detail = f"{a} / {b}"
            if floor:
                detail += f"; the reference makes {a / floor['total']:.1f}x the floor"
            targets.append(
                (
                    f"S3 {mode}: ≥ {TARGET_S3_FEWER_REQUESTS:g}x fewer requests than the reference",
                    f"{a / b:.1f}x",
                    detail,
                    a / b >= TARGET_S3_FEWER_REQUESTS,
                )
            )
            # Wall time: like for like (both direct, or both through the proxy).
            rf_wall = runs.get(f"ref {mode} (direct)", rf)
            same = bool(rf_wall["result"].get("via_proxy")) == bool(rg["result"].get("via_proxy"))
            note = "" if same else " (reference through the counting proxy, registry-gc direct)"
            targets.append(
                (
                    f"S3 {mode}: ≥ {TARGET_S3_WALL_SPEEDUP:g}x less wall time than the reference",
                    f"{rf_wall['wall'] / rg['wall']:.1f}x",
                    f"{rf_wall['wall']:.1f} s / {rg['wall']:.1f} s{note}",
                    rf_wall["wall"] / rg["wall"] >= TARGET_S3_WALL_SPEEDUP,
                )
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=["local", "s3", "memory", "steady", "steady-cache", "sqlite", "all"],
        default="local",
    )
    parser.add_argument(
        "--steady-fraction",
        type=float,
        default=0.01,
        help="steady: the share of the store's files pushed anew before the timed run",
    )
    parser.add_argument("--blobs", type=int, default=50_000, help="store size (default 50000)")
    parser.add_argument(
        "--s3-blobs",
        type=int,
        default=10_000,
        help="store size on S3 (default 10000: writing it and the reference's sequential "
        "requests take minutes; 50000 takes about half an hour)",
    )
    parser.add_argument(
        "--memory-blobs", type=int, default=0, help="store size in memory (default --blobs)"
    )
    parser.add_argument(
        "--parity-blobs",
        type=int,
        default=10_000,
        help="size of the store without multi-arch/referrers (0: skip)",
    )
    parser.add_argument(
        "--inventory-blobs",
        type=int,
        default=200_000,
        help="store size for the inventory memory measurement (0: skip)",
    )
    parser.add_argument(
        "--s3-latency-ms",
        type=float,
        default=0.0,
        help="delay every S3 request by this much in the proxy, for every run (default 0)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each kind (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--store",
        default=None,
        help="local: use this store, written before by synth.py with the same --blobs and "
        "--seed, instead of generating one (it is never changed); sqlite: the SQLite file, "
        "written before by sqlitestore.py",
    )
    parser.add_argument(
        "--real",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="local: also the real runs and the unlink floor (each on a copy of the store); "
        "sqlite: also the real run (on a copy of the file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument(
        "--cache",
        choices=("warm", "cold"),
        default="warm",
        help="local stores: read every file before each timed run (warm, the default) or "
        "drop the kernel's caches before it (cold; root only)",
    )
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the reference docker-registry garbage-collect",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="where the stores go, made if missing (default: the temp dir)",
    )
    parser.add_argument(
        "--out",
        default=str(HERE / "results" / "results.json"),
        help="JSON results (default benchmarks/results/results.json, ignored by git)",
    )
    args = parser.parse_args(argv)
    if args.cache == "cold" and (why := can_drop_caches()):
        parser.error(why)
    CACHE["state"] = args.cache

    if args.workdir is not None:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="registry-gc-bench-", dir=args.workdir))
    log(f"work directory {work} (load {load1()})")
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    results["machine"]["bytecode_compiled"] = compile_package()
    scenarios = ["local", "memory", "s3"] if args.scenario == "all" else [args.scenario]
    try:
        if "local" in scenarios:
            scenario_local(args, work, results)
        if "memory" in scenarios:
            scenario_memory(args, work, results)
        if "s3" in scenarios:
            scenario_s3(args, work, results)
        if "steady" in scenarios:
            scenario_steady(args, work, results)
        if "steady-cache" in scenarios:
            scenario_steady_cache(args, work, results)
        if "sqlite" in scenarios:
            scenario_sqlite(args, work, results)
        if "local" in scenarios or "memory" in scenarios:
            scenario_inventory(args, work, results)
    finally:
        results["machine"]["load_at_end"] = list(os.getloadavg())
        table = markdown(results) if "machine" in results else ""
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(table)
        log(f"results written to {args.out}")
        if args.keep:
            log(f"data kept in {work}")
        else:
            remove_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
