"""The formats of the GCS JSON API that the GCS backend reads and writes.

Timestamps (RFC 3339, as Go servers trim them), error bodies, and the
``multipart/mixed`` batch requests that carry up to 100 ``objects.delete``
calls, with their responses.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING

import attrs

from ._objectstore import utc

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Part",
    "batch_body",
    "error_message",
    "is_missing_bucket",
    "match_parts",
    "parse_batch_response",
    "parse_time",
]

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str) -> datetime.datetime:
    """An RFC 3339 ``updated`` timestamp (``2026-01-02T03:04:05.678Z``) as aware UTC.

    ``fromisoformat`` before Python 3.11 takes neither ``Z`` nor fractions
    other than 3 or 6 digits (Go servers trim trailing zeros): both are
    normalised on the slow path.
    """
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
        parsed = datetime.datetime.fromisoformat(text)
    return utc(parsed)


def error_message(status: int, body: bytes) -> str:
    """``"<status> <reason>: <message>"`` from a JSON API error body (or its text)."""
    text = body.decode("utf-8", "replace").strip()
    reason = ""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        text = str(error.get("message") or "").strip() or text
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = str(errors[0].get("reason") or "")
    elif isinstance(error, str):
        text = error
    text = " ".join(text.split())[:500]
    head = f"{status} {reason}" if reason else str(status)
    return f"{head}: {text}" if text else head


def is_missing_bucket(body: bytes) -> bool:
    return b"bucket does not exist" in body.lower()


def _split_head(chunk: bytes) -> tuple[bytes, bytes]:
    """Split at the first blank line (CRLF or LF): ``(headers, rest)``."""
    crlf = chunk.find(b"\r\n\r\n")
    lf = chunk.find(b"\n\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        return chunk[:crlf], chunk[crlf + 4 :]
    if lf != -1:
        return chunk[:lf], chunk[lf + 2 :]
    return chunk, b""


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.splitlines():
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, sep, value = param.strip().partition("=")
        if sep and key.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


@attrs.frozen(slots=True)
class Part:
    """One part of a batch response: the call's ``Content-ID``, HTTP status and body."""

    content_id: str | None
    status: int
    body: bytes


def parse_batch_response(content_type: str, body: bytes) -> list[Part]:
    """The parts of a JSON API batch response (``multipart/mixed``), in order.

    Each part is ``Content-Type: application/http`` with a ``Content-ID``,
    then a whole HTTP response (status line, headers, blank line, body).

    Raises:
        ValueError: the response is not multipart or a part has no status line.
    """
    boundary = _boundary(content_type)
    if not content_type.lower().startswith("multipart/") or not boundary:
        msg = f"not a multipart batch response (Content-Type: {content_type!r})"
        raise ValueError(msg)
    parts: list[Part] = []
    for chunk in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, response = _split_head(chunk.lstrip(b"\r\n"))
        status_line, _, rest = response.lstrip(b"\r\n").partition(b"\n")
        fields = status_line.split()
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            msg = f"batch response part without an HTTP status line: {status_line[:80]!r}"
            raise ValueError(msg)
        _, part_body = _split_head(rest)
        parts.append(Part(_header(head, b"content-id"), int(fields[1]), part_body.strip()))
    return parts


def batch_body(boundary: str, token: str, paths: Sequence[str]) -> bytes:
    """A ``multipart/mixed`` batch body: one ``DELETE <path>`` per part, with ``<token+i>`` ids."""
    lines: list[str] = []
    for i, path in enumerate(paths, start=1):
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: <{token}+{i}>",
            "",
            f"DELETE {path} HTTP/1.1",
            "Content-Length: 0",
            "",
            "",
        ]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")


def match_parts(parts: list[Part], token: str, count: int) -> list[Part | None]:
    """The response part of each call, by ``Content-ID`` (``<response-token+i>``), else in order."""
    out: list[Part | None] = [None] * count
    by_id = 0
    for part in parts:
        cid = (part.content_id or "").strip("<> ")
        cid = cid.removeprefix("response-")
        head, sep, index = cid.rpartition("+")
        if sep and head == token and index.isdigit() and 1 <= int(index) <= count:
            out[int(index) - 1] = part
            by_id += 1
    if by_id == 0 and len(parts) == count:
        return list(parts)
    return out
