//! Search over an index and a table version: the sources ([`crate::index::sources`]), a
//! search of each (dispatched on the segment's index kind), and the merge of their hits.

use std::sync::Arc;

use arrow::array::RecordBatch;
use rayon::prelude::*;

use crate::error::{LakeError, Result};
use crate::index::build::DEFAULT_EF;
use crate::index::handle::VectorIndex;
use crate::index::lake_rerank::{needs_lake, rerank_from_lake};
use crate::index::merge::{merge_hits, SourceHit};
use crate::index::output::assemble;
use crate::index::query::{check_k_ef, check_result_size, SearchParams, Stale, UNBOUNDED_K};
use crate::index::rerank::RerankSource;
use crate::index::sources::{candidates, sources, SearchSource};
use crate::index::state::IndexState;
use crate::lake::table::LakeTable;
use crate::runtime::{pool, resolve_threads, run_cpu, CancelToken};
use crate::vector::distance::Metric;
use crate::vector::hit::Hit;

/// Calls with at most this many queries over one segment walk its graph on the calling thread.
const INLINE_QUERIES: usize = 2;

/// Search one source: exact when asked (`exact`), else as the segment's index kind decides.
fn search_source(src: &SearchSource, metric: Metric, q: &[f32], k: usize, ef: usize, mode: Mode) -> Vec<Hit> {
    let seg = src.segment.seg();
    if src.allowed_count == 0 || seg.is_empty() {
        return Vec::new();
    }
    let allowed = src.allowed.as_ref();
    let mut hits = match mode {
        Mode::Exact(Some(r)) if k == UNBOUNDED_K => {
            return seg.index.scan(&seg.vectors, seg.dim, metric, q, k, Some(r), allowed)
        }
        Mode::Exact(_) => seg.index.scan(&seg.vectors, seg.dim, metric, q, k, None, allowed),
        Mode::Graph(_, rerank) => {
            seg.index.search(&seg.vectors, seg.dim, metric, q, k, ef, rerank, allowed, src.allowed_count)
        }
    };
    if let Mode::Exact(Some(r)) | Mode::Graph(Some(r), _) = mode {
        hits.retain(|h| h.0 <= r);
    }
    hits
}

/// How sources are searched: exactly or through their index, with an optional radius
/// (only hits within that distance); a quantized kind's graph search re-ranks this many
/// candidates (`None`: the kind's default).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    Exact(Option<f32>),
    Graph(Option<f32>, Option<usize>),
}

impl Mode {
    pub(crate) fn new(exact: bool, radius: Option<f32>, rerank: Option<usize>) -> Self {
        if exact {
            Mode::Exact(radius)
        } else {
            Mode::Graph(radius, rerank)
        }
    }
}

/// The `k` nearest hits to `q` over all `srcs`, merged ([`merge_hits`]); `skip` leaves out one
/// (source, node) (a kNN graph's query row).
pub(crate) fn search_sources(
    srcs: &[SearchSource],
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    mode: Mode,
    skip: Option<(usize, u32)>,
) -> Vec<SourceHit> {
    // one more per source when a row is skipped, so `k` remain
    let per_source = k.saturating_add(usize::from(skip.is_some()));
    if srcs.len() > 1 {
        // Segments in parallel (nested in a batch's parallel queries, rayon balances both).
        let lists: Vec<(usize, Vec<Hit>)> = srcs
            .par_iter()
            .enumerate()
            .map(|(si, src)| (si, search_source(src, metric, q, per_source, ef, mode)))
            .collect();
        return merge_hits(lists, k, skip);
    }
    let lists = srcs.iter().enumerate().map(|(si, src)| (si, search_source(src, metric, q, per_source, ef, mode)));
    merge_hits(lists, k, skip)
}

