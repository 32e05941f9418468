"""The soak: pushers racing ``registry-gc gc`` run back to back, against the real registry.

:class:`Soak` runs, for a duration, a few :class:`Pusher` threads (each with its own
:class:`~tests.rigs.push.RegistryClient`) doing what races a sweep, while a GC loop
thread runs the collector's command line back to back. After each run the loop pauses
and checks, pushers still running, that every tag's last acknowledged manifest (and
every referrer that must live with it) downloads completely *by digest* through the
registry: each manifest, config and layer is fetched with ``GET`` (never ``HEAD``: a
blob-descriptor cache can answer that) and its digest checked. What fails there is a
*transient failure*. When the pushers stop, one more run; then every image that must
survive is pulled with ``skopeo copy --all`` and digest-checked over HTTP: what fails is
a *lost image*.

The racing operations (:data:`OPS`), each retried once from scratch when it fails:

- ``new``: one of the pusher's tags re-pushed with a new image (Docker image, OCI
  image or multi-arch OCI index, half of them on a base layer every pusher shares): the
  image the tag held becomes untagged garbage under ``-m``;
- ``reuse``: a new image whose layers are layers of an *old untagged* image of the same
  repository: ``HEAD`` each blob in the repository and skip the upload on 200, as
  docker and skopeo do;
- ``mount``: a new image that takes the layers of an old untagged image of *another*
  repository: ``HEAD`` in the target, then ``POST …/blobs/uploads/?mount=&from=``, and
  an upload into the session the registry opened when it refuses the mount (202);
- ``repush``: an old untagged manifest of the pusher pushed again by digest (children
  first, each blob ``HEAD``-checked), then ``PUT`` by one of its tags;
- ``delete``: ``DELETE /v2/<repo>/manifests/<digest>`` of a tagged manifest. Registry
  2.8.2 cannot delete a tag (``DELETE …/manifests/<tag>`` answers 400
  ``DIGEST_INVALID``); deleting by digest removes the revision link and every tag of
  the repository whose ``current`` names the digest;
- ``referrer``: an OCI referrer (empty config, one layer) of a tagged image, or of one
  child of a tagged index, pushed by digest.

A push is *acknowledged* when the registry answers 201 to its manifest ``PUT``. The
model (:class:`Model`) is exact because every tag belongs to one pusher and every
manifest a pusher pushes is its own (seeded by pusher; blobs are shared freely):
under ``-m``, what must pull is each tag's last acknowledged manifest with its
children, unless it was deleted since (with every other tag naming it), and the
referrers acknowledged while their subject was tagged, until the subject is untagged.
A tag ``PUT`` or a ``DELETE`` whose outcome is unknown (a 5xx, a broken connection)
makes the tags concerned *uncertain*: they are not checked until their next
acknowledged ``PUT``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rigs import oci
from tests.rigs.procs import untraced_environ
from tests.rigs.push import RegistryClient, RegistryError
from tests.rigs.registry import V2_PREFIX, blob_data_key, layer_link_key, revision_link_key
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from tests.rigs.registry import RealRegistry

Manifest = oci.Image | oci.Index

#: How long the pushers push, in seconds (CI default: :data:`DEFAULT_SECONDS`).
SECONDS_ENV = "REGISTRY_GC_SOAK_SECONDS"
DEFAULT_SECONDS = 30.0
#: Runs that must race the pushers; on a slow machine the pushers push longer to get them.
MIN_RUNS = 3
#: ... but no longer than this many times the pushing time (a live run on S3 takes about
#: 8 s on an idle 2-core machine, twice that or more under load: three of them may need
#: 45 s of pushing or more).
MAX_STRETCH = 5.0
#: The repositories every pusher pushes to.
REPOS = ("app", "team/app", "base")
#: The operations and their weights (out of 100).
OPS = ("new", "reuse", "mount", "repush", "delete", "referrer")
WEIGHTS = (25, 20, 15, 15, 10, 15)
#: What a failed request raises: an unexpected status, or the connection.
REQUEST_ERRORS = (RegistryError, OSError, http.client.HTTPException)
#: The figures a live run reports in the top-level ``live`` object of its ``--json``.
LIVE_KEYS = ("moved_blobs", "restored_blobs", "restored_links", "purged_blobs")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: Every status: requests whose answer the caller inspects itself.
ANY_STATUS = range(100, 600)
ACCEPT = {"Accept": ", ".join(oci.MANIFEST_MEDIA_TYPES)}


def soak_seconds(default: float = DEFAULT_SECONDS) -> float:
    """The pushing time: ``$REGISTRY_GC_SOAK_SECONDS`` or ``default``."""
    raw = os.environ.get(SECONDS_ENV, "").strip()
    return float(raw) if raw else default


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_digests(obj: Manifest) -> list[str]:
    """The digest of ``obj`` and of every manifest below it (an index's children)."""
    return [m.digest for m in oci.iter_manifests(obj)]


def layers_of(obj: Manifest) -> list[oci.Blob]:
    """The layers of an image, or of every child of an index (no duplicates)."""
    out: dict[str, oci.Blob] = {}
    for man in oci.iter_manifests(obj):
        if isinstance(man, oci.Image):
            out.update((b.digest, b) for b in man.layers)
    return list(out.values())


def _flavour(blob: oci.Blob) -> str:
    """``"docker"`` for a Docker layer media type, else ``"oci"``."""
    return "docker" if blob.media_type == oci.DOCKER_LAYER else "oci"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class NoRetryError(Exception):
    """An operation that must not be tried again (its answer is the finding)."""


def short(digest: str) -> str:
    """``sha256:0123456789ab`` (enough to find it in a log)."""
    return digest[:19]


# -- the run's report ------------------------------------------------------------------------


def read_report(stdout: str) -> dict[str, Any] | None:
    """The ``--json`` report of a run, or None when stdout holds none."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def live_figures(report: Mapping[str, Any] | None) -> dict[str, int]:
    """The live-mode figures of a run's report: its top-level ``live`` object.

    Tolerant, and the only place that reads it: every key of :data:`LIVE_KEYS` is
    present (0 when absent, and all 0 for a report without ``live``); other numeric
    keys of the object are kept; a list counts as its length.
    """
    out = dict.fromkeys(LIVE_KEYS, 0)
    live = report.get("live") if report else None
    if isinstance(live, dict):
        for key, value in live.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                out[str(key)] = int(value)
            elif isinstance(value, list):
                out[str(key)] = len(value)
    return out


def deleted_objects(report: Mapping[str, Any] | None) -> int:
    """``totals.objects`` of a run's report (0 when absent)."""
    totals = report.get("totals") if report else None
    value = totals.get("objects") if isinstance(totals, dict) else None
    return value if isinstance(value, int) else 0


# -- what must survive -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """An acknowledged manifest that must pull: tagged, or a referrer of a tagged manifest."""

    repo: str
    obj: Manifest
    tags: tuple[str, ...]
    subject: str | None
    acked_at: float

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return self.obj.digest

    def describe(self) -> str:
        """``repo@sha256:… (tags a, b)`` or ``repo@sha256:… (referrer of sha256:…)``."""
        what = (
            f"tags {', '.join(self.tags)}"
            if self.tags
            else f"referrer of {short(self.subject or '')}"
        )
        kind = type(self.obj).__name__.lower()
        at = f"acknowledged at {self.acked_at:.2f}s"
        return f"{self.repo}@{short(self.digest)} ({kind}, {what}, {at})"


class Model:
    """What the pushers were told, and what must therefore pull. Thread-safe.

    Args:
        clock: seconds since the soak started.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        #: (repo, tag) → (manifest, when acknowledged); None while uncertain
        self._tags: dict[tuple[str, str], tuple[Manifest, float] | None] = {}
        #: (repo, subject digest) → referrer digest → (referrer, when acknowledged)
        self._referrers: dict[tuple[str, str], dict[str, tuple[oci.Image, float]]] = defaultdict(
            dict
        )
        #: repo → recently untagged manifests, newest last: (owner, manifest)
        self._retired: dict[str, deque[tuple[int, Manifest]]] = {
            repo: deque(maxlen=48) for repo in REPOS
        }
        self._deleted_seq: dict[tuple[str, str], int] = {}
        #: DELETEs sent and not answered yet (the registry may be half-way through one)
        self._deleting: Counter[tuple[str, str]] = Counter()
        self._uncertain_seq: dict[tuple[str, str], int] = {}
        #: digest → the last events that touched it, for explaining a failure
        self._events: dict[str, deque[tuple[float, str]]] = defaultdict(lambda: deque(maxlen=64))
        self.acked_puts = 0
        self.acked_tag_puts = 0
        self.acked_deletes = 0
        self.uncertain = 0
        #: (when, what) the pushers saw that a registry at rest never answers: a DELETE of a
        #: tagged manifest answered 404 (its revision link was gone at that moment)
        #: (sent, answered, what)
        self.findings: list[tuple[float, float, str]] = []
        #: (when, why) a tag became uncertain
        self.ambiguous: list[tuple[float, str]] = []

    # -- events ---------------------------------------------------------------------------

    def note(self, digest: str, text: str) -> None:
        """Remember that ``text`` happened to ``digest`` now."""
        now = self.clock()
        with self._lock:
            self._events[digest].append((now, text))

    def events(self, digest: str, until: float, last: int = 8) -> list[tuple[float, str]]:
        """The ``last`` events of ``digest`` up to ``until`` seconds."""
        with self._lock:
            found = [e for e in self._events.get(digest, ()) if e[0] <= until]
        return found[-last:]

    def finding(self, sent: float, text: str) -> None:
        """Record an answer to a request sent at ``sent`` that a registry at rest never gives."""
        now = self.clock()
        with self._lock:
            self.findings.append((sent, now, text))

    # -- acknowledgements -------------------------------------------------------------------

    def _tagged(self, repo: str) -> set[str]:
        """Digests of every manifest a certain tag of ``repo`` reaches (lock held)."""
        out: set[str] = set()
        for (r, _), value in self._tags.items():
            if r == repo and value is not None:
                out.update(manifest_digests(value[0]))
        return out

    def _untagged(self, repo: str, owner: int, obj: Manifest, *, retire: bool = True) -> None:
        """``obj`` may have lost its last tag: retire it, forget its referrers (lock held)."""
        tagged = self._tagged(repo)
        if obj.digest in tagged:
            return
        if retire:
            self._retired[repo].append((owner, obj))
        for digest in manifest_digests(obj):
            self._referrers.pop((repo, digest), None)

    def tag_acked(self, owner: int, repo: str, tag: str, obj: Manifest) -> None:
        """The registry answered 201 to ``PUT /v2/<repo>/manifests/<tag>`` of ``obj``."""
        with self._lock:
            self._seq += 1
            self.acked_puts += 1
            self.acked_tag_puts += 1
            old = self._tags.get((repo, tag))
            self._tags[repo, tag] = (obj, self.clock())
            if old is not None and old[0].digest != obj.digest:
                self._untagged(repo, owner, old[0])

    def digest_acked(self) -> None:
        """The registry answered 201 to a manifest ``PUT`` by digest."""
        with self._lock:
            self.acked_puts += 1

    def referrer_acked(self, repo: str, subject: str, ref: oci.Image) -> None:
        """A referrer of ``subject`` was acknowledged (its ``PUT`` is counted already)."""
        with self._lock:
            if subject in self._tagged(repo):
                self._referrers[repo, subject][ref.digest] = (ref, self.clock())

    def tag_uncertain(self, owner: int, repo: str, tag: str, why: str = "") -> None:
        """A ``PUT`` of ``repo:tag`` failed in a way that may have moved the tag."""
        now = self.clock()
        with self._lock:
            self._seq += 1
            self.uncertain += 1
            self.ambiguous.append((now, f"{repo}:{tag}: {why}"[:300]))
            self._uncertain_seq[repo, tag] = self._seq
            old = self._tags.get((repo, tag))
            self._tags[repo, tag] = None
            if old is not None:
                self._untagged(repo, owner, old[0], retire=False)

    def delete_started(self, repo: str, digest: str) -> None:
        """A ``DELETE`` of ``digest`` is about to be sent.

        From now on a check may find it gone (the registry removes the revision link
        first, then looks up and untags the tags, which takes a while on S3): a check
        whose snapshot is older does not count that as a failure.
        """
        with self._lock:
            self._seq += 1
            self._deleted_seq[repo, digest] = self._seq
            self._deleting[repo, digest] += 1

    def delete_ended(self, repo: str, digest: str) -> None:
        """The ``DELETE`` of :meth:`delete_started` was answered (or failed): not in flight."""
        with self._lock:
            self._deleting[repo, digest] -= 1
            if self._deleting[repo, digest] <= 0:
                del self._deleting[repo, digest]

    def delete_acked(self, owner: int, repo: str, digest: str) -> None:
        """``DELETE /v2/<repo>/manifests/<digest>`` answered 202: its tags are gone too."""
        with self._lock:
            self._seq += 1
            self.acked_deletes += 1
            self._deleted_seq[repo, digest] = self._seq
            gone: Manifest | None = None
            for key, value in list(self._tags.items()):
                if key[0] == repo and value is not None and value[0].digest == digest:
                    gone = value[0]
                    del self._tags[key]
            if gone is not None:
                self._untagged(repo, owner, gone)

    def delete_uncertain(self, owner: int, repo: str, digest: str, why: str = "") -> None:
        """A ``DELETE`` failed in a way that may have removed the manifest and its tags."""
        with self._lock:
            keys = [
                key
                for key, value in self._tags.items()
                if key[0] == repo and value is not None and value[0].digest == digest
            ]
        for _, tag in keys:
            self.tag_uncertain(owner, repo, tag, f"DELETE {short(digest)}: {why}")

    # -- queries ----------------------------------------------------------------------------

    def current(self, repo: str, tag: str) -> Manifest | None:
        """What ``repo:tag`` holds (None: never pushed, deleted or uncertain)."""
        with self._lock:
            value = self._tags.get((repo, tag))
        return value[0] if value is not None else None

    def pick_retired(
        self, rng: random.Random, repo: str, *, owner: int | None = None, recent: int = 8
    ) -> Manifest | None:
        """One of the ``recent`` newest untagged manifests of ``repo`` (of ``owner``)."""
        with self._lock:
            tagged = self._tagged(repo)
            found = [
                obj
                for who, obj in self._retired[repo]
                if (owner is None or who == owner) and obj.digest not in tagged
            ]
        return rng.choice(found[-recent:]) if found else None

    def snapshot(self) -> tuple[int, list[Expected]]:
        """What must pull now, and the sequence number it is valid at."""
        with self._lock:
            tagged: dict[tuple[str, str], list[str]] = defaultdict(list)
            objs: dict[tuple[str, str], tuple[Manifest, float]] = {}
            for (repo, tag), value in self._tags.items():
                if value is None or (repo, value[0].digest) in self._deleting:
                    # A DELETE in flight may have removed the revision link already (the
                    # registry untags last): not a manifest that must pull now.
                    continue
                key = (repo, value[0].digest)
                tagged[key].append(tag)
                at = objs[key][1] if key in objs else value[1]
                objs[key] = (value[0], max(at, value[1]))
            out = [
                Expected(repo, obj, tuple(sorted(tagged[repo, digest])), None, at)
                for (repo, digest), (obj, at) in sorted(objs.items())
            ]
            live: dict[str, set[str]] = defaultdict(set)
            for (repo, _), (obj, _) in objs.items():
                live[repo].update(manifest_digests(obj))
            for (repo, subject), refs in sorted(self._referrers.items()):
                if subject in live[repo]:
                    out.extend(Expected(repo, ref, (), subject, at) for ref, at in refs.values())
            return self._seq, out

    def tags_now(self) -> dict[tuple[str, str], str]:
        """Every certain tag and the digest it must name."""
        with self._lock:
            return {key: v[0].digest for key, v in self._tags.items() if v is not None}

    def changed_since(self, exp: Expected, seq: int) -> bool:
        """Whether ``exp`` was (being) deleted, or a tag of it became uncertain, after ``seq``."""
        with self._lock:
            if self._deleted_seq.get((exp.repo, exp.digest), -1) > seq:
                return True
            return any(self._uncertain_seq.get((exp.repo, t), -1) > seq for t in exp.tags)


# -- downloading and checking ------------------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """What did not download: a manifest or blob, and how the registry answered."""

    what: str
    digest: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what} {self.digest}: {self.detail}"


def verify(client: RegistryClient, repo: str, obj: Manifest) -> Missing | None:
    """GET every manifest, config and layer of ``obj`` by digest; check each digest.

    Returns the first thing that does not download whole, or None.
    """
    for man in oci.iter_manifests(obj):
        assert isinstance(man, oci.Image | oci.Index)
        kind = "index" if isinstance(man, oci.Index) else "manifest"
        got = _get(client, f"/v2/{repo}/manifests/{man.digest}", man.digest, ACCEPT)
        if got:
            return Missing(kind, man.digest, got)
        for blob in man.blobs:
            what = "config" if isinstance(man, oci.Image) and blob is man.config else "layer"
            got = _get(client, f"/v2/{repo}/blobs/{blob.digest}", blob.digest)
            if got:
                return Missing(what, blob.digest, got)
    return None


def _get(
    client: RegistryClient, path: str, digest: str, headers: Mapping[str, str] | None = None
) -> str:
    """GET ``path``; return "" when it answers 200 with bytes of ``digest``, else why not."""
    try:
        resp = client.request("GET", path, headers=headers, expect=ANY_STATUS)
    except REQUEST_ERRORS as exc:
        return f"request failed: {exc}"
    if resp.status != 200:
        return f"HTTP {resp.status} {resp.body[:160].decode('utf-8', 'replace').strip()}"
    if sha256(resp.body) != digest:
        return f"served {len(resp.body)} bytes of digest {short(sha256(resp.body))}"
    return ""


# -- pushers -----------------------------------------------------------------------------------


class Pusher:
    """One pushing thread: random racing operations until stopped.

    Args:
        index: the pusher's number; its tags are ``w<index>-<k>`` in every repository.
        url: the registry (``127.0.0.1:PORT``).
        model: the shared model.
        stop: set to stop pushing.
        seed: the soak's seed (the pusher's random choices and image contents).
        weights: of :data:`OPS`.
        tags_per_repo: how many tags the pusher owns in each repository.
    """

    def __init__(
        self,
        index: int,
        url: str,
        model: Model,
        stop: threading.Event,
        *,
        seed: int,
        weights: Sequence[int] = WEIGHTS,
        tags_per_repo: int = 2,
    ) -> None:
        self.index = index
        self.name = f"w{index}"
        self.client = RegistryClient(url, timeout=60.0)
        self.model = model
        self.stop = stop
        self.seed = seed
        self.weights = list(weights)
        self.rng = random.Random(f"{seed}-{self.name}")
        self.tags = [(repo, f"{self.name}-{k}") for repo in REPOS for k in range(tags_per_repo)]
        #: a few base layers every pusher shares (same seed for all), of both flavours
        self.bases = [
            oci.layer(f"soak-{seed}-base-{i}", 2048, media)
            for i, media in enumerate((oci.DOCKER_LAYER, oci.DOCKER_LAYER, oci.OCI_LAYER))
        ]
        #: op → attempts, ok, failed (after the retry), failed_tries, retried_ok, fallback
        self.ops: dict[str, Counter[str]] = {op: Counter() for op in OPS}
        #: blob requests: uploaded, head_skip, mount_201, mount_202
        self.blobs: Counter[str] = Counter()
        self.errors: deque[str] = deque(maxlen=20)
        self.n = 0
        self.thread = threading.Thread(target=self.run, name=f"soak-{self.name}", daemon=True)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Pick an operation, plan it, try it (twice at most); until stopped."""
        while not self.stop.is_set():
            op = self.rng.choices(OPS, self.weights)[0]
            action = getattr(self, f"_plan_{op}")()
            if action is None:  # nothing old to race with yet: a new image instead
                self.ops[op]["fallback"] += 1
                op, action = "new", self._plan_new()
            self._attempt(op, action)

    def _attempt(self, op: str, action: Callable[[], None]) -> None:
        counts = self.ops[op]
        counts["attempts"] += 1
        for attempt in range(2):
            try:
                action()
            except NoRetryError as exc:
                counts["failed_tries"] += 1
                text = _one_line(exc.__cause__ or exc)
                self.errors.append(f"{self.model.clock():7.2f}s {self.name} {op}: {text}"[:400])
                break
            except REQUEST_ERRORS as exc:
                counts["failed_tries"] += 1
                text = _one_line(exc)
                self.errors.append(f"{self.model.clock():7.2f}s {self.name} {op}: {text}"[:400])
                if self.stop.is_set():
                    break
            else:
                counts["ok"] += 1
                if attempt:
                    counts["retried_ok"] += 1
                return
        counts["failed"] += 1

    def _seed(self) -> str:
        self.n += 1
        return f"soak-{self.seed}-{self.name}-{self.n}"

    def _image(self, seed: str, shared: Sequence[oci.Blob], own: int) -> Manifest:
        """A new image on ``shared`` layers, of their flavour (skopeo refuses a mix).

        Docker layers make a Docker image (75 %) or manifest list; OCI layers an OCI image
        (70 %) or index; without shared layers, either flavour.
        """
        flavour = _flavour(shared[0]) if shared else self.rng.choice(("docker", "oci"))
        shared = [b for b in shared if _flavour(b) == flavour]
        size = self.rng.choice((512, 1024, 3000))
        if self.rng.random() < (0.25 if flavour == "docker" else 0.3):
            return oci.multiarch(
                seed, kind=flavour, n_layers=1, layer_size=size, shared_layers=shared
            )
        build = oci.docker_image if flavour == "docker" else oci.oci_image
        return build(seed, n_layers=own, layer_size=size, shared_layers=shared)

    def _my_tag(self, repo: str | None = None) -> tuple[str, str]:
        return self.rng.choice([t for t in self.tags if repo is None or t[0] == repo])

    # -- plans: each returns the action to try (or None when there is nothing to race with) --

    def _plan_new(self) -> Callable[[], None]:
        repo, tag = self._my_tag()
        shared = [self.rng.choice(self.bases)] if self.rng.random() < 0.5 else []
        own = self.rng.randint(1, 3)
        image = self._image(self._seed(), shared, own=own)
        return lambda: self._push(repo, image, tag, "new")

    def _plan_reuse(self) -> Callable[[], None] | None:
        repo, tag = self._my_tag()
        old = self.model.pick_retired(self.rng, repo)
        if old is None:
            return None
        layers = layers_of(old)
        shared = self.rng.sample(layers, min(len(layers), self.rng.randint(1, 2)))
        image = self._image(self._seed(), shared, own=self.rng.randint(0, 1))
        return lambda: self._push(repo, image, tag, "reuse")

    def _plan_mount(self) -> Callable[[], None] | None:
        repo, tag = self._my_tag()
        source = self.rng.choice([r for r in REPOS if r != repo])
        old = self.model.pick_retired(self.rng, source)
        if old is None:
            return None
        layers = layers_of(old)
        shared = self.rng.sample(layers, min(len(layers), self.rng.randint(1, 2)))
        image = self._image(self._seed(), shared, own=self.rng.randint(0, 1))
        mounted = frozenset(b.digest for b in shared)
        return lambda: self._push(repo, image, tag, "mount", mount_from=source, mounted=mounted)

    def _plan_repush(self) -> Callable[[], None] | None:
        repo = self.rng.choice(REPOS)
        old = self.model.pick_retired(self.rng, repo, owner=self.index)
        if old is None:
            return None
        _, tag = self._my_tag(repo)

        def action() -> None:
            self._push(repo, old, old.digest, "repush")
            self._put_manifest(repo, tag, old, "repush")

        return action

    def _plan_delete(self) -> Callable[[], None] | None:
        tagged = [(r, obj) for r, t in self.tags if (obj := self.model.current(r, t))]
        if not tagged:
            return None
        repo, obj = self.rng.choice(tagged)
        return lambda: self._delete(repo, obj.digest)

    def _plan_referrer(self) -> Callable[[], None] | None:
        tagged = [(r, obj) for r, t in self.tags if (obj := self.model.current(r, t))]
        if not tagged:
            return None
        repo, obj = self.rng.choice(tagged)
        subject: Manifest = obj
        if isinstance(obj, oci.Index) and self.rng.random() < 0.5:
            subject = self.rng.choice(obj.children)
        kind = self.rng.choice((oci.SBOM_ARTIFACT, oci.SIGNATURE_ARTIFACT))
        ref = oci.referrer(subject, self._seed(), artifact_type=kind)

        def action() -> None:
            self._push(repo, ref, ref.digest, "referrer")
            self.model.referrer_acked(repo, subject.digest, ref)

        return action

    # -- the protocol -------------------------------------------------------------------------

    def _push(
        self,
        repo: str,
        obj: Manifest,
        ref: str,
        op: str,
        *,
        mount_from: str | None = None,
        mounted: frozenset[str] = frozenset(),
    ) -> None:
        """Everything ``obj`` needs (children by digest), then its manifest under ``ref``."""
        if isinstance(obj, oci.Index):
            for child in obj.children:
                self._push(repo, child, child.digest, op, mount_from=mount_from, mounted=mounted)
        else:
            for blob in obj.blobs:
                source = mount_from if blob.digest in mounted else None
                self._blob(repo, blob, op, mount_from=source)
        self._put_manifest(repo, ref, obj, op)

    def _blob(self, repo: str, blob: oci.Blob, op: str, *, mount_from: str | None) -> None:
        """HEAD the blob in ``repo``: 200 skips it; else mount it or upload it."""
        resp = self.client.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}", expect=(200, 404))
        if resp.status == 200:
            self.blobs["head_skip"] += 1
            self.model.note(blob.digest, f"{self.name} {op}: HEAD 200 in {repo}, not uploaded")
            return
        location = None
        if mount_from is not None:
            query = urllib.parse.urlencode({"mount": blob.digest, "from": mount_from})
            resp = self.client.request(
                "POST", f"/v2/{repo}/blobs/uploads/?{query}", expect=(201, 202)
            )
            if resp.status == 201:
                self.blobs["mount_201"] += 1
                self.model.note(
                    blob.digest, f"{self.name} {op}: mounted into {repo} from {mount_from}"
                )
                return
            self.blobs["mount_202"] += 1
            location = resp.headers["location"]
        if location is None:
            resp = self.client.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
            location = resp.headers["location"]
        url = self.client._with_query(self.client._abs(location), digest=blob.digest)
        self.client.request("PUT", url, data=blob.data, expect=(201,))
        self.blobs["uploaded"] += 1
        how = "mount refused (202), uploaded" if mount_from else "uploaded"
        self.model.note(blob.digest, f"{self.name} {op}: {how} into {repo}")

    def _put_manifest(self, repo: str, ref: str, obj: Manifest, op: str) -> None:
        """PUT the manifest; record the acknowledgement (or the uncertainty)."""
        tag = None if ref.startswith("sha256:") else ref
        sent = self.model.clock()
        try:
            resp = self.client.request(
                "PUT",
                f"/v2/{repo}/manifests/{ref}",
                data=obj.data,
                headers={"Content-Type": obj.media_type},
                expect=(201,),
            )
        except RegistryError as exc:
            self.model.note(obj.digest, f"{self.name} {op}: PUT {repo}:{ref} -> {exc.status}")
            if tag is not None and exc.status >= 500:
                self.model.tag_uncertain(self.index, repo, tag, f"PUT: {_one_line(exc)}")
            raise
        except REQUEST_ERRORS as exc:
            if tag is not None:
                self.model.tag_uncertain(self.index, repo, tag, f"PUT: {_one_line(exc)}")
            raise
        served = resp.headers.get("docker-content-digest", obj.digest)
        if served != obj.digest:
            self.model.finding(f"PUT {repo}:{ref} answered digest {served}, not {obj.digest}")
        self.model.note(
            obj.digest, f"{self.name} {op}: PUT {repo}:{short(ref)} 201 (sent at {sent:.2f}s)"
        )
        if tag is None:
            self.model.digest_acked()
        else:
            self.model.tag_acked(self.index, repo, tag, obj)

    def _delete(self, repo: str, digest: str) -> None:
        """DELETE the manifest by digest; record the acknowledgement (or the uncertainty)."""
        sent = self.model.clock()
        self.model.delete_started(repo, digest)
        self.model.note(digest, f"{self.name} delete: DELETE {repo} sent")
        try:
            self._send_delete(repo, digest, sent)
        finally:
            self.model.delete_ended(repo, digest)

    def _send_delete(self, repo: str, digest: str, sent: float) -> None:
        try:
            self.client.request("DELETE", f"/v2/{repo}/manifests/{digest}", expect=(202,))
        except RegistryError as exc:
            if exc.status == 404:
                # Nothing was deleted or untagged: the tag stays, to be checked after the run.
                self.model.finding(
                    sent, f"{self.name}: DELETE {repo}@{digest} of a tagged manifest answered 404"
                )
                raise NoRetryError(exc) from exc
            if exc.status >= 500:  # half done, perhaps: the tags are uncertain, no retry
                self.model.delete_uncertain(self.index, repo, digest, _one_line(exc))
                raise NoRetryError(exc) from exc
            raise
        except REQUEST_ERRORS as exc:
            self.model.delete_uncertain(self.index, repo, digest, _one_line(exc))
            raise NoRetryError(exc) from exc
        self.model.note(digest, f"{self.name} delete: DELETE {repo} 202")
        self.model.delete_acked(self.index, repo, digest)


