"""The `lakevec demo` console script, pickled tables and runtime settings."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys

import pytest

import lakevec

from conftest import make_vector_table


def test_demo_runs_and_prints_steps(tmp_path):
    exe = shutil.which("lakevec") or ""
    cmd = [exe, "demo", "--rows", "3000"] if exe else [sys.executable, "-m", "lakevec", "demo", "--rows", "3000"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("[lakevec demo]")]
    assert len(lines) >= 7, out.stdout
    assert "read all 3,000 rows" in out.stdout
    assert "SQL" in out.stdout
    assert "built an HNSW index over 'embedding'" in out.stdout
    ranks = [line for line in out.stdout.splitlines() if line.strip().startswith("rank ")]
    assert len(ranks) == 5
    # the query is a row's own vector: that row comes back first, at distance 0
    qid = re.search(r"nearest to the vector of id (\d+)", out.stdout).group(1)
    assert ranks[0].split()[3] == qid and "distance 0.0000" in ranks[0]
    # every 50th row repeats its predecessor's text: 3,000 rows -> 59 exact duplicates
    assert "dedup 'text': 59 exact duplicates" in out.stdout
    assert "rule tags over 'text': {" in out.stdout


def test_table_pickles_as_small_handle(tmp_path):
    make_vector_table(tmp_path / "t.parquet", rows=1000)
    t = lakevec.Table.open(str(tmp_path / "t.parquet"), {"aws_region": "eu-west-1"})
    blob = pickle.dumps(t)
    assert len(blob) < 1000
    back = pickle.loads(blob)
    assert back.to_arrow().equals(t.to_arrow())
    # ...and in a fresh interpreter.
    code = "import pickle,sys; t = pickle.loads(sys.stdin.buffer.read()); print(t.num_rows)"
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "1000"


def test_unpickled_pinned_versions_are_reopened_once_per_process(tmp_path):
    import deltalake
    import pyarrow as pa

    from lakevec._cache import ProcessCache

    deltalake.write_deltalake(str(tmp_path / "d"), pa.table({"x": [1, 2]}))
    make_vector_table(tmp_path / "p.parquet", rows=10)
    delta = pickle.dumps(lakevec.Table.open(str(tmp_path / "d")))
    assert pickle.loads(delta) is pickle.loads(delta)  # pinned version: cached
    plain = pickle.dumps(lakevec.Table.open(str(tmp_path / "p.parquet")))
    assert pickle.loads(plain) is not pickle.loads(plain)  # no version: listed again
    # a bounded LRU that a forked child does not inherit
    cache, made = ProcessCache(limit=2), []
    make = lambda k: lambda: made.append(k) or k  # noqa: E731
    for k in ("a", "b", "a", "c", "b"):
        cache.get(k, make(k))
    assert made == ["a", "b", "c", "b"]  # "b" was evicted by "c" (least recently used)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if cache.get("c", make("c2")) == "c2" else 1)  # made afresh in the child
    assert os.waitpid(pid, 0)[1] == 0


def test_secret_options_are_not_pickled(tmp_path):
    make_vector_table(tmp_path / "t.parquet", rows=10)
    secret = "SENTINEL-secret-Value-9f8e7d"
    t = lakevec.Table.open(
        str(tmp_path / "t.parquet"),
        {"aws_secret_access_key": secret, "aws_access_key_id": "SENTINELKEYID", "aws_region": "x"},
    )
    blob = pickle.dumps(t)
    assert secret.encode() not in blob and b"SENTINELKEYID" not in blob
    assert secret not in repr(t)


def test_num_threads_from_environment():
    code = "import lakevec; print(lakevec.default_num_threads())"
    env = dict(os.environ, RAYON_NUM_THREADS="3")
    env.pop("LAKEVEC_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "3", out.stderr
    env["LAKEVEC_NUM_THREADS"] = "5"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "5", out.stderr


def test_no_threads_at_import():
    # numpy/pyarrow may start threads of their own (BLAS pools): count around lakevec only.
    code = (
        "import os, threading, numpy, pyarrow; "
        "before = len(os.listdir('/proc/self/task')); "
        "import lakevec; "
        "print(before, len(os.listdir('/proc/self/task')), threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    before, after, py_threads = map(int, out.stdout.split())
    assert after == before, "importing lakevec started native threads"
    assert py_threads == 1


_UNPICKLE_AND_RUN = """
import pickle, sys
import pyarrow as pa

