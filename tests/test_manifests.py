# Copyright 2026 registry-gc developers
# SPDX-License-Identifier: Apache-2.0
"""Tests of registry_gc.manifests: manifest bytes to references."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_gc import ManifestError
from registry_gc._gojson import GoDecodeError
from registry_gc.layout import Digest
from registry_gc.manifests import (
    MAX_MANIFEST_SIZE,
    ChildRef,
    Manifest,
    ManifestKind,
    Platform,
    _parse,
    parse_manifest,
    parse_plain,
)

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIG = "application/vnd.dev.cosign.simplesigning.v1+json"
SPDX = "application/spdx+json"

REPO = "library/alpine"
REVISION = "sha256:" + hashlib.sha256(b"the revision under test").hexdigest()


def sha(data: bytes | str) -> Digest:
    """The sha256 digest of some bytes, as distribution writes it."""
    raw = data.encode() if isinstance(data, str) else data
    return Digest("sha256:" + hashlib.sha256(raw).hexdigest())


def dumps(doc: Any) -> bytes:
    """Serialize a manifest dict like a client would push it."""
    return json.dumps(doc, indent=3).encode()


def desc(media_type: str, data: bytes | str, **extra: Any) -> dict[str, Any]:
    """A descriptor of some bytes."""
    raw = data.encode() if isinstance(data, str) else data
    return {"mediaType": media_type, "digest": sha(raw), "size": len(raw), **extra}


CONFIG = desc(DOCKER_CONFIG, '{"architecture":"amd64","os":"linux"}')
LAYER_A = desc(DOCKER_LAYER, b"layer a tar.gz bytes")
LAYER_B = desc(DOCKER_LAYER, b"layer b tar.gz bytes")
OCI_CFG = desc(OCI_CONFIG, '{"architecture":"arm64","os":"linux","variant":"v8"}')
OCI_LAYER_A = desc(OCI_LAYER, b"oci layer a")
EMPTY_CONFIG = desc(OCI_EMPTY, "{}")


def docker_manifest(layers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Docker schema2 image manifest."""
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": CONFIG,
        "layers": [LAYER_A, LAYER_B] if layers is None else layers,
    }


