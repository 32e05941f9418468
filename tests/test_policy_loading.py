"""Policy files: YAML and TOML into the typed model, and errors that name the file and place."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest
from registry_gc import ConfigError
from registry_gc.policy import Rule, load_policy, parse_policy

if TYPE_CHECKING:
    from pathlib import Path


FULL_YAML = r"""
delete_referrers_without_subject: true
delete_orphan_signature_tags: true
rules:
  - name: apps
    repositories: ["app/*", 're:^team-[a-z]+/.+$']
    tags: ['glob:build-*']
    keep_last: 10
    keep_within: 14d
    keep_tags: ['v?\d+\.\d+\.\d+']
    keep_semver: 3
    semver_prereleases: false
    delete_tags: 'feature-.*'
    keep_latest: false
    time_source: created
  - delete_tags: ["tmp-.*"]
"""

FULL_TOML = r"""
delete_referrers_without_subject = true
delete_orphan_signature_tags = true

[[rules]]
name = "apps"
repositories = ["app/*", 're:^team-[a-z]+/.+$']
tags = ['glob:build-*']
keep_last = 10
keep_within = "14d"
keep_tags = ['v?\d+\.\d+\.\d+']
keep_semver = 3
semver_prereleases = false
delete_tags = 'feature-.*'
keep_latest = false
time_source = "created"

[[rules]]
delete_tags = ["tmp-.*"]
"""


def test_yaml_policy_reads_every_key() -> None:
    """Every key of a YAML policy file lands in the typed model."""
    policy = parse_policy(FULL_YAML)
    assert policy.delete_referrers_without_subject
    assert policy.delete_orphan_signature_tags
    first, second = policy.rules
    assert first == Rule(
        repositories=["app/*", "re:^team-[a-z]+/.+$"],
        tags=["glob:build-*"],
        keep_last=10,
        keep_within=datetime.timedelta(days=14),
        keep_tags=[r"v?\d+\.\d+\.\d+"],
        keep_semver=3,
        semver_prereleases=False,
        delete_tags=["feature-.*"],
        keep_latest=False,
        time_source="created",
        name="apps",
    )
    assert second == Rule(delete_tags=["tmp-.*"])
    assert second.keep_latest
    assert second.time_source == "push"


def test_toml_policy_reads_the_same_as_yaml() -> None:
    """The TOML form of a policy gives the same objects as the YAML form."""
    assert parse_policy(FULL_TOML, fmt="toml") == parse_policy(FULL_YAML)


@pytest.mark.parametrize(
    ("name", "text"), [("p.yaml", FULL_YAML), ("p.yml", FULL_YAML), ("p.toml", FULL_TOML)]
)
def test_load_policy_picks_the_format_by_extension(tmp_path: Path, name: str, text: str) -> None:
    """``*.toml`` files are read as TOML, the others as YAML."""
    path = tmp_path / name
    path.write_text(text)
    assert load_policy(path) == parse_policy(FULL_YAML)


def test_load_policy_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    """A missing policy file is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match=r"cannot read policy file .*nope\.yaml") as info:
        load_policy(tmp_path / "nope.yaml")
    assert info.value.path == str(tmp_path / "nope.yaml")


