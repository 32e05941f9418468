# Copyright 2026 registry-gc developers
# SPDX-License-Identifier: Apache-2.0
"""What a manifest refers to: the bytes of a manifest in, its references out.

A pure module (no I/O). :func:`parse_manifest` reads a manifest the way CNCF
distribution does — Go's ``encoding/json`` into distribution's structs
(:mod:`registry_gc._gojson`), then the dispatch of its manifest store on
``schemaVersion`` and ``mediaType`` — because what the registry verified on
push and serves on pull is what that reading sees. Where readings could
differ (a repeated array field, a body that is both an index and an image),
the result keeps the union, in :attr:`Manifest.extra`. Kinds it does not know
keep every digest they name, and say so (:attr:`Manifest.uncertain`).

>>> import json
>>> layer = "sha256:" + "1" * 64
>>> m = parse_manifest(json.dumps({
...     "schemaVersion": 2,
...     "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
...     "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
...                "digest": "sha256:" + "c" * 64, "size": 1},
...     "Layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
...                 "digest": layer, "size": 2}],
... }).encode())
>>> m.kind, len(m.blobs)
(<ManifestKind.DOCKER_MANIFEST: 'docker-manifest'>, 2)
"""

from __future__ import annotations

import contextlib
import enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import attrs

from . import _fastmanifest as plain
from . import _gojson as go
from ._errors import ManifestError
from .layout import ALGORITHMS, Digest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "MAX_MANIFEST_SIZE",
    "MEDIA_TYPES",
    "ChildRef",
    "Manifest",
    "ManifestKind",
    "Platform",
    "parse_manifest",
    "parse_plain",
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
    """The kinds of manifest distribution stores, the OCI artifact draft, and the rest."""

    SCHEMA1 = "schema1"
    DOCKER_MANIFEST = "docker-manifest"
    DOCKER_LIST = "docker-list"
    OCI_MANIFEST = "oci-manifest"
    OCI_INDEX = "oci-index"
    OCI_ARTIFACT = "oci-artifact"
    #: a JSON object of a schema version or media type distribution does not know
    UNKNOWN = "unknown"


#: Every manifest media type, and the kind it means.
MEDIA_TYPES: Final[Mapping[str, ManifestKind]] = MappingProxyType(
    {
        SCHEMA1_MEDIA_TYPE: ManifestKind.SCHEMA1,
        SCHEMA1_SIGNED_MEDIA_TYPE: ManifestKind.SCHEMA1,
        "application/json": ManifestKind.SCHEMA1,  # distribution registers it for schema1
        DOCKER_MANIFEST_MEDIA_TYPE: ManifestKind.DOCKER_MANIFEST,
        DOCKER_LIST_MEDIA_TYPE: ManifestKind.DOCKER_LIST,
        OCI_MANIFEST_MEDIA_TYPE: ManifestKind.OCI_MANIFEST,
        OCI_INDEX_MEDIA_TYPE: ManifestKind.OCI_INDEX,
        OCI_ARTIFACT_MEDIA_TYPE: ManifestKind.OCI_ARTIFACT,
    }
)

_INDEX_KINDS: Final = frozenset({ManifestKind.DOCKER_LIST, ManifestKind.OCI_INDEX})
_NO_ANNOTATIONS: Final[Mapping[str, str]] = MappingProxyType({})
_NO_FOREIGN: Final[frozenset[Digest]] = frozenset()

# -- distribution's structs (v2.8.2; the v3 ones read the same reference fields) ---------

