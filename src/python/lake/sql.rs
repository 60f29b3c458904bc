//! `lakevec._lakevec.sql`: DataFusion SQL over lake tables and in-memory Arrow data.

use std::sync::Arc;

use datafusion::datasource::{MemTable, TableProvider};
use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use crate::error::LakeError;
use crate::lake::table::LakeTable;
use crate::python::call::wait_for_future;
use crate::python::lake::table::PyLakeTable;

/// Run `query` over `tables` (name -> native Table) and `arrow_tables` (name -> any Arrow
/// stream); returns a `pyarrow.Table`.
#[pyfunction]
#[pyo3(signature = (query, tables, arrow_tables, num_threads=None))]
pub fn sql<'py>(
    py: Python<'py>,
    query: String,
    tables: Vec<(String, PyRef<'py, PyLakeTable>)>,
    arrow_tables: Vec<(String, PyTable)>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let lake: Vec<(String, LakeTable)> = tables.into_iter().map(|(n, t)| (n, t.inner.as_ref().clone())).collect();
    let mem: Vec<(String, Arc<dyn TableProvider>)> = arrow_tables
        .into_iter()
        .map(|(n, t)| {
            let (batches, schema) = t.into_inner();
            let m = MemTable::try_new(schema, vec![batches])
                .map_err(|e| PyErr::from(LakeError::from(e).context(format!("table '{n}'"))))?;
            Ok((n, Arc::new(m) as Arc<dyn TableProvider>))
        })
        .collect::<PyResult<_>>()?;
    let (schema, batches) =
        wait_for_future(py, async move { crate::read::scan::sql(&query, &lake, mem, num_threads).await })?;
    crate::python::out::tables(py, batches, &schema)
}
