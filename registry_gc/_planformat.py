"""The plan file format's values: header, entry, footer, path record.

See :mod:`registry_gc.planfile`, which re-exports them.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._render import iso_time
from .plan import Category

if TYPE_CHECKING:
    from .inventory import Inventory
    from .options import Options, Removals
    from .plan import Reason

__all__ = [
    "DROPPED",
    "SCHEMA",
    "SCHEMA_FAMILY",
    "PathRecord",
    "PlanEntry",
    "PlanFooter",
    "PlanHeader",
    "identity_of",
]

#: The format of plan files; bumped on any incompatible change.
SCHEMA: Final = "registry-gc/plan/v1"
SCHEMA_FAMILY: Final = "registry-gc/plan/"
#: A status a ``--deletions-out`` line may carry besides :class:`~registry_gc.Status`:
#: ``apply`` dropped the entry (see :attr:`PlanEntry.dropped`).
DROPPED: Final = "dropped"


@attrs.frozen
class PathRecord:
    """One storage path of a deletion, with its size and modification time as listed.

    ``None`` where the listing does not say (the size of a link, a time the
    storage does not give).
    """

    path: str
    size: int | None = None
    mtime: datetime.datetime | None = None

    def to_json(self) -> list[Any]:
        """``[path, size, mtime]`` as the file holds it."""
        return [self.path, self.size, None if self.mtime is None else iso_time(self.mtime)]


@attrs.frozen(kw_only=True)
class PlanHeader:
    """The first line of a plan file: where, when and with what the plan was made."""

    #: the backend URL of the registry root (never with credentials)
    root: str
    #: when the file was written
    created: datetime.datetime
    #: when the listing the plan rests on started (its age counts from here)
    listing_started: datetime.datetime
    #: ``registry-gc <version>``
    tool: str
    options: Options
    #: what was removed by name (``rm``, a retention policy): apply plans with the same
    removals: Removals
    #: whether the run that wrote the file deleted nothing
    dry_run: bool

    def age(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        """How long ago the listing started (at ``now``, default now)."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now - self.listing_started

    def to_dict(self) -> dict[str, Any]:
        """The header line's JSON object."""
        o, r = self.options, self.removals
        return {
            "schema": SCHEMA,
            "root": self.root,
            "created": iso_time(self.created),
            "listing_started": iso_time(self.listing_started),
            "tool": self.tool,
            "options": {
                "delete_untagged": o.delete_untagged,
                "grace": o.grace.total_seconds(),
                "uploads_older_than": o.uploads_older_than.total_seconds(),
                "prune_damaged": o.prune_damaged,
                "allow_no_manifests": o.allow_no_manifests,
                "allow_empty": o.allow_empty,
            },
            "removals": {
                "tags": {k: sorted(v) for k, v in sorted(r.tags.items())},
                "manifests": {k: sorted(v) for k, v in sorted(r.manifests.items())},
                "repositories": sorted(r.repositories),
            },
            "dry_run": self.dry_run,
        }

    @classmethod
    def of(
        cls,
        inventory: Inventory,
        options: Options,
        removals: Removals,
        *,
        dry_run: bool,
        created: datetime.datetime | None = None,
    ) -> PlanHeader:
        """The header of a plan made from ``inventory`` with ``options`` and ``removals``."""
        from . import __version__  # noqa: PLC0415 - the package imports this module

        return cls(
            root=inventory.url,
            created=created or datetime.datetime.now(datetime.timezone.utc),
            listing_started=inventory.started,
            tool=f"registry-gc {__version__}",
            options=options,
            removals=removals,
            dry_run=dry_run,
        )


@attrs.frozen(kw_only=True)
class PlanEntry:
    """One deletion line of a plan file, as read."""

    #: its line number in the file (the header is line 1)
    line: int
    category: Category
    reason: Reason
    repository: str | None
    digest: str | None
    #: a tag name or an upload id
    name: str | None
    size: int
    paths: tuple[PathRecord, ...]
    #: open multipart uploads to abort: (key, upload id)
    multipart: tuple[tuple[str, str], ...] = ()
    #: what a run did with it (``--deletions-out``); ``None`` in a plan
    status: str | None = None
    error: str | None = None
    #: why ``apply`` did not execute it (with status ``dropped``)
    dropped: str | None = None

    @property
    def identity(self) -> tuple[str, str | None, str | None, str | None]:
        """What the deletion is about, whatever its paths: how a fresh plan's deletion is found.

        A tag by its name (its digest may have moved), an upload by its id, a
        repository by its name; everything else by repository and digest (and
        tag, for tag history).
        """
        return identity_of(self.category, self.repository, self.digest, self.name)


def identity_of(
    category: Category, repository: str | None, digest: str | None, name: str | None
) -> tuple[str, str | None, str | None, str | None]:
    """:attr:`PlanEntry.identity` of a deletion given by its fields."""
    if category in {Category.TAG, Category.UPLOAD, Category.REPOSITORY}:
        digest = None
    return (category.value, repository, digest, name)


@attrs.frozen
class PlanFooter:
    """The last line of a plan file: how many deletions it lists, and their bytes."""

    deletions: int
    bytes: int
