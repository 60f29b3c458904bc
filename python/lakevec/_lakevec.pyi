# Stubs for the native module lakevec._lakevec (kept in step with src/python/; checked against the
# built module by `python -m mypy.stubtest lakevec._lakevec` in .ci/run).
#
# pyo3 reports a default that is not a plain literal (`"cosine".to_string()`, a tuple) as `...`,
# so those defaults are written `= ...` here; the docstrings give their values.
import os
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol, TypeAlias, final

import pyarrow as pa
from typing_extensions import Buffer

__all__ = [
    "__version__",
    "BUILD_PROFILE",
    "_LOG_LEVEL",
    "Table",
    "sql",
    "default_num_threads",
    "VectorIndex",
    "BuildSpec",
    "exact_clusters",
    "clusters_from_pairs",
    "MinHashParams",
    "DedupIndex",
    "minhash_signatures",
    "minhash_lsh_params",
    "minhash_clusters",
    "minhash_band_rows",
    "minhash_bucket_edges",
    "minhash_copy_representatives",
    "Components",
    "rule_tags",
    "knn_arrays",
    "within_arrays",
    "hashing_embed",
]

class _ArrowArrayExportable(Protocol):
    """An object exporting an Arrow array (Arrow PyCapsule interface), e.g. a ``pyarrow.Array``."""

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        """The (schema, array) capsules."""

class _ArrowStreamExportable(Protocol):
    """An object exporting an Arrow stream (Arrow PyCapsule interface), e.g. a ``pyarrow.Table``."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The stream capsule."""

# An Arrow array argument (pyo3-arrow's PyArray): the Arrow PyCapsule interface, or a buffer
# (numpy array).
_ArrayLike: TypeAlias = _ArrowArrayExportable | Buffer
# `progress(phase, done, total)`, called at each poll of a long call (return value ignored).
_Progress: TypeAlias = Callable[[str, int, int], object]
# A local path (pyo3's PathBuf: str or os.PathLike).
_StrPath: TypeAlias = str | os.PathLike[str]

__version__: str
BUILD_PROFILE: str
# The Python logging level LAKEVEC_LOG names (None: unset, unknown or "off").
_LOG_LEVEL: int | None

