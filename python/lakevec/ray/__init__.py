"""lakevec on Ray: lake tables as Ray Datasets, lakevec's kernels as ``map_batches`` UDFs,
indexes built and searched by Ray tasks, and MinHash dedup across a cluster.

Needs ``pip install 'lakevec[ray]'``. Everything here runs on the Ray cluster the process
is connected to (``ray.init()``); nothing starts a cluster of its own.

* :func:`read_table`: a Delta, Iceberg or Parquet table as a ``ray.data.Dataset``. The table
  version is pinned once, on the driver; read tasks cover groups of data files or row ranges
  of large files, apply deletes, and return the rows :func:`lakevec.read_table` returns.
* UDFs for ``Dataset.map_batches(udf, batch_format="pyarrow")``: :class:`MinHashSignatures`,
  :class:`HashingEmbed`, :class:`TagRules`, :class:`TagKNN`, :class:`SearchIndex`. They pickle
  as their arguments (an index as URI + version + options without credentials), open an
  index once per worker process, and size lakevec's thread pool from the CPUs Ray granted
  the task (``num_cpus=`` of ``map_batches``), not from the machine.
* :func:`build_index` / :func:`refresh`: segments built by Ray tasks over groups of data
  files, written to the sidecar, then published by the driver in one atomic commit.
* :func:`search`: a large query set fanned out over Ray tasks.
* :func:`dedup_minhash`: signatures in ``map_batches``, LSH buckets through Ray Data's
  ``groupby``, components joined on the driver; the clusters of
  :func:`lakevec.dedup.minhash` with the same parameters. :func:`dedup_semantic`: the kNN
  graph of a (multi-segment) index computed by Ray tasks; the clusters of
  :func:`lakevec.dedup.semantic`. :func:`refresh_dedup`: a persisted dedup index's refresh
  with the new files signed by Ray tasks.

Exceptions raised in workers reach the driver as Ray wraps them: a task's as a
``RayTaskError`` that is also an instance of the lakevec exception, a ``map_batches`` UDF's as
Ray Data's ``UserCodeException`` (unless ``DataContext.raise_original_map_exception``).
:func:`worker_errors` re-raises either as the lakevec exception itself; the functions here
that run Ray jobs do so themselves.

Modules: :mod:`lakevec.ray.read` (tables as Datasets), :mod:`lakevec.ray.udf` (the UDFs),
:mod:`lakevec.ray.index` (index build, refresh, search), :mod:`lakevec.ray.dedup` (dedup);
their public names are all here.
"""

from __future__ import annotations

from lakevec import _dist
from lakevec.ray.dedup import dedup_minhash, dedup_semantic, refresh_dedup
from lakevec.ray.index import build_index, refresh, search
from lakevec.ray.read import LakeDatasource, read_table, to_arrow
from lakevec.ray.udf import HashingEmbed, MinHashSignatures, SearchIndex, TagKNN, TagRules, granted_cpus

__all__ = [
    "read_table",
    "LakeDatasource",
    "MinHashSignatures",
    "HashingEmbed",
    "TagRules",
    "TagKNN",
    "SearchIndex",
    "build_index",
    "refresh",
    "search",
    "dedup_minhash",
    "dedup_semantic",
    "refresh_dedup",
    "granted_cpus",
    "worker_errors",
    "to_arrow",
]

worker_errors = _dist.worker_errors
