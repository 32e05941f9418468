"""Test rigs: real registry, S3 servers, image construction and clients used by the test-suite.

Modules:

- :mod:`tests.rigs.procs` — free ports, waiting for ports/URLs, managed subprocesses.
- :mod:`tests.rigs.s3` — :class:`SeaweedS3` (``weed mini``) and :class:`MotoS3` servers.
- :mod:`tests.rigs.registry` — :class:`RealRegistry` (Debian ``docker-registry`` 2.8.2).
- :mod:`tests.rigs.oci` — images, indexes and referrers built as data; OCI layout writer.
- :mod:`tests.rigs.push` — a urllib registry HTTP API v2 client.
- :mod:`tests.rigs.skopeo` — ``skopeo`` copy/inspect wrappers.
"""
