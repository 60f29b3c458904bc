//! Exact and MinHash-LSH dedup over Arrow text columns, and the cluster tables they return.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::minhash::{candidate_pairs, identical_runs, jaccard_estimate, jaccard_exact, MinHasher, UnionFind};
use crate::runtime::CancelToken;
use crate::text::{hash64, Normalize};

/// The rows of a text column as `Option<&str>` (null -> None). Utf8, LargeUtf8, Utf8View,
/// and Binary/LargeBinary/BinaryView holding UTF-8 are accepted; invalid UTF-8 is an error
/// naming the row.
pub fn strings<'a>(array: &'a ArrayRef, column: &str) -> Result<Vec<Option<&'a str>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Binary => utf8_rows(array.as_binary::<i32>().iter(), column)?,
        DataType::LargeBinary => utf8_rows(array.as_binary::<i64>().iter(), column)?,
        DataType::BinaryView => utf8_rows(array.as_binary_view().iter(), column)?,
        other => {
            return Err(LakeError::Schema(format!(
                "column '{column}' is not a text column (type {other}); expected string or binary"
            )))
        }
    })
}

fn utf8_rows<'a>(rows: impl Iterator<Item = Option<&'a [u8]>>, column: &str) -> Result<Vec<Option<&'a str>>> {
    rows.enumerate()
        .map(|(i, b)| {
            b.map(|b| {
                std::str::from_utf8(b).map_err(|_| {
                    LakeError::InvalidArgument(format!("column '{column}', row {i}: bytes are not valid UTF-8"))
                })
            })
            .transpose()
        })
        .collect()
}

/// Per-row cluster columns from union-find roots: `cluster_id` (the cluster's smallest row
/// index), `cluster_size`, `is_representative` (the row with the highest `score`, ties to the
/// smallest index; `score: None` keeps the first row).
pub fn cluster_columns(roots: &[u32], score: Option<&[f64]>) -> (Vec<i64>, Vec<i64>, Vec<bool>) {
    let n = roots.len();
    let mut size = vec![0i64; n];
    for &r in roots {
        size[r as usize] += 1;
    }
    let mut best: Vec<u32> = (0..n as u32).collect();
    if let Some(s) = score {
        for i in 0..n {
            let r = roots[i] as usize;
            let b = best[r] as usize;
            if s[i] > s[b] || (s[i] == s[b] && i < b) {
                best[r] = i as u32;
            }
        }
    }
    let cluster_id: Vec<i64> = roots.iter().map(|&r| r as i64).collect();
    let cluster_size: Vec<i64> = roots.iter().map(|&r| size[r as usize]).collect();
    let is_rep: Vec<bool> = (0..n).map(|i| best[roots[i] as usize] as usize == i).collect();
    (cluster_id, cluster_size, is_rep)
}

/// The cluster table: `cluster_id`, `cluster_size`, `is_representative`.
pub fn cluster_batch(roots: &[u32], score: Option<&[f64]>) -> Result<RecordBatch> {
    if let Some(s) = score {
        if s.len() != roots.len() {
            return Err(LakeError::InvalidArgument(format!("{} scores for {} rows", s.len(), roots.len())));
        }
    }
    let (id, size, rep) = cluster_columns(roots, score);
    let schema = Arc::new(Schema::new(vec![
        Field::new("cluster_id", DataType::Int64, false),
        Field::new("cluster_size", DataType::Int64, false),
        Field::new("is_representative", DataType::Boolean, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(id)), Arc::new(Int64Array::from(size)), Arc::new(BooleanArray::from(rep))],
    )?)
}

/// Exact dedup: rows whose chosen columns are equal after `normalize` (a 128-bit hash of
/// the normalised values; nulls compare equal, as in pandas) form one cluster.
pub fn exact_roots(columns: &[(String, ArrayRef)], normalize: Normalize) -> Result<Vec<u32>> {
    let n = columns.first().map_or(0, |(_, a)| a.len());
    let texts: Vec<Vec<Option<&str>>> = columns
        .iter()
        .map(|(name, a)| {
            if a.len() != n {
                return Err(LakeError::InvalidArgument("columns have different lengths".into()));
            }
            strings(a, name)
        })
        .collect::<Result<_>>()?;
    let hashes: Vec<(u64, u64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut buf: Vec<u8> = Vec::new();
            for col in &texts {
                match col[i] {
                    Some(s) => {
                        buf.push(1);
                        buf.extend_from_slice(normalize.apply(s).as_bytes());
                    }
                    None => buf.push(0),
                }
                buf.push(0x1f);
            }
            (hash64(&buf, 0x5eed_0001), hash64(&buf, 0x5eed_0002))
        })
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.par_sort_unstable_by_key(|&i| (hashes[i as usize], i));
    let mut roots = vec![0u32; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && hashes[order[end] as usize] == hashes[order[start] as usize] {
            end += 1;
        }
        let root = order[start]; // smallest index of the group (sorted by (hash, index))
        for &i in &order[start..end] {
            roots[i as usize] = root;
        }
        start = end;
    }
    Ok(roots)
}

