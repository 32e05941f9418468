# Copyright 2026 registry-gc developers
# SPDX-License-Identifier: Apache-2.0
"""What a manifest refers to: the bytes of a manifest in, its references out.

A pure module (no I/O). :func:`parse_manifest` follows the dispatch of CNCF
distribution's manifest store (``schemaVersion``, then ``mediaType``) and is
stricter wherever a lax reading could lose data: anything it does not fully
understand raises :class:`~registry_gc.ManifestError`, and the collector then
refuses to sweep rather than guess.

>>> import json
>>> layer = "sha256:" + "1" * 64
>>> m = parse_manifest(json.dumps({
...     "schemaVersion": 2,
...     "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
...     "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
...                "digest": "sha256:" + "c" * 64, "size": 1},
...     "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
...                 "digest": layer, "size": 2}],
... }).encode())
>>> m.kind, len(m.blobs)
(<ManifestKind.DOCKER_MANIFEST: 'docker-manifest'>, 2)
"""

from __future__ import annotations

import enum
import json
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn

import attrs

from ._errors import InvalidReferenceError, ManifestError
from .layout import Digest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_MANIFEST_SIZE",
    "MEDIA_TYPES",
    "ChildRef",
    "Manifest",
    "ManifestKind",
    "Platform",
    "parse_manifest",
]

#: Distribution refuses to read a manifest larger than this (``maxBlobGetSize``).
MAX_MANIFEST_SIZE: Final = 4 * 1024 * 1024

SCHEMA1_MEDIA_TYPE: Final = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED_MEDIA_TYPE: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST_MEDIA_TYPE: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_MEDIA_TYPE: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST_MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX_MEDIA_TYPE: Final = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT_MEDIA_TYPE: Final = "application/vnd.oci.artifact.manifest.v1+json"


class ManifestKind(enum.Enum):
    """The kinds of manifest distribution stores (plus the OCI artifact manifest)."""

    SCHEMA1 = "schema1"
    DOCKER_MANIFEST = "docker-manifest"
    DOCKER_LIST = "docker-list"
    OCI_MANIFEST = "oci-manifest"
    OCI_INDEX = "oci-index"
    OCI_ARTIFACT = "oci-artifact"


#: Every media type :func:`parse_manifest` accepts, and the kind it means.
MEDIA_TYPES: Final[Mapping[str, ManifestKind]] = MappingProxyType(
    {
        SCHEMA1_MEDIA_TYPE: ManifestKind.SCHEMA1,
        SCHEMA1_SIGNED_MEDIA_TYPE: ManifestKind.SCHEMA1,
        DOCKER_MANIFEST_MEDIA_TYPE: ManifestKind.DOCKER_MANIFEST,
        DOCKER_LIST_MEDIA_TYPE: ManifestKind.DOCKER_LIST,
        OCI_MANIFEST_MEDIA_TYPE: ManifestKind.OCI_MANIFEST,
        OCI_INDEX_MEDIA_TYPE: ManifestKind.OCI_INDEX,
        OCI_ARTIFACT_MEDIA_TYPE: ManifestKind.OCI_ARTIFACT,
    }
)

_INDEX_KINDS: Final = frozenset({ManifestKind.DOCKER_LIST, ManifestKind.OCI_INDEX})
_NO_ANNOTATIONS: Final[Mapping[str, str]] = MappingProxyType({})


@attrs.frozen
class Platform:
    """The platform of an index entry.

    >>> str(Platform("linux", "arm64", "v8"))
    'linux/arm64/v8'
    """

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@attrs.frozen
class ChildRef:
    """An entry of a manifest list or index: a child manifest of the same repository."""

    digest: Digest
    media_type: str | None
    platform: Platform | None


@attrs.frozen
class Manifest:
    """What one manifest refers to. Holds no copy of the raw JSON."""

    kind: ManifestKind
    #: The declared media type, or the implied one (schema1, or no ``mediaType``).
    media_type: str
    config: Digest | None
    #: ``layers[]``, schema1 ``fsLayers[].blobSum`` (deduplicated, order kept) or
    #: artifact ``blobs[]``.
    layers: tuple[Digest, ...]
    #: The layers that carry ``urls`` (non-distributable): may be absent from storage.
    foreign: frozenset[Digest]
    children: tuple[ChildRef, ...]
    subject: Digest | None
    artifact_type: str | None
    #: Top-level annotations (an empty mapping when there are none).
    annotations: Mapping[str, str] = attrs.field(default=_NO_ANNOTATIONS, hash=False)

    @property
    def blobs(self) -> tuple[Digest, ...]:
        """Config (if any) then layers, each once: what must be in ``blobs/`` and ``_layers``."""
        if self.config is None:
            if len(set(self.layers)) == len(self.layers):
                return self.layers
            return tuple(dict.fromkeys(self.layers))
        return tuple(dict.fromkeys((self.config, *self.layers)))

    @property
    def is_index(self) -> bool:
        """Whether this is a Docker manifest list or an OCI index."""
        return self.kind in _INDEX_KINDS


