"""Indexes built, refreshed and searched by Ray tasks: :func:`build_index` and
:func:`refresh` (segments built by tasks, published by the driver in one atomic commit) and
:func:`search` (a large query set fanned out over tasks)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from lakevec import _inputs, _lakevec
from lakevec._dist import with_worker_errors
from lakevec.exceptions import InvalidArgumentError
from lakevec.index import VectorIndex, build_spec
from lakevec.ray.udf import cluster_cpus, granted_cpus
from lakevec.table import Table

__all__ = ["build_index", "refresh", "search"]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _build_segment(
    table: Table, spec: _lakevec.BuildSpec, files: list[str], dim: int | None, memory_limit: int | None
) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = _lakevec.VectorIndex.build_segment(table._inner, spec, files, dim, granted_cpus(), memory_limit)
    return out, time.perf_counter() - t0


_build_segment_remote = ray.remote(_build_segment)


def _run_segments(
    table: Table,
    spec: _lakevec.BuildSpec,
    files: list[str],
    dim: int | None,
    files_per_task: int | None,
    num_cpus_per_task: float,
    timings: dict | None,
    memory_limit: int | None = None,
    max_segment_rows: int | None = None,
) -> list[str]:
    if files_per_task is not None and files_per_task < 1:
        raise InvalidArgumentError(f"files_per_task must be >= 1, got {files_per_task}")
    if memory_limit is None and max_segment_rows is None:
        if files_per_task is None:
            slots = max(1, int(cluster_cpus() // max(num_cpus_per_task, 1)))
            files_per_task = max(1, math.ceil(len(files) / slots))
        groups = _chunks(files, files_per_task)
    else:
        # groups of whole files that each fit the budget, cut further to files_per_task
        planned = _lakevec.VectorIndex.plan_segments(table._inner, spec, files, dim, memory_limit, max_segment_rows)
        groups = [c for g in planned for c in (_chunks(g, files_per_task) if files_per_task else [g])]
    t0 = time.perf_counter()
    task = _build_segment_remote.options(
        num_cpus=num_cpus_per_task, **({"memory": memory_limit} if memory_limit else {})
    )
    results = ray.get([task.remote(table, spec, group, dim, memory_limit) for group in groups if group])
    if timings is not None:
        timings["segments"] = time.perf_counter() - t0
        timings["segment_task_seconds"] = [s for _, s in results]
    return [r for r, _ in results]


@with_worker_errors
def build_index(
    table: Table | str,
    column: str,
    *,
    metric: str = "l2",
    name: str = "default",
    index_uri: str | None = None,
    key: str | None = None,
    index_type: str = "hnsw",
    m: int = 16,
    ef_construction: int = 200,
    on_invalid: str = "error",
    builder: str = "native",
    files_per_task: int | None = None,
    num_cpus_per_task: float = 1,
    memory_limit: int | str | None = None,
    max_segment_rows: int | None = None,
    rerank_source: str | None = "sidecar",
    bits: int | None = None,
    storage_options: Mapping[str, str] | None = None,
    timings: dict | None = None,
) -> VectorIndex:
    """Build an index with Ray tasks: each task reads a group of ``files_per_task`` data
    files of the table's version (pinned on the driver), builds their index structure (HNSW:
    the graph) on the CPUs it was granted (``num_cpus_per_task``) and writes it as a segment
    in the index folder; the driver then verifies every segment (checksums, files, dimension,
    table version) and publishes them in one manifest (put-if-absent). Until then nothing is visible, and a
    failed task leaves the previous index version as it was.

    Arguments as :func:`lakevec.build_index`. The index has one segment per task; searches
    merge the segments' top-k exactly (recall close to a one-graph index; :meth:`compact`
    merges them into one graph). ``files_per_task`` defaults to spreading the files over the
    cluster's CPUs. ``timings``, if given, receives ``segments`` and ``commit`` (seconds)
    and ``segment_task_seconds``.

    ``memory_limit`` (bytes or ``"4GB"``) and ``max_segment_rows``: the budget of *each task*
    (see :func:`lakevec.build_index`). When either is given, the driver cuts the files into
    groups of whole files that each fit it (then into ``files_per_task`` if also given), one
    task per group, and each task asks Ray for ``memory=memory_limit`` so that a node runs
    only as many build tasks as its memory holds. Without them, files are grouped by count.

    Raises:
        the errors of :func:`lakevec.build_index` (from the tasks, as Ray raises them), and
        ``InvalidArgumentError`` when the segments do not cover the table version.
    """
    t = table if isinstance(table, Table) else Table.open(str(table), storage_options)
    spec = build_spec(
        column,
        metric=metric,
        name=name,
        index_uri=index_uri,
        key=key,
        index_type=index_type,
        m=m,
        ef_construction=ef_construction,
        on_invalid=on_invalid,
        builder=builder,
        rerank_source=rerank_source,
        bits=bits,
    )
    files = t.files().column("path").to_pylist()
    limit = _inputs.byte_size(memory_limit)
    parts = _run_segments(
        t, spec, files, None, files_per_task, num_cpus_per_task, timings, limit, _inputs.segment_rows(max_segment_rows)
    )
    t0 = time.perf_counter()
    inner = _lakevec.VectorIndex.commit_build(t._inner, spec, parts)
    if timings is not None:
        timings["commit"] = time.perf_counter() - t0
    return VectorIndex(inner, storage_options)


@with_worker_errors
def refresh(
    index: VectorIndex,
    *,
    files_per_task: int | None = None,
    num_cpus_per_task: float = 1,
    memory_limit: int | str | None = None,
    max_segment_rows: int | None = None,
    timings: dict | None = None,
) -> bool:
    """:meth:`lakevec.VectorIndex.refresh` whose new data files are encoded by Ray tasks
    (one segment per task, as :func:`build_index`); tombstones and the commit are done on the
    driver. Returns whether a new index version was committed.

    Args:
        index: the index (updated in place to the new version).
        files_per_task: new data files per task (default: spread over the cluster's CPUs).
        num_cpus_per_task: CPUs each task asks for (its thread count).
        memory_limit, max_segment_rows: each task's budget, as in :func:`build_index`.
        timings: as in :func:`build_index`.

    Raises:
        CommitConflictError: another writer committed the same index version first.
        UnsupportedFeatureError: an indexed file now has Iceberg equality deletes.
    """
    t = index.table()
    pending = index._inner.pending_files(t._inner)
    limit, rows = _inputs.byte_size(memory_limit), _inputs.segment_rows(max_segment_rows)
    parts = (
        _run_segments(t, index.build_spec, pending, index.dim, files_per_task, num_cpus_per_task, timings, limit, rows)
        if pending
        else []
    )
    return index._inner.refresh(None, None, t._inner, parts)


def _search(index: VectorIndex, queries: pa.Array, k: int, kw: dict) -> pa.Table:
    return index.search(queries, k, num_threads=granted_cpus(), **kw)


_search_remote = ray.remote(_search)


@with_worker_errors
def search(
    index: VectorIndex,
    queries: Any,
    k: int = 10,
    *,
    ef: int | None = None,
    filter: str | None = None,
    columns: Sequence[str] | None = None,
    exact: bool = False,
    queries_per_task: int | None = None,
    num_cpus_per_task: float = 1,
) -> pa.Table:
    """:meth:`lakevec.VectorIndex.search` with the queries split over Ray tasks (each opens the
    index version once per worker process). Same result table, ``query`` numbered over the
    whole query set. ``queries_per_task`` defaults to spreading over the cluster's CPUs.

    Raises:
        as :meth:`lakevec.VectorIndex.search`.
    """
    q = _inputs.queries(queries, index.dim)
    n = len(q)
    if queries_per_task is None:
        queries_per_task = max(1, math.ceil(n / cluster_cpus()))
    kw = dict(ef=ef, filter=filter, columns=list(columns) if columns is not None else None, exact=exact)
    task = _search_remote.options(num_cpus=num_cpus_per_task)
    starts = list(range(0, n, int(queries_per_task)))
    parts = ray.get([task.remote(index, q.slice(s, queries_per_task), int(k), kw) for s in starts])
    out = []
    for s, t in zip(starts, parts):
        out.append(t.set_column(0, t.schema.field(0), pc.add(t.column("query"), pa.scalar(s, pa.int64()))))
    return pa.concat_tables(out) if out else index.search(q, k, **kw)