# -- the collector's runs ----------------------------------------------------------------------


@dataclass
class Run:
    """One run of the collector, and the check after it."""

    number: int
    start: float
    end: float
    code: int | None
    deleted: int
    live: dict[str, int]
    note: str = ""
    #: whether the report had a ``live`` object
    reported_live: bool = False
    checked: int = 0
    failures: int = 0
    #: the live run's id (its quarantine directory)
    run_id: str = ""
    #: paths the run deleted (moved, for blobs of a live run)
    removed: frozenset[str] = frozenset()
    #: blob digests and link paths the live run restored
    restored: frozenset[str] = frozenset()

    def touching(self, digest: str) -> tuple[list[str], list[str]]:
        """What of ``digest`` (its blob, its links) this run removed, and restored."""
        hexpart = digest.partition(":")[2]
        return (
            sorted(p for p in self.removed if hexpart in p),
            sorted(p for p in self.restored if hexpart in p),
        )

    def describe(self) -> str:
        """``#3 12.10-12.95s exit 0, deleted 40, moved_blobs 3 …``."""
        figures = ", ".join(f"{k} {v}" for k, v in self.live.items() if v)
        return (
            f"#{self.number} {self.start:.2f}-{self.end:.2f}s exit {self.code}, "
            f"deleted {self.deleted}" + (f", {figures}" if figures else "")
        )


