"""Images, indexes and referrers built as data, in pure Python.

Everything is deterministic from a ``seed`` (an int or a string): the same call gives the
same bytes and digests. Layers are real, small ``tar.gz`` files (one member of seeded
random bytes), so that tools which look inside (skopeo detects compression) behave as
with real images; configs carry matching ``rootfs.diff_ids``.

Objects:

- :class:`Blob` — bytes + media type (+ ``diff_id`` for layers); ``digest``, ``size``,
  ``hex``, :meth:`Blob.descriptor`.
- :class:`Image` — an image manifest (Docker schema2, OCI, or an OCI referrer with a
  ``subject``), its config and layers.
- :class:`Index` — a Docker manifest list or an OCI index and its children.
- :class:`Schema1` — a Docker schema1 manifest (data only: registry 2.8.2 refuses
  schema1 pushes unless ``compatibility.schema1.enabled``).

Builders: :func:`layer`, :func:`docker_image`, :func:`oci_image`, :func:`referrer`,
:func:`docker_manifest_list`, :func:`oci_index`, :func:`multiarch`,
:func:`schema1_manifest`, :func:`oci_artifact_manifest`; and :func:`write_oci_layout`
to lay images out as an OCI layout directory for ``skopeo copy oci:DIR:tag``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator, Mapping, Sequence

# Media types ---------------------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
SBOM_ARTIFACT = "application/spdx+json"
SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"

#: Every manifest media type, for ``Accept`` headers.
MANIFEST_MEDIA_TYPES = (
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
    SCHEMA1_SIGNED_MANIFEST,
    SCHEMA1_MANIFEST,
    OCI_ARTIFACT_MANIFEST,
)

#: The OCI empty descriptor's content.
EMPTY_JSON = b"{}"

DEFAULT_PLATFORMS: tuple[tuple[str, str, str | None], ...] = (
    ("linux", "amd64", None),
    ("linux", "arm64", "v8"),
)


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Serialize a manifest/config deterministically (indented like the docker CLI does)."""
    return json.dumps(obj, indent=3, sort_keys=False).encode()


