"""The suite's tests of the fast listings (the capabilities a run lists a store with).

:class:`ListingCapabilityTests` is part of :class:`~registry_gc.testing.BackendSuite`
(a base class of it), in a module of its own so that each stays readable, as
:class:`~registry_gc.testing._moves.MoveAndWriteTests` is. Its tests check
:class:`~registry_gc.backends.SupportsListBatches`,
:class:`~registry_gc.backends.SupportsListAhead`,
:class:`~registry_gc.backends.SupportsNamesOnly` and
:class:`~registry_gc.backends.SupportsListDir` against the plain ``list``, and
are skipped, with the capability named, on a backend without it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import TYPE_CHECKING, Any

from ..backends import SupportsListAhead, SupportsListBatches, SupportsListDir, SupportsNamesOnly
from ._common import BLOBS, REPOS, blob_path, collect, files, needs, run, skip_without, write_many

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..backends import Backend, ListedBatch, ObjectInfo
    from ._common import Writer

__all__ = ["ListingCapabilityTests", "batch_files"]


def batch_files(batches: list[ListedBatch]) -> dict[str, tuple[int, float]]:
    """The files of listed batches, by root-relative path: ``(size, mtime)``."""
    return {
        (f"{b.directory}/{n}" if b.directory else n): (s, m)
        for b in batches
        for n, s, m in zip(b.names, b.sizes, b.mtimes, strict=True)
    }


def blobs_and_layer_links(count: int) -> tuple[list[str], dict[str, bytes]]:
    """``count`` blobs of 0 to ``count - 1`` bytes, and ``count`` ``_layers`` links of ``a``.

    The hex digests the links are named by, and the objects to write.
    """
    hexes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]
    objects = {blob_path(str(i)): b"b" * i for i in range(count)}
    objects.update({f"{REPOS}a/_layers/sha256/{h}/link": b"sha256:" + h.encode() for h in hexes})
    return hexes, objects


class ListingCapabilityTests:
    """The tests of the listing capabilities a run uses instead of ``list``."""

    # -- SupportsListBatches -----------------------------------------------------------

    @needs(SupportsListBatches)
    def test_list_batches_list_what_list_lists(self, backend: Backend, writer: Writer) -> None:
        """Batches hold the objects (and empty directories) list yields, with sizes and times."""
        if not isinstance(backend, SupportsListBatches):
            skip_without(backend, SupportsListBatches)
        hexes, objects = blobs_and_layer_links(40)
        objects[f"{REPOS}a/_manifests/tags/t/index/sha256/{hexes[0]}/link"] = b"x"
        objects[f"{REPOS}a/_manifests/revisions/sha256/{hexes[1]}/link"] = b"x"
        objects[f"{REPOS}a/_uploads/u1/hashstates/sha256/0"] = b"state"
        objects[BLOBS + "sha256/zz/junk"] = b"?"
        write_many(writer, objects)
        writer(REPOS + "b/_uploads/", b"")

        async def both(prefix: str) -> tuple[list[ObjectInfo], list[ListedBatch]]:
            assert isinstance(backend, SupportsListBatches)
            batches = [b async for chunk in backend.list_batches(prefix) for b in chunk]
            return await collect(backend, prefix), batches

        for prefix in ("", BLOBS, REPOS, REPOS + "a/"):
            infos, batches = run(backend, functools.partial(both, prefix))
            listed = batch_files(batches)
            assert sum(len(b.names) for b in batches) == len(listed)
            expected = files(infos)
            assert set(listed) == set(expected)
            for path, (size, mtime) in listed.items():
                assert size == expected[path].size
                assert abs(mtime - expected[path].modified.timestamp()) < 1e-3
            dirs = {p for b in batches for p, _ in b.empty_dirs}
            assert dirs == {i.path for i in infos if i.is_dir}
        assert run(backend, functools.partial(both, REPOS + "nope/")) == ([], [])

    # -- SupportsListAhead -------------------------------------------------------------

    @needs(SupportsListAhead)
    def test_list_ahead_lists_what_list_batches_lists(
        self, backend: Backend, writer: Writer
    ) -> None:
        """A listing begun ahead lists as list_batches (list_names); closing it unread is ok."""
        if not isinstance(backend, SupportsListAhead):
            skip_without(backend, SupportsListAhead)
        hexes, objects = blobs_and_layer_links(30)
        objects[f"{REPOS}a/_manifests/revisions/sha256/{hexes[1]}/link"] = b"x"
        objects[f"{REPOS}b/c/_manifests/tags/t/current/link"] = b"y"
        write_many(writer, objects)
        writer(REPOS + "d/_uploads/", b"")

        def listed(batches: list[ListedBatch]) -> dict[str, tuple[int, float]]:
            return batch_files(batches) | {p: (0, m) for b in batches for p, m in b.empty_dirs}

        async def both(prefix: str, *, names_only: bool) -> tuple[list[ListedBatch], ...]:
            assert isinstance(backend, SupportsListAhead)
            ahead = backend.list_ahead(prefix, names_only=names_only)
            unread = backend.list_ahead(prefix, names_only=names_only)
            try:
                await asyncio.sleep(0.05)
                got = [b async for chunk in ahead for b in chunk]
            finally:
                await ahead.aclose()
                await unread.aclose()
                await unread.aclose()  # twice: nothing more happens
            if names_only:
                assert isinstance(backend, SupportsNamesOnly)
                listing = backend.list_names(prefix)
            else:
                assert isinstance(backend, SupportsListBatches)
                listing = backend.list_batches(prefix)
            return got, [b async for chunk in listing for b in chunk]

        for prefix in ("", BLOBS, REPOS, REPOS + "b/", REPOS + "nope/"):
            for names_only in (False, True):
                if names_only and not isinstance(backend, SupportsNamesOnly):
                    continue
                got, expected = run(backend, functools.partial(both, prefix, names_only=names_only))
                assert listed(got) == listed(expected), (prefix, names_only)
                assert sum(len(b.names) for b in got) == sum(len(b.names) for b in expected)
        assert listed(got) == {}

    # -- SupportsNamesOnly -------------------------------------------------------------

    @needs(SupportsNamesOnly)
    def test_list_names_list_what_list_lists_and_stat_looks(
        self, backend: Backend, writer: Writer
    ) -> None:
        """Names are list's (sizes -1 where not looked at); ``stat`` gives list's size and time."""
        if not isinstance(backend, SupportsNamesOnly):
            skip_without(backend, SupportsNamesOnly)
        h = hashlib.sha256(b"names").hexdigest()
        objects = {
            blob_path("1"): b"one",
            f"{REPOS}a/_layers/sha256/{h}/link": b"sha256:" + h.encode(),
            f"{REPOS}a/_manifests/revisions/sha256/{h}/link": b"sha256:" + h.encode(),
            f"{REPOS}a/_uploads/u1/startedat": b"2026",
        }
        write_many(writer, objects)

        async def both() -> tuple[list[ObjectInfo], list[ListedBatch], Mapping[str, Any]]:
            assert isinstance(backend, SupportsNamesOnly)
            batches = [b async for chunk in backend.list_names("") for b in chunk]
            looked = await backend.stat([*objects, f"{REPOS}a/nope", REPOS + "a"])
            return await collect(backend, ""), batches, looked

        infos, batches, looked = run(backend, both)
        expected = files(infos)
        names = {path: size for path, (size, _) in batch_files(batches).items()}
        assert set(names) == set(expected)
        assert all(s in {-1, expected[p].size} for p, s in names.items())
        for path in objects:
            size, mtime = looked[path]
            assert size == expected[path].size
            assert abs(mtime - expected[path].modified.timestamp()) < 1e-3
        assert looked[f"{REPOS}a/nope"] is None
        assert looked[REPOS + "a"] is None, "a directory is not an object"

    # -- SupportsListDir ---------------------------------------------------------------

    @needs(SupportsListDir)
    def test_list_dir_one_level(self, backend: Backend, writer: Writer) -> None:
        """list_dir gives the sub-directories (no slash) and the objects directly in a prefix."""
        if not isinstance(backend, SupportsListDir):
            skip_without(backend, SupportsListDir)
        write_many(
            writer,
            {
                REPOS + "a/_layers/sha256/ab/link": b"x",
                REPOS + "b/c/_manifests/revisions/sha256/cd/link": b"y",
                REPOS + "stray": b"z",
                blob_path("one"): b"1",
            },
        )
        dirs, objects = run(backend, lambda: backend.list_dir(REPOS))
        assert sorted(dirs) == [REPOS + "a", REPOS + "b"]
        assert [(o.path, o.size) for o in objects] == [(REPOS + "stray", 1)]
        dirs, objects = run(backend, lambda: backend.list_dir(REPOS + "b/"))
        assert (dirs, objects) == ([REPOS + "b/c"], [])
        dirs, _ = run(backend, lambda: backend.list_dir(BLOBS))
        assert dirs == [BLOBS + "sha256"]
        assert run(backend, lambda: backend.list_dir(REPOS + "nope/")) == ([], [])
