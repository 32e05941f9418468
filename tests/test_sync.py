"""Tests of registry_gc._sync: the synchronous API runs coroutines with or without a loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from registry_gc import _sync


async def _thread_name() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


async def _fail() -> None:
    await asyncio.sleep(0)
    msg = "from the coroutine"
    raise LookupError(msg)


def test_without_a_running_loop_it_runs_here() -> None:
    """Called from plain code: the coroutine runs in this thread, on a loop of its own."""
    assert _sync.run(_thread_name()) == threading.current_thread().name
    with pytest.raises(LookupError, match="from the coroutine"):
        _sync.run(_fail())


def test_inside_a_running_loop_it_runs_in_a_thread_of_its_own() -> None:
    """Called from a coroutine (Jupyter, an async service): a fresh thread, same result."""

    async def caller() -> str:
        return _sync.run(_thread_name())

    assert asyncio.run(caller()) == "registry-gc"


def test_inside_a_running_loop_errors_reach_the_caller() -> None:
    """An exception raised in that thread is raised in the caller's, unchanged."""

    async def caller() -> None:
        _sync.run(_fail())

    with pytest.raises(LookupError, match="from the coroutine"):
        asyncio.run(caller())
