"""lakevec.testing, the pytest plugin: it loads through its entry point in a user's project,
its fixtures make Delta, Iceberg and Parquet tables (locally and on moto S3), and its
assertions pass on good results and fail with the numbers on bad ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E
from lakevec.testing import assert_index_covers, assert_recall, assert_same_clusters

USER_TEST = """
import numpy as np
import pyarrow as pa
import pytest

import lakevec
import lakevec.testing
from lakevec.testing import assert_index_covers, assert_recall


def vectors(n, dim, seed):
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return pa.table({"id": np.arange(n), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)})


def test_the_plugin_came_from_the_entry_point(pytestconfig):
    # an entry point registers under its own name; -p or a conftest would use the module's
    assert pytestconfig.pluginmanager.get_plugin("lakevec") is lakevec.testing


def test_good_index(lake_table):
    t = lake_table(vectors(600, 8, 0), "delta", appends=[vectors(100, 8, 1)], deletes=["id < 10"])
    idx = lakevec.build_index(t, "vector", key="id", progress=False)
    queries = np.random.default_rng(2).standard_normal((40, 8)).astype(np.float32)
    assert assert_recall(idx, queries, k=10, at_least=0.9) >= 0.9
    assert_index_covers(idx, t)


def test_demands_too_much(lake_table):
    t = lake_table(vectors(500, 8, 0), "parquet")
    idx = lakevec.build_index(t, "vector", progress=False)
    assert_recall(idx, np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32), at_least=1.01, ef=16)


def test_bad_index(lake_table):
    t = lake_table(vectors(3000, 64, 4), "parquet")
    idx = lakevec.build_index(t, "vector", m=4, ef_construction=8, progress=False)  # a poor graph
    assert_recall(idx, np.random.default_rng(5).standard_normal((30, 64)).astype(np.float32), k=10, ef=1)
"""


def _run_user_project(folder, *args: str) -> subprocess.CompletedProcess:
    """``python -m pytest`` in ``folder``: its own rootdir and no conftest; the plugin can only
    come from the installed entry point."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_user.py").write_text(USER_TEST)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH")
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder), *args]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_the_plugin_loads_in_a_user_project_and_its_assertions_fail_with_numbers(tmp_path):
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("lakevec") == "lakevec.testing", (
        f"the pytest11 entry point 'lakevec' is not installed ({names}): reinstall lakevec (pip install -e .)"
    )
    good = _run_user_project(tmp_path, "-k", "entry_point or good_index")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "2 passed" in good.stdout, good.stdout

    bad = _run_user_project(tmp_path, "-k", "too_much or bad_index", "-rf")
    out = bad.stdout
    assert bad.returncode == 1, out + bad.stderr
    assert "2 failed" in out, out
    # the message holds the recall, the bound, ef, the query count and the worst query
    assert re.search(r"recall@10 = 0\.\d{3} < 1\.01 \(ef=16, 50 queries; worst query [0-9.e-]+: #\d+\)", out), out
    m = re.search(r"recall@10 = (0\.\d{3}) < 0\.95 \(ef=1, 30 queries; worst query ([0-9.e-]+): #\d+\)", out)
    assert m, out
    assert float(m.group(1)) < 0.95 and float(m.group(2)) <= float(m.group(1))


def _vectors(n: int, dim: int = 8, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    t = pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "section": [["a", "b", "c"][i % 3] for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim),
        }
    )
    return t, v


