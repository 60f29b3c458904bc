//! `lakevec._lakevec.VectorIndex`: the native half of `lakevec.VectorIndex`, and the named
//! build parameters ([`spec::PyBuildSpec`]).

pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::error::Result;
use crate::index::budget::Budget;
use crate::index::build::Progress;
use crate::index::cache::SegmentCache;
use crate::index::dist::{build_segment, commit_build, plan_segments, BuiltSegment};
use crate::index::handle::VectorIndex;
use crate::index::info::{coverage, stats};
use crate::index::knn_graph::knn_graph;
use crate::index::location::{default_index_uri, IndexAt};
use crate::index::query::{prepare_flat_queries, prepare_queries, SearchParams, Stale};
use crate::index::search::search_index;
use crate::lake::pin::TablePin;
use crate::lake::storage::{redact, StorageOptions};
use crate::python::call::{counting_ticker, wait_for_future, wait_for_future_with};
use crate::python::lake::table::PyLakeTable;
use crate::python::out::table as table_of;
use crate::runtime::CancelToken;
use crate::vector::distance::Metric;
use spec::PyBuildSpec;

/// An opened vector index (native). Use `lakevec.VectorIndex` from Python.
#[pyclass(frozen, module = "lakevec._lakevec", name = "VectorIndex")]
pub struct PyVectorIndex {
    pub(crate) inner: Arc<VectorIndex>,
}

/// Calls `progress(phase, done, total)` (phase: "read", "build", "write") at each poll.
pub(crate) fn ticker(
    progress: Option<Py<PyAny>>,
    state: Arc<Progress>,
) -> impl FnMut(Python<'_>) -> PyResult<()> + Send {
    move |py| {
        if let Some(cb) = &progress {
            let (done, total) = (state.done.load(Ordering::Relaxed), state.total.load(Ordering::Relaxed));
            cb.call1(py, (state.phase().name(), done, total))?;
        }
        Ok(())
    }
}

fn parse_parts(parts: &[String]) -> Result<Vec<BuiltSegment>> {
    parts.iter().map(|p| BuiltSegment::from_json(p)).collect()
}

impl PyVectorIndex {
    /// Run a maintenance call (refresh, compact) with progress reporting.
    fn maintain<F, Fut>(&self, py: Python<'_>, progress: Option<Py<PyAny>>, f: F) -> PyResult<bool>
    where
        F: FnOnce(Arc<VectorIndex>, CancelToken, Arc<Progress>) -> Fut,
        Fut: std::future::Future<Output = Result<bool>> + Send,
    {
        let state = Arc::new(Progress::default());
        let fut = f(self.inner.clone(), CancelToken::new(), state.clone());
        wait_for_future_with(py, fut, ticker(progress, state))
    }
}

#[pymethods]
impl PyVectorIndex {
    /// Build an index over `table` (see `lakevec.build_index`) within `memory_limit` bytes
    /// (default: half the available memory), at most `max_segment_rows` rows per segment.
    #[staticmethod]
    #[pyo3(signature = (table, spec, num_threads, progress=None, memory_limit=None, max_segment_rows=None))]
    fn build(
        py: Python<'_>,
        table: &PyLakeTable,
        spec: PyRef<'_, PyBuildSpec>,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
        memory_limit: Option<u64>,
        max_segment_rows: Option<usize>,
    ) -> PyResult<Self> {
        let t = table.inner.clone();
        let (at, spec) = spec.target(&t)?;
        let budget = Budget::new(memory_limit, max_segment_rows)?;
        let state = Arc::new(Progress::default());
        let s2 = state.clone();
        let idx = wait_for_future_with(
            py,
            async move { VectorIndex::build(&t, at, spec, num_threads, budget, &CancelToken::new(), &s2).await },
            ticker(progress, state),
        )?;
        Ok(PyVectorIndex { inner: Arc::new(idx) })
    }

    /// Build one segment over data files `files` of `table` and write it under the index
    /// location (a task of `lakevec.ray.build_index`); returns its description (JSON) for
    /// `commit_build` / `refresh(parts=...)`. `dim`: the existing index's dimension.
    /// `memory_limit`: the task's budget (bounds the files read at once).
    #[staticmethod]
    #[pyo3(signature = (table, spec, files, dim=None, num_threads=None, memory_limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn build_segment(
        py: Python<'_>,
        table: &PyLakeTable,
        spec: PyRef<'_, PyBuildSpec>,
        files: Vec<String>,
        dim: Option<usize>,
        num_threads: Option<usize>,
        memory_limit: Option<u64>,
    ) -> PyResult<String> {
        let t = table.inner.clone();
        let (at, spec) = spec.target(&t)?;
        let budget = memory_limit.map(|b| Budget::new(Some(b), None)).transpose()?;
        let built = wait_for_future(py, async move {
            let progress = Arc::new(Progress::default());
            let cancel = CancelToken::new();
            build_segment(&t, &at, &spec, &files, dim, num_threads, budget.as_ref(), &cancel, &progress).await
        })?;
        Ok(built.to_json()?)
    }

