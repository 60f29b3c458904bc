"""Crafted sidecar files that pass their checksums but lie, and data that would silently
break distances: the checks behind the CRC (and at ingest) turn them into clear errors (or
ignore them), never a panic, a wrong answer or a lost commit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import index_dir, read_manifest, write_manifest

deltalake = pytest.importorskip("deltalake")


def _table(path, ids, seed=0, dim=8, mode="error"):
    v = np.random.default_rng(seed).standard_normal((len(ids), dim)).astype(np.float32)
    t = pa.table(
        {"id": np.asarray(ids, np.int64), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)}
    )
    deltalake.write_deltalake(str(path), t, mode=mode)


@pytest.mark.parametrize("dim", [0, 2**40])
def test_a_manifest_with_an_implausible_dimension_is_corrupt(tmp_path, dim):
    """dim 0 made search divide by zero, 2^40 made it allocate without bound (both panics)."""
    _table(tmp_path / "t", range(100))
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", progress=False)
    m = read_manifest(idx)
    m["dim"], m["segments"] = dim, []
    write_manifest(index_dir(idx), idx.version, m)
    with pytest.raises(E.CorruptIndexError, match="dimension"):
        lakevec.open_index(idx.uri)


@pytest.mark.parametrize("stray", ["18446744073709551615.json", "5.json", "+00000000000000000009.json"])
def test_stray_manifest_names_neither_shadow_nor_wrap_the_version(tmp_path, stray):
    """A checksum-valid manifest under a name that is not a version file is ignored: the next
    refresh commits version N+1 (a stray u64::MAX made it commit version 0, which no reader
    ever opened, and report success)."""
    path = tmp_path / "t"
    _table(path, range(200))
    idx = lakevec.build_index(str(path), "vector", key="id", progress=False)
    m = read_manifest(idx)
    write_manifest(index_dir(idx), stray, {**m, "version": 2**64 - 1 if stray.startswith("1844") else 9})
    _table(path, range(200, 300), seed=1, mode="append")
    assert idx.refresh(progress=False)
    again = lakevec.open_index(idx.uri)
    assert again.version == 2
    assert again.stats()["rows"] == 300
    q = np.random.default_rng(5).standard_normal((3, 8)).astype(np.float32)
    assert (
        again.search(q, k=5, exact=True).column("id").to_pylist()
        == idx.search(q, k=5, exact=True).column("id").to_pylist()
    )


def test_vectors_whose_distances_would_overflow_are_invalid(tmp_path):
    """Finite but huge vectors (~1e20) made every distance inf: recall 0.01 with no error."""
    v = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    v[7] *= np.float32(1e20)
    t = pa.table({"id": np.arange(50), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8)})
    deltalake.write_deltalake(str(tmp_path / "t"), t)
    with pytest.raises(E.VectorError, match="row 7.*too large"):
        lakevec.build_index(str(tmp_path / "t"), "vector", metric="l2", progress=False)
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", metric="l2", key="id", on_invalid="skip", progress=False)
    assert idx.stats()["rows"] == 49
    with pytest.raises(E.VectorError, match="too large"):
        idx.search(v[7:8], k=3)


def test_a_corrupt_newest_manifest_is_skipped_by_readers_and_writers(tmp_path):
    """A truncated or corrupt newest manifest blocked refresh and compact for good (every
    open failed); readers now open the newest valid version, and the next commit goes after
    the corrupt one (never overwriting it)."""
    _table(tmp_path / "t", range(100))
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", progress=False)
    v = idx.version
    folder = index_dir(idx) / "manifests"
    (folder / f"{v + 1:020}.json").write_bytes(b'{"truncated": ')
    again = lakevec.open_index(idx.uri)
    assert again.version == v
    _table(tmp_path / "t", range(100, 150), seed=1, mode="append")
    assert again.refresh() is True
    assert again.version == v + 2
    assert (folder / f"{v + 1:020}.json").read_bytes() == b'{"truncated": '
    fresh = lakevec.open_index(idx.uri)
    assert fresh.version == v + 2 and fresh.stats()["rows"] == 150
    # the handle opened before never goes back to the older version on reload
    again.reload()
    assert again.version == v + 2


def test_a_parquet_file_rewritten_in_place_at_the_same_size_is_not_indexed(tmp_path):
    """A data file rewritten in place with other vectors and the same byte size was still
    served from the index (old vectors and addresses) and coverage() said "indexed"; files are
    now identified by the listing's ETag / last-modified too."""
    import os
    import time

    import pyarrow.parquet as pq

    d = tmp_path / "t"
    d.mkdir()
    dim = 8

    def write(name, seed):
        v = np.random.default_rng(seed).standard_normal((50, dim)).astype(np.float32)
        t = pa.table({"id": np.arange(50), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)})
        pq.write_table(t, d / name, compression="none", use_dictionary=False, write_statistics=False)
        return v

    write("a.parquet", 0)
    old = write("b.parquet", 1)
    idx = lakevec.build_index(str(d), "vector", progress=False, index_type="flat")
    size = os.path.getsize(d / "b.parquet")
    time.sleep(0.01)
    new = write("b.parquet", 2)
    assert os.path.getsize(d / "b.parquet") == size
    cov = lakevec.open_index(idx.uri).coverage().to_pydict()
    assert dict(zip(cov["path"], cov["status"]))["b.parquet"] == "missing"
    # the row's new vector is found where it now is; the old one is gone
    hit = idx.search(new[7], k=1, exact=True)
    assert hit.column("_file").to_pylist() == ["b.parquet"] and hit.column("distance").to_pylist()[0] < 1e-5
    gone = idx.search(old[7], k=1, exact=True)
    assert gone.column("distance").to_pylist()[0] > 1e-3
    assert idx.refresh() is True
    cov = idx.coverage().to_pydict()
    assert set(cov["status"]) == {"indexed"}


