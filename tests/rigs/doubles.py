"""Backend doubles more than one suite uses: a delegating wrapper, and one that fails some paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry_gc.backends import DeleteResult, Outcome, WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from registry_gc.backends import Backend


class Delegating(WrappingBackend):
    """A backend that delegates every call to another (with its capabilities, and no others)."""

    @property
    def inner(self) -> Any:
        """The wrapped backend, untyped: doubles built on this call its capabilities directly."""
        return self._inner


class FailSome(Delegating):
    """Returns FAILED for the paths ``fail`` selects, deletes the others."""

    def __init__(self, inner: Backend, fail: Callable[[str], bool]) -> None:
        super().__init__(inner)
        self.fail = fail
        self.dir_calls = 0

    async def delete(self, paths: Sequence[str]) -> list[DeleteResult]:
        """Fail the selected paths, delete the rest."""
        ok = [p for p in paths if not self.fail(p)]
        done = {r.path: r for r in await self.inner.delete(ok)} if ok else {}
        return [done.get(p) or DeleteResult(p, Outcome.FAILED, "AccessDenied: nope") for p in paths]

    async def remove_empty_dirs(self, dirs: Sequence[str]) -> list[DeleteResult]:
        """Count the calls."""
        self.dir_calls += 1
        return await self.inner.remove_empty_dirs(dirs)
