"""The suite's tests of moving and writing objects (live mode's two capabilities).

:class:`MoveAndWriteTests` is part of :class:`~registry_gc.testing.BackendSuite`
(a base class of it), in a module of its own so that each stays readable.
Its tests run on a backend with :class:`~registry_gc.backends.SupportsMove`
or :class:`~registry_gc.backends.SupportsWrite` and are skipped, with the
capability named, on one without.

Objects move between the registry's tree and a quarantine outside it
(:data:`~registry_gc.testing.QUARANTINE`), as live mode moves them.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest

from .. import StorageError
from ..backends import DeleteResult, Outcome, SupportsMove, SupportsWrite
from ._common import (
    QUARANTINE,
    REFUSED,
    REPOS,
    blob_path,
    collect,
    files,
    needs,
    run,
    skip_without,
    write_many,
)

if TYPE_CHECKING:
    from ..backends import Backend, ObjectInfo
    from ._common import Writer

__all__ = ["MoveAndWriteTests"]

_UTC = datetime.timezone.utc


def _link(seed: str) -> bytes:
    """A link file's content, as distribution writes it: ``sha256:<hex>``, no newline."""
    return b"sha256:" + blob_path(seed).split("/")[-2].encode()


def _everything(backend: Backend) -> dict[str, ObjectInfo]:
    """Every listed entry (empty directories too), by path."""
    return {i.path: i for i in run(backend, lambda: collect(backend, ""))}


