//! `lakevec._lakevec.DedupIndex`: the persisted dedup index (`crate::dedup::index`) for
//! `lakevec.dedup.build_index` / `open_index`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::dedup::index::check::check;
use crate::dedup::index::format::{DedupManifest, DedupParams};
use crate::dedup::index::ops::{update, DedupIndex};
use crate::dedup::index::parts::{pending, sign_part, PartRef};
use crate::dedup::index::semantic::{followed_index, semantic_update};
use crate::error::{LakeError, Result};
use crate::index::budget::Budget;
use crate::index::build::Progress;
use crate::index::location::{default_index_uri, IndexAt};
use crate::index::vacuum::vacuum;
use crate::lake::pin::TablePin;
use crate::lake::storage::StorageOptions;
use crate::lake::table::LakeTable;
use crate::python::call::{cpu, wait_for_future, wait_for_future_with};
use crate::python::dedup::minhash::PyMinHashParams;
use crate::python::index::{ticker, PyVectorIndex};
use crate::python::lake::table::PyLakeTable;
use crate::python::out::table as table_of;
use crate::runtime::CancelToken;

/// A loaded version of a dedup index; `refresh` moves it to the table's latest version.
#[pyclass(frozen, module = "lakevec._lakevec", name = "DedupIndex")]
pub struct PyDedupIndex {
    inner: Mutex<Arc<DedupIndex>>,
}

impl PyDedupIndex {
    fn get(&self) -> Arc<DedupIndex> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why an existing index cannot take these parameters, if it cannot.
fn differs(old: &DedupIndex, column: &str, p: &DedupParams) -> Option<String> {
    let m = &old.manifest;
    if m.column != column {
        return Some(format!("it indexes column '{}', not '{column}'", m.column));
    }
    (&m.params != p).then(|| format!("it was built with {:?}, not {:?}", m.params, p))
}

#[pymethods]
impl PyDedupIndex {
    /// Build the index of `table`'s `column` at `index_uri` (default: beside the table, named
    /// `dedup-<name>`), or refresh the one there when its parameters are the same; returns
    /// (index, committed, new rows' assignments).
    #[staticmethod]
    #[pyo3(signature = (table, column, params, threshold, bands, rows, name, index_uri=None, memory_limit=None, num_threads=None, method="minhash", progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn build<'py>(
        py: Python<'py>,
        table: &PyLakeTable,
        column: String,
        params: PyRef<'py, PyMinHashParams>,
        threshold: f64,
        bands: usize,
        rows: usize,
        name: String,
        index_uri: Option<String>,
        memory_limit: Option<u64>,
        num_threads: Option<usize>,
        method: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Self, bool, Bound<'py, PyAny>)> {
        let state = Arc::new(Progress::default());
        let s2 = state.clone();
        let limit = Budget::new(memory_limit, None)?.bytes;
        let t = table.inner.clone();
        let p = params.dedup_params(method, threshold, bands, rows);
        p.check().map_err(LakeError::InvalidArgument)?;
        p.hasher()?;
        check_text_column(&t, &column)?;
        let uri = index_uri.unwrap_or_else(|| default_index_uri(&t, &format!("dedup-{name}")));
        let at = IndexAt::new(&uri, t.options.clone())?.with_cache(None);
        let u = wait_for_future_with(
            py,
            async move {
                let prev = open_prev(&at).await?;
                if let Some(why) = prev.as_deref().and_then(|o| differs(o, &column, &p)) {
                    return Err(cannot_refresh(&at, &why));
                }
                update(at, prev, &t, &name, &column, &p, limit, num_threads, None, &CancelToken::new(), &s2).await
            },
            ticker(progress, state),
        )?;
        let out = table_of(py, u.new_rows)?;
        Ok((PyDedupIndex { inner: Mutex::new(u.index) }, u.committed, out))
    }

