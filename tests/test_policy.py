"""Retention policies, pure: the file format, patterns, semver order and the decision rules.

Inventories are built by hand (repositories, tags with push times, revisions);
manifests, where a rule needs them, are parsed from JSON. Nothing touches storage.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import random
import re
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_gc import ConfigError
from registry_gc.inventory import Inventory, RepositoryEntry, TagEntry
from registry_gc.layout import Digest, Repository, Tag
from registry_gc.manifests import parse_manifest
from registry_gc.mark import Marks
from registry_gc.policy import (
    Action,
    Pattern,
    Policy,
    Rule,
    TagDecisions,
    describe_rule,
    load_policy,
    parse_policy,
    parse_semver,
    select_tags,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from registry_gc.fetch import ManifestTable

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


# -- helpers ------------------------------------------------------------------------------


def dg(seed: str) -> Digest:
    """A digest made from ``seed``."""
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


def make_inventory(
    repos: Mapping[str, Mapping[str, tuple[float, Digest | None]]],
    *,
    revisions: Mapping[str, Mapping[Digest, float]] | None = None,
) -> Inventory:
    """Repositories → tag → (age in days, digest); every tagged digest is a 30-day-old revision."""
    inv = Inventory("memory://policy-test", NOW)
    for name, tags in repos.items():
        entry = RepositoryEntry(Repository(name), has_manifests=True)
        for tag, (age, digest) in tags.items():
            entry.tags[Tag._trusted(tag)] = TagEntry(
                Tag._trusted(tag), digest, NOW.timestamp() - age * DAY, 71
            )
            if digest is not None:
                entry.revisions[digest] = NOW.timestamp() - 30 * DAY
        for digest, age in (revisions or {}).get(name, {}).items():
            entry.revisions[digest] = NOW.timestamp() - age * DAY
        inv.repositories[entry.name] = entry
    return inv


def tags_aged(**ages: float) -> dict[str, tuple[float, Digest]]:
    """Tag → (age in days, a digest of its own)."""
    return {tag: (age, dg(tag)) for tag, age in ages.items()}


def decide(
    inv: Inventory, policy: Policy, manifests: ManifestTable | None = None, **kwargs: Any
) -> TagDecisions:
    """select_tags at NOW."""
    return select_tags(inv, manifests or {}, policy, NOW, **kwargs)


def deleted(decisions: TagDecisions) -> set[str]:
    """``repo:tag`` of every tag to delete."""
    return {f"{d.repository}:{d.tag}" for d in decisions.deleted()}


def rule_of(decisions: TagDecisions, repo: str, tag: str) -> str:
    """The rule text of one decision."""
    d = decisions.get(repo, tag)
    assert d is not None
    return d.rule


def manifest_doc(subject: Digest | None = None, config_seed: str = "c") -> bytes:
    """An OCI image manifest (optionally a referrer of ``subject``)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": dg(config_seed),
            "size": 2,
        },
        "layers": [],
    }
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    return json.dumps(doc).encode()


