"""``skopeo`` wrappers: push an OCI layout, pull everything back, inspect a manifest.

Every call runs skopeo with ``--insecure-policy`` (no ``/etc/containers/policy.json``
needed), an empty temporary ``--registries.d`` (no signature lookaside), an empty
``registries.conf`` (``CONTAINERS_REGISTRIES_CONF``), an empty ``--authfile`` with
``--*-no-creds``, and TLS verification off: plain HTTP to ``127.0.0.1:PORT``.
References are always fully qualified, so no search registries apply.

:func:`pull_all` is the end-to-end check of a registry's consistency: it copies the
manifest, every child manifest (``--all``), every config and every layer to a ``dir:``
destination, verifying each digest, and fails when any of them is missing or wrong.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tests.rigs.procs import CommandError, run

if TYPE_CHECKING:
    import os
    import subprocess
    from collections.abc import Sequence

SKOPEO_BINARY = "skopeo"


def image_ref(registry_url: str, repo: str, ref: str) -> str:
    """Return ``docker://HOST:PORT/REPO:TAG`` or ``docker://HOST:PORT/REPO@sha256:…``."""
    host = registry_url.split("://", 1)[-1].rstrip("/")
    sep = "@" if ":" in ref else ":"
    return f"docker://{host}/{repo}{sep}{ref}"


def skopeo(
    args: Sequence[str], *, timeout: float = 120.0, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``skopeo --insecure-policy --registries.d=<empty> ARGS`` in an isolated config.

    Raises:
        FileNotFoundError: when skopeo is not installed.
        CommandError: when ``check`` and skopeo fails.
    """
    binary = shutil.which(SKOPEO_BINARY)
    if binary is None:
        raise FileNotFoundError("skopeo is not installed")
    with tempfile.TemporaryDirectory(prefix="rig-skopeo-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "registries.d").mkdir()
        (tmpdir / "registries.conf").write_text("unqualified-search-registries = []\n")
        (tmpdir / "auth.json").write_text(json.dumps({"auths": {}}))
        (tmpdir / "tmp").mkdir()
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(tmpdir),
            "XDG_RUNTIME_DIR": str(tmpdir),
            "XDG_CONFIG_HOME": str(tmpdir),
            "CONTAINERS_REGISTRIES_CONF": str(tmpdir / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(tmpdir / "auth.json"),
            "TMPDIR": str(tmpdir / "tmp"),
        }
        argv = [
            binary,
            "--insecure-policy",
            f"--registries.d={tmpdir / 'registries.d'}",
            f"--tmpdir={tmpdir / 'tmp'}",
            *args,
        ]
        return run(argv, env=env, timeout=timeout, check=check)


def skopeo_copy_to_registry(
    oci_dir: str | os.PathLike[str],
    src_tag: str,
    registry_url: str,
    repo: str,
    tag: str,
    *,
    all_images: bool = True,
    check: bool = True,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy [--all] --preserve-digests oci:OCI_DIR:SRC_TAG docker://REGISTRY/REPO:TAG``.

    ``--preserve-digests`` makes skopeo fail rather than push anything whose digest
    differs from the layout's. Raises :class:`~tests.rigs.procs.CommandError` on failure
    when ``check``.
    """
    args = ["copy", "--dest-tls-verify=false", "--dest-no-creds", "--preserve-digests"]
    if all_images:
        args.append("--all")
    args += [f"oci:{Path(oci_dir)}:{src_tag}", image_ref(registry_url, repo, tag)]
    return skopeo(args, timeout=timeout, check=check)


def pull_all(
    registry_url: str,
    repo: str,
    ref: str,
    dest_dir: str | os.PathLike[str],
    *,
    fmt: str = "dir",
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy --all docker://REGISTRY/REPO:REF <fmt>:DEST_DIR`` (REF: tag or digest).

    Never raises on a failed copy: check ``result.returncode`` (0 = every manifest,
    config and layer could be fetched and matched its digest) and ``result.stderr``.
    ``fmt`` is ``"dir"`` (any manifest kind, the default) or ``"oci"`` (OCI layout; may
    convert Docker manifests). ``DEST_DIR`` is created (it must not hold another image).
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    args = [
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-no-creds",
        image_ref(registry_url, repo, ref),
        f"{fmt}:{dest}",
    ]
    return skopeo(args, timeout=timeout, check=False)


def inspect_raw(registry_url: str, repo: str, ref: str, *, timeout: float = 60.0) -> bytes:
    """Return the raw manifest bytes of ``REPO:REF`` (``skopeo inspect --raw``).

    Raises:
        CommandError: when skopeo fails (e.g. manifest unknown).
    """
    result = skopeo(
        [
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            image_ref(registry_url, repo, ref),
        ],
        timeout=timeout,
        check=True,
    )
    return result.stdout.encode()


__all__ = [
    "CommandError",
    "image_ref",
    "inspect_raw",
    "pull_all",
    "skopeo",
    "skopeo_copy_to_registry",
]
