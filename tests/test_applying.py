"""Tests of registry_gc.applying: a plan file applied later, re-checked against the store.

Plans are written with ``collect(dry_run=True, plan_out=…)`` on builder stores;
between planning and applying the store is changed behind the plan's back (a
tag re-pushed, a blob written again, a path deleted, the plan edited), and
:func:`~registry_gc.apply_planfile` must execute only what still holds.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import (
    ApplyReport,
    Dropped,
    Manifest,
    Options,
    PlanFileError,
    RefusedError,
    apply_planfile,
    check,
    collect,
    load_manifests,
    remove,
    take_inventory,
)
from registry_gc.apply import execute
from registry_gc.backends import LocalBackend
from registry_gc.layout import BlobData, UploadFile

from tests.rigs import planfiles
from tests.rigs.builder import RegistryBuilder
from tests.rigs.doubles import Delegating
from tests.rigs.scenarios import mixed_registry, rich
from tests.rigs.stores import DAY, ZERO, R, Store, blob, cur, idx, lnk, owned, rev

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from registry_gc import ApplyResult, Plan
    from registry_gc.backends import Backend, ObjectInfo

#: Everything old enough to go: the store is written with ages of days.
OPTIONS: dict[str, Any] = {
    "delete_untagged": True,
    "grace": ZERO,
    "uploads_older_than": datetime.timedelta(hours=2),
    "prune_damaged": True,
}


def plan(root: str | Path, out: Path, **options: Any) -> Path:
    """A dry run of ``root`` with :data:`OPTIONS`, its plan written to ``out``."""
    report = collect(root, dry_run=True, plan_out=out, **{**OPTIONS, **options})
    assert report.plan.deletions, "the scenario has garbage"
    return out


def write(root: Path, path: str, data: bytes) -> None:
    """Write ``path`` now (a new modification time), as a push would."""
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)


def retag(root: Path, repo: str, tag: str, digest: str) -> None:
    """Point ``tag`` at ``digest`` now, as a push of that manifest with that tag does."""
    write(root, idx(repo, tag, digest), digest.encode())  # type: ignore[arg-type]
    write(root, cur(repo, tag), digest.encode())


def pullable(root: Path) -> None:
    """Every tag of the store can be pulled from storage (fsck finds no problem)."""
    result = check(root)
    assert result.ok, [p.message for p in result.problems]


def edit_lines(path: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Rewrite the plan file at ``path``: ``change`` gets and returns every line as JSON."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(line) + "\n" for line in change(lines)))


# -- the same end state as a direct run ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "memory"])
@pytest.mark.parametrize("scenario", [rich, mixed_registry], ids=["rich", "mixed"])
def test_plan_then_apply_ends_where_a_direct_run_ends(
    tmp_path: Path, kind: str, scenario: Callable[..., Any]
) -> None:
    """Planned with --dry-run --plan-out, then applied: the store a direct gc leaves."""
    b = RegistryBuilder()
    if scenario is rich:
        rich(b)
    else:
        b = mixed_registry()
    direct, planned = Store(kind, tmp_path / "direct"), Store(kind, tmp_path / "planned")
    now = time.time()
    direct.write(b, now)
    planned.write(b, now)
    try:
        report = collect(direct.root, **OPTIONS)
        assert report.ok
        out = plan(planned.root, tmp_path / "plan.jsonl")
        applied = apply_planfile(planned.root, out)
        assert applied.ok
        assert applied.exit_code == 0
        assert applied.executed == applied.entries == len(report.plan.deletions)
        assert applied.dropped == {str(d): 0 for d in Dropped}
        assert planned.snapshot() == direct.snapshot()
        if kind == "local":
            assert planned.dirs() == direct.dirs()
        assert applied.report.categories() == report.categories()
    finally:
        direct.cleanup()
        planned.cleanup()


def test_the_root_defaults_to_the_one_the_plan_names(disk: Store, tmp_path: Path) -> None:
    """Without a root, apply works on the root in the plan's header."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    applied = apply_planfile(None, out)
    assert applied.executed == applied.entries > 0
    assert collect(disk.root, dry_run=True, **OPTIONS).plan.deletions == []