def index_doc(children: list[Digest]) -> bytes:
    """An OCI index over ``children``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": c, "size": 1} for c in children],
        }
    ).encode()


# -- the file format -------------------------------------------------------------------------

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
    with pytest.raises(ConfigError, match=r"cannot read policy file .*nope\.yaml"):
        load_policy(tmp_path / "nope.yaml")


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


# -- patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("app/*", "app/web", True),
        ("app/*", "app/web/api", False),
        ("app/*", "app", False),
        ("app/**", "app/web/api", True),
        ("**/cache", "cache", True),
        ("**/cache", "a/b/cache", True),
        ("**/cache", "a/bcache", False),
        ("lib?", "lib1", True),
        ("lib?", "lib/", False),
        ("[ab]*", "api", True),
        ("[!ab]*", "api", False),
        ("re:team-(red|blue)/.*", "team-red/x", True),
        ("re:team-(red|blue)", "team-red/x", False),
        ("a.b", "axb", False),
    ],
)
def test_repository_patterns_are_path_globs_or_regexes(
    pattern: str, name: str, expected: bool
) -> None:
    """Globs keep ``*`` inside a component, ``**`` crosses ``/``; ``re:`` is a full-match regex."""
    assert Pattern.repository(pattern).matches(name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        (r"v\d+", "v12", True),
        (r"v\d+", "v12-rc", False),
        (r"v\d+", "xv12", False),
        ("glob:build-*", "build-17", True),
        ("glob:build-*", "rebuild-17", False),
        ("re:glob:x", "glob:x", True),
    ],
)
def test_tag_patterns_are_full_match_regexes_or_globs(
    pattern: str, name: str, expected: bool
) -> None:
    """Tag patterns match the whole tag; ``glob:`` switches to a glob."""
    assert Pattern.tag(pattern).matches(name) is expected


# -- semantic versions --------------------------------------------------------------------------

SEMVER_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0-rc.1",
    "v1.1.0",
    "1.10.0",
    "2.0.0",
]


def test_semver_orders_prereleases_as_semver_org_says() -> None:
    """The semver.org 2.0 precedence example holds, pre-releases before their release."""
    versions = [parse_semver(t) for t in SEMVER_CHAIN]
    assert all(v is not None for v in versions)
    for lower, higher in itertools.pairwise(versions):
        assert lower is not None
        assert higher is not None
        assert lower < higher, (lower, higher)
    shuffled = random.Random(7).sample(SEMVER_CHAIN, len(SEMVER_CHAIN))
    assert sorted(shuffled, key=parse_semver) == SEMVER_CHAIN


def test_semver_ignores_build_metadata_for_ordering() -> None:
    """``+build`` (or ``_build`` in a tag) does not change precedence."""
    a, b, rc = (
        parse_semver("1.0.0+20260101"),
        parse_semver("1.0.0_exp.sha.5114f85"),
        parse_semver("1.0.0-rc.1_b7"),
    )
    assert a is not None
    assert b is not None
    assert rc is not None
    assert (a.build, b.build, rc.build) == ("20260101", "exp.sha.5114f85", "b7")
    assert a.precedence == b.precedence
    assert not a < b
    assert not b < a
    assert rc < a


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "1.0",
        "1",
        "01.0.0",
        "1.02.0",
        "1.0.0-01",
        "1.0.0-",
        "1.0.0+",
        "V1.0.0",
        "1.0.0-a..b",
    ],
)
def test_non_semver_tags_do_not_parse(tag: str) -> None:
    """Anything but ``v?MAJOR.MINOR.PATCH(-pre)?(+build)?`` (no leading zeros) is not semver."""
    assert parse_semver(tag) is None


def _reference_compare(a: str, b: str) -> int:
    """semver.org §11, written out directly: -1, 0 or 1."""

    def split(v: str) -> tuple[list[int], list[str] | None]:
        v = v.lstrip("v").replace("_", "+").split("+")[0]
        core, _, pre = v.partition("-")
        return [int(x) for x in core.split(".")], (pre.split(".") if pre else None)

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if pa is None or pb is None:
        return 0 if pa == pb else (1 if pa is None else -1)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


_num = st.integers(0, 12).map(str)
_alnum = st.sampled_from(["alpha", "beta", "rc", "a1", "x-y", "RC", "0a"])
_version = st.builds(
    lambda core, pre, build: (
        ".".join(core) + (("-" + ".".join(pre)) if pre else "") + (("+" + build) if build else "")
    ),
    st.lists(_num, min_size=3, max_size=3),
    st.lists(st.one_of(_num, _alnum), max_size=3),
    st.sampled_from(["", "b1", "exp.sha"]),
)


@settings(max_examples=400, deadline=None)
@given(_version, _version)
def test_semver_precedence_matches_the_spec(a: str, b: str) -> None:
    """For random versions, precedence agrees with a direct reading of semver.org §11."""
    va, vb = parse_semver(a), parse_semver(b)
    assert va is not None
    assert vb is not None
    got = (va.precedence > vb.precedence) - (va.precedence < vb.precedence)
    assert got == _reference_compare(a, b)


# -- the rules, one at a time -------------------------------------------------------------------


def test_keep_last_keeps_the_most_recently_pushed() -> None:
    """``keep_last N`` keeps the N newest tags and deletes the rest of the repository's."""
    inv = make_inventory({"app": tags_aged(a=1, b=2, c=3, d=4, e=5)})
    decisions = decide(inv, Policy([Rule(repositories="app", keep_last=2)]))
    assert deleted(decisions) == {"app:c", "app:d", "app:e"}
    assert rule_of(decisions, "app", "a") == 'rule 1 (repositories "app"): keep_last 2'
    assert rule_of(decisions, "app", "e") == 'rule 1 (repositories "app"): not kept by keep_last 2'


