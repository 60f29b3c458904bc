//! Tagging kernels for `lakevec.tag`.

use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::dedup::strings;
use crate::distance::Metric;
use crate::python::call::cpu;
use crate::python::out::array as array_to_pyarrow;
use crate::rules::Rules;
use crate::vectors::prepared_rows;

/// (`tags`, `matches`) arrays for a text array.
#[pyfunction]
#[pyo3(signature = (texts, column, regex, keywords, case_sensitive=false, num_threads=None))]
pub fn rule_tags<'py>(
    py: Python<'py>,
    texts: PyArray,
    column: String,
    regex: Vec<(String, Vec<String>)>,
    keywords: Vec<(String, Vec<String>)>,
    case_sensitive: bool,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let rules = Rules::new(&regex, &keywords, case_sensitive)?;
    let a = texts.array().clone();
    let (tags, matches) = cpu(py, num_threads, move |c| {
        let t = strings(&a, &column)?;
        rules.tag(&t, &c)
    })?;
    Ok((array_to_pyarrow(py, tags)?, array_to_pyarrow(py, matches)?))
}

/// Exact kNN of `queries` among `base` (list arrays of vectors): (indices, distances) as
/// flat int64 / float32 numpy-ready lists of `n * k`. `base=None`: queries against
/// themselves, a row not its own neighbour.
#[pyfunction]
#[pyo3(signature = (queries, base, k, metric, num_threads=None, query_name="vectors".to_string(), base_name="exemplars".to_string()))]
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
) -> PyResult<(Vec<i64>, Vec<f32>)> {
    let metric = Metric::parse(metric)?;
    if k == 0 || k > crate::index_search::MAX_K {
        return Err(crate::error::LakeError::InvalidArgument(format!("k must be in 1..={}, got {k}", crate::index_search::MAX_K)).into());
    }
    let q = queries.array().clone();
    let b = base.map(|b| b.array().clone());
    let row = |i: usize| format!("row {i}");
    cpu(py, num_threads, move |c| {
        let (bv, dim) = match &b {
            Some(b) => prepared_rows(b, &base_name, None, metric, &row)?,
            None => prepared_rows(&q, &query_name, None, metric, &row)?,
        };
        let (qv, _) = match &b {
            Some(_) => prepared_rows(&q, &query_name, Some(dim), metric, &row)?,
            None => (bv.clone(), dim),
        };
        if dim == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        crate::knn::knn(&qv, &bv, dim, metric, k, b.is_none(), &c)
    })
}
