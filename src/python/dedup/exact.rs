//! Exact dedup and clusters from pairs, for `lakevec.dedup`.

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::dedup::clusters::cluster_batch;
use crate::dedup::exact::exact_roots;
use crate::dedup::minhash::UnionFind;
use crate::error::LakeError;
use crate::python::call::cpu;
use crate::python::out::table;
use crate::text::Normalize;

/// Exact-dedup clusters of the rows of `columns` (name, array) pairs.
#[pyfunction]
#[pyo3(signature = (columns, nfkc, lowercase, whitespace, score=None, num_threads=None))]
pub fn exact_clusters<'py>(
    py: Python<'py>,
    columns: Vec<(String, PyArray)>,
    nfkc: bool,
    lowercase: bool,
    whitespace: bool,
    score: Option<Vec<f64>>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let cols: Vec<(String, arrow::array::ArrayRef)> =
        columns.into_iter().map(|(n, a)| (n, a.array().clone())).collect();
    let norm = Normalize { nfkc, lowercase, whitespace };
    let batch = cpu(py, num_threads, move |_| {
        let roots = exact_roots(&cols, norm)?;
        cluster_batch(&roots, score.as_deref())
    })?;
    table(py, batch)
}

/// Clusters of `n` rows from pairs (`a[i]`, `b[i]`) (connected components).
#[pyfunction]
#[pyo3(signature = (n, a, b, score=None))]
pub fn clusters_from_pairs<'py>(
    py: Python<'py>,
    n: usize,
    a: Vec<u32>,
    b: Vec<u32>,
    score: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyAny>> {
    if a.len() != b.len() || a.iter().chain(&b).any(|&x| x as usize >= n) {
        return Err(LakeError::InvalidArgument(format!("pairs must be equal-length lists of rows < {n}")).into());
    }
    if score.as_ref().is_some_and(|s| s.len() != n) {
        return Err(LakeError::InvalidArgument(format!("score must have {n} values")).into());
    }
    let mut uf = UnionFind::new(n);
    for (&x, &y) in a.iter().zip(&b) {
        uf.union(x, y);
    }
    table(py, cluster_batch(&uf.roots(), score.as_deref())?)
}