def _rng(seed: int | str, *salt: object) -> random.Random:
    """A ``random.Random`` seeded from ``seed`` and ``salt`` (stable across runs)."""
    material = repr((seed, *salt)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with a media type.

    ``diff_id`` is the digest of the uncompressed content, for layers (used in configs).
    """

    data: bytes = field(repr=False)
    media_type: str
    diff_id: str | None = None

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the bytes."""
        return sha256_digest(self.data)

    @property
    def hex(self) -> str:
        """The 64 hex digits of the digest."""
        return self.digest.split(":", 1)[1]

    @property
    def size(self) -> int:
        """Length of the bytes."""
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """Return an OCI descriptor ``{mediaType, digest, size, **extra}``."""
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        desc.update(extra)
        return desc

    def __repr__(self) -> str:
        return f"Blob({self.media_type}, {self.digest[:19]}…, {self.size} B)"


@dataclass(frozen=True)
class Platform:
    """An index entry's platform."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def as_json(self) -> dict[str, str]:
        """Return the ``platform`` object of an index descriptor."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Image:
    """An image manifest with its config and layers.

    ``subject`` is set for OCI referrers (the manifest it refers to). ``platform`` is
    used when the image is a child of an index.
    """

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: Platform | None = None
    subject: Image | Index | None = None

    @property
    def digest(self) -> str:
        """Digest of the manifest."""
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        """Media type of the manifest."""
        return self.manifest.media_type

    @property
    def data(self) -> bytes:
        """The manifest bytes."""
        return self.manifest.data

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Config and layers (what must be pushed before the manifest)."""
        return (self.config, *self.layers)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """Descriptor of the manifest (with its platform when set)."""
        if self.platform is not None and "platform" not in extra:
            extra["platform"] = self.platform.as_json()
        return self.manifest.descriptor(**extra)


@dataclass(frozen=True)
class Index:
    """A Docker manifest list or OCI index and its child manifests."""

    manifest: Blob
    children: tuple[Image | Index, ...]
    platform: Platform | None = None
    subject: Image | Index | None = None

    @property
    def digest(self) -> str:
        """Digest of the index manifest."""
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        """Media type of the index manifest."""
        return self.manifest.media_type

    @property
    def data(self) -> bytes:
        """The index bytes."""
        return self.manifest.data

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """An index references no blobs directly."""
        return ()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """Descriptor of the index manifest (with its platform when set)."""
        if self.platform is not None and "platform" not in extra:
            extra["platform"] = self.platform.as_json()
        return self.manifest.descriptor(**extra)


@dataclass(frozen=True)
class Schema1:
    """A Docker schema1 manifest and the layers it names.

    ``manifest`` holds the bytes to PUT (signed ``v1+prettyjws`` or unsigned ``v1+json``);
    ``canonical`` holds the payload without ``signatures``. The registry identifies a
    schema1 manifest by the digest of ``canonical`` (that is :attr:`digest`) and stores
    the canonical bytes as its blob.
    """

    manifest: Blob
    canonical: Blob
    layers: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        """Digest of the canonical (unsigned) payload, as the registry names it."""
        return self.canonical.digest

    @property
    def media_type(self) -> str:
        """The media type to PUT with."""
        return self.manifest.media_type

    @property
    def data(self) -> bytes:
        """The bytes to PUT."""
        return self.manifest.data

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """The layers."""
        return self.layers


Manifest = Image | Index


# Blobs ---------------------------------------------------------------------------------


def layer(seed: int | str, size: int = 1024, media_type: str = OCI_LAYER) -> Blob:
    """Return a real, deterministic ``tar.gz`` layer holding ``size`` seeded random bytes.

    The tar has one regular file ``file-<seed>`` with fixed mtime/owner; gzip mtime is 0.
    ``diff_id`` is the digest of the uncompressed tar.
    """
    payload = _rng(seed, "layer").randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name=f"file-{seed}")
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=1) as stream:
        stream.write(tar_bytes)
    return Blob(gz.getvalue(), media_type, diff_id=sha256_digest(tar_bytes))


def raw_blob(data: bytes, media_type: str = "application/octet-stream") -> Blob:
    """Wrap arbitrary bytes as a blob (e.g. an SBOM or signature payload)."""
    return Blob(data, media_type)


def empty_config() -> Blob:
    """The OCI empty descriptor's blob: ``{}`` with ``application/vnd.oci.empty.v1+json``."""
    return Blob(EMPTY_JSON, OCI_EMPTY)


def image_config(
    layers: Sequence[Blob],
    *,
    platform: Platform | None = None,
    media_type: str = OCI_CONFIG,
    seed: int | str = 0,
) -> Blob:
    """Return an image config JSON whose ``rootfs.diff_ids`` match ``layers``.

    ``seed`` goes into a label, so that equal layer sets can still get distinct configs.
    """
    plat = platform or Platform()
    cfg: dict[str, Any] = {
        "architecture": plat.architecture,
        "os": plat.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"rig.seed": str(seed)},
        },
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id or lay.digest for lay in layers]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"rig layer {i}"}
            for i in range(len(layers))
        ],
    }
    if plat.variant:
        cfg["variant"] = plat.variant
    return Blob(canonical_json(cfg), media_type)


# Image manifests -----------------------------------------------------------------------


def _layers_for(
    seed: int | str, n_layers: int, layer_size: int, media_type: str, shared: Sequence[Blob]
) -> tuple[Blob, ...]:
    own = [layer(f"{seed}/{i}", layer_size, media_type) for i in range(n_layers)]
    return (*shared, *own)


