"""What the object-store backends share: the listing fan-out, the pool, one connection per loop.

Each backend runs these against its emulator too (test_s3, test_gcs, test_azure); here
they run on a store in memory, so that every rule is checked without a server.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING

import pytest
from registry_gc.backends import ObjectInfo
from registry_gc.backends._objectstore import (
    Fanout,
    Listing,
    LoopBound,
    fanout,
    list_objects,
    run_pool,
    stems,
    utc,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

NOW = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("", Fanout.EXPAND),
        ("docker", Fanout.EXPAND),
        ("docker/registry/v2", Fanout.EXPAND),
        ("docker/registry/v2/blobs", Fanout.EXPAND),
        ("docker/registry/v2/blobs/sha256", Fanout.STEMS),
        ("docker/registry/v2/repositories", Fanout.STEMS),
        ("docker/registry/v2/repositories/app", Fanout.FLAT),
        ("elsewhere", Fanout.FLAT),
    ],
)
def test_fanout_splits_blobs_and_repositories_only(path: str, mode: Fanout) -> None:
    """The path down to v2 and blobs/ expand; sha256/ and repositories/ split by stems."""
    assert fanout(path) is mode


def test_stems_cover_directories_and_objects_by_first_character() -> None:
    """One key prefix per first character of the names right under the prefix."""
    objects = [ObjectInfo("r/zeta", 1, NOW)]
    assert stems("base/r/", ["base/r/a1/", "base/r/a2/", "base/r/b/"], objects, "base/") == [
        "base/r/a",
        "base/r/b",
        "base/r/z",
    ]


def test_utc_makes_every_time_aware_utc() -> None:
    """Naive times are UTC already; others are converted."""
    naive = NOW.replace(tzinfo=None)
    assert utc(naive) == NOW
    one_hour = datetime.timezone(datetime.timedelta(hours=1))
    plus_one = (NOW + datetime.timedelta(hours=1)).replace(tzinfo=one_hour)
    assert utc(plus_one).tzinfo is datetime.timezone.utc
    assert utc(plus_one) == NOW


def test_run_pool_bounds_concurrency_and_stops_at_the_first_error() -> None:
    """At most ``workers`` items run at once; an exception cancels the rest and propagates."""
    running = peak = 0
    done: list[int] = []

    async def work(i: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        if i == 7:
            raise ValueError(i)
        done.append(i)

    with pytest.raises(ValueError, match="7"):
        asyncio.run(run_pool(3, range(100), work))
    assert peak == 3
    assert len(done) < 99


def test_run_pool_drain_waits_for_the_items_in_flight_and_starts_none() -> None:
    """With drain, a failure stops new items; the ones in flight end; the first error is raised."""
    started: list[int] = []
    ended: list[int] = []

    async def work(i: int) -> None:
        started.append(i)
        if i == 1:
            await asyncio.sleep(0)  # fails once the three workers have each started one
            raise ValueError(i)
        await asyncio.sleep(0.01)
        ended.append(i)

    with pytest.raises(ValueError, match="1"):
        asyncio.run(run_pool(3, range(100), work, drain=True))
    assert started == [0, 1, 2]
    assert ended == [0, 2]


def _store(keys: list[str]) -> tuple[Listing, list[str]]:
    """A Listing over ``keys`` (root ``reg/``), recording each request's prefix."""
    requests: list[str] = []

    async def children(prefix: str) -> tuple[list[str], list[ObjectInfo]]:
        requests.append("children " + prefix)
        below = {k[len(prefix) :] for k in keys if k.startswith(prefix)}
        dirs = sorted({prefix + b.split("/")[0] + "/" for b in below if "/" in b})
        objects = [ObjectInfo((prefix + b)[4:], 1, NOW) for b in below if "/" not in b]
        return dirs, objects

    async def pages(prefix: str) -> AsyncGenerator[list[ObjectInfo], None]:
        requests.append("pages " + prefix)
        found = sorted(k for k in keys if k.startswith(prefix))
        for i in range(0, len(found), 2):
            yield [ObjectInfo(k[4:], 1, NOW) for k in found[i : i + 2]]

    return Listing(base="reg/", concurrency=4, children=children, pages=pages), requests


def _list(listing: Listing, prefix: str) -> list[str]:
    async def go() -> list[str]:
        return [i.path async for i in list_objects(listing, prefix)]

    return asyncio.run(go())


def test_listing_is_complete_and_split_into_stems() -> None:
    """The whole root lists every key exactly once, blobs/ in one stream per stem."""
    v2 = "reg/docker/registry/v2/"
    keys = [f"{v2}blobs/sha256/{c}{i}/{c}{i}x/data" for c in "0af" for i in range(3)]
    keys += [f"{v2}repositories/{n}/_layers/link" for n in ("alpha", "beta", "gamma")]
    keys += [f"{v2}stray", "reg/outside"]
    listing, requests = _store(keys)
    listed = _list(listing, "reg/")
    assert sorted(listed) == sorted(k[4:] for k in keys)
    assert f"pages {v2}blobs/sha256/0" in requests
    assert f"pages {v2}blobs/sha256/f" in requests


def test_few_namespaces_are_split_one_level_deeper() -> None:
    """Repositories under one namespace are split by the names below it, not one stream."""
    repos = "reg/docker/registry/v2/repositories/"
    keys = [f"{repos}library/{n}/_layers/link" for n in ("alpine", "busybox", "nginx")]
    listing, requests = _store(keys)
    assert sorted(_list(listing, repos)) == sorted(k[4:] for k in keys)
    assert {r for r in requests if r.startswith("pages")} == {
        f"pages {repos}library/a",
        f"pages {repos}library/b",
        f"pages {repos}library/n",
    }


def test_any_other_prefix_is_one_flat_stream() -> None:
    """One repository lists as one sequential stream, without delimiter listings."""
    repo = "reg/docker/registry/v2/repositories/app/"
    keys = [f"{repo}_layers/{i}/link" for i in range(5)]
    listing, requests = _store(keys)
    assert len(_list(listing, repo)) == 5
    assert requests == [f"pages {repo}"]


def test_loop_bound_keeps_one_connection_per_event_loop() -> None:
    """One connection per loop: reused inside it, abandoned for the next, closed by aclose."""
    made: list[int] = []
    closed: list[int] = []
    abandoned: list[int] = []

    async def connect() -> int:
        made.append(len(made))
        return made[-1]

    async def close(conn: int) -> None:
        closed.append(conn)

    conns = LoopBound(connect, close, abandoned.append)

    async def twice() -> tuple[int, int]:
        return await conns.get(), await conns.get()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(twice()) == (0, 0)
    finally:
        loop.close()  # closed bare: the connection is stranded in that loop
    assert asyncio.run(twice()) == (1, 1)  # and the run's shutdown closes the new one
    assert abandoned == [0]
    assert closed == [1]

    async def closing() -> int:
        conn = await conns.get()
        await conns.aclose()
        await conns.aclose()  # idempotent
        return conn

    assert asyncio.run(closing()) == 2
    assert closed == [1, 2]
