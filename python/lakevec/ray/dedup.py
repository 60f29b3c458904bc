"""MinHash and semantic dedup over a Ray cluster: :func:`dedup_minhash` (the engine-neutral
pipeline of :mod:`lakevec._minhash` run by Ray Data) and :func:`dedup_semantic` (an index's
kNN graph computed by Ray tasks)."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from lakevec import _dist, _inputs, _lakevec, _minhash
from lakevec._dist import with_worker_errors
from lakevec.dedup import DedupIndex, check_semantic_args, graph_parts, semantic_from_graph
from lakevec.exceptions import InvalidArgumentError, SchemaError
from lakevec.index import VectorIndex
from lakevec.ray.read import LakeDatasource
from lakevec.ray.udf import cluster_cpus, granted_cpus
from lakevec.table import Table

__all__ = ["dedup_minhash", "dedup_semantic", "refresh_dedup"]


def _sign_part(table: Table, index_uri: str, manifest: str, files: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    part = _lakevec.DedupIndex.sign_part(table._inner, index_uri, manifest, files, granted_cpus())
    return part, time.perf_counter() - t0


_sign_part_remote = ray.remote(_sign_part)


@with_worker_errors
def refresh_dedup(
    index: DedupIndex,
    *,
    files_per_task: int | None = None,
    num_cpus_per_task: float = 1,
    memory_limit: int | str | None = None,
    timings: dict | None = None,
) -> pa.Table:
    """:meth:`lakevec.dedup.DedupIndex.refresh` whose new data files are read and signed by
    Ray tasks: each task signs a group of ``files_per_task`` new files (default: spread over
    the cluster's CPUs) on the CPUs it was granted and writes them as a segment file in the
    index folder; the driver verifies the segments (checksums, counts, that they hold exactly
    the table version's new files), clusters them with the stored rows and commits one
    version. The clusters equal a single-process refresh (and one ``dedup.minhash`` run).

    A ``method="semantic"`` index: its vector index is refreshed on Ray first
    (:func:`lakevec.ray.refresh`: the new files' vectors read and encoded in tasks), then the
    new rows' neighbour searches run on the driver (:meth:`~lakevec.dedup.DedupIndex.refresh`).

    Args:
        index: the dedup index (updated in place to the new version).
        memory_limit: the driver's budget, as in :func:`lakevec.dedup.build_index`.
        timings: if a dict, receives ``sign`` (seconds of the tasks, wall), ``sign_task_seconds``
            and ``commit`` (a semantic index: ``vectors``, the vector index refresh, and
            ``commit``).

    Returns:
        The new rows' assignments, as :meth:`~lakevec.dedup.DedupIndex.refresh`.

    Raises:
        the errors of :meth:`lakevec.dedup.DedupIndex.refresh` (from the tasks, as their
        lakevec type), and ``CommitConflictError`` when another writer committed first.
    """
    if files_per_task is not None and files_per_task < 1:
        raise InvalidArgumentError(f"files_per_task must be >= 1, got {files_per_task}")
    vindex = index.vector_index()
    if vindex is not None:
        from lakevec.ray.index import refresh as refresh_vectors

        t0 = time.perf_counter()
        refresh_vectors(
            vindex, files_per_task=files_per_task, num_cpus_per_task=num_cpus_per_task, memory_limit=memory_limit
        )
        t1 = time.perf_counter()
        out = index.refresh()
        if timings is not None:
            timings.update(vectors=t1 - t0, commit=time.perf_counter() - t1)
        return out
    t = index.table()
    pending = index._inner.pending_files(t._inner)
    if files_per_task is None:
        slots = max(1, int(cluster_cpus() // max(num_cpus_per_task, 1)))
        files_per_task = max(1, math.ceil(len(pending) / slots))
    groups = [pending[i : i + files_per_task] for i in range(0, len(pending), files_per_task)]
    t0 = time.perf_counter()
    task = _sign_part_remote.options(num_cpus=num_cpus_per_task)
    manifest = index._inner.manifest_json()
    results = ray.get([task.remote(t, index.uri, manifest, g) for g in groups])
    t1 = time.perf_counter()
    limit = _inputs.byte_size(memory_limit, "memory_limit")
    _committed, out = index._inner.refresh(t._inner, limit, None, [p for p, _ in results], None)
    if timings is not None:
        timings.update(sign=t1 - t0, sign_task_seconds=[s for _, s in results], commit=time.perf_counter() - t1)
    return out


@ray.remote
def _num_rows(block: pa.Table) -> int:
    return block.num_rows


@ray.remote
def _add_pos(block: pa.Table, columns: list[str], offset: int) -> pa.Table:
    pos = pa.array(np.arange(offset, offset + block.num_rows, dtype=np.int64))
    return block.select(columns).append_column("_pos", pos)


def _with_positions(ds: ray.data.Dataset, columns: list[str]) -> tuple[ray.data.Dataset, int]:
    """``columns`` of ``ds`` with ``_pos`` and the row count. Positions follow the block order
    of ``ds.materialize()`` (a materialised dataset keeps its order; executing a lazy one
    may order blocks as tasks finish unless ``DataContext.execution_options.preserve_order``)."""
    refs = ds.materialize().to_arrow_refs()
    counts = ray.get([_num_rows.remote(r) for r in refs])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int) if counts else []
    blocks = [_add_pos.remote(r, columns, int(o)) for r, o in zip(refs, offsets)]
    return ray.data.from_arrow_refs(blocks), int(sum(counts))


class _Signatures:
    """:class:`lakevec._minhash.SignatureStage` over a batch that carries its positions in
    ``_pos``: ``pos``, ``signature`` (and ``score``)."""

    def __init__(self, stage: _minhash.SignatureStage):
        self.stage = stage

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.stage(batch, batch.column("_pos"))


def _collapse_copies(block: pa.Table) -> pa.Table:
    """``pos``, ``rep`` (the smallest position in this block with the identical signature)
    and ``signature`` of the block's rows that have a signature."""
    block = block.filter(pc.is_valid(block.column("signature")))
    pos, sig = _inputs.array(block, "pos"), _inputs.array(block, "signature")
    return pa.table({"pos": pos, "rep": _lakevec.minhash_copy_representatives(pos, sig), "signature": sig})


def _representatives(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.equal(batch.column("pos"), batch.column("rep"))).select(["pos", "signature"])


class _Bands:
    """:func:`lakevec._minhash.band_rows` of a batch, with ``part`` (the shuffle group: the
    bucket key modulo ``partitions``) first."""

    def __init__(self, bands: int, rows: int, partitions: int):
        self.bands, self.rows, self.partitions = bands, rows, partitions

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = _minhash.band_rows(_inputs.array(batch, "pos"), _inputs.array(batch, "signature"), self.bands, self.rows)
        key = out.column("key").to_numpy()
        part = (key.view(np.uint64) % np.uint64(self.partitions)).astype(np.int64)
        return out.add_column(0, "part", pa.array(part))


def _bucket_edges(group: pa.Table, threshold: float) -> pa.Table:
    """The spanning-forest edges of the buckets in one shuffle group."""
    return _lakevec.minhash_bucket_edges(
        _inputs.array(group, "band"),
        _inputs.array(group, "key"),
        _inputs.array(group, "pos"),
        _inputs.array(group, "signature"),
        threshold,
        granted_cpus(),
    )


@with_worker_errors
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
    sketch: str = _minhash.DEFAULT_SKETCH,
    normalize: Any = True,
    keep: str = "first",
    num_partitions: int | None = None,
    storage_options: Mapping[str, str] | None = None,
    timings: dict | None = None,
) -> ray.data.Dataset:
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
    params = _minhash.minhash_params(
        num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch
    )
    args = _minhash.check_args(column, params, threshold=threshold, bands=bands, rows=rows, weights=weights, keep=keep)
    cols = args.columns
    clock = time.perf_counter()
    if isinstance(data, ray.data.Dataset):
        missing = [c for c in cols if c not in (data.schema().names if data.schema() else cols)]
        if missing:
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
    stage = _Signatures(_minhash.SignatureStage(args, granted_cpus))
    sigs = ds.map_batches(stage, batch_format="pyarrow").materialize()
    if timings is not None:
        timings["signatures"] = time.perf_counter() - clock
    clock = time.perf_counter()
    partitions = num_partitions or max(2 * cluster_cpus(), math.ceil(n * args.bands / 250_000))
    driver = _minhash.DriverComponents(n, keep)
    # identical signatures within a block first (star edges to the smallest position); one
    # copy per block is banded, so copies spread over blocks meet in their buckets
    copies = sigs.map_batches(_collapse_copies, batch_format="pyarrow", batch_size=None).materialize()
    for batch in copies.iter_batches(batch_format="pyarrow", batch_size=None):
        driver.add_copies(batch.column("rep"), batch.column("pos"))
    edges = (
        copies.map_batches(_representatives, batch_format="pyarrow")
        .map_batches(_Bands(args.bands, args.rows, partitions), batch_format="pyarrow")
        .groupby("part", num_partitions=partitions)
        .map_groups(functools.partial(_bucket_edges, threshold=args.threshold), batch_format="pyarrow")
    )
    for batch in edges.iter_batches(batch_format="pyarrow", batch_size=None):
        driver.add_edges(batch.column("a"), batch.column("b"))
    if timings is not None:
        timings["buckets"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if keep != "first":
        for batch in sigs.select_columns(["pos", "score"]).iter_batches(batch_format="pyarrow", batch_size=None):
            driver.add_scores(batch.column("pos"), batch.column("score"))
    clusters = driver.clusters()
    if timings is not None:
        timings["components"] = time.perf_counter() - clock
    clock = time.perf_counter()
    blocks = _dist.address_blocks(t) if t is not None else _dist.position_blocks(n)
    out = ray.data.from_arrow_refs([ray.put(_dist.with_columns(b, clusters.slice(at, b.num_rows))) for at, b in blocks])
    if timings is not None:
        timings["output"] = time.perf_counter() - clock
    return out


def _knn_part(index: VectorIndex, k: int, ef: int | None, start: int, end: int, threshold: float):
    g = index.knn_graph(k, ef, num_threads=granted_cpus(), rows=(start, end))
    return graph_parts(g, threshold)


_knn_part_remote = ray.remote(_knn_part)


@with_worker_errors
def dedup_semantic(
    index: VectorIndex,
    threshold: float,
    k: int = 10,
    *,
    ef: int | None = None,
    keep: str = "first",
    rows_per_task: int | None = None,
    num_cpus_per_task: float = 1,
) -> ray.data.Dataset:
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
    check_semantic_args(threshold, keep, index)
    n = int(index.stats()["rows"])
    per = int(rows_per_task or max(1, math.ceil(n / cluster_cpus())))
    if per < 1:
        raise InvalidArgumentError(f"rows_per_task must be >= 1, got {per}")
    task = _knn_part_remote.options(num_cpus=num_cpus_per_task)
    parts = ray.get([task.remote(index, int(k), ef, s, min(n, s + per), float(threshold)) for s in range(0, n, per)])
    parts = parts or [_knn_part(index, int(k), ef, 0, 0, float(threshold))]  # no live rows
    nodes = pa.concat_tables([p[0] for p in parts])
    edges = pa.concat_tables([p[1] for p in parts])
    return ray.data.from_arrow(semantic_from_graph(index, nodes, edges, keep))
