//! Re-ranking from the lake: the candidates of segments stored with
//! `rerank_source="lake"` (codes, no float copy) get their exact distances from the float
//! vectors read back from the table itself, by row address.
//!
//! One call reads every candidate of every query at once: the (file, row) pairs are deduplicated
//! and fetched with [`take`] (per file one sorted read of the vector column through a Parquet
//! row selection: only the pages holding those rows), at the table version the search uses.

use std::collections::HashMap;

use crate::error::{LakeError, Result};
use crate::index::merge::SourceHit;
use crate::index::rerank::RerankSource;
use crate::index::sources::SearchSource;
use crate::lake::table::LakeTable;
use crate::read::rowaddr::take;
use crate::vector::column::prepared_rows;
use crate::vector::distance::Metric;

/// Whether any source is a segment whose candidates are re-ranked from the lake.
pub(crate) fn needs_lake(srcs: &[SearchSource]) -> bool {
    srcs.iter().any(is_lake)
}

fn is_lake(s: &SearchSource) -> bool {
    s.segment.seg().index.rerank_source() == RerankSource::Lake
}

/// Candidates whose vectors one read fetches at most (with 384-d vectors, 100 MB of floats):
/// a batch of queries is re-ranked in groups of queries that stay within it.
pub const READ_ROWS: usize = 65_536;

/// Replace the distances of `hits[qi]` that come from lake-re-ranked segments by the exact
/// distances to `qs[qi]` (rows of `dim`, prepared for `metric`), computed from `column` of
/// `table`; then sort each list, keep hits within `radius` and cut it to `k`. Queries are
/// taken in groups whose candidates number at most [`READ_ROWS`] (one group holds at least
/// one query): each group's vectors are fetched, used and dropped before the next, so what
/// stays resident is one group's vectors and its Arrow batch.
///
/// Errors: a candidate row that is no longer in `table` (a file removed or the row deleted) or
/// a vector that is no longer valid is an error naming the file and row.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rerank_from_lake(
    table: &LakeTable,
    column: &str,
    metric: Metric,
    dim: usize,
    srcs: &[SearchSource],
    qs: &[f32],
    hits: &mut [Vec<SourceHit>],
    k: usize,
    radius: Option<f32>,
    concurrency: usize,
) -> Result<()> {
    let mut start = 0;
    while start < hits.len() {
        let mut end = start + 1;
        let mut rows = hits[start].len();
        while end < hits.len() && rows + hits[end].len() <= READ_ROWS {
            rows += hits[end].len();
            end += 1;
        }
        let group = &mut hits[start..end];
        rerank_group(table, column, metric, dim, srcs, &qs[start * dim..end * dim], group, concurrency).await?;
        start = end;
    }
    for list in hits.iter_mut() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        if let Some(r) = radius {
            list.retain(|h| h.0 <= r);
        }
        list.truncate(k);
    }
    Ok(())
}

/// Exact distances for the lake-re-ranked hits of one group of queries (`qs`: theirs).
#[allow(clippy::too_many_arguments)]
async fn rerank_group(
    table: &LakeTable,
    column: &str,
    metric: Metric,
    dim: usize,
    srcs: &[SearchSource],
    qs: &[f32],
    hits: &mut [Vec<SourceHit>],
    concurrency: usize,
) -> Result<()> {
    // unique candidates -> their position in the fetch
    let mut at: HashMap<(usize, u32), usize> = HashMap::new();
    let (mut files, mut rows) = (Vec::new(), Vec::new());
    for &(_, si, node) in hits.iter().flatten() {
        if !is_lake(&srcs[si]) || at.contains_key(&(si, node)) {
            continue;
        }
        let seg = srcs[si].segment.seg();
        at.insert((si, node), files.len());
        files.push(seg.files[seg.file_of(node)].clone());
        rows.push(seg.rows[node as usize] as i64);
    }
    if files.is_empty() {
        return Ok(());
    }
    let batch = take(table, &files, &rows, Some(&[column.to_string()]), concurrency).await?;
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| LakeError::Internal(format!("the rows read back from the lake lack column '{column}'")))?;
    let name_row = |i: usize| format!("file '{}' row {}", files[i], rows[i]);
    let (vectors, d) = prepared_rows(array, column, Some(dim), metric, &name_row)?;
    if d != dim || vectors.len() != files.len() * dim {
        return Err(LakeError::Internal(format!(
            "{} vectors of dimension {d} read back for {} candidates of dimension {dim}",
            vectors.len() / d.max(1),
            files.len()
        )));
    }
    for (qi, list) in hits.iter_mut().enumerate() {
        let q = &qs[qi * dim..(qi + 1) * dim];
        for h in list.iter_mut() {
            if let Some(&j) = at.get(&(h.1, h.2)) {
                h.0 = metric.distance(q, &vectors[j * dim..(j + 1) * dim]);
            }
        }
    }
    Ok(())
}
