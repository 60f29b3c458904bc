"""Dedup kernels on real corpora: MinHash-LSH on Cora (pair F1) and Debian (pairs vs exact
Jaccard), determinism across threads and batch splits, exact dedup vs pandas, the hashing
vectorizer vs scikit-learn, bad input."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E


def _pairs_from_clusters(cluster_ids, ids):
    groups = defaultdict(list)
    for c, i in zip(cluster_ids, ids):
        groups[c].append(i)
    return {p for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


@pytest.mark.parametrize("sketch", ["classic", "oph"])
def test_cora_minhash_f1(shared_data, sketch):
    """Parameters: every field but id and the *_original copies, joined by spaces; char
    4-gram shingles after NFKC/case/whitespace normalisation; num_perm=128; threshold 0.6
    (bands/rows from datasketch's rule: 18 x 7); estimated Jaccard; connected components.
    datasketch on the same shingles: F1 0.953 (benchmarks/dedup.py)."""
    df = pd.read_csv(shared_data / "dedup" / "cora.csv", sep=";", dtype=str, keep_default_na=False)
    gold = pd.read_csv(shared_data / "dedup" / "cora_DPL.csv", sep=";")
    truth = {(min(a, b), max(a, b)) for a, b in gold[["id1", "id2"]].astype(int).values}
    cols = [c for c in df.columns if c not in ("id", "authors_original", "editors_original")]
    records = pd.DataFrame({"text": df[cols].agg(" ".join, axis=1)})
    res = lakevec.dedup.minhash(records, "text", threshold=0.6, num_perm=128, ngram=4, shingle="char", sketch=sketch)
    assert isinstance(res, pd.DataFrame) and list(res.index) == list(records.index)
    pred = _pairs_from_clusters(res["cluster_id"], df["id"].astype(int))
    tp = len(pred & truth)
    p, r = tp / len(pred), tp / len(truth)
    f1 = 2 * p * r / (p + r)
    print(f"Cora MinHash ({sketch}): P={p:.3f} R={r:.3f} F1={f1:.3f}")
    assert f1 >= 0.91


def _shingles(text, n=5):
    toks = re.findall(r"\w+", " ".join(unicodedata.normalize("NFKC", text).lower().split()))
    if not toks:
        return frozenset()
    n = min(n, len(toks))
    return frozenset(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))


@pytest.fixture(scope="module")
def debian_sample(shared_data):
    t = pq.read_table(shared_data / "text" / "debian_descriptions.parquet")
    idx = np.sort(np.random.default_rng(0).choice(t.num_rows, 5000, replace=False))
    return t.take(idx)


@pytest.mark.parametrize("sketch", ["classic", "oph"])
def test_debian_pairs_against_exact_jaccard(debian_sample, sketch):
    texts = debian_sample.column("description").to_pylist()
    sh = [_shingles(x) for x in texts]
    inv = defaultdict(list)
    for i, s in enumerate(sh):
        for g in s:
            inv[g].append(i)
    share = {p for rows in inv.values() for p in itertools.combinations(rows, 2)}
    truth = {(a, b) for a, b in share if len(sh[a] & sh[b]) / len(sh[a] | sh[b]) >= 0.8}
    assert len(truth) > 100
    # word 5-grams (the defaults), candidates verified by exact Jaccard, banding weighted
    # towards recall (false-negative weight 0.9)
    res, pairs = lakevec.dedup.minhash(
        debian_sample, "description", threshold=0.8, verify="exact", weights=(0.1, 0.9), pairs=True, sketch=sketch
    )
    pred = set(zip(pairs.column("a").to_pylist(), pairs.column("b").to_pylist()))
    tp = len(pred & truth)
    precision, recall = tp / len(pred), tp / len(truth)
    print(
        f"Debian 5,000 rows ({sketch}), threshold 0.8: precision {precision:.3f}, recall {recall:.3f} "
        f"({len(truth)} true pairs)"
    )
    assert recall >= 0.90 and precision >= 0.95
    # every reported Jaccard is the exact one
    assert pairs.column_names == ["a", "b", "jaccard_estimate", "jaccard"]
    for a, b, j in itertools.islice(zip(*(pairs.column(c).to_pylist() for c in ("a", "b", "jaccard"))), 50):
        assert abs(j - len(sh[a] & sh[b]) / len(sh[a] | sh[b])) < 1e-6
    # clusters are the connected components of the pairs
    comp = _pairs_from_clusters(res.column("cluster_id").to_pylist(), range(len(texts)))
    assert pred <= comp
    # estimated verification (default): most reported pairs are true ones (pairs near the
    # threshold are estimation noise; copies with identical signatures come as star edges)
    _, est = lakevec.dedup.minhash(debian_sample, "description", threshold=0.8, pairs=True, sketch=sketch)
    est_pairs = set(zip(est.column("a").to_pylist(), est.column("b").to_pylist()))
    assert len(est_pairs & truth) / len(est_pairs) >= 0.85


@pytest.mark.parametrize("sketch", ["classic", "oph"])
def test_determinism_threads_and_batches(debian_sample, sketch):
    t = debian_sample.select(["package", "description"])
    ref = lakevec.dedup.minhash(t, "description", threshold=0.7, num_threads=1, sketch=sketch)
    assert lakevec.dedup.minhash(t, "description", threshold=0.7, num_threads=2, sketch=sketch).equals(ref)
    for nb in (1, 7, 64):
        bounds = np.linspace(0, t.num_rows, nb + 1).astype(int)
        sigs = [
            lakevec.dedup.minhash_signatures(t.slice(a, b - a), "description", num_threads=1 + (i % 2), sketch=sketch)
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        out = lakevec.dedup.minhash_clusters(sigs, threshold=0.7)
        for c in ("cluster_id", "cluster_size", "is_representative"):
            assert out.column(c).equals(ref.column(c)), (nb, c)
        assert out.column("package").equals(t.column("package"))


def test_exact_equals_pandas_drop_duplicates(shared_data):
    df = pq.read_table(shared_data / "text" / "debian_descriptions.parquet").to_pandas()
    res = lakevec.dedup.exact(df, "description", normalize=True)
    norm = df["description"].map(lambda s: " ".join(unicodedata.normalize("NFKC", s).lower().split()))
    keep = ~norm.duplicated(keep="first")
    assert (res["is_representative"] == keep).all()
    # sizes match pandas' group sizes
    sizes = norm.map(norm.value_counts())
    assert (res["cluster_size"] == sizes).all()
    # without normalisation: plain equality (2,470 exact duplicates per shared/README)
    raw = lakevec.dedup.exact(df, "description")
    assert (raw["is_representative"] == ~df["description"].duplicated()).all()
    assert int((~raw["is_representative"]).sum()) == int(df["description"].duplicated().sum())
    # keep="last" and keep="longest"
    last = lakevec.dedup.exact(df, "description", keep="last")
    assert (last["is_representative"] == ~df["description"].duplicated(keep="last")).all()


def test_exact_on_a_lake_table_and_multi_column(tmp_path):
    t = pa.table({"a": ["x", "x", "y", None, None], "b": ["1", "1", "1", "2", "2"], "n": [1, 5, 3, 4, 2]})
    pq.write_table(t, tmp_path / "t.parquet")
    res = lakevec.dedup.exact(str(tmp_path / "t.parquet"), ["a", "b"], keep="n")
    assert res.column_names[:2] == ["_file", "_row"]
    assert res.column("cluster_id").to_pylist() == [0, 0, 2, 3, 3]
    assert res.column("is_representative").to_pylist() == [False, True, True, True, False]
    longest = lakevec.dedup.exact(
        pa.table({"s": ["aa", "AA ", "aa"]}), "s", normalize=["lower", "whitespace"], keep="longest"
    )
    assert longest.column("is_representative").to_pylist() == [False, True, False]
    assert longest.column_names[0] == "row"


def test_hashing_vectorizer_equals_sklearn(debian_sample):
    sk = pytest.importorskip("sklearn.feature_extraction.text")
    texts = debian_sample.column("description").to_pylist()[:500] + ["", "x", "Ünïcödé ﬁle  tabs\tand  spaces"]
    for analyzer, ngram in (("word", (1, 2)), ("char", (2, 4))):
        ref = sk.HashingVectorizer(n_features=256, ngram_range=ngram, analyzer=analyzer).transform(texts).toarray()
        got = lakevec.embed.hashing(texts, dim=256, ngram=ngram, analyzer=analyzer)
        assert got.type.list_size == 256
        np.testing.assert_allclose(np.stack(got.to_numpy(zero_copy_only=False)), ref, atol=1e-6)


def test_bad_input(tmp_path):
    t = pa.table({"s": ["a b c", None, "", "d e f"], "n": [1, 2, 3, 4]})
    res = lakevec.dedup.minhash(t, "s", threshold=0.5, ngram=2)
    assert res.column("cluster_size").to_pylist() == [1, 1, 1, 1]  # null / empty: never duplicates
    with pytest.raises(E.InvalidArgumentError, match=r"threshold must be in \(0, 1\]"):
        lakevec.dedup.minhash(t, "s", threshold=0)
    with pytest.raises(E.InvalidArgumentError, match=r"threshold must be in \(0, 1\]"):
        lakevec.dedup.minhash(t, "s", threshold=1.5)
    with pytest.raises(E.InvalidArgumentError, match="bands"):
        lakevec.dedup.minhash(t, "s", num_perm=128, bands=7)
    with pytest.raises(E.SchemaError, match="'n' is not a text column"):
        lakevec.dedup.minhash(t, "n")
    with pytest.raises(E.SchemaError, match="not found"):
        lakevec.dedup.exact(t, "nope")
    with pytest.raises(E.InvalidArgumentError, match="shingle"):
        lakevec.dedup.minhash(t, "s", shingle="sentence")
    with pytest.raises(E.InvalidArgumentError, match="sketch must be 'oph' or 'classic', not 'fast'"):
        lakevec.dedup.minhash(t, "s", sketch="fast")
    raw = pa.table({"b": pa.array([b"ok", b"\xff\xfe"], pa.binary())})
    with pytest.raises(E.InvalidArgumentError, match="'b', row 1: bytes are not valid UTF-8"):
        lakevec.dedup.exact(raw, "b")
    with pytest.raises(E.InvalidArgumentError, match="normalize"):
        lakevec.dedup.exact(t, "s", normalize=["upper"])
    with pytest.raises(E.InvalidArgumentError, match="dim"):
        lakevec.embed.hashing(["a"], dim=0)


def test_sketch_params_pickle_and_differ():
    """``sketch`` is part of the picklable parameters; the two sketches give different
    signatures of the same text, each deterministic, and a one-word text fills every slot."""
    import pickle

    from lakevec import _minhash

    p = _minhash.minhash_params(num_perm=64, ngram=2, shingle="word", seed=3, normalize=True, sketch="oph")
    assert pickle.loads(pickle.dumps(p)) == p and p.sketch == "oph" and "sketch='oph'" in repr(p)
    t = pa.table({"s": ["the quick brown fox jumps over the lazy dog", "word"]})
    sig = {
        k: lakevec.dedup.minhash_signatures(t, "s", num_perm=64, ngram=2, sketch=k).column("signature").to_pylist()
        for k in ("oph", "classic")
    }
    assert sig["oph"][0] != sig["classic"][0]
    assert (
        lakevec.dedup.minhash_signatures(t, "s", num_perm=64, ngram=2, sketch="oph").column("signature").to_pylist()
        == sig["oph"]
    )
    assert len(set(sig["oph"][1])) == 1  # one shingle: densification copies it everywhere


def test_many_identical_texts_are_joined_by_star_edges_not_all_pairs():
    """3,000 copies of one text: one cluster, 2,999 pairs (never 3000*2999/2)."""
    t = pa.table({"s": ["same boilerplate text here"] * 3000 + ["other words entirely"]})
    res, pairs = lakevec.dedup.minhash(t, "s", threshold=0.8, ngram=2, pairs=True)
    assert res.column("cluster_size").to_pylist()[:3] == [3000] * 3
    assert pairs.num_rows == 2999  # star edges to the first copy, not 3000*2999/2


def test_huge_bands_and_rows_are_an_argument_error():
    """bands/rows beyond num_perm (here beyond u32) raise instead of panicking."""
    t = pa.table({"s": ["same boilerplate text here"] * 3000 + ["other words entirely"]})
    with pytest.raises(E.InvalidArgumentError, match="bands"):
        lakevec.dedup.minhash(t, "s", bands=2**32, rows=2**32)


def test_semantic_dedup_with_k_zero_is_an_argument_error():
    v = pa.table({"v": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(8, np.float32)), 4)})
    with pytest.raises(E.InvalidArgumentError, match="k must be"):
        lakevec.dedup.semantic(v, 0.9, column="v", k=0)