blobs, batch, spark_batch = pickle.loads(sys.stdin.buffer.read())
out = {}
for name, (kind, blob) in blobs.items():
    obj = pickle.loads(blob)
    if kind == "udf":  # a Ray batch UDF
        res, modules = obj(batch), [type(obj).__module__]
    elif kind == "datasource":
        res = pa.concat_tables([b for task in obj.get_read_tasks(2) for b in task()])
        modules = [type(obj).__module__]
    elif kind == "read tasks":
        res = pa.concat_tables([b for task in obj for b in task()])
        modules = [task.read_fn.func.__module__ for task in obj]
    else:  # a Spark mapInArrow function
        res = pa.Table.from_batches(list(obj(iter(spark_batch.to_batches()))))
        modules = [type(obj).__module__, type(obj.udf).__module__]
    out[name] = (modules, res)
sys.stdout.buffer.write(pickle.dumps(out))
"""


@pytest.mark.ray
@pytest.mark.spark
def test_ray_and_spark_objects_unpickle_and_work_in_a_fresh_process(tmp_path):
    """Each Ray UDF, the Ray datasource (and its read tasks) and the Spark ``mapInArrow``
    functions, pickled with plain pickle, load in a fresh interpreter from the modules of
    the ``lakevec.ray`` package and give the in-process results on a small batch."""
    pytest.importorskip("ray")
    pytest.importorskip("pyspark")
    import pyarrow as pa
    from pyspark.sql.types import ArrayType, FloatType, LongType, StringType, StructField, StructType

    import lakevec.ray as lray
    import lakevec.spark as lspark

    t = make_vector_table(tmp_path / "t.parquet", rows=300, dim=8)
    table = lakevec.Table.open(str(tmp_path / "t.parquet"))
    idx = lakevec.build_index(table, "vector", key="id", progress=False)
    batch = t.slice(10, 20)
    vectors = batch.column("vector").cast(pa.list_(pa.float32()))  # Spark has no fixed-size lists
    spark_batch = batch.select(["id", "text"]).append_column("vector", vectors)
    fields = [("id", LongType()), ("text", StringType()), ("vector", ArrayType(FloatType()))]
    schema = StructType([StructField(name, ty) for name, ty in fields])
    rules = {"long": r"w{5,}", "row": r"\brow\b"}
    source = lray.LakeDatasource(table, ["id", "text"])
    ray_udfs = {
        "MinHashSignatures": lray.MinHashSignatures("text", num_perm=16),
        "HashingEmbed": lray.HashingEmbed("text", dim=8),
        "TagRules": lray.TagRules("text", rules),
        "TagKNN": lray.TagKNN(idx, "vector", "label", k=3),
        "SearchIndex": lray.SearchIndex(idx.uri, "vector", k=2, columns=["label"]),
    }
    spark_fns = {
        "spark.minhash_signatures": lspark.minhash_signatures(schema, "text", num_perm=16)[0],
        "spark.hashing_embed": lspark.hashing_embed(schema, "text", dim=8)[0],
        "spark.tag_rules": lspark.tag_rules(schema, "text", rules)[0],
        "spark.tag_knn": lspark.tag_knn(schema, idx, "vector", "label", k=3)[0],
        "spark.search_index": lspark.search_index(schema, idx.uri, "vector", k=2, columns=["label"])[0],
    }
    blobs = {name: ("udf", pickle.dumps(obj)) for name, obj in ray_udfs.items()}
    blobs.update({name: ("spark", pickle.dumps(fn)) for name, fn in spark_fns.items()})
    blobs["LakeDatasource"] = ("datasource", pickle.dumps(source))
    blobs["read tasks"] = ("read tasks", pickle.dumps(source.get_read_tasks(2)))
    out = subprocess.run(
        [sys.executable, "-c", _UNPICKLE_AND_RUN],
        input=pickle.dumps((blobs, batch, spark_batch)),
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()
    got = pickle.loads(out.stdout)
    for name, obj in ray_udfs.items():
        modules, res = got[name]
        assert modules == ["lakevec.ray.udf"], name
        assert res.to_pydict() == obj(batch).to_pydict(), name  # (pickle drops a list field's "not null")
    for name, fn in spark_fns.items():
        modules, res = got[name]
        assert modules == ["lakevec.spark", "lakevec.spark"], name
        assert res.to_pydict() == pa.Table.from_batches(list(fn(iter(spark_batch.to_batches())))).to_pydict(), name
    assert got["LakeDatasource"][0] == ["lakevec.ray.read"]
    assert got["read tasks"][0] and set(got["read tasks"][0]) == {"lakevec.ray.read"}
    for name in ("LakeDatasource", "read tasks"):
        assert got[name][1].sort_by("id").equals(table.to_arrow(columns=["id", "text"])), name
    assert got["TagRules"][1].column("tags").to_pylist() != [[]] * batch.num_rows  # the rules matched
