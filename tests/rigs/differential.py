"""The registry as the oracle: push cases, record what it serves, collect, compare.

A differential run takes cases from :mod:`tests.rigs.manifest_gen` (generated, or
written by hand with :class:`~tests.rigs.manifest_gen.HandCase`) and
(:func:`build_store`, then :func:`collect_and_observe` per mode, then :func:`evaluate`):

1. pushes every case through ``docker-registry serve`` over HTTP; the bodies the
   registry accepts are the store (a rejected body is simply not part of it);
2. records what the registry serves (:class:`Observation`): every tag, and for every
   digest a case names, ``GET /manifests/<digest>`` and ``GET /blobs/<digest>`` in each
   of its repositories, with digests verified;
3. probes, on a throw-away copy of the store, what the registry verified on PUT: for
   every manifest it serves and every digest in its bytes, the same body with that
   digest replaced by one never pushed is PUT again; rejected with that digest named
   means the registry checks the reference (:class:`Probe`);
4. runs ``registry-gc gc --grace 0s --uploads-older-than 0s --json`` on copies of the
   store, without and with ``--delete-untagged``; a refusal (exit 3) must leave the
   copy byte-identical, and the repositories it names are set aside (and reported)
   so that the rest of the store is still checked;
5. serves each collected copy with a fresh registry, observes again, and checks
   (:func:`evaluate`) that
   - everything that must survive is served exactly as before: every tag; without
     ``-m`` every manifest served by digest; with ``-m`` what tags reach through the
     references the registry verified, plus referrers (``subject``, as Go clients
     read it) of anything live, in any repository; and every blob the registry
     verified for a surviving manifest;
   - whatever is no longer served is accounted for by a deletion in the report;
   - whatever the report deleted is no longer served;
   - ``skopeo copy --all`` of every tag that pulled before pulls after.

The only expectation not taken from the registry is the ``subject`` edge, which
registry 2.8.2 does not read: there the generator's record (Go's reading) counts.

The pushes, observations and probes (HTTP from this process, none of it registry-gc's
code) run in threads outside coverage's tracer (:func:`tests.rigs.procs.untraced_executor`);
registry-gc's runs (step 4) are measured.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_gc import cli

from tests.rigs import oci, planfiles
from tests.rigs.procs import untraced_executor
from tests.rigs.registry import RealRegistry
from tests.rigs.skopeo import pull_all

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from tests.rigs.manifest_gen import Case
    from tests.rigs.push import RegistryClient

#: The differential registry: schema1 pushes accepted (as 2.8.2 stores them), and
#: foreign layers' URLs allowed (so that bodies with non-distributable layers that were
#: never pushed get in).
DIFF_CONFIG: dict[str, Any] = {
    "compatibility": {"schema1": {"enabled": True}},
    "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
}

NO_GRACE = ("--grace", "0s", "--uploads-older-than", "0s")

_DIGEST_RE = re.compile(rb"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}")
_ACCEPT = ", ".join(oci.MANIFEST_MEDIA_TYPES)
_WORKERS = 4

# -- what the registry serves -----------------------------------------------------------

#: A view: ("tag", repo, tag) | ("manifest", repo, digest) | ("blob", repo, digest).
View = tuple[str, str, str]


@dataclass(frozen=True)
class Served:
    """One GET: status, and for 200 what was served (payload digest, type, bytes)."""

    status: int
    #: sha256 of the payload (schema1: without signatures); ``alg:hex`` for blobs
    identity: str = ""
    #: ``Docker-Content-Digest`` (manifests)
    header_digest: str = ""
    media_type: str = ""
    payload: bytes = field(default=b"", repr=False)
    #: whether the digests check out (served content matches what was asked for)
    intact: bool = True

    @property
    def ok(self) -> bool:
        """Served (200) with matching digests."""
        return self.status == 200 and self.intact


def schema1_payload(body: bytes) -> bytes:
    """The signed-over payload of a libtrust-signed (``v1+prettyjws``) schema1 manifest.

    2.8.2 re-signs schema1 on every GET; the payload (what its digest is taken over) is
    ``body[:formatLength] + formatTail`` from the first signature's protected header.
    """
    doc = json.loads(body)
    protected = doc["signatures"][0]["protected"]
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    tail = header["formatTail"]
    return body[: header["formatLength"]] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))


def alg_digest(data: bytes, alg: str = "sha256") -> str:
    """``alg:hex`` of ``data``."""
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def get_view(client: RegistryClient, view: View) -> Served:
    """GET one view and verify what comes back (status 0: the registry closed the connection).

    2.8.2 panics on some bodies it accepted (an OCI manifest without ``mediaType`` whose
    decoding as an index fails): the connection is closed without an answer.
    """
    kind, repo, ref = view
    try:
        if kind == "blob":
            resp = client.request("GET", f"/v2/{repo}/blobs/{ref}", expect=range(100, 600))
        else:
            resp = client.request(
                "GET",
                f"/v2/{repo}/manifests/{ref}",
                headers={"Accept": _ACCEPT},
                expect=range(100, 600),
            )
    except (OSError, http.client.HTTPException):
        return Served(0)
    if kind == "blob":
        if resp.status != 200:
            return Served(resp.status)
        identity = alg_digest(resp.body, ref.split(":", 1)[0])
        return Served(200, identity, payload=resp.body, intact=identity == ref)
    if resp.status != 200:
        return Served(resp.status)
    media_type = resp.headers.get("content-type", "")
    payload = resp.body
    if media_type == oci.SCHEMA1_SIGNED_MANIFEST:
        try:
            payload = schema1_payload(resp.body)
        except (ValueError, KeyError, IndexError, TypeError):
            return Served(200, "", media_type=media_type, payload=resp.body, intact=False)
    identity = alg_digest(payload)
    header = resp.headers.get("docker-content-digest", "")
    intact = header == identity and (kind == "tag" or identity == ref)
    return Served(200, identity, header, media_type, payload, intact)


@dataclass
class Observation:
    """What one registry served, view by view."""

    views: dict[View, Served] = field(default_factory=dict)
    #: repo → tags it listed
    tags: dict[str, list[str]] = field(default_factory=dict)
    #: tag view → skopeo copy --all return code (0 = pulled), for the tags tried
    pulls: dict[View, tuple[int, str]] = field(default_factory=dict)

    def served(self, view: View) -> bool:
        """Whether ``view`` was served intact."""
        s = self.views.get(view)
        return s is not None and s.ok


def list_tags(client: RegistryClient, repo: str) -> list[str]:
    """The tags of ``repo`` (``[]`` when it has none or is unknown)."""
    resp = client.request("GET", f"/v2/{repo}/tags/list", expect=(200, 404))
    if resp.status != 200:
        return []
    return sorted(json.loads(resp.body).get("tags") or [])


def candidate_views(cases: Iterable[Case], tags: Mapping[str, Sequence[str]]) -> list[View]:
    """Every view worth a GET: tags, and each case digest as manifest and blob per repo."""
    views: list[View] = []
    for case in cases:
        for repo in case.repos:
            views += [("tag", repo, t) for t in tags.get(repo, ())]
            for d in sorted(case.digests):
                views += [("manifest", repo, d), ("blob", repo, d)]
    return views


def observe(
    client: RegistryClient, cases: Sequence[Case], tags: Mapping[str, Sequence[str]] | None = None
) -> Observation:
    """GET every candidate view (tags listed now, or the ``tags`` given)."""
    obs = Observation()
    if tags is None:
        with untraced_executor(_WORKERS) as pool:
            repos = sorted({r for c in cases for r in c.repos})
            obs.tags = dict(
                zip(repos, pool.map(lambda r: list_tags(client, r), repos), strict=True)
            )
    else:
        obs.tags = {r: list(t) for r, t in tags.items()}
    views = candidate_views(cases, obs.tags)
    with untraced_executor(_WORKERS) as pool:
        obs.views = dict(zip(views, pool.map(lambda v: get_view(client, v), views), strict=True))
    return obs


def pull_tags(
    registry: RealRegistry, obs: Observation, views: Iterable[View], scratch: Path
) -> None:
    """``skopeo copy --all`` each tag view into ``scratch``; record the outcome in ``obs``."""
    scratch.mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(views):
        _kind, repo, tag = view
        dest = scratch / f"pull-{i}"
        result = pull_all(registry.url, repo, tag, dest)
        obs.pulls[view] = (result.returncode, result.stderr[-600:])
        shutil.rmtree(dest, ignore_errors=True)


# -- pushing ----------------------------------------------------------------------------


@dataclass
class PushLog:
    """How the registry answered each manifest PUT (and the other steps)."""

    #: (repo, digest, ref) → (status, error body) of each manifest PUT
    puts: dict[tuple[str, str, str], tuple[int, bytes]] = field(default_factory=dict)

    def accepted(self) -> set[tuple[str, str]]:
        """``(repo, digest)`` of every manifest the registry accepted at least once."""
        return {(r, d) for (r, d, _), (status, _) in self.puts.items() if status == 201}


def upload(client: RegistryClient, repo: str, digest: str, data: bytes) -> None:
    """Upload ``data`` into ``repo`` under ``digest`` (any algorithm) unless linked already."""
    if client.request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404)).status == 200:
        return
    resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
    location = urllib.parse.urljoin(client.base_url + "/", resp.headers["location"])
    sep = "&" if urllib.parse.urlsplit(location).query else "?"
    client.request(
        "PUT", location + sep + urllib.parse.urlencode({"digest": digest}), data=data, expect=(201,)
    )


def put_manifest(
    client: RegistryClient, repo: str, ref: str, data: bytes, content_type: str
) -> tuple[int, bytes]:
    """PUT a manifest; return (status, body) whatever the answer."""
    resp = client.request(
        "PUT",
        f"/v2/{repo}/manifests/{ref}",
        data=data,
        headers={"Content-Type": content_type},
        expect=range(100, 600),
    )
    return resp.status, resp.body


def push_cases(client: RegistryClient, cases: Iterable[Case]) -> PushLog:
    """Run every case's steps in order; rejections are recorded, not raised."""
    log = PushLog()
    for case in cases:
        for step in case.steps:
            if step.op == "blob":
                upload(client, step.repo, step.digest, step.data)
            elif step.op == "manifest":
                ref = step.ref or step.digest
                log.puts[step.repo, step.digest, ref] = put_manifest(
                    client, step.repo, ref, step.data, step.content_type
                )
            elif step.op == "delete-manifest":
                client.request(
                    "DELETE", f"/v2/{step.repo}/manifests/{step.digest}", expect=(202, 404)
                )
            elif step.op == "delete-blob":
                client.request("DELETE", f"/v2/{step.repo}/blobs/{step.digest}", expect=(202, 404))
            else:  # pragma: no cover - the generator makes no other step
                raise ValueError(step.op)
    return log


