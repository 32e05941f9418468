"""The end-to-end suites' model: what was pushed through the real registry, what must survive.

:class:`Model` records every push (tags, manifests, blobs) and computes the live
set by a reachability walk of its own (tags, index children, referrers of live
manifests), never by asking the package; :class:`Layout` parses a store's keys
into registry terms; :func:`assert_live_layout` compares the two after a run,
:func:`assert_pulls` pulls through the registry, :func:`gc` runs the command line
(:func:`gc_listed` also returns the deletion lines of ``--deletions-out``;
:func:`s3_args` gives a bucket's URL and options as arguments).
Used by ``test_e2e_registry.py`` (filesystem), ``test_e2e_s3.py`` (S3) and ``test_e2e_apply.py``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from registry_gc import cli

from tests.rigs import oci, planfiles
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from tests.rigs.push import RegistryClient
    from tests.rigs.registry import RealRegistry, S3Storage

V2 = "docker/registry/v2/"
#: registry-gc with everything old enough to go (the store was pushed seconds ago).
NO_GRACE = ("--grace", "0s", "--uploads-older-than", "0s")

Manifest = oci.Image | oci.Index

_BLOB = re.compile(r"blobs/(sha256|sha384|sha512)/[0-9a-f]{2}/([0-9a-f]+)/data")
#: a key under repositories/: the repository, and the rest of the key
REPO_KEY = re.compile(r"repositories/(?P<repo>.+?)/(?P<rest>_(?:layers|manifests|uploads)/.*)")
_LAYER = re.compile(r"_layers/(\w+)/([0-9a-f]+)/link")
_REVISION = re.compile(r"_manifests/revisions/(\w+)/([0-9a-f]+)/link")
_TAG_INDEX = re.compile(r"_manifests/tags/([^/]+)/index/(\w+)/([0-9a-f]+)/link")
_TAG_CURRENT = re.compile(r"_manifests/tags/([^/]+)/current/link")


# -- what was pushed, and what must survive --------------------------------------------------


@dataclass
class Model:
    """Everything pushed through the API, as the registry should hold it."""

    #: repository → tag → manifest digest
    tags: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    #: repository → digest → manifest, for every revision link the registry keeps
    manifests: dict[str, dict[str, Manifest]] = field(default_factory=lambda: defaultdict(dict))
    #: every blob digest ever stored (manifests, configs, layers, orphans)
    blobs: set[str] = field(default_factory=set)

    def push(self, client: RegistryClient, repo: str, tag: str | None, obj: Manifest) -> str:
        """Push ``obj`` (children first) under ``tag``, or by digest only when None."""
        assert client.push_image(repo, tag, obj) == obj.digest
        for man in oci.iter_manifests(obj):
            assert isinstance(man, oci.Image | oci.Index)
            self.manifests[repo][man.digest] = man
        self.blobs.update(oci.all_blobs(obj))
        if tag is not None:
            self.tags[repo][tag] = obj.digest
        return obj.digest

    def push_blob(self, client: RegistryClient, repo: str, blob: oci.Blob) -> None:
        """Upload a blob that no manifest will ever reference."""
        client.push_blob(repo, blob)
        self.blobs.add(blob.digest)

    def delete(self, client: RegistryClient, repo: str, digest: str) -> None:
        """Delete a manifest through the API (it untags every tag pointing at it)."""
        client.delete_manifest(repo, digest)
        del self.manifests[repo][digest]
        self.tags[repo] = {t: d for t, d in self.tags[repo].items() if d != digest}

    def tagged(self) -> dict[str, list[str]]:
        """Repository → sorted tags, for repositories that have any."""
        return {r: sorted(t) for r, t in self.tags.items() if t}

    def live(self, *, delete_untagged: bool) -> dict[str, set[str]]:
        """Repository → live manifest digests, by our own reachability walk.

        Roots are the tagged manifests (every revision without ``delete_untagged``);
        from them, index children and — reverse edge — referrers whose subject is live,
        transitively, within the repository.
        """
        out: dict[str, set[str]] = {}
        for repo, mans in self.manifests.items():
            referrers: dict[str, set[str]] = defaultdict(set)
            for digest, man in mans.items():
                if man.subject is not None:
                    referrers[man.subject.digest].add(digest)
            roots = set(self.tags[repo].values()) if delete_untagged else set(mans)
            seen: set[str] = set()
            stack = list(roots)
            while stack:
                digest = stack.pop()
                if digest in seen:
                    continue
                seen.add(digest)
                stack.extend(referrers[digest])
                man = mans[digest]
                if isinstance(man, oci.Index):
                    stack.extend(child.digest for child in man.children)
            out[repo] = seen
        return out

    def live_blobs(self, live: Mapping[str, set[str]]) -> set[str]:
        """Every blob a live manifest is or references (global, by digest)."""
        out: set[str] = set()
        for repo, digests in live.items():
            for digest in digests:
                man = self.manifests[repo][digest]
                out.add(digest)
                out.update(b.digest for b in man.blobs)
        return out

    def needed_links(self, live: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """Repository → the ``_layers`` links its live manifests need (configs and layers)."""
        return {
            repo: {b.digest for d in digests for b in self.manifests[repo][d].blobs}
            for repo, digests in live.items()
        }


@dataclass
class Layout:
    """A store's files (keys relative to ``docker/registry/v2``) parsed into registry terms."""

    blobs: set[str] = field(default_factory=set)
    layers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    revisions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    tag_index: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    tag_current: set[tuple[str, str]] = field(default_factory=set)
    uploads: set[str] = field(default_factory=set)
    #: keys of each kind, for set comparisons between stores
    layer_keys: set[str] = field(default_factory=set)
    tag_index_keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, keys: Iterable[str]) -> Layout:
        """Parse keys relative to the v2 root; anything unexpected fails the test."""
        out = cls()
        for key in keys:
            if m := _BLOB.fullmatch(key):
                out.blobs.add(f"{m[1]}:{m[2]}")
                continue
            m = REPO_KEY.fullmatch(key)
            assert m is not None, f"unexpected key {key}"
            repo, rest = m["repo"], m["rest"]
            if ln := _LAYER.fullmatch(rest):
                out.layers[repo].add(f"{ln[1]}:{ln[2]}")
                out.layer_keys.add(key)
            elif r := _REVISION.fullmatch(rest):
                out.revisions[repo].add(f"{r[1]}:{r[2]}")
            elif t := _TAG_INDEX.fullmatch(rest):
                out.tag_index[repo, t[1]].add(f"{t[2]}:{t[3]}")
                out.tag_index_keys[key] = (repo, f"{t[2]}:{t[3]}")
            elif c := _TAG_CURRENT.fullmatch(rest):
                out.tag_current.add((repo, c[1]))
            elif rest.startswith("_uploads/"):
                out.uploads.add(key)
            else:
                pytest.fail(f"unexpected key {key}")
        return out