@final
class Table:
    """An opened lake table (native); use :class:`lakevec.Table`."""

    @staticmethod
    def open(
        uri: str,
        storage_options: dict[str, str] | None = None,
        format: str | None = None,
        version: int | None = None,
        timestamp: str | None = None,
    ) -> Table:
        """Open the table at ``uri`` (see ``lakevec.Table.open``)."""
    @property
    def uri(self) -> str:
        """The table's URI."""
    @property
    def format(self) -> str:
        """The table format: "delta", "iceberg" or "parquet"."""
    @property
    def num_rows(self) -> int:
        """The number of live rows."""
    @property
    def version(self) -> int | None:
        """The opened version (Delta version, Iceberg snapshot id; None for Parquet)."""
    def history(self) -> pa.Table:
        """Commit history as a ``pyarrow.Table`` (Delta)."""
    def public_storage_options(self) -> dict[str, str]:
        """Storage options without credentials (what a pickle may carry)."""
    def schema(self) -> pa.Schema:
        """The Arrow schema as a ``pyarrow.Schema``."""
    def files(self) -> pa.Table:
        """The live data files as a ``pyarrow.Table``."""
    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> pa.Table:
        """Read into a ``pyarrow.Table`` (GIL released, interruptible)."""
    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> pa.RecordBatchReader:
        """Start a streaming read; returns a ``pyarrow.RecordBatchReader``."""
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule stream of the whole table (all columns, file order)."""
    def read_parts(
        self,
        parts: Sequence[tuple[str, int, int]],
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
    ) -> pa.Table:
        """The live rows of ``parts`` ((path, start, end) row ranges), with ``_file`` and ``_row``."""
    def take(
        self,
        files: Sequence[str],
        rows: Sequence[int],
        columns: Sequence[str] | None = None,
        num_threads: int | None = None,
    ) -> pa.Table:
        """Rows at (``files[i]``, ``rows[i]``) as a ``pyarrow.Table``, in input order."""
    def at_version(self, version: int) -> Table:
        """The same table (same storage options, credentials included) at another version."""
    def changes_since(self, other: Table) -> pa.Table:
        """File-level changes from ``other`` (an older version of this table) to this one."""

def sql(
    query: str,
    tables: Sequence[tuple[str, Table]],
    arrow_tables: Sequence[tuple[str, _ArrowStreamExportable]],
    num_threads: int | None = None,
) -> pa.Table:
    """Run ``query`` over lake ``tables`` and ``arrow_tables`` (name, Arrow stream); a ``pyarrow.Table``."""

def default_num_threads() -> int:
    """The number of threads lakevec uses when ``num_threads`` is not given."""

@final
class BuildSpec:
    """What to build (frozen, validated on construction, picklable); see
    :func:`lakevec.build_index` for the meaning of each field."""

    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(
        cls,
        column: str,
        metric: str = ...,
        name: str = ...,
        index_uri: str | None = None,
        key: str | None = None,
        index_type: str = ...,
        m: int = 16,
        ef_construction: int = 200,
        on_invalid: str = ...,
        builder: str = ...,
        rerank_source: str | None = ...,
        bits: int | None = None,
    ) -> BuildSpec:
        """Validate a spec (defaults: "cosine", "default", "hnsw", "error", "native", "sidecar")."""
    def __eq__(self, value: object, /) -> bool:
        """Equal when every field is."""
    @property
    def column(self) -> str:
        """The vector column."""
    @property
    def metric(self) -> str:
        """The metric: "cosine", "l2" or "dot"."""
    @property
    def name(self) -> str:
        """The index name."""
    @property
    def index_uri(self) -> str | None:
        """The index folder (None: beside the table)."""
    @property
    def key(self) -> str | None:
        """The key column stored with the hits, if any."""
    @property
    def index_type(self) -> str:
        """The index kind: "hnsw", "hnsw_sq8", "hnsw_rabitq" or "flat"."""
    @property
    def m(self) -> int:
        """HNSW's ``m`` (2..=128)."""
    @property
    def ef_construction(self) -> int:
        """HNSW's ``ef_construction`` (1..=10000)."""
    @property
    def on_invalid(self) -> str:
        """What an invalid vector does: "error" or "skip"."""
    @property
    def builder(self) -> str:
        """The HNSW builder: "native" or "hnsw_rs"."""
    @property
    def rerank_source(self) -> str | None:
        """A compressed kind's rerank source: "sidecar", "lake" or None."""
    @property
    def bits(self) -> int | None:
        """Bits per dimension of "hnsw_rabitq" (1..=8; None: 1)."""