def test_a_dry_run_apply_deletes_nothing_and_counts_what_would_go(
    disk: Store, tmp_path: Path
) -> None:
    """A dry-run apply: nothing changes; planned statuses; the same figures as the real apply."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    before = disk.snapshot()
    listing = tmp_path / "dry.jsonl"
    dry = apply_planfile(disk.root, out, dry_run=True, deletions_out=listing)
    assert disk.snapshot() == before
    assert dry.report.dry_run
    assert {d["status"] for d in planfiles.deletions(listing)} == {"planned"}
    real = apply_planfile(disk.root, out)
    assert dry.report.categories() == real.report.categories()
    assert dry.to_dict()["plan"]["executed"] == real.executed


# -- changes between the plan and the apply ------------------------------------------------------


def test_a_tag_re_pushed_to_a_garbage_manifest_keeps_it(disk: Store, tmp_path: Path) -> None:
    """v1 moved back to a manifest the plan deletes: nothing of it goes, and v1 pulls."""
    b = RegistryBuilder()
    old = b.image("app", "v1", layers=2)
    new = b.image("app", "v1", layers=2)
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    planned = planfiles.paths(planfiles.deletions(out))
    assert owned(b, "app", old) <= planned
    retag(disk.dir, "app", "v1", old)
    applied = apply_planfile(disk.root, out)
    for path in owned(b, "app", old):
        assert (disk.dir / path).exists(), path
    for path in owned(b, "app", new):  # garbage now, but not in the plan: never deleted
        assert (disk.dir / path).exists(), path
    assert applied.executed < applied.entries
    assert applied.dropped["no-longer-garbage"] >= len(owned(b, "app", old)) - 1
    pullable(disk.dir)


def test_a_blob_written_again_is_dropped_as_changed(disk: Store, tmp_path: Path) -> None:
    """A garbage blob uploaded again after the plan (a new time): changed, kept."""
    b = RegistryBuilder()
    b.image("app", "v1")
    stray = b.blob(b"uploaded, never referenced")
    other = b.blob(b"another stray")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    write(disk.dir, blob(stray), b"uploaded, never referenced")
    applied = apply_planfile(disk.root, out)
    assert (disk.dir / blob(stray)).exists()
    assert not (disk.dir / blob(other)).exists()
    assert applied.dropped["changed"] == 1
    assert applied.executed == applied.entries - 1


def test_a_blob_of_another_size_is_changed_even_with_its_old_time(
    disk: Store, tmp_path: Path
) -> None:
    """Size is checked too: same time, other bytes."""
    b = RegistryBuilder()
    b.image("app", "v1")
    stray = b.blob(b"stray")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    path = disk.dir / blob(stray)
    st = path.stat()
    path.write_bytes(b"stray, but longer")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    applied = apply_planfile(disk.root, out)
    assert path.exists()
    assert applied.dropped["changed"] == 1


def test_what_is_gone_already_is_counted_gone(disk: Store, tmp_path: Path) -> None:
    """Paths deleted between plan and apply: counted gone, the rest executed."""
    b = RegistryBuilder()
    b.image("app", "v1")
    strays = [b.blob(f"stray {i}".encode()) for i in range(3)]
    uid = b.upload("app", age=3 * DAY)
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    (disk.dir / blob(strays[0])).unlink()
    for name in ("data", "startedat", "hashstates/sha256/0"):
        (disk.dir / UploadFile("app", uid, name).path).unlink()  # type: ignore[arg-type]
    applied = apply_planfile(disk.root, out)
    assert applied.dropped == {
        "gone": 2,
        "changed": 0,
        "no-longer-garbage": 0,
        "still-needed": 0,
    }
    assert not any((disk.dir / blob(s)).exists() for s in strays)
    doc = applied.to_dict()
    assert doc["command"] == "apply"
    assert doc["plan"]["dropped"]["gone"] == 2
    assert doc["plan"]["entries"] == applied.entries == applied.executed + 2
    assert "gone 2" in applied.render()


def test_a_second_apply_finds_everything_gone(disk: Store, tmp_path: Path) -> None:
    """Applying the same plan twice: the second deletes nothing and says why."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    first = apply_planfile(disk.root, out)
    after = disk.snapshot()
    again = apply_planfile(disk.root, out)
    assert disk.snapshot() == after
    assert again.executed == 0
    assert again.dropped["gone"] == again.entries == first.executed


