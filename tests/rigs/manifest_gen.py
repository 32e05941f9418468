"""Generated manifest bodies for the differential test against the real registry.

The registry's reading of a manifest is Go's ``encoding/json`` reading, which is
laxer than a strict JSON reader in ways that matter to a collector:

- object keys match struct fields case-insensitively (``"Layers"``, ``"MANIFESTS"``,
  and with Unicode folding ``"layer\u017f"``: U+017F long s folds to ``s``);
- a repeated key's last value wins; a repeated *object* is decoded into the struct the
  first one filled (fields the second lacks survive), a repeated *array* into the
  slice the first one filled (element ``i`` keeps the fields the second's element
  ``i`` lacks; extra elements are cut off);
- ``null`` into a string, number or struct field leaves it unchanged (into a pointer,
  slice or map it sets nil);
- invalid UTF-8 inside strings is replaced by U+FFFD, never rejected;
- unknown fields are ignored.

This module generates *cases* that use those tolerances, with hypothesis (fixed seeds
in CI). A case is one repository's worth of pushes: blobs, child manifests, manifests
pushed as plain blobs (as registry 2.1.0 linked them), the manifest bodies themselves
(raw bytes, so that keys can repeat, change case and carry invalid UTF-8), the
``Content-Type`` each is PUT with, tags or push by digest, deletions through the API
afterwards, and the generator's own record of what each body means to Go:

- ``subject``: the referrer edge as an OCI client reads it (the registry 2.8.2 does
  not model ``subject`` at all, so nothing else can tell);
- ``verified`` / ``unverified``: digests the generator expects the registry to check
  (or not) when the body is PUT. The differential test measures that by probing; the
  record only lets it check that this generator's model of Go agrees.

What the registry does with each body (accepts it or not, which references it checks,
what it serves) is never taken from here: :mod:`tests.rigs.differential` asks the
registry.

Entry points: :func:`case_plans` (a hypothesis strategy of :class:`CasePlan`),
:func:`materialize` (a plan → a :class:`Case` with bytes and digests),
:func:`generate_cases` (N bodies' worth of cases, deterministic).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tests.rigs import oci

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterable, Mapping

# -- media types ------------------------------------------------------------------------

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_NONDIST_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
CUSTOM_LAYER = "application/vnd.example.thing.v1+tar"
CUSTOM_CONFIG = "application/vnd.example.config.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
UNKNOWN_MANIFEST = "application/vnd.example.manifest.v1+json"

#: Bytes that are not UTF-8 (Go replaces each bad sequence by U+FFFD).
INVALID_UTF8 = (
    b"\xff",
    b"caf\xe9",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xc0\xaf",  # overlong
    b"\xe2\x82",  # truncated
)

#: U+017F LATIN SMALL LETTER LONG S: Go matches it to ``s`` and ``S`` in keys.
LONG_S = "\u017f"

_DIGEST_BYTES = re.compile(rb"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}")

# -- JSON text with Go's tolerances -----------------------------------------------------


@dataclass(frozen=True)
class RawStr:
    """A JSON string written from raw bytes between the quotes (may hold invalid UTF-8)."""

    raw: bytes


@dataclass(frozen=True)
class EscKey:
    r"""A key written with every letter as a ``\u00XX`` escape (Go and Python unescape it)."""

    name: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as written: members in order, keys as spelled, duplicates allowed."""

    members: tuple[tuple[str | EscKey | RawStr, Any], ...]


@dataclass(frozen=True)
class Ref:
    """The digest (or size) of a blob or manifest of the case, resolved when rendered.

    ``alg`` names a blob by another algorithm (the registry keeps a ``_layers`` alias
    link for a blob uploaded under a sha512 digest).
    """

    target: str
    field: str = "digest"
    alg: str = "sha256"


@dataclass(frozen=True)
class Never:
    """A digest that nothing ever pushes (stable per name)."""

    name: str

    @property
    def digest(self) -> str:
        """``sha256:`` of the name: never the digest of anything pushed."""
        return "sha256:" + hashlib.sha256(f"never-pushed/{self.name}".encode()).hexdigest()


@dataclass(frozen=True)
class RepoName:
    """The case's repository name (schema1 ``name``)."""


def render(value: Any, resolve: Callable[[Any], Any], *, indent: int | None = None) -> bytes:
    """Write ``value`` as JSON text; placeholders go through ``resolve`` first.

    Objects are :class:`Obj` (duplicates and spellings kept); ``RawStr`` is written raw.
    """
    out: list[bytes] = []
    _write(value, resolve, indent, 0, out)
    return b"".join(out)


def _key_bytes(key: str | EscKey | RawStr) -> bytes:
    if isinstance(key, RawStr):
        return b'"' + key.raw + b'"'
    if isinstance(key, EscKey):
        return ('"' + "".join(f"\\u{ord(c):04x}" for c in key.name) + '"').encode()
    return json.dumps(key, ensure_ascii=False).encode()


def _write(
    value: Any, resolve: Callable[[Any], Any], indent: int | None, level: int, out: list[bytes]
) -> None:
    if isinstance(value, (Ref, Never, RepoName)):
        value = resolve(value)
    if isinstance(value, RawStr):
        out.append(b'"' + value.raw + b'"')
        return
    if isinstance(value, Obj):
        items = value.members
        if not items:
            out.append(b"{}")
            return
        out.append(b"{")
        for i, (key, item) in enumerate(items):
            if i:
                out.append(b",")
            if indent is not None:
                out.append(b"\n" + b" " * (indent * (level + 1)))
            out.append(_key_bytes(key))
            out.append(b": " if indent is not None else b":")
            _write(item, resolve, indent, level + 1, out)
        if indent is not None:
            out.append(b"\n" + b" " * (indent * level))
        out.append(b"}")
        return
    if isinstance(value, (list, tuple)):
        if not value:
            out.append(b"[]")
            return
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            if indent is not None:
                out.append(b"\n" + b" " * (indent * (level + 1)))
            _write(item, resolve, indent, level + 1, out)
        if indent is not None:
            out.append(b"\n" + b" " * (indent * level))
        out.append(b"]")
        return
    out.append(json.dumps(value, ensure_ascii=False).encode())


# -- plans ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobPlan:
    """A blob of the case: a real tar.gz layer, a config, or some JSON.

    ``shared`` blobs have the same bytes in every case (sharing across repositories).
    ``layers`` names the layers whose diff_ids a config lists.
    """

    name: str
    kind: str  # "layer" | "config" | "json" | "empty"
    shared: bool = False
    layers: tuple[str, ...] = ()


