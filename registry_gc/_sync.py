"""Run the library's coroutines from synchronous code.

The public API is synchronous; storage work inside is asyncio. Callers that
already run an event loop (Jupyter, an async service) get the work done in a
fresh thread with its own loop, so they never need to know.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

T = TypeVar("T")

__all__ = ["run"]


async def _into(box: dict[str, Any], coro: Coroutine[Any, Any, Any]) -> None:
    # The result goes into ``box``, not into the task: on exit, asyncio.run
    # (3.11) formats the main task's repr, result included, and a report of a
    # hundred thousand deletions takes seconds and tens of MB to format.
    box["result"] = await coro


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (or raise its exception)."""
    box: dict[str, Any] = {}
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_into(box, coro))
        result: T = box["result"]
        return result

    def target() -> None:
        try:
            asyncio.run(_into(box, coro))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name="registry-gc")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    threaded: T = box["result"]
    return threaded
