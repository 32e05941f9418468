"""Sphinx configuration: Markdown pages (MyST), the furo theme, autodoc of the public API.

Built by ``nox -s docs`` with ``-W -n``: every warning, and every cross-reference
that does not resolve, fails the build. There is no intersphinx (the build has no
network), so references to the standard library and third-party types are
listed in ``nitpick_ignore`` below.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from importlib.metadata import version as _version
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.ext.napoleon import _process_docstring as napoleon_process_docstring
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

if TYPE_CHECKING:
    from docutils.nodes import Element
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment

project = "registry-gc"
author = "registry-gc developers"
copyright = "registry-gc developers"
release = _version("registry-gc")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"registry-gc {release}"

# -- autodoc ----------------------------------------------------------------------

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- doctest ----------------------------------------------------------------------

# Docstring examples are written as if inside their module (as pytest's
# --doctest-modules runs them): give them every module's public names.
doctest_global_setup = """
import importlib as _importlib
import pkgutil as _pkgutil

import registry_gc as _registry_gc
from registry_gc import *

for _info in _pkgutil.walk_packages(_registry_gc.__path__, "registry_gc."):
    if not _info.name.endswith("__main__"):
        _module = _importlib.import_module(_info.name)
        globals().update({_n: getattr(_module, _n) for _n in getattr(_module, "__all__", ())})
"""

# -- nitpicky ---------------------------------------------------------------------

nitpicky = True
# Without intersphinx nothing outside the project resolves: the standard library
# (Sphinx already skips builtins and typing) and the third-party types that
# appear in signatures. Only those are ignored; a reference to one of our own
# names that does not resolve still fails.
_EXTERNAL = (
    r"(array|asyncio|collections|datetime|enum|os|pathlib)\..+"  # the standard library
    r"|(attrs|fsspec|s3fs|aiobotocore|botocore|prometheus_client|_?pytest)(\..+)?"  # third-party
    r"|CollectorRegistry"  # prometheus_client's, unqualified in a type hint
    r"|array"  # array.array, unqualified in a type hint
)
nitpick_ignore_regex = [
    (r"py:(class|obj|data|exc|func|meth|attr|mod)", _EXTERNAL),
    # Private names have no page to link to: the package's private type aliases
    # (``_Results = "list[DeleteResult]"``), which autodoc shows by name, and
    # private helpers a docstring mentions.
    (r"py:(class|obj|func|meth|attr)", r"_[A-Za-z]\w*"),
    # The commands' shared types (registry_gc._run), shown by name in signatures.
    (r"py:(class|obj|data)", r"(ProgressCallback|Root|Timings)"),
    # The columnar tables' private building blocks (registry_gc._digests, _columns).
    (
        r"py:(class|obj)",
        r"(registry_gc\._(digests|columns|deletions)\.)?(DigestIndex|LinkTimes|Tally)",
    ),
    # The manifest table's value type (registry_gc._manifest_table.Entry), by name.
    (r"py:(class|obj|data)", r"Entry"),
]

# -- the package's own cross-references ----------------------------------------------
#
# Public objects live in private modules and are documented under their public
# names (``registry_gc.Plan``). autodoc records ``:canonical:`` for classes, so
# ``registry_gc.plan.Plan`` resolves; functions and unqualified names in type
# hints (``ChildRef``) get the same treatment here: a reference resolves when it
# names exactly one documented object. Anything else still fails the build.

_logger = logging.getLogger(__name__)
_PUBLIC_MODULES = ("registry_gc", "registry_gc.backends", "registry_gc.policy")


def _resolve_own(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element
) -> Element | None:
    """Resolve ``registry_gc.<module>.<name>`` and bare names to the documented object."""
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    domain = env.get_domain("py")
    # Names documented under their own name (priority -1 marks :canonical: aliases).
    documented = {full for full, _, _, _, _, prio in domain.get_objects() if prio != -1}
    if target.startswith("registry_gc."):
        name = target.rsplit(".", 1)[-1]
        candidates = {f"{m}.{name}" for m in _PUBLIC_MODULES if _same_object(target, m, name)}
    elif "." not in target:
        candidates = {
            full
            for full in documented
            if full.startswith("registry_gc.") and full.rsplit(".", 1)[-1] == target
        }
    else:
        return None
    candidates &= documented
    if len(candidates) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], candidates.pop(), node, contnode
    )


def _same_object(target: str, public: str, name: str) -> bool:
    module_name, _, _ = target.rpartition(".")
    try:
        here = getattr(importlib.import_module(module_name), name)
        there = getattr(importlib.import_module(public), name)
    except (ImportError, AttributeError):
        return False
    return here is there


# -- attribute docstrings are prose ---------------------------------------------------
#
# napoleon reads the first line of an attribute's docstring as ``type: text``;
# ours are sentences (``#: seconds per step: inventory, …``), so napoleon only
# sees functions, classes and modules. Module constants re-exported by the
# package take their ``#:`` comment from the module that defines them.


def _napoleon_except_attributes(  # noqa: PLR0917 - the event's signature
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    if what not in {"attribute", "data", "property"}:
        napoleon_process_docstring(app, what, name, obj, options, lines)


@functools.cache
def _module_comments() -> dict[str, list[list[str]]]:
    """Name → the ``#:`` comments of module-level names of that name, across the package."""
    comments: dict[str, list[list[str]]] = {}
    package = importlib.import_module("registry_gc")
    for info in pkgutil.walk_packages(package.__path__, "registry_gc."):
        if info.name.endswith("__main__"):
            continue  # importing it runs the command line
        for (scope, name), lines in ModuleAnalyzer.for_module(info.name).find_attr_docs().items():
            if not scope:
                comments.setdefault(name, []).append(list(lines))
    return comments


def _data_comment(  # noqa: PLR0917 - the event's signature
    app: Sphinx,  # noqa: ARG001
    what: str,
    name: str,
    obj: object,  # noqa: ARG001
    options: object,  # noqa: ARG001
    lines: list[str],
) -> None:
    module, _, short = name.rpartition(".")
    if what != "data" or module not in _PUBLIC_MODULES:
        return
    found = _module_comments().get(short, [])
    if len(found) == 1:
        lines[:] = found[0]


# -- every public name is documented ------------------------------------------------


def _check_api_page(app: Sphinx, config: Config) -> None:  # noqa: ARG001
    """Warn (an error under -W) when a public name is missing from api.md."""
    text = (Path(__file__).parent / "api.md").read_text(encoding="utf-8")
    documented = set(
        re.findall(
            r"^\.\. auto\w+:: registry_gc(?:\.backends|\.policy)?\.(\w+)", text, re.MULTILINE
        )
    )
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        missing = sorted(set(module.__all__) - documented - {"__version__"})
        if missing:
            _logger.warning("docs/api.md does not document %s.%s", module_name, ", ".join(missing))


def setup(app: Sphinx) -> None:
    """Wire the hooks above into the build."""
    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon_process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_attributes)
    app.connect("autodoc-process-docstring", _data_comment)
    app.connect("missing-reference", _resolve_own)
    app.connect("config-inited", _check_api_page)
