"""Scale of the persisted dedup index (``python benchmarks/dedup.py --rows 2000000``).

Data: a synthetic corpus of ``rows`` texts made from the Debian descriptions with seeded word
edits, so its duplicate structure is known: each text is a random description (one of
63,905) with Poisson(1) word edits (a word replaced by another word of the corpus, deleted,
or a word inserted), written as a Delta table of ``0.9 * rows`` rows in files of 100,000
rows; the remaining 10% are appended before the refresh. Generated once into ``--dir``.

Steps, each in its own process (peak RSS = its ``ru_maxrss``): ``build``
(``lakevec.dedup.build_index(..., memory_limit="4GB")``, word 3-grams, threshold 0.8,
``sketch="oph"``), then the append (not timed), then ``refresh``. Printed: seconds, docs/s,
peak RSS, and refresh time / build time (goal <= 0.20); and how many texts made from the same
description with at most one edit share a cluster (pair recall against the known structure).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KW = dict(threshold=0.8, ngram=3, sketch="oph", memory_limit="4GB")
FILE_ROWS = 100_000


def make(data: Path, folder: Path, rows: int) -> None:
    """The synthetic table (first 90%) and the append (last 10%, a Parquet file), once."""
    from deltalake import write_deltalake

    if (folder / "base_version").exists():
        return
    base = pq.read_table(data, columns=["description"]).column("description").to_pylist()
    words = [w for t in base[:5000] for w in t.split()]
    rng = np.random.default_rng(2026)
    first = int(rows * 0.9)
    folder.mkdir(parents=True, exist_ok=True)
    appended = []
    starts = sorted({*range(0, first, FILE_ROWS), *range(first, rows, FILE_ROWS)})
    for start, end in zip(starts, starts[1:] + [rows]):
        n = end - start
        src = rng.integers(0, len(base), n)
        edits = rng.poisson(1.0, n)
        texts = []
        for s, e in zip(src.tolist(), edits.tolist()):
            toks = base[s].split()
            for _ in range(e):
                op, at = rng.integers(0, 3), int(rng.integers(0, max(len(toks), 1)))
                if op == 0 and toks:
                    toks[at] = words[int(rng.integers(0, len(words)))]
                elif op == 1 and len(toks) > 1:
                    del toks[at]
                else:
                    toks.insert(at, words[int(rng.integers(0, len(words)))])
            texts.append(" ".join(toks))
        t = pa.table(
            {
                "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "source": pa.array(src.astype(np.int64)),
                "edits": pa.array(edits.astype(np.int64)),
                "text": pa.array(texts),
            }
        )
        if start < first:
            write_deltalake(str(folder / "delta"), t, mode="append")
        else:
            appended.append(t)
        print(f"generated {start + n:,} / {rows:,} rows", file=sys.stderr)
    pq.write_table(pa.concat_tables(appended), folder / "append.parquet")
    from deltalake import DeltaTable

    (folder / "base_version").write_text(str(DeltaTable(str(folder / "delta")).version()))


def step(folder: Path, name: str) -> None:
    """One timed step in this process; prints a JSON line."""
    import lakevec

    uri = str(folder / "delta")
    base = int((folder / "base_version").read_text())
    t0 = time.perf_counter()
    if name == "build":  # the table before the append (a re-run finds it appended already)
        idx = lakevec.dedup.build_index(lakevec.Table.open(uri, version=base), "text", **KW)
        n = idx.manifest["rows"]
    elif name == "append":
        from deltalake import DeltaTable, write_deltalake

        if DeltaTable(uri).version() == base:
            write_deltalake(uri, pq.read_table(folder / "append.parquet"), mode="append")
        n = 0
    elif name == "refresh":
        idx = lakevec.dedup.open_index(lakevec.Table.open(uri))
        print(json.dumps({"opened": time.perf_counter() - t0}), file=sys.stderr)
        n = idx.refresh(memory_limit=KW["memory_limit"]).num_rows
    else:  # quality, not timed
        cl = lakevec.dedup.open_index(lakevec.Table.open(uri)).clusters()
        t = lakevec.Table.open(uri).to_arrow(columns=["source", "edits"], with_row_address=True)
        key = {
            (f, r): (s, e)
            for f, r, s, e in zip(*(t.column(c).to_pylist() for c in ("_file", "_row", "source", "edits")))
        }
        by_src: dict = {}
        for f, r, c in zip(*(cl.column(x).to_pylist() for x in ("_file", "_row", "cluster_id"))):
            s, e = key[(f, r)]
            if e <= 1:
                by_src.setdefault(s, []).append(c)
        total = sum(len(v) * (len(v) - 1) // 2 for v in by_src.values())
        same = 0
        for v in by_src.values():
            counts = np.unique(np.array(v), return_counts=True)[1]
            same += int((counts * (counts - 1) // 2).sum())
        print(json.dumps({"pairs": total, "same_cluster": same}), file=sys.stderr)
        n = 0
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": name, "seconds": secs, "rows": n, "peak_rss_mb": rss}))


def scale(data: Path, folder: Path, rows: int, only: str | None) -> None:
    folder = folder / f"rows-{rows}"
    if only:
        step(folder, only)
        return
    make(data, folder, rows)
    import shutil

    shutil.rmtree(folder / "delta" / "_lakevec_index", ignore_errors=True)
    out = {}
    extra = {}
    for name in ("build", "append", "refresh", "quality"):
        cmd = [sys.executable, __file__.replace("_dedup_scale.py", "dedup.py"), "--rows", str(rows)]
        cmd += ["--dir", str(folder.parent), "--scale-step", name]
        p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if p.returncode != 0:
            print(f"{name}: FAILED\n{p.stderr[-3000:]}")
            return
        out[name] = json.loads(p.stdout.strip().splitlines()[-1])
        if name in ("refresh", "quality"):
            extra.update(json.loads(p.stderr.strip().splitlines()[-1]))
    print(
        f"\n## Dedup index at scale: {rows:,} synthetic rows (90% built, 10% appended), {KW}, {os.cpu_count()} cores\n"
    )
    print("| step | rows | seconds | docs/s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|")
    for name in ("build", "refresh"):
        r = out[name]
        print(
            f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['peak_rss_mb']:,.0f} |"
        )
    print(
        f"\nrefresh / build time: {out['refresh']['seconds'] / out['build']['seconds']:.3f} (goal <= 0.20); "
        f"open_index {extra['opened']:.2f} s of the refresh step"
    )
    print(
        f"texts from one description with at most one edit, pairs in one cluster: "
        f"{extra['same_cluster']:,} / {extra['pairs']:,} = {extra['same_cluster'] / max(extra['pairs'], 1):.4f}"
    )
