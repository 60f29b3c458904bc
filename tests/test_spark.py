"""lakevec in PySpark ``local[2]``: ``mapInArrow`` functions (signatures, hashing vectors, rule
tags, kNN tags, index search) equal to in-process calls, MinHash dedup with Spark's groupBy
equal to single-process clusters, and worker exceptions surfacing as lakevec errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

pyspark = pytest.importorskip("pyspark")
deltalake = pytest.importorskip("deltalake")
import lakevec.spark as lspark  # noqa: E402
from lakevec.spark import binary_to_signatures  # noqa: E402

pytestmark = pytest.mark.spark

RULES = {"python": r"\bpython\b", "game": [r"\bgames?\b", r"\bpuzzle\b"]}
KEYWORDS = {"docs": ["documentation", "manual"]}


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    s = (
        SparkSession.builder.master("local[2]")
        .appName("lakevec-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def debian_path(shared_data):
    return str(shared_data / "text" / "debian_descriptions.parquet")


def test_text_functions_equal_in_process(spark, debian_path):
    t = pq.read_table(debian_path).slice(0, 2000)
    t = t.append_column("rid", pa.array(range(t.num_rows), pa.int64()))
    df = spark.createDataFrame(t).repartition(3)
    out = df.mapInArrow(*lspark.minhash_signatures(df.schema, "description", num_perm=64))
    out = out.mapInArrow(*lspark.hashing_embed(out.schema, "description", dim=32))
    out = out.mapInArrow(*lspark.tag_rules(out.schema, "description", RULES, KEYWORDS))
    got = out.toArrow().sort_by("rid")
    ref = t
    sig = lakevec.dedup.minhash_signatures(ref, "description", num_perm=64).column("signature")
    assert binary_to_signatures(got.column("signature"), 64).equals(sig.combine_chunks())
    vec = lakevec.embed.hashing(ref.column("description"), dim=32)
    assert got.column("vector").to_pylist() == vec.to_pylist()
    tags = lakevec.tag.rules(ref, "description", RULES, KEYWORDS)
    assert got.column("tags").to_pylist() == tags.column("tags").to_pylist()
    assert got.column("matches").to_pylist() == tags.column("matches").to_pylist()


@pytest.fixture(scope="module")
def small_index(shared_data, tmp_path_factory):
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet").slice(0, 3000)
    base = base.append_column("label", pa.array([str(i % 5) for i in range(base.num_rows)]))
    path = str(tmp_path_factory.mktemp("spark_idx") / "t")
    deltalake.write_deltalake(path, base)
    idx = lakevec.build_index(path, "vector", metric="cosine", key="id", progress=False)
    q = pq.read_table(shared_data / "ann" / "minilm_query.parquet").slice(0, 200)
    return idx, q


def test_search_and_knn_functions_equal_in_process(spark, small_index):
    idx, q = small_index
    df = spark.createDataFrame(q).repartition(2)
    hits = df.mapInArrow(*lspark.search_index(df.schema, idx.uri, "vector", k=4, columns=["label"]))
    got = hits.toArrow().sort_by([("id", "ascending"), ("rank", "ascending")])
    want = idx.search(q.column("vector"), k=4, columns=["label"])
    qid = q.column("id").to_pylist()
    assert got.column("id").to_pylist() == [qid[i] for i in want.column("query").to_pylist()]
    # the index key is named "id" like the query's id column: the hit's comes as hit_id
    assert got.column("hit_id").to_pylist() == want.column("id").to_pylist()
    for c in ("rank", "_file", "_row", "label"):
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c
    np.testing.assert_array_equal(got.column("distance").to_numpy(), want.column("distance").to_numpy())
    tagged = df.mapInArrow(*lspark.tag_knn(df.schema, idx, "vector", "label", k=5)).toArrow().sort_by("id")
    ref = lakevec.tag.knn(q, "vector", idx, "label", k=5)
    for c in ("label", "neighbor_files", "neighbor_rows"):
        assert tagged.column(c).to_pylist() == ref.column(c).to_pylist(), c
    np.testing.assert_allclose(tagged.column("confidence").to_numpy(), ref.column("confidence").to_numpy())


def test_functions_pickle_small_without_live_handles(small_index):
    import pickle

    idx, q = small_index
    from pyspark.sql.types import ArrayType, FloatType, LongType, StringType, StructField, StructType

    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("vector", ArrayType(FloatType())),
            StructField("text", StringType()),
        ]
    )
    batch = pa.RecordBatch.from_pydict(
        {"id": [1], "vector": [q.column("vector")[0].as_py()], "text": ["a python game"]}
    )
    for fn, out in (
        lspark.search_index(schema, idx, "vector", k=3, columns=["label", "id"]),
        lspark.tag_knn(schema, idx.uri, "vector", "label"),
        lspark.tag_rules(schema, "text", RULES),
        lspark.minhash_signatures(schema, "text"),
    ):
        blob = pickle.dumps(fn)  # plain pickle: the classes are importable, no index inside
        assert len(blob) < 10_000
        got = list(pickle.loads(blob)(iter([batch])))
        assert sum(b.num_rows for b in got) >= 1
        assert got[0].schema.names == out.fieldNames()  # the declared schema is what comes out


@pytest.mark.slow
def test_dedup_minhash_equals_single_process_on_debian(spark, debian_path):
    kw = dict(threshold=0.8, num_perm=128, ngram=5)
    df = spark.read.parquet(debian_path)
    got = lspark.dedup_minhash(df, "description", **kw).toArrow()
    order = df.select("package").toArrow().column("package").to_pylist()
    t = pq.read_table(debian_path)
    assert order == t.column("package").to_pylist()  # the DataFrame's row order is the file's
    want = lakevec.dedup.minhash(t, "description", **kw)
    assert got.column_names == want.column_names == ["row", "cluster_id", "cluster_size", "is_representative"]
    for c in want.column_names:
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c
    assert want.num_rows - sum(want.column("is_representative").to_pylist()) > 3000


def test_dedup_keep_policy_and_errors(spark, debian_path):
    t = pq.read_table(debian_path).slice(0, 3000)
    t = t.append_column("rid", pa.array(range(t.num_rows), pa.int64()))
    df = spark.createDataFrame(t).repartition(3).localCheckpoint()
    t_in_df_order = t.take(df.select("rid").toArrow().column("rid"))
    got = lspark.dedup_minhash(df, "description", threshold=0.7, keep="longest").toArrow()
    want = lakevec.dedup.minhash(t_in_df_order, "description", threshold=0.7, keep="longest")
    for c in want.column_names:
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c
    with pytest.raises(E.SchemaError, match="nope"):
        lspark.dedup_minhash(df, "nope")
    # many identical texts (joined before banding) and null texts
    texts = t.column("description").to_pylist()[:300] + [t["description"][5].as_py()] * 400 + [None, ""] * 20
    t2 = pa.table({"text": texts})
    got = lspark.dedup_minhash(spark.createDataFrame(t2).coalesce(1), "text", threshold=0.8).toArrow()
    want = lakevec.dedup.minhash(t2, "text", threshold=0.8)
    for c in want.column_names:
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c


def test_worker_exception_surfaces_as_lakevec_error(spark, debian_path):
    df = spark.read.parquet(debian_path).limit(50)
    fn, schema = lspark.tag_rules(df.schema, "description", RULES)
    fn.udf.column = "no_such_column"  # only the worker notices
    with pytest.raises(E.SchemaError, match="no_such_column"):
        with lspark.worker_errors():
            df.mapInArrow(fn, schema).collect()
