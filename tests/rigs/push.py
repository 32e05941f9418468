"""A small registry HTTP API v2 client on urllib (no auth, plain HTTP, no proxy).

:class:`RegistryClient` pushes blobs, manifests and whole images/indexes built with
:mod:`tests.rigs.oci`, mounts blobs across repositories, deletes manifests, leaves
unfinished uploads behind, and reads tags, the catalog and manifests back.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.rigs.oci import MANIFEST_MEDIA_TYPES, Blob, Image, Index, Schema1

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class RegistryError(RuntimeError):
    """The registry answered with an unexpected HTTP status.

    Attributes:
        status: the HTTP status code.
        body: the response body (the registry's JSON ``errors`` usually).
        method, url: the request.
    """

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        super().__init__(
            f"{method} {url} -> HTTP {status}: {body[:500].decode('utf-8', 'replace')}"
        )


@dataclass(frozen=True)
class Response:
    """An HTTP response: status, headers (lower-case keys) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as served: bytes, ``Content-Type`` and ``Docker-Content-Digest``."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        """The manifest parsed as JSON."""
        doc: dict[str, Any] = json.loads(self.data)
        return doc


@dataclass(frozen=True)
class Upload:
    """An upload session left open: its UUID and (absolute) location URL."""

    uuid: str
    location: str


class RegistryClient:
    """Registry API v2 client for ``host:port`` (or a full ``http://host:port`` URL).

    All methods raise :class:`RegistryError` on an unexpected status.
    """

    def __init__(self, registry: str, *, timeout: float = 30.0) -> None:
        self.base_url = registry.rstrip("/") if "://" in registry else f"http://{registry}"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- plumbing --------------------------------------------------------------------

    def _abs(self, url_or_path: str) -> str:
        """Resolve a path or a relative ``Location`` against the registry URL."""
        return urllib.parse.urljoin(self.base_url + "/", url_or_path)

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] = (200,),
    ) -> Response:
        """Send one request; return the response if its status is in ``expect``."""
        url = self._abs(path)
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
            hdrs["Content-Length"] = str(len(data))
        elif method in {"PUT", "POST", "PATCH"}:
            hdrs["Content-Length"] = "0"
        req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status, rh, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, rh, body = exc.code, exc.headers, exc.read()
        headers_out = {k.lower(): v for k, v in rh.items()}
        if status not in set(expect):
            raise RegistryError(method, url, status, body)
        return Response(status, headers_out, body)

    @staticmethod
    def _with_query(location: str, **params: str) -> str:
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        return location + sep + urllib.parse.urlencode(params)

    # -- blobs -----------------------------------------------------------------------

    def push_blob(self, repo: str, blob: Blob) -> str:
        """Upload ``blob`` into ``repo`` (POST an upload, then PUT ``?digest=``); return its digest.

        Skips the upload when the blob is already linked in ``repo``.
        """
        if self.blob_exists(repo, blob.digest):
            return blob.digest
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        location = self._abs(resp.headers["location"])
        self.request(
            "PUT",
            self._with_query(location, digest=blob.digest),
            data=blob.data,
            expect=(201,),
        )
        return blob.digest

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-mount ``digest`` from ``from_repo`` into ``repo``; return True if mounted (201).

        When the registry answers 202 (it started an upload instead), that upload is
        cancelled and False is returned.
        """
        query = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", expect=(201, 202))
        if resp.status == 201:
            return True
        self.request("DELETE", self._abs(resp.headers["location"]), expect=(204,))
        return False

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Return whether ``HEAD /v2/<repo>/blobs/<digest>`` answers 200 (404 → False)."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
        return resp.status == 200

    def get_blob(self, repo: str, digest: str) -> bytes:
        """Return the bytes of a blob."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}").body

    def delete_blob(self, repo: str, digest: str) -> None:
        """``DELETE /v2/<repo>/blobs/<digest>`` (removes the repo's layer link; 202)."""
        self.request("DELETE", f"/v2/{repo}/blobs/{digest}", expect=(202,))

    def start_upload(self, repo: str, data_chunk: bytes = b"unfinished") -> Upload:
        """Start an upload and PATCH ``data_chunk`` into it, but never finish it.

        Leaves ``repositories/<repo>/_uploads/<uuid>/`` (``data``, ``startedat``,
        ``hashstates/…``) in the store.
        """
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        location = self._abs(resp.headers["location"])
        uuid = resp.headers.get("docker-upload-uuid", "")
        if data_chunk:
            resp = self.request(
                "PATCH",
                location,
                data=data_chunk,
                headers={"Content-Range": f"0-{len(data_chunk) - 1}"},
                expect=(202,),
            )
            location = self._abs(resp.headers["location"])
            uuid = resp.headers.get("docker-upload-uuid", uuid)
        return Upload(uuid=uuid, location=location)

    # -- manifests -------------------------------------------------------------------

    def push_manifest(self, repo: str, ref: str, manifest: Blob | Image | Index | Schema1) -> str:
        """PUT a manifest under ``ref`` (a tag or its digest); return ``Docker-Content-Digest``.

        The ``Content-Type`` is the manifest's media type.
        """
        blob = manifest if isinstance(manifest, Blob) else manifest.manifest
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            data=blob.data,
            headers={"Content-Type": blob.media_type},
            expect=(201,),
        )
        return resp.headers.get("docker-content-digest", blob.digest)

    def push_image(self, repo: str, tag: str | None, image: Image | Index | Schema1) -> str:
        """Push everything ``image`` needs, then its manifest under ``tag`` (or by digest).

        For an image: config and layers, then the manifest. For an index: every child
        (recursively) by digest first, then the index. A referrer's subject is not
        pushed: push it first. Returns the manifest digest.
        """
        if isinstance(image, Index):
            for child in image.children:
                self.push_image(repo, None, child)
        else:
            for blob in image.blobs:
                self.push_blob(repo, blob)
        return self.push_manifest(repo, tag or image.digest, image)

    def get_manifest(
        self, repo: str, ref: str, accept: Iterable[str] = MANIFEST_MEDIA_TYPES
    ) -> FetchedManifest:
        """GET a manifest by tag or digest, with ``Accept`` set to ``accept``."""
        resp = self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ", ".join(accept)}
        )
        return FetchedManifest(
            resp.body,
            resp.headers.get("content-type", ""),
            resp.headers.get("docker-content-digest", ""),
        )

    def manifest_exists(self, repo: str, ref: str) -> bool:
        """Return whether ``HEAD /v2/<repo>/manifests/<ref>`` answers 200 (404 → False)."""
        resp = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
            expect=(200, 404),
        )
        return resp.status == 200

    def delete_manifest(self, repo: str, digest: str) -> None:
        """``DELETE /v2/<repo>/manifests/<digest>`` (202): removes the revision link and tags."""
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", expect=(202,))

    # -- listing ---------------------------------------------------------------------

    def tags(self, repo: str) -> list[str]:
        """Return the tags of ``repo`` (``[]`` when it has none; RegistryError 404 if unknown)."""
        body = json.loads(self.request("GET", f"/v2/{repo}/tags/list").body)
        return sorted(body.get("tags") or [])

    def catalog(self) -> list[str]:
        """Return every repository name (``/v2/_catalog``, following ``Link`` pagination)."""
        names: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            resp = self.request("GET", path)
            names.extend(json.loads(resp.body).get("repositories") or [])
            link = resp.headers.get("link")
            path = link.split(";")[0].strip().strip("<>") if link else None
        return names

    def ping(self) -> bool:
        """Return whether ``GET /v2/`` answers 200."""
        try:
            self.request("GET", "/v2/")
        except (RegistryError, OSError):
            return False
        return True
