"""registry-gc: offline, safe, fast garbage collection for distribution registries."""

from importlib.metadata import PackageNotFoundError, version

from ._errors import (
    BackendNotFoundError,
    ConfigError,
    InvalidReferenceError,
    ManifestError,
    NotFoundError,
    ReadOnlyError,
    RefusedError,
    RegistryGCError,
    StorageError,
    TargetNotEmptyError,
)
from .apply import ApplyResult, apply_plan
from .backends import Backend, open_backend
from .collector import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN, collect, collect_async
from .durations import format_duration, parse_duration
from .fetch import ManifestTable, fetch_manifests, load_manifests
from .inventory import Anomaly, Inventory, take_inventory
from .layout import Digest, Repository, Tag
from .manifests import Manifest, ManifestKind, parse_manifest
from .mark import Marks, mark
from .plan import Category, Deletion, Kept, Plan, make_plan
from .policy import Policy, Rule, TagDecisions, load_policy, parse_policy
from .report import Report

try:
    __version__ = version("registry-gc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_UPLOADS_OLDER_THAN",
    "Anomaly",
    "ApplyResult",
    "Backend",
    "BackendNotFoundError",
    "Category",
    "ConfigError",
    "Deletion",
    "Digest",
    "InvalidReferenceError",
    "Inventory",
    "Kept",
    "Manifest",
    "ManifestError",
    "ManifestKind",
    "ManifestTable",
    "Marks",
    "NotFoundError",
    "Plan",
    "Policy",
    "ReadOnlyError",
    "RefusedError",
    "RegistryGCError",
    "Report",
    "Repository",
    "Rule",
    "StorageError",
    "Tag",
    "TagDecisions",
    "TargetNotEmptyError",
    "__version__",
    "apply_plan",
    "collect",
    "collect_async",
    "fetch_manifests",
    "format_duration",
    "load_manifests",
    "load_policy",
    "make_plan",
    "mark",
    "open_backend",
    "parse_duration",
    "parse_manifest",
    "parse_policy",
    "take_inventory",
]
