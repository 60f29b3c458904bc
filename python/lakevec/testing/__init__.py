"""lakevec's pytest plugin: fixtures that make lake tables and an S3 endpoint for a test, and
assertions about indexes and dedup results.

Installed with lakevec, pytest loads it by itself (entry point ``pytest11``, name
``lakevec``; ``-p no:lakevec`` turns it off). In a test::

    from lakevec.testing import assert_recall

    def test_my_index(lake_table):
        t = lake_table(df, "delta", appends=[more], deletes=["id < 10"])
        idx = lakevec.build_index(t, "vector", key="id")
        assert_recall(idx, queries, k=10, at_least=0.95, ef=64)

    def test_on_s3(lake_table, s3_lake):
        t = lake_table(df, "iceberg", s3=s3_lake)      # opened with s3_lake.options()

Fixtures:
    ``lake_table``: a :class:`LakeTables` factory writing Delta (``deltalake``), Iceberg
    (``pyiceberg``, SQL catalog) or Parquet (pyarrow) tables under the test's ``tmp_path``.
    ``s3_lake``: a :class:`MotoS3` server on 127.0.0.1 checking credentials, one per test
    session, with a bucket; the test is skipped when moto is not installed.

Assertions (plain functions, usable outside pytest): :func:`assert_recall`,
:func:`assert_index_covers`, :func:`assert_same_clusters`.

``import lakevec`` does not import this module; importing it starts no thread and imports
``deltalake``, ``pyiceberg``, ``moto`` and ``boto3`` only when a fixture needs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lakevec.testing._asserts import assert_index_covers, assert_recall, assert_same_clusters
from lakevec.testing._s3 import MotoS3
from lakevec.testing._tables import LakeTables, to_arrow, write_parquet

__all__ = [
    "assert_recall",
    "assert_index_covers",
    "assert_same_clusters",
    "LakeTables",
    "MotoS3",
    "to_arrow",
    "write_parquet",
    "lake_table",
    "s3_lake",
]


@pytest.fixture
def lake_table(tmp_path) -> LakeTables:
    """A factory of lake tables under ``tmp_path / "lake"``:
    ``lake_table(data, format="delta"|"iceberg"|"parquet", *, name="t", appends=(),
    deletes=(), partition_by=None, s3=None) -> lakevec.Table``.

    ``data`` (Arrow, pandas, polars, a dict of columns) is the first version, each item of
    ``appends`` a later one, each SQL predicate of ``deletes`` (Delta, Iceberg; a
    ``ValueError`` for Parquet) one after those. Iceberg tables are in a SQLite SQL catalog
    (``lake_table.catalog_uri``, ``lake_table.iceberg_catalog``), as ``lake.db.<name>``.
    With ``s3=s3_lake`` the table is written to the moto bucket and opened with its
    credentials. See :meth:`LakeTables.__call__` for shapes and errors.
    """
    return LakeTables(tmp_path / "lake")


@pytest.fixture(scope="session")
def s3_lake() -> Iterator[MotoS3]:
    """A moto S3 server on 127.0.0.1 for the test session, checking credentials, with the
    bucket ``lake`` created: ``.endpoint``, ``.bucket``, ``.options()`` (storage options for
    lakevec, ``.options(secret="wrong")`` for a bad key), ``.upload_dir(local, prefix)``,
    ``.uri(prefix)``, ``.s3`` (a boto3 client). Skips the test when moto is not installed."""
    pytest.importorskip("moto", reason="the s3_lake fixture needs moto: pip install 'moto[server]'")
    pytest.importorskip("boto3", reason="the s3_lake fixture needs boto3")
    with MotoS3() as server:
        yield server