_PLATFORM_V1: Final = go.struct(
    architecture=go.STRING,
    os=go.STRING,
    variant=go.STRING,
    **{"os.version": go.STRING, "os.features": go.slice_of(go.STRING)},
)
#: distribution.Descriptor (blobs.go)
_DESCRIPTOR: Final = go.struct(
    mediaType=go.STRING,
    size=go.INT,
    digest=go.STRING,
    urls=go.slice_of(go.STRING),
    annotations=go.map_of(go.STRING),
    platform=go.ptr(_PLATFORM_V1),
)
#: manifestlist.PlatformSpec
_PLATFORM_SPEC: Final = _PLATFORM_V1.extend(features=go.slice_of(go.STRING))
#: manifestlist.ManifestDescriptor: an embedded Descriptor, and its own ``platform``
_MANIFEST_DESCRIPTOR: Final = _DESCRIPTOR.extend(platform=_PLATFORM_SPEC)
#: manifest.Versioned: what the manifest store dispatches on
_VERSIONED: Final = go.struct(schemaVersion=go.INT, mediaType=go.STRING)
#: schema2.Manifest
_SCHEMA2: Final = _VERSIONED.extend(config=_DESCRIPTOR, layers=go.slice_of(_DESCRIPTOR))
#: ocischema.Manifest
_OCI_MANIFEST: Final = _SCHEMA2.extend(annotations=go.map_of(go.STRING))
#: manifestlist.ManifestList (also the OCI index in 2.8)
_LIST: Final = _VERSIONED.extend(manifests=go.slice_of(_MANIFEST_DESCRIPTOR))
#: schema1.Manifest
_SCHEMA1: Final = _VERSIONED.extend(
    name=go.STRING,
    tag=go.STRING,
    architecture=go.STRING,
    fsLayers=go.slice_of(go.struct(blobSum=go.STRING)),
    history=go.slice_of(go.struct(v1Compatibility=go.STRING)),
)
#: The OCI artifact manifest draft (oras-go's ``Artifact``): no registry of ours parses it.
_ARTIFACT: Final = go.struct(
    mediaType=go.STRING,
    artifactType=go.STRING,
    blobs=go.slice_of(_DESCRIPTOR),
    subject=go.ptr(_DESCRIPTOR),
    annotations=go.map_of(go.STRING),
)
#: Fields distribution 2.8 does not model but OCI 1.1 readers do: read leniently.
_OCI_EXTRA: Final = go.struct(
    subject=go.ptr(_DESCRIPTOR),
    artifactType=go.STRING,
    annotations=go.map_of(go.STRING),
)
#: Keys (folded) that make a body without ``mediaType`` look like an image manifest.
_IMAGE_KEYS: Final = frozenset({"config", "layers"})


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
    """An entry of a manifest list or index.

    Usually a child manifest of the same repository; an entry whose media type
    is not a manifest type (a BuildKit cache index lists layer blobs and a
    ``application/vnd.buildkit.cacheconfig.v0`` config) is a blob.
    """

    digest: Digest
    media_type: str | None
    platform: Platform | None

    @property
    def is_blob(self) -> bool:
        """``True`` when the media type says it is not a manifest (absent: it may be one)."""
        return bool(self.media_type) and self.media_type not in MEDIA_TYPES


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
    #: Digests kept because readings of this body may differ (each may be a blob or a
    #: child manifest): every digest the body names when a reference field is repeated,
    #: when it is both an index and an image, or when its kind is unknown.
    extra: tuple[Digest, ...] = ()
    #: ``True`` when what it references cannot be known for sure (an unknown kind): a
    #: live one makes the collector keep everything its repository links.
    uncertain: bool = False
    #: What was tolerated or unusual in reading it (folded keys, repeats, bad digests).
    notes: tuple[str, ...] = ()

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
        f"{_describe(repository, digest)}: {problem}; distribution cannot decode it either, "
        f"so registry-gc cannot know what it references: {remedy}"
    )