def oci_manifest(**extra: Any) -> dict[str, Any]:
    """An OCI image manifest."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": OCI_CFG,
        "layers": [OCI_LAYER_A],
        **extra,
    }


def schema1_doc(blob_sums: list[str], *, signed: bool) -> dict[str, Any]:
    """A Docker schema1 manifest, with a JWS ``signatures`` block when signed."""
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "name": REPO,
        "tag": "3.2",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": s} for s in blob_sums],
        "history": [{"v1Compatibility": json.dumps({"id": s[7:]})} for s in blob_sums],
    }
    if signed:
        doc["signatures"] = [
            {
                "header": {
                    "jwk": {"crv": "P-256", "kid": "ABCD:EFGH", "kty": "EC", "x": "x", "y": "y"},
                    "alg": "ES256",
                },
                "signature": "c2lnbmF0dXJl",
                "protected": "eyJmb3JtYXRMZW5ndGgiOjEyMywiZm9ybWF0VGFpbCI6IkNuMCJ9",
            }
        ]
    return doc


def parse(doc: Any) -> Manifest:
    """Parse a manifest dict, naming the test repository and revision."""
    return parse_manifest(dumps(doc), repository=REPO, digest=REVISION)


# Schema1 -------------------------------------------------------------------------------


def test_schema1_signed() -> None:
    """A signed schema1 manifest (JWS signatures) yields its blobSums, no config."""
    sums = [LAYER_A["digest"], LAYER_B["digest"]]
    m = parse(schema1_doc(sums, signed=True))
    assert m.kind is ManifestKind.SCHEMA1
    assert m.media_type == SCHEMA1_SIGNED
    assert m.config is None
    assert m.layers == tuple(sums)
    assert m.blobs == tuple(sums)
    assert m.children == ()
    assert m.subject is None
    assert m.foreign == frozenset()
    assert not m.is_index


def test_schema1_unsigned() -> None:
    """An unsigned schema1 manifest is SCHEMA1 with the v1+json media type implied."""
    m = parse(schema1_doc([LAYER_A["digest"]], signed=False))
    assert m.kind is ManifestKind.SCHEMA1
    assert m.media_type == SCHEMA1
    assert m.layers == (LAYER_A["digest"],)
    assert all(isinstance(d, Digest) for d in m.layers)


def test_schema1_declared_media_type_is_kept() -> None:
    """A schema1 manifest that declares a v1 media type keeps the declared one."""
    doc = schema1_doc([LAYER_A["digest"]], signed=False)
    doc["mediaType"] = SCHEMA1_SIGNED
    assert parse(doc).media_type == SCHEMA1_SIGNED


def test_schema1_duplicate_blobsums_deduplicated_in_order() -> None:
    """Schema1 repeats blobSums (empty layers); they are kept once, first-seen order."""
    a, b = LAYER_A["digest"], LAYER_B["digest"]
    m = parse(schema1_doc([b, a, b, a, a], signed=True))
    assert m.layers == (b, a)


def test_schema1_dispatch_ignores_media_type() -> None:
    """SchemaVersion 1 is schema1 whatever mediaType says (the store dispatches on it first)."""
    doc = schema1_doc([LAYER_A["digest"]], signed=False)
    doc["mediaType"] = DOCKER_MANIFEST
    m = parse(doc)
    assert m.kind is ManifestKind.SCHEMA1
    assert m.media_type == SCHEMA1
    assert m.layers == (LAYER_A["digest"],)


# Docker schema2 ------------------------------------------------------------------------


def test_docker_manifest() -> None:
    """A Docker schema2 manifest yields config and layers; blobs is config + layers."""
    m = parse(docker_manifest())
    assert m.kind is ManifestKind.DOCKER_MANIFEST
    assert m.media_type == DOCKER_MANIFEST
    assert m.config == CONFIG["digest"]
    assert m.layers == (LAYER_A["digest"], LAYER_B["digest"])
    assert m.blobs == (CONFIG["digest"], LAYER_A["digest"], LAYER_B["digest"])
    assert m.annotations == {}
    assert m.artifact_type is None
    assert m.subject is None


def test_blobs_lists_each_digest_once() -> None:
    """A layer repeated in layers[] appears once in blobs, config first."""
    m = parse(docker_manifest([LAYER_A, LAYER_B, LAYER_A]))
    assert m.layers == (LAYER_A["digest"], LAYER_B["digest"], LAYER_A["digest"])
    assert m.blobs == (CONFIG["digest"], LAYER_A["digest"], LAYER_B["digest"])


def test_docker_manifest_list_with_platforms() -> None:
    """A Docker manifest list yields its children with media types and platforms."""
    amd64 = sha(dumps(docker_manifest()))
    arm64 = sha(dumps(docker_manifest([LAYER_B])))
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": amd64,
                "size": 100,
                "platform": {"architecture": "amd64", "os": "linux"},
            },
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": arm64,
                "size": 100,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            },
        ],
    }
    m = parse(doc)
    assert m.kind is ManifestKind.DOCKER_LIST
    assert m.is_index
    assert m.config is None
    assert m.layers == ()
    assert m.blobs == ()
    assert m.children == (
        ChildRef(amd64, DOCKER_MANIFEST, Platform("linux", "amd64")),
        ChildRef(arm64, DOCKER_MANIFEST, Platform("linux", "arm64", "v8")),
    )
    assert [str(c.platform) for c in m.children] == ["linux/amd64", "linux/arm64/v8"]


def test_child_without_platform_or_media_type() -> None:
    """An index entry without platform or mediaType has None for both."""
    child = sha(dumps(oci_manifest()))
    m = parse({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": child}]})
    assert m.children == (ChildRef(child, None, None),)


def test_docker_manifest_without_config_has_no_config() -> None:
    """A schema2 manifest without config decodes (Go's zero descriptor) and names no config."""
    doc = docker_manifest()
    del doc["config"]
    m = parse(doc)
    assert m.kind is ManifestKind.DOCKER_MANIFEST
    assert m.config is None
    assert m.blobs == (LAYER_A["digest"], LAYER_B["digest"])


# OCI -----------------------------------------------------------------------------------


def test_oci_manifest() -> None:
    """An OCI image manifest yields config and layers and keeps annotations."""
    m = parse(oci_manifest(annotations={"org.opencontainers.image.created": "2024-05-01"}))
    assert m.kind is ManifestKind.OCI_MANIFEST
    assert m.config == OCI_CFG["digest"]
    assert m.layers == (OCI_LAYER_A["digest"],)
    assert m.annotations == {"org.opencontainers.image.created": "2024-05-01"}


def test_oci_cosign_signature_with_subject() -> None:
    """A cosign-style signature manifest yields its subject, artifactType and blobs."""
    image = sha(dumps(oci_manifest()))
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": image}}})
    sig_layer = desc(
        COSIGN_SIG,
        payload,
        annotations={"dev.cosignproject.cosign/signature": "MEUCIQDx..."},
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": EMPTY_CONFIG,
        "layers": [sig_layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": 400},
    }
    m = parse(doc)
    assert m.kind is ManifestKind.OCI_MANIFEST
    assert m.subject == image
    assert isinstance(m.subject, Digest)
    assert m.artifact_type == "application/vnd.dev.cosign.artifact.sig.v1+json"
    assert m.blobs == (EMPTY_CONFIG["digest"], sha(payload))


def test_oci_sbom_with_subject() -> None:
    """An SBOM referrer (artifactType application/spdx+json) yields subject and SBOM blob."""
    image = sha(dumps(oci_manifest()))
    sbom = desc(SPDX, '{"spdxVersion":"SPDX-2.3","name":"alpine"}')
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SPDX,
        "config": EMPTY_CONFIG,
        "layers": [sbom],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": 400},
        "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
    }
    m = parse(doc)
    assert m.artifact_type == SPDX
    assert m.subject == image
    assert m.layers == (sbom["digest"],)


def test_oci_index_with_subject() -> None:
    """An OCI index yields its children and its subject."""
    child = sha(dumps(oci_manifest()))
    image = sha(b"the subject image")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": 300}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": 300},
    }
    m = parse(doc)
    assert m.kind is ManifestKind.OCI_INDEX
    assert m.is_index
    assert m.children == (ChildRef(child, OCI_MANIFEST, None),)
    assert m.subject == image
    assert m.artifact_type == "application/vnd.example.bundle"


