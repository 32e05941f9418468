"""registry-gc: offline, safe, fast garbage collection for distribution registries."""

from ._errors import (
    BackendNotFoundError,
    ConfigError,
    DistributedError,
    InvalidReferenceError,
    ManifestError,
    NotFoundError,
    PlanFileError,
    ReadOnlyError,
    RefusedError,
    RegistryGCError,
    StorageError,
    TargetNotEmptyError,
)
from .apply import ApplyResult, Status, apply_plan
from .applying import DEFAULT_MAX_AGE, ApplyReport, Dropped, apply_planfile, apply_planfile_async
from .backends import Backend, open_backend
from .checking import CheckResult, check, check_async
from .collector import collect, collect_async
from .durations import format_duration, parse_duration
from .fetch import ManifestTable, fetch_manifests, load_manifests
from .inventory import Anomaly, Inventory, take_inventory
from .layout import Digest, Repository, Tag
from .listing import Listing, list_images, list_images_async
from .live import DEFAULT_SETTLE, LiveResult
from .manifests import Manifest, ManifestKind, parse_manifest
from .mark import Marks, mark
from .options import DEFAULT_GRACE, DEFAULT_UPLOADS_OLDER_THAN, Options, Removals
from .plan import Category, Deletion, Kept, Plan, Reason, make_plan
from .policy import Policy, Rule, TagDecisions, load_policy, parse_policy
from .quarantine import QUARANTINE_PREFIX
from .quarantining import (
    QuarantineListing,
    QuarantinePurge,
    QuarantineRestore,
    list_quarantine,
    purge_quarantine,
    restore_quarantined,
)
from .removal import RemoveReport, remove, remove_async
from .report import Report
from .usage import Usage, disk_usage, disk_usage_async


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution on first use.

    Not at import: :mod:`importlib.metadata` alone takes about 60 ms to import,
    a tenth of the command line's start, and most runs never print a version.
    """
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            found = version("registry-gc")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_MAX_AGE",
    "DEFAULT_SETTLE",
    "DEFAULT_UPLOADS_OLDER_THAN",
    "QUARANTINE_PREFIX",
    "Anomaly",
    "ApplyReport",
    "ApplyResult",
    "Backend",
    "BackendNotFoundError",
    "Category",
    "CheckResult",
    "ConfigError",
    "Deletion",
    "Digest",
    "DistributedError",
    "Dropped",
    "InvalidReferenceError",
    "Inventory",
    "Kept",
    "Listing",
    "LiveResult",
    "Manifest",
    "ManifestError",
    "ManifestKind",
    "ManifestTable",
    "Marks",
    "NotFoundError",
    "Options",
    "Plan",
    "PlanFileError",
    "Policy",
    "QuarantineListing",
    "QuarantinePurge",
    "QuarantineRestore",
    "ReadOnlyError",
    "Reason",
    "RefusedError",
    "RegistryGCError",
    "Removals",
    "RemoveReport",
    "Report",
    "Repository",
    "Rule",
    "Status",
    "StorageError",
    "Tag",
    "TagDecisions",
    "TargetNotEmptyError",
    "Usage",
    "__version__",
    "apply_plan",
    "apply_planfile",
    "apply_planfile_async",
    "check",
    "check_async",
    "collect",
    "collect_async",
    "disk_usage",
    "disk_usage_async",
    "fetch_manifests",
    "format_duration",
    "list_images",
    "list_images_async",
    "list_quarantine",
    "load_manifests",
    "load_policy",
    "make_plan",
    "mark",
    "open_backend",
    "parse_duration",
    "parse_manifest",
    "parse_policy",
    "purge_quarantine",
    "remove",
    "remove_async",
    "restore_quarantined",
    "take_inventory",
]
