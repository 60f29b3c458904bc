"""Arrow crosses the boundary through the PyCapsule interface, without copies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import lakevec

from conftest import make_vector_table


@pytest.fixture()
def table(tmp_path):
    make_vector_table(tmp_path / "t.parquet", rows=5000, dim=8)
    return lakevec.Table.open(str(tmp_path / "t.parquet"))


def _addr(arr: pa.Array) -> int:
    return arr.buffers()[1].address


def test_table_exports_c_stream(table):
    capsule = table.__arrow_c_stream__()
    assert type(capsule).__name__ == "PyCapsule"
    reader = pa.RecordBatchReader.from_stream(table)
    assert reader.read_all().num_rows == 5000
    assert pa.table(table).num_rows == 5000


def test_polars_shares_buffers(table):
    pl = pytest.importorskip("polars")
    at = table.to_arrow(columns=["x"]).combine_chunks()
    chunk = at["x"].chunks[0]
    s = pl.from_arrow(at)["x"]
    # polars took the Arrow buffer as is: its values are at the same address.
    assert s.to_numpy().__array_interface__["data"][0] == _addr(chunk)
    assert pl.DataFrame(table).height == 5000


def test_pyarrow_table_is_not_copied(table):
    at = table.to_arrow(columns=["x"])
    again = pa.table(at)
    assert _addr(again["x"].chunks[0]) == _addr(at["x"].chunks[0])
    # Through the raw capsule as well.
    via_capsule = pa.RecordBatchReader.from_stream(at).read_all()
    assert _addr(via_capsule["x"].chunks[0]) == _addr(at["x"].chunks[0])


def test_duckdb_reads_results_and_tables(table):
    duckdb = pytest.importorskip("duckdb")
    result = table.to_arrow()  # noqa: F841 - read by duckdb by its name
    n = duckdb.sql("SELECT count(*) FROM result WHERE label = 'l3'").fetchall()[0][0]
    assert n == 500
    stream = table.scan(columns=["id"])  # noqa: F841 - read by duckdb by its name
    total = duckdb.sql("SELECT sum(id) FROM stream").fetchall()[0][0]
    assert total == sum(range(5000))


def test_accepts_arrow_from_polars_and_pandas(table):
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    pdf = pl.DataFrame({"id": [1, 2, 3], "w": [0.5, 1.5, 2.5]})
    out = lakevec.sql("SELECT sum(w) AS s FROM p", tables={"p": pdf})
    assert out["s"][0].as_py() == 4.5
    pan = pd.DataFrame({"id": np.arange(10)})
    out = lakevec.sql("SELECT count(*) AS n FROM p", tables={"p": pan})
    assert out["n"][0].as_py() == 10
