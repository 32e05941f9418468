"""Durations as people write them (``14d``, ``1h30m``, ``500ms``), parsed and printed in one place.

The grammar is Go-style, as the registry's own ``config.yml`` writes
durations, plus ``d`` (a day) and ``w`` (a week): one or more
``<number><unit>`` with nothing between them, units ``ms``, ``s``, ``m``,
``h``, ``d`` and ``w``, numbers with an optional fraction (``1.5h``); a bare
``0`` is zero. There is no sign and no exponent. Command-line options
(``--grace``, ``--keep-within``) and policy files (``keep_within``) read their
durations with :func:`parse_duration`; messages print them with
:func:`format_duration`. Pure: no I/O.

>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> format_duration(parse_duration("36h"))
'1d12h'
"""

from __future__ import annotations

import datetime
import re
from typing import Final

from ._errors import ConfigError

__all__ = ["format_duration", "parse_duration"]

_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ZERO: Final = datetime.timedelta(0)


def parse_duration(text: str, *, positive: bool = False) -> datetime.timedelta:
    """Parse ``0``, ``0s``, ``90m``, ``24h``, ``7d``, ``1h30m``, ``2w``, ``500ms`` into a timedelta.

    Surrounding whitespace is ignored. With ``positive``, zero is refused too.
    Raises :class:`~registry_gc.ConfigError` (a :class:`ValueError`) naming
    the text and the expected form.

    >>> parse_duration("1.5h") == parse_duration("90m")
    True
    >>> from registry_gc import ConfigError
    >>> try:
    ...     parse_duration("1h 30m")
    ... except ConfigError as e:
    ...     print(e)
    invalid duration '1h 30m': use a number with a unit, such as 0s, 90m, 24h, 7d or 1h30m
    """
    stripped = text.strip()
    value = _ZERO if stripped == "0" else _parse(stripped)
    if positive and value <= _ZERO:
        raise ConfigError(f"duration {text!r} must be longer than 0")
    return value


def _parse(text: str) -> datetime.timedelta:
    msg = f"invalid duration {text!r}: use a number with a unit, such as 0s, 90m, 24h, 7d or 1h30m"
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ConfigError(msg)
    try:
        return datetime.timedelta(seconds=total)
    except OverflowError:  # more than timedelta holds (about 2.7 million years)
        raise ConfigError(msg) from None


def format_duration(value: datetime.timedelta) -> str:
    """Print a duration the way :func:`parse_duration` reads it; ``0s`` for zero or less.

    >>> import datetime
    >>> format_duration(datetime.timedelta(days=14))
    '14d'
    >>> format_duration(datetime.timedelta(days=1, seconds=5400))
    '1d1h30m'
    >>> format_duration(datetime.timedelta(milliseconds=250))
    '250ms'
    """
    total = value.total_seconds()
    if total <= 0:
        return "0s"
    parts: list[str] = []
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        count, total = divmod(total, seconds)
        if count:
            parts.append(f"{int(count)}{unit}")
    if total:
        parts.append(f"{total:g}s" if total >= 1 else f"{total * 1000:g}ms")
    return "".join(parts)