# -- probing what the registry verified --------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What the registry checked when this manifest was PUT, reference by reference."""

    verified: frozenset[str]
    unverified: frozenset[str]
    #: digest → why the probe could not tell (counted as verified: required)
    inconclusive: Mapping[str, str]

    @property
    def required(self) -> frozenset[str]:
        """What the manifest needs, as the registry sees it (verified or unknown)."""
        return self.verified | frozenset(self.inconclusive)


def never_for(digest: str, repo: str) -> str:
    """A digest of the same algorithm that nothing ever pushes."""
    alg = digest.split(":", 1)[0]
    return alg_digest(f"never/{repo}/{digest}".encode(), alg)


def _sign_like(payload: bytes, media_type: str) -> bytes:
    if media_type == oci.SCHEMA1_SIGNED_MANIFEST:
        return oci._libtrust_sign(payload)
    return payload


def probe_manifest(client: RegistryClient, repo: str, served: Served) -> Probe:
    """Probe one served manifest on a scratch store (its repository there is changed)."""
    payload, media_type = served.payload, served.media_type
    found = sorted({m.decode() for m in _DIGEST_RE.findall(payload)})
    inconclusive: dict[str, str] = {}
    status, body = put_manifest(
        client, repo, alg_digest(payload), _sign_like(payload, media_type), media_type
    )
    if status != 201:
        why = f"the registry rejects its own bytes again: {status} {body[:200]!r}"
        return Probe(frozenset(), frozenset(), dict.fromkeys(found, why))
    verified, unverified = set(), set()
    for d in found:
        never = never_for(d, repo)
        variant = payload.replace(d.encode(), never.encode())
        status, body = put_manifest(
            client, repo, alg_digest(variant), _sign_like(variant, media_type), media_type
        )
        if status == 201:
            unverified.add(d)
        elif never.encode() in body:
            verified.add(d)
        else:
            inconclusive[d] = f"{status} {body[:200]!r}"
    return Probe(frozenset(verified), frozenset(unverified), inconclusive)


