"""The retention options of ``registry-gc gc``: the flags, the rule they make, their errors.

Only the policy options are parsed here (a parser with nothing else); running
``gc`` with them is in test_policy_collect.py and test_e2e_policy.py.
"""

from __future__ import annotations

import argparse
import datetime
from typing import TYPE_CHECKING

import pytest
from registry_gc import ConfigError
from registry_gc.cli._policy import add_policy_arguments, policy_from_args
from registry_gc.policy import Policy, Rule

if TYPE_CHECKING:
    from pathlib import Path


def parse_args(*argv: str) -> argparse.Namespace:
    """Parse ``argv`` with a parser that has only the policy options."""
    parser = argparse.ArgumentParser(prog="registry-gc gc")
    add_policy_arguments(parser)
    return parser.parse_args(argv)


def test_no_policy_option_gives_no_policy() -> None:
    """Without any policy option there is no policy."""
    assert policy_from_args(parse_args()) is None


def test_flags_make_one_rule() -> None:
    """The flags build one rule named 'command line'."""
    args = parse_args(
        "--keep-last", "10", "--keep-within", "14d", "--keep-tags", "v.*", "--keep-tags", "stable",
        "--delete-tags", "pr-.*", "--repos", "app/*", "--keep-semver", "3", "--no-keep-latest",
    )  # fmt: skip
    policy = policy_from_args(args)
    assert policy == Policy(
        [
            Rule(
                repositories=["app/*"],
                keep_last=10,
                keep_within=datetime.timedelta(days=14),
                keep_tags=["v.*", "stable"],
                delete_tags=["pr-.*"],
                keep_semver=3,
                keep_latest=False,
                name="command line",
            )
        ]
    )


def test_policy_file_and_flags_combine(tmp_path: Path) -> None:
    """--policy rules come first, then the flags' rule; the referrer flag turns both options on."""
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - keep_last: 3\n")
    policy = policy_from_args(
        parse_args("--policy", str(path), "--delete-tags", "x", "--delete-orphan-referrers")
    )
    assert policy is not None
    assert [r.name for r in policy.rules] == [None, "command line"]
    assert policy.delete_referrers_without_subject
    assert policy.delete_orphan_signature_tags


def test_referrer_flag_alone_makes_a_policy_without_rules() -> None:
    """--delete-orphan-referrers alone is a policy with no rules."""
    assert policy_from_args(parse_args("--delete-orphan-referrers")) == Policy(
        (), delete_referrers_without_subject=True, delete_orphan_signature_tags=True
    )


@pytest.mark.parametrize("argv", [["--repos", "app/*"], ["--no-keep-latest"]])
def test_shaping_flags_without_a_rule_are_an_error(argv: list[str]) -> None:
    """--repos or --no-keep-latest alone would do nothing: refused."""
    with pytest.raises(ConfigError, match="give at least one of those"):
        policy_from_args(parse_args(*argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep-tags", "v("], "invalid regular expression 'v('"),
        (["--keep-last", "0"], "expected a whole number of at least 1"),
        (["--keep-semver", "three"], "expected a whole number of at least 1"),
        (["--keep-within", "two weeks"], "invalid duration"),
        (["--repos", "re:("], "invalid regular expression"),
    ],
)
def test_bad_flag_values_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid flag values stop argparse with exit status 2 and say why."""
    with pytest.raises(SystemExit) as info:
        parse_args(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
