//! Runtime information for Python.

use pyo3::prelude::*;

/// The number of threads lakevec uses when `num_threads` is not given.
#[pyfunction]
pub fn default_num_threads() -> usize {
    crate::runtime::default_num_threads()
}