    /// Cut data files `files` of `table` into groups that are each built as one segment within
    /// `memory_limit` and `max_segment_rows` (the tasks of a Ray build with a memory limit).
    #[staticmethod]
    #[pyo3(signature = (table, spec, files, dim=None, memory_limit=None, max_segment_rows=None))]
    fn plan_segments(
        py: Python<'_>,
        table: &PyLakeTable,
        spec: PyRef<'_, PyBuildSpec>,
        files: Vec<String>,
        dim: Option<usize>,
        memory_limit: Option<u64>,
        max_segment_rows: Option<usize>,
    ) -> PyResult<Vec<Vec<String>>> {
        let t = table.inner.clone();
        let (_, spec) = spec.target(&t)?;
        let budget = Budget::new(memory_limit, max_segment_rows)?;
        wait_for_future(py, async move { plan_segments(&t, &spec, &files, dim, &budget).await })
    }

    /// Publish segments from `build_segment` (JSON), which together hold every live data
    /// file of `table`, as the next index version.
    #[staticmethod]
    fn commit_build(
        py: Python<'_>,
        table: &PyLakeTable,
        spec: PyRef<'_, PyBuildSpec>,
        parts: Vec<String>,
    ) -> PyResult<Self> {
        let t = table.inner.clone();
        let (at, spec) = spec.target(&t)?;
        let parts = parse_parts(&parts)?;
        let idx = wait_for_future(py, async move { commit_build(&t, at, spec, parts).await })?;
        Ok(PyVectorIndex { inner: Arc::new(idx) })
    }

    /// Open version `version` (default: the newest) of the index at `index_uri`; object-store
    /// segments are cached in `cache_dir` up to `cache_bytes` (0: held in memory instead).
    #[staticmethod]
    #[pyo3(signature = (index_uri, storage_options=None, version=None, cache_dir=None, cache_bytes=None))]
    fn open(
        py: Python<'_>,
        index_uri: String,
        storage_options: Option<HashMap<String, String>>,
        version: Option<u64>,
        cache_dir: Option<std::path::PathBuf>,
        cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let at = IndexAt::new(&index_uri, StorageOptions::new(storage_options.unwrap_or_default()))?
            .with_cache(segment_cache(cache_dir, cache_bytes));
        let idx = wait_for_future(py, async move { VectorIndex::open_version(at, version).await })?;
        Ok(PyVectorIndex { inner: Arc::new(idx) })
    }

    /// Open index `name` at `table`'s default location with the table's storage options.
    #[staticmethod]
    #[pyo3(signature = (table, name, cache_dir=None, cache_bytes=None))]
    fn open_for_table(
        py: Python<'_>,
        table: &PyLakeTable,
        name: &str,
        cache_dir: Option<std::path::PathBuf>,
        cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let t = table.inner.clone();
        let at = IndexAt::new(&default_index_uri(&t, name), t.options.clone())?
            .with_cache(segment_cache(cache_dir, cache_bytes));
        let idx = wait_for_future(py, async move { VectorIndex::open(at).await })?;
        Ok(PyVectorIndex { inner: Arc::new(idx) })
    }

    /// The default index location of `table` for index `name`.
    #[staticmethod]
    fn default_uri(table: &PyLakeTable, name: &str) -> String {
        default_index_uri(&table.inner, name)
    }

