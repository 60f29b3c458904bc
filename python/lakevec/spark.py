"""lakevec on Spark: lakevec's kernels as ``DataFrame.mapInArrow`` functions, and MinHash
dedup whose LSH buckets are formed by Spark's own ``groupBy``.

Needs ``pip install 'lakevec[spark]'`` (PySpark >= 3.5). Each ``mapInArrow`` helper takes the
input DataFrame's schema and returns ``(fn, schema)``, ready to unpack::

    tagged = df.mapInArrow(*lakevec.spark.tag_rules(df.schema, "description", regex={...}))

The functions pickle as their arguments (an index as URI + version + options without
credentials), open an index once per Python worker, and size lakevec's pool from
``spark.task.cpus``. Spark has no unsigned or fixed-size list types, so MinHash signatures
are ``binary`` (``4 * num_perm`` little-endian bytes; :func:`binary_to_signatures` turns them back
into lakevec's ``FixedSizeList<uint32>``) and vectors ``array<float>``.

Spark reports a failure in a Python worker as ``PythonException`` carrying the worker's
traceback text; :func:`worker_errors` turns one raised by a lakevec function back into that
lakevec exception (type and message) on the driver. :func:`dedup_minhash` does so itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec import _dist, _lakevec, _minhash
from lakevec.exceptions import SchemaError

__all__ = [
    "minhash_signatures",
    "hashing_embed",
    "tag_rules",
    "tag_knn",
    "search_index",
    "dedup_minhash",
    "worker_errors",
    "task_cpus",
    "binary_to_signatures",
    "signatures_to_binary",
]

binary_to_signatures = _dist.binary_to_signatures
signatures_to_binary = _dist.signatures_to_binary


def task_cpus() -> int | None:
    """``spark.task.cpus`` of the running task (``None`` outside a Spark task)."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        return int(tc.cpus()) if tc is not None else None
    except Exception:  # pragma: no cover - depends on the PySpark version
        return None


class _SparkThreads:
    threads = staticmethod(task_cpus)


class _MapInArrow:
    """``fn(iterator of RecordBatch) -> iterator of RecordBatch`` over a batch UDF."""

    def __init__(self, udf: _dist.BatchUDF):
        self.udf = udf

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield from _dist.spark_compatible(self.udf(pa.Table.from_batches([b]))).to_batches()


