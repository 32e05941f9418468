"""A tiny HTTP proxy on 127.0.0.1 that counts S3 requests by operation.

It sits between a client and an S3 server (path-style addressing), forwards bytes
unchanged in both directions (so SigV4 signatures stay valid: the Host header the
client signed is the one the server sees) and parses only the request heads:
method, path and query are enough to name the S3 operation (``ListObjectsV2`` has
``list-type=2``, ``DeleteObjects`` is ``POST ?delete``, and so on).

>>> op_name("GET", "/bucket", "list-type=2&prefix=a%2F", {})
'ListObjectsV2'
>>> op_name("GET", "/bucket", "prefix=a&max-keys=1", {})
'ListObjects'
>>> op_name("POST", "/bucket", "delete", {})
'DeleteObjects'
>>> op_name("GET", "/bucket/docker/registry/v2/x", "", {})
'GetObject'
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from urllib.parse import parse_qs

_HEAD_LIMIT = 1 << 20


def op_name(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request."""
    q = parse_qs(query, keep_blank_values=True)
    _, _, rest = path.lstrip("/").partition("/")
    has_key = bool(rest)
    if method == "GET":
        if has_key:
            return "ListParts" if "uploadId" in q else "GetObject"
        if "list-type" in q:
            return "ListObjectsV2"
        if "uploads" in q:
            return "ListMultipartUploads"
        for sub in ("location", "versioning", "policy", "acl", "lifecycle"):
            if sub in q:
                return f"GetBucket:{sub}"
        return "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        copy = "x-amz-copy-source" in headers
        if "partNumber" in q:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "delete" in q:
            return "DeleteObjects"
        if "uploads" in q:
            return "CreateMultipartUpload"
        if "uploadId" in q:
            return "CompleteMultipartUpload"
        return "POST"
    if method == "DELETE":
        if "uploadId" in q:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    return method


class CountingProxy:
    """Listen on 127.0.0.1:<free port>, forward to ``upstream`` (host, port), count requests.

    ``latency`` (seconds) delays every request before it is forwarded, as a round trip
    to a distant S3 would; concurrent requests are delayed concurrently.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, latency: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="s3proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> collections.Counter[str]:
        """Return the counts so far and start again from zero."""
        with self._lock:
            out, self.counts = self.counts, collections.Counter()
        return out

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        for c in list(self._conns):
            with contextlib.suppress(OSError):
                c.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.add(s)
        back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
        back.start()
        try:
            self._requests(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
                self._conns.discard(s)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = client.recv(65536)
                if not data:
                    return
                buf += data
                if len(buf) > _HEAD_LIMIT:
                    return
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            path, _, query = target.partition("?")
            with self._lock:
                self.counts[op_name(method, path, query, headers)] += 1
            if self.latency:
                time.sleep(self.latency)
            upstream.sendall(head + b"\r\n\r\n")
            if headers.get("transfer-encoding", "").lower() == "chunked":
                buf = self._chunked(client, upstream, buf)
                if buf is None:
                    return
            else:
                remaining = int(headers.get("content-length") or 0)
                while remaining:
                    if not buf:
                        buf = client.recv(min(remaining, 65536))
                        if not buf:
                            return
                    part, buf = buf[:remaining], buf[remaining:]
                    upstream.sendall(part)
                    remaining -= len(part)

    @staticmethod
    def _chunked(client: socket.socket, upstream: socket.socket, buf: bytes) -> bytes | None:
        """Forward a chunked body; return what follows it (or None on EOF)."""
        while True:
            while b"\r\n" not in buf:
                data = client.recv(65536)
                if not data:
                    return None
                buf += data
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            upstream.sendall(size_line + b"\r\n")
            need = size + 2  # data + CRLF
            if size == 0:
                # trailer lines, up to an empty line
                while True:
                    while b"\r\n" not in buf:
                        data = client.recv(65536)
                        if not data:
                            return None
                        buf += data
                    line, _, buf = buf.partition(b"\r\n")
                    upstream.sendall(line + b"\r\n")
                    if not line:
                        return buf
            while len(buf) < need:
                data = client.recv(65536)
                if not data:
                    return None
                buf += data
            upstream.sendall(buf[:need])
            buf = buf[need:]