def test_keep_last_breaks_ties_by_name() -> None:
    """Tags pushed at the same time are ranked by name, so the outcome does not depend on order."""
    inv = make_inventory({"app": tags_aged(b=1, a=1, c=1)})
    assert deleted(decide(inv, Policy([Rule(keep_last=2)]))) == {"app:c"}


def test_keep_within_keeps_recent_pushes() -> None:
    """``keep_within`` keeps what was pushed within the duration before now."""
    inv = make_inventory({"app": tags_aged(fresh=3, edge=7, old=8)})
    decisions = decide(inv, Policy([Rule(keep_within=datetime.timedelta(days=7))]))
    assert deleted(decisions) == {"app:old"}
    assert rule_of(decisions, "app", "edge").endswith(": keep_within 7d")


def test_keep_tags_keeps_matches_and_deletes_the_rest() -> None:
    """A rule with only ``keep_tags`` deletes every tag in scope that does not match."""
    inv = make_inventory({"app": tags_aged(**{"1.2.3": 50, "v2.0.0": 60, "main": 1, "build-7": 2})})
    decisions = decide(inv, Policy([Rule(keep_tags=[r"v?\d+\.\d+\.\d+"])]))
    assert deleted(decisions) == {"app:main", "app:build-7"}
    assert (
        rule_of(decisions, "app", "v2.0.0")
        == r'rule 1 (every repository): keep_tags "v?\d+\.\d+\.\d+"'
    )


def test_delete_tags_deletes_only_matches() -> None:
    """A rule with only ``delete_tags`` deletes the matching tags and nothing else."""
    inv = make_inventory({"app": tags_aged(**{"feature-x": 1, "feature-y": 90, "main": 90})})
    decisions = decide(inv, Policy([Rule(delete_tags=["feature-.*"])]))
    assert deleted(decisions) == {"app:feature-x", "app:feature-y"}
    assert rule_of(decisions, "app", "main") == "no rule deletes it"
    assert (
        rule_of(decisions, "app", "feature-x")
        == 'rule 1 (every repository): delete_tags "feature-.*"'
    )


def test_keep_semver_keeps_the_highest_versions_prereleases_included() -> None:
    """``keep_semver N`` keeps the N highest versions; non-semver tags are not counted."""
    names = ["1.0.0", "1.1.0", "1.10.0", "2.0.0-rc.1", "2.0.0-beta.11", "2.0.0-beta.2", "nightly"]
    inv = make_inventory({"app": {n: (i + 1, dg(n)) for i, n in enumerate(names)}})
    decisions = decide(inv, Policy([Rule(keep_semver=4)]))
    # 2.0.0's pre-releases rank above 1.10.0, which ranks above 1.1.0 (numerically).
    assert deleted(decisions) == {"app:1.0.0", "app:1.1.0", "app:nightly"}
    assert rule_of(decisions, "app", "1.10.0").endswith(": keep_semver 4")
    top2 = decide(inv, Policy([Rule(keep_semver=2)]))
    assert deleted(top2) == {
        "app:1.0.0",
        "app:1.1.0",
        "app:1.10.0",
        "app:2.0.0-beta.2",
        "app:nightly",
    }


def test_keep_semver_can_count_releases_only() -> None:
    """With ``semver_prereleases: false`` pre-releases are not kept by ``keep_semver``."""
    names = ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"]
    inv = make_inventory({"app": {n: (1, dg(n)) for n in names}})
    decisions = decide(inv, Policy([Rule(keep_semver=2, semver_prereleases=False)]))
    assert deleted(decisions) == {"app:1.0.0", "app:2.0.0-rc.1"}
    assert "(releases only)" in rule_of(decisions, "app", "1.0.0")


def test_keep_semver_ranks_equal_versions_by_push_time() -> None:
    """Versions that differ only in build metadata are equal: the newest push ranks first."""
    names = {"1.0.0_b1": 5, "1.0.0_b2": 2, "0.9.0": 1}
    inv = make_inventory({"app": tags_aged(**names)})
    assert deleted(decide(inv, Policy([Rule(keep_semver=1)]))) == {"app:1.0.0_b1", "app:0.9.0"}


def test_latest_is_kept_unless_told_otherwise() -> None:
    """``latest`` survives a rule that would delete it, unless ``keep_latest`` is false."""
    inv = make_inventory({"app": tags_aged(latest=100, v1=1)})
    kept = decide(inv, Policy([Rule(keep_last=1), Rule(delete_tags=["latest"])]))
    assert deleted(kept) == set()
    assert rule_of(kept, "app", "latest") == "rule 1 (every repository): keep_latest"
    gone = decide(inv, Policy([Rule(keep_last=1, keep_latest=False)]))
    assert deleted(gone) == {"app:latest"}