# -- what a changed store still needs ------------------------------------------------------------


def test_a_removed_tag_pushed_again_keeps_what_its_new_image_shares(
    disk: Store, tmp_path: Path
) -> None:
    """A planned rm app:v1, then v1 pushed again over a shared layer: the layer stays, v1 pulls."""
    b = RegistryBuilder()
    shared = b.layer("app", b"shared layer")
    gone = b.image("app", "v1", layers=1, shared=[shared])
    b.image("app", "keep")
    disk.write(b)
    out = tmp_path / "plan.jsonl"
    options = Options(delete_untagged=True, grace=ZERO)
    removed = remove(disk.root, ["app:v1"], options, dry_run=True, plan_out=out)
    assert blob(shared) in removed.report.plan.paths
    # The same tag pushed again: a new image over the old shared layer (HEAD says it is
    # there, so neither its blob nor its link is written again).
    b2 = RegistryBuilder(seed=3)
    b2.put(blob(shared), b"shared layer")
    again = b2.image("app", "v1", layers=1, shared=[shared])
    for path, data in b2.files.items():
        if not (disk.dir / path).exists():
            write(disk.dir, path, data)
    retag(disk.dir, "app", "v1", again)
    applied = apply_planfile(disk.root, out)
    assert (disk.dir / blob(shared)).exists()
    assert (disk.dir / lnk("app", shared)).exists()
    assert applied.dropped["still-needed"] >= 2
    assert applied.dropped["changed"] >= 1  # the tag: its history has another entry now
    assert not (disk.dir / rev("app", gone)).exists(), "what only the old image held goes"
    pullable(disk.dir)


def test_a_revision_pushed_again_keeps_its_blobs(disk: Store, tmp_path: Path) -> None:
    """An untagged manifest pushed again by digest after the plan: it and all it needs stay."""
    b = RegistryBuilder()
    b.image("app", "v1")
    old = b.image("app", None, layers=2)
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    write(disk.dir, rev("app", old), old.encode())  # the registry writes the link again
    applied = apply_planfile(disk.root, out)
    for path in owned(b, "app", old):
        assert (disk.dir / path).exists(), path
    assert applied.dropped["changed"] == 1
    assert applied.dropped["still-needed"] == len(owned(b, "app", old)) - 1
    assert applied.executed == 0


def test_still_needed_follows_referrers_into_other_repositories(
    disk: Store, tmp_path: Path
) -> None:
    """A signature in another repository of a manifest that stays is not deleted either."""
    b = RegistryBuilder()
    b.image("app", "v1")
    old = b.image("app", None)
    sig = b.image("sigs", None, layers=1, subject=old)
    b.image("sigs", "keep")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    assert rev("sigs", sig) in planfiles.paths(planfiles.deletions(out))
    write(disk.dir, rev("app", old), old.encode())
    apply_planfile(disk.root, out)
    assert (disk.dir / rev("sigs", sig)).exists()
    assert (disk.dir / blob(sig)).exists()


# -- edited plans --------------------------------------------------------------------------------


def test_a_line_added_for_a_live_blob_deletes_nothing_live(disk: Store, tmp_path: Path) -> None:
    """A hand-added deletion of a live blob (its size and time right): not garbage, kept."""
    b = RegistryBuilder()
    live = b.image("app", "v1")
    b.blob(b"stray")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    path = disk.dir / blob(live)
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    added = {
        "category": "blob",
        "reason": "unreferenced",
        "repository": None,
        "digest": live,
        "name": None,
        "size": path.stat().st_size,
        "paths": [[blob(live), path.stat().st_size, stamp.isoformat()]],
        "multipart": [],
    }
    edit_lines(out, lambda lines: [lines[0], added, *lines[1:]])
    applied = apply_planfile(disk.root, out)
    assert path.exists()
    assert applied.dropped["no-longer-garbage"] == 1
    pullable(disk.dir)


