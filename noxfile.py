"""Developer tasks: ``nox`` runs tests, lint, typecheck and docs; ``nox -l`` lists them all.

- ``nox -s tests`` — the test suite on the interpreter nox runs with, under
  coverage; a run of the whole suite ends with ``coverage`` (``nox -s tests --
  -x -k s3`` passes arguments to pytest, and reports no coverage);
- ``nox -s coverage`` — the report of the last ``tests`` run: branch coverage
  of the package, missing lines, and a failure below the floor (``fail_under``
  in pyproject.toml);
- ``nox -s tests_all`` — the test suite on every Python from the classifiers;
- ``nox -s lint``, ``nox -s typecheck``, ``nox -s docs``;
- ``nox -s bench -- ARGS`` — ``benchmarks/run.py ARGS``;
- ``nox -s differential`` — the differential test against the real registry with
  3000 generated bodies (``REGISTRY_GC_DIFF_BODIES``, ``REGISTRY_GC_DIFF_SEED`` to
  change size and seed; the ``tests`` session runs it with 300, derandomized);
- ``nox -s soak`` — the soaks (``tests/test_soak.py``: pushers racing ``gc`` run back
  to back, with and without ``--live``), all seven (CI runs four) with 600 s of pushing
  each instead of CI's 30 (``REGISTRY_GC_SOAK_SECONDS`` to change it; ``-- -k "disk and
  redis"`` selects).

The end-to-end tests need ``docker-registry`` and ``skopeo``, the alert rules'
test ``promtool`` (Debian packages ``docker-registry``, ``skopeo``, ``prometheus``):
without them they skip, with a reason (in CI, with ``CI=true``, they fail).
"""

from __future__ import annotations

import os

import nox
from packaging.requirements import Requirement

nox.needs_version = ">=2024.10.9"  # nox.project.python_versions
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
# tests_all runs on the interpreters that are installed; the others are skipped
# (nox would make a missing one an error whenever CI is set).
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON_VERSIONS = nox.project.python_versions(PYPROJECT)
DOCS_SOURCE = "docs"
DOCS_BUILD = "docs/_build"


def _dev(name: str, extra: str = "dev") -> str:
    """The requirement for tool ``name`` from an extra: one place pins each tool."""
    for spec in PYPROJECT["project"]["optional-dependencies"][extra]:
        if Requirement(spec).name == name:
            return str(spec)
    msg = f"{name} is not in the {extra} extra of pyproject.toml"
    raise LookupError(msg)


def _pytest(session: nox.Session, *, coverage: bool = False) -> None:
    session.install(".[test]")
    # pytest exits 5 when it collects no test. Locally that is an error (a typo
    # in -k); .ci/run sets REGISTRY_GC_NO_TESTS_OK=1 so that such a run exits 0
    # and is reported as having run no test, instead of failing outright.
    codes = [0, 5] if os.environ.get("REGISTRY_GC_NO_TESTS_OK") == "1" else [0]
    pytest = ["pytest", "--durations=15", *session.posargs]
    if coverage:
        session.run("coverage", "erase")  # no data of an earlier, partial run
        session.run("coverage", "run", "-m", *pytest, success_codes=codes)
    else:
        session.run(*pytest, success_codes=codes)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite under coverage on the interpreter nox itself runs with.

    A run of the whole suite (no arguments) then runs ``coverage``: the report,
    and a failure below the floor. A selection (``-- -k s3``) is not held to it.
    """
    _pytest(session, coverage=True)
    if not session.posargs:
        session.notify("coverage")


@nox.session
def coverage(session: nox.Session) -> None:
    """Combine the data of the last ``tests`` run; report it, missing lines too.

    Fails below the floor, ``fail_under`` in pyproject.toml's ``[tool.coverage.report]``.
    """
    session.install(_dev("coverage", "test"))
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", "-m")


@nox.session(python=PYTHON_VERSIONS)
def tests_all(session: nox.Session) -> None:
    """Run the test suite on every supported Python that is installed (others are skipped)."""
    _pytest(session)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: every rule on everything, and the formatter on the package."""
    session.install(_dev("ruff"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "registry_gc")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy, strict, on the package (configuration in pyproject.toml)."""
    # With the GCS, Azure and redis client libraries: their types are checked too; with
    # pytest (the testing extra), which registry_gc.testing imports.
    session.install(".[gcs,azure,redis,testing,distributed,inventory]", _dev("mypy"))
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors, then run their examples."""
    session.install(".[docs,testing]")  # the API pages import registry_gc.testing
    common = ["-W", "-n", "--keep-going", "-d", f"{DOCS_BUILD}/doctrees"]
    session.run("sphinx-build", *common, "-b", "html", DOCS_SOURCE, f"{DOCS_BUILD}/html")
    session.run("sphinx-build", *common, "-b", "doctest", DOCS_SOURCE, f"{DOCS_BUILD}/doctest")


@nox.session
def bench(session: nox.Session) -> None:
    """Run ``benchmarks/run.py`` with the session's arguments.

    ``nox --no-venv -s bench`` runs it in the current environment (which must have the
    ``test`` extra): the stores are large, and a fresh virtualenv is not what is measured.
    """
    if session.venv_backend != "none":
        session.install(".[test]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def differential(session: nox.Session) -> None:
    """The differential test (real registry as the oracle) with many bodies: 3000 by default."""
    session.install(".[test]")
    env = {"REGISTRY_GC_DIFF_BODIES": os.environ.get("REGISTRY_GC_DIFF_BODIES", "3000")}
    session.run(
        "pytest",
        "tests/test_differential.py",
        "--timeout=7200",
        "--durations=10",
        *session.posargs,
        env=env,
    )


@nox.session
def distributed(session: nox.Session) -> None:
    """The distributed tests with many generated stores: 200 on local disk (66 on S3) by default.

    Two local worker processes, as in CI; ``REGISTRY_GC_DIST_EXAMPLES`` sets the number.
    """
    session.install(".[test]")
    env = {"REGISTRY_GC_DIST_EXAMPLES": os.environ.get("REGISTRY_GC_DIST_EXAMPLES", "200")}
    session.run(
        "pytest",
        "tests/test_distributed.py",
        "tests/test_s3inventory.py",
        "tests/test_cli_distributed.py",
        "--timeout=7200",
        "--durations=10",
        *session.posargs,
        env=env,
    )


@nox.session
def soak(session: nox.Session) -> None:
    """Every soak (CI runs four of the seven), for longer: 600 s of pushing each by default.

    CI pushes for 30 s and runs the live soaks on disk with no cache and the in-memory
    one, and on S3 with redis; this session runs all six pairs of storage and cache.
    """
    session.install(".[test]")
    env = {
        "REGISTRY_GC_SOAK_SECONDS": os.environ.get("REGISTRY_GC_SOAK_SECONDS", "600"),
        "REGISTRY_GC_SOAK_MATRIX": "full",
    }
    session.run(
        "pytest",
        "tests/test_soak.py",
        "-m",
        "soak",
        "--durations=10",
        *session.posargs,
        env=env,
    )
