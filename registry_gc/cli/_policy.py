"""The retention options of ``registry-gc gc``: flags in, a :class:`~registry_gc.policy.Policy` out.

The command line's half of retention policies: :func:`add_policy_arguments`
adds the flags to a parser and :func:`policy_from_args` turns what was parsed
into a policy (a ``--policy`` file's rules, then one rule made of the flags).
Bad values become argparse usage errors with the messages the library gives.
The policy package knows nothing of argparse; this module, on the CLI side,
knows only the policy's public names.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .._errors import ConfigError
from ..durations import parse_duration
from ..policy import Pattern, Policy, Rule, load_policy

if TYPE_CHECKING:
    import datetime

__all__ = ["add_policy_arguments", "policy_from_args"]


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _duration_arg(text: str) -> datetime.timedelta:
    try:
        return parse_duration(text, positive=True)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _tag_pattern_arg(text: str) -> Pattern:
    try:
        return Pattern.tag(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _repository_pattern_arg(text: str) -> Pattern:
    try:
        return Pattern.repository(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the retention options to ``parser`` (the ``gc`` command).

    Read them back with :func:`policy_from_args`.

    ``--policy FILE`` loads a policy file; the other flags make one more rule
    (applied together with the file's): ``--keep-last``, ``--keep-within``,
    ``--keep-tags``, ``--delete-tags``, ``--keep-semver``, scoped by ``--repos``
    (every repository by default), with ``--no-keep-latest``;
    ``--delete-orphan-referrers`` turns on both referrer options.
    """
    group = parser.add_argument_group(
        "retention policy",
        "Delete tags by rule; their manifests and blobs then go through the same sweep "
        "(with -m). Keep always wins over delete, and 'latest' is kept unless "
        "--no-keep-latest. A dry run lists every tag it would delete and the rule that "
        "decided.",
    )
    group.add_argument(
        "--policy",
        dest="policy_file",
        metavar="FILE",
        help="a retention policy file (YAML, or TOML when it ends in .toml)",
    )
    group.add_argument(
        "--keep-last",
        type=_count_arg,
        metavar="N",
        help="keep the N most recently pushed tags of each repository",
    )
    group.add_argument(
        "--keep-within",
        type=_duration_arg,
        metavar="DURATION",
        help="keep tags pushed within DURATION (e.g. 14d)",
    )
    group.add_argument(
        "--keep-tags",
        action="append",
        type=_tag_pattern_arg,
        default=[],
        metavar="REGEX",
        help="keep tags matching REGEX, the whole tag (repeatable)",
    )
    group.add_argument(
        "--delete-tags",
        action="append",
        type=_tag_pattern_arg,
        default=[],
        metavar="REGEX",
        help="delete tags matching REGEX, the whole tag, unless kept (repeatable)",
    )
    group.add_argument(
        "--keep-semver",
        type=_count_arg,
        metavar="N",
        help="keep the N highest semantic-version tags (pre-releases ordered before releases)",
    )
    group.add_argument(
        "--repos",
        action="append",
        type=_repository_pattern_arg,
        default=[],
        metavar="GLOB",
        help="apply the flags above only to repositories matching GLOB (repeatable; "
        "'re:' for a regular expression; default: every repository)",
    )
    group.add_argument(
        "--no-keep-latest",
        action="store_true",
        help="let the flags above delete a tag named 'latest'",
    )
    group.add_argument(
        "--delete-orphan-referrers",
        action="store_true",
        help="delete referrers whose subject is gone, and sha256-<hex>.sig/.att/.sbom tags "
        "whose image is gone",
    )


def policy_from_args(args: argparse.Namespace) -> Policy | None:
    """The :class:`Policy` the options of :func:`add_policy_arguments` ask for; ``None`` if none.

    Raises :class:`~registry_gc.ConfigError` for an unusable policy file, and
    for ``--repos`` or ``--no-keep-latest`` without a keep or delete flag.
    """
    rules: list[Rule] = []
    referrers = bool(getattr(args, "delete_orphan_referrers", False))
    file_policy: Policy | None = None
    if getattr(args, "policy_file", None):
        file_policy = load_policy(args.policy_file)
        rules.extend(file_policy.rules)
    flag_rule = Rule(
        repositories=getattr(args, "repos", None) or (),
        keep_last=getattr(args, "keep_last", None),
        keep_within=getattr(args, "keep_within", None),
        keep_tags=getattr(args, "keep_tags", None) or (),
        delete_tags=getattr(args, "delete_tags", None) or (),
        keep_semver=getattr(args, "keep_semver", None),
        keep_latest=not getattr(args, "no_keep_latest", False),
        name="command line",
    )
    if flag_rule.has_keep_criteria or flag_rule.delete_tags:
        rules.append(flag_rule)
    elif flag_rule.repositories or not flag_rule.keep_latest:
        msg = (
            "--repos and --no-keep-latest shape the rule made by --keep-last, --keep-within, "
            "--keep-tags, --keep-semver or --delete-tags: give at least one of those"
        )
        raise ConfigError(msg)
    if file_policy is None and not rules and not referrers:
        return None
    return Policy(
        tuple(rules),
        delete_referrers_without_subject=referrers
        or (file_policy is not None and file_policy.delete_referrers_without_subject),
        delete_orphan_signature_tags=referrers
        or (file_policy is not None and file_policy.delete_orphan_signature_tags),
    )
