"""A small, realistic registry to try registry-gc on: ``registry-gc demo DIR``.

:func:`write_demo_registry` writes, into an empty directory, the storage a
registry (CNCF distribution 2.8) would hold after a month of use — file for
file in the layout the registry writes, so that ``docker-registry serve``
serves it and every tag pulls:

- ``acme/web:latest`` pushed twenty times, once every day and a half over the
  last thirty days (a Docker image: a base layer shared by every build, a
  dependencies layer rebuilt every seven builds, an application layer per
  build); the ninth build is also tagged ``v1.0``;
- the last five builds of ``latest`` signed the way ``cosign`` does with OCI
  1.1 referrers (a signature manifest with a ``subject``, pushed by digest),
  and ``v1.0`` signed with cosign's tag scheme (tag ``sha256-<hex>.sig``);
- ``acme/tools:stable``, a multi-arch OCI index (``linux/amd64`` and
  ``linux/arm64/v8``) pushed twice, three weeks apart;
- an upload of ``acme/web`` abandoned three days ago.

Every file's modification time is its push time, so everything is older than
the default grace period (1 hour) and the upload older than the default upload
age (24 hours). The content is fixed (seeded): the same digests and sizes on
every machine; only the times move with ``now``. The signatures are shaped like
cosign's but sign nothing: they cannot be verified.

>>> import tempfile
>>> demo = write_demo_registry(tempfile.mkdtemp())
>>> sorted(demo.tags)[:2]
[('acme/tools', 'stable'), ('acme/web', 'latest')]
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import struct
import tarfile
import zlib
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import TargetNotEmptyError
from .layout import (
    BlobData,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    repository_prefix,
)
from .manifests import (
    DOCKER_MANIFEST_MEDIA_TYPE,
    OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
)
from .report import human_bytes

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["DemoRegistry", "write_demo_registry"]

WEB = Repository("acme/web")
TOOLS = Repository("acme/tools")
#: Builds of ``acme/web:latest``, one every 36 hours; the last one is a day old.
BUILDS = 20
#: The build that is also tagged ``v1.0``.
RELEASE_BUILD = 8
#: Builds from this one on are signed with a referrer.
FIRST_SIGNED_BUILD = 15

#: What the demo registry holds, in a few lines (``registry-gc demo`` prints them).
STORY = (
    (
        f"acme/web:latest    pushed {BUILDS} times in 30 days; the last "
        f"{BUILDS - FIRST_SIGNED_BUILD} builds signed (cosign, OCI referrers)"
    ),
    f"acme/web:v1.0      build {RELEASE_BUILD + 1} of latest, signed (cosign, a .sig tag)",
    "acme/tools:stable  multi-arch (linux/amd64, linux/arm64/v8), pushed twice",
    "acme/web           an upload abandoned 3 days ago",
)

_DAY = 86400.0
#: Content timestamps (tar members, configs): fixed, so that digests never change.
_EPOCH = datetime.datetime(2025, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"


@attrs.frozen
class DemoRegistry:
    """What :func:`write_demo_registry` wrote.

    ``root`` is the registry's ``rootdirectory``; ``tags`` maps every
    ``(repository, tag)`` to the digest it points at; ``files`` is the number
    of files written and ``bytes`` the bytes of all blobs.
    """

    root: str
    tags: Mapping[tuple[Repository, Tag], Digest]
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``registry-gc demo DIR --json``)."""
        return {
            "schema": "registry-gc/demo/v1",
            "root": self.root,
            "files": self.files,
            "bytes": self.bytes,
            "tags": [
                {"repository": repository, "tag": tag, "digest": digest}
                for (repository, tag), digest in self.tags.items()
            ],
        }

    def render(self) -> str:
        """What was written, for a terminal."""
        size = human_bytes(self.bytes)
        lines = [f"registry-gc demo: wrote a registry to {self.root} ({self.files} files, {size})"]
        lines.extend(f"  {line}" for line in STORY)
        return "\n".join(lines)


# -- content -----------------------------------------------------------------------------


def _noise(seed: str, size: int) -> bytes:
    """``size`` bytes that look random and are the same everywhere."""
    return hashlib.shake_256(seed.encode()).digest(size)


