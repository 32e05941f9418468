"""The local listing's helper process: what it lists, how it fails, and how it is stopped.

``LocalBackend.list_ahead`` lists ``repositories/`` in a helper process that
runs ``registry_gc/backends/_walk.py`` by its path, while the inventory lists
``blobs/``. Whatever happens to the helper, the listing is either complete
and the same as in one process, or an error, and the run deletes nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import json
import marshal
import os
import signal
import subprocess
import sys
import time
from array import array as _array
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from registry_gc import StorageError, collect, layout
from registry_gc.backends import UNKNOWN_TIME, ListedBatch, LocalBackend, _localscan, _walk
from registry_gc.demo import write_demo_registry
from registry_gc.testing import BLOBS, REPOS

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)


def _tree(root: Path) -> None:
    """A small store: blobs, links of every kind, an upload and an empty directory."""
    hexes = [f"{i:02x}" * 32 for i in range(12)]
    files = {f"{BLOBS}sha256/{h[:2]}/{h}/data": h.encode() for h in hexes}
    for i, h in enumerate(hexes):
        repo = f"{REPOS}team/app{i % 3}"
        files[f"{repo}/_layers/sha256/{h}/link"] = b"sha256:" + h.encode()
        files[f"{repo}/_manifests/revisions/sha256/{h}/link"] = b"sha256:" + h.encode()
        files[f"{repo}/_manifests/tags/v{i}/current/link"] = b"sha256:" + h.encode()
        files[f"{repo}/_manifests/tags/v{i}/index/sha256/{h}/link"] = b"sha256:" + h.encode()
    files[f"{REPOS}team/app0/_uploads/u1/startedat"] = b"2026-01-01T00:00:00Z"
    _write(root, files)
    (root / REPOS / "empty" / "_manifests").mkdir(parents=True)


def _listed(chunks: list[list[ListedBatch]]) -> dict[str, tuple[int, float]]:
    out = {}
    for chunk in chunks:
        for b in chunk:
            for n, s, m in zip(b.names, b.sizes, b.mtimes, strict=True):
                out[f"{b.directory}/{n}"] = (s, m)
            out.update({p: (0, m) for p, m in b.empty_dirs})
    return out


def _ahead(backend: LocalBackend, prefix: str, *, names_only: bool = False) -> Any:
    """Everything ``list_ahead(prefix)`` yields (and the listing, closed)."""

    async def main() -> tuple[list[list[ListedBatch]], Any]:
        listing = backend.list_ahead(prefix, names_only=names_only)
        try:
            return [chunk async for chunk in listing], listing
        finally:
            await listing.aclose()

    return asyncio.run(main())


def _batches(backend: LocalBackend, prefix: str) -> list[list[ListedBatch]]:
    async def main() -> list[list[ListedBatch]]:
        return [chunk async for chunk in backend.list_batches(prefix)]

    return asyncio.run(main())


def _frames(data: bytes) -> list[Any]:
    """The helper's output, frame by frame."""
    frames = []
    while data:
        n = int.from_bytes(data[:8], "little")
        assert len(data) >= 8 + n
        frames.append(marshal.loads(data[8 : 8 + n]))
        data = data[8 + n :]
    return frames


