"""Generate a synthetic distribution v2 registry store, quickly and deterministically.

The store has the exact layout ``docker-registry`` 2.8.2 writes (the same files as
``tests/rigs/builder.py``): ``blobs/sha256/<xx>/<hex>/data``, ``_layers``,
``_manifests/revisions``, tag ``current`` and ``index`` links holding ``sha256:<hex>``
without a newline, and unfinished ``_uploads``. Manifests are valid JSON whose
descriptors carry the right media types and sizes, so the reference GC reads them.

Shape (see :class:`Spec`): ``repos`` repositories, each with ``tags`` tags pushed
``pushes`` times (every push but the last leaves an untagged revision). An image is a
config plus ``layers`` layers; each layer slot is taken from a global pool of base
layers with probability ``share`` (layers shared across repositories), else, on a
re-push, kept from the previous push of the tag with probability ``reuse``, else new.
A fraction ``multiarch`` of tags are 2-platform indexes (untagged children), a fraction
``referrers`` of tags have a signature referrer (pushed by digest, ``subject`` = the
current image) and ``uploads`` unfinished uploads are spread over the repositories.
Layer bytes are small (64-256 random bytes): the benchmark measures metadata work.

Every file is old (10 days): nothing is inside a grace period.

Command line (prints the counts)::

    python benchmarks/synth.py DIR [--blobs 50000] [--no-multiarch --no-referrers]
    python benchmarks/synth.py s3://bucket/prefix --endpoint-url http://127.0.0.1:8333
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

V2 = "docker/registry/v2"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"

#: Blobs per repository at the default shape (measured), used to scale by blob count.
BLOBS_PER_REPO = 354.0
DEFAULT_AGE = 10 * 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class Spec:
    """The shape of a synthetic registry (defaults: about 50k blobs, 110k keys)."""

    repos: int = 141
    tags: int = 10
    pushes: int = 5
    layers: int = 6
    share: float = 0.1
    reuse: float = 0.3
    shared_pool: int = 512
    multiarch: float = 0.1
    referrers: float = 0.2
    uploads: int = 100
    seed: int = 0

    @classmethod
    def for_blobs(cls, blobs: int, **overrides: Any) -> Spec:
        """The default shape with as many repositories as make about ``blobs`` blobs."""
        repos = max(1, round(blobs / BLOBS_PER_REPO))
        return cls(**{"repos": repos, **overrides})


@dataclasses.dataclass
class Expected:
    """What the generator made, and what each GC should leave (blob digests)."""

    blobs: int = 0
    keys: int = 0
    bytes: int = 0
    repositories: int = 0
    tags: int = 0
    revisions: int = 0
    layer_links: int = 0
    uploads: int = 0
    #: blobs registry-gc keeps with delete_untagged (tag closure + referrers of live)
    live: set[str] = dataclasses.field(default_factory=set)
    #: blobs the reference 2.8.2 keeps with --delete-untagged (see reference_live)
    reference_live: set[str] = dataclasses.field(default_factory=set)
    all_blobs: set[str] = dataclasses.field(default_factory=set)

    def counts(self) -> dict[str, int]:
        """The counts (without the digest sets)."""
        return {
            k: v for k, v in dataclasses.asdict(self).items() if not isinstance(v, (set, list))
        } | {
            "live_blobs": len(self.live),
            "reference_live_blobs": len(self.reference_live),
        }


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_key(digest: str) -> str:
    """``docker/registry/v2/blobs/sha256/<xx>/<hex>/data``."""
    hexpart = digest[7:]
    return f"{V2}/blobs/sha256/{hexpart[:2]}/{hexpart}/data"


class _Gen:
    """Yields ``(key, bytes)`` pairs and records what must survive each GC."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.exp = Expected()
        self.sizes: dict[str, int] = {}
        self.pool: list[str | None] = [None] * spec.shared_pool
        self.pool_data: list[bytes] = []
        #: manifest digest → (blob refs, child manifests)
        self.graph: dict[str, tuple[list[str], list[str]]] = {}

    # -- helpers -----------------------------------------------------------------

    def blob(self, data: bytes) -> Iterator[tuple[str, bytes]]:
        d = _sha(data)
        if d not in self.sizes:
            self.sizes[d] = len(data)
            yield blob_key(d), data
        self._last = d

    def layer_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(64, 256))

    def links(self, repo: str, linked: set[str], digests: list[str]) -> Iterator[tuple[str, bytes]]:
        for d in digests:
            if d not in linked:
                linked.add(d)
                self.exp.layer_links += 1
                yield f"{V2}/repositories/{repo}/_layers/sha256/{d[7:]}/link", d.encode()

    def revision(self, repo: str, d: str) -> tuple[str, bytes]:
        self.exp.revisions += 1
        return f"{V2}/repositories/{repo}/_manifests/revisions/sha256/{d[7:]}/link", d.encode()

    # -- objects -------------------------------------------------------------------

    def image(
        self,
        repo: str,
        linked: set[str],
        *,
        docker: bool,
        label: str,
        previous: list[str] | None,
        arch: str = "amd64",
    ) -> Iterator[tuple[str, bytes]]:
        """An image manifest (stored as a revision); ``self._last`` is its digest."""
        spec = self.spec
        rng = self.rng
        layers: list[str] = []
        for slot in range(spec.layers):
            r = rng.random()
            if r < spec.share:
                i = rng.randrange(spec.shared_pool)
                if self.pool[i] is None:
                    yield from self.blob(self.layer_bytes())
                    self.pool[i] = self._last
                d = self.pool[i]
                assert d is not None
            elif previous is not None and slot < len(previous) and rng.random() < spec.reuse:
                d = previous[slot]
            else:
                yield from self.blob(self.layer_bytes())
                d = self._last
            layers.append(d)
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"bench": label}},
                "rootfs": {"type": "layers", "diff_ids": layers},
            },
            separators=(",", ":"),
        ).encode()
        yield from self.blob(config)
        config_digest = self._last
        yield from self.links(repo, linked, [config_digest, *layers])
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                    "digest": d,
                    "size": self.sizes[d],
                }
                for d in layers
            ],
        }
        data = json.dumps(doc, indent=3).encode()
        yield from self.blob(data)
        d = self._last
        self.graph[d] = ([config_digest, *layers], [])
        self._layers = layers
        yield self.revision(repo, d)
        self._last = d

    def index(self, repo: str, children: list[str], *, docker: bool) -> Iterator[tuple[str, bytes]]:
        entries = [
            {
                "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                "digest": c,
                "size": self.sizes[c],
                "platform": {"architecture": arch, "os": "linux"},
            }
            for c, arch in zip(children, ("amd64", "arm64"), strict=False)
        ]
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if docker else OCI_INDEX,
            "manifests": entries,
        }
        yield from self.blob(json.dumps(doc, indent=3).encode())
        d = self._last
        self.graph[d] = ([], list(children))
        yield self.revision(repo, d)
        self._last = d

    def referrer(self, repo: str, linked: set[str], subject: str) -> Iterator[tuple[str, bytes]]:
        """A signature pushed by digest: OCI manifest, empty config, ``subject``."""
        empty = b"{}"
        yield from self.blob(empty)
        empty_digest = self._last
        payload = json.dumps(
            {"critical": {"image": {"docker-manifest-digest": subject}}, "n": self.rng.random()}
        ).encode()
        yield from self.blob(payload)
        payload_digest = self._last
        yield from self.links(repo, linked, [empty_digest, payload_digest])
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_TYPE,
            "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": len(empty)},
            "layers": [
                {"mediaType": SIGNATURE_LAYER, "digest": payload_digest, "size": len(payload)}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": self.sizes[subject]},
        }
        yield from self.blob(json.dumps(doc, indent=3).encode())
        d = self._last
        self.graph[d] = ([empty_digest, payload_digest], [])
        yield self.revision(repo, d)
        self._last = d

    def upload(self, repo: str) -> Iterator[tuple[str, bytes]]:
        uid = "%08x-%04x-4%03x-8%03x-%012x" % (  # noqa: UP031 - a UUID-shaped id
            self.rng.getrandbits(32),
            self.rng.getrandbits(16),
            self.rng.getrandbits(12),
            self.rng.getrandbits(12),
            self.rng.getrandbits(48),
        )
        base = f"{V2}/repositories/{repo}/_uploads/{uid}"
        self.exp.uploads += 1
        yield f"{base}/data", self.layer_bytes()
        yield f"{base}/startedat", b"2026-01-01T00:00:00Z"
        yield f"{base}/hashstates/sha256/0", b"hash-state"

    # -- the whole store -----------------------------------------------------------

    def files(self) -> Iterator[tuple[str, bytes]]:
        spec = self.spec
        rng = self.rng
        roots_rgc: list[str] = []  # tag targets
        roots_ref: list[str] = []  # tag targets (the reference marks their References())
        referrers: list[tuple[str, str]] = []  # (referrer, subject)
        repos = [f"team{i % 16:02d}/svc-{i:05d}" for i in range(spec.repos)]
        for r, repo in enumerate(repos):
            docker = r % 2 == 1
            linked: set[str] = set()
            self.exp.repositories += 1
            for t in range(spec.tags):
                tag = "latest" if t == 0 else f"v1.{t}"
                self.exp.tags += 1
                multi = rng.random() < spec.multiarch
                previous: list[str] | None = None
                history: list[str] = []
                for p in range(spec.pushes):
                    label = f"{repo}:{tag}#{p}"
                    if multi:
                        children = []
                        for arch in ("amd64", "arm64"):
                            yield from self.image(
                                repo,
                                linked,
                                docker=docker,
                                label=label + arch,
                                previous=None,
                                arch=arch,
                            )
                            children.append(self._last)
                        yield from self.index(repo, children, docker=docker)
                    else:
                        yield from self.image(
                            repo, linked, docker=docker, label=label, previous=previous
                        )
                        previous = self._layers
                    history.append(self._last)
                base = f"{V2}/repositories/{repo}/_manifests/tags/{tag}"
                for d in history:
                    yield f"{base}/index/sha256/{d[7:]}/link", d.encode()
                current = history[-1]
                yield f"{base}/current/link", current.encode()
                roots_rgc.append(current)
                roots_ref.append(current)
                if not multi and rng.random() < spec.referrers:
                    yield from self.referrer(repo, linked, current)
                    referrers.append((self._last, current))
        for u in range(spec.uploads):
            yield from self.upload(repos[u % len(repos)])
        self._expect(roots_rgc, roots_ref, referrers)

    def _expect(
        self, roots: list[str], ref_roots: list[str], referrers: list[tuple[str, str]]
    ) -> None:
        exp = self.exp
        exp.all_blobs = set(self.sizes)
        exp.blobs = len(self.sizes)
        exp.bytes = sum(self.sizes.values())
        live_manifests: set[str] = set()
        stack = list(roots)
        while stack:
            m = stack.pop()
            if m in live_manifests:
                continue
            live_manifests.add(m)
            stack.extend(self.graph[m][1])
        # Referrers of live manifests are live (no referrer of a referrer here).
        live_manifests.update(r for r, s in referrers if s in live_manifests)
        for m in live_manifests:
            exp.live.add(m)
            exp.live.update(self.graph[m][0])
        # 2.8.2 with --delete-untagged: only tagged revisions are marked, with their
        # References() (an index's are its children manifests, not their blobs).
        for m in ref_roots:
            exp.reference_live.add(m)
            refs, children = self.graph[m]
            exp.reference_live.update(refs)
            exp.reference_live.update(children)


