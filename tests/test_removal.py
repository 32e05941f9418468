"""Tests of registry_gc.removal: rm's names, resolved against the store, and what they remove.

The command line's ``rm`` (flags, output, exit codes) is tested in ``test_cli_commands.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from registry_gc import (
    InvalidReferenceError,
    NotFoundError,
    Options,
    RefusedError,
)
from registry_gc.layout import Digest, Repository, RevisionLink, Tag
from registry_gc.plan import Category
from registry_gc.removal import (
    ImageRef,
    explicit_plan,
    manifests_to_remove,
    parse_image,
    remove,
    resolve_removal,
)

from tests.rigs.builder import RegistryBuilder
from tests.rigs.stores import ZERO, R, surveyed

if TYPE_CHECKING:
    from pathlib import Path


# -- parse_image -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", ImageRef(Repository("alpine"))),
        ("library/alpine:3.20", ImageRef(Repository("library/alpine"), Tag("3.20"))),
        ("a/b/c:v1.0_x-y", ImageRef(Repository("a/b/c"), Tag("v1.0_x-y"))),
        (
            "a@sha256:" + "f" * 64,
            ImageRef(Repository("a"), None, Digest("sha256:" + "f" * 64)),
        ),
    ],
)
def test_parse_image_accepts_distribution_names(text: str, expected: ImageRef) -> None:
    """Repositories, tags and digests in distribution's grammar parse, and print back."""
    assert parse_image(text) == expected
    assert str(parse_image(text)) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        ("app tag", "white space"),
        ("app\x00", "NUL byte"),
        ("a\\b", "backslash"),
        ("a%2Fb", "percent-encoded"),
        ("/library/alpine", "absolute path"),
        ("~/x", "absolute path"),
        ("library/../etc", "'.' and '..'"),
        ("a//b", "empty name component"),
        ("a/", "empty name component"),
        ("x:5000/app", "registry address"),
        ("app:v1@sha256:" + "a" * 64, "either a tag or a digest"),
        ("Library/Alpine", "invalid repository name"),
        ("app:-bad", "invalid tag"),
        ("app@sha256:abc", "invalid digest"),
    ],
)
def test_parse_image_names_what_is_wrong(text: str, why: str) -> None:
    """Each way out of distribution's grammar is an InvalidReferenceError that says which."""
    with pytest.raises(InvalidReferenceError, match="invalid image") as info:
        parse_image(text)
    assert why in str(info.value)


def test_image_ref_kind() -> None:
    """An ImageRef is a repository, a tag or a manifest, as it was written."""
    assert parse_image("a").kind == "repository"
    assert parse_image("a:t").kind == "tag"
    assert parse_image("a@sha256:" + "f" * 64).kind == "manifest"


# -- resolve_removal -------------------------------------------------------------------------


def test_resolve_removal_names_every_missing_image(tmp_path: Path) -> None:
    """Every name that is not in the store is listed in one NotFoundError; nested ones hinted."""
    b = RegistryBuilder()
    b.image("team/app", "v1")
    inventory, _ = surveyed(b, tmp_path)
    refs = [parse_image(t) for t in ("team/app:v2", "team", "team/app@sha256:" + "0" * 64)]
    with pytest.raises(NotFoundError, match="nothing was deleted") as info:
        resolve_removal(inventory, refs)
    message = str(info.value)
    assert message.startswith("3 images not found: ")
    assert "tag team/app:v2 does not exist (tags of team/app: v1)" in message
    assert "repository 'team' does not exist (it only holds the repositories team/app" in message
    assert "is not a revision of repository team/app" in message


def test_resolve_removal_untags_a_removed_manifest_and_a_repository_subsumes_the_rest(
    tmp_path: Path,
) -> None:
    """A digest takes the tags on it; a removed repository drops its own tags and manifests."""
    b = RegistryBuilder()
    d = b.image("app", "v1")
    b.tag("app", "stable", d)
    b.image("app", "v2")
    other = b.image("other", "t")
    inventory, _ = surveyed(b, tmp_path)
    refs = [parse_image(t) for t in (f"app@{d}", "app:v2", f"other@{other}", "other")]
    removal = resolve_removal(inventory, refs)
    app, other_repo = Repository("app"), Repository("other")
    assert removal.manifests == {app: {d}}
    assert removal.tags == {app: {Tag("v1"), Tag("stable"), Tag("v2")}}
    assert removal.named_tags == {app: {Tag("v2")}}
    assert removal.repositories == {other_repo}
    assert removal.to_dict()["tags"] == {"app": ["stable", "v1", "v2"]}


