"""The persisted dedup index: :func:`lakevec.dedup.build_index`, :func:`lakevec.dedup.open_index`
and :class:`DedupIndex` (re-exported by :mod:`lakevec.dedup`)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from lakevec import _inputs, _lakevec, _minhash
from lakevec._progress import run_with_progress as _run_with_progress
from lakevec.exceptions import InvalidArgumentError
from lakevec.index import VectorIndex
from lakevec.table import Table


class DedupIndex:
    """A dedup index (MinHash near-duplicates, exact duplicates, or semantic duplicates
    through a vector index) beside a lake table, at one committed version.

    It holds, per row of the covered table version, the row's address (``_file``, ``_row``),
    its MinHash signature and its cluster, and follows the table: :meth:`refresh` signs only
    the rows of data files added since, joins them to the stored clusters and drops deleted
    rows from theirs. The clusters always equal those of one :func:`lakevec.dedup.minhash`
    run over the covered version with the same parameters (``verify="estimate"``), up to
    cluster-id naming: the connected components of the graph joining two rows that share an
    LSH band and whose estimated Jaccard similarity is at least ``threshold``
    (``method="exact"``: those of :func:`lakevec.dedup.exact`; ``method="semantic"``: those
    of :func:`lakevec.dedup.semantic` over its vector index, see :func:`build_index`).

    Cluster ids are global row numbers of the index (rows numbered in the order they were
    indexed): a cluster's id is its first row, so it stays the same across refreshes while
    that row lives (a merge keeps the older id; when the first row is deleted the next one
    takes over, and so does the representative).

    Stored in lakevec's container (checksummed sections, every count checked against the
    others at load) with one manifest per version published by put-if-absent: a crash at any
    point leaves the previous version readable. Resident while open: every row's signature
    (``4 * num_perm`` bytes), address and cluster (~21 bytes) and band lists (``12 * bands``
    bytes), mapped from the index files on a local disk.

    Pickles as its URI (no credentials); the unpickled object reopens the newest version.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _lakevec.DedupIndex):
        self._inner = inner

    def __repr__(self) -> str:
        return repr(self._inner)

    def __reduce__(self):
        return (open_index, (self.uri,))

    @property
    def uri(self) -> str:
        """The index folder."""
        return self._inner.uri

    @property
    def manifest(self) -> dict:
        """The loaded version's manifest: ``version``, ``table_version``, ``column``,
        ``params`` (``method``, ``num_perm``, ``ngram``, ``shingle``, ``sketch``, ``seed``, the
        normalisation steps, ``threshold``, ``bands``, ``rows``), ``rows`` (indexed rows, live
        or not), ``live_rows``, ``segments`` and ``commit``."""
        return json.loads(self._inner.manifest_json())

    @property
    def version(self) -> int:
        """The index version loaded."""
        return self.manifest["version"]

    @property
    def table_version(self) -> int | None:
        """The table version covered (Delta version, Iceberg snapshot id; None for Parquet)."""
        return self.manifest["table_version"]

    def table(self) -> Table:
        """The indexed table at its latest version (with the index's storage options)."""
        return Table(self._inner.latest_table())

    def vector_index(self) -> VectorIndex | None:
        """The vector index a ``method="semantic"`` index follows, at its newest version
        (opened with this index's storage options); None for the other methods."""
        inner = self._inner.vector_index()
        return None if inner is None else VectorIndex(inner)

    def refresh(
        self,
        table: Table | None = None,
        *,
        memory_limit: int | str | None = None,
        num_threads: int | None = None,
        progress: Any = False,
    ) -> pa.Table:
        """Bring the index to the table's latest version (or to ``table``, a version of the
        indexed table) and return the new rows' assignments.

        A ``method="semantic"`` index follows its vector index instead of the table: refresh
        the vector index first (:meth:`lakevec.VectorIndex.refresh`); this then adds the rows
        it gained, with their neighbours, and re-searches the stored rows whose neighbour
        lists may have changed (see :func:`build_index`); ``table`` must be None, and the
        match column is ``similarity`` (cosine, float32) in place of ``jaccard_estimate``.

        Only the data files the index does not hold are read and signed; their rows are
        matched against each other and against the stored rows' band buckets, joining or
        forming clusters. Rows deleted since (removed files, deletion vectors, position
        deletes) leave their clusters, which are clustered again from their remaining members
        (a deleted first row hands the cluster id and the representative to the next). A
        version is committed unless nothing changed.

        Returns:
            ``pyarrow.Table``, one row per new row: ``_file``, ``_row``, ``cluster_id``
            (int64), ``is_representative``, ``matched_file``, ``matched_row`` (a row
            stored before that it matched directly: of those found, one per stored cluster it
            joins, the most similar; null if none) and
            ``jaccard_estimate`` (float32, of that match).

        Raises:
            CommitConflictError: another writer committed this version first (reopen, retry).
            UnsupportedFeatureError: a data file with Iceberg equality deletes.
        """
        limit = _inputs.byte_size(memory_limit, "memory_limit")
        t = None if table is None else table._inner
        committed, out = _run_with_progress(
            progress, "dedup refresh", lambda cb: self._inner.refresh(t, limit, num_threads, None, cb)
        )
        return out

    def clusters(self) -> pa.Table:
        """The cluster of every live row of the covered version, in index order: ``_file``,
        ``_row``, ``cluster_id`` (int64), ``cluster_size`` (int64), ``is_representative``
        (the cluster's first row: ``keep="first"`` in index order)."""
        return self._inner.clusters()

    def check(self, data: Any, column: str, *, num_threads: int | None = None) -> pa.Table:
        """Which rows of ``data`` (Arrow / pandas / polars, not yet written to the table)
        duplicate stored rows, without modifying the index: the pre-append filter.

        Returns:
            ``pyarrow.Table``, one row per input row: ``row`` (int64, position in ``data``),
            ``duplicate_of_existing`` (bool: the row would join a cluster holding stored
            rows, directly or through other rows of the batch), ``cluster_id`` (int64: that
            stored cluster's id, the smallest if it joins several; else ``-1 - p`` with ``p``
            the first batch position of its component, shared within the batch),
            ``matched_file``, ``matched_row``, ``jaccard_estimate`` (a stored row it matched
            directly: of those found, one per stored cluster it joins, the most similar; null
            if none).

        Raises:
            SchemaError: ``column`` missing or not text.
            UnsupportedFeatureError: a ``method="semantic"`` index (search its vector index with
                the batch's vectors and join the hits to :meth:`clusters`).
        """
        t = _inputs.to_table(data)
        return self._inner.check(_inputs.array(t, column), column, num_threads)

    def vacuum(
        self, retain: datetime.timedelta | float = datetime.timedelta(days=7), dry_run: bool = False
    ) -> pa.Table:
        """Delete the index files no reader within ``retain`` needs, like Delta Lake's VACUUM
        (the vector index's rules, :meth:`lakevec.VectorIndex.vacuum`): kept are the newest
        version, every version committed less than ``retain`` ago (a ``timedelta`` or seconds)
        with the segment and clusters files they list, and any file younger than ``retain``.
        Deleted: older manifests and the files of superseded versions and of killed writers.

        Returns:
            ``pyarrow.Table``, one row per file: ``path`` (relative to the index folder),
            ``kind`` (``"manifest"``, ``"segment"``, ``"clusters"``), ``bytes``, ``deleted``.

        Raises:
            InvalidArgumentError: a negative ``retain``.
        """
        if isinstance(retain, datetime.timedelta):
            retain = retain.total_seconds()
        return self._inner.vacuum(float(retain), bool(dry_run))