def test_nested_index() -> None:
    """An index whose entry is itself an index is one child with the index media type."""
    inner = sha(b"an inner index")
    leaf = sha(dumps(oci_manifest()))
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_INDEX, "digest": inner, "size": 500},
            {"mediaType": OCI_MANIFEST, "digest": leaf, "size": 300},
        ],
    }
    m = parse(doc)
    assert [c.digest for c in m.children] == [inner, leaf]
    assert m.children[0].media_type == OCI_INDEX


def test_oci_artifact_manifest() -> None:
    """An OCI artifact manifest yields blobs[] as layers, its subject, no config."""
    subject = sha(dumps(oci_manifest()))
    blob = desc("application/vnd.cncf.notary.signature", b"a notation signature envelope")
    doc = {
        "mediaType": OCI_ARTIFACT,
        "artifactType": "application/vnd.cncf.notary.signature",
        "blobs": [blob],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 300},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": '["abc"]'},
        "schemaVersion": 2,
    }
    m = parse(doc)
    assert m.kind is ManifestKind.OCI_ARTIFACT
    assert m.config is None
    assert m.layers == (blob["digest"],)
    assert m.blobs == (blob["digest"],)
    assert m.subject == subject
    assert m.artifact_type == "application/vnd.cncf.notary.signature"


