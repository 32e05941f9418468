"""Regressions from the differential test: exact bodies the registry (2.8.2) accepts and serves.

Each test is one class of body that Go's JSON reading or the registry's storage rules
make different from a plain reading; its case spells out the exact bytes. All cases are
pushed into one store through ``docker-registry serve``; registry-gc runs on copies in
both modes (without and with ``--delete-untagged``) and each copy is served again.
A test passes when, for its repositories (see :mod:`tests.rigs.differential`):

- no run refused them (registry-gc reads every manifest the registry serves);
- every tag, and without ``-m`` every manifest served by digest, is served exactly as
  before, with every blob the registry verified for it (probed by naming a blob never
  pushed); with ``-m`` also what tags reach and the referrers of anything live;
- whatever is no longer served is a deletion in the report, and what the report
  deleted is no longer served;
- every tag that ``skopeo copy --all`` could pull before still pulls.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.conftest import require_tool
from tests.rigs import differential as diff
from tests.rigs import oci
from tests.rigs.manifest_gen import (
    BUILDKIT_CACHE_CONFIG,
    LONG_S,
    UNKNOWN_MANIFEST,
    Body,
    HandCase,
    descriptor_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.rigs.manifest_gen import Case

pytestmark = [pytest.mark.registry, pytest.mark.slow]

D = descriptor_json
OCI_MANIFEST = oci.OCI_MANIFEST
OCI_INDEX = oci.OCI_INDEX
DOCKER_MANIFEST = oci.DOCKER_MANIFEST
DOCKER_LIST = oci.DOCKER_MANIFEST_LIST
AMD64 = {"architecture": "amd64", "os": "linux"}
ARM64 = {"architecture": "arm64", "os": "linux"}

#: name → function writing the case (filled by :func:`case`).
CASES: dict[str, Callable[[HandCase], None]] = {}


def case(fn: Callable[[HandCase], None]) -> Callable[[HandCase], None]:
    """Register a case builder under its name (``key_case_layers`` → ``exact/key-case-layers``)."""
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


def image(
    h: HandCase,
    seed: str,
    *,
    n_layers: int = 2,
    repo: str | None = None,
    docker: bool = False,
    tag: str | None = None,
) -> Body:
    """Push a config and layers, then an image manifest (by digest, or ``tag``)."""
    layer_type = oci.DOCKER_LAYER if docker else oci.OCI_LAYER
    layers = [h.blob(h.layer(f"{seed}/{i}", layer_type), repo=repo) for i in range(n_layers)]
    cfg_type = oci.DOCKER_CONFIG if docker else oci.OCI_CONFIG
    cfg = h.blob(h.config(*layers, media_type=cfg_type), repo=repo)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    text = (
        f'{{"schemaVersion":2,"mediaType":"{media_type}","config":{D(cfg)},'
        f'"layers":[{",".join(D(x) for x in layers)}]}}'
    )
    return h.put(text, media_type, repo=repo, tag=tag)


# -- Go's key matching -------------------------------------------------------------------


@case
def key_case_layers(h: HandCase) -> None:
    """An OCI manifest whose ``layers`` key is spelled ``Layers``."""
    layers = [h.blob(h.layer(f"l{i}")) for i in range(2)]
    cfg = h.blob(h.config(*layers))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"Layers":[{D(layers[0])},{D(layers[1])}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def key_long_s_layers(h: HandCase) -> None:
    """A Docker manifest whose ``layers`` key ends in U+017F LONG S (Go folds it to s)."""
    lay = h.blob(h.layer("l", oci.DOCKER_LAYER))
    cfg = h.blob(h.config(lay, media_type=oci.DOCKER_CONFIG))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{D(cfg)},'
        f'"layer{LONG_S}":[{D(lay)}]}}',
        DOCKER_MANIFEST,
        tag="v1",
    )


@case
def key_case_config_digest(h: HandCase) -> None:
    """An OCI manifest whose config descriptor spells ``Digest``."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    config = f'{{"mediaType":"{oci.OCI_CONFIG}","Digest":"{cfg.digest}","size":{cfg.size}}}'
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def key_case_index_manifests(h: HandCase) -> None:
    """An OCI index whose ``manifests`` key is spelled ``Manifests``; children by digest."""
    a, b = image(h, "amd64"), image(h, "arm64")
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","Manifests":['
        f"{D(a, OCI_MANIFEST, platform=AMD64)},{D(b, OCI_MANIFEST, platform=ARM64)}]}}",
        OCI_INDEX,
        tag="v1",
    )


