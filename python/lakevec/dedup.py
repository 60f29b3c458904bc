"""Dedup kernels: exact (hash of normalised values) and MinHash-LSH near-duplicates.

Every function takes a :class:`lakevec.Table` or URI (results carry ``_file``, ``_row``) or
in-memory Arrow/pandas/polars data (results carry ``row``, the 0-based input position; a
pandas input gets a DataFrame on its own index). Work runs in Rust on lakevec's thread
pool with the GIL released; results are identical for any thread count.

Cluster columns: ``cluster_id`` (int64: the smallest row position in the cluster, in input
order), ``cluster_size`` (int64), ``is_representative`` (bool: the one row per cluster to
keep, by the ``keep`` policy). ``t.filter(t["is_representative"])`` is the deduplicated set.

:func:`build_index` persists MinHash signatures and clusters beside a lake table as a
:class:`DedupIndex` that follows the table's versions (:meth:`DedupIndex.refresh`) and checks
rows not yet written (:meth:`DedupIndex.check`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakevec import _inputs, _lakevec, _minhash
from lakevec._dedup_index import DedupIndex as DedupIndex
from lakevec._dedup_index import build_index as build_index
from lakevec._dedup_index import open_index as open_index
from lakevec._minhash import NormalizeArg as NormalizeArg
from lakevec._minhash import keep_scores as keep_scores
from lakevec._minhash import lsh_params as lsh_params
from lakevec._progress import run_with_progress
from lakevec.exceptions import InvalidArgumentError

__all__ = [
    "exact",
    "minhash",
    "minhash_signatures",
    "minhash_clusters",
    "lsh_params",
    "semantic",
    "build_index",
    "open_index",
    "DedupIndex",
]


def exact(
    data: Any,
    columns: str | Sequence[str],
    *,
    normalize: NormalizeArg = False,
    keep: str = "first",
    num_threads: int | None = None,
    storage_options=None,
):
    """Exact duplicates: rows whose ``columns`` are equal after normalisation.

    Rows are grouped by a 128-bit hash (two independent 64-bit FNV-1a/SplitMix64 hashes) of
    the normalised values of ``columns`` (nulls equal each other, as in pandas); string and
    binary (UTF-8) columns.

    Args:
        data: see the module docs.
        columns: one column name or several.
        normalize: ``False`` (compare as is), ``True`` (NFKC + case-fold + whitespace), or
            steps ``"nfkc"``, ``"lower"``, ``"whitespace"``.
        keep: representative per cluster: ``"first"``, ``"last"``, ``"longest"`` (most
            characters over ``columns``), or a numeric column name (highest value wins).

    Returns:
        Row ids + ``cluster_id``, ``cluster_size``, ``is_representative``.

    Raises:
        SchemaError: a missing or non-text column. InvalidArgumentError: bad bytes
        (non-UTF-8 in a binary column, naming the row), a bad ``normalize`` or ``keep``.
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    inp = _inputs.load(data, _minhash.columns_to_read(cols, keep), storage_options)
    nfkc, lower, ws = _minhash.normalize_steps(normalize)
    score = _minhash.score_list(inp.data, keep, cols)
    arrays = [(c, _inputs.array(inp.data, c)) for c in cols]
    res = _lakevec.exact_clusters(arrays, nfkc, lower, ws, score, num_threads)
    return _inputs.finish(inp, res)