def build_index(
    table: Table | str | VectorIndex,
    column: str | None = None,
    *,
    method: str = "minhash",
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    shingle: str = "word",
    sketch: str = _minhash.DEFAULT_SKETCH,
    seed: int = 1,
    normalize: _minhash.NormalizeArg = True,
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    k: int = 10,
    ef: int | None = None,
    name: str = "default",
    index_uri: str | None = None,
    memory_limit: int | str | None = None,
    num_threads: int | None = None,
    progress: Any = True,
    storage_options: Mapping[str, str] | None = None,
) -> DedupIndex:
    """Build a MinHash dedup index of ``table``'s text ``column`` beside the table (or at
    ``index_uri``), or refresh the index already there when it has the same parameters.

    ``method="minhash"``: shingles, sketch and banding are those of
    :func:`lakevec.dedup.minhash` (same argument names and defaults); the clusters are those
    of a single ``minhash`` run over the covered version. ``method="exact"``: rows equal after
    ``normalize`` (the 128-bit hash of :func:`lakevec.dedup.exact` stored as the signature;
    nulls are equal to each other), the clusters of ``dedup.exact``; the MinHash arguments
    (``threshold``, ``num_perm``, ``ngram``, ``shingle``, ``sketch``, ``bands``, ``rows``,
    ``weights``) do not apply. The default location is ``<table>/_lakevec_index/dedup-<name>``.

    ``method="semantic"``: ``table`` is a :class:`lakevec.VectorIndex` (cosine or dot metric;
    ``column``, if given, must be its column) and the clusters are those of
    :func:`lakevec.dedup.semantic` (``index, threshold, k=k, ef=ef``): rows joined to those of
    their ``k`` nearest other rows with cosine similarity (``1 - distance``) >= ``threshold``.
    The index stores every live row's neighbour list (``4 k`` bytes per row) and follows the
    vector index's versions: :meth:`DedupIndex.refresh` searches the vector index's new rows,
    and searches again the stored rows that a new row comes within ``threshold`` of (found by
    a range search: each new row's nearest rows, k doubling while the farthest is still within
    it) or whose list held a deleted row; only those can have a different list in a full run.
    With a ``flat`` vector index the clusters equal one ``dedup.semantic`` run over the covered
    version; with a graph index they are as approximate as that run (a stored row a new row's
    search missed keeps its list). The texts arguments (``num_perm`` to ``weights``,
    ``memory_limit``) do not apply.

    Memory: texts are read and signed one batch (8,192 rows) at a time; every row's signature
    stays resident with its address, cluster and sorted LSH band lists:
    ``4 * num_perm + 28 * bands + 18`` bytes per row (782 at ``num_perm=128``, threshold 0.8:
    9 bands; 1.56 GB for 2M rows; measured peak 1.75 GB, ``benchmarks/dedup.py --rows``).
    ``memory_limit`` (bytes or ``"4GB"``; default: half the available memory) is checked
    against that before any row is read. On Ray, :func:`lakevec.ray.refresh_dedup` signs the
    new files in tasks.

    ``progress``: ``True`` (default) for a tqdm bar per phase (``read``: rows signed,
    ``build``: clustering, ``write``) when tqdm is installed, a callable
    ``(phase, done, total)`` called about every 100 ms, or ``False``.

    Returns:
        The :class:`DedupIndex` at the committed version.

    Raises:
        InvalidArgumentError: bad parameters, an index at the location built with other
        parameters or another column (pass the same ones, or another ``name``), or more rows
        than ``memory_limit`` holds; ``method="semantic"`` without a vector index, or with an
        ``l2`` one.
        SchemaError: ``column`` missing or not text.
        TableNotFoundError: no table at ``table``.
    """
    if method == "semantic":
        return _build_semantic(table, column, threshold, k, ef, name, index_uri, num_threads, progress)
    if isinstance(table, VectorIndex):
        raise InvalidArgumentError(f"method={method!r} indexes a table's text column; a vector index is for 'semantic'")
    if column is None:
        raise InvalidArgumentError("column= names the text column to dedup")
    if not isinstance(table, Table):
        table = Table.open(str(table), storage_options)
    limit = _inputs.byte_size(memory_limit, "memory_limit")
    if method == "exact":
        params = _minhash.minhash_params(num_perm=4, ngram=1, shingle="word", seed=seed, normalize=normalize)
        inner, _committed, _new = _run_with_progress(
            progress,
            "dedup build_index",
            lambda cb: _lakevec.DedupIndex.build(
                table._inner, column, params, 1.0, 1, 4, name, index_uri, limit, num_threads, "exact", cb
            ),
        )
        return DedupIndex(inner)
    if method != "minhash":
        raise InvalidArgumentError(f"method must be 'minhash', 'exact' or 'semantic', not {method!r}")
    params = _minhash.minhash_params(
        num_perm=num_perm, ngram=ngram, shingle=shingle, seed=seed, normalize=normalize, sketch=sketch
    )
    b, r = _minhash.lsh_params(threshold, num_perm, bands, rows, weights)
    inner, _committed, _new = _run_with_progress(
        progress,
        "dedup build_index",
        lambda cb: _lakevec.DedupIndex.build(
            table._inner, column, params, float(threshold), b, r, name, index_uri, limit, num_threads, "minhash", cb
        ),
    )
    return DedupIndex(inner)