@case
def key_case_schema_version(h: HandCase) -> None:
    """``"schemaVersion":1`` then ``"SchemaVersion":2``: Go reads 2 (the last spelling)."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":1,"SchemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"config":{D(cfg)},"layers":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def key_escaped(h: HandCase) -> None:
    r"""Keys written as ``\u00XX`` escapes (both readers unescape them)."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    layers_key = "".join(f"\\u{ord(c):04x}" for c in "layers")
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"{layers_key}":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def subject_key_case(h: HandCase) -> None:
    """A referrer (pushed by digest) whose ``subject`` key is spelled ``Subject``."""
    base = image(h, "base", tag="v1")
    sig = h.blob(oci.raw_blob(b'{"sig":1}', oci.SIGNATURE_ARTIFACT))
    empty = h.blob(oci.empty_config())
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"artifactType":"{oci.SIGNATURE_ARTIFACT}","config":{D(empty)},'
        f'"layers":[{D(sig)}],"Subject":{D(base, OCI_MANIFEST)}}}',
        OCI_MANIFEST,
        subject=base.digest,
    )


# -- repeated keys ----------------------------------------------------------------------


@case
def repeated_key_spellings_last_wins(h: HandCase) -> None:
    """``layers`` (a blob never pushed) then ``LAYERS`` (the real ones): Go reads the last."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    never = '{"mediaType":"text/plain","digest":"sha256:' + "0" * 63 + '1","size":1}'
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{never}],"LAYERS":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def repeated_index_manifests_last_wins(h: HandCase) -> None:
    """An index with ``manifests`` (never pushed) then ``MANIFESTS`` (the real children)."""
    a, b = image(h, "amd64"), image(h, "arm64")
    never = '{"mediaType":"text/plain","digest":"sha256:' + "0" * 63 + '2","size":1}'
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{never}],'
        f'"MANIFESTS":[{D(a, OCI_MANIFEST, platform=AMD64)},'
        f"{D(b, OCI_MANIFEST, platform=ARM64)}]}}",
        OCI_INDEX,
        tag="v1",
    )


@case
def repeated_object_merges(h: HandCase) -> None:
    """``config`` twice, the second only ``{"size":N}``: Go keeps the first digest."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"config":{{"size":{cfg.size}}},"layers":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def repeated_array_elements_merge(h: HandCase) -> None:
    """``layers`` twice, the second's elements without digest: Go keeps the first digests."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}],"layers":[{{"size":{lay.size}}}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def repeated_subject_merges(h: HandCase) -> None:
    """A referrer's ``subject`` twice, the second without digest: Go keeps the first."""
    base = image(h, "base", tag="v1")
    sbom = h.blob(oci.raw_blob(b'{"sbom":1}', oci.SBOM_ARTIFACT))
    empty = h.blob(oci.empty_config())
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{oci.SBOM_ARTIFACT}",'
        f'"config":{D(empty)},"layers":[{D(sbom)}],"subject":{D(base, OCI_MANIFEST)},'
        f'"subject":{{"mediaType":"{OCI_MANIFEST}"}}}}',
        OCI_MANIFEST,
        subject=base.digest,
    )


@case
def null_repeat_keeps_value(h: HandCase) -> None:
    """``schemaVersion``, ``mediaType`` and ``config`` repeated as ``null``: no-ops for Go."""
    lay = h.blob(h.layer("l", oci.DOCKER_LAYER))
    cfg = h.blob(h.config(lay, media_type=oci.DOCKER_CONFIG))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}],"schemaVersion":null,"mediaType":null,"config":null}}',
        DOCKER_MANIFEST,
        tag="v1",
    )


