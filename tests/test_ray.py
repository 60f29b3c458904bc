"""lakevec on a real local Ray cluster (``ray.init(num_cpus=2)``): lake tables as Datasets,
UDFs in workers, indexes built and searched by Ray tasks, distributed MinHash dedup, and
what crosses process boundaries (pickles, exceptions)."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import load_ann

ray = pytest.importorskip("ray")
deltalake = pytest.importorskip("deltalake")
import lakevec.ray as lray  # noqa: E402

pytestmark = pytest.mark.ray

RULES = {"python": r"\bpython\b", "game": [r"\bgames?\b", r"\bpuzzle\b"], "lib": r"\blibrary\b"}
KEYWORDS = {"docs": ["documentation", "manual"], "fonts": ["font", "typeface"]}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _sorted(t: pa.Table, keys=("_file", "_row")) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in keys])


def _same_rows(ds, uri, **kw):
    got = _sorted(lray.to_arrow(ds))
    want = _sorted(
        lakevec.Table.open(uri, version=kw.get("version")).to_arrow(with_row_address=True, columns=kw.get("columns"))
    )
    assert got.schema == want.schema
    assert got.equals(want)
    return got


def _arrow(ds) -> pa.Table:
    return lray.to_arrow(ds)


# ------------------------------------------------------------------ read_table
@pytest.mark.parametrize(
    "table",
    [
        "tables/delta/table-with-dv-small",
        "tables/delta/table_with_deletion_logs",
        "tables/iceberg/lineitem_iceberg",
        "text/debian_descriptions.parquet",
    ],
)
def test_read_table_returns_the_single_process_rows(cluster, shared_data, table):
    uri = str(shared_data / table)
    ds = lray.read_table(uri, with_row_address=True, override_num_blocks=5)
    got = _same_rows(ds, uri)
    if table.endswith("table-with-dv-small"):
        assert got.num_rows == 8  # two rows deleted by a deletion vector
    # without addresses: the same rows (sorted by all columns)
    plain = _arrow(lray.read_table(uri, override_num_blocks=3))
    assert plain.num_rows == got.num_rows
    assert plain.column_names == lakevec.Table.open(uri).schema.names


def test_large_file_is_split_into_row_ranges(cluster, shared_data):
    uri = str(shared_data / "text" / "debian_descriptions.parquet")
    ds = lray.read_table(uri, columns=["package", "section"], with_row_address=True, override_num_blocks=7)
    blocks = ray.get(ds.materialize().to_arrow_refs())
    assert len([b for b in blocks if b.num_rows]) >= 4  # one file, several read tasks
    _same_rows(ds, uri, columns=["package", "section"])
    # a filter is applied in the tasks
    f = _arrow(lray.read_table(uri, columns=["package"], filter="section = 'games'", override_num_blocks=4))
    want = lakevec.read_table(uri, columns=["package"], filter="section = 'games'")
    assert sorted(f.column("package").to_pylist()) == sorted(want.column("package").to_pylist())


@pytest.mark.parametrize("table", ["tables/delta/table_with_deletion_logs", "text/debian_descriptions.parquet"])
def test_read_plans_cover_every_row_once_with_global_positions(shared_data, table):
    from lakevec import _dist

    t = lakevec.Table.open(str(shared_data / table))
    want = t.to_arrow(with_row_address=True)
    for parallelism in (1, 3, 7, 50):
        plans = _dist.plan_read(t, parallelism)
        assert sum(p.rows for p in plans) == t.num_rows
        got = pa.concat_tables([_dist.read_task(t, p, None, None, True, True, 1) for p in plans])
        assert got.column("_pos").to_pylist() == list(range(t.num_rows))
        assert got.drop_columns(["_pos"]).equals(want), parallelism
    # the same addresses from metadata alone, in blocks
    blocks = list(_dist.address_blocks(t, max_rows=1000))
    assert [at for at, _ in blocks] == list(range(0, t.num_rows, 1000)) or len(blocks) > t.num_rows // 1000
    assert pa.concat_tables([b for _, b in blocks]).equals(want.select(["_file", "_row"]))


class _FakeFiles:
    """A table-like object with only ``files()`` (what read planning uses)."""

    def __init__(self, files):
        self._files = files

    def files(self):
        return self._files


def test_read_plans_skip_deleted_rows_without_tiny_parts():
    from lakevec import _dist

    kept = [5, 77, 50_000, 99_999]
    files = pa.table(
        {
            "path": ["a", "b", "c"],
            "size": [1000, 1000, 1000],
            "num_records": [100_000, 1_000, 10],
            "deleted_rows": [sorted(set(range(100_000)) - set(kept)), list(range(1_000)), []],
        }
    )
    plans = _dist.plan_read(_FakeFiles(files), 3)
    parts = [p for plan in plans for p in plan.parts]
    assert len(parts) <= 4 and all(p[0] != "b" for p in parts)  # the all-deleted file is skipped
    assert sum(plan.rows for plan in plans) == 14
    assert [plan.offset for plan in plans] == [0, 5, 10][: len(plans)]
    # each part's range holds exactly the live rows it is counted for
    live = {"a": kept, "c": list(range(10))}
    for plan in plans:
        got = sum(sum(1 for r in live[f] if a <= r < min(b, 2**62)) for f, a, b in plan.parts)
        assert got == plan.rows


def test_version_is_pinned_on_the_driver(cluster, tmp_path):
    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, pa.table({"x": [1, 2, 3]}))
    ds = lray.read_table(path)  # latest = version 0, pinned now
    deltalake.write_deltalake(path, pa.table({"x": [4]}), mode="append")
    assert sorted(_arrow(ds).column("x").to_pylist()) == [1, 2, 3]
    assert sorted(_arrow(lray.read_table(path)).column("x").to_pylist()) == [1, 2, 3, 4]
    assert sorted(_arrow(lray.read_table(path, version=0)).column("x").to_pylist()) == [1, 2, 3]


# ------------------------------------------------------------------ UDFs
@pytest.fixture(scope="module")
def debian(shared_data):
    return pq.read_table(shared_data / "text" / "debian_descriptions.parquet").slice(0, 3000)


def test_text_udfs_equal_in_process(cluster, debian):
    ds = ray.data.from_arrow(debian).repartition(4)
    out = _arrow(
        ds.map_batches(lray.MinHashSignatures("description", num_perm=64), batch_format="pyarrow")
        .map_batches(lray.HashingEmbed("description", dim=64), batch_format="pyarrow")
        .map_batches(lray.TagRules("description", RULES, KEYWORDS), batch_format="pyarrow")
    ).sort_by("package")
    ref = debian.sort_by("package")
    sig = lakevec.dedup.minhash_signatures(ref, "description", num_perm=64).column("signature")
    assert out.column("signature").equals(sig)
    assert out.column("vector").equals(pa.chunked_array([lakevec.embed.hashing(ref.column("description"), dim=64)]))
    tags = lakevec.tag.rules(ref, "description", RULES, KEYWORDS)
    assert out.column("tags").to_pylist() == tags.column("tags").to_pylist()
    assert out.column("matches").to_pylist() == tags.column("matches").to_pylist()
    assert sum(len(t) > 0 for t in out.column("tags").to_pylist()) > 300


def test_udfs_size_their_pool_from_the_granted_cpus(cluster):
    ds = ray.data.range(4)
    seen = ds.map_batches(lambda b: {"n": [lray.granted_cpus()] * len(b["id"])}, num_cpus=2, batch_format="numpy")
    assert set(seen.to_pandas()["n"]) == {2}
    seen = ds.map_batches(lambda b: {"n": [lray.granted_cpus()] * len(b["id"])}, num_cpus=0.5, batch_format="numpy")
    assert set(seen.to_pandas()["n"]) == {1}
    assert lray.granted_cpus() is None  # the driver


def test_worker_exception_reaches_the_driver_as_lakevec_error(cluster, debian, tmp_path):
    ds = ray.data.from_arrow(debian.slice(0, 100))
    with pytest.raises(E.SchemaError, match="no_such_column") as info:
        with lray.worker_errors():
            ds.map_batches(lray.TagRules("no_such_column", RULES), batch_format="pyarrow").materialize()
    assert type(info.value) is E.SchemaError
    # a Ray task's exception is an instance of the lakevec class already
    pq.write_table(debian.slice(0, 10), tmp_path / "d.parquet")
    with pytest.raises(E.SchemaError, match="no_such_column") as info:
        lray.build_index(str(tmp_path / "d.parquet"), "no_such_column")
    assert type(info.value) is E.SchemaError


# ------------------------------------------------------------------ index
def _recall(res: pa.Table, truth, k=10) -> float:
    ids = res.column("id").to_numpy()
    qs = res.column("query").to_numpy()
    return sum(1 for qi, i in zip(qs, ids) if i in truth[qi]) / (len(truth) * k)


@pytest.fixture(scope="module")
def minilm(cluster, shared_data, tmp_path_factory):
    """MiniLM base as a Delta table of 5 files (4 now, one appended later), a Ray-built
    index with a segment per file, and a single-process index."""
    base, queries, truth = load_ann(shared_data, "minilm")
    base = base.append_column(
        "label", pc.cast(pc.bit_wise_and(base.column("id"), pa.scalar(7, pa.int64())), pa.string())
    )
    path = str(tmp_path_factory.mktemp("minilm") / "t")
    n = base.num_rows
    cuts = [0, n // 5, 2 * n // 5, 3 * n // 5, 4 * n // 5]
    for i, a in enumerate(cuts[:4]):
        deltalake.write_deltalake(path, base.slice(a, cuts[i + 1] - a), mode="append" if i else "error")
    timings: dict = {}
    idx = lray.build_index(path, "vector", metric="cosine", key="id", files_per_task=1, timings=timings)
    single = lakevec.build_index(path, "vector", metric="cosine", key="id", index_uri=path + "_single", progress=False)
    return dict(
        path=path,
        base=base,
        queries=queries,
        truth=truth,
        idx=idx,
        single=single,
        tail=base.slice(cuts[4]),
        timings=timings,
    )


def test_ray_built_index_matches_single_process_recall(minilm):
    idx, single = minilm["idx"], minilm["single"]
    st = idx.stats()
    assert st["segments"] == 4 and st["last_commit"]["segments_added"] == 4
    assert st["rows"] == single.stats()["rows"] == minilm["base"].num_rows * 4 // 5
    assert len(minilm["timings"]["segment_task_seconds"]) == 4
    # ground truth restricted to the indexed ids
    ids = set(minilm["base"].column("id").to_pylist()[: st["rows"]])
    exact_single = single.search(minilm["queries"], k=10, exact=True)
    truth = [set() for _ in minilm["truth"]]
    for q, i in zip(exact_single.column("query").to_pylist(), exact_single.column("id").to_pylist()):
        truth[q].add(i)
    assert all(i in ids for t in truth for i in t)
    for ef in (16, 64):
        r_ray = _recall(idx.search(minilm["queries"], k=10, ef=ef), truth)
        r_one = _recall(single.search(minilm["queries"], k=10, ef=ef), truth)
        print(f"ef={ef}: recall@10 ray-built (4 segments) {r_ray:.4f}, single-process {r_one:.4f}")
        assert r_ray >= r_one - 0.01, (ef, r_ray, r_one)
    assert _recall(idx.search(minilm["queries"], k=10, exact=True), truth) == 1.0


@pytest.mark.parametrize("kind", [dict(index_type="hnsw_sq8", rerank_source="lake"), dict(index_type="hnsw_rabitq")])
def test_ray_build_and_search_of_compressed_kinds(minilm, kind):
    """A Ray build of a compressed kind (one segment per task, the kind and rerank_source sent
    in the BuildSpec) searches as the single-process index of the same kind, in process and
    fanned out over Ray tasks."""
    path, q, truth = minilm["path"], minilm["queries"], minilm["truth"]
    name = kind["index_type"]
    idx = lray.build_index(
        path, "vector", metric="cosine", key="id", files_per_task=2, index_uri=f"{path}_ray_{name}", **kind
    )
    single = lakevec.build_index(
        path, "vector", metric="cosine", key="id", index_uri=f"{path}_one_{name}", progress=False, **kind
    )
    assert idx.index_type == single.index_type == name and idx.stats()["segments"] == 2
    assert idx.stats()["params"]["rerank_source"] == kind.get("rerank_source", "sidecar")
    r_ray, r_one = (_recall(i.search(q, k=10, ef=64), truth) for i in (idx, single))
    assert r_ray >= r_one - 0.01, (r_ray, r_one)
    want = idx.search(q[:100], k=5)
    assert lray.search(idx, q[:100], k=5, queries_per_task=30).equals(want)


def test_ray_build_within_a_memory_limit(minilm):
    """With memory_limit, the driver cuts the files into groups that each fit the budget (one
    task, one segment per group); max_segment_rows cuts by rows (whole files)."""
    from lakevec import _lakevec

    path, q = minilm["path"], minilm["queries"][:50]
    t = lakevec.Table.open(path)
    files = t.files().column("path").to_pylist()
    spec = lakevec.index.build_spec("vector", metric="cosine", key="id", index_uri=path + "_budget")
    groups = _lakevec.VectorIndex.plan_segments(t._inner, spec, files, None, 16 * 2**20, None)
    assert 1 < len(groups) < len(files) and [f for g in groups for f in g] == files
    timings: dict = {}
    idx = lray.build_index(
        t, "vector", metric="cosine", key="id", index_uri=path + "_budget", memory_limit="16MiB", timings=timings
    )
    assert idx.stats()["segments"] == len(groups) == len(timings["segment_task_seconds"])
    want = minilm["single"].search(q, k=10, exact=True).column("id").to_pylist()
    assert idx.search(q, k=10, exact=True).column("id").to_pylist() == want
    rows = lray.build_index(t, "vector", metric="cosine", key="id", index_uri=path + "_rows", max_segment_rows=1)
    assert rows.stats()["segments"] == len(files)  # a file is never split
    with pytest.raises(lakevec.exceptions.InvalidArgumentError, match="memory_limit"):
        lray.build_index(t, "vector", index_uri=path + "_bad", memory_limit="1MB")


def test_search_fan_out_equals_in_process(minilm):
    idx, q = minilm["idx"], minilm["queries"][:200]
    want = idx.search(q, k=5, columns=["label"])
    got = lray.search(idx, q, k=5, columns=["label"], queries_per_task=37)
    assert got.equals(want)


def test_search_and_knn_udfs_equal_in_process(minilm):
    idx = minilm["idx"]
    qt = pa.table(
        {
            "qid": pa.array(range(300), pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(minilm["queries"][:300].ravel()), 384),
        }
    )
    ds = ray.data.from_arrow(qt).repartition(3)
    hits = _arrow(ds.map_batches(lray.SearchIndex(idx.uri, "vector", k=5, columns=["label"]), batch_format="pyarrow"))
    want = idx.search(qt.column("vector"), k=5, columns=["label"])
    got = hits.sort_by([("qid", "ascending"), ("rank", "ascending")])
    assert got.column("qid").to_pylist() == want.column("query").to_pylist()
    for c in ("rank", "distance", "_file", "_row", "id", "label"):
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c
    tagged = _arrow(ds.map_batches(lray.TagKNN(idx, "vector", "label", k=7), batch_format="pyarrow")).sort_by("qid")
    ref = lakevec.tag.knn(qt, "vector", idx, "label", k=7)
    for c in ("label", "confidence", "neighbor_files", "neighbor_rows"):
        assert tagged.column(c).to_pylist() == ref.column(c).to_pylist(), c


def test_distributed_semantic_dedup_equals_single_process(minilm):
    idx = minilm["idx"]  # 4 segments
    for keep in ("first", "closest_to_centroid"):
        want = lakevec.dedup.semantic(idx, 0.9, k=8, keep=keep)
        got = _arrow(lray.dedup_semantic(idx, 0.9, k=8, keep=keep, rows_per_task=2_500))
        assert got.equals(want), keep
    assert want.num_rows == idx.stats()["rows"]
    assert want.num_rows - sum(want.column("is_representative").to_pylist()) > 100


def test_distributed_refresh_adds_segments_and_follows_the_table(minilm):
    idx = lakevec.open_index(minilm["idx"].uri)
    v = idx.version
    deltalake.write_deltalake(minilm["path"], minilm["tail"], mode="append")
    assert lray.refresh(idx, files_per_task=1)
    assert idx.version == v + 1
    st = idx.stats()
    assert st["segments"] == 5 and st["rows"] == minilm["base"].num_rows
    assert set(idx.coverage().column("status").to_pylist()) == {"indexed"}
    assert not lray.refresh(idx)
    r = idx.search(minilm["queries"], k=10, ef=64)
    assert _recall(r, minilm["truth"]) >= 0.95


def test_segment_commit_checks_what_it_publishes(tmp_path):
    """The driver-side commit of task-built segments refuses parts that do not cover the
    table version exactly once, or were built for another version or spec."""
    from lakevec import _lakevec

    path = str(tmp_path / "t")
    rng = np.random.default_rng(0)
    for i in range(3):
        vec = pa.FixedSizeListArray.from_arrays(pa.array(rng.random(40 * 4, dtype=np.float32)), 4)
        deltalake.write_deltalake(path, pa.table({"v": vec}), mode="append" if i else "error")
    t = lakevec.Table.open(path)
    files = t.files().column("path").to_pylist()
    spec = _lakevec.BuildSpec("v", "l2", ef_construction=100)
    parts = [_lakevec.VectorIndex.build_segment(t._inner, spec, [f]) for f in files]
    with pytest.raises(E.InvalidArgumentError, match="no segment holds"):
        _lakevec.VectorIndex.commit_build(t._inner, spec, parts[:2])
    with pytest.raises(E.InvalidArgumentError, match="in two segments"):
        _lakevec.VectorIndex.commit_build(t._inner, spec, parts + parts[:1])
    other = _lakevec.BuildSpec("v", "cosine", ef_construction=100)
    with pytest.raises(E.InvalidArgumentError, match="built for"):
        _lakevec.VectorIndex.commit_build(t._inner, other, parts)
    old = lakevec.Table.open(path, version=1)
    with pytest.raises(E.InvalidArgumentError):
        _lakevec.VectorIndex.commit_build(old._inner, spec, parts)
    with pytest.raises(E.TableNotFoundError):
        lakevec.open_index(t)  # nothing was published
    idx = lakevec.VectorIndex(_lakevec.VectorIndex.commit_build(t._inner, spec, parts))
    assert idx.stats()["segments"] == 3 and idx.stats()["rows"] == 120
    assert idx.search(np.zeros(4, np.float32), k=120).num_rows == 120


def test_segments_of_files_without_vectors_still_cover_them(tmp_path):
    """A task whose files hold no valid vector (a List column, on_invalid='skip') still
    records its files; the glob check of single-process builds applies too."""
    from lakevec import _lakevec

    d = tmp_path / "t"
    d.mkdir()
    pq.write_table(pa.table({"v": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))}), d / "a.parquet")
    pq.write_table(pa.table({"v": pa.array([None], pa.list_(pa.float32()))}), d / "b.parquet")
    t = lakevec.Table.open(str(d))
    spec = _lakevec.BuildSpec("v", "l2", ef_construction=100, on_invalid="skip")
    parts = [_lakevec.VectorIndex.build_segment(t._inner, spec, [f]) for f in ("a.parquet", "b.parquet")]
    idx = lakevec.VectorIndex(_lakevec.VectorIndex.commit_build(t._inner, spec, parts))
    assert idx.stats()["data_files"] == 2 and idx.stats()["last_commit"]["rows_skipped"] == 1
    assert set(idx.coverage().column("status").to_pylist()) == {"indexed"}
    assert not idx.refresh()
    assert lakevec.open_index(idx.uri).search([1.0, 2.0], k=5).num_rows == 2
    glob = lakevec.Table.open(str(d / "a*.parquet"))
    with pytest.raises(E.UnsupportedFeatureError, match="glob"):
        _lakevec.VectorIndex.build_segment(glob._inner, spec, ["a.parquet"])


def test_read_table_names_a_missing_column(cluster, shared_data):
    with pytest.raises(E.SchemaError, match="nope"):
        lray.read_table(str(shared_data / "tables" / "delta" / "table-with-dv-small"), columns=["nope"])


@pytest.mark.s3
def test_pickled_objects_are_small_and_hold_no_secret(cluster, moto_s3, shared_data, tmp_path):
    # on S3 with real (random, moto-issued) credentials
    moto_s3.s3.create_bucket(Bucket="ray-pickles")
    moto_s3.s3.upload_file(
        str(shared_data / "text" / "debian_descriptions.parquet"), "ray-pickles", "deb/part-0.parquet"
    )
    vec = pa.table(
        {
            "id": pa.array(range(50), pa.int64()),
            "label": [str(i % 3) for i in range(50)],
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(np.random.default_rng(0).random(50 * 8, np.float32)), 8
            ),
        }
    )
    pq.write_table(vec, tmp_path / "vec.parquet")
    moto_s3.s3.upload_file(str(tmp_path / "vec.parquet"), "ray-pickles", "vec/part-0.parquet")
    opts = moto_s3.options()
    t = lakevec.Table.open("s3://ray-pickles/deb", storage_options=opts)
    idx = lakevec.build_index("s3://ray-pickles/vec", "vector", storage_options=opts, progress=False)
    # locally, with sentinel secrets that the local store ignores
    sentinels = {
        "aws_secret_access_key": "SENTINEL-SECRET-9b1",
        "aws_session_token": "SENTINEL-TOKEN-5f3a",
        "azure_storage_account_key": "SENTINEL-AZ-77c",
    }
    local = lakevec.Table.open(str(tmp_path / "vec.parquet"), storage_options=sentinels)
    local_idx = lakevec.build_index(local, "vector", progress=False)
    secrets = [opts["aws_secret_access_key"].encode(), opts["aws_access_key_id"].encode()]
    secrets += [v.encode() for v in sentinels.values()]
    objects = {
        "table": t,
        "index": idx,
        "local table": local,
        "local index": local_idx,
        "datasource": lray.LakeDatasource(t, ["package"]),
        "tag_knn": lray.TagKNN(idx, "vector", "label"),
        "search": lray.SearchIndex("s3://ray-pickles/vec/_lakevec_index/default", "vector", storage_options=opts),
        "local search": lray.SearchIndex(local_idx, "vector"),
        "sig": lray.MinHashSignatures("description"),
    }
    for name, obj in objects.items():
        blob = pickle.dumps(obj)
        assert len(blob) < 10_000, (name, len(blob))
        for s in secrets:
            assert s not in blob, name
    # a pickled UDF works in a Ray worker (local files need no credentials)
    q = pa.table({"vector": vec.column("vector").slice(0, 5)})
    hits = _arrow(ray.data.from_arrow(q).map_batches(objects["local search"], batch_format="pyarrow"))
    assert hits.num_rows == 50 and sorted(set(hits.column("_row").to_pylist()))[:1] == [0]


# ------------------------------------------------------------------ dedup
def _cluster_cols(t):
    return [t.column(c).to_pylist() for c in ("cluster_id", "cluster_size", "is_representative")]


def test_distributed_minhash_equals_single_process_on_debian(cluster, shared_data):
    uri = str(shared_data / "text" / "debian_descriptions.parquet")
    # the one-permutation sketch here (Spark's test and the Dataset test below use the classic)
    kw = dict(threshold=0.8, num_perm=128, ngram=5, sketch="oph")
    want = lakevec.dedup.minhash(uri, "description", **kw)
    timings: dict = {}
    ds = lray.dedup_minhash(uri, "description", num_partitions=6, timings=timings, **kw)
    got = _arrow(ds)
    assert got.schema == want.schema
    assert got.column("_file").to_pylist() == want.column("_file").to_pylist()
    assert got.column("_row").to_pylist() == want.column("_row").to_pylist()
    assert _cluster_cols(got) == _cluster_cols(want)
    dupes = want.num_rows - sum(want.column("is_representative").to_pylist())
    print(f"debian: {want.num_rows} rows, {dupes} near-duplicates; stage seconds {timings}")
    assert dupes > 3000
    assert set(timings) == {"signatures", "buckets", "components", "output"}


@pytest.mark.slow
def test_distributed_minhash_over_a_dataset_with_keep_policies(cluster, debian):
    t = debian.append_column("score", pa.array(np.random.default_rng(1).random(debian.num_rows)))
    ds = ray.data.from_arrow(t).repartition(5).materialize()
    t = pa.concat_tables(ray.get(ds.to_arrow_refs()))  # the dataset's row order
    for keep in ("longest", "score"):
        want = lakevec.dedup.minhash(t, "description", threshold=0.7, keep=keep)
        got = _arrow(lray.dedup_minhash(ds, "description", threshold=0.7, keep=keep, num_partitions=2))
        assert got.column_names == ["row", "cluster_id", "cluster_size", "is_representative"]
        assert got.column("row").to_pylist() == list(range(t.num_rows))
        assert _cluster_cols(got) == _cluster_cols(want), keep
    with pytest.raises(E.SchemaError, match="nope"):
        lray.dedup_minhash(ds, "nope")
    # many identical texts (joined before banding) and null texts
    texts = debian.column("description").to_pylist()[:300] + [texts_copy := debian["description"][5].as_py()] * 400
    texts += [None, ""] * 20
    ds2 = ray.data.from_arrow(pa.table({"text": texts})).repartition(4).materialize()  # copies in every block
    want = lakevec.dedup.minhash(_arrow(ds2), "text", threshold=0.8)
    got = _arrow(lray.dedup_minhash(ds2, "text", threshold=0.8, num_partitions=3))
    assert _cluster_cols(got) == _cluster_cols(want)
    assert max(want.column("cluster_size").to_pylist()) >= 401 and texts_copy
    with pytest.raises(E.InvalidArgumentError):
        lray.dedup_minhash(ds, "description", threshold=1.5)


def test_refresh_dedup_signs_new_files_in_tasks(cluster, shared_data, tmp_path):
    """A persisted dedup index refreshed by Ray tasks (one per new file) has the clusters of
    one `dedup.minhash` run over the final version, and tasks' segments that miss a new file
    are refused."""
    t = pq.read_table(shared_data / "text" / "debian_descriptions.parquet", columns=["package", "description"])
    t = t.slice(0, 9000).append_column("id", pa.array(np.arange(9000, dtype=np.int64)))
    uri = str(tmp_path / "deb")
    kw = dict(threshold=0.8, ngram=3, sketch="oph")
    deltalake.write_deltalake(uri, t.slice(0, 3000))
    idx = lakevec.dedup.build_index(uri, "description", **kw)
    for start in (3000, 5000, 7000):
        deltalake.write_deltalake(uri, t.slice(start, 2000), mode="append")
    timings: dict = {}
    new = lray.refresh_dedup(idx, files_per_task=1, timings=timings)
    assert new.num_rows == 6000 and len(timings["sign_task_seconds"]) == 3
    assert idx.manifest["commit"]["segments_added"] == 3
    final = lakevec.Table.open(uri)
    rows = final.to_arrow(columns=["id", "description"], with_row_address=True)
    want = lakevec.dedup.minhash(rows, "description", **kw)
    ids = {(f, r): i for f, r, i in zip(*(rows.column(c).to_pylist() for c in ("_file", "_row", "id")))}

    def partition(labels, keys):
        groups: dict = {}
        for k, c in zip(keys, labels):
            groups.setdefault(c, []).append(k)
        return sorted(sorted(g) for g in groups.values())

    cl = idx.clusters()
    got = partition(
        cl.column("cluster_id").to_pylist(),
        [ids[k] for k in zip(cl.column("_file").to_pylist(), cl.column("_row").to_pylist())],
    )
    assert got == partition(want.column("cluster_id").to_pylist(), rows.column("id").to_pylist())
    # parts that do not cover the new files are refused, and nothing is committed
    deltalake.write_deltalake(uri, t.slice(0, 500), mode="append")
    deltalake.write_deltalake(uri, t.slice(500, 500), mode="append")
    latest = idx.table()
    pending = idx._inner.pending_files(latest._inner)
    assert len(pending) == 2
    one = lakevec._lakevec.DedupIndex.sign_part(latest._inner, idx.uri, idx._inner.manifest_json(), pending[:1])
    version = idx.version
    with pytest.raises(E.InvalidArgumentError, match="do not cover the table version"):
        idx._inner.refresh(latest._inner, None, None, [one])
    assert lakevec.dedup.open_index(idx.uri).version == version


def test_refresh_dedup_of_a_semantic_index_refreshes_its_vectors_in_tasks(cluster, shared_data, tmp_path):
    """`refresh_dedup` of a semantic dedup index encodes the new files' vectors in Ray tasks,
    then joins the new rows; the clusters equal one `dedup.semantic` run (flat index: exact)."""
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet", columns=["id", "vector"])
    base = base.take(np.random.default_rng(3).permutation(base.num_rows))
    uri = str(tmp_path / "t")
    deltalake.write_deltalake(uri, base.slice(0, 6000))
    vidx = lakevec.build_index(uri, "vector", metric="cosine", index_type="flat", progress=False)
    d = lakevec.dedup.build_index(vidx, method="semantic", threshold=0.9, progress=False)
    for start in (6000, 9000):
        deltalake.write_deltalake(uri, base.slice(start, 3000), mode="append")
    timings: dict = {}
    new = lray.refresh_dedup(d, files_per_task=1, timings=timings)
    assert new.num_rows == 6000 and set(timings) == {"vectors", "commit"}
    v2 = d.vector_index()
    assert v2.version == vidx.version + 1 and v2.stats()["last_commit"]["segments_added"] == 2

    def partition(tab):
        groups: dict = {}
        for f, r, c in zip(*(tab.column(x).to_pylist() for x in ("_file", "_row", "cluster_id"))):
            groups.setdefault(c, []).append((f, r))
        return sorted(sorted(g) for g in groups.values())

    assert partition(d.clusters()) == partition(lakevec.dedup.semantic(v2, 0.9, k=10))