def test_load_policy_errors_carry_the_file_as_their_path(tmp_path: Path) -> None:
    """Errors in a policy file name it in the message and in the error's path field."""
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - keep_lsat: 3\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}:2: rule 1: unknown key 'keep_lsat'")
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n  - keep_last: 3\n    keep_lsat: 4\n", 3, "rule 1: unknown key 'keep_lsat'"),
        (
            "rules:\n  - keep_last: 3\n  - keep_last: ten\n",
            3,
            "rule 2, keep_last: expected a whole number",
        ),
        (
            "rules:\n  - keep_last: 0\n",
            2,
            "rule 1, keep_last: expected a whole number of at least 1",
        ),
        ("rules:\n  - keep_last: true\n", 2, "rule 1, keep_last: expected a whole number"),
        (
            "rules:\n  - keep_tags:\n      - ok\n      - 'v('\n",
            4,
            "rule 1, keep_tags, item 2: invalid regular expression 'v('",
        ),
        (
            "rules:\n  - repositories: 're:[z-a]'\n    keep_last: 1\n",
            2,
            "rule 1, repositories: invalid regular expression",
        ),
        ("rules:\n  - delete_tags: ['']\n", 2, "rule 1, delete_tags, item 1: empty pattern"),
        ("rules:\n  - keep_within: 14x\n", 2, "rule 1, keep_within: invalid duration '14x'"),
        ("rules:\n  - keep_within: 14\n", 2, "rule 1, keep_within: expected a duration"),
        (
            "rules:\n  - keep_within: 0s\n",
            2,
            "rule 1, keep_within: duration '0s' must be longer than 0",
        ),
        (
            "rules:\n  - keep_last: 1\n    time_source: build\n",
            3,
            "rule 1, time_source: expected 'push' or 'created'",
        ),
        (
            "rules:\n  - keep_last: 1\n    keep_latest: maybe\n",
            3,
            "rule 1, keep_latest: expected true or false",
        ),
        ("rules:\n  - keep_last: 1\n    name: [a]\n", 3, "rule 1, name: expected a string"),
        (
            "rules:\n  - repositories: ['app']\n",
            2,
            "rule 1: the rule neither keeps nor deletes anything",
        ),
        ("rules:\n  - keep_last: 1\n    keep_last: 2\n", 3, "key 'keep_last' appears twice"),
        ("rules:\n  - keep_last: 1\n    3: x\n", 3, "key 3 is not a string"),
        ("\n\nrule:\n  - keep_last: 1\n", 3, "unknown key 'rule'"),
        ("rules:\n  keep_last: 1\n", 2, "rules: expected a list of rules"),
        ("rules:\n  - 7\n", 2, "rule 1: expected a mapping of keys, got int 7"),
        ("- keep_last: 1\n", 1, "expected a mapping of keys, got a list"),
        ("rules:\n  - keep_last: [1\n", 3, "not valid YAML"),
        (
            "delete_orphan_signature_tags: 1\n",
            1,
            "delete_orphan_signature_tags: expected true or false",
        ),
    ],
)
def test_yaml_errors_name_the_file_and_line(text: str, line: int, message: str) -> None:
    """Unknown keys, wrong types, bad patterns and durations: ConfigError at file:line."""
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="policy.yaml")
    assert str(info.value).startswith(f"policy.yaml:{line}: "), str(info.value)
    assert message in str(info.value)


def test_an_empty_yaml_file_is_an_error() -> None:
    """An empty policy file is refused rather than read as 'no rules'."""
    with pytest.raises(ConfigError, match=r"^policy\.yaml: the policy file is empty"):
        parse_policy("# nothing\n", source="policy.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[rules]]\nkeep_last = 1\n[[rules]]\nkeep_lsat = 2\n",
            "policy.toml: rule 2: unknown key 'keep_lsat'",
        ),
        (
            '[[rules]]\nkeep_tags = ["(x"]\n',
            "policy.toml: rule 1, keep_tags, item 1: invalid regular expression",
        ),
        ('[[rules]]\nkeep_within = "soon"\n', "policy.toml: rule 1, keep_within: invalid duration"),
        ("rules = 3\n", "policy.toml: rules: expected a list of rules"),
        ("[[rules]]\nkeep_last =\n", "policy.toml: not valid TOML: Invalid value (at line 2"),
    ],
)
def test_toml_errors_name_the_key_path(text: str, message: str) -> None:
    """TOML has no line numbers after parsing: errors name the file and the key path."""
    with pytest.raises(ConfigError) as info:
        parse_policy(text, fmt="toml", source="policy.toml")
    assert str(info.value).startswith(message), str(info.value)
