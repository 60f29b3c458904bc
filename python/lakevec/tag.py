"""Tagging kernels: rules (regexes and keywords), nearest labelled exemplars (kNN), and
concept vectors.

Inputs as in :mod:`lakevec.dedup`: a :class:`lakevec.Table` or URI (results carry
``_file``, ``_row``) or in-memory Arrow/pandas/polars data (results carry ``row``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lakevec import _inputs, _lakevec
from lakevec._progress import run_with_progress
from lakevec.exceptions import InvalidArgumentError, SchemaError

__all__ = ["rules", "knn", "concepts"]


def _rule_map(rules: Mapping[str, Any] | None) -> list[tuple[str, list[str]]]:
    out = []
    for tag, v in (rules or {}).items():
        pats = [v] if isinstance(v, str) else list(v)
        if not all(isinstance(p, str) for p in pats):
            raise InvalidArgumentError(f"rules of tag {tag!r} must be strings")
        out.append((str(tag), pats))
    return out


def rules(
    data: Any,
    column: str,
    regex: Mapping[str, str | Sequence[str]] | None = None,
    keywords: Mapping[str, Sequence[str]] | None = None,
    *,
    case_sensitive: bool = False,
    num_threads: int | None = None,
    storage_options=None,
    progress: Any = None,
):
    """Tag texts by regular expressions and keyword lists, all in one pass per batch.

    Regexes (Rust ``regex`` syntax: Perl-like, no look-around or backreferences; ``\\w`` and
    ``\\b`` are Unicode-aware) are compiled into one ``RegexSet``; keywords into one
    Aho-Corasick automaton, matched as whole words (ASCII case-folding when not
    ``case_sensitive``).

    Args:
        regex: tag -> pattern or list of patterns.
        keywords: tag -> list of literal words.
        progress: a tqdm bar of the rows tagged (``None``, the default: when a person is
            watching, in Jupyter or a terminal, not in Ray/Spark workers), ``True``/``False``,
            or a callable ``(phase, done, total)`` called about every 100 ms.

    Returns:
        Row ids + ``tags`` (list<string>: the tags that matched, in the order the tags were
        given) and ``matches`` (list<struct<tag, rule, start, end>>: every match with its
        rule and byte span, for provenance). Null texts get empty lists.

    Raises:
        InvalidArgumentError: a pattern that does not compile (naming its tag), an empty
        keyword. SchemaError: a missing or non-text column.
    """
    inp = _inputs.load(data, [column], storage_options)
    texts = _inputs.array(inp.data, column)
    tags, matches = run_with_progress(
        progress,
        "tag.rules",
        lambda cb: _lakevec.rule_tags(
            texts, column, _rule_map(regex), _rule_map(keywords), case_sensitive, num_threads, cb
        ),
    )
    return _inputs.finish(inp, pa.table({"tags": tags, "matches": matches}))


def _vectors(t: pa.Table, column: str) -> pa.Array:
    arr = _inputs.array(t, column)
    if not (pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise SchemaError(f"column {column!r} is not a vector column (type {arr.type})")
    return arr


def knn(
    data: Any,
    column: str,
    exemplars: Any,
    label_column: str,
    k: int = 10,
    *,
    weights: str = "uniform",
    metric: str = "l2",
    exemplar_column: str | None = None,
    min_confidence: float = 0.0,
    num_threads: int | None = None,
    storage_options=None,
    progress: Any = None,
):
    """Label each row by its ``k`` nearest labelled exemplars.

    ``progress``: a tqdm bar of the rows searched against in-memory exemplars (``None``, the
    default: when a person is watching; see :func:`rules`).

    ``weights="uniform"`` is a majority vote; ``"distance"`` weights each neighbour by
    ``1 / distance`` (Euclidean for ``l2``; an exemplar at distance 0 takes all the weight),
    exactly as scikit-learn's ``KNeighborsClassifier`` (ties go to the label that sorts
    first). Exemplars as an Arrow/pandas table are searched exactly; a
    :class:`lakevec.VectorIndex` over a labelled table is searched by its graph (labels
    fetched from its table).

    Returns:
        Row ids + ``label`` (null below ``min_confidence``), ``confidence`` (the winning
        label's share of the vote weight), and ``neighbors`` (list<int64>: the exemplars'
        row positions, nearest first; for an index, ``neighbor_files``/``neighbor_rows``):
        the "why" of each label.

    Raises:
        SchemaError: missing columns. VectorError: dimension mismatch, NaN/inf vectors.
        InvalidArgumentError: bad ``k``, ``weights`` or ``metric``.
    """
    from lakevec.index import VectorIndex

    if k < 1:
        raise InvalidArgumentError(f"k must be >= 1, got {k}")
    if weights not in ("uniform", "distance"):
        raise InvalidArgumentError(f"weights must be 'uniform' or 'distance', not {weights!r}")
    inp = _inputs.load(data, [column], storage_options)
    queries = _vectors(inp.data, column)
    n = inp.data.num_rows
    if isinstance(exemplars, VectorIndex):
        hits = exemplars.search(queries, k=k, columns=[label_column], num_threads=num_threads)
        qi = hits.column("query").to_numpy()
        labels_raw = hits.column(label_column)
        dist = hits.column("distance").to_numpy().astype(np.float64)
        if exemplars.metric == "l2":
            dist = np.sqrt(np.maximum(dist, 0))
        idx = np.full((n, k), -1, np.int64)
        d = np.full((n, k), np.inf)
        pos = np.zeros(n, np.int64)
        lab_index = np.full((n, k), -1, np.int64)
        classes, codes = np.unique(np.asarray(labels_raw.to_pylist(), dtype=object).astype(str), return_inverse=True)
        for j, q in enumerate(qi):
            idx[q, pos[q]] = j
            d[q, pos[q]] = dist[j]
            lab_index[q, pos[q]] = codes[j]
            pos[q] += 1
        neigh = {
            "neighbor_files": _lists(hits.column("_file"), qi, n),
            "neighbor_rows": _lists(hits.column("_row"), qi, n),
        }
        label_values = pa.array(classes)
    else:
        ex = _inputs.load(exemplars, [exemplar_column or column, label_column]).data
        labels = ex.column(label_column)
        if labels.null_count:
            raise InvalidArgumentError(f"exemplar labels in {label_column!r} must not be null")
        classes, codes = np.unique(np.asarray(labels.to_pylist(), dtype=object), return_inverse=True)
        ex_vec = _vectors(ex, exemplar_column or column)
        # float32 candidates (k + 8) from the Rust scan, re-ranked by float64 distances
        kk = k + 8
        flat_i, _ = run_with_progress(
            progress,
            "tag.knn",
            lambda cb: _lakevec.knn_arrays(
                queries, ex_vec, int(kk), metric, num_threads, column, f"exemplars.{exemplar_column or column}", cb
            ),
        )
        cand = np.asarray(flat_i, np.int64).reshape(n, -1) if n else np.zeros((0, kk), np.int64)
        idx, d = _rerank(queries, ex_vec, cand, k, metric)
        lab_index = np.where(idx >= 0, codes[np.maximum(idx, 0)], -1)
        neigh = {"neighbors": pa.array([list(r[r >= 0]) for r in idx], pa.list_(pa.int64()))}
        label_values = pa.array(classes.tolist())
    valid = lab_index >= 0
    if weights == "uniform":
        w = valid.astype(np.float64)
    else:
        with np.errstate(divide="ignore"):
            w = np.where(valid, 1.0 / d, 0.0)
        zero = valid & (d == 0)
        has_zero = zero.any(axis=1)
        w[has_zero] = zero[has_zero].astype(np.float64)
    votes = np.zeros((n, len(classes)))
    rows = np.repeat(np.arange(n), lab_index.shape[1]) if n else np.zeros(0, np.int64)
    np.add.at(votes, (rows[valid.ravel()], lab_index.ravel()[valid.ravel()]), w.ravel()[valid.ravel()])
    best = votes.argmax(axis=1) if len(classes) else np.zeros(n, np.int64)
    total = votes.sum(axis=1)
    conf = np.divide(votes[np.arange(n), best], total, out=np.zeros(n), where=total > 0)
    keep = (conf >= min_confidence) & (total > 0)
    label = pa.array(label_values.take(pa.array(best)).to_pylist() if n else [], label_values.type)
    label = pa.array([v if kk else None for v, kk in zip(label.to_pylist(), keep)], label_values.type)
    out = {"label": label, "confidence": pa.array(conf.astype(np.float32))}
    out.update(neigh)
    return _inputs.finish(inp, pa.table(out))


def _matrix(arr: pa.Array) -> np.ndarray:
    return np.stack(arr.to_numpy(zero_copy_only=False)).astype(np.float64) if len(arr) else np.zeros((0, 0))


def _rerank(queries: pa.Array, base: pa.Array, cand: np.ndarray, k: int, metric: str):
    """Order each row's candidates by float64 distance (Euclidean for l2, ``1 - cos`` for
    cosine, ``1 - dot`` for dot), ties by exemplar position; keep ``k``."""
    n = cand.shape[0]
    if n == 0:
        return np.zeros((0, k), np.int64), np.zeros((0, k))
    q, b = _matrix(queries), _matrix(base)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
    valid = cand >= 0
    c = np.maximum(cand, 0)
    if metric == "l2":
        d = np.sqrt(((b[c] - q[:, None, :]) ** 2).sum(-1))
    else:
        d = 1.0 - (b[c] * q[:, None, :]).sum(-1)
    d = np.where(valid, d, np.inf)
    order = np.lexsort((np.where(valid, cand, np.iinfo(np.int64).max), d), axis=-1)[:, :k]
    rows = np.arange(n)[:, None]
    return np.where(np.isfinite(d[rows, order]), cand[rows, order], -1), d[rows, order]


def _lists(values: pa.ChunkedArray, qi, n):
    """``values`` grouped into one list per query (``qi``: each value's query), typed
    ``list<values.type>`` even when empty."""
    out = [[] for _ in range(n)]
    for v, q in zip(values.to_pylist(), qi):
        out[q].append(v)
    return pa.array(out, pa.list_(values.type))


# Largest k a concept's graph range search grows to before it turns to an exact range search,
# and the largest k/ef an index search accepts.
_GRAPH_RANGE_MAX_K = 4096
_MAX_K = 100_000


def concepts(
    index_or_data: Any,
    concepts: Mapping[str, Any],
    threshold: float,
    *,
    column: str | None = None,
    metric: str = "cosine",
    ef: int | None = None,
    num_threads: int | None = None,
    storage_options=None,
    progress: Any = None,
):
    """Tag rows whose vector lies within ``threshold`` (a distance in the metric: ``1 - cos``
    for cosine, squared L2 for l2) of a concept vector.

    ``concepts`` maps a tag to one vector or several (2-D). Over a
    :class:`lakevec.VectorIndex` each concept vector is a range search (graph searches with
    growing ``k`` until a tenth of the hits lie beyond ``threshold``; past k = 4,096 an exact
    range search, ``search(k=None, exact=True, max_distance=threshold)``), so any number of
    rows can match; the result lists the matched rows only (``_file``, ``_row``, ``tags``).
    Over in-memory data or a table (``column`` names the vector column) every row is
    compared exactly (a parallel range search that keeps only the matches) and every row is
    returned with its (possibly empty) ``tags``; ``progress`` (``None``, the default: a tqdm
    bar when a person is watching, see :func:`rules`) counts its (concept, row) comparisons.

    Raises:
        InvalidArgumentError: empty ``concepts``, no ``column`` for data. VectorError: a
        concept or row vector of the wrong dimension or holding NaN/inf.
    """
    from lakevec.index import VectorIndex

    names, vecs = [], []
    for tag, v in concepts.items():
        a = np.asarray(v, np.float32)
        a = a[None, :] if a.ndim == 1 else a
        for row in a:
            names.append(str(tag))
            vecs.append(row)
    if not vecs:
        raise InvalidArgumentError("concepts is empty")
    q = np.stack(vecs)
    order = list(dict.fromkeys(names))
    if isinstance(index_or_data, VectorIndex):
        idx = index_or_data
        found: dict[tuple, set] = {}
        total = idx.stats()["rows"]
        for qi in range(len(q)):
            k = 16
            while True:
                if k > _GRAPH_RANGE_MAX_K:
                    # More rows lie within the threshold than a graph search should rank: an
                    # exact range search returns every one of them.
                    hits = idx.search(q[qi], k=None, exact=True, max_distance=threshold, num_threads=num_threads)
                    d = hits.column("distance").to_numpy()
                    break
                hits = idx.search(
                    q[qi], k=min(k, max(total, 1)), ef=min(max(ef or 0, 2 * k), _MAX_K), num_threads=num_threads
                )
                d = hits.column("distance").to_numpy()
                # Done when the ring's edge is inside this result (most of it beyond threshold is
                # not needed: an approximate search may rank a stray far row among near ones).
                if len(d) < k or (d <= threshold).sum() < 0.9 * k or k >= total:
                    break
                k *= 4
            keep = d <= threshold
            for f, r in zip(
                np.asarray(hits.column("_file").to_pylist(), dtype=object)[keep], hits.column("_row").to_numpy()[keep]
            ):
                found.setdefault((f, int(r)), set()).add(names[qi])
        keys = sorted(found)
        return pa.table(
            {
                "_file": [k[0] for k in keys],
                "_row": pa.array([k[1] for k in keys], pa.int64()),
                "tags": [[t for t in order if t in found[k]] for k in keys],
            }
        )
    if column is None:
        raise InvalidArgumentError("column= names the vector column of the data")
    inp = _inputs.load(index_or_data, [column], storage_options)
    arr = _vectors(inp.data, column)
    n = inp.data.num_rows
    qarr = pa.FixedSizeListArray.from_arrays(pa.array(q.ravel()), q.shape[1])
    qis, rows, _ = run_with_progress(
        progress,
        "tag.concepts",
        lambda cb: _lakevec.within_arrays(qarr, arr, float(threshold), metric, num_threads, "concepts", column, cb),
    )
    tags: list[set] = [set() for _ in range(n)]
    for qi, r in zip(qis, rows):
        tags[r].add(names[qi])
    return _inputs.finish(inp, pa.table({"tags": [[t for t in order if t in s] for s in tags]}))
