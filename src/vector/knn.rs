//! Exact k-nearest neighbours between two in-memory vector sets (kNN tagging, semantic
//! dedup of in-memory data): a parallel brute-force scan with lakevec's distance kernels.

use rayon::prelude::*;

use crate::error::Result;
use crate::runtime::CancelToken;
use crate::vector::distance::Metric;
use crate::vector::exact::exact;

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
