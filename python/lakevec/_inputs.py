"""Input handling shared by the dedup, tagging and search entry points.

Every entry point takes a :class:`lakevec.Table` or a table URI (results then carry ``_file``
and ``_row``), or in-memory data: a ``pyarrow.Table``/``RecordBatch``, a pandas or polars
DataFrame, or anything with ``__arrow_c_stream__`` (results then carry ``row``, the 0-based
input position). For a pandas input the result is a DataFrame aligned to its index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakevec.exceptions import InvalidArgumentError, SchemaError, VectorError
from lakevec.table import Table


@dataclass
class Input:
    data: pa.Table  # the requested columns
    ids: pa.Table  # ("row",) or ("_file", "_row")
    pandas_index: Any = None


def load(data: Any, columns: Sequence[str], storage_options=None) -> Input:
    """Read ``columns`` of ``data`` (see the module docs)."""
    columns = list(columns)
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        data = Table.open(str(data), storage_options)
    if isinstance(data, Table):
        t = data.to_arrow(columns=columns, with_row_address=True)
        return Input(t.select(columns), t.select(["_file", "_row"]))
    index = data.index if _is_pandas(data) else None
    t = to_table(data)
    missing = [c for c in columns if c not in t.column_names]
    if missing:
        raise SchemaError(f"column(s) {missing} not found (columns: {t.column_names})")
    return Input(t.select(columns), pa.table({"row": pa.array(range(t.num_rows), pa.int64())}), index)


def to_table(data: Any) -> pa.Table:
    """In-memory data (pyarrow Table/RecordBatch, pandas, polars, an Arrow stream, a dict of
    columns) as a ``pyarrow.Table``."""
    if _is_pandas(data):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "__arrow_c_stream__") or isinstance(data, dict):
        return pa.table(data)
    raise TypeError(f"data must be a lakevec.Table, a URI, or Arrow/pandas/polars data, not {type(data).__name__}")


def _is_pandas(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("pandas") and hasattr(x, "index") and hasattr(x, "columns")


def array(t: pa.Table, column: str) -> pa.Array:
    col = t.column(column)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def finish(inp: Input, result: pa.Table):
    """Prepend the row ids; a pandas input gets a DataFrame on its own index."""
    out = pa.Table.from_arrays(
        list(inp.ids.columns) + list(result.columns), names=inp.ids.column_names + result.column_names
    )
    if inp.pandas_index is not None:
        df = out.to_pandas()
        df.index = inp.pandas_index
        return df
    return out


def is_float32_matrix(x: Any) -> bool:
    """Whether ``x`` is a C-contiguous float32 numpy vector or 2-D array with rows of at least
    one value (what the core reads directly as queries)."""
    return (
        type(x) is np.ndarray
        and x.dtype == np.float32
        and 1 <= x.ndim <= 2
        and x.shape[-1] > 0
        and x.flags.c_contiguous
    )


def queries(queries: Any, dim: int) -> pa.Array:
    """Query vectors (one vector, a 2-D array ``(n, dim)``, an Arrow array / chunked array /
    one-column table of FixedSizeList or List of floats) as an Arrow array of float vectors
    (``dim`` is checked by the search itself).

    Raises:
        InvalidArgumentError: a table with more than one column. VectorError: not numbers,
        not 1-D or 2-D, or dimension 0.
    """
    if isinstance(queries, pa.ChunkedArray):
        queries = queries.combine_chunks()
    if isinstance(queries, pa.Array):
        return queries
    if hasattr(queries, "__arrow_c_array__") and not isinstance(queries, np.ndarray):
        return pa.array(queries)
    if hasattr(queries, "__arrow_c_stream__") and not isinstance(queries, np.ndarray):
        t = pa.table(queries)
        if t.num_columns != 1:
            raise InvalidArgumentError(f"queries given as a table must have one vector column, got {t.column_names}")
        return t.column(0).combine_chunks()
    try:
        a = np.asarray(queries, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise VectorError(f"queries must be vectors of numbers: {e}") from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise VectorError(f"queries must be one vector or a 2-D array, got shape {a.shape}")
    if a.shape[1] == 0:
        raise VectorError("queries have dimension 0")
    a = np.ascontiguousarray(a)
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def segment_rows(max_segment_rows: int | None) -> int | None:
    """``max_segment_rows`` as a positive int; None stays None.

    Raises:
        InvalidArgumentError: a bool, or a value below 1 (where the core's extraction would
            raise ``OverflowError``/``TypeError``).
    """
    if max_segment_rows is not None and (isinstance(max_segment_rows, bool) or int(max_segment_rows) < 1):
        raise InvalidArgumentError(f"max_segment_rows must be >= 1, got {max_segment_rows!r}")
    return None if max_segment_rows is None else int(max_segment_rows)


def byte_size(value: int | str | None, what: str = "memory_limit") -> int | None:
    """``4_000_000_000``, ``"4GB"`` (powers of 10) or ``"4GiB"`` (powers of 2) as bytes; None
    stays None.

    Raises:
        InvalidArgumentError: not a non-negative size.
    """
    from .exceptions import InvalidArgumentError

    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a size in bytes or a string like '4GB', not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgumentError(f"{what} must not be negative, got {value}")
        return value
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidArgumentError(f"{what} must be a size in bytes or a string like '4GB', not {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
