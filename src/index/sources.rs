//! The sources of a search: each index segment with the rows it may return (not deleted in
//! the searched table version, passing the filter), plus the rows of live files the index
//! does not cover yet (read from the lake, searched exactly, `stale="exact"`).

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use futures::StreamExt;

use crate::error::{LakeError, Result};
use crate::index::ingest::{read_segment, ReadSpec};
use crate::index::liveness::{deleted_nodes, missing_files};
use crate::index::location::IndexAt;
use crate::index::query::{SearchParams, Stale};
use crate::index::segment::Segment;
use crate::index::state::{IndexState, LoadedSegment};
use crate::lake::datafiles::DataFileEntry;
use crate::lake::table::{Format, LakeTable};
use crate::read::rowaddr::AddressScan;
use crate::runtime::{resolve_threads, CancelToken};
use crate::vector::bits::Bits;

/// One searchable source: an index segment or the rows of unindexed files.
pub struct SearchSource {
    pub(crate) segment: Arc<SearchSegment>,
    /// None: every node allowed.
    pub(crate) allowed: Option<Bits>,
    pub(crate) allowed_count: usize,
}

/// Either an index segment (shared) or a freshly read one.
pub enum SearchSegment {
    Shared(Arc<LoadedSegment>),
    Own(Box<Segment>),
}

/// Live candidate rows of `srcs` and the longest file name among them (for result bounds).
pub(crate) fn candidates(srcs: &[SearchSource]) -> (usize, usize) {
    let rows = srcs.iter().map(|s| s.allowed_count).sum();
    let name = srcs.iter().flat_map(|s| s.segment.seg().files.iter().map(|f| f.len())).max().unwrap_or(0);
    (rows, name)
}

impl SearchSegment {
    pub(crate) fn seg(&self) -> &Segment {
        match self {
            SearchSegment::Shared(s) => &s.seg,
            SearchSegment::Own(s) => s,
        }
    }
}

/// Rows allowed by `filter` in `table`: path -> sorted rows.
async fn filter_rows(table: &LakeTable, filter: &str, concurrency: usize) -> Result<HashMap<String, Vec<u64>>> {
    let scan = Arc::new(AddressScan::new(table, Some(&[] as &[String]), Some(filter), 8192).await?);
    let entries = scan.entries.clone();
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    let mut stream = scan.stream(concurrency);
    let mut i = 0;
    while let Some(batches) = stream.next().await {
        let rows = out.entry(entries[i].path.clone()).or_default();
        for b in batches? {
            let r = b.column(b.num_columns() - 1).as_primitive::<Int64Type>();
            rows.extend(r.values().iter().map(|&x| x as u64));
        }
        i += 1;
    }
    Ok(out)
}

/// Sources for a search of `table`'s version (or of the index as stored when `table` is None).
pub(crate) async fn sources(
    at: &IndexAt,
    st: &Arc<IndexState>,
    table: Option<&LakeTable>,
    p: &SearchParams,
    cancel: &CancelToken,
) -> Result<Vec<SearchSource>> {
    let m = &st.manifest;
    let index_uri = &at.uri;
    let segs = st.segments(at).await?;
    let Some(table) = table else {
        return Ok(segs
            .iter()
            .map(|s| SearchSource {
                allowed: (s.live_count < s.seg.len()).then(|| s.live.clone()),
                allowed_count: s.live_count,
                segment: Arc::new(SearchSegment::Shared(s.clone())),
            })
            .collect());
    };
    let threads = resolve_threads(p.num_threads)?;
    let entries = table.entries().await?;
    let by_path: HashMap<&str, &DataFileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let covered = table.format != Format::Parquet && table.version() == m.table_version;
    let mut live: Vec<Bits> = Vec::with_capacity(segs.len());
    let mut stale_rows = false;
    for s in &segs {
        if covered {
            live.push(s.live.clone());
        } else {
            let mut b = Bits::new(s.seg.len(), true);
            for d in deleted_nodes(&s.seg, &by_path)? {
                b.set(d as usize, false);
            }
            stale_rows |= b != s.live;
            live.push(b);
        }
    }
    let missing = missing_files(&segs, &entries);
    if p.stale == Stale::Error && (!missing.is_empty() || stale_rows) {
        return Err(LakeError::StaleIndex(format!(
            "the index at '{}' covers table version {:?}, but the searched version {:?} has {} unindexed data files{}; \
             call refresh() or search with stale='exact'",
            index_uri,
            m.table_version,
            table.version(),
            missing.len(),
            if stale_rows { " and newly deleted rows" } else { "" }
        )));
    }
    let allowed_rows = match &p.filter {
        Some(f) => Some(filter_rows(table, f, threads * 2).await?),
        None => None,
    };
    let mut out = Vec::with_capacity(segs.len() + 1);
    for (s, mut b) in segs.iter().zip(live) {
        if let Some(ar) = &allowed_rows {
            let mut fb = Bits::new(s.seg.len(), false);
            for (f, path) in s.seg.files.iter().enumerate() {
                for &r in ar.get(path).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if let Some(node) = s.seg.node_of(f, r) {
                        fb.set(node as usize, true);
                    }
                }
            }
            b = b.and(&fb);
        }
        let count = b.count();
        out.push(SearchSource {
            allowed: (count < s.seg.len()).then_some(b),
            allowed_count: count,
            segment: Arc::new(SearchSegment::Shared(s.clone())),
        });
    }
    if !missing.is_empty() && p.stale == Stale::Exact {
        let spec = ReadSpec { filter: p.filter.as_deref(), ..ReadSpec::for_index(m, threads * 2) };
        let (seg, _) = read_segment(table, &missing, &spec, cancel, &AtomicUsize::new(0)).await?;
        let n = seg.len();
        out.push(SearchSource {
            segment: Arc::new(SearchSegment::Own(Box::new(seg))),
            allowed: None,
            allowed_count: n,
        });
    }
    Ok(out)
}