def generate(spec: Spec) -> tuple[Iterator[tuple[str, bytes]], Expected]:
    """The store's files as ``(key, bytes)`` (keys start with ``docker/registry/v2/``).

    ``Expected`` is complete once the iterator is exhausted.
    """
    gen = _Gen(spec)

    def counted() -> Iterator[tuple[str, bytes]]:
        for item in gen.files():
            gen.exp.keys += 1
            yield item

    return counted(), gen.exp


# -- writers ---------------------------------------------------------------------------


def write_local(spec: Spec, root: str, *, age: float = DEFAULT_AGE) -> Expected:
    """Write the store under the directory ``root`` (the registry ``rootdirectory``)."""
    files, exp = generate(spec)
    t = time.time() - age
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for key, data in files:
        full = os.path.join(root, key)
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        fd = os.open(full, flags, 0o644)
        try:
            os.write(fd, data)
            os.utime(fd, (t, t))
        finally:
            os.close(fd)
    return exp


@dataclasses.dataclass
class Changes:
    """What :func:`push_changes` wrote: a day of pushes on a collected store."""

    #: tags moved to a new image (the image they left becomes untagged)
    retagged: int = 0
    #: files written (blobs, links; a moved tag's ``current`` link counts once)
    files: int = 0
    #: blobs no manifest references (old enough to go, or young: kept for the grace)
    orphans: int = 0
    young: int = 0


