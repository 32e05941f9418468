"""Tests of registry_gc.planfile: the plan file format written and read back, and its refusals."""

from __future__ import annotations

import datetime
import io
import json
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import (
    ConfigError,
    Options,
    PlanFileError,
    RefusedError,
    Removals,
    make_plan,
    mark,
)
from registry_gc._deletions import DeletionList, Spelled
from registry_gc.apply import Status
from registry_gc.backends import MultipartUpload
from registry_gc.layout import Digest, LegacySignatureLink, Repository, Tag
from registry_gc.plan import Category, Deletion, Reason
from registry_gc.planfile import (
    SCHEMA,
    PathRecord,
    PlanHeader,
    PlanReader,
    PlanWriter,
    read_plan,
    record_of,
    records_of,
    same_root,
    write_plan,
)

from tests.rigs.builder import RegistryBuilder, sha256
from tests.rigs.layouts import legacy
from tests.rigs.scenarios import rich
from tests.rigs.stores import DAY, R, blob, cur, idx, lnk, rev, surveyed, upload_paths

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def header(**changes: Any) -> PlanHeader:
    """A header with every field set to something other than its default."""
    fields: dict[str, Any] = {
        "root": "s3://bucket/reg",
        "created": T0 + datetime.timedelta(seconds=5),
        "listing_started": T0,
        "tool": "registry-gc 9.9",
        "options": Options(
            delete_untagged=True,
            grace=datetime.timedelta(minutes=90),
            uploads_older_than=datetime.timedelta(days=2),
            prune_damaged=True,
            allow_no_manifests=True,
            allow_empty=True,
        ),
        "removals": Removals(
            tags={Repository("app"): {Tag("v1"), Tag("v2")}},
            repositories={Repository("old/gone")},
            manifests={Repository("app"): {sha256(b"m")}},
        ),
        "dry_run": True,
    }
    fields.update(changes)
    return PlanHeader(**fields)


def text_of(h: PlanHeader, deletions: list[Deletion]) -> str:
    """The plan file of ``deletions`` under ``h``, as text."""
    out = io.StringIO()
    with PlanWriter(out, h) as writer:
        for d in deletions:
            writer.add(d)
    return out.getvalue()


def read_text(text: str, name: str = "plan.jsonl") -> tuple[PlanReader, list[Any]]:
    """Read ``text`` through: the reader and every entry."""
    reader = PlanReader(io.StringIO(text), name=name)
    return reader, list(reader)


def refusal(text: str) -> PlanFileError:
    """The error reading ``text`` through raises."""
    with pytest.raises(PlanFileError) as info:
        read_text(text)
    return info.value


# -- round trips -------------------------------------------------------------------------------


def test_a_plan_of_every_category_round_trips(tmp_path: Path) -> None:
    """Every deletion of a real plan comes back with its fields, paths, sizes and times."""
    b = RegistryBuilder()
    rich(b)
    inventory, manifests = surveyed(b, tmp_path / "reg")
    opts = Options(delete_untagged=True, grace=datetime.timedelta(0), prune_damaged=True)
    plan = make_plan(inventory, mark(inventory, manifests, opts))
    assert {d.category for d in plan.deletions} >= {
        Category.REVISION,
        Category.TAG_INDEX,
        Category.LAYER_LINK,
        Category.BLOB,
        Category.UPLOAD,
        Category.REPOSITORY,
    }
    h = PlanHeader.of(inventory, opts, Removals(), dry_run=True)
    footer = write_plan(tmp_path / "plan.jsonl", h, inventory, plan)
    assert footer.deletions == len(plan.deletions)
    assert footer.bytes == sum(d.size for d in plan.deletions)
    with read_plan(tmp_path / "plan.jsonl") as reader:
        assert reader.header == h
        entries = list(reader)
        assert reader.footer == footer
    assert len(entries) == len(plan.deletions)
    for line, (e, d) in enumerate(zip(entries, plan.deletions, strict=True), start=2):
        assert e.line == line
        assert (e.category, e.reason, e.repository, e.digest, e.name, e.size) == (
            d.category,
            d.reason,
            d.repository,
            d.digest,
            d.name,
            d.size,
        )
        assert tuple(r.path for r in e.paths) == d.paths
        assert e.paths == records_of(inventory, d.paths)
        assert e.status is None
    blob_entry = next(e for e in entries if e.category is Category.BLOB)
    (record,) = blob_entry.paths
    assert record.size == blob_entry.size > 0
    assert record.mtime == datetime.datetime.fromtimestamp(
        inventory.blobs.mtime(blob_entry.digest), UTC
    )


