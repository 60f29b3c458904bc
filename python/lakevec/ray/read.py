"""Lake tables as Ray Datasets: :func:`read_table` (a :class:`LakeDatasource` over one pinned
table version, read by Ray tasks) and :func:`to_arrow` (a Dataset's rows on the driver)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from lakevec import _dist
from lakevec.exceptions import SchemaError, UnsupportedFeatureError
from lakevec.ray.udf import granted_cpus
from lakevec.table import Table

__all__ = ["LakeDatasource", "read_table", "to_arrow"]


def to_arrow(ds: ray.data.Dataset) -> pa.Table:
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

    def __init__(
        self,
        table: Table,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        with_row_address: bool = False,
        with_position: bool = False,
        max_rows_per_task: int | None = None,
    ):
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

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context=None
    ) -> list[ReadTask]:
        args = (self.columns, self.filter, self.with_row_address, self.with_position)
        if self._by_value:
            rows = None if self.filter else self.table.num_rows
            meta = BlockMetadata(num_rows=rows, size_bytes=self._bytes, input_files=None, exec_stats=None)
            return [ReadTask(functools.partial(_read, self.table, None, *args), meta, schema=self.schema)]
        tasks = []
        for plan in _dist.plan_read(self.table, parallelism, max_rows_per_task=self.max_rows_per_task):
            meta = BlockMetadata(
                num_rows=None if self.filter else plan.rows,
                size_bytes=plan.bytes,
                input_files=plan.files,
                exec_stats=None,
            )
            tasks.append(
                ReadTask(
                    functools.partial(_read, self.table, plan, *args),
                    meta,
                    schema=self.schema,
                    per_task_row_limit=per_task_row_limit,
                )
            )
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
) -> ray.data.Dataset:
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