def _ids(t: lakevec.Table) -> list[int]:
    return sorted(t.to_arrow(columns=["id"])["id"].to_pylist())


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_lake_table_versions_appends_and_deletes(lake_table, fmt):
    pytest.importorskip({"delta": "deltalake", "iceberg": "pyiceberg"}[fmt])
    first, _ = _vectors(30)
    more = pa.table({"id": pa.array([100, 101], pa.int64()), "section": ["x", "y"], "vector": first["vector"][:2]})
    t = lake_table(first, fmt, name="events", appends=[more], deletes=["id < 5", "section = 'x'"])
    assert t.format == fmt
    assert _ids(t) == list(range(5, 30)) + [101]
    versions = t.history()["version"].to_pylist()
    assert len(versions) == 4  # create, append, two deletes
    oldest = lakevec.Table.open(t.uri, version=min(versions) if fmt == "delta" else versions[-1])
    assert _ids(oldest) == list(range(30))
    if fmt == "iceberg":
        by_name = lakevec.Table.open("lake.db.events", catalog={"type": "sql", "uri": lake_table.catalog_uri})
        assert by_name.version == t.version
        assert lake_table.iceberg_catalog.load_table("db.events").location() == t.uri


@pytest.mark.parametrize("fmt", ["delta", "iceberg", "parquet"])
def test_lake_table_partitions_and_dataframes(lake_table, fmt):
    pytest.importorskip({"delta": "deltalake", "iceberg": "pyiceberg", "parquet": "pyarrow"}[fmt])
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    df = pd.DataFrame({"id": np.arange(12, dtype=np.int64), "section": [["a", "b"][i % 2] for i in range(12)]})
    more = pl.DataFrame({"id": np.arange(12, 15, dtype=np.int64), "section": ["a", "b", "c"]})
    t = lake_table(df, fmt, appends=[more], partition_by="section")
    assert _ids(t) == list(range(15))
    files = t.files()
    assert files.num_rows == 5  # (a, b) then (a, b, c)
    only_b = t.to_arrow(filter="section = 'b'")
    assert sorted(only_b["id"].to_pylist()) == [1, 3, 5, 7, 9, 11, 13]


def test_lake_table_refuses_clearly(lake_table):
    data, _ = _vectors(5)
    with pytest.raises(ValueError, match="Parquet folder has no versions"):
        lake_table(data, "parquet", deletes=["id < 2"])
    with pytest.raises(ValueError, match="format must be one of"):
        lake_table(data, "orc")
    lake_table(data, "parquet", name="p")
    with pytest.raises(ValueError, match="named 'p' exists already"):
        lake_table(data, "parquet", name="p")
    with pytest.raises(TypeError, match="sequence of tables"):
        lake_table(data, "parquet", name="q", appends=data)
    with pytest.raises(TypeError):
        lake_table([1, 2, 3], "parquet", name="r")


@pytest.mark.s3
@pytest.mark.parametrize("fmt", ["delta", "iceberg", "parquet"])
def test_lake_table_on_s3(lake_table, s3_lake, fmt):
    pytest.importorskip({"delta": "deltalake", "iceberg": "pyiceberg", "parquet": "pyarrow"}[fmt])
    data, v = _vectors(200, seed=1)
    more, _ = _vectors(20, seed=2)
    more = more.set_column(0, "id", pa.array(range(200, 220), pa.int64()))
    t = lake_table(data, fmt, name=f"s3_{fmt}", appends=[more], s3=s3_lake)
    assert t.uri.startswith(f"s3://{s3_lake.bucket}/lake_table/")
    assert _ids(t) == list(range(220))
    with pytest.raises(E.StorageError):  # the server checks the key
        lakevec.Table.open(t.uri, s3_lake.options(secret="wrong-secret"), format=fmt).to_arrow()
    idx = lakevec.build_index(t, "vector", key="id", index_type="flat", progress=False)
    assert idx.search(v[[3, 150]], k=1).column("id").to_pylist() == [3, 150]
    assert assert_recall(idx, v[:20], k=5, at_least=1.0) == 1.0