/// MinHash signatures of a text column: `FixedSizeList<uint32, num_perm>`, null for null
/// texts and texts without shingles.
pub fn signatures(array: &ArrayRef, column: &str, h: &MinHasher, cancel: &CancelToken) -> Result<ArrayRef> {
    let texts = strings(array, column)?;
    let p = h.num_perm;
    let mut values = vec![0u32; texts.len() * p];
    let valid: Vec<bool> = values
        .par_chunks_mut(p)
        .zip(texts.par_iter())
        .map(|(sig, t)| {
            if cancel.is_cancelled() {
                return false;
            }
            match t {
                Some(t) => h.signature(t, sig),
                None => {
                    sig.iter_mut().for_each(|s| *s = u32::MAX);
                    false
                }
            }
        })
        .collect();
    cancel.check()?;
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
            Some((0..n).into_par_iter().map(|i| if used[i] { t[i].map(|s| h.shingle_hashes(s)).unwrap_or_default() } else { Vec::new() }).collect())
        }
        None => None,
    };
    let verified: Vec<Pair> = cands
        .par_iter()
        .filter_map(|&(a, b)| {
            let est = jaccard_estimate(&flat[a as usize * p..(a as usize + 1) * p], &flat[b as usize * p..(b as usize + 1) * p]);
            let exact = shingles.as_ref().map(|sh| jaccard_exact(&sh[a as usize], &sh[b as usize]));
            (exact.unwrap_or(est) >= threshold - 1e-12).then_some((a, b, est as f32, exact.map_or(f32::NAN, |x| x as f32)))
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

/// A verified pair: (a, b, estimated Jaccard, exact Jaccard or NaN).
pub type Pair = (u32, u32, f32, f32);

/// The pairs table: `a`, `b` (row indices, a < b), `jaccard_estimate` (float32, from the
/// signatures) and, when computed (`exact`), `jaccard` (float32, of the shingle sets).
pub fn pairs_batch(pairs: &[Pair], exact: bool) -> Result<RecordBatch> {
    let mut fields = vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, false),
        Field::new("jaccard_estimate", DataType::Float32, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.0 as i64))),
        Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.1 as i64))),
        Arc::new(Float32Array::from_iter_values(pairs.iter().map(|p| p.2))),
    ];
    if exact {
        fields.push(Field::new("jaccard", DataType::Float32, false));
        cols.push(Arc::new(Float32Array::from_iter_values(pairs.iter().map(|p| p.3))));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn exact_groups_by_normalised_value() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("A  b"), Some("a b"), None, Some("c"), None, Some("a B ")]));
        let r = exact_roots(&[("t".into(), a.clone())], Normalize::all()).unwrap();
        assert_eq!(r, vec![0, 0, 2, 3, 2, 0]);
        let r = exact_roots(&[("t".into(), a)], Normalize::none()).unwrap();
        assert_eq!(r, vec![0, 1, 2, 3, 2, 5]);
        let (id, size, rep) = cluster_columns(&[0, 0, 2, 3, 2, 0], Some(&[1.0, 5.0, 0.0, 0.0, 0.0, 5.0]));
        assert_eq!(id, vec![0, 0, 2, 3, 2, 0]);
        assert_eq!(size, vec![3, 3, 2, 1, 2, 3]);
        assert_eq!(rep, vec![false, true, true, true, false, false]);
    }

    #[test]
    fn binary_must_be_utf8() {
        let b: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![b"ok".as_ref(), b"\xff\xfe".as_ref()]));
        let e = strings(&b, "raw").unwrap_err().to_string();
        assert!(e.contains("'raw', row 1"), "{e}");
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(strings(&n, "x").unwrap_err().to_string().contains("not a text column"));
    }
}