# -- strings ----------------------------------------------------------------------------


@case
def invalid_utf8_annotation(h: HandCase) -> None:
    """An annotation value with bytes that are not UTF-8 (Go reads U+FFFD)."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}],"annotations":{{"note":"caf'.encode()
        + b'\xe9 \xff"}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def untagged_referrer_not_utf8(h: HandCase) -> None:
    """A referrer pushed by digest whose annotation is not UTF-8; its subject is tagged."""
    base = image(h, "base", tag="v1")
    sig = h.blob(oci.raw_blob(b'{"sig":3}', oci.SIGNATURE_ARTIFACT))
    empty = h.blob(oci.empty_config())
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"artifactType":"{oci.SIGNATURE_ARTIFACT}","config":{D(empty)},'
        f'"layers":[{D(sig)}],"subject":{D(base, OCI_MANIFEST)},'
        f'"annotations":{{"note":"'.encode()
        + b'\xff"}}',
        OCI_MANIFEST,
        subject=base.digest,
    )


@case
def lone_surrogate_escape(h: HandCase) -> None:
    r"""An annotation with a lone ``\ud800`` escape (Go reads U+FFFD)."""
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}],"annotations":{{"note":"\\ud800 alone"}}}}',
        OCI_MANIFEST,
        tag="v1",
    )


# -- manifest kinds and storage ----------------------------------------------------------


@case
def no_media_type(h: HandCase) -> None:
    """An OCI index and its children without ``mediaType`` (the registry guesses)."""
    layers = [h.blob(h.layer(f"l{i}")) for i in range(2)]
    cfgs = [h.blob(h.config(lay)) for lay in layers]
    kids = [
        h.put(f'{{"schemaVersion":2,"config":{D(c)},"layers":[{D(lay)}]}}', OCI_MANIFEST)
        for c, lay in zip(cfgs, layers, strict=True)
    ]
    h.put(
        f'{{"schemaVersion":2,"manifests":[{D(kids[0], OCI_MANIFEST, platform=AMD64)},'
        f"{D(kids[1], OCI_MANIFEST, platform=ARM64)}]}}",
        OCI_INDEX,
        tag="v1",
    )


@case
def nested_index(h: HandCase) -> None:
    """A tagged index listing an index (by digest) listing images (by digest)."""
    a, b = image(h, "amd64"), image(h, "arm64")
    inner = h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":['
        f"{D(a, OCI_MANIFEST, platform=AMD64)},{D(b, OCI_MANIFEST, platform=ARM64)}]}}",
        OCI_INDEX,
    )
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{D(inner, OCI_INDEX)}]}}',
        OCI_INDEX,
        tag="v1",
    )


@case
def index_entry_unknown_media_type(h: HandCase) -> None:
    """An index entry with an unknown media type naming a real child manifest."""
    a = image(h, "amd64")
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{D(a, UNKNOWN_MANIFEST)}]}}',
        OCI_INDEX,
        tag="v1",
    )


@case
def buildkit_cache_index(h: HandCase) -> None:
    """The buildkit registry cache: an OCI index whose entries are blobs, not manifests."""
    cache_cfg = h.blob(oci.raw_blob(b'{"layers":[],"records":[]}', BUILDKIT_CACHE_CONFIG))
    layers = [h.blob(h.layer(f"l{i}")) for i in range(2)]
    created = {"annotations": {"buildkit/createdat": "2024-01-01T00:00:00Z"}}
    entries = [D(x, **created) for x in layers] + [D(cache_cfg)]
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{",".join(entries)}]}}',
        OCI_INDEX,
        tag="buildcache",
    )


@case
def legacy_layers_link_manifest(h: HandCase) -> None:
    """A manifest uploaded as a blob only (registry 2.1.0 linked manifests under _layers).

    A tagged image sits beside it (alone, the store would hold no revision at all,
    which registry-gc refuses).
    """
    image(h, "neighbour", tag="v1")
    lay = h.blob(h.layer("l", oci.DOCKER_LAYER))
    cfg = h.blob(h.config(lay, media_type=oci.DOCKER_CONFIG))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}]}}',
        DOCKER_MANIFEST,
        as_blob=True,
    )


@case
def index_of_legacy_manifest(h: HandCase) -> None:
    """A tagged manifest list whose child exists only as a blob (a 2.1.0 _layers link)."""
    lay = h.blob(h.layer("l", oci.DOCKER_LAYER))
    cfg = h.blob(h.config(lay, media_type=oci.DOCKER_CONFIG))
    child = h.put(
        f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{D(cfg)},'
        f'"layers":[{D(lay)}]}}',
        DOCKER_MANIFEST,
        as_blob=True,
    )
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":['
        f"{D(child, DOCKER_MANIFEST, platform=AMD64)}]}}",
        DOCKER_LIST,
        tag="v1",
    )


@case
def sha512_layer_reference(h: HandCase) -> None:
    """A layer uploaded and referenced by its sha512 digest (a _layers alias link)."""
    lay = h.blob(h.layer("l"), alg="sha512")
    cfg = h.blob(h.config(lay))
    d512 = "sha512:" + hashlib.sha512(lay.data).hexdigest()
    layer = f'{{"mediaType":"{oci.OCI_LAYER}","digest":"{d512}","size":{lay.size}}}'
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{D(cfg)},"layers":[{layer}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def schema1_signed(h: HandCase) -> None:
    """A signed schema1 manifest, stored as 2.8.2 stores it (the payload, re-signed on GET)."""
    s1 = oci.schema1_manifest(f"{h.repo}/s1", name=h.repo, tag="v1")
    for lay in s1.layers:
        h.blob(lay)
    h.put(s1.canonical.data, oci.SCHEMA1_SIGNED_MANIFEST, tag="v1", schema1=True)


@case
def schema1_key_case(h: HandCase) -> None:
    """A signed schema1 manifest spelling ``FSLayers`` and ``BlobSum``."""
    s1 = oci.schema1_manifest(f"{h.repo}/s1", name=h.repo, tag="v1")
    for lay in s1.layers:
        h.blob(lay)
    doc = json.loads(s1.canonical.data)
    doc["FSLayers"] = [{"BlobSum": x["blobSum"]} for x in doc.pop("fsLayers")]
    h.put(oci.canonical_json(doc), oci.SCHEMA1_SIGNED_MANIFEST, tag="v1", schema1=True)


@case
def artifact_manifest_disguised(h: HandCase) -> None:
    """``mediaType`` written twice: the artifact manifest type, then (``MediaType``) OCI's."""
    lay = h.blob(h.layer("l"))
    empty = h.blob(oci.empty_config())
    sbom = h.blob(oci.raw_blob(b'{"sbom":2}', oci.SBOM_ARTIFACT))
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{oci.OCI_ARTIFACT_MANIFEST}",'
        f'"MediaType":"{OCI_MANIFEST}","artifactType":"{oci.SBOM_ARTIFACT}",'
        f'"config":{D(empty)},"layers":[{D(lay)}],"blobs":[{D(sbom)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def cross_repository_referrer(h: HandCase) -> None:
    """A signature pushed by digest into ``<repo>-sig`` whose subject is in ``<repo>``."""
    base = image(h, "base", tag="v1")
    sig = h.blob(oci.raw_blob(b'{"sig":2}', oci.SIGNATURE_ARTIFACT), repo="-sig")
    empty = h.blob(oci.empty_config(), repo="-sig")
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"artifactType":"{oci.SIGNATURE_ARTIFACT}","config":{D(empty)},'
        f'"layers":[{D(sig)}],"subject":{D(base, OCI_MANIFEST)}}}',
        OCI_MANIFEST,
        repo="-sig",
        subject=base.digest,
    )


