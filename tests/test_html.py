"""Jupyter displays: `_repr_html_` of Table and VectorIndex show the metadata (escaped), the
index's coverage of the latest table version as a bar; `repr()` stays one line."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec

deltalake = pytest.importorskip("deltalake")


def test_table_and_index_html(tmp_path):
    v = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    t = pa.table({"id": np.arange(300), "<b>tag": ["x"] * 300, "v": pa.FixedSizeListArray.from_arrays(v.ravel(), 8)})
    uri = str(tmp_path / "t")
    deltalake.write_deltalake(uri, t.slice(0, 200))
    table = lakevec.Table.open(uri)
    h = table._repr_html_()
    assert "lakevec.Table" in h and "delta" in h and "200" in h and "<code>v</code>: list" in h
    assert "&lt;b&gt;tag" in h and "<b>tag" not in h
    assert "\n" not in repr(table)
    idx = lakevec.build_index(uri, "v", progress=False)
    h = idx._repr_html_()
    assert "hnsw" in h and "l2 / 8" in h and "200 / 200 rows (100.0%)" in h
    deltalake.write_deltalake(uri, t.slice(200), mode="append")
    assert "200 / 300 rows (66.7%)" in idx._repr_html_()
    assert "\n" not in repr(idx)
    pq.write_table(t, tmp_path / "one.parquet")
    assert "parquet" in lakevec.Table.open(str(tmp_path / "one.parquet"))._repr_html_()
