"""Engine-neutral pieces of :mod:`lakevec.ray` and :mod:`lakevec.spark`.

* Read planning: a pinned table version's live data files split into parts (whole files or
  row ranges of large ones) and grouped into read tasks, with each part's global row offset
  (its position in the single-process ``to_arrow(with_row_address=True)`` order).
* Batch UDFs: small picklable callables ``pyarrow.Table -> pyarrow.Table`` that hold only
  descriptors (no live handles, no credentials) and open what they need once per process
  (see :mod:`lakevec._cache`).
* Arrow helpers for engines that lack unsigned and fixed-size list types (Spark).
* Worker errors: engine wrapper exceptions turned back into lakevec's (:func:`worker_errors`).

The MinHash dedup pipeline shared by single-process, Ray and Spark dedup is
:mod:`lakevec._minhash`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec._minhash import DEFAULT_SKETCH
from lakevec.exceptions import InvalidArgumentError, SchemaError
from lakevec.table import Table

# A part: (data file path, first row position, end position), positions as in the file.
Part = tuple[str, int, int]
WHOLE_FILE = 2**63 - 1


# ------------------------------------------------------------------ read planning
@dataclass
class ReadTaskPlan:
    """One read task: its parts, its estimated live rows and the global position of its
    first row (``None`` when the table's metadata has no row counts)."""

    parts: list[Part]
    rows: int | None
    offset: int | None
    bytes: int
    files: list[str] = field(default_factory=list)


def plan_read(table: Table, parallelism: int, *, max_rows_per_task: int | None = None) -> list[ReadTaskPlan]:
    """Split ``table``'s live data files into about ``parallelism`` read tasks of similar
    live row counts: small files are grouped, a file with more live rows than a task's
    share is split into row ranges (a part reads only the row groups its range touches),
    files without live rows are skipped. Tasks keep file order, so concatenating them gives
    the single-process row order. Without row counts in the table's metadata (a Delta log
    without statistics) whole files are spread over the tasks and positions are unknown
    (``offset`` is ``None``).
    """
    files = table.files()
    paths = files.column("path").to_pylist()
    sizes = files.column("size").to_pylist()
    counts = files.column("num_records").to_pylist()
    deleted = files.column("deleted_rows").to_pylist()
    parallelism = max(1, int(parallelism))
    if any(c is None for c in counts) or any(d is None for d in deleted):
        # no row counts or positions: one part per file, files spread over the tasks
        per = math.ceil(len(paths) / parallelism) if paths else 1
        return [
            ReadTaskPlan(
                [(p, 0, WHOLE_FILE) for p in paths[i : i + per]],
                None,
                None,
                sum(sizes[i : i + per]),
                paths[i : i + per],
            )
            for i in range(0, len(paths), per)
        ]
    total = sum(n - len(d) for n, d in zip(counts, deleted))
    target = max(1, math.ceil(total / parallelism))
    if max_rows_per_task:
        target = min(target, max(1, int(max_rows_per_task)))
    plans: list[ReadTaskPlan] = []
    cur = ReadTaskPlan([], 0, 0, 0)
    offset = 0
    for p, size, n, dl in zip(paths, sizes, counts, deleted):
        live = np.delete(np.arange(n, dtype=np.int64), np.asarray(dl, np.int64)) if dl else None
        nlive = n - len(dl)
        taken = 0  # live rows of this file already planned
        while taken < nlive:
            rows = min(target - cur.rows, nlive - taken)
            start = 0 if taken == 0 else int(live[taken] if live is not None else taken)
            end_i = taken + rows
            end = WHOLE_FILE if end_i == nlive else int(live[end_i] if live is not None else end_i)
            if not cur.parts:
                cur.offset = offset
            cur.parts.append((p, start, end))
            cur.rows += rows
            cur.bytes += int(size * rows / max(nlive, 1))
            cur.files.append(p)
            offset += rows
            taken = end_i
            if cur.rows >= target:
                plans.append(cur)
                cur = ReadTaskPlan([], 0, 0, 0)
    if cur.parts:
        plans.append(cur)
    return plans


def read_task(
    table: Table,
    plan: ReadTaskPlan,
    columns: list[str] | None,
    filter: str | None,
    with_row_address: bool,
    with_position: bool,
    num_threads: int | None,
) -> pa.Table:
    """Read one task's parts: the columns (all when ``None``), then ``_file``/``_row`` if
    asked, then ``_pos`` (int64 global row position) if asked. ``table`` is the driver's
    pinned version, reopened here from its handle (once per worker process)."""
    out = table._inner.read_parts(plan.parts, columns, filter, None, num_threads)
    if with_position:
        if plan.offset is None:
            raise InvalidArgumentError(
                f"table '{table.uri}' has data files without row counts in its metadata: global row positions "
                "are unknown (needed by distributed dedup over a URI); pass a dataset instead"
            )
        if plan.rows is not None and out.num_rows != plan.rows:
            raise InvalidArgumentError(
                f"read {out.num_rows} rows from {plan.files} of '{table.uri}' where the metadata says {plan.rows}"
            )
        out = out.append_column("_pos", pa.array(np.arange(plan.offset, plan.offset + out.num_rows, dtype=np.int64)))
    if not with_row_address:
        out = out.drop_columns(["_file", "_row"])
    return out


def address_blocks(table: Table, max_rows: int = 1 << 20) -> Iterator[tuple[int, pa.Table]]:
    """``(position of the first row, table of _file, _row)`` blocks of at most ``max_rows``
    rows covering ``table``'s live rows in the single-process order, from its metadata (each
    data file's positions minus its deleted ones): no data is read. At least one block.

    Raises:
        InvalidArgumentError: a data file without a row count, or with deletes known only by
        value (Iceberg equality deletes).
    """
    files = table.files()
    schema = pa.schema([pa.field("_file", pa.string(), False), pa.field("_row", pa.int64(), False)])  # as to_arrow's
    at = 0
    for path, n, deleted in zip(
        files.column("path").to_pylist(),
        files.column("num_records").to_pylist(),
        files.column("deleted_rows").to_pylist(),
    ):
        if n is None or deleted is None:
            raise InvalidArgumentError(f"data file '{path}' of '{table.uri}' has no row count or positional deletes")
        rows = np.delete(np.arange(n, dtype=np.int64), np.asarray(deleted, np.int64)) if deleted else np.arange(n)
        for s in range(0, len(rows), max_rows):
            chunk = pa.array(rows[s : s + max_rows], pa.int64())
            file = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(chunk), np.int32)), [path]).cast(pa.string())
            yield at, pa.Table.from_arrays([file, chunk], schema=schema)
            at += len(chunk)
    if at == 0:
        yield 0, schema.empty_table()