def test_a_live_path_added_to_a_line_drops_the_line(disk: Store, tmp_path: Path) -> None:
    """A live path slipped into a garbage blob's line: the line changed, nothing of it goes."""
    b = RegistryBuilder()
    live = b.image("app", "v1")
    stray = b.blob(b"stray")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")

    def slip(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for line in lines[1:-1]:
            if line["digest"] == stray:
                line["paths"].append([blob(live), None, None])
        return lines

    edit_lines(out, slip)
    applied = apply_planfile(disk.root, out)
    assert (disk.dir / blob(live)).exists()
    assert (disk.dir / blob(stray)).exists()
    assert applied.dropped["changed"] == 1
    pullable(disk.dir)


def test_lines_removed_by_a_reviewer_are_kept(disk: Store, tmp_path: Path) -> None:
    """Deleting a line from the plan keeps that object; the footer need not be updated."""
    b = RegistryBuilder()
    b.image("app", "v1")
    keep, drop = b.blob(b"keep me"), b.blob(b"drop me")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    edit_lines(out, lambda lines: [line for line in lines if line.get("digest") != keep])
    applied = apply_planfile(disk.root, out)
    assert (disk.dir / blob(keep)).exists()
    assert not (disk.dir / blob(drop)).exists()
    assert applied.entries == applied.footer.deletions - 1


def test_a_repeated_line_is_refused(disk: Store, tmp_path: Path) -> None:
    """The same deletion twice: refused, naming both lines, nothing deleted."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    edit_lines(out, lambda lines: [*lines[:-1], lines[1], lines[-1]])
    before = disk.snapshot()
    with pytest.raises(PlanFileError, match="repeats the deletion of line 2") as info:
        apply_planfile(disk.root, out)
    assert info.value.line == len(out.read_text().splitlines()) - 1
    assert disk.snapshot() == before


def test_a_path_outside_the_tree_refuses_the_file_before_the_store_is_read(
    disk: Store, tmp_path: Path
) -> None:
    """An edited path outside docker/registry/v2: refused with its line, nothing read or deleted."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    secret = tmp_path / "secret"
    secret.write_text("keep")

    def outside(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines[3]["paths"][0][0] = "docker/registry/v2/../../../secret"
        return lines

    edit_lines(out, outside)
    before = disk.snapshot()
    listed: list[str] = []

    class Watching(Delegating):
        async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
            listed.append(prefix)
            async for info in self.inner.list(prefix):
                yield info

    with pytest.raises(PlanFileError, match="line 4: deletes") as info:
        apply_planfile(Watching(LocalBackend(disk.dir)), out)
    assert info.value.line == 4
    assert listed == []
    assert disk.snapshot() == before
    assert secret.read_text() == "keep"


# -- refusals ------------------------------------------------------------------------------------


def test_another_root_is_refused(disk: Store, tmp_path: Path) -> None:
    """A plan applied to another root: refused, naming both roots, nothing deleted."""
    rich(b := RegistryBuilder())
    disk.write(b)
    other = Store("local", tmp_path / "other")
    other.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    before = other.snapshot()
    with pytest.raises(PlanFileError) as info:
        apply_planfile(other.root, out)
    assert isinstance(info.value, RefusedError)
    assert f"was made for {disk.root}, not {other.root}" in str(info.value)
    assert other.snapshot() == before


def test_an_old_plan_is_refused_naming_its_age_and_the_limit(disk: Store, tmp_path: Path) -> None:
    """A plan whose listing is older than max_age: refused with both, nothing deleted."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=30)

    def older(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines[0]["listing_started"] = long_ago.isoformat()
        return lines

    edit_lines(out, older)
    before = disk.snapshot()
    with pytest.raises(PlanFileError) as info:
        apply_planfile(disk.root, out)
    message = str(info.value)
    assert "was planned 1d6h ago" in message
    assert "more than max_age 1d allows" in message
    assert info.value.line == 1
    assert disk.snapshot() == before
    assert apply_planfile(disk.root, out, max_age=datetime.timedelta(days=2)).executed > 0


def test_a_cut_short_plan_is_refused(disk: Store, tmp_path: Path) -> None:
    """A plan without its footer (a crash while writing, a copy cut short): refused."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))
    before = disk.snapshot()
    with pytest.raises(PlanFileError, match="cut short"):
        apply_planfile(disk.root, out)
    assert disk.snapshot() == before


def test_a_plan_file_changed_during_the_apply_is_refused(disk: Store, tmp_path: Path) -> None:
    """The plan is read twice: if it changed in between, nothing is deleted."""
    rich(b := RegistryBuilder())
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    before = disk.snapshot()

    class Editing(Delegating):
        async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
            with out.open("a") as f:
                f.write("\n")
            async for info in self.inner.list(prefix):
                yield info

    with pytest.raises(PlanFileError, match="changed while it was being applied"):
        apply_planfile(Editing(LocalBackend(disk.dir)), out)
    assert disk.snapshot() == before


# -- the executor and the account of each line ---------------------------------------------------


def test_the_executor_gets_only_what_still_holds(disk: Store, tmp_path: Path) -> None:
    """A custom executor (live mode's hook) is called once with the checked part of the plan."""
    b = RegistryBuilder()
    b.image("app", "v1")
    strays = [b.blob(f"stray {i}".encode()) for i in range(3)]
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    (disk.dir / blob(strays[0])).unlink()
    calls: list[Plan] = []

    async def executor(backend: Backend, p: Plan) -> ApplyResult:
        calls.append(p)
        return await execute(backend, p)

    applied = apply_planfile(disk.root, out, executor=executor)
    (got,) = calls
    assert [d.digest for d in got.deletions] == strays[1:]
    assert applied.report.result is not None
    assert applied.report.deleted_count == 2


def test_deletions_out_accounts_for_every_line_in_order(disk: Store, tmp_path: Path) -> None:
    """The --deletions-out of an apply: every line of the plan, in order, with its fate."""
    b = RegistryBuilder()
    b.image("app", "v1")
    strays = [b.blob(f"stray {i}".encode()) for i in range(4)]
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    (disk.dir / blob(strays[0])).unlink()
    write(disk.dir, blob(strays[1]), b"stray 1")
    listing = tmp_path / "applied.jsonl"
    applied = apply_planfile(disk.root, out, deletions_out=listing)
    header, lines, _ = planfiles.read(listing)
    assert header["dry_run"] is False
    assert [line["digest"] for line in lines] == [
        line["digest"] for line in planfiles.deletions(out)
    ]
    fate = {line["digest"]: (line["status"], line.get("dropped")) for line in lines}
    assert fate[strays[0]] == ("dropped", "gone")
    assert fate[strays[1]] == ("dropped", "changed")
    assert fate[strays[2]] == fate[strays[3]] == ("deleted", None)
    assert sum(1 for line in lines if line["status"] == "deleted") == applied.executed


def test_the_report_renders_and_serializes(disk: Store, tmp_path: Path) -> None:
    """The text names the plan, its age and the drops; the JSON is the run's with `plan`."""
    b = RegistryBuilder()
    b.image("app", "v1")
    stray = b.blob(b"stray")
    b.blob(b"other")
    disk.write(b)
    out = plan(disk.root, tmp_path / "plan.jsonl")
    write(disk.dir, blob(stray), b"stray")
    applied = apply_planfile(disk.root, out)
    assert isinstance(applied, ApplyReport)
    text = applied.render()
    assert f"registry-gc apply {out}: planned " in text
    assert "2 deletion(s); 1 still hold" in text
    assert "changed since the plan, not deleted: 1 (changed 1)" in text
    doc = json.loads(json.dumps(applied.to_dict()))
    assert doc["schema"] == "registry-gc/report/v2"
    assert doc["plan"]["file"] == str(out)
    assert doc["plan"]["root"] == disk.root
    assert doc["plan"]["max_age_seconds"] == 86400
    assert doc["plan"]["footer"] == {"deletions": 2, "bytes": len(b"stray") + len(b"other")}
    assert doc["totals"]["deletions"] == 1
    assert BlobData(stray).path not in {p for d in applied.report.plan.deletions for p in d.paths}


# -- whatever changes, apply breaks nothing that stays -------------------------------------------

_CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["retag", "revision", "blob", "delete", "reuse"]), st.integers(0, 10**6)
    ),
    min_size=1,
    max_size=6,
)