class _Invalid(Exception):  # noqa: N818 - internal signal, turned into ManifestError
    """A problem found while walking the JSON; carries the message fragment."""


def _fail(problem: str) -> NoReturn:
    raise _Invalid(problem)


def _describe(repository: str | None, digest: str | None) -> str:
    name = "manifest"
    if digest:
        name += f" {digest}"
    if repository:
        name += f" in repository {repository}"
    return name


def _error(problem: str, repository: str | None, digest: str | None) -> ManifestError:
    if repository and digest:
        remedy = f"fix or delete it (registry-gc rm {repository}@{digest})"
    else:
        remedy = "fix or delete it (registry-gc rm <repository>@<digest>)"
    return ManifestError(
        f"{_describe(repository, digest)}: {problem}; the revision cannot be parsed, "
        f"so registry-gc will not sweep: {remedy}"
    )


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _reject_constant(name: str) -> NoReturn:
    # Go's encoding/json (and so distribution) rejects NaN and Infinity.
    raise ValueError(f"{name} is not valid JSON")


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    _fail(f"{where}{key} must be a string, not {_type_name(value)}")


def _digest(value: object, field: str) -> Digest:
    if not isinstance(value, str):
        if value is None:
            _fail(f"{field} is missing")
        _fail(f"{field} must be a string, not {_type_name(value)}")
    try:
        return Digest(value)
    except InvalidReferenceError as exc:
        _fail(f"{field}: {exc}")


