//! Two-level k-means: reference points close to every row at a cost that grows with the
//! square root of the number of centroids, for the per-region centroids of RaBitQ codes
//! ([`crate::vector::rabitq`]).
//!
//! Lloyd's algorithm (Lloyd 1982) seeded with k-means++ (Arthur & Vassilvitskii, SODA 2007),
//! run on a sample: first `k1` coarse centroids over the sample, then each coarse cell's
//! sample rows split into leaf centroids (their number proportional to the cell's share of
//! the sample). A row is assigned to the nearest leaf of its nearest coarse cell, so
//! assigning costs `k1 + k2` distances instead of `k1 * k2` (the hierarchical k-means of
//! Nister & Stewenius, CVPR 2006, with two levels). Distances are squared Euclidean on the
//! prepared vectors, whatever the index's metric: the centroids only have to be close to the
//! rows.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::Result;
use crate::runtime::CancelToken;
use crate::vector::distance::Metric;
use crate::vector::exact::exact;

/// Lloyd iterations per level.
pub const ITERS: usize = 10;
/// Rows sampled to train on, at most.
pub const SAMPLE: usize = 65_536;

/// Leaf centroids under coarse cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Centroids {
    pub dim: usize,
    /// `k1 * dim` coarse centroids.
    pub coarse: Vec<f32>,
    /// Leaves of coarse cell `c`: `leaves[children[c]]`.
    pub children: Vec<Range<usize>>,
    /// `nc * dim` leaf centroids.
    pub leaves: Vec<f32>,
}

/// splitmix64, for the sample and the seeding (deterministic builds).
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn row_of(v: &[f32], dim: usize, i: usize) -> &[f32] {
    &v[i * dim..(i + 1) * dim]
}

/// The index of the nearest of `cs` (`k * dim`) to `x` (0 when `cs` is empty).
fn nearest(cs: &[f32], dim: usize, x: &[f32]) -> usize {
    exact(cs, dim, Metric::L2, x, 1, None).first().map_or(0, |h| h.1 as usize)
}

/// `k` centroids of the rows `ids` of `v` (at most `ids.len()`, at least one when `ids` is
/// not empty), k-means++ seeded, then [`ITERS`] Lloyd iterations.
fn lloyd(v: &[f32], dim: usize, ids: &[usize], k: usize, seed: &mut u64, cancel: &CancelToken) -> Result<Vec<f32>> {
    let k = k.min(ids.len());
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut cs: Vec<f32> = row_of(v, dim, ids[(next(seed) % ids.len() as u64) as usize]).to_vec();
    let mut d2: Vec<f32> = ids.par_iter().map(|&i| Metric::L2.distance(row_of(v, dim, i), &cs)).collect();
    while cs.len() < k * dim {
        cancel.check()?;
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        let pick = if total > 0.0 {
            let mut t = (next(seed) >> 11) as f64 / (1u64 << 53) as f64 * total;
            d2.iter()
                .position(|&d| {
                    t -= d as f64;
                    t < 0.0
                })
                .unwrap_or(ids.len() - 1)
        } else {
            break; // every row sits on a centroid already
        };
        let c = row_of(v, dim, ids[pick]).to_vec();
        d2.par_iter_mut()
            .zip(ids.par_iter())
            .for_each(|(d, &i)| *d = d.min(Metric::L2.distance(row_of(v, dim, i), &c)));
        cs.extend_from_slice(&c);
    }
    let k = cs.len() / dim;
    for _ in 0..ITERS {
        cancel.check()?;
        let owner: Vec<usize> = ids.par_iter().map(|&i| nearest(&cs, dim, row_of(v, dim, i))).collect();
        let mut sum = vec![0f64; k * dim];
        let mut count = vec![0usize; k];
        for (&i, &o) in ids.iter().zip(&owner) {
            count[o] += 1;
            sum[o * dim..(o + 1) * dim].iter_mut().zip(row_of(v, dim, i)).for_each(|(s, &x)| *s += x as f64);
        }
        for (j, &c) in count.iter().enumerate() {
            if c > 0 {
                // an empty cell keeps its centroid
                let out = &mut cs[j * dim..(j + 1) * dim];
                out.iter_mut().zip(&sum[j * dim..(j + 1) * dim]).for_each(|(o, &s)| *o = (s / c as f64) as f32);
            }
        }
    }
    Ok(cs)
}