# -- combinations ------------------------------------------------------------------------------


def test_keep_criteria_combine_and_keep_wins_over_delete() -> None:
    """A tag kept by any criterion stays even when a delete pattern matches it."""
    inv = make_inventory(
        {
            "app": tags_aged(
                **{
                    "v1.0.0": 400,
                    "feature-new": 1,
                    "feature-old": 30,
                    "main": 2,
                    "b1": 40,
                    "b2": 41,
                }
            )
        }
    )
    rule = Rule(
        keep_last=1,
        keep_within=datetime.timedelta(days=7),
        keep_tags=[r"v\d+\.\d+\.\d+"],
        delete_tags=["feature-.*"],
    )
    decisions = decide(inv, Policy([rule]))
    assert deleted(decisions) == {"app:feature-old", "app:b1", "app:b2"}
    # Kept by keep_last (the newest) although delete_tags matches it.
    assert rule_of(decisions, "app", "feature-new").endswith(": keep_last 1")
    assert rule_of(decisions, "app", "main").endswith(": keep_within 7d")
    assert rule_of(decisions, "app", "feature-old").endswith(': delete_tags "feature-.*"')
    assert rule_of(decisions, "app", "b1").endswith(
        r': not kept by keep_last 1 or keep_within 7d or keep_tags "v\d+\.\d+\.\d+"'
    )


def test_a_keep_in_one_rule_beats_a_delete_in_another() -> None:
    """Keep wins across rules: one rule's delete_tags cannot remove another rule's keep."""
    inv = make_inventory({"app/web": tags_aged(**{"release-1": 90, "tmp": 90})})
    policy = Policy(
        [
            Rule(repositories="app/*", delete_tags=[".*"]),
            Rule(repositories="**", keep_tags=["release-.*"]),
        ]
    )
    decisions = decide(inv, policy)
    assert deleted(decisions) == {"app/web:tmp"}
    assert (
        rule_of(decisions, "app/web", "release-1")
        == 'rule 2 (repositories "**"): keep_tags "release-.*"'
    )


def test_repositories_no_rule_matches_are_untouched() -> None:
    """Tags of repositories no rule applies to get no decision at all."""
    inv = make_inventory(
        {
            "app/web": tags_aged(old=90),
            "lib/base": tags_aged(old=90),
            "app/web/api": tags_aged(old=90),
        }
    )
    decisions = decide(inv, Policy([Rule(repositories=["app/*"], delete_tags=["old"])]))
    assert deleted(decisions) == {"app/web:old"}
    assert decisions.get("lib/base", "old") is None
    assert decisions.get("app/web/api", "old") is None


def test_a_tag_scope_limits_what_a_rule_deletes() -> None:
    """``tags`` scopes a rule: old feature tags go, other old tags stay."""
    inv = make_inventory(
        {"app": tags_aged(**{"feature-a": 20, "feature-b": 3, "main": 300, "v1": 300})}
    )
    rule = Rule(tags=["feature-.*"], keep_within=datetime.timedelta(days=14))
    decisions = decide(inv, Policy([rule]))
    assert deleted(decisions) == {"app:feature-a"}
    assert rule_of(decisions, "app", "feature-a") == (
        'rule 1 (every repository; tags "feature-.*"): not kept by keep_within 14d'
    )


def test_keep_last_counts_within_the_tag_scope() -> None:
    """keep_last ranks only the tags the rule considers."""
    inv = make_inventory({"app": tags_aged(**{"pr-1": 5, "pr-2": 4, "pr-3": 3, "main": 1})})
    decisions = decide(inv, Policy([Rule(tags=["pr-.*"], keep_last=2)]))
    assert deleted(decisions) == {"app:pr-1"}


def test_tags_pushed_within_the_grace_period_are_kept() -> None:
    """A tag whose current link is younger than the grace period is not deleted."""
    inv = make_inventory({"app": {"new": (0.01, dg("new")), "old": (9, dg("old"))}})
    decisions = decide(inv, Policy([Rule(delete_tags=[".*"])]), grace=datetime.timedelta(hours=1))
    assert deleted(decisions) == {"app:old"}
    assert rule_of(decisions, "app", "new").startswith(
        "pushed within the grace period (1h); otherwise rule 1"
    )
    assert deleted(
        decide(inv, Policy([Rule(delete_tags=[".*"])]), grace=datetime.timedelta(0))
    ) == {
        "app:new",
        "app:old",
    }