def test_a_run_of_identical_vectors_does_not_absorb_the_graph(tmp_path):
    """50,000 rows sharing one vector and 10 that differ: graph search found none of the 10 at
    rank 1 even at ef=5000 and the recall estimate was 0.0 without a warning. The graph now
    holds one node per distinct vector and hands out every copy."""
    import warnings

    import pyarrow.parquet as pq

    dim = 16
    rng = np.random.default_rng(5)
    v = np.repeat(rng.standard_normal((1, dim)).astype(np.float32), 50_010, axis=0)
    odd = rng.choice(50_010, 10, replace=False)
    v[odd] = rng.standard_normal((10, dim)).astype(np.float32)
    t = pa.table({"id": np.arange(len(v)), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)})
    pq.write_table(t, tmp_path / "t.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LowRecallWarning
        idx = lakevec.build_index(str(tmp_path / "t.parquet"), "vector", key="id", progress=False)
    assert idx.stats()["recall_estimate"] >= 0.99
    hits = idx.search(v[odd], k=1)
    assert hits.column("id").to_pylist() == odd.tolist()
    assert hits.column("distance").to_numpy().max() < 1e-5
    common = int(np.setdiff1d(np.arange(10), odd)[0])
    many = idx.search(v[common], k=100)
    assert many.num_rows == 100 and many.column("distance").to_numpy().max() < 1e-5
    assert many.column("id").to_pylist() == sorted(many.column("id").to_pylist())  # ties by row
    # deleting the group's first row keeps its copies findable
    deltalake = pytest.importorskip("deltalake")
    deltalake.write_deltalake(str(tmp_path / "d"), t)
    d = lakevec.build_index(str(tmp_path / "d"), "vector", key="id", progress=False)
    deltalake.DeltaTable(str(tmp_path / "d")).delete(f"id = {common}")
    assert d.refresh() is True
    after = d.search(v[common], k=3)
    assert common not in after.column("id").to_pylist() and after.column("distance").to_numpy().max() < 1e-5


def test_a_low_recall_estimate_warns(tmp_path):
    """A build whose recall@10 estimate is low says so (LowRecallWarning)."""
    import pyarrow.parquet as pq

    v = np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32)
    t = pa.table({"id": np.arange(len(v)), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 64)})
    pq.write_table(t, tmp_path / "t.parquet")
    with pytest.warns(lakevec.index.LowRecallWarning, match="recall@10 estimate"):
        idx = lakevec.build_index(str(tmp_path / "t.parquet"), "vector", m=2, ef_construction=2, progress=False)
    assert idx.stats()["recall_estimate"] < lakevec.index.LOW_RECALL


def test_a_manifest_cannot_point_the_index_at_another_store(tmp_path, monkeypatch):
    """A manifest's table_uri is bytes anyone with write access to the index can change: it
    may only name the index's own store (or one the caller lists in LAKEVEC_ALLOWED_STORES)."""
    _table(tmp_path / "t", range(50))
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", progress=False)
    m = read_manifest(idx)
    m["table_uri"] = "memory:///elsewhere/t"
    write_manifest(index_dir(idx), idx.version, m)
    crafted = lakevec.open_index(idx.uri)
    q = np.zeros(8, np.float32)
    assert crafted.search(q, k=3, stale="ignore").num_rows == 3  # the index alone still serves
    with pytest.raises(E.StoragePermissionError, match="outside the index's store") as ei:
        crafted.search(q, k=3)
    assert "memory:///elsewhere/t" in str(ei.value)
    monkeypatch.setenv("LAKEVEC_ALLOWED_STORES", "memory://")
    with pytest.raises(E.LakevecError) as ei:
        lakevec.open_index(idx.uri).search(q, k=3)
    assert "outside the index's store" not in str(ei.value)
