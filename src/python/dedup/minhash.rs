//! MinHash-LSH dedup in one process, for `lakevec.dedup`: the named signature parameters
//! ([`PyMinHashParams`], `lakevec._lakevec.MinHashParams`), signatures, LSH parameters and
//! clusters.

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3_arrow::PyArray;

use crate::dedup::clusters::{cluster_batch, pairs_batch};
use crate::dedup::lsh::{minhash_roots, signatures};
use crate::dedup::minhash::{lsh_params, MinHasher, Shingle, Sketch};
use crate::error::{LakeError, Result};
use crate::python::call::{cpu, cpu_progress};
use crate::python::out::{array as array_to_pyarrow, table};
use crate::text::Normalize;

/// How texts become MinHash signatures: `num_perm` slots (1..=4096) over the hashes of
/// `shingle` ("word" or "char") `ngram`-grams (1..=64) after normalisation (`nfkc`,
/// `lowercase`, `whitespace`), sketched as `sketch` says ("classic": one permutation per
/// slot; "oph": one permutation, densified), seeded by `seed`. Frozen; validated on
/// construction (`InvalidArgumentError`); picklable.
#[pyclass(frozen, eq, skip_from_py_object, module = "lakevec._lakevec", name = "MinHashParams")]
#[derive(Clone, Debug, PartialEq)]
pub struct PyMinHashParams {
    #[pyo3(get)]
    num_perm: usize,
    #[pyo3(get)]
    ngram: usize,
    #[pyo3(get)]
    shingle: String,
    #[pyo3(get)]
    seed: u64,
    #[pyo3(get)]
    nfkc: bool,
    #[pyo3(get)]
    lowercase: bool,
    #[pyo3(get)]
    whitespace: bool,
    #[pyo3(get)]
    sketch: String,
}

impl PyMinHashParams {
    /// The parameters of a dedup index (`method` "minhash" or "exact") using these
    /// signatures and this banding.
    pub(crate) fn dedup_params(
        &self,
        method: &str,
        threshold: f64,
        bands: usize,
        rows: usize,
    ) -> crate::dedup::index::format::DedupParams {
        crate::dedup::index::format::DedupParams {
            method: method.to_string(),
            num_perm: self.num_perm,
            ngram: self.ngram,
            shingle: self.shingle.clone(),
            sketch: self.sketch.clone(),
            seed: self.seed,
            nfkc: self.nfkc,
            lowercase: self.lowercase,
            whitespace: self.whitespace,
            threshold,
            bands,
            rows,
            ef: None,
        }
    }

    fn normalize(&self) -> Normalize {
        Normalize { nfkc: self.nfkc, lowercase: self.lowercase, whitespace: self.whitespace }
    }

    /// The signature hasher these parameters describe.
    fn hasher(&self) -> Result<MinHasher> {
        let shingle = Shingle::parse(&self.shingle)?;
        MinHasher::new(self.num_perm, self.ngram, shingle, self.normalize(), Sketch::parse(&self.sketch)?, self.seed)
    }

    /// The shingling alone (exact Jaccard verification compares shingle sets).
    fn shingler(&self) -> Result<MinHasher> {
        MinHasher::new(1, self.ngram, Shingle::parse(&self.shingle)?, self.normalize(), Sketch::Classic, 0)
    }
}

#[pymethods]
impl PyMinHashParams {
    #[new]
    #[pyo3(signature = (num_perm=128, ngram=5, shingle="word".to_string(), seed=1, nfkc=true, lowercase=true, whitespace=true, sketch="classic".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        num_perm: usize,
        ngram: usize,
        shingle: String,
        seed: u64,
        nfkc: bool,
        lowercase: bool,
        whitespace: bool,
        sketch: String,
    ) -> PyResult<Self> {
        let p = PyMinHashParams { num_perm, ngram, shingle, seed, nfkc, lowercase, whitespace, sketch };
        p.hasher()?;
        Ok(p)
    }

    fn __repr__(&self) -> String {
        let b = |x: bool| if x { "True" } else { "False" };
        format!(
            "MinHashParams(num_perm={}, ngram={}, shingle='{}', seed={}, nfkc={}, lowercase={}, whitespace={}, \
             sketch='{}')",
            self.num_perm,
            self.ngram,
            self.shingle,
            self.seed,
            b(self.nfkc),
            b(self.lowercase),
            b(self.whitespace),
            self.sketch
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let p = slf.get();
        let args =
            (p.num_perm, p.ngram, p.shingle.clone(), p.seed, p.nfkc, p.lowercase, p.whitespace, p.sketch.clone());
        Ok((slf.get_type().into_any(), args.into_pyobject(slf.py())?))
    }
}

/// MinHash signatures of a text array (FixedSizeList<uint32, num_perm>; null = no shingles).
#[pyfunction]
#[pyo3(signature = (array, column, params, num_threads=None, progress=None))]
pub fn minhash_signatures<'py>(
    py: Python<'py>,
    array: PyArray,
    column: String,
    params: PyRef<'py, PyMinHashParams>,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let h = params.hasher()?;
    let a = array.array().clone();
    let total = a.len();
    let out = cpu_progress(py, num_threads, progress, "sign", total, move |c| signatures(&a, &column, &h, &c))?;
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

/// Clusters (and verified pairs) from a signature array. With `exact_texts` (the texts the
/// signatures were computed from) candidates are verified by the exact Jaccard similarity of
/// their shingle sets, shingled as `params` says (then required).
#[pyfunction]
#[pyo3(signature = (signatures, threshold, bands, rows, score=None, exact_texts=None, params=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn minhash_clusters<'py>(
    py: Python<'py>,
    signatures: PyArray,
    threshold: f64,
    bands: usize,
    rows: usize,
    score: Option<Vec<f64>>,
    exact_texts: Option<PyArray>,
    params: Option<PyRef<'py, PyMinHashParams>>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        let msg = format!("threshold must be in (0, 1], got {threshold}");
        return Err(LakeError::InvalidArgument(msg).into());
    }
    let s = signatures.array().clone();
    let exact = match (exact_texts, params) {
        (Some(texts), Some(p)) => Some((texts.array().clone(), p.shingler()?)),
        (Some(_), None) => {
            let msg = "exact verification (exact_texts) needs the MinHashParams the signatures used";
            return Err(LakeError::InvalidArgument(msg.into()).into());
        }
        (None, _) => None,
    };
    let (clusters, pairs) = cpu(py, num_threads, move |_| {
        let ex = exact.as_ref().map(|(t, h)| (t, h));
        let (roots, pairs) = minhash_roots(&s, threshold, bands, rows, ex)?;
        Ok((cluster_batch(&roots, score.as_deref())?, pairs_batch(&pairs, ex.is_some())?))
    })?;
    Ok((table(py, clusters)?, table(py, pairs)?))
}
