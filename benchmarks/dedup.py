"""Dedup and tagging throughput: lakevec vs datasketch / pandas / Python `re`, real text.

Data: the Debian package descriptions (../shared/data/text/debian_descriptions.parquet,
63,905 rows; LAKEVEC_SHARED overrides ../shared), read once with pyarrow (not timed).

1. MinHash near-duplicates, the same parameters on both sides: num_perm=128, word 5-gram
   shingles of the `\\w+` tokens of the NFKC-normalised, lower-cased, whitespace-collapsed text
   (fewer than 5 tokens: one shingle of them all; texts without tokens skipped), threshold
   0.8. lakevec: `lakevec.dedup.minhash` on all rows and on the first --datasketch-rows;
   datasketch: MinHash + update_batch per doc, MinHashLSH insert, query every doc,
   union-find the candidates (on the subsample only: it is slow). Each run is its own
   subprocess (peak RSS = its ru_maxrss, table loading included); time covers shingling,
   hashing, LSH and clustering. Agreement on the subsample: duplicate rows (not
   representative) on each side and the Jaccard of the two sets of within-cluster pairs,
   against datasketch's raw LSH clusters and against them with candidate pairs verified by
   datasketch's estimated Jaccard >= threshold (what lakevec's verify="estimate" does).
   Then ``_sketch.py``: the one-permutation sketch (``sketch="oph"``) and the classic one on
   word 3-grams against rensa's sketch + LSH, pair recall at exact Jaccard >= 0.85, and Cora
   pair F1 against datasketch on the same shingles.
2. Exact dedup after NFKC + lower-case + whitespace collapse: `lakevec.dedup.exact` vs pandas
   `map(normalise).duplicated()`; rows/s and whether the same rows are marked duplicate.
3. Rule tagging: `lakevec.tag.rules` (~25 regex tags + 3 keyword tags, case-insensitive) vs
   Python `re` (re.IGNORECASE, finditer per pattern per row; keywords as one \\b-bounded
   alternation per tag); rows/s and the share of rows with identical tag sets.

Times are the best of --repeat runs (datasketch: one run).

    python benchmarks/dedup.py [--datasketch-rows 10000] [--repeat 3] [--data PATH]

Scale (``_dedup_scale.py``): ``--rows 2000000 [--dir /tmp/lakevec-dedup-scale]`` builds a
persisted dedup index of a synthetic corpus of that many rows and refreshes a 10% append.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _common import best_of
from _sketch import section_sketch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LAKEVEC_SHARED", ROOT.parent / "shared"))
THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5

REGEX = {
    "python": r"\bpython\s*[23]?\b",
    "library": r"\blibrar(y|ies)\b",
    "gui": r"\b(gtk|qt|gui)\b",
    "web": [r"\bweb\b", r"\bhttps?\b", r"\bhtml5?\b"],
    "database": r"\b(database|sql|sqlite|postgresql|mysql|mariadb)\b",
    "game": r"\bgames?\b",
    "doc": r"\bdocumentation\b",
    "kernel": r"\bkernel\b",
    "network": r"\bnetwork(s|ing)?\b",
    "audio": r"\b(audio|sound|alsa|pulseaudio)\b",
    "video": r"\b(video|mpeg|ffmpeg)\b",
    "image": r"\b(image|png|jpeg|svg)s?\b",
    "crypto": r"\b(crypto\w*|encrypt\w*|ssl|tls)\b",
    "compression": r"\b(compress\w*|zip|gzip|bzip2|xz)\b",
    "compiler": r"\bcompil(er|ers|ation)\b",
    "shell": r"\b(shell|bash|zsh)\b",
    "font": r"\bfonts?\b",
    "perl": r"\bperl\b",
    "ruby": r"\bruby\b",
    "java": r"\bjava\b",
    "rust": r"\b(rust|cargo|crate)\b",
    "golang": r"\b(golang|go\s+programming)\b",
    "haskell": r"\b(haskell|ghc)\b",
    "test suite": r"\btest[- ]?suites?\b",
    "transitional": r"\b(transitional|dummy)\s+package\b",
}
KEYWORDS = {
    "science": [
        "physics",
        "chemistry",
        "biology",
        "astronomy",
        "mathematics",
        "statistics",
        "genome",
        "molecular",
        "simulation",
        "numerical",
    ],
    "desktop": ["gnome", "kde", "xfce", "lxde", "desktop", "window manager", "panel", "applet", "wallpaper", "theme"],
    "dev": [
        "debugger",
        "profiler",
        "ide",
        "linter",
        "header files",
        "development files",
        "static analysis",
        "build system",
        "bindings",
        "api",
    ],
}


def load(path: Path, rows: int | None = None):
    t = pq.read_table(path, columns=["description"])
    return t.slice(0, rows) if rows else t


def normalise(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).lower().split())


def shingles(text: str) -> set[bytes]:
    toks = re.findall(r"\w+", normalise(text))
    if len(toks) < NGRAM:
        return {" ".join(toks).encode()} if toks else set()
    return {" ".join(toks[i : i + NGRAM]).encode() for i in range(len(toks) - NGRAM + 1)}


def union_find_labels(n: int, pairs) -> np.ndarray:
    """Cluster label per row: the smallest row in its connected component."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def worker(kind: str, data: Path, rows: int | None, repeat: int, out: str) -> None:
    import resource

    t = load(data, rows)
    n = t.num_rows
    extra = {}
    if kind == "minhash-lakevec":
        import lakevec

        res, best = best_of(
            repeat,
            lambda: lakevec.dedup.minhash(
                t, "description", threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, shingle="word"
            ),
        )
        labels = np.empty(n, dtype=np.int64)
        labels[res.column("row").to_numpy()] = res.column("cluster_id").to_numpy()
    else:
        from datasketch import MinHash, MinHashLSH

        texts = t.column("description").to_pylist()
        t0 = time.perf_counter()
        lsh, mhs = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM), {}
        for i, text in enumerate(texts):
            sh = shingles(text or "")
            if not sh:
                continue
            m = MinHash(num_perm=NUM_PERM)
            m.update_batch(list(sh))
            lsh.insert(i, m)
            mhs[i] = m
        cand = [(i, j) for i, m in mhs.items() for j in lsh.query(m) if j != i]
        labels = union_find_labels(n, cand)
        best = time.perf_counter() - t0
        verified = [(i, j) for i, j in cand if i < j and mhs[i].jaccard(mhs[j]) >= THRESHOLD]
        np.save(out + ".verified.npy", union_find_labels(n, verified))
        extra = {"candidate_pairs": sum(1 for i, j in cand if i < j), "verified_pairs": len(verified)}
    np.save(out, labels)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": best, "rows": n, "peak_rss_mb": rss, **extra}))


