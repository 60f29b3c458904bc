"""Small Delta, Iceberg and Parquet tables written for a test (the ``lake_table`` fixture)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pragma: no cover
    from lakevec.table import Table
    from lakevec.testing._s3 import MotoS3

FORMATS = ("delta", "iceberg", "parquet")
# Iceberg tables are "<CATALOG>.<NAMESPACE>.<name>" in the factory's SQL catalog.
CATALOG, NAMESPACE = "lake", "db"
# Between two versions of a table: Delta versions are timed by their log file's mtime, and
# a filesystem's clock may advance by a few milliseconds only; apart, each version has its
# own timestamp (time travel by timestamp picks every one).
VERSION_GAP = 0.05


def to_arrow(data: Any) -> pa.Table:
    """Arrow, pandas, polars (or any ``__arrow_c_stream__``) data, or a dict of columns, as a
    ``pyarrow.Table``; string/binary views (polars' strings) become large strings/binaries,
    which every writer takes.

    Raises:
        TypeError: anything else.
    """
    from lakevec._inputs import to_table

    t = to_table(data)
    views = {"string_view": pa.large_string(), "binary_view": pa.large_binary()}
    if not any(str(f.type) in views for f in t.schema):
        return t
    return t.cast(pa.schema([f.with_type(views.get(str(f.type), f.type)) for f in t.schema]))


def write_parquet(data: Any, path: str | os.PathLike, *, row_group_size: int | None = None) -> pa.Table:
    """Write ``data`` (see :func:`to_arrow`) as one Parquet file at ``path`` (parent folders
    made) with pyarrow, ``row_group_size`` rows per row group (default: pyarrow's); returns
    the ``pyarrow.Table`` written."""
    t = to_arrow(data)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, path, row_group_size=row_group_size)
    return t


def _needs(module: str, fmt: str, pip: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"lake_table(format='{fmt}') needs {module}: pip install '{pip}' ({e})") from e


class LakeTables:
    """The ``lake_table`` fixture: a factory of lake tables under the folder ``root``.

    ``LakeTables(root)(data, format, ...)`` writes a table and returns it opened as a
    :class:`lakevec.Table` (see :meth:`__call__`). Build one yourself for a module- or
    session-scoped fixture: ``LakeTables(tmp_path_factory.mktemp("lake"))``.

    Local tables live at ``root/<name>`` (Delta, Parquet) and under ``root/warehouse``
    (Iceberg, where pyiceberg puts them). Iceberg tables are registered in a pyiceberg
    SQL catalog (SQLite, ``root/catalog.db``) named ``"lake"``, namespace ``"db"``: open one
    by name with ``lakevec.Table.open("lake.db.<name>", catalog={"type": "sql", "uri":
    tables.catalog_uri})``, or get pyiceberg's table with
    ``tables.iceberg_catalog.load_table("db.<name>")``.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._names: set[str] = set()
        self._catalog = None

    @property
    def catalog_uri(self) -> str:
        """The SQLAlchemy URI of the Iceberg catalog (``sqlite:///<root>/catalog.db``)."""
        return f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def iceberg_catalog(self):
        """The pyiceberg ``SqlCatalog`` holding the Iceberg tables (made on first use).

        Raises:
            ImportError: pyiceberg (with its SQL catalog extra) is not installed.
        """
        if self._catalog is None:
            sql = _needs("pyiceberg.catalog.sql", "iceberg", "pyiceberg[sql-sqlite,pyarrow]")
            self.root.mkdir(parents=True, exist_ok=True)
            cat = sql.SqlCatalog(CATALOG, uri=self.catalog_uri, warehouse=(self.root / "warehouse").as_uri())
            cat.create_namespace(NAMESPACE)
            self._catalog = cat
        return self._catalog

    def __call__(
        self,
        data: Any,
        format: str = "delta",
        *,
        name: str = "t",
        appends: Sequence[Any] = (),
        deletes: Sequence[str] | str = (),
        partition_by: Sequence[str] | str | None = None,
        s3: MotoS3 | None = None,
    ) -> Table:
        """Write ``data`` as a table and return it opened with :meth:`lakevec.Table.open`.

        Versions: ``data`` is the first (Delta version 0, the first Iceberg snapshot, the
        Parquet file ``part-00000.parquet``), then one per item of ``appends``, then one per
        item of ``deletes``, ``VERSION_GAP`` (0.05 s) apart so each has its own timestamp.

        Args:
            data: a ``pyarrow.Table``/``RecordBatch``, pandas or polars DataFrame, anything
                with ``__arrow_c_stream__``, or a dict of columns (vector columns as
                ``FixedSizeList`` or ``List`` of floats, as lakevec indexes them).
            format: ``"delta"`` (written by the ``deltalake`` package), ``"iceberg"``
                (pyiceberg, SQL catalog; a ``FixedSizeList`` becomes an Iceberg ``list``) or
                ``"parquet"`` (a folder of files written by pyarrow: one per version).
            name: the table's name, unique among this factory's tables (folder name,
                Iceberg table ``lake.db.<name>``).
            appends: further data (same schema) appended as later versions, in order.
            deletes: SQL predicates (``"id < 5"``) whose rows are deleted, one version each,
                after the appends (Delta: ``DeltaTable.delete``; Iceberg: ``Table.delete``,
                pyiceberg's predicate syntax). Not for Parquet.
            partition_by: column name(s) to partition by (Delta partition columns, Iceberg
                identity partitions, Parquet hive ``key=value`` folders, which lakevec reads
                back after the file columns, integers as int32).
            s3: a :class:`MotoS3` (the ``s3_lake`` fixture): the table goes to its bucket
                under ``lake_table/<random>/<name>`` and is opened with its ``options()``
                (Delta and Parquet are written locally, then uploaded; Iceberg is written to
                S3 by pyiceberg).

        Returns:
            :class:`lakevec.Table` at the last version; ``.uri`` is where it is.

        Raises:
            ValueError: an unknown ``format``, an empty/used/path-like ``name``, ``deletes``
                for Parquet (a folder of files has no versions to delete in).
            TypeError: ``data`` or an item of ``appends`` is not table-like, or ``appends``
                is one table instead of a sequence.
            ImportError: ``deltalake`` (Delta) or ``pyiceberg`` (Iceberg) is not installed.
            Exception: what the writer raises for data it refuses (e.g. an append whose
                schema differs, a predicate naming an unknown column).
        """
        from lakevec.table import Table

        if format not in FORMATS:
            raise ValueError(f"lake_table: format must be one of {FORMATS}, not {format!r}")
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"lake_table: name must be a plain folder name, not {name!r}")
        if name in self._names:
            raise ValueError(f"lake_table: a table named {name!r} exists already here; pass another name=")
        if hasattr(appends, "__arrow_c_stream__") or isinstance(appends, (pa.Table, pa.RecordBatch, dict)):
            raise TypeError("lake_table: appends is a sequence of tables (appends=[more]), not one table")
        deletes = [deletes] if isinstance(deletes, str) else list(deletes)
        if deletes and format == "parquet":
            raise ValueError(
                "lake_table: a Parquet folder has no versions to delete rows in; "
                "use format='delta' or 'iceberg' for deletes, or leave the rows out of data"
            )
        parts = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
        versions = [to_arrow(data)] + [to_arrow(a) for a in appends]
        self._names.add(name)
        prefix = f"lake_table/{uuid.uuid4().hex[:12]}/{name}"
        if format == "iceberg":
            uri = self._iceberg(name, versions, deletes, parts, s3 and s3.uri(prefix), s3)
        else:
            path = self.root / name
            if format == "delta":
                self._delta(path, versions, deletes, parts)
            else:
                self._parquet(path, versions, parts)
            uri = s3.upload_dir(path, prefix) if s3 is not None else str(path)
        return Table.open(uri, s3.options() if s3 is not None else None)

    @staticmethod
    def _delta(path: Path, versions: list[pa.Table], deletes: list[str], parts: list[str]) -> None:
        deltalake = _needs("deltalake", "delta", "deltalake")
        deltalake.write_deltalake(str(path), versions[0], partition_by=parts or None)
        for t in versions[1:]:
            time.sleep(VERSION_GAP)
            deltalake.write_deltalake(str(path), t, mode="append")
        for predicate in deletes:
            time.sleep(VERSION_GAP)
            deltalake.DeltaTable(str(path)).delete(predicate)

    @staticmethod
    def _parquet(path: Path, versions: list[pa.Table], parts: list[str]) -> None:
        import pyarrow.dataset as ds

        path.mkdir(parents=True)
        for i, t in enumerate(versions):
            if parts:
                ds.write_dataset(
                    t,
                    path,
                    format="parquet",
                    partitioning=parts,
                    partitioning_flavor="hive",
                    basename_template=f"part-{i:05d}-{{i}}.parquet",
                    existing_data_behavior="overwrite_or_ignore",
                )
            else:
                write_parquet(t, path / f"part-{i:05d}.parquet")

    def _iceberg(
        self,
        name: str,
        versions: list[pa.Table],
        deletes: list[str],
        parts: list[str],
        location: str | None,
        s3: MotoS3 | None,
    ) -> str:
        cat = self.iceberg_catalog
        if s3 is not None:  # the catalog's FileIO reaches the moto server with these
            cat.properties.update(s3.iceberg_properties())
        ident = f"{NAMESPACE}.{name}"
        t = cat.create_table(ident, schema=versions[0].schema, location=location)
        if parts:
            with t.update_spec() as u:
                for c in parts:
                    u.add_identity(c)
            t = cat.load_table(ident)
        for i, data in enumerate(versions):
            if i:
                time.sleep(VERSION_GAP)
            t.append(data)
        for predicate in deletes:
            time.sleep(VERSION_GAP)
            t.delete(predicate)
        return cat.load_table(ident).location()