def test_no_media_type_with_manifests_is_index() -> None:
    """SchemaVersion 2 without mediaType but with manifests[] is an OCI index."""
    child = sha(dumps(oci_manifest()))
    m = parse({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": child}]})
    assert m.kind is ManifestKind.OCI_INDEX
    assert m.media_type == OCI_INDEX
    assert m.children[0].digest == child


def test_no_media_type_is_oci_manifest() -> None:
    """SchemaVersion 2 without mediaType and without manifests[] is an OCI image manifest."""
    doc = oci_manifest()
    del doc["mediaType"]
    m = parse(doc)
    assert m.kind is ManifestKind.OCI_MANIFEST
    assert m.media_type == OCI_MANIFEST
    assert m.config == OCI_CFG["digest"]
    assert m.layers == (OCI_LAYER_A["digest"],)


def test_empty_media_type_is_absent() -> None:
    """An empty mediaType string is read as absent, as Go does."""
    doc = oci_manifest()
    doc["mediaType"] = ""
    assert parse(doc).kind is ManifestKind.OCI_MANIFEST


def test_null_manifests_is_image_manifest() -> None:
    """Without mediaType, manifests: null does not make an index (distribution's nil check)."""
    doc = oci_manifest(manifests=None)
    del doc["mediaType"]
    assert parse(doc).kind is ManifestKind.OCI_MANIFEST


def test_no_media_type_ambiguous_keeps_both_readings() -> None:
    """Without mediaType, manifests[] and layers[]: an index to distribution, an image to its push.

    Both readings' digests are kept: the children as children, config and layers in extra.
    """
    child = sha(b"x")
    doc = oci_manifest(manifests=[{"digest": child}])
    del doc["mediaType"]
    m = parse(doc)
    assert m.kind is ManifestKind.OCI_INDEX
    assert [c.digest for c in m.children] == [child]
    assert set(m.extra) == {OCI_CFG["digest"], OCI_LAYER_A["digest"]}
    assert any("both manifests[] and config/layers" in n for n in m.notes)


def test_foreign_layers() -> None:
    """Layers with non-empty urls are foreign; empty urls are not."""
    foreign_docker = desc(
        DOCKER_FOREIGN,
        b"windows base layer",
        urls=["https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:0123"],
    )
    foreign_oci = desc(OCI_NONDIST, b"nondistributable", urls=["https://example.com/l"])
    local = desc(DOCKER_LAYER, b"app layer", urls=[])
    m = parse(docker_manifest([foreign_docker, foreign_oci, local]))
    assert m.foreign == frozenset({foreign_docker["digest"], foreign_oci["digest"]})
    assert set(m.foreign) <= set(m.layers)
    assert m.layers[-1] == local["digest"]


def test_manifest_is_hashable_and_compares_by_value() -> None:
    """Two parses of the same bytes are equal and hash alike."""
    data = dumps(oci_manifest(annotations={"a": "b"}))
    assert parse_manifest(data) == parse_manifest(data)
    assert hash(parse_manifest(data)) == hash(parse_manifest(data))


def test_exactly_max_size_accepted() -> None:
    """A manifest of exactly MAX_MANIFEST_SIZE bytes is parsed."""
    data = dumps(docker_manifest())
    data += b" " * (MAX_MANIFEST_SIZE - len(data))
    assert len(data) == MAX_MANIFEST_SIZE
    assert parse_manifest(data).kind is ManifestKind.DOCKER_MANIFEST


# Errors --------------------------------------------------------------------------------


def _with_layers(layers: Any) -> bytes:
    doc = docker_manifest()
    doc["layers"] = layers
    return dumps(doc)


def _with(doc: dict[str, Any], **changes: Any) -> bytes:
    return dumps({**doc, **changes})


def _without(doc: dict[str, Any], key: str) -> bytes:
    return dumps({k: v for k, v in doc.items() if k != key})


BAD_LAYER = {"mediaType": DOCKER_LAYER, "digest": "sha256:" + "A" * 64, "size": 1}
LIST_DOC: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": DOCKER_LIST,
    "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha(b"c")}],
}

ERROR_CASES: list[tuple[str, bytes, str]] = [
    ("oversize", b"{" + b" " * MAX_MANIFEST_SIZE + b"}", "more than the 4194304 bytes"),
    ("invalid-json", b'{"schemaVersion": 2,,}', "invalid JSON at line 1 column 21"),
    ("trailing-data", dumps(oci_manifest()) + b"{}", "invalid JSON"),
    ("empty", b"", "invalid JSON"),
    ("not-utf8-outside-strings", b'{"schemaVersion": 2, \xff}', "invalid JSON"),
    ("utf8-bom", b"\xef\xbb\xbf" + dumps(oci_manifest()), "invalid JSON"),
    ("json-array", dumps([oci_manifest()]), "the JSON is an array, not an object"),
    ("json-string", b'"manifest"', "the JSON is a string"),
    ("json-null", b"null", "the JSON is null"),
    ("nan", b'{"schemaVersion": NaN}', "NaN is not valid JSON"),
    ("too-deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("huge-int", b'{"schemaVersion": ' + b"9" * 5000 + b"}", "invalid JSON"),
    ("int64-overflow", b'{"schemaVersion": ' + b"9" * 20 + b"}", "must be an integer"),
    ("numeric-layer-digest", _with_layers([{"digest": 12}]), "layers[0].digest must be a string"),
    ("layer-not-object", _with_layers(["sha256:" + "0" * 64]), "layers[0] must be an object"),
    (
        "layers-string",
        _with_layers(str(LAYER_A["digest"])),
        "layers must be an array, not a string",
    ),
    ("layers-object", _with_layers(LAYER_A), "layers must be an array, not an object"),
    ("urls-string", _with_layers([{**LAYER_A, "urls": "https://x"}]), "layers[0].urls must be"),
    ("size-string", _with_layers([{**LAYER_A, "size": "12"}]), "layers[0].size must be an integer"),
    ("size-fraction", _with_layers([{**LAYER_A, "size": 1.5}]), "layers[0].size must be"),
    (
        "config-string",
        _with(docker_manifest(), config=CONFIG["digest"]),
        "config must be an object",
    ),
    ("string-schema-version", _with(docker_manifest(), schemaVersion="2"), "must be an integer"),
    ("float-schema-version", _with(docker_manifest(), schemaVersion=2.0), "must be an integer"),
    ("bool-schema-version", _with(docker_manifest(), schemaVersion=True), "must be an integer"),
    ("media-type-number", _with(docker_manifest(), mediaType=2), "mediaType must be a string"),
    ("manifests-string", _with(LIST_DOC, manifests="sha256:00"), "manifests must be an array"),
    (
        "platform-string",
        _with(LIST_DOC, manifests=[{"digest": sha(b"c"), "platform": "linux/amd64"}]),
        "manifests[0].platform must be an object",
    ),
    (
        "platform-os-number",
        _with(LIST_DOC, manifests=[{"digest": sha(b"c"), "platform": {"os": 1}}]),
        "manifests[0].platform.os must be a string",
    ),
    (
        "child-media-type-list",
        _with(LIST_DOC, manifests=[{"digest": sha(b"c"), "mediaType": []}]),
        "manifests[0].mediaType must be a string",
    ),
    ("fslayers-string", _with(schema1_doc([], signed=False), fsLayers="x"), "fsLayers must be"),
    ("annotations-list", _with(oci_manifest(), annotations=["a"]), "annotations must be an object"),
    (
        "annotation-value-number",
        _with(oci_manifest(), annotations={"org.example.count": 3}),
        "annotations['org.example.count'] must be a string",
    ),
]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [pytest.param(data, fragment, id=name) for name, data, fragment in ERROR_CASES],
)
def test_errors_name_problem_repository_and_digest(data: bytes, fragment: str) -> None:
    """What Go's json.Unmarshal rejects raises ManifestError naming problem, object, remedy."""
    with pytest.raises(ManifestError) as err:
        parse_manifest(data, repository=REPO, digest=REVISION)
    message = str(err.value)
    assert fragment in message
    assert f"manifest {REVISION} in repository {REPO}: " in message
    assert f"registry-gc rm {REPO}@{REVISION}" in message
    assert "distribution cannot decode it either" in message


