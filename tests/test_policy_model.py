"""The rules model: rules validate their values, read back as written, and name themselves."""

from __future__ import annotations

import datetime

import pytest
from registry_gc import ConfigError
from registry_gc.policy import Policy, Rule, describe_rule


def test_rule_labels_name_the_rule_and_its_scope() -> None:
    """describe_rule gives the number, the name and the patterns."""
    assert (
        describe_rule(1, Rule(repositories="app/*", keep_last=1)) == 'rule 1 (repositories "app/*")'
    )
    assert describe_rule(2, Rule(keep_last=1, name="ci", tags=["pr-.*"])) == (
        'rule 2 "ci" (every repository; tags "pr-.*")'
    )


def test_rules_validate_their_values() -> None:
    """Rules built in Python are validated like the file's: ConfigError, a ValueError."""
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match="keep_last must be a whole number"):
        Rule(keep_last=0)
    with pytest.raises(ConfigError, match="keep_within must be a duration longer than 0"):
        Rule(keep_within=datetime.timedelta(0))
    with pytest.raises(ConfigError, match="time_source must be 'push' or 'created'"):
        Rule(keep_last=1, time_source="build")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid regular expression"):
        Rule(keep_tags=["("])


def test_a_rules_criteria_read_as_written() -> None:
    """criteria() lists the keep criteria in a fixed order, durations as written."""
    rule = Rule(
        keep_semver=2,
        semver_prereleases=False,
        keep_tags=["v.*", "stable"],
        keep_within=datetime.timedelta(hours=36),
        keep_last=5,
        delete_tags=["pr-.*"],
    )
    assert rule.criteria() == [
        "keep_last 5",
        "keep_within 1d12h",
        'keep_tags "v.*"',
        'keep_tags "stable"',
        "keep_semver 2 (releases only)",
    ]
    assert rule.has_keep_criteria
    assert not Rule(delete_tags=["x"], keep_latest=True).has_keep_criteria


def test_a_policy_numbers_the_rules_that_apply() -> None:
    """rules_for() gives the rules matching a repository, numbered from 1 in file order."""
    first, second, third = (
        Rule(repositories="app/*", keep_last=1),
        Rule(keep_last=2, time_source="created"),
        Rule(repositories="re:lib/.+", keep_last=3),
    )
    policy = Policy([first, second, third])
    assert policy.rules_for("app/web") == [(1, first), (2, second)]
    assert policy.rules_for("lib/x/y") == [(2, second), (3, third)]
    assert policy.needs_created_times
    assert not Policy([first, third]).needs_created_times
