"""Retention policies: which tags to keep, which to delete, and the rule that decided.

A :class:`Policy` is a list of :class:`Rule` objects, each applying to the
repositories its patterns match. Per repository and tag, :func:`select_tags`
decides *keep* or *delete* and names the rule and criterion that decided.
It is pure (inventory and manifests in, decisions out); the collector passes
the deleted tags to the ordinary mark and sweep, so manifests and blobs that
only they kept go in the same run (with ``delete_untagged``), and a manifest
another kept tag points at stays.

The semantics, in the order they apply:

- a repository no rule matches is untouched;
- a tag is deleted only if a rule applying to it says so (a ``delete_tags``
  match, or — in a rule with keep criteria — being kept by none of them)
  *and* no rule keeps it: keep always wins;
- ``latest`` is kept unless a rule says ``keep_latest: false``;
- a tag whose ``current`` link was written within the grace period is kept;
- a tag whose ``current`` link is missing or broken, or whose name is not a
  valid tag, is left alone;
- signature tags (cosign's ``sha256-<hex>.sig`` / ``.att`` / ``.sbom``, and the
  OCI referrers fallback tag ``sha256-<hex>``) follow the image they belong
  to: rules neither count them nor delete them for want of a keep (a
  ``delete_tags`` match still deletes them). With
  ``delete_orphan_signature_tags`` they go once that image is gone.

>>> rule = Rule(repositories=["app/*"], keep_last=10)
>>> describe_rule(1, rule)
'rule 1 (repositories "app/*")'
>>> parse_semver("v1.0.0-rc.1") < parse_semver("1.0.0")
True
"""

from __future__ import annotations

import datetime
import enum
import importlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

import attrs
import yaml

from ._errors import ConfigError
from .durations import format_duration, parse_duration
from .fetch import is_manifest
from .layout import Digest, Repository, Tag, tag_name_problem
from .manifests import Manifest, ManifestKind

if TYPE_CHECKING:
    import os
    from collections.abc import Collection, Iterable, Iterator, Mapping

    from .fetch import ManifestTable
    from .inventory import Inventory, RepositoryEntry, TagEntry
    from .mark import Marks

__all__ = [
    "Action",
    "ManifestRemoval",
    "Pattern",
    "Policy",
    "Rule",
    "SemVer",
    "TagDecision",
    "TagDecisions",
    "describe_rule",
    "load_policy",
    "parse_policy",
    "parse_semver",
    "select_tags",
]

log = logging.getLogger(__name__)

#: The grace period :func:`select_tags` assumes when not told (the collector's default).
_DEFAULT_GRACE: Final = datetime.timedelta(hours=1)

TimeSource = Literal["push", "created"]
_TIME_SOURCES: Final = ("push", "created")


# -- patterns ----------------------------------------------------------------------------


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


def _repository_patterns(value: str | Pattern | Iterable[str | Pattern]) -> tuple[Pattern, ...]:
    return _patterns("repository", value)


def _tag_patterns(value: str | Pattern | Iterable[str | Pattern]) -> tuple[Pattern, ...]:
    return _patterns("tag", value)


# -- semantic versions ---------------------------------------------------------------------

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


# -- the model -----------------------------------------------------------------------------


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
    if value not in _TIME_SOURCES:
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
    repositories: tuple[Pattern, ...] = attrs.field(default=(), converter=_repository_patterns)
    #: the tags the rule considers (regular expressions, or ``glob:``); empty: every tag
    tags: tuple[Pattern, ...] = attrs.field(default=(), converter=_tag_patterns)
    #: keep the N most recently pushed tags
    keep_last: int | None = attrs.field(default=None, validator=_positive_int)
    #: keep tags pushed within this long before the run
    keep_within: datetime.timedelta | None = attrs.field(default=None, validator=_positive_duration)
    #: keep tags matching any of these (regular expressions, or ``glob:``)
    keep_tags: tuple[Pattern, ...] = attrs.field(default=(), converter=_tag_patterns)
    #: keep the N highest semantic versions
    keep_semver: int | None = attrs.field(default=None, validator=_positive_int)
    #: whether ``keep_semver`` counts pre-releases (when not, they are not kept by it)
    semver_prereleases: bool = True
    #: delete tags matching any of these, unless some rule keeps them
    delete_tags: tuple[Pattern, ...] = attrs.field(default=(), converter=_tag_patterns)
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


