//! Arrow results handed to Python as pyarrow objects.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, StructArray};
use arrow::datatypes::SchemaRef;
use arrow::ffi::FFI_ArrowArray;
use arrow::record_batch::RecordBatch;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

/// pyarrow schemas of recent results (few distinct ones exist: one per index and column list),
/// so a result imports its array only (see [`table`]).
static SCHEMAS: Mutex<Vec<(SchemaRef, Py<PyAny>)>> = Mutex::new(Vec::new());
const SCHEMAS_KEPT: usize = 16;

/// The `pyarrow` module (looked up per call: a once-cell initialised by one thread while
/// another forks would stay "initialising" in the child for good), from `sys.modules` when it
/// is there (a dict lookup, where `import` costs ~1 us per call).
fn pyarrow<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    let key = intern!(py, "pyarrow");
    // SAFETY: called with the GIL held (`py`); `PyImport_GetModule` takes a borrowed name and
    // returns a new reference or NULL (absent, or an error it raised), which
    // `from_owned_ptr_or_opt` takes over.
    let found = unsafe { Bound::from_owned_ptr_or_opt(py, pyo3::ffi::PyImport_GetModule(key.as_ptr())) };
    match found {
        Some(m) => Ok(m),
        None => {
            let _ = PyErr::take(py);
            Ok(py.import(key)?.into_any())
        }
    }
}

/// `pyarrow.RecordBatch._import_from_c` and `pyarrow.Table.from_batches`, looked up on first
/// use (filled and read with the GIL held, never across a Python call).
static PA_CALLS: Mutex<Option<(Py<PyAny>, Py<PyAny>)>> = Mutex::new(None);

/// `(RecordBatch._import_from_c, Table.from_batches)` of pyarrow (see [`PA_CALLS`]).
fn pyarrow_calls(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    let lock = || PA_CALLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((import, from_batches)) = lock().as_ref() {
        return Ok((import.bind(py).clone(), from_batches.bind(py).clone()));
    }
    let pa = pyarrow(py)?;
    let import = pa.getattr(intern!(py, "RecordBatch"))?.getattr(intern!(py, "_import_from_c"))?;
    let from_batches = pa.getattr(intern!(py, "Table"))?.getattr(intern!(py, "from_batches"))?;
    *lock() = Some((import.clone().unbind(), from_batches.clone().unbind()));
    Ok((import, from_batches))
}

/// The `pyarrow.Schema` of `schema`, from [`SCHEMAS`] or imported (Arrow C schema capsule).
fn pyarrow_schema<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyAny>> {
    let lock = || SCHEMAS.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut kept = lock();
        if let Some(i) = kept.iter().position(|(s, _)| Arc::ptr_eq(s, schema) || s == schema) {
            let obj = kept[i].1.bind(py).clone();
            kept[..=i].rotate_right(1);
            return Ok(obj);
        }
    }
    // (Python runs without the lock held: code that releases the GIL could otherwise meet
    // another thread waiting for the lock while holding the GIL.)
    let capsule = pyo3_arrow::ffi::to_schema_pycapsule(py, schema.as_ref())?;
    let obj =
        pyarrow(py)?.getattr(intern!(py, "Schema"))?.call_method1(intern!(py, "_import_from_c_capsule"), (capsule,))?;
    let mut kept = lock();
    kept.insert(0, (schema.clone(), obj.clone().unbind()));
    let keep = kept.len().min(SCHEMAS_KEPT);
    let evicted: Vec<_> = kept.drain(keep..).collect();
    drop(kept);
    drop(evicted); // their references are released after the lock
    Ok(obj)
}

/// A record batch as a `pyarrow.Table`: its columns exported as one Arrow C struct array,
/// imported by `pyarrow.RecordBatch._import_from_c` against a cached `pyarrow.Schema`, and
/// wrapped by `pyarrow.Table.from_batches`. Measured on a 10-row search result: ~10 us per
/// call, against ~20 us to import the batch as a C stream, schema included (which a
/// single-vector search paid on every call).
pub fn table(py: Python<'_>, batch: RecordBatch) -> PyResult<Bound<'_, PyAny>> {
    let schema = batch.schema();
    tables(py, vec![batch], &schema)
}

/// Batches of `schema` as one `pyarrow.Table`, each imported as in [`table`]. Not
/// `pyarrow.table(stream)`: that first asks whether its argument is a pandas DataFrame,
/// importing pandas (~150 ms) on a process's first read.
pub fn tables<'py>(py: Python<'py>, batches: Vec<RecordBatch>, schema: &SchemaRef) -> PyResult<Bound<'py, PyAny>> {
    let pa_schema = pyarrow_schema(py, schema)?;
    let (import, from_batches) = pyarrow_calls(py)?;
    let mut out = Vec::with_capacity(batches.len());
    // The import reads the buffers as `schema` says: a batch of other types is refused.
    let same_types = |s: &arrow::datatypes::Schema| {
        s.fields().len() == schema.fields().len()
            && s.fields().iter().zip(schema.fields()).all(|(a, b)| a.data_type() == b.data_type())
    };
    for batch in batches {
        if !same_types(batch.schema_ref()) {
            let msg = format!("result batch schema {:?} differs from {:?}", batch.schema(), schema);
            return Err(crate::error::LakeError::Internal(msg).into());
        }
        let data = StructArray::from(batch).into_data();
        let ptr = Box::into_raw(Box::new(FFI_ArrowArray::new(&data)));
        let rb = import.call1((ptr as usize, &pa_schema));
        // SAFETY: `ptr` came from `Box::into_raw` above and is taken back once. pyarrow's import
        // moves the array out of it and marks it released (its `release` callback null), so the
        // drop below frees only the box; if the import failed before moving it, the drop
        // releases the exported array (FFI_ArrowArray's Drop calls `release` only when it is set).
        drop(unsafe { Box::from_raw(ptr) });
        out.push(rb?);
    }
    from_batches.call1((out, pa_schema))
}

/// An array as a `pyarrow.Array` (through the Arrow PyCapsule interface).
pub fn array(py: Python<'_>, a: ArrayRef) -> PyResult<Bound<'_, PyAny>> {
    let obj = PyArray::from_array_ref(a).into_pyobject(py)?;
    pyarrow(py)?.getattr(intern!(py, "array"))?.call1((obj,))
}
