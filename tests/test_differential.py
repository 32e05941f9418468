"""Differential test: generated manifest bodies, the real registry (2.8.2) as the oracle.

Hypothesis generates cases (:mod:`tests.rigs.manifest_gen`) that use what Go's JSON
decoder tolerates: key case and Unicode folding, repeated keys, ``null`` repeats,
unknown fields, invalid UTF-8, missing ``mediaType``, ``subject`` on manifests and
indexes, nested indexes, indexes listing plain blobs (buildkit cache), manifests that
exist only as blobs (registry 2.1.0 ``_layers`` links), artifact manifests, signed
schema1, sha512 references, tags moved, damage through the API. Every case is pushed
through ``docker-registry serve`` into one store; what the registry accepts, verifies
and serves is the expectation (:mod:`tests.rigs.differential`). registry-gc then runs
on copies of the store in both modes, and each copy is served and checked again.

Size and seed: ``REGISTRY_GC_DIFF_BODIES`` (default 300; ``nox -s differential`` runs
3000) and ``REGISTRY_GC_DIFF_SEED`` (unset: hypothesis derandomized, the same bodies on
every run). ``REGISTRY_GC_DIFF_PULLS`` caps the tags pulled with skopeo. The whole
findings list is written to ``REGISTRY_GC_DIFF_FINDINGS`` (default:
``differential-findings.txt`` in the module's temporary directory); its path is in every
failure message.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.rigs import differential as diff
from tests.rigs import manifest_gen

pytestmark = [pytest.mark.registry, pytest.mark.slow]

#: Classes every CI-sized batch must contain (accepted by the registry at least once).
EXPECTED_CLASSES = frozenset(
    {
        "docker-image",
        "oci-image",
        "docker-index",
        "oci-index",
        "nested-index",
        "buildkit-cache-index",
        "index-of-blob",
        "index-of-legacy-manifest",
        "index-entry-unknown-type",
        "legacy-layers-link",
        "schema1",
        "subject",
        "cross-repository-referrer",
        "artifact-manifest-disguised",
        "artifact-type",
        "no-media-type",
        "key-case",
        "key-long-s",
        "key-escaped",
        "repeated-key",
        "repeated-key-null",
        "repeated-key-partial",
        "unknown-field",
        "invalid-utf8",
        "lone-surrogate-escape",
        "foreign-layer",
        "sha512-reference",
        "tag-moved",
        "damaged-deleted-manifest",
        "damaged-deleted-blob",
        "content-type-variant",
    }
)

DATA_PROBLEMS = frozenset({"lost", "changed", "unreported", "deleted-but-served", "exit"})


def _pull_cap() -> int | None:
    value = os.environ.get("REGISTRY_GC_DIFF_PULLS", "").strip()
    return int(value) if value else None


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's working directory (stores, registries, findings)."""
    return tmp_path_factory.mktemp("differential")


@pytest.fixture(scope="module")
def store(work: Path) -> diff.Store:
    """Every generated case pushed through the registry, observed, pulled and probed."""
    require_tool("docker-registry")
    require_tool("skopeo")
    cases = manifest_gen.generate_cases(
        manifest_gen.body_count(), seed=manifest_gen.seed_from_env()
    )
    return diff.build_store(cases, work, pulls=_pull_cap())


@pytest.fixture(scope="module")
def runs(store: diff.Store, work: Path) -> dict[str, tuple[diff.GcRun, diff.Observation]]:
    """registry-gc in both modes on copies of the store, each observed through a registry."""
    out = {}
    for delete_untagged in (False, True):
        run, after = diff.collect_and_observe(store, work, delete_untagged=delete_untagged)
        out[run.mode] = (run, after)
    bodies = sum(len(c.bodies) for c in store.cases)
    findings = [f"bodies: {bodies} in {len(store.cases)} cases; timings {store.timings}"]
    for run, after in out.values():
        violations = diff.evaluate(store, run, after)
        headline = (
            f"== {run.mode}: exit {run.exit_code}, {run.seconds:.1f}s, "
            f"{len(run.excluded)} repositories set aside by refusals"
        )
        findings += [
            headline,
            diff.describe_refusals(store, run),
            diff.format_violations(store, violations, max_cases=10_000),
        ]
    _findings_path(work).write_text("\n".join(findings))
    return out