def _build_semantic(vindex, column, threshold, k, ef, name, index_uri, num_threads, progress) -> DedupIndex:
    """:func:`build_index` with ``method="semantic"``."""
    from lakevec.dedup import check_semantic_args

    if not isinstance(vindex, VectorIndex):
        raise InvalidArgumentError(
            f"method='semantic' indexes a lakevec.VectorIndex (lakevec.build_index(table, column, metric='cosine')), "
            f"not {type(vindex).__name__}"
        )
    if column is not None and column != vindex.column:
        raise InvalidArgumentError(f"the vector index indexes column {vindex.column!r}, not {column!r}")
    if not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidArgumentError(f"k must be an int in 1..1000, got {k!r}")
    check_semantic_args(threshold, "first", vindex)
    inner, _committed, _new = _run_with_progress(
        progress,
        "dedup build_index",
        lambda cb: _lakevec.DedupIndex.build_semantic(
            vindex._inner, float(threshold), k, ef, name, index_uri, num_threads, cb
        ),
    )
    return DedupIndex(inner)


def open_index(
    index_uri_or_table: str | Table, name: str = "default", storage_options: Mapping[str, str] | None = None
) -> DedupIndex:
    """Open a dedup index: by its folder URI, or by its table (its default location for
    ``name``, see :func:`build_index`), at its newest valid version (every file verified).

    Raises:
        TableNotFoundError: no dedup index there.
        CorruptIndexError: a manifest or index file fails verification.
    """
    opts = {str(k): str(v) for k, v in (storage_options or {}).items()}
    if isinstance(index_uri_or_table, Table) and not opts:
        return DedupIndex(_lakevec.DedupIndex.open_for_table(index_uri_or_table._inner, name))
    if isinstance(index_uri_or_table, Table):
        uri = _lakevec.DedupIndex.default_uri(index_uri_or_table._inner, name)
    else:
        uri = str(index_uri_or_table)
    return DedupIndex(_lakevec.DedupIndex.open(uri, opts))
