"""The shared backend test suite: what every backend, built-in or third-party, must pass.

A backend's tests subclass :class:`BackendSuite` and provide two pytest
fixtures, ``backend`` (the backend over an empty registry root) and
``writer`` (a :data:`Writer` that puts objects into that root without going
through the backend)::

    import pytest
    from registry_gc.testing import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend(self):
            return MyBackend(...)

        @pytest.fixture
        def writer(self):
            return lambda path, data: ...

The tests of an optional capability (directories, streaming digests,
multipart uploads, moves, writes, request counts) are skipped, with the reason, for a
backend that does not have it. A suite that declares its backend's
``capabilities`` and calls :func:`deselect_without_capabilities` from
``pytest_collection_modifyitems`` runs exactly the tests that apply instead.

This module needs pytest (``pip install 'registry-gc[testing]'``);
``import registry_gc`` never imports it.
"""

import pytest

# Plain asserts in an installed package are not rewritten unless pytest is told
# before the module is imported: with it, a failure shows the values compared.
pytest.register_assert_rewrite(
    "registry_gc.testing._common",
    "registry_gc.testing._listing",
    "registry_gc.testing._moves",
    "registry_gc.testing._suite",
)

from ._common import (  # noqa: E402 - after the registration above
    BLOBS,
    ESCAPING,
    QUARANTINE,
    REFUSED,
    REPOS,
    V2,
    Writer,
    blob_path,
    collect,
    deselect_without_capabilities,
    files,
    needs,
    run,
    skip_without,
    write_many,
)
from ._suite import BackendSuite  # noqa: E402

__all__ = [
    "BLOBS",
    "ESCAPING",
    "QUARANTINE",
    "REFUSED",
    "REPOS",
    "V2",
    "BackendSuite",
    "Writer",
    "blob_path",
    "collect",
    "deselect_without_capabilities",
    "files",
    "needs",
    "run",
    "skip_without",
    "write_many",
]
