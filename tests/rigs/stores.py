"""Builder trees written to a local directory or to memory://, collected and compared.

:class:`Store` writes a :class:`~tests.rigs.builder.RegistryBuilder` tree to a
local directory (real modification times) or to a memory:// root (modification
times set from the builder's ages); :func:`run` collects it and checks that the
report lists exactly what left the storage. The path helpers (:func:`rev`,
:func:`lnk`, :func:`blob` …) name the files a builder wrote, :func:`owned` what
an image holds in a repository. ``tests/conftest.py`` makes the ``store``
(local and memory, in turn) and ``disk`` (local only) fixtures of it.
:func:`surveyed` writes a tree and reads it back as the pure steps take it
(inventory and manifests), for tests that call those steps directly.
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
from registry_gc import collect, load_manifests, take_inventory
from registry_gc.backends import LocalBackend
from registry_gc.layout import (
    REPOSITORIES_PREFIX,
    Digest,
    LayerLink,
    Repository,
    RevisionLink,
    Tag,
    TagCurrentLink,
    TagIndexLink,
    UploadFile,
    blob_path,
    parse_blob_path,
)

if TYPE_CHECKING:
    from pathlib import Path

    from registry_gc import Inventory, ManifestTable, Report

    from tests.rigs.builder import RegistryBuilder


UTC = datetime.timezone.utc
R = REPOSITORIES_PREFIX
ZERO = datetime.timedelta(0)
HOUR = 3600.0
DAY = 86400.0


# -- paths -----------------------------------------------------------------------------------


def rev(repo: str, d: Digest) -> str:
    """The revision link of ``d`` in ``repo``."""
    return RevisionLink(Repository._trusted(repo), d).path


def lnk(repo: str, d: Digest) -> str:
    """The _layers link of ``d`` in ``repo``."""
    return LayerLink(Repository._trusted(repo), d).path


def blob(d: Digest) -> str:
    """The blob data path of ``d``."""
    return blob_path(d)


def cur(repo: str, tag: str) -> str:
    """The current link of ``tag``."""
    return TagCurrentLink(Repository._trusted(repo), Tag._trusted(tag)).path


def idx(repo: str, tag: str, d: Digest) -> str:
    """The index entry of ``d`` under ``tag``."""
    return TagIndexLink(Repository._trusted(repo), Tag._trusted(tag), d).path


def upload_paths(repo: str, uid: str) -> set[str]:
    """The three files the builder writes for an upload."""
    r = Repository._trusted(repo)
    return {UploadFile(r, uid, n).path for n in ("data", "startedat", "hashstates/sha256/0")}


def owned(b: RegistryBuilder, repo: str, d: Digest) -> set[str]:
    """What image/index ``d`` holds in ``repo``: revision, manifest blob, blobs, links, children."""
    out = {rev(repo, d), blob(d)}
    for x in b.contents[d]["blobs"]:
        out |= {blob(x), lnk(repo, x)}
    for child in b.contents[d]["children"]:
        out |= owned(b, repo, child)
    return out


def blobs_of(paths: set[str]) -> set[str]:
    """The blob data paths among ``paths``."""
    return {p for p in paths if parse_blob_path(p) is not None}


# -- stores ----------------------------------------------------------------------------------


class Store:
    """A builder tree written to a local directory or a memory:// root."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.dir = tmp_path / "registry"
        self.fs = fsspec.filesystem("memory")
        self.mem_root = f"/rgc-col-{uuid.uuid4().hex}"

    @property
    def local(self) -> bool:
        """Whether the store is a local directory."""
        return self.kind == "local"

    @property
    def root(self) -> str:
        """What to pass to collect()."""
        return str(self.dir) if self.local else "memory://" + self.mem_root

    def write(self, b: RegistryBuilder, now: float | None = None) -> None:
        """Write ``b`` with modification times ``now - age``."""
        now = time.time() if now is None else now
        if self.local:
            b.write_local(self.dir, now=now)
            return
        b.write_fs(self.fs, self.mem_root)
        for path in b.files:
            t = datetime.datetime.fromtimestamp(now - b.ages.get(path, b.default_age), UTC)
            f = self.fs.store[f"{self.mem_root}/{path}"]
            f.created = f.modified = t

    def snapshot(self) -> dict[str, Any]:
        """Every file: path -> (content, mtime) on disk, path -> content in memory."""
        out: dict[str, Any] = {}
        if self.local:
            for dirpath, _, files in os.walk(self.dir):
                for f in files:
                    full = os.path.join(dirpath, f)
                    with open(full, "rb") as fh:
                        out[os.path.relpath(full, self.dir)] = (
                            fh.read(),
                            os.stat(full).st_mtime_ns,
                        )
            return out
        if not self.fs.exists(self.mem_root):
            return out
        for full in self.fs.find(self.mem_root):
            out[full[len(self.mem_root) + 1 :]] = self.fs.cat(full)
        return out

    def files(self) -> set[str]:
        """Every file path."""
        return set(self.snapshot())

    def dirs(self) -> set[str]:
        """Every directory (local stores only)."""
        assert self.local
        return {
            os.path.relpath(os.path.join(dp, d), self.dir)
            for dp, dirs, _ in os.walk(self.dir)
            for d in dirs
        }

    def cleanup(self) -> None:
        """Drop the memory tree."""
        if self.fs.exists(self.mem_root):
            self.fs.rm(self.mem_root, recursive=True)


class Run:
    """One collect() over a store, with the file sets before and after."""

    def __init__(self, store: Store, **kw: Any) -> None:
        self.before = store.files()
        self.report: Report = collect(store.root, **kw)
        self.after = store.files()

    @property
    def deleted(self) -> set[str]:
        """Paths that existed before and not after."""
        return self.before - self.after

    def planned(self) -> set[str]:
        """Every path the plan lists."""
        return {p for d in self.report.plan.deletions for p in d.paths}

    def reason(self, path: str) -> tuple[str, str]:
        """(category, reason) of the deletion that lists ``path``."""
        for d in self.report.plan.deletions:
            if path in d.paths:
                return d.category.value, d.reason
        raise KeyError(path)

    def kept(self) -> dict[str, str]:
        """Path -> category of everything kept for the grace period."""
        return {k.path: k.category.value for k in self.report.plan.kept}

    def anomalies(self) -> dict[str, set[str]]:
        """Anomaly kind -> paths."""
        out: dict[str, set[str]] = {}
        for a in self.report.plan.anomalies:
            out.setdefault(a.kind, set()).add(a.path)
        return out


def run(store: Store, b: RegistryBuilder | None = None, **kw: Any) -> Run:
    """Write ``b`` (if given), collect, and check the report agrees with the storage."""
    if b is not None:
        store.write(b)
    r = Run(store, **kw)
    if not kw.get("dry_run"):
        assert r.deleted == r.planned(), "the report must list exactly what was deleted"
        assert r.report.ok
    else:
        assert r.deleted == set()
    return r


def surveyed(b: RegistryBuilder, root: Path) -> tuple[Inventory, ManifestTable]:
    """Write ``b`` under the local directory ``root``; its inventory and manifests."""
    b.write_local(root)
    backend = LocalBackend(root)
    inventory = take_inventory(backend)
    return inventory, load_manifests(backend, inventory)