class _Reader:
    """Turns a decoded struct into references, noting what it skipped."""

    def __init__(self, declared: str) -> None:
        self.notes: list[str] = []
        self.media_type = declared
        self.config: Digest | None = None
        self.layers: tuple[Digest, ...] = ()
        self.foreign: frozenset[Digest] = frozenset()
        self.children: tuple[ChildRef, ...] = ()
        #: whether every digest the body names is kept (its reading is ambiguous)
        self.union = False

    def digest(self, value: object, where: str) -> Digest | None:
        """A reference's digest, or ``None`` (with a note) when it names nothing storable."""
        if not value:
            if value is not None:
                self.notes.append(f"{where} is empty")
            return None
        assert isinstance(value, str)
        alg, sep, hexpart = value.partition(":")
        length = ALGORITHMS.get(alg)
        if sep and length == len(hexpart) and all(c in "0123456789abcdef" for c in hexpart):
            return Digest._trusted(value)  # noqa: SLF001 - just validated
        # No blob can be stored under it; the registry did not verify it either.
        self.notes.append(f"{where} {value[:80]!r} is not a digest; ignored")
        return None

    def descriptors(
        self, items: list[Any] | None, where: str
    ) -> tuple[tuple[Digest, ...], frozenset[Digest]]:
        refs: list[Digest] = []
        foreign: list[Digest] = []
        for i, item in enumerate(items or ()):
            d = self.digest(item.get("digest") if item else None, f"{where}[{i}].digest")
            if d is None:
                continue
            refs.append(d)
            if item.get("urls"):
                foreign.append(d)
        return tuple(refs), frozenset(foreign)

    def child_refs(self, items: list[Any] | None) -> tuple[ChildRef, ...]:
        out = []
        for i, item in enumerate(items or ()):
            d = self.digest(item.get("digest") if item else None, f"manifests[{i}].digest")
            if d is None:
                continue
            spec = item.get("platform") or {}
            os_, arch = spec.get("os"), spec.get("architecture")
            platform = Platform(os_, arch, spec.get("variant") or None) if os_ and arch else None
            out.append(ChildRef(d, item.get("mediaType") or None, platform))
        return tuple(out)

    def schema1(self, value: dict[str, Any], document: go.Pairs) -> None:
        sums = [
            self.digest(item.get("blobSum") if item else None, f"fsLayers[{i}].blobSum")
            for i, item in enumerate(value.get("fsLayers") or ())
        ]
        self.layers = tuple(dict.fromkeys(d for d in sums if d is not None))
        if MEDIA_TYPES.get(self.media_type) is not ManifestKind.SCHEMA1:
            signed = any(go.fold(k) == "signatures" for k, _ in document)
            self.media_type = SCHEMA1_SIGNED_MEDIA_TYPE if signed else SCHEMA1_MEDIA_TYPE

    def index(self, value: dict[str, Any], document: go.Pairs) -> None:
        self.children = self.child_refs(value.get("manifests"))
        if self.media_type:
            return
        self.media_type = OCI_INDEX_MEDIA_TYPE
        image_keys = sorted(k for k, _ in document if go.fold(k) in _IMAGE_KEYS)
        if image_keys:
            # distribution reads it as an index; a client may read it as an image.
            self.union = True
            self.notes.append(
                f"no mediaType, and both manifests[] and {'/'.join(image_keys)}: an index "
                "to distribution, an image to some clients"
            )

    def artifact(self, value: dict[str, Any], _document: go.Pairs) -> None:
        self.layers, self.foreign = self.descriptors(value.get("blobs"), "blobs")

    def image(self, value: dict[str, Any], _document: go.Pairs) -> None:
        if not self.media_type:
            self.media_type = OCI_MANIFEST_MEDIA_TYPE
        cfg = value.get("config")
        self.config = self.digest(cfg.get("digest") if cfg else None, "config.digest")
        self.layers, self.foreign = self.descriptors(value.get("layers"), "layers")


#: How the references of each known kind are read.
_READ: Final[Mapping[ManifestKind, Callable[[_Reader, dict[str, Any], go.Pairs], None]]] = {
    ManifestKind.SCHEMA1: _Reader.schema1,
    ManifestKind.DOCKER_LIST: _Reader.index,
    ManifestKind.OCI_INDEX: _Reader.index,
    ManifestKind.OCI_ARTIFACT: _Reader.artifact,
    ManifestKind.DOCKER_MANIFEST: _Reader.image,
    ManifestKind.OCI_MANIFEST: _Reader.image,
}


def _lenient(document: object) -> dict[str, Any]:
    """``subject``, ``artifactType`` and ``annotations`` read as an OCI 1.1 client would.

    distribution 2.8 has no such fields, so a wrong type there does not stop it
    from serving the manifest: here it only drops the field.
    """
    out: dict[str, Any] = {}
    if not isinstance(document, go.Pairs):
        return out
    for name in ("subject", "artifactType", "annotations"):
        single = go.Pairs((k, v) for k, v in document if _OCI_EXTRA.field_of(k) == name)
        with contextlib.suppress(go.GoDecodeError):
            out.update(go.decode(_OCI_EXTRA, single).value)
    return out


def _annotations(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict) or not value:
        return _NO_ANNOTATIONS
    return MappingProxyType({k: v for k, v in value.items() if isinstance(v, str)})


