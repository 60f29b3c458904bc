"""lakevec.sql against pandas on real data."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec

pd = pytest.importorskip("pandas")


def test_rows_per_section_matches_pandas(shared_data):
    path = shared_data / "text" / "debian_descriptions.parquet"
    got = lakevec.sql(
        "SELECT section, count(*) AS n, avg(length(description)) AS mean_len "
        "FROM debian WHERE section IS NOT NULL GROUP BY section ORDER BY section",
        tables={"debian": str(path)},
    ).to_pandas()
    df = pq.read_table(path).to_pandas()
    df = df[df.section.notna()]
    ref = (
        df.assign(len=df.description.str.len())
        .groupby("section")
        .agg(n=("package", "size"), mean_len=("len", "mean"))
        .reset_index()
        .sort_values("section")
        .reset_index(drop=True)
    )
    assert got.section.tolist() == ref.section.tolist()
    assert got.n.tolist() == ref.n.tolist()
    assert got.mean_len.round(6).tolist() == ref.mean_len.round(6).tolist()


def test_join_lake_table_with_arrow_data(shared_data):
    base = shared_data / "ann" / "minilm_base.parquet"
    wanted = pa.table({"id": pa.array([0, 5, 42], pa.int64()), "tag": ["a", "b", "c"]})
    t = lakevec.Table.open(str(base))
    got = lakevec.sql(
        "SELECT b.id, w.tag FROM base b JOIN wanted w ON b.id = w.id ORDER BY b.id",
        tables={"base": t, "wanted": wanted},
    )
    assert got["id"].to_pylist() == [0, 5, 42]
    assert got["tag"].to_pylist() == ["a", "b", "c"]


def test_sql_over_partitioned_folder(shared_data):
    path = shared_data / "tables" / "delta" / "COVID-19_NYT"
    t = lakevec.Table.open(str(path), format="parquet")
    got = lakevec.sql(
        "SELECT state, sum(cases) AS cases FROM covid GROUP BY state ORDER BY cases DESC LIMIT 3",
        tables={"covid": t},
    ).to_pandas()
    full = t.to_pandas(columns=["state", "cases"])
    ref = full.groupby("state").cases.sum().sort_values(ascending=False).head(3)
    assert got.state.tolist() == ref.index.tolist()
    assert got.cases.tolist() == ref.tolist()
