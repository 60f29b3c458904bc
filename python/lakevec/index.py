"""Vector indexes over external lake tables: HNSW (and exact) search whose hits point back at
lake rows, stored as a sidecar beside the table, following the table as it changes."""

from __future__ import annotations

import datetime
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from lakevec import _inputs, _lakevec
from lakevec._cache import ProcessCache
from lakevec._progress import run_with_progress as _run_with_progress
from lakevec.table import Table

__all__ = ["VectorIndex", "build_index", "open_index"]


class VectorIndex:
    """An ANN index over a vector column of a lake table, stored beside the table.

    The index holds what search needs (HNSW graph, the vectors as float32, each row's address
    ``(_file, _row)`` and the key column if one was named), never the table's other columns:
    hits point back at lake rows, whose columns are fetched from the lake on demand
    (``search(columns=...)``, :meth:`Table.take`).

    It knows the table version it covers (:attr:`table_version`). Searching a version it does
    not fully cover stays correct: with ``stale="exact"`` (default) live files the index lacks
    are searched exactly and merged, and rows deleted in the searched version are never
    returned. :meth:`refresh` indexes new files as a new segment and records removed files
    and deleted rows as tombstones; :meth:`compact` merges segments.

    Layout on storage (see ``src/index/manifest.rs``): ``segments/<uuid>.lkv`` and
    ``tombstones/<uuid>.lkv`` (lakevec's checksummed container format, immutable) and
    ``manifests/<version>.json``, published last with put-if-absent, so a crash never leaves
    a half-written index and concurrent readers see one version whole.

    Pickles as a small handle (index URI, version, storage options without credentials, the
    segment cache options given to :func:`open_index`) that reopens the index in the
    receiving process (cached per process).
    """

    __slots__ = ("_inner", "_options", "_cache")

    def __init__(
        self,
        inner: _lakevec.VectorIndex,
        storage_options: Mapping[str, str] | None = None,
        cache: tuple[str | None, int | None] = (None, None),
    ):
        self._inner = inner
        self._options = dict(storage_options or {})
        self._cache = cache  # (cache_dir, cache_bytes) as given to open_index, for reopening

    # --------------------------------------------------------------- metadata
    @property
    def uri(self) -> str:
        """Where the index lives (its folder)."""
        return self._inner.uri

    @property
    def consistency_interval(self) -> float | None:
        """Seconds a confirmed view of the table serves searches (see :func:`open_index`)."""
        return self._inner.consistency_interval

    @consistency_interval.setter
    def consistency_interval(self, seconds: float | datetime.timedelta | None) -> None:
        if isinstance(seconds, datetime.timedelta):
            seconds = seconds.total_seconds()
        self._inner.set_consistency_interval(seconds)

    @property
    def version(self) -> int:
        """The index version (its manifest number; +1 per build, refresh or compact)."""
        return self._inner.version

    @property
    def table_version(self) -> int | None:
        """The table version the index covers (Delta version, Iceberg snapshot id; ``None``
        for plain Parquet)."""
        return self._inner.table_version

    @property
    def table_uri(self) -> str:
        """The indexed table's URI (credentials never stored)."""
        return self._inner.table_uri

    @property
    def column(self) -> str:
        """The indexed vector column."""
        return self._inner.column

    @property
    def key(self) -> str | None:
        """The key column stored with every row, or ``None``."""
        return self._inner.key

    @property
    def metric(self) -> str:
        """``"l2"``, ``"cosine"`` or ``"dot"``."""
        return self._inner.metric

    @property
    def dim(self) -> int:
        """The vector dimension (float32 values per row)."""
        return self._inner.dim

    @property
    def name(self) -> str:
        """The index name."""
        return self._inner.name

    @property
    def index_type(self) -> str:
        """The index kind: ``"hnsw"``, ``"hnsw_sq8"``, ``"hnsw_rabitq"`` or ``"flat"``."""
        return self._inner.index_type

    @property
    def build_spec(self) -> _lakevec.BuildSpec:
        """What this index was built with (and what its refreshes build)."""
        return self._inner.build_spec

    def table(self, version: int | None = None) -> Table:
        """The indexed table at ``version`` (latest when ``None``)."""
        return Table(self._inner.table(version))

    def stats(self) -> dict:
        """Statistics: ``rows`` (live indexed rows), ``rows_stored``, ``tombstones``,
        ``segments``, ``data_files``, ``sidecar_bytes`` (all index files of this version),
        ``vector_bytes`` (rows_stored x dim x 4), ``bytes_per_vector`` (what one row costs
        in a segment by part: ``floats``, ``codes`` (a quantized kind's code and norm term),
        ``graph`` (layer 0's fixed slots)), ``params`` (index_type; m, ef_construction and
        builder for HNSW; rerank_source for the compressed kinds, bits for hnsw_rabitq;
        on_invalid), ``recall_estimate`` (recall@10 of the kind's search vs exact search at
        ef=64 on up to 200 indexed rows per segment, row-weighted, measured at build),
        ``segments_loaded`` (segments in memory: an opened index reads manifests only and
        loads a segment on its first use), ``mapped_bytes`` (bytes of local index files
        mapped read-only by the loaded segments: the operating system pages in what searches
        touch, and can drop them again), ``resident_bytes`` (bytes of the loaded segments in
        this process's memory: the mapped pages searches touched, read from
        ``/proc/self/smaps``, plus arrays held in memory), ``cache_dir`` (the segment cache of
        an object-store index, else ``None``), ``last_commit`` (operation,
        files_encoded, rows_encoded, rows_skipped, ...), ``version``, ``table_version``,
        ``metric``, ``dim``, ``column``, ``key`` and ``kernel`` (the distance kernels in
        use)."""
        return json.loads(self._inner.stats_json())

    # ----------------------------------------------------------------- search
    def search(
        self,
        queries: Any,
        k: int | None = 10,
        *,
        ef: int | None = None,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        exact: bool = False,
        version: int | None = None,
        stale: str = "exact",
        num_threads: int | None = None,
        max_distance: float | None = None,
        rerank: int | None = None,
    ) -> pa.Table:
        """The ``k`` nearest table rows to each query.

        Args:
            queries: one vector (1-D), a 2-D numpy array ``(n, dim)``, or an Arrow array /
                chunked array / one-column table of FixedSizeList or List of floats.
            k: neighbours per query; ``None`` with ``exact=True`` and ``max_distance``: every
                row within ``max_distance`` (a range search).
            ef: HNSW beam width (``ef_search``; default ``max(64, k)``): larger is slower
                and more accurate.
            filter: SQL predicate over the table's columns (``"section = 'games'"``). It
                selects the allowed rows *before* the search: every hit satisfies it and
                ``min(k, qualifying rows)`` hits come back. Selective filters are searched
                exactly (when the allowed rows are fewer than the distance computations a
                filtered graph walk would make), others by a graph walk that only admits
                allowed rows (hnswlib's filtering).
            columns: table columns to fetch from the lake for every hit (by address).
            exact: exact (brute-force) search instead of the graph: recall 1.0.
            version: search this table version (default: the latest). Rows deleted in it
                are never returned; files the index lacks are handled per ``stale``.
            stale: ``"exact"`` (search unindexed files exactly and merge), ``"ignore"``
                (search the index as it is, at its own table version when ``version`` is
                not given; no table access unless ``filter``/``columns`` need it), or
                ``"error"`` (raise :class:`~lakevec.exceptions.StaleIndexError`).
            num_threads: queries searched in parallel (lakevec's pool, GIL released).
            max_distance: only hits within this distance (same units as ``distance``).
            rerank: ``"hnsw_sq8"`` and ``"hnsw_rabitq"``: how many of the graph walk's best
                candidates (by code distance) may be re-ranked with the float vectors
                (``"hnsw_rabitq"`` re-ranks only those its error bound cannot rule out;
                default ``ef``, which keeps ``"hnsw_sq8"``'s recall within ~0.005 of
                ``"hnsw"`` at the same ``ef``); 0 returns the
                code distances without re-ranking, as does an index built with
                ``rerank_source=None`` (it has no floats). With ``rerank_source="lake"``
                the candidates' vectors are read from the table (see :func:`build_index`).
                Ignored by other kinds.

        Returns:
            ``pyarrow.Table``, nearest first per query: ``query`` (int64, 0-based query
            number), ``rank`` (int32, 1 = nearest), ``distance`` (float32: squared L2 for
            ``l2``, ``1 - cos`` for ``cosine``, ``1 - dot`` for ``dot``; when some are a
            compressed kind's estimates, from codes not re-ranked, the field's metadata holds
            ``{b"lakevec.distance": b"estimated"}``), ``_file``,
            ``_row`` (the lake row), the key column if the index has one, then ``columns``.

        Raises:
            VectorError: a query of the wrong dimension or holding NaN/inf (names it).
            FilterError: a filter that does not parse or names an unknown column.
            StaleIndexError: ``stale="error"`` and the version is not fully indexed.
            InvalidArgumentError: ``k`` outside 1..=100,000 (or ``None`` without ``exact=True``
                and ``max_distance``), or a result too large to hold (queries x k rows).
        """
        # a float32 numpy vector or matrix goes to the core as it is (no Arrow array made)
        q = queries if _inputs.is_float32_matrix(queries) else _inputs.queries(queries, self.dim)
        return self._inner.search(
            q,
            None if k is None else int(k),
            ef,
            filter,
            bool(exact),
            version,
            stale,
            list(columns) if columns is not None else None,
            num_threads,
            None if max_distance is None else float(max_distance),
            None if rerank is None else int(rerank),
        )

    def knn_graph(
        self,
        k: int = 10,
        ef: int | None = None,
        *,
        num_threads: int | None = None,
        rows: tuple[int, int] | None = None,
        progress: Any = None,
    ) -> pa.Table:
        """The k-nearest-neighbour graph of every live indexed row (as of the index's table
        version): ``src_file``, ``src_row``, ``dst_file``, ``dst_row``, ``distance``
        (float32, as in :meth:`search`), ``rank`` (int32, 1 = nearest), ``k`` edges per
        row (fewer when the index holds fewer rows), sources in index order. A row is never
        its own neighbour. The building block of semantic dedup and graph construction.

        Args:
            rows: ``(start, end)``: only the sources numbered ``start`` to ``end - 1`` in
                index order (``0 .. stats()["rows"]``), to split the work across processes;
                the parts concatenated in order equal the whole graph.
            progress: a tqdm bar of the rows searched (``None``, the default: when a person
                is watching, in Jupyter or a terminal, not in Ray/Spark workers),
                ``True``/``False``, or a callable ``(phase, done, total)``.

        Raises:
            InvalidArgumentError: ``k`` or ``ef`` outside 1..100000; ``rows`` outside the
            live rows.
        """
        part = (int(rows[0]), int(rows[1])) if rows is not None else None
        return _run_with_progress(
            progress, "knn_graph", lambda cb: self._inner.knn_graph(int(k), ef, num_threads, part, cb)
        )

    # --------------------------------------------------------------- maintain
    def refresh(
        self,
        *,
        num_threads: int | None = None,
        progress: Any = False,
        memory_limit: int | str | None = None,
        max_segment_rows: int | None = None,
    ) -> bool:
        """Bring the index to the table's latest version, incrementally: new data files
        become new segments (only their vectors are read; as many segments as the memory
        budget needs, see :func:`build_index` for ``memory_limit`` and ``max_segment_rows``),
        removed files and newly deleted rows become tombstones; nothing already indexed is
        read again or rebuilt. Returns whether a new index version was committed.
        ``stats()["last_commit"]`` says how many files and rows were encoded.

        Raises:
            CommitConflictError: another writer committed the same index version first.
            InvalidArgumentError: a bad ``memory_limit`` or ``max_segment_rows``.
        """
        limit, rows = _inputs.byte_size(memory_limit), _inputs.segment_rows(max_segment_rows)
        return _run_with_progress(
            progress, "refresh", lambda cb: self._inner.refresh(num_threads, cb, None, None, limit, rows)
        )

    def compact(
        self,
        *,
        num_threads: int | None = None,
        progress: Any = False,
        memory_limit: int | str | None = None,
        max_segment_rows: int | None = None,
    ) -> bool:
        """Merge segments and drop deleted rows, rebuilding the graphs from the index's own
        vectors (nothing is read from the lake). Consecutive segments whose live rows fit the
        memory budget together become one (all of them when they fit: the default budget is
        half the available memory; see :func:`build_index` for ``memory_limit`` and
        ``max_segment_rows``); each merged segment is built, written and dropped before the
        next. Returns whether a new version was committed.

        Raises:
            CommitConflictError: another writer committed the same index version first.
            InvalidArgumentError: a bad ``memory_limit`` or ``max_segment_rows``.
        """
        limit, rows = _inputs.byte_size(memory_limit), _inputs.segment_rows(max_segment_rows)
        return _run_with_progress(progress, "compact", lambda cb: self._inner.compact(num_threads, cb, limit, rows))

    def coverage(self) -> pa.Table:
        """One row per live data file of the table's latest version: ``path``, ``status``
        (``"indexed"``: all its live rows are searchable in the index; ``"stale"``: indexed,
        but rows were deleted since; ``"missing"``: not in the index), ``rows`` (before
        deletes), ``deleted_rows``, ``indexed_rows``. The table version is in the schema
        metadata (``table_version``).

        Raises:
            UnsupportedFeatureError: an indexed file now has Iceberg equality deletes.
            TableNotFoundError / StoragePermissionError: the table cannot be opened.
        """
        v, t = self._inner.coverage()
        return t.replace_schema_metadata({"table_version": "" if v is None else str(v)})

    def vacuum(
        self, retain: datetime.timedelta | float = datetime.timedelta(days=7), dry_run: bool = False
    ) -> pa.Table:
        """Delete the index files no reader within ``retain`` needs, like Delta Lake's VACUUM.

        Kept: the newest version, every version committed less than ``retain`` ago (a
        ``timedelta`` or seconds) and the segment and tombstone files they list, and any file
        written less than ``retain`` ago (a build in progress writes its files before its
        manifest). Deleted: older manifests, and segment/tombstone files no kept manifest
        lists, including those of builds and refreshes that failed or were killed before they
        committed (local or Ray). Files that are not lakevec's are never touched.

        A reader holding an older version keeps the segments it already loaded (a mapped local
        file stays readable after deletion); a segment it had not loaded yet raises
        :class:`~lakevec.exceptions.CorruptIndexError` naming the missing file. With
        ``retain=0`` a build running at the same time can lose its files: keep ``retain``
        above the longest build.

        Returns:
            ``pyarrow.Table`` with one row per file: ``path`` (relative to the index folder),
            ``kind`` (``"manifest"``, ``"segment"``, ``"tombstone"``), ``bytes`` (int64),
            ``deleted`` (False throughout with ``dry_run=True``).

        Raises:
            InvalidArgumentError: a negative ``retain``. StorageError: a listing or delete failed
            (files deleted before it stay deleted; run it again).
        """
        if isinstance(retain, datetime.timedelta):
            retain = retain.total_seconds()
        return self._inner.vacuum(float(retain), bool(dry_run))

    def reload(self) -> VectorIndex:
        """Load the newest committed version (after a refresh by another process); the next
        search also checks the table for a new version, whatever ``consistency_interval``."""
        self._inner.reload()
        return self

    # ------------------------------------------------------------------ misc
    def __repr__(self) -> str:
        return (
            f"VectorIndex(uri='{self.uri}', column='{self.column}', metric='{self.metric}', "
            f"dim={self.dim}, version={self.version}, table_version={self.table_version})"
        )

    def _repr_html_(self) -> str:
        """Jupyter display: kind, metric, rows, segments, versions and a coverage bar of the
        table's latest version (its metadata is read)."""
        from lakevec._html import index_html

        return index_html(self)

    def __reduce__(self):
        return (reopen_index, self._handle())

    def _handle(self) -> tuple:
        """What reopens this index version elsewhere: URI, storage options without
        credentials, version, and the segment cache options given to :func:`open_index`."""
        return (self.uri, dict(self._inner.public_storage_options()), self.version, *self._cache)


