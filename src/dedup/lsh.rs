//! MinHash-LSH dedup in one process: signatures of a text column, banding into candidate
//! pairs, verification (estimated or exact Jaccard) and union-find clusters.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, UInt32Array};
use arrow::datatypes::{DataType, Field};
use rayon::prelude::*;

use crate::dedup::minhash::{
    candidate_pairs, identical_runs, jaccard_estimate, jaccard_exact, MinHasher, Pair, UnionFind,
};
use crate::error::{LakeError, Result};
use crate::runtime::CancelToken;
use crate::text::strings;

/// MinHash signatures of a text column: `FixedSizeList<uint32, num_perm>`, null for null
/// texts and texts without shingles.
pub fn signatures(array: &ArrayRef, column: &str, h: &MinHasher, cancel: &CancelToken) -> Result<ArrayRef> {
    let (values, valid) = h.signatures(&strings(array, column)?, cancel)?;
    let p = h.num_perm;
    let field = Arc::new(Field::new("item", DataType::UInt32, false));
    let nulls = arrow::buffer::NullBuffer::from(valid);
    Ok(Arc::new(FixedSizeListArray::try_new(field, p as i32, Arc::new(UInt32Array::from(values)), Some(nulls))?))
}

/// A signature column as one row-major `n x num_perm` slice, `num_perm`, and each row's
/// validity; checks that `bands x rows` fits.
pub fn signature_matrix(sigs: &ArrayRef, bands: usize, rows: usize) -> Result<(&[u32], usize, Vec<bool>)> {
    let list = match sigs.data_type() {
        DataType::FixedSizeList(f, _) if f.data_type() == &DataType::UInt32 => sigs.as_fixed_size_list(),
        other => {
            return Err(LakeError::InvalidArgument(format!(
                "signatures must be FixedSizeList<uint32> (from minhash_signatures), got {other}"
            )))
        }
    };
    let p = list.value_length() as usize;
    if bands == 0 || rows == 0 || bands.checked_mul(rows).is_none_or(|x| x > p) {
        return Err(LakeError::InvalidArgument(format!("bands={bands} x rows={rows} does not fit num_perm = {p}")));
    }
    let n = list.len();
    let vals = list.values().as_primitive::<arrow::datatypes::UInt32Type>();
    let start = list.offset() * p;
    let valid = (0..n).map(|i| list.is_valid(i)).collect();
    Ok((&vals.values()[start..start + n * p], p, valid))
}

/// Clusters from signatures (a FixedSizeList<uint32> array, nulls = no signature): LSH
/// candidates verified by estimated Jaccard >= `threshold`, joined by union-find. Returns
/// the roots and the verified pairs `(a, b, jaccard_estimate)`.
/// With `exact: Some((texts, hasher))` candidates are verified by the exact Jaccard
/// similarity of their shingle sets instead. Pairs are `(a, b, estimate, exact)` (`exact`
/// NaN unless computed).
pub fn minhash_roots(
    sigs: &ArrayRef,
    threshold: f64,
    bands: usize,
    rows: usize,
    exact: Option<(&ArrayRef, &MinHasher)>,
) -> Result<(Vec<u32>, Vec<Pair>)> {
    let (flat, p, mut valid) = signature_matrix(sigs, bands, rows)?;
    let n = valid.len();
    // Rows with identical signatures (boilerplate, exact copies) are joined directly by star
    // edges to their first row, which alone enters the banding: a bucket of m copies would
    // otherwise emit m(m-1)/2 pairs in every band.
    let mut copies: Vec<(u32, u32)> = Vec::new();
    if exact.is_none() {
        let mut members: Vec<usize> = (0..n).filter(|&i| valid[i]).collect();
        for run in identical_runs(&mut members, flat, p, |i| i) {
            let first = members[run.start];
            for &j in &members[run.start + 1..run.end] {
                copies.push((first as u32, j as u32));
                valid[j] = false;
            }
        }
    }
    let cands = candidate_pairs(flat, p, &valid, bands, rows);
    let shingles: Option<Vec<Vec<u64>>> = match exact {
        Some((texts, h)) => {
            if texts.len() != n {
                return Err(LakeError::InvalidArgument(format!("{} texts for {n} signatures", texts.len())));
            }
            let t = strings(texts, "texts")?;
            let mut used = vec![false; n];
            for &(a, b) in &cands {
                used[a as usize] = true;
                used[b as usize] = true;
            }
            Some(
                (0..n)
                    .into_par_iter()
                    .map(|i| if used[i] { t[i].map(|s| h.shingle_hashes(s)).unwrap_or_default() } else { Vec::new() })
                    .collect(),
            )
        }
        None => None,
    };
    let verified: Vec<Pair> = cands
        .par_iter()
        .filter_map(|&(a, b)| {
            let est = jaccard_estimate(
                &flat[a as usize * p..(a as usize + 1) * p],
                &flat[b as usize * p..(b as usize + 1) * p],
            );
            let exact = shingles.as_ref().map(|sh| jaccard_exact(&sh[a as usize], &sh[b as usize]));
            (exact.unwrap_or(est) >= threshold - 1e-12).then_some((
                a,
                b,
                est as f32,
                exact.map_or(f32::NAN, |x| x as f32),
            ))
        })
        .collect();
    let mut verified = verified;
    verified.extend(copies.iter().map(|&(a, b)| (a, b, 1.0f32, f32::NAN)));
    verified.sort_unstable_by_key(|p| (p.0, p.1));
    let mut uf = UnionFind::new(n);
    for &(a, b, _, _) in &verified {
        uf.union(a, b);
    }
    Ok((uf.roots(), verified))
}
