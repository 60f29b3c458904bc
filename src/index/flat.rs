//! The flat index kind: no structure beyond the segment's vectors; every search is an exact
//! scan ([`crate::vector::exact`]), so recall is 1.0 and building costs nothing. Useful for
//! small segments and as the reference the approximate kinds are measured against.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::vector::bits::Bits;
use crate::vector::distance::Metric;
use crate::vector::exact::exact;
use crate::vector::hit::Hit;

/// "Build" over `vectors`: nothing to compute; counts every row as done.
pub fn build_flat(vectors: &[f32], dim: usize, done: &AtomicUsize) {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    done.fetch_add(n, Ordering::Relaxed);
}

/// The `k` nearest allowed rows to `q`, exactly.
pub fn search_flat(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    exact(vectors, dim, metric, q, k, allowed)
}
