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

/// The components of the rows of a segment (rows without a signature stay alone): local
/// roots (smallest member), the same as `dedup::lsh::minhash_roots` without holding the
/// candidate pairs: bucket by bucket, each row is compared with the earlier rows of its bucket
/// that are not already in its component (a bucket of m near-copies costs about m
/// comparisons once they are joined, not m^2/2 stored pairs; the pairs of a 2M-row corpus
/// of near-copies took 1.8 GB). Uses the segment's stored band lists ([`band_lists`]).
pub fn segment_components(seg: &DedupSegment, p: &DedupParams) -> Result<Vec<u32>> {
    let n = seg.len();
    let mut uf = UnionFind::new(n);
    for band in 0..seg.bands {
        let (keys, rows) = seg.band(band);
        let mut start = 0;
        while start < keys.len() {
            let end = start + keys[start..].iter().take_while(|&&k| k == keys[start]).count();
            for x in start + 1..end {
                for y in start..x {
                    let (a, b) = (rows[x], rows[y]);
                    if uf.find(a) != uf.find(b)
                        && jaccard_estimate(seg.sig(a as usize), seg.sig(b as usize)) >= p.threshold - 1e-12
                    {
                        uf.union(a, b);
                    }
                }
            }
            start = end;
        }
    }
    Ok(uf.roots())
}

/// Fill `seg`'s band lists: for each of `p.bands` bands, its valid rows sorted by band key
/// (12 bytes per row and band, written with the segment so that later updates never sort
/// stored rows again).
pub fn band_lists(seg: &mut DedupSegment, p: &DedupParams) {
    let s: &DedupSegment = seg;
    let per_band: Vec<Vec<(u64, u32)>> = (0..p.bands)
        .into_par_iter()
        .map(|b| {
            let mut v: Vec<(u64, u32)> =
                (0..s.len()).filter(|&i| s.valid[i]).map(|i| (band_key(s.sig(i), b, p.rows), i as u32)).collect();
            v.sort_unstable();
            v
        })
        .collect();
    seg.bands = p.bands;
    seg.band_keys = per_band.iter().flat_map(|v| v.iter().map(|e| e.0)).collect::<Vec<u64>>().into();
    seg.band_rows = per_band.iter().flat_map(|v| v.iter().map(|e| e.1)).collect::<Vec<u32>>().into();
    seg.dirs = Default::default();
}

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

/// Bits of a band key that index a bucket list's directory.
const DIR_BITS: u32 = 16;

/// The LSH buckets of the live rows of stored segments, read from the segments' band lists
/// (nothing is sorted per update). A directory per list (the first position of each value of
/// a key's top 16 bits: 256 KiB per band and segment) makes finding a key one or two cache
/// misses instead of a binary search over the whole list (~21 misses at 2M rows: most of a
/// refresh's time before the directory).
pub struct Buckets<'a> {
    segments: &'a [Arc<DedupSegment>],
    /// Global number of each segment's first row.
    bases: &'a [u64],
    /// Liveness and cluster root by global row.
    live: &'a [bool],
    root: &'a [u64],
    bands: usize,
    rows: usize,
    /// [segment][band]: positions of the first key with each top-16-bit value (+ the end).
    dirs: Vec<&'a [Vec<u32>]>,
}

/// The directories of `seg`'s band lists (see [`Buckets`]), built on first use and kept with
/// the segment: a refresh of several parts and every `check` reuse them.
pub fn band_dirs(seg: &DedupSegment) -> &[Vec<u32>] {
    seg.dirs.get_or_init(|| {
        (0..seg.bands)
            .into_par_iter()
            .map(|b| {
                let keys = seg.band(b).0;
                let mut dir = Vec::with_capacity((1 << DIR_BITS) + 1);
                let mut at = 0usize;
                for top in 0..(1u64 << DIR_BITS) {
                    while at < keys.len() && keys[at] >> (64 - DIR_BITS) < top {
                        at += 1;
                    }
                    dir.push(at as u32);
                }
                dir.push(keys.len() as u32);
                dir
            })
            .collect()
    })
}

impl<'a> Buckets<'a> {
    pub fn new(
        segments: &'a [Arc<DedupSegment>],
        bases: &'a [u64],
        live: &'a [bool],
        root: &'a [u64],
        bands: usize,
        rows: usize,
    ) -> Self {
        let dirs = segments.iter().map(|seg| band_dirs(seg)).collect();
        Buckets { segments, bases, live, root, bands, rows, dirs }
    }

    /// The stored clusters `sig` joins: for each cluster with a live row that shares a band
    /// with `sig` at estimated Jaccard >= `threshold`, one such row (the first found, band by
    /// band) and its estimate. A cluster is done at its first passing row, so a bucket of many
    /// copies costs one comparison per cluster, not per row.
    pub fn matches(&self, sig: &[u32], threshold: f64, sig_of: &SigOf<'_>) -> Vec<(u64, f64)> {
        let mut joined: Vec<(u64, u64, f64)> = Vec::new(); // (root, row, estimate)
        let mut failed: Vec<u64> = Vec::new();
        for b in 0..self.bands {
            let k = band_key(sig, b, self.rows);
            let top = (k >> (64 - DIR_BITS)) as usize;
            for (s, seg) in self.segments.iter().enumerate() {
                let (keys, rows) = seg.band(b);
                let (lo, hi) = (self.dirs[s][b][top] as usize, self.dirs[s][b][top + 1] as usize);
                let from = lo + keys[lo..hi].partition_point(|&x| x < k);
                for j in (from..hi).take_while(|&j| keys[j] == k) {
                    let g = self.bases[s] + rows[j] as u64;
                    let root = self.root[g as usize];
                    if !self.live[g as usize] || joined.iter().any(|e| e.0 == root) || failed.contains(&g) {
                        continue;
                    }
                    match sig_of(g).map(|o| jaccard_estimate(sig, o)) {
                        Some(est) if est >= threshold - 1e-12 => joined.push((root, g, est)),
                        _ => failed.push(g),
                    }
                }
            }
        }
        joined.into_iter().map(|(_, g, est)| (g, est)).collect()
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
            method: "minhash".into(),
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
            ef: None,
        };
        let roots = components(&all, &prm).unwrap();
        assert_eq!(roots, vec![0, 0, 0, 3]);
        let mut seg = DedupSegment {
            files: vec![],
            fstart: vec![0],
            rows: vec![0, 1, 2, 3].into(),
            num_perm: p,
            sigs: sigs.concat().into(),
            valid: vec![true; 4],
            bands: 0,
            band_keys: Default::default(),
            band_rows: Default::default(),
            dirs: Default::default(),
        };
        band_lists(&mut seg, &prm);
        assert_eq!(segment_components(&seg, &prm).unwrap(), roots);
        let root: Vec<u64> = roots.iter().map(|&r| r as u64).collect();
        let sig_of = |g: u64| Some(sigs[g as usize].as_slice());
        let after = after_deletes(&root, &[true; 4], &[true, false, true, true], &sig_of, &prm).unwrap();
        assert_eq!(after, vec![0, 1, 2, 3]);
        let after = after_deletes(&root, &[true; 4], &[false, true, true, true], &sig_of, &prm).unwrap();
        assert_eq!(after, vec![0, 1, 1, 3]);
    }
}