def test_a_plan_kept_as_rows_is_written_as_each_deletion_would_be(tmp_path: Path) -> None:
    """The rows' fast writer gives the text a Deletion and record_of per path would give.

    A plan with rows of every kind (blobs, layer links, revisions, a revision
    2.1.0 linked under ``_layers``, tag history) and deletions kept whole
    (tags, uploads, repositories), with every status and an error on some
    paths, written both ways, byte for byte.
    """
    b = RegistryBuilder()
    rich(b)
    legacy(b, "old", None)
    inventory, manifests = surveyed(b, tmp_path / "reg")
    opts = Options(delete_untagged=True, grace=datetime.timedelta(0), prune_damaged=True)
    plan = make_plan(inventory, mark(inventory, manifests, opts))
    deletions = plan.deletions
    assert isinstance(deletions, DeletionList)
    rows = list(deletions.spelled())
    assert any(isinstance(r, Deletion) for r in rows), "no deletion kept whole"
    assert any(isinstance(r, Spelled) and r.legacy for r in rows), "no 2.1.0 revision"
    spelled = {r.category for r in rows if isinstance(r, Spelled)}
    assert spelled == {Category.BLOB, Category.LAYER_LINK, Category.REVISION, Category.TAG_INDEX}
    statuses = [list(Status)[i % len(Status)] for i in range(len(deletions))]
    errors = {p: f"error {i}" for i, d in enumerate(deletions) for p in d.paths[:1] if i % 3 == 0}
    h = header(dry_run=False)
    fast = io.StringIO()
    write_plan(fast, h, inventory, plan, statuses=statuses, errors=errors)
    slow = io.StringIO()
    with PlanWriter(slow, h) as writer:
        for i, d in enumerate(list(deletions)):
            error = next((f"{p}: {errors[p]}" for p in d.paths if p in errors), None)
            writer.add(d, records_of(inventory, d.paths), status=statuses[i], error=error)
    assert fast.getvalue() == slow.getvalue()
    timed = {e.category for e in read_text(fast.getvalue())[1] if any(r.mtime for r in e.paths)}
    assert timed >= spelled, "a kind of row was written with no time"


def test_header_round_trips_options_and_removals() -> None:
    """Options (durations in seconds) and removals by name come back equal."""
    h = header()
    reader, entries = read_text(text_of(h, []))
    assert reader.header == h
    assert entries == []
    line = json.loads(text_of(h, []).splitlines()[0])
    assert line["schema"] == SCHEMA == "registry-gc/plan/v1"
    assert line["options"]["grace"] == 5400
    assert line["removals"] == {
        "tags": {"app": ["v1", "v2"]},
        "manifests": {"app": [sha256(b"m")]},
        "repositories": ["old/gone"],
    }
    assert line["created"] == "2026-03-01T12:00:05.123456Z"


def test_unicode_names_and_undecodable_paths_round_trip() -> None:
    """Names read from storage that are not ASCII, or not even UTF-8, come back unchanged."""
    odd = [
        Deletion(
            Category.REPOSITORY,
            Reason.REMOVED_REPOSITORY,
            (R + "café/ünï/_manifests/x", R + "日本/_layers/\udcff\udcfe"),
            0,
            "café/ünï",
            None,
            "タグ",
        )
    ]
    text = text_of(header(), odd)
    assert text.isascii()
    _, (entry,) = read_text(text)
    assert entry.repository == "café/ünï"
    assert entry.name == "タグ"
    assert [r.path for r in entry.paths] == list(odd[0].paths)