def test_tags_with_a_broken_current_link_are_left_alone() -> None:
    """A tag with no usable current link is neither counted nor deleted."""
    inv = make_inventory({"app": {"broken": (90, None), "ok": (90, dg("ok"))}})
    decisions = decide(inv, Policy([Rule(delete_tags=[".*"])]))
    assert deleted(decisions) == {"app:ok"}
    assert "current link is missing or broken" in rule_of(decisions, "app", "broken")


def test_created_time_source_orders_by_the_image_config() -> None:
    """With ``time_source: created`` the config's created time ranks tags, not the push."""
    inv = make_inventory({"app": tags_aged(rebuilt_old=1, really_new=5)})
    created = {
        dg("rebuilt_old"): NOW.timestamp() - 100 * DAY,
        dg("really_new"): NOW.timestamp() - DAY,
    }
    by_push = decide(inv, Policy([Rule(keep_last=1)]), created=created)
    by_created = decide(inv, Policy([Rule(keep_last=1, time_source="created")]), created=created)
    assert deleted(by_push) == {"app:really_new"}
    assert deleted(by_created) == {"app:rebuilt_old"}


def test_created_time_source_falls_back_to_the_push_time() -> None:
    """A tag without a known created time is ranked by its push time."""
    inv = make_inventory({"app": tags_aged(a=1, b=5)})
    decisions = decide(
        inv,
        Policy([Rule(keep_within=datetime.timedelta(days=2), time_source="created")]),
        created={},
    )
    assert deleted(decisions) == {"app:b"}


# -- signatures and referrers ----------------------------------------------------------------------


def sig_tag(subject: Digest, suffix: str = ".sig") -> str:
    """The cosign tag for a signature of ``subject``."""
    return f"sha256-{subject.hex}{suffix}"


def test_signature_tags_follow_their_image() -> None:
    """Cosign tags are not counted by keep_last nor deleted for want of a keep."""
    img = dg("img")
    tags = {"v1": (10, img), sig_tag(img): (10, dg("sig")), sig_tag(img, ".att"): (10, dg("att"))}
    inv = make_inventory({"app": {**tags, "v2": (1, dg("v2"))}})
    decisions = decide(inv, Policy([Rule(keep_last=1)]))
    assert deleted(decisions) == {"app:v1"}
    d = decisions.get("app", sig_tag(img))
    assert d is not None
    assert d.follows == img
    assert d.rule == f"signature tag: follows the image it belongs to ({img})"


def test_delete_tags_still_applies_to_signature_tags() -> None:
    """An explicit delete pattern deletes signature tags too."""
    img = dg("img")
    inv = make_inventory({"app": {"v1": (10, img), sig_tag(img): (10, dg("sig"))}})
    decisions = decide(inv, Policy([Rule(delete_tags=[r"sha256-.*\.sig"])]))
    assert deleted(decisions) == {f"app:{sig_tag(img)}"}


def test_orphan_signature_tags_go_only_when_asked() -> None:
    """A signature tag whose image has no revision goes with the option, in any repository."""
    gone, here = dg("gone"), dg("here")
    inv = make_inventory(
        {
            "app": {
                "v1": (5, here),
                sig_tag(here): (5, dg("s1")),
                sig_tag(gone, ".sbom"): (5, dg("s2")),
            },
            "unmatched": {sig_tag(gone): (5, dg("s3"))},
        }
    )
    rules = [Rule(repositories="app", keep_last=5)]
    assert deleted(decide(inv, Policy(rules))) == set()
    decisions = decide(inv, Policy(rules, delete_orphan_signature_tags=True))
    assert deleted(decisions) == {f"app:{sig_tag(gone, '.sbom')}", f"unmatched:{sig_tag(gone)}"}
    assert rule_of(decisions, "unmatched", sig_tag(gone)) == (
        f"delete_orphan_signature_tags: the image it belongs to ({gone}) is in no repository "
        "of the store"
    )