@dataclass
class ManifestPlan:
    """A manifest body to render: its JSON tree, how it is PUT, and what it means to Go."""

    name: str
    doc: Obj
    content_type: str
    indent: int | None = 3
    schema1: bool = False
    #: the referrer edge as Go clients read it (``None``: not a referrer)
    subject: Ref | Never | None = None
    #: digests the generator expects the registry to check on PUT
    verified: set[Ref | Never] = field(default_factory=set)
    #: digests the generator expects the registry not to check
    unverified: set[Ref | Never] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class StepPlan:
    """One push or deletion; ``repo`` is ``""`` (the case's) or a suffix (``"-sig"``).

    ``op``: ``blob`` (upload ``target`` under ``alg``), ``manifest`` (PUT ``target`` by
    ``ref``: a tag, or ``None`` for its digest, or ``"@fallback"`` for the
    ``sha256-<hex of subject>`` tag), ``manifest-blob`` (upload a manifest's bytes as a
    plain blob: how registry 2.1.0 linked manifests), ``delete-manifest``,
    ``delete-blob``.
    """

    op: str
    target: str
    repo: str = ""
    ref: str | None = None
    alg: str = "sha256"


@dataclass
class CasePlan:
    """Everything one case pushes, symbolically (no bytes yet)."""

    kind: str
    blobs: dict[str, BlobPlan] = field(default_factory=dict)
    manifests: dict[str, ManifestPlan] = field(default_factory=dict)
    steps: list[StepPlan] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)


# -- the quirk engine -------------------------------------------------------------------


def fold(key: str | EscKey | RawStr) -> str:
    """The field a key selects in Go (case-insensitive, long s as s); raw keys fold to ''."""
    if isinstance(key, RawStr):
        return ""
    name = key.name if isinstance(key, EscKey) else key
    return name.replace(LONG_S, "s").lower()


def member(obj: Obj, key: str, *, present: bool = False) -> Any:
    """The last value written under a spelling of ``key`` that is not null (else None).

    With ``present``: whether any spelling of ``key`` is written at all.
    """
    found = None
    for k, v in obj.members:
        if fold(k) == key.lower():
            if present:
                return True
            if v is not None:
                found = v
    return False if present else found


def spellings(key: str) -> list[str | EscKey]:
    """Every spelling of ``key`` Go matches to the same field (the key itself first)."""
    out: list[str | EscKey] = [key, key[0].upper() + key[1:], key.upper(), key.lower()]
    low = key.lower()
    if "s" in low:
        i = low.rindex("s")
        out.append(key[:i] + LONG_S + key[i + 1 :])
    out.append(EscKey(key))
    seen: list[str | EscKey] = []
    for s in out:
        if s not in seen:
            seen.append(s)
    return seen


