"""Lake tables as Arrow: :class:`Table`, :func:`read_table` and :func:`sql`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakevec import _lakevec
from lakevec._cache import ProcessCache
from lakevec.exceptions import InvalidArgumentError

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
    """A lake table opened for reading: a Delta Lake or Apache Iceberg table, a Parquet
    file, a folder of Parquet files or a glob.

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

    A folder holding ``_delta_log/`` is read as a Delta table through delta-rs: the current
    version or the one pinned by ``version=``/``timestamp=``, checkpoints, column mapping,
    partition columns, and deletion vectors applied (deleted rows are never returned). A
    table whose protocol needs a reader feature delta-rs does not implement is refused with
    :class:`~lakevec.exceptions.UnsupportedFeatureError` naming it.

    A folder holding ``metadata/`` with ``*.metadata.json`` (or the path of such a file, or a
    name in an Iceberg catalog) is read as an Iceberg table through iceberg-rust: the current
    snapshot or the one pinned by ``snapshot_id=``/``timestamp=``, columns matched by field
    id (renamed and added columns), partition pruning, position and equality deletes
    applied. Its :attr:`version` is the snapshot id. Paths under a relative or moved table
    ``location`` are read under the folder the table was opened from.

    ``format="parquet"`` reads any table's data files as plain Parquet, ignoring its log.
    A pickled table carries the version it was opened at.

    Opening a Delta table replays its log and nothing more. The checks of its data files
    (every path in the table's store, every deletion vector read and checked against its
    file's footer) and the live row count run once, on the first call that needs them: a
    read, a scan, :meth:`files`, :attr:`num_rows`, SQL or an index build. A bad file fails
    that call, with its name in the error.

    What a table keeps resident: the snapshot it opened (Delta: the log replayed once, at
    open; later reads use it and never replay the log again, so they do not see newer
    commits until the table is opened again), a Delta table's deleted row positions once
    checked (8 bytes a row), and the Parquet footers and page indexes its reads decoded (an
    LRU cache of at most 32 MiB per table, so repeated reads skip them).

    Every row has an address (``_file``, ``_row``): its data file's ``path`` as listed by
    :meth:`files` and its 0-based position in that file (the position deletion vectors and
    position deletes use). ``to_arrow(with_row_address=True)`` adds those columns and
    :meth:`take` fetches rows by address.
    """

    __slots__ = ("_inner", "_format_arg")

    def __init__(self, inner: _lakevec.Table, format: str | None = None) -> None:
        self._inner = inner
        self._format_arg = format

    @classmethod
    def open(
        cls,
        uri: str | Table,
        storage_options: StorageOptions | None = None,
        *,
        format: str | None = None,
        version: int | None = None,
        timestamp: str | None = None,
        snapshot_id: int | None = None,
        catalog: Mapping[str, str] | None = None,
    ) -> Table:
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
            format: ``"delta"``, ``"iceberg"`` or ``"parquet"``; default: detected
                (``_delta_log/`` means Delta, ``metadata/*.metadata.json`` Iceberg).
                ``"parquet"`` reads a table's data files without its log.
            version: Delta version, or Iceberg snapshot id, to read (default: the latest).
            timestamp: RFC 3339 time (``"2024-05-01T00:00:00Z"``): read the latest version
                (snapshot) committed at or before it.
            snapshot_id: Iceberg snapshot id (same as ``version`` for Iceberg).
            catalog: resolve ``uri`` (``"catalog_name.namespace.table"``) in an Iceberg
                catalog instead of opening a path: ``{"type": "sql", "uri":
                "sqlite:///catalog.db"}`` (the SQL catalog of pyiceberg and Java Iceberg,
                table ``iceberg_tables``; other SQLAlchemy URIs need SQLAlchemy). See
                :func:`lakevec.catalog.resolve`.

        Raises:
            TableNotFoundError: the path does not exist, or a folder holds no Parquet file.
            CorruptFileError: a file is not valid Parquet (named in the message).
            StoragePermissionError: the store refused the credentials.
            StorageError: any other storage failure.
            UnsupportedFeatureError: a Delta table needing an unsupported reader feature, or
                an Iceberg table (not read by this version).
            InvalidArgumentError: a malformed URI, an unknown storage option, a bad
                timestamp, or ``version``/``timestamp`` for a plain Parquet table.
        """
        if isinstance(uri, Table):
            return uri
        if snapshot_id is not None:
            if version is not None and version != snapshot_id:
                raise InvalidArgumentError("pass version or snapshot_id, not both")
            version = snapshot_id
        if catalog is not None:
            from lakevec.catalog import resolve

            uri = resolve(str(uri), catalog)
            format = format or "iceberg"
        opts = {str(k): str(v) for k, v in (storage_options or {}).items()}
        inner = _lakevec.Table.open(str(uri), opts, format, version, timestamp)
        return cls(inner, format)

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
        """Live rows in the table, from metadata (Parquet footers; the Delta log's record
        counts minus deletion-vector cardinalities, counted on first access with the data
        file checks, or by a scan when a file has no count)."""
        return self._inner.num_rows

    @property
    def version(self) -> int | None:
        """The version read: the Delta version or the Iceberg snapshot id (``None`` for
        plain Parquet and for an Iceberg table without snapshots)."""
        return self._inner.version

    def history(self) -> pa.Table:
        """The commit (Delta) or snapshot (Iceberg) history, newest first: ``version``
        (int64; the Iceberg snapshot id), ``timestamp`` (int64, ms since the epoch),
        ``operation`` and ``operation_parameters`` (JSON text: Delta's operation parameters,
        Iceberg's snapshot summary); Iceberg adds ``parent_version``.

        Raises:
            InvalidArgumentError: the table is plain Parquet (no history).
        """
        return self._inner.history()

    def files(self) -> pa.Table:
        """The live data files, one row each.

        Returns:
            ``pyarrow.Table``, same columns for every format: ``path`` (string, relative to
            the table root when the file lies under it; the file name for a single-file
            Parquet table), ``size`` (int64, bytes), ``num_records`` (int64, rows before
            deletes; null when the Delta log has no statistics), ``num_deleted`` (int64),
            ``deleted_rows`` (list<int64>: sorted 0-based positions removed by deletion
            vectors or position deletes) and ``partition`` (string, JSON object of the raw
            partition values). For a file with Iceberg equality deletes, ``num_deleted``
            and ``deleted_rows`` are null: its deleted rows are known only by value.
        """
        return self._inner.files()

    def take(
        self,
        addresses: Any,
        columns: Sequence[str] | None = None,
        *,
        num_threads: int | None = None,
    ) -> pa.Table:
        """Fetch rows by address, in the order given.

        Each data file is read once, with a row selection: only the row groups (and pages,
        when the file has a page index) holding the wanted rows are fetched.

        Args:
            addresses: anything with ``_file`` and ``_row`` columns (a ``pyarrow.Table`` or
                ``RecordBatch``, a pandas or polars DataFrame, a dict of lists, e.g. the
                output of ``to_arrow(with_row_address=True)`` or of an index search), or a
                list of ``(file, row)`` pairs.
            columns: columns to return (default: all), followed by ``_file`` and ``_row``.
            num_threads: files read concurrently (x2).

        Returns:
            ``pyarrow.Table`` with one row per address, in input order.

        Raises:
            InvalidArgumentError: a file is not a live data file of this version, a row is
                out of range, or a row is deleted in this version (each named).
            UnsupportedFeatureError: a file has Iceberg equality deletes.
            SchemaError: an unknown column.
        """
        files, rows = _addresses(addresses)
        return self._inner.take(files, rows, _columns(columns), num_threads)

    def changes(self, from_version: int, to_version: int | None = None) -> pa.Table:
        """Data files that changed between two versions of this table.

        The two versions' live files (with their deletes) are compared: for Delta this
        equals replaying the log's add/remove actions, for Iceberg it is a snapshot diff.

        Args:
            from_version: the older Delta version or Iceberg snapshot id.
            to_version: the newer one (default: the version this table was opened at).

        Returns:
            ``pyarrow.Table``: ``path`` (string), ``change`` (``"added"``, ``"removed"`` or
            ``"deletes_changed"``), ``num_records`` (int64), ``newly_deleted``
            (list<int64>: positions deleted in ``to_version`` but not in ``from_version``;
            for an added file, its deleted positions; null under equality deletes).

        Raises:
            InvalidArgumentError: a plain Parquet table (no versions).
            TableNotFoundError: a version that does not exist (or was vacuumed).
        """
        if self.format == "parquet":
            raise InvalidArgumentError(f"{self.uri!r} is a plain Parquet table: it has no versions")
        old = self._inner.at_version(from_version)
        new = self._inner if to_version is None or to_version == self.version else self._inner.at_version(to_version)
        return new.changes_since(old)

    # ---------------------------------------------------------------- reads
    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
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
            with_row_address: add ``_file`` (string) and ``_row`` (int64) after the
                columns: each row's data file and 0-based position in it. Files are then
                read whole, one per thread, in file order, and ``filter`` is applied after
                positions are assigned (no statistics pruning). Iceberg files with equality
                deletes cannot be addressed (``UnsupportedFeatureError``).

        Raises:
            SchemaError: a column in ``columns`` does not exist (named in the message).
            FilterError: ``filter`` does not parse, names an unknown column or is not boolean.
            CorruptFileError, StorageError, TableNotFoundError: as for :meth:`open`.
        """
        return self._inner.to_arrow(_columns(columns), filter, None, num_threads, limit, with_row_address)

    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        *,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
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
        return self._inner.scan(_columns(columns), filter, batch_size, num_threads, limit, with_row_address)

    def to_pandas(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        **to_pandas_kwargs: Any,
    ) -> pandas.DataFrame:
        """Read into a ``pandas.DataFrame`` (needs pandas: ``pip install lakevec[pandas]``)."""
        return self.to_arrow(columns, filter).to_pandas(**to_pandas_kwargs)

    def to_polars(self, columns: Sequence[str] | None = None, filter: str | None = None) -> polars.DataFrame:
        """Read into a ``polars.DataFrame`` (needs polars: ``pip install lakevec[polars]``)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns, filter))

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule stream of all rows (all columns, file order)."""
        return self._inner.__arrow_c_stream__(requested_schema)

    # ---------------------------------------------------------------- misc
    def __repr__(self) -> str:
        return repr(self._inner)

    def _repr_html_(self) -> str:
        """Jupyter display: URI, format, version, rows, files and bytes, schema (metadata only)."""
        from lakevec._html import table_html

        return table_html(self)

    def __len__(self) -> int:
        return self.num_rows

    def __reduce__(self):
        # A small handle: URI, format, the version read, options without credentials.
        return (
            _reopen,
            (
                self.uri,
                dict(self._inner.public_storage_options()),
                self._format_arg,
                self.version,
            ),
        )


def _addresses(addresses: Any) -> tuple[list[str], list[int]]:
    """(files, rows) from an address table, a mapping or (file, row) pairs."""
    if isinstance(addresses, Mapping):
        return [str(f) for f in addresses["_file"]], [int(r) for r in addresses["_row"]]
    if hasattr(addresses, "__arrow_c_stream__") or hasattr(addresses, "__arrow_c_array__"):
        t = pa.table(addresses) if not isinstance(addresses, (pa.Table, pa.RecordBatch)) else addresses
        if "_file" not in t.column_names or "_row" not in t.column_names:
            raise InvalidArgumentError(f"addresses need '_file' and '_row' columns, got {t.column_names}")
        return t.column("_file").to_pylist(), t.column("_row").to_pylist()
    if hasattr(addresses, "columns") and hasattr(addresses, "__getitem__"):  # pandas
        return [str(f) for f in addresses["_file"]], [int(r) for r in addresses["_row"]]
    pairs = list(addresses)
    return [str(f) for f, _ in pairs], [int(r) for _, r in pairs]


_TABLES = ProcessCache(limit=32)


def _reopen(uri: str, storage_options: dict, format: str | None, version: int | None = None) -> Table:
    """Unpickle: reopen the table. A pinned version (Delta, Iceberg) is opened once per
    process; a plain Parquet table (no version) is listed again each time."""
    if version is None:
        return Table.open(uri, storage_options, format=format)
    key = (uri, tuple(sorted(storage_options.items())), format, version)
    return _TABLES.get(key, lambda: Table.open(uri, storage_options, format=format, version=version))


def read_table(
    uri: str,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    *,
    storage_options: StorageOptions | None = None,
    format: str | None = None,
    version: int | None = None,
    timestamp: str | None = None,
    num_threads: int | None = None,
) -> pa.Table:
    """Read a lake table into a ``pyarrow.Table`` in one call.

    Equivalent to ``Table.open(uri, storage_options, format=format, version=version,
    timestamp=timestamp).to_arrow(columns, filter, num_threads=num_threads)``; see
    :class:`Table` for the arguments and errors.
    """
    return Table.open(uri, storage_options, format=format, version=version, timestamp=timestamp).to_arrow(
        columns, filter, num_threads=num_threads
    )


TableLike = str | Table | Any


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
            raise TypeError(f"tables[{name!r}] must be a URI, a lakevec.Table or Arrow data, not {type(obj).__name__}")
    return _lakevec.sql(query, lake, arrow, num_threads)