@final
class VectorIndex:
    """Native vector index; use :class:`lakevec.VectorIndex`."""

    @staticmethod
    def build(
        table: Table,
        spec: BuildSpec,
        num_threads: int | None,
        progress: _Progress | None = None,
        memory_limit: int | None = None,
        max_segment_rows: int | None = None,
    ) -> VectorIndex:
        """Build an index over ``table`` within ``memory_limit`` bytes (see ``lakevec.build_index``)."""
    @staticmethod
    def build_segment(
        table: Table,
        spec: BuildSpec,
        files: Sequence[str],
        dim: int | None = None,
        num_threads: int | None = None,
        memory_limit: int | None = None,
    ) -> str:
        """Build and write one segment over data files ``files``; returns its description (JSON)."""
    @staticmethod
    def plan_segments(
        table: Table,
        spec: BuildSpec,
        files: Sequence[str],
        dim: int | None = None,
        memory_limit: int | None = None,
        max_segment_rows: int | None = None,
    ) -> list[list[str]]:
        """Cut data files ``files`` into groups that are each built as one segment within the limits."""
    @staticmethod
    def commit_build(table: Table, spec: BuildSpec, parts: Sequence[str]) -> VectorIndex:
        """Publish segments from ``build_segment`` (JSON) as the next index version."""
    @staticmethod
    def open(
        index_uri: str,
        storage_options: dict[str, str] | None = None,
        version: int | None = None,
        cache_dir: _StrPath | None = None,
        cache_bytes: int | None = None,
    ) -> VectorIndex:
        """Open version ``version`` (default: the newest) of the index at ``index_uri``."""
    @staticmethod
    def open_for_table(
        table: Table, name: str, cache_dir: _StrPath | None = None, cache_bytes: int | None = None
    ) -> VectorIndex:
        """Open index ``name`` at ``table``'s default location with the table's storage options."""
    @staticmethod
    def default_uri(table: Table, name: str) -> str:
        """The default index location of ``table`` for index ``name``."""
    def search(
        self,
        queries: _ArrayLike,
        k: int | None,
        ef: int | None = None,
        filter: str | None = None,
        exact: bool = False,
        version: int | None = None,
        stale: str = "exact",
        columns: Sequence[str] | None = None,
        num_threads: int | None = None,
        max_distance: float | None = None,
        rerank: int | None = None,
    ) -> pa.Table:
        """Search (see ``lakevec.VectorIndex.search``); ``queries``: a list array or a float32 buffer."""
    def knn_graph(
        self,
        k: int = 10,
        ef: int | None = None,
        num_threads: int | None = None,
        rows: tuple[int, int] | None = None,
        progress: _Progress | None = None,
    ) -> pa.Table:
        """The k-nearest-neighbour graph of the indexed rows (of live rows ``rows`` = (start, end))."""
    def refresh(
        self,
        num_threads: int | None = None,
        progress: _Progress | None = None,
        table: Table | None = None,
        parts: Sequence[str] | None = None,
        memory_limit: int | None = None,
        max_segment_rows: int | None = None,
    ) -> bool:
        """Bring the index to the table's latest version (or ``table``); whether a version was committed."""
    def pending_files(self, table: Table) -> list[str]:
        """Data files of ``table`` (a version of the indexed table) that no segment holds."""
    def compact(
        self,
        num_threads: int | None = None,
        progress: _Progress | None = None,
        memory_limit: int | None = None,
        max_segment_rows: int | None = None,
    ) -> bool:
        """Merge segments and drop deleted rows; returns whether a version was committed."""
    def coverage(self) -> tuple[int | None, pa.Table]:
        """(table version, per-file coverage table) for the table's latest version."""
    def stats_json(self) -> str:
        """Statistics as a JSON string."""
    def reload(self) -> None:
        """Reload the newest committed version."""
    def vacuum(self, retain_seconds: float, dry_run: bool = False) -> pa.Table:
        """Delete (or list, with ``dry_run``) unreferenced index files older than ``retain_seconds``."""
    def set_consistency_interval(self, seconds: float | None) -> None:
        """Set how long (seconds) a view of the latest table serves searches (None: only ``reload()``)."""
    @property
    def consistency_interval(self) -> float | None:
        """How long (seconds) a view of the latest table serves searches (None: until ``reload()``)."""
    def public_storage_options(self) -> dict[str, str]:
        """Storage options without credentials (what a pickle may carry)."""
    def table(self, version: int | None = None) -> Table:
        """The indexed table at ``version`` (latest when None), opened with the index's options."""
    @property
    def uri(self) -> str:
        """The index location."""
    @property
    def version(self) -> int:
        """The loaded index version."""
    @property
    def table_version(self) -> int | None:
        """The table version the loaded index version covers."""
    @property
    def table_uri(self) -> str:
        """The indexed table's URI (credentials redacted)."""
    @property
    def table_format(self) -> str:
        """The indexed table's format."""
    @property
    def column(self) -> str:
        """The indexed vector column."""
    @property
    def key(self) -> str | None:
        """The key column stored with the hits, if any."""
    @property
    def metric(self) -> str:
        """The metric: "cosine", "l2" or "dot"."""
    @property
    def dim(self) -> int:
        """The vector dimension."""
    @property
    def name(self) -> str:
        """The index name."""
    @property
    def index_type(self) -> str:
        """The index kind: "hnsw", "hnsw_sq8", "hnsw_rabitq" or "flat"."""
    @property
    def build_spec(self) -> BuildSpec:
        """What this index was built with (what a refresh builds)."""

def exact_clusters(
    columns: Sequence[tuple[str, _ArrayLike]],
    nfkc: bool,
    lowercase: bool,
    whitespace: bool,
    score: Sequence[float] | None = None,
    num_threads: int | None = None,
) -> pa.Table:
    """Exact-dedup clusters of the rows of ``columns`` (name, array) pairs."""

def clusters_from_pairs(n: int, a: Sequence[int], b: Sequence[int], score: Sequence[float] | None = None) -> pa.Table:
    """Clusters of ``n`` rows from pairs (``a[i]``, ``b[i]``) (connected components)."""