def test_multipart_uploads_round_trip() -> None:
    """An S3 upload's open multipart uploads are written as [key, upload id] and read back."""
    key = R + "app/_uploads/u1/data"
    d = Deletion(
        Category.UPLOAD,
        Reason.STALE_UPLOAD,
        (R + "app/_uploads/u1/startedat",),
        7,
        "app",
        None,
        "u1",
        (MultipartUpload(key, "id-1", T0), MultipartUpload(key, "id-2", T0)),
    )
    _, (entry,) = read_text(text_of(header(), [d]))
    assert entry.multipart == ((key, "id-1"), (key, "id-2"))
    assert entry.identity == ("upload", "app", None, "u1")


def test_statuses_errors_and_drops_round_trip() -> None:
    """--deletions-out lines carry a status, an error for failures, a reason for drops."""
    d = Deletion(Category.BLOB, Reason.UNREFERENCED, (blob(sha256(b"x")),), 1, None, sha256(b"x"))
    out = io.StringIO()
    with PlanWriter(out, header(dry_run=False)) as writer:
        writer.add(d, status="failed", error="boom")
        writer.add(d, status="deleted")
    _, (failed, deleted) = read_text(out.getvalue())
    assert (failed.status, failed.error) == ("failed", "boom")
    assert (deleted.status, deleted.error, deleted.dropped) == ("deleted", None, None)
    again = io.StringIO()
    with PlanWriter(again, header()) as writer:
        writer.add_entry(failed, status="dropped", dropped="changed")
    _, (dropped,) = read_text(again.getvalue())
    assert (dropped.status, dropped.dropped, dropped.paths) == ("dropped", "changed", failed.paths)


# -- streaming ---------------------------------------------------------------------------------


