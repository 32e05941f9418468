"""Where the tasks run: a Dask cluster, or this process.

The driver (:mod:`registry_gc.distributed._driver`) speaks to an
:class:`Executor`: submit a task, map one over many arguments, gather
results. :class:`DaskExecutor` hands the tasks to a ``distributed.Client``
(results stay on the workers until gathered; a task's inputs move to it);
:class:`InProcessExecutor` runs each task at once, in this process — the
same code path on one machine, for an S3 Inventory run without a cluster
and for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = ["DaskExecutor", "Executor", "InProcessExecutor", "executor_for"]


@runtime_checkable
class Executor(Protocol):
    """Runs the tasks of a distributed run."""

    @property
    def workers(self) -> int:
        """How many workers run tasks at once (at least 1)."""
        ...

    def submit(self, fn: Callable[..., Any], *args: Any, key: str, retries: int = 0) -> Any:  # noqa: ANN401
        """Run ``fn(*args)``; a handle to its result (handles may be arguments of later tasks)."""
        ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        keys: Sequence[str],
        retries: int = 0,
    ) -> list[Any]:
        """``submit`` of ``fn`` once per element of the zipped ``iterables``."""
        ...

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        """The results, in order; raises the exception of a failed task."""
        ...

    def failed(self, handles: Sequence[Any]) -> list[tuple[str, BaseException]]:
        """The key and the exception of every handle whose task failed."""
        ...

    def outcomes(self, handles: Sequence[Any]) -> list[tuple[Any, BaseException | None]]:
        """Wait for every task; each one's result, or ``(None, its exception)``."""
        ...


class _Done:
    """The outcome of a task run at once."""

    __slots__ = ("error", "key", "value")

    def __init__(self, key: str, value: Any = None, error: BaseException | None = None) -> None:  # noqa: ANN401
        self.key = key
        self.value = value
        self.error = error


def _resolve(arg: Any) -> Any:  # noqa: ANN401
    """An argument as the task sees it: handles replaced by their results, in lists too."""
    if isinstance(arg, _Done):
        if arg.error is not None:
            raise arg.error
        return arg.value
    if isinstance(arg, list):
        return [_resolve(a) for a in arg]
    if isinstance(arg, tuple):
        return tuple(_resolve(a) for a in arg)
    return arg


class InProcessExecutor:
    """Runs every task at once, in this process, one after another.

    >>> InProcessExecutor().gather([InProcessExecutor().submit(abs, -2, key="k")])
    [2]
    """

    @property
    def workers(self) -> int:
        """One: this process."""
        return 1

    def submit(self, fn: Callable[..., Any], *args: Any, key: str, retries: int = 0) -> _Done:  # noqa: ANN401
        """Run ``fn(*args)`` now (``retries`` more times if it raises)."""
        for attempt in range(retries + 1):
            try:
                return _Done(key, fn(*(_resolve(a) for a in args)))
            except Exception as e:  # noqa: BLE001 - kept for gather, as a cluster keeps it
                if attempt == retries:
                    return _Done(key, error=e)
        raise AssertionError("unreachable")  # pragma: no cover

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        keys: Sequence[str],
        retries: int = 0,
    ) -> list[_Done]:
        """``submit`` once per element of the zipped ``iterables``."""
        return [
            self.submit(fn, *args, key=key, retries=retries)
            for key, args in zip(keys, zip(*iterables, strict=True), strict=True)
        ]

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        """The results; the first error is raised."""
        return [_resolve(h) for h in handles]

    def failed(self, handles: Sequence[Any]) -> list[tuple[str, BaseException]]:
        """The failed tasks among ``handles``."""
        return [(h.key, h.error) for h in handles if h.error is not None]

    def outcomes(self, handles: Sequence[Any]) -> list[tuple[Any, BaseException | None]]:
        """Each task's result, or its exception."""
        return [(h.value, h.error) for h in handles]


class DaskExecutor:
    """The tasks of a run on a Dask cluster, through its ``distributed.Client``.

    Every task gets an explicit key (``registry-gc-<run>-<step>-<part>``), so
    the dashboard shows which step and part a task is; no key holds data.
    """

    def __init__(self, client: Any) -> None:  # noqa: ANN401 - distributed is an optional extra
        self.client = client

    @property
    def workers(self) -> int:
        """The workers the scheduler knows now."""
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, len(info.get("workers", {})))

    def submit(self, fn: Callable[..., Any], *args: Any, key: str, retries: int = 0) -> Any:  # noqa: ANN401
        """``client.submit``, impure, with ``key``."""
        return self.client.submit(fn, *args, key=key, pure=False, retries=retries)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        keys: Sequence[str],
        retries: int = 0,
    ) -> list[Any]:
        """``client.map``: one message to the scheduler for all the tasks."""
        columns = [list(it) for it in iterables]
        if not keys:
            return []
        return list(self.client.map(fn, *columns, key=list(keys), pure=False, retries=retries))

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        """``client.gather``."""
        return list(self.client.gather(list(handles)))

    def failed(self, handles: Sequence[Any]) -> list[tuple[str, BaseException]]:
        """The futures in state ``error``, with their exceptions."""
        out: list[tuple[str, BaseException]] = []
        for h in handles:
            if h.status == "error":
                out.append((str(h.key), h.exception()))
            elif h.status == "cancelled":
                out.append((str(h.key), RuntimeError(f"task {h.key} was cancelled")))
        return out

    def outcomes(self, handles: Sequence[Any]) -> list[tuple[Any, BaseException | None]]:
        """``distributed.wait``, then each future's result or exception."""
        from distributed import wait  # noqa: PLC0415 - an optional extra

        wait(list(handles))  # type: ignore[no-untyped-call]
        out: list[tuple[Any, BaseException | None]] = []
        for h in handles:
            if h.status == "finished":
                out.append((h.result(), None))
            else:
                error = h.exception() if h.status == "error" else None
                out.append((None, error or RuntimeError(f"task {h.key} was {h.status}")))
        return out


def executor_for(client: Any) -> Executor:  # noqa: ANN401
    """An :class:`Executor` for ``client``: one already, or a ``distributed.Client``."""
    if isinstance(client, Executor):
        return client
    if type(client).__name__ == "Client" and hasattr(client, "submit"):
        return DaskExecutor(client)
    msg = f"client must be a distributed.Client or an Executor, not {type(client).__name__}"
    raise TypeError(msg)