def _array(obj: dict[str, Any], key: str) -> list[Any]:
    """``obj[key]`` as a list; absent or ``null`` is empty, like Go's nil slice."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(f"{key} must be an array, not {_type_name(value)}")
    return value


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(f"{field} must be an object, not {_type_name(value)}")
    return value


def _descriptor_digest(value: object, field: str) -> Digest:
    return _digest(_object(value, field).get("digest"), f"{field}.digest")


def _layers(obj: dict[str, Any], key: str) -> tuple[tuple[Digest, ...], frozenset[Digest]]:
    layers: list[Digest] = []
    foreign: list[Digest] = []
    for i, item in enumerate(_array(obj, key)):
        field = f"{key}[{i}]"
        desc = _object(item, field)
        digest = _digest(desc.get("digest"), f"{field}.digest")
        layers.append(digest)
        urls = desc.get("urls")
        if urls is not None:
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                _fail(f"{field}.urls must be an array of strings")
            if urls:
                foreign.append(digest)
    return tuple(layers), frozenset(foreign)


def _platform(value: object, field: str) -> Platform | None:
    if value is None:
        return None
    desc = _object(value, field)
    where = f"{field}."
    os_ = _opt_str(desc, "os", where)
    arch = _opt_str(desc, "architecture", where)
    variant = _opt_str(desc, "variant", where)
    if not os_ or not arch:
        return None
    return Platform(os_, arch, variant or None)


def _children(obj: dict[str, Any]) -> tuple[ChildRef, ...]:
    children: list[ChildRef] = []
    for i, item in enumerate(_array(obj, "manifests")):
        field = f"manifests[{i}]"
        desc = _object(item, field)
        children.append(
            ChildRef(
                _digest(desc.get("digest"), f"{field}.digest"),
                _opt_str(desc, "mediaType", f"{field}."),
                _platform(desc.get("platform"), f"{field}.platform"),
            )
        )
    return tuple(children)


def _annotations(obj: dict[str, Any]) -> Mapping[str, str]:
    value = obj.get("annotations")
    if value is None:
        return _NO_ANNOTATIONS
    annotations = _object(value, "annotations")
    if not annotations:
        return _NO_ANNOTATIONS
    for key, item in annotations.items():
        if not isinstance(item, str):
            _fail(f"annotations[{key[:100]!r}] must be a string, not {_type_name(item)}")
    return annotations


def _schema1(obj: dict[str, Any], media_type: str | None) -> Manifest:
    if media_type is None:
        media_type = SCHEMA1_SIGNED_MEDIA_TYPE if "signatures" in obj else SCHEMA1_MEDIA_TYPE
    elif MEDIA_TYPES.get(media_type) is not ManifestKind.SCHEMA1:
        _fail(f"schemaVersion 1 with media type {media_type[:200]!r}, which is not a schema1 type")
    sums: dict[Digest, None] = {}
    for i, item in enumerate(_array(obj, "fsLayers")):
        field = f"fsLayers[{i}]"
        sums[_digest(_object(item, field).get("blobSum"), f"{field}.blobSum")] = None
    return Manifest(
        kind=ManifestKind.SCHEMA1,
        media_type=media_type,
        config=None,
        layers=tuple(sums),
        foreign=frozenset(),
        children=(),
        subject=None,
        artifact_type=None,
    )


def _schema2(obj: dict[str, Any], declared: str | None) -> Manifest:
    if declared is None:
        # OCI allows omitting mediaType; distribution tries an index first.
        if obj.get("manifests") is not None:
            if obj.get("config") is not None or obj.get("layers") is not None:
                _fail(
                    "no mediaType, and both manifests[] and config/layers: "
                    "it is neither clearly an index nor an image manifest"
                )
            kind, media_type = ManifestKind.OCI_INDEX, OCI_INDEX_MEDIA_TYPE
        else:
            kind, media_type = ManifestKind.OCI_MANIFEST, OCI_MANIFEST_MEDIA_TYPE
    else:
        found = MEDIA_TYPES.get(declared)
        if found is None:
            _fail(
                f"unknown media type {declared[:200]!r} (distribution's garbage-collect "
                "aborts on it too)"
            )
        if found is ManifestKind.SCHEMA1:
            _fail(f"schemaVersion 2 with the schema1 media type {declared!r}")
        kind, media_type = found, declared

    config: Digest | None = None
    layers: tuple[Digest, ...] = ()
    foreign: frozenset[Digest] = frozenset()
    children: tuple[ChildRef, ...] = ()
    if kind in _INDEX_KINDS:
        children = _children(obj)
    elif kind is ManifestKind.OCI_ARTIFACT:
        layers, foreign = _layers(obj, "blobs")
    else:
        if obj.get("config") is None:
            _fail(f"an image manifest ({media_type}) without config")
        config = _descriptor_digest(obj["config"], "config")
        layers, foreign = _layers(obj, "layers")

    subject_value = obj.get("subject")
    subject = None if subject_value is None else _descriptor_digest(subject_value, "subject")
    return Manifest(
        kind=kind,
        media_type=media_type,
        config=config,
        layers=layers,
        foreign=foreign,
        children=children,
        subject=subject,
        artifact_type=_opt_str(obj, "artifactType", ""),
        annotations=_annotations(obj),
    )


def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_SIZE:
        _fail(
            f"it is {len(data)} bytes, more than the {MAX_MANIFEST_SIZE} bytes "
            "distribution reads (it cannot serve it either)"
        )
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        _fail(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except RecursionError:
        _fail("invalid JSON: nested too deeply")
    except ValueError as exc:  # e.g. an integer beyond int_max_str_digits, NaN
        _fail(f"invalid JSON: {str(exc)[:200]}")
    if not isinstance(obj, dict):
        _fail(f"the JSON is {_type_name(obj)}, not an object")
    return obj


def parse_manifest(
    data: bytes, *, repository: str | None = None, digest: str | None = None
) -> Manifest:
    """Parse the bytes of a manifest into what it references.

    ``repository`` and ``digest`` only name the manifest in error messages.

    Raises:
        ManifestError: the manifest is too large, not a JSON object, of an unknown
            schema version or media type, or has a field of the wrong type or a
            malformed digest. Nothing else is raised, whatever the bytes.
    """
    try:
        obj = _load(data)
        version = obj.get("schemaVersion")
        media_type = _opt_str(obj, "mediaType", "")
        if media_type == "":
            media_type = None  # Go reads an empty string as absent
        if version is None:
            _fail("schemaVersion is missing")
        if isinstance(version, bool) or not isinstance(version, int):
            _fail(f"schemaVersion must be an integer, not {_type_name(version)}")
        if version == 1:
            return _schema1(obj, media_type)
        if version == 2:
            return _schema2(obj, media_type)
        _fail(f"unsupported schemaVersion {version if abs(version) < 10**9 else '(huge)'}")
    except _Invalid as exc:
        raise _error(str(exc), repository, digest) from None
