"""Image ``created`` times for retention rules, read at the edge beside :mod:`~registry_gc.fetch`.

A rule with ``time_source: created`` ranks tags by the ``created`` field of
their image configs rather than by push time. The policy package is pure and
never reads storage: the collector calls :func:`read_created_times` here, which
reads the configs through :func:`~registry_gc.fetch.read_configs`, and hands
the result to :func:`~registry_gc.policy.select_tags` as ``created``.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import TYPE_CHECKING

from .fetch import read_configs
from .graph import Graph, Role, walk
from .manifests import MAX_MANIFEST_SIZE, Manifest

if TYPE_CHECKING:
    from .backends import Backend
    from .fetch import ManifestTable
    from .inventory import Inventory
    from .layout import Digest
    from .policy import Policy

__all__ = ["created_of_config", "read_created_times"]

log = logging.getLogger(__name__)

_CREATED = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


def _parse_created(value: object) -> float | None:
    """An RFC 3339 time (nanoseconds allowed) → seconds since the epoch; else ``None``."""
    if not isinstance(value, str):
        return None
    m = _CREATED.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    if m.group(8):
        tz = datetime.timezone.utc
    else:
        offset = datetime.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = datetime.timezone(offset if m.group(9) == "+" else -offset)
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro, tz).timestamp()
    except (ValueError, OverflowError):
        return None


def created_of_config(data: bytes) -> float | None:
    """The ``created`` time of an image config, in seconds since the epoch, or ``None``.

    >>> created_of_config(b'{"created": "2024-05-01T00:00:00Z"}')
    1714521600.0
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return _parse_created(doc.get("created")) if isinstance(doc, dict) else None


def _configs_of(graph: Graph, digest: Digest) -> list[Digest]:
    """The config digests of an image, or of every image of an index (recursively)."""
    reach = walk(graph, [(digest, Role.TAG)], referrers=False)
    configs = []
    for d in sorted(reach.manifests):
        m = graph.table.get(d)
        if isinstance(m, Manifest) and m.config is not None:
            configs.append(m.config)
    return configs


async def read_created_times(
    backend: Backend,
    inventory: Inventory,
    manifests: ManifestTable,
    policy: Policy,
) -> dict[Digest, float]:
    """Read the image configs of tagged manifests; return manifest digest → ``created`` time.

    Only repositories a ``time_source: created`` rule applies to are read. An
    index takes the latest ``created`` of its images. Configs that are
    missing, too large or without a valid ``created`` are left out (those tags
    fall back to their push time). Without such a rule nothing is read.
    """
    if not policy.needs_created_times:
        return {}
    wanted: dict[Digest, list[Digest]] = {}
    for repo in inventory.repositories.values():
        if not any(r.time_source == "created" for _, r in policy.rules_for(repo.name)):
            continue
        graph = Graph.of(repo, manifests, inventory.blobs)
        for tag in repo.tags.values():
            if tag.current is not None and tag.current not in wanted:
                wanted[tag.current] = _configs_of(graph, tag.current)
    configs = {c for cs in wanted.values() for c in cs}
    times = await read_configs(
        backend, inventory, configs, created_of_config, limit=MAX_MANIFEST_SIZE
    )
    log.info("read %d image config(s) for their created time", len(configs))
    out: dict[Digest, float] = {}
    for digest, cs in wanted.items():
        found = [times[c] for c in cs if c in times]
        if found:
            out[digest] = max(found)
    return out
