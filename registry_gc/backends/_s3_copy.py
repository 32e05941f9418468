"""S3 server-side copies of objects too large for one CopyObject: a multipart copy.

S3 copies an object of up to 5 GiB in one ``CopyObject``; above that, the
copy is a multipart upload whose parts are ranges of the source
(``UploadPartCopy`` with ``CopySourceRange``), each at most 5 GiB and at
most 10,000 of them. :func:`multipart_copy` sends ``CreateMultipartUpload``,
the parts (a few at a time) and ``CompleteMultipartUpload``, and aborts the
upload when anything fails, so that no partial object is ever left behind.

A part that fails stops new parts from starting, but the parts already sent
are waited for before the abort: cancelling a request does not stop the
server's copy, and S3 documents that a part still in progress when the abort
arrives may survive it (and keep its storage, in an upload no listing of
objects shows).
"""

from __future__ import annotations

import logging
from typing import Any

from ._objectstore import run_pool

__all__ = ["MAX_COPY", "MIN_PART", "multipart_copy", "part_ranges"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
#: The largest object one CopyObject copies, and the largest part of a multipart upload.
MAX_COPY = 5 * 1024 * _MIB
#: The smallest part of a multipart upload (but the last).
MIN_PART = 5 * _MIB
#: The most parts of a multipart upload.
MAX_PARTS = 10_000
#: UploadPartCopy requests in flight for one object.
_PARTS_IN_FLIGHT = 8


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges that cover ``[0, size)`` in parts of ``part_size`` (the last shorter).

    The part size grows when ``size`` would need more than 10,000 parts.

    >>> part_ranges(12, 5)
    [(0, 4), (5, 9), (10, 11)]
    """
    part = max(part_size, -(-size // MAX_PARTS))
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


async def multipart_copy(
    client: Any,  # noqa: ANN401 - aiobotocore's generated client
    *,
    bucket: str,
    src_key: str,
    dst_key: str,
    head: dict[str, Any],
    part_size: int,
    request_kwargs: dict[str, Any],
) -> int:
    """Copy ``src_key`` to ``dst_key`` in parts; the number of parts.

    ``head`` is the source's HeadObject: its size cuts the parts, and every
    part is copied only while the source still has its ETag
    (``CopySourceIfMatch``), so the copy is one version of the source, whole.
    The content type and user metadata are carried over, as CopyObject does.
    Any failure aborts the upload and raises.
    """
    size = int(head["ContentLength"])
    ranges = part_ranges(size, part_size)
    extra: dict[str, Any] = {}
    if head.get("ContentType"):
        extra["ContentType"] = head["ContentType"]
    if head.get("Metadata"):
        extra["Metadata"] = head["Metadata"]
    created = await client.create_multipart_upload(
        Bucket=bucket, Key=dst_key, **extra, **request_kwargs
    )
    upload_id = created["UploadId"]
    etags = [""] * len(ranges)
    source = {"Bucket": bucket, "Key": src_key}
    condition = {"CopySourceIfMatch": head["ETag"]} if head.get("ETag") else {}

    async def part(i: int) -> None:
        first, last = ranges[i]
        answer = await client.upload_part_copy(
            Bucket=bucket,
            Key=dst_key,
            UploadId=upload_id,
            PartNumber=i + 1,
            CopySource=source,
            CopySourceRange=f"bytes={first}-{last}",
            **condition,
            **request_kwargs,
        )
        etags[i] = answer["CopyPartResult"]["ETag"]

    try:
        # drain: a cancelled part is still copied by the server, and may outlive the abort
        await run_pool(min(_PARTS_IN_FLIGHT, len(ranges)), range(len(ranges)), part, drain=True)
        parts = [{"PartNumber": i + 1, "ETag": etag} for i, etag in enumerate(etags)]
        await client.complete_multipart_upload(
            Bucket=bucket,
            Key=dst_key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            **request_kwargs,
        )
    except BaseException:
        try:
            await client.abort_multipart_upload(
                Bucket=bucket, Key=dst_key, UploadId=upload_id, **request_kwargs
            )
        except Exception as e:  # noqa: BLE001 - the first failure is the one to report
            logger.warning("could not abort the multipart copy %s of %s: %r", upload_id, dst_key, e)
        raise
    logger.debug("copied %s to %s in %d parts", src_key, dst_key, len(ranges))
    return len(ranges)
