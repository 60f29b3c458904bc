//! Building an index: what to build ([`BuildSpec`]), building a segment's structure on
//! lakevec's pool ([`build_structure`]) and the single-process build of a whole table.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::budget::Budget;
use crate::index::handle::VectorIndex;
use crate::index::ingest::{check_vector_columns, read_segment, ReadSpec};
use crate::index::kind::IndexKind;
use crate::index::location::{indexed_table_url, IndexAt};
use crate::index::manifest::{self, CommitInfo, Manifest, SegmentRef};
use crate::index::segment::Segment;
use crate::index::state::{IndexState, LoadedSegment};
use crate::index::store::write_segment;
use crate::lake::table::LakeTable;
use crate::runtime::{pool, resolve_threads, run_cpu, CancelToken};
use crate::vector::column::OnInvalid;
use crate::vector::distance::Metric;
use crate::vector::exact::exact_many;

/// Sample size of the recall estimate stored at build.
const RECALL_SAMPLE: usize = 200;
/// Default beam width of searches.
pub const DEFAULT_EF: usize = 64;

/// The phases of a long call, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading vectors from the lake.
    Read = 0,
    /// Building the index kind's structure (HNSW: the graph).
    Build = 1,
    /// Writing the index files and the manifest.
    Write = 2,
}

impl Phase {
    /// The name a progress callback receives: "read", "build" or "write".
    pub fn name(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Build => "build",
            Phase::Write => "write",
        }
    }
}

/// Progress of a long call, read by the Python side while it waits.
#[derive(Default, Debug)]
pub struct Progress {
    phase: AtomicU8,
    /// Rows done in the current phase, and the phase's total (0 when unknown).
    pub done: AtomicUsize,
    pub total: AtomicUsize,
}

impl Progress {
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Read,
            1 => Phase::Build,
            _ => Phase::Write,
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildSpec {
    pub name: String,
    pub column: String,
    pub key: Option<String>,
    pub metric: Metric,
    pub kind: IndexKind,
    pub on_invalid: OnInvalid,
}

impl BuildSpec {
    /// The spec an existing index was built with (what its refreshes build).
    pub fn of(m: &Manifest) -> Self {
        BuildSpec {
            name: m.name.clone(),
            column: m.column.clone(),
            key: m.key.clone(),
            metric: m.metric,
            kind: m.kind.clone(),
            on_invalid: m.on_invalid,
        }
    }

