"""Moving objects: the checks every backend makes first, and copy-then-delete for object stores.

:func:`checked_moves` refuses, before anything moves, what the path guard
refuses and the pairs whose order would matter (one path both a source and
a destination, two sources to one destination: the second copy would
overwrite the first, and both sources would then be deleted).

Object stores have no rename: :func:`copy_then_delete` copies each object
server-side and then deletes the sources whose copy is complete, with the
backend's own batched delete, so that no object is ever in neither place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import StorageError
from ._base import DeleteResult, Outcome
from ._objectstore import run_pool
from ._paths import checked_path

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["checked_moves", "copy_then_delete", "kept_both"]


def checked_moves(moves: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of ``moves`` when every one can be moved independently of the others; else raise.

    Raises:
        StorageError: a path :func:`~registry_gc.backends.checked_path` refuses,
            a pair whose source is its destination, a source or a destination
            named twice, or a path that is both a source and a destination
            (``path`` is the path in question).
    """
    pairs = [(checked_path(src), checked_path(dst)) for src, dst in moves]
    sources: set[str] = set()
    targets: set[str] = set()
    for src, dst in pairs:
        why = None
        if src == dst:
            why = "a move onto itself would delete the object after copying it"
        elif src in sources:
            why = "one object cannot move to two destinations"
        elif dst in targets:
            why = "two objects cannot move to one destination"
        if why is not None:
            msg = f"refusing to move {src!r} to {dst!r}: {why}"
            raise StorageError(msg, path=dst if dst in targets else src)
        sources.add(src)
        targets.add(dst)
    both = sources & targets
    if both:
        path = min(both)
        msg = (
            f"refusing to move {path!r}: it is both a source and a destination of one call, "
            "and the result would depend on the order of the moves"
        )
        raise StorageError(msg, path=path)
    return pairs


def kept_both(src: str, dst: str, error: str | None) -> DeleteResult:
    """The ``FAILED`` result of a move whose copy is complete but whose source stays."""
    msg = f"copied to {dst}, but the source could not be deleted, so both hold the bytes: {error}"
    return DeleteResult(src, Outcome.FAILED, msg)


async def copy_then_delete(
    moves: Sequence[tuple[str, str]],
    copy: Callable[[str, str], Awaitable[DeleteResult | None]],
    delete: Callable[[Sequence[str]], Awaitable[list[DeleteResult]]],
    *,
    workers: int,
    chunk: int,
) -> list[DeleteResult]:
    """Move by copying, then deleting the sources copied; one result per pair, in order.

    ``copy(src, dst)`` makes a complete server-side copy and returns
    ``None``, or the ``MISSING``/``FAILED`` result of that pair (it never
    raises for one object's failure). ``chunk`` pairs at a time (a multiple
    of the store's delete batch) are copied, ``workers`` at once; then the
    sources copied are deleted with ``delete`` — the backend's own batched
    delete — before the next chunk starts, so that an interruption leaves at
    most one chunk of objects in both places, and none in neither.
    """
    results: list[DeleteResult | None] = [None] * len(moves)

    async def one(i: int) -> None:
        results[i] = await copy(*moves[i])

    for start in range(0, len(moves), chunk):
        indices = range(start, min(start + chunk, len(moves)))
        await run_pool(min(workers, len(indices)), indices, one)
        copied = [i for i in indices if results[i] is None]
        if not copied:
            continue
        deleted = await delete([moves[i][0] for i in copied])
        for i, result in zip(copied, deleted, strict=True):
            src, dst = moves[i]
            if result.outcome is Outcome.FAILED:
                results[i] = kept_both(src, dst, result.error)
            else:
                # MISSING: the source went meanwhile; the copy holds the bytes.
                results[i] = DeleteResult(src, Outcome.DELETED)
    out = [r for r in results if r is not None]
    assert len(out) == len(moves)
    return out
