"""Row addresses (_file, _row), take(), files() deletes and changes() on Parquet and Delta;
bad table input (corrupt log, missing data file); filters read fewer bytes."""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import make_vector_table

deltalake = pytest.importorskip("deltalake")


def test_parquet_addresses_are_file_positions(tmp_path):
    for i in range(3):
        pq.write_table(
            pa.table({"id": pa.array(range(i * 100, i * 100 + 100), pa.int64())}),
            tmp_path / f"p{i}.parquet",
            row_group_size=30,
        )
    t = lakevec.Table.open(str(tmp_path))
    a = t.to_arrow(with_row_address=True)
    assert a.column_names == ["id", "_file", "_row"]
    for f, r, v in zip(a["_file"].to_pylist(), a["_row"].to_pylist(), a["id"].to_pylist()):
        assert v == int(f[1]) * 100 + r
    some = t.to_arrow(filter="id % 7 = 3 AND id > 120", with_row_address=True)
    assert all(v % 7 == 3 and v > 120 for v in some["id"].to_pylist())
    assert [int(f[1]) * 100 + r for f, r in zip(some["_file"].to_pylist(), some["_row"].to_pylist())] == some[
        "id"
    ].to_pylist()
    # take: any order, duplicates, across row groups and files
    addrs = [("p2.parquet", 99), ("p0.parquet", 0), ("p1.parquet", 31), ("p0.parquet", 0)]
    got = t.take(addrs, columns=["id"])
    assert got["id"].to_pylist() == [299, 0, 131, 0]
    with pytest.raises(E.InvalidArgumentError, match="p9.parquet"):
        t.take([("p9.parquet", 0)])
    with pytest.raises(E.InvalidArgumentError, match="out of range"):
        t.take([("p1.parquet", 100)])
    streamed = pa.Table.from_batches(list(t.scan(with_row_address=True, batch_size=17)))
    assert streamed.equals(a)


def test_vector_table_take_matches_scan(tmp_path):
    path = tmp_path / "v.parquet"
    make_vector_table(path, rows=500, dim=8, row_group_size=64)
    t = lakevec.Table.open(str(path))
    a = t.to_arrow(with_row_address=True)
    picks = a.take([499, 3, 250])
    got = t.take(picks)
    assert got.equals(picks)


@pytest.fixture()
def delta_history(tmp_path):
    """v0 create (2 partitions), v1 append, v2 delete (copy-on-write), v3 append."""
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "d")
    t0 = pa.table({"id": pa.array(range(40), pa.int64()), "part": ["a"] * 20 + ["b"] * 20})
    write_deltalake(uri, t0, partition_by=["part"])
    write_deltalake(uri, pa.table({"id": pa.array(range(40, 50), pa.int64()), "part": ["a"] * 10}), mode="append")
    DeltaTable(uri).delete("id % 5 = 0")
    write_deltalake(uri, pa.table({"id": pa.array([99], pa.int64()), "part": ["c"]}), mode="append")
    return uri


def test_delta_addresses_take_and_changes(delta_history):
    uri = delta_history
    t = lakevec.Table.open(uri)
    a = t.to_arrow(with_row_address=True)
    plain = t.to_arrow()
    assert sorted(a["id"].to_pylist()) == sorted(plain["id"].to_pylist())
    assert all(i % 5 for i in a["id"].to_pylist() if i != 99)
    files = t.files()
    deleted = {p: d for p, d in zip(files["path"].to_pylist(), files["deleted_rows"].to_pylist())}
    for f, r in zip(a["_file"].to_pylist(), a["_row"].to_pylist()):
        assert r not in (deleted[f] or [])
    # take returns exactly the addressed rows, partition column included
    got = t.take(a.take([0, 7, a.num_rows - 1]))
    assert got.select(["id", "part"]).to_pylist() == a.take([0, 7, a.num_rows - 1]).select(["id", "part"]).to_pylist()
    # a file of an older version is not addressable in this one
    removed = [c["path"] for c in t.changes(1, 2).to_pylist() if c["change"] == "removed"]
    with pytest.raises(E.InvalidArgumentError, match="not a live data file"):
        t.take([(removed[0], 0)])
    # changes
    v = t.version
    ch = {c["change"] for c in t.changes(0, 1).to_pylist()}
    assert ch == {"added"}
    # delta-rs deletes copy-on-write: the touched files are removed, rewrites added
    dv = t.changes(1, 2).to_pylist()
    assert {c["change"] for c in dv} == {"added", "removed"}
    removed_rows = sum(c["num_records"] for c in dv if c["change"] == "removed")
    added_rows = sum(c["num_records"] for c in dv if c["change"] == "added")
    assert removed_rows - added_rows == 10
    last = t.changes(v - 1).to_pylist()
    assert [c["change"] for c in last] == ["added"] and last[0]["num_records"] == 1


