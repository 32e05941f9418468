"""What a run decides with: its options, the cut-offs they give, and explicit removals.

One :class:`Options` value travels from the caller through marking and
planning (and the commands that show what a run would do: ``du``), so that
every step reads the same decisions; :class:`Removals` carries what ``rm``
and retention policies remove by name. Both are frozen values.

>>> import datetime
>>> opts = Options(delete_untagged=True, grace=datetime.timedelta(hours=2))
>>> now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
>>> opts.cutoffs(now).grace == (now - datetime.timedelta(hours=2)).timestamp()
True
"""

from __future__ import annotations

import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._errors import ConfigError
from .layout import Repository

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from .layout import Digest, Tag

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_UPLOADS_OLDER_THAN",
    "Cutoffs",
    "Options",
    "Removals",
]

#: Nothing younger than this is deleted (blobs, links, uploads).
DEFAULT_GRACE: Final = datetime.timedelta(hours=1)
#: Uploads that started longer ago than this (and are idle) are removed.
DEFAULT_UPLOADS_OLDER_THAN: Final = datetime.timedelta(hours=24)


def _not_negative(
    _inst: object, attribute: attrs.Attribute[Any], value: datetime.timedelta
) -> None:
    if value < datetime.timedelta(0):
        msg = f"{attribute.name} must not be negative, not {value}"
        raise ConfigError(msg)


@attrs.frozen(kw_only=True)
class Options:
    """How a run decides what is garbage. Every field has the safe default.

    - ``delete_untagged``: manifests no tag reaches are garbage (the registry's
      ``-m``); children of live indexes and referrers of live images stay.
    - ``grace``: nothing modified more recently than this is deleted.
    - ``uploads_older_than``: uploads started longer ago than this (and idle
      for the grace) are removed.
    - ``prune_damaged``: collect repositories that cannot be fully read as if
      what cannot be read were absent, instead of keeping them whole.
    - ``allow_no_manifests``: sweep a store that holds blobs but no manifest.
    - ``allow_empty``: succeed on a root that holds no registry.
    """

    delete_untagged: bool = False
    grace: datetime.timedelta = attrs.field(default=DEFAULT_GRACE, validator=_not_negative)
    uploads_older_than: datetime.timedelta = attrs.field(
        default=DEFAULT_UPLOADS_OLDER_THAN, validator=_not_negative
    )
    prune_damaged: bool = False
    allow_no_manifests: bool = False
    allow_empty: bool = False

    def cutoffs(self, now: datetime.datetime) -> Cutoffs:
        """The timestamps these options give, counting back from ``now`` (aware)."""
        return Cutoffs(
            now=now.timestamp(),
            grace=(now - self.grace).timestamp(),
            uploads=(now - self.uploads_older_than).timestamp(),
        )


@attrs.frozen
class Cutoffs:
    """Seconds since the epoch: the reference time, and what is old enough to go."""

    #: when the run counts from (the start of its listing, unless told otherwise)
    now: float
    #: objects modified after this are inside the grace period
    grace: float
    #: uploads started after this are not stale yet
    uploads: float


_EMPTY: Final[Mapping[Any, frozenset[Any]]] = MappingProxyType({})


def _freeze(value: Mapping[Repository, Collection[Any]] | None) -> Mapping[Any, frozenset[Any]]:
    if not value:
        return _EMPTY
    return MappingProxyType({k: frozenset(v) for k, v in value.items() if v})


def _set(value: Collection[Repository]) -> frozenset[Repository]:
    return frozenset(value)


@attrs.frozen
class Removals:
    """What is removed by name (``rm``, retention policies), whatever its age.

    Removed repositories mark nothing; removed tags are no roots; removed
    manifests are no roots, and neither are the tags on them (as when
    distribution deletes a manifest by digest).
    """

    tags: Mapping[Repository, frozenset[Tag]] = attrs.field(default=_EMPTY, converter=_freeze)
    repositories: frozenset[Repository] = attrs.field(default=frozenset(), converter=_set)
    manifests: Mapping[Repository, frozenset[Digest]] = attrs.field(
        default=_EMPTY, converter=_freeze
    )

    def __bool__(self) -> bool:
        return bool(self.tags or self.repositories or self.manifests)

    def tags_of(self, repository: str) -> frozenset[Tag]:
        """The tags removed by name in ``repository``."""
        return self.tags.get(Repository._trusted(repository), frozenset())  # noqa: SLF001

    def manifests_of(self, repository: str) -> frozenset[Digest]:
        """The manifests removed in ``repository``."""
        return self.manifests.get(Repository._trusted(repository), frozenset())  # noqa: SLF001

    def merged(self, other: Removals) -> Removals:
        """Both removals at once."""

        def union(
            a: Mapping[Repository, frozenset[Any]], b: Mapping[Repository, frozenset[Any]]
        ) -> dict[Repository, frozenset[Any]]:
            return {k: a.get(k, frozenset()) | b.get(k, frozenset()) for k in {*a, *b}}

        return Removals(
            union(self.tags, other.tags),
            self.repositories | other.repositories,
            union(self.manifests, other.manifests),
        )
