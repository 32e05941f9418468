"""Faults: a backend that fails, slows down or is interrupted at every point of a run.

Every run goes through :class:`~tests.rigs.faults.FaultyBackend`, which records the
order in which paths were deleted. Three properties are checked for every fault:

- **order** — replaying the recorded deletions against the reference graph the builder
  knows (tag → revision, revision → manifest blob, config/layer links and blobs, layer
  link → blob), nothing is deleted while something that references it still exists;
- **convergence** — the faulty run followed by a clean run leaves exactly what a single
  clean run leaves (files, and on a local disk directories too);
- **no damage before deleting** — a failed listing or read deletes nothing at all.

The exhaustive sweeps (every k) run on ``memory://`` (fast); a local disk, with its
directories and the default grace, is swept at the phase boundaries.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from registry_gc import InvalidReferenceError, RefusedError, StorageError, cli, collect
from registry_gc import apply as apply_module
from registry_gc.backends import (
    DeleteResult,
    LocalBackend,
    Outcome,
    ReadOnlyBackend,
    SupportsMultipartUploads,
    open_backend,
)
from registry_gc.cli import _target as cli_target
from registry_gc.layout import (
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    TagCurrentLink,
    UploadFile,
    blob_path,
    classify,
    parse_blob_path,
)
from registry_gc.plan import PHASES, Category

from tests.conftest import require_tool
from tests.rigs import oci, planfiles
from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.faults import FaultyBackend, InjectedFaultError
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from registry_gc.backends import Backend, MultipartUpload

    from tests.rigs.registry import RealRegistry

UTC = datetime.timezone.utc
DAY = 86400.0
ZERO = datetime.timedelta(0)
HOUR = datetime.timedelta(hours=1)


# -- the scenario and what references what ---------------------------------------------------------


def scenario(b: RegistryBuilder) -> None:
    """Garbage of every category, around live images that share and nest."""
    base = b.layer("app")
    for _ in range(2):  # a tag re-pushed: a dead revision
        b.image("app", "latest", shared=[base])
    b.image("app", "stable", shared=[base])
    b.multiarch("team/multi", "v1")
    b.multiarch("team/multi", None, arches=1)  # a dead index and its child
    b.link_layer("team/multi", base)  # a mounted layer no manifest of the repository uses
    inner = b.multiarch("team/nested", None)
    b.index("team/nested", "v1", [inner, b.image("team/nested", None)])
    b.index("team/nested", None, [b.multiarch("team/nested", None, arches=1)])  # dead, nested
    img = b.image("ref", "v1")
    b.referrer("ref", b.referrer("ref", img))  # a live referrer chain
    b.referrer("ref", b.image("ref", None))  # a dead image and its referrer
    b.image("gone", None)  # a repository that empties
    b.image("gone/kept", "t")  # nested in it, and live
    b.upload("app", age=3 * DAY)
    b.upload("gone", age=3 * DAY)
    b.link_layer("app", sha256(b"never uploaded"))  # a dangling layer link
    b.blob(b"orphan")


class References:
    """Who references whom, from the builder's files and records (not from the package)."""

    def __init__(self, b: RegistryBuilder) -> None:
        #: path → the paths that reference it
        self.referrers: dict[str, set[str]] = defaultdict(set)
        for path, data in b.files.items():
            key = classify(path)
            if isinstance(key, TagCurrentLink):
                try:
                    target = Digest(data.decode())
                except (UnicodeDecodeError, InvalidReferenceError):
                    continue
                self._add(path, RevisionLink(key.repository, target).path, blob_path(target))
            elif isinstance(key, RevisionLink):
                self._add(path, blob_path(key.digest))
                for x in b.contents.get(key.digest, {}).get("blobs", ()):
                    self._add(path, LayerLink(key.repository, x).path, blob_path(x))
            elif isinstance(key, LayerLink) and key.digest.algorithm == "sha256":
                self._add(path, blob_path(key.digest))

    def _add(self, source: str, *targets: str) -> None:
        for t in targets:
            self.referrers[t].add(source)

    def violations(self, present: Iterable[str], order: Iterable[str]) -> list[str]:
        """Deletions in ``order`` that happened while a referrer was still ``present``."""
        left = set(present)
        out = []
        for p in order:
            still = sorted(q for q in self.referrers.get(p, ()) if q in left)
            if still:
                out.append(f"{p} deleted while {still[0]} still referenced it")
            left.discard(p)
        return out