#: The struct distribution decodes each declared media type into (``schemaVersion`` 2).
_STRUCTS: Final[Mapping[str, tuple[ManifestKind, go.GoStruct]]] = {
    DOCKER_MANIFEST_MEDIA_TYPE: (ManifestKind.DOCKER_MANIFEST, _SCHEMA2),
    OCI_MANIFEST_MEDIA_TYPE: (ManifestKind.OCI_MANIFEST, _OCI_MANIFEST),
    DOCKER_LIST_MEDIA_TYPE: (ManifestKind.DOCKER_LIST, _LIST),
    OCI_INDEX_MEDIA_TYPE: (ManifestKind.OCI_INDEX, _LIST),
    OCI_ARTIFACT_MEDIA_TYPE: (ManifestKind.OCI_ARTIFACT, _ARTIFACT),
}
_UNKNOWN_KIND: Final = (ManifestKind.UNKNOWN, _VERSIONED)


def _kind_of(
    version: int, declared: str, document: go.Pairs
) -> tuple[ManifestKind, go.GoStruct, bool]:
    """The manifest store's dispatch (``manifestStore.Get``, v2.8.2 and v3.1.1).

    Without a ``mediaType``, distribution decodes the body as an index first and
    keeps that reading when ``manifests`` is a non-nil slice. When that decode
    fails, distribution dereferences a nil result and panics (it can serve the
    body neither way); here it is read as an image, and the caller keeps every
    digest it names (the third value).
    """
    if version != 2:
        kind, typ = (ManifestKind.SCHEMA1, _SCHEMA1) if version == 1 else _UNKNOWN_KIND
        return kind, typ, False
    if declared:
        # A type distribution does not know, schema1 types with version 2 included.
        kind, typ = _STRUCTS.get(declared, _UNKNOWN_KIND)
        return kind, typ, False
    # No mediaType: an index if ``manifests`` decodes to a non-nil slice, else an image.
    try:
        listed = go.decode(_LIST, document).value.get("manifests")
    except go.GoDecodeError:
        return ManifestKind.OCI_MANIFEST, _OCI_MANIFEST, True
    if listed is not None:
        return ManifestKind.OCI_INDEX, _LIST, False
    return ManifestKind.OCI_MANIFEST, _OCI_MANIFEST, False


def parse_manifest(
    data: bytes, *, repository: str | None = None, digest: str | None = None
) -> Manifest:
    """Parse the bytes of a manifest into what it references, as distribution reads them.

    ``repository`` and ``digest`` only name the manifest in error messages.

    Raises:
        ManifestError: distribution could not decode it either: more than 4 MiB,
            not JSON, not an object, or a value of the wrong type in a field
            its struct has. A JSON object of an unknown schema version or media
            type is *not* an error: it comes back as :attr:`ManifestKind.UNKNOWN`
            with every digest it names. Nothing else is raised, whatever the bytes.
    """
    fast = parse_plain(data)
    if fast is not None:
        return fast
    try:
        return _parse(data)
    except go.GoDecodeError as exc:
        raise _error(str(exc), repository, digest) from None


_PLAIN_KINDS: Final = {
    DOCKER_MANIFEST_MEDIA_TYPE: ManifestKind.DOCKER_MANIFEST,
    OCI_MANIFEST_MEDIA_TYPE: ManifestKind.OCI_MANIFEST,
    DOCKER_LIST_MEDIA_TYPE: ManifestKind.DOCKER_LIST,
    OCI_INDEX_MEDIA_TYPE: ManifestKind.OCI_INDEX,
}


def parse_plain(data: bytes) -> Manifest | None:
    """What :func:`parse_manifest` returns, when ``data`` is a plain manifest; else ``None``.

    Plain: what Python's :mod:`json` reads as Go does (``_fastmanifest``), of
    ``schemaVersion`` 2 and a ``mediaType`` of an image manifest or an index.
    Ten times faster than the full reading, which decides everything else.
    """
    doc = plain.load_plain(data, MAX_MANIFEST_SIZE)
    if doc is None:
        return None
    try:
        return _read_plain(doc)
    except plain.NotPlainError:
        return None