def docker_image(
    seed: int | str,
    *,
    n_layers: int = 2,
    layer_size: int = 1024,
    shared_layers: Sequence[Blob] = (),
    platform: Platform | None = None,
) -> Image:
    """Return a Docker schema2 image: ``shared_layers`` first, then ``n_layers`` own layers."""
    layers = _layers_for(seed, n_layers, layer_size, DOCKER_LAYER, shared_layers)
    config = image_config(layers, platform=platform, media_type=DOCKER_CONFIG, seed=seed)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [lay.descriptor() for lay in layers],
    }
    return Image(Blob(canonical_json(doc), DOCKER_MANIFEST), config, layers, platform)


def oci_image(
    seed: int | str,
    *,
    n_layers: int = 2,
    layer_size: int = 1024,
    shared_layers: Sequence[Blob] = (),
    platform: Platform | None = None,
    subject: Image | Index | None = None,
    artifact_type: str | None = None,
    config: Blob | None = None,
    layers: Sequence[Blob] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """Return an OCI image manifest.

    By default: ``shared_layers`` then ``n_layers`` seeded layers, and a matching config.
    ``config``/``layers`` replace those (artifacts); ``subject`` makes it a referrer;
    ``artifact_type`` sets ``artifactType``.
    """
    if layers is None:
        lays = _layers_for(seed, n_layers, layer_size, OCI_LAYER, shared_layers)
    else:
        lays = tuple(layers)
    cfg = config or image_config(lays, platform=platform, media_type=OCI_CONFIG, seed=seed)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = cfg.descriptor()
    doc["layers"] = [lay.descriptor() for lay in lays]
    if subject is not None:
        doc["subject"] = subject.manifest.descriptor()
    if annotations:
        doc["annotations"] = dict(annotations)
    return Image(Blob(canonical_json(doc), OCI_MANIFEST), cfg, lays, platform, subject)


def referrer(
    subject: Image | Index,
    seed: int | str,
    *,
    artifact_type: str = SBOM_ARTIFACT,
    payload: bytes | None = None,
    payload_media_type: str | None = None,
) -> Image:
    """Return an OCI referrer (SBOM, signature…) of ``subject``, to be pushed by digest.

    The manifest has ``artifactType``, the empty config (``application/vnd.oci.empty.v1+json``
    ``{}``), one layer holding ``payload`` (seeded JSON by default) and ``subject``.
    """
    if payload is None:
        payload = json.dumps(
            {"rig": "referrer", "seed": str(seed), "subject": subject.digest}
        ).encode()
    blob = Blob(payload, payload_media_type or artifact_type)
    return oci_image(
        seed,
        subject=subject,
        artifact_type=artifact_type,
        config=empty_config(),
        layers=[blob],
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )


def oci_artifact_manifest(
    subject: Image | Index | None, blobs: Sequence[Blob], *, artifact_type: str = SBOM_ARTIFACT
) -> Image:
    """Return an OCI *artifact* manifest (``…oci.artifact.manifest.v1+json``, ``blobs[]``).

    Data only: this media type was dropped from the OCI spec and registry 2.8.2 rejects
    it. ``Image.config`` is the empty blob (not referenced by the manifest).
    """
    doc: dict[str, Any] = {
        "mediaType": OCI_ARTIFACT_MANIFEST,
        "artifactType": artifact_type,
        "blobs": [b.descriptor() for b in blobs],
    }
    if subject is not None:
        doc["subject"] = subject.manifest.descriptor()
    return Image(
        Blob(canonical_json(doc), OCI_ARTIFACT_MANIFEST),
        empty_config(),
        tuple(blobs),
        None,
        subject,
    )


def schema1_manifest(
    seed: int | str,
    *,
    name: str = "library/app",
    tag: str = "latest",
    n_layers: int = 2,
    layer_size: int = 512,
    shared_layers: Sequence[Blob] = (),
    signed: bool = True,
) -> Schema1:
    """Return a Docker schema1 manifest (``fsLayers[].blobSum``, ``history``).

    ``signed`` (default) adds a libtrust JWS ``signatures`` block made with a fresh
    ECDSA P-256 key (needs the ``cryptography`` package, a dependency of moto), media
    type ``v1+prettyjws``. Registry 2.8.2 accepts schema1 pushes only with
    ``compatibility.schema1.enabled: true`` and only signed ones ("missing signature
    key" otherwise). ``name``/``tag`` should match the repository and tag pushed to.
    """
    layers = _layers_for(seed, n_layers, layer_size, DOCKER_LAYER, shared_layers)
    doc = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": "amd64",
        # schema1 lists layers top-most first.
        "fsLayers": [{"blobSum": lay.digest} for lay in reversed(layers)],
        "history": _schema1_history(seed, layers),
    }
    payload = canonical_json(doc)
    canonical = Blob(payload, SCHEMA1_MANIFEST)
    if not signed:
        return Schema1(canonical, canonical, layers)
    return Schema1(Blob(_libtrust_sign(payload), SCHEMA1_SIGNED_MANIFEST), canonical, layers)


