"""Ray scale-out: index build and MinHash dedup on 1 vs 2 Ray workers (CPUs).

Data (../shared/data; LAKEVEC_SHARED overrides ../shared):
- index: the MiniLM base set (12,052 x 384 float32, cosine) written as a Delta table of
  --files files; `lakevec.ray.build_index(files_per_task=1)`: one Ray task per file, each
  reading its file's vectors, building its HNSW graph (M=16, ef_construction=200) on the
  one CPU it is granted, and writing its segment; then the driver's commit.
- dedup: the Debian package descriptions (63,905 rows); `lakevec.ray.dedup_minhash`
  (num_perm=128, word 5-grams, threshold 0.8, --partitions shuffle groups).

Each configuration runs in a fresh local Ray cluster, `ray.init(num_cpus=W)` for W in
--workers, so W tasks run at once. Each job runs --repeat times after one warm-up run
(worker start-up and imports excluded); the best run is reported, with each stage's share
of that run (index: `segments` = the Ray tasks, `commit` = segment verification and
manifest publish; dedup: `signatures`, `buckets` (band rows, groupby shuffle, bucket
verification, edges into the driver's union-find), `components`, `output` (cluster columns
joined back to row ids, sorted)). For reference the single-process calls
(`lakevec.build_index`, `lakevec.dedup.minhash`) are timed with 1 and 2 threads.

    python benchmarks/ray_scale.py [--workers 1 2] [--repeat 2] [--files 8] [--partitions 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("LAKEVEC_SHARED", HERE.parent.parent / "shared"))


def _delta_table(root: Path, files: int) -> str:
    import deltalake

    base = pq.read_table(SHARED / "data" / "ann" / "minilm_base.parquet")
    path = root / "minilm"
    n = base.num_rows
    for i in range(files):
        a, b = i * n // files, (i + 1) * n // files
        deltalake.write_deltalake(str(path), base.slice(a, b - a), mode="append" if i else "error")
    return str(path)


def _best(repeat: int, fn):
    fn()  # warm-up
    best = None
    for _ in range(repeat):
        timings: dict = {}
        t0 = time.perf_counter()
        fn(timings)
        total = time.perf_counter() - t0
        if best is None or total < best[0]:
            best = (total, timings)
    return best


def run_ray(workers: int, table: str, debian: str, repeat: int, partitions: int, scratch: Path) -> dict:
    import ray

    import lakevec.ray as lray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        runs = iter(range(10**6))

        def build(timings=None):
            uri = str(scratch / f"idx_{workers}_{next(runs)}")
            lray.build_index(table, "vector", metric="cosine", index_uri=uri, files_per_task=1, timings=timings)

        def dedup(timings=None):
            ds = lray.dedup_minhash(debian, "description", threshold=0.8, num_partitions=partitions, timings=timings)
            assert ds.count() > 60_000

        return {"index build": _best(repeat, build), "MinHash dedup": _best(repeat, dedup)}
    finally:
        ray.shutdown()


def run_single(threads: int, table: str, debian: str, repeat: int, scratch: Path) -> dict:
    import lakevec

    runs = iter(range(10**6))

    def build(timings=None):
        uri = str(scratch / f"single_{threads}_{next(runs)}")
        lakevec.build_index(table, "vector", metric="cosine", index_uri=uri, num_threads=threads, progress=False)

    def dedup(timings=None):
        lakevec.dedup.minhash(debian, "description", threshold=0.8, num_threads=threads)

    return {"index build": _best(repeat, build), "MinHash dedup": _best(repeat, dedup)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    debian = str(SHARED / "data" / "text" / "debian_descriptions.parquet")
    scratch = Path(tempfile.mkdtemp(prefix="lakevec_ray_scale_"))
    try:
        table = _delta_table(scratch, args.files)
        results = {w: run_ray(w, table, debian, args.repeat, args.partitions, scratch) for w in args.workers}
        single = {t: run_single(t, table, debian, args.repeat, scratch) for t in args.workers}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; best of {args.repeat} after a warm-up")
    print(f"index: MiniLM 12,052 x 384 cosine, Delta table of {args.files} files, one Ray task per file")
    print(f"dedup: Debian 63,905 descriptions, num_perm=128, threshold 0.8, {args.partitions} shuffle groups\n")
    first = args.workers[0]
    print(f"| job | Ray workers | seconds | speed-up vs {first} | stage shares |")
    print("|---|---:|---:|---:|---|")
    for job in ("index build", "MinHash dedup"):
        for w in args.workers:
            total, timings = results[w][job]
            base = results[first][job][0]
            stages = {k: v for k, v in timings.items() if isinstance(v, float)}
            shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stages.items())
            print(f"| {job} | {w} | {total:.2f} | {base / total:.2f}x | {shares} |")
    print("\nsingle process (no Ray), same jobs:\n")
    print("| job | threads | seconds |")
    print("|---|---:|---:|")
    for job in ("index build", "MinHash dedup"):
        for t in args.workers:
            print(f"| {job} | {t} | {single[t][job][0]:.2f} |")


if __name__ == "__main__":
    main()