def minhash_signatures(
    batch: Any,
    column: str,
    *,
    num_perm: int = 128,
    ngram: int = 5,
    shingle: str = "word",
    seed: int = 1,
    sketch: str = _minhash.DEFAULT_SKETCH,
    normalize: NormalizeArg = True,
    num_threads: int | None = None,
) -> pa.Table:
    """Step 1 of distributed MinHash dedup: ``batch`` (Arrow/pandas/polars data) with a
    ``signature`` column appended (``FixedSizeList<uint32, num_perm>``; null for null or
    empty texts). A pure function of each row: run it per batch anywhere (Ray
    ``map_batches``, Spark ``mapInArrow``), then :func:`minhash_clusters` on the collected
    signatures.

    Shingles: ``"word"`` n-grams of ``\\w+`` tokens or ``"char"`` n-grams, after
    ``normalize`` (default: NFKC, case-fold, whitespace), each hashed to 64 bits (FNV-1a +
    SplitMix64). ``sketch`` turns the hashes into ``num_perm`` slots:

    * ``"classic"``: ``num_perm`` permutations ``(a x + b) mod (2^31 - 1)`` (Carter-Wegman
      universal family; Broder 1997), each slot the minimum of one; O(shingles x num_perm)
      per text; the sketch datasketch's ``MinHash`` computes (with its own hash and prime).
    * ``"oph"``: one-permutation hashing (Li, Owen and Zhang, NeurIPS 2012) with optimal
      densification (Shrivastava, ICML 2017): each shingle lands in one slot (the slot keeps
      its minimum), empty slots copy a non-empty one chosen by a fixed per-slot sequence;
      O(shingles + num_perm) per text, the same estimate (share of equal slots) and banding.

    Raises:
        SchemaError: ``column`` missing or not text. InvalidArgumentError: bad ``num_perm``
        (1..4096), ``ngram`` (1..64), ``shingle``, ``sketch`` or ``normalize``; non-UTF-8
        bytes.
    """
    t = _inputs.to_table(batch)
    params = _minhash.minhash_params(
        num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch
    )
    sig = _lakevec.minhash_signatures(_inputs.array(t, column), column, params, num_threads)
    return t.append_column("signature", sig)


def minhash_clusters(
    signatures: Any,
    *,
    threshold: float = 0.8,
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    signature_column: str = "signature",
    keep: str = "first",
    pairs: bool = False,
    num_threads: int | None = None,
):
    """Step 2: clusters from signatures (a table, or a list of tables/batches in input
    order, from :func:`minhash_signatures`). Returns the input's other columns plus
    ``cluster_id`` (smallest position in the concatenated input), ``cluster_size``,
    ``is_representative``; with ``pairs=True`` also the verified pairs ``a``, ``b``
    (positions) and ``jaccard_estimate``. Identical for any split into batches.

    Raises:
        InvalidArgumentError: signatures that are not FixedSizeList<uint32>, a bad
        ``threshold``/``bands``/``rows``, ``keep="longest"`` (no text here).
    """
    if isinstance(signatures, (list, tuple)):
        parts = [_inputs.to_table(s) for s in signatures]
        t = pa.concat_tables(parts) if parts else pa.table({signature_column: []})
    else:
        t = _inputs.to_table(signatures)
    sig = _inputs.array(t, signature_column)
    num_perm = sig.type.list_size
    b, r = lsh_params(threshold, num_perm, bands, rows, weights)
    score = _minhash.score_list(t, keep, [])
    clusters, pair_table = _lakevec.minhash_clusters(sig, float(threshold), b, r, score, num_threads=num_threads)
    out = t.drop_columns([signature_column])
    for name in clusters.column_names:
        out = out.append_column(name, clusters.column(name))
    return (out, pair_table) if pairs else out