def pullable_problems(files: set[str], b: RegistryBuilder) -> list[str]:
    """Every tag whose manifest, children, revision links, layer links or blobs are missing."""
    problems = []

    def need(repo: Repository, d: Digest, tag: str) -> None:
        wanted = [blob_path(d), RevisionLink(repo, d).path]
        for x in b.contents.get(d, {}).get("blobs", ()):
            wanted += [blob_path(x), LayerLink(repo, x).path]
        problems.extend(f"{repo}:{tag} needs {p}" for p in wanted if p not in files)
        for child in b.contents.get(d, {}).get("children", ()):
            need(repo, child, tag)

    for path in files:
        key = classify(path)
        if isinstance(key, TagCurrentLink):
            need(key.repository, Digest(b.files[path].decode()), key.tag)
    return problems


# -- stores ----------------------------------------------------------------------------------------


class Memory:
    """The builder's tree on ``memory://``, with modification times from its ages."""

    def __init__(self, b: RegistryBuilder) -> None:
        self.b = b
        self.fs = fsspec.filesystem("memory")
        self.root = f"/rgc-faults-{uuid.uuid4().hex}"
        self.url = "memory://" + self.root

    def reset(self) -> None:
        """Write the whole tree again (nothing else in the root)."""
        self.cleanup()
        self.b.write_fs(self.fs, self.root)
        now = time.time()
        for path in self.b.files:
            f = self.fs.store[f"{self.root}/{path}"]
            f.created = f.modified = datetime.datetime.fromtimestamp(now - self.b.ages[path], UTC)

    def files(self) -> set[str]:
        """Every path in the store."""
        if not self.fs.exists(self.root):
            return set()
        return {p[len(self.root) + 1 :] for p in self.fs.find(self.root)}

    def backend(self) -> Backend:
        """A fresh backend on the store."""
        return open_backend(self.url)

    def cleanup(self) -> None:
        """Remove the tree."""
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)


class Disk:
    """The builder's tree on a local disk; each :meth:`reset` is a fresh copy of a template."""

    def __init__(self, b: RegistryBuilder, tmp: Path) -> None:
        self.b = b
        self.template = tmp / "template"
        b.write_local(self.template)
        self.tmp = tmp
        self.n = 0
        self.root = self.template

    def reset(self) -> None:
        """A new copy of the template (mtimes kept)."""
        self.n += 1
        self.root = self.tmp / f"copy-{self.n}"
        shutil.copytree(self.template, self.root)

    def files(self) -> set[str]:
        """Every file, relative to the root."""
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    def dirs(self) -> set[str]:
        """Every directory, relative to the root."""
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_dir()}

    def backend(self) -> Backend:
        """A fresh backend on the current copy."""
        return LocalBackend(self.root)


@pytest.fixture(scope="module")
def builder() -> RegistryBuilder:
    """The scenario, built once."""
    b = RegistryBuilder(seed=6)
    scenario(b)
    return b


@pytest.fixture(scope="module")
def references(builder: RegistryBuilder) -> References:
    """The scenario's reference graph."""
    return References(builder)


@pytest.fixture
def memory(builder: RegistryBuilder) -> Iterator[Memory]:
    """The scenario on memory://."""
    m = Memory(builder)
    m.reset()
    yield m
    m.cleanup()


@pytest.fixture(scope="module")
def clean_memory(builder: RegistryBuilder) -> tuple[set[str], list[str]]:
    """What one clean -m run on memory:// leaves, and the order it deleted paths in."""
    m = Memory(builder)
    m.reset()
    faulty = FaultyBackend(m.backend(), delete_batch=1)
    report = collect(faulty, delete_untagged=True)
    assert report.ok
    files = m.files()
    m.cleanup()
    return files, faulty.deleted


#: The checker's phase number of each category of the plan.
PHASE_OF = {
    Category.TAG: 1,
    Category.REVISION: 1,
    Category.TAG_INDEX: 1,
    Category.LAYER_LINK: 2,
    Category.BLOB: 3,
    Category.UPLOAD: 4,
    Category.REPOSITORY: 5,
}


