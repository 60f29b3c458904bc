//! Exact dedup: rows equal after normalisation (NFKC, case, whitespace) share a cluster.

use arrow::array::{Array, ArrayRef};
use rayon::prelude::*;

use crate::error::{LakeError, Result};
use crate::text::{hash64, strings, Normalize};

/// The 128-bit hash of one row's values (`None`: null) after `normalize`: each value is
/// tagged null/present and ended by a separator, so no two rows of different values share
/// the bytes hashed. Exact dedup and the dedup index's `method="exact"` both key rows by it.
pub fn row_hash<'a>(values: impl Iterator<Item = Option<&'a str>>, normalize: Normalize) -> (u64, u64) {
    let mut buf: Vec<u8> = Vec::new();
    for v in values {
        match v {
            Some(s) => {
                buf.push(1);
                buf.extend_from_slice(normalize.apply(s).as_bytes());
            }
            None => buf.push(0),
        }
        buf.push(0x1f);
    }
    (hash64(&buf, 0x5eed_0001), hash64(&buf, 0x5eed_0002))
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
    let hashes: Vec<(u64, u64)> =
        (0..n).into_par_iter().map(|i| row_hash(texts.iter().map(|col| col[i]), normalize)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::clusters::cluster_columns;
    use arrow::array::StringArray;
    use std::sync::Arc;

    #[test]
    fn exact_groups_by_normalised_value() {
        let a: ArrayRef =
            Arc::new(StringArray::from(vec![Some("A  b"), Some("a b"), None, Some("c"), None, Some("a B ")]));
        let r = exact_roots(&[("t".into(), a.clone())], Normalize::all()).unwrap();
        assert_eq!(r, vec![0, 0, 2, 3, 2, 0]);
        let r = exact_roots(&[("t".into(), a)], Normalize::none()).unwrap();
        assert_eq!(r, vec![0, 1, 2, 3, 2, 5]);
        let (id, size, rep) = cluster_columns(&[0, 0, 2, 3, 2, 0], Some(&[1.0, 5.0, 0.0, 0.0, 0.0, 5.0]));
        assert_eq!(id, vec![0, 0, 2, 3, 2, 0]);
        assert_eq!(size, vec![3, 3, 2, 1, 2, 3]);
        assert_eq!(rep, vec![false, true, true, true, false, false]);
    }
}