def minhash(
    data: Any,
    column: str,
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    shingle: str = "word",
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    verify: str = "estimate",
    seed: int = 1,
    sketch: str = _minhash.DEFAULT_SKETCH,
    normalize: NormalizeArg = True,
    keep: str = "first",
    pairs: bool = False,
    num_threads: int | None = None,
    storage_options=None,
    progress: Any = None,
):
    """Near-duplicates by MinHash-LSH (see :func:`minhash_signatures` for shingles, the hash
    family and ``sketch``, :func:`lsh_params` for the banding).

    Candidate pairs (same bucket in any band) are kept when their Jaccard similarity is
    >= ``threshold``: estimated from the signatures (``verify="estimate"``, the share of equal
    values) or computed exactly from the two texts' shingle sets (``verify="exact"``: no
    false positives; combine with ``weights=(0.1, 0.9)`` to also miss fewer pairs). Clusters
    are the connected components of the kept pairs (union-find). Null and empty texts are
    never duplicates.

    ``progress``: a tqdm bar of the rows signed (``None``, the default: when a person is
    watching, in Jupyter or a terminal, not in Ray/Spark workers), ``True``/``False``, or a
    callable ``(phase, done, total)`` called about every 100 ms.

    Returns:
        Row ids + ``cluster_id``, ``cluster_size``, ``is_representative``; with
        ``pairs=True`` a tuple (that table, pairs table ``a``, ``b`` (row positions),
        ``jaccard_estimate`` (from the signatures) and, with ``verify="exact"``,
        ``jaccard`` (exact)).

    Raises:
        InvalidArgumentError: ``threshold`` outside (0, 1], ``num_perm`` not divisible by
        a given ``bands``/``rows``, bad ``shingle``/``ngram``/``sketch``.
        SchemaError: a missing or non-text column.
    """
    params = _minhash.minhash_params(
        num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch
    )
    args = _minhash.check_args(
        column, params, threshold=threshold, bands=bands, rows=rows, weights=weights, keep=keep, verify=verify
    )
    inp = _inputs.load(data, args.columns, storage_options)
    texts = _inputs.array(inp.data, column)
    sig = run_with_progress(
        progress, "dedup.minhash", lambda cb: _lakevec.minhash_signatures(texts, column, args.params, num_threads, cb)
    )
    score = _minhash.score_list(inp.data, keep, [column])
    exact = verify == "exact"
    clusters, pair_table = _lakevec.minhash_clusters(
        sig,
        args.threshold,
        args.bands,
        args.rows,
        score,
        exact_texts=texts if exact else None,
        params=args.params if exact else None,
        num_threads=num_threads,
    )
    out = _inputs.finish(inp, clusters)
    return (out, pair_table) if pairs else out


def semantic(
    index_or_data: Any,
    threshold: float,
    column: str | None = None,
    k: int = 10,
    *,
    keep: str = "first",
    ef: int | None = None,
    num_threads: int | None = None,
    storage_options=None,
    progress: Any = None,
):
    """Semantic (embedding) duplicates: rows whose vectors have cosine similarity >=
    ``threshold`` with one of their ``k`` nearest neighbours, joined into clusters
    (union-find over those edges).

    ``index_or_data`` is a :class:`lakevec.VectorIndex` (cosine or dot metric; edges from
    its :meth:`~lakevec.VectorIndex.knn_graph`, similarity ``1 - distance``) or data with a
    vector ``column`` (an exact all-rows kNN pass in Rust: for in-memory data up to ~10^5
    rows).

    Args:
        keep: ``"first"`` (smallest position) or ``"closest_to_centroid"`` (the member
            whose vector is most similar to its cluster's mean direction).
        progress: a tqdm bar of the rows searched (``None``, the default: when a person is
            watching, see :func:`minhash`), ``True``/``False``, or a callable
            ``(phase, done, total)``.

    Returns:
        Row ids (``_file``/``_row`` for an index or table, else ``row``) + ``cluster_id``,
        ``cluster_size``, ``is_representative``.

    Raises:
        InvalidArgumentError: ``threshold`` outside (0, 1], a bad ``keep``, ``k`` outside
        1..100000, an ``l2`` index. VectorError: a vector of the wrong dimension, NaN/inf or
        all zeros (naming the column and row).
    """
    import numpy as np

    from lakevec.index import VectorIndex

    is_index = isinstance(index_or_data, VectorIndex)
    check_semantic_args(threshold, keep, index_or_data if is_index else None)
    if is_index:
        g = index_or_data.knn_graph(k=k, ef=ef, num_threads=num_threads, progress=progress)
        return semantic_from_graph(index_or_data, *graph_parts(g, threshold), keep)
    if column is None:
        raise InvalidArgumentError("column= names the vector column of the data")
    inp = _inputs.load(index_or_data, [column], storage_options)
    vec = _inputs.array(inp.data, column)
    fi, fd = run_with_progress(
        progress,
        "dedup.semantic",
        lambda cb: _lakevec.knn_arrays(vec, None, int(k), "cosine", num_threads, column, "exemplars", cb),
    )
    n = inp.data.num_rows
    fi = np.asarray(fi, np.int64).reshape(n, -1) if n else np.zeros((0, k), np.int64)
    fd = np.asarray(fd, np.float64).reshape(n, -1) if n else np.zeros((0, k))
    rows, cols = np.nonzero((fi >= 0) & (1.0 - fd >= threshold))
    return _clusters(inp, rows.tolist(), fi[rows, cols].tolist(), (lambda: vec) if keep != "first" else None)


