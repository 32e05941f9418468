"""The same collection on a Dask cluster: ``collect(root, client=dask_client)``.

One process is bounded by its CPU (about 2 ms of client work per S3 request)
and its memory (the inventory of a billion keys does not fit one machine).
A distributed run splits the work by key prefix — blob shards by the first
two hex digits of the digest, repository partitions by name — and runs it as
tasks on a Dask cluster, through the pipeline's own functions. It produces
the plan a run in one process produces, with the same refusals, the same
grace period, and the same deletion order across workers.

- :func:`collect_distributed` — the run; :func:`registry_gc.collect` calls it
  when given ``client=``.
- :class:`StorageSpec` — the store as workers open it: a URL and options
  without credentials (workers use their own environment's).
- :class:`DaskExecutor`, :class:`InProcessExecutor` — where the tasks run.

The design, the safety argument and measured costs: ``docs/distributed.md``.
"""

from ._driver import collect_distributed
from ._executor import DaskExecutor, Executor, InProcessExecutor, executor_for
from ._partition import shard_of
from ._spec import StorageSpec, credential_options, without_credentials

__all__ = [
    "DaskExecutor",
    "Executor",
    "InProcessExecutor",
    "StorageSpec",
    "collect_distributed",
    "credential_options",
    "executor_for",
    "shard_of",
    "without_credentials",
]