def position_blocks(n: int, max_rows: int = 1 << 20) -> Iterator[tuple[int, pa.Table]]:
    """``(first position, table of row)`` blocks of at most ``max_rows`` covering ``0..n``
    (at least one block)."""
    for s in range(0, max(n, 1), max_rows):
        yield s, pa.table({"row": pa.array(np.arange(s, min(n, s + max_rows), dtype=np.int64))})


def with_columns(t: pa.Table, more: pa.Table) -> pa.Table:
    """``t``'s columns followed by ``more``'s (same number of rows)."""
    return pa.Table.from_arrays(t.columns + more.columns, names=t.column_names + more.column_names)


# ------------------------------------------------------------------ batch UDFs
class BatchUDF:
    """Base of lakevec's batch UDFs: ``udf(batch) -> pyarrow.Table``, where ``batch`` is a
    ``pyarrow.Table``/``RecordBatch`` (or pandas). Picklable as its arguments only.

    ``threads`` is called in the worker to size lakevec's pool (Ray: the CPUs granted to the
    task; Spark: ``spark.task.cpus``); ``None`` means lakevec's default."""

    threads: Callable[[], int | None] = staticmethod(lambda: None)

    def __call__(self, batch: Any) -> pa.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _table(batch: Any) -> pa.Table:
        from lakevec import _inputs

        return _inputs.to_table(batch)

    @staticmethod
    def _need(t: pa.Table, *columns: str) -> None:
        missing = [c for c in columns if c not in t.column_names]
        if missing:
            raise SchemaError(f"column(s) {missing} not found in the batch (columns: {t.column_names})")