_INDEXES = ProcessCache(limit=4)  # a loaded index holds its segments (mapped or in memory)


def reopen_index(
    uri: str, storage_options: dict, version: int, cache_dir: str | None = None, cache_bytes: int | None = None
) -> VectorIndex:
    """Unpickle: reopen the pickled index version (once per process and version)."""
    key = (uri, tuple(sorted(storage_options.items())), version, cache_dir, cache_bytes)
    return _INDEXES.get(
        key,
        lambda: open_index(
            uri, storage_options=storage_options, version=version, cache_dir=cache_dir, cache_bytes=cache_bytes
        ),
    )


def build_index(
    table: Table | str,
    column: str,
    *,
    metric: str = "l2",
    name: str = "default",
    index_uri: str | None = None,
    key: str | None = None,
    index_type: str = "hnsw",
    m: int = 16,
    ef_construction: int = 200,
    num_threads: int | None = None,
    progress: Any = True,
    on_invalid: str = "error",
    storage_options: Mapping[str, str] | None = None,
    builder: str = "native",
    memory_limit: int | str | None = None,
    max_segment_rows: int | None = None,
    rerank_source: str | None = "sidecar",
    bits: int | None = None,
) -> VectorIndex:
    """Build a vector index over ``table[column]`` and store it beside the table.

    The vectors are read from the lake with their row addresses; the index kind's structure
    (HNSW: a graph, Malkov & Yashunin 2018) is built in parallel on
    lakevec's thread pool with the GIL released (Ctrl-C cancels), and committed as the next
    version at the index location.

    Args:
        table: a :class:`Table` or a table URI (Delta, Iceberg, Parquet).
        column: the vector column: FixedSizeList or List of float16/float32/float64, one
            dimension for all rows. Stored as float32.
        metric: ``"l2"`` (squared Euclidean), ``"cosine"`` (vectors normalised, ``1 - cos``)
            or ``"dot"`` (``1 - a·b``).
        name: the index name (several indexes per table).
        index_uri: where to store it. Default: ``<table>/_lakevec_index/<name>`` for Delta
            and Parquet folders (skipped by Delta's VACUUM and by Parquet readers), and a
            sibling ``<table>_lakevec_index/<name>`` for Iceberg, whose orphan-file removal
            deletes unknown files under the table location.
        key: a column stored in the index and returned with every hit (e.g. an id).
        index_type: ``"hnsw"`` (a graph: approximate, fast on large segments),
            ``"hnsw_sq8"`` (the same graph walked on 8-bit scalar codes of the vectors, a
            quarter of the bytes per distance, its best ``ef`` candidates re-ranked with the
            float vectors), ``"hnsw_rabitq"`` (the graph walked on RaBitQ codes, Gao & Long,
            SIGMOD 2024, and the extended multi-bit form, Gao et al., SIGMOD 2025: ``bits``
            per coordinate of each row's offset from its k-means centroid, about sqrt(rows)
            centroids per segment, after a seeded random rotation; the estimator's error bound
            decides which candidates are re-ranked with exact distances) or ``"flat"`` (no structure:
            every search scans the stored vectors exactly, recall 1.0; right for small
            tables). Refresh and compaction keep the kind.
        m: HNSW links per node (2m on layer 0); ``ef_construction``: build beam width
            (both ignored by ``"flat"``).
        num_threads: threads for reading and building (default: see
            :func:`lakevec.default_num_threads`).
        progress: ``True`` for a tqdm bar (if installed), a callable
            ``(phase, done, total)`` (phase ``"read"``, ``"build"`` or ``"write"``), or
            ``False``.
        on_invalid: ``"error"`` raises on a null, wrong-length, NaN/inf (or, for cosine,
            all-zero) vector naming its file and row; ``"skip"`` leaves such rows out.
        storage_options: for a table URI.
        builder: who builds an HNSW graph: ``"native"`` (lakevec's parallel builder) or
            ``"hnsw_rs"`` (the hnsw_rs crate, the reference it is tested against). The stored
            graph has the same form; refreshes of the index use the same builder.
        memory_limit: the build's memory budget: bytes, or a string such as ``"4GB"`` or
            ``"512MiB"`` (at least 16 MiB). Default: half the memory available when the call
            starts. The table's data files are cut into segments that fit it (a segment holds
            whole files; a single file larger than the budget still makes one segment): each
            segment is read, built, written and dropped before the next, so the peak stays
            near the budget plus the read batches in flight, whatever the table's size.
            Searches merge the segments exactly (see :meth:`VectorIndex.compact`).
        max_segment_rows: at most this many rows per segment (default: no limit besides the
            budget).
        rerank_source: where a compressed kind (``"hnsw_sq8"``, ``"hnsw_rabitq"``) finds the
            float vectors it re-ranks its candidates with: ``"sidecar"`` (a float32 copy in
            the segment files; only the candidates' rows are read, by positioned reads that
            keep the rest of the floats out of the process's memory); ``"lake"`` (no
            float copy: the sidecar holds the graph and the codes only, 0.14-0.36x the vector
            bytes at 384-d, and
            each search reads its candidates' vectors back from the table by ``(_file,
            _row)``, all queries' candidates in one batched read of the pages holding them per
            data file (in groups of at most 65,536 candidates), at the table version the
            search uses); or ``None`` (codes only: searches return the codes'
            estimated distances). Without a float copy, ``exact=True`` scans every code
            (then re-ranks from the lake for ``"lake"``), and ``knn_graph`` and semantic dedup
            use the codes' distances. The other kinds keep their floats (``"sidecar"`` only).
        bits: ``"hnsw_rabitq"`` only: bits per coordinate, 1 to 8 (default 1: a 48-byte code
            per 384-d vector; 2 to 8 bits use a byte per coordinate).

    Raises:
        SchemaError: ``column`` or ``key`` not in the table.
        VectorError: not a vector column, an invalid vector, or no vectors at all.
        InvalidArgumentError: bad ``metric``, ``index_type``, ``m``, ``ef_construction``,
            ``on_invalid``, ``builder``, ``memory_limit``, ``max_segment_rows``,
            ``rerank_source`` or ``bits``.
    """
    if not isinstance(table, Table):
        table = Table.open(str(table), storage_options)
    spec = build_spec(
        column, metric, name, index_uri, key, index_type, m, ef_construction, on_invalid, builder, rerank_source, bits
    )
    limit, rows = _inputs.byte_size(memory_limit), _inputs.segment_rows(max_segment_rows)
    idx = _run_with_progress(
        progress,
        "build_index",
        lambda cb: VectorIndex(
            _lakevec.VectorIndex.build(table._inner, spec, num_threads, cb, limit, rows), storage_options
        ),
    )
    _warn_low_recall(idx)
    return idx