def _findings_path(work: Path) -> Path:
    return Path(os.environ.get("REGISTRY_GC_DIFF_FINDINGS") or work / "differential-findings.txt")


def _where(work: Path) -> str:
    return f"\n(all findings: {_findings_path(work)})"


def test_generator_covers_every_class(store: diff.Store) -> None:
    """The batch has hundreds of accepted bodies and every class of body in it."""
    accepted = store.log.accepted()
    assert len(accepted) >= 0.8 * min(manifest_gen.body_count(), 300)
    served_classes: Counter[str] = Counter()
    for case in store.cases:
        for digest, body in case.bodies.items():
            if any(store.before.served(("manifest", r, digest)) for r in case.repos):
                served_classes.update(body.classes)
        served_classes.update(c for c in case.classes if c.startswith(("damaged", "tag-")))
        if "cross-repository-referrer" in case.classes:
            served_classes["cross-repository-referrer"] += 1
    missing = EXPECTED_CLASSES - set(served_classes)
    assert not missing, f"no served body of class {sorted(missing)}"


def test_generator_reads_references_as_the_registry_does(store: diff.Store) -> None:
    """What the generator expects Go to read as a reference is what the registry verifies."""
    disagreements = []
    for case in store.cases:
        for digest, body in case.bodies.items():
            for repo in case.repos:
                probe = store.probes.get((repo, digest))
                if probe is None:
                    continue
                missed = body.verified - probe.required
                extra = body.unverified & probe.verified
                if missed or extra:
                    disagreements.append(
                        f"{repo} {digest}: the registry does not verify {sorted(missed)} but "
                        f"verifies {sorted(extra)}\n{diff.describe_case(store, repo)}"
                    )
    assert not disagreements, "\n\n".join(disagreements[:10])


@pytest.mark.parametrize("mode", ["plain", "-m"])
def test_collection_keeps_what_the_registry_serves(
    store: diff.Store,
    runs: dict[str, tuple[diff.GcRun, diff.Observation]],
    mode: str,
    work: Path,
) -> None:
    """After gc (and gc -m) what must survive is served as before; every loss is reported."""
    run, after = runs[mode]
    violations = [v for v in diff.evaluate(store, run, after) if v.problem in DATA_PROBLEMS]
    assert not violations, diff.format_violations(store, violations) + _where(work)


@pytest.mark.parametrize("mode", ["plain", "-m"])
def test_tags_that_pulled_still_pull(
    store: diff.Store,
    runs: dict[str, tuple[diff.GcRun, diff.Observation]],
    mode: str,
    work: Path,
) -> None:
    """Every tag skopeo could copy (--all) before a run it can copy after it."""
    assert any(code == 0 for code, _ in store.before.pulls.values())
    run, after = runs[mode]
    violations = [v for v in diff.evaluate(store, run, after) if v.problem == "pull"]
    assert not violations, diff.format_violations(store, violations) + _where(work)


@pytest.mark.parametrize("mode", ["plain", "-m"])
def test_refused_runs_change_nothing(
    runs: dict[str, tuple[diff.GcRun, diff.Observation]], mode: str
) -> None:
    """A refused run (exit 3) leaves the store byte-identical and names what it refused."""
    run, _ = runs[mode]
    for refusal in run.refusals:
        assert refusal.unchanged, refusal.message
        assert refusal.repositories, f"the refusal names no repository: {refusal.message}"


@pytest.mark.parametrize("mode", ["plain", "-m"])
def test_every_body_the_registry_serves_is_read(
    store: diff.Store,
    runs: dict[str, tuple[diff.GcRun, diff.Observation]],
    mode: str,
    work: Path,
) -> None:
    """registry-gc reads every manifest the registry serves: no run refuses the store."""
    run, _ = runs[mode]
    summary = diff.class_summary(store, run.excluded)
    assert not run.refusals, (
        f"{len(run.excluded)} repositories refused; classes of their cases: {summary}\n"
        + diff.describe_refusals(store, run)[:20_000]
        + _where(work)
    )
