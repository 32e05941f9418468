"""The rules model: :class:`Rule`, :class:`Policy`, and how messages name a rule.

Values are checked when a rule is built, in Python as from a file: a bad one
is a :class:`~registry_gc.ConfigError`. Pure.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from .._errors import ConfigError
from ..durations import format_duration
from ._patterns import Pattern, repository_patterns, tag_patterns

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Policy", "Rule", "TimeSource", "describe_rule"]

#: What "pushed" means to a rule: the tag's ``current`` link time, or the image's ``created``.
TimeSource = Literal["push", "created"]
TIME_SOURCES: Final = ("push", "created")


def _positive_int(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{attribute.name} must be a whole number of at least 1, not {value!r}")


def _positive_duration(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime.timedelta) or value <= datetime.timedelta(0):
        raise ConfigError(f"{attribute.name} must be a duration longer than 0, not {value!r}")


def _time_source(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in TIME_SOURCES:
        raise ConfigError(f"{attribute.name} must be 'push' or 'created', not {value!r}")


@attrs.frozen
class Rule:
    r"""One retention rule: which repositories (and tags) it applies to, what it keeps and deletes.

    A rule with any keep criterion (``keep_last``, ``keep_within``,
    ``keep_tags``, ``keep_semver``) deletes the tags in its scope that none of
    them keeps; ``delete_tags`` deletes matching tags outright. Either way a
    tag that any rule keeps stays, and ``latest`` is kept unless
    ``keep_latest`` is ``False``.

    >>> from registry_gc.policy import Rule
    >>> rule = Rule(repositories="app/*", keep_tags=[r"v\d+(\.\d+)*"], keep_last=10)
    >>> rule.repositories, rule.criteria()
    ((Pattern(text='app/*'),), ['keep_last 10', 'keep_tags "v\\d+(\\.\\d+)*"'])
    """

    #: repository patterns (globs, or ``re:`` regular expressions); empty: every repository
    repositories: tuple[Pattern, ...] = attrs.field(default=(), converter=repository_patterns)
    #: the tags the rule considers (regular expressions, or ``glob:``); empty: every tag
    tags: tuple[Pattern, ...] = attrs.field(default=(), converter=tag_patterns)
    #: keep the N most recently pushed tags
    keep_last: int | None = attrs.field(default=None, validator=_positive_int)
    #: keep tags pushed within this long before the run
    keep_within: datetime.timedelta | None = attrs.field(default=None, validator=_positive_duration)
    #: keep tags matching any of these (regular expressions, or ``glob:``)
    keep_tags: tuple[Pattern, ...] = attrs.field(default=(), converter=tag_patterns)
    #: keep the N highest semantic versions
    keep_semver: int | None = attrs.field(default=None, validator=_positive_int)
    #: whether ``keep_semver`` counts pre-releases (when not, they are not kept by it)
    semver_prereleases: bool = True
    #: delete tags matching any of these, unless some rule keeps them
    delete_tags: tuple[Pattern, ...] = attrs.field(default=(), converter=tag_patterns)
    #: keep a tag named ``latest``
    keep_latest: bool = True
    #: what "pushed" means: the tag's ``current`` link time, or the image config's ``created``
    time_source: TimeSource = attrs.field(default="push", validator=_time_source)
    #: a name for messages and reports
    name: str | None = None

    @property
    def has_keep_criteria(self) -> bool:
        """Whether the rule deletes what it does not keep (``keep_latest`` alone does not count)."""
        return bool(
            self.keep_last is not None
            or self.keep_within is not None
            or self.keep_tags
            or self.keep_semver is not None
        )

    def applies_to(self, repository: str) -> bool:
        """Whether the rule applies to ``repository``."""
        return not self.repositories or any(p.matches(repository) for p in self.repositories)

    def in_scope(self, tag: str) -> bool:
        """Whether the rule considers ``tag`` at all."""
        return not self.tags or any(p.matches(tag) for p in self.tags)

    def criteria(self) -> list[str]:
        """The keep criteria, as written (``keep_last 10``, ``keep_within 14d`` …)."""
        out = []
        if self.keep_last is not None:
            out.append(f"keep_last {self.keep_last}")
        if self.keep_within is not None:
            out.append(f"keep_within {format_duration(self.keep_within)}")
        out.extend(f'keep_tags "{p}"' for p in self.keep_tags)
        if self.keep_semver is not None:
            releases = "" if self.semver_prereleases else " (releases only)"
            out.append(f"keep_semver {self.keep_semver}{releases}")
        return out


def _rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(value)


@attrs.frozen
class Policy:
    """Rules, plus what to do with referrers and signature tags whose image is gone.

    ``delete_referrers_without_subject`` removes referrer manifests (OCI
    ``subject``) whose subject has no revision in the repository, and the tags
    pointing at them; ``delete_orphan_signature_tags`` removes signature tags
    (``sha256-<hex>.sig`` …) whose ``sha256:<hex>`` has no revision, or loses it
    in the same run. Both apply to every repository, matched by a rule or not.
    """

    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_rules)
    delete_referrers_without_subject: bool = False
    delete_orphan_signature_tags: bool = False

    def rules_for(self, repository: str) -> list[tuple[int, Rule]]:
        """The rules (numbered from 1) that apply to ``repository``."""
        return [(i, r) for i, r in enumerate(self.rules, 1) if r.applies_to(repository)]

    @property
    def needs_created_times(self) -> bool:
        """Whether a rule orders tags by the image config's ``created``."""
        return any(r.time_source == "created" for r in self.rules)


def describe_rule(number: int, rule: Rule) -> str:
    """How messages name a rule: ``rule 1 "name" (repositories "app/*"; tags "feature-.*")``."""
    label = f"rule {number}"
    if rule.name:
        label += f' "{rule.name}"'
    where = (
        "repositories " + ", ".join(f'"{p}"' for p in rule.repositories)
        if rule.repositories
        else "every repository"
    )
    if rule.tags:
        where += "; tags " + ", ".join(f'"{p}"' for p in rule.tags)
    return f"{label} ({where})"
