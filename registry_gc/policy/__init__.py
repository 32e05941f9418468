"""Retention policies: which tags to keep, which to delete, and the rule that decided.

A :class:`Policy` is a list of :class:`Rule` objects, each applying to the
repositories its patterns match. Per repository and tag, :func:`select_tags`
decides *keep* or *delete* and names the rule and criterion that decided.
The collector passes the deleted tags to the ordinary mark and sweep, so
manifests and blobs that only they kept go in the same run (with
``delete_untagged``), and a manifest another kept tag points at stays.

The package is pure: data in, decisions out. It never reads the registry's
storage — the image ``created`` times a ``time_source: created`` rule needs
are read at the edge by :func:`registry_gc.created.read_created_times` and
passed in — and knows nothing of the command line (the ``gc`` flags are
``registry_gc.cli._policy``'s). :func:`load_policy` reads the local policy
file it is given, nothing else. One job per module:

- ``_patterns``: :class:`Pattern`, repository and tag globs and regular expressions;
- ``_semver``: :class:`SemVer`, the order ``keep_semver`` ranks by;
- ``_model``: :class:`Rule` and :class:`Policy`, validated as they are built;
- ``_loading``: YAML and TOML policy files, errors located by line or key path;
- ``_decisions``: :class:`TagDecisions`, what was decided and why;
- ``_select``: :func:`select_tags`, the rules applied tag by tag.

The semantics, in the order they apply:

- a repository no rule matches is untouched;
- a tag is deleted only if a rule applying to it says so (a ``delete_tags``
  match, or — in a rule with keep criteria — being kept by none of them)
  *and* no rule keeps it: keep always wins;
- ``latest`` is kept unless a rule says ``keep_latest: false``;
- a tag whose ``current`` link was written within the grace period is kept;
- a tag whose ``current`` link is missing or broken, or whose name is not a
  valid tag, is left alone;
- signature tags (cosign's ``sha256-<hex>.sig`` / ``.att`` / ``.sbom``, and the
  OCI referrers fallback tag ``sha256-<hex>``) follow the image they belong
  to: rules neither count them nor delete them for want of a keep (a
  ``delete_tags`` match still deletes them). With
  ``delete_orphan_signature_tags`` they go once that image is gone.

>>> rule = Rule(repositories=["app/*"], keep_last=10)
>>> describe_rule(1, rule)
'rule 1 (repositories "app/*")'
>>> parse_semver("v1.0.0-rc.1") < parse_semver("1.0.0")
True
"""

from ._decisions import Action, ManifestRemoval, TagDecision, TagDecisions
from ._loading import load_policy, parse_policy
from ._model import Policy, Rule, describe_rule
from ._patterns import Pattern
from ._select import select_tags
from ._semver import SemVer, parse_semver

__all__ = [
    "Action",
    "ManifestRemoval",
    "Pattern",
    "Policy",
    "Rule",
    "SemVer",
    "TagDecision",
    "TagDecisions",
    "describe_rule",
    "load_policy",
    "parse_policy",
    "parse_semver",
    "select_tags",
]
