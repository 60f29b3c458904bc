"""Assertions about indexes and dedup results whose failure messages show the numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    from lakevec.index import VectorIndex
    from lakevec.table import Table

# A hit outside the exact top k still counts when its distance ties the k-th exact one
# (ann-benchmarks' rule): with equal distances, either row is a right answer.
TIE_RTOL, TIE_ATOL = 1e-5, 1e-6
_SHOWN = 10  # files, rows or clusters listed in a failure message


def _num_queries(queries: Any, dim: int) -> tuple[Any, int]:
    from lakevec import _inputs

    if _inputs.is_float32_matrix(queries):
        return queries, 1 if queries.ndim == 1 else queries.shape[0]
    q = _inputs.queries(queries, dim)
    return q, len(q)


def _per_query(res: pa.Table, n: int) -> list[list[tuple[str, int, float]]]:
    """Each query's hits ``(_file, _row, distance)``, nearest first."""
    out: list[list[tuple[str, int, float]]] = [[] for _ in range(n)]
    cols = [res.column(c).to_pylist() for c in ("query", "_file", "_row", "distance")]
    for q, f, r, d in zip(*cols):
        out[q].append((f, r, d))
    return out


def assert_recall(
    index: VectorIndex, queries: Any, k: int = 10, at_least: float = 0.95, ef: int | None = None, **search: Any
) -> float:
    """Assert that ``index``'s approximate search finds, on average over ``queries``, at least
    ``at_least`` of the exact ``k`` nearest rows (mean recall@k); returns that recall.

    The ground truth is computed here, by exact search over the same index
    (``index.search(queries, k=k, exact=True)``); the approximate answer is
    ``index.search(queries, k=k, ef=ef)``. A query's recall is the share of its exact hits
    (by row address ``_file``, ``_row``) the approximate search returned, where a returned row
    whose distance ties the k-th exact distance also counts (either row of a tie is right;
    not for a compressed kind's estimated distances).
    Queries with no exact hit (e.g. a filter matching nothing) are left out.

    Args:
        index: a :class:`lakevec.VectorIndex`.
        queries: what :meth:`VectorIndex.search` takes: one vector, a float ``(n, dim)``
            array, an Arrow array of vectors.
        k: neighbours per query.
        at_least: the lowest mean recall@k that passes (0 to 1).
        ef: the HNSW beam width of the approximate search (default: the index's, ``max(64, k)``).
        **search: more :meth:`VectorIndex.search` arguments for both searches (``filter``,
            ``version``, ``stale``, ``rerank``, ...).

    Returns:
        float: the mean recall@k.

    Raises:
        AssertionError: the recall is below ``at_least``; the message says e.g.
            ``recall@10 = 0.812 < 0.95 (ef=16, 1,000 queries; worst query 0.3: #17)``.
        Whatever :meth:`VectorIndex.search` raises for bad queries or arguments.
    """
    __tracebackhide__ = True
    q, n = _num_queries(queries, index.dim)
    truth = _per_query(index.search(q, k=k, exact=True, **search), n)
    res = index.search(q, k=k, ef=ef, **search)
    # a compressed kind's estimated (not re-ranked) distances cannot tell a tie
    meta = res.schema.field("distance").metadata or {}
    ties = meta.get(b"lakevec.distance") != b"estimated"
    recalls = []
    for i, (want, hits) in enumerate(zip(truth, _per_query(res, n))):
        if not want:
            continue
        addresses = {(f, r) for f, r, _ in want}
        kth = want[-1][2]
        tie = kth + TIE_RTOL * abs(kth) + TIE_ATOL
        found = sum(1 for f, r, d in hits if (f, r) in addresses or (ties and d <= tie))
        recalls.append((min(found, len(want)) / len(want), i))
    if not recalls:
        raise AssertionError(f"recall@{k}: no query has an exact hit ({n:,} queries): nothing to measure")
    recall = float(np.mean([r for r, _ in recalls]))
    if recall < at_least:
        worst, which = min(recalls)
        ef_text = ef if ef is not None else f"default {max(64, k)}"
        raise AssertionError(
            f"recall@{k} = {recall:.3f} < {at_least} (ef={ef_text}, {len(recalls):,} queries; "
            f"worst query {worst:.3g}: #{which}) of {index.index_type} index {index.uri}"
        )
    return recall


def assert_index_covers(index: VectorIndex, table: Table) -> None:
    """Assert that ``index`` covers the latest version of its ``table``: every live data file
    is indexed with no rows deleted since (:meth:`VectorIndex.coverage` says ``"indexed"``)
    and the index's table version is the latest (Delta version, Iceberg snapshot), also when
    ``table`` (a :class:`lakevec.Table`) was opened at a version newer than the index's.

    Raises:
        AssertionError: the message names the table versions and lists the files not covered
            (``missing``: not in the index; ``stale``: rows deleted since), with row counts.
        UnsupportedFeatureError: an indexed file now has Iceberg equality deletes.
    """
    __tracebackhide__ = True
    cov = index.coverage()
    meta = (cov.schema.metadata or {}).get(b"table_version", b"").decode()
    latest = int(meta) if meta else None
    if table.version is not None and (latest is None or table.version > latest):
        latest = table.version
    problems = []
    if latest is not None and index.table_version != latest:
        problems.append(f"the index is at table version {index.table_version}, the table at {latest}")
    bad = [r for r in cov.to_pylist() if r["status"] != "indexed"]
    if bad:
        missing = [r for r in bad if r["status"] == "missing"]
        stale = [r for r in bad if r["status"] == "stale"]
        problems.append(
            f"{len(bad)} of {cov.num_rows} files not covered: {len(missing)} missing "
            f"({sum(r['rows'] - (r['deleted_rows'] or 0) for r in missing):,} live rows), {len(stale)} stale "
            f"({sum((r['deleted_rows'] or 0) for r in stale):,} rows deleted in them)"
        )
        for r in bad[:_SHOWN]:
            problems.append(
                f"  {r['status']}: {r['path']} (rows {r['rows']}, deleted {r['deleted_rows']}, "
                f"indexed {r['indexed_rows']})"
            )
        if len(bad) > _SHOWN:
            problems.append(f"  ... and {len(bad) - _SHOWN} more")
    if problems:
        raise AssertionError(f"index {index.uri} does not cover table {table.uri}:\n" + "\n".join(problems))