# Below this recall@10 estimate a build warns: the graph does not serve its rows well.
LOW_RECALL = 0.8


def _warn_low_recall(idx: VectorIndex) -> None:
    """Warn (``LowRecallWarning``) when the index's recall@10 estimate is under
    :data:`LOW_RECALL`: searches will miss many true neighbours at the default ef."""
    r = idx.stats().get("recall_estimate")
    if r is not None and r < LOW_RECALL:
        warnings.warn(
            f"index '{idx.uri}' has a recall@10 estimate of {r:.2f} (graph search vs exact at ef=64): raise "
            f"ef at search time, rebuild with larger m / ef_construction, or search with exact=True",
            LowRecallWarning,
            stacklevel=3,
        )


class LowRecallWarning(UserWarning):
    """A built index whose recall@10 estimate is low (see ``stats()``)."""


def build_spec(
    column: str,
    metric: str = "l2",
    name: str = "default",
    index_uri: str | None = None,
    key: str | None = None,
    index_type: str = "hnsw",
    m: int = 16,
    ef_construction: int = 200,
    on_invalid: str = "error",
    builder: str = "native",
    rerank_source: str | None = "sidecar",
    bits: int | None = None,
) -> _lakevec.BuildSpec:
    """The named build parameters (:func:`build_index`'s arguments) as the native
    ``BuildSpec``, validated (``InvalidArgumentError``); what distributed builds send to
    their tasks."""
    return _lakevec.BuildSpec(
        column,
        metric,
        name,
        index_uri,
        key,
        index_type,
        int(m),
        int(ef_construction),
        on_invalid,
        builder,
        rerank_source,
        None if bits is None else int(bits),
    )