# -- loading ------------------------------------------------------------

_RULE_KEYS: Final = frozenset(
    {
        "name",
        "repositories",
        "tags",
        "keep_last",
        "keep_within",
        "keep_tags",
        "keep_semver",
        "semver_prereleases",
        "delete_tags",
        "keep_latest",
        "time_source",
    }
)
_POLICY_KEYS: Final = frozenset(
    {"rules", "delete_referrers_without_subject", "delete_orphan_signature_tags"}
)


@attrs.frozen
class _Node:
    """A value from a policy file and where it was: a scalar, a list or a dict of nodes."""

    value: Any
    line: int | None = None
    #: for a mapping's value: the line of its key
    key_line: int | None = None


class _Reader:
    """Turns a tree of :class:`_Node` into a :class:`Policy`, with located errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: _Node, where: str, message: str, *, at_key: bool = False) -> NoReturn:
        number = node.key_line if at_key and node.key_line is not None else node.line
        line = f":{number}" if number is not None else ""
        prefix = f"{self.source}{line}: " + (f"{where}: " if where else "")
        raise ConfigError(prefix + message)

    def mapping(self, node: _Node, where: str, known: frozenset[str]) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            self.fail(node, where, f"expected a mapping of keys, got {_kind(node.value)}")
        for key, value in node.value.items():
            if key not in known:
                hint = ", ".join(sorted(known))
                self.fail(value, where, f"unknown key {key!r} (known keys: {hint})", at_key=True)
        result: dict[str, _Node] = node.value
        return result

    def policy(self, root: _Node) -> Policy:
        top = self.mapping(root, "", _POLICY_KEYS)
        rules: list[Rule] = []
        if "rules" in top:
            items = top["rules"]
            if not isinstance(items.value, list):
                self.fail(items, "rules", f"expected a list of rules, got {_kind(items.value)}")
            rules = [self.rule(item, i) for i, item in enumerate(items.value, 1)]
        return Policy(
            tuple(rules),
            delete_referrers_without_subject=self.boolean(
                top.get("delete_referrers_without_subject"), "delete_referrers_without_subject"
            ),
            delete_orphan_signature_tags=self.boolean(
                top.get("delete_orphan_signature_tags"), "delete_orphan_signature_tags"
            ),
        )

    def rule(self, node: _Node, number: int) -> Rule:
        where = f"rule {number}"
        keys = self.mapping(node, where, _RULE_KEYS)
        kwargs: dict[str, Any] = {}
        for key, value in keys.items():
            at = f"{where}, {key}"
            if key in {"repositories", "tags", "keep_tags", "delete_tags"}:
                kind = "repository" if key == "repositories" else "tag"
                kwargs[key] = self.patterns(value, at, kind)
            elif key in {"keep_last", "keep_semver"}:
                kwargs[key] = self.count(value, at)
            elif key == "keep_within":
                kwargs[key] = self.duration(value, at)
            elif key in {"keep_latest", "semver_prereleases"}:
                kwargs[key] = self.boolean(value, at)
            elif key == "time_source":
                if value.value not in _TIME_SOURCES:
                    self.fail(value, at, f"expected 'push' or 'created', got {value.value!r}")
                kwargs[key] = value.value
            else:  # name
                if not isinstance(value.value, str):
                    self.fail(value, at, f"expected a string, got {_kind(value.value)}")
                kwargs[key] = value.value
        rule = Rule(**kwargs)
        if not rule.has_keep_criteria and not rule.delete_tags:
            self.fail(
                node,
                where,
                "the rule neither keeps nor deletes anything: give it keep_last, keep_within, "
                "keep_tags, keep_semver or delete_tags",
            )
        return rule

    def patterns(self, node: _Node, where: str, kind: str) -> tuple[Pattern, ...]:
        items = node.value if isinstance(node.value, list) else [node]
        out = []
        for i, item in enumerate(items, 1):
            at = f"{where}, item {i}" if isinstance(node.value, list) else where
            if not isinstance(item.value, str):
                self.fail(item, at, f"expected a pattern (a string), got {_kind(item.value)}")
            try:
                out.append(
                    Pattern.repository(item.value)
                    if kind == "repository"
                    else Pattern.tag(item.value)
                )
            except ConfigError as e:
                self.fail(item, at, str(e))
        return tuple(out)

    def count(self, node: _Node, where: str) -> int:
        v = node.value
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            self.fail(node, where, f"expected a whole number of at least 1, got {v!r}")
        return v

    def duration(self, node: _Node, where: str) -> datetime.timedelta:
        if not isinstance(node.value, str):
            self.fail(node, where, f"expected a duration such as 14d or 12h, got {node.value!r}")
        try:
            return parse_duration(node.value, positive=True)
        except ConfigError as e:
            self.fail(node, where, str(e))

    def boolean(self, node: _Node | None, where: str, *, default: bool = False) -> bool:
        if node is None:
            return default
        if not isinstance(node.value, bool):
            self.fail(node, where, f"expected true or false, got {node.value!r}")
        return node.value


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _from_yaml(text: str, source: str) -> _Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if root is None:
        raise ConfigError(f"{source}: the policy file is empty; it needs at least 'rules'")
    constructor = yaml.constructor.SafeConstructor()

    def convert(node: yaml.Node) -> _Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, _Node] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise ConfigError(
                        f"{source}:{key_node.start_mark.line + 1}: key {key!r} is not a string"
                    )
                if key in out:
                    raise ConfigError(
                        f"{source}:{key_node.start_mark.line + 1}: key {key!r} appears twice"
                    )
                out[key] = attrs.evolve(convert(value_node), key_line=key_node.start_mark.line + 1)
            return _Node(out, line)
        if isinstance(node, yaml.SequenceNode):
            return _Node([convert(n) for n in node.value], line)
        try:
            return _Node(constructor.construct_object(node, deep=True), line)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}:{line}: {e}") from None

    return convert(root)


def _from_toml(text: str, source: str) -> _Node:
    try:
        # Imported by name: mypy checks the package as Python 3.10, which has no tomllib.
        tomllib = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        raise ConfigError(
            f"{source}: TOML policy files need Python 3.11 or later (tomllib); "
            "write the policy in YAML instead"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None

    def wrap(value: object) -> _Node:
        if isinstance(value, dict):
            return _Node({k: wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return _Node([wrap(v) for v in value])
        return _Node(value)

    return wrap(data)


def parse_policy(
    text: str, *, fmt: Literal["yaml", "toml"] = "yaml", source: str = "<policy>"
) -> Policy:
    """Parse a policy from ``text`` (YAML or TOML); errors name ``source`` and the place.

    YAML errors carry the line (``policy.yaml:7: rule 2: unknown key …``); TOML
    errors name the key path only (``policy.toml: rule 2, keep_last: …``),
    since the TOML parser keeps no line numbers.

    >>> from registry_gc.policy import parse_policy
    >>> policy = parse_policy('''
    ... rules:
    ...   - repositories: ["app/*"]
    ...     keep_last: 10
    ... ''')
    >>> policy.rules[0].keep_last
    10
    """
    root = _from_toml(text, source) if fmt == "toml" else _from_yaml(text, source)
    return _Reader(source).policy(root)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a policy file: ``*.toml`` is TOML, anything else YAML (JSON is YAML too).

    Raises :class:`~registry_gc.ConfigError` naming the file, and the line
    (YAML) or key path (TOML), for unknown keys, wrong types, invalid patterns
    and durations.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"cannot read policy file {p}: {reason}") from None
    fmt: Literal["yaml", "toml"] = "toml" if p.suffix.lower() == ".toml" else "yaml"
    return parse_policy(text, fmt=fmt, source=str(p))


# -- decisions ------------------------------------------------------------


class Action(enum.Enum):
    """What happens to a tag."""

    KEEP = "keep"
    DELETE = "delete"


@attrs.frozen
class TagDecision:
    """What happens to one tag, and the rule (or reason) that decided."""

    repository: Repository
    tag: Tag
    digest: Digest | None
    action: Action
    #: human-readable: ``rule 1 (repositories "app/*"): keep_last 10``
    rule: str
    #: the tag's push time (``current`` link write time), seconds since the epoch
    pushed: float | None = None
    #: for a signature tag kept because it follows its image: that image's digest
    follows: Digest | None = None

    @property
    def deleted(self) -> bool:
        """Whether the tag is to be deleted."""
        return self.action is Action.DELETE


@attrs.frozen
class ManifestRemoval:
    """A referrer manifest to remove because its subject is gone."""

    repository: Repository
    digest: Digest
    subject: Digest
    rule: str


@attrs.frozen
class TagDecisions:
    """Every decision of a policy run, and the manifests it removes.

    Decisions cover every tag of each repository a rule applies to, plus the
    tags the referrer options act on elsewhere; repositories no rule matches
    are otherwise absent (untouched).
    """

    tags: tuple[TagDecision, ...] = ()
    manifests: tuple[ManifestRemoval, ...] = ()
    #: whether signature tags whose image is deleted in this run go too (see :meth:`after_mark`)
    delete_orphan_signature_tags: bool = False
    #: tags written after this timestamp are inside the grace period
    cutoff: float = 0.0
    _by_tag: dict[tuple[str, str], TagDecision] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_tag = {(d.repository, d.tag): d for d in self.tags}
        object.__setattr__(self, "_by_tag", by_tag)

    def deleted(self) -> Iterator[TagDecision]:
        """The decisions to delete, in order."""
        return (d for d in self.tags if d.action is Action.DELETE)

    def kept(self) -> Iterator[TagDecision]:
        """The decisions to keep, in order."""
        return (d for d in self.tags if d.action is Action.KEEP)

    def get(self, repository: str, tag: str) -> TagDecision | None:
        """The decision about ``repository:tag`` (``None`` when no rule looked at it)."""
        return self._by_tag.get((repository, tag))

    def removed_tags(
        self, also: Mapping[Repository, Collection[Tag]] | None = None
    ) -> dict[Repository, set[Tag]]:
        """Deleted tags per repository, merged with ``also`` (for :func:`~registry_gc.collect`)."""
        out: dict[Repository, set[Tag]] = {r: set(t) for r, t in (also or {}).items()}
        for d in self.deleted():
            out.setdefault(d.repository, set()).add(d.tag)
        return out

    def removed_manifests(
        self, also: Mapping[Repository, Collection[Digest]] | None = None
    ) -> dict[Repository, set[Digest]]:
        """Removed referrer manifests per repository, merged with ``also``."""
        out: dict[Repository, set[Digest]] = {r: set(d) for r, d in (also or {}).items()}
        for m in self.manifests:
            out.setdefault(m.repository, set()).add(m.digest)
        return out

    def after_mark(self, marks: Marks) -> TagDecisions | None:
        """Delete signature tags whose image the sweep is about to delete; ``None``: no change.

        Removing a signature tag never makes its image less live (the edge goes
        from image to signature, not back), so one more mark with these tags
        removed gives the final result.
        """
        if not self.delete_orphan_signature_tags:
            return None
        changed = False
        out = []
        kept: dict[Digest, list[str]] = {}
        for repository, live in (*marks.live.items(), *marks.grace_live.items()):
            for digest in live:
                kept.setdefault(digest, []).append(repository)
        for d in self.tags:
            # cosign's COSIGN_REPOSITORY keeps signatures in another repository than the
            # image: the image is gone only when no repository keeps it.
            gone = (
                d.action is Action.KEEP
                and d.follows is not None
                and d.follows not in kept
                and (d.pushed is None or d.pushed <= self.cutoff)
            )
            if gone:
                assert d.follows is not None
                rule = (
                    f"delete_orphan_signature_tags: the image it belongs to ({d.follows}) "
                    "is deleted in this run from every repository that held it"
                )
                d = attrs.evolve(d, action=Action.DELETE, rule=rule, follows=None)  # noqa: PLW2901
                changed = True
            out.append(d)
        return attrs.evolve(self, tags=tuple(out)) if changed else None


_SIGNATURE_TAG = re.compile(r"sha256-(?P<hex>[0-9a-f]{64})(?P<suffix>\.(?:sig|att|sbom))?")


def _signature_subject(tag: TagEntry, manifests: ManifestTable) -> Digest | None:
    """The image a signature tag belongs to, or ``None`` for an ordinary tag.

    ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` are cosign's. A bare
    ``sha256-<hex>`` counts only when it is an OCI referrers fallback index
    (every entry's ``subject`` is ``sha256:<hex>``), since CI systems also name
    tags after content hashes.
    """
    m = _SIGNATURE_TAG.fullmatch(tag.name)
    if m is None:
        return None
    subject = Digest._trusted("sha256:" + m.group("hex"))  # noqa: SLF001
    if m.group("suffix"):
        return subject
    index = manifests.get(tag.current) if tag.current is not None else None
    if not isinstance(index, Manifest) or index.kind is not ManifestKind.OCI_INDEX:
        return None
    for child in index.children:
        entry = manifests.get(child.digest)
        if not isinstance(entry, Manifest) or entry.subject != subject:
            return None
    return subject


@attrs.define
class _TagState:
    """Working state for one tag while the rules are evaluated."""

    entry: TagEntry
    pushed: float
    signs: Digest | None
    keep: list[str] = attrs.Factory(list)
    delete: list[str] = attrs.Factory(list)


def select_tags(
    inventory: Inventory,
    manifests: ManifestTable,
    policy: Policy,
    now: datetime.datetime,
    *,
    grace: datetime.timedelta = _DEFAULT_GRACE,
    created: Mapping[Digest, float] | None = None,
) -> TagDecisions:
    """Decide, per repository and tag, keep or delete, and the rule that decided. Pure.

    ``now`` (aware) is what ``keep_within`` counts back from; tags written
    within ``grace`` of it are never deleted. ``created`` maps manifest
    digests to the image config's ``created`` time (see
    :func:`~registry_gc.created.read_created_times`) for rules with ``time_source: created``; a tag
    without one falls back to its push time.
    """
    cutoff = (now - grace).timestamp()
    grace_text = format_duration(grace)
    tags: list[TagDecision] = []
    removals: list[ManifestRemoval] = []
    holders: dict[Digest, list[Repository]] | None = None
    for name in sorted(inventory.repositories):
        repo = inventory.repositories[name]
        if repo.name_problem is not None:
            continue  # never touched: the inventory reports it
        rules = policy.rules_for(name)
        decided: dict[Tag, TagDecision] = {}
        explicit: set[Tag] = set()
        if rules:
            decided, explicit = _decide_repository(
                repo, manifests, rules, now.timestamp(), cutoff, grace_text, created or {}
            )
        if policy.delete_referrers_without_subject or policy.delete_orphan_signature_tags:
            holders = holders if holders is not None else _holders(inventory, manifests)
        if policy.delete_referrers_without_subject:
            assert holders is not None
            removals.extend(_orphan_referrers(repo, manifests, decided, explicit, cutoff, holders))
        if policy.delete_orphan_signature_tags:
            assert holders is not None
            _orphan_signature_tags(repo, manifests, decided, explicit, cutoff, removals, holders)
        tags.extend(decided[t] for t in sorted(decided))
    return TagDecisions(
        tuple(tags),
        tuple(removals),
        delete_orphan_signature_tags=policy.delete_orphan_signature_tags,
        cutoff=cutoff,
    )


def _decide_repository(  # noqa: PLR0917 - private helper, one call site
    repo: RepositoryEntry,
    manifests: ManifestTable,
    rules: list[tuple[int, Rule]],
    now: float,
    cutoff: float,
    grace_text: str,
    created: Mapping[Digest, float],
) -> tuple[dict[Tag, TagDecision], set[Tag]]:
    decided: dict[Tag, TagDecision] = {}
    states: list[_TagState] = []
    for tag in repo.tags.values():
        if tag.current is None or tag.current_mtime is None:
            decided[tag.name] = TagDecision(
                repo.name, tag.name, tag.current, Action.KEEP,
                "left alone: its current link is missing or broken", tag.current_mtime,
            )  # fmt: skip
        elif tag_name_problem(tag.name) is not None:
            decided[tag.name] = TagDecision(
                repo.name, tag.name, tag.current, Action.KEEP,
                "left alone: not a valid tag name", tag.current_mtime,
            )  # fmt: skip
        else:
            states.append(_TagState(tag, tag.current_mtime, _signature_subject(tag, manifests)))

    for number, rule in rules:
        _apply_rule(describe_rule(number, rule), rule, states, now, created)

    explicit: set[Tag] = set()
    for s in states:
        t = s.entry
        base = (repo.name, t.name, t.current)
        if s.keep:
            explicit.add(t.name)
            decided[t.name] = TagDecision(*base, Action.KEEP, s.keep[0], s.pushed)
        elif s.delete and s.pushed > cutoff:
            explicit.add(t.name)
            why = f"pushed within the grace period ({grace_text}); otherwise {s.delete[0]}"
            decided[t.name] = TagDecision(*base, Action.KEEP, why, s.pushed)
        elif s.delete:
            decided[t.name] = TagDecision(*base, Action.DELETE, s.delete[0], s.pushed)
        elif s.signs is not None:
            why = f"signature tag: follows the image it belongs to ({s.signs})"
            decided[t.name] = TagDecision(*base, Action.KEEP, why, s.pushed, follows=s.signs)
        else:
            decided[t.name] = TagDecision(*base, Action.KEEP, "no rule deletes it", s.pushed)
    return decided, explicit


def _apply_rule(
    label: str,
    rule: Rule,
    states: list[_TagState],
    now: float,
    created: Mapping[Digest, float],
) -> None:
    """Record, on each tag's state, what ``rule`` says about it."""
    scope = [s for s in states if rule.in_scope(s.entry.name)]
    ranked = [s for s in scope if s.signs is None]  # signature tags are not counted
    kept: set[Tag] = set()

    def when(s: _TagState) -> float:
        if rule.time_source == "created" and s.entry.current is not None:
            return created.get(s.entry.current, s.pushed)
        return s.pushed

    def keep(s: _TagState, why: str) -> None:
        kept.add(s.entry.name)
        s.keep.append(f"{label}: {why}")

    if rule.keep_last is not None:
        newest = sorted(ranked, key=lambda s: (-when(s), s.entry.name))
        for s in newest[: rule.keep_last]:
            keep(s, f"keep_last {rule.keep_last}")
    if rule.keep_within is not None:
        since = now - rule.keep_within.total_seconds()
        for s in scope:
            if when(s) >= since:
                keep(s, f"keep_within {format_duration(rule.keep_within)}")
    for s in scope:
        for p in rule.keep_tags:
            if p.matches(s.entry.name):
                keep(s, f'keep_tags "{p}"')
                break
    if rule.keep_semver is not None:
        versions = [
            (v, s)
            for s in ranked
            if (v := parse_semver(s.entry.name)) is not None
            and (rule.semver_prereleases or not v.is_prerelease)
        ]
        # Highest first; equal precedence (build metadata): the most recent first.
        versions.sort(key=lambda vs: (vs[0].precedence, when(vs[1]), vs[1].entry.name))
        for _, s in versions[::-1][: rule.keep_semver]:
            keep(s, f"keep_semver {rule.keep_semver}")
    if rule.keep_latest:
        for s in scope:
            if s.entry.name == "latest":
                keep(s, "keep_latest")
    for s in scope:
        for p in rule.delete_tags:
            if p.matches(s.entry.name):
                s.delete.append(f'{label}: delete_tags "{p}"')
                break
    if rule.has_keep_criteria:
        unkept = f"{label}: not kept by " + " or ".join(rule.criteria())
        for s in ranked:
            if s.entry.name not in kept:
                s.delete.append(unkept)


def _orphan_referrers(  # noqa: PLR0917 - private helper, one call site
    repo: RepositoryEntry,
    manifests: ManifestTable,
    decided: dict[Tag, TagDecision],
    explicit: set[Tag],
    cutoff: float,
    holders: Mapping[Digest, list[Repository]],
) -> list[ManifestRemoval]:
    """Referrer revisions whose subject is in no repository (or loses it here), and their tags.

    The subject is looked for in every repository: cosign's ``COSIGN_REPOSITORY``
    keeps signatures in another repository than the image they sign.
    """
    removed: dict[Digest, ManifestRemoval] = {}
    tags_on: dict[Digest, list[TagEntry]] = {}
    for tag in repo.tags.values():
        if tag.current is not None:
            tags_on.setdefault(tag.current, []).append(tag)
    changed = True
    while changed:  # a signature of an SBOM of a deleted image goes too
        changed = False
        for digest, mtime in sorted(repo.revisions.items()):
            m = manifests.get(digest)
            if digest in removed or not isinstance(m, Manifest) or m.subject is None:
                continue
            elsewhere = [r for r in holders.get(m.subject, ()) if r != repo.name]
            if elsewhere or (m.subject in repo.revisions and m.subject not in removed):
                continue
            if mtime > cutoff:
                continue  # OCI allows pushing a referrer before its subject
            pointing = tags_on.get(digest, [])
            protected = any(
                t.name in explicit
                or t.current_mtime is None
                or t.current_mtime > cutoff
                or tag_name_problem(t.name) is not None
                for t in pointing
            )
            if protected:
                continue
            rule = (
                f"delete_referrers_without_subject: its subject {m.subject} is in no repository "
                "of the store"
            )
            removed[digest] = ManifestRemoval(repo.name, digest, m.subject, rule)
            for t in pointing:
                decided[t.name] = TagDecision(
                    repo.name, t.name, t.current, Action.DELETE,
                    f"delete_referrers_without_subject: it points at referrer {digest}, "
                    f"whose subject {m.subject} is in no repository of the store",
                    t.current_mtime,
                )  # fmt: skip
            changed = True
    return list(removed.values())


def _holders(inventory: Inventory, manifests: ManifestTable) -> dict[Digest, list[Repository]]:
    """Manifest digest → the repositories that serve it (revisions, and 2.1.0 ``_layers`` links)."""
    out: dict[Digest, list[Repository]] = {}
    for name in sorted(inventory.repositories):
        repo = inventory.repositories[name]
        for digest in repo.revisions:
            out.setdefault(digest, []).append(name)
        for digest in repo.layers:
            if digest not in repo.revisions and is_manifest(manifests.get(digest)):
                out.setdefault(digest, []).append(name)
    return out


def _orphan_signature_tags(  # noqa: PLR0917 - private helper, one call site
    repo: RepositoryEntry,
    manifests: ManifestTable,
    decided: dict[Tag, TagDecision],
    explicit: set[Tag],
    cutoff: float,
    removals: list[ManifestRemoval],
    holders: Mapping[Digest, list[Repository]],
) -> None:
    """Signature tags whose image is in no repository; the others are recorded as followers.

    cosign puts the tags in another repository than the image when
    ``COSIGN_REPOSITORY`` is set, so the image is looked for in every repository.
    """
    removed = {(m.repository, m.digest) for m in removals}
    for tag in repo.tags.values():
        if tag.name in explicit or tag.current is None or tag.current_mtime is None:
            continue
        previous = decided.get(tag.name)
        if previous is not None and previous.action is Action.DELETE:
            continue
        subject = _signature_subject(tag, manifests)
        if subject is None:
            continue
        base = (repo.name, tag.name, tag.current)
        held = [r for r in holders.get(subject, ()) if (r, subject) not in removed]
        if not held and tag.current_mtime <= cutoff:
            why = (
                f"delete_orphan_signature_tags: the image it belongs to ({subject}) is in no "
                "repository of the store"
            )
            decided[tag.name] = TagDecision(*base, Action.DELETE, why, tag.current_mtime)
        elif previous is None:
            where = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            why = (
                f"signature tag: follows the image it belongs to ({subject}"
                + (f", in {where}" if held else "")
                + ")"
            )
            decided[tag.name] = TagDecision(
                *base, Action.KEEP, why, tag.current_mtime, follows=subject
            )