impl Centroids {
    /// About `nc` leaf centroids (at least 1, at most the rows) of `vectors` (`n * dim`,
    /// finite), trained on a sample of at most [`SAMPLE`] rows on the current rayon pool.
    /// Keeps the sample's row numbers and one assignment per sample row resident (no copy
    /// of the vectors). Errors: cancelled.
    pub fn train(vectors: &[f32], dim: usize, nc: usize, seed: u64, cancel: &CancelToken) -> Result<Self> {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut s = seed;
        let mut ids: Vec<usize> = (0..n).collect();
        if n > SAMPLE {
            // partial Fisher-Yates: the first SAMPLE entries are a uniform sample
            for i in 0..SAMPLE {
                let j = i + (next(&mut s) % (n - i) as u64) as usize;
                ids.swap(i, j);
            }
            ids.truncate(SAMPLE);
        }
        let nc = nc.clamp(1, ids.len().max(1));
        let k1 = (nc as f64).sqrt().ceil() as usize;
        let coarse = lloyd(vectors, dim, &ids, k1, &mut s, cancel)?;
        let k1 = coarse.len() / dim.max(1);
        let mut cells: Vec<Vec<usize>> = vec![Vec::new(); k1];
        let owner: Vec<usize> = ids.par_iter().map(|&i| nearest(&coarse, dim, row_of(vectors, dim, i))).collect();
        ids.iter().zip(&owner).for_each(|(&i, &o)| cells[o].push(i));
        let (mut leaves, mut children) = (Vec::new(), Vec::with_capacity(k1));
        for (c, cell) in cells.iter().enumerate() {
            let want = ((nc as f64 * cell.len() as f64 / ids.len() as f64).round() as usize).max(1);
            let start = leaves.len() / dim.max(1);
            let got = lloyd(vectors, dim, cell, want, &mut s, cancel)?;
            if got.is_empty() {
                // an empty coarse cell: its centroid is its own leaf
                leaves.extend_from_slice(&coarse[c * dim..(c + 1) * dim]);
            } else {
                leaves.extend_from_slice(&got);
            }
            children.push(start..leaves.len() / dim.max(1));
        }
        Ok(Centroids { dim, coarse, children, leaves })
    }

    /// Leaf centroids.
    pub fn len(&self) -> usize {
        self.leaves.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf of `x`: the nearest leaf of its nearest coarse cell.
    pub fn assign_one(&self, x: &[f32]) -> usize {
        if self.children.is_empty() {
            return 0;
        }
        let c = nearest(&self.coarse, self.dim, x);
        let r = self.children[c].clone();
        r.start + nearest(&self.leaves[r.start * self.dim..r.end * self.dim], self.dim, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let (dim, k) = (16usize, 25usize);
        let mut s = 7u64;
        let mut u = move || (next(&mut s) % 10_000) as f32 / 10_000.0 - 0.5;
        let centres: Vec<f32> = (0..k * dim).map(|_| 100.0 * u()).collect();
        let v: Vec<f32> =
            (0..5000).flat_map(|i| (0..dim).map(|j| centres[(i % k) * dim + j] + u()).collect::<Vec<_>>()).collect();
        let c = Centroids::train(&v, dim, k, 1, &CancelToken::new()).unwrap();
        assert!(c.len() >= k / 2 && c.len() <= 2 * k, "{}", c.len());
        // every row lands near its own centre (within the noise), far from the others
        let mut far = 0;
        for i in 0..5000 {
            let leaf = c.assign_one(row_of(&v, dim, i));
            let d = Metric::L2.distance(row_of(&v, dim, i), &c.leaves[leaf * dim..(leaf + 1) * dim]);
            far += usize::from(d > 4.0 * dim as f32 * 0.25);
        }
        assert!(far < 250, "{far} rows assigned far from their cluster");
        // deterministic for a seed; a single centroid for nc = 1 is the mean
        assert_eq!(c, Centroids::train(&v, dim, k, 1, &CancelToken::new()).unwrap());
        let one = Centroids::train(&v, dim, 1, 3, &CancelToken::new()).unwrap();
        assert_eq!(one.len(), 1);
        let mean: f32 = (0..5000).map(|i| v[i * dim]).sum::<f32>() / 5000.0;
        assert!((one.leaves[0] - mean).abs() < 1e-2, "{} vs {mean}", one.leaves[0]);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let c = Centroids::train(&[], 4, 10, 1, &CancelToken::new()).unwrap();
        assert_eq!(c.assign_one(&[0.0; 4]), 0);
        let v = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let c = Centroids::train(&v, 4, 10, 1, &CancelToken::new()).unwrap();
        assert!(c.len() <= 2 && c.assign_one(&v[..4]) < c.len());
    }
}