def open_index(
    index_uri_or_table: str | Table,
    name: str = "default",
    storage_options: Mapping[str, str] | None = None,
    version: int | None = None,
    consistency_interval: float | datetime.timedelta | None = 0.0,
    cache_dir: str | os.PathLike | None = None,
    cache_bytes: int | str | None = None,
) -> VectorIndex:
    """Open an index: by its folder URI, or by its table (a :class:`Table`, whose default
    index location for ``name`` is used, see :func:`build_index`).

    Opening reads the index's manifests only (milliseconds, whatever the index's size); each
    segment is loaded on its first use: on a local disk its file is mapped read-only (the
    operating system pages in what searches touch). From an object store a segment file is
    downloaded once into the segment cache (``cache_dir``), then mapped the same way, so
    search memory never holds whole segments. Size and checksum are verified before first use
    (every time a process maps a cached file: a damaged cache file is fetched again), so a
    damaged segment file is reported (``CorruptIndexError``) by the first search, refresh or
    coverage call that needs it.

    ``storage_options`` serve both the index folder and the table (credentials stay in this
    process; a pickled index carries none). ``version``: an index version to open (default:
    the newest); a pickled index reopens the version it was pickled at.

    ``consistency_interval`` (seconds or a ``timedelta``), as LanceDB's
    ``read_consistency_interval``: how old a view of the *table* a search with
    ``stale="exact"`` or ``"error"`` may use before it checks the table for a new version (one
    LIST or log read). ``0`` (default): every search checks, so rows appended a moment ago are
    found (exactly, until :meth:`VectorIndex.refresh`). ``60``: searches within a minute of
    the last check do no I/O at all, and an append becomes visible to them at most a minute
    later, or at once after :meth:`VectorIndex.reload`. ``None``: only ``reload()`` checks.

    ``cache_dir`` (object-store indexes only): the segment cache folder, shared by the
    indexes and processes that name it (default: ``$LAKEVEC_CACHE_DIR``, else
    ``lakevec/segments`` in the user's cache folder, ``~/.cache`` on Linux). ``cache_bytes``
    (bytes, or ``"16GB"``; default 16 GiB): the folder's bound; least recently used files
    are deleted to make room. A segment larger than it is refused (``InvalidArgumentError``);
    ``cache_bytes=0`` turns the cache off (segments are then downloaded into memory).

    Raises:
        TableNotFoundError: no index there (or no such version).
        CorruptIndexError: a manifest fails verification.
        InvalidArgumentError: a negative ``consistency_interval`` or ``cache_bytes``.
    """
    opts = {str(k): str(v) for k, v in (storage_options or {}).items()}
    if isinstance(consistency_interval, datetime.timedelta):
        consistency_interval = consistency_interval.total_seconds()
    cache = (None if cache_dir is None else os.fspath(cache_dir), _inputs.byte_size(cache_bytes, "cache_bytes"))
    if isinstance(index_uri_or_table, Table):
        if not opts and version is None:
            inner = _lakevec.VectorIndex.open_for_table(index_uri_or_table._inner, name, *cache)
            inner.set_consistency_interval(consistency_interval)
            return VectorIndex(inner, index_uri_or_table._inner.public_storage_options(), cache)
        uri = _lakevec.VectorIndex.default_uri(index_uri_or_table._inner, name)
    else:
        uri = str(index_uri_or_table)
    inner = _lakevec.VectorIndex.open(uri, opts, version, *cache)
    inner.set_consistency_interval(consistency_interval)
    return VectorIndex(inner, opts, cache)