def category_of(path: str) -> int:
    """The index of the deletion phase ``path`` belongs to (directories and uploads last)."""
    key = classify(path)
    if parse_blob_path(path) is not None:
        return 3
    if isinstance(key, LayerLink):
        return 2
    if isinstance(key, UploadFile):
        return 4
    return 1


def sample(order: list[str], stride: int) -> list[int]:
    """Fault positions k (1-based): both sides of every phase boundary, first, last, a stride."""
    n = len(order)
    phases = [category_of(p) for p in order]
    ks = {1, n, *range(1, n + 1, stride)}
    for i in range(1, n):
        if phases[i] != phases[i - 1]:
            ks |= {i, i + 1}
    return sorted(ks)


def check_run(refs: References, before: set[str], faulty: FaultyBackend, after: set[str]) -> None:
    """The recorded deletions are what disappeared, and never outran a referrer."""
    assert set(faulty.deleted) == before - after
    assert refs.violations(before, faulty.deleted) == []


# -- the sanity of the scenario --------------------------------------------------------------------


def test_scenario_clean_run_deletes_every_category_in_order_and_keeps_tags_pullable(
    builder: RegistryBuilder, references: References, clean_memory: tuple[set[str], list[str]]
) -> None:
    """The clean run deletes in phase order, every tag still pulls, and it has work to do."""
    files, order = clean_memory
    phases = [category_of(p) for p in order]
    assert phases == sorted(phases), "tags/revisions → layer links → blobs → uploads"
    assert set(phases) == {1, 2, 3, 4}
    assert len(order) > 40
    assert references.violations(set(builder.files), order) == []
    assert pullable_problems(files, builder) == []
    # The order checker is not vacuous: deleting a blob before its link is caught.
    blob_first = sorted(order, key=lambda p: -category_of(p))
    assert references.violations(set(builder.files), blob_first)


# -- deletion faults: every k ----------------------------------------------------------------------


ERRORS: dict[str, Any] = {
    "storage-error": InjectedFaultError,
    "os-error": OSError,
    "cancelled": asyncio.CancelledError,
    "keyboard-interrupt": KeyboardInterrupt,
}


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_delete_fault_at_every_k_then_clean_run_converges(
    memory: Memory,
    references: References,
    clean_memory: tuple[set[str], list[str]],
    error: str,
) -> None:
    """The k-th deletion raises: k-1 paths are gone, in order; a re-run ends as a clean run."""
    clean, order = clean_memory
    exc = ERRORS[error]
    # Every k for the storage error; phase boundaries and a stride for the others.
    ks = range(1, len(order) + 1) if error == "storage-error" else sample(order, 9)
    for k in ks:
        memory.reset()
        before = memory.files()
        faulty = FaultyBackend(memory.backend(), fail_delete_at=k, delete_batch=1, error=exc)
        with pytest.raises(exc, match=f"delete call #{k} "):
            collect(faulty, delete_untagged=True)
        middle = memory.files()
        assert faulty.deleted == order[: k - 1], f"k={k}"
        check_run(references, before, faulty, middle)
        again = FaultyBackend(memory.backend())
        assert collect(again, delete_untagged=True).ok
        after = memory.files()
        check_run(references, middle, again, after)
        assert after == clean, f"k={k}: the re-run does not end where a clean run does"


def test_one_failed_key_skips_later_phases_and_converges(
    memory: Memory, references: References, clean_memory: tuple[set[str], list[str]]
) -> None:
    """One path FAILED (per-key error): its phase finishes, later phases are skipped; re-run ok."""
    clean, order = clean_memory
    for k in sample(order, 4):
        victim = order[k - 1]
        memory.reset()
        before = memory.files()
        faulty = FaultyBackend(memory.backend(), fail_keys=lambda p, v=victim: p == v)
        report = collect(faulty, delete_untagged=True)
        assert not report.ok
        assert report.exit_code == 1
        assert report.result is not None
        assert [f.path for f in report.result.failures] == [victim]
        assert faulty.failed == [victim]
        phase = category_of(victim)
        deleted_phases = {category_of(p) for p in faulty.deleted}
        assert deleted_phases <= set(range(1, phase + 1)), f"k={k}: a later phase ran"
        same_phase = {p for p in order if category_of(p) == phase} - {victim}
        assert same_phase <= set(faulty.deleted), f"k={k}: the failing phase was not finished"
        for d, status in zip(report.plan.deletions, report.result.status, strict=True):
            if PHASE_OF[d.category] > phase:
                assert status == "skipped", f"k={k}: {d.category} not skipped"
        middle = memory.files()
        check_run(references, before, faulty, middle)
        again = FaultyBackend(memory.backend())
        assert collect(again, delete_untagged=True).ok
        check_run(references, middle, again, memory.files())
        assert memory.files() == clean, f"k={k}"


