"""Tests of registry_gc.removal: rm's names, resolved against the store, and what they remove.

The command line's ``rm`` (flags, output, exit codes) is tested in ``test_cli_commands.py``.
"""

from __future__ import annotations

import pytest
from registry_gc.layout import Digest, Repository, Tag
from registry_gc.removal import ImageRef, parse_image

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
