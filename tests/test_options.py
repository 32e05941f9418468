"""Tests of registry_gc.options: the values a run decides with (Options, Cutoffs, Removals)."""

from __future__ import annotations

import datetime

import attrs
import pytest
from registry_gc import ConfigError, Options, Removals
from registry_gc.layout import Digest, Repository, Tag
from registry_gc.options import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D1 = Digest("sha256:" + "1" * 64)
D2 = Digest("sha256:" + "2" * 64)


# -- Options and Cutoffs ---------------------------------------------------------------------


def test_the_defaults_are_the_safe_ones() -> None:
    """Nothing untagged, nothing damaged, nothing younger than an hour; no empty or bare store."""
    options = Options()
    assert options.delete_untagged is False
    assert options.grace == DEFAULT_GRACE == datetime.timedelta(hours=1)
    assert options.uploads_older_than == DEFAULT_UPLOADS_OLDER_THAN == datetime.timedelta(days=1)
    assert (options.prune_damaged, options.allow_no_manifests, options.allow_empty) == (
        False,
        False,
        False,
    )


@pytest.mark.parametrize("field", ["grace", "uploads_older_than"])
def test_a_negative_age_is_a_config_error_naming_the_field(field: str) -> None:
    """A negative grace or upload age is refused, with the field's name; zero is allowed."""
    with pytest.raises(ConfigError, match=f"{field} must not be negative"):
        Options(**{field: datetime.timedelta(seconds=-1)})
    assert getattr(Options(**{field: datetime.timedelta(0)}), field) == datetime.timedelta(0)


def test_options_are_frozen_and_keyword_only() -> None:
    """An Options value cannot change, nor be built positionally: every step reads the same one."""
    options = Options(delete_untagged=True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.delete_untagged = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        Options(True)  # type: ignore[misc]
    assert attrs.evolve(options, grace=datetime.timedelta(0)).delete_untagged is True


def test_cutoffs_count_back_from_now() -> None:
    """The grace and upload cut-offs are now minus each age, in seconds since the epoch."""
    options = Options(grace=datetime.timedelta(hours=2), uploads_older_than=datetime.timedelta(3))
    cutoffs = options.cutoffs(NOW)
    assert cutoffs.now == NOW.timestamp()
    assert cutoffs.grace == NOW.timestamp() - 2 * 3600
    assert cutoffs.uploads == NOW.timestamp() - 3 * 86400


# -- Removals --------------------------------------------------------------------------------


def test_removals_freeze_what_they_are_given() -> None:
    """The mappings are read-only copies of frozensets; empty entries are dropped."""
    tags = {Repository("app"): {Tag("v1")}, Repository("empty"): set()}
    removals = Removals(tags=tags, repositories=[Repository("gone")])
    tags[Repository("app")].add(Tag("v2"))
    assert removals.tags == {Repository("app"): frozenset({Tag("v1")})}
    assert removals.repositories == frozenset({Repository("gone")})
    with pytest.raises(TypeError):
        removals.tags[Repository("x")] = frozenset()  # type: ignore[index]


def test_removals_are_false_when_empty() -> None:
    """Removals() removes nothing and says so; any name makes it true."""
    assert not Removals()
    assert not Removals(tags={Repository("app"): set()})
    assert Removals(repositories={Repository("app")})
    assert Removals(manifests={Repository("app"): {D1}})


def test_tags_and_manifests_of_a_repository() -> None:
    """tags_of/manifests_of give a repository's removals by name, or nothing."""
    removals = Removals(tags={Repository("app"): {Tag("v1")}}, manifests={Repository("app"): {D1}})
    assert removals.tags_of("app") == {Tag("v1")}
    assert removals.manifests_of("app") == {D1}
    assert removals.tags_of("other") == frozenset()
    assert removals.manifests_of("other") == frozenset()


def test_merged_removals_are_the_union() -> None:
    """merged() removes what either removed, repository by repository."""
    a = Removals(tags={Repository("app"): {Tag("v1")}}, manifests={Repository("app"): {D1}})
    b = Removals(
        tags={Repository("app"): {Tag("v2")}, Repository("web"): {Tag("x")}},
        repositories={Repository("gone")},
        manifests={Repository("app"): {D2}},
    )
    merged = a.merged(b)
    assert merged.tags == {
        Repository("app"): {Tag("v1"), Tag("v2")},
        Repository("web"): {Tag("x")},
    }
    assert merged.repositories == {Repository("gone")}
    assert merged.manifests == {Repository("app"): {D1, D2}}
    assert a.merged(Removals()) == a