@case
def index_with_image_fields(h: HandCase) -> None:
    """A Docker list (``MediaType`` spelled) that also carries ``config`` and ``layers``."""
    a = image(h, "amd64", docker=True)
    cfg = h.blob(h.config(media_type=oci.DOCKER_CONFIG))
    h.put(
        f'{{"schemaVersion":2,"MediaType":"{DOCKER_LIST}","config":{D(cfg)},"layers":[],'
        f'"manifests":[{D(a, DOCKER_MANIFEST, platform=AMD64)}]}}',
        DOCKER_LIST,
        tag="v1",
    )


@case
def index_decode_panic(h: HandCase) -> None:
    """An OCI manifest without mediaType and ``"manifests":5,"manifests":null``.

    PUT accepts it; every GET (and the reference garbage-collect) panics decoding it as
    an index. The registry serves nothing for it; the rest of the store must not suffer.
    """
    lay = h.blob(h.layer("l"))
    cfg = h.blob(h.config(lay))
    h.put(
        f'{{"schemaVersion":2,"config":{D(cfg)},"layers":[{D(lay)}],'
        f'"manifests":5,"manifests":null}}',
        OCI_MANIFEST,
        tag="v1",
    )
    image(h, "neighbour", tag="v2")


@case
def index_null_manifests(h: HandCase) -> None:
    """``{"schemaVersion":2,"manifests":null}`` PUT as an OCI index.

    Accepted as an index; 2.8.2 serves it as an OCI image manifest without config
    (``manifests`` is nil, so its GET falls back to the image manifest reading).
    """
    h.put('{"schemaVersion":2,"manifests":null}', OCI_INDEX, tag="v1")


