"""Tag selection: a policy applied to an inventory, tag by tag, naming the rule that decided.

Pure: the inventory, the manifests already read and (for ``time_source:
created``) the images' created times come in, :class:`~registry_gc.policy.TagDecisions`
go out. Nothing here reads storage: the collector reads the created times
first (:func:`~registry_gc.created.read_created_times`).
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Final

import attrs

from ..durations import format_duration
from ..fetch import is_manifest
from ..layout import Digest, Repository, Tag, tag_name_problem
from ..manifests import Manifest, ManifestKind
from ._decisions import Action, ManifestRemoval, TagDecision, TagDecisions
from ._model import describe_rule
from ._semver import parse_semver

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..fetch import ManifestTable
    from ..inventory import Inventory, RepositoryEntry, TagEntry
    from ._model import Policy, Rule

__all__ = ["select_tags"]

#: The grace period :func:`select_tags` assumes when not told (the collector's default).
_DEFAULT_GRACE: Final = datetime.timedelta(hours=1)


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
    digests to the image config's ``created`` time, for rules with
    ``time_source: created`` (the collector reads them with
    :func:`~registry_gc.created.read_created_times`); a tag without one falls
    back to its push time.
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
    """Record, on each tag's state, what ``rule`` says about it.

    The keep criteria run in a fixed order (``keep_last``, ``keep_within``,
    ``keep_tags``, ``keep_semver``, ``keep_latest``): a tag's first reason to
    stay is the one its decision shows.
    """
    scope = [s for s in states if rule.in_scope(s.entry.name)]
    run = _RuleRun(label, rule, created, scope)
    run.keep_last()
    run.keep_within(now)
    run.keep_tags()
    run.keep_semver()
    run.keep_latest()
    run.delete_tags()
    run.delete_unkept()


@attrs.define
class _RuleRun:
    """One rule over the tags in its scope."""

    label: str
    rule: Rule
    created: Mapping[Digest, float]
    scope: list[_TagState]
    #: the tags a keep criterion counts: signature tags are not counted
    ranked: list[_TagState] = attrs.field(init=False)
    kept: set[Tag] = attrs.Factory(set)

    def __attrs_post_init__(self) -> None:
        self.ranked = [s for s in self.scope if s.signs is None]

    def when(self, s: _TagState) -> float:
        if self.rule.time_source == "created" and s.entry.current is not None:
            return self.created.get(s.entry.current, s.pushed)
        return s.pushed

    def keep(self, s: _TagState, why: str) -> None:
        self.kept.add(s.entry.name)
        s.keep.append(f"{self.label}: {why}")

    def keep_last(self) -> None:
        n = self.rule.keep_last
        if n is not None:
            newest = sorted(self.ranked, key=lambda s: (-self.when(s), s.entry.name))
            for s in newest[:n]:
                self.keep(s, f"keep_last {n}")

    def keep_within(self, now: float) -> None:
        within = self.rule.keep_within
        if within is not None:
            since = now - within.total_seconds()
            for s in self.scope:
                if self.when(s) >= since:
                    self.keep(s, f"keep_within {format_duration(within)}")

    def keep_tags(self) -> None:
        for s in self.scope:
            p = next((p for p in self.rule.keep_tags if p.matches(s.entry.name)), None)
            if p is not None:
                self.keep(s, f'keep_tags "{p}"')

    def keep_semver(self) -> None:
        n = self.rule.keep_semver
        if n is None:
            return
        versions = [
            (v, s)
            for s in self.ranked
            if (v := parse_semver(s.entry.name)) is not None
            and (self.rule.semver_prereleases or not v.is_prerelease)
        ]
        # Highest first; equal precedence (build metadata): the most recent first.
        versions.sort(key=lambda vs: (vs[0].precedence, self.when(vs[1]), vs[1].entry.name))
        for _, s in versions[::-1][:n]:
            self.keep(s, f"keep_semver {n}")

    def keep_latest(self) -> None:
        if self.rule.keep_latest:
            for s in self.scope:
                if s.entry.name == "latest":
                    self.keep(s, "keep_latest")

    def delete_tags(self) -> None:
        for s in self.scope:
            p = next((p for p in self.rule.delete_tags if p.matches(s.entry.name)), None)
            if p is not None:
                s.delete.append(f'{self.label}: delete_tags "{p}"')

    def delete_unkept(self) -> None:
        if self.rule.has_keep_criteria:
            unkept = f"{self.label}: not kept by " + " or ".join(self.rule.criteria())
            for s in self.ranked:
                if s.entry.name not in self.kept:
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
