//! lakevec: read lake tables into Arrow, index their vector columns in place, dedup and tag
//! them in parallel. The core modules are pure Rust; `python` holds the pyo3 bindings.

// Without the bindings nothing in the crate uses the core (it is not a Rust API).
#![cfg_attr(not(feature = "python"), allow(dead_code))]

// Layers: lake <- read <- index; vector knows no tables; dedup and tag use vector and text.
pub(crate) mod dedup;
pub(crate) mod error;
pub(crate) mod index;
pub(crate) mod lake;
pub(crate) mod read;
pub(crate) mod runtime;
pub(crate) mod tag;
pub(crate) mod text;
pub(crate) mod vector;

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "fuzz")]
pub mod fuzz_api;

#[cfg(feature = "python")]
use pyo3::prelude::*;

/// mimalloc for the extension module (see Cargo.toml): Arrow buffers handed to Python are
/// freed through their release callbacks, i.e. by this same allocator.
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The native module `lakevec._lakevec`: registration only.
#[cfg(feature = "python")]
#[pymodule]
fn _lakevec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("_LOG_LEVEL", python::logging::install(m.py())?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BUILD_PROFILE", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    m.add_class::<python::lake::table::PyLakeTable>()?;
    m.add_function(wrap_pyfunction!(python::lake::sql::sql, m)?)?;
    m.add_function(wrap_pyfunction!(python::runtime::default_num_threads, m)?)?;
    m.add_class::<python::index::PyVectorIndex>()?;
    m.add_class::<python::index::spec::PyBuildSpec>()?;
    m.add_function(wrap_pyfunction!(python::dedup::exact::exact_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::exact::clusters_from_pairs, m)?)?;
    m.add_class::<python::dedup::minhash::PyMinHashParams>()?;
    m.add_class::<python::dedup::index::PyDedupIndex>()?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash::minhash_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash::minhash_lsh_params, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash::minhash_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::dist::minhash_band_rows, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::dist::minhash_bucket_edges, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::dist::minhash_copy_representatives, m)?)?;
    m.add_class::<python::dedup::dist::PyComponents>()?;
    m.add_function(wrap_pyfunction!(python::tag::rule_tags, m)?)?;
    m.add_function(wrap_pyfunction!(python::tag::knn_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(python::tag::within_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(python::tag::hashing_embed, m)?)?;
    Ok(())
}
