"""Repository and tag patterns: globs or regular expressions, always matched in full.

Pure: text in, a compiled :class:`Pattern` out; a pattern that does not
compile is a :class:`~registry_gc.ConfigError`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Pattern"]


def _glob_to_regex(glob: str) -> str:
    """Translate a path glob: ``*`` and ``?`` stay within a component, ``**`` crosses ``/``."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2 if glob.startswith(("[!", "[]"), i) else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@attrs.frozen
class Pattern:
    r"""A glob or a regular expression, always matched against a whole name.

    Repository patterns are globs unless prefixed ``re:``; tag patterns are
    regular expressions unless prefixed ``glob:``. In globs, ``*`` and ``?``
    do not cross ``/`` and ``**`` does.

    >>> from registry_gc.policy import Pattern
    >>> apps = Pattern.repository("app/*")
    >>> apps.matches("app/web"), apps.matches("app/a/b")
    (True, False)
    >>> Pattern.tag(r"v\d+").matches("v12"), Pattern.tag(r"v\d+").matches("v12-rc")
    (True, False)
    """

    #: the pattern as written, prefix included
    text: str
    #: the regular expression it stands for (a glob translated), matched in full
    regex: str = attrs.field(eq=False, repr=False)
    _compiled: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.regex))

    @classmethod
    def repository(cls, text: str) -> Pattern:
        """A repository pattern: a glob, or a regular expression after ``re:``."""
        if text.startswith("re:"):
            return cls._compile(text, text[3:])
        if text.startswith("glob:"):
            return cls._compile(text, _glob_to_regex(text[5:]), glob=True)
        return cls._compile(text, _glob_to_regex(text), glob=True)

    @classmethod
    def tag(cls, text: str) -> Pattern:
        """A tag pattern: a regular expression, or a glob after ``glob:``."""
        if text.startswith("glob:"):
            return cls._compile(text, _glob_to_regex(text[5:]), glob=True)
        if text.startswith("re:"):
            return cls._compile(text, text[3:])
        return cls._compile(text, text)

    @classmethod
    def _compile(cls, text: str, regex: str, *, glob: bool = False) -> Pattern:
        if not regex:
            raise ConfigError(f"empty pattern {text!r}")
        try:
            return cls(text, regex)
        except re.error as e:
            what = "glob" if glob else "regular expression"
            raise ConfigError(f"invalid {what} {text!r}: {e}") from None

    def matches(self, name: str) -> bool:
        """Whether the whole of ``name`` matches."""
        return self._compiled.fullmatch(name) is not None

    def __str__(self) -> str:
        return self.text


def _patterns(kind: str, value: str | Pattern | Iterable[str | Pattern]) -> tuple[Pattern, ...]:
    items: Iterable[str | Pattern] = (value,) if isinstance(value, (str, Pattern)) else value
    make = Pattern.repository if kind == "repository" else Pattern.tag
    return tuple(p if isinstance(p, Pattern) else make(p) for p in items)


def repository_patterns(value: str | Pattern | Iterable[str | Pattern]) -> tuple[Pattern, ...]:
    return _patterns("repository", value)


def tag_patterns(value: str | Pattern | Iterable[str | Pattern]) -> tuple[Pattern, ...]:
    return _patterns("tag", value)
