"""The v2 storage layout of CNCF distribution, as typed keys.

Pure functions between storage paths and keys; no I/O. Paths are relative to
the registry's ``rootdirectory`` and always start with :data:`V2_PREFIX`::

    docker/registry/v2/
      blobs/<alg>/<hex[:2]>/<hex>/data
      repositories/<name>/_layers/<alg>/<hex>/link
      repositories/<name>/_manifests/revisions/<alg>/<hex>/link
      repositories/<name>/_manifests/tags/<tag>/current/link
      repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
      repositories/<name>/_uploads/<uuid>/<data|startedat|hashstates/<alg>/<offset>>

>>> key = classify(
...     "docker/registry/v2/repositories/library/alpine/_manifests/tags/3.20/current/link"
... )
>>> key
TagCurrentLink(repository='library/alpine', tag='3.20')
>>> key.path == "docker/registry/v2/repositories/library/alpine/_manifests/tags/3.20/current/link"
True
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

import attrs

from ._errors import InvalidReferenceError

__all__ = [
    "ALGORITHMS",
    "BLOBS_PREFIX",
    "REPOSITORIES_PREFIX",
    "V2_PREFIX",
    "BlobData",
    "Digest",
    "Key",
    "LayerLink",
    "LegacySignatureLink",
    "Repository",
    "RevisionLink",
    "Tag",
    "TagCurrentLink",
    "TagIndexLink",
    "Unrecognized",
    "UploadFile",
    "blob_digest",
    "blob_path",
    "classify",
    "parse_blob_path",
    "repository_prefix",
]

V2_PREFIX: Final = "docker/registry/v2/"
BLOBS_PREFIX: Final = V2_PREFIX + "blobs/"
REPOSITORIES_PREFIX: Final = V2_PREFIX + "repositories/"

#: Digest algorithms distribution accepts, with their hex lengths.
ALGORITHMS: Final = {"sha256": 64, "sha384": 96, "sha512": 128}

_HEX = frozenset("0123456789abcdef")
_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_MAX_NAME = 255


def _is_hex(s: str, length: int) -> bool:
    return len(s) == length and _HEX.issuperset(s)


class Digest(str):
    """A content digest, ``<algorithm>:<hex>``; sha256, sha384 or sha512 only.

    A ``str`` subclass, so it costs no more memory than the string and can be
    used wherever a string is expected.

    >>> d = Digest("sha256:" + "a" * 64)
    >>> d.algorithm, len(d.hex)
    ('sha256', 64)
    >>> Digest("md5:abc")
    Traceback (most recent call last):
    ...
    registry_gc._errors.InvalidReferenceError: invalid digest 'md5:abc': ...
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:  # noqa: D102
        alg, sep, hexpart = value.partition(":")
        length = ALGORITHMS.get(alg)
        if not sep or length is None or not _is_hex(hexpart, length):
            msg = (
                f"invalid digest {value[:140]!r}: expected sha256:<64 hex>, sha384:<96 hex> "
                "or sha512:<128 hex>, lower-case"
            )
            raise InvalidReferenceError(msg)
        return str.__new__(cls, value)

    @classmethod
    def from_parts(cls, algorithm: str, hexpart: str) -> Digest:
        """Build a digest from the two path components that store it."""
        return cls(f"{algorithm}:{hexpart}")

    @classmethod
    def _trusted(cls, value: str) -> Digest:
        # For strings already validated (hot paths: a million blob paths).
        return str.__new__(cls, value)

    @property
    def algorithm(self) -> str:
        """``sha256``, ``sha384`` or ``sha512``."""
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        """The hex part, lower-case."""
        return self.partition(":")[2]


class Repository(str):
    r"""A repository name: ``[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`` components joined by ``/``.

    >>> Repository("library/alpine")
    'library/alpine'
    >>> Repository("Library/../x")
    Traceback (most recent call last):
    ...
    registry_gc._errors.InvalidReferenceError: invalid repository name 'Library/../x': ...
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Repository:  # noqa: D102
        problem = repository_name_problem(value)
        if problem:
            msg = f"invalid repository name {value[:300]!r}: {problem}"
            raise InvalidReferenceError(msg)
        return str.__new__(cls, value)

    @classmethod
    def _trusted(cls, value: str) -> Repository:
        # Names found on disk are kept as they are; their validity is checked
        # separately (an invalid name on disk is reported, never deleted).
        return str.__new__(cls, value)


def repository_name_problem(name: str) -> str | None:
    """Say what is wrong with a repository name, or ``None`` when it is valid."""
    if not name:
        return "the name is empty"
    if len(name) > _MAX_NAME:
        return f"the name is {len(name)} characters long, at most {_MAX_NAME} are allowed"
    for component in name.split("/"):
        if not _NAME_COMPONENT.match(component):
            return (
                f"component {component[:100]!r} must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* "
                "(lower-case letters and digits, separated by '.', '_', '__' or dashes)"
            )
    return None


class Tag(str):
    """A tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.

    >>> Tag("v1.2.3")
    'v1.2.3'
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Tag:  # noqa: D102
        if not _TAG.match(value):
            msg = (
                f"invalid tag {value[:200]!r}: a tag is 1 to 128 characters of "
                "[A-Za-z0-9_.-] and does not start with '.' or '-'"
            )
            raise InvalidReferenceError(msg)
        return str.__new__(cls, value)

    @classmethod
    def _trusted(cls, value: str) -> Tag:
        return str.__new__(cls, value)