def test_signature_tags_in_another_repository_follow_their_image() -> None:
    """COSIGN_REPOSITORY: signatures of app's image stored in sigs are no orphans, and say where."""
    img = dg("img")
    inv = make_inventory(
        {
            "app": {"v1": (5, img)},
            "sigs": {sig_tag(img): (5, dg("s1")), sig_tag(img, ".att"): (5, dg("s2"))},
        }
    )
    decisions = decide(inv, Policy([], delete_orphan_signature_tags=True))
    assert deleted(decisions) == set()
    assert rule_of(decisions, "sigs", sig_tag(img)) == (
        f"signature tag: follows the image it belongs to ({img}, in app)"
    )
    marks = Marks(live={Repository("app"): {img}, Repository("sigs"): {dg("s1"), dg("s2")}})
    assert decisions.after_mark(marks) is None, "the image stays in app: its signatures stay"
    gone = decisions.after_mark(Marks(live={Repository("sigs"): {dg("s1"), dg("s2")}}))
    assert gone is not None
    assert deleted(gone) == {f"sigs:{sig_tag(img)}", f"sigs:{sig_tag(img, '.att')}"}


def test_a_kept_signature_tag_is_never_deleted_as_an_orphan() -> None:
    """Keep wins over the orphan option too."""
    gone = dg("gone")
    inv = make_inventory({"app": {sig_tag(gone): (5, dg("s"))}})
    policy = Policy([Rule(keep_tags=["sha256-.*"])], delete_orphan_signature_tags=True)
    assert deleted(decide(inv, policy)) == set()


def test_a_bare_sha256_tag_counts_only_as_a_referrers_index() -> None:
    """``sha256-<hex>`` is a signature tag only when it is an index of referrers of that image."""
    img, other = dg("img"), dg("other")
    ref1 = parse_manifest(manifest_doc(subject=img, config_seed="r1"))
    plain = parse_manifest(manifest_doc(config_seed="p"))
    d_ref1, d_plain = dg("ref1"), dg("plain")
    refs_index, plain_index = dg("refs-index"), dg("plain-index")
    manifests: ManifestTable = {
        d_ref1: ref1,
        d_plain: plain,
        refs_index: parse_manifest(index_doc([d_ref1])),
        plain_index: parse_manifest(index_doc([d_plain])),
    }
    inv = make_inventory(
        {"app": {f"sha256-{img.hex}": (50, refs_index), f"sha256-{other.hex}": (50, plain_index)}}
    )
    decisions = decide(inv, Policy([Rule(keep_last=1)]), manifests)
    # The plain one is an ordinary tag (the only one, so keep_last keeps it); the other follows img.
    referrers_tag = decisions.get("app", f"sha256-{img.hex}")
    assert referrers_tag is not None
    assert referrers_tag.follows == img
    assert rule_of(decisions, "app", f"sha256-{other.hex}").endswith(": keep_last 1")


def test_referrers_whose_subject_is_gone_are_removed_when_asked() -> None:
    """delete_referrers_without_subject removes orphan referrers (chains too) and their tags."""
    gone, here = dg("gone"), dg("here")
    sbom, sig_of_sbom, fine, fresh = dg("sbom"), dg("sig-of-sbom"), dg("fine"), dg("fresh")
    manifests: ManifestTable = {
        sbom: parse_manifest(manifest_doc(subject=gone, config_seed="1")),
        sig_of_sbom: parse_manifest(manifest_doc(subject=sbom, config_seed="2")),
        fine: parse_manifest(manifest_doc(subject=here, config_seed="3")),
        fresh: parse_manifest(manifest_doc(subject=gone, config_seed="4")),
    }
    inv = make_inventory(
        {"app": {"v1": (5, here), "sbom-tag": (5, sbom)}},
        revisions={"app": {sbom: 5, sig_of_sbom: 5, fine: 5, fresh: 0.001}},
    )
    assert decide(inv, Policy(), manifests).manifests == ()
    decisions = decide(inv, Policy(delete_referrers_without_subject=True), manifests)
    assert {(m.digest, m.subject) for m in decisions.manifests} == {
        (sbom, gone),
        (sig_of_sbom, sbom),
    }
    assert deleted(decisions) == {"app:sbom-tag"}
    assert decisions.removed_manifests() == {Repository("app"): {sbom, sig_of_sbom}}