def _digest(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def _gzip(data: bytes) -> bytes:
    """``data`` as a gzip stream of stored deflate blocks.

    Stored blocks, written by hand, give the same bytes with every zlib
    (zlib-ng included); the layers hold random bytes, which would not compress.
    """
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # mtime 0, OS unknown (as Go)
    chunks = [data[i : i + 0xFFFF] for i in range(0, len(data), 0xFFFF)] or [b""]
    for i, chunk in enumerate(chunks):
        final = 1 if i == len(chunks) - 1 else 0
        out += struct.pack("<BHH", final, len(chunk), len(chunk) ^ 0xFFFF) + chunk
    out += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return bytes(out)


@attrs.frozen
class _Blob:
    data: bytes = attrs.field(repr=False)
    media_type: str
    #: digest of the uncompressed content (layers)
    diff_id: Digest | None = None

    @property
    def digest(self) -> Digest:
        return _digest(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


def _layer(files: Sequence[tuple[str, bytes]], media_type: str, when: datetime.datetime) -> _Blob:
    """A gzipped tar of ``files`` (path, content), owned by root, dated ``when``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = int(when.timestamp())
            info.mode = 0o755 if "/bin/" in name else 0o644
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return _Blob(_gzip(tar_bytes), media_type, _digest(tar_bytes))


def _json(doc: Mapping[str, Any]) -> bytes:
    # Indented with three spaces, as the docker CLI and distribution's tools write manifests.
    return json.dumps(doc, indent=3).encode()


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _config(
    layers: Sequence[_Blob],
    *,
    media_type: str,
    created: datetime.datetime,
    architecture: str = "amd64",
    variant: str | None = None,
    cmd: Sequence[str],
    labels: Mapping[str, str],
    steps: Sequence[str],
) -> _Blob:
    doc: dict[str, Any] = {"architecture": architecture}
    doc["config"] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": list(cmd),
        "Labels": dict(labels),
    }
    doc["created"] = _stamp(created)
    doc["history"] = [{"created": _stamp(created), "created_by": step} for step in steps]
    doc["os"] = "linux"
    doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    if variant:
        doc["variant"] = variant
    return _Blob(_json(doc), media_type)


def _image(config: _Blob, layers: Sequence[_Blob], media_type: str) -> _Blob:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return _Blob(_json(doc), media_type)


def _cosign_payload(repository: str, digest: Digest) -> _Blob:
    doc = {
        "critical": {
            "identity": {"docker-reference": f"registry.example.com/{repository}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return _Blob(json.dumps(doc, separators=(",", ":")).encode(), COSIGN_PAYLOAD)


def _cosign_annotation(payload: _Blob) -> dict[str, str]:
    # A signature-shaped string: 70 bytes, like an ECDSA P-256 signature in DER. Signs nothing.
    fake = base64.b64encode(_noise(f"signature {payload.digest}", 70)).decode()
    return {"dev.cosignproject.cosign/signature": fake}


# -- the push log ------------------------------------------------------------------------


@attrs.define
class _Writer:
    """Writes files as the registry does, each dated by the push that wrote it."""

    root: str
    now: float
    tags: dict[tuple[Repository, Tag], Digest] = attrs.Factory(dict)
    #: blob digest → size
    blobs: dict[Digest, int] = attrs.Factory(dict)
    _paths: set[str] = attrs.Factory(set)

    @property
    def files(self) -> int:
        return len(self._paths)

    def _put(self, path: str, data: bytes, age: float, *, overwrite: bool = False) -> None:
        """Write ``path`` (under the root) dated ``age`` seconds ago, unless it exists."""
        if path in self._paths and not overwrite:
            return
        full = os.path.join(self.root, *path.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        stamp = self.now - age
        os.utime(full, (stamp, stamp))
        self._paths.add(path)

    def _blob(self, blob: _Blob, age: float) -> Digest:
        digest = blob.digest
        self._put(BlobData(digest).path, blob.data, age)
        self.blobs[digest] = len(blob.data)
        return digest

    def blob(self, repository: Repository, blob: _Blob, age: float) -> None:
        """Upload a config or layer: the blob (once) and its ``_layers`` link in ``repository``."""
        digest = self._blob(blob, age)
        self._put(LayerLink(repository, digest).path, digest.encode(), age)
        # Completed uploads leave the repository's (empty) _uploads directory behind.
        uploads = os.path.join(self.root, *repository_prefix(repository).split("/"), "_uploads")
        os.makedirs(uploads, exist_ok=True)

    def manifest(
        self, repository: Repository, manifest: _Blob, age: float, tag: str | None = None
    ) -> Digest:
        """Put a manifest by digest, or under ``tag``: blob, revision link, tag links."""
        digest = self._blob(manifest, age)
        link = digest.encode()
        self._put(RevisionLink(repository, digest).path, link, age)
        if tag is not None:
            name = Tag(tag)
            self._put(TagIndexLink(repository, name, digest).path, link, age)
            self._put(TagCurrentLink(repository, name).path, link, age, overwrite=True)
            self.tags[repository, name] = digest
        return digest

    def push_image(
        self,
        repository: Repository,
        config: _Blob,
        layers: Iterable[_Blob],
        manifest: _Blob,
        *,
        age: float,
        tag: str | None = None,
    ) -> Digest:
        """Push an image: its layers and config, then its manifest (under ``tag``, if given)."""
        for blob in (*layers, config):
            self.blob(repository, blob, age)
        return self.manifest(repository, manifest, age, tag)

    def abandoned_upload(
        self, repository: Repository, upload: str, data: bytes, age: float
    ) -> None:
        """An upload that received ``data`` in one PATCH and was never finished."""
        started = datetime.datetime.fromtimestamp(self.now - age, datetime.timezone.utc)
        self._put(UploadFile(repository, upload, "startedat").path, _stamp(started).encode(), age)
        self._put(
            UploadFile(repository, upload, "hashstates/sha256/0").path, _sha256_state(b""), age
        )
        # The PATCH came a few seconds after the POST.
        self._put(UploadFile(repository, upload, "data").path, data, age - 5)
        self._put(
            UploadFile(repository, upload, f"hashstates/sha256/{len(data)}").path,
            _sha256_state(data),
            age - 5,
        )


# -- the state of a SHA-256 hash, as Go marshals it (upload hashstates) -------------------

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_H0 = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_MASK = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _MASK


def _compress(h: list[int], block: bytes) -> None:
    """One SHA-256 block into the state ``h`` (FIPS 180-4, section 6.2.2)."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, hh = h
    for i in range(64):
        t1 = hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, hh = (t1 + t2) & _MASK, a, b, c, (d + t1) & _MASK, e, f, g
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _MASK


def _sha256_state(data: bytes) -> bytes:
    r"""The SHA-256 state after ``data``, as Go's ``MarshalBinary`` writes it (108 bytes).

    The registry stores it at ``_uploads/<id>/hashstates/sha256/<offset>`` to resume
    hashing an upload: ``"sha\x03"``, the eight state words, the unhashed tail
    padded to a block, and the length, big-endian.
    """
    h = list(_H0)
    full = len(data) - len(data) % 64
    for i in range(0, full, 64):
        _compress(h, data[i : i + 64])
    tail = data[full:]
    return (
        b"sha\x03" + struct.pack(">8I", *h) + tail.ljust(64, b"\0") + struct.pack(">Q", len(data))
    )


# -- the story ---------------------------------------------------------------------------


def _web(w: _Writer) -> None:
    """``acme/web``: twenty builds of ``latest``, a release, signatures, an abandoned upload."""
    base_when = _EPOCH - datetime.timedelta(days=40)
    base = _layer(
        [
            ("etc/os-release", b'PRETTY_NAME="Demo Linux 12"\nID=demo\nVERSION_ID="12"\n'),
            ("usr/lib/libdemo.so.1", _noise("base libdemo", 40 * 1024)),
            ("usr/bin/busybox", _noise("base busybox", 20 * 1024)),
        ],
        DOCKER_LAYER,
        base_when,
    )
    deps: _Blob | None = None
    signed: list[tuple[Digest, float]] = []
    for build in range(BUILDS):
        when = _EPOCH + datetime.timedelta(days=1.5 * build)
        age = (29.5 - 1.5 * build) * _DAY
        if build % 7 == 0:
            deps = _layer(
                [("usr/local/lib/demo/vendor.bin", _noise(f"deps {build}", 24 * 1024))],
                DOCKER_LAYER,
                when,
            )
        assert deps is not None
        app = _layer(
            [
                ("srv/web/bin/web", _noise(f"app {build}", 12 * 1024)),
                ("srv/web/VERSION", f"1.0.{build}\n".encode()),
            ],
            DOCKER_LAYER,
            when,
        )
        layers = (base, deps, app)
        config = _config(
            layers,
            media_type=DOCKER_CONFIG,
            created=when,
            cmd=["/srv/web/bin/web"],
            labels={"org.opencontainers.image.version": f"1.0.{build}"},
            steps=["ADD rootfs.tar /", "COPY vendor/ /usr/local/lib/demo/", "COPY web /srv/web/"],
        )
        manifest = _image(config, layers, DOCKER_MANIFEST_MEDIA_TYPE)
        digest = w.push_image(WEB, config, layers, manifest, age=age, tag="latest")
        if build == RELEASE_BUILD:
            w.manifest(WEB, manifest, age - 600, "v1.0")
            _sign_with_tag(w, WEB, digest, age - 900)
        if build >= FIRST_SIGNED_BUILD:
            signed.append((digest, age - 300))
    for digest, age in signed:
        _sign_with_referrer(w, WEB, digest, age)
    w.abandoned_upload(
        WEB,
        "5b1d1f0e-7d3c-4a55-9e2b-3c6f0a9d2e41",
        _gzip(_noise("an interrupted push", 9 * 1024))[: 6 * 1024],
        3 * _DAY,
    )


def _sign_with_referrer(w: _Writer, repository: Repository, subject: Digest, age: float) -> None:
    """``cosign sign`` with OCI 1.1 referrers: a manifest with a ``subject``, pushed by digest."""
    payload = _cosign_payload(repository, subject)
    empty = _Blob(b"{}", OCI_EMPTY)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "artifactType": COSIGN_SIGNATURE,
        "config": empty.descriptor(),
        "layers": [payload.descriptor(annotations=_cosign_annotation(payload))],
        "subject": {
            "mediaType": DOCKER_MANIFEST_MEDIA_TYPE,
            "digest": subject,
            "size": w.blobs[subject],
        },
    }
    w.push_image(repository, empty, [payload], _Blob(_json(doc), OCI_MANIFEST_MEDIA_TYPE), age=age)


def _sign_with_tag(w: _Writer, repository: Repository, subject: Digest, age: float) -> None:
    """``cosign sign`` with its tag scheme: a signature image tagged ``sha256-<hex>.sig``."""
    payload = _cosign_payload(repository, subject)
    config_doc = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [payload.digest]},
        "config": {},
    }
    config = _Blob(json.dumps(config_doc, separators=(",", ":")).encode(), OCI_CONFIG)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": [payload.descriptor(annotations=_cosign_annotation(payload))],
    }
    manifest = _Blob(_json(doc), OCI_MANIFEST_MEDIA_TYPE)
    tag = f"{subject.algorithm}-{subject.hex}.sig"
    w.push_image(repository, config, [payload], manifest, age=age, tag=tag)