def tag_name_problem(tag: str) -> str | None:
    """Say what is wrong with a tag, or ``None`` when it is valid."""
    if _TAG.match(tag):
        return None
    return "a tag is 1 to 128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'"


def _digest_dirs(digest: Digest) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"{alg}/{hexpart}"


def blob_path(digest: Digest) -> str:
    """The path of a blob's ``data`` object."""
    alg, _, hexpart = digest.partition(":")
    return f"{BLOBS_PREFIX}{alg}/{hexpart[:2]}/{hexpart}/data"


def repository_prefix(repository: str) -> str:
    """The directory of a repository, with a trailing slash."""
    return f"{REPOSITORIES_PREFIX}{repository}/"


@attrs.frozen
class BlobData:
    """``blobs/<alg>/<hex[:2]>/<hex>/data``: the bytes of a layer, config or manifest."""

    digest: Digest

    @property
    def path(self) -> str:
        """The storage path."""
        return blob_path(self.digest)


@attrs.frozen
class RevisionLink:
    """``_manifests/revisions/<alg>/<hex>/link``: a manifest present in a repository."""

    repository: Repository
    digest: Digest

    @property
    def path(self) -> str:
        """The storage path."""
        return (
            f"{repository_prefix(self.repository)}_manifests/revisions/"
            f"{_digest_dirs(self.digest)}/link"
        )


@attrs.frozen
class TagCurrentLink:
    """``_manifests/tags/<tag>/current/link``: what a tag points at now."""

    repository: Repository
    tag: Tag

    @property
    def path(self) -> str:
        """The storage path."""
        return f"{repository_prefix(self.repository)}_manifests/tags/{self.tag}/current/link"


@attrs.frozen
class TagIndexLink:
    """``_manifests/tags/<tag>/index/<alg>/<hex>/link``: a revision a tag once pointed at."""

    repository: Repository
    tag: Tag
    digest: Digest

    @property
    def path(self) -> str:
        """The storage path."""
        return (
            f"{repository_prefix(self.repository)}_manifests/tags/{self.tag}/index/"
            f"{_digest_dirs(self.digest)}/link"
        )


@attrs.frozen
class LayerLink:
    """``_layers/<alg>/<hex>/link``: a blob linked into a repository.

    ``digest`` is the digest in the path; for ``sha384``/``sha512`` alias paths
    the link's content names the canonical sha256 blob instead.
    """

    repository: Repository
    digest: Digest

    @property
    def path(self) -> str:
        """The storage path."""
        return f"{repository_prefix(self.repository)}_layers/{_digest_dirs(self.digest)}/link"


@attrs.frozen
class LegacySignatureLink:
    """``_manifests/revisions/<alg>/<hex>/signatures/<alg>/<hex>/link`` (registries before 2.5)."""

    repository: Repository
    revision: Digest
    digest: Digest

    @property
    def path(self) -> str:
        """The storage path."""
        return (
            f"{repository_prefix(self.repository)}_manifests/revisions/"
            f"{_digest_dirs(self.revision)}/signatures/{_digest_dirs(self.digest)}/link"
        )


@attrs.frozen
class UploadFile:
    """A file of an upload in progress: ``_uploads/<uuid>/<name>``.

    ``name`` is ``data``, ``startedat`` or ``hashstates/<alg>/<offset>``.
    """

    repository: Repository
    upload: str
    name: str

    @property
    def path(self) -> str:
        """The storage path."""
        return f"{repository_prefix(self.repository)}_uploads/{self.upload}/{self.name}"


@attrs.frozen
class Unrecognized:
    """A path that fits nothing in the layout. Reported, never deleted.

    ``repository`` is set when the path lies inside a repository directory.
    """

    path: str
    reason: str
    repository: Repository | None = None


Key: TypeAlias = (
    BlobData
    | RevisionLink
    | TagCurrentLink
    | TagIndexLink
    | LayerLink
    | LegacySignatureLink
    | UploadFile
    | Unrecognized
)


def _digest_at(parts: list[str], i: int) -> Digest | None:
    """The digest stored as ``<alg>/<hex>`` at ``parts[i:i+2]``, or ``None``."""
    if i + 1 >= len(parts):
        return None
    alg, hexpart = parts[i], parts[i + 1]
    length = ALGORITHMS.get(alg)
    if length is None or not _is_hex(hexpart, length):
        return None
    return Digest._trusted(f"{alg}:{hexpart}")  # noqa: SLF001


# sha256 blobs are nearly every object in a store: one compiled match instead of splitting.
_SHA256_BLOB = re.compile(re.escape(BLOBS_PREFIX) + r"sha256/([0-9a-f]{2})/(\1[0-9a-f]{62})/data")


