"""Semantic versions in tags, ordered by semver.org 2.0 precedence (for ``keep_semver``).

Pure: a tag in, a :class:`SemVer` (or ``None``) out.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["SemVer", "parse_semver"]

_NUMERIC = r"0|[1-9]\d*"
_PRE_ID = r"0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*"
_SEMVER = re.compile(
    rf"v?(?P<major>{_NUMERIC})\.(?P<minor>{_NUMERIC})\.(?P<patch>{_NUMERIC})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    r"(?:[+_](?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


@attrs.frozen(order=False)
class SemVer:
    """A semantic version (semver.org 2.0), ordered by precedence.

    Pre-releases sort before their release; numeric identifiers compare
    numerically, alphanumeric ones lexically (ASCII), numeric before
    alphanumeric, and a longer set of identifiers wins when the shorter is a
    prefix. Build metadata does not take part in ordering (two versions that
    differ only in it are equal in precedence, though not ``==``).

    >>> from registry_gc.policy import parse_semver
    >>> sorted(["1.0.0", "1.0.0-rc.1", "1.0.0-alpha"], key=parse_semver)
    ['1.0.0-alpha', '1.0.0-rc.1', '1.0.0']
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str | None = None

    @property
    def is_prerelease(self) -> bool:
        """Whether it has pre-release identifiers."""
        return bool(self.prerelease)

    @property
    def precedence(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """A key whose order is semver precedence (build metadata left out)."""
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: SemVer) -> bool:
        return self.precedence < other.precedence

    def __le__(self, other: SemVer) -> bool:
        return self.precedence <= other.precedence

    def __gt__(self, other: SemVer) -> bool:
        return self.precedence > other.precedence

    def __ge__(self, other: SemVer) -> bool:
        return self.precedence >= other.precedence


def parse_semver(text: str) -> SemVer | None:
    """``v?MAJOR.MINOR.PATCH(-PRERELEASE)?(+BUILD)?`` → :class:`SemVer`; anything else → ``None``.

    Tags cannot hold ``+``, so ``_`` is accepted for it (as Helm does):
    ``1.2.3_build.5`` has build metadata ``build.5``.

    >>> from registry_gc.policy import parse_semver
    >>> parse_semver("v1.2.3-rc.1_build.7")
    SemVer(major=1, minor=2, patch=3, prerelease=('rc', 1), build='build.7')
    >>> parse_semver("1.2") is None
    True
    """
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    pre = m.group("pre")
    return SemVer(
        int(m.group("major")),
        int(m.group("minor")),
        int(m.group("patch")),
        tuple(int(p) if p.isdigit() else p for p in pre.split(".")) if pre else (),
        m.group("build"),
    )