def probe_all(client: RegistryClient, obs: Observation) -> dict[tuple[str, str], Probe]:
    """Probe every manifest served by digest in ``obs``: ``(repo, digest)`` → probe."""
    targets = [
        (repo, ref, served)
        for (kind, repo, ref), served in obs.views.items()
        if kind == "manifest" and served.ok
    ]
    with untraced_executor(_WORKERS) as pool:
        probes = pool.map(lambda t: probe_manifest(client, t[0], t[2]), targets)
        return {(repo, ref): p for (repo, ref, _), p in zip(targets, probes, strict=True)}


# -- running registry-gc ----------------------------------------------------------------


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``root``."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """``registry_gc.cli.run(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(list(argv))
    return code, out.getvalue(), err.getvalue()


@dataclass
class Refusal:
    """One refused run: its message, the repositories it named, and whether nothing changed."""

    message: str
    problems: list[str]
    repositories: list[str]
    unchanged: bool


@dataclass
class GcRun:
    """One mode's run of registry-gc on a copy of the store."""

    delete_untagged: bool
    root: Path
    exit_code: int = -1
    report: dict[str, Any] = field(default_factory=dict)
    #: the deletion lines of ``--deletions-out`` (the plan file format, with statuses)
    deletions: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    refusals: list[Refusal] = field(default_factory=list)
    #: repositories set aside because a refusal named them (not checked)
    excluded: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def mode(self) -> str:
        """``"-m"`` or ``"plain"``."""
        return "-m" if self.delete_untagged else "plain"


def _named_repositories(text: str, known: Iterable[str]) -> list[str]:
    """Repositories of ``known`` that ``text`` names (longest names first)."""
    return [
        repo
        for repo in sorted(known, key=len, reverse=True)
        if re.search(rf"(?<![\w/.-]){re.escape(repo)}(?![\w/.-])", text)
    ]


def run_gc(
    pristine: Path,
    dest: Path,
    *,
    delete_untagged: bool,
    repositories: Iterable[str],
    rounds: int = 6,
) -> GcRun:
    """Copy ``pristine`` to ``dest`` and collect it; set aside repositories a refusal names.

    Each refused round must leave the copy byte-identical. The next round starts from a
    fresh copy without the named repositories.
    """
    known = set(repositories)
    run = GcRun(delete_untagged, dest)
    argv_mode = ["--delete-untagged"] if delete_untagged else []
    started = time.monotonic()
    for _ in range(rounds):
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(pristine, dest, symlinks=True)
        for repo in run.excluded:
            shutil.rmtree(dest / "docker/registry/v2/repositories" / repo, ignore_errors=True)
        before = file_hashes(dest)
        listing = dest.parent / f"{dest.name}.deletions.jsonl"
        listing.unlink(missing_ok=True)
        argv = ["gc", str(dest), *NO_GRACE, "--json", "--deletions-out", str(listing)]
        code, out, err = run_cli([*argv, *argv_mode])
        run.exit_code, run.stderr = code, err
        run.deletions = planfiles.deletions(listing) if listing.exists() else []
        try:
            run.report = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            run.report = {"unparsed": out}
        if code != 3:
            break
        message = str(run.report.get("error", err))
        problems = [str(p) for p in run.report.get("problems", [])]
        named = _named_repositories("\n".join([message, *problems, err]), known - run.excluded)
        run.refusals.append(Refusal(message, problems, named, file_hashes(dest) == before))
        if not named:
            break
        run.excluded |= set(named)
    run.seconds = time.monotonic() - started
    return run


# -- the oracle -------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One way a run lost or misreported what the registry served."""

    mode: str
    repo: str
    problem: str  # lost | changed | unreported | deleted-but-served | exit | refused | pull
    view: View | None
    detail: str


@dataclass
class Store:
    """The pushed store and everything recorded about it before any collection."""

    root: Path
    cases: list[Case]
    log: PushLog
    before: Observation
    probes: dict[tuple[str, str], Probe]
    #: manifest digest → subject digest, as Go reads it (from the generator)
    subjects: dict[str, str]
    #: digest under sha384/sha512 → canonical sha256 digest
    aliases: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def case_of(self, repo: str) -> Case | None:
        """The case that pushed to ``repo``."""
        for case in self.cases:
            if repo in case.repos:
                return case
        return None

    @property
    def repositories(self) -> set[str]:
        """Every repository the cases push to."""
        return {r for c in self.cases for r in c.repos}


def live_set(store: Store, *, delete_untagged: bool, excluded: set[str]) -> dict[View, str]:
    """Views that must be served after a run, each with why.

    Roots: tags (and without ``-m`` every manifest served by digest). From a live
    manifest: every digest the registry verified for it (as a manifest when it was
    served as one, then live too; as a blob when it was served as one), and every
    manifest whose ``subject`` is its digest, in any repository.
    """
    before = store.before
    served = {v for v, s in before.views.items() if s.ok and v[1] not in excluded}
    referrers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for kind, repo, ref in served:
        if kind == "manifest" and ref in store.subjects:
            referrers[store.subjects[ref]].append((repo, ref))
    required: dict[View, str] = {}
    stack: list[tuple[str, str, str]] = []
    for view in sorted(served):
        kind, repo, ref = view
        if kind == "tag":
            required[view] = "tagged"
            stack.append((repo, before.views[view].identity, f"tag {ref}"))
        elif kind == "manifest" and not delete_untagged:
            stack.append((repo, ref, "every revision is a root without -m"))
    seen: set[tuple[str, str]] = set()
    while stack:
        repo, digest, why = stack.pop()
        if (repo, digest) in seen:
            continue
        seen.add((repo, digest))
        mview: View = ("manifest", repo, digest)
        if mview in served:
            required.setdefault(mview, why)
        probe = store.probes.get((repo, digest))
        for ref in sorted(probe.required if probe else ()):
            because = f"verified by the registry for {digest[:19]} ({why})"
            if ("blob", repo, ref) in served:
                required.setdefault(("blob", repo, ref), because)
            if ("manifest", repo, ref) in served:
                stack.append((repo, ref, because))
        for other_repo, referrer in referrers.get(digest, ()):
            stack.append((other_repo, referrer, f"referrer of {digest[:19]} ({why})"))
    return required


_PATH_RE = re.compile(
    r"repositories/(?P<repo>.+?)/_(?:layers|manifests/revisions)/(?P<alg>sha\d+)/(?P<hex>[0-9a-f]+)"
)


@dataclass
class Deleted:
    """What a report says a run deleted, in terms of views."""

    #: views a deletion accounts for (if they are no longer served)
    explains: set[View] = field(default_factory=set)
    #: views that must no longer be served (revision and layer links deleted)
    gone: set[View] = field(default_factory=set)
    #: canonical digests of deleted blobs
    blobs: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)


