//! lakevec: read lake tables into Arrow, index their vector columns in place, dedup and tag
//! them in parallel. The core modules are pure Rust; `python` holds the pyo3 bindings.

pub mod ann;
pub mod changes;
pub mod container;
pub mod datafiles;
pub mod dedup;
pub mod dedup_dist;
pub mod delta;
pub mod distance;
pub mod embed;
pub mod error;
pub mod hnsw_build;
pub mod iceberg;
pub mod iceberg_io;
pub mod index;
pub mod index_dist;
pub mod index_info;
pub mod index_read;
pub mod index_search;
pub mod knn;
pub mod listing;
pub mod manifest;
pub mod minhash;
pub mod parquet_table;
pub mod rowaddr;
pub mod rules;
pub mod runtime;
pub mod scan;
pub mod segment;
pub mod session;
pub mod split;
pub mod storage;
pub mod table;
pub mod text;
pub mod vectors;

#[cfg(feature = "python")]
mod python;

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
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BUILD_PROFILE", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    m.add_class::<python::table::PyLakeTable>()?;
    m.add_class::<python::index::PyVectorIndex>()?;
    m.add_function(wrap_pyfunction!(python::sql::sql, m)?)?;
    m.add_function(wrap_pyfunction!(python::runtime::default_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::exact_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash_lsh_params, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::minhash_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::hashing_embed, m)?)?;
    m.add_function(wrap_pyfunction!(python::tag::rule_tags, m)?)?;
    m.add_function(wrap_pyfunction!(python::tag::knn_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup::clusters_from_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup_dist::minhash_band_rows, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup_dist::minhash_bucket_edges, m)?)?;
    m.add_function(wrap_pyfunction!(python::dedup_dist::minhash_copy_representatives, m)?)?;
    m.add_class::<python::dedup_dist::PyComponents>()?;
    Ok(())
}
