"""Repository and tag patterns: path globs, full-match regular expressions, and their errors."""

from __future__ import annotations

import pytest
from registry_gc import ConfigError
from registry_gc.policy import Pattern


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


@pytest.mark.parametrize(
    ("make", "text", "message"),
    [
        (Pattern.tag, "", "empty pattern ''"),
        (Pattern.tag, "glob:", "empty pattern 'glob:'"),
        (Pattern.repository, "re:", "empty pattern 're:'"),
        (Pattern.tag, "v(", "invalid regular expression 'v(': "),
        (Pattern.repository, "re:[z-a]", "invalid regular expression 're:[z-a]': "),
        (Pattern.repository, "glob:[z-a]", "invalid glob 'glob:[z-a]': "),
    ],
)
def test_patterns_that_do_not_compile_are_config_errors(make, text: str, message: str) -> None:
    """An empty or broken pattern is a ConfigError quoting it as written."""
    with pytest.raises(ConfigError) as info:
        make(text)
    assert str(info.value).startswith(message), str(info.value)


def test_patterns_compare_by_their_text() -> None:
    """Two patterns are equal when written alike, and print as written."""
    assert Pattern.tag("glob:v*") == Pattern.tag("glob:v*")
    assert str(Pattern.repository("re:app/.+")) == "re:app/.+"