def run_worker(kind, data, rows, repeat, tmp):
    out = os.path.join(tmp, f"{kind}_{rows or 'all'}.npy")
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--repeat", str(repeat), "--out", out] + (
        ["--worker-rows", str(rows)] if rows else []
    )
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"{kind} (rows={rows or 'all'}): FAILED\n{p.stderr}")
        return None
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["labels"] = np.load(out)
    if os.path.exists(out + ".verified.npy"):
        r["verified"] = np.load(out + ".verified.npy")
    return r


def dup_rows(labels: np.ndarray) -> np.ndarray:
    return labels != np.arange(len(labels))


def pair_jaccard(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(pairs in a, pairs in b, Jaccard of the two sets of within-cluster pairs), by counting."""

    def npairs(keys):
        c = np.fromiter(Counter(keys).values(), dtype=np.int64)
        return int((c * (c - 1) // 2).sum())

    pa_, pb, both = npairs(a.tolist()), npairs(b.tolist()), npairs(zip(a.tolist(), b.tolist()))
    union = pa_ + pb - both
    return pa_, pb, (both / union if union else 1.0)


def section_minhash(data: Path, sub: int, repeat: int) -> None:
    import lakevec

    print(
        f"\n## 1. MinHash near-duplicates (num_perm={NUM_PERM}, word {NGRAM}-grams, threshold "
        f"{THRESHOLD}; lakevec threads {lakevec.default_num_threads()}, load avg "
        f"{os.getloadavg()[0]:.2f})\n"
    )
    with tempfile.TemporaryDirectory(prefix="dedup_bench_") as tmp:
        runs = [
            ("lakevec", None, run_worker("minhash-lakevec", data, None, repeat, tmp)),
            ("lakevec", sub, run_worker("minhash-lakevec", data, sub, repeat, tmp)),
            ("datasketch", sub, run_worker("minhash-datasketch", data, sub, 1, tmp)),
        ]
    print("| library | rows | seconds | docs/s | peak RSS (MB) | duplicate rows |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, r in runs:
        if r:
            print(
                f"| {name} | {r['rows']:,} | {r['seconds']:.3f} | {r['rows'] / r['seconds']:,.0f} | "
                f"{r['peak_rss_mb']:,.0f} | {int(dup_rows(r['labels']).sum()):,} |"
            )
    lv, ds = runs[1][2], runs[2][2]
    if not (lv and ds):
        print("\nminhash summary: not available (a run failed)")
        return
    print(
        f"\ndatasketch LSH candidate pairs {ds['candidate_pairs']:,}, of which estimated "
        f"Jaccard >= {THRESHOLD}: {ds['verified_pairs']:,}"
    )
    print(
        f"\n| first {sub:,} rows: lakevec vs | lakevec dup rows | other dup rows | dup in both | "
        "lakevec pairs | other pairs | pair Jaccard |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for what, other in (
        ("datasketch (LSH candidates)", ds["labels"]),
        ("datasketch (verified >= threshold)", ds["verified"]),
    ):
        da, db = dup_rows(lv["labels"]), dup_rows(other)
        pa_, pb, jac = pair_jaccard(lv["labels"], other)
        print(
            f"| {what} | {int(da.sum()):,} | {int(db.sum()):,} | {int((da & db).sum()):,} | "
            f"{pa_:,} | {pb:,} | {jac:.4f} |"
        )
    full = runs[0][2]
    ds_rate, lv_rate = ds["rows"] / ds["seconds"], lv["rows"] / lv["seconds"]
    msg = f"lakevec {lv_rate:,.0f} / datasketch {ds_rate:,.0f} docs/s on {sub:,} rows = {lv_rate / ds_rate:.1f}x"
    if full:
        full_rate = full["rows"] / full["seconds"]
        msg += f"; lakevec all {full['rows']:,} rows {full_rate:,.0f} docs/s = {full_rate / ds_rate:.1f}x"
    print(f"\nminhash summary: {msg} (goal >= 30x)")


def section_exact(table, repeat: int) -> None:
    import lakevec

    n = table.num_rows
    print(f"\n## 2. Exact dedup after NFKC + lower + whitespace ({n:,} rows)\n")
    res, lv_s = best_of(repeat, lambda: lakevec.dedup.exact(table, "description", normalize=True))
    lv_dup = np.zeros(n, dtype=bool)
    lv_dup[res.column("row").to_numpy()] = ~res.column("is_representative").to_numpy(zero_copy_only=False)
    df = table.to_pandas()
    pd_dup, pd_s = best_of(
        repeat, lambda: df["description"].map(lambda s: None if s is None else normalise(s)).duplicated()
    )
    pd_dup = pd_dup.to_numpy()
    same = bool((lv_dup == pd_dup).all())
    print("| library | seconds | rows/s | duplicate rows |")
    print("|---|---:|---:|---:|")
    print(f"| lakevec | {lv_s:.3f} | {n / lv_s:,.0f} | {int(lv_dup.sum()):,} |")
    print(f"| pandas | {pd_s:.3f} | {n / pd_s:,.0f} | {int(pd_dup.sum()):,} |")
    print(f"\nsame rows marked duplicate: {same}" + ("" if same else f" ({int((lv_dup != pd_dup).sum())} rows differ)"))
    print(f"\nexact summary: lakevec {n / lv_s:,.0f} / pandas {n / pd_s:,.0f} rows/s = {pd_s / lv_s:.1f}x")


def re_tags(texts):
    rx = [
        (tag, [re.compile(p, re.IGNORECASE) for p in ([ps] if isinstance(ps, str) else ps)])
        for tag, ps in REGEX.items()
    ]
    rx += [
        (tag, [re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)])
        for tag, words in KEYWORDS.items()
    ]
    out = []
    for text in texts:
        tags, matches = [], []
        for tag, pats in rx:
            found = [(tag, k, m.start(), m.end()) for k, p in enumerate(pats) for m in p.finditer(text)]
            matches += found
            if found:
                tags.append(tag)
        out.append(tags)
    return out


def section_tag(table, repeat: int) -> None:
    from lakevec.tag import rules

    n = table.num_rows
    print(
        f"\n## 3. Rule tagging ({len(REGEX)} regex tags, {len(KEYWORDS)} keyword tags, case-insensitive, {n:,} rows)\n"
    )
    res, lv_s = best_of(
        repeat, lambda: rules(table, "description", regex=REGEX, keywords=KEYWORDS, case_sensitive=False)
    )
    lv_tags = [set()] * n
    for r, tags in zip(res.column("row").to_pylist(), res.column("tags").to_pylist()):
        lv_tags[r] = set(tags or [])
    texts = [s or "" for s in table.column("description").to_pylist()]
    py_tags, py_s = best_of(repeat, lambda: re_tags(texts))
    same = [a == set(b) for a, b in zip(lv_tags, py_tags)]
    agree = sum(same) / n
    print("| library | seconds | rows/s | tagged rows | tag assignments |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| lakevec | {lv_s:.3f} | {n / lv_s:,.0f} | {sum(1 for t in lv_tags if t):,} | "
        f"{sum(len(t) for t in lv_tags):,} |"
    )
    print(
        f"| Python re | {py_s:.3f} | {n / py_s:,.0f} | {sum(1 for t in py_tags if t):,} | "
        f"{sum(len(t) for t in py_tags):,} |"
    )
    print(f"\nrows with identical tag sets: {sum(same):,} / {n:,} = {agree:.4%}")
    diff = Counter(t for a, b in zip(lv_tags, py_tags) for t in a.symmetric_difference(b))
    if diff:
        print(f"tags that differ most: {diff.most_common(5)}")
    print(
        f"\ntag summary: lakevec {n / lv_s:,.0f} / Python re {n / py_s:,.0f} rows/s = "
        f"{py_s / lv_s:.1f}x; tag sets agree on {agree:.2%} of rows"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "text" / "debian_descriptions.parquet")
    ap.add_argument("--datasketch-rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", choices=["minhash-lakevec", "minhash-datasketch"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-rows", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--rows", type=int, default=None, help="scale run: a dedup index of this many synthetic rows (_dedup_scale.py)"
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/lakevec-dedup-scale"), help="scale run: data folder")
    ap.add_argument("--scale-step", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.worker_rows, args.repeat, args.out)
        return
    if args.rows:
        from _dedup_scale import scale

        scale(args.data, args.dir, args.rows, args.scale_step)
        return
    from importlib.metadata import PackageNotFoundError, version

    import lakevec

    try:
        ds = version("datasketch")
    except PackageNotFoundError:
        ds = "- (not installed: pip install datasketch)"
    print(
        f"lakevec {lakevec.__version__}, datasketch {ds}, pandas {version('pandas')}, "
        f"{os.cpu_count()} cores, data {args.data}"
    )
    section_minhash(args.data, args.datasketch_rows, args.repeat)
    section_sketch(args.data, SHARED, args.repeat)
    table = load(args.data)
    section_exact(table, args.repeat)
    section_tag(table, args.repeat)


if __name__ == "__main__":
    main()
