//! The tables dedup returns: per row its cluster (id, size, representative), and the pairs
//! that joined clusters.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use crate::dedup::minhash::Pair;
use crate::error::{LakeError, Result};

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