def deleted_by(deletions: Iterable[Mapping[str, Any]]) -> Deleted:
    """Read the deletion lines of ``--deletions-out`` (those done, or planned in a dry run)."""
    out = Deleted()
    for d in deletions:
        if d.get("status") not in {None, "deleted", "planned"}:
            continue
        category, repo, digest = d.get("category"), d.get("repository"), d.get("digest")
        if category == "blob" and digest:
            out.blobs.add(digest)
        elif category == "repository" and repo:
            out.repositories.add(repo)
        elif category == "tag" and repo:
            view: View = ("tag", repo, str(d.get("name") or ""))
            out.explains.add(view)
            out.gone.add(view)
        elif category in {"revision", "layer-link"} and repo:
            names = {digest} if digest else set()
            for path, _, _ in d.get("paths", []):
                if m := _PATH_RE.search(path):
                    names.add(f"{m['alg']}:{m['hex']}")
            for name in names:
                if category == "revision":
                    out.explains.add(("manifest", repo, name))
                    out.gone.add(("manifest", repo, name))
                else:
                    out.explains |= {("blob", repo, name), ("manifest", repo, name)}
                    out.gone.add(("blob", repo, name))
    return out


def evaluate(store: Store, run: GcRun, after: Observation) -> list[Violation]:
    """Every way ``run`` (observed as ``after``) broke the rules in the module docstring."""
    out: list[Violation] = []
    mode = run.mode
    if run.exit_code != 0:
        out.append(Violation(mode, "", "exit", None, f"exit {run.exit_code}: {run.stderr[-1500:]}"))
    out.extend(
        Violation(mode, "", "refused", None, "a refused run changed the store")
        for refusal in run.refusals
        if not refusal.unchanged
    )
    required = live_set(store, delete_untagged=run.delete_untagged, excluded=run.excluded)
    deleted = deleted_by(run.deletions)

    def canonical(digest: str) -> str:
        return store.aliases.get(digest, digest)

    for view, served in store.before.views.items():
        kind, repo, ref = view
        if repo in run.excluded or not served.ok:
            continue
        now = after.views.get(view, Served(0))
        same = now.ok and now.identity == served.identity
        if view in required:
            if not same:
                what = "changed" if now.ok else "lost"
                out.append(Violation(mode, repo, what, view, f"{required[view]}; now {now.status}"))
            continue
        if same:
            continue
        digest = served.identity if kind == "tag" else ref
        if (
            view in deleted.explains
            or canonical(digest) in deleted.blobs
            or repo in deleted.repositories
        ):
            continue
        out.append(Violation(mode, repo, "unreported", view, f"now {now.status}"))
    # What the report deleted is no longer served.
    for view in deleted.gone:
        kind, repo, ref = view
        if repo in run.excluded or not after.served(view):
            continue
        if kind == "manifest" and after.served(("blob", repo, ref)):
            continue  # a _layers link to the same manifest still serves it
        out.append(Violation(mode, repo, "deleted-but-served", view, "the report deleted it"))
    for view, served in after.views.items():
        kind, repo, ref = view
        if kind == "tag" or repo in run.excluded or not served.ok:
            continue
        if canonical(ref) in deleted.blobs:
            out.append(
                Violation(mode, repo, "deleted-but-served", view, "the report deleted its blob")
            )
    # Tags that pulled before pull after.
    for view, (code, _) in store.before.pulls.items():
        if view[1] in run.excluded or code != 0:
            continue
        after_code, stderr = after.pulls.get(view, (-1, "not tried"))
        if after_code != 0:
            out.append(Violation(mode, view[1], "pull", view, stderr))
    return out