TOLERATED_CASES: list[tuple[str, bytes, str]] = [
    (
        "bad-layer-digest",
        _with_layers([LAYER_A, LAYER_B, LAYER_A, BAD_LAYER]),
        "layers[3].digest 'sha256:AAAA",
    ),
    ("md5-layer-digest", _with_layers([{"digest": "md5:" + "0" * 32}]), "layers[0].digest"),
    ("missing-layer-digest", _with_layers([{"size": 3}]), ""),
    ("empty-layer-digest", _with_layers([{"digest": ""}]), "layers[0].digest is empty"),
    (
        "bad-config-digest",
        _with(docker_manifest(), config={"digest": "sha256:short"}),
        "config.digest 'sha256:short' is not a digest",
    ),
    ("oci-without-config", _without(oci_manifest(), "config"), ""),
    (
        "bad-child-digest",
        _with(LIST_DOC, manifests=[*LIST_DOC["manifests"], {"digest": "sha256:zz"}]),
        "manifests[1].digest 'sha256:zz' is not a digest",
    ),
    (
        "bad-subject-digest",
        _with(oci_manifest(), subject={"digest": "sha256:" + "g" * 64}),
        "subject.digest",
    ),
    ("subject-string", _with(oci_manifest(), subject=str(sha(b"s"))), ""),
    ("artifact-type-number", _with(oci_manifest(), artifactType=7), ""),
    (
        "bad-artifact-blob",
        dumps({"schemaVersion": 2, "mediaType": OCI_ARTIFACT, "blobs": [{"digest": "x"}]}),
        "blobs[0].digest 'x' is not a digest",
    ),
    (
        "bad-schema1-blobsum",
        dumps(schema1_doc([LAYER_A["digest"], "sha256:bad"], signed=True)),
        "fsLayers[1].blobSum 'sha256:bad' is not a digest",
    ),
    ("not-utf8-in-string", b'{"schemaVersion": 2, "x": "\xff"}', ""),
]