def check_semantic_args(threshold: float, keep: str, index=None) -> None:
    """The checks of :func:`semantic`'s arguments (an index needs a similarity metric)."""
    if not (0.0 < threshold <= 1.0):
        raise InvalidArgumentError(f"threshold must be in (0, 1], got {threshold}")
    if keep not in ("first", "closest_to_centroid"):
        raise InvalidArgumentError(f"keep must be 'first' or 'closest_to_centroid', not {keep!r}")
    if index is not None and index.metric not in ("cosine", "dot"):
        raise InvalidArgumentError(f"semantic dedup needs a cosine or dot index, this one is {index.metric!r}")


def graph_parts(g: pa.Table, threshold: float) -> tuple[pa.Table, pa.Table]:
    """From a (part of a) kNN graph: its source rows in order (``_file``, ``_row``) and its
    edges with similarity ``1 - distance >= threshold`` (``src_file``, ``src_row``,
    ``dst_file``, ``dst_row``). Parts of a graph give, concatenated, the whole graph's."""
    import numpy as np

    sf, sr = g.column("src_file").to_numpy(zero_copy_only=False), g.column("src_row").to_numpy()
    first = np.ones(len(sr), bool)
    if len(sr):
        first[1:] = (sr[1:] != sr[:-1]) | (sf[1:] != sf[:-1])
    nodes = pa.table(
        {"_file": g.column("src_file").filter(pa.array(first)), "_row": g.column("src_row").filter(pa.array(first))}
    )
    keep = pc.greater_equal(
        pc.subtract(pa.scalar(1.0, pa.float64()), pc.cast(g.column("distance"), pa.float64())), threshold
    )
    return nodes, g.select(["src_file", "src_row", "dst_file", "dst_row"]).filter(keep)


def semantic_from_graph(idx, nodes: pa.Table, edges: pa.Table, keep: str):
    """Clusters of an index's rows from :func:`graph_parts` (``nodes`` in index order)."""
    pos = {a: i for i, a in enumerate(zip(nodes.column("_file").to_pylist(), nodes.column("_row").to_pylist()))}
    src = zip(edges.column("src_file").to_pylist(), edges.column("src_row").to_pylist())
    dst = zip(edges.column("dst_file").to_pylist(), edges.column("dst_row").to_pylist())
    a = [pos[x] for x in src]
    b = [pos.setdefault(x, len(pos)) for x in dst]
    addrs = list(pos)
    ids = pa.table({"_file": [x[0] for x in addrs], "_row": pa.array([x[1] for x in addrs], pa.int64())})
    vec_fn = (lambda: idx.table().take(ids, [idx.column]).column(idx.column)) if keep != "first" else None
    return _clusters(_inputs.Input(pa.table({}), ids), a, b, vec_fn)


def _clusters(inp, a: list, b: list, vec_fn):
    """Connected components of pairs (a, b) of ``inp``'s rows; with ``vec_fn`` (the rows'
    vectors) the representative is the member closest to its cluster's mean direction."""
    import numpy as np

    n = inp.ids.num_rows
    score = None
    if vec_fn is not None:
        first = _lakevec.clusters_from_pairs(n, a, b, None)
        v = np.stack(vec_fn().to_numpy(zero_copy_only=False)).astype(np.float64)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        cid = first.column("cluster_id").to_numpy()
        cent = np.zeros_like(v)
        np.add.at(cent, cid, v)
        score = (v * cent[cid]).sum(axis=1).tolist()
    res = _lakevec.clusters_from_pairs(n, a, b, score)
    return _inputs.finish(inp, res)
