"""An HTTP proxy in front of a local storage server: counts requests, injects faults.

:class:`StorageProxy` forwards every request to ``upstream`` (one connection per
request) and records it, so a test can count what really went over the wire
independently of the client's own counters. ``intercept`` (optional) sees each
request first and may answer it instead (a 503, a rewritten batch), using
``forward`` to reach the server itself.
"""

from __future__ import annotations

import http.client
import http.server
import sys
import threading
import urllib.parse
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@attrs.frozen
class Request:
    """A request the proxy received."""

    method: str
    path: str  #: path and query, as sent
    headers: dict[str, str]
    body: bytes

    @property
    def url_path(self) -> str:
        """The path without the query, percent-decoded."""
        return urllib.parse.unquote(self.path.partition("?")[0])

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (last value wins)."""
        return dict(urllib.parse.parse_qsl(self.path.partition("?")[2], keep_blank_values=True))


@attrs.frozen
class Response:
    """A response to send back."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


class StorageProxy:
    """A threaded HTTP proxy on 127.0.0.1 and a free port, in front of ``upstream``."""

    def __init__(
        self,
        upstream: str,
        intercept: Callable[[Request, Callable[[Request], Response]], Response | None]
        | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self.intercept = intercept
        #: Every request received, in order.
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def setup(self) -> None:
                # The proxy is the tests' rig, not the code under test: its connection
                # threads run outside coverage's tracer (see procs.untraced_executor).
                sys.settrace(None)
                super().setup()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers.items()), body)
                with proxy._lock:
                    proxy.requests.append(request)
                response = None
                if proxy.intercept is not None:
                    response = proxy.intercept(request, proxy.forward)
                if response is None:
                    response = proxy.forward(request)
                self.send_response(response.status)
                length = str(len(response.body))
                for key, value in response.headers.items():
                    if key.lower() == "content-length" and self.command == "HEAD":
                        length = value  # the size of what a GET would answer
                    elif key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def forward(self, request: Request) -> Response:
        """Send ``request`` to the upstream server and return its whole response."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            if request.body or request.method in ("POST", "PUT"):
                headers["Content-Length"] = str(len(request.body))
            conn.request(request.method, request.path, body=request.body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, dict(resp.getheaders()), data)
        finally:
            conn.close()

    def seen(self, predicate: Callable[[Request], bool] | None = None) -> list[Request]:
        """The requests received (those matching ``predicate``)."""
        with self._lock:
            return [r for r in self.requests if predicate is None or predicate(r)]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