    /// Search (see `lakevec.VectorIndex.search`); `queries` is a list array of vectors, or a
    /// C-contiguous float32 buffer (numpy) of one vector (1-D) or one per row (2-D).
    #[pyo3(signature = (queries, k, ef=None, filter=None, exact=false, version=None, stale="exact", columns=None, num_threads=None, max_distance=None, rerank=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: Option<usize>,
        ef: Option<usize>,
        filter: Option<String>,
        exact: bool,
        version: Option<i64>,
        stale: &str,
        columns: Option<Vec<String>>,
        num_threads: Option<usize>,
        max_distance: Option<f32>,
        rerank: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = k.unwrap_or(crate::index::query::UNBOUNDED_K);
        let idx = self.inner.clone();
        let st = idx.state();
        let (q, nq) = prepared_queries(queries, st.manifest.dim, st.manifest.metric)?;
        let stale = Stale::parse(stale)?;
        let p = SearchParams { k, ef, filter, exact, version, stale, columns, num_threads, max_distance, rerank };
        let batch =
            wait_for_future(py, async move { search_index(&idx, st, Arc::new(q), nq, p, &CancelToken::new()).await })?;
        table_of(py, batch)
    }

    /// The k-nearest-neighbour graph of the indexed rows (of live rows `rows` = (start, end)
    /// in index order, when given).
    #[pyo3(signature = (k=10, ef=None, num_threads=None, rows=None, progress=None))]
    fn knn_graph<'py>(
        &self,
        py: Python<'py>,
        k: usize,
        ef: Option<usize>,
        num_threads: Option<usize>,
        rows: Option<(usize, usize)>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let idx = self.inner.clone();
        let total = rows.map_or(idx.state().live_rows(), |(a, b)| b.saturating_sub(a));
        let rows = rows.map(|(a, b)| a..b);
        let cancel = CancelToken::new();
        let tick = counting_ticker(progress, "search", total, cancel.clone());
        let fut = async move { knn_graph(&idx, k, ef, num_threads, rows, &cancel).await };
        let batch = wait_for_future_with(py, fut, tick)?;
        table_of(py, batch)
    }

    /// Bring the index to the table's latest version (or to `table`, a pinned version, whose
    /// new files may come as `parts` from `build_segment`); returns whether a version was
    /// committed.
    #[pyo3(signature = (num_threads=None, progress=None, table=None, parts=None, memory_limit=None, max_segment_rows=None))]
    #[allow(clippy::too_many_arguments)]
    fn refresh(
        &self,
        py: Python<'_>,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
        table: Option<PyRef<'_, PyLakeTable>>,
        parts: Option<Vec<String>>,
        memory_limit: Option<u64>,
        max_segment_rows: Option<usize>,
    ) -> PyResult<bool> {
        let parts = parts.map(|v| parse_parts(&v)).transpose()?;
        let t = table.map(|t| t.inner.clone());
        let budget = Budget::new(memory_limit, max_segment_rows)?;
        self.maintain(py, progress, move |idx, cancel, state| async move {
            match t {
                Some(t) => idx.refresh_with(&t, parts, num_threads, budget, &cancel, &state).await,
                None => idx.refresh(num_threads, budget, &cancel, &state).await,
            }
        })
    }

    /// Data files of `table` (a version of the indexed table) that no segment holds.
    fn pending_files(&self, py: Python<'_>, table: &PyLakeTable) -> PyResult<Vec<String>> {
        let (idx, t) = (self.inner.clone(), table.inner.clone());
        wait_for_future(py, async move { idx.pending_files(&t).await })
    }

    /// Merge segments within `memory_limit` bytes (default: half the available memory) and
    /// drop deleted rows; returns whether a version was committed.
    #[pyo3(signature = (num_threads=None, progress=None, memory_limit=None, max_segment_rows=None))]
    fn compact(
        &self,
        py: Python<'_>,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
        memory_limit: Option<u64>,
        max_segment_rows: Option<usize>,
    ) -> PyResult<bool> {
        let budget = Budget::new(memory_limit, max_segment_rows)?;
        self.maintain(py, progress, move |idx, cancel, state| async move {
            idx.compact(num_threads, budget, &cancel, &state).await
        })
    }

    /// (table version, per-file coverage table) for the table's latest version.
    fn coverage<'py>(&self, py: Python<'py>) -> PyResult<(Option<i64>, Bound<'py, PyAny>)> {
        let idx = self.inner.clone();
        let (v, batch) = wait_for_future(py, async move { coverage(&idx).await })?;
        Ok((v, table_of(py, batch)?))
    }

    /// Statistics as a JSON string.
    fn stats_json(&self) -> String {
        stats(&self.inner).to_string()
    }

    /// Reload the newest committed version.
    fn reload(&self, py: Python<'_>) -> PyResult<()> {
        let idx = self.inner.clone();
        wait_for_future(py, async move { idx.reload().await })
    }

    /// Delete (or list, with `dry_run`) index files no manifest younger than `retain_seconds`
    /// references (see `lakevec.VectorIndex.vacuum`); returns what it deleted as a table.
    #[pyo3(signature = (retain_seconds, dry_run=false))]
    fn vacuum<'py>(&self, py: Python<'py>, retain_seconds: f64, dry_run: bool) -> PyResult<Bound<'py, PyAny>> {
        if !(retain_seconds.is_finite() && retain_seconds >= 0.0) {
            return Err(crate::error::LakeError::InvalidArgument(format!(
                "retain must be a duration >= 0, got {retain_seconds} s"
            ))
            .into());
        }
        let idx = self.inner.clone();
        let retain = std::time::Duration::from_secs_f64(retain_seconds);
        let batch = wait_for_future(py, async move { idx.vacuum(retain, dry_run).await })?;
        table_of(py, batch)
    }

    /// Set how long (seconds) a confirmed view of the latest table serves searches before the
    /// table is checked again (`None`: only `reload()` checks).
    #[pyo3(signature = (seconds))]
    fn set_consistency_interval(&self, seconds: Option<f64>) -> PyResult<()> {
        let d = match seconds {
            None => None,
            Some(s) if s.is_finite() && s >= 0.0 => Some(std::time::Duration::from_secs_f64(s.min(1e9))),
            Some(s) if s == f64::INFINITY => None,
            Some(s) => {
                return Err(crate::error::LakeError::InvalidArgument(format!(
                    "consistency_interval must be a duration >= 0 or None, got {s}"
                ))
                .into())
            }
        };
        self.inner.set_consistency_interval(d);
        Ok(())
    }

    #[getter]
    fn consistency_interval(&self) -> Option<f64> {
        self.inner.consistency_interval().map(|d| d.as_secs_f64())
    }

    #[getter]
    fn uri(&self) -> String {
        self.inner.at.uri.clone()
    }
    #[getter]
    fn version(&self) -> u64 {
        self.inner.state().manifest.version
    }
    #[getter]
    fn table_version(&self) -> Option<i64> {
        self.inner.state().manifest.table_version
    }
    #[getter]
    fn table_uri(&self) -> String {
        redact(&self.inner.state().manifest.table_uri)
    }
    #[getter]
    fn table_format(&self) -> String {
        self.inner.state().manifest.table_format.clone()
    }
    #[getter]
    fn column(&self) -> String {
        self.inner.state().manifest.column.clone()
    }
    #[getter]
    fn key(&self) -> Option<String> {
        self.inner.state().manifest.key.clone()
    }
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.state().manifest.metric.as_str()
    }
    #[getter]
    fn dim(&self) -> usize {
        self.inner.state().manifest.dim
    }
    #[getter]
    fn name(&self) -> String {
        self.inner.state().manifest.name.clone()
    }

    /// What this index was built with (what a refresh builds), as a `BuildSpec`.
    #[getter]
    fn build_spec(&self) -> PyBuildSpec {
        PyBuildSpec::of(&self.inner.state().manifest, &self.inner.at.uri)
    }

    /// The index kind: "hnsw" or "flat".
    #[getter]
    fn index_type(&self) -> &'static str {
        self.inner.state().manifest.kind.name()
    }

    /// Storage options without credentials (what a pickle may carry).
    fn public_storage_options(&self) -> BTreeMap<String, String> {
        self.inner.at.options.public()
    }

    /// The indexed table at `version` (latest when None), opened with the index's options.
    #[pyo3(signature = (version=None))]
    fn table(&self, py: Python<'_>, version: Option<i64>) -> PyResult<PyLakeTable> {
        let idx = self.inner.clone();
        let pin = TablePin { version, timestamp: None };
        let t = wait_for_future(py, async move { idx.open_table(pin).await })?;
        Ok(PyLakeTable { inner: Arc::new(t) })
    }
}