class _Lines:
    """Text lines handed out one at a time, counting how many were taken."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self.taken = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.taken += 1
            yield line


def test_the_reader_reads_one_line_per_entry() -> None:
    """The reader takes the header at once, then one line per entry asked for: it streams."""
    deletions = [
        Deletion(Category.BLOB, Reason.UNREFERENCED, (blob(sha256(bytes([i]))),), i)
        for i in range(50)
    ]
    lines = _Lines(text_of(header(), deletions))
    reader = PlanReader(lines, name="p")
    assert lines.taken == 1
    it = iter(reader)
    next(it)
    next(it)
    assert lines.taken == 3
    assert sum(1 for _ in it) == 48
    assert reader.footer is not None
    assert (reader.footer.deletions, reader.entries) == (50, 50)


def test_the_writer_writes_a_line_at_a_time() -> None:
    """The writer writes each deletion as it is given one, never the whole text at once."""
    writes: list[str] = []

    class Sink(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return len(s)

    sink = Sink()
    writer = PlanWriter(sink, header())
    assert len(writes) == 1
    for i in range(3):
        writer.add(Deletion(Category.BLOB, Reason.UNREFERENCED, (blob(sha256(bytes([i]))),)))
        assert len(writes) == 2 + i
    writer.close()
    assert len(writes) == 5
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in writes)


def test_a_path_target_appears_only_when_complete(tmp_path: Path) -> None:
    """Written to a temporary file renamed at the footer; an exception leaves nothing behind."""
    target = tmp_path / "plan.jsonl"
    seen: list[bool] = []

    def interrupted() -> None:
        with PlanWriter(target, header()) as writer:
            writer.add(Deletion(Category.BLOB, Reason.UNREFERENCED, (blob(sha256(b"a")),)))
            seen.append(target.exists())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        interrupted()
    assert seen == [False]
    assert list(tmp_path.iterdir()) == []
    with PlanWriter(target, header()):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["plan.jsonl"]


def test_a_plan_file_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """A target in a directory that does not exist is a ConfigError naming it (exit 2)."""
    with pytest.raises(ConfigError, match="cannot write the plan file"):
        PlanWriter(tmp_path / "nope" / "plan.jsonl", header())


# -- what the reader refuses -------------------------------------------------------------------


def _valid() -> str:
    d = Deletion(Category.BLOB, Reason.UNREFERENCED, (blob(sha256(b"a")),), 1, None, sha256(b"a"))
    return text_of(header(), [d, d])


def test_a_file_without_footer_is_cut_short() -> None:
    """The footer is the proof of a complete file: without it, the file is refused."""
    lines = _valid().splitlines(keepends=True)
    e = refusal("".join(lines[:-1]))
    assert isinstance(e, RefusedError)
    assert e.line is None
    assert e.path == "plan.jsonl"
    assert "without its footer line" in str(e)
    assert "cut short" in str(e)
    assert "nothing was deleted" in str(e)


def test_a_line_cut_in_the_middle_names_its_line_and_column() -> None:
    """A line cut short (or otherwise not JSON) is refused with its line number."""
    text = _valid()
    e = refusal(text[: text.index("\n", text.index("\n") + 1) - 10])
    assert e.line == 2
    assert "plan file plan.jsonl, line 2: not valid JSON" in str(e)
    assert "column" in str(e)


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (lambda ls: [ls[0], "{not json\n", *ls[1:]], 2, "not valid JSON"),
        (lambda ls: [ls[0], "[1, 2]\n", *ls[1:]], 2, "a list, not a JSON object"),
        (lambda ls: [*ls, '{"category": "blob"}\n'], 5, "a line after the footer"),
        (lambda ls: [ls[0], ls[1].replace('"blob"', '"bolb"'), *ls[2:]], 2, "'bolb'"),
        (lambda ls: [ls[0], ls[1].replace('"size":1', '"size":-1'), *ls[2:]], 2, "size"),
        (
            lambda ls: [ls[0], ls[1].replace('"paths":[[', '"paths":[["x",1,null],['), *ls[2:]],
            2,
            "'x'",
        ),
        (lambda ls: [ls[0].replace('"dry_run":true', '"dry_run":"yes"'), *ls[1:]], 1, "dry_run"),
        (lambda ls: [ls[0].replace('"grace":5400.0', '"grace":-1'), *ls[1:]], 1, "grace"),
        (lambda ls: [ls[0].replace('"2026-03-01T12:00:00.123456Z"', '"noon"'), *ls[1:]], 1, "noon"),
        (lambda ls: [ls[0].replace('"old/gone"', '"Old/Gone"'), *ls[1:]], 1, "Old/Gone"),
    ],
    ids=[
        "not-json",
        "not-object",
        "after-footer",
        "category",
        "negative-size",
        "path-outside",
        "dry-run-type",
        "negative-grace",
        "time",
        "bad-removal-name",
    ],
)
def test_every_malformed_line_is_refused_by_number(change: Any, line: int, words: str) -> None:
    """Each kind of damage is refused with the file's name, the line, and what is wrong."""
    e = refusal("".join(change(_valid().splitlines(keepends=True))))
    assert e.line == line, str(e)
    assert f"plan file plan.jsonl, line {line}: " in str(e)
    assert words in str(e)


@pytest.mark.parametrize(
    "path",
    [
        "etc/passwd",
        "docker/registry/v2/../../../etc/passwd",
        "docker/registry/v2/blobs/./x",
        "docker/registry/v2//x",
        "/docker/registry/v2/blobs/x",
        "docker/registry/v3/blobs/x",
    ],
)
def test_a_path_outside_the_registry_tree_is_refused(path: str) -> None:
    """An edited path that leaves docker/registry/v2 refuses the whole file, naming the line."""
    lines = _valid().splitlines(keepends=True)
    obj = json.loads(lines[2])
    obj["paths"][0][0] = path
    lines[2] = json.dumps(obj) + "\n"
    e = refusal("".join(lines))
    assert e.line == 3
    assert "not a path inside docker/registry/v2/" in str(e)
    assert "deletes nothing outside the registry's tree" in str(e)