@pytest.mark.parametrize(
    ("data", "note"),
    [pytest.param(data, note, id=name) for name, data, note in TOLERATED_CASES],
)
def test_what_go_tolerates_is_read(data: bytes, note: str) -> None:
    """What Go decodes without error parses; a reference that names no blob is noted and skipped."""
    m = parse_manifest(data, repository=REPO, digest=REVISION)
    assert m.kind is not ManifestKind.UNKNOWN
    refs = [*m.blobs, *(c.digest for c in m.children), *m.extra]
    assert all(isinstance(d, Digest) for d in refs)
    if note:
        assert any(note in n for n in m.notes), m.notes


UNKNOWN_CASES: list[tuple[str, bytes]] = [
    ("unknown-media-type", _with(oci_manifest(), mediaType="application/vnd.example.thing+json")),
    ("schema1-type-on-v2", _with(docker_manifest(), mediaType=SCHEMA1)),
    ("missing-schema-version", _without(docker_manifest(), "schemaVersion")),
    ("schema-version-3", _with(docker_manifest(), schemaVersion=3)),
]


@pytest.mark.parametrize("data", [pytest.param(data, id=name) for name, data in UNKNOWN_CASES])
def test_unknown_kinds_keep_every_digest_they_name(data: bytes) -> None:
    """A JSON object of a kind distribution does not know: UNKNOWN, uncertain, all digests kept."""
    m = parse_manifest(data, repository=REPO, digest=REVISION)
    assert m.kind is ManifestKind.UNKNOWN
    assert m.uncertain
    document = json.loads(data)
    named = {d["digest"] for key in ("layers",) for d in document.get(key, [])} | (
        {document["config"]["digest"]} if "config" in document else set()
    )
    assert named <= set(m.extra)


def test_error_without_names() -> None:
    """Without repository and digest the message still says what is wrong and what to do."""
    with pytest.raises(ManifestError) as err:
        parse_manifest(b"[]")
    message = str(err.value)
    assert message.startswith("manifest: the JSON is an array")
    assert "registry-gc rm <repository>@<digest>" in message


def test_error_is_value_error() -> None:
    """ManifestError is a ValueError, so callers catching ValueError keep working."""
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_manifest(b"{")


# Properties ----------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "blobs",
        "fsLayers",
        "blobSum",
        "digest",
        "urls",
        "platform",
        "os",
        "architecture",
        "variant",
        "subject",
        "artifactType",
        "annotations",
        "signatures",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "",
            str(sha(b"a")),
            "sha256:" + "A" * 64,
            SCHEMA1,
            SCHEMA1_SIGNED,
            DOCKER_MANIFEST,
            DOCKER_LIST,
            OCI_MANIFEST,
            OCI_INDEX,
            OCI_ARTIFACT,
            "linux",
        ]
    )
    | st.text(max_size=8)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=4), inner),
    max_leaves=25,
)
_MANIFESTISH = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([1, 2]) | _SCALARS},
    optional={
        "mediaType": _SCALARS,
        "config": _JSON,
        "layers": _JSON,
        "manifests": _JSON,
        "blobs": _JSON,
        "fsLayers": _JSON,
        "subject": _JSON,
        "artifactType": _SCALARS,
        "annotations": _JSON,
    },
)


def _never_anything_but_manifest_error(data: bytes) -> None:
    message = None
    try:
        result = parse_manifest(data, repository=REPO, digest=REVISION)
    except ManifestError as exc:
        message = str(exc)
    if message is not None:
        assert f"manifest {REVISION} in repository {REPO}: " in message
        return
    assert isinstance(result, Manifest)
    assert all(isinstance(d, Digest) for d in result.blobs)
    assert result.foreign <= set(result.layers)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_parse_or_manifest_error(data: bytes) -> None:
    """On arbitrary bytes parse_manifest returns a Manifest or raises ManifestError only."""
    _never_anything_but_manifest_error(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_MANIFESTISH | _JSON)
def test_arbitrary_json_parse_or_manifest_error(doc: Any) -> None:
    """On manifest-shaped JSON of any types parse_manifest returns a Manifest or ManifestError."""
    _never_anything_but_manifest_error(json.dumps(doc).encode())


# Go's encoding/json, as distribution reads manifests ------------------------------------

C = str(OCI_CFG["digest"])
A, B, X = str(LAYER_A["digest"]), str(LAYER_B["digest"]), str(sha(b"x"))


def raw(text: str) -> Manifest:
    """Parse a manifest written as raw JSON text (so keys can repeat)."""
    return parse_manifest(text.encode(), repository=REPO, digest=REVISION)


