//! Arrow results handed to Python as pyarrow objects.

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use pyo3::prelude::*;
use pyo3_arrow::{PyArray, PyTable};

/// A record batch as a `pyarrow.Table`.
pub fn table(py: Python<'_>, batch: RecordBatch) -> PyResult<Bound<'_, PyAny>> {
    let schema = batch.schema();
    PyTable::try_new(vec![batch], schema)?.into_pyarrow(py)
}

/// An array as a `pyarrow.Array` (through the Arrow PyCapsule interface).
pub fn array(py: Python<'_>, a: ArrayRef) -> PyResult<Bound<'_, PyAny>> {
    let obj = PyArray::from_array_ref(a).into_pyobject(py)?;
    py.import("pyarrow")?.getattr("array")?.call1((obj,))
}
