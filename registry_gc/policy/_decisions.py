"""What a policy decided: per tag keep or delete and why, and the referrers it removes.

Values, built by :func:`~registry_gc.policy.select_tags` and read by the
collector and the report. Pure.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from ..options import Removals

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..layout import Digest, Repository, Tag
    from ..mark import Marks

__all__ = ["Action", "ManifestRemoval", "TagDecision", "TagDecisions"]


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

    def removals(self) -> Removals:
        """The tags and referrer manifests these decisions delete, as explicit removals."""
        tags: dict[Repository, set[Tag]] = {}
        for d in self.deleted():
            tags.setdefault(d.repository, set()).add(d.tag)
        manifests: dict[Repository, set[Digest]] = {}
        for m in self.manifests:
            manifests.setdefault(m.repository, set()).add(m.digest)
        return Removals(tags=tags, manifests=manifests)

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