def _main(
    argv: list[str], capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """The frames ``_walk.main(argv)`` writes, run in this process (its SIGINT left alone)."""
    ignored = SimpleNamespace(signal=lambda *_a: None, SIGINT=signal.SIGINT, SIG_IGN=signal.SIG_IGN)
    monkeypatch.setattr(_walk, "signal", ignored)
    capfdbinary.readouterr()
    assert _walk.main(argv) == 0
    return _frames(capfdbinary.readouterr().out)


def test_the_walk_repeats_the_layouts_facts() -> None:
    """``_walk`` repeats the layout's facts (the helper imports nothing of registry-gc)."""
    assert _walk.V2_PREFIX == layout.V2_PREFIX
    assert _walk.BLOBS_PREFIX == layout.BLOBS_PREFIX
    assert _walk.REPOSITORIES_PREFIX == layout.REPOSITORIES_PREFIX
    assert UNKNOWN_TIME.timestamp() == _walk.UNKNOWN


def test_the_helper_runs_without_registry_gc_importable(tmp_path: Path) -> None:
    """Run as the listing runs it (``-I -S``, no site-packages), it lists and ends with ``done``."""
    root = tmp_path / "root"
    _tree(root)
    top = str(root / REPOS).rstrip("/")
    argv = _localscan._helper_argv(str(root), top, names_only=False)
    assert argv is not None
    assert argv[1:3] == ["-I", "-S"]
    out = subprocess.run(argv, capture_output=True, check=True, cwd=tmp_path, timeout=60)
    assert out.stderr == b""
    frames = _frames(out.stdout)
    assert frames[-1] == ("done",)
    assert {f[0] for f in frames[:-1]} == {"chunk"}
    names = {f"{d}/{n}" for f in frames[:-1] for d, ns, *_ in f[1] for n in ns}
    assert f"{REPOS}team/app0/_uploads/u1/startedat" in names
    assert len(names) == 12 * 4 + 1


@pytest.mark.parametrize("names_only", [False, True])
def test_the_helpers_frames_carry_the_listing(
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    names_only: bool,
) -> None:
    """``main`` (in this process): chunks of columns, sizes and times as bytes, ``done`` last."""
    root = tmp_path / "root"
    _tree(root)
    top = str(root / REPOS).rstrip("/")
    argv = [str(root), top, "--fs-encoding", _walk.fs_encoding()]
    frames = _main([*argv, "--names-only"] if names_only else argv, capfdbinary, monkeypatch)
    assert frames[-1] == ("done",)
    listed = {}
    for kind, chunk in frames[:-1]:
        assert kind == "chunk"
        for directory, names, sizes, mtimes, _empty in chunk:
            pairs = zip(_array("q", sizes), _array("d", mtimes), strict=True)
            listed.update({f"{directory}/{n}": p for n, p in zip(names, pairs, strict=True)})
    assert len(listed) == 12 * 4 + 1
    link = f"{REPOS}team/app0/_layers/sha256/{'00' * 32}/link"
    if names_only:
        assert listed[link] == (-1, _walk.UNKNOWN)
    else:
        st = os.stat(root / link)
        assert listed[link] == (st.st_size, st.st_mtime)


def test_the_helper_sends_what_stops_its_walk(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link it refuses, then a decoding of names not the parent's: one frame each, no ``done``."""
    root = tmp_path / "root"
    _tree(root)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / REPOS / "evil")
    top = str(root / REPOS).rstrip("/")
    frames = _main([str(root), top], capfdbinary, monkeypatch)
    assert frames == [("refused", "outside", f"{REPOS}evil", str(tmp_path / "outside"))]
    frames = _main([str(root), top, "--fs-encoding", "latin-1:strict"], capfdbinary, monkeypatch)
    why = f"the helper decodes file names as {_walk.fs_encoding()}, registry-gc as latin-1:strict"
    assert frames == [("unfit", why)]


def test_the_helpers_error_frames() -> None:
    """An OSError keeps its errno and a text file name; anything else is its type and text."""
    e = OSError(errno.EACCES, "Permission denied", "/r/x")
    assert _walk._error_frame(e) == ("oserror", errno.EACCES, "Permission denied", "/r/x")
    e = OSError(errno.EACCES, "Permission denied", b"/r/x")
    assert _walk._error_frame(e) == ("oserror", errno.EACCES, "Permission denied", None)
    assert _walk._error_frame(ValueError("bad")) == ("error", "ValueError: bad")
    refused = _walk.Refused("alias", "p", "t")
    assert _walk._error_frame(refused) == ("refused", "alias", "p", "t")


@pytest.mark.parametrize("names_only", [False, True])
@pytest.mark.parametrize("helper", [True, False])
def test_a_listing_ahead_is_the_listing_in_one_process(
    tmp_path: Path, helper: bool, names_only: bool
) -> None:
    """Sizes, times, names and empty directories: the same with a helper, without, and in one go."""
    root = tmp_path / "root"
    _tree(root)
    backend = LocalBackend(root, helper_process=helper)
    chunks, listing = _ahead(backend, REPOS, names_only=names_only)
    assert (listing.proc is not None) is helper
    expected = _batches(backend, REPOS)
    got = _listed(chunks)
    if names_only:
        assert set(got) == set(_listed(expected))
        assert {s for s, _ in got.values()} <= {-1, 0}
    else:
        assert got == _listed(expected)
    assert f"{REPOS}empty/_manifests" in got


def test_the_environment_keeps_the_listing_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``REGISTRY_GC_LIST_HELPER=0``: no helper unless the constructor asks for one."""
    monkeypatch.setenv(_localscan.HELPER_ENV, "0")
    assert LocalBackend(tmp_path).helper_process is False
    assert LocalBackend(tmp_path, helper_process=True).helper_process is True
    monkeypatch.setenv(_localscan.HELPER_ENV, "1")
    assert LocalBackend(tmp_path).helper_process is True
    monkeypatch.delenv(_localscan.HELPER_ENV)
    assert LocalBackend(tmp_path).helper_process is True


@pytest.mark.parametrize("helper", [True, False])
def test_links_the_walk_refuses_are_refused_alike(tmp_path: Path, helper: bool) -> None:
    """A link out of the root, or a second name for a directory: the same StorageError."""
    root = tmp_path / "root"
    _tree(root)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / REPOS / "evil")
    backend = LocalBackend(root, helper_process=helper)
    with pytest.raises(StorageError, match="outside the registry root") as e:
        _ahead(backend, REPOS)
    assert e.value.path == f"{REPOS}evil"
    os.unlink(root / REPOS / "evil")
    (root / "shared" / "x").mkdir(parents=True)
    os.symlink(root / "shared", root / REPOS / "one")
    os.symlink(root / "shared", root / REPOS / "two")
    with pytest.raises(StorageError, match="two names"):
        _ahead(backend, REPOS)


@pytest.mark.parametrize("helper", [True, False])
def test_an_os_error_of_the_walk_is_raised_alike(tmp_path: Path, helper: bool) -> None:
    """A loop of links (ELOOP) raises the same OSError, with its errno and file, either way."""
    root = tmp_path / "root"
    _tree(root)
    os.symlink(root / "loop-b", root / "loop-a")
    os.symlink(root / "loop-a", root / "loop-b")
    os.symlink(root / "loop-a", root / REPOS / "looped")
    backend = LocalBackend(root, helper_process=helper)
    with pytest.raises(OSError) as e:
        _ahead(backend, REPOS)
    assert e.value.errno == errno.ELOOP
    assert e.value.filename is not None


def _fake_helper(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Make the listing start ``python -c code`` as its helper."""
    monkeypatch.setattr(_localscan, "_helper_argv", lambda *_a, **_k: [sys.executable, "-c", code])


def test_a_helper_that_ends_early_is_an_error_naming_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``done`` frame: a StorageError with the exit code, what it said, and the way out."""
    root = tmp_path / "root"
    _tree(root)
    _fake_helper(monkeypatch, "import sys; sys.stderr.write('walk crashed'); sys.exit(3)")
    with pytest.raises(StorageError) as e:
        _ahead(LocalBackend(root), REPOS)
    message = str(e.value)
    assert "exit code 3" in message
    assert "walk crashed" in message
    assert "nothing was deleted" in message
    assert f"{_localscan.HELPER_ENV}=0" in message
    assert e.value.path == REPOS.rstrip("/")


def test_a_helper_cut_off_mid_frame_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame shorter than its length says is a StorageError too, never a shorter listing."""
    root = tmp_path / "root"
    _tree(root)
    code = (
        "import marshal, sys; d = marshal.dumps(('chunk', [])); "
        "sys.stdout.buffer.write(len(d).to_bytes(8, 'little') + d); "
        "sys.stdout.buffer.write((1000).to_bytes(8, 'little') + b'xx')"
    )
    _fake_helper(monkeypatch, code)
    with pytest.raises(StorageError, match=r"ended \(exit code 0\) before the listing"):
        _ahead(LocalBackend(root), REPOS)
    _fake_helper(
        monkeypatch, "import sys; sys.stdout.buffer.write((2).to_bytes(8, 'little') + b'xx')"
    )
    with pytest.raises(StorageError, match="could not be read"):
        _ahead(LocalBackend(root), REPOS)


def test_a_helper_that_cannot_start_leaves_the_listing_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No executable to start: the same listing, done in this process."""
    root = tmp_path / "root"
    _tree(root)
    monkeypatch.setattr(
        _localscan, "_helper_argv", lambda *_a, **_k: [str(tmp_path / "no-such-python")]
    )
    backend = LocalBackend(root)
    chunks, listing = _ahead(backend, REPOS)
    assert listing.proc is None
    assert _listed(chunks) == _listed(_batches(backend, REPOS))


def test_a_name_that_is_not_utf8_is_listed_alike(tmp_path: Path) -> None:
    """A directory named by bytes that are not UTF-8: the same surrogate-escaped name either way."""
    root = tmp_path / "root"
    _tree(root)
    os.mkdir(os.fsencode(root / REPOS) + b"/caf\xe9")
    backend = LocalBackend(root)
    chunks, listing = _ahead(backend, REPOS)
    assert listing.proc is not None
    assert listing.unfit is None
    got = _listed(chunks)
    assert f"{REPOS}caf\udce9" in got
    assert got == _listed(_batches(backend, REPOS))


def test_a_helper_that_decodes_names_otherwise_leaves_the_listing_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper decodes file names otherwise: it lists nothing, and this process lists."""
    root = tmp_path / "root"
    _tree(root)
    helpers = _walk.fs_encoding()
    monkeypatch.setattr(_walk, "fs_encoding", lambda: "ascii:strict")
    backend = LocalBackend(root)
    chunks, listing = _ahead(backend, REPOS)
    assert listing.proc is not None
    assert listing.unfit == (
        f"the helper decodes file names as {helpers}, registry-gc as ascii:strict"
    )
    assert _listed(chunks) == _listed(_batches(backend, REPOS))


#: Lists ``argv[2]`` under the root ``argv[1]`` with a helper and in one process; prints both.
_LIST_BOTH = """
import asyncio, json, sys
from registry_gc.backends import LocalBackend, _walk

async def names(helper):
    listing = LocalBackend(sys.argv[1], helper_process=helper).list_ahead(sys.argv[2])
    try:
        out = []
        async for chunk in listing:
            for b in chunk:
                out += [f"{b.directory}/{n}" for n in b.names] + [p for p, _ in b.empty_dirs]
        return sorted(out), listing.unfit
    finally:
        await listing.aclose()

helper, unfit = asyncio.run(names(True))
here, _ = asyncio.run(names(False))
print(json.dumps({"encoding": _walk.fs_encoding(), "unfit": unfit, "helper": helper, "here": here}))
"""


def test_an_ascii_registry_gc_lists_non_ascii_names_as_it_decodes_them(tmp_path: Path) -> None:
    r"""``LC_ALL=C PYTHONUTF8=0 PYTHONCOERCECLOCALE=0``: ASCII here, UTF-8 in ``python -I``.

    The helper would send ``café`` where registry-gc's own name for the file is
    ``caf\udcc3\udca9`` (and encoding ``café`` back to a path fails): it
    lists nothing, and registry-gc lists in its own process.
    """
    root = tmp_path / "root"
    _tree(root)
    (root / REPOS / "café").mkdir()
    env = {
        **os.environ,
        "LC_ALL": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "utf-8",
    }
    out = subprocess.run(
        [sys.executable, "-c", _LIST_BOTH, str(root), REPOS.rstrip("/")],
        capture_output=True,
        check=True,
        env=env,
        timeout=120,
    )
    listed = json.loads(out.stdout)
    assert listed["encoding"] == "ascii:surrogateescape"
    assert "utf-8" in listed["unfit"]
    assert f"{REPOS}caf\udcc3\udca9" in listed["here"]
    assert listed["helper"] == listed["here"]


@pytest.mark.parametrize(
    ("executable", "frozen"),
    [("", False), ("/opt/app/bin/uwsgi", False), ("/usr/bin/python3", True)],
)
def test_no_helper_where_the_executable_is_no_interpreter(
    monkeypatch: pytest.MonkeyPatch, executable: str, frozen: bool
) -> None:
    """An application embedding Python (or a frozen one) lists in its own process."""
    monkeypatch.setattr(sys, "executable", executable)
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert _localscan._helper_argv("/r", "/r/t", names_only=False) is None


def test_closing_stops_a_helper_still_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aclose`` kills a helper that has not finished, and returns without waiting for it."""
    root = tmp_path / "root"
    _tree(root)
    _fake_helper(monkeypatch, "import time; time.sleep(120)")

    async def main() -> Any:
        listing = LocalBackend(root).list_ahead(REPOS)
        began = time.monotonic()
        await listing.aclose()
        await listing.aclose()
        return listing, time.monotonic() - began

    listing, seconds = asyncio.run(main())
    assert listing.proc.returncode is not None
    assert seconds < 60


def test_a_run_decides_the_same_with_and_without_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo registry, dry run with ``-m``: the same report either way."""
    demo = write_demo_registry(tmp_path / "demo", now=NOW)
    reports = {}
    for helper in ("1", "0"):
        monkeypatch.setenv(_localscan.HELPER_ENV, helper)
        report = collect(
            demo.root, dry_run=True, delete_untagged=True, grace=datetime.timedelta(0), now=NOW
        )
        reports[helper] = report.to_dict()
    for d in reports.values():
        del d["timings"], d["started"]
    assert reports["1"]["totals"] == reports["0"]["totals"]
    assert sum(c["objects"] for c in reports["1"]["categories"].values()) > 0
    assert reports["1"] == reports["0"]
