"""A fault-injecting storage backend: fail, slow down or interrupt any call of another one.

:class:`FaultyBackend` is a :class:`~registry_gc.backends.WrappingBackend`: it has the
optional capabilities of the wrapped backend (multipart uploads, directories, …) and no
others. It records every call and every path it deleted, in order, and can:

- raise on the k-th ``list``, ``read``, ``delete`` or ``stat`` call (counted from 1, per kind);
  a failing ``list`` may first yield some objects (``list_yield_before_fail``), as a
  listing that breaks on its third page does;
- return ``FAILED`` for the paths a predicate selects (``fail_keys``), deleting the others,
  as S3's DeleteObjects does with per-key errors;
- sleep before every call (``delay``);
- interrupt the run at the k-th call of any kind (``interrupt_at``), with
  :class:`KeyboardInterrupt` by default;
- split deletions into calls of ``delete_batch`` paths, so that "the k-th delete call" can
  mean "the k-th path" (``delete_batch=1``).

The exception raised is chosen with ``error`` (for the list/read/delete faults) and
``interrupt`` (for ``interrupt_at``): an exception class taking one message argument
(:class:`~registry_gc.StorageError`, :class:`OSError`, :class:`asyncio.CancelledError`,
:class:`KeyboardInterrupt` …) or a callable returning the exception to raise.

>>> import asyncio
>>> from registry_gc.backends import open_backend
>>> faulty = FaultyBackend(open_backend("memory://faults-doctest"), fail_read_at=1)
>>> asyncio.run(faulty.read(["docker/registry/v2/x"]))
Traceback (most recent call last):
...
tests.rigs.faults.InjectedFaultError: injected fault: read call #1 (docker/registry/v2/x)
>>> faulty.calls
[Call(kind='read', number=1, paths=('docker/registry/v2/x',))]
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from registry_gc import StorageError
from registry_gc.backends import DeleteResult, Outcome, WrappingBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from registry_gc.backends import (
        Backend,
        ListedBatch,
        MultipartUpload,
        ObjectInfo,
        SupportsNamesOnly,
    )

__all__ = ["Call", "FaultyBackend", "InjectedFaultError"]

#: What ``error``/``interrupt`` may be: an exception class, or a factory of exceptions.
ErrorFactory = "type[BaseException] | Callable[[str], BaseException]"


class InjectedFaultError(StorageError):
    """A StorageError raised on purpose (so tests can tell it from a real one)."""


@dataclass(frozen=True)
class Call:
    """One call the wrapper received: its kind, its number within the kind, its arguments."""

    kind: str  #: list, list-names, read, stat, delete, remove-dirs, list-multipart, abort-multipart
    number: int
    paths: tuple[str, ...]


class FaultyBackend(WrappingBackend):
    """Delegates to ``inner``; injects the faults its keyword arguments select.

    Attributes:
        calls: every call received, in order (a delete split by ``delete_batch`` counts
            once per part).
        deleted: every path the inner backend reported ``DELETED``, in order.
        missing: every path the inner backend reported ``MISSING`` (already gone).
        failed: every path that came back ``FAILED`` (injected or real), in order.
        faults: the messages of the faults raised so far.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        fail_list_at: int | None = None,
        fail_read_at: int | None = None,
        fail_delete_at: int | None = None,
        fail_keys: Callable[[str], bool] | None = None,
        delay: float = 0.0,
        interrupt_at: int | None = None,
        error: Any = InjectedFaultError,  # see ErrorFactory
        interrupt: Any = KeyboardInterrupt,  # see ErrorFactory
        list_yield_before_fail: int = 0,
        delete_batch: int | None = None,
        fail_move_at: int | None = None,
        fail_write_at: int | None = None,
        fail_stat_at: int | None = None,
    ) -> None:
        super().__init__(inner)
        self.fail_list_at = fail_list_at
        self.fail_read_at = fail_read_at
        self.fail_delete_at = fail_delete_at
        self.fail_keys = fail_keys
        self.delay = delay
        self.interrupt_at = interrupt_at
        self.error = error
        self.interrupt = interrupt
        self.list_yield_before_fail = list_yield_before_fail
        self.delete_batch = delete_batch
        self.fail_move_at = fail_move_at
        self.fail_write_at = fail_write_at
        self.fail_stat_at = fail_stat_at
        self.calls: list[Call] = []
        self.deleted: list[str] = []
        self.missing: list[str] = []
        self.failed: list[str] = []
        self.faults: list[str] = []
        self._counts: dict[str, int] = {}

    # -- bookkeeping ---------------------------------------------------------------------

    def count(self, kind: str) -> int:
        """How many calls of ``kind`` were received."""
        return self._counts.get(kind, 0)

    def _raise(self, factory: Any, message: str) -> None:
        self.faults.append(message)
        raise factory(message)

    async def _enter(self, kind: str, paths: Sequence[str], fail_at: int | None) -> bool:
        """Record a call; interrupt or fail it as configured. True: fail the call itself."""
        number = self._counts[kind] = self._counts.get(kind, 0) + 1
        self.calls.append(Call(kind, number, tuple(paths)))
        if self.delay:
            await asyncio.sleep(self.delay)
        shown = f" ({paths[0]}{' …' if len(paths) > 1 else ''})" if paths else ""
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            self._raise(self.interrupt, f"injected interrupt at call #{len(self.calls)}{shown}")
        return fail_at is not None and number == fail_at

    def _fail_call(self, kind: str, paths: Sequence[str]) -> None:
        shown = f" ({paths[0]}{' …' if len(paths) > 1 else ''})" if paths else ""
        self._raise(self.error, f"injected fault: {kind} call #{self.count(kind)}{shown}")

    def _record(self, results: Sequence[DeleteResult]) -> None:
        for r in results:
            if r.outcome is Outcome.DELETED:
                self.deleted.append(r.path)
            elif r.outcome is Outcome.MISSING:
                self.missing.append(r.path)
            elif r.outcome is Outcome.FAILED:
                self.failed.append(r.path)

    # -- the Backend protocol ------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List through the wrapped backend, failing the configured call."""
        fail = await self._enter("list", [prefix], self.fail_list_at)
        yielded = 0
        if fail and self.list_yield_before_fail == 0:
            self._fail_call("list", [prefix])
        async for info in self.inner.list(prefix):
            yield info
            yielded += 1
            if fail and yielded >= self.list_yield_before_fail:
                self._fail_call("list", [prefix])

    async def list_names(self, prefix: str) -> AsyncIterator[list[ListedBatch]]:
        """List names through the wrapped backend (present when it lists names alone)."""
        await self._enter("list-names", [prefix], None)
        inner = cast("SupportsNamesOnly", self.inner)
        async for chunk in inner.list_names(prefix):
            yield chunk

    async def stat(self, paths: Sequence[str]) -> Mapping[str, tuple[int, float] | None]:
        """Look at objects through the wrapped backend, failing the configured call."""
        if await self._enter("stat", paths, self.fail_stat_at):
            self._fail_call("stat", paths)
        inner = cast("SupportsNamesOnly", self.inner)
        return await inner.stat(paths)

    async def read(self, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Read through the wrapped backend, failing the configured call."""
        if await self._enter("read", paths, self.fail_read_at):
            self._fail_call("read", paths)
        return await self.inner.read(paths)

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Delete through the wrapped backend (in parts of ``delete_batch``), with faults."""
        size = self.delete_batch or max(len(paths), 1)
        out: list[DeleteResult] = []
        for start in range(0, len(paths), size):
            out.extend(await self._delete_part(paths[start : start + size]))
        return out

    async def _delete_part(self, paths: Sequence[str]) -> list[DeleteResult]:
        if await self._enter("delete", paths, self.fail_delete_at):
            self._fail_call("delete", paths)
        select = self.fail_keys
        chosen = [p for p in paths if select is None or not select(p)]
        done = {r.path: r for r in await self.inner.delete(chosen)} if chosen else {}
        results = [
            done.get(p) or DeleteResult(p, Outcome.FAILED, "InjectedFault: AccessDenied")
            for p in paths
        ]
        self._record(results)
        return results

    # -- optional capabilities: present when the wrapped backend has them ----------------

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        """Remove directories through the wrapped backend (recorded, never failed)."""
        await self._enter("remove-dirs", dirs, None)
        inner: Any = self.inner
        results: list[DeleteResult] = await inner.remove_empty_dirs(dirs)
        return results

    async def move(
        self, moves: Sequence[tuple[str, str]], *, sizes: Mapping[str, int] | None = None
    ) -> list[DeleteResult]:
        """Move through the wrapped backend; ``fail_keys`` selects sources to report FAILED."""
        if await self._enter("move", [src for src, _ in moves], self.fail_move_at):
            self._fail_call("move", [src for src, _ in moves])
        select = self.fail_keys
        chosen = [(s, d) for s, d in moves if select is None or not select(s)]
        inner: Any = self.inner
        done = {r.path: r for r in await inner.move(chosen, sizes=sizes)} if chosen else {}
        results = [
            done.get(s) or DeleteResult(s, Outcome.FAILED, "InjectedFault: AccessDenied")
            for s, _ in moves
        ]
        self._record(results)
        return results

    async def write(self, items: Mapping[str, bytes]) -> None:
        """Write through the wrapped backend, failing the configured call."""
        if await self._enter("write", list(items), self.fail_write_at):
            self._fail_call("write", list(items))
        inner: Any = self.inner
        await inner.write(items)

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """List through the wrapped backend (recorded)."""
        await self._enter("list-multipart", [prefix], None)
        inner: Any = self.inner
        uploads: list[MultipartUpload] = await inner.list_multipart_uploads(prefix)
        return uploads

    async def abort_multipart_uploads(
        self, uploads: Sequence[MultipartUpload]
    ) -> list[DeleteResult]:
        """Abort through the wrapped backend; ``fail_keys`` selects uploads to report FAILED."""
        await self._enter("abort-multipart", [u.key for u in uploads], None)
        select = self.fail_keys
        chosen = [u for u in uploads if select is None or not select(u.key)]
        inner: Any = self.inner
        got = await inner.abort_multipart_uploads(chosen) if chosen else []
        done = {r.path: r for r in got}
        results = [
            done.get(u.key) or DeleteResult(u.key, Outcome.FAILED, "InjectedFault: AccessDenied")
            for u in uploads
        ]
        self._record(results)
        return results
