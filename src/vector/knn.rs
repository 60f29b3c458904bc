//! Exact k-nearest neighbours between two in-memory vector sets (kNN tagging, semantic
//! dedup of in-memory data): a parallel brute-force scan with lakevec's distance kernels.

use rayon::prelude::*;

use crate::error::Result;
use crate::runtime::CancelToken;
use crate::vector::distance::Metric;
use crate::vector::exact::{exact, within};

/// For each of the `nq` queries (rows of `dim` in `queries`), its `k` nearest rows of
/// `base`, nearest first (ties to the smaller index): (indices, distances), `nq * k` each,
/// padded with (-1, inf) when `base` has fewer than `k` rows. Distances are the metric's
/// (squared L2 for `l2`, `1 - cos` for `cosine`, with both sides prepared by the caller).
/// `skip_self`: the query set is `base` itself; a row is not its own neighbour.
pub fn knn(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    metric: Metric,
    k: usize,
    skip_self: bool,
    cancel: &CancelToken,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let nq = queries.len() / dim.max(1);
    let mut idx = vec![-1i64; nq * k];
    let mut dist = vec![f32::INFINITY; nq * k];
    idx.par_chunks_mut(k).zip(dist.par_chunks_mut(k)).enumerate().try_for_each(|(qi, (ix, ds))| {
        cancel.check()?;
        cancel.advance(1);
        let q = &queries[qi * dim..(qi + 1) * dim];
        let want = if skip_self { k + 1 } else { k };
        let hits = exact(base, dim, metric, q, want, None);
        let mut j = 0;
        for h in hits {
            if skip_self && h.1 as usize == qi {
                continue;
            }
            if j == k {
                break;
            }
            ix[j] = h.1 as i64;
            ds[j] = h.0;
            j += 1;
        }
        Ok::<(), crate::error::LakeError>(())
    })?;
    Ok((idx, dist))
}

/// Rows of `base` per parallel task of a range search.
const WITHIN_BLOCK: usize = 1 << 14;

/// Every (query, base row) pair within distance `radius` (a range search), as three parallel
/// vectors (query index, row index, distance), ordered by query, then distance. Exact: each
/// query is compared with every row, in blocks of 16,384 rows spread over the pool. Keeps
/// only the matches (12 bytes each).
pub fn within_all(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    metric: Metric,
    radius: f32,
    cancel: &CancelToken,
) -> Result<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    let (nq, n) = (queries.len() / dim.max(1), base.len() / dim.max(1));
    let blocks = n.div_ceil(WITHIN_BLOCK);
    let parts: Vec<Vec<(i64, i64, f32)>> = (0..nq * blocks)
        .into_par_iter()
        .map(|t| {
            cancel.check()?;
            let (qi, b) = (t / blocks, t % blocks);
            let (lo, hi) = (b * WITHIN_BLOCK, ((b + 1) * WITHIN_BLOCK).min(n));
            cancel.advance(hi - lo); // progress: (query, row) comparisons
            let q = &queries[qi * dim..(qi + 1) * dim];
            let hits = within(&base[lo * dim..hi * dim], dim, metric, q, radius, None);
            Ok(hits.into_iter().map(|h| (qi as i64, (lo + h.1 as usize) as i64, h.0)).collect())
        })
        .collect::<Result<_>>()?;
    let mut all: Vec<(i64, i64, f32)> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)).then(a.1.cmp(&b.1)));
    Ok((all.iter().map(|h| h.0).collect(), all.iter().map(|h| h.1).collect(), all.iter().map(|h| h.2).collect()))
}