def _put(root: str, key: str, data: bytes, mtime: float) -> None:
    full = os.path.join(root, key)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    os.utime(full, (mtime, mtime))


def push_changes(
    root: str,
    fraction: float = 0.01,
    *,
    seed: int = 1,
    age: float = 2 * 3600.0,
    young_age: float = 300.0,
) -> Changes:
    """Push about ``fraction`` of the store's files anew, as a day of pushes does.

    Moves tags to new images (a config and three new layers each, linked, with
    a revision and a tag history entry: the image the tag left becomes
    untagged garbage for ``-m``), and writes orphan blobs (an aborted push).
    Files are ``age`` seconds old, one in ten ``young_age`` (inside a grace
    period of an hour).
    """
    rng = random.Random(seed)
    now = time.time()
    v2 = os.path.join(root, V2)
    total = sum(len(names) for _, _, names in os.walk(v2))
    tags = sorted(
        os.path.relpath(os.path.join(d, "link"), root)
        for d, _, names in os.walk(os.path.join(v2, "repositories"))
        if d.endswith("/current") and "link" in names
    )
    target = max(1, round(total * fraction))
    changes = Changes()
    retags = max(1, min(len(tags), round(0.9 * target / 12)))

    def when() -> float:
        young = rng.random() < 0.1
        changes.young += young
        return now - (young_age if young else age)

    def blob(data: bytes, mtime: float) -> str:
        d = _sha(data)
        _put(root, blob_key(d), data, mtime)
        changes.files += 1
        return d

    for key in rng.sample(tags, retags):
        repo = key[len(V2) + len("/repositories/") : key.index("/_manifests/")]
        tag_dir = os.path.dirname(os.path.dirname(key))
        mtime = when()
        layers = [blob(rng.randbytes(64 + rng.randrange(192)), mtime) for _ in range(3)]
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": layers}}
        ).encode()
        config_digest = blob(config, mtime)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": 64} for d in layers],
            },
            indent=3,
        ).encode()
        d = blob(manifest, mtime)
        prefix = f"{V2}/repositories/{repo}"
        for linked in (config_digest, *layers):
            _put(root, f"{prefix}/_layers/sha256/{linked[7:]}/link", linked.encode(), mtime)
        _put(root, f"{prefix}/_manifests/revisions/sha256/{d[7:]}/link", d.encode(), mtime)
        _put(root, f"{tag_dir}/index/sha256/{d[7:]}/link", d.encode(), mtime)
        _put(root, key, d.encode(), mtime)
        changes.files += 7
        changes.retagged += 1
    while changes.files < target:
        blob(rng.randbytes(64 + rng.randrange(192)), when())
        changes.orphans += 1
    return changes