@final
class MinHashParams:
    """MinHash parameters (frozen; validated on construction, raising InvalidArgumentError for
    ``num_perm`` outside 1..4096, ``ngram`` outside 1..64, ``shingle`` not ``"word"``/``"char"``,
    ``sketch`` not ``"classic"``/``"oph"``).
    Picklable, comparable with ``==``."""

    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(
        cls,
        num_perm: int = 128,
        ngram: int = 5,
        shingle: str = ...,
        seed: int = 1,
        nfkc: bool = True,
        lowercase: bool = True,
        whitespace: bool = True,
        sketch: str = ...,
    ) -> MinHashParams:
        """Validate the parameters (defaults: ``shingle="word"``, ``sketch="classic"``)."""
    @property
    def num_perm(self) -> int:
        """The number of signature slots (1..=4096)."""
    @property
    def ngram(self) -> int:
        """The shingle length (1..=64)."""
    @property
    def shingle(self) -> str:
        """The shingle unit: "word" or "char"."""
    @property
    def seed(self) -> int:
        """The hash seed."""
    @property
    def nfkc(self) -> bool:
        """Whether texts are NFKC-normalised first."""
    @property
    def lowercase(self) -> bool:
        """Whether texts are lowercased first."""
    @property
    def whitespace(self) -> bool:
        """Whether whitespace runs are collapsed first."""
    @property
    def sketch(self) -> str:
        """The sketch: "classic" or "oph"."""
    def __eq__(self, value: object, /) -> bool:
        """Equal when every parameter is."""

@final
class DedupIndex:
    """A loaded version of a persisted dedup index (see ``lakevec.dedup.DedupIndex``)."""

    @staticmethod
    def build(
        table: Table,
        column: str,
        params: MinHashParams,
        threshold: float,
        bands: int,
        rows: int,
        name: str,
        index_uri: str | None = None,
        memory_limit: int | None = None,
        num_threads: int | None = None,
        method: str = "minhash",
        progress: _Progress | None = None,
    ) -> tuple[DedupIndex, bool, pa.Table]:
        """Build (or refresh) the index of ``column``; returns (index, committed, new rows' assignments)."""
    @staticmethod
    def build_semantic(
        vindex: VectorIndex,
        threshold: float,
        k: int,
        ef: int | None,
        name: str,
        index_uri: str | None = None,
        num_threads: int | None = None,
        progress: _Progress | None = None,
    ) -> tuple[DedupIndex, bool, pa.Table]:
        """Build (or refresh) the semantic index of ``vindex``; returns (index, committed, assignments)."""
    @staticmethod
    def open(index_uri: str, storage_options: dict[str, str] | None = None) -> DedupIndex:
        """Open the newest valid version of the index at ``index_uri``."""
    @staticmethod
    def open_for_table(table: Table, name: str) -> DedupIndex:
        """Open the newest valid version of ``table``'s index ``name`` at its default location."""
    @staticmethod
    def default_uri(table: Table, name: str) -> str:
        """The default index URI of ``table`` for index ``name``."""
    def refresh(
        self,
        table: Table | None = None,
        memory_limit: int | None = None,
        num_threads: int | None = None,
        parts: Sequence[str] | None = None,
        progress: _Progress | None = None,
    ) -> tuple[bool, pa.Table]:
        """Bring the index to the table's latest version (or ``table``); (committed, new rows' assignments)."""
    def vector_index(self) -> VectorIndex | None:
        """The vector index a semantic index follows, at its newest version; None for other methods."""
    def latest_table(self) -> Table:
        """The indexed table at its latest version (opened with the index's storage options)."""
    def pending_files(self, table: Table) -> list[str]:
        """Paths of ``table``'s data files the loaded version does not hold."""
    @staticmethod
    def sign_part(
        table: Table, index_uri: str, manifest: str, files: Sequence[str], num_threads: int | None = None
    ) -> str:
        """Sign data files ``files`` and write them as a segment; returns its reference as JSON."""
    def clusters(self) -> pa.Table:
        """The cluster table of the covered version (see ``lakevec.dedup.DedupIndex.clusters``)."""
    def check(self, texts: _ArrayLike, column: str, num_threads: int | None = None) -> pa.Table:
        """Rows of ``texts`` (a text array) against the stored clusters, index unchanged."""
    def vacuum(self, retain_seconds: float, dry_run: bool = False) -> pa.Table:
        """Delete (or list, with ``dry_run``) unreferenced index files older than ``retain_seconds``."""
    def manifest_json(self) -> str:
        """The manifest of the loaded version as JSON (parameters, counts, table version)."""
    @property
    def uri(self) -> str:
        """The index location."""