def _read_plain(doc: dict[str, Any]) -> Manifest:
    version = doc.get("schemaVersion")
    media_type = doc.get("mediaType")
    if type(version) is not int or version != 2 or type(media_type) is not str:
        raise plain.NotPlainError
    kind = _PLAIN_KINDS.get(media_type)
    if kind is None:
        raise plain.NotPlainError
    index = kind in _INDEX_KINDS
    plain.check_keys(doc, index=index)
    config: Digest | None = None
    layers: list[Digest] = []
    foreign: list[Digest] = []
    children = _plain_children(doc) if index else ()
    if not index:
        if "config" in doc:
            config = plain.digest(plain.descriptor(doc["config"]).get("digest"))
        for item in plain.items_of(doc, "layers"):
            entry = plain.descriptor(item)
            d = plain.digest(entry.get("digest"))
            if d is not None:
                layers.append(d)
                if entry.get("urls"):
                    foreign.append(d)
    subject = None
    if "subject" in doc:
        subject = plain.digest(plain.descriptor(doc["subject"]).get("digest"))
    artifact_type = plain.text(doc["artifactType"]) if "artifactType" in doc else None
    return Manifest(
        kind,
        media_type,
        config,
        tuple(layers),
        frozenset(foreign) if foreign else _NO_FOREIGN,
        children,
        subject,
        artifact_type or None,
        plain.annotations_of(doc.get("annotations")) or _NO_ANNOTATIONS,
    )


def _plain_children(doc: dict[str, Any]) -> tuple[ChildRef, ...]:
    children: list[ChildRef] = []
    for item in plain.items_of(doc, "manifests"):
        entry = plain.descriptor(item)
        d = plain.digest(entry.get("digest"))
        if d is not None:
            spec = entry.get("platform") or {}
            os_, arch = spec.get("os"), spec.get("architecture")
            where = Platform(os_, arch, spec.get("variant") or None) if os_ and arch else None
            children.append(ChildRef(d, entry.get("mediaType") or None, where))
    return tuple(children)


def _document(data: bytes) -> go.Pairs:
    """The body as a JSON object, or the error distribution's decoding gives."""
    if len(data) > MAX_MANIFEST_SIZE:
        msg = (
            f"it is {len(data)} bytes, more than the {MAX_MANIFEST_SIZE} bytes "
            "distribution reads (it cannot serve it either)"
        )
        raise go.GoDecodeError(msg)
    document = go.loads(data)
    if not isinstance(document, go.Pairs):
        go.decode(_VERSIONED, document)  # raises for anything but an object or null
        msg = "the JSON is null, not a manifest"
        raise go.GoDecodeError(msg)
    return document


def _parse(data: bytes) -> Manifest:
    document = _document(data)
    versioned = go.decode(_VERSIONED, document).value
    version: int = versioned.get("schemaVersion", 0)
    declared: str = versioned.get("mediaType", "")
    kind, typ, panics = _kind_of(version, declared, document)
    decoded = go.decode(typ, document)
    value = decoded.value
    reader = _Reader(declared)
    notes = reader.notes
    notes.extend(f"key {k!r} read as its field, case-insensitively" for k in decoded.folded)
    extra = _lenient(document)
    if panics:
        reader.union = True
        notes.append(
            "no mediaType, and manifests[] does not decode: distribution cannot read it "
            "(its index reading fails), so every digest it names is kept"
        )
    if kind is ManifestKind.UNKNOWN:
        reader.union = True
        what = f"media type {declared[:120]!r}" if declared else f"schemaVersion {version}"
        notes.append(f"{what} is not a manifest kind distribution knows")
    else:
        _READ[kind](reader, value, document)
    if decoded.repeated:
        reader.union = True
        notes.append("repeated field(s) " + ", ".join(dict.fromkeys(decoded.repeated)))
    subject_value = value.get("subject") if kind is ManifestKind.OCI_ARTIFACT else None
    subject_value = subject_value or extra.get("subject")
    subject = (
        reader.digest(subject_value.get("digest"), "subject.digest") if subject_value else None
    )
    children = reader.children
    known = {reader.config, *reader.layers, *(c.digest for c in children), subject}
    extras: Iterable[str] = go.digest_strings(document) if reader.union else ()
    artifact_type = value.get("artifactType") or extra.get("artifactType") or None
    return Manifest(
        kind=kind,
        media_type=reader.media_type or kind.value,
        config=reader.config,
        layers=reader.layers,
        foreign=reader.foreign,
        children=children,
        subject=subject,
        artifact_type=artifact_type,
        annotations=_annotations(value.get("annotations") or extra.get("annotations")),
        extra=tuple(Digest._trusted(d) for d in dict.fromkeys(extras) if d not in known),  # noqa: SLF001
        uncertain=kind is ManifestKind.UNKNOWN,
        notes=tuple(notes),
    )