    /// Build the semantic dedup index of vector index `vindex` (a cosine or dot index) at
    /// `index_uri` (default: beside its table, named `dedup-<name>`), or bring the one there
    /// to the vector index's version when its parameters are the same; returns (index,
    /// committed, new rows' assignments).
    #[staticmethod]
    #[pyo3(signature = (vindex, threshold, k, ef, name, index_uri=None, num_threads=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn build_semantic<'py>(
        py: Python<'py>,
        vindex: &PyVectorIndex,
        threshold: f64,
        k: usize,
        ef: Option<usize>,
        name: String,
        index_uri: Option<String>,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Self, bool, Bound<'py, PyAny>)> {
        let state = Arc::new(Progress::default());
        let s2 = state.clone();
        let v = vindex.inner.clone();
        let p = DedupParams::semantic(k, threshold, ef);
        p.check().map_err(|why| LakeError::InvalidArgument(format!("semantic dedup index: {why}")))?;
        let u = wait_for_future_with(
            py,
            async move {
                let t = v.table_at(v.state().manifest.table_version).await?;
                let uri = index_uri.unwrap_or_else(|| default_index_uri(&t, &format!("dedup-{name}")));
                let at = IndexAt::new(&uri, t.options.clone())?.with_cache(None);
                let prev = open_prev(&at).await?;
                let column = v.state().manifest.column.clone();
                if let Some(why) = prev.as_deref().and_then(|o| differs(o, &column, &p)) {
                    return Err(cannot_refresh(&at, &why));
                }
                semantic_update(at, prev, &v, &name, &p, num_threads, &CancelToken::new(), &s2).await
            },
            ticker(progress, state),
        )?;
        let out = table_of(py, u.new_rows)?;
        Ok((PyDedupIndex { inner: Mutex::new(u.index) }, u.committed, out))
    }

    /// Open the newest valid version of the index at `index_uri`.
    #[staticmethod]
    #[pyo3(signature = (index_uri, storage_options=None))]
    fn open(py: Python<'_>, index_uri: String, storage_options: Option<HashMap<String, String>>) -> PyResult<Self> {
        let at = IndexAt::new(&index_uri, StorageOptions::new(storage_options.unwrap_or_default()))?.with_cache(None);
        let idx = wait_for_future(py, async move { DedupIndex::open(at).await })?;
        Ok(PyDedupIndex { inner: Mutex::new(Arc::new(idx)) })
    }

    /// Open the newest valid version of `table`'s index `name` at its default location (the
    /// table's storage options serve the index).
    #[staticmethod]
    fn open_for_table(py: Python<'_>, table: &PyLakeTable, name: &str) -> PyResult<Self> {
        let t = &table.inner;
        let at = IndexAt::new(&default_index_uri(t, &format!("dedup-{name}")), t.options.clone())?.with_cache(None);
        let idx = wait_for_future(py, async move { DedupIndex::open(at).await })?;
        Ok(PyDedupIndex { inner: Mutex::new(Arc::new(idx)) })
    }

    /// The default index URI of `table` for index `name`.
    #[staticmethod]
    fn default_uri(table: &PyLakeTable, name: &str) -> String {
        default_index_uri(&table.inner, &format!("dedup-{name}"))
    }

    /// Bring the index to the table's latest version (or `table`, a version of it); returns
    /// (committed, new rows' assignments).
    /// `parts`: JSON references of segments `sign_part` wrote for exactly the table's new
    /// files (Ray); they are verified, clustered and committed instead of signing here.
    #[pyo3(signature = (table=None, memory_limit=None, num_threads=None, parts=None, progress=None))]
    fn refresh<'py>(
        &self,
        py: Python<'py>,
        table: Option<PyRef<'py, PyLakeTable>>,
        memory_limit: Option<u64>,
        num_threads: Option<usize>,
        parts: Option<Vec<String>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let state = Arc::new(Progress::default());
        let s2 = state.clone();
        let parts = parts
            .map(|v| {
                v.iter()
                    .map(|s| {
                        serde_json::from_str::<PartRef>(s)
                            .map_err(|e| LakeError::InvalidArgument(format!("not a segment reference: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let limit = Budget::new(memory_limit, None)?.bytes;
        let idx = self.get();
        let given = table.map(|t| t.inner.clone());
        let u = wait_for_future_with(
            py,
            async move {
                let m = &idx.manifest;
                if let Some(v) = followed_index(&idx).await? {
                    if given.is_some() || parts.is_some() {
                        return Err(LakeError::InvalidArgument(
                            "a semantic dedup index follows its vector index: refresh() takes no table or parts \
                             (refresh the vector index first)"
                                .into(),
                        ));
                    }
                    let (at, name, params) = (idx.at.clone(), m.name.clone(), m.params.clone());
                    return semantic_update(at, Some(idx), &v, &name, &params, num_threads, &CancelToken::new(), &s2)
                        .await;
                }
                let t = match given {
                    Some(t) => t,
                    None => Arc::new(idx.open_table(TablePin::default()).await?),
                };
                let (at, name, column, params) = (idx.at.clone(), m.name.clone(), m.column.clone(), m.params.clone());
                update(at, Some(idx), &t, &name, &column, &params, limit, num_threads, parts, &CancelToken::new(), &s2)
                    .await
            },
            ticker(progress, state),
        )?;
        let out = table_of(py, u.new_rows)?;
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = u.index;
        Ok((u.committed, out))
    }

    /// The vector index a semantic index follows, at its newest version (opened with the
    /// index's storage options); None for other methods.
    fn vector_index(&self, py: Python<'_>) -> PyResult<Option<PyVectorIndex>> {
        let idx = self.get();
        let v = wait_for_future(py, async move { followed_index(&idx).await })?;
        Ok(v.map(|v| PyVectorIndex { inner: Arc::new(v) }))
    }

    /// The indexed table at its latest version (opened with the index's storage options).
    fn latest_table(&self, py: Python<'_>) -> PyResult<PyLakeTable> {
        let idx = self.get();
        let t = wait_for_future(py, async move { idx.open_table(TablePin::default()).await })?;
        Ok(PyLakeTable { inner: Arc::new(t) })
    }

    /// Paths of `table`'s data files the loaded version does not hold.
    fn pending_files(&self, py: Python<'_>, table: &PyLakeTable) -> PyResult<Vec<String>> {
        let (idx, t) = (self.get(), table.inner.clone());
        wait_for_future(py, async move { pending(Some(&idx), &t.entries().await?) })
    }

    /// Sign data files `files` of `table` for the index at `index_uri` (column and parameters
    /// from the JSON `manifest` of `manifest_json()`), write them as a segment file there, and
    /// return its reference as JSON (for `refresh(parts=...)`): a Ray task's work.
    #[staticmethod]
    #[pyo3(signature = (table, index_uri, manifest, files, num_threads=None))]
    fn sign_part(
        py: Python<'_>,
        table: &PyLakeTable,
        index_uri: String,
        manifest: String,
        files: Vec<String>,
        num_threads: Option<usize>,
    ) -> PyResult<String> {
        let t = table.inner.clone();
        let m: DedupManifest = serde_json::from_str(&manifest)
            .map_err(|e| LakeError::InvalidArgument(format!("not a dedup index manifest: {e}")))?;
        let at = IndexAt::new(&index_uri, t.options.clone())?.with_cache(None);
        let part = wait_for_future(py, async move {
            sign_part(&t, &at, &m.column, &m.params, &files, num_threads, &CancelToken::new()).await
        })?;
        serde_json::to_string(&part).map_err(|e| LakeError::Internal(e.to_string()).into())
    }

    /// The cluster table of the covered version (see `lakevec.dedup.DedupIndex.clusters`).
    fn clusters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let idx = self.get();
        let batch = cpu(py, None, move |_| idx.clusters_batch())?;
        table_of(py, batch)
    }

    /// Rows of `texts` (a text array) against the stored clusters, index unchanged.
    #[pyo3(signature = (texts, column, num_threads=None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        texts: PyArray,
        column: String,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let idx = self.get();
        if idx.manifest.params.method == "semantic" {
            return Err(LakeError::Unsupported(
                "check() of a semantic dedup index: search the vector index (VectorIndex.search) with the new \
                 rows' vectors and join the hits to clusters()"
                    .into(),
            )
            .into());
        }
        let a = texts.array().clone();
        let batch = cpu(py, num_threads, move |c| check(&idx, &a, &column, &c))?;
        table_of(py, batch)
    }

    /// Delete (or list, with `dry_run`) index files no manifest younger than `retain_seconds`
    /// references (see `lakevec.dedup.DedupIndex.vacuum`); returns what it deleted as a table.
    #[pyo3(signature = (retain_seconds, dry_run=false))]
    fn vacuum<'py>(&self, py: Python<'py>, retain_seconds: f64, dry_run: bool) -> PyResult<Bound<'py, PyAny>> {
        if !(retain_seconds.is_finite() && retain_seconds >= 0.0) {
            let msg = format!("retain must be a duration >= 0, got {retain_seconds} s");
            return Err(LakeError::InvalidArgument(msg).into());
        }
        let idx = self.get();
        let retain = std::time::Duration::from_secs_f64(retain_seconds);
        let batch = wait_for_future(py, async move {
            vacuum::<DedupManifest>(&idx.at.store, idx.at.root(), retain, dry_run).await
        })?;
        table_of(py, batch)
    }

    /// The manifest of the loaded version as JSON (parameters, counts, table version).
    fn manifest_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.get().manifest).map_err(|e| LakeError::Internal(e.to_string()).into())
    }

    #[getter]
    fn uri(&self) -> String {
        self.get().at.uri.clone()
    }

    fn __repr__(&self) -> String {
        let i = self.get();
        let m = &i.manifest;
        let tv = m.table_version.map_or("None".to_string(), |v| v.to_string());
        format!(
            "DedupIndex(uri='{}', version={}, table_version={tv}, rows={}, live_rows={})",
            i.at.uri, m.version, m.rows, m.live_rows
        )
    }
}

/// The index at `at`, None when there is none yet.
async fn open_prev(at: &IndexAt) -> Result<Option<Arc<DedupIndex>>> {
    match DedupIndex::open(at.clone()).await {
        Ok(i) => Ok(Some(Arc::new(i))),
        Err(LakeError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn cannot_refresh(at: &IndexAt, why: &str) -> LakeError {
    LakeError::InvalidArgument(format!(
        "the dedup index at '{}' cannot be refreshed with these parameters: {why}; pass the same parameters, or \
         another name= for a second index",
        at.uri
    ))
}

/// `column` exists in `t` and holds text.
fn check_text_column(t: &LakeTable, column: &str) -> Result<()> {
    use arrow::datatypes::DataType;
    let schema = t.schema();
    let f = schema.field_with_name(column).map_err(|_| {
        LakeError::Schema(format!(
            "column '{column}' not found in table '{}' (columns: {})",
            t.uri,
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(()),
        other => Err(LakeError::Schema(format!("'{column}' is not a text column ({other})"))),
    }
}