class MoveAndWriteTests:
    """The tests of :class:`~registry_gc.backends.SupportsMove` and ``SupportsWrite``."""

    # -- SupportsMove ------------------------------------------------------------------

    @needs(SupportsMove)
    def test_move_many_out_of_the_tree_with_their_bytes(
        self, backend: Backend, writer: Writer
    ) -> None:
        """Moved objects leave their source and list at their destination, bytes intact."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        objects = {blob_path(str(i)): f"layer {i};".encode() * (i + 1) for i in range(12)}
        objects[blob_path("empty")] = b""
        objects[REPOS + "r/_layers/sha256/ab/link"] = _link("ab")
        write_many(writer, objects)
        writer(REPOS + "keep/link", b"k")
        moves = [(p, QUARANTINE + p) for p in objects]
        sizes = {p: len(d) for p, d in objects.items()}
        before = datetime.datetime.now(_UTC)

        results = run(backend, lambda: backend.move(moves, sizes=sizes))

        assert results == [DeleteResult(p, Outcome.DELETED) for p in objects]
        listed = files(run(backend, lambda: collect(backend, "")))
        assert set(listed) == {QUARANTINE + p for p in objects} | {REPOS + "keep/link"}
        for path, data in objects.items():
            info = listed[QUARANTINE + path]
            assert info.size == len(data)
            assert info.modified.utcoffset() == datetime.timedelta(0)
            assert abs(info.modified - before) < datetime.timedelta(minutes=5)
        expected = {QUARANTINE + p: d for p, d in objects.items()} | dict.fromkeys(objects)
        assert dict(run(backend, lambda: backend.read(list(expected)))) == expected
        assert run(backend, lambda: backend.move([])) == []

    @needs(SupportsMove)
    def test_move_back_restores_without_sizes(self, backend: Backend, writer: Writer) -> None:
        """Objects moved out and back again (without sizes) are where they were, unchanged."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        objects = {blob_path(str(i)): bytes([i]) * 1000 * (i + 1) for i in range(5)}
        write_many(writer, objects)
        out = [(p, QUARANTINE + p) for p in objects]
        back = [(q, p) for p, q in out]

        assert run(backend, lambda: backend.move(out)) == [
            DeleteResult(p, Outcome.DELETED) for p, _ in out
        ]
        assert run(backend, lambda: backend.move(back)) == [
            DeleteResult(q, Outcome.DELETED) for q, _ in back
        ]

        assert set(files(run(backend, lambda: collect(backend, "")))) == set(objects)
        assert dict(run(backend, lambda: backend.read(list(objects)))) == objects

    @needs(SupportsMove)
    def test_move_of_a_missing_source_is_missing_and_writes_nothing(
        self, backend: Backend, writer: Writer
    ) -> None:
        """A source that does not exist is MISSING, in its place; nothing appears for it."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        present = [blob_path("a"), blob_path("b")]
        write_many(writer, dict.fromkeys(present, b"blob"))
        missing = blob_path("missing")
        moves = [(present[0], QUARANTINE + "a"), (missing, QUARANTINE + "m"), (present[1], "b")]

        results = run(backend, lambda: backend.move(moves, sizes={missing: 4}))

        assert results == [
            DeleteResult(present[0], Outcome.DELETED),
            DeleteResult(missing, Outcome.MISSING),
            DeleteResult(present[1], Outcome.DELETED),
        ]
        assert set(files(run(backend, lambda: collect(backend, "")))) == {QUARANTINE + "a", "b"}
        assert not [p for p in _everything(backend) if p.startswith(QUARANTINE + "m")]

    @needs(SupportsMove)
    def test_move_overwrites_the_destination(self, backend: Backend, writer: Writer) -> None:
        """An object already at the destination is replaced by the one moved there."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        src, dst = blob_path("new"), QUARANTINE + blob_path("new")
        writer(src, b"the new bytes")
        writer(dst, b"old")
        results = run(backend, lambda: backend.move([(src, dst)], sizes={src: 13}))
        assert results == [DeleteResult(src, Outcome.DELETED)]
        assert dict(run(backend, lambda: backend.read([src, dst]))) == {
            src: None,
            dst: b"the new bytes",
        }
        assert files(run(backend, lambda: collect(backend, QUARANTINE)))[dst].size == 13

    @needs(SupportsMove)
    @pytest.mark.parametrize("path", REFUSED)
    @pytest.mark.parametrize("side", ["source", "destination"])
    def test_move_refuses_paths_leaving_the_root(
        self, backend: Backend, writer: Writer, path: str, side: str
    ) -> None:
        """A refused path as a source or a destination raises StorageError(path=); nothing moves."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        good = blob_path("good")
        writer(good, b"stays")
        writer(REPOS + "x/link", b"x")
        bad = (path, QUARANTINE + "x") if side == "source" else (REPOS + "x/link", path)
        with pytest.raises(StorageError) as e:
            run(backend, lambda: backend.move([(good, QUARANTINE + good), bad]))
        assert e.value.path == path
        assert set(_everything(backend)) == {good, REPOS + "x/link"}

    @needs(SupportsMove)
    @pytest.mark.parametrize(
        ("moves", "refused"),
        [
            pytest.param([("a", "b"), ("c", "c")], "c", id="onto-itself"),
            pytest.param([("a", "q/a"), ("c", "q/a")], "q/a", id="one-destination-twice"),
            pytest.param([("a", "q/a"), ("a", "q/b")], "a", id="one-source-twice"),
            pytest.param([("a", "b"), ("b", "q/b")], "b", id="source-and-destination"),
        ],
    )
    def test_move_refuses_pairs_whose_order_would_matter(
        self, backend: Backend, writer: Writer, moves: list[tuple[str, str]], refused: str
    ) -> None:
        """Pairs that depend on each other, or move onto themselves, raise StorageError."""
        if not isinstance(backend, SupportsMove):
            skip_without(backend, SupportsMove)
        pairs = [(QUARANTINE + s, QUARANTINE + d) for s, d in moves]
        write_many(writer, {QUARANTINE + p: p.encode() for p in ("a", "b", "c")})
        before = set(_everything(backend))
        with pytest.raises(StorageError) as e:
            run(backend, lambda: backend.move(pairs))
        assert e.value.path == QUARANTINE + refused
        assert set(_everything(backend)) == before

    # -- SupportsWrite -----------------------------------------------------------------

    @needs(SupportsWrite)
    def test_write_creates_parents_and_overwrites(self, backend: Backend, writer: Writer) -> None:
        """Written objects read back and list with their sizes; writing again replaces them."""
        if not isinstance(backend, SupportsWrite):
            skip_without(backend, SupportsWrite)
        writer(REPOS + "r/_layers/sha256/00/link", b"untouched")
        link = REPOS + "r/_layers/sha256/" + blob_path("l").split("/")[-2] + "/link"
        journal = QUARANTINE + "journal/0001"
        first = {link: _link("l"), journal: b'{"moved": 1}\n'}

        assert run(backend, lambda: backend.write(first)) is None

        assert dict(run(backend, lambda: backend.read(list(first)))) == first
        listed = files(run(backend, lambda: collect(backend, "")))
        assert {p: i.size for p, i in listed.items() if p in first} == {
            p: len(d) for p, d in first.items()
        }
        second = {journal: b'{"moved": 1}\n{"restored": 2}\n'}
        run(backend, lambda: backend.write(second))
        assert dict(run(backend, lambda: backend.read([journal, link]))) == {
            journal: second[journal],
            link: first[link],
        }
        assert files(run(backend, lambda: collect(backend, QUARANTINE)))[journal].size == len(
            second[journal]
        )
        assert set(files(run(backend, lambda: collect(backend, "")))) == {
            *first,
            REPOS + "r/_layers/sha256/00/link",
        }
        run(backend, lambda: backend.write({}))

    @needs(SupportsWrite)
    @pytest.mark.parametrize("path", REFUSED)
    def test_write_refuses_paths_leaving_the_root(
        self, backend: Backend, writer: Writer, path: str
    ) -> None:
        """Writing a refused path raises StorageError(path=) before anything is written."""
        if not isinstance(backend, SupportsWrite):
            skip_without(backend, SupportsWrite)
        writer(REPOS + "x/link", b"x")
        with pytest.raises(StorageError) as e:
            run(backend, lambda: backend.write({QUARANTINE + "journal": b"j", path: b"x"}))
        assert e.value.path == path
        assert set(_everything(backend)) == {REPOS + "x/link"}
