"""Index at lake scale: builds within a memory budget (several segments, merged exactly at
search time), lazy opening (manifests only; segments mapped on first use), the consistency
interval of searches, and the byte sizes the budget accepts."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import load_ann, read_manifest

deltalake = pytest.importorskip("deltalake")


def _batch(rng, start: int, n: int) -> pa.Table:
    """Rows ``start .. start + n``: ``id`` (int64) and a random 8-d float32 ``vector``."""
    v = rng.standard_normal((n, 8)).astype(np.float32)
    return pa.table(
        {
            "id": np.arange(start, start + n, dtype=np.int64),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8),
        }
    )


def _ids(res: pa.Table, nq: int, k: int) -> np.ndarray:
    return res.column("id").to_numpy().reshape(nq, k)


def _recall(res: pa.Table, truth, k=10) -> float:
    ids = res.column("id").to_numpy()
    qs = res.column("query").to_numpy()
    return sum(1 for qi, i in zip(qs, ids) if i in truth[qi]) / (len(truth) * k)


@pytest.fixture(scope="module")
def minilm_files(shared_data, tmp_path_factory):
    """The shared MiniLM base as a Delta table of 12 data files (about 1,000 rows each)."""
    base, queries, truth = load_ann(shared_data, "minilm")
    path = tmp_path_factory.mktemp("scale") / "minilm"
    for i, part in enumerate(range(0, base.num_rows, 1005)):
        deltalake.write_deltalake(str(path), base.slice(part, 1005), mode="append" if i else "error")
    return path, queries, truth


def test_a_small_memory_limit_cuts_segments_that_search_like_one(minilm_files):
    path, queries, truth = minilm_files
    one = lakevec.build_index(str(path), "vector", metric="cosine", key="id", name="one", progress=False)
    assert one.stats()["segments"] == 1
    # 16 MiB: 3/4 of it holds about 7,000 rows of 384 floats with their graph lists, so the
    # 12 files of ~1,000 rows make two segments
    cut = lakevec.build_index(
        str(path), "vector", metric="cosine", key="id", name="cut", memory_limit="16MiB", progress=False
    )
    st = cut.stats()
    assert st["segments"] == 2, st
    assert st["rows"] == one.stats()["rows"] == 12052
    assert sorted(f for s in read_manifest(cut)["segments"] for f in s["data_files"]) == sorted(
        one.table().files().column("path").to_pylist()
    )
    assert st["last_commit"]["segments_added"] == 2
    # exact search: the same hits; ANN: recall within 0.01 of the one-segment index
    q = queries[:200]
    a = one.search(q, k=10, exact=True)
    b = cut.search(q, k=10, exact=True)
    assert np.array_equal(_ids(a, 200, 10), _ids(b, 200, 10))
    r1 = _recall(one.search(queries, k=10, ef=32), truth)
    r2 = _recall(cut.search(queries, k=10, ef=32), truth)
    assert r2 >= r1 - 0.01, (r1, r2)
    # max_segment_rows cuts too
    rows = lakevec.build_index(str(path), "vector", metric="cosine", name="rows", max_segment_rows=3000, progress=False)
    assert rows.stats()["segments"] == 6
    assert rows.search(q, k=10, exact=True).column("_row").to_pylist() == a.column("_row").to_pylist()


def test_a_budget_cut_index_refreshes_and_compacts(minilm_files, tmp_path):
    path, queries, _ = minilm_files
    idx = lakevec.build_index(
        str(path),
        "vector",
        metric="cosine",
        key="id",
        name="rc",
        max_segment_rows=4000,
        progress=False,
    )
    assert idx.stats()["segments"] == 4  # 3 files of ~1,000 rows each
    # within a budget: pairs of segments (6,000 rows) merge
    assert idx.compact(max_segment_rows=6100) is True
    assert idx.stats()["segments"] == 2
    assert idx.stats()["last_commit"]["segments_removed"] == 4
    assert idx.compact(max_segment_rows=6100) is False
    assert idx.compact() is True
    assert idx.stats()["segments"] == 1
    q = queries[:50]
    want = lakevec.build_index(str(path), "vector", metric="cosine", key="id", name="rc2", progress=False)
    assert (
        idx.search(q, k=5, exact=True).column("id").to_pylist()
        == want.search(q, k=5, exact=True).column("id").to_pylist()
    )


def test_refresh_within_a_budget_adds_several_segments(minilm_files, tmp_path):
    path, queries, truth = minilm_files
    base = lakevec.Table.open(str(path)).to_arrow()
    t = tmp_path / "grow"
    deltalake.write_deltalake(str(t), base.slice(0, 2000))
    idx = lakevec.build_index(str(t), "vector", metric="cosine", key="id", progress=False)
    for start in range(2000, 8000, 1500):
        deltalake.write_deltalake(str(t), base.slice(start, 1500), mode="append")
    assert idx.refresh(max_segment_rows=3100) is True
    st = idx.stats()
    assert (st["segments"], st["rows"], st["last_commit"]["segments_added"]) == (3, 8000, 2)
    want = lakevec.build_index(str(t), "vector", metric="cosine", key="id", name="w", progress=False)
    q = queries[:50]
    assert (
        idx.search(q, k=5, exact=True).column("id").to_pylist()
        == want.search(q, k=5, exact=True).column("id").to_pylist()
    )


def test_memory_limit_sizes_are_parsed_and_checked(tmp_path):
    t = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(80, np.float32)), 8)})
    deltalake.write_deltalake(str(tmp_path / "t"), t)
    for bad in ["lots", "4 parsecs", -1, True]:
        with pytest.raises(E.InvalidArgumentError, match="memory_limit"):
            lakevec.build_index(str(tmp_path / "t"), "vector", memory_limit=bad, progress=False)
    with pytest.raises(E.InvalidArgumentError, match="at least 16 MiB"):
        lakevec.build_index(str(tmp_path / "t"), "vector", memory_limit="1MB", progress=False)
    # zero, negatives and bools are InvalidArgumentError everywhere (not OverflowError/TypeError)
    for bad in [0, -1, True]:
        with pytest.raises(E.InvalidArgumentError, match="max_segment_rows"):
            lakevec.build_index(str(tmp_path / "t"), "vector", max_segment_rows=bad, progress=False)
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", memory_limit=64 * 2**20, progress=False)
    assert idx.stats()["rows"] == 10
    for call in (idx.refresh, idx.compact):
        with pytest.raises(E.InvalidArgumentError, match="max_segment_rows"):
            call(max_segment_rows=-1, progress=False)


def test_open_reads_manifests_only_and_maps_segments_on_first_use(minilm_files):
    path, queries, _ = minilm_files
    built = lakevec.build_index(
        str(path), "vector", metric="cosine", key="id", name="lazy", max_segment_rows=5000, progress=False
    )
    idx = lakevec.open_index(lakevec.Table.open(str(path)), "lazy")
    st = idx.stats()
    assert (st["segments"], st["segments_loaded"], st["mapped_bytes"]) == (3, 0, 0)
    assert st["rows"] == 12052 and st["vector_bytes"] == 12052 * 384 * 4
    res = idx.search(queries[:5], k=3)
    assert res.num_rows == 15
    st = idx.stats()
    assert st["segments_loaded"] == 3
    # local segment files are mapped, not read into memory
    assert st["mapped_bytes"] == sum(s["file"]["bytes"] for s in read_manifest(idx)["segments"])
    assert res.column("id").to_pylist() == built.search(queries[:5], k=3).column("id").to_pylist()


def test_two_processes_map_the_same_segments(minilm_files):
    path, queries, _ = minilm_files
    lakevec.build_index(str(path), "vector", metric="cosine", key="id", name="shared", progress=False)
    code = textwrap.dedent(
        f"""
        import numpy as np, lakevec
        idx = lakevec.open_index(lakevec.Table.open({str(path)!r}), "shared")
        q = np.load({str(path / "q.npy")!r})
        print(idx.search(q, k=3, exact=True).column("id").to_pylist())
        """
    )
    np.save(path / "q.npy", queries[:4])
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] and outs[0].startswith("[")


def test_consistency_interval(tmp_path):
    rng = np.random.default_rng(0)

    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, _batch(rng, 0, 100))
    lakevec.build_index(path, "vector", key="id", progress=False)
    strong = lakevec.open_index(lakevec.Table.open(path))
    lazy = lakevec.open_index(lakevec.Table.open(path), consistency_interval=datetime.timedelta(hours=1))
    assert strong.consistency_interval == 0 and lazy.consistency_interval == 3600
    new = _batch(rng, 100, 5)
    q = np.stack(new.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    strong.search(q, k=1)
    lazy.search(q, k=1)  # the view of the table both confirmed
    deltalake.write_deltalake(path, new, mode="append")
    # interval 0: the append is seen at once (its rows found exactly)
    assert strong.search(q, k=1).column("id").to_pylist() == list(range(100, 105))
    # a long interval keeps serving the view it confirmed, without looking at the table
    assert 100 not in lazy.search(q, k=1).column("id").to_pylist()
    lazy.reload()
    assert lazy.search(q, k=1).column("id").to_pylist() == list(range(100, 105))
    # a short interval sees it once the interval elapsed
    short = lakevec.open_index(lakevec.Table.open(path), consistency_interval=0.2)
    short.search(q, k=1)
    last = _batch(rng, 105, 1)
    deltalake.write_deltalake(path, last, mode="append")
    time.sleep(0.3)
    q2 = np.stack(last.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    assert short.search(q2, k=1).column("id").to_pylist() == [105]
    with pytest.raises(E.InvalidArgumentError, match="consistency_interval"):
        lakevec.open_index(lakevec.Table.open(path), consistency_interval=-1)


def test_vacuum_deletes_what_no_retained_version_needs(tmp_path):
    rng = np.random.default_rng(1)

    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, _batch(rng, 0, 200))
    idx = lakevec.build_index(path, "vector", key="id", progress=False)
    folder = tmp_path / "t" / "_lakevec_index" / "default"
    deltalake.write_deltalake(path, _batch(rng, 200, 50), mode="append")
    idx.refresh()
    # readers of version 2: one has loaded its segments, one has not
    loaded = lakevec.open_index(lakevec.Table.open(path), version=2)
    q = np.zeros((1, 8), np.float32)
    before = loaded.search(q, k=5, stale="ignore").column("id").to_pylist()
    unloaded = lakevec.open_index(lakevec.Table.open(path), version=2)
    idx.compact()
    assert idx.version == 3 and idx.stats()["segments"] == 1
    # the files of a build killed before it committed, and a file that is not lakevec's
    seg = next((folder / "segments").iterdir())
    orphan = folder / "segments" / "orphan-of-a-killed-build.lkv"
    orphan.write_bytes(seg.read_bytes())
    (folder / "README.txt").write_text("not lakevec's")
    # everything is younger than a day: nothing to do
    assert idx.vacuum().num_rows == 0
    plan = idx.vacuum(retain=0, dry_run=True).to_pylist()
    assert {r["kind"] for r in plan} == {"manifest", "segment"}
    assert not any(r["deleted"] for r in plan)
    assert "segments/orphan-of-a-killed-build.lkv" in [r["path"] for r in plan]
    assert sorted(r["path"] for r in plan if r["kind"] == "manifest") == [f"manifests/{v:020}.json" for v in (1, 2)]
    assert orphan.exists()
    done = idx.vacuum(retain=datetime.timedelta(0))
    assert done.to_pylist() == [dict(r, deleted=True) for r in plan]
    assert not orphan.exists() and (folder / "README.txt").exists()
    # the newest version and what it lists are intact; nothing is left to delete
    kept = {s["file"]["path"] for s in read_manifest(idx)["segments"]}
    assert {f"segments/{p.name}" for p in (folder / "segments").iterdir()} == kept
    fresh = lakevec.open_index(lakevec.Table.open(path))
    assert fresh.version == 3
    assert fresh.search(q, k=5).column("id").to_pylist() == idx.search(q, k=5).column("id").to_pylist()
    assert idx.vacuum(retain=0).num_rows == 0
    # the reader that had loaded version 2 keeps working; the other gets a clear error
    assert loaded.search(q, k=5, stale="ignore").column("id").to_pylist() == before
    with pytest.raises(E.CorruptIndexError, match="missing"):
        unloaded.search(q, k=5, stale="ignore")
    with pytest.raises(E.InvalidArgumentError, match="retain"):
        idx.vacuum(retain=-1)


@pytest.mark.s3
def test_a_segment_over_64_mib_goes_to_s3_by_multipart_upload(s3_lake, tmp_path):
    """A segment file above the single-PUT size (64 MiB) is uploaded in parts and reads back
    verified (size and CRC-32 from the manifest)."""
    n, dim = 45_000, 384  # 69 MB of float32 vectors
    v = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    t = pa.table(
        {"id": np.arange(n, dtype=np.int64), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)}
    )
    local = tmp_path / "big"
    deltalake.write_deltalake(str(local), t)
    s3_lake.s3.create_bucket(Bucket="multi")
    s3_lake.upload_dir(local, "big", bucket="multi")
    opts = s3_lake.options()
    idx = lakevec.build_index(
        "s3://multi/big", "vector", key="id", index_type="flat", storage_options=opts, progress=False
    )
    assert idx.stats()["segments"] == 1
    seg = read_manifest_s3(s3_lake, "multi", "big/_lakevec_index/default")["segments"][0]["file"]
    assert seg["bytes"] > 64 * 2**20
    head = s3_lake.s3.head_object(Bucket="multi", Key=f"big/_lakevec_index/default/{seg['path']}")
    assert "-" in head["ETag"]  # a multipart upload's ETag: "<md5 of part md5s>-<parts>"
    again = lakevec.open_index("s3://multi/big/_lakevec_index/default", storage_options=opts)
    assert again.search(v[[7, 40_000]], k=1, stale="ignore").column("id").to_pylist() == [7, 40_000]


def read_manifest_s3(s3_lake, bucket: str, prefix: str) -> dict:
    import json

    keys = [o["Key"] for o in s3_lake.s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/manifests/")["Contents"]]
    body = s3_lake.s3.get_object(Bucket=bucket, Key=sorted(keys)[-1])["Body"].read()
    return json.loads(body)["manifest"]


def test_queries_as_numpy_float32_arrow_or_lists_give_the_same_hits(minilm_files):
    """A float32 numpy vector or matrix goes to the core without an Arrow array; every other
    form of the same queries returns the same table, and a wrong width is a VectorError."""
    path, queries, _ = minilm_files
    idx = lakevec.build_index(str(path), "vector", metric="cosine", key="id", name="forms", progress=False)
    q = queries[:3]
    want = idx.search(pa.FixedSizeListArray.from_arrays(pa.array(q.ravel()), 384), k=4, stale="ignore")
    for form in (q, q.astype(np.float64), np.asfortranarray(q), q.tolist(), pa.table({"v": list(q)})):
        assert idx.search(form, k=4, stale="ignore").equals(want)
    one = idx.search(q[1], k=4, stale="ignore")
    assert one.column("id").to_pylist() == want.column("id").to_pylist()[4:8]
    assert one.schema == want.schema
    with pytest.raises(E.VectorError, match="383"):
        idx.search(q[:, :383].copy(), k=4)
    with pytest.raises(E.VectorError, match="NaN|nan|finite"):
        idx.search(np.full(384, np.nan, np.float32), k=4)
