//! `DedupIndex.check`: which rows of a batch not yet written would join stored clusters,
//! without modifying the index.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::dedup::index::matching::{components, Buckets};
use crate::dedup::index::ops::{best_match, matched_columns, DedupIndex};
use crate::dedup::minhash::UnionFind;
use crate::error::{LakeError, Result};
use crate::runtime::CancelToken;
use crate::text::strings;

/// One row per text of `texts` (a text array named `column` in errors): `row` (its position),
/// `duplicate_of_existing` (its component in stored rows + the batch holds a stored row),
/// `cluster_id` (that stored cluster's id, the smallest when it joins several, which a refresh
/// would merge; else `-1 - p` for `p` the first batch position of its component, shared
/// within the batch), `matched_file`, `matched_row`, `jaccard_estimate` (a stored row it
/// matched directly: of the rows found, one per stored cluster it joins, the most similar;
/// null when none). CPU work; run it on lakevec's pool.
pub fn check(idx: &DedupIndex, texts: &ArrayRef, column: &str, cancel: &CancelToken) -> Result<RecordBatch> {
    let p = &idx.manifest.params;
    let h = p.hasher()?;
    let t = strings(texts, column)?;
    let n = t.len();
    if n >= u32::MAX as usize / 2 {
        return Err(LakeError::InvalidArgument(format!("{n} rows are too many for one check; pass batches")));
    }
    let (sigs, valid) = h.signatures(&t, cancel)?;
    let sig = |i: usize| valid[i].then(|| &sigs[i * p.num_perm..(i + 1) * p.num_perm]);
    let local = components(&(0..n).map(sig).collect::<Vec<_>>(), p)?;
    let c = &idx.clusters;
    let buckets = Buckets::new(&idx.segments, &idx.bases, &c.live, &c.root, p.bands, p.rows);
    let sig_of = |g: u64| idx.sig(g);
    let hits: Vec<Vec<(u64, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| sig(i).map(|s| buckets.matches(s, p.threshold, &sig_of)).unwrap_or_default())
        .collect();
    cancel.check()?;
    // Union-find over batch rows (0..n) and the stored clusters they touch (n..).
    let mut stored: HashMap<u64, u32> = HashMap::new();
    let mut stored_root: Vec<u64> = Vec::new();
    let mut uf_edges: Vec<(u32, u32)> = Vec::new();
    for (i, hs) in hits.iter().enumerate() {
        for &(g, _) in hs {
            let r = idx.clusters.root[g as usize];
            let next = (n + stored_root.len()) as u32;
            let node = *stored.entry(r).or_insert_with(|| {
                stored_root.push(r);
                next
            });
            uf_edges.push((i as u32, node));
        }
    }
    let mut uf = UnionFind::new(n + stored_root.len());
    for (i, &r) in local.iter().enumerate() {
        uf.union(i as u32, r);
    }
    for &(a, b) in &uf_edges {
        uf.union(a, b);
    }
    // Per set: the smallest stored root in it, if any.
    let mut best: HashMap<u32, u64> = HashMap::new();
    for (j, &r) in stored_root.iter().enumerate() {
        let s = uf.find((n + j) as u32);
        best.entry(s).and_modify(|b| *b = (*b).min(r)).or_insert(r);
    }
    let mut dup = Vec::with_capacity(n);
    let mut cid = Vec::with_capacity(n);
    for i in 0..n {
        let s = uf.find(i as u32);
        match best.get(&s) {
            Some(&r) => {
                dup.push(true);
                cid.push(r as i64);
            }
            // sets are rooted at their smallest member: a batch row when no stored one joined
            None => {
                dup.push(false);
                cid.push(-1 - s as i64);
            }
        }
    }
    let matched: Vec<Option<(u64, f64)>> = hits.iter().map(|hs| best_match(hs)).collect();
    let (mfields, mcols) = matched_columns(idx, &matched);
    let mut fields = vec![
        Field::new("row", DataType::Int64, false),
        Field::new("duplicate_of_existing", DataType::Boolean, false),
        Field::new("cluster_id", DataType::Int64, false),
    ];
    fields.extend(mfields);
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
        Arc::new(BooleanArray::from(dup)),
        Arc::new(Int64Array::from(cid)),
    ];
    cols.extend(mcols);
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, cols)?)
}
