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
  :func:`lakevec.dedup.semantic`.

Exceptions raised in workers reach the driver as Ray wraps them: a task's as a
``RayTaskError`` that is also an instance of the lakevec exception, a ``map_batches`` UDF's as
Ray Data's ``UserCodeException`` (unless ``DataContext.raise_original_map_exception``).
:func:`worker_errors` re-raises either as the lakevec exception itself; the functions here
that run Ray jobs do so themselves.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from lakevec import _dist, _lakevec
from lakevec.dedup import lsh_params
from lakevec.exceptions import InvalidArgumentError, SchemaError, UnsupportedFeatureError
from lakevec.index import VectorIndex, _queries
from lakevec.table import Table

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
    "granted_cpus",
    "worker_errors",
    "to_arrow",
]

worker_errors = _dist.worker_errors


def _lakevec_errors(fn):
    """Run ``fn`` under :func:`worker_errors`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with worker_errors():
            return fn(*args, **kwargs)

    return wrapper


def granted_cpus() -> int | None:
    """CPUs Ray granted the running task or actor (rounded up, at least 1); ``None`` outside
    a Ray worker (then lakevec's default applies, see :func:`lakevec.default_num_threads`)."""
    try:
        if not ray.is_initialized():
            return None
        ctx = ray.get_runtime_context()
        if ctx.worker.mode != ray.WORKER_MODE:
            return None
        cpu = ctx.get_assigned_resources().get("CPU")
    except Exception:  # pragma: no cover - depends on the Ray version
        return None
    return max(1, math.ceil(cpu)) if cpu else None


class _RayThreads:
    threads = staticmethod(granted_cpus)


class MinHashSignatures(_RayThreads, _dist.MinHashSignatures):
    __doc__ = _dist.MinHashSignatures.__doc__


class HashingEmbed(_RayThreads, _dist.HashingEmbed):
    __doc__ = _dist.HashingEmbed.__doc__


class TagRules(_RayThreads, _dist.TagRules):
    __doc__ = _dist.TagRules.__doc__


class TagKNN(_RayThreads, _dist.TagKNN):
    __doc__ = _dist.TagKNN.__doc__


class SearchIndex(_RayThreads, _dist.SearchIndex):
    __doc__ = _dist.SearchIndex.__doc__


def to_arrow(ds: "ray.data.Dataset") -> pa.Table:
    """A Dataset's rows as one ``pyarrow.Table`` on the driver, blocks in the order the
    dataset holds them (executing it if needed). An empty Dataset gives an empty table with
    its schema (or no columns when Ray knows none)."""
    blocks = ray.get(ds.to_arrow_refs())
    if blocks:
        return pa.concat_tables(blocks)
    schema = ds.schema()
    return schema.base_schema.empty_table() if schema is not None and hasattr(schema, "base_schema") else pa.table({})


# ------------------------------------------------------------------ read_table
def _read(table: Table, plan: _dist.ReadTaskPlan | None, columns, filter, with_row_address, with_position):
    if plan is None:  # not splittable (Iceberg equality deletes): one task, DataFusion scan
        return [table.to_arrow(columns, filter, num_threads=granted_cpus())]
    return [_dist.read_task(table, plan, columns, filter, with_row_address, with_position, granted_cpus())]


class LakeDatasource(Datasource):
    """A Ray Data ``Datasource`` over one version of a lake table (see :func:`read_table`).

    ``with_position`` adds ``_pos`` (int64): each row's position in the single-process
    ``Table.to_arrow(with_row_address=True)`` order (used by :func:`dedup_minhash`).
    """

    def __init__(self, table: Table, columns: Sequence[str] | None = None, filter: str | None = None,
                 with_row_address: bool = False, with_position: bool = False,
                 max_rows_per_task: int | None = None):
        super().__init__()
        self.table = table
        self.columns = list(columns) if columns is not None else None
        self.filter = filter
        self.with_row_address = with_row_address
        self.with_position = with_position
        self.max_rows_per_task = max_rows_per_task
        files = table.files()
        self._by_value = files.num_rows > 0 and files.column("num_deleted").null_count > 0
        if self._by_value and (with_row_address or with_position):
            raise _lakevec_unsupported(table)
        self._bytes = int(pc.sum(files.column("size")).as_py() or 0)
        schema = table.schema
        missing = [c for c in (self.columns or []) if c not in schema.names]
        if missing:
            raise SchemaError(f"column(s) {missing} not found in table '{table.uri}' (columns: {schema.names})")
        fields = [schema.field(c) for c in (self.columns or schema.names)]
        if with_row_address:
            fields += [pa.field("_file", pa.string(), False), pa.field("_row", pa.int64(), False)]
        if with_position:
            fields.append(pa.field("_pos", pa.int64(), False))
        self.schema = pa.schema(fields)

    def get_name(self) -> str:
        return f"lakevec({self.table.format})"

    def estimate_inmemory_data_size(self) -> int | None:
        return self._bytes

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        args = (self.columns, self.filter, self.with_row_address, self.with_position)
        if self._by_value:
            rows = None if self.filter else self.table.num_rows
            meta = BlockMetadata(num_rows=rows, size_bytes=self._bytes, input_files=None, exec_stats=None)
            return [ReadTask(functools.partial(_read, self.table, None, *args), meta, schema=self.schema)]
        tasks = []
        for plan in _dist.plan_read(self.table, parallelism, max_rows_per_task=self.max_rows_per_task):
            meta = BlockMetadata(num_rows=None if self.filter else plan.rows, size_bytes=plan.bytes,
                                 input_files=plan.files, exec_stats=None)
            tasks.append(ReadTask(functools.partial(_read, self.table, plan, *args), meta, schema=self.schema,
                                  per_task_row_limit=per_task_row_limit))
        return tasks


def _lakevec_unsupported(table: Table):
    return UnsupportedFeatureError(
        f"table '{table.uri}' has Iceberg equality deletes: its rows have no addresses or positions "
        "(read without with_row_address, or compact the table first)"
    )


def read_table(
    uri: str | Table,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    version: int | None = None,
    with_row_address: bool = False,
    storage_options: Mapping[str, str] | None = None,
    *,
    format: str | None = None,
    override_num_blocks: int | None = None,
    max_rows_per_task: int | None = None,
) -> "ray.data.Dataset":
    """A lake table as a ``ray.data.Dataset`` (lazy; read by Ray tasks).

    The table is opened once, on the driver, at ``version`` (default: latest), and the read
    is planned there from its live data files; every read task reopens that same version
    from a small pickled handle (URI, format, version, storage options without credentials:
    workers take credentials from their environment). A plain Parquet table has no version:
    its tasks read the files the driver listed, and fail naming a file that has gone. Tasks
    cover groups of data files, or row ranges of files larger than a task's share, in file
    order; deletion vectors and position deletes are applied. The rows equal
    :func:`lakevec.read_table`'s (same order when the blocks are read in order). A table
    with Iceberg equality deletes is read by one task (one block, no row limits).

    Args:
        uri: a table URI or an open :class:`lakevec.Table` (then ``version``,
            ``storage_options`` and ``format`` are its own).
        columns, filter: as :meth:`lakevec.Table.to_arrow` (the filter is evaluated in the
            read tasks).
        version: Delta version or Iceberg snapshot id (default: the latest).
        with_row_address: add ``_file`` and ``_row`` (each row's data file and position).
        storage_options, format: as :meth:`lakevec.Table.open`.
        override_num_blocks: number of read tasks (default: Ray's choice from the cluster).
        max_rows_per_task: cap on the rows a read task returns.

    Raises:
        SchemaError: a column not in the table. The errors of :meth:`lakevec.Table.open` (on
        the driver) and of :meth:`lakevec.Table.to_arrow` (in the read tasks).
        UnsupportedFeatureError: ``with_row_address`` on a table with Iceberg equality deletes.
    """
    t = uri if isinstance(uri, Table) else Table.open(str(uri), storage_options, format=format, version=version)
    ds = LakeDatasource(t, columns, filter, with_row_address, max_rows_per_task=max_rows_per_task)
    return ray.data.read_datasource(ds, override_num_blocks=override_num_blocks)


# ------------------------------------------------------------------ indexes
def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _build_segment(table: Table, spec: tuple, files: list[str], dim: int | None) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = _lakevec.VectorIndex.build_segment(table._inner, spec, files, dim, granted_cpus())
    return out, time.perf_counter() - t0


_build_segment_remote = ray.remote(_build_segment)


def _run_segments(table: Table, spec: tuple, files: list[str], dim: int | None, files_per_task: int | None,
                  num_cpus_per_task: float, timings: dict | None) -> list[str]:
    if files_per_task is None:
        slots = max(1, int(_cluster_cpus() // max(num_cpus_per_task, 1)))
        files_per_task = max(1, math.ceil(len(files) / slots))
    if files_per_task < 1:
        raise InvalidArgumentError(f"files_per_task must be >= 1, got {files_per_task}")
    t0 = time.perf_counter()
    task = _build_segment_remote.options(num_cpus=num_cpus_per_task)
    results = ray.get([task.remote(table, spec, group, dim) for group in _chunks(files, files_per_task)])
    if timings is not None:
        timings["segments"] = time.perf_counter() - t0
        timings["segment_task_seconds"] = [s for _, s in results]
    return [r for r, _ in results]


@_lakevec_errors
def build_index(
    table: Table | str,
    column: str,
    *,
    metric: str = "l2",
    name: str = "default",
    index_uri: str | None = None,
    key: str | None = None,
    m: int = 16,
    ef_construction: int = 200,
    on_invalid: str = "error",
    files_per_task: int | None = None,
    num_cpus_per_task: float = 1,
    storage_options: Mapping[str, str] | None = None,
    timings: dict | None = None,
) -> VectorIndex:
    """Build an index with Ray tasks: each task reads a group of ``files_per_task`` data
    files of the table's version (pinned on the driver), builds their HNSW graph on the CPUs
    it was granted (``num_cpus_per_task``) and writes it as a segment in the index folder;
    the driver then verifies every segment (checksums, files, dimension, table version) and
    publishes them in one manifest (put-if-absent). Until then nothing is visible, and a
    failed task leaves the previous index version as it was.

    Arguments as :func:`lakevec.build_index`. The index has one segment per task; searches
    merge the segments' top-k exactly (recall close to a one-graph index; :meth:`compact`
    merges them into one graph). ``files_per_task`` defaults to spreading the files over the
    cluster's CPUs. ``timings``, if given, receives ``segments`` and ``commit`` (seconds)
    and ``segment_task_seconds``.

    Raises:
        the errors of :func:`lakevec.build_index` (from the tasks, as Ray raises them), and
        ``InvalidArgumentError`` when the segments do not cover the table version.
    """
    t = table if isinstance(table, Table) else Table.open(str(table), storage_options)
    spec = (column, metric, name, index_uri, key, int(m), int(ef_construction), on_invalid)
    files = t.files().column("path").to_pylist()
    parts = _run_segments(t, spec, files, None, files_per_task, num_cpus_per_task, timings)
    t0 = time.perf_counter()
    inner = _lakevec.VectorIndex.commit_build(t._inner, spec, parts)
    if timings is not None:
        timings["commit"] = time.perf_counter() - t0
    return VectorIndex(inner, storage_options)


@_lakevec_errors
def refresh(index: VectorIndex, *, files_per_task: int | None = None, num_cpus_per_task: float = 1,
            timings: dict | None = None) -> bool:
    """:meth:`lakevec.VectorIndex.refresh` whose new data files are encoded by Ray tasks
    (one segment per task, as :func:`build_index`); tombstones and the commit are done on the
    driver. Returns whether a new index version was committed.

    Args:
        index: the index (updated in place to the new version).
        files_per_task: new data files per task (default: spread over the cluster's CPUs).
        num_cpus_per_task: CPUs each task asks for (its thread count).
        timings: as in :func:`build_index`.

    Raises:
        CommitConflictError: another writer committed the same index version first.
        UnsupportedFeatureError: an indexed file now has Iceberg equality deletes.
    """
    t = index.table()
    pending = index._inner.pending_files(t._inner)
    params = index.stats()["params"]
    spec = (index.column, index.metric, index.name, index.uri, index.key, int(params["m"]),
            int(params["ef_construction"]), params["on_invalid"])
    parts = _run_segments(t, spec, pending, index.dim, files_per_task, num_cpus_per_task, timings) if pending else []
    return index._inner.refresh(None, None, t._inner, parts)


def _search(index: VectorIndex, queries: pa.Array, k: int, kw: dict) -> pa.Table:
    return index.search(queries, k, num_threads=granted_cpus(), **kw)


_search_remote = ray.remote(_search)


@_lakevec_errors
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
    q = _queries(queries, index.dim)
    n = len(q)
    if queries_per_task is None:
        queries_per_task = max(1, math.ceil(n / _cluster_cpus()))
    kw = dict(ef=ef, filter=filter, columns=list(columns) if columns is not None else None, exact=exact)
    task = _search_remote.options(num_cpus=num_cpus_per_task)
    starts = list(range(0, n, int(queries_per_task)))
    parts = ray.get([task.remote(index, q.slice(s, queries_per_task), int(k), kw) for s in starts])
    out = []
    for s, t in zip(starts, parts):
        out.append(t.set_column(0, t.schema.field(0), pc.add(t.column("query"), pa.scalar(s, pa.int64()))))
    return pa.concat_tables(out) if out else index.search(q, k, **kw)


# ------------------------------------------------------------------ dedup
@ray.remote
def _num_rows(block: pa.Table) -> int:
    return block.num_rows


@ray.remote
def _add_pos(block: pa.Table, columns: list[str], offset: int) -> pa.Table:
    pos = pa.array(np.arange(offset, offset + block.num_rows, dtype=np.int64))
    return block.select(columns).append_column("_pos", pos)


def _with_positions(ds: "ray.data.Dataset", columns: list[str]) -> tuple["ray.data.Dataset", int]:
    """``columns`` of ``ds`` with ``_pos`` and the row count. Positions follow the block order
    of ``ds.materialize()`` (a materialised dataset keeps its order; executing a lazy one
    may order blocks as tasks finish unless ``DataContext.execution_options.preserve_order``)."""
    refs = ds.materialize().to_arrow_refs()
    counts = ray.get([_num_rows.remote(r) for r in refs])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int) if counts else []
    blocks = [_add_pos.remote(r, columns, int(o)) for r, o in zip(refs, offsets)]
    return ray.data.from_arrow_refs(blocks), int(sum(counts))


class _SignatureStage:
    """``_pos``, the signature, and the keep score (``_score``) of one batch."""

    def __init__(self, column: str, kw: dict, keep: str):
        self.sig = MinHashSignatures(column, **kw)
        self.column, self.keep = column, keep

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lakevec.dedup import keep_scores

        t = self.sig(batch)
        out = t.select(["_pos", "signature"])
        score = keep_scores(t, self.keep, [self.column], t.column("_pos"))
        return out if score is None else out.append_column("_score", score)


def _collapse_copies(block: pa.Table) -> pa.Table:
    """``_pos``, ``rep`` (the smallest position in this block with the identical signature)
    and ``signature`` of the block's rows that have a signature."""
    from lakevec import _inputs

    block = block.filter(pc.is_valid(block.column("signature")))
    pos, sig = _inputs.array(block, "_pos"), _inputs.array(block, "signature")
    return pa.table({"_pos": pos, "rep": _lakevec.minhash_copy_representatives(pos, sig), "signature": sig})


def _representatives(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.equal(batch.column("_pos"), batch.column("rep"))).select(["_pos", "signature"])


class _BandStage:
    """One row per (row, band): ``part`` (shuffle group), ``band``, ``key``, ``pos``, ``signature``."""

    def __init__(self, bands: int, rows: int, partitions: int):
        self.bands, self.rows, self.partitions = bands, rows, partitions

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lakevec import _inputs

        sig = _inputs.array(batch, "signature")
        br = _lakevec.minhash_band_rows(sig, self.bands, self.rows)
        idx = br.column("row")
        key = br.column("key").to_numpy()
        part = (key.view(np.uint64) % np.uint64(self.partitions)).astype(np.int64)
        return pa.table({
            "part": part,
            "band": br.column("band"),
            "key": br.column("key"),
            "pos": batch.column("_pos").take(idx),
            "signature": sig.take(idx),
        })


def _bucket_edges(group: pa.Table, threshold: float) -> pa.Table:
    """The spanning-forest edges of the buckets in one shuffle group."""
    from lakevec import _inputs

    return _lakevec.minhash_bucket_edges(
        _inputs.array(group, "band"), _inputs.array(group, "key"), _inputs.array(group, "pos"),
        _inputs.array(group, "signature"), threshold, granted_cpus(),
    )


@_lakevec_errors
def dedup_minhash(
    data: Any,
    column: str,
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    shingle: str = "word",
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    seed: int = 1,
    normalize: Any = True,
    keep: str = "first",
    num_partitions: int | None = None,
    storage_options: Mapping[str, str] | None = None,
    timings: dict | None = None,
) -> "ray.data.Dataset":
    """MinHash-LSH near-duplicates over a Ray cluster; clusters identical to
    :func:`lakevec.dedup.minhash` with the same parameters (``verify="estimate"``).

    1. signatures per batch (``map_batches``), each row numbered by its position in the
       input (a table URI: its single-process row order; a Dataset: its block order);
    2. rows with identical signatures in one block joined first (star edges to the
       smallest position), so that boilerplate copies make buckets of at most one row per
       block; then one row per (representative, band) with the band's bucket key, shuffled
       by Ray Data's
       ``groupby`` into ``num_partitions`` groups (default: about 250,000 band rows each, at
       least twice the cluster's CPUs), so every bucket lands whole in one group;
    3. per group, in Rust: each bucket's pairs verified by estimated Jaccard >= ``threshold``
       and reduced to a spanning forest (at most one edge per row touched);
    4. on the driver: a union-find over row positions, fed the edges batch by batch; the
       output blocks are made from the cluster columns and the rows' ids (a table's
       addresses come from its metadata: live positions of each data file, in order).

    Driver memory: 4 bytes per row for the union-find, plus 17 bytes per row of cluster
    columns (and 8 for ``keep`` scores); the edges are never held at once, the output ids
    one block at a time.

    Args:
        data: a table URI or :class:`lakevec.Table` (output ids ``_file``, ``_row``), or a
            ``ray.data.Dataset`` (output id ``row``: the row's position in the dataset's
            materialised block order; pass a materialised dataset to fix that order).
        other arguments: as :func:`lakevec.dedup.minhash`.
        timings: if a dict, receives each stage's seconds (``signatures``, ``buckets``,
            ``components``, ``output``).

    Returns:
        A Dataset with the single-process schema: ids, ``cluster_id``, ``cluster_size``,
        ``is_representative``, in input order.

    Raises:
        SchemaError: ``column`` (or the keep column) missing. InvalidArgumentError: bad
        parameters (checked on the driver before any task runs).
    """
    b, r = lsh_params(threshold, num_perm, bands, rows, weights)
    kw = dict(num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize)
    from lakevec.dedup import _normalize, _with_keep_column

    _normalize(normalize)
    cols = _with_keep_column([column], keep)
    clock = time.perf_counter()
    if isinstance(data, ray.data.Dataset):
        missing = [c for c in cols if c not in (data.schema().names if data.schema() else cols)]
        if missing:
            from lakevec.exceptions import SchemaError

            raise SchemaError(f"column(s) {missing} not found in the dataset (columns: {data.schema().names})")
        ds, n = _with_positions(data, cols)
        t = None
    else:
        t = data if isinstance(data, Table) else Table.open(str(data), storage_options)
        files = t.files()
        if files.column("num_records").null_count or files.column("deleted_rows").null_count:
            raise InvalidArgumentError(
                f"table '{t.uri}' has data files without row counts or positional deletes in its metadata, "
                "so row positions are unknown: pass lakevec.ray.read_table(...) as a Dataset instead"
            )
        ds = ray.data.read_datasource(LakeDatasource(t, cols, None, with_position=True))
        n = t.num_rows
    sigs = ds.map_batches(_SignatureStage(column, kw, keep), batch_format="pyarrow").materialize()
    if timings is not None:
        timings["signatures"] = time.perf_counter() - clock
    clock = time.perf_counter()
    partitions = num_partitions or max(2 * _cluster_cpus(), math.ceil(n * b / 250_000))
    comp = _lakevec.Components(n)
    # identical signatures within a block first (star edges to the smallest position); one
    # copy per block is banded, so copies spread over blocks meet in their buckets
    copies = sigs.map_batches(_collapse_copies, batch_format="pyarrow", batch_size=None).materialize()
    for batch in copies.iter_batches(batch_format="pyarrow", batch_size=None):
        dup = pc.not_equal(batch.column("_pos"), batch.column("rep"))
        comp.add(batch.column("rep").filter(dup).combine_chunks(), batch.column("_pos").filter(dup).combine_chunks())
    edges = (
        copies.map_batches(_representatives, batch_format="pyarrow")
        .map_batches(_BandStage(b, r, partitions), batch_format="pyarrow")
        .groupby("part", num_partitions=partitions)
        .map_groups(functools.partial(_bucket_edges, threshold=threshold), batch_format="pyarrow")
    )
    for batch in edges.iter_batches(batch_format="pyarrow", batch_size=None):
        comp.add(batch.column("a").combine_chunks(), batch.column("b").combine_chunks())
    if timings is not None:
        timings["buckets"] = time.perf_counter() - clock
    clock = time.perf_counter()
    score = None
    if keep != "first":
        s = np.zeros(n)
        for batch in sigs.select_columns(["_pos", "_score"]).iter_batches(batch_format="pyarrow", batch_size=None):
            s[batch.column("_pos").to_numpy()] = batch.column("_score").to_numpy()
        score = s.tolist()
    clusters = comp.clusters(score)
    if timings is not None:
        timings["components"] = time.perf_counter() - clock
    clock = time.perf_counter()
    blocks = _dist.address_blocks(t) if t is not None else _dist.position_blocks(n)
    out = ray.data.from_arrow_refs([ray.put(_dist.with_columns(b, clusters.slice(at, b.num_rows))) for at, b in blocks])
    if timings is not None:
        timings["output"] = time.perf_counter() - clock
    return out


def _knn_part(index: VectorIndex, k: int, ef: int | None, start: int, end: int, threshold: float):
    from lakevec.dedup import graph_parts

    g = index.knn_graph(k, ef, num_threads=granted_cpus(), rows=(start, end))
    return graph_parts(g, threshold)


_knn_part_remote = ray.remote(_knn_part)


@_lakevec_errors
def dedup_semantic(
    index: VectorIndex,
    threshold: float,
    k: int = 10,
    *,
    ef: int | None = None,
    keep: str = "first",
    rows_per_task: int | None = None,
    num_cpus_per_task: float = 1,
) -> "ray.data.Dataset":
    """Semantic (embedding) duplicates of an index's rows, as :func:`lakevec.dedup.semantic`
    over the index (same clusters), with the k-nearest-neighbour graph computed by Ray
    tasks: each task opens the index version once per worker and searches all segments for
    ``rows_per_task`` of the index's rows (default: spread over the cluster's CPUs), keeping
    the edges with cosine similarity >= ``threshold``; the driver joins them (union-find).

    Args:
        index: a cosine or dot index (any number of segments).
        threshold, k, ef, keep: as :func:`lakevec.dedup.semantic`.
        rows_per_task: index rows whose neighbours one task finds.
        num_cpus_per_task: CPUs each task asks for (its thread count).

    Returns:
        A Dataset ``_file``, ``_row``, ``cluster_id``, ``cluster_size``,
        ``is_representative`` (index order).

    Raises:
        InvalidArgumentError: an ``l2`` index, ``threshold`` outside (0, 1], a bad ``keep``
        or ``k``.
    """
    from lakevec.dedup import check_semantic_args, semantic_from_graph

    check_semantic_args(threshold, keep, index)
    n = int(index.stats()["rows"])
    per = int(rows_per_task or max(1, math.ceil(n / _cluster_cpus())))
    if per < 1:
        raise InvalidArgumentError(f"rows_per_task must be >= 1, got {per}")
    task = _knn_part_remote.options(num_cpus=num_cpus_per_task)
    parts = ray.get([task.remote(index, int(k), ef, s, min(n, s + per), float(threshold)) for s in range(0, n, per)])
    parts = parts or [_knn_part(index, int(k), ef, 0, 0, float(threshold))]  # no live rows
    nodes = pa.concat_tables([p[0] for p in parts])
    edges = pa.concat_tables([p[1] for p in parts])
    return ray.data.from_arrow(semantic_from_graph(index, nodes, edges, keep))
