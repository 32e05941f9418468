"""Progress bars for the command line: rich on a terminal, nothing anywhere else.

When standard error is not a terminal (cron, CI, a pipe) or ``-q`` is given,
every call is a no-op and the output stays plain. rich is imported only when
bars are shown: it costs about 50 ms, which ``registry-gc --version``, every
run under cron and every library caller are spared.
Phases are named by the step that reports them: ``listing``, ``manifests``,
``links``, ``hashing``, and the deletion phases of
:data:`~registry_gc.plan.PHASES` (``tag``, ``revision+tag-index``, …).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


__all__ = ["Progress", "make_progress"]

_LABELS = {
    "listing": "Listing objects",
    "manifests": "Reading manifests",
    "configs": "Reading image configs",
    "links": "Reading links",
    "hashing": "Hashing blobs",
    "tag": "Deleting tags",
    "revision+tag-index": "Deleting revision links",
    "layer-link": "Deleting layer links",
    "blob": "Deleting blobs",
    "upload": "Deleting uploads",
    "repository": "Deleting repositories",
}

#: Listed objects between two updates of the listing bar.
_LISTING_STEP = 500


class _ConsoleWriter:
    """A text stream that prints through a rich console (so that live bars stay intact)."""

    def __init__(self, console: Any) -> None:  # noqa: ANN401 - rich.console.Console
        self._console = console

    def write(self, text: str) -> int:
        self._console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here."""


class Progress:
    """Progress by phase name. Does nothing unless built with a rich ``Progress``.

    Use as a context manager around the work; :meth:`collector` adapts it to
    the ``progress`` callback of :func:`~registry_gc.collect`.
    """

    def __init__(self, bars: Any = None) -> None:  # noqa: ANN401 - rich.progress.Progress, optional
        self._bars = bars
        self._tasks: dict[str, Any] = {}
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    @property
    def active(self) -> bool:
        """Whether bars are shown."""
        return self._bars is not None

    def __enter__(self) -> Progress:
        if self._bars is not None:
            self._bars.start()
            # Log lines written to the bars' stream go through rich, above the bars.
            console = self._bars.console
            for handler in logging.getLogger("registry_gc").handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is console.file:
                    self._swapped.append((handler, handler.setStream(_ConsoleWriter(console))))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped.clear()
        if self._bars is not None:
            self._bars.stop()

    def _task(self, phase: str, total: int | None) -> Any:  # noqa: ANN401 - rich TaskID
        task = self._tasks.get(phase)
        if task is None:
            label = _LABELS.get(phase, phase)
            task = self._tasks[phase] = self._bars.add_task(label, total=total)
        return task

    def advance(self, phase: str, n: int = 1, total: int | None = None) -> None:
        """``n`` more items of ``phase`` are done (``total`` when it is known)."""
        if self._bars is None:
            return
        task = self._task(phase, total)
        if total is not None:
            self._bars.update(task, total=total)
        self._bars.advance(task, n)

    def update(self, phase: str, done: int, total: int | None) -> None:
        """``done`` of ``total`` items of ``phase`` are done."""
        if self._bars is None:
            return
        self._bars.update(self._task(phase, total), completed=done, total=total)

    def callback(self) -> Callable[[str, int, int | None], None] | None:
        """The ``progress(phase, done, total)`` callback of the library's commands.

        ``None`` when no bars are shown, so that the library skips the calls.
        """
        if self._bars is None:
            return None

        def callback(phase: str, done: int, total: int | None) -> None:
            self.update(phase, done, None if total is None else max(total, done))

        return callback


def make_progress(*, quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Bars on ``stream`` (default standard error) when it is a terminal, else a no-op."""
    stream = sys.stderr if stream is None else stream
    if quiet or not _isatty(stream):
        return Progress()
    # Imported here, not at the top: only a terminal pays for rich (see the module's docstring).
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress  # noqa: PLC0415

    bars = RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
        # Our output goes to stdout after the bars are gone; logs go to stderr.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    return Progress(bars)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
