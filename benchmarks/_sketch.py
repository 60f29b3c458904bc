"""MinHash sketches on real text, for ``benchmarks/dedup.py``: speed against rensa and
quality against exact ground truth.

1. Speed, Debian descriptions (63,905 rows), word 3-grams of the ``\\w+`` tokens of the
   NFKC-normalised, lower-cased text, 128 slots, threshold 0.8: lakevec's whole
   ``lakevec.dedup.minhash`` call (text -> clusters: shingling, sketch, LSH, verification,
   union-find) with ``sketch="oph"`` and ``sketch="classic"``, against rensa's sketch + LSH
   alone on the same shingles made in Python beforehand (``RMinHash.digest_matrix_from_token_sets``
   + ``RMinHashLSH.insert_matrix_and_query_duplicate_flags``, 16 bands: flags only, no
   verification or clusters), and rensa end to end (Python shingling included).
2. Quality, Debian: every pair of rows whose shingle sets have exact Jaccard >= 0.85 (an
   exact all-pairs join: identical sets grouped, then prefix filtering on the rarest tokens,
   Bayardo, Ma and Srikant, "Scaling up all pairs similarity search", WWW 2007, verified
   exactly); pair recall = the share of those pairs that lakevec puts in one cluster.
3. Quality, Cora (1,879 citations, gold duplicate pairs): every field but id and the
   ``*_original`` copies joined by spaces, char 5-grams, threshold 0.7; pair precision,
   recall and F1 of the clusters (datasketch's published figure on this set: F1 0.909).
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections import Counter, defaultdict
from importlib.metadata import version
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import lakevec

try:
    import rensa
except ImportError:  # extra "bench" installs it
    rensa = None

THRESHOLD, NUM_PERM, NGRAM, RENSA_BANDS, EXACT_J = 0.8, 128, 3, 16, 0.85
WORD = re.compile(r"\w+")


def word_shingles(text: str | None, n: int = NGRAM) -> list[str]:
    """lakevec's word shingles of ``text``: n-grams of the ``\\w+`` tokens after NFKC,
    lower-casing and whitespace collapsing (fewer than ``n`` tokens: one shingle of them all)."""
    toks = WORD.findall(" ".join(unicodedata.normalize("NFKC", text or "").lower().split()))
    if not toks:
        return []
    n = min(n, len(toks))
    return [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def best(repeat: int, fn):
    out, secs = None, math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        secs = min(secs, time.perf_counter() - t0)
    return out, secs


def exact_pairs(sets: list[frozenset], t: float) -> tuple[dict, list]:
    """Identical non-empty sets grouped ({set: rows}) and the pairs of distinct groups with
    exact Jaccard >= t, as (group a, group b) indices into the list of groups."""
    groups: dict[frozenset, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        if s:
            groups[s].append(i)
    uniq = list(groups)
    freq = Counter(tok for s in uniq for tok in s)
    rank = {tok: r for r, (tok, _) in enumerate(sorted(freq.items(), key=lambda kv: (kv[1], kv[0])))}
    order = sorted(range(len(uniq)), key=lambda g: len(uniq[g]))
    index: dict[int, list[int]] = defaultdict(list)
    pairs = []
    for g in order:
        s = uniq[g]
        toks = sorted(rank[x] for x in s)
        prefix = len(s) - math.ceil(t * len(s)) + 1
        seen = set()
        for tok in toks[:prefix]:
            for h in index[tok]:
                if h in seen or len(uniq[h]) < t * len(s):
                    continue
                seen.add(h)
                inter = len(s & uniq[h])
                if inter / (len(s) + len(uniq[h]) - inter) >= t:
                    pairs.append((h, g))
            index[tok].append(g)
    return {s: groups[s] for s in uniq}, [(uniq[a], uniq[b]) for a, b in pairs]


def pair_recall(groups: dict, cross: list, labels: np.ndarray) -> tuple[int, int]:
    """(true pairs, true pairs in one cluster) at row level, for cluster ``labels`` per row."""
    total = found = 0
    for rows in groups.values():
        m = len(rows)
        total += m * (m - 1) // 2
        found += sum(c * (c - 1) // 2 for c in Counter(labels[rows]).values())
    for a, b in cross:
        ra, rb = groups[a], groups[b]
        total += len(ra) * len(rb)
        ca = Counter(labels[ra])
        found += sum(ca[c] * n for c, n in Counter(labels[rb]).items())
    return total, found


def section_sketch(data: Path, shared: Path, repeat: int) -> None:
    table = pq.read_table(data, columns=["description"])
    texts = table.column("description").to_pylist()
    n = len(texts)
    print(
        f"\n### MinHash sketches: word {NGRAM}-grams, {NUM_PERM} slots, threshold {THRESHOLD}, {n:,} Debian "
        f"descriptions (best of {repeat})\n"
    )
    rows, res = [], {}
    for sketch in ("oph", "classic"):
        out, secs = best(
            repeat,
            lambda s=sketch: lakevec.dedup.minhash(
                table, "description", threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, sketch=s
            ),
        )
        res[sketch] = out
        dups = int((~out.column("is_representative").to_numpy(zero_copy_only=False)).sum())
        rows.append((f'lakevec dedup.minhash(sketch="{sketch}"), text -> clusters', secs, f"{dups:,} duplicate rows"))
    t0 = time.perf_counter()
    sh = [word_shingles(s) for s in texts]
    shingle_secs = time.perf_counter() - t0
    if rensa is not None:

        def rensa_run():
            m = rensa.RMinHash.digest_matrix_from_token_sets(sh, NUM_PERM, 42)
            lsh = rensa.RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=RENSA_BANDS)
            return lsh.insert_matrix_and_query_duplicate_flags(m)

        flags, rsecs = best(repeat, rensa_run)
        note = f"{sum(flags):,} rows flagged (share a band; not verified)"
        rows.append(
            (
                f"rensa {version('rensa')} sketch + LSH alone, pre-shingled input",
                rsecs,
                note,
            )
        )
        rows.append(("rensa end to end (Python shingling + sketch + LSH)", rsecs + shingle_secs, note))
    print("| run | seconds | docs/s | result |")
    print("|---|---:|---:|---|")
    for name, secs, note in rows:
        print(f"| {name} | {secs:.3f} | {n / secs:,.0f} | {note} |")
    if rensa is not None:
        oph, rs, classic = rows[0][1], rows[2][1], rows[1][1]
        print(f"\nlakevec oph (whole call) / rensa sketch + LSH alone, throughput: {rs / oph:.2f}x")
        print(
            f"lakevec oph / lakevec classic, throughput: {classic / oph:.2f}x "
            f"(issue 16's measured classic call: 0.78 s -> {0.78 / oph:.2f}x)"
        )

    t0 = time.perf_counter()
    groups, cross = exact_pairs([frozenset(s) for s in sh], EXACT_J)
    truth_secs = time.perf_counter() - t0
    print(
        f"\nPair recall at exact Jaccard >= {EXACT_J} (ground truth: {len(groups):,} distinct shingle sets, "
        f"{len(cross):,} pairs of distinct sets, exact join in {truth_secs:.1f} s):\n"
    )
    print("| sketch | true pairs | in one cluster | pair recall |")
    print("|---|---:|---:|---:|")
    for sketch, out in res.items():
        total, found = pair_recall(groups, cross, out.column("cluster_id").to_numpy())
        print(f"| {sketch} | {total:,} | {found:,} | {found / total:.4f} |")
    section_cora(shared)


def prf(clusters, ids, truth) -> tuple[int, float, float, float]:
    """(predicted pairs, precision, recall, F1) of cluster labels against gold pairs of ids."""
    by: dict = defaultdict(list)
    for c, i in zip(clusters, ids):
        by[c].append(i)
    pred = {p for g in by.values() for p in combinations(sorted(g), 2)}
    tp = len(pred & truth)
    p, r = tp / max(len(pred), 1), tp / len(truth)
    return len(pred), p, r, (2 * p * r / (p + r) if p + r else 0.0)


def datasketch_clusters(texts: list[str], ngram: int, threshold: float) -> list[int] | None:
    """datasketch's MinHashLSH on the same char shingles (estimate >= threshold, union-find)."""
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        return None
    norm = [" ".join(unicodedata.normalize("NFKC", t).lower().split()) for t in texts]
    lsh, sigs = MinHashLSH(threshold=threshold, num_perm=NUM_PERM), []
    for i, t in enumerate(norm):
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([t[j : j + ngram].encode() for j in range(max(len(t) - ngram + 1, 1))])
        lsh.insert(i, m)
        sigs.append(m)
    parent = list(range(len(norm)))

    def find(x):
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        return x

    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j != i and m.jaccard(sigs[j]) >= threshold:
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(norm))]