def test_a_referrer_whose_subject_is_in_another_repository_is_no_orphan() -> None:
    """COSIGN_REPOSITORY: a referrer in a signatures repository keeps while its subject exists."""
    image, sig, lost = dg("image"), dg("sig"), dg("lost")
    orphan = dg("orphan")
    manifests: ManifestTable = {
        sig: parse_manifest(manifest_doc(subject=image, config_seed="1")),
        orphan: parse_manifest(manifest_doc(subject=lost, config_seed="2")),
    }
    inv = make_inventory(
        {"app": {"v1": (5, image)}, "app-sigs": {}},
        revisions={"app-sigs": {sig: 5, orphan: 5}},
    )
    decisions = decide(inv, Policy(delete_referrers_without_subject=True), manifests)
    assert {(m.repository, m.digest) for m in decisions.manifests} == {("app-sigs", orphan)}
    assert decisions.manifests[0].rule.endswith(
        f"its subject {lost} is in no repository of the store"
    )


def test_a_referrer_with_a_kept_tag_is_not_removed() -> None:
    """A referrer some rule keeps a tag of stays, though its subject is gone."""
    gone, sbom = dg("gone"), dg("sbom")
    manifests: ManifestTable = {sbom: parse_manifest(manifest_doc(subject=gone))}
    inv = make_inventory({"app": {"keep-me": (5, sbom)}})
    policy = Policy([Rule(keep_tags=["keep-.*"])], delete_referrers_without_subject=True)
    decisions = decide(inv, policy, manifests)
    assert decisions.manifests == ()
    assert deleted(decisions) == set()


def test_after_mark_deletes_signature_tags_of_images_swept_in_this_run() -> None:
    """Signature tags whose image is not live after marking are deleted by after_mark."""
    img, other = dg("img"), dg("other")
    inv = make_inventory(
        {"app": {"v1": (90, img), sig_tag(img): (90, dg("s")), sig_tag(other): (90, dg("t"))}}
    )
    inv.repository("app").revisions[other] = NOW.timestamp() - 30 * DAY
    policy = Policy([Rule(delete_tags=["v1"])], delete_orphan_signature_tags=True)
    decisions = decide(inv, policy)
    assert deleted(decisions) == {"app:v1"}
    marks = Marks(live={Repository("app"): {dg("s"), dg("t"), other}})
    refined = decisions.after_mark(marks)
    assert refined is not None
    assert deleted(refined) == {"app:v1", f"app:{sig_tag(img)}"}
    assert rule_of(refined, "app", sig_tag(img)) == (
        f"delete_orphan_signature_tags: the image it belongs to ({img}) is deleted in this run "
        "from every repository that held it"
    )
    assert refined.after_mark(marks) is None
    without = decide(inv, Policy(policy.rules))
    assert without.after_mark(marks) is None


def test_removals_merge_with_explicit_ones() -> None:
    """removed_tags() merges policy deletions with removals the caller already had."""
    inv = make_inventory({"app": tags_aged(a=90, b=90)})
    decisions = decide(inv, Policy([Rule(delete_tags=["a"])]))
    extra = {Repository("app"): [Tag("b")], Repository("x"): [Tag("c")]}
    assert decisions.removed_tags(extra) == {Repository("app"): {"a", "b"}, Repository("x"): {"c"}}


def test_rule_labels_name_the_rule_and_its_scope() -> None:
    """describe_rule gives the number, the name and the patterns."""
    assert (
        describe_rule(1, Rule(repositories="app/*", keep_last=1)) == 'rule 1 (repositories "app/*")'
    )
    assert describe_rule(2, Rule(keep_last=1, name="ci", tags=["pr-.*"])) == (
        'rule 2 "ci" (every repository; tags "pr-.*")'
    )


def test_rules_validate_their_values() -> None:
    """Rules built in Python are validated like the file's."""
    with pytest.raises(ValueError, match="keep_last must be a whole number"):
        Rule(keep_last=0)
    with pytest.raises(ValueError, match="keep_within must be a duration longer than 0"):
        Rule(keep_within=datetime.timedelta(0))
    with pytest.raises(ValueError, match="time_source must be 'push' or 'created'"):
        Rule(keep_last=1, time_source="build")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid regular expression"):
        Rule(keep_tags=["("])


# -- the property ------------------------------------------------------------------------------