def _served(root: Path) -> dict[tuple[str, str], set[str]]:
    """(repository, revision) → the blobs it needs that are in the store (manifest included)."""
    backend = LocalBackend(root)
    inventory = take_inventory(backend)
    table = load_manifests(backend, inventory)
    out: dict[tuple[str, str], set[str]] = {}
    for name, repo in inventory.repositories.items():
        for digest in repo.revisions:
            m = table.get(digest)
            needed = {digest, *(m.blobs if isinstance(m, Manifest) else ())}
            out[name, digest] = {d for d in needed if d in inventory.blobs}
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), changes=_CHANGES)
def test_changes_between_plan_and_apply_never_break_what_stays(
    seed: int, changes: list[tuple[str, int]]
) -> None:
    """Pushes, rewrites, deletions after the plan: apply keeps every tag and revision whole."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "registry"
        b = mixed_registry(seed)
        b.write_local(root)
        out = plan(root, Path(tmp) / "plan.jsonl")
        lines = planfiles.deletions(out)
        planned = planfiles.paths(lines)
        revisions = [(d["repository"], d["digest"]) for d in lines if d["category"] == "revision"]
        blobs = [d["digest"] for d in lines if d["category"] == "blob"]
        tags = sorted({(r, t) for r, t in _tags(root)})
        for what, n in changes:
            if what == "retag" and revisions and tags:
                repo, digest = revisions[n % len(revisions)]
                same_repo = [t for r, t in tags if r == repo]
                if same_repo:
                    retag(root, repo, same_repo[n % len(same_repo)], digest)
            elif what == "revision" and revisions:
                repo, digest = revisions[n % len(revisions)]
                if (root / rev(repo, digest)).exists():
                    write(root, rev(repo, digest), digest.encode())
            elif what == "blob" and blobs:
                path = root / blob(blobs[n % len(blobs)])
                if path.exists():
                    write(root, blob(blobs[n % len(blobs)]), path.read_bytes())
            elif what == "delete" and planned:
                path = root / sorted(planned)[n % len(planned)]
                path.unlink(missing_ok=True)
            elif what == "reuse" and blobs:
                _push_over(root, blobs[n % len(blobs)], n)
        before = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        served = _served(root)
        broken = {(p.kind, p.path) for p in check(root).problems}  # by the changes themselves
        apply_planfile(root, out)
        after = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        assert before - after <= planned, "deleted something the plan does not list"
        problems = [p for p in check(root).problems if (p.kind, p.path) not in broken]
        assert not problems, [p.message for p in problems]
        for key, had in _served(root).items():
            assert had == served.get(key, had), f"{key} lost {served[key] - had}"


def _tags(root: Path) -> list[tuple[str, str]]:
    """(repository, tag) of every current link in the store."""
    out = []
    base = root / R
    for link in base.rglob("current/link"):
        rest = str(link.relative_to(base))
        repo, _, tail = rest.partition("/_manifests/tags/")
        out.append((repo, tail.split("/")[0]))
    return out


def _push_over(root: Path, digest: str, n: int) -> None:
    """Push a new tagged image in a new repository whose layer is ``digest`` (a mount)."""
    data = (root / blob(digest)).read_bytes()
    b = RegistryBuilder(seed=n)
    b.put(blob(digest), data)  # type: ignore[arg-type]
    image = b.image(f"reuse{n % 7}", "v1", layers=1, shared=[digest])  # type: ignore[list-item]
    for path, content in b.files.items():
        if not (root / path).exists():
            write(root, path, content)
    retag(root, f"reuse{n % 7}", "v1", image)
