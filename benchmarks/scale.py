"""Index at lake scale: lakevec vs hnswlib vs faiss (IndexHNSWFlat) on generated tables of
clustered 384-d unit vectors, every step in its own process (peak RSS per step).

For each row count of ``--rows`` (e.g. 1000000,4000000), in ``--dir``:

* generate: 1,000 random unit centres in 384 dimensions, each row a centre plus Gaussian
  noise (0.03 per dimension, norm ~0.6), normalised; written as a Parquet folder (files of
  100,000 rows) and a Delta table of the same files; 1,000 held-out queries of the same
  distribution, and their exact top-10 by cosine (a blocked float32 matrix product in numpy);
* lakevec: ``build_index`` over the Delta table (cosine, M=16, ef_construction=100, all
  threads, ``memory_limit`` from ``--memory-limit``); then in a new process ``open_index``
  (seconds, RSS after it), 1,000 queries one at a time at each ef of the sweep (RSS after
  them, recall@10, 1-thread QPS), and the single-query latency of ``search(one_vector)``;
* hnswlib and faiss: read the Parquet folder with pyarrow, build with the same M,
  ef_construction and threads (their build time and peak RSS include the read), then the
  same sweep. Their "open" is loading an index they saved (hnswlib ``load_index``, faiss
  ``read_index``).

The compressed kinds run as ``--libs`` names (``KINDS``: ``lakevec_sq8``,
``lakevec_sq8_lake``, ``lakevec_rabitq1``, ``lakevec_rabitq1_lake``, ``lakevec_rabitq4``,
``lakevec_rabitq8``), each
also searched without re-ranking (``rerank=0``) at the ef where its re-ranked sweep reached
0.95.

Prints one Markdown table per row count: build s, build peak RSS, sidecar (or saved index)
bytes / vector bytes, open s, RSS after open, RSS after 1,000 queries, recall@10 and
1-thread QPS at the lowest ef reaching recall 0.95. hnswlib and faiss are optional.

    python benchmarks/scale.py --rows 1000000,4000000 --dir /tmp/lakevec-scale [--memory-limit 4GB]
        [--libs lakevec,lakevec_sq8,lakevec_rabitq1_lake,hnswlib,faiss] [--segments 1,2,5,10]

``--segments``: also builds the first row count's table as 1, 2, 5 and 10 segments and
prints recall@10 and QPS at ef=64 for each (many segments are searched in parallel and
merged exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DIM, CLUSTERS, FILE_ROWS, NQ, K = 384, 1000, 100_000, 1000, 10
NOISE = 0.03  # per dimension
M, EFC = 16, 100
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


def rss_mb() -> float:
    """Resident set size of this process now (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    """Peak RSS of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def unit(x):
    import numpy as np

    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------- steps (own process)
def step_generate(d: Path, rows: str) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    rows = int(rows)
    rng = np.random.default_rng(rows)
    centres = unit(rng.standard_normal((CLUSTERS, DIM)))
    pqdir, delta = d / "parquet", d / "delta"
    pqdir.mkdir(parents=True, exist_ok=True)

    def block(n, seed):
        r = np.random.default_rng(seed)
        c = r.integers(0, CLUSTERS, n)
        # noise of norm ~0.6 around unit centres: clusters with structure inside them
        return unit(centres[c] + NOISE * r.standard_normal((n, DIM)).astype(np.float32))

    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        v = block(n, 1000 + i)
        t = pa.table(
            {
                "id": np.arange(start, start + n, dtype=np.int64),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
            }
        )
        pq.write_table(t, pqdir / f"part-{i:05d}.parquet", row_group_size=20_000)
        write_deltalake(str(delta), t, mode="append")
    q = block(NQ, 7)
    np.save(d / "queries.npy", q)
    # exact top-10 by cosine (dot of unit vectors), blocked over the Parquet files
    best = np.full((NQ, K), -np.inf, np.float32)
    ids = np.zeros((NQ, K), np.int64)
    for f in sorted(pqdir.glob("*.parquet")):
        t = pq.read_table(f)
        x = t.column("vector").combine_chunks().values.to_numpy().reshape(-1, DIM)
        s = q @ x.T
        i0 = t.column("id").to_numpy()
        cand_s = np.concatenate([best, s], axis=1)
        cand_i = np.concatenate([ids, np.broadcast_to(i0, s.shape)], axis=1)
        top = np.argpartition(-cand_s, K, axis=1)[:, :K]
        best = np.take_along_axis(cand_s, top, 1)
        ids = np.take_along_axis(cand_i, top, 1)
    np.save(d / "truth.npy", ids)
    return {"vector_bytes": rows * DIM * 4}


def _sweep(search_one, truth) -> tuple[list, float]:
    """(rows of (ef, recall, qps)) of 1-thread search, one query per call, and the RSS after."""
    import numpy as np

    q = np.load(Path(os.environ["SCALE_DIR"]) / "queries.npy")
    out = []
    for ef in EFS:
        t0 = time.perf_counter()
        found = [search_one(q[i], ef) for i in range(NQ)]
        dt = time.perf_counter() - t0
        rec = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
        out.append((ef, float(rec), NQ / dt))
    return out, rss_mb()


# lakevec's index kinds, as --libs names: build_index arguments (the index is named after it)
KINDS = {
    "lakevec": {},
    "lakevec_sq8": {"index_type": "hnsw_sq8"},
    "lakevec_sq8_lake": {"index_type": "hnsw_sq8", "rerank_source": "lake"},
    "lakevec_rabitq1": {"index_type": "hnsw_rabitq", "bits": 1},
    "lakevec_rabitq1_lake": {"index_type": "hnsw_rabitq", "bits": 1, "rerank_source": "lake"},
    "lakevec_rabitq4": {"index_type": "hnsw_rabitq", "bits": 4},
    "lakevec_rabitq8": {"index_type": "hnsw_rabitq", "bits": 8},
}


def _index_name(lib: str) -> str:
    return "default" if lib == "lakevec" else lib


def step_lakevec_build(d: Path, limit: str, lib: str = "lakevec") -> dict:
    import lakevec

    t0 = time.perf_counter()
    idx = lakevec.build_index(
        str(d / "delta"),
        "vector",
        metric="cosine",
        key="id",
        m=M,
        ef_construction=EFC,
        memory_limit=limit,
        progress=False,
        name=_index_name(lib),
        **KINDS[lib],
    )
    st = idx.stats()
    return {
        "build_s": time.perf_counter() - t0,
        "peak_mb": peak_mb(),
        "sidecar_bytes": st["sidecar_bytes"],
        "segments": st["segments"],
        "recall_estimate": st["recall_estimate"],
    }


def step_lakevec_search(d: Path, lib: str = "lakevec") -> dict:
    import numpy as np

    import lakevec

    truth = np.load(d / "truth.npy")
    t0 = time.perf_counter()
    idx = lakevec.open_index(str(d / "delta" / "_lakevec_index" / _index_name(lib)), consistency_interval=60)
    open_s = time.perf_counter() - t0
    after_open = rss_mb()
    idx.search(np.load(d / "queries.npy")[:1], k=K, num_threads=1)  # first use maps the segments

    def one(v, ef):
        return idx.search(v, k=K, ef=ef, num_threads=1).column("id").to_pylist()

    sweep, after = _sweep(one, truth)
    out = {"open_s": open_s, "rss_open_mb": after_open, "rss_queries_mb": after, "sweep": sweep}
    if lib != "lakevec":
        # the same index without re-ranking (code distances), at the ef the sweep reached 0.95
        ef = at95(sweep)[0]
        q = np.load(d / "queries.npy")
        found = [idx.search(q[i], k=K, ef=ef, num_threads=1, rerank=0).column("id").to_pylist() for i in range(NQ)]
        out["recall_no_rerank"] = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
    return out


def step_lakevec_segments(d: Path, segments: str) -> dict:
    """Build the Delta table's index as ``segments`` segments (files are whole, so a count that
    does not divide the files gives the nearest), then search 1,000 queries at ef=64: one at
    a time on one thread, and as one batch on all threads."""
    import numpy as np

    import lakevec

    rows = lakevec.Table.open(str(d / "delta")).num_rows
    files = -(-rows // FILE_ROWS)
    per = -(-files // int(segments)) * FILE_ROWS
    t0 = time.perf_counter()
    idx = lakevec.build_index(
        str(d / "delta"), "vector", metric="cosine", key="id", m=M, ef_construction=EFC,
        name=f"seg{segments}", max_segment_rows=per, progress=False,
    )  # fmt: skip
    build_s = time.perf_counter() - t0
    idx = lakevec.open_index(idx.uri, consistency_interval=60)
    q, truth = np.load(d / "queries.npy"), np.load(d / "truth.npy")
    idx.search(q[:1], k=K, num_threads=1)
    t0 = time.perf_counter()
    found = [idx.search(q[i], k=K, ef=64, num_threads=1).column("id").to_pylist() for i in range(NQ)]
    qps1 = NQ / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    idx.search(q, k=K, ef=64)
    qps_batch = NQ / (time.perf_counter() - t0)
    rec = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
    return {"segments": idx.stats()["segments"], "build_s": build_s, "recall": rec, "qps1": qps1, "qpsb": qps_batch}


def _read_parquet(d: Path):
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(d / "parquet")
    return t.column("vector").combine_chunks().values.to_numpy().reshape(-1, DIM), t.column("id").to_numpy().astype(
        np.int64
    )


def step_hnswlib_build(d: Path) -> dict:
    import hnswlib

    t0 = time.perf_counter()
    x, ids = _read_parquet(d)
    p = hnswlib.Index(space="ip", dim=DIM)
    p.init_index(len(x), M=M, ef_construction=EFC)
    p.add_items(x, ids, num_threads=os.cpu_count())
    dt = time.perf_counter() - t0
    p.save_index(str(d / "hnswlib.bin"))
    return {"build_s": dt, "peak_mb": peak_mb(), "sidecar_bytes": (d / "hnswlib.bin").stat().st_size}


def step_hnswlib_search(d: Path) -> dict:
    import hnswlib
    import numpy as np

    truth = np.load(d / "truth.npy")
    t0 = time.perf_counter()
    p = hnswlib.Index(space="ip", dim=DIM)
    p.load_index(str(d / "hnswlib.bin"))
    open_s = time.perf_counter() - t0
    after_open = rss_mb()
    p.set_num_threads(1)

    def one(v, ef):
        p.set_ef(ef)
        return p.knn_query(v, k=K)[0][0].tolist()

    sweep, after = _sweep(one, truth)
    return {"open_s": open_s, "rss_open_mb": after_open, "rss_queries_mb": after, "sweep": sweep}


def step_faiss_build(d: Path) -> dict:
    import faiss

    t0 = time.perf_counter()
    x, ids = _read_parquet(d)
    faiss.omp_set_num_threads(os.cpu_count())
    inner = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = EFC
    idx = faiss.IndexIDMap(inner)
    idx.add_with_ids(x, ids)
    dt = time.perf_counter() - t0
    faiss.write_index(idx, str(d / "faiss.bin"))
    return {"build_s": dt, "peak_mb": peak_mb(), "sidecar_bytes": (d / "faiss.bin").stat().st_size}


def step_faiss_search(d: Path) -> dict:
    import faiss
    import numpy as np

    truth = np.load(d / "truth.npy")
    t0 = time.perf_counter()
    idx = faiss.read_index(str(d / "faiss.bin"))
    open_s = time.perf_counter() - t0
    after_open = rss_mb()
    faiss.omp_set_num_threads(1)
    hnsw = faiss.downcast_index(idx.index).hnsw

    def one(v, ef):
        hnsw.efSearch = ef
        return idx.search(v[None, :], K)[1][0].tolist()

    sweep, after = _sweep(one, truth)
    return {"open_s": open_s, "rss_open_mb": after_open, "rss_queries_mb": after, "sweep": sweep}


STEPS = {
    "generate": step_generate,
    "lakevec_build": step_lakevec_build,
    "lakevec_search": step_lakevec_search,
    "lakevec_segments": step_lakevec_segments,
    "hnswlib_build": step_hnswlib_build,
    "hnswlib_search": step_hnswlib_search,
    "faiss_build": step_faiss_build,
    "faiss_search": step_faiss_search,
}


def run_step(name: str, d: Path, *args) -> dict | None:
    """Run step `name` in a new Python process; its JSON result (None if it failed)."""
    env = dict(os.environ, SCALE_DIR=str(d))
    cmd = [sys.executable, __file__, "--step", name, "--dir", str(d), *map(str, args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"note: step {name} failed: {p.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def at95(sweep):
    for ef, rec, qps in sweep:
        if rec >= 0.95:
            return ef, rec, qps
    ef, rec, qps = sweep[-1]
    return ef, rec, qps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument(
        "--libs", default="lakevec,hnswlib,faiss", help=f"which libraries to run (lakevec kinds: {', '.join(KINDS)})"
    )
    ap.add_argument("--segments", default="", help="also: QPS vs segment count, e.g. 1,2,5,10 (on the first --rows)")
    ap.add_argument("--step")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    if a.step:
        d = Path(a.dir)
        print(json.dumps(STEPS[a.step](d, *a.extra)))
        return
    import importlib.util

    wanted = a.libs.split(",")
    known = [*KINDS, "hnswlib", "faiss"]
    libs = [n for n in known if n in wanted and importlib.util.find_spec(n.split("_")[0])]
    print(
        f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB; "
        f"M={M}, ef_construction={EFC}, dim={DIM}, cosine, lakevec memory_limit={a.memory_limit}"
    )
    for rows in [int(r) for r in a.rows.split(",")]:
        d = Path(a.dir) / f"rows-{rows}"
        if not (d / "truth.npy").exists():
            t0 = time.perf_counter()
            if run_step("generate", d, rows) is None:
                sys.exit(1)
            print(f"\ngenerated {rows:,} rows in {time.perf_counter() - t0:.0f} s at {d}")
        vbytes = rows * DIM * 4
        print(f"\n## {rows:,} x {DIM} ({vbytes / 1e9:.2f} GB of vectors), 1,000 queries\n")
        print(
            "| library | build s | build peak RSS GB | peak / vectors | index bytes / vectors | open s | "
            "RSS after open MB | RSS after 1,000 queries MB | ef at recall>=0.95 | recall@10 | "
            "recall@10 without re-ranking | QPS 1 thread |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for lib in libs:
            if lib in KINDS:
                b = run_step("lakevec_build", d, a.memory_limit, lib)
                s = run_step("lakevec_search", d, lib) if b else None
            else:
                b = run_step(f"{lib}_build", d)
                s = run_step(f"{lib}_search", d) if b else None
            if not (b and s):
                continue
            ef, rec, qps = at95(s["sweep"])
            plain = f"{s['recall_no_rerank']:.4f}" if "recall_no_rerank" in s else "-"
            print(
                f"| {lib} | {b['build_s']:.1f} | {b['peak_mb'] / 1e3:.2f} | {b['peak_mb'] * 1e6 / vbytes:.2f} | "
                f"{b['sidecar_bytes'] / vbytes:.2f} | {s['open_s']:.3f} | {s['rss_open_mb']:.0f} | "
                f"{s['rss_queries_mb']:.0f} | {ef} | {rec:.4f} | {plain} | {qps:,.0f} |"
            )
            sys.stdout.flush()
        if a.segments and rows == int(a.rows.split(",")[0]):
            print(f"\n### lakevec, {rows:,} rows as N segments: 1,000 queries at ef=64\n")
            print("| segments | build s | recall@10 | QPS 1 thread, one query per call | QPS one batch, all threads |")
            print("|---:|---:|---:|---:|---:|")
            for n in a.segments.split(","):
                r = run_step("lakevec_segments", d, n)
                if r:
                    print(
                        f"| {r['segments']} | {r['build_s']:.1f} | {r['recall']:.4f} | {r['qps1']:,.0f} | "
                        f"{r['qpsb']:,.0f} |"
                    )
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
