//! Search over an index and a table version: which rows are allowed (not deleted in the
//! searched version, passing the filter), which live files the index lacks (searched
//! exactly, `stale="exact"`), graph or exact search per segment, and the merge.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::StreamExt;
use rayon::prelude::*;

use crate::ann::{self, Bits, Hit};
use crate::datafiles::DataFileEntry;
use crate::delta::TablePin;
use crate::distance::Metric;
use crate::error::{LakeError, Result};
use crate::index::{deleted_nodes, missing_files, IndexState, VectorIndex, DEFAULT_EF};
use crate::index_read::{read_segment, ReadSpec};
use crate::rowaddr::AddressScan;
use crate::runtime::{pool, run_cpu, CancelToken};
use crate::segment::Segment;
use crate::table::{Format, LakeTable};
use crate::vectors::prepared_rows;

/// Largest `k` and `ef` accepted (a result of k rows per query is materialised).
pub const MAX_K: usize = 100_000;

fn check_k_ef(k: usize, ef: Option<usize>) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(LakeError::InvalidArgument(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    if let Some(ef) = ef {
        if ef == 0 || ef > MAX_K {
            return Err(LakeError::InvalidArgument(format!("ef must be in 1..={MAX_K}, got {ef}")));
        }
    }
    Ok(())
}

/// What a search does with table files the index does not cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Search them exactly and merge (correct for any version).
    Exact,
    /// Search only what the index holds (deleted rows are still never returned).
    Ignore,
    /// Raise `StaleIndex`.
    Error,
}