def _index_handle(index: Any, storage_options: Mapping[str, str] | None):
    """The reopening handle (see ``VectorIndex._handle``) of an index given as a VectorIndex
    or URI (opened here, on the driver, to pin its version)."""
    from lakevec.index import VectorIndex, open_index

    if not isinstance(index, VectorIndex):
        index = open_index(str(index), storage_options=storage_options)
    return index._handle()


def _worker_index(handle: tuple):
    from lakevec.index import reopen_index

    return reopen_index(*handle)


class MinHashSignatures(BatchUDF):
    """Appends ``output_column`` (``FixedSizeList<uint32, num_perm>``) with the MinHash
    signature of ``column``: :func:`lakevec.dedup.minhash_signatures` per batch."""

    def __init__(
        self,
        column: str,
        *,
        num_perm: int = 128,
        ngram: int = 5,
        shingle: str = "word",
        seed: int = 1,
        sketch: str = DEFAULT_SKETCH,
        normalize: Any = True,
        output_column: str = "signature",
    ):
        self.column, self.output_column = column, output_column
        self.kw = dict(num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch)

    def __call__(self, batch: Any) -> pa.Table:
        from lakevec.dedup import minhash_signatures

        t = self._table(batch)
        out = minhash_signatures(t, self.column, num_threads=self.threads(), **self.kw)
        return out.rename_columns(t.column_names + [self.output_column])


class HashingEmbed(BatchUDF):
    """Appends ``output_column`` (``FixedSizeList<float32, dim>``): the feature-hashing
    vector of ``column`` (:func:`lakevec.embed.hashing`, scikit-learn's HashingVectorizer)."""

    def __init__(
        self,
        column: str,
        *,
        dim: int = 256,
        ngram: tuple[int, int] = (1, 2),
        analyzer: str = "word",
        norm: str | None = "l2",
        output_column: str = "vector",
    ):
        self.column, self.output_column = column, output_column
        self.kw = dict(dim=dim, ngram=tuple(ngram), analyzer=analyzer, norm=norm)

    def __call__(self, batch: Any) -> pa.Table:
        from lakevec import _inputs
        from lakevec.embed import hashing

        t = self._table(batch)
        self._need(t, self.column)
        vec = hashing(_inputs.array(t, self.column), num_threads=self.threads(), **self.kw)
        return t.append_column(self.output_column, vec)


class TagRules(BatchUDF):
    """Appends ``tags`` (list<string>) and ``matches`` (list<struct<tag, rule, start, end>>)
    from regex and keyword rules over ``column`` (:func:`lakevec.tag.rules`)."""

    def __init__(
        self,
        column: str,
        regex: Mapping[str, Any] | None = None,
        keywords: Mapping[str, Any] | None = None,
        *,
        case_sensitive: bool = False,
    ):
        self.column = column
        self.regex = dict(regex or {})
        self.keywords = dict(keywords or {})
        self.case_sensitive = case_sensitive

    def __call__(self, batch: Any) -> pa.Table:
        from lakevec.tag import rules

        t = self._table(batch)
        r = rules(
            t, self.column, self.regex, self.keywords, case_sensitive=self.case_sensitive, num_threads=self.threads()
        )
        return t.append_column("tags", r.column("tags")).append_column("matches", r.column("matches"))