@case
def config_with_urls_missing(h: HandCase) -> None:
    """An image whose config descriptor has ``urls`` and was never pushed (2.8.2 checks neither)."""
    lay = h.blob(h.layer("l"))
    cfg = h.config(lay)
    config = D(cfg, urls=["https://example.invalid/config"])
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{D(lay)}]}}',
        OCI_MANIFEST,
        tag="v1",
    )


@case
def damaged_index_child_deleted(h: HandCase) -> None:
    """A tagged index one of whose children was deleted through the API afterwards."""
    a, b = image(h, "amd64"), image(h, "arm64")
    h.put(
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":['
        f"{D(a, OCI_MANIFEST, platform=AMD64)},{D(b, OCI_MANIFEST, platform=ARM64)}]}}",
        OCI_INDEX,
        tag="v1",
    )
    h.delete_manifest(b.digest)


# -- the store and the checks -------------------------------------------------------------


@dataclass
class Exact:
    """The store of every case and the runs of registry-gc on it."""

    store: diff.Store
    runs: dict[str, tuple[diff.GcRun, diff.Observation]]
    cases: dict[str, Case]


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Exact:
    """Every case pushed into one registry, then registry-gc in both modes on copies."""
    require_tool("docker-registry")
    require_tool("skopeo")
    work = tmp_path_factory.mktemp("exact")
    cases = {}
    for i, (name, build) in enumerate(CASES.items()):
        h = HandCase(name)
        build(h)
        cases[name] = h.case(i)
    store = diff.build_store(list(cases.values()), work)
    runs = {}
    for delete_untagged in (False, True):
        run, after = diff.collect_and_observe(store, work, delete_untagged=delete_untagged)
        runs[run.mode] = (run, after)
    return Exact(store, runs, cases)


def check(exact: Exact, name: str) -> None:
    """Assert that case ``name`` went through both runs as the module docstring says."""
    the_case = exact.cases[name]
    repos = set(the_case.repos)
    store = exact.store
    for step in the_case.steps:
        if step.op == "manifest":
            status, body = store.log.puts[step.repo, step.digest, step.ref or step.digest]
            assert status == 201, f"the registry rejected {step.label}: {body!r}"
    problems = []
    for run, after in exact.runs.values():
        if repos & run.excluded:
            problems.append(diff.describe_refusals(store, run).split("\n")[0])
            refusals = [p for r in run.refusals for p in r.problems if any(x in p for x in repos)]
            problems += [f"  - {p[:600]}" for p in refusals]
            continue
        violations = [v for v in diff.evaluate(store, run, after) if v.repo in repos or not v.repo]
        if violations:
            problems.append(diff.format_violations(store, violations).split("\ncase ")[0])
            problems.append(diff.describe_deletions(store, run, the_case.repo))
    assert not problems, "\n".join(problems) + "\n" + diff.describe_case(store, the_case.repo)


