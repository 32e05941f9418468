"""Policy files: YAML or TOML text → a :class:`~registry_gc.policy.Policy`, with located errors.

Every error is a :class:`~registry_gc.ConfigError` naming the source and, for
YAML, the line (``policy.yaml:7: rule 2: unknown key …``); TOML errors name
the key path. :func:`load_policy` reads a local file; nothing here touches the
registry's storage.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

import attrs
import yaml

from .._errors import ConfigError
from ..durations import parse_duration
from ._model import TIME_SOURCES, Policy, Rule
from ._patterns import Pattern

if TYPE_CHECKING:
    import datetime
    import os

__all__ = ["load_policy", "parse_policy"]

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
                if value.value not in TIME_SOURCES:
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
    return _YAMLNodes(source).convert(root)


class _YAMLNodes:
    """YAML nodes as :class:`_Node` values that remember their line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node) -> _Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return _Node(self.mapping(node), line)
        if isinstance(node, yaml.SequenceNode):
            return _Node([self.convert(n) for n in node.value], line)
        try:
            return _Node(self.constructor.construct_object(node, deep=True), line)
        except yaml.YAMLError as e:
            raise ConfigError(f"{self.source}:{line}: {e}") from None

    def mapping(self, node: yaml.MappingNode) -> dict[str, _Node]:
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ConfigError(f"{self.source}:{key_line}: key {key!r} is not a string")
            if key in out:
                raise ConfigError(f"{self.source}:{key_line}: key {key!r} appears twice")
            out[key] = attrs.evolve(self.convert(value_node), key_line=key_line)
        return out


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
    and durations; its ``path`` is the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"cannot read policy file {p}: {reason}", path=str(p)) from None
    fmt: Literal["yaml", "toml"] = "toml" if p.suffix.lower() == ".toml" else "yaml"
    try:
        return parse_policy(text, fmt=fmt, source=str(p))
    except ConfigError as e:
        e.path = str(p)
        raise