# -- running and checking --------------------------------------------------------------------


def gc(capsys: pytest.CaptureFixture[str], root: str | Path, *args: str) -> dict:
    """``registry-gc gc ROOT ARGS --json`` through :func:`registry_gc.cli.run`; exit 0."""
    capsys.readouterr()
    code = cli.run(["gc", str(root), *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, f"{captured.out}\n{captured.err}"
    report: dict = json.loads(captured.out)
    return report


def gc_listed(
    capsys: pytest.CaptureFixture[str], root: str | Path, *args: str
) -> tuple[dict, list[dict]]:
    """:func:`gc` with ``--deletions-out``: the report and the deletion lines."""
    out = planfiles.out_file()
    report = gc(capsys, root, *args, "--deletions-out", str(out))
    listed = planfiles.deletions(out)
    done = sum(1 for d in listed if d["status"] in {"planned", "deleted"})
    assert done == report["totals"]["deletions"], (done, report["totals"])
    return report, listed


def s3_args(storage: S3Storage) -> list[str]:
    """``s3://BUCKET[/PREFIX]`` and the storage options, as CLI arguments."""
    prefix = storage.key_prefix.rstrip("/")
    url = f"s3://{storage.bucket}/{prefix}" if prefix else f"s3://{storage.bucket}"
    return [
        url,
        "-o",
        f"endpoint_url={storage.endpoint_url}",
        "-o",
        f"key={storage.key}",
        "-o",
        f"secret={storage.secret}",
        "-o",
        f'client_kwargs={{"region_name": "{storage.region}"}}',
    ]


def assert_pulls(reg: RealRegistry, repo: str, ref: str, dest: Path) -> None:
    """``skopeo copy --all`` of REPO:REF fetches every manifest, config and layer."""
    result = pull_all(reg.url, repo, ref, dest / f"{repo}-{ref}".replace("/", "_"))
    assert result.returncode == 0, (
        f"pull of {repo}:{ref} failed\n{result.stderr}\n--- registry ---\n{reg.log_tail()}"
    )


def assert_live_layout(layout: Layout, model: Model, live: Mapping[str, set[str]]) -> None:
    """Blobs are exactly the live set; links exactly what live manifests need; no uploads."""
    assert layout.blobs == model.live_blobs(live)
    needed = model.needed_links(live)
    for repo in sorted(set(layout.revisions) | set(layout.layers) | set(live)):
        assert layout.revisions.get(repo, set()) == live.get(repo, set()), repo
        assert layout.layers.get(repo, set()) == needed.get(repo, set()), repo
    for (repo, tag), entries in layout.tag_index.items():
        assert model.tags[repo][tag] in entries
        assert entries <= live[repo], (repo, tag)
    assert layout.tag_current == {(r, t) for r, tags in model.tags.items() for t in tags}
    assert not layout.uploads