# -- the whole run ----------------------------------------------------------------------


def build_store(cases: list[Case], work: Path, *, pulls: int | None = None) -> Store:
    """Push ``cases``, observe, pull tags with skopeo (up to ``pulls``), probe on a copy."""
    timings: dict[str, float] = {}
    root = work / "storage"
    t = time.monotonic()
    with RealRegistry(work / "registry", root_dir=root, extra_config=DIFF_CONFIG) as reg:
        client = reg.client()
        with untraced_executor(1) as pusher:  # in order; outside coverage (see above)
            log = pusher.submit(push_cases, client, cases).result()
        timings["push"] = time.monotonic() - t
        t = time.monotonic()
        before = observe(client, cases)
        timings["observe"] = time.monotonic() - t
        t = time.monotonic()
        tag_views = sorted(v for v, s in before.views.items() if v[0] == "tag" and s.ok)
        pull_tags(
            reg, before, tag_views[:pulls] if pulls is not None else tag_views, work / "pulls"
        )
        timings["pull"] = time.monotonic() - t
    t = time.monotonic()
    scratch = work / "probe-storage"
    shutil.copytree(root, scratch, symlinks=True)
    with RealRegistry(work / "probe-registry", root_dir=scratch, extra_config=DIFF_CONFIG) as reg:
        probes = probe_all(reg.client(), before)
    shutil.rmtree(scratch, ignore_errors=True)
    timings["probe"] = time.monotonic() - t
    subjects = {d: b.subject for c in cases for d, b in c.bodies.items() if b.subject}
    aliases = {a: d for c in cases for a, d in c.aliases.items()}
    return Store(root, cases, log, before, probes, subjects, aliases, timings)