def _schema1_history(seed: int | str, layers: Sequence[Blob]) -> list[dict[str, str]]:
    """``history`` entries (top-most first) with a consistent v1 ``id``/``parent`` chain."""
    ids = [hashlib.sha256(f"{seed}/v1/{i}".encode()).hexdigest() for i in range(len(layers))]
    entries: list[dict[str, str]] = []
    for i in range(len(layers)):  # i = 0 is the base layer
        v1: dict[str, Any] = {"id": ids[i], "created": "2024-01-01T00:00:00Z"}
        if i > 0:
            v1["parent"] = ids[i - 1]
        if i == len(layers) - 1:
            v1.update({"architecture": "amd64", "os": "linux", "config": {}})
        entries.append({"v1Compatibility": json.dumps(v1, separators=(",", ":"))})
    return entries[::-1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_sign(content: bytes) -> bytes:
    """Sign indented JSON ``content`` the way docker/libtrust ``PrettySignature`` does."""
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: PLC0415
        decode_dss_signature,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    numbers = pub.public_numbers()
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    kid = ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))
    jwk = {
        "crv": "P-256",
        "kid": kid,
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    close = len(content.rstrip()) - 1
    if content[close : close + 1] != b"}":
        raise ValueError("schema1 content must be a JSON object")
    format_length = len(content[:close].rstrip())
    format_tail = content[format_length:]
    protected = _b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64url(format_tail),
                "time": "2024-01-01T00:00:00Z",
            },
            separators=(",", ":"),
        ).encode()
    )
    signing_input = f"{protected}.{_b64url(content)}".encode()
    der_sig = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der_sig)
    signature = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    sigs = [
        {"header": {"jwk": jwk, "alg": "ES256"}, "signature": signature, "protected": protected}
    ]
    indent = "   "
    block = json.dumps(sigs, indent=3).replace("\n", "\n" + indent)
    return (
        content[:format_length]
        + b",\n"
        + indent.encode()
        + b'"signatures": '
        + block.encode()
        + b"\n}"
    )


# Indexes -------------------------------------------------------------------------------


