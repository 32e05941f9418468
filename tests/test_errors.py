"""Tests of registry_gc._errors: one tree under RegistryGCError, each error with its builtin."""

from __future__ import annotations

import pytest
import registry_gc
from registry_gc import (
    BackendNotFoundError,
    ConfigError,
    InvalidReferenceError,
    ManifestError,
    NotFoundError,
    PlanFileError,
    ReadOnlyError,
    RefusedError,
    RegistryGCError,
    StorageError,
    TargetNotEmptyError,
)

#: The tree the module docstring draws: error → (parent in the tree, the builtin it also is).
TREE: dict[type[RegistryGCError], tuple[type[Exception], type[Exception] | None]] = {
    InvalidReferenceError: (RegistryGCError, ValueError),
    NotFoundError: (RegistryGCError, LookupError),
    StorageError: (RegistryGCError, OSError),
    ReadOnlyError: (StorageError, PermissionError),
    ManifestError: (RegistryGCError, ValueError),
    RefusedError: (RegistryGCError, None),
    PlanFileError: (RefusedError, None),
    ConfigError: (RegistryGCError, ValueError),
    BackendNotFoundError: (RegistryGCError, LookupError),
    TargetNotEmptyError: (RegistryGCError, FileExistsError),
}


@pytest.mark.parametrize("error", list(TREE), ids=lambda e: e.__name__)
def test_every_error_is_where_the_tree_draws_it(error: type[RegistryGCError]) -> None:
    """Each error derives from its parent in the tree and from its builtin, if it has one."""
    parent, builtin = TREE[error]
    assert error.__bases__[0] is parent
    assert issubclass(error, RegistryGCError)
    if builtin is not None:
        assert issubclass(error, builtin)
    with pytest.raises(RegistryGCError):
        raise error("x")


def test_the_tree_is_every_public_error() -> None:
    """No public error of the package is left out of the tree."""
    public = {
        obj
        for name in registry_gc.__all__
        if isinstance(obj := getattr(registry_gc, name), type) and issubclass(obj, Exception)
    }
    assert public == {RegistryGCError, *TREE}


def test_errors_carry_the_object_as_fields() -> None:
    """path, repository and digest are fields; the message is the text, unchanged."""
    e = NotFoundError("no tag app:v1", repository="app", path="p", digest="sha256:x")
    assert (e.repository, e.path, e.digest, e.message, str(e)) == (
        "app",
        "p",
        "sha256:x",
        "no tag app:v1",
        "no tag app:v1",
    )
    assert (ConfigError("bad").path, ConfigError("bad").repository) == (None, None)


def test_a_plan_file_error_names_the_file_and_the_line() -> None:
    """PlanFileError is a refusal whose path is the plan file and whose line is a field."""
    e = PlanFileError("plan file p, line 3: bad", path="p", line=3)
    assert (e.path, e.line, e.problems) == ("p", 3, ["plan file p, line 3: bad"])
    assert isinstance(e, RefusedError)
    assert PlanFileError("cut short").line is None


def test_a_refusal_lists_its_problems() -> None:
    """RefusedError keeps a copy of every problem; none is an empty list."""
    problems = ["one", "two"]
    e = RefusedError("refusing", problems, path="memory://x")
    problems.append("three")
    assert e.problems == ["one", "two"]
    assert e.path == "memory://x"
    assert RefusedError("refusing").problems == []