def test_assert_index_covers_lists_what_is_missing(lake_table):
    deltalake = pytest.importorskip("deltalake")
    data, v = _vectors(300)
    t = lake_table(data, "delta")
    idx = lakevec.build_index(t, "vector", key="id", progress=False)
    assert_index_covers(idx, t)
    more, _ = _vectors(40, seed=9)
    deltalake.write_deltalake(t.uri, more, mode="append")
    newer = lakevec.Table.open(t.uri)
    with pytest.raises(AssertionError) as ei:
        assert_index_covers(idx, newer)
    msg = str(ei.value)
    assert "index is at table version 0, the table at 1" in msg
    assert "1 of 2 files not covered: 1 missing (40 live rows)" in msg
    added = [p for p in newer.files()["path"].to_pylist() if p not in t.files()["path"].to_pylist()]
    assert f"missing: {added[0]}" in msg
    # the index's own view of the table is the latest, whichever handle is passed
    with pytest.raises(AssertionError, match="version 0, the table at 1"):
        assert_index_covers(idx, t)
    assert idx.refresh() is True
    assert_index_covers(idx, newer)


def test_assert_recall_returns_the_recall(lake_table):
    data, v = _vectors(400, dim=16)
    t = lake_table(data, "parquet")
    flat = lakevec.build_index(t, "vector", index_type="flat", name="flat", progress=False)
    assert assert_recall(flat, v[:25], k=10, at_least=1.0) == 1.0
    hnsw = lakevec.build_index(t, "vector", name="hnsw", progress=False)
    r = assert_recall(hnsw, v[:25] + 0.01, k=5, at_least=0.5, ef=64, filter="section = 'a'")
    assert 0.5 <= r <= 1.0
    with pytest.raises(AssertionError, match=r"recall@5 = [01]\.\d{3} < 1\.5 \(ef=64, 25 queries; worst query "):
        assert_recall(hnsw, v[:25] + 0.01, k=5, at_least=1.5, ef=64, filter="section = 'a'")


def test_assert_same_clusters():
    a = pa.table({"row": [0, 1, 2, 3, 4, 5], "cluster_id": [0, 0, 2, 3, 3, 3]})
    renamed = pa.table({"row": [5, 4, 3, 2, 1, 0], "cluster_id": [7, 7, 7, 1, 9, 9], "cluster_size": [3] * 6})
    assert_same_clusters(a, renamed)
    pd = pytest.importorskip("pandas")
    assert_same_clusters(a.to_pandas(), renamed)
    moved = pa.table({"row": [0, 1, 2, 3, 4, 5], "cluster_id": [0, 0, 2, 2, 3, 3]})  # row 3 joined row 2
    with pytest.raises(AssertionError) as ei:
        assert_same_clusters(a, moved)
    msg = str(ei.value)
    assert "4 of 6 rows are grouped differently (a: 2 of 3 clusters differ, b: 2 of 3)" in msg, msg
    assert "row 2: in a with 1 rows [2], in b with 2 rows [2, 3]" in msg, msg
    with pytest.raises(AssertionError, match=r"1 only in a \(e\.g\. \[5\]\)"):
        assert_same_clusters(a, a.slice(0, 5))
    with pytest.raises(ValueError, match="names rows by"):
        assert_same_clusters(a, pa.table({"_file": ["f"], "_row": [0], "cluster_id": [0]}))
    with pytest.raises(ValueError, match="lacks column"):
        assert_same_clusters(a, pd.DataFrame({"row": [0]}))


def test_assert_same_clusters_on_dedup_results(lake_table):
    text = ["a b c", "x y", "a b c", "q", "x y", "a b c"]
    t = lake_table(
        pa.table({"id": np.arange(6), "text": text}), "parquet", appends=[pa.table({"id": [6], "text": ["q"]})]
    )
    got = lakevec.dedup.exact(t, "text")
    assert_same_clusters(got, lakevec.dedup.exact(t.uri, "text"))
    in_memory = lakevec.dedup.exact(pa.table({"text": text + ["q"]}), "text")
    assert_same_clusters(in_memory, in_memory.set_column(1, "cluster_id", pa.array([9, 8, 9, 7, 8, 9, 7])))
    with pytest.raises(AssertionError, match="grouped differently"):
        assert_same_clusters(in_memory, in_memory.set_column(1, "cluster_id", pa.array(range(7))))