def test_interrupt_at_every_call_of_a_batched_run_converges(
    memory: Memory, references: References, clean_memory: tuple[set[str], list[str]]
) -> None:
    """KeyboardInterrupt at the n-th call of any kind (list, read, delete): re-run converges."""
    clean, _ = clean_memory
    probe = FaultyBackend(memory.backend())
    assert collect(probe, delete_untagged=True).ok
    kinds = [c.kind for c in probe.calls]
    assert {"list", "read", "delete"} <= set(kinds)
    for n in range(1, len(kinds) + 1):
        memory.reset()
        before = memory.files()
        faulty = FaultyBackend(memory.backend(), interrupt_at=n)
        with pytest.raises(KeyboardInterrupt, match=f"at call #{n}"):
            collect(faulty, delete_untagged=True)
        middle = memory.files()
        if "delete" not in kinds[: n - 1]:
            assert middle == before, f"interrupted at {kinds[n - 1]} #{n}: nothing may go"
        check_run(references, before, faulty, middle)
        assert collect(memory.backend(), delete_untagged=True).ok
        assert memory.files() == clean, f"interrupted at call {n} ({kinds[n - 1]})"


def test_slow_concurrent_batches_failing_mid_phase_never_start_the_next_phase(
    memory: Memory,
    references: References,
    clean_memory: tuple[set[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small batches in flight together, slow: one raising stops the run before the next phase."""
    clean, order = clean_memory
    monkeypatch.setattr(apply_module, "DELETE_BATCH", 3)
    for k in (1, 2, 5, 9, 14):
        memory.reset()
        before = memory.files()
        faulty = FaultyBackend(memory.backend(), fail_delete_at=k, delay=0.002)
        with pytest.raises(InjectedFaultError):
            collect(faulty, delete_untagged=True)
        failed_call = [c for c in faulty.calls if c.kind == "delete"][k - 1]
        phase = category_of(failed_call.paths[0])
        middle = memory.files()
        # Batches of the failing phase that were in flight may finish after the fault
        # (their tasks are cancelled while the storage works): they are not recorded.
        gone = before - middle
        assert set(faulty.deleted) <= gone
        assert {category_of(p) for p in gone} <= set(range(1, phase + 1)), f"k={k}"
        assert not set(failed_call.paths) & gone
        unrecorded = sorted(gone - set(faulty.deleted))
        assert references.violations(before, [*faulty.deleted, *unrecorded]) == []
        assert collect(memory.backend(), delete_untagged=True).ok
        assert memory.files() == clean
    assert len(order) > 3 * apply_module.PARALLEL_BATCHES, "batches really ran in parallel"


# -- listing and reading faults: nothing is deleted ------------------------------------------------


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_list_and_read_faults_delete_nothing(memory: Memory, error: str) -> None:
    """A listing or a read that fails, at any call (or mid-listing), raises and deletes nothing."""
    exc = ERRORS[error]
    probe = FaultyBackend(memory.backend())
    collect(probe, delete_untagged=True, dry_run=True)
    n_list, n_read = probe.count("list"), probe.count("read")
    assert n_list == 2
    assert n_read >= 2
    before = memory.files()
    cases: list[dict[str, Any]] = [{"fail_list_at": k} for k in range(1, n_list + 1)]
    cases += [{"fail_list_at": k, "list_yield_before_fail": 7} for k in range(1, n_list + 1)]
    cases += [{"fail_read_at": k} for k in range(1, n_read + 1)]
    for case in cases:
        faulty = FaultyBackend(memory.backend(), error=exc, **case)
        with pytest.raises(exc, match="injected fault"):
            collect(faulty, delete_untagged=True)
        assert faulty.count("delete") == 0, case
        assert faulty.count("remove-dirs") == 0, case
        assert memory.files() == before, case


def test_a_read_returning_nothing_for_a_live_manifest_refuses(memory: Memory) -> None:
    """A live manifest listed but unreadable (vanished) refuses the sweep: nothing deleted."""

    class Vanishing(FaultyBackend):
        async def read(self, paths: Any) -> Any:
            """Every blob reads as missing."""
            got = dict(await super().read(paths))
            return {p: (None if p.endswith("/data") else v) for p, v in got.items()}

    before = memory.files()
    with pytest.raises(RefusedError, match="nothing was deleted") as info:
        collect(Vanishing(memory.backend()), delete_untagged=True)
    assert any("vanished" in p for p in info.value.problems)
    assert memory.files() == before


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def faulty_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[FaultyBackend]]:
    """Make ``registry_gc.cli`` open every backend wrapped in a FaultyBackend(**kw)."""

    def install(**kw: Any) -> list[FaultyBackend]:
        made: list[FaultyBackend] = []

        def opener(url: Any, options: Any = None, **extra: Any) -> Backend:
            wrapped = FaultyBackend(open_backend(url, options, **extra), **kw)
            made.append(wrapped)
            return wrapped

        monkeypatch.setattr(cli_target, "open_backend", opener)
        return made

    return install


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``registry_gc.cli.run(argv)``: exit code, stdout, stderr."""
    capsys.readouterr()
    code = cli.run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("fault", "code", "message"),
    [
        ({"fail_list_at": 2}, cli.EXIT_STORAGE, "injected fault: list call #2"),
        ({"fail_read_at": 1, "error": OSError}, cli.EXIT_STORAGE, "storage error: injected"),
        ({"fail_delete_at": 1}, cli.EXIT_STORAGE, "injected fault: delete call #1"),
        ({"interrupt_at": 6}, cli.EXIT_INTERRUPTED, "run again to finish"),
    ],
)
def test_cli_exit_codes_for_faults_and_a_converging_rerun(
    memory: Memory,
    clean_memory: tuple[set[str], list[str]],
    faulty_cli: Callable[..., list[FaultyBackend]],
    capsys: pytest.CaptureFixture[str],
    fault: dict[str, Any],
    code: int,
    message: str,
) -> None:
    """Storage faults exit 4 naming the fault, an interrupt 130; the next run exits 0."""
    clean, _ = clean_memory
    faulty_cli(**fault)
    got, out, err = run_cli(capsys, "gc", memory.url, "-m", "--json")
    assert got == code, err
    assert message in err
    assert json.loads(out)["ok"] is False
    faulty_cli()
    got, out, err = run_cli(capsys, "gc", memory.url, "-m", "--json")
    assert got == cli.EXIT_OK, err
    assert memory.files() == clean


def test_cli_per_key_failures_exit_1_and_skip_later_phases(
    memory: Memory,
    references: References,
    clean_memory: tuple[set[str], list[str]],
    faulty_cli: Callable[..., list[FaultyBackend]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Bulk delete with some keys refused: exit 1, failures in the JSON, no later phase runs."""
    clean, _ = clean_memory
    refused = "docker/registry/v2/repositories/team/"
    made = faulty_cli(fail_keys=lambda p: p.startswith(refused) and "/_layers/" in p)
    before = memory.files()
    listing = tmp_path / "deletions.jsonl"
    code, out, err = run_cli(
        capsys, "gc", memory.url, "-m", "--json", "--deletions-out", str(listing)
    )
    assert code == cli.EXIT_FAILED, err
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["failures"]
    assert {f["category"] for f in doc["failures"]} == {"layer-link"}
    assert all(f["path"].startswith(refused) for f in doc["failures"])
    assert {f["error"] for f in doc["failures"]} == {"InjectedFault: AccessDenied"}
    listed = planfiles.deletions(listing)
    statuses = {(d["category"], d["status"]) for d in listed}
    assert sum(1 for d in listed if d["status"] == "failed") == len(doc["failures"])
    assert ("layer-link", "failed") in statuses
    assert ("layer-link", "deleted") in statuses, "the rest of the phase went through"
    assert {s for c, s in statuses if c in ("blob", "upload", "repository")} == {"skipped"}
    (faulty,) = made
    assert {category_of(p) for p in faulty.deleted} == {1, 2}
    check_run(references, before, faulty, memory.files())
    text_code, _, text_err = run_cli(capsys, "gc", memory.url, "-m")
    assert text_code == cli.EXIT_FAILED
    assert "later phases are skipped" in text_err
    faulty_cli()
    assert run_cli(capsys, "gc", memory.url, "-m")[0] == cli.EXIT_OK
    assert memory.files() == clean


# -- a local disk: directories, and the default grace ----------------------------------------------


@pytest.fixture(scope="module")
def disk_clean(
    builder: RegistryBuilder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Disk, set[str], set[str], list[str]]:
    """The scenario on disk after one clean -m run (grace 0): files, directories, order."""
    disk = Disk(builder, tmp_path_factory.mktemp("faults-disk"))
    disk.reset()
    faulty = FaultyBackend(disk.backend(), delete_batch=1)
    assert collect(faulty, delete_untagged=True, grace=ZERO).ok
    return disk, disk.files(), disk.dirs(), faulty.deleted


@pytest.mark.parametrize("error", ["storage-error", "keyboard-interrupt"])
def test_disk_faults_at_phase_boundaries_converge_with_directories(
    disk_clean: tuple[Disk, set[str], set[str], list[str]],
    references: References,
    error: str,
) -> None:
    """On disk (grace 0): files and directories after fault + re-run equal a clean run's."""
    disk, files, dirs, order = disk_clean
    first = {category_of(p): i + 1 for i, p in reversed(list(enumerate(order)))}
    ks = sorted({*first.values(), len(order)}) if error == "storage-error" else [first[3]]
    for k in ks:
        disk.reset()
        before = disk.files()
        faulty = FaultyBackend(
            disk.backend(), fail_delete_at=k, delete_batch=1, error=ERRORS[error]
        )
        with pytest.raises(ERRORS[error]):
            collect(faulty, delete_untagged=True, grace=ZERO)
        assert faulty.count("remove-dirs") == 0, "no directory is pruned after a fault"
        middle = disk.files()
        check_run(references, before, faulty, middle)
        again = FaultyBackend(disk.backend())
        assert collect(again, delete_untagged=True, grace=ZERO).ok
        check_run(references, middle, again, disk.files())
        assert (disk.files(), disk.dirs()) == (files, dirs), f"k={k}"


def test_disk_fault_with_default_grace_leaves_only_young_empty_directories(
    disk_clean: tuple[Disk, set[str], set[str], list[str]], references: References
) -> None:
    """Default grace: the re-run's files equal a clean run's; empty dirs wait out the grace."""
    disk, files, dirs, order = disk_clean
    boundary = next(i for i in range(1, len(order)) if category_of(order[i]) == 3)
    for k in (boundary, boundary + 1):
        disk.reset()
        faulty = FaultyBackend(disk.backend(), fail_delete_at=k, delete_batch=1)
        with pytest.raises(InjectedFaultError):
            collect(faulty, delete_untagged=True)
        report = collect(disk.backend(), delete_untagged=True)
        assert report.ok
        assert disk.files() == files, f"k={k}"
        leftover = disk.dirs() - dirs
        assert disk.dirs() >= dirs
        assert leftover, "the directories the faulty run emptied are younger than the grace"
        assert not [p for d in leftover for p in (disk.root / d).rglob("*") if p.is_file()]
        later = datetime.datetime.now(UTC) + 2 * HOUR
        assert collect(disk.backend(), delete_untagged=True, now=later).ok
        assert (disk.files(), disk.dirs()) == (files, dirs), "once the grace has passed"


# -- the rig itself --------------------------------------------------------------------------------


class _LocalWithUploads(LocalBackend):
    """A local disk that also has (no) multipart uploads."""

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """None open."""
        return []

    async def abort_multipart_uploads(
        self, uploads: Sequence[MultipartUpload]
    ) -> list[DeleteResult]:
        """Nothing to abort."""
        return [DeleteResult(u.key, Outcome.MISSING) for u in uploads]


def test_faulty_backend_passes_multipart_capability_through(tmp_path: Path) -> None:
    """The wrapper supports multipart uploads exactly when the wrapped backend does."""
    local = LocalBackend(tmp_path)
    assert not isinstance(FaultyBackend(local), SupportsMultipartUploads)
    assert not isinstance(FaultyBackend(ReadOnlyBackend(local)), SupportsMultipartUploads)
    uploads = _LocalWithUploads(tmp_path)
    assert isinstance(FaultyBackend(ReadOnlyBackend(uploads)), SupportsMultipartUploads)
    faulty = FaultyBackend(ReadOnlyBackend(uploads))
    assert asyncio.run(faulty.list_multipart_uploads("docker/")) == []
    assert [c.kind for c in faulty.calls] == ["list-multipart"]
    with pytest.raises(StorageError, match="injected fault: delete call #1"):
        asyncio.run(FaultyBackend(local, fail_delete_at=1).delete(["docker/registry/v2/x"]))


def test_phases_of_the_plan_match_the_checker() -> None:
    """The checker's phase numbers follow the package's PHASES order."""
    numbers = [PHASE_OF[c] for phase in PHASES for c in phase]
    assert numbers == sorted(numbers)
    assert set(PHASE_OF) == set(Category)


# -- against the real registry ---------------------------------------------------------------------


def push_small(client: Any) -> dict[str, list[str]]:
    """Push a small scenario with garbage in every category; return repository → tags."""
    base = oci.layer("faults-base", media_type=oci.DOCKER_LAYER)
    for i in range(3):
        client.push_image(
            "app", "latest", oci.docker_image(f"faults-app-{i}", shared_layers=[base])
        )
    final = oci.docker_image("faults-app-final", shared_layers=[base])
    client.push_image("app", "latest", final)
    client.push_image("app", None, oci.referrer(final, "faults-sig"))
    assert client.mount_blob("team/multi", base.digest, from_repo="app")
    client.push_image("team/multi", "v1", oci.multiarch("faults-multi-old", shared_layers=[base]))
    client.push_image("team/multi", "v1", oci.multiarch("faults-multi", shared_layers=[base]))
    client.push_blob("app", oci.layer("faults-orphan"))
    client.start_upload("app", b"half a layer")
    return {"app": ["latest"], "team/multi": ["v1"]}


@pytest.mark.registry
def test_real_registry_interrupted_runs_then_rerun_every_tag_pulls(
    registry: RealRegistry,
    faulty_cli: Callable[..., list[FaultyBackend]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Pushed through docker-registry; gc interrupted after k deletions, re-run: every tag pulls."""
    require_tool("skopeo")
    tags = push_small(registry.client())
    root = registry.root_dir
    assert root is not None
    template = tmp_path / "template"
    shutil.copytree(root, template)
    args = ("gc", str(root), "-m", "--grace", "0s", "--uploads-older-than", "0s")
    made = faulty_cli(delete_batch=1)
    assert run_cli(capsys, *args)[0] == cli.EXIT_OK
    order = made[0].deleted
    assert {category_of(p) for p in order} == {1, 2, 3, 4}
    first = {category_of(p): i for i, p in reversed(list(enumerate(order)))}
    for k in (1, first[2], first[3] + 2):  # in the revisions, before layer links, in blobs
        shutil.rmtree(root)
        shutil.copytree(template, root)
        made = faulty_cli(delete_batch=1, fail_delete_at=k + 1, error=KeyboardInterrupt)
        assert run_cli(capsys, *args)[0] == cli.EXIT_INTERRUPTED
        assert len(made[0].deleted) == k
        faulty_cli()
        code, _, err = run_cli(capsys, *args)
        assert code == cli.EXIT_OK, err
        for repo, repo_tags in tags.items():
            for tag in repo_tags:
                pulled = pull_all(registry.url, repo, tag, tmp_path / f"pull-{k}-{repo}-{tag}")
                assert pulled.returncode == 0, f"k={k} {repo}:{tag}: {pulled.stderr}"
