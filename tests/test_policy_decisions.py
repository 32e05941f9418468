"""Tag decisions: lookups, merging removals with the caller's, and signature tags after the mark.

Inventories are built by hand (see tests.rigs.inventories); nothing touches storage.
"""

from __future__ import annotations

from registry_gc import Removals
from registry_gc.layout import Repository, Tag
from registry_gc.mark import Marks
from registry_gc.policy import Action, ManifestRemoval, Policy, Rule, TagDecision, TagDecisions

from tests.rigs.inventories import (
    DAY,
    NOW,
    decide,
    deleted,
    dg,
    make_inventory,
    rule_of,
    sig_tag,
    tags_aged,
)


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
    """removals() merged with removals the caller already had holds both."""
    inv = make_inventory({"app": tags_aged(a=90, b=90)})
    decisions = decide(inv, Policy([Rule(delete_tags=["a"])]))
    extra = Removals(tags={Repository("app"): [Tag("b")], Repository("x"): [Tag("c")]})
    merged = decisions.removals().merged(extra)
    assert merged.tags == {Repository("app"): {"a", "b"}, Repository("x"): {"c"}}


def test_decisions_split_into_kept_and_deleted_and_look_up_by_tag() -> None:
    """deleted()/kept() keep the order; get() finds a decision by repository and tag."""
    app, lib = Repository("app"), Repository("lib")
    a = TagDecision(app, Tag("a"), dg("a"), Action.DELETE, 'rule 1: delete_tags "a"', 1.0)
    b = TagDecision(app, Tag("b"), dg("b"), Action.KEEP, "no rule deletes it", 2.0)
    c = TagDecision(lib, Tag("a"), None, Action.KEEP, "left alone: its current link is missing")
    removal = ManifestRemoval(lib, dg("ref"), dg("gone"), "delete_referrers_without_subject")
    decisions = TagDecisions((a, b, c), (removal,))
    assert list(decisions.deleted()) == [a]
    assert list(decisions.kept()) == [b, c]
    assert [a.deleted, b.deleted] == [True, False]
    assert decisions.get("app", "b") is b
    assert decisions.get("lib", "a") is c
    assert decisions.get("lib", "b") is None
    assert decisions.removals() == Removals(tags={app: {"a"}}, manifests={lib: {dg("ref")}})
