"""``lakevec demo``: generate a small partitioned lake table with a vector column and text,
then read it back with lakevec and print each step. Deterministic (seeded)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SECTIONS = ["science", "games", "libs", "python", "web", "sound"]
WORDS = (
    "lake table vector index arrow parquet delta iceberg search dedup tag row column "
    "file query data model cluster engine graph near exact fast batch stream"
).split()


def generate_table(root: str, rows: int = 20_000, dim: int = 64, seed: int = 7) -> str:
    """Write a hive-partitioned (``year=...``) Parquet table under ``root``.

    Columns: ``id`` int64, ``section`` string, ``text`` string (synthetic sentences, with
    deliberate exact duplicates), ``embedding`` fixed_size_list<float32, dim> (unit length),
    ``year`` int32 (the partition key). Returns the table's folder.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(rows, dtype=np.int64)
    section = rng.choice(SECTIONS, size=rows)
    n_words = rng.integers(5, 14, size=rows)
    text = [" ".join(rng.choice(WORDS, size=k)) for k in n_words]
    for i in range(0, rows, 50):  # every 50th row repeats its predecessor's text
        if i > 0:
            text[i] = text[i - 1]
    vecs = rng.standard_normal((rows, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), dim)
    year = rng.integers(2019, 2025, size=rows).astype(np.int32)
    table = pa.table(
        {
            "id": ids,
            "section": pa.array(section),
            "text": pa.array(text),
            "embedding": embedding,
            "year": year,
        }
    )
    path = os.path.join(root, "demo_table")
    pq.write_to_dataset(table, path, partition_cols=["year"])
    return path


def run_demo(rows: int = 20_000, dim: int = 64, keep: str | None = None) -> None:
    """Run the demo, printing what it does."""
    import lakevec

    def step(msg: str) -> None:
        print(f"[lakevec demo] {msg}", flush=True)

    tmp = None
    if keep:
        os.makedirs(keep, exist_ok=True)
        root = keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lakevec-demo-")
        root = tmp.name
    try:
        t0 = time.perf_counter()
        path = generate_table(root, rows=rows, dim=dim)
        step(f"generated {rows:,} rows ({dim}-d vectors + text) partitioned by year in {path}")

        table = lakevec.Table.open(path)
        files = table.files()
        step(f"opened {table!r}")
        step(f"schema: {', '.join(f'{f.name}: {f.type}' for f in table.schema)}")
        step(f"{files.num_rows} data files, {sum(files['size'].to_pylist()):,} bytes")

        t = time.perf_counter()
        full = table.to_arrow()
        step(f"read all {full.num_rows:,} rows into Arrow in {time.perf_counter() - t:.3f}s")

        flt = "year >= 2023 AND section = 'games'"
        sub = table.to_arrow(columns=["id", "text", "year"], filter=flt)
        step(f"filter {flt!r} with 3 columns -> {sub.num_rows:,} rows")

        agg = lakevec.sql(
            "SELECT section, count(*) AS n, count(DISTINCT text) AS distinct_texts "
            "FROM t GROUP BY section ORDER BY section",
            tables={"t": table},
        )
        step("SQL: rows and distinct texts per section")
        for sec, n, d in zip(*(agg[c].to_pylist() for c in agg.column_names)):
            print(f"    {sec:<8} {n:>7,} rows  {d:>7,} distinct texts")

        batches = 0
        streamed = 0
        for batch in table.scan(columns=["embedding"], batch_size=4096):
            batches += 1
            streamed += batch.num_rows
        step(f"streamed the embedding column: {streamed:,} rows in {batches} batches")

        t = time.perf_counter()
        idx = lakevec.build_index(table, "embedding", metric="cosine", key="id", progress=False)
        s = idx.stats()
        step(
            f"built an HNSW index over 'embedding' in {time.perf_counter() - t:.2f}s: "
            f"{s['rows']:,} rows, {s['sidecar_bytes']:,} sidecar bytes at {idx.uri} "
            f"(recall@10 estimate {s['recall_estimate']:.3f})"
        )
        query = full.column("embedding")[123].values.to_numpy()
        sec = full.column("section")[123].as_py()
        qid = full.column("id")[123].as_py()
        hits = idx.search(query, k=5, columns=["section", "text"], filter=f"section = '{sec}'")
        step(
            f"search: the 5 rows nearest to the vector of id {qid} among section = '{sec}' "
            f"(id {qid} itself first), columns fetched from the lake by address"
        )
        for r in hits.to_pylist():
            print(
                f"    rank {r['rank']}  id {r['id']:>6}  distance {r['distance']:.4f}  "
                f"{r['section']:<8} {r['text'][:40]!r}  <- {r['_file']}#{r['_row']}"
            )
        t = time.perf_counter()
        ex = lakevec.dedup.exact(table, "text", normalize=True)
        near = lakevec.dedup.minhash(table, "text", threshold=0.8, ngram=3)
        n_ex = ex.num_rows - sum(ex.column("is_representative").to_pylist())
        n_near = near.num_rows - sum(near.column("is_representative").to_pylist())
        step(
            f"dedup 'text': {n_ex:,} exact duplicates (normalised), {n_near:,} near duplicates "
            f"(MinHash, Jaccard >= 0.8) in {time.perf_counter() - t:.2f}s"
        )
        tags = lakevec.tag.rules(
            table,
            "text",
            regex={"formats": r"\b(parquet|delta|iceberg|arrow)\b"},
            keywords={"search": ["search", "query"]},
        )
        counts: dict = {}
        for ts in tags.column("tags").to_pylist():
            for tg in ts:
                counts[tg] = counts.get(tg, 0) + 1
        step(f"rule tags over 'text': {counts} (each match with its rule and byte span in 'matches')")
        step(f"done in {time.perf_counter() - t0:.2f}s")
    finally:
        if tmp is not None:
            tmp.cleanup()