def write_memory(spec: Spec, root: str, *, age: float = DEFAULT_AGE) -> Expected:
    """Write the store into fsspec's in-process memory filesystem under ``root``."""
    import datetime  # noqa: PLC0415

    import fsspec  # noqa: PLC0415
    from fsspec.implementations.memory import MemoryFile  # noqa: PLC0415

    fs = fsspec.filesystem("memory")
    files, exp = generate(spec)
    created = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    root = "/" + root.strip("/")
    for key, data in files:
        path = f"{root}/{key}"
        f = MemoryFile(fs, path, data)
        f.created = created
        f.modified = created
        fs.store[path] = f
    return exp


def write_s3(
    spec: Spec,
    client_factory: Callable[[], Any],
    targets: list[tuple[str, str]],
    *,
    threads: int = 32,
    batch: int = 2000,
) -> Expected:
    """PutObject every file into each ``(bucket, key prefix)`` of ``targets``, with threads.

    ``client_factory`` makes a boto3 S3 client (one is shared by the threads: boto3
    clients are thread-safe). S3 sets the modification times (now): run GCs with
    ``grace=0`` or a ``now`` in the future.
    """
    files, exp = generate(spec)
    client = client_factory()

    def put(item: tuple[str, str, bytes]) -> None:
        bucket, key, data = item
        client.put_object(Bucket=bucket, Key=key, Body=data)

    with ThreadPoolExecutor(threads) as pool:
        chunk: list[tuple[str, str, bytes]] = []
        for key, data in files:
            chunk.extend((bucket, prefix + key, data) for bucket, prefix in targets)
            if len(chunk) >= batch:
                list(pool.map(put, chunk))
                chunk = []
        list(pool.map(put, chunk))
    return exp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a directory, memory://path or s3://bucket[/prefix]")
    parser.add_argument("--blobs", type=int, default=50_000, help="about this many blobs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-multiarch", action="store_true")
    parser.add_argument("--no-referrers", action="store_true")
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"seed": args.seed}
    if args.no_multiarch:
        overrides["multiarch"] = 0.0
    if args.no_referrers:
        overrides["referrers"] = 0.0
    spec = Spec.for_blobs(args.blobs, **overrides)
    t0 = time.perf_counter()
    if args.target.startswith("s3://"):
        import boto3  # noqa: PLC0415

        bucket, _, prefix = args.target[5:].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        exp = write_s3(
            spec,
            lambda: boto3.client("s3", endpoint_url=args.endpoint_url),
            [(bucket, prefix)],
        )
    elif args.target.startswith("memory://"):
        exp = write_memory(spec, args.target[9:])
    else:
        exp = write_local(spec, args.target)
    seconds = time.perf_counter() - t0
    print(json.dumps({"spec": dataclasses.asdict(spec), **exp.counts(), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