def observe_store(store: Store, root: Path, work: Path) -> Observation:
    """Serve ``root`` (a copy of the store) with a fresh registry; observe and pull as before."""
    with RealRegistry(work / "registry", root_dir=root, extra_config=DIFF_CONFIG) as reg:
        after = observe(reg.client(), store.cases, store.before.tags)
        pull_tags(reg, after, store.before.pulls, work / "pulls")
    return after


def collect_and_observe(
    store: Store, work: Path, *, delete_untagged: bool
) -> tuple[GcRun, Observation]:
    """Run registry-gc in one mode on a copy, then observe the copy through a fresh registry."""
    mode = "m" if delete_untagged else "plain"
    run = run_gc(
        store.root,
        work / f"gc-{mode}",
        delete_untagged=delete_untagged,
        repositories=store.repositories,
    )
    return run, observe_store(store, run.root, work / f"after-{mode}")


# -- telling what went wrong --------------------------------------------------------------


def describe_case(store: Store, repo: str, *, limit: int = 1200) -> str:
    """The case behind ``repo``: its kind, classes, steps and (truncated) bodies."""
    case = store.case_of(repo)
    if case is None:
        return f"{repo}: no case"
    lines = [f"case {case.repo} ({case.kind}): {', '.join(sorted(case.classes))}"]
    for step in case.steps:
        if step.op == "manifest":
            status = store.log.puts.get((step.repo, step.digest, step.ref or step.digest), (0, b""))
            lines.append(
                f"  PUT {step.repo}:{step.ref or step.digest} {step.digest} "
                f"[{step.content_type}] -> {status[0]} ({step.label})"
            )
            body = case.bodies[step.digest]
            lines.append("    " + repr(body.payload[:limit])[2:-1])
        else:
            lines.append(f"  {step.op} {step.repo} {step.digest} ({step.label})")
    return "\n".join(lines)


