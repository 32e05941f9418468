"""Text shared by every result's ``render()`` and ``to_dict()``: sizes, times, tables."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["human_bytes", "iso_time", "iso_timestamp", "table"]


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def iso_time(dt: datetime.datetime) -> str:
    """An aware time as ISO 8601 UTC with a ``Z``."""
    return dt.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def iso_timestamp(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC; ``None`` (or unrepresentable) as ``None``."""
    if ts is None:
        return None
    try:
        return iso_time(datetime.datetime.fromtimestamp(ts, datetime.timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def table(rows: Sequence[tuple[str, ...]], right: Iterable[int] = ()) -> list[str]:
    """Rows as aligned text columns; the columns in ``right`` are right-aligned."""
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out