impl Stale {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Stale::Exact),
            "ignore" => Ok(Stale::Ignore),
            "error" => Ok(Stale::Error),
            o => Err(LakeError::InvalidArgument(format!("stale must be 'exact', 'ignore' or 'error', not '{o}'"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SearchParams {
    pub k: usize,
    pub ef: Option<usize>,
    pub filter: Option<String>,
    pub exact: bool,
    pub version: Option<i64>,
    pub stale: Stale,
    pub columns: Option<Vec<String>>,
    pub num_threads: Option<usize>,
}

/// One searchable source: an index segment or the rows of unindexed files.
pub struct Source {
    seg: Arc<SegmentRef>,
    /// None: every node allowed.
    allowed: Option<Bits>,
    allowed_count: usize,
}

/// Either an index segment (shared) or a freshly read one.
pub enum SegmentRef {
    Shared(Arc<crate::index::LoadedSegment>),
    Own(Segment),
}

impl SegmentRef {
    fn seg(&self) -> &Segment {
        match self {
            SegmentRef::Shared(s) => &s.seg,
            SegmentRef::Own(s) => s,
        }
    }
}

/// Parse query vectors (a list array) into prepared rows of `dim`: `(rows, count)`.
pub fn queries(array: &ArrayRef, dim: usize, metric: Metric) -> Result<(Vec<f32>, usize)> {
    let (data, _) = prepared_rows(array, "queries", Some(dim), metric, &|i| format!("query {i}"))?;
    let n = data.len() / dim;
    Ok((data, n))
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
async fn sources(
    idx: &VectorIndex,
    st: &Arc<IndexState>,
    table: Option<&LakeTable>,
    p: &SearchParams,
    cancel: &CancelToken,
) -> Result<Vec<Source>> {
    let m = &st.manifest;
    let threads = crate::runtime::resolve_threads(p.num_threads)?;
    let Some(table) = table else {
        return Ok(st
            .segments
            .iter()
            .map(|s| Source {
                allowed: (s.live_count < s.seg.len()).then(|| s.live.clone()),
                allowed_count: s.live_count,
                seg: Arc::new(SegmentRef::Shared(s.clone())),
            })
            .collect());
    };
    let entries = table.entries().await?;
    let by_path: HashMap<&str, &DataFileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let covered = table.format != Format::Parquet && table.version() == m.table_version;
    let mut live: Vec<Bits> = Vec::with_capacity(st.segments.len());
    let mut stale_rows = false;
    for s in &st.segments {
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
    let missing = missing_files(&st.segments, &entries);
    if p.stale == Stale::Error && (!missing.is_empty() || stale_rows) {
        return Err(LakeError::StaleIndex(format!(
            "the index at '{}' covers table version {:?}, but the searched version {:?} has {} unindexed data files{}; \
             call refresh() or search with stale='exact'",
            idx.at.uri,
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
    let mut out = Vec::with_capacity(st.segments.len() + 1);
    for (s, mut b) in st.segments.iter().zip(live) {
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
        out.push(Source {
            allowed: (count < s.seg.len()).then_some(b),
            allowed_count: count,
            seg: Arc::new(SegmentRef::Shared(s.clone())),
        });
    }
    if !missing.is_empty() && p.stale == Stale::Exact {
        let spec = ReadSpec {
            column: &m.column,
            key: m.key.as_deref(),
            metric: m.metric,
            on_invalid: m.on_invalid,
            dim: Some(m.dim),
            filter: p.filter.as_deref(),
            concurrency: threads * 2,
        };
        let (seg, _) = read_segment(table, &missing, &spec, cancel, &AtomicUsize::new(0)).await?;
        let n = seg.len();
        out.push(Source { seg: Arc::new(SegmentRef::Own(seg)), allowed: None, allowed_count: n });
    }
    Ok(out)
}

/// Graph or exact search of one source.
fn search_source(src: &Source, metric: Metric, q: &[f32], k: usize, ef: usize, exact: bool) -> Vec<Hit> {
    let seg = src.seg.seg();
    let n = seg.len();
    if src.allowed_count == 0 || n == 0 {
        return Vec::new();
    }
    let allowed = src.allowed.as_ref();
    let s = src.allowed_count as f64 / n as f64;
    // Exact when the allowed rows are fewer than the distance computations a filtered graph
    // walk would make (about ef * m0 / selectivity, a quarter of them new).
    let graph_cost = (ef as f64) * (seg.graph.m0 as f64) / (4.0 * s);
    if exact || seg.graph.n != n || (src.allowed_count as f64) <= graph_cost {
        return ann::exact(&seg.vectors, seg.dim, metric, q, k, allowed);
    }
    let hits = ann::search(&seg.graph, &seg.vectors, seg.dim, metric, q, k, ef, allowed);
    if hits.len() < k.min(src.allowed_count) {
        return ann::exact(&seg.vectors, seg.dim, metric, q, k, allowed);
    }
    hits
}

/// Search: returns the result batch (`query`, `rank`, `distance`, `_file`, `_row`, key,
/// requested columns).
/// `st` is the index state the queries were prepared for (one version for the whole call).
pub async fn search(
    idx: &VectorIndex,
    st: Arc<IndexState>,
    qs: Arc<Vec<f32>>,
    nq: usize,
    p: SearchParams,
    cancel: &CancelToken,
) -> Result<RecordBatch> {
    let m = st.manifest.clone();
    check_k_ef(p.k, p.ef)?;
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
        (true, Some(v)) => (Some(Arc::new(idx.open_table(TablePin { version: Some(v), timestamp: None }).await?)), None),
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
            let s = Arc::new(sources(idx, &st, table.as_deref(), &p, cancel).await?);
            if let Some((v, f)) = cache_key {
                *idx.sources_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((v, f, s.clone()));
            }
            s
        }
    };
    let (k, exact, metric, dim) = (p.k, p.exact, m.metric, m.dim);
    let c = cancel.clone();
    let s2 = srcs.clone();
    let hits: Vec<Vec<(f32, usize, u32)>> = run_cpu(pool(p.num_threads)?, cancel.clone(), move || {
        (0..nq)
            .into_par_iter()
            .map(|qi| {
                c.check()?;
                let q = &qs[qi * dim..(qi + 1) * dim];
                let mut all: Vec<(f32, usize, u32)> = Vec::new();
                for (si, src) in s2.iter().enumerate() {
                    all.extend(search_source(src, metric, q, k, ef, exact).into_iter().map(|h| (h.0, si, h.1)));
                }
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                all.truncate(k);
                Ok(all)
            })
            .collect()
    })
    .await?;
    assemble(&srcs, &hits, &m, table.as_deref(), p.columns.as_deref(), p.num_threads).await
}

async fn assemble(
    srcs: &[Source],
    hits: &[Vec<(f32, usize, u32)>],
    m: &crate::manifest::Manifest,
    table: Option<&LakeTable>,
    columns: Option<&[String]>,
    threads: Option<usize>,
) -> Result<RecordBatch> {
    let total: usize = hits.iter().map(|h| h.len()).sum();
    let (mut qcol, mut rank, mut dist, mut files, mut rows) =
        (Vec::with_capacity(total), Vec::with_capacity(total), Vec::with_capacity(total), Vec::with_capacity(total), Vec::with_capacity(total));
    let mut key_ix: Vec<(usize, usize)> = Vec::with_capacity(total);
    for (qi, hs) in hits.iter().enumerate() {
        for (r, &(d, si, node)) in hs.iter().enumerate() {
            let seg = srcs[si].seg.seg();
            qcol.push(qi as i64);
            rank.push(r as i32 + 1);
            dist.push(d);
            files.push(seg.files[seg.file_of(node)].as_str());
            rows.push(seg.rows[node as usize] as i64);
            key_ix.push((si, node as usize));
        }
    }
    let mut fields = vec![
        Field::new("query", DataType::Int64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("distance", DataType::Float32, false),
        Field::new("_file", DataType::Utf8, false),
        Field::new("_row", DataType::Int64, false),
    ];
    let file_strings: Vec<String> = files.iter().map(|s| s.to_string()).collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(qcol)),
        Arc::new(Int32Array::from(rank)),
        Arc::new(Float32Array::from(dist)),
        Arc::new(StringArray::from(files)),
        Arc::new(Int64Array::from(rows.clone())),
    ];
    if let Some(key) = &m.key {
        let arrays: Vec<&dyn Array> = srcs
            .iter()
            .map(|s| s.seg.seg().keys.as_deref().ok_or_else(|| LakeError::CorruptIndex("a segment lacks its keys".into())))
            .collect::<Result<_>>()?;
        let k = arrow::compute::interleave(&arrays, &key_ix)?;
        fields.push(Field::new(key, k.data_type().clone(), true));
        cols.push(k);
    }
    if let (Some(columns), Some(table)) = (columns, table) {
        let wanted: Vec<String> = columns.iter().filter(|c| !fields.iter().any(|f| f.name() == *c)).cloned().collect();
        if !wanted.is_empty() {
            let concurrency = crate::runtime::resolve_threads(threads)? * 2;
            let (_, fetched) = crate::rowaddr::take(table, &file_strings, &rows, Some(&wanted), concurrency).await?;
            for c in &wanted {
                let i = fetched.schema().index_of(c)?;
                fields.push(fetched.schema().field(i).clone());
                cols.push(fetched.column(i).clone());
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
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
    check_k_ef(k, ef)?;
    let st = idx.state();
    let srcs = Arc::new(sources(idx, &st, None, &SearchParams {
        k, ef, filter: None, exact: false, version: None, stale: Stale::Ignore, columns: None, num_threads: threads,
    }, cancel).await?);
    let metric = st.manifest.metric;
    let ef = ef.unwrap_or(DEFAULT_EF.max(k + 1)).max(k + 1);
    let nodes: Vec<(usize, u32)> = srcs
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            let n = s.seg.seg().len();
            (0..n as u32).filter(move |&i| s.allowed.as_ref().is_none_or(|a| a.get(i as usize))).map(move |i| (si, i))
        })
        .collect();
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
    let nodes = Arc::new(nodes);
    let (s2, c, n2) = (srcs.clone(), cancel.clone(), nodes.clone());
    let edges: Vec<Vec<(f32, usize, u32)>> = run_cpu(pool(threads)?, cancel.clone(), move || {
        n2
            .par_iter()
            .map(|&(si, i)| {
                c.check()?;
                let q = s2[si].seg.seg().vector(i as usize);
                let mut all: Vec<(f32, usize, u32)> = Vec::new();
                for (sj, src) in s2.iter().enumerate() {
                    all.extend(search_source(src, metric, q, k + 1, ef, false).into_iter().map(|h| (h.0, sj, h.1)));
                }
                all.retain(|&(_, sj, j)| !(sj == si && j == i));
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                all.truncate(k);
                Ok(all)
            })
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    let addr = |si: usize, i: u32| {
        let seg = srcs[si].seg.seg();
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
