"""Lake tables as Arrow: :class:`Table`, :func:`read_table` and :func:`sql`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

import pyarrow as pa

from lakevec import _lakevec

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars

__all__ = ["Table", "read_table", "sql"]

StorageOptions = Mapping[str, str]


def _columns(columns: Sequence[str] | str | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        return [columns]
    return [str(c) for c in columns]


class Table:
    """A lake table opened for reading: a Parquet file, a folder of Parquet files or a glob.

    Open with :meth:`Table.open` (or :func:`lakevec.read_table` for a one-line read). Reads
    return Arrow data through the Arrow PyCapsule interface, so pyarrow, polars and duckdb
    take them without copies; a ``Table`` itself exports ``__arrow_c_stream__``, so
    ``pyarrow.table(t)``, ``polars.DataFrame(t)`` and ``duckdb.sql("select * from t")`` work.

    Folders are listed recursively; as in pyarrow, path components starting with ``_`` or
    ``.`` are skipped, and only ``*.parquet``, ``*.parq`` and ``*.pq`` files are data files.
    Hive-style ``key=value`` folders become columns after the file columns, typed ``int32``
    when every value fits, else ``int64`` or ``string`` (pyarrow types them
    ``dictionary<int32, ...>``; lakevec returns the plain type). Rows come back in file
    order (files sorted by path), like :func:`pyarrow.parquet.read_table`.

    Opening reads every file's footer (concurrently), so :attr:`num_rows` and :meth:`files`
    are free and a truncated or non-Parquet file fails at open with its name in the error.
    A pickled ``Table`` is a small handle (URI, format and non-secret storage options) that
    reopens the table in the receiving process; credentials are never pickled and must come
    from that process's environment.

    Folders holding ``_delta_log/`` (Delta Lake) or Iceberg ``metadata/`` are refused with
    :class:`~lakevec.exceptions.UnsupportedFeatureError` unless ``format="parquet"`` is
    given, because reading their data files without the log returns removed and deleted rows.
    """

    __slots__ = ("_inner", "_format_arg")

    def __init__(self, inner: _lakevec.Table, format: str | None = None) -> None:
        self._inner = inner
        self._format_arg = format

    @classmethod
    def open(
        cls,
        uri: str | "Table",
        storage_options: StorageOptions | None = None,
        *,
        format: str | None = None,
    ) -> "Table":
        """Open the table at ``uri``.

        Args:
            uri: a local path (relative or absolute), ``file://``, ``s3://``, ``gs://``,
                ``az://``/``abfss://`` or ``memory://`` URI, to a Parquet file, a folder or a
                glob (``s3://bucket/data/*/part-*.parquet``).
            storage_options: object-store options with object_store/delta-rs key names
                (``aws_access_key_id``, ``aws_secret_access_key``, ``aws_endpoint``,
                ``aws_region``, ``aws_allow_http``, ``google_service_account``,
                ``azure_storage_account_name``, ...); the standard ``AWS_*``, ``GOOGLE_*``
                and ``AZURE_*`` environment variables are read too.
            format: ``"parquet"`` forces a plain Parquet read; default: detected.

        Raises:
            TableNotFoundError: the path does not exist, or a folder holds no Parquet file.
            CorruptFileError: a file is not valid Parquet (named in the message).
            StoragePermissionError: the store refused the credentials.
            StorageError: any other storage failure.
            UnsupportedFeatureError: a Delta or Iceberg table (not read by this version).
            InvalidArgumentError: a malformed URI or an unknown storage option.
        """
        if isinstance(uri, Table):
            return uri
        opts = {str(k): str(v) for k, v in (storage_options or {}).items()}
        return cls(_lakevec.Table.open(str(uri), opts, format), format)

    # ---------------------------------------------------------------- metadata
    @property
    def uri(self) -> str:
        """The table's URI as given (credentials removed)."""
        return self._inner.uri

    @property
    def format(self) -> str:
        """``"parquet"``, ``"delta"`` or ``"iceberg"``."""
        return self._inner.format

    @property
    def schema(self) -> pa.Schema:
        """The table's Arrow schema: merged file columns, then partition columns."""
        return self._inner.schema()

    @property
    def num_rows(self) -> int:
        """Total rows in the table (from the file footers; no data is read)."""
        return self._inner.num_rows

    def files(self) -> pa.Table:
        """The data files, one row each, in read order.

        Returns:
            ``pyarrow.Table`` with ``path`` (string, relative to the table root; the file name
            for a single-file table), ``size`` (int64, bytes), ``num_records`` (int64),
            ``num_row_groups`` (int32) and one ``partition.<key>`` column per partition key.
        """
        return self._inner.files()

    # ---------------------------------------------------------------- reads
    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        num_threads: int | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Read the table (or the selected columns and rows) into a ``pyarrow.Table``.

        The read releases the GIL, decodes row groups on ``num_threads`` threads (default:
        ``lakevec.default_num_threads()``) and can be interrupted with Ctrl-C.

        Args:
            columns: column names to return, in this order (default: all).
            filter: a SQL boolean expression over the table's columns, e.g.
                ``"year >= 2020 AND section = 'games'"`` (DataFusion SQL). Partition columns
                prune whole files, other columns prune row groups by their statistics,
                then the expression is evaluated on the rows.
            num_threads: decoding parallelism.
            limit: return at most this many rows.

        Raises:
            SchemaError: a column in ``columns`` does not exist (named in the message).
            FilterError: ``filter`` does not parse, names an unknown column or is not boolean.
            CorruptFileError, StorageError, TableNotFoundError: as for :meth:`open`.
        """
        return self._inner.to_arrow(_columns(columns), filter, None, num_threads, limit)

    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        *,
        num_threads: int | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader:
        """Stream the table as a ``pyarrow.RecordBatchReader``, in file order, with bounded
        memory: each decoding thread keeps about 16 MiB of batches ahead of the consumer,
        plus the compressed row group it is decoding, however large the table.

        Args:
            batch_size: maximum rows per batch. Default: up to 65,536 rows, fewer for wide
                rows, so that a batch holds about 8 MiB of decoded data (a 384-d float32
                vector column gives ~5,000-row batches). Batches never span files or row
                groups, so they may be shorter.

        The reader is also an Arrow PyCapsule stream (``__arrow_c_stream__``). Other arguments
        and errors as in :meth:`to_arrow`.
        """
        return self._inner.scan(_columns(columns), filter, batch_size, num_threads, limit)

    def to_pandas(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        **to_pandas_kwargs: Any,
    ) -> "pandas.DataFrame":
        """Read into a ``pandas.DataFrame`` (needs pandas: ``pip install lakevec[pandas]``)."""
        return self.to_arrow(columns, filter).to_pandas(**to_pandas_kwargs)

    def to_polars(
        self, columns: Sequence[str] | None = None, filter: str | None = None
    ) -> "polars.DataFrame":
        """Read into a ``polars.DataFrame`` (needs polars: ``pip install lakevec[polars]``)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns, filter))

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule stream of all rows (all columns, file order)."""
        return self._inner.__arrow_c_stream__(requested_schema)

    # ---------------------------------------------------------------- misc
    def __repr__(self) -> str:
        return repr(self._inner)

    def __len__(self) -> int:
        return self.num_rows

    def __reduce__(self):
        return (
            _reopen,
            (self.uri, dict(self._inner.public_storage_options()), self._format_arg),
        )


def _reopen(uri: str, storage_options: dict, format: str | None) -> Table:
    return Table.open(uri, storage_options, format=format)


def read_table(
    uri: str,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    *,
    storage_options: StorageOptions | None = None,
    format: str | None = None,
    num_threads: int | None = None,
) -> pa.Table:
    """Read a lake table into a ``pyarrow.Table`` in one call.

    Equivalent to ``Table.open(uri, storage_options, format=format).to_arrow(columns,
    filter, num_threads=num_threads)``; see :class:`Table` for the arguments and errors.
    """
    return Table.open(uri, storage_options, format=format).to_arrow(
        columns, filter, num_threads=num_threads
    )


TableLike = Union[str, Table, Any]


def sql(
    query: str,
    tables: Mapping[str, TableLike],
    *,
    storage_options: StorageOptions | None = None,
    num_threads: int | None = None,
) -> pa.Table:
    """Run a DataFusion SQL query over lake tables and return a ``pyarrow.Table``.

    Args:
        query: SQL (DataFusion dialect; identifiers are case-sensitive, quote them with
            double quotes when they contain capitals or spaces).
        tables: maps the names used in ``query`` to a URI, a :class:`Table`, or in-memory
            Arrow data (anything with ``__arrow_c_stream__``: pyarrow, polars, ...).
        storage_options: used to open the URIs in ``tables``.
        num_threads: execution parallelism.

    Raises:
        SqlError: the query fails to parse or plan (the message says why).
        and the errors of :meth:`Table.open` for URIs.

    Example:
        >>> lakevec.sql("SELECT section, count(*) AS n FROM t GROUP BY section",
        ...             tables={"t": "data/debian.parquet"})
    """
    lake: list[tuple[str, _lakevec.Table]] = []
    arrow: list[tuple[str, Any]] = []
    for name, obj in tables.items():
        if isinstance(obj, Table):
            lake.append((name, obj._inner))
        elif isinstance(obj, (str,)) or hasattr(obj, "__fspath__"):
            lake.append((name, Table.open(str(obj), storage_options)._inner))
        elif hasattr(obj, "__arrow_c_stream__"):
            arrow.append((name, obj))
        else:
            raise TypeError(
                f"tables[{name!r}] must be a URI, a lakevec.Table or Arrow data, "
                f"not {type(obj).__name__}"
            )
    return _lakevec.sql(query, lake, arrow, num_threads)