def test_shared_dv_table_addresses(shared_data):
    t = lakevec.Table.open(str(shared_data / "tables" / "delta" / "table-with-dv-small"))
    files = t.files().to_pylist()
    assert files[0]["deleted_rows"] == sorted(files[0]["deleted_rows"]) and files[0]["num_deleted"] == 2
    a = t.to_arrow(with_row_address=True)
    assert a.num_rows == 8
    raw = pq.read_table(str(shared_data / "tables" / "delta" / "table-with-dv-small" / files[0]["path"]))
    for v, r in zip(a["value"].to_pylist(), a["_row"].to_pylist()):
        assert raw["value"][r].as_py() == v
    assert set(a["_row"].to_pylist()).isdisjoint(files[0]["deleted_rows"])
    # a deleted row is an error naming it, never another row
    with pytest.raises(E.InvalidArgumentError, match="deleted"):
        t.take([(files[0]["path"], files[0]["deleted_rows"][0])])
    assert t.take([(files[0]["path"], 1)])["value"].to_pylist() == [raw["value"][1].as_py()]


def test_column_mapping_take(shared_data):
    path = shared_data / "tables" / "delta" / "table_with_column_mapping"
    t = lakevec.Table.open(str(path))
    a = t.to_arrow(with_row_address=True)
    plain = t.to_arrow()
    assert a.num_rows == plain.num_rows == 5
    assert a.drop_columns(["_file", "_row"]).to_pylist() == plain.to_pylist() or sorted(
        map(repr, a.drop_columns(["_file", "_row"]).to_pylist())
    ) == sorted(map(repr, plain.to_pylist()))
    assert (
        t.take(a.take([4, 0])).drop_columns(["_file", "_row"]).to_pylist()
        == a.take([4, 0]).drop_columns(["_file", "_row"]).to_pylist()
    )


def test_corrupt_delta_log_line_names_the_file(tmp_path):
    from deltalake import write_deltalake

    uri = tmp_path / "c"
    write_deltalake(str(uri), pa.table({"x": [1, 2]}))
    write_deltalake(str(uri), pa.table({"x": [3]}), mode="append")
    commit = uri / "_delta_log" / "00000000000000000001.json"
    commit.write_text(commit.read_text() + '{"add": {"path": \n')

    def parses(line: str) -> bool:
        try:
            json.loads(line)
            return True
        except ValueError:
            return False

    lines = commit.read_text().splitlines()
    bad_line = next(i + 1 for i, line in enumerate(lines) if line.strip() and not parses(line))
    with pytest.raises(E.CorruptFileError) as ei:
        lakevec.Table.open(str(uri)).to_arrow()
    assert "00000000000000000001.json" in str(ei.value) and f"line {bad_line} " in str(ei.value)
    assert "   0: " not in str(ei.value)  # no backtrace in the message


def test_missing_data_file_names_it(tmp_path):
    from deltalake import write_deltalake

    uri = tmp_path / "m"
    write_deltalake(str(uri), pa.table({"x": [1, 2]}))
    data = [p for p in os.listdir(uri) if p.endswith(".parquet")][0]
    os.remove(uri / data)
    t = lakevec.Table.open(str(uri))
    with pytest.raises(FileNotFoundError) as ei:
        t.to_arrow()
    assert data in str(ei.value)
    with pytest.raises(FileNotFoundError) as ei:
        t.to_arrow(with_row_address=True)
    assert data in str(ei.value)


def _bytes_scanned(table: lakevec.Table, where: str) -> int:
    plan = lakevec.sql(f"EXPLAIN ANALYZE SELECT * FROM t {where}", tables={"t": table})
    text = "\n".join(str(v) for v in plan.column(plan.num_columns - 1).to_pylist())
    return sum(int(m) for m in re.findall(r"bytes_scanned=(\d+)", text))


def test_filters_read_fewer_bytes(tmp_path):
    root = tmp_path / "hive"
    for year in range(2020, 2024):
        d = root / f"year={year}"
        d.mkdir(parents=True)
        ids = pa.array(range(year * 1000, year * 1000 + 5000), pa.int64())
        pq.write_table(
            pa.table({"id": ids, "v": pa.array([float(i) for i in range(5000)])}),
            d / "part.parquet",
            row_group_size=1000,
        )
    t = lakevec.Table.open(str(root))
    full = _bytes_scanned(t, "")
    by_partition = _bytes_scanned(t, "WHERE year = 2021")
    by_stats = _bytes_scanned(t, "WHERE id < 2020500")
    assert 0 < by_partition < full / 2, (by_partition, full)
    assert 0 < by_stats < full / 2, (by_stats, full)