def describe_deletions(store: Store, run: GcRun, repo: str, *, limit: int = 12) -> str:
    """What ``run``'s report deleted for the case behind ``repo`` (its repositories, blobs)."""
    case = store.case_of(repo)
    repos = set(case.repos) if case else {repo}
    digests = {store.aliases.get(d, d) for d in case.digests} if case else set()
    lines = [
        f"  {d.get('category')} {d.get('repository') or ''} {d.get('digest') or d.get('name')}"
        f" ({d.get('reason')})"
        for d in run.deletions
        if d.get("repository") in repos
        or (d.get("repository") is None and d.get("digest") in digests)
    ]
    more = [f"  ... {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join([f"[{run.mode}] registry-gc deleted:", *lines[:limit], *more])


def format_violations(store: Store, violations: Sequence[Violation], *, max_cases: int = 12) -> str:
    """Violations grouped by case, each case described once, the most common first."""
    by_repo: dict[str, list[Violation]] = defaultdict(list)
    for v in violations:
        by_repo[v.repo].append(v)
    lines = [f"{len(violations)} violation(s) in {len(by_repo)} repository(ies)"]
    for repo, vs in list(by_repo.items())[:max_cases]:
        lines.append("")
        lines += [f"[{v.mode}] {v.problem} {v.view or ''}: {v.detail}" for v in vs[:8]]
        if len(vs) > 8:
            lines.append(f"... {len(vs) - 8} more")
        if repo:
            lines.append(describe_case(store, repo))
    if len(by_repo) > max_cases:
        lines.append(f"... and {len(by_repo) - max_cases} more repositories")
    return "\n".join(lines)


def describe_refusals(store: Store, run: GcRun) -> str:
    """The refusals of ``run`` with the cases they named."""
    lines = []
    for refusal in run.refusals:
        lines.append(f"[{run.mode}] refused: {refusal.message}")
        lines += [f"  - {p[:400]}" for p in refusal.problems[:20]]
        for repo in refusal.repositories[:20]:
            lines.append(describe_case(store, repo, limit=600))
    return "\n".join(lines)


def class_summary(store: Store, repos: Iterable[str]) -> dict[str, int]:
    """How many of ``repos``' cases carry each class."""
    counts: dict[str, int] = defaultdict(int)
    for repo in set(repos):
        case = store.case_of(repo)
        if case is not None:
            for c in case.classes:
                counts[c] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