def minhash_signatures(
    array: _ArrayLike,
    column: str,
    params: MinHashParams,
    num_threads: int | None = None,
    progress: _Progress | None = None,
) -> pa.Array:
    """MinHash signatures of a text array (FixedSizeList<uint32, num_perm>; null = no shingles)."""

def minhash_lsh_params(
    threshold: float,
    num_perm: int,
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = ...,
) -> tuple[int, int]:
    """(bands, rows) for ``threshold`` and ``num_perm`` (``weights`` default: (0.5, 0.5))."""

def minhash_clusters(
    signatures: _ArrayLike,
    threshold: float,
    bands: int,
    rows: int,
    score: Sequence[float] | None = None,
    exact_texts: _ArrayLike | None = None,
    params: MinHashParams | None = None,
    num_threads: int | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(clusters, verified pairs) from a signature array (``exact_texts``: verify by exact Jaccard)."""

def minhash_band_rows(signatures: _ArrayLike, bands: int, rows: int) -> pa.Table:
    """Band rows (``row``, ``band``, ``key``) of a signature array, one per band of every signature."""

def minhash_bucket_edges(
    band: _ArrayLike,
    key: _ArrayLike,
    pos: _ArrayLike,
    signatures: _ArrayLike,
    threshold: float,
    num_threads: int | None = None,
) -> pa.Table:
    """Verified edges (``a``, ``b``) of the buckets in one group of band rows."""

def minhash_copy_representatives(pos: _ArrayLike, signatures: _ArrayLike) -> pa.Array:
    """Each row's representative: the smallest position in ``pos`` holding the identical signature."""

@final
class Components:
    """Union-find over ``n`` row positions (distributed dedup's driver side)."""

    def __new__(cls, n: int) -> Components:
        """Components of ``n`` rows (at most 2^32 - 2), each its own."""
    def add(self, a: _ArrayLike, b: _ArrayLike) -> None:
        """Join rows ``a[i]`` and ``b[i]`` (int64 arrays of positions < n)."""
    def clusters(self, score: Sequence[float] | None = None) -> pa.Table:
        """``cluster_id``, ``cluster_size``, ``is_representative`` per row (see ``lakevec.dedup``)."""

def rule_tags(
    texts: _ArrayLike,
    column: str,
    regex: Sequence[tuple[str, Sequence[str]]],
    keywords: Sequence[tuple[str, Sequence[str]]],
    case_sensitive: bool = False,
    num_threads: int | None = None,
    progress: _Progress | None = None,
) -> tuple[pa.Array, pa.Array]:
    """(``tags``, ``matches``) arrays for a text array."""

def knn_arrays(
    queries: _ArrayLike,
    base: _ArrayLike | None,
    k: int,
    metric: str,
    num_threads: int | None = None,
    query_name: str = ...,
    base_name: str = ...,
    progress: _Progress | None = None,
) -> tuple[list[int], list[float]]:
    """Exact kNN of ``queries`` among ``base`` (None: each other); names default to "vectors", "exemplars"."""

def within_arrays(
    queries: _ArrayLike,
    base: _ArrayLike | None,
    radius: float,
    metric: str,
    num_threads: int | None = None,
    query_name: str = ...,
    base_name: str = ...,
    progress: _Progress | None = None,
) -> tuple[list[int], list[int], list[float]]:
    """Every (query, row, distance) within ``radius`` (``base=None``: each other); names: "queries", "data"."""

def hashing_embed(
    array: _ArrayLike,
    column: str,
    dim: int,
    ngram_lo: int,
    ngram_hi: int,
    analyzer: str,
    norm: str | None,
    lowercase: bool = True,
    alternate_sign: bool = True,
    num_threads: int | None = None,
) -> pa.Array:
    """Feature-hashing vectors of a text array (FixedSizeList<float32, dim>)."""