_TAG_NAMES = st.sampled_from(
    [
        "latest", "main", "v1.0.0", "1.0.0", "1.0.0-rc.1", "1.1.0", "2.0.0-beta.2", "2.0.0",
        "build-1", "build-2", "build-10", "feature-a", "feature-b", "release-1", "stable",
        "sha256-" + "a" * 64 + ".sig", "sha256-" + "b" * 64 + ".att",
    ]
)  # fmt: skip
_TAG_REGEXES = st.sampled_from(
    ["v.*", r"\d+\.\d+\.\d+", "build-.*", "feature-.*", "latest", ".*", "stable|main"]
)
_REPO_PATTERNS = st.sampled_from(["app", "app/*", "lib/**", "re:.*b.*", "**"])
_SIGNATURE = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)")


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[Inventory, Policy]:
    repos = draw(
        st.lists(
            st.sampled_from(["app", "app/web", "lib/base", "lib/x/y"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    spec: dict[str, dict[str, tuple[float, Digest | None]]] = {}
    for repo in repos:
        names = draw(st.lists(_TAG_NAMES, min_size=1, max_size=10, unique=True))
        ages = draw(
            st.lists(st.integers(1, 10_000), min_size=len(names), max_size=len(names), unique=True)
        )
        shared = draw(st.booleans())
        spec[repo] = {
            n: (age / 100, dg("shared" if shared and i % 2 else f"{repo}:{n}"))
            for i, (n, age) in enumerate(zip(names, ages, strict=True))
        }
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        rule = Rule(
            repositories=draw(st.lists(_REPO_PATTERNS, max_size=2)),
            tags=draw(st.lists(_TAG_REGEXES, max_size=1)),
            keep_last=draw(st.none() | st.integers(1, 4)),
            keep_within=draw(
                st.none() | st.integers(1, 60).map(lambda d: datetime.timedelta(days=d))
            ),
            keep_tags=draw(st.lists(_TAG_REGEXES, max_size=2)),
            keep_semver=draw(st.none() | st.integers(1, 3)),
            semver_prereleases=draw(st.booleans()),
            delete_tags=draw(st.lists(_TAG_REGEXES, max_size=2)),
            keep_latest=draw(st.booleans()),
        )
        if rule.has_keep_criteria or rule.delete_tags:
            rules.append(rule)
    return make_inventory(spec), Policy(rules, delete_orphan_signature_tags=draw(st.booleans()))


def _kept_by_some_rule(inv: Inventory, policy: Policy, repo: str, tag: str) -> bool:
    """Whether a keep criterion of a rule that applies matches ``tag``, computed independently."""
    entry = inv.repository(repo)
    t = entry.tags[Tag._trusted(tag)]
    assert t.current_mtime is not None
    for rule in policy.rules:
        if not rule.applies_to(repo) or not rule.in_scope(tag):
            continue
        if any(p.matches(tag) for p in rule.keep_tags) or (rule.keep_latest and tag == "latest"):
            return True
        if (
            rule.keep_within
            and NOW.timestamp() - t.current_mtime <= rule.keep_within.total_seconds()
        ):
            return True
        ranked = [
            x
            for x in entry.tags.values()
            if rule.in_scope(x.name) and not _SIGNATURE.fullmatch(x.name)
        ]
        if tag not in {x.name for x in ranked}:
            continue
        if rule.keep_last and tag in [
            x.name for x in sorted(ranked, key=lambda x: -(x.current_mtime or 0))[: rule.keep_last]
        ]:
            return True
        if rule.keep_semver:
            versions = sorted(
                (
                    (v.precedence, x.current_mtime or 0, x.name)
                    for x in ranked
                    if (v := parse_semver(x.name)) is not None
                    and (rule.semver_prereleases or not v.is_prerelease)
                ),
                reverse=True,
            )
            if tag in [name for *_, name in versions[: rule.keep_semver]]:
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(_scenarios())
def test_a_tag_matched_by_a_keep_rule_is_never_deleted(scenario: tuple[Inventory, Policy]) -> None:
    """Whatever the rules and tags, a tag that any applicable keep criterion matches is kept."""
    inv, policy = scenario
    decisions = decide(inv, policy, grace=datetime.timedelta(0))
    for repo in inv.repositories.values():
        matched = bool(policy.rules_for(repo.name))
        for tag in repo.tags:
            d = decisions.get(repo.name, tag)
            if _kept_by_some_rule(inv, policy, repo.name, tag):
                assert d is not None
                assert d.action is Action.KEEP, (repo.name, tag, d.rule)
            if not matched and not _SIGNATURE.fullmatch(tag):
                assert d is None, (repo.name, tag)
            if d is not None and d.deleted:
                assert d.rule.startswith(("rule ", "delete_orphan_signature_tags")), d.rule
