//! `lakevec._lakevec.Table`: the native half of `lakevec.Table`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use pyo3_arrow::{PyRecordBatchReader, PySchema};

use crate::lake::pin::TablePin;
use crate::lake::storage::StorageOptions;
use crate::lake::table::{Format, LakeTable};
use crate::python::call::wait_for_future;
use crate::read::scan::{collect, OrderedReader, ScanOptions};
use crate::read::split::{read_parts, Part};

/// An opened lake table (native). Use `lakevec.Table` from Python.
#[pyclass(frozen, module = "lakevec._lakevec", name = "Table")]
pub struct PyLakeTable {
    pub inner: Arc<LakeTable>,
}

fn scan_options(
    columns: Option<Vec<String>>,
    filter: Option<String>,
    batch_size: Option<usize>,
    num_threads: Option<usize>,
    limit: Option<usize>,
    with_row_address: bool,
) -> ScanOptions {
    ScanOptions { columns, filter, batch_size, num_threads, limit, with_row_address }
}

#[pymethods]
impl PyLakeTable {
    /// Open the table at `uri` (see `lakevec.Table.open`).
    #[staticmethod]
    #[pyo3(signature = (uri, storage_options=None, format=None, version=None, timestamp=None))]
    fn open(
        py: Python<'_>,
        uri: String,
        storage_options: Option<HashMap<String, String>>,
        format: Option<String>,
        version: Option<i64>,
        timestamp: Option<String>,
    ) -> PyResult<Self> {
        let options = StorageOptions::new(storage_options.unwrap_or_default());
        let format = format.map(|f| Format::parse(&f)).transpose()?;
        let pin = TablePin { version, timestamp };
        let t = wait_for_future(py, async move { LakeTable::open(&uri, options, format, pin).await })?;
        Ok(PyLakeTable { inner: Arc::new(t) })
    }

    #[getter]
    fn uri(&self) -> String {
        self.inner.uri.clone()
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.inner.format.as_str()
    }

    /// Live rows (GIL released: a Delta table counts them on the first call).
    #[getter]
    fn num_rows(&self, py: Python<'_>) -> PyResult<u64> {
        let t = self.inner.clone();
        wait_for_future(py, async move { t.num_rows().await })
    }

    #[getter]
    fn version(&self) -> Option<i64> {
        self.inner.version()
    }

    /// Commit history as a `pyarrow.Table` (Delta).
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let batch = wait_for_future(py, async move { t.history().await })?;
        crate::python::out::table(py, batch)
    }

    /// Storage options without credentials (what a pickle may carry).
    fn public_storage_options(&self) -> BTreeMap<String, String> {
        self.inner.options.public()
    }

    /// The Arrow schema as a `pyarrow.Schema`.
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PySchema::new(self.inner.schema()).into_pyarrow(py)
    }

    /// The live data files as a `pyarrow.Table`.
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let batch = wait_for_future(py, async move { t.files().await })?;
        crate::python::out::table(py, batch)
    }

    /// Read into a `pyarrow.Table` (GIL released, interruptible).
    #[pyo3(signature = (columns=None, filter=None, batch_size=None, num_threads=None, limit=None, with_row_address=false))]
    #[allow(clippy::too_many_arguments)]
    fn to_arrow<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        num_threads: Option<usize>,
        limit: Option<usize>,
        with_row_address: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let opts = scan_options(columns, filter, batch_size, num_threads, limit, with_row_address);
        let (schema, batches) = wait_for_future(py, async move { collect(&t, &opts).await })?;
        crate::python::out::tables(py, batches, &schema)
    }

    /// Start a streaming read; returns a `pyarrow.RecordBatchReader`.
    #[pyo3(signature = (columns=None, filter=None, batch_size=None, num_threads=None, limit=None, with_row_address=false))]
    #[allow(clippy::too_many_arguments)]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        num_threads: Option<usize>,
        limit: Option<usize>,
        with_row_address: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let opts = scan_options(columns, filter, batch_size, num_threads, limit, with_row_address);
        let reader = wait_for_future(py, async move { OrderedReader::start(&t, &opts).await })?;
        PyRecordBatchReader::new(Box::new(reader)).into_pyarrow(py)
    }

    /// Arrow PyCapsule stream of the whole table (all columns, file order).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let opts = ScanOptions::default();
        let reader = wait_for_future(py, async move { OrderedReader::start(&t, &opts).await })?;
        let r = Bound::new(py, PyRecordBatchReader::new(Box::new(reader)))?;
        r.call_method1("__arrow_c_stream__", (requested_schema,))
    }

    /// The live rows of `parts` ((path, start, end) row ranges of data files), in part order,
    /// with `_file` and `_row` (one read task of `lakevec.ray.read_table`).
    #[pyo3(signature = (parts, columns=None, filter=None, batch_size=None, num_threads=None))]
    fn read_parts<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<(String, u64, u64)>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let parts: Vec<Part> = parts.into_iter().map(|(path, a, b)| Part { path, rows: a..b }).collect();
        let (schema, batches) = wait_for_future(py, async move {
            let threads = crate::runtime::resolve_threads(num_threads)?;
            read_parts(&t, &parts, columns.as_deref(), filter.as_deref(), batch_size, threads * 2).await
        })?;
        crate::python::out::tables(py, batches, &schema)
    }

    /// Rows at (`files[i]`, `rows[i]`) as a `pyarrow.Table`, in input order.
    #[pyo3(signature = (files, rows, columns=None, num_threads=None))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        files: Vec<String>,
        rows: Vec<i64>,
        columns: Option<Vec<String>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let batch = wait_for_future(py, async move {
            let threads = crate::runtime::resolve_threads(num_threads)?;
            crate::read::rowaddr::take(&t, &files, &rows, columns.as_deref(), threads * 2).await
        })?;
        crate::python::out::table(py, batch)
    }

    /// The same table (same storage options, credentials included) at another version.
    fn at_version(&self, py: Python<'_>, version: i64) -> PyResult<Self> {
        let t = self.inner.clone();
        let pin = TablePin { version: Some(version), timestamp: None };
        let opened =
            wait_for_future(py, async move { LakeTable::open(&t.uri, t.options.clone(), Some(t.format), pin).await })?;
        Ok(PyLakeTable { inner: Arc::new(opened) })
    }

    /// File-level changes from `other` (an older version of this table) to this one.
    fn changes_since<'py>(&self, py: Python<'py>, other: &PyLakeTable) -> PyResult<Bound<'py, PyAny>> {
        let (new, old) = (self.inner.clone(), other.inner.clone());
        let batch = wait_for_future(py, async move { crate::lake::changes::changes(&old, &new).await })?;
        crate::python::out::table(py, batch)
    }

    /// Shows the row count, counting it if need be (`?` when that fails: see `num_rows`).
    fn __repr__(&self, py: Python<'_>) -> String {
        let rows = self.num_rows(py).map_or_else(|_| "?".to_string(), |n| n.to_string());
        format!(
            "Table(uri='{}', format='{}', files={}, rows={rows}{})",
            crate::lake::storage::redact(&self.inner.uri),
            self.inner.format.as_str(),
            self.inner.num_files(),
            self.inner.version().map(|v| format!(", version={v}")).unwrap_or_default()
        )
    }
}