class TagKNN(BatchUDF):
    """Appends ``label``, ``confidence``, ``neighbor_files`` and ``neighbor_rows``: each
    row's vector ``column`` labelled by its ``k`` nearest rows in ``index`` (a
    :class:`lakevec.VectorIndex` or index URI over a table with ``label_column``), as
    :func:`lakevec.tag.knn`. The index is pinned to its version when this object is made,
    and opened once per worker process."""

    def __init__(
        self,
        index: Any,
        column: str,
        label_column: str,
        k: int = 10,
        *,
        weights: str = "uniform",
        min_confidence: float = 0.0,
        storage_options: Mapping[str, str] | None = None,
    ):
        self.index = _index_handle(index, storage_options)
        self.column, self.label_column, self.k = column, label_column, int(k)
        self.weights, self.min_confidence = weights, float(min_confidence)

    def __call__(self, batch: Any) -> pa.Table:
        from lakevec.tag import knn

        t = self._table(batch)
        r = knn(
            t,
            self.column,
            _worker_index(self.index),
            self.label_column,
            self.k,
            weights=self.weights,
            min_confidence=self.min_confidence,
            num_threads=self.threads(),
        )
        for name in ("label", "confidence", "neighbor_files", "neighbor_rows"):
            t = t.append_column(name, r.column(name))
        return t


class SearchIndex(BatchUDF):
    """The ``k`` nearest table rows to each row's vector ``column``, searched in ``index``
    (:meth:`lakevec.VectorIndex.search`; pinned and opened once per process as in
    :class:`TagKNN`). Output: one row per hit, nearest first: the batch's other columns
    (``passthrough``, default all but the vector), then ``rank``, ``distance``, ``_file``,
    ``_row``, the index key, and the fetched ``columns`` (a hit column named like a
    passthrough column is renamed ``hit_<name>``)."""

    def __init__(
        self,
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
        self.index = _index_handle(index, storage_options)
        self.column, self.k, self.ef, self.filter = column, int(k), ef, filter
        self.columns = list(columns) if columns is not None else None
        self.passthrough = list(passthrough) if passthrough is not None else None

    def __call__(self, batch: Any) -> pa.Table:
        t = self._table(batch)
        self._need(t, self.column)
        keep = self.passthrough if self.passthrough is not None else [c for c in t.column_names if c != self.column]
        self._need(t, *keep)
        from lakevec import _inputs

        hits = _worker_index(self.index).search(
            _inputs.array(t, self.column),
            self.k,
            ef=self.ef,
            filter=self.filter,
            columns=self.columns,
            num_threads=self.threads(),
        )
        q = hits.column("query")
        fields = [t.schema.field(c) for c in keep]
        arrays = [t.column(c).take(q) for c in keep]
        for f, col in zip(hits.schema, hits.columns):
            if f.name != "query":
                fields.append(f.with_name(hit_name(f.name, keep)))
                arrays.append(col)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def hit_name(name: str, passthrough: Sequence[str]) -> str:
    """A hit column's output name: ``hit_<name>`` when a passthrough column has its name."""
    return f"hit_{name}" if name in passthrough else name


# ------------------------------------------------------------------ Arrow helpers
def signatures_to_binary(sig: pa.Array) -> pa.Array:
    """``FixedSizeList<uint32, p>`` -> ``binary`` (4p little-endian bytes per row; nulls
    kept): for engines without unsigned types (Spark)."""
    if isinstance(sig, pa.ChunkedArray):
        sig = sig.combine_chunks()
    p = sig.type.list_size
    n = len(sig)
    flat = sig.values.to_numpy(zero_copy_only=False)[sig.offset * p : (sig.offset + n) * p].astype("<u4", copy=False)
    offsets = np.arange(n + 1, dtype=np.int32) * (4 * p)
    validity = None
    if sig.null_count:
        validity = pa.array(sig.is_valid().to_numpy(zero_copy_only=False)).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(flat.tobytes())])