@dataclass(frozen=True)
class Failure:
    """An expected image that did not download whole."""

    at: float
    run: int | None
    expected: Expected
    missing: Missing | None
    skopeo: str = ""
    #: the state of the missing object in the storage when the failure was seen
    storage: str = ""


def deleted_paths(deletions_out: Path) -> frozenset[str]:
    """The paths a run's ``--deletions-out`` file says it deleted (empty when absent or cut)."""
    removed: set[str] = set()
    try:
        text = deletions_out.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("status") == "deleted":
            removed.update(p[0] for p in entry.get("paths") or () if isinstance(p, list) and p)
    return frozenset(removed)


def report_paths(report: Mapping[str, Any] | None) -> tuple[str, frozenset[str]]:
    """A run's id and what it restored (tolerant: empty when absent)."""
    live = report.get("live") if report else None
    restored: set[str] = set()
    run_id = ""
    if isinstance(live, dict):
        run_id = str(live.get("run") or "")
        back = live.get("restored")
        if isinstance(back, dict):
            for key in ("blobs", "links"):
                items = back.get(key)
                restored.update(i for i in items or () if isinstance(i, str))
    return run_id, frozenset(restored)


def gc_env() -> dict[str, str]:
    """The collector's environment: ours, with this checkout's ``registry_gc`` importable.

    Without coverage's subprocess variables: under ``coverage run`` (``nox -s tests``)
    each run would take twice as long, so fewer runs would race the pushers in the
    same time, and a run under a tracer is not the collector operators run. What the
    soaks run is measured by the tests of live mode (tests/test_live.py).
    """
    import registry_gc  # noqa: PLC0415

    env = untraced_environ()
    src = str(Path(registry_gc.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


# -- the soak ----------------------------------------------------------------------------------


@dataclass
class SoakResult:
    """Everything a soak counted; :meth:`summary` prints it."""

    label: str
    seconds: float
    pushers: int
    seed: int
    ops: dict[str, Counter[str]]
    blobs: Counter[str]
    acked_puts: int
    acked_tag_puts: int
    acked_deletes: int
    uncertain: int
    runs: list[Run]
    checks: int
    checked_images: int
    transient: list[Failure]
    #: manifest GETs answered 500 while the storage held the manifest whole (see
    #: :meth:`Soak.registry_raced_itself`), and the image downloaded whole right after
    registry_races: list[Failure]
    expected: int
    lost: list[Failure]
    tag_mismatches: list[str]
    findings: list[tuple[float, float, str]]
    ambiguous: list[tuple[float, str]]
    errors: list[str]
    explanations: list[str]
    elapsed: float = 0.0
    final_run: Run | None = None

    def when(self, start: float, end: float | None = None) -> str:
        """``during run #n`` when a run overlaps ``[start, end]``, else ``between runs``."""
        end = start if end is None else end
        for r in [*self.runs, *([self.final_run] if self.final_run else [])]:
            if r.start <= end and start <= r.end:
                return f"during run #{r.number}"
        return "between runs"

    @property
    def findings_between_runs(self) -> list[tuple[float, float, str]]:
        """Findings while no run was in progress (a run removes, then heals: not then)."""
        return [f for f in self.findings if self.when(f[0], f[1]) == "between runs"]

    @property
    def broken(self) -> int:
        """Acknowledged images seen broken at least once, after a run or at the end."""
        return len({(f.expected.repo, f.expected.digest) for f in [*self.transient, *self.lost]})

    @property
    def failed_ops(self) -> int:
        """Operations that failed twice (not acknowledged)."""
        return sum(c["failed"] for c in self.ops.values())

    def live_total(self, key: str) -> int:
        """A live figure summed over every run (the final one included)."""
        runs = [*self.runs, *([self.final_run] if self.final_run else [])]
        return sum(r.live.get(key, 0) for r in runs)

    @property
    def restores(self) -> int:
        """Blobs and links restored, over every run."""
        return self.live_total("restored_blobs") + self.live_total("restored_links")

    def summary(self) -> str:
        """The report the soak prints."""
        runs = [*self.runs, *([self.final_run] if self.final_run else [])]
        codes = Counter(r.code for r in runs)
        lines = [
            (
                f"soak {self.label}: {self.seconds:.0f} s of pushing by {self.pushers} pushers "
                f"(seed {self.seed}), {self.elapsed:.0f} s in all"
            ),
            (
                f"  acknowledged pushes: {self.acked_puts} manifest PUTs "
                f"({self.acked_puts / max(self.seconds, 1e-9):.1f}/s, "
                f"{self.acked_tag_puts} by tag), {self.acked_deletes} deletes; "
                f"failed operations: {self.failed_ops}; uncertain tags: {self.uncertain}"
            ),
        ]
        per_s = max(self.seconds, 1e-9)
        for op, c in self.ops.items():
            lines.append(
                f"    {op:8} {c['attempts']:5} tried, {c['ok']:5} ok ({c['ok'] / per_s:4.1f}/s; "
                f"{c['retried_ok']} after a retry), {c['failed']} failed "
                f"({c['failed_tries']} failed tries), {c['fallback']} had nothing old to race"
            )
        b = self.blobs
        lines.append(
            f"  blobs: {b['uploaded']} uploaded, {b['head_skip']} skipped after HEAD 200, "
            f"{b['mount_201']} mounted (201), {b['mount_202']} mounts refused (202)"
        )
        others = sorted({k for r in runs for k in r.live} - set(LIVE_KEYS))
        live = ", ".join(f"{k} {self.live_total(k)}" for k in [*LIVE_KEYS, *others])
        lines.append(
            f"  runs: {len(runs)} (exit codes {dict(codes)}; "
            f"{sum(r.end - r.start for r in runs) / max(len(runs), 1):.1f} s each), "
            f"{sum(r.deleted for r in runs)} objects deleted; {live}; restores {self.restores} "
            f"({sum(r.reported_live for r in runs)} reports with a live object)"
        )
        lines.append(
            f"  transient pull failures: {len(self.transient)} "
            f"(in {self.checks} checks of {self.checked_images} images)"
        )
        lines.extend(f"    {describe_failure(f)}" for f in self.transient[:20])
        if self.registry_races:
            lines.append(
                f"  not counted: {len(self.registry_races)} manifest GET(s) the registry answered "
                "500 while the storage held the manifest and its link whole (the registry "
                "rewriting the link in place), each image whole on a second look"
            )
            lines.extend(f"    {describe_failure(f)}" for f in self.registry_races[:5])
        lines.append(f"  lost images: {len(self.lost)} of {self.expected} expected")
        lines.append(f"  acknowledged images seen broken (transient or lost): {self.broken}")
        if self.broken:
            kinds = Counter(f.missing.what for f in [*self.transient, *self.lost] if f.missing)
            lines.append(f"    what was missing: {dict(kinds.most_common())}")
        lines.extend(f"    {describe_failure(f)}" for f in self.lost[:40])
        if self.tag_mismatches:
            lines.append(
                f"  tags not where the last acknowledged PUT put them: {len(self.tag_mismatches)}"
            )
            lines.extend(f"    {m}" for m in self.tag_mismatches[:20])
        if self.findings:
            lines.append(f"  findings: {len(self.findings)}")
            lines.extend(
                f"    {sent:7.2f}-{answered:.2f}s {self.when(sent, answered)}: {what}"
                for sent, answered, what in self.findings[:20]
            )
        if self.ambiguous:
            lines.append(f"  tags made uncertain: {len(self.ambiguous)}")
            lines.extend(f"    {t:7.2f}s {self.when(t)}: {a}" for t, a in self.ambiguous[:20])
        odd = [r for r in runs if r.code != 0 or r.note]
        if odd:
            lines.append("  runs that did not exit 0:")
            lines.extend(f"    {r.describe()}: {r.note}" for r in odd[:10])
        if self.explanations:
            lines.append("  timelines of the first failures:")
            lines.extend(f"    {e}" for e in self.explanations)
        if self.errors:
            lines.append("  last failed tries:")
            lines.extend(f"    {e}" for e in self.errors[-8:])
        return "\n".join(lines)


def describe_failure(f: Failure) -> str:
    """One line: when, after which run, what, what was missing."""
    where = f"after run #{f.run}" if f.run is not None else "at the end"
    what = str(f.missing)[:160] if f.missing else "downloads over HTTP"
    extra = f"; skopeo: {f.skopeo}" if f.skopeo else ""
    return f"{f.at:7.2f}s {where}: {f.expected.describe()}: {what}{extra}"


class Soak:
    """Pushers racing a command run back to back against one registry.

    Args:
        registry: the running registry.
        command: the collector's command line (``--json`` on stdout).
        workdir: where the final pulls go.
        seconds: how long the pushers push.
        pushers: how many pushing threads.
        seed: the seed of the pushers' choices and contents.
        label: what the summary calls this soak.
    """

    def __init__(
        self,
        registry: RealRegistry,
        command: Sequence[str],
        workdir: Path,
        *,
        seconds: float,
        pushers: int = 4,
        seed: int | None = None,
        label: str = "",
    ) -> None:
        self.registry = registry
        self.command = [str(a) for a in command]
        self.workdir = workdir
        self.seconds = seconds
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 30)
        self.label = label
        self.t0 = time.monotonic()
        self.model = Model(self.clock)
        self.stop_pushing = threading.Event()
        self.stop_collecting = threading.Event()
        self.pushers = [
            Pusher(i, registry.url, self.model, self.stop_pushing, seed=self.seed)
            for i in range(pushers)
        ]
        self.checker = RegistryClient(registry.url, timeout=60.0)
        self.runs: list[Run] = []
        self.transient: list[Failure] = []
        self.registry_races: list[Failure] = []
        self.checks = 0
        self.checked_images = 0
        self.checked_last = 0
        self.final: Run | None = None
        self.loop_error: BaseException | None = None
        self._env = gc_env()

    def clock(self) -> float:
        """Seconds since the soak was made."""
        return time.monotonic() - self.t0

    # -- the collector ------------------------------------------------------------------------

    def run_collector(self, number: int) -> Run:
        """Run the command once; its exit code, report figures and, if it failed, why."""
        start = self.clock()
        deletions_out = self.workdir / f"deletions-{number}.jsonl"
        try:
            proc = subprocess.run(
                [*self.command, "--deletions-out", str(deletions_out)],
                capture_output=True,
                text=True,
                timeout=900,
                env=self._env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Run(number, start, self.clock(), None, 0, live_figures(None), "timed out")
        report = read_report(proc.stdout)
        note = ""
        if proc.returncode != 0 or report is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            note = " | ".join(tail)[:600]
        run_id, restored = report_paths(report)
        removed = deleted_paths(deletions_out)
        return Run(
            number,
            start,
            self.clock(),
            proc.returncode,
            deleted_objects(report),
            live_figures(report),
            note,
            reported_live=isinstance(report, dict) and isinstance(report.get("live"), dict),
            run_id=run_id,
            removed=removed,
            restored=restored,
        )

    def _loop(self) -> None:
        """Run, pause and check, run again; until told to stop."""
        try:
            while not self.stop_collecting.is_set():
                run = self.run_collector(len(self.runs) + 1)
                self.runs.append(run)
                failures = self.check(run.number)
                run.checked, run.failures = self.checked_last, len(failures)
                self.transient.extend(failures)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.loop_error = exc

    def check(self, run: int | None) -> list[Failure]:
        """Download every expected image by digest now; what fails (unless deleted meanwhile)."""
        seq, expected = self.model.snapshot()

        def one(exp: Expected) -> Failure | None:
            client = RegistryClient(self.registry.url, timeout=60.0)
            missing = verify(client, exp.repo, exp.obj)
            if missing is None or self.model.changed_since(exp, seq):
                return None
            failure = Failure(self.clock(), run, exp, missing)
            if (
                self.registry_raced_itself(exp.repo, missing)
                and verify(client, exp.repo, exp.obj) is None
            ):
                self.registry_races.append(failure)
                return None
            return failure

        with ThreadPoolExecutor(max_workers=4) as pool:
            failures = [f for f in pool.map(one, expected) if f is not None]
        failures = [
            dataclasses.replace(f, storage=self.probe(f.expected.repo, f.missing, f.expected.tags))
            if i < 5 and f.missing
            else f
            for i, f in enumerate(failures)
        ]
        self.checks += 1
        self.checked_images += len(expected)
        self.checked_last = len(expected)
        return failures

    def registry_raced_itself(self, repo: str, missing: Missing) -> bool:
        """Whether a manifest GET's 500 came from the registry reading a link being rewritten.

        Registry 2.8's filesystem driver writes a file in place, truncating it first
        (later releases write a temporary file and rename it): a GET that reads the
        revision link while a PUT of the same manifest rewrites it finds it empty and
        answers 500. Checks run between collector runs, when registry-gc touches
        nothing; this holds only when the storage, looked at right after, has the
        manifest's blob and its revision link naming it — a removal by registry-gc
        leaves one of them missing (a moved blob behind a present link also answers
        500, and is never taken for this).
        """
        if missing.what not in {"manifest", "index"} or not missing.detail.startswith("HTTP 500"):
            return False
        try:
            fs, root = self.registry.storage_fs()
            link = f"{root}/{revision_link_key(repo, missing.digest)}"
            return (
                fs.exists(f"{root}/{blob_data_key(missing.digest)}")
                and fs.cat_file(link).decode() == missing.digest
            )
        except Exception:  # cannot tell: counted as a failure
            return False

    def probe(self, repo: str, missing: Missing, tags: Sequence[str] = ()) -> str:
        """Where the missing object is: its data, its link, the quarantine, the tags, the log."""
        try:
            fs, root = self.registry.storage_fs()
            d = missing.digest
            link = revision_link_key if missing.what in {"manifest", "index"} else layer_link_key
            found = [
                f"{name} {'present' if fs.exists(f'{root}/{key}') else 'absent'}"
                for name, key in (("blob data", blob_data_key(d)), ("link", link(repo, d)))
            ]
            base = root[: -len(V2_PREFIX)].rstrip("/")
            pattern = f"{base}/registry-gc/quarantine/*/{V2_PREFIX}/{blob_data_key(d)}"
            runs = sorted(
                {p.split("/quarantine/", 1)[1].split("/", 1)[0] for p in fs.glob(pattern)}
            )
            found.append(f"in quarantine runs {runs}" if runs else "not in the quarantine")
            for tag in tags:
                key = f"{root}/repositories/{repo}/_manifests/tags/{tag}/current/link"
                target = fs.cat_file(key).decode()[7:19] if fs.exists(key) else "absent"
                found.append(f"tag {tag} current {target}")
            found.extend(self.registry_log_lines(d))
            return ", ".join(found)
        except Exception as exc:  # a diagnosis, never a reason to stop the soak
            return f"probe failed: {_one_line(exc)}"[:200]

    def registry_log_lines(self, digest: str, last: int = 6) -> list[str]:
        """The registry's log lines naming ``digest`` (requests and errors), shortened."""
        hexpart = digest.split(":", 1)[-1]
        try:
            text = self.registry.log_path.read_text("utf-8", "replace")
        except OSError:
            return []
        picked = []
        for line in text.splitlines():
            if hexpart not in line:
                continue
            fields = dict(re.findall(r'([\w.]+)=("[^"]*"|\S+)', line))
            picked.append(
                "log "
                + " ".join(
                    fields.get(k, "").strip('"')
                    for k in ("time", "level", "http.request.method", "http.response.status")
                )
                + " "
                + fields.get("msg", "").strip('"')[:80]
            )
        return picked[-last:]

    # -- the whole soak ------------------------------------------------------------------------

    def run(self) -> SoakResult:
        """Push and collect for :attr:`seconds`; one more run; pull everything; the figures.

        The pushers go on past :attr:`seconds` until :data:`MIN_RUNS` runs have
        raced them (a loaded machine makes runs slow), up to :data:`MAX_STRETCH`
        times as long.
        """
        self.t0 = time.monotonic()
        loop = threading.Thread(target=self._loop, name="soak-gc", daemon=True)
        for pusher in self.pushers:
            pusher.thread.start()
        loop.start()
        try:
            deadline = time.monotonic() + self.seconds
            latest = time.monotonic() + self.seconds * MAX_STRETCH
            while loop.is_alive():
                now = time.monotonic()
                if now >= latest or (now >= deadline and len(self.runs) >= MIN_RUNS):
                    break
                time.sleep(0.2)
        finally:
            self.stop_pushing.set()
            for pusher in self.pushers:
                pusher.thread.join(timeout=180)
            self.stop_collecting.set()
            loop.join(timeout=900)
        if self.loop_error is not None:
            raise self.loop_error
        stuck = [p.name for p in self.pushers if p.thread.is_alive()]
        if stuck or loop.is_alive():
            raise RuntimeError(f"soak threads did not stop: {stuck or 'the GC loop'}")
        pushed_for = self.clock()
        final_run = self.final = self.run_collector(len(self.runs) + 1)
        lost, mismatches, expected = self.final_check()
        result = self._result(final_run, lost, mismatches, expected)
        result.seconds = pushed_for
        result.elapsed = self.clock()
        return result

    def final_check(self) -> tuple[list[Failure], list[str], int]:
        """Every expected image: HTTP digest check and ``skopeo copy --all``; every tag's target."""
        _, expected = self.model.snapshot()
        mismatches: list[str] = []
        for (repo, tag), digest in sorted(self.model.tags_now().items()):
            try:
                got = self.checker.get_manifest(repo, tag).digest
            except REQUEST_ERRORS as exc:
                got = f"error {exc}"[:200]
            if got != digest:
                mismatches.append(f"{repo}:{tag} names {got or '?'}, expected {digest}")

        def pull(i: int, exp: Expected) -> Failure | None:
            client = RegistryClient(self.registry.url, timeout=60.0)
            missing = verify(client, exp.repo, exp.obj)
            dest = self.workdir / f"pull-{i}"
            result = pull_all(self.registry.url, exp.repo, exp.digest, dest)
            shutil.rmtree(dest, ignore_errors=True)
            err = ""
            if result.returncode != 0:
                err = " ".join(result.stderr.strip().splitlines()[-2:])[:300]
            if missing is None and not err:
                return None
            where = self.probe(exp.repo, missing) if missing else ""
            return Failure(self.clock(), None, exp, missing, err or "", storage=where)

        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(pull, range(len(expected)), expected))
        return [f for f in found if f is not None], mismatches, len(expected)

    def explain(self, failure: Failure) -> list[str]:
        """What happened to the failed image and its missing object, and the runs around it."""
        digests = [failure.expected.digest]
        if failure.missing and failure.missing.digest != failure.expected.digest:
            digests.append(failure.missing.digest)
        out = [describe_failure(failure)]
        if failure.storage:
            out.append(f"  storage then: {failure.storage}")
        return [*out, *self.timeline(digests, failure.at)]

    def timeline(self, digests: Sequence[str], until: float) -> list[str]:
        """The last events of each digest up to ``until``, and the runs from then to ``until``."""
        out: list[str] = []
        times: list[float] = []
        for digest in digests:
            for at, text in self.model.events(digest, until):
                out.append(f"  {short(digest)} {at:7.2f}s {text}")
                times.append(at)
        low, high = min(times, default=until) - 2.0, max(*times, until) + 0.5
        for r in [*self.runs, *([self.final] if self.final else [])]:
            touched = [
                f"    {how} {p}"
                for digest in digests
                for how, paths in zip(("removed", "restored"), r.touching(digest), strict=True)
                for p in paths
            ]
            if touched or (r.end >= low and r.start <= high):
                out.append(f"  run {r.describe()} {r.run_id}".rstrip())
                out.extend(touched)
        return out

    def _result(
        self, final_run: Run, lost: list[Failure], mismatches: list[str], expected: int
    ) -> SoakResult:
        ops: dict[str, Counter[str]] = {op: Counter() for op in OPS}
        blobs: Counter[str] = Counter()
        errors: list[str] = []
        for p in self.pushers:
            for op, counts in p.ops.items():
                ops[op].update(counts)
            blobs.update(p.blobs)
            errors.extend(p.errors)
        explanations: list[str] = []
        for failure in [*lost[:3], *self.transient[:3]]:
            explanations.extend(self.explain(failure))
        for sent, answered, what in self.model.findings[:3]:
            explanations.append(f"{sent:7.2f}-{answered:.2f}s {what}")
            explanations.extend(self.timeline(DIGEST.findall(what), answered))
        m = self.model
        return SoakResult(
            label=self.label,
            seconds=self.seconds,
            pushers=len(self.pushers),
            seed=self.seed,
            ops=ops,
            blobs=blobs,
            acked_puts=m.acked_puts,
            acked_tag_puts=m.acked_tag_puts,
            acked_deletes=m.acked_deletes,
            uncertain=m.uncertain,
            runs=self.runs,
            checks=self.checks,
            checked_images=self.checked_images,
            transient=self.transient,
            registry_races=self.registry_races,
            expected=expected,
            lost=lost,
            tag_mismatches=mismatches,
            findings=list(m.findings),
            ambiguous=list(m.ambiguous),
            errors=sorted(errors),
            explanations=explanations,
            final_run=final_run,
        )


def operations_seen(result: SoakResult) -> dict[str, int]:
    """How often each racing pattern really happened (acknowledged operations, blob skips)."""
    return {
        **{op: result.ops[op]["ok"] for op in OPS},
        "head_skip": result.blobs["head_skip"],
        "mount_201": result.blobs["mount_201"],
    }


__all__ = [
    "DEFAULT_SECONDS",
    "LIVE_KEYS",
    "MAX_STRETCH",
    "MIN_RUNS",
    "OPS",
    "REPOS",
    "SECONDS_ENV",
    "Expected",
    "Failure",
    "Missing",
    "Model",
    "NoRetryError",
    "Pusher",
    "Run",
    "Soak",
    "SoakResult",
    "deleted_objects",
    "live_figures",
    "operations_seen",
    "read_report",
    "soak_seconds",
    "verify",
]