def test_key_case_layers(exact: Exact) -> None:
    """``Layers`` is ``layers`` to Go: its blobs stay in both modes."""
    check(exact, "key-case-layers")


def test_key_long_s_layers(exact: Exact) -> None:
    """``layers`` spelled with U+017F LONG S is ``layers`` to Go: its blobs stay."""
    check(exact, "key-long-s-layers")


def test_key_case_config_digest(exact: Exact) -> None:
    """A config descriptor's ``Digest`` is its digest to Go: the config stays."""
    check(exact, "key-case-config-digest")


def test_key_case_index_manifests(exact: Exact) -> None:
    """``Manifests`` is ``manifests`` to Go: with -m the untagged children stay."""
    check(exact, "key-case-index-manifests")


def test_key_case_schema_version(exact: Exact) -> None:
    """``schemaVersion`` then ``SchemaVersion``: the last one (2) decides the kind."""
    check(exact, "key-case-schema-version")


def test_key_escaped(exact: Exact) -> None:
    r"""Keys written with ``\u`` escapes are read like plain keys."""
    check(exact, "key-escaped")


def test_subject_key_case(exact: Exact) -> None:
    """``Subject`` is ``subject`` to Go clients: with -m the referrer of a tag stays."""
    check(exact, "subject-key-case")


def test_repeated_key_spellings_last_wins(exact: Exact) -> None:
    """``layers`` then ``LAYERS``: the last spelling's blobs are the ones that stay."""
    check(exact, "repeated-key-spellings-last-wins")


def test_repeated_index_manifests_last_wins(exact: Exact) -> None:
    """``manifests`` then ``MANIFESTS``: the children of the last stay with -m."""
    check(exact, "repeated-index-manifests-last-wins")


def test_repeated_object_merges(exact: Exact) -> None:
    """A second ``config`` without digest merges into the first: no refusal, config stays."""
    check(exact, "repeated-object-merges")


def test_repeated_array_elements_merge(exact: Exact) -> None:
    """A second ``layers`` without digests merges element-wise: no refusal, layers stay."""
    check(exact, "repeated-array-elements-merge")


def test_repeated_subject_merges(exact: Exact) -> None:
    """A second ``subject`` without digest merges into the first: the referrer stays with -m."""
    check(exact, "repeated-subject-merges")


def test_null_repeat_keeps_value(exact: Exact) -> None:
    """``null`` repeats of string, number and struct fields change nothing."""
    check(exact, "null-repeat-keeps-value")


def test_invalid_utf8_annotation(exact: Exact) -> None:
    """Invalid UTF-8 in an annotation is read (as U+FFFD), not refused."""
    check(exact, "invalid-utf8-annotation")


def test_untagged_referrer_not_utf8(exact: Exact) -> None:
    """With -m an untagged referrer registry-gc cannot decode is kept, not deleted."""
    check(exact, "untagged-referrer-not-utf8")


def test_lone_surrogate_escape(exact: Exact) -> None:
    r"""A lone ``\ud800`` escape in an annotation is read, not refused."""
    check(exact, "lone-surrogate-escape")


def test_no_media_type(exact: Exact) -> None:
    """An index and images without ``mediaType`` keep their children and blobs."""
    check(exact, "no-media-type")


def test_nested_index(exact: Exact) -> None:
    """With -m an index of an index keeps both levels of untagged children."""
    check(exact, "nested-index")


def test_index_entry_unknown_media_type(exact: Exact) -> None:
    """An index entry of unknown media type that names a manifest keeps it."""
    check(exact, "index-entry-unknown-media-type")


def test_buildkit_cache_index(exact: Exact) -> None:
    """An index whose entries are plain blobs (buildkit cache) keeps those blobs linked."""
    check(exact, "buildkit-cache-index")


def test_legacy_layers_link_manifest(exact: Exact) -> None:
    """A manifest the registry serves through a _layers link only is a revision."""
    check(exact, "legacy-layers-link-manifest")