def binary_to_signatures(b: pa.Array, num_perm: int) -> pa.FixedSizeListArray:
    """Inverse of :func:`signatures_to_binary` (rows must be ``4 * num_perm`` bytes; a null
    row stays null): the binary data buffer viewed as uint32, no per-row copy."""
    if isinstance(b, pa.ChunkedArray):
        b = b.combine_chunks()
    b = b.cast(pa.binary())
    width = 4 * num_perm
    valid = b.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.binary_length(b), width).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        raise InvalidArgumentError(f"signature {bad[0]} has {lengths[bad[0]]} bytes, expected {width}")
    if not valid.all():  # null rows hold no bytes: give them zeros so every row is `width` long
        b = pc.if_else(pc.is_valid(b), b, pa.scalar(bytes(width), pa.binary()))
    offsets = np.frombuffer(b.buffers()[1], np.int32, len(b) + 1, b.offset * 4)
    flat = np.frombuffer(b.buffers()[2], np.uint8, offsets[-1] - offsets[0], offsets[0]).view("<u4")
    mask = pa.array(~valid) if not valid.all() else None
    ty = pa.list_(pa.field("item", pa.uint32(), nullable=False), num_perm)  # as minhash_signatures
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint32()), type=ty, mask=mask)


def spark_compatible(t: pa.Table) -> pa.Table:
    """Columns Spark's Arrow conversion accepts: ``FixedSizeList<uint32>`` signatures as
    binary, other fixed-size lists as lists, unsigned integers widened to int64."""
    cols, names = [], []
    for name, col in zip(t.column_names, t.columns):
        ty = col.type
        if pa.types.is_fixed_size_list(ty) and pa.types.is_uint32(ty.value_type):
            col = signatures_to_binary(col)
        elif pa.types.is_fixed_size_list(ty):
            col = col.cast(pa.list_(ty.value_type))
        elif pa.types.is_unsigned_integer(ty):
            col = col.cast(pa.int64())
        cols.append(col)
        names.append(name)
    return pa.Table.from_arrays(cols, names=names)


# ------------------------------------------------------------------ worker errors
_LAKEVEC_ERROR = re.compile(r"lakevec\.exceptions\.(\w+): ([^\n]*)")


def as_lakevec_error(e: BaseException) -> BaseException | None:
    """The lakevec exception an engine's wrapper exception reports, rebuilt (same class,
    same message): found in the text of Spark's ``PythonException`` or Ray's
    ``RayTaskError``/``UserCodeException`` (the last one named there). ``None`` when ``e``
    is already a lakevec error or names none."""
    from lakevec import exceptions

    if isinstance(e, exceptions.LakevecError) and type(e).__module__ == "lakevec.exceptions":
        return None
    found = _LAKEVEC_ERROR.findall(str(e))
    if not found:
        return None
    name, message = found[-1]
    cls = getattr(exceptions, name, None)
    if not (isinstance(cls, type) and issubclass(cls, exceptions.LakevecError)):
        return None
    return cls(message.strip())


@contextlib.contextmanager
def worker_errors():
    """Re-raise a lakevec exception raised in a worker (a Spark Python worker, a Ray task or
    ``map_batches`` UDF) as itself, same class and message, chained to the engine's
    exception, instead of the engine's wrapper::

        with lakevec.spark.worker_errors():   # or lakevec.ray.worker_errors()
            df.mapInArrow(*lakevec.spark.tag_rules(df.schema, "text", keywords=k)).collect()

    Other exceptions pass unchanged.
    """
    try:
        yield
    except Exception as e:
        mapped = as_lakevec_error(e)
        if mapped is None:
            raise
        raise mapped from e


def with_worker_errors(fn):
    """Decorator: run ``fn`` under :func:`worker_errors`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with worker_errors():
            return fn(*args, **kwargs)

    return wrapper