def test_a_multipart_key_outside_the_tree_is_refused() -> None:
    """The keys of multipart uploads to abort are paths too."""
    lines = _valid().splitlines(keepends=True)
    obj = json.loads(lines[1])
    obj["multipart"] = [["other/key", "id"]]
    lines[1] = json.dumps(obj) + "\n"
    assert refusal("".join(lines)).line == 2


def test_an_unknown_schema_is_refused_with_what_to_do() -> None:
    """Another version of the format says which it is and which this one reads."""
    lines = _valid().splitlines(keepends=True)
    lines[0] = lines[0].replace(SCHEMA, "registry-gc/plan/v7")
    e = refusal("".join(lines))
    assert e.line == 1
    assert "'registry-gc/plan/v7'" in str(e)
    assert "reads 'registry-gc/plan/v1'" in str(e)
    lines[0] = json.dumps({"schema": "registry-gc/report/v2"}) + "\n"
    assert "not a plan file" in str(refusal("".join(lines)))


def test_an_empty_file_and_blank_lines() -> None:
    """An empty file is no plan; blank lines between entries are ignored."""
    assert "is empty" in str(refusal(""))
    lines = _valid().splitlines(keepends=True)
    reader, entries = read_text("\n".join(lines))
    assert len(entries) == 2
    assert reader.footer is not None


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    """A plan file that cannot be opened is a ConfigError; one that is not UTF-8, refused."""
    with pytest.raises(ConfigError, match="cannot read the plan file"), read_plan(tmp_path / "no"):
        pass
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PlanFileError, match="not UTF-8"), read_plan(bad):
        pass


# -- what the listing knew ---------------------------------------------------------------------


def test_record_of_every_kind_of_path(tmp_path: Path) -> None:
    """Blobs and upload files have a size and time; links a time; a current link its size."""
    b = RegistryBuilder()
    img = b.image("app", "v1")
    old = b.image("app", None)
    uid = b.upload("app", age=3 * DAY)
    sig = b.blob(b"sig")
    sig_link = LegacySignatureLink(Repository("app"), old, sig).path
    b.put(sig_link, sig.encode())
    b.put(R + "app/_manifests/stray", b"?")
    inventory, _ = surveyed(b, tmp_path / "reg")
    config = Digest(b.contents[img]["blobs"][0])

    def at(path: str) -> PathRecord | None:
        return record_of(inventory, path)

    got = at(blob(img))
    assert got is not None
    assert got.size == len(b.files[blob(img)])
    assert got.mtime is not None
    assert abs(got.mtime.timestamp() - (inventory.started.timestamp() - 10 * DAY)) < 60
    for link in (rev("app", old), idx("app", "v1", img), lnk("app", config), sig_link):
        found = at(link)
        assert found is not None
        assert found.size is None
        assert found.mtime is not None, link
    current = at(cur("app", "v1"))
    assert current is not None
    assert current.size == len(img)
    for path in upload_paths("app", uid):
        got = at(path)
        assert got is not None
        assert got.size == len(b.files[path])
    assert at(R + "app/_manifests/stray") == PathRecord(R + "app/_manifests/stray")
    for absent in (
        blob(sha256(b"none")),
        rev("app", sha256(b"none")),
        rev("nope", old),
        cur("app", "v9"),
        idx("app", "v9", img),
        R + "app/_uploads/none/data",
        LegacySignatureLink(Repository("app"), old, sha256(b"none")).path,
        R + "app/_manifests/other-stray",
    ):
        assert at(absent) is None, absent


def test_same_root_normalizes_urls_and_paths(tmp_path: Path) -> None:
    """A final slash, the scheme's case and a relative local path do not make another root."""
    assert same_root("s3://b/reg/", "S3://b/reg")
    assert not same_root("s3://b/reg", "s3://b/other")
    assert not same_root("az://c//", "az://c")  # a "/" prefix is another root on Azure
    (tmp_path / "r").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "r")
    assert same_root(str(tmp_path / "r"), str(tmp_path / "link") + "/")
    assert not same_root(str(tmp_path / "r"), "file://" + str(tmp_path / "r"))
