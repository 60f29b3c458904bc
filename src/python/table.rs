//! `lakevec._lakevec.Table`: the native half of `lakevec.Table`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use pyo3_arrow::{PyRecordBatchReader, PySchema, PyTable};

use crate::python::call::{guarded, wait_for_future};
use crate::scan::{collect, OrderedReader, ScanOptions};
use crate::delta::DeltaPin;
use crate::storage::StorageOptions;
use crate::table::{Format, LakeTable};

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
) -> ScanOptions {
    ScanOptions { columns, filter, batch_size, num_threads, limit }
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
        version: Option<u64>,
        timestamp: Option<String>,
    ) -> PyResult<Self> {
        let options = StorageOptions::new(storage_options.unwrap_or_default());
        let format = format.map(|f| Format::parse(&f)).transpose()?;
        let pin = DeltaPin { version, timestamp };
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

    #[getter]
    fn num_rows(&self) -> u64 {
        self.inner.num_rows()
    }

    #[getter]
    fn version(&self) -> Option<u64> {
        self.inner.version()
    }

    /// Commit history as a `pyarrow.Table` (Delta).
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let batch = wait_for_future(py, async move { t.history().await })?;
        let schema = batch.schema();
        PyTable::try_new(vec![batch], schema)?.into_pyarrow(py)
    }

    /// Storage options without credentials (what a pickle may carry).
    fn public_storage_options(&self) -> BTreeMap<String, String> {
        self.inner.options.public()
    }

    /// The Arrow schema as a `pyarrow.Schema`.
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PySchema::new(self.inner.schema()).into_pyarrow(py)
    }

    /// The data files as a `pyarrow.Table`.
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let batch = guarded(|| self.inner.files())?;
        let schema = batch.schema();
        PyTable::try_new(vec![batch], schema)?.into_pyarrow(py)
    }

    /// Read into a `pyarrow.Table` (GIL released, interruptible).
    #[pyo3(signature = (columns=None, filter=None, batch_size=None, num_threads=None, limit=None))]
    fn to_arrow<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        num_threads: Option<usize>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let opts = scan_options(columns, filter, batch_size, num_threads, limit);
        let (schema, batches) = wait_for_future(py, async move { collect(&t, &opts).await })?;
        PyTable::try_new(batches, schema)?.into_pyarrow(py)
    }

    /// Start a streaming read; returns a `pyarrow.RecordBatchReader`.
    #[pyo3(signature = (columns=None, filter=None, batch_size=None, num_threads=None, limit=None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        num_threads: Option<usize>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        let opts = scan_options(columns, filter, batch_size, num_threads, limit);
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

    fn __repr__(&self) -> String {
        format!(
            "Table(uri='{}', format='{}', files={}, rows={}{})",
            crate::storage::redact(&self.inner.uri),
            self.inner.format.as_str(),
            self.inner.num_files(),
            self.inner.num_rows(),
            self.inner.version().map(|v| format!(", version={v}")).unwrap_or_default()
        )
    }
}