def _index_doc(
    media_type: str,
    children: Sequence[Image | Index],
    subject: Image | Index | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [child.descriptor() for child in children]
    if subject is not None:
        doc["subject"] = subject.manifest.descriptor()
    if annotations:
        doc["annotations"] = dict(annotations)
    return doc


def docker_manifest_list(children: Sequence[Image | Index]) -> Index:
    """Return a Docker manifest list over ``children`` (each should have a ``platform``)."""
    doc = _index_doc(DOCKER_MANIFEST_LIST, children)
    return Index(Blob(canonical_json(doc), DOCKER_MANIFEST_LIST), tuple(children))


def oci_index(
    children: Sequence[Image | Index],
    *,
    subject: Image | Index | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
) -> Index:
    """Return an OCI image index over ``children`` (nested indexes allowed)."""
    doc = _index_doc(OCI_INDEX, children, subject, artifact_type, annotations)
    return Index(Blob(canonical_json(doc), OCI_INDEX), tuple(children), platform, subject)


def multiarch(
    seed: int | str,
    *,
    kind: str = "oci",
    platforms: Iterable[tuple[str, str, str | None]] = DEFAULT_PLATFORMS,
    n_layers: int = 1,
    layer_size: int = 1024,
    shared_layers: Sequence[Blob] = (),
) -> Index:
    """Return a multi-arch image: an OCI index (``kind="oci"``) or Docker manifest list.

    One child per ``(os, architecture, variant)`` in ``platforms`` (default linux/amd64 and
    linux/arm64/v8), each with its own layers after ``shared_layers``.
    """
    children: list[Image] = []
    for os_, arch, variant in platforms:
        plat = Platform(os_, arch, variant)
        child_seed = f"{seed}/{os_}/{arch}/{variant or ''}"
        if kind == "oci":
            children.append(
                oci_image(
                    child_seed,
                    n_layers=n_layers,
                    layer_size=layer_size,
                    shared_layers=shared_layers,
                    platform=plat,
                )
            )
        elif kind == "docker":
            children.append(
                docker_image(
                    child_seed,
                    n_layers=n_layers,
                    layer_size=layer_size,
                    shared_layers=shared_layers,
                    platform=plat,
                )
            )
        else:
            raise ValueError(f"kind must be 'oci' or 'docker', not {kind!r}")
    return oci_index(children) if kind == "oci" else docker_manifest_list(children)


# Walking -------------------------------------------------------------------------------


def iter_manifests(obj: Image | Index | Schema1) -> Iterator[Image | Index | Schema1]:
    """Yield ``obj`` and, for indexes, every descendant manifest (children first, depth-first).

    The subject of a referrer is not included (it is pushed on its own).
    """
    if isinstance(obj, Index):
        for child in obj.children:
            yield from iter_manifests(child)
    yield obj


def all_blobs(obj: Image | Index | Schema1) -> dict[str, Blob]:
    """Return ``{digest: blob}`` of every blob ``obj`` needs in the store.

    That is: each manifest (the index and its children) plus every config and layer.
    """
    out: dict[str, Blob] = {}
    for man in iter_manifests(obj):
        out[man.manifest.digest] = man.manifest
        for blob in man.blobs:
            out[blob.digest] = blob
    return out


def layer_blobs(obj: Image | Index | Schema1) -> dict[str, Blob]:
    """Return ``{digest: blob}`` of the configs and layers (no manifests) under ``obj``."""
    out: dict[str, Blob] = {}
    for man in iter_manifests(obj):
        for blob in man.blobs:
            out[blob.digest] = blob
    return out


# OCI layout ----------------------------------------------------------------------------


def write_oci_layout(
    dest: str | os.PathLike[str],
    images: Mapping[str, Image | Index] | Sequence[tuple[str, Image | Index]],
) -> Path:
    """Write an OCI image layout directory holding ``images`` under their tags.

    ``images`` maps a tag (``org.opencontainers.image.ref.name``) to an image or index.
    Writes ``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>`` for every manifest,
    config and layer (indexes recursively; a referrer's subject is not included unless
    it is given too). An existing layout at ``dest`` is extended (blobs added, entries
    with the same tag replaced). Returns ``dest``. Use with
    ``skopeo copy [--all] oci:DEST:TAG docker://…``.
    """
    root = Path(dest)
    blobs_dir = root / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = root / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    items = list(images.items()) if hasattr(images, "items") else list(images)
    for tag, obj in items:
        for blob in all_blobs(obj).values():
            path = blobs_dir / blob.hex
            if not path.exists():
                path.write_bytes(blob.data)
        index["manifests"] = [
            d
            for d in index["manifests"]
            if d.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
        ]
        desc = obj.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
        index["manifests"].append(desc)
    index_path.write_text(json.dumps(index, indent=2))
    return root
