//! Mapping [`LakeError`] to the exception classes of `lakevec.exceptions`.
//!
//! The classes are defined in Python (`python/lakevec/exceptions.py`), so they are importable
//! and picklable under their public path and can inherit from both `LakevecError` and the
//! matching builtin (`FileNotFoundError`, `PermissionError`, `ValueError`, ...). Every message
//! passes through [`crate::lake::storage::redact`] on its way out.

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::LakeError;
use crate::lake::storage::redact;

/// The `lakevec.exceptions` class name for an error variant.
pub fn class_name(e: &LakeError) -> &'static str {
    use LakeError::*;
    match e {
        NotFound(_) => "TableNotFoundError",
        PermissionDenied(_) => "StoragePermissionError",
        Storage(_) => "StorageError",
        Schema(_) => "SchemaError",
        Filter(_) => "FilterError",
        Sql(_) => "SqlError",
        CorruptFile(_) => "CorruptFileError",
        CorruptIndex(_) => "CorruptIndexError",
        Unsupported(_) => "UnsupportedFeatureError",
        Vector(_) => "VectorError",
        InvalidArgument(_) => "InvalidArgumentError",
        StaleIndex(_) => "StaleIndexError",
        CommitConflict(_) => "CommitConflictError",
        CommitUnknown(_) => "CommitStateUnknownError",
        Cancelled => "KeyboardInterrupt",
        Internal(_) => "InternalError",
    }
}

/// Build the Python exception for `e`.
pub fn to_pyerr(py: Python<'_>, e: LakeError) -> PyErr {
    if matches!(e, LakeError::Cancelled) {
        return PyKeyboardInterrupt::new_err("lakevec operation cancelled");
    }
    let msg = redact(&e.to_string());
    let cls = py
        .import("lakevec.exceptions")
        .and_then(|m| m.getattr(class_name(&e)))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match cls {
        Ok(cls) => PyErr::from_type(cls, (msg,)),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

impl From<LakeError> for PyErr {
    fn from(e: LakeError) -> Self {
        Python::attach(|py| to_pyerr(py, e))
    }
}
