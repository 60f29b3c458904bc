//! pyo3 bindings: thin wrappers that convert arguments, call the core through
//! [`call::wait_for_future`] and convert results. No logic lives here.

pub mod call;
pub mod dedup;
pub mod dedup_dist;
pub mod errors;
pub mod index;
pub mod out;
pub mod sql;
pub mod table;
pub mod tag;
pub mod runtime;
