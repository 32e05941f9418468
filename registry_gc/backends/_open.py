"""Open a backend from a path or URL; third-party backends plug in by entry point."""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from .._errors import BackendNotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._protocols import Backend

__all__ = ["ENTRY_POINT_GROUP", "open_backend"]

#: Entry-point group for third-party backends: ``scheme = "pkg.module:factory"``,
#: where ``factory(url: str, storage_options: dict) -> Backend``.
ENTRY_POINT_GROUP = "registry_gc.backends"


def _scheme(url: str) -> str | None:
    if "://" not in url:
        return None
    return url.split("://", 1)[0].lower()


def _require(scheme: str, module: str, extra: str) -> None:
    """Refuse early, with the fix, when the client library of a built-in backend is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        found = False
    if not found:
        package = module.partition(".")[0]
        msg = (
            f"the {scheme}:// backend needs the Python package {package}: "
            f"pip install 'registry-gc[{extra}]'"
        )
        raise BackendNotFoundError(msg)


def open_backend(
    url: str | os.PathLike[str],
    storage_options: Mapping[str, Any] | None = None,
    *,
    read_only: bool = False,
) -> Backend:
    """Open the registry root at ``url``.

    ``url`` is a local path (the directory that holds ``docker/registry/v2``),
    ``file://…``, ``s3://bucket/prefix``, ``gs://bucket/prefix``,
    ``az://container/prefix`` or any other fsspec URL (``memory://``,
    ``sftp://``, …). ``storage_options`` go to the backend (credentials,
    ``endpoint_url``, …) and never appear in messages.

    >>> open_backend("/var/lib/registry").url
    '/var/lib/registry'
    """
    from ._readonly import ReadOnlyBackend  # noqa: PLC0415

    backend = _open(os.fspath(url), dict(storage_options or {}))
    return ReadOnlyBackend(backend) if read_only else backend


def _open(url: str, options: dict[str, Any]) -> Backend:
    scheme = _scheme(url)
    if scheme is None or scheme in ("file", "local"):
        from ._local import LocalBackend  # noqa: PLC0415

        path = url.split("://", 1)[1] if scheme else url
        return LocalBackend(path)
    from importlib.metadata import entry_points  # noqa: PLC0415 - 60 ms, not for a local disk

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() == scheme:
            factory = ep.load()
            backend: Backend = factory(url, options)
            return backend
    if scheme in ("s3", "s3a"):
        from ._s3 import S3Backend  # noqa: PLC0415

        return S3Backend.from_url(url, options)
    if scheme in ("gs", "gcs"):
        _require(scheme, "gcsfs", "gcs")
        from ._gcs import GCSBackend  # noqa: PLC0415

        return GCSBackend.from_url(url, options)
    if scheme in ("az", "abfs", "abfss"):
        _require(scheme, "azure.storage.blob", "azure")
        from ._azure import AzureBackend  # noqa: PLC0415

        return AzureBackend.from_url(url, options)
    import fsspec  # noqa: PLC0415

    from ._fsspec import FsspecBackend  # noqa: PLC0415

    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ValueError, ImportError) as e:
        msg = (
            f"no storage backend for {scheme}:// ({e}); install the fsspec implementation "
            f"for it (for example registry-gc[gcs] or registry-gc[azure]) or a plugin "
            f"registering the entry point group {ENTRY_POINT_GROUP!r}"
        )
        raise BackendNotFoundError(msg) from e
    return FsspecBackend(fs, root)