/// The segment cache of `open`'s arguments (`cache_bytes=0`: none).
fn segment_cache(dir: Option<std::path::PathBuf>, bytes: Option<u64>) -> Option<SegmentCache> {
    (bytes != Some(0)).then(|| SegmentCache::new(dir, bytes))
}

/// Query vectors given to a search, prepared for `metric` (`(rows, count)`): a C-contiguous
/// float32 buffer of one vector (1-D) or of one per row (2-D) is read as it is (a single
/// query then costs no pyarrow call and no Arrow array); otherwise an Arrow array (PyCapsule
/// interface).
fn prepared_queries(queries: &Bound<'_, PyAny>, dim: usize, metric: Metric) -> PyResult<(Vec<f32>, usize)> {
    if let Ok(buf) = pyo3::buffer::PyBuffer::<f32>::get(queries) {
        let shape = buf.shape();
        // native-order float32 only: pyo3 also takes a big-endian '>f' buffer as f32
        let native = matches!(buf.format().to_bytes(), b"f" | b"@f" | b"=f" | b"<f");
        if native && buf.is_c_contiguous() && matches!(shape.len(), 1 | 2) {
            let width = shape[shape.len() - 1];
            return Ok(prepare_flat_queries(&buf.to_vec(queries.py())?, width, dim, metric)?);
        }
    }
    Ok(prepare_queries(queries.extract::<PyArray>()?.array(), dim, metric)?)
}
