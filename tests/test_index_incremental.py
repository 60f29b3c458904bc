"""An index following its table: appends, deletes, overwrites (Delta and Iceberg); search
before refresh stays correct; refresh encodes only new files; compaction; readers during a
refresh see one version whole."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

deltalake = pytest.importorskip("deltalake")

DIM = 16


def _batch(ids, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    t = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "grp": pa.array([i % 4 for i in ids], pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
        }
    )
    return t, v


def _truth(table: lakevec.Table, q, k, flt=None):
    """Exact neighbours' ids over the table's live rows (numpy brute force)."""
    t = table.to_arrow(columns=["id", "vector"], filter=flt)
    ids = t.column("id").to_numpy()
    v = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    d = ((v[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    return [list(ids[np.argsort(row, kind="stable")[:k]]) for row in d]


def _ids(res, nq, k):
    out = [[] for _ in range(nq)]
    for q, i in zip(res.column("query").to_pylist(), res.column("id").to_pylist()):
        out[q].append(i)
    return out


def _status(idx):
    cov = idx.coverage()
    return sorted(zip(cov.column("path").to_pylist(), cov.column("status").to_pylist()))


def _check_search_is_exact_truth(idx, table, q, k=10):
    """With exact=True the merged search equals brute force over the live rows."""
    got = _ids(idx.search(q, k=k, exact=True), len(q), k)
    assert got == _truth(table, q, k)


def test_delta_append_delete_overwrite(tmp_path):
    p = str(tmp_path / "t")
    t0, v0 = _batch(range(0, 2000), 0)
    deltalake.write_deltalake(p, t0)
    idx = lakevec.build_index(p, "vector", key="id", progress=False)
    assert idx.table_version == 0
    assert {s for _, s in _status(idx)} == {"indexed"}
    q = np.random.default_rng(9).standard_normal((20, DIM)).astype(np.float32)

    # 1. append: the new file is missing; search before refresh finds its rows
    t1, v1 = _batch(range(2000, 2500), 1)
    deltalake.write_deltalake(p, t1, mode="append")
    st = dict(_status(idx))
    assert sorted(st.values()) == ["indexed", "missing"]
    table = lakevec.Table.open(p)
    _check_search_is_exact_truth(idx, table, q)
    hit = idx.search(v1[:5], k=1)
    assert hit.column("id").to_pylist() == [2000, 2001, 2002, 2003, 2004]
    with pytest.raises(E.StaleIndexError, match="refresh"):
        idx.search(v1[:1], stale="error")
    ignored = idx.search(v1[:1], k=1, stale="ignore")
    assert ignored.column("id").to_pylist() != [2000]
    assert idx.refresh() is True
    last = idx.stats()["last_commit"]
    assert last["operation"] == "refresh" and last["files_encoded"] == 1 and last["rows_encoded"] == 500
    assert idx.table_version == 1 and idx.stats()["segments"] == 2
    assert {s for _, s in _status(idx)} == {"indexed"}
    assert idx.search(v1[:5], k=1, stale="error").column("id").to_pylist() == [2000, 2001, 2002, 2003, 2004]
    assert idx.refresh() is False

    # 2. delete (delta-rs rewrites the files holding deleted rows)
    dt = deltalake.DeltaTable(p)
    dt.delete("id % 3 = 0")
    table = lakevec.Table.open(p)
    cov = _status(idx)
    assert "missing" in {s for _, s in cov}
    res = idx.search(q, k=10)
    assert all(i % 3 != 0 for i in res.column("id").to_pylist())
    _check_search_is_exact_truth(idx, table, q)
    assert idx.search(v0[:1], k=1).column("id").to_pylist() != [0]  # id 0 was deleted
    idx.refresh()
    last = idx.stats()["last_commit"]
    n_files = len(table.files())
    assert last["files_encoded"] <= n_files and last["rows_encoded"] == table.num_rows
    assert idx.stats()["rows"] == table.num_rows
    # recall holds after refresh
    truth = _truth(table, q, 10)
    got = _ids(idx.search(q, k=10, ef=64), len(q), 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]) >= 0.95

    # 3. overwrite: every old file removed
    t2, v2 = _batch(range(5000, 5300), 2)
    deltalake.write_deltalake(p, t2, mode="overwrite")
    assert sorted(s for _, s in _status(idx)) == ["missing"]
    assert idx.search(v2[:3], k=1).column("id").to_pylist() == [5000, 5001, 5002]
    res = idx.search(q, k=10)
    assert set(res.column("id").to_pylist()) <= set(range(5000, 5300))
    idx.refresh()
    assert idx.stats()["rows"] == 300 and idx.stats()["segments"] == 1
    assert idx.stats()["last_commit"]["segments_removed"] >= 1

    # an older version is still searchable correctly (its files are searched exactly)
    old = idx.search(v0[1:2], k=1, version=0)
    assert old.column("id").to_pylist() == [1]

    # reopen from storage = same answers
    again = lakevec.open_index(lakevec.Table.open(p))
    assert again.version == idx.version
    assert again.search(q, k=5).column("_row").to_pylist() == idx.search(q, k=5).column("_row").to_pylist()


def test_deleted_rows_become_tombstones_and_compact(tmp_path):
    """Delta deletion vectors (written by hand-free means: pyarrow rewrite is what delta-rs
    does) are covered by test_delta_append_delete_overwrite; here: a Parquet folder losing a
    file, tombstones, then compact."""
    p = tmp_path / "pq"
    p.mkdir()
    import pyarrow.parquet as pq

    parts = [_batch(range(i * 300, (i + 1) * 300), i) for i in range(3)]
    for i, (t, _) in enumerate(parts):
        pq.write_table(t, p / f"part-{i}.parquet")
    idx = lakevec.build_index(str(p), "vector", key="id", progress=False)
    (p / "part-1.parquet").unlink()
    t3, v3 = _batch(range(900, 1000), 3)
    pq.write_table(t3, p / "part-3.parquet")
    st = dict(_status(idx))
    assert st == {"part-0.parquet": "indexed", "part-2.parquet": "indexed", "part-3.parquet": "missing"}
    res = idx.search(parts[1][1][:5], k=3)
    assert not set(res.column("id").to_pylist()) & set(range(300, 600))
    idx.refresh()
    s = idx.stats()
    assert s["tombstones"] == 300 and s["rows"] == 700 and s["last_commit"]["files_encoded"] == 1
    before = idx.search(v3[:10], k=5).column("id").to_pylist()
    assert idx.compact() is True
    s = idx.stats()
    assert s["segments"] == 1 and s["tombstones"] == 0 and s["rows"] == 700
    assert s["last_commit"]["rows_encoded"] == 0  # nothing read from the lake
    assert idx.search(v3[:10], k=5).column("id").to_pylist() == before
    assert idx.search(v3[:3], k=1).column("id").to_pylist() == [900, 901, 902]


def test_iceberg_append_delete_overwrite(lake_table):
    t0, v0 = _batch(range(0, 600), 0)
    # Iceberg has no fixed-size lists: pyiceberg stores list<float>
    t0 = t0.set_column(2, "vector", t0.column("vector").cast(pa.list_(pa.float32())))
    lake_table(t0, "iceberg", name="vecs")
    cat = lake_table.iceberg_catalog
    it = cat.load_table("db.vecs")
    loc = it.metadata_location
    table = lakevec.Table.open(loc)
    idx = lakevec.build_index(table, "vector", key="id", progress=False)
    assert "_lakevec_index" in idx.uri and "/db.db/vecs/" not in idx.uri + "/"  # outside the table
    t1, v1 = _batch(range(600, 700), 1)
    it.append(t1.set_column(2, "vector", t1.column("vector").cast(pa.list_(pa.float32()))))
    it = cat.load_table("db.vecs")
    it.delete("id < 100")
    q = np.random.default_rng(4).standard_normal((10, DIM)).astype(np.float32)
    # opened from a metadata file, the index records the table folder and follows it
    latest = lakevec.Table.open(cat.load_table("db.vecs").metadata_location)
    assert idx.table().version == latest.version
    assert sorted(s for _, s in _status(idx)).count("missing") >= 1
    res = idx.search(v1[:3], k=1)
    assert res.column("id").to_pylist() == [600, 601, 602]
    res = idx.search(v0[:5], k=3)
    assert all(i >= 100 for i in res.column("id").to_pylist())
    got = _ids(idx.search(q, k=10, exact=True), len(q), 10)
    assert got == _truth(latest, q, 10)
    idx.refresh()
    assert idx.table_version == latest.version
    assert {s for _, s in _status(idx)} == {"indexed"}
    assert idx.stats()["rows"] == 600
    assert _ids(idx.search(q, k=10, exact=True), len(q), 10) == _truth(latest, q, 10)


def test_readers_during_refresh_see_one_version(tmp_path):
    p = str(tmp_path / "t")
    t0, v0 = _batch(range(0, 3000), 0)
    deltalake.write_deltalake(p, t0)
    idx = lakevec.build_index(p, "vector", key="id", progress=False)
    reader = lakevec.open_index(lakevec.Table.open(p))
    t1, v1 = _batch(range(3000, 4000), 1)
    deltalake.write_deltalake(p, t1, mode="append")
    q = np.concatenate([v0[:4], v1[:4]])
    new_answer = [0, 1, 2, 3, 3000, 3001, 3002, 3003]
    errors, seen = [], set()
    stop = threading.Event()

    def search_loop():
        while not stop.is_set():
            try:
                r = reader.search(q, k=1, stale="ignore")
                ids = r.column("id").to_pylist()
                if ids[:4] != [0, 1, 2, 3]:
                    errors.append(f"bad old rows {ids}")
                mixed = any(i >= 3000 for i in ids[4:]) and not all(i >= 3000 for i in ids[4:])
                if mixed:
                    errors.append(f"mixed answer {ids}")
                seen.add(all(i >= 3000 for i in ids[4:]))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=search_loop) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        reader.refresh()
        for _ in range(3):
            reader.reload()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    assert True in seen
    assert reader.search(q, k=1, stale="ignore").column("id").to_pylist() == new_answer
    # the writer's stale handle commits on top: a conflict, not a corrupt index
    with pytest.raises(E.CommitConflictError):
        idx.refresh()
    assert lakevec.open_index(lakevec.Table.open(p)).version == reader.version