    /// What reading vectors for this spec needs (`dim`: the known dimension, if any).
    pub(crate) fn read_spec(&self, dim: Option<usize>, threads: Option<usize>) -> Result<ReadSpec<'_>> {
        Ok(ReadSpec {
            column: &self.column,
            key: self.key.as_deref(),
            metric: self.metric,
            on_invalid: self.on_invalid,
            dim,
            filter: None,
            concurrency: resolve_threads(threads)? * 2,
            expected_rows: 0,
        })
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Build the search structure of a read segment as `kind` on lakevec's pool; returns it with
/// a recall estimate when `estimate`.
pub(crate) async fn build_structure(
    mut seg: Segment,
    metric: Metric,
    kind: &IndexKind,
    threads: Option<usize>,
    cancel: &CancelToken,
    progress: &Arc<Progress>,
    estimate: bool,
) -> Result<(Segment, Option<f64>)> {
    let p = pool(threads)?;
    let (c, pr, kind) = (cancel.clone(), progress.clone(), kind.clone());
    pr.set_phase(Phase::Build);
    pr.done.store(0, Ordering::Relaxed);
    pr.total.store(seg.len(), Ordering::Relaxed);
    let p2 = p.clone();
    run_cpu(p, cancel.clone(), move || {
        seg.index = kind.build(&seg.vectors, seg.dim, metric, &p2, &c, &pr.done)?;
        let recall = if estimate { Some(recall_estimate(&seg, metric)) } else { None };
        // A kind stored without floats searches as its reloaded file will.
        seg.drop_floats_if_unstored();
        Ok((seg, recall))
    })
    .await
}

/// recall@10 of the kind's approximate search (ef = [`DEFAULT_EF`]) against exact search,
/// for up to [`RECALL_SAMPLE`] evenly spaced indexed rows used as queries, in parallel on the
/// current rayon pool. A compressed kind stored with `rerank_source=None` is measured as its
/// segment will search: on codes, without re-ranking.
fn recall_estimate(seg: &Segment, metric: Metric) -> f64 {
    use rayon::prelude::*;
    let n = seg.len();
    if n == 0 {
        return 1.0;
    }
    let step = (n / RECALL_SAMPLE).max(1);
    let sample: Vec<&[f32]> = (0..n).step_by(step).take(RECALL_SAMPLE).map(|i| seg.vector(i)).collect();
    let truths = exact_many(&seg.vectors, seg.dim, metric, &sample, 10);
    // (a segment re-ranked from the lake is measured with the floats still in memory: the
    // same candidates, re-ranked as the lake's vectors will re-rank them)
    let rerank = (seg.index.rerank_source() == crate::index::rerank::RerankSource::None).then_some(0);
    let (hit, total) = sample
        .par_iter()
        .zip(&truths)
        .map(|(q, truth)| {
            let got = seg.index.approximate(&seg.vectors, seg.dim, metric, q, 10, DEFAULT_EF, rerank, None);
            (got.iter().filter(|h| truth.iter().any(|t| t.1 == h.1)).count(), truth.len())
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    hit as f64 / total.max(1) as f64
}

/// Check that an index per `spec` can be built over `table` (parameters, columns, no glob);
/// returns the vector dimension when the column's type fixes it.
pub fn check_buildable(table: &LakeTable, spec: &BuildSpec) -> Result<Option<usize>> {
    spec.kind.check()?;
    if table.location.glob.is_some() {
        return Err(LakeError::Unsupported(format!(
            "an index over a glob ('{}') is not supported: index the folder, or one file",
            table.uri
        )));
    }
    check_vector_columns(table, &spec.column, spec.key.as_deref())
}

/// The manifest of a new build of `table` per `spec` (version 0: set at commit).
pub(crate) fn new_manifest(
    table: &LakeTable,
    spec: &BuildSpec,
    dim: usize,
    segments: Vec<SegmentRef>,
    commit: CommitInfo,
    recall: Option<f64>,
) -> Manifest {
    Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        version: 0,
        writer_id: manifest::new_id(),
        name: spec.name.clone(),
        table_uri: indexed_table_url(table),
        table_format: table.format.as_str().into(),
        table_version: table.version(),
        column: spec.column.clone(),
        key: spec.key.clone(),
        metric: spec.metric,
        dim,
        kind: spec.kind.clone(),
        on_invalid: spec.on_invalid,
        segments,
        commit,
        recall_estimate: recall.map(manifest::round_estimate),
    }
}

/// Publish `m` as the next version at `at` (put-if-absent) and return the opened index, with
/// `segments` (one per manifest entry) already loaded.
pub(crate) async fn publish(at: IndexAt, m: Manifest, segments: Vec<Arc<LoadedSegment>>) -> Result<VectorIndex> {
    let m = commit_new(&at, m).await?;
    Ok(VectorIndex::with_state(at, IndexState::loaded(m, segments)))
}

/// [`publish`], the segments left to load on first use.
pub(crate) async fn publish_lazy(at: IndexAt, m: Manifest) -> Result<VectorIndex> {
    let m = commit_new(&at, m).await?;
    Ok(VectorIndex::with_state(at, IndexState::lazy(m)))
}

/// Commit `m` as the version after the newest at `at`.
async fn commit_new(at: &IndexAt, mut m: Manifest) -> Result<Manifest> {
    m.version = manifest::next_version(manifest::latest_version(&at.store, at.root()).await?.unwrap_or(0))?;
    let local = at.local_file(&manifest::manifest_path(at.root(), m.version));
    manifest::commit(&at.store, at.root(), &m, local).await?;
    Ok(m)
}

impl VectorIndex {
    /// Build an index over `table` and commit it as the next version at `at`, streaming: the
    /// data files are cut into segments that fit `budget` ([`Budget::plan`]); each is read,
    /// built, written and dropped before the next is read. A one-segment index stays loaded;
    /// with several, the returned index maps them on first use.
    #[allow(clippy::too_many_arguments)]
    pub async fn build(
        table: &LakeTable,
        at: IndexAt,
        spec: BuildSpec,
        threads: Option<usize>,
        budget: Budget,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<Self> {
        let mut dim = check_buildable(table, &spec)?;
        let entries = table.entries().await?;
        progress.total.store(table.num_rows().await? as usize, Ordering::Relaxed);
        let all: Vec<usize> = (0..entries.len()).collect();
        let mut groups = budget.plan(&entries, &all, dim, &spec.kind).into_iter();
        let mut refs = Vec::new();
        let mut kept: Option<Arc<LoadedSegment>> = None;
        let (mut rows_encoded, mut skipped, mut recall_sum) = (0u64, 0usize, 0f64);
        // Files read before the dimension was known that held no valid vector: they join the
        // next segment (or one of their own at the end), so that every file is covered.
        let mut carry: Vec<usize> = Vec::new();
        loop {
            let group: Vec<usize> = match groups.next() {
                Some(g) => carry.drain(..).chain(g).collect(),
                None if !carry.is_empty() && dim.is_some() => std::mem::take(&mut carry),
                None => break,
            };
            if group.is_empty() {
                continue;
            }
            progress.set_phase(Phase::Read);
            let mut read = spec.read_spec(dim, threads)?;
            read.concurrency = budget.read_concurrency(&entries, &group, read.concurrency);
            read.expected_rows = group.iter().map(|&i| Budget::file_bytes(&entries[i], dim, &spec.kind).0).sum();
            let (seg, sk) = read_segment(table, &group, &read, cancel, &progress.done).await?;
            skipped += sk;
            if seg.dim == 0 {
                carry = group; // no valid vector yet, dimension unknown (rows counted as skipped)
                continue;
            }
            if dim.is_none() {
                // Learnt from the first rows: the rest of the plan is cut by it.
                dim = Some(seg.dim);
                let rest: Vec<usize> = groups.by_ref().flatten().collect();
                groups = budget.plan(&entries, &rest, dim, &spec.kind).into_iter();
            }
            let n = seg.len();
            let (seg, recall) = build_structure(seg, spec.metric, &spec.kind, threads, cancel, progress, true).await?;
            progress.set_phase(Phase::Write);
            let r = write_segment(&at, &seg, &spec.kind, &[]).await?;
            rows_encoded += n as u64;
            recall_sum += recall.unwrap_or(1.0) * n as f64;
            // Kept loaded only when it is the whole index; otherwise dropped here, so that the
            // next segment's build does not hold it too.
            let last = groups.len() == 0 && carry.is_empty();
            kept = (refs.is_empty() && last).then(|| Arc::new(LoadedSegment::new(r.clone(), seg, &[])));
            refs.push(r);
        }
        let Some(dim) = dim.filter(|_| rows_encoded > 0) else {
            return Err(LakeError::Vector(format!(
                "table '{}' has no valid vectors in column '{}' (it is empty{}): nothing to index",
                table.uri,
                spec.column,
                if skipped > 0 { format!(", or all {skipped} rows were invalid") } else { String::new() }
            )));
        };
        let commit = CommitInfo {
            operation: "build".into(),
            timestamp_ms: now_ms(),
            files_encoded: entries.len() as u64,
            rows_encoded,
            rows_skipped: skipped as u64,
            segments_added: refs.len() as u64,
            segments_removed: 0,
        };
        let recall = Some(recall_sum / rows_encoded.max(1) as f64);
        let m = new_manifest(table, &spec, dim, refs, commit, recall);
        match (kept, m.segments.len()) {
            (Some(seg), 1) => publish(at, m, vec![seg]).await,
            _ => publish_lazy(at, m).await,
        }
    }
}
