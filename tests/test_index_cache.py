"""The segment cache of object-store indexes: downloaded once, verified, mapped, shared by
processes, bounded with LRU eviction, refetched when damaged."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pyarrow as pa
import pytest
from test_index_scale import read_manifest_s3

import lakevec
from lakevec import exceptions as E

deltalake = pytest.importorskip("deltalake")

pytestmark = pytest.mark.s3

N, DIM = 3000, 32


@pytest.fixture(scope="module")
def s3_index(s3_lake, tmp_path_factory):
    """A Delta table on moto S3 with two indexes ("a": HNSW, "b": flat), built from a local
    copy; returns (storage options, vectors, index URI of "a", segment file entries)."""
    v = np.random.default_rng(11).standard_normal((N, DIM)).astype(np.float32)
    t = pa.table(
        {"id": np.arange(N, dtype=np.int64), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)}
    )
    local = tmp_path_factory.mktemp("cache-lake") / "t"
    deltalake.write_deltalake(str(local), t)
    s3_lake.s3.create_bucket(Bucket="cache")
    s3_lake.upload_dir(local, "t", bucket="cache")
    opts = s3_lake.options()
    for name, kind in (("a", "hnsw"), ("b", "flat")):
        lakevec.build_index(
            "s3://cache/t", "vector", key="id", name=name, index_type=kind, storage_options=opts, progress=False
        )
    segs = {n: read_manifest_s3(s3_lake, "cache", f"t/_lakevec_index/{n}")["segments"][0]["file"] for n in "ab"}
    return opts, v, "s3://cache/t/_lakevec_index/{}", segs


def _entries(d):
    return sorted(p for p in d.iterdir()) if d.exists() else []


def test_a_segment_is_downloaded_once_verified_and_mapped(s3_index, tmp_path):
    opts, v, uri, segs = s3_index
    cache = tmp_path / "cache"
    idx = lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=cache)
    st = idx.stats()
    assert (st["segments_loaded"], st["resident_bytes"], st["cache_dir"]) == (0, 0, str(cache))
    assert _entries(cache) == []
    # exact: this test is about the segment file (a graph walk may miss a row; recall is tested elsewhere)
    assert idx.search(v[[5, 77]], k=1, stale="ignore", exact=True).column("id").to_pylist() == [5, 77]
    (entry,) = _entries(cache)
    assert entry.stat().st_size == segs["a"]["bytes"]
    assert zlib.crc32(entry.read_bytes()) == segs["a"]["crc32"]
    st = idx.stats()
    assert st["mapped_bytes"] == segs["a"]["bytes"]
    assert 0 < st["resident_bytes"] <= st["mapped_bytes"] + st["vector_bytes"]
    # a second opening (another process) maps the cached file: no new download replaces it
    inode = entry.stat().st_ino
    code = textwrap.dedent(
        f"""
        import numpy as np, lakevec
        idx = lakevec.open_index({uri.format("a")!r}, storage_options={opts!r}, cache_dir={str(cache)!r})
        q = np.load({str(tmp_path / "q.npy")!r})
        print(idx.search(q, k=1, stale="ignore", exact=True).column("id").to_pylist())
        """
    )
    np.save(tmp_path / "q.npy", v[[9]])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[9]"
    assert [e.stat().st_ino for e in _entries(cache)] == [inode]


def test_two_processes_fill_and_map_one_cache(s3_index, tmp_path):
    opts, v, uri, _ = s3_index
    cache = tmp_path / "cache"
    np.save(tmp_path / "q.npy", v[[1, 2, 3]])
    code = textwrap.dedent(
        f"""
        import numpy as np, lakevec
        idx = lakevec.open_index({uri.format("a")!r}, storage_options={opts!r}, cache_dir={str(cache)!r})
        q = np.load({str(tmp_path / "q.npy")!r})
        print(idx.search(q, k=2, stale="ignore", exact=True).column("id").to_pylist())
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and outs[0].startswith("[1, ")
    assert [e.suffix for e in _entries(cache)] == [".lkv"]  # one entry, no temporary file left


def test_a_damaged_cache_file_is_fetched_again(s3_index, tmp_path):
    opts, v, uri, segs = s3_index
    cache = tmp_path / "cache"
    lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=cache).search(v[:1], k=1, stale="ignore")
    (entry,) = _entries(cache)
    good = entry.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    entry.write_bytes(bytes(bad))
    idx = lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=cache)
    assert idx.search(v[[42]], k=1, stale="ignore", exact=True).column("id").to_pylist() == [42]
    (entry,) = _entries(cache)
    assert entry.read_bytes() == good and zlib.crc32(good) == segs["a"]["crc32"]


def test_least_recently_used_segments_make_room(s3_index, tmp_path):
    opts, v, uri, segs = s3_index
    cache = tmp_path / "cache"
    room = max(segs["a"]["bytes"], segs["b"]["bytes"]) + 100  # one segment at a time
    a = lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=cache, cache_bytes=room)
    a.search(v[:1], k=1, stale="ignore")
    b = lakevec.open_index(uri.format("b"), storage_options=opts, cache_dir=cache, cache_bytes=room)
    assert b.search(v[[3]], k=1, stale="ignore").column("id").to_pylist() == [3]
    (entry,) = _entries(cache)
    assert entry.stat().st_size == segs["b"]["bytes"]
    # a's evicted file stays mapped and readable by the index that loaded it
    assert a.search(v[[4]], k=1, stale="ignore", exact=True).column("id").to_pylist() == [4]


def test_a_segment_larger_than_the_cache_is_refused(s3_index, tmp_path):
    opts, v, uri, segs = s3_index
    cache = tmp_path / "cache"
    idx = lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=cache, cache_bytes="1KB")
    with pytest.raises(E.InvalidArgumentError, match=r"cache_bytes=1000.*larger cache_bytes"):
        idx.search(v[:1], k=1, stale="ignore")
    assert _entries(cache) == []
    with pytest.raises(E.InvalidArgumentError, match="cache_bytes"):
        lakevec.open_index(uri.format("a"), storage_options=opts, cache_bytes=-1)


def test_cache_off_holds_segments_in_memory(s3_index):
    opts, v, uri, segs = s3_index
    idx = lakevec.open_index(uri.format("a"), storage_options=opts, cache_bytes=0)
    assert idx.search(v[[8]], k=1, stale="ignore", exact=True).column("id").to_pylist() == [8]
    st = idx.stats()
    assert (st["cache_dir"], st["mapped_bytes"]) == (None, 0)
    assert st["resident_bytes"] >= segs["a"]["bytes"]


def test_a_pickled_index_keeps_its_cache_options(s3_index, tmp_path, monkeypatch):
    opts, v, uri, _ = s3_index
    idx = lakevec.open_index(uri.format("a"), storage_options=opts, cache_dir=tmp_path / "c", cache_bytes="64MB")
    # a pickle carries no credentials: the receiving process has its own (here: environment)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", opts["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", opts["aws_secret_access_key"])
    back = pickle.loads(pickle.dumps(idx))
    assert back._cache == (str(tmp_path / "c"), 64_000_000)
    assert back.stats()["cache_dir"] == str(tmp_path / "c")
    # the default folder: LAKEVEC_CACHE_DIR (set for the test session by conftest)
    plain = lakevec.open_index(uri.format("a"), storage_options=opts)
    assert plain.stats()["cache_dir"] == os.environ["LAKEVEC_CACHE_DIR"]