# -- manifests_to_remove ---------------------------------------------------------------------


def test_manifests_to_remove_follows_history_children_and_referrers(tmp_path: Path) -> None:
    """A removed tag takes its current manifest, its history, their children and referrers."""
    b = RegistryBuilder()
    older = b.image("m", "t")
    top = b.multiarch("m", "t")
    sig = b.referrer("m", top)
    kept = b.image("m", "keep")
    inventory, manifests = surveyed(b, tmp_path)
    removal = resolve_removal(inventory, [parse_image("m:t")])
    gone = manifests_to_remove(inventory, manifests, removal)
    assert gone == {Repository("m"): {older, top, sig, *b.contents[top]["children"]}}
    assert kept not in gone[Repository("m")]


def test_manifests_to_remove_spares_what_a_surviving_tag_points_at(tmp_path: Path) -> None:
    """A child another tag points at is not removed with the index that lists it."""
    b = RegistryBuilder()
    shared = b.image("m", "child")
    own = b.image("m", None)
    index = b.index("m", "a", [shared, own])
    inventory, manifests = surveyed(b, tmp_path)
    removal = resolve_removal(inventory, [parse_image("m:a")])
    assert manifests_to_remove(inventory, manifests, removal) == {Repository("m"): {index, own}}


# -- explicit_plan and remove ----------------------------------------------------------------


def test_explicit_plan_deletes_exactly_the_names(tmp_path: Path) -> None:
    """Without collecting: the tag's directory and the manifest's revision link, not a blob."""
    b = RegistryBuilder()
    b.image("app", "old")
    d = b.image("app", "v1")
    b.image("app", "v2")
    inventory, _ = surveyed(b, tmp_path)
    removal = resolve_removal(inventory, [parse_image("app:old"), parse_image(f"app@{d}")])
    plan = explicit_plan(inventory, removal, options=Options())
    paths = {p for deletion in plan.deletions for p in deletion.paths}
    tags = f"{R}app/_manifests/tags/"
    assert paths == {RevisionLink(Repository("app"), d).path} | {
        p for p in b.files if p.startswith((f"{tags}old/", f"{tags}v1/"))
    }
    assert {deletion.reason.explicit for deletion in plan.deletions} == {True}
    assert plan.kept == []


def test_remove_collects_what_the_names_leave_and_says_what_is_still_needed(
    tmp_path: Path,
) -> None:
    """remove() deletes a tag's blobs; a platform image a live index lists is kept, and named."""
    b = RegistryBuilder()
    old = b.image("app", "old")
    b.image("app", "v1")
    multi = b.multiarch("app", "multi")
    child = b.contents[multi]["children"][0]
    b.write_local(tmp_path)
    result = remove(tmp_path, ["app:old", f"app@{child}"], Options(grace=ZERO))
    assert result.collected
    assert result.kept == (f"app@{child}",)
    assert result.exit_code == 0
    gone = {d.digest for d in result.report.plan.deletions if d.category is Category.BLOB}
    assert {old, *b.contents[old]["blobs"]} <= gone
    assert (tmp_path / RevisionLink(Repository("app"), child).path).exists()
    doc = result.to_dict()
    assert (doc["command"], doc["removal"]["gc"], doc["removal"]["kept"]) == (
        "rm",
        True,
        [f"app@{child}"],
    )
    assert result.render().startswith("registry-gc rm: removed tag app:old, manifest app@")


def test_remove_without_collecting_leaves_every_blob(tmp_path: Path) -> None:
    """collect=False: the names go, no blob does."""
    b = RegistryBuilder()
    b.image("app", "old")
    b.image("app", "v1")
    b.write_local(tmp_path)
    blobs = {p for p in b.files if "/blobs/" in p}
    result = remove(tmp_path, ["app:old"], collect=False)
    assert not result.collected
    assert not (tmp_path / f"{R}app/_manifests/tags/old").exists()
    assert all((tmp_path / p).exists() for p in blobs)


def test_remove_needs_an_image_and_a_refusal_names_the_way_out(tmp_path: Path) -> None:
    """No image is an InvalidReferenceError; a refused run says collect=False still works."""
    b = RegistryBuilder()
    b.image("app", "old")
    b.manifest("broken", b"{nope", tag="v1")
    b.write_local(tmp_path)
    with pytest.raises(InvalidReferenceError, match="nothing to remove"):
        remove(tmp_path, [])
    with pytest.raises(RefusedError, match="collect=False removes the names without collecting"):
        remove(tmp_path, ["app:old"], Options(grace=ZERO))
    assert remove(tmp_path, ["app:old"], collect=False).exit_code == 0
