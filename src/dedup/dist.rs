//! MinHash-LSH dedup across processes (Ray Data, Spark). The single-process pipeline
//! ([`crate::dedup::lsh::minhash_roots`]) split into steps that run where the data is:
//!
//! 1. per batch: signatures, then one row per (row, band) with the band's bucket key
//!    ([`band_rows`], the same [`band_key`] the single-process banding uses);
//! 2. the engine shuffles those rows so that every bucket lands whole in one group;
//! 3. per group: [`bucket_edges`] verifies the pairs of each bucket (estimated Jaccard >=
//!    threshold) and returns a spanning forest of the verified pairs (at most one edge per
//!    row it touches, so little crosses back to the driver);
//! 4. on the driver: a union-find over the global row positions joins the forests.
//!
//! The clusters equal the single-process ones: both are the connected components of the
//! pairs that share a bucket in some band and pass verification. (Rows with identical
//! signatures share every bucket and always pass; both pipelines join them by star edges
//! instead of all pairs.)

use std::collections::HashMap;

use rayon::prelude::*;

use crate::dedup::minhash::{band_key, identical_runs, jaccard_estimate, UnionFind};
use crate::error::{LakeError, Result};

/// For every valid row of an `n x p` signature matrix (`valid[i]`), one entry per band:
/// (row, band, bucket key as the bits of an i64).
pub fn band_rows(flat: &[u32], p: usize, valid: &[bool], bands: usize, rows: usize) -> (Vec<u32>, Vec<i32>, Vec<i64>) {
    let n = valid.len();
    let live: Vec<usize> = (0..n).filter(|&i| valid[i]).collect();
    let mut row = Vec::with_capacity(live.len() * bands);
    let mut band = Vec::with_capacity(live.len() * bands);
    let mut key = Vec::with_capacity(live.len() * bands);
    for &i in &live {
        let sig = &flat[i * p..(i + 1) * p];
        for b in 0..bands {
            row.push(i as u32);
            band.push(b as i32);
            key.push(band_key(sig, b, rows) as i64);
        }
    }
    (row, band, key)
}

/// Verified edges of the buckets in one group of band rows: entry `i` is row `pos[i]` (a
/// global position) in bucket (`band[i]`, `key[i]`) with signature `flat[i*p..(i+1)*p]`.
/// Returns a spanning forest (a, b) of the pairs that share a bucket and have estimated
/// Jaccard >= `threshold`; `a` is the smallest position of its tree.
pub fn bucket_edges(
    band: &[i32],
    key: &[i64],
    pos: &[i64],
    flat: &[u32],
    p: usize,
    threshold: f64,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let n = pos.len();
    if band.len() != n || key.len() != n || flat.len() != n * p {
        return Err(LakeError::InvalidArgument(format!(
            "band rows disagree in length: {} bands, {} keys, {} positions, {} signature values for num_perm {p}",
            band.len(),
            key.len(),
            n,
            flat.len()
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by_key(|&i| (band[i], key[i], pos[i]));
    let mut buckets: Vec<&[usize]> = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        let (b, k) = (band[order[start]], key[order[start]]);
        while end < n && band[order[end]] == b && key[order[end]] == k {
            end += 1;
        }
        if end - start > 1 {
            buckets.push(&order[start..end]);
        }
        start = end;
    }
    let sig = |i: usize| &flat[i * p..(i + 1) * p];
    let edges: Vec<(i64, i64)> = buckets
        .par_iter()
        .flat_map_iter(|members| {
            // identical signatures: star edges to the first (smallest position)
            let mut by_sig: Vec<usize> = members.to_vec();
            let mut out = Vec::new();
            let mut reps = Vec::new();
            for run in identical_runs(&mut by_sig, flat, p, |i| pos[i]) {
                let first = by_sig[run.start];
                out.extend(
                    by_sig[run.start + 1..run.end]
                        .iter()
                        .filter(|&&j| pos[j] != pos[first])
                        .map(|&j| (pos[first], pos[j])),
                );
                reps.push(first);
            }
            for (x, &a) in reps.iter().enumerate() {
                for &b in &reps[x + 1..] {
                    if jaccard_estimate(sig(a), sig(b)) >= threshold - 1e-12 {
                        out.push((pos[a], pos[b]));
                    }
                }
            }
            out.into_iter()
        })
        .collect();
    Ok(spanning_forest(&edges))
}

/// For rows at positions `pos` with (non-null) signatures `flat` (`n x p`): each row's
/// representative, the smallest position holding the identical signature.
pub fn copy_representatives(pos: &[i64], flat: &[u32], p: usize) -> Vec<i64> {
    let mut members: Vec<usize> = (0..pos.len()).collect();
    let mut rep = vec![0i64; pos.len()];
    for run in identical_runs(&mut members, flat, p, |i| pos[i]) {
        for &j in &members[run.clone()] {
            rep[j] = pos[members[run.start]];
        }
    }
    rep
}

/// A spanning forest of `edges`: (tree minimum, member) for every other member of a tree.
fn spanning_forest(edges: &[(i64, i64)]) -> (Vec<i64>, Vec<i64>) {
    let mut nodes: Vec<i64> = edges.iter().flat_map(|&(a, b)| [a, b]).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let id: HashMap<i64, u32> = nodes.iter().enumerate().map(|(i, &x)| (x, i as u32)).collect();
    let mut uf = UnionFind::new(nodes.len());
    for &(a, b) in edges {
        uf.union(id[&a], id[&b]);
    }
    let roots = uf.roots();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, &r) in roots.iter().enumerate() {
        if r as usize != i {
            a.push(nodes[r as usize]);
            b.push(nodes[i]);
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_give_the_forest_of_verified_pairs() {
        // rows 10, 11 identical; 12 shares 3 of 4 values with them; 13 shares none
        let sigs: Vec<u32> = [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 9], [7, 7, 7, 7]].concat();
        let (rows, bands, keys) = band_rows(&sigs, 4, &[true; 4], 2, 2);
        assert_eq!(rows.len(), 8);
        let pos: Vec<i64> = rows.iter().map(|&r| 10 + r as i64).collect();
        let flat: Vec<u32> = rows.iter().flat_map(|&r| sigs[r as usize * 4..r as usize * 4 + 4].to_vec()).collect();
        let (a, b) = bucket_edges(&bands, &keys, &pos, &flat, 4, 0.7).unwrap();
        let mut e: Vec<(i64, i64)> = a.into_iter().zip(b).collect();
        e.sort();
        assert_eq!(e, vec![(10, 11), (10, 12)]);
        let (a, _) = bucket_edges(&bands, &keys, &pos, &flat, 4, 0.8).unwrap();
        assert_eq!(a, vec![10]);
        assert_eq!(copy_representatives(&[12, 10, 11, 13], &sigs, 4), vec![10, 10, 11, 13]);
        assert!(bucket_edges(&bands[1..], &keys, &pos, &flat, 4, 0.8).is_err());
    }
}