def test_index_of_legacy_manifest(exact: Exact) -> None:
    """A list's child served through a _layers link only keeps its link and blobs."""
    check(exact, "index-of-legacy-manifest")


def test_sha512_layer_reference(exact: Exact) -> None:
    """A layer referenced by sha512 (an alias link) keeps its sha256 blob."""
    check(exact, "sha512-layer-reference")


def test_schema1_signed(exact: Exact) -> None:
    """A signed schema1 manifest keeps its fsLayers blobs and pulls."""
    check(exact, "schema1-signed")


def test_schema1_key_case(exact: Exact) -> None:
    """Schema1 ``FSLayers``/``BlobSum`` are ``fsLayers``/``blobSum`` to Go."""
    check(exact, "schema1-key-case")


def test_artifact_manifest_disguised(exact: Exact) -> None:
    """The last ``mediaType`` spelling (OCI manifest) decides, not the artifact type."""
    check(exact, "artifact-manifest-disguised")


def test_cross_repository_referrer(exact: Exact) -> None:
    """With -m a referrer in another repository of a tagged image stays (cosign)."""
    check(exact, "cross-repository-referrer")


def test_index_with_image_fields(exact: Exact) -> None:
    """A Docker list that also has ``config``/``layers`` is read as a list."""
    check(exact, "index-with-image-fields")


def test_index_decode_panic(exact: Exact) -> None:
    """A body every registry GET panics on does not stop the collection of the rest."""
    check(exact, "index-decode-panic")


def test_index_null_manifests(exact: Exact) -> None:
    """An index with ``"manifests":null`` (served as a config-less image) is read, not refused."""
    check(exact, "index-null-manifests")


def test_config_with_urls_missing(exact: Exact) -> None:
    """An image whose config (with urls) was never pushed does not stop the collection."""
    check(exact, "config-with-urls-missing")


def test_damaged_index_child_deleted(exact: Exact) -> None:
    """An index whose child was deleted through the API keeps what is still served."""
    check(exact, "damaged-index-child-deleted")


# -- the oracle itself ------------------------------------------------------------------


def _copy(exact: Exact, dest: Path) -> Path:
    shutil.copytree(exact.store.root, dest, symlinks=True)
    return dest


def test_oracle_sees_nothing_wrong_when_nothing_changes(exact: Exact, tmp_path: Path) -> None:
    """An untouched copy of the store passes every check in both modes (no false alarm)."""
    root = _copy(exact, tmp_path / "storage")
    after = diff.observe_store(exact.store, root, tmp_path)
    for delete_untagged in (False, True):
        run = diff.GcRun(delete_untagged, root, exit_code=0)
        violations = diff.evaluate(exact.store, run, after)
        assert not violations, diff.format_violations(exact.store, violations)


def test_oracle_sees_a_lost_layer_and_an_unreported_deletion(exact: Exact, tmp_path: Path) -> None:
    """Deleting a tagged image's layer behind the report's back is lost, unreported, unpullable."""
    store = exact.store
    the_case = exact.cases["key-escaped"]
    layer = next(s for s in the_case.steps if s.op == "blob")
    root = _copy(exact, tmp_path / "storage")
    hexpart = layer.digest.split(":", 1)[1]
    shutil.rmtree(root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart)
    after = diff.observe_store(store, root, tmp_path)
    run = diff.GcRun(False, root, exit_code=0)
    found = {(v.problem, v.view) for v in diff.evaluate(store, run, after)}
    view = ("blob", the_case.repo, layer.digest)
    assert ("lost", view) in found
    assert ("pull", ("tag", the_case.repo, "v1")) in found
    # Reported as deleted, it is still lost (it was required), no longer unreported.
    deletions = [{"category": "blob", "digest": layer.digest, "status": "deleted"}]
    run = diff.GcRun(False, root, exit_code=0, deletions=deletions)
    problems = {v.problem for v in diff.evaluate(store, run, after) if v.view == view}
    assert problems == {"lost"}