class Quirks:
    """Applies Go-tolerated variations while building objects, recording their classes.

    ``level`` is the chance (in %) of each variation at each point; 0 writes plain JSON.
    Every variation keeps the meaning Go reads unless the caller records otherwise.
    """

    def __init__(self, rnd: random.Random, classes: set[str], level: int) -> None:
        self.rnd = rnd
        self.classes = classes
        self.level = level

    def chance(self, percent: int | None = None) -> bool:
        """Draw True with about ``percent`` (default: the case's level) chance."""
        p = self.level if percent is None else percent
        if p <= 0:
            return False
        return bool(self.rnd.randint(0, 99) < p)

    def spell(self, key: str) -> str | EscKey:
        """The key as written: usually itself, sometimes another spelling Go matches."""
        if not self.chance():
            return key
        spelled = self.rnd.choice(spellings(key)[1:])
        if isinstance(spelled, EscKey):
            self.classes.add("key-escaped")
        elif LONG_S in spelled:
            self.classes.add("key-long-s")
        else:
            self.classes.add("key-case")
        return spelled

    def unknown_value(self) -> Any:
        """A value for an unknown field (sometimes with invalid UTF-8)."""
        kind = self.rnd.randint(0, 4)
        if kind == 0:
            return "extra"
        if kind == 1:
            return Obj((("nested", [1, 2, None]),))
        if kind == 2:
            return 12345
        if kind == 3:
            self.classes.add("invalid-utf8")
            return RawStr(b"x" + self.rnd.choice(INVALID_UTF8))
        return [Obj((("mediaType", "text/plain"), ("digest", Never("unknown-field").digest)))]

    def obj(
        self,
        fields: Iterable[tuple[str, Any]],
        *,
        decoys: Mapping[str, Callable[[], Any]] | None = None,
        nullable: Iterable[str] = (),
        partial: Mapping[str, Callable[[], Any]] | None = None,
        unknown: bool = True,
    ) -> Obj:
        """Build an object from ``(key, value)`` pairs with variations.

        - ``decoys[key]()`` gives a value Go overwrites: written *before* the real one,
          under any spelling (a repeated key, last wins).
        - keys in ``nullable`` may be repeated with ``null`` after (a no-op for Go's
          string, number and struct fields).
        - ``partial[key]()`` gives a value Go merges into the real one without changing
          what it references: written *after* the real one.
        - unknown fields may be inserted anywhere.
        """
        decoys = decoys or {}
        partial = partial or {}
        nullable = set(nullable)
        groups: list[list[tuple[str | EscKey, Any]]] = []
        for key, value in fields:
            group: list[tuple[str | EscKey, Any]] = []
            if key in decoys and self.chance():
                self.classes.add("repeated-key")
                group.append((self.spell(key), decoys[key]()))
            group.append((self.spell(key), value))
            if key in nullable and self.chance(self.level // 2):
                self.classes.add("repeated-key-null")
                group.append((self.spell(key), None))
            if key in partial and self.chance(self.level // 2):
                self.classes.add("repeated-key-partial")
                group.append((self.spell(key), partial[key]()))
            groups.append(group)
        if unknown and self.chance(self.level // 2):
            self.classes.add("unknown-field")
            name = self.rnd.choice(["x-extra", "io.example.field", "zz", "Blobz"])
            pos = self.rnd.randint(0, len(groups))
            groups.insert(pos, [(name, self.unknown_value())])
        if len(groups) > 1 and self.chance(self.level // 3):
            self.classes.add("key-order")
            order = self.rnd.sample(range(len(groups)), len(groups))
            groups = [groups[i] for i in order]
        return Obj(tuple(m for g in groups for m in g))

    def annotations(self, where: str) -> Obj | None:
        """Maybe an ``annotations`` map (values or keys sometimes not UTF-8)."""
        if not self.chance(self.level + 10):
            return None
        members: list[tuple[str | EscKey | RawStr, Any]] = [
            ("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        ]
        if self.chance():
            self.classes.add("invalid-utf8")
            bad = self.rnd.choice(INVALID_UTF8)
            if self.chance(30):
                members.append((RawStr(f"io.example.{where}.".encode() + bad), "v"))
            else:
                members.append(("io.example.note", RawStr(b"bad " + bad + b" bytes")))
        if self.chance(self.level // 2):
            self.classes.add("lone-surrogate-escape")
            members.append(("io.example.surrogate", RawStr(b"\\ud800 alone")))
        return Obj(tuple(members))


# -- building cases ---------------------------------------------------------------------


class Builder:
    """Accumulates a :class:`CasePlan` while choosing its shape."""

    def __init__(self, rnd: random.Random, kind: str) -> None:
        self.rnd = rnd
        self.plan = CasePlan(kind)
        self.q = Quirks(rnd, self.plan.classes, rnd.choice([0, 0, 10, 20, 35, 60]))
        self._n = 0

    # names --------------------------------------------------------------------------

    def begin(self, m: ManifestPlan) -> set[str]:
        """Record variations into ``m``'s classes until :meth:`end`; return the outer set."""
        outer = self.q.classes
        self.q.classes = m.classes
        return outer

    def end(self, m: ManifestPlan, outer: set[str]) -> None:
        """Stop recording into ``m``; its classes count for the case too."""
        self.q.classes = outer
        self.plan.classes |= m.classes

    def fresh(self, prefix: str) -> str:
        """A new name for a blob or manifest of this case."""
        self._n += 1
        return f"{prefix}{self._n}"

    # blobs --------------------------------------------------------------------------

    def blob(
        self,
        kind: str,
        *,
        shared: bool = False,
        layers: tuple[str, ...] = (),
        repo: str = "",
        push: bool = True,
        alg: str = "sha256",
    ) -> str:
        """Plan a blob and (when ``push``) its upload into ``repo``; return its name."""
        name = f"shared-{kind}-{self.rnd.randint(0, 3)}" if shared else self.fresh(kind)
        self.plan.blobs.setdefault(name, BlobPlan(name, kind, shared, layers))
        if push:
            self.push_blob(name, repo=repo, alg=alg)
        return name

    def push_blob(self, name: str, *, repo: str = "", alg: str = "sha256") -> None:
        """Upload blob ``name`` into ``repo`` (once per repository and algorithm)."""
        step = StepPlan("blob", name, repo, alg=alg)
        if step not in self.plan.steps:
            self.plan.steps.append(step)

    def descriptor(
        self,
        media_type: str | None,
        target: Ref | Never,
        *,
        extra: Iterable[tuple[str, Any]] = (),
        size: Any = None,
    ) -> Obj:
        """A descriptor object with variations (decoy digests Go overwrites, merges…)."""
        fields: list[tuple[str, Any]] = []
        if media_type is not None:
            fields.append(("mediaType", media_type))
        fields.append(("digest", target))
        size_value = (
            size
            if size is not None
            else (Ref(target.target, "size") if isinstance(target, Ref) else 3)
        )
        fields.append(("size", size_value))
        fields.extend(extra)
        decoy_target = Never(self.fresh("decoy"))
        return self.q.obj(
            fields,
            decoys={"digest": lambda: decoy_target.digest, "mediaType": lambda: "text/plain"},
            nullable=("mediaType", "digest", "size"),
        )

    def _decoy_descriptor(self, like: Obj | None = None) -> Obj:
        """A descriptor Go overwrites completely: only keys the real one (``like``) has too.

        Its digest was never pushed, so the registry accepting the body shows that Go
        read the real one.
        """
        members: list[tuple[str, Any]] = []
        if like is None or member(like, "mediaType", present=True):
            members.append(("mediaType", "text/plain"))
        members += [("digest", Never(self.fresh("decoy")).digest), ("size", 1)]
        return Obj(tuple(members))

    def _partial_descriptor(self, real: Obj) -> Obj:
        """A second occurrence Go merges into ``real`` without changing what it means.

        It has no ``digest`` (so the first one's stays): the same ``size`` or
        ``mediaType`` again, or an empty ``annotations`` map (merged into nothing).
        """
        options: list[tuple[str, Any]] = [("annotations", Obj(()))]
        for key in ("size", "mediaType"):
            value = member(real, key)
            if value is not None:
                options.append((key, value))
        return Obj((self.rnd.choice((options)),))

    def descriptors_field(
        self, key: str, descs: list[Obj]
    ) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any]]]:
        """Decoy and partial makers for an array of descriptors under ``key``."""
        n = len(descs)

        def decoy() -> list[Obj]:
            m = self.rnd.randint(0, n + 2)
            return [self._decoy_descriptor(descs[i] if i < n else None) for i in range(m)]

        def partial() -> list[Obj]:
            return [self._partial_descriptor(d) for d in descs]

        return {key: decoy}, ({key: partial} if n else {})

    # manifests ----------------------------------------------------------------------

    def content_type(self, media_type: str) -> str:
        """The Content-Type to PUT with: the media type, sometimes with parameters or case."""
        if not self.q.chance(self.q.level // 2):
            return media_type
        self.q.classes.add("content-type-variant")
        return self.rnd.choice([f"{media_type}; charset=utf-8", media_type.upper()])

    def put(self, name: str, ref: str | None, *, repo: str = "") -> None:
        """PUT manifest ``name`` by tag (or by digest when ``ref`` is None)."""
        self.plan.steps.append(StepPlan("manifest", name, repo, ref=ref))

    def put_as_blob(self, name: str, *, repo: str = "") -> None:
        """Upload manifest ``name`` as a plain blob only (a registry 2.1.0 ``_layers`` link)."""
        self.plan.classes.add("legacy-layers-link")
        self.plan.manifests[name].classes.add("legacy-layers-link")
        self.plan.steps.append(StepPlan("manifest-blob", name, repo))

    def _layers(self, flavor: str, m: ManifestPlan, repo: str) -> tuple[list[Obj], tuple[str, ...]]:
        n = self.rnd.randint(0 if flavor == "oci" else 1, 3)
        descs: list[Obj] = []
        names: list[str] = []
        for _ in range(n):
            shared = self.q.chance(30)
            name = self.blob("layer", shared=shared, repo=repo, push=False)
            variant = self.rnd.randint(0, 9)
            extra: list[tuple[str, Any]] = []
            alg = "sha256"
            if flavor == "docker":
                if variant == 0:
                    mt = oci.DOCKER_FOREIGN_LAYER
                    extra.append(("urls", [f"https://example.invalid/{name}"]))
                    m.classes.add("foreign-layer")
                else:
                    mt = self.rnd.choice([oci.DOCKER_LAYER, oci.DOCKER_LAYER, DOCKER_LAYER_TAR])
            elif variant == 0:
                mt = self.rnd.choice([OCI_NONDIST, OCI_NONDIST_TAR])
                extra.append(("urls", [f"https://example.invalid/{name}"]))
                m.classes.add("foreign-layer")
            elif variant == 1:
                mt = self.rnd.choice([CUSTOM_LAYER, "application/octet-stream", oci.DOCKER_LAYER])
                m.classes.add("unusual-layer-type")
            else:
                mt = self.rnd.choice([oci.OCI_LAYER, oci.OCI_LAYER, OCI_LAYER_TAR, OCI_LAYER_ZSTD])
            if variant == 2 and self.q.chance(40):
                alg = "sha512"
                m.classes.add("sha512-reference")
            ref = Ref(name, alg=alg)
            foreign = bool(extra)
            if not foreign or self.q.chance(50):
                self.push_blob(name, repo=repo, alg=alg)
            if foreign:
                m.unverified.add(ref)
            else:
                m.verified.add(ref)
            if self.q.chance(self.q.level // 3):
                annotations = self.q.annotations("layer")
                if annotations is not None:
                    extra.append(("annotations", annotations))
            descs.append(self.descriptor(mt, ref, extra=extra))
            names.append(name)
        return descs, tuple(names)

    def image(
        self,
        flavor: str,
        *,
        subject: Ref | Never | None = None,
        repo: str = "",
        artifact: bool = False,
    ) -> str:
        """Plan a Docker schema2 (``flavor="docker"``) or OCI image manifest; return its name."""
        name = self.fresh("manifest")
        m = ManifestPlan(name, Obj(()), "")
        outer = self.begin(m)
        m.classes.add(f"{flavor}-image")
        layers, layer_names = self._layers(flavor, m, repo)
        if flavor == "docker":
            media_type: str | None = oci.DOCKER_MANIFEST
            config_type = oci.DOCKER_CONFIG
        else:
            media_type = oci.OCI_MANIFEST
            if self.q.chance(self.q.level):
                media_type = None
                m.classes.add("no-media-type")
            config_type = oci.OCI_CONFIG
            if artifact or self.q.chance(15):
                config_type = self.rnd.choice([oci.OCI_EMPTY, CUSTOM_CONFIG, HELM_CONFIG])
                m.classes.add("artifact-config")
        config_kind = "empty" if config_type == oci.OCI_EMPTY else "config"
        config_urls: list[tuple[str, Any]] = []
        if self.q.chance(5):
            # 2.8.2 checks no descriptor with urls other than a layer's: the config may
            # be missing altogether.
            config_urls.append(("urls", [f"https://example.invalid/{name}/config"]))
            m.classes.add("config-with-urls")
        config = self.blob(
            config_kind,
            layers=layer_names,
            repo=repo,
            shared=config_kind == "empty",
            push=not config_urls or self.q.chance(50),
        )
        (m.unverified if config_urls else m.verified).add(Ref(config))
        config_desc = self.descriptor(config_type, Ref(config), extra=config_urls)
        fields: list[tuple[str, Any]] = [("schemaVersion", 2)]
        if media_type is not None:
            fields.append(("mediaType", media_type))
        if flavor == "oci" and (artifact or self.q.chance(10)):
            fields.append(
                ("artifactType", self.rnd.choice([oci.SBOM_ARTIFACT, oci.SIGNATURE_ARTIFACT]))
            )
            m.classes.add("artifact-type")
        fields.append(("config", config_desc))
        fields.append(("layers", layers))
        decoys, partial = self.descriptors_field("layers", layers)
        decoys = {
            **decoys,
            "config": self._decoy_descriptor,
            "schemaVersion": lambda: 1,
            "mediaType": lambda: oci.OCI_ARTIFACT_MANIFEST,
        }
        partial = {**partial, "config": lambda: self._partial_descriptor(config_desc)}
        if subject is not None:
            subj = self.descriptor(oci.OCI_MANIFEST, subject)
            fields.append(("subject", subj))
            m.subject = subject
            m.unverified.add(subject)
            m.classes.add("subject")
            partial["subject"] = lambda: self._partial_descriptor(subj)
            decoys["subject"] = self._decoy_descriptor
        annotations = self.q.annotations("manifest")
        if annotations is not None:
            fields.append(("annotations", annotations))
        m.doc = self.q.obj(
            fields,
            decoys=decoys,
            partial=partial,
            nullable=("schemaVersion", "mediaType", "config", "artifactType"),
        )
        ct = oci.DOCKER_MANIFEST if flavor == "docker" else oci.OCI_MANIFEST
        m.content_type = self.content_type(ct)
        m.indent = self.rnd.choice([3, None])
        self.plan.manifests[name] = m
        self.end(m, outer)
        return name

    def index(
        self,
        flavor: str,
        *,
        depth: int = 0,
        subject: Ref | Never | None = None,
        repo: str = "",
        cache: bool = False,
    ) -> str:
        """Plan a Docker manifest list or an OCI index and push its children; return its name.

        Children: images and (up to depth 2) nested indexes pushed by digest, manifests
        that only exist as blobs (registry 2.1.0), and for ``cache`` (buildkit's cache
        export) plain blobs listed as entries.
        """
        name_children: list[tuple[Obj, Ref]] = []
        m = ManifestPlan("", Obj(()), "")
        outer = self.begin(m)
        m.classes.add(f"{flavor}-index" if not cache else "buildkit-cache-index")
        if cache:
            cfg = self.blob("json", repo=repo)
            entries = [(BUILDKIT_CACHE_CONFIG, cfg)]
            for _ in range(self.rnd.randint(1, 3)):
                lay = self.blob("layer", repo=repo, shared=self.q.chance(30))
                entries.append((self.rnd.choice(([oci.OCI_LAYER, oci.DOCKER_LAYER])), lay))
            for mt, target in entries:
                extra = (("annotations", Obj((("buildkit/createdat", "2024-01-01T00:00:00Z"),))),)
                name_children.append(
                    (
                        self.descriptor(
                            mt, Ref(target), extra=extra if mt != BUILDKIT_CACHE_CONFIG else ()
                        ),
                        Ref(target),
                    )
                )
        else:
            n = self.rnd.randint(0 if flavor == "oci" else 1, 3)
            for _ in range(n):
                how = self.rnd.randint(0, 9)
                if how <= 5 or depth >= 2:
                    child_flavor = "docker" if flavor == "docker" or how == 0 else "oci"
                    child = self.image(child_flavor, repo=repo)
                    child_type = (
                        oci.DOCKER_MANIFEST if child_flavor == "docker" else oci.OCI_MANIFEST
                    )
                    if how == 1 and depth < 2:
                        self.put_as_blob(child, repo=repo)
                        m.classes.add("index-of-legacy-manifest")
                    else:
                        self.put(child, None, repo=repo)
                elif how <= 7:
                    child = self.index("oci", depth=depth + 1, repo=repo)
                    child_type = oci.OCI_INDEX
                    self.put(child, None, repo=repo)
                    m.classes.add("nested-index")
                elif how == 8:
                    child = self.blob(self.rnd.choice(["layer", "json"]), repo=repo)
                    child_type = self.rnd.choice([oci.OCI_LAYER, "application/vnd.example.blob"])
                    m.classes.add("index-of-blob")
                else:
                    child = self.image("oci", repo=repo)
                    child_type = UNKNOWN_MANIFEST
                    self.put(child, None, repo=repo)
                    m.classes.add("index-entry-unknown-type")
                entry_type: str | None = child_type
                if self.q.chance(self.q.level // 2):
                    entry_type = self.rnd.choice(
                        [None, UNKNOWN_MANIFEST, oci.OCI_MANIFEST, oci.DOCKER_MANIFEST]
                    )
                    m.classes.add("index-entry-media-type-variant")
                extra: list[tuple[str, Any]] = []
                if self.q.chance(70):
                    extra.append(
                        (
                            "platform",
                            self.q.obj(
                                [
                                    ("architecture", self.rnd.choice(["amd64", "arm64", "s390x"])),
                                    ("os", "linux"),
                                ],
                                unknown=False,
                            ),
                        )
                    )
                name_children.append(
                    (self.descriptor(entry_type, Ref(child), extra=extra), Ref(child))
                )
        name = self.fresh("manifest")
        m.name = name
        for _, ref in name_children:
            m.verified.add(ref)
        descs = [d for d, _ in name_children]
        media_type: str | None = oci.DOCKER_MANIFEST_LIST if flavor == "docker" else oci.OCI_INDEX
        if flavor == "oci" and self.q.chance(self.q.level):
            media_type = None
            m.classes.add("no-media-type")
        fields: list[tuple[str, Any]] = [("schemaVersion", 2)]
        if media_type is not None:
            fields.append(("mediaType", media_type))
        if flavor == "oci" and self.q.chance(10):
            fields.append(("artifactType", oci.SBOM_ARTIFACT))
            m.classes.add("artifact-type")
        fields.append(("manifests", descs))
        if not cache and self.q.chance(8):
            # A Docker list may also carry image fields (2.8.2 validates OCI indexes only).
            m.classes.add("index-with-image-fields")
            extra_cfg = self.blob("json", repo=repo)
            m.unverified.add(Ref(extra_cfg))
            fields += [("config", self.descriptor(CUSTOM_CONFIG, Ref(extra_cfg))), ("layers", [])]
        decoys, partial = self.descriptors_field("manifests", descs)
        decoys = {**decoys, "schemaVersion": lambda: 1, "mediaType": lambda: oci.OCI_MANIFEST}
        if subject is not None:
            subj = self.descriptor(oci.OCI_MANIFEST, subject)
            fields.append(("subject", subj))
            m.subject = subject
            m.unverified.add(subject)
            m.classes.add("subject")
            partial["subject"] = lambda: self._partial_descriptor(subj)
            decoys["subject"] = self._decoy_descriptor
        annotations = self.q.annotations("index")
        if annotations is not None:
            fields.append(("annotations", annotations))
        m.doc = self.q.obj(
            fields, decoys=decoys, partial=partial, nullable=("schemaVersion", "mediaType")
        )
        m.content_type = self.content_type(
            oci.DOCKER_MANIFEST_LIST if flavor == "docker" else oci.OCI_INDEX
        )
        m.indent = self.rnd.choice([3, None])
        self.plan.manifests[name] = m
        self.end(m, outer)
        return name

    def schema1(self, tag: str) -> str:
        """Plan a signed Docker schema1 manifest (``fsLayers[].blobSum``) for ``tag``."""
        name = self.fresh("manifest")
        m = ManifestPlan(name, Obj(()), oci.SCHEMA1_SIGNED_MANIFEST, schema1=True)
        outer = self.begin(m)
        m.classes.add("schema1")
        n = self.rnd.randint(1, 3)
        layers = [self.blob("layer", shared=self.q.chance(30)) for _ in range(n)]
        if n > 1 and self.q.chance(30):
            layers.append(layers[0])  # the same blob twice, as empty layers are in schema1
            m.classes.add("schema1-repeated-blobsum")
        for lay in layers:
            m.verified.add(Ref(lay))
        fs = [
            self.q.obj(
                [("blobSum", Ref(lay))],
                decoys={"blobSum": lambda: Never(self.fresh("decoy")).digest},
                unknown=False,
            )
            for lay in layers
        ]
        history = [Obj((("v1Compatibility", v1),)) for v1 in _schema1_history(name, len(layers))]
        decoys, _ = self.descriptors_field("fsLayers", fs)
        decoys["fsLayers"] = lambda: [Obj((("blobSum", Never(self.fresh("decoy")).digest),))]
        m.doc = self.q.obj(
            [
                ("schemaVersion", 1),
                ("name", RepoName()),
                ("tag", tag),
                ("architecture", "amd64"),
                ("fsLayers", fs),
                ("history", history),
            ],
            decoys={**decoys, "schemaVersion": lambda: 2},
            nullable=("schemaVersion", "name", "tag", "architecture"),
        )
        self.plan.manifests[name] = m
        self.end(m, outer)
        return name

    def artifact_manifest(self, subject: Ref | Never | None, repo: str = "") -> str:
        """Plan an OCI artifact manifest (``blobs[]``), plain (2.8.2 rejects it) or disguised.

        Disguised: ``mediaType`` written twice, the artifact type first and the OCI
        image manifest type last (under another spelling), with ``config`` and
        ``layers``: Go reads an image manifest, a last-key-wins-by-spelling reader the
        artifact.
        """
        name = self.fresh("manifest")
        m = ManifestPlan(name, Obj(()), "")
        outer = self.begin(m)
        m.classes.add("artifact-manifest")
        blobs = [self.blob("json", repo=repo) for _ in range(self.rnd.randint(1, 2))]
        blob_descs = [self.descriptor(oci.SBOM_ARTIFACT, Ref(b)) for b in blobs]
        fields: list[tuple[str | EscKey, Any]]
        if self.q.chance(70):
            m.classes.add("artifact-manifest-disguised")
            lay = self.blob("layer", repo=repo)
            cfg = self.blob("empty", repo=repo, shared=True)
            real_key = self.rnd.choice(["MediaType", "MEDIATYPE", "mediatype", EscKey("mediaType")])
            fields = [
                ("schemaVersion", 2),
                ("mediaType", oci.OCI_ARTIFACT_MANIFEST),
                (real_key, oci.OCI_MANIFEST),
                ("artifactType", oci.SBOM_ARTIFACT),
                ("config", self.descriptor(oci.OCI_EMPTY, Ref(cfg))),
                ("layers", [self.descriptor(oci.OCI_LAYER, Ref(lay))]),
                ("blobs", blob_descs),
            ]
            m.verified |= {Ref(cfg), Ref(lay)}
            m.unverified |= {Ref(b) for b in blobs}
            m.content_type = oci.OCI_MANIFEST
        else:
            fields = [
                ("mediaType", oci.OCI_ARTIFACT_MANIFEST),
                ("artifactType", oci.SBOM_ARTIFACT),
                ("blobs", blob_descs),
            ]
            m.content_type = oci.OCI_ARTIFACT_MANIFEST
        if subject is not None:
            fields.append(("subject", self.descriptor(oci.OCI_MANIFEST, subject)))
            m.subject = subject
            m.unverified.add(subject)
            m.classes.add("subject")
        m.doc = Obj(tuple(fields))
        self.plan.manifests[name] = m
        self.end(m, outer)
        return name


def _schema1_history(seed: str, n: int) -> list[str]:
    """``v1Compatibility`` strings, top-most first, with a consistent ``id``/``parent`` chain."""
    ids = [hashlib.sha256(f"{seed}/v1/{i}".encode()).hexdigest() for i in range(n)]
    out = []
    for i in range(n):  # i = 0 is the top-most layer
        v1: dict[str, Any] = {"id": ids[i], "created": "2024-01-01T00:00:00Z"}
        if i + 1 < n:
            v1["parent"] = ids[i + 1]
        if i == 0:
            v1.update({"architecture": "amd64", "os": "linux", "config": {}})
        out.append(json.dumps(v1, separators=(",", ":")))
    return out


_TAGS = ("latest", "v1", "v2", "stable")


def _tag_or_digest(b: Builder, *, tag_chance: int = 70) -> str | None:
    return b.rnd.choice(_TAGS) if b.q.chance(tag_chance) else None


def _build_image(b: Builder) -> None:
    flavor = b.rnd.choice(["docker", "oci"])
    name = b.image(flavor)
    b.put(name, _tag_or_digest(b, tag_chance=85))


def _build_referrers(b: Builder) -> None:
    base = b.image(b.rnd.choice(["docker", "oci"]))
    b.put(base, _tag_or_digest(b, tag_chance=85))
    parents = [base]
    for _ in range(b.rnd.randint(1, 3)):
        subject: Ref | Never = Ref(b.rnd.choice(parents))
        if b.q.chance(10):
            subject = Never(b.fresh("dangling-subject"))
            b.plan.classes.add("dangling-subject")
        how = b.rnd.randint(0, 5)
        repo = ""
        if how == 0:
            repo = "-sig"
            b.plan.classes.add("cross-repository-referrer")
        if how == 1:
            ref = b.index("oci", subject=subject, repo=repo)
        elif how == 2:
            ref = b.artifact_manifest(subject, repo=repo)
        else:
            ref = b.image("oci", subject=subject, repo=repo, artifact=True)
        tag: str | None = None
        if b.q.chance(15) and isinstance(subject, Ref):
            tag = "@fallback"
            b.plan.classes.add("referrer-fallback-tag")
        b.put(ref, tag, repo=repo)
        parents.append(ref)


def _build_multiarch(b: Builder) -> None:
    flavor = b.rnd.choice(["docker", "oci", "oci"])
    name = b.index(flavor)
    b.put(name, _tag_or_digest(b, tag_chance=90))
    if b.q.chance(20):
        sig = b.image("oci", subject=Ref(name), artifact=True)
        b.put(sig, None)


def _build_cache(b: Builder) -> None:
    name = b.index("oci", cache=True)
    b.put(name, b.rnd.choice(["cache", "buildcache", "latest"]))


def _build_schema1(b: Builder) -> None:
    tag = b.rnd.choice(_TAGS)
    name = b.schema1(tag)
    b.put(name, tag if b.q.chance(85) else None)


def _build_legacy(b: Builder) -> None:
    name = b.image(b.rnd.choice(["docker", "oci"]))
    b.put_as_blob(name)


def _build_artifact(b: Builder) -> None:
    base = b.image("oci")
    b.put(base, "v1")
    art = b.artifact_manifest(Ref(base) if b.q.chance(70) else None)
    b.put(art, _tag_or_digest(b, tag_chance=30))


def _build_oddity(b: Builder) -> None:
    """Bodies the registry accepts but reads differently on GET.

    - ``"manifests":5,"manifests":null`` in an OCI manifest without mediaType: PUT
      validates it as a manifest; every GET panics decoding it as an index first.
    - an OCI index without mediaType and ``"manifests":null``: accepted as an index,
      served (and collected by the reference) as an OCI image manifest with no config.
    """
    which = b.rnd.randint(0, 1)
    name = b.fresh("manifest")
    m = ManifestPlan(name, Obj(()), oci.OCI_MANIFEST, indent=None)
    outer = b.begin(m)
    if which == 0:
        m.classes.add("get-panics")
        lay = b.blob("layer")
        cfg = b.blob("config", layers=(lay,))
        m.verified |= {Ref(lay), Ref(cfg)}
        m.doc = Obj(
            (
                ("schemaVersion", 2),
                ("config", b.descriptor(oci.OCI_CONFIG, Ref(cfg))),
                ("layers", [b.descriptor(oci.OCI_LAYER, Ref(lay))]),
                ("manifests", 5),
                (b.q.spell("manifests"), None),
            )
        )
    else:
        m.classes.add("index-null-manifests")
        m.content_type = oci.OCI_INDEX
        m.doc = Obj((("schemaVersion", 2), ("manifests", None)))
    b.plan.manifests[name] = m
    b.end(m, outer)
    b.put(name, _tag_or_digest(b, tag_chance=80))
    neighbour = b.image("oci")
    b.put(neighbour, "neighbour")


_KINDS: dict[str, Callable[[Builder], None]] = {
    "image": _build_image,
    "referrers": _build_referrers,
    "multiarch": _build_multiarch,
    "cache": _build_cache,
    "schema1": _build_schema1,
    "legacy": _build_legacy,
    "artifact": _build_artifact,
    "oddity": _build_oddity,
}
_KIND_WEIGHTS = (
    ["image"] * 4
    + ["referrers"] * 3
    + ["multiarch"] * 4
    + ["cache"] * 1
    + ["schema1"] * 2
    + ["legacy"] * 1
    + ["artifact"] * 1
    + ["oddity"] * 1
)


def case_plans() -> st.SearchStrategy[CasePlan]:
    """A hypothesis strategy of :class:`CasePlan`: one repository's pushes.

    Hypothesis supplies a seeded ``random.Random`` per case (``st.randoms``): its
    integer and choice draws would lean towards the first option, and the batch needs
    every kind and variation in proportion.
    """
    return st.randoms(use_true_random=True).map(plan_case)


def plan_case(rnd: random.Random) -> CasePlan:
    """Draw one case plan from ``rnd``."""
    kind = rnd.choice(_KIND_WEIGHTS)
    b = Builder(rnd, kind)
    _KINDS[kind](b)
    puts = [s for s in b.plan.steps if s.op == "manifest" and s.ref not in {None, "@fallback"}]
    # A tag pushed again with new content: the old revision stays, untagged.
    if puts and kind in {"image", "multiarch", "schema1"} and b.q.chance(25):
        b.plan.classes.add("tag-moved")
        again = (
            b.schema1(puts[0].ref or "latest")
            if kind == "schema1"
            else b.image(b.rnd.choice(["docker", "oci"]))
        )
        b.put(again, puts[0].ref)
    elif puts and b.q.chance(15):
        b.plan.classes.add("second-tag")
        b.put(puts[0].target, b.rnd.choice(["extra", "2024.01", "stable"]))
    # Damage through the API: a child manifest or a layer link deleted afterwards.
    if b.q.chance(12):
        children = [
            s.target for s in b.plan.steps if s.op == "manifest" and s.ref is None and not s.repo
        ]
        blobs = [
            s.target for s in b.plan.steps if s.op == "blob" and not s.repo and s.alg == "sha256"
        ]
        if children and b.rnd.random() < 0.5:
            b.plan.classes.add("damaged-deleted-manifest")
            b.plan.steps.append(StepPlan("delete-manifest", b.rnd.choice(children)))
        elif blobs:
            b.plan.classes.add("damaged-deleted-blob")
            b.plan.steps.append(StepPlan("delete-blob", b.rnd.choice(blobs)))
    # Blobs first: reorder so uploads precede the manifests of the same repository.
    b.plan.steps = _blobs_first(b.plan.steps)
    return b.plan


def _blobs_first(steps: list[StepPlan]) -> list[StepPlan]:
    blobs = [s for s in steps if s.op == "blob"]
    rest = [s for s in steps if s.op != "blob"]
    return blobs + rest


# -- materializing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """A manifest body as generated: what is PUT, what its digest is taken over, its meaning."""

    name: str
    digest: str  # sha256 of ``payload``: the registry's name for it
    payload: bytes  # schema1: without signatures
    data: bytes  # what is sent (schema1: signed)
    content_type: str
    subject: str | None
    verified: frozenset[str]
    unverified: frozenset[str]
    classes: frozenset[str]


@dataclass(frozen=True)
class Step:
    """One concrete HTTP operation of a case."""

    op: str  # blob | manifest | manifest-blob | delete-manifest | delete-blob
    repo: str
    digest: str  # what the operation names (for ``blob``: the digest uploaded under)
    data: bytes = b""
    ref: str | None = None  # manifest: the tag, or None for by digest
    content_type: str = ""
    label: str = ""


@dataclass(frozen=True)
class Case:
    """A materialized case: its repositories, steps in order, and bodies by digest."""

    index: int
    repo: str
    kind: str
    classes: frozenset[str]
    steps: tuple[Step, ...]
    bodies: Mapping[str, Body]
    #: every digest the case names (blobs under every algorithm, manifests, decoys)
    digests: frozenset[str]
    #: digest under another algorithm → canonical sha256 digest
    aliases: Mapping[str, str]

    @property
    def repos(self) -> tuple[str, ...]:
        """The repositories this case pushes to."""
        return tuple(dict.fromkeys(s.repo for s in self.steps))


def _alg_digest(data: bytes, alg: str) -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def _blob_bytes(plan: BlobPlan, seed: str, layer_blobs: Mapping[str, oci.Blob]) -> oci.Blob:
    if plan.kind == "layer":
        return oci.layer(seed, size=96 + len(seed))
    if plan.kind == "empty":
        return oci.empty_config()
    if plan.kind == "config":
        diff_ids = [layer_blobs[n].diff_id for n in plan.layers if n in layer_blobs]
        doc = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"rig.seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        return oci.Blob(oci.canonical_json(doc), oci.OCI_CONFIG)
    return oci.raw_blob(json.dumps({"rig": "json", "seed": seed}).encode(), "application/json")


def materialize(plan: CasePlan, index: int, *, prefix: str = "diff") -> Case:
    """Turn a plan into bytes: blobs, rendered (and for schema1 signed) bodies, steps."""
    repo = f"{prefix}/c{index:05d}"
    blobs: dict[str, oci.Blob] = {}
    layer_first = sorted(plan.blobs.values(), key=lambda p: p.kind != "layer")
    for bp in layer_first:
        seed = bp.name if bp.shared else f"{repo}/{bp.name}"
        blobs[bp.name] = _blob_bytes(bp, seed, blobs)
    rendered: dict[str, Body] = {}

    def resolve(value: Any) -> Any:
        if isinstance(value, RepoName):
            return repo
        if isinstance(value, Never):
            return value.digest
        assert isinstance(value, Ref)
        if value.target in blobs:
            blob = blobs[value.target]
            if value.field == "size":
                return blob.size
            return _alg_digest(blob.data, value.alg)
        body = body_of(value.target)
        return len(body.payload) if value.field == "size" else body.digest

    def digest_of(value: Ref | Never) -> str:
        return str(resolve(value))

    def body_of(name: str) -> Body:
        if name in rendered:
            return rendered[name]
        m = plan.manifests[name]
        payload = render(m.doc, resolve, indent=m.indent)
        data = oci._libtrust_sign(payload) if m.schema1 else payload
        body = Body(
            name=name,
            digest=oci.sha256_digest(payload),
            payload=payload,
            data=data,
            content_type=m.content_type,
            subject=None if m.subject is None else digest_of(m.subject),
            verified=frozenset(digest_of(r) for r in m.verified),
            # A digest named twice (say a shared layer, once with urls) is verified.
            unverified=frozenset(digest_of(r) for r in m.unverified)
            - frozenset(digest_of(r) for r in m.verified),
            classes=frozenset(m.classes),
        )
        rendered[name] = body
        return body

    steps: list[Step] = []
    aliases: dict[str, str] = {}
    digests: set[str] = set()
    for sp in plan.steps:
        where = repo + sp.repo
        if sp.op == "blob":
            blob = blobs[sp.target]
            d = _alg_digest(blob.data, sp.alg)
            if sp.alg != "sha256":
                aliases[d] = blob.digest
            digests |= {d, blob.digest}
            steps.append(Step("blob", where, d, blob.data, label=sp.target))
        elif sp.op == "delete-blob":
            blob = blobs[sp.target]
            steps.append(Step("delete-blob", where, blob.digest, label=sp.target))
        else:
            body = body_of(sp.target)
            digests.add(body.digest)
            if sp.op == "manifest":
                ref = sp.ref
                if ref == "@fallback":
                    assert body.subject is not None
                    ref = body.subject.replace(":", "-")
                steps.append(
                    Step(
                        "manifest", where, body.digest, body.data, ref, body.content_type, sp.target
                    )
                )
            elif sp.op == "manifest-blob":
                steps.append(
                    Step("blob", where, body.digest, body.payload, label=f"{sp.target} (as a blob)")
                )
            else:
                steps.append(Step("delete-manifest", where, body.digest, label=sp.target))
    for body in rendered.values():
        digests |= {body.digest, *body.verified, *body.unverified}
        if body.subject:
            digests.add(body.subject)
    return Case(
        index=index,
        repo=repo,
        kind=plan.kind,
        classes=frozenset(plan.classes),
        steps=tuple(steps),
        bodies={b.digest: b for b in rendered.values()},
        digests=frozenset(digests),
        aliases=aliases,
    )


def generate_cases(
    n_bodies: int, *, seed: int | None = None, prefix: str = "diff", start: int = 0
) -> list[Case]:
    """Cases holding at least ``n_bodies`` manifest bodies, deterministically.

    With ``seed=None`` hypothesis runs derandomized (the same cases on every run of the
    same code); otherwise with that seed.
    """
    plans: list[CasePlan] = []
    count = [0]

    def collect(plan: CasePlan) -> None:
        if count[0] >= n_bodies:
            return
        plans.append(plan)
        count[0] += len(plan.manifests)

    runner = given(case_plans())(collect)
    runner = settings(
        max_examples=max(10, n_bodies),
        derandomize=seed is None,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )(runner)
    if seed is not None:
        runner = hypothesis_seed(seed)(runner)
    runner()
    return [materialize(p, start + i, prefix=prefix) for i, p in enumerate(plans)]


def body_count() -> int:
    """How many bodies to generate: ``REGISTRY_GC_DIFF_BODIES`` (default 300)."""
    return int(os.environ.get("REGISTRY_GC_DIFF_BODIES", "300"))


def seed_from_env() -> int | None:
    """``REGISTRY_GC_DIFF_SEED`` as an int, or None (derandomized) when unset."""
    value = os.environ.get("REGISTRY_GC_DIFF_SEED", "").strip()
    return int(value) if value else None


# -- hand-written cases (regression tests) ------------------------------------------------


def descriptor_json(blob: oci.Blob | Body, media_type: str | None = None, **extra: Any) -> str:
    """A descriptor as compact JSON text, to splice into hand-written bodies."""
    if isinstance(blob, Body):
        desc: dict[str, Any] = {
            "mediaType": media_type,
            "digest": blob.digest,
            "size": len(blob.payload),
        }
    else:
        desc = {
            "mediaType": media_type or blob.media_type,
            "digest": blob.digest,
            "size": blob.size,
        }
    if desc["mediaType"] is None:
        del desc["mediaType"]
    desc.update(extra)
    return json.dumps(desc, separators=(",", ":"))


class HandCase:
    """A case written by hand: each regression test spells out its exact bodies.

    >>> h = HandCase("example")
    >>> cfg = h.blob(h.config())
    >>> body = h.put(f'{{"schemaVersion":2,"config":{descriptor_json(cfg)},"layers":[]}}',
    ...              oci.OCI_MANIFEST, tag="v1")
    >>> h.case().repo
    'exact/example'
    """

    def __init__(self, name: str, *, prefix: str = "exact") -> None:
        self.repo = f"{prefix}/{name}"
        self.name = name
        self.steps: list[Step] = []
        self.bodies: dict[str, Body] = {}
        self.digests: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.classes: set[str] = {name}

    def where(self, repo: str | None) -> str:
        """``repo`` (a suffix such as ``"-sig"``, or None for the case's own repository)."""
        return self.repo + (repo or "")

    def layer(self, seed: str = "layer", media_type: str = oci.OCI_LAYER) -> oci.Blob:
        """A small real tar.gz layer, seeded by the case and ``seed`` (not pushed yet)."""
        return oci.layer(f"{self.repo}/{seed}", size=128, media_type=media_type)

    def config(self, *layers: oci.Blob, media_type: str = oci.OCI_CONFIG) -> oci.Blob:
        """An image config listing ``layers``' diff_ids (not pushed yet)."""
        doc = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"case": self.repo}},
            "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]},
        }
        return oci.Blob(oci.canonical_json(doc), media_type)

    def blob(self, blob: oci.Blob, *, alg: str = "sha256", repo: str | None = None) -> oci.Blob:
        """Upload ``blob`` (under its ``alg`` digest); return it."""
        digest = _alg_digest(blob.data, alg)
        if alg != "sha256":
            self.aliases[digest] = blob.digest
        self.digests |= {digest, blob.digest}
        self.steps.append(Step("blob", self.where(repo), digest, blob.data, label="blob"))
        return blob

    def put(
        self,
        text: str | bytes,
        content_type: str,
        *,
        tag: str | None = None,
        repo: str | None = None,
        subject: str | None = None,
        schema1: bool = False,
        as_blob: bool = False,
    ) -> Body:
        """PUT the exact bytes ``text`` by ``tag`` (or by digest); return the body.

        ``subject`` records the referrer edge (Go's reading); ``schema1`` signs the
        bytes first; ``as_blob`` uploads them as a plain blob instead (registry 2.1.0).
        """
        payload = text.encode() if isinstance(text, str) else text
        data = oci._libtrust_sign(payload) if schema1 else payload
        found = {m.decode() for m in _DIGEST_BYTES.findall(payload)}
        body = Body(
            name=f"body{len(self.bodies) + 1}",
            digest=oci.sha256_digest(payload),
            payload=payload,
            data=data,
            content_type=content_type,
            subject=subject,
            verified=frozenset(),
            unverified=frozenset(),
            classes=frozenset({self.name}),
        )
        self.bodies[body.digest] = body
        self.digests |= {body.digest, *found}
        where = self.where(repo)
        if as_blob:
            self.steps.append(Step("blob", where, body.digest, payload, label=body.name))
        else:
            self.steps.append(
                Step("manifest", where, body.digest, data, tag, content_type, body.name)
            )
        return body

    def delete_manifest(self, digest: str, *, repo: str | None = None) -> None:
        """``DELETE /v2/<repo>/manifests/<digest>`` afterwards."""
        self.steps.append(Step("delete-manifest", self.where(repo), digest, label="delete"))

    def delete_blob(self, digest: str, *, repo: str | None = None) -> None:
        """``DELETE /v2/<repo>/blobs/<digest>`` afterwards (removes the layer link)."""
        self.steps.append(Step("delete-blob", self.where(repo), digest, label="delete"))

    def case(self, index: int = 0) -> Case:
        """The :class:`Case` to push."""
        return Case(
            index=index,
            repo=self.repo,
            kind=self.name,
            classes=frozenset(self.classes),
            steps=tuple(self.steps),
            bodies=dict(self.bodies),
            digests=frozenset(self.digests),
            aliases=dict(self.aliases),
        )