@pytest.mark.parametrize(
    "key", ["layers", "Layers", "LAYERS", "lAyErS", "layer\u017f", "LAYER\u017f"]
)
def test_keys_match_fields_case_insensitively(key: str) -> None:
    """Any case of a field name, and U+017F (long s) for s, is the same field to Go."""
    m = raw(
        f'{{"SchemaVersion": 2, "MEDIATYPE": "{OCI_MANIFEST}", '
        f'"Config": {{"Digest": "{C}"}}, "{key}": [{{"DIGEST": "{A}"}}]}}'
    )
    assert m.kind is ManifestKind.OCI_MANIFEST
    assert m.config == C
    assert m.layers == (A,)


def test_non_ascii_key_that_does_not_fold_matches_nothing() -> None:
    """A key with a character that folds to no ASCII letter is an unknown field (ignored)."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"l\u00e4yers": [{{"digest": "{A}"}}], "layers": []}}'
    )
    assert m.layers == ()


def test_repeated_scalar_last_wins() -> None:
    """A repeated mediaType is read from its last occurrence, whatever its case."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_INDEX}", "MediaType": "{OCI_MANIFEST}", '
        f'"config": {{"digest": "{C}"}}, "layers": []}}'
    )
    assert m.kind is ManifestKind.OCI_MANIFEST


def test_null_leaves_a_string_unchanged() -> None:
    """digest: null after digest: A leaves A (Go: null into a string does nothing)."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [{{"digest": "{A}", "digest": null}}]}}'
    )
    assert m.layers == (A,)


def test_repeated_object_is_merged() -> None:
    """A repeated config decodes into the same struct: fields of the first survive."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"config": {{"size": 7}}, "layers": []}}'
    )
    assert m.config == C


def test_repeated_array_reuses_elements() -> None:
    """A repeated layers[] decodes into the existing elements: digest A survives {size: 3}."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [{{"digest": "{A}"}}, {{"digest": "{B}"}}], "Layers": [{{"size": 3}}]}}'
    )
    assert m.layers == (A,)
    # Which stale element a later, longer array would expose depends on the Go
    # runtime: every digest any occurrence named is kept.
    assert B in m.extra
    assert any("repeated field(s) layers" in n for n in m.notes)


def test_null_array_is_empty() -> None:
    """layers: null after a list empties it (Go sets the slice to nil); the union keeps both."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [{{"digest": "{A}"}}], "layers": null}}'
    )
    assert m.layers == ()
    assert A in m.extra


def test_invalid_utf8_in_strings_is_tolerated() -> None:
    """Invalid UTF-8 inside an annotation value does not stop the read (Go replaces it)."""
    data = (
        (
            f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
            f'"layers": [{{"digest": "{A}", "annotations": {{"t": "'
        ).encode()
        + b"\xff\xfe\xc3"
        + b'"}}]}'
    )
    m = parse_manifest(data)
    assert m.layers == (A,)


def test_unknown_fields_of_any_type_are_ignored() -> None:
    """Fields distribution's structs lack are ignored whatever their type."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [{{"digest": "{A}", "x-extra": [1, {{"a": null}}]}}], "extra": 1.5e400}}'
    )
    assert m.layers == (A,)


def test_subject_of_wrong_type_is_ignored() -> None:
    """Distribution 2.8 has no subject field: a malformed one does not make the body unreadable."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [], "subject": [1]}}'
    )
    assert m.subject is None


