"""Inventories and manifests built by hand, for the pure tests of retention policies.

Repositories map tags to (age in days, digest); every tagged digest is a
revision. :func:`decide` runs :func:`~registry_gc.policy.select_tags` at
:data:`NOW`. Nothing touches storage.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import TYPE_CHECKING, Any

from registry_gc.inventory import Inventory, RepositoryEntry, TagEntry
from registry_gc.layout import Digest, Repository, Tag
from registry_gc.policy import Policy, TagDecisions, select_tags

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry_gc.fetch import ManifestTable


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def dg(seed: str) -> Digest:
    """A digest made from ``seed``."""
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


def make_inventory(
    repos: Mapping[str, Mapping[str, tuple[float, Digest | None]]],
    *,
    revisions: Mapping[str, Mapping[Digest, float]] | None = None,
) -> Inventory:
    """Repositories → tag → (age in days, digest); every tagged digest is a 30-day-old revision."""
    inv = Inventory("memory://policy-test", NOW)
    for name, tags in repos.items():
        entry = RepositoryEntry(Repository(name), has_manifests=True)
        for tag, (age, digest) in tags.items():
            entry.tags[Tag._trusted(tag)] = TagEntry(
                Tag._trusted(tag), digest, NOW.timestamp() - age * DAY, 71
            )
            if digest is not None:
                entry.revisions[digest] = NOW.timestamp() - 30 * DAY
        for digest, age in (revisions or {}).get(name, {}).items():
            entry.revisions[digest] = NOW.timestamp() - age * DAY
        inv.repositories[entry.name] = entry
    return inv


def tags_aged(**ages: float) -> dict[str, tuple[float, Digest]]:
    """Tag → (age in days, a digest of its own)."""
    return {tag: (age, dg(tag)) for tag, age in ages.items()}


def decide(
    inv: Inventory, policy: Policy, manifests: ManifestTable | None = None, **kwargs: Any
) -> TagDecisions:
    """select_tags at NOW."""
    return select_tags(inv, manifests or {}, policy, NOW, **kwargs)


def deleted(decisions: TagDecisions) -> set[str]:
    """``repo:tag`` of every tag to delete."""
    return {f"{d.repository}:{d.tag}" for d in decisions.deleted()}


def rule_of(decisions: TagDecisions, repo: str, tag: str) -> str:
    """The rule text of one decision."""
    d = decisions.get(repo, tag)
    assert d is not None
    return d.rule


def manifest_doc(subject: Digest | None = None, config_seed: str = "c") -> bytes:
    """An OCI image manifest (optionally a referrer of ``subject``)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": dg(config_seed),
            "size": 2,
        },
        "layers": [],
    }
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    return json.dumps(doc).encode()


def index_doc(children: list[Digest]) -> bytes:
    """An OCI index over ``children``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": c, "size": 1} for c in children],
        }
    ).encode()


def sig_tag(subject: Digest, suffix: str = ".sig") -> str:
    """The cosign tag for a signature of ``subject``."""
    return f"sha256-{subject.hex}{suffix}"
