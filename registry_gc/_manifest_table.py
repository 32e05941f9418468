"""The manifests a run read, compactly: digest → :class:`Manifest` or :class:`Unreadable`.

A parsed :class:`~registry_gc.manifests.Manifest` holds its references as
digest strings: about 1.5 KiB for an image of six layers, 2.5 GiB for the
1.7 million manifests of a registry of ten million blobs. A
:class:`ManifestTable` keeps the common ones — image manifests and indexes
of distribution's media types, with nothing tolerated or unusual in them —
as a row of digest ids in typed arrays (about 50 bytes), and makes the
:class:`Manifest` again when it is asked for; anything else is kept as it is.
It is a ``MutableMapping``; the fetch, the graph and the marking also ask it
by id (``is_manifest_id``, ``reference_ids``).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Final, Union

import attrs

from ._digests import DigestIndex
from .manifests import (
    _NO_ANNOTATIONS,
    DOCKER_LIST_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    MEDIA_TYPES,
    OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
    ChildRef,
    Manifest,
    ManifestKind,
    Platform,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .layout import Digest

__all__ = ["Entry", "ManifestTable", "Unreadable"]


@attrs.frozen
class Unreadable:
    """A manifest that could not be used: its blob is missing, or it does not parse.

    ``missing`` is ``True`` when ``blobs/…/data`` does not exist (a dangling
    reference); otherwise ``error`` says why it cannot be parsed. The mark
    phase names the repository when it reports it.
    """

    missing: bool
    error: str = ""


#: What a table holds for a digest.
Entry = Union[Manifest, Unreadable]  # noqa: UP007 - a runtime alias, for Python 3.10

#: The kinds kept as rows, with the media type each must have, and whether it is an index.
_ROW_KINDS: Final = {
    ManifestKind.DOCKER_MANIFEST: (1, DOCKER_MANIFEST_MEDIA_TYPE, False),
    ManifestKind.OCI_MANIFEST: (2, OCI_MANIFEST_MEDIA_TYPE, False),
    ManifestKind.DOCKER_LIST: (3, DOCKER_LIST_MEDIA_TYPE, True),
    ManifestKind.OCI_INDEX: (4, OCI_INDEX_MEDIA_TYPE, True),
}
_KIND_OF_CODE: Final = {
    code: (kind, media, index) for kind, (code, media, index) in _ROW_KINDS.items()
}
#: The code of an entry kept whole.
_OBJECT: Final = 255


class ManifestTable(MutableMapping["Digest", Entry]):
    """Digest → :class:`Manifest` or :class:`Unreadable`, keyed by ids of one index."""

    def __init__(
        self, index: DigestIndex | None = None, items: Mapping[Digest, Entry] | None = None
    ) -> None:
        self.index = index if index is not None else DigestIndex()
        #: id → row + 1 (0: no entry)
        self._row = array("i")
        self._code = bytearray()
        self._start = array("I", [0])
        self._refs = array("i")
        #: row → the entry, for rows kept whole
        self._objects: dict[int, Entry] = {}
        #: row → top-level annotations, for rows that have some
        self._annotations: dict[int, Mapping[str, str]] = {}
        self._texts: list[str] = []
        self._text_code: dict[str, int] = {}
        self._platforms: list[Platform] = []
        self._platform_code: dict[Platform, int] = {}
        self._count = 0
        if items:
            self.update(items)

    # -- rows ------------------------------------------------------------------------------

    def _row_of(self, i: int) -> int:
        rows = self._row
        return rows[i] - 1 if 0 <= i < len(rows) else -1

    def _text(self, value: str | None) -> int:
        if value is None:
            return -1
        code = self._text_code.get(value)
        if code is None:
            code = self._text_code[value] = len(self._texts)
            self._texts.append(value)
        return code

    def _platform(self, value: Platform | None) -> int:
        if value is None:
            return -1
        code = self._platform_code.get(value)
        if code is None:
            code = self._platform_code[value] = len(self._platforms)
            self._platforms.append(value)
        return code

    def _encode(self, m: Entry) -> tuple[int, list[int]] | None:
        """The code and the refs of a row for ``m``; ``None`` when it is kept whole."""
        if not isinstance(m, Manifest):
            return None
        spec = _ROW_KINDS.get(m.kind)
        if spec is None or m.foreign or m.extra or m.uncertain or m.notes:
            return None
        code, media, index = spec
        if m.media_type != media:
            return None
        intern = self.index.intern
        refs = [
            -1 if m.subject is None else intern(m.subject),
            self._text(m.artifact_type),
        ]
        if index:
            if m.config is not None or m.layers:
                return None
            for c in m.children:
                refs += (intern(c.digest), self._text(c.media_type), self._platform(c.platform))
        else:
            if m.children:
                return None
            refs.append(-1 if m.config is None else intern(m.config))
            refs.extend(intern(d) for d in m.layers)
        return code, refs

    def set_id(self, i: int, entry: Entry) -> None:
        """Set the entry of digest id ``i``."""
        row = len(self._code)
        encoded = self._encode(entry)
        if encoded is None:
            self._code.append(_OBJECT)
            self._objects[row] = entry
        else:
            self._code.append(encoded[0])
            self._refs.extend(encoded[1])
            if isinstance(entry, Manifest) and entry.annotations:
                self._annotations[row] = entry.annotations
        self._start.append(len(self._refs))
        rows = self._row
        if i >= len(rows):
            rows.extend(array("i", bytes(4 * (max(i + 1, len(self.index)) - len(rows)))))
        if rows[i] == 0:
            self._count += 1
        rows[i] = row + 1  # a replaced row stays behind, unused: replacing is rare

    def get_id(self, i: int) -> Entry | None:
        """The entry of digest id ``i``, or ``None``."""
        row = self._row_of(i)
        return None if row < 0 else self._make(row)

    def has_id(self, i: int) -> bool:
        """Whether digest id ``i`` has an entry."""
        return self._row_of(i) >= 0

    def is_manifest_id(self, i: int) -> bool:
        """Whether id ``i`` is a manifest of a kind distribution knows (see ``is_manifest``)."""
        row = self._row_of(i)
        if row < 0:
            return False
        if self._code[row] != _OBJECT:
            return True
        entry = self._objects[row]
        return isinstance(entry, Manifest) and entry.kind is not ManifestKind.UNKNOWN

    def is_missing_id(self, i: int) -> bool:
        """Whether id ``i`` is :class:`Unreadable` because its blob is missing."""
        row = self._row_of(i)
        if row < 0 or self._code[row] != _OBJECT:
            return False
        entry = self._objects[row]
        return isinstance(entry, Unreadable) and entry.missing

    def reference_ids(self, i: int) -> tuple[list[int], list[int]]:
        """The ids manifest id ``i`` names: its blobs, and what may be a manifest.

        Blobs: the config, the layers, index entries that are blobs. What may be
        a manifest: index entries that are not plainly blobs, and the digests
        kept because the body's reading is ambiguous.
        """
        row = self._row_of(i)
        if row < 0:
            return [], []
        code = self._code[row]
        if code == _OBJECT:
            entry = self._objects[row]
            if not isinstance(entry, Manifest):
                return [], []
            intern = self.index.intern
            blobs = [intern(d) for d in entry.blobs]
            blobs += (intern(c.digest) for c in entry.children if c.is_blob)
            named = [intern(c.digest) for c in entry.children if not c.is_blob]
            named += (intern(d) for d in entry.extra)
            return blobs, named
        refs = self._refs[self._start[row] + 2 : self._start[row + 1]]
        if not _KIND_OF_CODE[code][2]:
            return [d for d in refs if d >= 0], []
        blobs, named = [], []
        texts = self._texts
        for k in range(0, len(refs), 3):
            media = refs[k + 1]
            is_blob = media >= 0 and bool(texts[media]) and texts[media] not in MEDIA_TYPES
            (blobs if is_blob else named).append(refs[k])
        return blobs, named

    def layer_ids(self, i: int) -> list[int]:
        """The ids manifest id ``i`` names as its config and layers (none for an index)."""
        row = self._row_of(i)
        if row < 0:
            return []
        code = self._code[row]
        if code == _OBJECT:
            entry = self._objects[row]
            if not isinstance(entry, Manifest):
                return []
            intern = self.index.intern
            return [intern(d) for d in entry.blobs]
        if _KIND_OF_CODE[code][2]:
            return []
        return [d for d in self._refs[self._start[row] + 2 : self._start[row + 1]] if d >= 0]

    def holds_manifest(self, digest: str) -> bool:
        """Whether ``digest``'s entry is a :class:`Manifest`: ``isinstance(get(digest), Manifest)``.

        Without making the entry (a row is always a manifest).
        """
        row = self._row_of(self.index.find(digest))
        if row < 0:
            return False
        return self._code[row] != _OBJECT or isinstance(self._objects[row], Manifest)

    def subject(self, digest: str) -> Digest | None:
        """The subject of manifest ``digest``; ``None`` if it has none or is no manifest.

        What ``get(digest).subject`` is, without making the entry.
        """
        row = self._row_of(self.index.find(digest))
        if row < 0:
            return None
        if self._code[row] == _OBJECT:
            entry = self._objects[row]
            return entry.subject if isinstance(entry, Manifest) else None
        subject = self._refs[self._start[row]]
        return None if subject < 0 else self.index.digest(subject)

    def ids(self) -> Iterator[int]:
        """The ids that have an entry."""
        rows = self._row
        return (i for i in range(len(rows)) if rows[i])

    def _make(self, row: int) -> Entry:
        code = self._code[row]
        if code == _OBJECT:
            return self._objects[row]
        kind, media, index = _KIND_OF_CODE[code]
        refs = self._refs[self._start[row] : self._start[row + 1]]
        name = self.index.digest
        subject = None if refs[0] < 0 else name(refs[0])
        artifact_type = None if refs[1] < 0 else self._texts[refs[1]]
        config = None
        layers: tuple[Digest, ...] = ()
        children: tuple[ChildRef, ...] = ()
        if index:
            texts, platforms = self._texts, self._platforms
            children = tuple(
                ChildRef(
                    name(refs[k]),
                    None if refs[k + 1] < 0 else texts[refs[k + 1]],
                    None if refs[k + 2] < 0 else platforms[refs[k + 2]],
                )
                for k in range(2, len(refs), 3)
            )
        else:
            config = None if refs[2] < 0 else name(refs[2])
            layers = tuple(name(d) for d in refs[3:])
        return Manifest(
            kind,
            media,
            config,
            layers,
            frozenset(),
            children,
            subject,
            artifact_type,
            self._annotations.get(row, _NO_ANNOTATIONS),
        )

    def nbytes(self) -> int:
        """Bytes held by the rows' arrays (not the entries kept whole)."""
        return sum(len(a) * a.itemsize for a in (self._row, self._start, self._refs)) + len(
            self._code
        )

    # -- the mapping ---------------------------------------------------------------------

    def __getitem__(self, digest: Digest) -> Entry:
        entry = self.get_id(self.index.find(digest)) if isinstance(digest, str) else None
        if entry is None:
            raise KeyError(digest)
        return entry

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self.has_id(self.index.find(digest))

    def __setitem__(self, digest: Digest, entry: Entry) -> None:
        self.set_id(self.index.intern(digest), entry)

    def __delitem__(self, digest: Digest) -> None:
        i = self.index.find(digest)
        if not self.has_id(i):
            raise KeyError(digest)
        self._row[i] = 0
        self._count -= 1

    def __iter__(self) -> Iterator[Digest]:
        name = self.index.digest
        return (name(i) for i in self.ids())

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ManifestTable({self._count} entries)"

    def copy(self) -> ManifestTable:
        """A table with the same entries (and index), to add to without changing this one."""
        out = ManifestTable(self.index)
        out._row = array("i", self._row)
        out._code = bytearray(self._code)
        out._start = array("I", self._start)
        out._refs = array("i", self._refs)
        out._objects = dict(self._objects)
        out._annotations = dict(self._annotations)
        out._texts = list(self._texts)
        out._text_code = dict(self._text_code)
        out._platforms = list(self._platforms)
        out._platform_code = dict(self._platform_code)
        out._count = self._count
        return out

    @classmethod
    def of(cls, index: DigestIndex, entries: Iterable[tuple[str, Entry]]) -> ManifestTable:
        """A table of ``entries`` keyed in ``index``."""
        out = cls(index)
        for digest, entry in entries:
            out.set_id(index.intern(digest), entry)
        return out