def test_subject_key_case_is_folded() -> None:
    """A key spelled SUBJECT is the subject field to a Go reader (cosign, oras)."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{C}"}}, '
        f'"layers": [], "SUBJECT": {{"digest": "{X}"}}}}'
    )
    assert m.subject == X


def test_buildkit_cache_index_entries_are_blobs() -> None:
    """Index entries with non-manifest media types are blobs; untyped ones may be manifests."""
    m = raw(
        f'{{"schemaVersion": 2, "mediaType": "{OCI_INDEX}", "manifests": ['
        f'{{"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": "{C}"}}, '
        f'{{"mediaType": "{OCI_LAYER}", "digest": "{A}"}}, '
        f'{{"mediaType": "{OCI_MANIFEST}", "digest": "{B}"}}, {{"digest": "{X}"}}]}}'
    )
    assert [c.is_blob for c in m.children] == [True, True, False, False]


# -- the plain reading agrees with the full one -------------------------------------------

#: Manifests every registry holds: the plain reading takes these.
PLAIN_BODIES = [
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, "c"),
        "layers": [desc(DOCKER_LAYER, "l1"), desc(DOCKER_FOREIGN, "f", urls=["https://x/f"])],
    },
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example+type",
        "config": desc(OCI_EMPTY, "{}"),
        "layers": [desc(COSIGN_SIG, "sig", annotations={"a": "b"})],
        "subject": desc(OCI_MANIFEST, "subject"),
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z", "é": "ü"},
    },
    {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            desc(OCI_MANIFEST, "amd", platform={"os": "linux", "architecture": "amd64"}),
            desc(
                OCI_MANIFEST,
                "arm",
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
            desc("application/vnd.buildkit.cacheconfig.v0", "cache"),
            {"mediaType": "", "digest": sha("untyped"), "size": 1},
        ],
        "annotations": {},
    },
    {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "unknownField": [1, {"x": None}]},
]


def _variants(body: dict[str, Any]) -> list[bytes]:
    """The body, and bodies one edit away that the plain reading must leave to the full one."""
    text = json.dumps(body)
    out = [dumps(body), text.encode()]
    out.append(text.replace('"layers"', '"Layers"', 1).encode())  # folds onto a field
    out.append(text.replace('"mediaType"', '"mediaType\u017f"', 1).encode())
    out.append(text.replace('"config"', '"config": null, "config"', 1).encode())  # repeated
    out.append(text.replace('"size": 1', '"size": 1.0', 1).encode())  # not an integer
    out.append(text.replace('"size": 1', '"size": 1e999', 1).encode())
    out.append(text.replace('"size": 1', '"size": NaN', 1).encode())
    out.append(text.replace('"sha256:', '"sha256:x', 1).encode())  # not a digest
    out.append(text.replace('"sha256:', '"SHA256:', 1).encode())
    out.append(text.replace('"digest": "sha256', '"digest": null, "x": "sha256', 1).encode())
    out.append(text.replace('"os": "linux"', '"os": "\\ud800"', 1).encode())  # lone surrogate
    out.append(text.replace('"os": "linux"', '"os": null', 1).encode())
    out.append(text.replace("2,", "2.0,", 1).encode())
    out.append(text.replace("2,", "true,", 1).encode())
    out.append(text.replace('"annotations": {', '"annotations": {"n": 1, ', 1).encode())
    out.append(text.replace('"urls": [', '"urls": [5, ', 1).encode())
    out.append(b"\xef\xbb\xbf" + text.encode())  # a byte order mark
    out.append(text.encode().replace(b"linux", b"lin\xffux", 1))  # not UTF-8
    out.append(text.encode("utf-16"))
    out.append(text.replace(DOCKER_MANIFEST, SCHEMA1, 1).encode())
    out.append(text.replace('"mediaType": "' + OCI_INDEX, '"x": "', 1).encode())
    return out


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b, id=f"{b['mediaType'].rsplit('.', 2)[-2]}-{i}")
        for i, b in enumerate(PLAIN_BODIES)
    ],
)
def test_the_plain_reading_agrees_with_the_full_one(body: dict[str, Any]) -> None:
    """Where the plain reading answers, the full reading gives the same; elsewhere it decides."""
    assert parse_plain(dumps(body)) is not None
    for data in _variants(body):
        fast = parse_plain(data)
        try:
            full = _parse(data)
        except GoDecodeError:  # the full reading refuses: the plain one must not answer
            assert fast is None
            continue
        assert fast is None or fast == full
        assert parse_manifest(data) == full


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(PLAIN_BODIES),
    path=st.lists(
        st.sampled_from(["config", "layers", "manifests", 0, 1, "platform", "subject"]), max_size=3
    ),
    key=st.sampled_from(
        ["digest", "size", "urls", "mediaType", "annotations", "os", "Digest", "x"]
    ),
    value=_json_values,
)
def test_the_plain_reading_never_differs(
    base: dict[str, Any], path: list[Any], key: str, value: Any
) -> None:
    """Any value put anywhere: the plain reading gives the full reading's result, or none."""
    body = json.loads(json.dumps(base))
    target: Any = body
    for step in path:
        nxt = target.get(step) if isinstance(target, dict) and isinstance(step, str) else None
        if isinstance(target, list) and isinstance(step, int) and step < len(target):
            nxt = target[step]
        if not isinstance(nxt, dict | list):
            break
        target = nxt
    if isinstance(target, dict):
        target[key] = value
    data = json.dumps(body).encode()
    fast = parse_plain(data)
    try:
        full = _parse(data)
    except GoDecodeError:
        assert fast is None
        return
    assert fast is None or fast == full
