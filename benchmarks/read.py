"""Parquet read throughput and peak memory: lakevec vs pyarrow vs polars, one run, one file.

The file (generated once, ~500 MB): 300,000 rows, `id` int64, `text` (~150 chars of words)
and `vector` fixed_size_list<float32, 384>, snappy-compressed, 32,768 rows per row group
(~50 MB row groups, typical of lake writers). Each reader runs in its own subprocess so peak
RSS (ru_maxrss) is its own; the best of --repeat runs is reported.

    python benchmarks/read.py [--rows 300000] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

READERS = {
    "lakevec": "import lakevec; t = lakevec.read_table(PATH, num_threads=THREADS); n = t.num_rows",
    "lakevec (scan)": (
        "import lakevec; n = 0\nfor b in lakevec.Table.open(PATH).scan(num_threads=THREADS): n += b.num_rows"
    ),
    "pyarrow": "import pyarrow.parquet as pq; t = pq.read_table(PATH); n = t.num_rows",
    "polars": "import polars as pl; t = pl.read_parquet(PATH); n = t.height",
}

CHILD = """
import resource, sys, time, json, os
PATH = sys.argv[1]; THREADS = int(sys.argv[2]); REPEAT = int(sys.argv[3])
best = None
for _ in range(REPEAT):
    start = time.perf_counter()
{body}
    took = time.perf_counter() - start
    best = took if best is None else min(best, took)
    t = None
print(json.dumps({{"seconds": best, "rows": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def generate(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    words = np.array("lake vector arrow parquet table index search river data row".split())
    chunk = 32_768
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("vector", pa.list_(pa.float32(), 384))])
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            text = [" ".join(rng.choice(words, 25)) for _ in range(n)]
            vec = rng.standard_normal((n, 384)).astype(np.float32)
            t = pa.table(
                {
                    "id": np.arange(start, start + n, dtype=np.int64),
                    "text": text,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), 384),
                },
                schema=schema,
            )
            w.write_table(t, row_group_size=chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data-dir", default=os.environ.get("LAKEVEC_BENCH_DIR", HERE / "_data"))
    args = ap.parse_args()
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"read_{args.rows}.parquet"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        generate(path, args.rows)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {size_mb:.0f} MB, {args.rows:,} rows; threads={args.threads}; best of {args.repeat}\n")
    results = {}
    for name, body in READERS.items():
        code = CHILD.format(body="\n".join("    " + line for line in body.splitlines()))
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(args.threads), str(args.repeat)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["rows"] == args.rows, (name, r)
        results[name] = r
    print("| reader | seconds | MB/s | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.3f} | {size_mb / r['seconds']:.0f} | {r['peak_rss_mb']:.0f} |")
    if "lakevec" in results and "pyarrow" in results:
        ratio = results["pyarrow"]["seconds"] / results["lakevec"]["seconds"]
        print(f"\nlakevec / pyarrow throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