def _tools(w: _Writer) -> None:
    """``acme/tools:stable``: a two-platform OCI index, pushed a second time three weeks later."""
    platforms = (("amd64", None), ("arm64", "v8"))
    for release, age in ((1, 24 * _DAY), (2, 3 * _DAY)):
        when = _EPOCH + datetime.timedelta(days=7 * release)
        children: list[dict[str, Any]] = []
        for architecture, variant in platforms:
            name = f"{architecture}{variant or ''}"
            layers = (
                _layer(
                    [("usr/local/bin/tool", _noise(f"tools {release} {name}", 16 * 1024))],
                    OCI_LAYER,
                    when,
                ),
            )
            config = _config(
                layers,
                media_type=OCI_CONFIG,
                created=when,
                architecture=architecture,
                variant=variant,
                cmd=["/usr/local/bin/tool"],
                labels={"org.opencontainers.image.version": f"2.{release}.0"},
                steps=["COPY tool /usr/local/bin/"],
            )
            manifest = _image(config, layers, OCI_MANIFEST_MEDIA_TYPE)
            w.push_image(TOOLS, config, layers, manifest, age=age)
            platform = {"architecture": architecture, "os": "linux"}
            if variant:
                platform["variant"] = variant
            children.append(manifest.descriptor(platform=platform))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": children}
        w.manifest(TOOLS, _Blob(_json(index), OCI_INDEX_MEDIA_TYPE), age, "stable")


