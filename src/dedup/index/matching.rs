//! The cluster arithmetic of a dedup index, pure functions over signatures.
//!
//! Clusters are the connected components of the graph whose edges join two live rows that
//! share an LSH band and whose estimated Jaccard similarity is at least the threshold, the
//! graph `dedup.minhash` clusters in one run (see `dedup::lsh::minhash_roots`). A component's
//! root (and cluster id) is its smallest global row number. Updates keep that graph's
//! components exactly:
//! - appended rows add edges among themselves and to stored rows: a union-find seeded with the
//!   stored roots takes them (components only merge);
//! - deleted rows can split their components: each component that lost a row is clustered
//!   again from its remaining members' signatures (every edge of a member stays inside its
//!   component, so nothing outside needs to be looked at).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, UInt32Array};
use arrow::datatypes::{DataType, Field};
use rayon::prelude::*;

use crate::dedup::index::format::{DedupParams, DedupSegment};
use crate::dedup::lsh::minhash_roots;
use crate::dedup::minhash::{band_key, jaccard_estimate, UnionFind};
use crate::error::Result;

/// One global row's signature, or None without shingles.
pub type SigOf<'a> = dyn Fn(u64) -> Option<&'a [u32]> + Sync + 'a;

/// The components of `n` signatures (`None` rows stay alone): local roots (smallest member).
pub fn components(sigs: &[Option<&[u32]>], p: &DedupParams) -> Result<Vec<u32>> {
    let (n, num_perm) = (sigs.len(), p.num_perm);
    let mut flat = Vec::with_capacity(n * num_perm);
    for s in sigs {
        match s {
            Some(s) => flat.extend_from_slice(s),
            None => flat.extend(std::iter::repeat_n(u32::MAX, num_perm)),
        }
    }
    let field = Arc::new(Field::new("item", DataType::UInt32, false));
    let nulls = arrow::buffer::NullBuffer::from(sigs.iter().map(|s| s.is_some()).collect::<Vec<bool>>());
    let arr: ArrayRef =
        Arc::new(FixedSizeListArray::try_new(field, num_perm as i32, Arc::new(UInt32Array::from(flat)), Some(nulls))?);
    Ok(minhash_roots(&arr, p.threshold, p.bands, p.rows, None)?.0)
}

/// Band buckets of the live rows of stored segments: per band, (key, global row) sorted (16
/// bytes per row and band).
pub struct Buckets {
    by_band: Vec<Vec<(u64, u64)>>,
    rows: usize,
}

impl Buckets {
    /// The buckets of every live, signed row of `segments` (`bases[s]` = the global number of
    /// segment `s`'s first row; `live` by global row).
    pub fn new(segments: &[Arc<DedupSegment>], bases: &[u64], live: &[bool], bands: usize, rows: usize) -> Self {
        let by_band = (0..bands)
            .into_par_iter()
            .map(|b| {
                let mut m: Vec<(u64, u64)> = Vec::new();
                for (s, seg) in segments.iter().enumerate() {
                    for i in 0..seg.len() {
                        let g = bases[s] + i as u64;
                        if seg.valid[i] && live[g as usize] {
                            m.push((band_key(seg.sig(i), b, rows), g));
                        }
                    }
                }
                m.sort_unstable();
                m
            })
            .collect();
        Buckets { by_band, rows }
    }

    /// Stored rows sharing a band with `sig` and estimated Jaccard >= `threshold`, each once,
    /// with the estimate.
    pub fn matches(&self, sig: &[u32], threshold: f64, sig_of: &SigOf<'_>) -> Vec<(u64, f64)> {
        let mut seen: Vec<u64> = Vec::new();
        for (b, m) in self.by_band.iter().enumerate() {
            let k = band_key(sig, b, self.rows);
            let from = m.partition_point(|e| e.0 < k);
            seen.extend(m[from..].iter().take_while(|e| e.0 == k).map(|e| e.1));
        }
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
            .filter_map(|g| {
                let est = jaccard_estimate(sig, sig_of(g)?);
                (est >= threshold - 1e-12).then_some((g, est))
            })
            .collect()
    }
}

/// Roots after deleting rows: `root` and `live` are the previous state; `now_live` the new
/// liveness. Components that lost a member are clustered again from their remaining members.
pub fn after_deletes(
    root: &[u64],
    live: &[bool],
    now_live: &[bool],
    sig_of: &SigOf<'_>,
    p: &DedupParams,
) -> Result<Vec<u64>> {
    let n = root.len();
    let mut out: Vec<u64> = (0..n as u64).map(|i| if now_live[i as usize] { root[i as usize] } else { i }).collect();
    let mut hit = vec![false; n];
    for i in 0..n {
        if live[i] && !now_live[i] {
            hit[root[i] as usize] = true;
        }
    }
    let mut members: HashMap<u64, Vec<u64>> = HashMap::new();
    for i in 0..n {
        if now_live[i] && live[i] && hit[root[i] as usize] {
            members.entry(root[i]).or_default().push(i as u64);
        }
    }
    for m in members.values() {
        let sigs: Vec<Option<&[u32]>> = m.iter().map(|&g| sig_of(g)).collect();
        let local = components(&sigs, p)?;
        for (j, &g) in m.iter().enumerate() {
            out[g as usize] = m[local[j] as usize];
        }
    }
    Ok(out)
}

/// A union-find over `root.len()` global rows seeded with the roots of the live rows.
pub fn seeded(root: &[u64], live: &[bool]) -> UnionFind {
    let mut uf = UnionFind::new(root.len());
    for (i, &r) in root.iter().enumerate() {
        if live[i] && r != i as u64 {
            uf.union(i as u32, r as u32);
        }
    }
    uf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_bridge_splits_its_component() {
        // rows 0-1-2 chained by similarity (0~1, 1~2, 0 !~ 2), row 3 alone
        let p = 16;
        let s0: Vec<u32> = (0..16).collect();
        let mut s1 = s0.clone();
        s1[0] = 100;
        s1[1] = 101;
        let mut s2 = s1.clone();
        s2[2] = 102;
        s2[3] = 103;
        let s3: Vec<u32> = (200..216).collect();
        let sigs = [s0, s1, s2, s3];
        let all: Vec<Option<&[u32]>> = sigs.iter().map(|s| Some(s.as_slice())).collect();
        // threshold 0.85 with 16 bands of 1 row: 0~1 (14/16), 1~2 (14/16), 0~2 (12/16 < 0.85)
        let prm = DedupParams {
            num_perm: p,
            ngram: 1,
            shingle: "word".into(),
            sketch: "oph".into(),
            seed: 1,
            nfkc: true,
            lowercase: true,
            whitespace: true,
            threshold: 0.85,
            bands: 16,
            rows: 1,
        };
        let roots = components(&all, &prm).unwrap();
        assert_eq!(roots, vec![0, 0, 0, 3]);
        let root: Vec<u64> = roots.iter().map(|&r| r as u64).collect();
        let sig_of = |g: u64| Some(sigs[g as usize].as_slice());
        let after = after_deletes(&root, &[true; 4], &[true, false, true, true], &sig_of, &prm).unwrap();
        assert_eq!(after, vec![0, 1, 2, 3]);
        let after = after_deletes(&root, &[true; 4], &[false, true, true, true], &sig_of, &prm).unwrap();
        assert_eq!(after, vec![0, 1, 1, 3]);
    }
}
