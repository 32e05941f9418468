"""Tag selection: each rule, their combinations, signature tags and referrers, and a property.

Inventories are built by hand (repositories, tags with push times, revisions);
manifests, where a rule needs them, are parsed from JSON. Nothing touches storage.
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st
from registry_gc.layout import Digest, Repository, Tag
from registry_gc.manifests import parse_manifest
from registry_gc.mark import Marks
from registry_gc.policy import Action, Policy, Rule, parse_semver

from tests.rigs.inventories import (
    DAY,
    NOW,
    decide,
    deleted,
    dg,
    index_doc,
    make_inventory,
    manifest_doc,
    rule_of,
    sig_tag,
    tags_aged,
)

if TYPE_CHECKING:
    from registry_gc.fetch import ManifestTable
    from registry_gc.inventory import Inventory


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
    assert decisions.removals().manifests == {Repository("app"): {sbom, sig_of_sbom}}


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