/// Search: returns the result batch (`query`, `rank`, `distance`, `_file`, `_row`, key,
/// requested columns).
/// `st` is the index state the queries were prepared for (one version for the whole call).
pub async fn search_index(
    idx: &VectorIndex,
    st: Arc<IndexState>,
    qs: Arc<Vec<f32>>,
    nq: usize,
    p: SearchParams,
    cancel: &CancelToken,
) -> Result<RecordBatch> {
    let m = &st.manifest;
    check_k_ef(p.k, p.ef)?;
    if p.num_threads.is_some() {
        resolve_threads(p.num_threads)?; // refuses 0 (the default is resolved only where used)
    }
    if p.k == UNBOUNDED_K && !(p.exact && p.max_distance.is_some()) {
        return Err(LakeError::InvalidArgument("k=None needs exact=True and max_distance".into()));
    }
    if p.max_distance.is_some_and(|r| r.is_nan()) {
        return Err(LakeError::InvalidArgument("max_distance is NaN".into()));
    }
    let ef = p.ef.unwrap_or(DEFAULT_EF.max(p.k)).max(p.k);
    let needs_table = p.filter.is_some() || p.version.is_some() || p.stale != Stale::Ignore || p.columns.is_some();
    let pin_version = p.version.or(if p.stale == Stale::Ignore { m.table_version } else { None });
    let pin_version = if m.table_format == "parquet" { None } else { pin_version };
    // The latest table comes from a cache checked by fingerprint; so do the sources
    // computed for it (unfiltered), so repeated searches do not re-read unindexed files.
    let (table, fingerprint): (Option<Arc<LakeTable>>, Option<String>) = match (needs_table, pin_version) {
        (false, _) => (None, None),
        (true, None) => {
            let l = idx.latest_table().await?;
            (Some(l.table.clone()), Some(l.fingerprint.clone()))
        }
        (true, Some(v)) => (Some(idx.table_at(Some(v)).await?), None),
    };
    let cache_key = match (&fingerprint, &p.filter) {
        (Some(f), None) => Some((m.version, format!("{f}|{:?}", p.stale))),
        _ => None,
    };
    let cached = cache_key.as_ref().and_then(|(v, f)| {
        let g = idx.sources_cache.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().filter(|(cv, cf, _)| cv == v && cf == f).map(|(_, _, s)| s.clone())
    });
    let srcs = match cached {
        Some(s) => s,
        None => {
            let s = Arc::new(sources(&idx.at, &st, table.as_deref(), &p, cancel).await?);
            if let Some((v, f)) = cache_key {
                *idx.sources_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((v, f, s.clone()));
            }
            s
        }
    };
    let (rows, name) = candidates(&srcs);
    if p.k != UNBOUNDED_K {
        check_result_size(nq, p.k, rows, name, "search")?;
    }
    let (k, mut mode, metric, dim) = (p.k, Mode::new(p.exact, p.max_distance, p.rerank), m.metric, m.dim);
    // Segments re-ranked from the lake hand out their best `rerank` (default ef) candidates by
    // code distance; the radius and the cut to k apply after their exact distances are read.
    // (An exact search scans every code, then re-ranks the same way.)
    let lake = p.rerank != Some(0) && needs_lake(&srcs);
    if lake && k == UNBOUNDED_K {
        return Err(LakeError::Unsupported(
            "k=None (every row within max_distance) over an index stored with rerank_source='lake': its \
             distances are only known for re-ranked candidates; pass k"
                .into(),
        ));
    }
    let k_walk = if lake { k.max(p.rerank.unwrap_or(ef)) } else { k };
    if lake {
        mode = Mode::new(p.exact, None, p.rerank);
    }
    let mut hits: Vec<Vec<SourceHit>> = if nq <= INLINE_QUERIES && srcs.len() == 1 && matches!(mode, Mode::Graph(..)) {
        // A few graph walks over one segment take microseconds: run them on this thread (GIL
        // released) rather than pay a hand-off to the pool and back.
        cancel.check()?;
        (0..nq).map(|qi| search_sources(&srcs, metric, &qs[qi * dim..(qi + 1) * dim], k_walk, ef, mode, None)).collect()
    } else {
        let (c, s2, q2) = (cancel.clone(), srcs.clone(), qs.clone());
        run_cpu(pool(p.num_threads)?, cancel.clone(), move || {
            (0..nq)
                .into_par_iter()
                .map(|qi| {
                    c.check()?;
                    let q = &q2[qi * dim..(qi + 1) * dim];
                    Ok(search_sources(&s2, metric, q, k_walk, ef, mode, None))
                })
                .collect()
        })
        .await?
    };
    if lake {
        let t = match &table {
            Some(t) => t.clone(),
            None => idx.table_at(if m.table_format == "parquet" { None } else { m.table_version }).await?,
        };
        let concurrency = resolve_threads(p.num_threads)? * 2;
        rerank_from_lake(&t, &m.column, metric, dim, &srcs, &qs, &mut hits, k, p.max_distance, concurrency).await?;
    }
    // Codes-only distances: a quantized segment without floats and not re-ranked from the
    // lake, or re-ranking turned off (rerank=0) outside an exact scan of sidecar floats.
    let estimated = srcs.iter().any(|s| {
        let ix = &s.segment.seg().index;
        ix.is_quantized()
            && match ix.rerank_source() {
                RerankSource::None => true,
                RerankSource::Lake => p.rerank == Some(0),
                RerankSource::Sidecar => p.rerank == Some(0) && !p.exact,
            }
    });
    assemble(&srcs, &hits, m, table.as_deref(), p.columns.as_deref(), p.num_threads, estimated).await
}
