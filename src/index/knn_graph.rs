//! The k-nearest-neighbour graph of an index's live rows (semantic dedup, clustering).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::error::{LakeError, Result};
use crate::index::build::DEFAULT_EF;
use crate::index::handle::VectorIndex;
use crate::index::merge::SourceHit;
use crate::index::query::{check_k_ef, check_result_size, SearchParams, Stale};
use crate::index::search::{search_sources, Mode};
use crate::index::sources::{candidates, sources, SearchSource};
use crate::runtime::{pool, run_cpu, CancelToken};
use crate::vector::distance::Metric;

/// The sources a kNN graph searches (every segment of the index as stored, deleted rows
/// left out), the metric, and the `ef` its searches use (`ef`, by default
/// [`DEFAULT_EF`], at least `k + 1`).
pub(crate) async fn graph_sources(
    idx: &VectorIndex,
    k: usize,
    ef: Option<usize>,
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<(Arc<Vec<SearchSource>>, Metric, usize)> {
    check_k_ef(k, ef)?;
    let st = idx.state();
    let p = SearchParams {
        k,
        ef,
        filter: None,
        exact: false,
        version: None,
        stale: Stale::Ignore,
        columns: None,
        num_threads: threads,
        max_distance: None,
        rerank: None,
    };
    let srcs = Arc::new(sources(&idx.at, &st, None, &p, cancel).await?);
    Ok((srcs, st.manifest.metric, ef.unwrap_or(DEFAULT_EF.max(k + 1)).max(k + 1)))
}

/// The `k` nearest other rows of row `node` (source, node) of `srcs`, by a graph search with
/// beam `ef` (at least `k + 1`): one source row of a kNN graph, also what the semantic dedup
/// index searches per row (`dedup::index::semantic`), so both give the same lists.
pub(crate) fn node_knn(
    srcs: &[SearchSource],
    metric: Metric,
    node: (usize, u32),
    k: usize,
    ef: usize,
) -> Vec<SourceHit> {
    let q = srcs[node.0].segment.seg().vector_cow(node.1 as usize);
    search_sources(srcs, metric, &q, k, ef.max(k + 1), Mode::Graph(None, None), Some(node))
}

/// Every live row of `srcs` as (source, node), in source order.
pub(crate) fn live_nodes(srcs: &[SearchSource]) -> Vec<(usize, u32)> {
    srcs.iter()
        .enumerate()
        .flat_map(|(si, s)| {
            let n = s.segment.seg().len();
            (0..n as u32).filter(move |&i| s.allowed.as_ref().is_none_or(|a| a.get(i as usize))).map(move |i| (si, i))
        })
        .collect()
}

/// The k-nearest-neighbour graph of every live indexed row (as stored): for each row its
/// `k` nearest other rows. Columns `src_file`, `src_row`, `dst_file`, `dst_row`,
/// `distance`, `rank` (1 = nearest).
pub async fn knn_graph(
    idx: &VectorIndex,
    k: usize,
    ef: Option<usize>,
    threads: Option<usize>,
    rows: Option<std::ops::Range<usize>>,
    cancel: &CancelToken,
) -> Result<RecordBatch> {
    let (srcs, metric, ef) = graph_sources(idx, k, ef, threads, cancel).await?;
    let nodes = live_nodes(&srcs);
    let nodes = match rows {
        Some(r) if r.start > r.end || r.end > nodes.len() => {
            return Err(LakeError::InvalidArgument(format!(
                "rows {}..{} are outside the index's {} live rows",
                r.start,
                r.end,
                nodes.len()
            )))
        }
        Some(r) => nodes[r].to_vec(),
        None => nodes,
    };
    let (live, name) = candidates(&srcs);
    check_result_size(nodes.len(), k, live.saturating_sub(1), 2 * name, "knn_graph")?;
    let nodes = Arc::new(nodes);
    let (s2, c, n2) = (srcs.clone(), cancel.clone(), nodes.clone());
    let edges: Vec<Vec<SourceHit>> = run_cpu(pool(threads)?, cancel.clone(), move || {
        n2.par_iter()
            .map(|&(si, i)| {
                c.check()?;
                c.advance(1);
                Ok(node_knn(&s2, metric, (si, i), k, ef))
            })
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    let addr = |si: usize, i: u32| {
        let seg = srcs[si].segment.seg();
        (seg.files[seg.file_of(i)].as_str(), seg.rows[i as usize] as i64)
    };
    let (mut sf, mut sr, mut df, mut dr, mut dist, mut rank) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (&(si, i), es) in nodes.iter().zip(&edges) {
        let (f, r) = addr(si, i);
        for (ri, &(d, sj, j)) in es.iter().enumerate() {
            let (g, s) = addr(sj, j);
            sf.push(f);
            sr.push(r);
            df.push(g);
            dr.push(s);
            dist.push(d);
            rank.push(ri as i32 + 1);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("src_file", DataType::Utf8, false),
        Field::new("src_row", DataType::Int64, false),
        Field::new("dst_file", DataType::Utf8, false),
        Field::new("dst_row", DataType::Int64, false),
        Field::new("distance", DataType::Float32, false),
        Field::new("rank", DataType::Int32, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(sf)),
        Arc::new(Int64Array::from(sr)),
        Arc::new(StringArray::from(df)),
        Arc::new(Int64Array::from(dr)),
        Arc::new(Float32Array::from(dist)),
        Arc::new(Int32Array::from(rank)),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}