def write_demo_registry(
    path: str | os.PathLike[str], *, now: datetime.datetime | float | None = None
) -> DemoRegistry:
    """Write the demo registry's storage into ``path`` and say what it holds.

    ``path`` becomes the registry's ``rootdirectory`` (the files go under
    ``path/docker/registry/v2``). It may not exist yet; if it does, it must be
    an empty directory, else :class:`~registry_gc.TargetNotEmptyError` is
    raised and nothing is written. File times count back from ``now``
    (default: the current time).
    """
    root = os.fspath(path)
    if os.path.exists(root):
        if not os.path.isdir(root):
            msg = f"{root} exists and is not a directory: give a new or empty directory"
            raise TargetNotEmptyError(msg)
        if os.listdir(root):
            msg = (
                f"{root} is not empty: the demo registry goes into a new or empty directory "
                f"(remove it first, or give another one)"
            )
            raise TargetNotEmptyError(msg)
    if isinstance(now, datetime.datetime):
        reference = now.timestamp()
    else:
        reference = datetime.datetime.now(datetime.timezone.utc).timestamp() if now is None else now
    os.makedirs(root, exist_ok=True)
    writer = _Writer(root, reference)
    _web(writer)
    _tools(writer)
    return DemoRegistry(
        root, dict(sorted(writer.tags.items())), writer.files, sum(writer.blobs.values())
    )
