"""Test rigs: stores built as data, backend doubles, servers and clients the suites share.

Test modules import from here, never from one another (``tests/README.md``).

Stores and scenarios:

- :mod:`tests.rigs.builder` — :class:`RegistryBuilder`: distribution v2 storage trees as data.
- :mod:`tests.rigs.stores` — a builder tree on a local directory or memory://, collected and
  compared (the ``store`` and ``disk`` fixtures of ``tests/conftest.py``); path helpers.
- :mod:`tests.rigs.scenarios` — builder registries (re-pushed tags, garbage of every kind, a
  mixed registry and an independent oracle of its live blobs).
- :mod:`tests.rigs.layouts` — 2.1.0 revisions and BuildKit caches, as the registry stores them.
- :mod:`tests.rigs.scene` — the command-line suites' store.
- :mod:`tests.rigs.healthy` — a healthy store for the inspection commands.
- :mod:`tests.rigs.inventories` — inventories and manifests built by hand, for the policy tests.
- :mod:`tests.rigs.oci` — images, indexes and referrers built as data; OCI layout writer.

Backends and doubles:

- :mod:`tests.rigs.doubles` — a delegating wrapper, and one that fails some paths.
- :mod:`tests.rigs.faults` — :class:`FaultyBackend`: fail, slow down or interrupt any call.
- :mod:`tests.rigs.dictstore` — a third-party backend in miniature.
- :mod:`tests.rigs.proxy` — :class:`StorageProxy`: counts requests on the wire, injects faults.

Servers, the real registry and its clients:

- :mod:`tests.rigs.procs` — free ports, waiting for ports/URLs, managed subprocesses.
- :mod:`tests.rigs.s3` — :class:`SeaweedS3` (``weed mini``) and :class:`MotoS3` servers.
- :mod:`tests.rigs.gcs` — :class:`FakeGCS` (fake-gcs-server, from its PyPI wrapper).
- :mod:`tests.rigs.azure` — :class:`Azurite` (Azurite's blob service, from npm).
- :mod:`tests.rigs.redis` — :class:`RedisServer` (``redis-server``), distribution's cache writes.
- :mod:`tests.rigs.registry` — :class:`RealRegistry` (Debian ``docker-registry`` 2.8.2).
- :mod:`tests.rigs.e2e` — the end-to-end model: what was pushed, what must survive.
- :mod:`tests.rigs.planfiles` — plan files (``--plan-out``, ``--deletions-out``) read as JSON.
- :mod:`tests.rigs.push` — a urllib registry HTTP API v2 client.
- :mod:`tests.rigs.skopeo` — ``skopeo`` copy/inspect wrappers.
- :mod:`tests.rigs.differential`, :mod:`tests.rigs.manifest_gen` — the differential test
  against the real registry: generated manifest bodies, the registry as the oracle.
"""
