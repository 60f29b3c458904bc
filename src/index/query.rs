//! What a search asks: its parameters, their bounds, and the query vectors.

use arrow::array::ArrayRef;

use crate::error::{LakeError, Result};
use crate::vector::column::prepared_rows;
use crate::vector::distance::Metric;

/// Largest `k` and `ef` accepted (a result of k rows per query is materialised).
pub const MAX_K: usize = 100_000;

pub(crate) fn check_k_ef(k: usize, ef: Option<usize>) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(LakeError::InvalidArgument(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    if let Some(ef) = ef {
        if ef == 0 || ef > MAX_K {
            return Err(LakeError::InvalidArgument(format!("ef must be in 1..={MAX_K}, got {ef}")));
        }
    }
    Ok(())
}

/// What a search does with table files the index does not cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Search them exactly and merge (correct for any version).
    Exact,
    /// Search only what the index holds (deleted rows are still never returned).
    Ignore,
    /// Raise `StaleIndex`.
    Error,
}

impl Stale {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Stale::Exact),
            "ignore" => Ok(Stale::Ignore),
            "error" => Ok(Stale::Error),
            o => Err(LakeError::InvalidArgument(format!("stale must be 'exact', 'ignore' or 'error', not '{o}'"))),
        }
    }
}

/// A search's parameters (see `lakevec.VectorIndex.search`).
#[derive(Clone, Debug)]
pub struct SearchParams {
    pub k: usize,
    pub ef: Option<usize>,
    pub filter: Option<String>,
    pub exact: bool,
    pub version: Option<i64>,
    pub stale: Stale,
    pub columns: Option<Vec<String>>,
    pub num_threads: Option<usize>,
}

/// Parse query vectors (a list array) into prepared rows of `dim`: `(rows, count)`.
pub fn prepare_queries(array: &ArrayRef, dim: usize, metric: Metric) -> Result<(Vec<f32>, usize)> {
    let (data, _) = prepared_rows(array, "queries", Some(dim), metric, &|i| format!("query {i}"))?;
    let n = data.len() / dim;
    Ok((data, n))
}
