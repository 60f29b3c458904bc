//! pyo3 bindings, one folder per core domain: thin wrappers that convert arguments, call the
//! core through [`call::wait_for_future`] / [`call::cpu`] and convert results. No logic lives
//! here.

pub mod call;
pub mod dedup;
pub mod errors;
pub mod index;
pub mod lake;
pub mod logging;
pub mod out;
pub mod runtime;
pub mod tag;
