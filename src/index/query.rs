//! What a search asks: its parameters, their bounds, and the query vectors.

use arrow::array::ArrayRef;

use crate::error::{LakeError, Result};
use crate::vector::column::{prepared_flat, prepared_rows};
use crate::vector::distance::Metric;

/// Largest `k` and `ef` accepted (a result of k rows per query is materialised).
pub const MAX_K: usize = 100_000;

/// `k` of an exact range search (`max_distance`) that returns every hit within it.
pub const UNBOUNDED_K: usize = usize::MAX;

pub(crate) fn check_k_ef(k: usize, ef: Option<usize>) -> Result<()> {
    if k == 0 || (k > MAX_K && k != UNBOUNDED_K) {
        return Err(LakeError::InvalidArgument(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    if let Some(ef) = ef {
        if ef == 0 || ef > MAX_K {
            return Err(LakeError::InvalidArgument(format!("ef must be in 1..={MAX_K}, got {ef}")));
        }
    }
    Ok(())
}

/// Half the machine's physical memory, in bytes: the most a single result may take. Read
/// once per process (`_SC_PHYS_PAGES` is a `sysinfo` system call; a single query would pay
/// it on every search); 0 means not read yet.
fn result_budget() -> u128 {
    static BUDGET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let kept = BUDGET.load(std::sync::atomic::Ordering::Relaxed);
    if kept != 0 {
        return kept as u128;
    }
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let b = (pages.max(0) as u128 * page.max(0) as u128 / 2).clamp(1 << 30, u64::MAX as u128);
    BUDGET.store(b as u64, std::sync::atomic::Ordering::Relaxed);
    b
}

/// Refuse, before anything is searched or allocated, a result of `queries` x min(`k`,
/// `candidates`) rows that could not be held: over half the machine's memory (about 48
/// bytes per row plus `names` bytes of file names), or over the 2 GiB of text an Arrow
/// string column holds. `what` names the call in the error (`InvalidArgument`).
pub(crate) fn check_result_size(queries: usize, k: usize, candidates: usize, names: usize, what: &str) -> Result<()> {
    let rows = queries as u128 * k.min(candidates) as u128;
    let bytes = rows * (48 + names as u128);
    let text = rows * names as u128;
    if bytes > result_budget() || text > i32::MAX as u128 {
        return Err(LakeError::InvalidArgument(format!(
            "{what} would return {rows} rows ({queries} x k={k} over {candidates} rows, about {} MiB), more than \
             one result can hold (half the machine's memory, 2 GiB of file names); ask for fewer queries per \
             call or a smaller k",
            bytes >> 20
        )));
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
    /// Only hits within this distance; with `exact` and `k == usize::MAX`, all of them.
    pub max_distance: Option<f32>,
    /// Candidates a quantized kind re-ranks with float vectors (`None`: its default; 0: none,
    /// the code distances are returned).
    pub rerank: Option<usize>,
}

/// Parse query vectors (a list array) into prepared rows of `dim`: `(rows, count)`.
pub fn prepare_queries(array: &ArrayRef, dim: usize, metric: Metric) -> Result<(Vec<f32>, usize)> {
    let (data, _) = prepared_rows(array, "queries", Some(dim), metric, &|i| format!("query {i}"))?;
    let n = data.len() / dim;
    Ok((data, n))
}

/// [`prepare_queries`] of a flat row-major matrix of `width` values per row (a numpy array).
pub fn prepare_flat_queries(values: &[f32], width: usize, dim: usize, metric: Metric) -> Result<(Vec<f32>, usize)> {
    let (data, _) = prepared_flat(values, width, "queries", Some(dim), metric, &|i| format!("query {i}"))?;
    let n = data.len() / dim;
    Ok((data, n))
}
