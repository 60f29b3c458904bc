"""Tagging on real data: rules vs Python `re` on the Debian corpus, kNN tags vs
scikit-learn's KNeighborsClassifier, concept tags, semantic dedup on MiniLM."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

PATTERNS = {
    "python": [r"\bpython\s*[23]?\b"],
    "library": [r"\blibrar(y|ies)\b"],
    "gui": [r"\b(gtk|qt|gui)\b"],
    "web": [r"\b(http|web|html|css|javascript)\b"],
    "database": [r"\b(sql|database|postgres\w*|mysql|sqlite)\b"],
    "game": [r"\bgames?\b"],
    "docs": [r"\bdocumentation\b", r"\bmanual pages?\b"],
    "kernel": [r"\bkernel\b"],
    "network": [r"\bnetwork(ing)?\b", r"\btcp\b"],
    "audio": [r"\b(audio|sound|alsa|pulseaudio)\b"],
    "video": [r"\bvideo\b"],
    "image": [r"\bimages?\b"],
    "crypto": [r"\b(crypt\w*|ssl|tls)\b"],
    "compression": [r"\b(compress\w*|zip|gzip|bzip2|xz)\b"],
    "compiler": [r"\bcompil(er|ers|ation)\b"],
    "shell": [r"\bshell\b"],
    "font": [r"\bfonts?\b"],
    "perl": [r"\bperl\b"],
    "ruby": [r"\bruby\b"],
    "java": [r"\bjava\b"],
    "rust": [r"\brust\b", r"\bcargo\b"],
    "golang": [r"\bgo(lang)?\b"],
    "haskell": [r"\bhaskell\b"],
    "tests": [r"\btest ?suite\b"],
    "version": [r"\bversion \d+(\.\d+)+\b"],
}


@pytest.fixture(scope="module")
def debian(shared_data):
    return pq.read_table(shared_data / "text" / "debian_descriptions.parquet")


def test_rules_equal_python_re(debian):
    res = lakevec.tag.rules(debian, "description", regex=PATTERNS)
    assert res.column_names == ["row", "tags", "matches"]
    texts = debian.column("description").to_pylist()
    compiled = {t: [re.compile(p, re.IGNORECASE) for p in ps] for t, ps in PATTERNS.items()}
    got = res.column("tags").to_pylist()
    mismatches = 0
    for i, text in enumerate(texts):
        want = [t for t, rs in compiled.items() if any(r.search(text) for r in rs)]
        mismatches += want != got[i]
    assert mismatches == 0, f"{mismatches} rows differ"
    assert sum(1 for g in got if g) > 30_000
    # spans: the same matches as re.finditer (char offsets -> byte offsets)
    matches = res.column("matches").to_pylist()
    for i in range(0, len(texts), 997):
        text = texts[i]
        want = sorted(
            (t, p.pattern, len(text[: m.start()].encode()), len(text[: m.end()].encode()))
            for t, rs in compiled.items()
            for p in rs
            for m in p.finditer(text)
        )
        have = sorted((m["tag"], m["rule"], m["start"], m["end"]) for m in matches[i])
        assert have == want, i


def test_keywords_and_bad_rules(tmp_path):
    t = pa.table({"s": ["Uses GTK and Qt5 widgets", "qt, gtk!", None, "nothing"]})
    res = lakevec.tag.rules(t, "s", keywords={"gui": ["gtk", "qt"]}, regex={"w": r"widgets?"})
    assert res.column("tags").to_pylist() == [["w", "gui"], ["gui"], [], []]
    m = res.column("matches").to_pylist()[0]
    assert [(x["tag"], x["start"], x["end"]) for x in m] == [("w", 17, 24), ("gui", 5, 8)]
    sensitive = lakevec.tag.rules(t, "s", keywords={"gui": ["gtk"]}, case_sensitive=True)
    assert sensitive.column("tags").to_pylist() == [[], ["gui"], [], []]
    with pytest.raises(E.InvalidArgumentError, match="tag 'bad': invalid regex"):
        lakevec.tag.rules(t, "s", regex={"bad": "(unclosed"})
    with pytest.raises(E.SchemaError, match="not a text column"):
        lakevec.tag.rules(pa.table({"n": [1]}), "n", regex={"x": "1"})
    # a lake table: addresses come back
    pq.write_table(t, tmp_path / "t.parquet")
    lake = lakevec.tag.rules(str(tmp_path / "t.parquet"), "s", keywords={"gui": ["gtk"]})
    assert lake.column_names[:2] == ["_file", "_row"]


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_equals_sklearn(debian, weights):
    neighbors = pytest.importorskip("sklearn.neighbors")
    t = debian.filter(pa.compute.is_valid(debian.column("section")))
    rng = np.random.default_rng(1)
    pick = rng.choice(t.num_rows, 6000, replace=False)
    train, test = t.take(pick[:5000]), t.take(pick[5000:])
    # Exemplars with identical vectors tie exactly; scikit-learn breaks such ties by
    # np.argpartition (unspecified order), lakevec by exemplar position: keep one of each.
    train = train.filter(lakevec.dedup.exact(train, "description").column("is_representative"))
    vec_train = lakevec.embed.hashing(train.column("description"), dim=512)
    vec_test = lakevec.embed.hashing(test.column("description"), dim=512)
    ex = pa.table({"v": vec_train, "section": train.column("section")})
    res = lakevec.tag.knn(pa.table({"v": vec_test}), "v", ex, "section", k=10, weights=weights)
    Xtr = np.stack(vec_train.to_numpy(zero_copy_only=False)).astype(np.float64)
    Xte = np.stack(vec_test.to_numpy(zero_copy_only=False)).astype(np.float64)
    clf = neighbors.KNeighborsClassifier(n_neighbors=10, weights=weights, algorithm="brute").fit(
        Xtr, train.column("section").to_pylist()
    )
    want = clf.predict(Xte)
    got = np.asarray(res.column("label").to_pylist(), dtype=object)
    agree = float(np.mean(got == want))
    truth = np.asarray(test.column("section").to_pylist(), dtype=object)
    majority = max(set(truth), key=list(train.column("section").to_pylist()).count)
    print(
        f"kNN ({weights}): agreement with scikit-learn {agree:.4f}; accuracy {np.mean(got == truth):.3f} "
        f"vs majority-class baseline ('{majority}') {np.mean(truth == majority):.3f}"
    )
    assert agree == 1.0
    assert np.mean(got == truth) > np.mean(truth == majority)
    # the "why": neighbours are exemplar rows, nearest first, whose labels voted
    nb = res.column("neighbors").to_pylist()[0]
    assert len(nb) == 10 and all(0 <= i < train.num_rows for i in nb)


def test_concepts_over_data_and_index(shared_data, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet")
    v = np.stack(base.column("vector").to_numpy(zero_copy_only=False))
    concepts = {"c0": v[0], "c1": v[[100, 200]]}
    res = lakevec.tag.concepts(base, concepts, threshold=0.3, column="vector")
    tags = res.column("tags").to_pylist()
    sims = v @ np.stack([v[0], v[100], v[200]]).T
    want = [[t for t, ok in (("c0", s[0] >= 0.7), ("c1", s[1] >= 0.7 or s[2] >= 0.7)) if ok] for s in sims]
    near = np.abs(sims - 0.7).min(axis=1) > 1e-4  # skip float ties at the boundary
    assert [a for a, ok in zip(tags, near) if ok] == [b for b, ok in zip(want, near) if ok]
    p = str(tmp_path / "t")
    deltalake.write_deltalake(p, base)
    idx = lakevec.build_index(p, "vector", metric="cosine", key="id", progress=False)
    by_index = lakevec.tag.concepts(idx, concepts, threshold=0.3)
    rows = lakevec.Table.open(p).take(by_index, ["id"]).column("id").to_pylist()
    ids = base.column("id").to_pylist()
    data_rows = {ids[i]: t for i, t in enumerate(tags) if t}
    got = dict(zip(rows, by_index.column("tags").to_pylist()))
    assert len(set(got) & set(data_rows)) >= 0.95 * len(data_rows)
    assert all(got[r] == data_rows[r] for r in got if r in data_rows and near[ids.index(r)])


def test_concepts_beyond_internal_search_limits(tmp_path):
    """A concept that matches more rows than k/ef may be (index of 20,000 rows, data of
    120,000) failed on internal limits; every matching row is tagged (exact range search)."""
    rng = np.random.default_rng(1)
    dim = 8
    v = rng.standard_normal((120_000, dim)).astype(np.float32)
    v[:, 0] += 3.0  # most rows lie near the concept direction
    c = np.eye(dim, dtype=np.float32)[0]
    cos = (v @ c) / np.linalg.norm(v, axis=1)
    threshold = 0.5
    want = 1.0 - cos <= threshold
    margin = np.abs(1.0 - cos - threshold) > 1e-5
    data = pa.table({"id": np.arange(len(v)), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)})
    tags = lakevec.tag.concepts(data, {"x": c}, threshold=threshold, column="vector").column("tags").to_pylist()
    got = np.array([t == ["x"] for t in tags])
    assert want.sum() > 100_000
    assert (got == want)[margin].all()
    pq.write_table(data.slice(0, 20_000), tmp_path / "t.parquet")
    idx = lakevec.build_index(str(tmp_path / "t.parquet"), "vector", metric="cosine", key="id", progress=False)
    res = lakevec.tag.concepts(idx, {"x": c}, threshold=threshold)
    rows = set(res.column("_row").to_pylist())
    assert want[:20_000].sum() > 16_384
    assert all((r in rows) == bool(w) for r, (w, ok) in enumerate(zip(want[:20_000], margin)) if ok)
    # the range search itself: every row within max_distance, nearest first
    hits = idx.search(c, k=None, exact=True, max_distance=threshold)
    assert hits.num_rows == len(rows) and (np.diff(hits.column("distance").to_numpy()) >= 0).all()
    with pytest.raises(E.InvalidArgumentError, match="k=None needs exact=True and max_distance"):
        idx.search(c, k=None)


@pytest.mark.slow
def test_semantic_dedup_minilm(shared_data, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet")
    v = np.stack(base.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    # exact all-pairs pass, in blocks
    exact = set()
    for s in range(0, len(v), 2048):
        sims = v[s : s + 2048] @ v.T
        for a, b in zip(*np.nonzero(sims >= 0.9)):
            if s + a < b:
                exact.add((s + a, b))
    assert len(exact) > 100
    p = str(tmp_path / "t")
    deltalake.write_deltalake(p, base)
    idx = lakevec.build_index(p, "vector", metric="cosine", key="id", progress=False)
    res = lakevec.dedup.semantic(idx, 0.9, k=10)
    # map addresses back to base positions through the key
    ids = lakevec.Table.open(p).take(res, ["id"]).column("id").to_numpy()
    cid = dict(zip(ids.tolist(), res.column("cluster_id").to_pylist()))
    base_ids = base.column("id").to_numpy()
    found = sum(cid[base_ids[a]] == cid[base_ids[b]] for a, b in exact)
    print(f"semantic dedup: {found}/{len(exact)} exact pairs (sim >= 0.9) clustered together")
    assert found / len(exact) >= 0.95
    # in-memory data: exact kNN pass, same clusters' pairs found
    mem = lakevec.dedup.semantic(base, 0.9, column="vector", k=10, keep="closest_to_centroid")
    mc = mem.column("cluster_id").to_numpy()
    assert sum(mc[a] == mc[b] for a, b in exact) / len(exact) >= 0.95
    sizes = mem.column("cluster_size").to_numpy()
    reps = mem.column("is_representative").to_numpy()
    assert reps.sum() == len(set(mc.tolist())) and sizes.max() > 1
    with pytest.raises(E.InvalidArgumentError, match="threshold"):
        lakevec.dedup.semantic(base, 1.5, column="vector")


def test_knn_over_an_index_polars_and_bad_vectors(debian, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    t = debian.filter(pa.compute.is_valid(debian.column("section"))).slice(0, 3000)
    t = t.filter(lakevec.dedup.exact(t, "description").column("is_representative"))
    ex = pa.table(
        {
            "v": lakevec.embed.hashing(t.column("description").slice(0, 2500), dim=256),
            "section": t.column("section").slice(0, 2500),
        }
    )
    q = pa.table({"v": lakevec.embed.hashing(t.column("description").slice(2500), dim=256)})
    p = str(tmp_path / "ex")
    deltalake.write_deltalake(p, ex)
    idx = lakevec.build_index(p, "v", metric="l2", progress=False)
    flat = lakevec.build_index(p, "v", metric="l2", index_type="flat", name="flat", progress=False)
    by_table = lakevec.tag.knn(q, "v", ex, "section", k=5)

    def agreement(by):
        return np.mean(np.asarray(by_table.column("label").to_pylist()) == np.asarray(by.column("label").to_pylist()))

    # an exact (flat) index votes as the in-memory exemplars do; the HNSW graph is approximate
    # (hashing embeddings have many near ties: 0.94-0.97 over repeated builds of the parallel
    # builder, which is not deterministic)
    assert agreement(lakevec.tag.knn(q, "v", flat, "section", k=5)) >= 0.99
    by_index = lakevec.tag.knn(q, "v", idx, "section", k=5)
    agree = agreement(by_index)
    assert agree >= 0.9, agree
    assert by_index.column_names == ["row", "label", "confidence", "neighbor_files", "neighbor_rows"]
    # min_confidence: low-confidence labels become null
    strict = lakevec.tag.knn(q, "v", ex, "section", k=5, min_confidence=0.99)
    conf = np.asarray(strict.column("confidence").to_pylist())
    assert all((lab is None) == (c < 0.99) for lab, c in zip(strict.column("label").to_pylist(), conf))
    # polars input
    pl = pytest.importorskip("polars")
    res = lakevec.tag.rules(pl.DataFrame({"s": ["a python lib", None]}), "s", regex={"py": r"python"})
    assert res.column("tags").to_pylist() == [["py"], []]
    # a vector column with mixed lengths is a clear error naming the row
    mixed = pa.table({"v": pa.array([[1.0, 2.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32()))})
    with pytest.raises(E.VectorError, match="column 'v', row 0: the vector has dimension 2, expected 256"):
        lakevec.tag.knn(mixed, "v", ex, "section")
    with pytest.raises(E.VectorError, match="column 'v', row 1: the vector has dimension 3, expected 2"):
        lakevec.dedup.semantic(mixed, 0.9, column="v")
