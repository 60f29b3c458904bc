//! Tagging kernels for `lakevec.tag` and the hashing vectorizer of `lakevec.embed`.

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::error::LakeError;
use crate::python::call::{cpu, cpu_progress};
use crate::python::out::array as array_to_pyarrow;
use crate::tag::embed::{hashing, Analyzer, HashingParams, Norm};
use crate::tag::rules::Rules;
use crate::text::strings;
use crate::vector::column::prepared_rows;
use crate::vector::distance::Metric;

/// (`tags`, `matches`) arrays for a text array.
#[pyfunction]
#[pyo3(signature = (texts, column, regex, keywords, case_sensitive=false, num_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn rule_tags<'py>(
    py: Python<'py>,
    texts: PyArray,
    column: String,
    regex: Vec<(String, Vec<String>)>,
    keywords: Vec<(String, Vec<String>)>,
    case_sensitive: bool,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let rules = Rules::new(&regex, &keywords, case_sensitive)?;
    let a = texts.array().clone();
    let total = a.len();
    let (tags, matches) = cpu_progress(py, num_threads, progress, "tag", total, move |c| {
        let t = strings(&a, &column)?;
        rules.tag(&t, &c)
    })?;
    Ok((array_to_pyarrow(py, tags)?, array_to_pyarrow(py, matches)?))
}

/// Exact kNN of `queries` among `base` (list arrays of vectors): (indices, distances) as
/// flat int64 / float32 numpy-ready lists of `n * k`. `base=None`: queries against
/// themselves, a row not its own neighbour.
#[pyfunction]
#[pyo3(signature = (queries, base, k, metric, num_threads=None, query_name="vectors".to_string(), base_name="exemplars".to_string(), progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn knn_arrays(
    py: Python<'_>,
    queries: PyArray,
    base: Option<PyArray>,
    k: usize,
    metric: &str,
    num_threads: Option<usize>,
    query_name: String,
    base_name: String,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<i64>, Vec<f32>)> {
    let metric = Metric::parse(metric)?;
    if k == 0 || k > crate::index::query::MAX_K {
        return Err(crate::error::LakeError::InvalidArgument(format!(
            "k must be in 1..={}, got {k}",
            crate::index::query::MAX_K
        ))
        .into());
    }
    let q = queries.array().clone();
    let b = base.map(|b| b.array().clone());
    let total = q.len();
    cpu_progress(py, num_threads, progress, "search", total, move |c| {
        let (qv, bv, dim) = prepared_pair(&q, b.as_ref(), &query_name, &base_name, metric)?;
        if dim == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        crate::vector::knn::knn(&qv, &bv, dim, metric, k, b.is_none(), &c)
    })
}

/// Query and base rows prepared for `metric` with the base's dimension: `(queries, base,
/// dim)`; without a base, the queries are compared with each other.
fn prepared_pair(
    q: &arrow::array::ArrayRef,
    b: Option<&arrow::array::ArrayRef>,
    query_name: &str,
    base_name: &str,
    metric: Metric,
) -> crate::error::Result<(Vec<f32>, Vec<f32>, usize)> {
    let row = |i: usize| format!("row {i}");
    Ok(match b {
        Some(b) => {
            let (bv, dim) = prepared_rows(b, base_name, None, metric, &row)?;
            let (qv, _) = prepared_rows(q, query_name, Some(dim), metric, &row)?;
            (qv, bv, dim)
        }
        None => {
            let (bv, dim) = prepared_rows(q, query_name, None, metric, &row)?;
            (bv.clone(), bv, dim)
        }
    })
}

/// Range search between in-memory vector sets: every (query, row) pair within `radius`
/// (query index, row index, distance), ordered by query then distance; `base=None` compares
/// the queries with each other.
#[pyfunction]
#[pyo3(signature = (queries, base, radius, metric, num_threads=None, query_name=String::from("queries"), base_name=String::from("data"), progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn within_arrays(
    py: Python<'_>,
    queries: PyArray,
    base: Option<PyArray>,
    radius: f32,
    metric: &str,
    num_threads: Option<usize>,
    query_name: String,
    base_name: String,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    let metric = Metric::parse(metric)?;
    if radius.is_nan() {
        return Err(crate::error::LakeError::InvalidArgument("radius is NaN".into()).into());
    }
    let q = queries.array().clone();
    let b = base.map(|b| b.array().clone());
    // progress counts (query, row) comparisons
    let total = q.len().saturating_mul(b.as_ref().map_or(q.len(), |b| b.len()));
    cpu_progress(py, num_threads, progress, "compare", total, move |c| {
        let (qv, bv, dim) = prepared_pair(&q, b.as_ref(), &query_name, &base_name, metric)?;
        if dim == 0 {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        crate::vector::knn::within_all(&qv, &bv, dim, metric, radius, &c)
    })
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
        let texts = strings(&a, &column)?;
        hashing(&texts, &p)
    })?;
    array_to_pyarrow(py, out)
}
