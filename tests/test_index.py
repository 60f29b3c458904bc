"""Vector index: recall on the shared ANN sets (Delta and Parquet), exact search, filtered
search, columns fetched from the lake, bad input, pickling, forked and spawned children."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E
from lakevec.testing import LakeTables, MotoS3, assert_index_covers, assert_recall

from conftest import load_ann

deltalake = pytest.importorskip("deltalake")


def _recall(res: pa.Table, truth, key="id", k=10) -> float:
    ids = res.column(key).to_numpy()
    qs = res.column("query").to_numpy()
    hits = sum(1 for qi, i in zip(qs, ids) if i in truth[qi])
    return hits / (len(truth) * k)


@pytest.fixture(scope="module")
def ann_sets(shared_data, tmp_path_factory):
    """MiniLM (cosine as Delta, dot as Parquet) and MNIST (L2 as Delta and as Parquet)."""
    tables = LakeTables(tmp_path_factory.mktemp("ann"))
    out = {}
    for name, fmt, metric in [
        ("minilm", "delta", "cosine"),
        ("minilm", "parquet", "dot"),
        ("mnist", "delta", "l2"),
        ("mnist", "parquet", "l2"),
    ]:
        base, queries, truth = load_ann(shared_data, name)
        if fmt == "delta":
            t = tables(base, "delta", name=f"{name}_{fmt}")
        else:
            # Three files, to index several data files.
            n = base.num_rows
            parts = [base.slice(a, b - a) for a, b in [(0, n // 3), (n // 3, 2 * n // 3), (2 * n // 3, n)]]
            t = tables(parts[0], "parquet", name=f"{name}_{fmt}", appends=parts[1:])
            assert t.files().num_rows == 3
        path = Path(t.uri)
        idx = lakevec.build_index(str(path), "vector", metric=metric, key="id", progress=False)
        out[(name, fmt)] = (path, idx, queries, truth, base)
    return out


@pytest.mark.parametrize(
    "name,fmt", [("minilm", "delta"), ("minilm", "parquet"), ("mnist", "delta"), ("mnist", "parquet")]
)
def test_recall_against_ground_truth(ann_sets, name, fmt):
    path, idx, queries, truth, base = ann_sets[(name, fmt)]
    assert idx.stats()["rows"] == base.num_rows
    recalls = {}
    for ef in (16, 32, 128):
        res = idx.search(queries, k=10, ef=ef)
        assert res.num_rows == 10 * len(truth)
        recalls[ef] = _recall(res, truth)
    print(f"{name}/{fmt} recall@10 by ef: {recalls}")
    assert max(recalls.values()) >= 0.99, recalls
    assert min(r for r in recalls.values() if r >= 0.95) >= 0.95
    assert recalls[32] >= 0.95, recalls
    # the same, against the index's own exact search (lakevec.testing)
    assert assert_recall(idx, queries, k=10, at_least=0.95, ef=32) >= 0.95
    assert_index_covers(idx, lakevec.Table.open(str(path)))
    exact = idx.search(queries, k=10, exact=True)
    assert _recall(exact, truth) == 1.0
    # distances ascend within each query
    d = exact.column("distance").to_numpy().reshape(-1, 10)
    assert (np.diff(d, axis=1) >= 0).all()


def test_search_result_shape_and_addresses(ann_sets):
    path, idx, queries, truth, base = ann_sets[("mnist", "parquet")]
    res = idx.search(queries[:3], k=5, stale="ignore")
    assert res.column_names == ["query", "rank", "distance", "_file", "_row", "id"]
    assert res.column("rank").to_pylist() == [1, 2, 3, 4, 5] * 3
    # every hit's address holds the id the index returned, and the distance is the L2²
    t = lakevec.Table.open(str(path))
    rows = t.take(res, columns=["id", "vector"])
    assert rows.column("id").to_pylist() == res.column("id").to_pylist()
    vecs = np.stack(rows.column("vector").to_numpy(zero_copy_only=False))
    qs = queries[res.column("query").to_numpy()]
    np.testing.assert_allclose(((vecs - qs) ** 2).sum(1), res.column("distance").to_numpy(), rtol=1e-4)
    # one vector, a list and an Arrow array are all accepted
    one = idx.search(queries[0], k=3)
    assert one.num_rows == 3 and set(one.column("query").to_pylist()) == {0}
    arr = pa.FixedSizeListArray.from_arrays(pa.array(queries[:2].ravel()), queries.shape[1])
    assert idx.search(arr, k=3).num_rows == 6
    assert idx.search(pa.table({"q": arr}), k=3).num_rows == 6


def test_columns_come_from_the_lake(ann_sets):
    path, idx, queries, truth, base = ann_sets[("minilm", "delta")]
    res = idx.search(queries[:20], k=10, columns=["id", "vector"])
    assert res.num_rows == 200
    taken = lakevec.Table.open(str(path)).take(res, columns=["id", "vector"])
    assert res.column("vector").to_pylist() == taken.column("vector").to_pylist()
    assert res.column("id").to_pylist() == taken.column("id").to_pylist()


@pytest.fixture(scope="module")
def labelled(shared_data, tmp_path_factory):
    base, queries, truth = load_ann(shared_data, "minilm")
    ids = base.column("id").to_numpy()
    base = base.append_column("half", pa.array(ids % 2, pa.int64()))
    base = base.append_column("tenth", pa.array(ids % 10, pa.int64()))
    base = base.append_column("hundredth", pa.array(ids % 100, pa.int64()))
    path = Path(LakeTables(tmp_path_factory.mktemp("labelled"))(base, "delta").uri)
    idx = lakevec.build_index(str(path), "vector", metric="cosine", key="id", progress=False)
    return path, idx, queries[:200], base


@pytest.mark.parametrize("col,frac", [("half", 0.5), ("tenth", 0.1), ("hundredth", 0.01)])
def test_filtered_search(labelled, col, frac):
    path, idx, queries, base = labelled
    flt = f"{col} = 1"
    allowed = set(pc.filter(base.column("id"), pc.equal(base.column(col), 1)).to_pylist())
    assert abs(len(allowed) / base.num_rows - frac) < 0.01
    got = idx.search(queries, k=10, ef=128, filter=flt, columns=[col])
    exact = idx.search(queries, k=10, filter=flt, exact=True)
    # every result satisfies the filter, and k come back for every query
    assert set(got.column(col).to_pylist()) == {1}
    assert set(got.column("id").to_pylist()) <= allowed
    assert got.num_rows == 10 * len(queries)
    truth = [set() for _ in range(len(queries))]
    for q, i in zip(exact.column("query").to_pylist(), exact.column("id").to_pylist()):
        truth[q].add(i)
    r = _recall(got, truth)
    print(f"filter {flt}: recall@10 vs exact filtered = {r:.4f}")
    assert r >= 0.95


def test_filter_fewer_rows_than_k(labelled):
    path, idx, queries, base = labelled
    res = idx.search(queries[:4], k=10, filter="id < 3")
    assert res.num_rows == 12
    assert sorted(set(res.column("id").to_pylist())) == [0, 1, 2]
    assert idx.search(queries[:4], k=10, filter="id < 0").num_rows == 0
    with pytest.raises(E.FilterError):
        idx.search(queries[:1], k=3, filter="no_such_column = 1")


def test_bad_queries_are_clear_errors(ann_sets):
    path, idx, queries, truth, base = ann_sets[("minilm", "delta")]
    with pytest.raises(E.VectorError, match="dimension 3, expected 384"):
        idx.search(np.ones(3, np.float32))
    bad = queries[:3].copy()
    bad[2, 5] = np.nan
    with pytest.raises(E.VectorError, match="query 2.*NaN"):
        idx.search(bad)
    bad[2, 5] = np.inf
    with pytest.raises(E.VectorError, match="query 2.*inf"):
        idx.search(bad)
    with pytest.raises(E.VectorError, match="all zeros"):
        idx.search(np.zeros(384, np.float32))
    with pytest.raises(E.InvalidArgumentError):
        idx.search(queries[:1], k=0)
    with pytest.raises(E.InvalidArgumentError, match="stale"):
        idx.search(queries[:1], stale="sometimes")


def test_every_query_form_gives_the_same_hits(ann_sets):
    """A native float32 vector is read in place by the core; every other form (big-endian,
    float64, 2-D, Arrow) is converted first: all give the same hits."""
    path, idx, queries, truth, base = ann_sets[("minilm", "delta")]
    q = np.ascontiguousarray(queries[7], dtype=np.float32)
    want = idx.search(q, k=10, ef=32, stale="ignore", num_threads=1)
    forms = {
        "big-endian": q.astype(">f4"),
        "float64": q.astype(np.float64),
        "2-D": q[None, :],
        "strided": np.repeat(q, 2)[::2],
        "arrow": pa.FixedSizeListArray.from_arrays(pa.array(q), 384),
    }
    for name, form in forms.items():
        got = idx.search(form, k=10, ef=32, stale="ignore", num_threads=1)
        assert got.column("_row").to_pylist() == want.column("_row").to_pylist(), name
        assert np.allclose(got.column("distance").to_numpy(), want.column("distance").to_numpy(), atol=1e-6), name


def _vec_table(n, dim=8, seed=0, nan_rows=()):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    for r in nan_rows:
        v[r, 0] = np.nan
    return pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "name": [f"r{i}" for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim),
        }
    ), v


def test_bad_tables_are_clear_errors(lake_table, tmp_path):
    t, _ = _vec_table(50, nan_rows=[17])
    p = lake_table(t, "delta", name="nan").uri
    with pytest.raises(E.VectorError, match=r"column 'vector', data file '.*\.parquet' row 17: .*NaN"):
        lakevec.build_index(str(p), "vector", progress=False)
    idx = lakevec.build_index(str(p), "vector", progress=False, on_invalid="skip", key="id")
    assert idx.stats()["rows"] == 49 and idx.stats()["last_commit"]["rows_skipped"] == 1
    assert 17 not in idx.search(np.zeros(8, np.float32), k=50).column("id").to_pylist()
    with pytest.raises(E.SchemaError, match="'nope' not found"):
        lakevec.build_index(str(p), "nope", progress=False)
    with pytest.raises(E.VectorError, match="'name' is not a vector column"):
        lakevec.build_index(str(p), "name", progress=False)
    with pytest.raises(E.SchemaError, match="key column 'nokey'"):
        lakevec.build_index(str(p), "vector", key="nokey", progress=False)
    with pytest.raises(E.InvalidArgumentError, match="metric"):
        lakevec.build_index(str(p), "vector", metric="hamming", progress=False)
    with pytest.raises(E.InvalidArgumentError, match="m must be"):
        lakevec.build_index(str(p), "vector", m=1000, progress=False)
    empty = lake_table(t.slice(0, 0), "delta", name="empty")
    with pytest.raises(E.VectorError, match="no valid vectors"):
        lakevec.build_index(empty.uri, "vector", progress=False)
    with pytest.raises(E.TableNotFoundError, match="no lakevec index"):
        lakevec.open_index(str(tmp_path / "nowhere"))
    # a table's URI where an index URI is expected: the error says what to pass
    with pytest.raises(E.TableNotFoundError, match=r"open its index with lakevec.open_index\(lakevec.Table.open\("):
        lakevec.open_index(str(p))


def test_list_and_float64_columns(tmp_path):
    n, dim = 300, 6
    rng = np.random.default_rng(3)
    v = rng.standard_normal((n, dim))
    t = pa.table({"id": np.arange(n), "emb": pa.array(list(v), pa.list_(pa.float64()))})
    pq.write_table(t, tmp_path / "t.parquet")
    idx = lakevec.build_index(str(tmp_path / "t.parquet"), "emb", key="id", progress=False)
    assert "_lakevec_index" in idx.uri and idx.dim == dim
    res = idx.search(v[:5].astype(np.float32), k=1)
    assert res.column("id").to_pylist() == [0, 1, 2, 3, 4]
    ragged = pa.table({"id": [0, 1], "emb": pa.array([[1.0, 2.0], [1.0]], pa.list_(pa.float32()))})
    pq.write_table(ragged, tmp_path / "r.parquet")
    with pytest.raises(E.VectorError, match="row 1: the vector has dimension 1, expected 2"):
        lakevec.build_index(str(tmp_path / "r.parquet"), "emb", progress=False)


def test_knn_graph(ann_sets):
    path, idx, queries, truth, base = ann_sets[("mnist", "parquet")]
    g = idx.knn_graph(k=5)
    assert g.column_names == ["src_file", "src_row", "dst_file", "dst_row", "distance", "rank"]
    assert g.num_rows == 5 * base.num_rows
    src = list(zip(g.column("src_file").to_pylist(), g.column("src_row").to_pylist()))
    dst = list(zip(g.column("dst_file").to_pylist(), g.column("dst_row").to_pylist()))
    assert all(s != d for s, d in zip(src, dst))
    # compare the first rows' neighbours with exact search
    t = lakevec.Table.open(str(path))
    first = t.take(pa.table({"_file": [s[0] for s in src[:50:5]], "_row": [s[1] for s in src[:50:5]]}), ["vector"])
    vq = np.stack(first.column("vector").to_numpy(zero_copy_only=False))
    ex = idx.search(vq, k=6, exact=True)
    hits = 0
    for qi in range(10):
        want = set(
            zip(*[ex.filter(pc.equal(ex.column("query"), qi)).column(c).to_pylist() for c in ("_file", "_row")])
        ) - {src[qi * 5]}
        got = set(dst[qi * 5 : (qi + 1) * 5])
        hits += len(want & got)
    assert hits / 50 >= 0.9


def test_pickle_is_a_small_handle(ann_sets):
    path, idx, queries, truth, base = ann_sets[("mnist", "delta")]
    blob = pickle.dumps(idx)
    assert len(blob) < 600
    again = pickle.loads(blob)
    assert again.version == idx.version and again.uri == idx.uri
    code = (
        "import pickle,sys,numpy as np; idx=pickle.loads(sys.stdin.buffer.read()); "
        "r=idx.search(np.zeros(784,np.float32),k=3); print(r.num_rows, idx.version)"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.split() == [b"3", str(idx.version).encode()]


def _child_search(args):
    uri, q = args
    idx = lakevec.open_index(uri)
    return idx.search(q, k=3).column("id").to_pylist()


def test_forked_and_spawned_children(ann_sets):
    path, idx, queries, truth, base = ann_sets[("mnist", "delta")]
    expected = idx.search(queries[:2], k=3).column("id").to_pylist()  # starts the pools here
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool:
            r = pool.map_async(_child_search, [(idx.uri, queries[:2])] * 2)
            assert r.get(timeout=120) == [expected, expected], method
    # a forked child using the parent's (pickled-by-fork) index object directly
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            ok = idx.search(queries[:2], k=3).column("id").to_pylist() == expected
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    import time

    deadline = time.time() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            pytest.fail("forked child hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.s3
def test_s3_index_with_columns(s3_lake, lake_table):
    t, v = _vec_table(400, dim=8, seed=5)
    opts = s3_lake.options()
    table = lake_table(t, "delta", s3=s3_lake)
    assert table.uri.startswith(f"s3://{s3_lake.bucket}/")
    idx = lakevec.build_index(table, "vector", key="id", progress=False)
    assert idx.uri.startswith(f"{table.uri}/_lakevec_index/default")
    assert s3_lake.secret not in repr(idx) and s3_lake.secret.encode() not in pickle.dumps(idx)
    res = idx.search(v[:10], k=3, columns=["name", "vector"])
    assert res.column("id").to_pylist()[::3] == list(range(10))
    assert res.column("name").to_pylist() == table.take(res, ["name"]).column("name").to_pylist()
    again = lakevec.open_index(f"{table.uri}/_lakevec_index/default", storage_options=opts)
    assert again.search(v[:10], k=1).column("id").to_pylist() == list(range(10))
    with pytest.raises(E.StoragePermissionError):
        lakevec.open_index(again.uri, storage_options=s3_lake.options(secret="wrong"))


@pytest.fixture(scope="module")
def open_moto():
    """A moto S3 server that does not check signatures (the fault proxy rewrites the Host
    header, which would break SigV4)."""
    pytest.importorskip("moto")
    with MotoS3(auth=False) as server:
        yield server


def _fault_proxy(moto: MotoS3):
    """The fault proxy of ../shared/tools in front of ``moto``; returns (proxy, its port)."""
    import importlib.util

    from conftest import SHARED

    spec = importlib.util.spec_from_file_location("s3_fault_proxy", SHARED / "tools" / "s3_fault_proxy.py")
    if spec is None or not (SHARED / "tools" / "s3_fault_proxy.py").exists():
        pytest.skip("../shared/tools/s3_fault_proxy.py not found")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    proxy = mod.FaultProxy(upstream_port=moto.port, listen_port=0).start()
    return proxy, proxy.server.server_address[1]


@pytest.mark.parametrize("action", ["ack_then_drop", "status:409:ConditionalRequestConflict", "503_slowdown"])
@pytest.mark.s3
def test_ambiguous_manifest_commit_on_s3(open_moto, lake_table, action):
    """The manifest PUT lands but its answer is lost (or a 409/503 comes back): the commit
    reads the manifest back, finds its own writer id and succeeds; the index is whole."""
    t, v = _vec_table(200, dim=8, seed=6)
    local = lake_table(t, "delta").uri
    bucket = "amb" + str(abs(hash(action)) % 10_000)
    open_moto.s3.create_bucket(Bucket=bucket)
    open_moto.upload_dir(local, "t", bucket=bucket)
    proxy, port = _fault_proxy(open_moto)
    try:
        # the server's (not checked) key, through the proxy
        opts = dict(open_moto.options(), aws_endpoint=f"http://127.0.0.1:{port}")
        table = lakevec.Table.open(f"s3://{bucket}/t", opts)
        proxy.rules.append({"method": "PUT", "path_substr": "/manifests/", "action": action, "times": 1})
        idx = lakevec.build_index(table, "vector", key="id", progress=False)
        assert any(a == action for _, _, a in proxy.log), proxy.log
        again = lakevec.open_index(idx.uri, storage_options=opts)
        assert again.version == idx.version == 1
        assert again.search(v[:5], k=1).column("id").to_pylist() == [0, 1, 2, 3, 4]
        # the same for a refresh commit
        deltalake.write_deltalake(local, _vec_table(50, dim=8, seed=7)[0], mode="append")
        open_moto.upload_dir(local, "t", bucket=bucket)
        proxy.rules.append({"method": "PUT", "path_substr": "/manifests/", "action": action, "times": 1})
        assert again.refresh() is True
        assert lakevec.open_index(idx.uri, storage_options=opts).version == 2
    finally:
        proxy.stop()


def test_absurd_k_or_ef_is_an_argument_error(ann_sets):
    """Huge or zero k, huge ef: InvalidArgumentError (they aborted the process)."""
    path, idx, queries, truth, base = ann_sets[("mnist", "parquet")]
    for kw in ({"k": 10**14}, {"k": 3, "ef": 2**62}, {"k": 0}):
        with pytest.raises(E.InvalidArgumentError):
            idx.search(queries[:1], stale="ignore", **kw)
    with pytest.raises(E.InvalidArgumentError):
        idx.knn_graph(k=2**63)


def test_build_index_refuses_a_glob(ann_sets):
    path, idx, queries, truth, base = ann_sets[("mnist", "parquet")]
    with pytest.raises(E.UnsupportedFeatureError, match="glob"):
        lakevec.build_index(str(path) + "/part-0*.parquet", "vector", progress=False)
