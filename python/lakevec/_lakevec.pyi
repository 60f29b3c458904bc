# Stubs for the native module lakevec._lakevec (kept in step with src/python/).
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

__version__: str
BUILD_PROFILE: str

class Table:
    @staticmethod
    def open(
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        format: str | None = None,
        version: int | None = None,
        timestamp: str | None = None,
    ) -> Table: ...
    @property
    def uri(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def version(self) -> int | None: ...
    def history(self) -> Any: ...
    def public_storage_options(self) -> dict[str, str]: ...
    def schema(self) -> Any: ...
    def files(self) -> Any: ...
    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> Any: ...
    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> Any: ...
    def read_parts(
        self,
        parts: Sequence[tuple[str, int, int]],
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
    ) -> pa.Table: ...
    def take(
        self,
        files: Sequence[str],
        rows: Sequence[int],
        columns: Sequence[str] | None = None,
        num_threads: int | None = None,
    ) -> Any: ...
    def at_version(self, version: int) -> Table: ...
    def changes_since(self, other: Table) -> Any: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

def sql(
    query: str,
    tables: Sequence[tuple[str, Table]],
    arrow_tables: Sequence[tuple[str, Any]],
    num_threads: int | None = None,
) -> Any: ...
def default_num_threads() -> int: ...

class BuildSpec:
    """What to build (frozen, validated on construction, picklable); see
    :func:`lakevec.build_index` for the meaning of each field."""

    column: str
    metric: str
    name: str
    index_uri: str | None
    key: str | None
    index_type: str
    m: int
    ef_construction: int
    on_invalid: str
    builder: str
    rerank_source: str | None
    bits: int | None
    def __init__(
        self,
        column: str,
        metric: str = "cosine",
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
    ) -> None: ...

class VectorIndex:
    """Native vector index; use :class:`lakevec.VectorIndex`."""

    @staticmethod
    def build(table: Table, spec: BuildSpec, num_threads: int | None, progress: Any | None = None) -> VectorIndex: ...
    @staticmethod
    def build_segment(
        table: Table,
        spec: BuildSpec,
        files: Sequence[str],
        dim: int | None = None,
        num_threads: int | None = None,
        memory_limit: int | None = None,
    ) -> str: ...
    @staticmethod
    def plan_segments(
        table: Table,
        spec: BuildSpec,
        files: Sequence[str],
        dim: int | None = None,
        memory_limit: int | None = None,
        max_segment_rows: int | None = None,
    ) -> list[list[str]]: ...
    @staticmethod
    def commit_build(table: Table, spec: BuildSpec, parts: Sequence[str]) -> VectorIndex: ...
    @staticmethod
    def open(
        index_uri: str,
        storage_options: dict[str, str] | None = None,
        version: int | None = None,
        cache_dir: str | None = None,
        cache_bytes: int | None = None,
    ) -> VectorIndex: ...
    @staticmethod
    def open_for_table(
        table: Table, name: str, cache_dir: str | None = None, cache_bytes: int | None = None
    ) -> VectorIndex: ...
    @staticmethod
    def default_uri(table: Table, name: str) -> str: ...
    def search(
        self,
        queries: Any,
        k: int | None,
        ef: int | None = None,
        filter: str | None = None,
        exact: bool = False,
        version: int | None = None,
        stale: str = "exact",
        columns: list[str] | None = None,
        num_threads: int | None = None,
        max_distance: float | None = None,
        rerank: int | None = None,
    ) -> pa.Table: ...
    def knn_graph(
        self,
        k: int = 10,
        ef: int | None = None,
        num_threads: int | None = None,
        rows: tuple[int, int] | None = None,
    ) -> pa.Table: ...
    def refresh(
        self,
        num_threads: int | None = None,
        progress: Any | None = None,
        table: Table | None = None,
        parts: Sequence[str] | None = None,
    ) -> bool: ...
    def pending_files(self, table: Table) -> list[str]: ...
    def compact(self, num_threads: int | None = None, progress: Any | None = None) -> bool: ...
    def coverage(self) -> tuple[int | None, pa.Table]: ...
    def stats_json(self) -> str: ...
    def reload(self) -> None: ...
    def table(self, version: int | None = None) -> Table: ...
    def public_storage_options(self) -> dict[str, str]: ...
    @property
    def uri(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def table_version(self) -> int | None: ...
    @property
    def table_uri(self) -> str: ...
    @property
    def table_format(self) -> str: ...
    @property
    def column(self) -> str: ...
    @property
    def key(self) -> str | None: ...
    @property
    def metric(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def index_type(self) -> str: ...
    @property
    def build_spec(self) -> BuildSpec: ...

def exact_clusters(
    columns: Sequence[tuple[str, Any]],
    nfkc: bool,
    lowercase: bool,
    whitespace: bool,
    score: Sequence[float] | None = None,
    num_threads: int | None = None,
) -> pa.Table: ...

class DedupIndex:
    """A loaded version of a persisted MinHash dedup index (see ``lakevec.dedup.DedupIndex``)."""

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
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[DedupIndex, bool, pa.Table]: ...
    @staticmethod
    def open(index_uri: str, storage_options: dict[str, str] | None = None) -> DedupIndex: ...
    @staticmethod
    def open_for_table(table: Table, name: str) -> DedupIndex: ...
    @staticmethod
    def default_uri(table: Table, name: str) -> str: ...
    def refresh(
        self,
        table: Table | None = None,
        memory_limit: int | None = None,
        num_threads: int | None = None,
        parts: list[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[bool, pa.Table]: ...
    def latest_table(self) -> Table: ...
    def pending_files(self, table: Table) -> list[str]: ...
    @staticmethod
    def sign_part(
        table: Table, index_uri: str, manifest: str, files: list[str], num_threads: int | None = None
    ) -> str: ...
    def clusters(self) -> pa.Table: ...
    def check(self, texts: Any, column: str, num_threads: int | None = None) -> pa.Table: ...
    def manifest_json(self) -> str: ...
    def vacuum(self, retain_seconds: float, dry_run: bool = False) -> pa.Table: ...
    @property
    def uri(self) -> str: ...

class MinHashParams:
    """MinHash parameters (frozen; validated on construction, raising InvalidArgumentError for
    ``num_perm`` outside 1..4096, ``ngram`` outside 1..64, ``shingle`` not ``"word"``/``"char"``,
    ``sketch`` not ``"classic"``/``"oph"``).
    Picklable, comparable with ``==``."""

    def __init__(
        self,
        *,
        num_perm: int = 128,
        ngram: int = 5,
        shingle: str = "word",
        seed: int = 1,
        nfkc: bool = True,
        lowercase: bool = True,
        whitespace: bool = True,
        sketch: str = "classic",
    ) -> None: ...
    @property
    def num_perm(self) -> int: ...
    @property
    def ngram(self) -> int: ...
    @property
    def shingle(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def nfkc(self) -> bool: ...
    @property
    def lowercase(self) -> bool: ...
    @property
    def whitespace(self) -> bool: ...
    @property
    def sketch(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...

def minhash_signatures(array: Any, column: str, params: MinHashParams, num_threads: int | None = None) -> pa.Array: ...
def minhash_lsh_params(
    threshold: float,
    num_perm: int,
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
) -> tuple[int, int]: ...
def minhash_clusters(
    signatures: Any,
    threshold: float,
    bands: int,
    rows: int,
    score: Sequence[float] | None = None,
    exact_texts: Any | None = None,
    params: MinHashParams | None = None,
    num_threads: int | None = None,
) -> tuple[pa.Table, pa.Table]: ...
def minhash_band_rows(signatures: Any, bands: int, rows: int) -> pa.Table: ...
def minhash_bucket_edges(
    band: Any, key: Any, pos: Any, signatures: Any, threshold: float, num_threads: int | None = None
) -> pa.Table: ...
def minhash_copy_representatives(pos: Any, signatures: Any) -> pa.Array: ...

class Components:
    """Union-find over ``n`` row positions (distributed dedup's driver side)."""

    def __init__(self, n: int) -> None: ...
    def add(self, a: Any, b: Any) -> None: ...
    def clusters(self, score: Sequence[float] | None = None) -> pa.Table: ...

def clusters_from_pairs(
    n: int, a: Sequence[int], b: Sequence[int], score: Sequence[float] | None = None
) -> pa.Table: ...
def hashing_embed(
    array: Any,
    column: str,
    dim: int,
    ngram_lo: int,
    ngram_hi: int,
    analyzer: str,
    norm: str | None,
    lowercase: bool = True,
    alternate_sign: bool = True,
    num_threads: int | None = None,
) -> pa.Array: ...
def rule_tags(
    texts: Any,
    column: str,
    regex: Sequence[tuple[str, Sequence[str]]],
    keywords: Sequence[tuple[str, Sequence[str]]],
    case_sensitive: bool = False,
    num_threads: int | None = None,
) -> tuple[pa.Array, pa.Array]: ...
def knn_arrays(
    queries: Any,
    base: Any | None,
    k: int,
    metric: str,
    num_threads: int | None = None,
    query_name: str = "vectors",
    base_name: str = "exemplars",
) -> tuple[list[int], list[float]]: ...
def within_arrays(
    queries: Any,
    base: Any | None,
    radius: float,
    metric: str,
    num_threads: int | None = None,
    query_name: str = "queries",
    base_name: str = "data",
) -> tuple[list[int], list[int], list[float]]: ...
