//! Dedup and hashing-vectorizer kernels for `lakevec.dedup` and `lakevec.embed`.

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::dedup;
use crate::embed::{self, Analyzer, HashingParams, Norm};
use crate::error::LakeError;
use crate::minhash::{lsh_params, MinHasher, Shingle};
use crate::python::call::cpu;
use crate::python::out::{array as array_to_pyarrow, table};
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
    let cols: Vec<(String, arrow::array::ArrayRef)> = columns.into_iter().map(|(n, a)| (n, a.array().clone())).collect();
    let norm = Normalize { nfkc, lowercase, whitespace };
    let batch = cpu(py, num_threads, move |_| {
        let roots = dedup::exact_roots(&cols, norm)?;
        dedup::cluster_batch(&roots, score.as_deref())
    })?;
    table(py, batch)
}

/// MinHash signatures of a text array (FixedSizeList<uint32, num_perm>; null = no shingles).
#[pyfunction]
#[pyo3(signature = (array, column, num_perm, ngram, shingle, seed, nfkc, lowercase, whitespace, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn minhash_signatures<'py>(
    py: Python<'py>,
    array: PyArray,
    column: String,
    num_perm: usize,
    ngram: usize,
    shingle: &str,
    seed: u64,
    nfkc: bool,
    lowercase: bool,
    whitespace: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let h = MinHasher::new(num_perm, ngram, Shingle::parse(shingle)?, Normalize { nfkc, lowercase, whitespace }, seed)?;
    let a = array.array().clone();
    let out = cpu(py, num_threads, move |c| dedup::signatures(&a, &column, &h, &c))?;
    array_to_pyarrow(py, out)
}

/// (bands, rows) for `threshold` and `num_perm` (datasketch's optimum unless given).
#[pyfunction]
#[pyo3(signature = (threshold, num_perm, bands=None, rows=None, weights=(0.5, 0.5)))]
pub fn minhash_lsh_params(
    threshold: f64,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    weights: (f64, f64),
) -> PyResult<(usize, usize)> {
    Ok(lsh_params(threshold, num_perm, bands, rows, weights)?)
}

/// Clusters (and verified pairs) from a signature array.
/// `exact`: (texts, ngram, shingle, nfkc, lowercase, whitespace) to verify candidates by
/// exact Jaccard of their shingle sets.
#[pyfunction]
#[pyo3(signature = (signatures, threshold, bands, rows, score=None, exact=None, num_threads=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn minhash_clusters<'py>(
    py: Python<'py>,
    signatures: PyArray,
    threshold: f64,
    bands: usize,
    rows: usize,
    score: Option<Vec<f64>>,
    exact: Option<(PyArray, usize, String, bool, bool, bool)>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(LakeError::InvalidArgument(format!("threshold must be in (0, 1], got {threshold}")).into());
    }
    let s = signatures.array().clone();
    let exact = match exact {
        Some((texts, ngram, shingle, nfkc, lowercase, whitespace)) => {
            let norm = Normalize { nfkc, lowercase, whitespace };
            Some((texts.array().clone(), MinHasher::new(1, ngram, Shingle::parse(&shingle)?, norm, 0)?))
        }
        None => None,
    };
    let (clusters, pairs) = cpu(py, num_threads, move |_| {
        let ex = exact.as_ref().map(|(t, h)| (t, h));
        let (roots, pairs) = dedup::minhash_roots(&s, threshold, bands, rows, ex)?;
        Ok((dedup::cluster_batch(&roots, score.as_deref())?, dedup::pairs_batch(&pairs, ex.is_some())?))
    })?;
    Ok((table(py, clusters)?, table(py, pairs)?))
}

/// Feature-hashing vectors of a text array (FixedSizeList<float32, dim>).
#[pyfunction]
#[pyo3(signature = (array, column, dim, ngram_lo, ngram_hi, analyzer, norm, lowercase=true, alternate_sign=true, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn hashing_embed<'py>(
    py: Python<'py>,
    array: PyArray,
    column: String,
    dim: usize,
    ngram_lo: usize,
    ngram_hi: usize,
    analyzer: &str,
    norm: Option<String>,
    lowercase: bool,
    alternate_sign: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let analyzer = match analyzer {
        "word" => Analyzer::Word,
        "char" => Analyzer::Char,
        o => return Err(LakeError::InvalidArgument(format!("analyzer must be 'word' or 'char', not '{o}'")).into()),
    };
    let norm = match norm.as_deref() {
        Some("l2") => Norm::L2,
        Some("l1") => Norm::L1,
        None => Norm::None,
        Some(o) => return Err(LakeError::InvalidArgument(format!("norm must be 'l2', 'l1' or None, not '{o}'")).into()),
    };
    let p = HashingParams { dim, ngram: (ngram_lo, ngram_hi), analyzer, norm, lowercase, alternate_sign };
    p.check()?;
    let a = array.array().clone();
    let out = cpu(py, num_threads, move |_| {
        let texts = dedup::strings(&a, &column)?;
        embed::hashing(&texts, &p)
    })?;
    array_to_pyarrow(py, out)
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
    let mut uf = crate::minhash::UnionFind::new(n);
    for (&x, &y) in a.iter().zip(&b) {
        uf.union(x, y);
    }
    table(py, dedup::cluster_batch(&uf.roots(), score.as_deref())?)
}