def section_cora(shared: Path) -> None:
    import pandas as pd

    df = pd.read_csv(shared / "data" / "dedup" / "cora.csv", sep=";", dtype=str, keep_default_na=False)
    gold = pd.read_csv(shared / "data" / "dedup" / "cora_DPL.csv", sep=";")
    truth = {(min(a, b), max(a, b)) for a, b in gold[["id1", "id2"]].astype(int).values}
    cols = [c for c in df.columns if c not in ("id", "authors_original", "editors_original")]
    records = pd.DataFrame({"text": df[cols].agg(" ".join, axis=1)})
    ids = df["id"].astype(int).to_numpy()
    print(f"\nCora ({len(df):,} records, {len(truth):,} gold pairs), char shingles, {NUM_PERM} slots:\n")
    print("| library | shingles, threshold | predicted pairs | precision | recall | F1 |")
    print("|---|---|---:|---:|---:|---:|")
    for ngram, threshold in [(5, 0.7), (4, 0.6)]:
        runs = {}
        for sketch in ("oph", "classic"):
            res = lakevec.dedup.minhash(
                records, "text", threshold=threshold, num_perm=NUM_PERM, ngram=ngram, shingle="char", sketch=sketch
            )
            runs[f"lakevec {sketch}"] = res["cluster_id"].to_numpy()
        ds = datasketch_clusters(list(records["text"]), ngram, threshold)
        if ds is not None:
            runs["datasketch"] = ds
        for name, labels in runs.items():
            n, p, r, f1 = prf(labels, ids, truth)
            print(f"| {name} | char {ngram}-grams, {threshold} | {n:,} | {p:.3f} | {r:.3f} | {f1:.3f} |")