def _map_in_arrow(schema, udf: _dist.BatchUDF):
    """``(fn, output schema)``: the schema is what ``udf`` returns for an empty batch of the
    input ``schema`` (so a bad column fails here, on the driver)."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    out = _dist.spark_compatible(udf(to_arrow_schema(schema).empty_table()))
    return _MapInArrow(udf), from_arrow_schema(out.schema)


# The batch UDFs with Spark's thread count (module-level classes, so plain pickle finds them).
class _Sig(_SparkThreads, _dist.MinHashSignatures):
    pass


class _Hash(_SparkThreads, _dist.HashingEmbed):
    pass


class _Rules(_SparkThreads, _dist.TagRules):
    pass


class _KNN(_SparkThreads, _dist.TagKNN):
    pass


class _Search(_SparkThreads, _dist.SearchIndex):
    pass


_RAISES = """

    Raises:
        SchemaError: a column not in ``schema`` (on the driver), InvalidArgumentError: bad
        parameters; in the workers, the errors of the single-process function."""


def minhash_signatures(
    schema,
    column: str,
    *,
    num_perm: int = 128,
    ngram: int = 5,
    shingle: str = "word",
    seed: int = 1,
    sketch: str = _minhash.DEFAULT_SKETCH,
    normalize: Any = True,
    output_column: str = "signature",
):
    """``(fn, schema)`` for ``mapInArrow``: the input rows plus ``output_column`` (binary,
    ``4 * num_perm`` bytes: the uint32 MinHash signature of
    :func:`lakevec.dedup.minhash_signatures`; null for null or empty texts)."""
    return _map_in_arrow(
        schema,
        _Sig(
            column,
            num_perm=num_perm,
            ngram=ngram,
            shingle=shingle,
            seed=seed,
            sketch=sketch,
            normalize=normalize,
            output_column=output_column,
        ),
    )


def hashing_embed(
    schema,
    column: str,
    *,
    dim: int = 256,
    ngram: tuple[int, int] = (1, 2),
    analyzer: str = "word",
    norm: str | None = "l2",
    output_column: str = "vector",
):
    """``(fn, schema)``: the input rows plus ``output_column`` (array<float>, length ``dim``):
    :func:`lakevec.embed.hashing`."""
    return _map_in_arrow(
        schema, _Hash(column, dim=dim, ngram=ngram, analyzer=analyzer, norm=norm, output_column=output_column)
    )


def tag_rules(
    schema,
    column: str,
    regex: Mapping[str, Any] | None = None,
    keywords: Mapping[str, Any] | None = None,
    *,
    case_sensitive: bool = False,
):
    """``(fn, schema)``: the input rows plus ``tags`` (array<string>) and ``matches``
    (array<struct<tag, rule, start, end>>): :func:`lakevec.tag.rules`."""
    return _map_in_arrow(schema, _Rules(column, regex, keywords, case_sensitive=case_sensitive))


def tag_knn(
    schema,
    index: Any,
    column: str,
    label_column: str,
    k: int = 10,
    *,
    weights: str = "uniform",
    min_confidence: float = 0.0,
    storage_options: Mapping[str, str] | None = None,
):
    """``(fn, schema)``: the input rows plus ``label``, ``confidence`` (float),
    ``neighbor_files``, ``neighbor_rows``: each vector ``column`` labelled by its ``k``
    nearest rows of ``index`` (URI or :class:`lakevec.VectorIndex`, pinned at its current
    version, opened here and once per worker), as :func:`lakevec.tag.knn`."""
    return _map_in_arrow(
        schema,
        _KNN(
            index,
            column,
            label_column,
            k,
            weights=weights,
            min_confidence=min_confidence,
            storage_options=storage_options,
        ),
    )


def search_index(
    schema,
    index: Any,
    column: str,
    k: int = 10,
    *,
    columns: Sequence[str] | None = None,
    ef: int | None = None,
    filter: str | None = None,
    passthrough: Sequence[str] | None = None,
    storage_options: Mapping[str, str] | None = None,
):
    """``(fn, schema)``: one row per hit of each row's vector ``column`` in ``index``
    (pinned at its current version, opened here and once per worker): the ``passthrough``
    columns (default: all but the vector), ``rank``, ``distance``, ``_file``, ``_row``, the
    index key, then the fetched ``columns``; a hit column named like a passthrough column
    becomes ``hit_<name>``."""
    return _map_in_arrow(
        schema,
        _Search(
            index,
            column,
            k,
            columns=columns,
            ef=ef,
            filter=filter,
            passthrough=passthrough,
            storage_options=storage_options,
        ),
    )


for _f in (minhash_signatures, hashing_embed, tag_rules, tag_knn, search_index):
    _f.__doc__ += _RAISES


# ------------------------------------------------------------------ errors
worker_errors = _dist.worker_errors


# ------------------------------------------------------------------ dedup
def _partition_id() -> int:
    from pyspark import TaskContext

    return TaskContext.get().partitionId()


def _count_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    n = sum(b.num_rows for b in batches)
    yield pa.RecordBatch.from_pydict({"pid": pa.array([_partition_id()], pa.int32()), "n": pa.array([n], pa.int64())})


class _Signatures:
    """:class:`lakevec._minhash.SignatureStage` per batch, positions counted from the
    partition's offset (``offsets``: partition id -> its first row's position), signatures
    as binary: ``pos``, ``signature`` (and ``score``)."""

    def __init__(self, stage: _minhash.SignatureStage, offsets: Mapping[int, int]):
        self.stage, self.offsets = stage, dict(offsets)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        at = self.offsets.get(_partition_id(), 0)
        for b in batches:
            pos = pa.array(np.arange(at, at + b.num_rows, dtype=np.int64))
            at += b.num_rows
            out = self.stage(pa.Table.from_batches([b]), pos)
            sig = _dist.signatures_to_binary(out.column("signature"))
            yield from out.set_column(1, "signature", sig).to_batches()


class _Bands:
    """:func:`lakevec._minhash.band_rows` of binary signatures (carried as binary)."""

    def __init__(self, bands: int, rows: int, num_perm: int):
        self.bands, self.rows, self.num_perm = bands, rows, num_perm

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            sig_bin = b.column(b.schema.get_field_index("signature"))
            sig = _dist.binary_to_signatures(sig_bin, self.num_perm)
            pos = b.column(b.schema.get_field_index("pos"))
            yield from _minhash.band_rows(pos, sig, self.bands, self.rows, carry=sig_bin).to_batches()


class _EdgeStage:
    """Buckets (rows of ``m``: list<struct<pos, signature>>) -> spanning-forest edges."""

    def __init__(self, threshold: float, num_perm: int):
        self.threshold, self.num_perm = threshold, num_perm

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            m = b.column(0)
            members = m.flatten()
            group = pc.list_parent_indices(m).cast(pa.int64())
            sig = _dist.binary_to_signatures(members.field("signature"), self.num_perm)
            band = pa.array(np.zeros(len(members), np.int32))
            edges = _lakevec.minhash_bucket_edges(band, group, members.field("pos"), sig, self.threshold, task_cpus())
            yield from edges.to_batches()


def _numpy_chunks(rows: Iterator, names: Sequence[str], size: int = 65536):
    buf: list = []
    for r in rows:
        buf.append(tuple(r[c] for c in names))
        if len(buf) >= size:
            yield np.asarray(buf)
            buf = []
    if buf:
        yield np.asarray(buf)


def dedup_minhash(
    df,
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
):
    """MinHash-LSH near-duplicates of a Spark DataFrame; clusters identical to
    :func:`lakevec.dedup.minhash` on the same rows in the same order.

    1. rows numbered in DataFrame order (a count per partition, then offsets), signatures
       per batch (``mapInArrow``), checkpointed (``localCheckpoint``) so the numbering holds;
    2. identical signatures joined first (``groupBy(signature)``: star edges to the smallest
       position), as the single-process pipeline does; one row per (representative, band)
       with its bucket key; Spark's ``groupBy(band, key)`` collects each bucket
       (``collect_list``), buckets of one row are dropped;
    3. per bucket, in Rust: pairs verified by estimated Jaccard >= ``threshold``, reduced to a
       spanning forest;
    4. on the driver: a union-find over row positions fed the edges as they stream in
       (``toLocalIterator``; 4 bytes per row, the edges never held at once).

    The DataFrame must be deterministic (same rows in the same partitions when evaluated
    twice), as for ``RDD.zipWithIndex``.

    Returns:
        A DataFrame ``row`` (bigint: the row's position in ``df``), ``cluster_id``,
        ``cluster_size`` (bigint) and ``is_representative`` (boolean), ordered by ``row``.

    Raises:
        SchemaError: ``column`` or the keep column missing. InvalidArgumentError: bad
        parameters. Errors from the workers as their lakevec type (:func:`worker_errors`).
    """
    from pyspark.sql import functions as F

    params = _minhash.minhash_params(
        num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch
    )
    args = _minhash.check_args(column, params, threshold=threshold, bands=bands, rows=rows, weights=weights, keep=keep)
    cols = args.columns
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"column(s) {missing} not found in the DataFrame (columns: {df.columns})")
    spark = df.sparkSession
    src = df.select(*cols)
    with worker_errors():
        counts = {int(x["pid"]): int(x["n"]) for x in src.mapInArrow(_count_rows, "pid int, n long").collect()}
        offsets, at = {}, 0
        for pid in sorted(counts):
            offsets[pid] = at
            at += counts[pid]
        n = at
        sig_schema = "pos long, signature binary" + (", score double" if keep != "first" else "")
        stage = _Signatures(_minhash.SignatureStage(args, task_cpus), offsets)
        sigs = src.mapInArrow(stage, sig_schema).localCheckpoint(eager=True)
        # identical signatures first: Spark groups the binary signatures exactly; one copy
        # (the smallest position) is banded, the others join it by star edges
        copies = (
            sigs.where(F.col("signature").isNotNull())
            .groupBy("signature")
            .agg(F.min("pos").alias("rep"), F.collect_list("pos").alias("members"))
            .localCheckpoint(eager=True)
        )
        driver = _minhash.DriverComponents(n, keep)
        copy_edges = copies.where(F.size("members") > 1).select("rep", F.explode("members").alias("pos"))
        for chunk in _numpy_chunks(copy_edges.where("pos != rep").toLocalIterator(), ("rep", "pos")):
            driver.add_edges(chunk[:, 0], chunk[:, 1])
        reps = copies.select(F.col("rep").alias("pos"), "signature")
        band_rows = reps.mapInArrow(
            _Bands(args.bands, args.rows, num_perm), "band int, key long, pos long, signature binary"
        )
        buckets = (
            band_rows.groupBy("band", "key")
            .agg(F.collect_list(F.struct("pos", "signature")).alias("m"))
            .where(F.size("m") > 1)
            .select("m")
        )
        edges = buckets.mapInArrow(_EdgeStage(args.threshold, num_perm), "a long, b long")
        for chunk in _numpy_chunks(edges.toLocalIterator(), ("a", "b")):
            driver.add_edges(chunk[:, 0], chunk[:, 1])
        if keep != "first":
            for chunk in _numpy_chunks(sigs.select("pos", "score").toLocalIterator(), ("pos", "score")):
                driver.add_scores(chunk[:, 0], chunk[:, 1])
    clusters = driver.clusters()
    out = _dist.with_columns(pa.table({"row": pa.array(np.arange(n, dtype=np.int64))}), clusters)
    return spark.createDataFrame(out)