def _cluster_table(t: Any, which: str) -> tuple[pa.Table, list[str]]:
    from lakevec import _inputs

    t = _inputs.to_table(t)
    ids = ["_file", "_row"] if "_file" in t.column_names else ["row"]
    missing = [c for c in ids + ["cluster_id"] if c not in t.column_names]
    if missing:
        raise ValueError(f"assert_same_clusters: {which} lacks column(s) {missing} (columns: {t.column_names})")
    return t.select(ids + ["cluster_id"]).sort_by([(c, "ascending") for c in ids]), ids


def _row_id(t: pa.Table, ids: list[str], i: int) -> Any:
    vals = tuple(t.column(c)[i].as_py() for c in ids)
    return vals[0] if len(vals) == 1 else vals


def assert_same_clusters(a: Any, b: Any) -> None:
    """Assert that two cluster tables group the same rows together, whatever their cluster
    ids: the same partition of the same rows.

    ``a`` and ``b`` are what :func:`lakevec.dedup.exact`, :func:`~lakevec.dedup.minhash`,
    :func:`~lakevec.dedup.semantic` or :meth:`DedupIndex.clusters` return (Arrow, pandas or
    polars): row ids ``_file``, ``_row`` (a table's rows) or ``row`` (input positions), and
    ``cluster_id``. Other columns are ignored.

    Raises:
        AssertionError: the rows differ (counts and examples of rows only in one), or rows
            are grouped differently: how many rows and clusters differ, and for a few rows
            the members of their cluster in ``a`` and in ``b``.
        ValueError: a table lacks the id or ``cluster_id`` columns, they name rows by
            different ids, or a row id repeats.
    """
    __tracebackhide__ = True
    ta, ids = _cluster_table(a, "a")
    tb, ids_b = _cluster_table(b, "b")
    if ids != ids_b:
        raise ValueError(f"assert_same_clusters: a names rows by {ids}, b by {ids_b}")
    keys_a = list(zip(*[ta.column(c).to_pylist() for c in ids]))
    keys_b = list(zip(*[tb.column(c).to_pylist() for c in ids]))
    for which, keys in (("a", keys_a), ("b", keys_b)):
        if len(set(keys)) != len(keys):
            raise ValueError(f"assert_same_clusters: row ids repeat in {which}")
    if keys_a != keys_b:
        only_a, only_b = (
            sorted(x if len(ids) > 1 else x[0] for x in s)
            for s in (set(keys_a) - set(keys_b), set(keys_b) - set(keys_a))
        )
        raise AssertionError(
            f"cluster tables hold different rows: {len(keys_a):,} in a, {len(keys_b):,} in b; "
            f"{len(only_a):,} only in a (e.g. {only_a[:5]}), {len(only_b):,} only in b (e.g. {only_b[:5]})"
        )
    ca = ta.column("cluster_id").to_numpy(zero_copy_only=False)
    cb = tb.column("cluster_id").to_numpy(zero_copy_only=False)
    _, inv_a, size_a = np.unique(ca, return_inverse=True, return_counts=True)
    _, inv_b, size_b = np.unique(cb, return_inverse=True, return_counts=True)
    _, inv_ab, size_ab = np.unique(np.stack([inv_a, inv_b], axis=1), axis=0, return_inverse=True, return_counts=True)
    inv_ab = inv_ab.reshape(-1)
    same = (size_ab[inv_ab] == size_a[inv_a]) & (size_ab[inv_ab] == size_b[inv_b])
    if same.all():
        return
    bad = np.flatnonzero(~same)
    lines = [
        f"cluster tables differ: {len(bad):,} of {len(ca):,} rows are grouped differently "
        f"(a: {len(np.unique(ca[bad])):,} of {len(size_a):,} clusters differ, "
        f"b: {len(np.unique(cb[bad])):,} of {len(size_b):,})"
    ]
    shown: set[int] = set()
    for i in bad:
        if len(shown) >= 5:
            break
        if inv_a[i] in shown:
            continue
        shown.add(inv_a[i])
        members_a = [_row_id(ta, ids, j) for j in np.flatnonzero(inv_a == inv_a[i])[:_SHOWN]]
        members_b = [_row_id(tb, ids, j) for j in np.flatnonzero(inv_b == inv_b[i])[:_SHOWN]]
        lines.append(
            f"  row {_row_id(ta, ids, i)!r}: in a with {size_a[inv_a[i]]} rows {members_a}, "
            f"in b with {size_b[inv_b[i]]} rows {members_b}"
        )
    raise AssertionError("\n".join(lines))