def blob_digest(path: str) -> str | None:
    """The digest of a ``blobs/<alg>/<xx>/<hex>/data`` path as a plain string, or ``None``.

    The inventory's hot path (a million blobs go through here): a plain
    string is 48 bytes smaller than a :class:`Digest`.
    """
    m = _SHA256_BLOB.fullmatch(path)
    if m is not None:
        return "sha256:" + m.group(2)
    if not path.startswith(BLOBS_PREFIX):
        return None
    parts = path[len(BLOBS_PREFIX) :].split("/")
    if len(parts) != 4 or parts[3] != "data":
        return None
    alg, two, hexpart = parts[0], parts[1], parts[2]
    length = ALGORITHMS.get(alg)
    if length is None or two != hexpart[:2] or not _is_hex(hexpart, length):
        return None
    return f"{alg}:{hexpart}"


def parse_blob_path(path: str) -> Digest | None:
    """The digest of a ``blobs/<alg>/<xx>/<hex>/data`` path, or ``None`` if it is not one."""
    digest = blob_digest(path)
    return None if digest is None else Digest._trusted(digest)  # noqa: SLF001


def split_repository(path: str) -> tuple[str, list[str]] | None:
    """Split a path under ``repositories/`` into the repository name and the rest.

    The name is every component before the first one that starts with ``_``.
    ``None`` when the path has no ``_`` component (a stray file).
    """
    if not path.startswith(REPOSITORIES_PREFIX):
        return None
    parts = path[len(REPOSITORIES_PREFIX) :].split("/")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            if i == 0:
                return None
            return "/".join(parts[:i]), parts[i:]
    return None


def classify(path: str) -> Key:
    """Turn a storage path into its typed key; anything unknown is :class:`Unrecognized`.

    Never raises: a scan must survive whatever is in the bucket.
    """
    if path.startswith(BLOBS_PREFIX):
        digest = parse_blob_path(path)
        if digest is not None:
            return BlobData(digest)
        return Unrecognized(path, "not a blobs/<alg>/<xx>/<hex>/data path")
    if not path.startswith(REPOSITORIES_PREFIX):
        return Unrecognized(path, "outside blobs/ and repositories/")
    split = split_repository(path)
    if split is None:
        return Unrecognized(
            path, "a file in repositories/ outside any _layers, _manifests or _uploads"
        )
    name, rest = split
    repo = Repository._trusted(name)  # noqa: SLF001
    key = _classify_in_repository(repo, rest)
    if key is None:
        return Unrecognized(path, f"unknown path inside repository {name!r}", repo)
    return key


def _is_utf8(parts: list[str]) -> bool:
    """Whether every part is valid UTF-8 (a name read from disk that is not has surrogates).

    distribution names uploads by UUID: a name that is not even UTF-8 is not one of
    its uploads, so it is left alone rather than swept as a stale upload.
    """
    try:
        "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _classify_in_repository(repo: Repository, rest: list[str]) -> Key | None:
    top = rest[0]
    if top == "_layers":
        return _layer_link(repo, rest)
    if top == "_manifests" and len(rest) >= 2:
        if rest[1] == "revisions":
            return _revision_link(repo, rest)
        if rest[1] == "tags":
            return _tag_link(repo, rest)
        return None
    if top == "_uploads" and len(rest) >= 3 and rest[1] and all(rest[2:]) and _is_utf8(rest[1:]):
        return UploadFile(repo, rest[1], "/".join(rest[2:]))
    return None


def _layer_link(repo: Repository, rest: list[str]) -> LayerLink | None:
    """``_layers/<alg>/<hex>/link``."""
    if len(rest) == 4 and rest[3] == "link":
        digest = _digest_at(rest, 1)
        if digest is not None:
            return LayerLink(repo, digest)
    return None


def _revision_link(repo: Repository, rest: list[str]) -> Key | None:
    """``_manifests/revisions/<alg>/<hex>/link`` or ``…/signatures/<alg>/<hex>/link``."""
    revision = _digest_at(rest, 2)
    if revision is None:
        return None
    n = len(rest)
    if n == 5 and rest[4] == "link":
        return RevisionLink(repo, revision)
    if n == 8 and rest[4] == "signatures" and rest[7] == "link":
        sig = _digest_at(rest, 5)
        if sig is not None:
            return LegacySignatureLink(repo, revision, sig)
    return None


def _tag_link(repo: Repository, rest: list[str]) -> Key | None:
    """``_manifests/tags/<tag>/current/link`` or ``…/index/<alg>/<hex>/link``."""
    n = len(rest)
    if n < 5:
        return None
    tag = Tag._trusted(rest[2])  # noqa: SLF001
    if not tag:
        return None
    if n == 5 and rest[3] == "current" and rest[4] == "link":
        return TagCurrentLink(repo, tag)
    if n == 7 and rest[3] == "index" and rest[6] == "link":
        digest = _digest_at(rest, 4)
        if digest is not None:
            return TagIndexLink(repo, tag, digest)
    return None
