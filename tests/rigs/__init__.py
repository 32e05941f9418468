"""Test rigs: real registry, S3 servers, image construction and clients used by the test-suite.

Modules:

- :mod:`tests.rigs.procs` — free ports, waiting for ports/URLs, managed subprocesses.
- :mod:`tests.rigs.s3` — :class:`SeaweedS3` (``weed mini``) and :class:`MotoS3` servers.
- :mod:`tests.rigs.gcs` — :class:`FakeGCS` (fake-gcs-server, from its PyPI wrapper).
- :mod:`tests.rigs.azure` — :class:`Azurite` (Azurite's blob service, from npm).
- :mod:`tests.rigs.redis` — :class:`RedisServer` (``redis-server``), distribution's cache writes.
- :mod:`tests.rigs.proxy` — :class:`StorageProxy`: counts requests on the wire, injects faults.
- :mod:`tests.rigs.scenarios` — a mixed registry and an independent oracle of its live blobs.
- :mod:`tests.rigs.registry` — :class:`RealRegistry` (Debian ``docker-registry`` 2.8.2).
- :mod:`tests.rigs.inventories` — inventories and manifests built by hand, for the policy tests.
- :mod:`tests.rigs.oci` — images, indexes and referrers built as data; OCI layout writer.
- :mod:`tests.rigs.push` — a urllib registry HTTP API v2 client.
- :mod:`tests.rigs.skopeo` — ``skopeo`` copy/inspect wrappers.
"""
