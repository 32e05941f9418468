"""Durations: the one grammar for --grace, --keep-within and policy files, and how they print."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from registry_gc import ConfigError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("90m", 5400),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("500ms", 0.5),
        (" 10s ", 10),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Go-style durations plus d and w."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "5x", "1h 30m", "-1s", "h", "1H", "30", "1h30", "s10", "1e3s", "1000000000d"]
)
def test_invalid_durations_are_config_errors_naming_the_text(text: str) -> None:
    """Anything else is a ConfigError (a ValueError) that quotes the text and the expected form."""
    with pytest.raises(ConfigError) as info:
        parse_duration(f" {text} ")
    assert str(info.value) == (
        f"invalid duration {text!r}: use a number with a unit, such as 0s, 90m, 24h, 7d or 1h30m"
    )
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["0", "0s", "0.0001ms", " 0h "])
def test_positive_refuses_zero(text: str) -> None:
    """With positive=True a zero duration is refused, quoting the text as given."""
    assert parse_duration(text) == timedelta(0)
    with pytest.raises(ConfigError) as info:
        parse_duration(text, positive=True)
    assert str(info.value) == f"duration {text!r} must be longer than 0"


def test_positive_accepts_anything_longer_than_zero() -> None:
    """The smallest representable positive duration passes positive=True."""
    assert parse_duration("0.001ms", positive=True) == timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=14), "14d"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, seconds=5400), "1d1h30m"),
        (timedelta(weeks=2), "14d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    """Days, hours, minutes, then seconds or milliseconds; zero or less is 0s."""
    assert format_duration(value) == text


@given(
    st.integers(0, 10_000).map(lambda d: timedelta(days=d))
    | st.integers(1, 10**9).map(lambda s: timedelta(seconds=s))
    | st.integers(1, 999).map(lambda ms: timedelta(milliseconds=ms))
)
def test_what_format_duration_prints_parses_back(value: timedelta) -> None:
    """format_duration's output is in parse_duration's grammar and means the same duration."""
    assert parse_duration(format_duration(value)) == value
