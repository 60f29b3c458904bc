//! The vector index over an external table: opening, building, refreshing and compacting
//! it. Search is in [`crate::index_search`], the hot loop in [`crate::ann`].
//!
//! An index is a folder of immutable segment and tombstone files plus versioned manifests
//! (see [`crate::manifest`]). In memory it is an [`IndexState`] (one manifest and its loaded
//! segments) behind an `RwLock<Arc<..>>`: a search takes the `Arc` once, so it sees one
//! version whole while a refresh in another thread swaps in the next.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use object_store::path::Path;
use object_store::ObjectStore;

use crate::ann::{self, Bits};
use crate::container::{self, Container};
use crate::datafiles::DataFileEntry;
use crate::delta::TablePin;
use crate::distance::Metric;
use crate::error::{LakeError, Result};
use crate::hnsw_build::{self, BuildParams};
use crate::index_read::{check_columns, read_segment, ReadSpec};
use crate::manifest::{self, CommitInfo, FileRef, Manifest, SegmentRef};
use crate::runtime::{pool, run_cpu, CancelToken};
use crate::segment::Segment;
use crate::storage::{parse_uri, store_for, Location, StorageOptions};
use crate::table::{Format, LakeTable};
use crate::vectors::OnInvalid;

const TOMB_TAG: container::Tag = *b"DELETED\0";
/// Sample size of the recall estimate stored at build.
const RECALL_SAMPLE: usize = 200;
/// Default beam width of searches.
pub const DEFAULT_EF: usize = 64;

/// Progress of a long call, read by the Python side while it waits.
#[derive(Default, Debug)]
pub struct Progress {
    /// 0 = reading vectors, 1 = building the graph, 2 = writing.
    pub phase: AtomicUsize,
    pub done: AtomicUsize,
    pub total: AtomicUsize,
}

/// Where an index lives.
#[derive(Clone, Debug)]
pub struct IndexAt {
    pub uri: String,
    pub loc: Location,
    pub store: Arc<dyn ObjectStore>,
    /// Options for the index store and for reopening the table (never persisted).
    pub options: StorageOptions,
}

impl IndexAt {
    pub fn new(uri: &str, options: StorageOptions) -> Result<Self> {
        let loc = parse_uri(uri)?;
        if loc.glob.is_some() {
            return Err(LakeError::InvalidArgument(format!("an index location cannot hold a glob: '{uri}'")));
        }
        let store = store_for(&loc, &options)?;
        Ok(IndexAt { uri: loc.display.clone(), loc, store, options })
    }
    pub fn root(&self) -> &Path {
        &self.loc.path
    }
}

/// The full URL of a table's root, as stored in manifests. An Iceberg table opened from a
/// `metadata/*.metadata.json` file is recorded by its folder, so that reopening it finds
/// the newest metadata (refresh follows new snapshots).
pub fn table_url(table: &LakeTable) -> String {
    let url = table.location.url_of(&table.location.path);
    if table.format == Format::Iceberg && url.ends_with(".metadata.json") {
        let parts: Vec<&str> = url.rsplitn(3, '/').collect();
        if parts.len() == 3 && parts[1] == "metadata" {
            return parts[2].to_string();
        }
    }
    url
}

/// The default index folder of `table`: `_lakevec_index/<name>` inside a Delta or Parquet
/// table's folder (Delta's VACUUM and Parquet readers skip `_` folders), and a sibling folder
/// `<table>_lakevec_index/<name>` for Iceberg (its orphan-file removal would delete unknown
/// files under the table location). A single Parquet file or glob gets
/// `_lakevec_index/<file name>.<name>` in its folder.
pub fn default_index_uri(table: &LakeTable, name: &str) -> String {
    let url = table_url(table).trim_end_matches('/').to_string();
    let split = |u: &str| -> (String, String) {
        match u.rfind('/') {
            Some(i) => (u[..i].to_string(), u[i + 1..].to_string()),
            None => (String::new(), u.to_string()),
        }
    };
    match table.format {
        Format::Iceberg => {
            let (parent, leaf) = split(&url);
            format!("{parent}/{leaf}_lakevec_index/{name}")
        }
        _ => {
            let lower = url.to_ascii_lowercase();
            let is_file = [".parquet", ".parq", ".pq"].iter().any(|s| lower.ends_with(s)) || table.location.glob.is_some();
            if is_file && table.location.glob.is_none() {
                let (parent, leaf) = split(&url);
                format!("{parent}/_lakevec_index/{leaf}.{name}")
            } else {
                format!("{url}/_lakevec_index/{name}")
            }
        }
    }
}

/// A segment with its tombstones applied.
#[derive(Debug)]
pub struct LoadedSegment {
    pub r: SegmentRef,
    pub seg: Segment,
    /// Nodes not deleted at the index's table version.
    pub live: Bits,
    pub live_count: usize,
    /// Data file path -> file index in the segment.
    pub file_ix: HashMap<String, usize>,
}

impl LoadedSegment {
    fn new(r: SegmentRef, seg: Segment, deleted: &[u64]) -> Self {
        let mut live = Bits::new(seg.len(), true);
        for &d in deleted {
            live.set(d as usize, false);
        }
        let live_count = live.count();
        let file_ix = seg.files.iter().enumerate().map(|(i, f)| (f.clone(), i)).collect();
        LoadedSegment { r, seg, live, live_count, file_ix }
    }
}

/// One index version, loaded.
#[derive(Debug)]
pub struct IndexState {
    pub manifest: Manifest,
    pub segments: Vec<Arc<LoadedSegment>>,
    pub manifest_bytes: u64,
}

impl IndexState {
    pub fn live_rows(&self) -> usize {
        self.segments.iter().map(|s| s.live_count).sum()
    }
}

fn tombstone_bytes(deleted: &[u64]) -> Vec<u8> {
    let b: Vec<u8> = deleted.iter().flat_map(|x| x.to_le_bytes()).collect();
    container::write(&[(TOMB_TAG, &b)])
}

pub(crate) async fn load_segment(at: &IndexAt, m: &Manifest, r: &SegmentRef) -> Result<LoadedSegment> {
    let bytes = manifest::get_file(&at.store, at.root(), &r.file).await?;
    let name = manifest::child(at.root(), &r.file.path).to_string();
    let seg = Segment::decode(&bytes, &name)?;
    // (a segment of files without any valid vector, built without a known dimension, has dim 0)
    let dim_ok = seg.dim == m.dim || (seg.is_empty() && seg.dim == 0);
    if seg.len() as u64 != r.rows || !dim_ok || seg.files != r.data_files {
        return Err(LakeError::CorruptIndex(format!("index file '{name}' does not match its manifest entry")));
    }
    let deleted = match &r.tombstones {
        Some(t) => {
            let tb = manifest::get_file(&at.store, at.root(), t).await?;
            let tname = manifest::child(at.root(), &t.path).to_string();
            let c = Container::open(&tb, &tname)?;
            let d = container::u64s(c.section(&TOMB_TAG)?, r.num_tombstones as usize, "DELETED").map_err(|e| e.context(&tname))?;
            if d.windows(2).any(|w| w[0] >= w[1]) || d.last().is_some_and(|&x| x >= r.rows) {
                return Err(LakeError::CorruptIndex(format!("index file '{tname}' holds out-of-range rows")));
            }
            d
        }
        None => Vec::new(),
    };
    Ok(LoadedSegment::new(r.clone(), seg, &deleted))
}

/// Load index version `version` (newest when `None`).
pub async fn load(at: &IndexAt, version: Option<u64>) -> Result<IndexState> {
    let v = match version {
        Some(v) => v,
        None => manifest::latest_version(&at.store, at.root()).await?.ok_or_else(|| {
            LakeError::NotFound(format!("no lakevec index at '{}' (no manifests/ folder)", at.uri))
        })?,
    };
    let m = manifest::read(&at.store, at.root(), v).await?;
    let mut segments = Vec::with_capacity(m.segments.len());
    for r in &m.segments {
        segments.push(Arc::new(load_segment(at, &m, r).await?));
    }
    let manifest_bytes = manifest::encode(&m)?.len() as u64;
    Ok(IndexState { manifest: m, segments, manifest_bytes })
}

/// The indexed table at its latest version, with the fingerprint it was opened at.
pub struct LatestTable {
    pub fingerprint: String,
    pub table: Arc<LakeTable>,
}

/// An opened index.
pub struct VectorIndex {
    pub at: IndexAt,
    state: RwLock<Arc<IndexState>>,
    /// The table's latest version as last opened (reused while its fingerprint holds).
    latest: std::sync::Mutex<Option<Arc<LatestTable>>>,
    /// Search sources computed for (index version, table fingerprint), unfiltered.
    pub(crate) sources_cache: std::sync::Mutex<Option<(u64, String, Arc<Vec<crate::index_search::Source>>)>>,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildSpec {
    pub name: String,
    pub column: String,
    pub key: Option<String>,
    pub metric: Metric,
    pub params: BuildParams,
    pub on_invalid: OnInvalid,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Build the graph of a read segment on lakevec's pool; returns it with a recall estimate.
pub(crate) async fn build_graph(
    mut seg: Segment,
    metric: Metric,
    params: BuildParams,
    threads: Option<usize>,
    cancel: &CancelToken,
    progress: &Arc<Progress>,
    estimate: bool,
) -> Result<(Segment, Option<f64>)> {
    let p = pool(threads)?;
    let (c, pr) = (cancel.clone(), progress.clone());
    pr.phase.store(1, Ordering::Relaxed);
    pr.done.store(0, Ordering::Relaxed);
    pr.total.store(seg.len(), Ordering::Relaxed);
    let p2 = p.clone();
    run_cpu(p, cancel.clone(), move || {
        seg.graph = hnsw_build::build(&seg.vectors, seg.dim, metric, params, &p2, &c, &pr.done)?;
        let recall = if estimate { Some(recall_estimate(&seg, metric)) } else { None };
        Ok((seg, recall))
    })
    .await
}

/// recall@10 of graph search (ef = [`DEFAULT_EF`]) against exact search, for up to
/// [`RECALL_SAMPLE`] evenly spaced indexed rows used as queries.
fn recall_estimate(seg: &Segment, metric: Metric) -> f64 {
    let n = seg.len();
    if n == 0 {
        return 1.0;
    }
    let step = (n / RECALL_SAMPLE).max(1);
    let (mut hit, mut total) = (0usize, 0usize);
    for i in (0..n).step_by(step).take(RECALL_SAMPLE) {
        let q = seg.vector(i);
        let truth: Vec<u32> = ann::exact(&seg.vectors, seg.dim, metric, q, 10, None).iter().map(|h| h.1).collect();
        let got = ann::search(&seg.graph, &seg.vectors, seg.dim, metric, q, 10, DEFAULT_EF, None);
        hit += got.iter().filter(|h| truth.contains(&h.1)).count();
        total += truth.len();
    }
    hit as f64 / total.max(1) as f64
}

pub(crate) async fn write_segment(at: &IndexAt, seg: &Segment, deleted: &[u64]) -> Result<SegmentRef> {
    let id = manifest::new_id();
    let file = manifest::put_file(&at.store, at.root(), &format!("segments/{id}.lkv"), seg.encode()?).await?;
    let tombstones = write_tombstones(at, deleted).await?;
    Ok(SegmentRef {
        id,
        file,
        rows: seg.len() as u64,
        data_files: seg.files.clone(),
        tombstones,
        num_tombstones: deleted.len() as u64,
    })
}

async fn write_tombstones(at: &IndexAt, deleted: &[u64]) -> Result<Option<FileRef>> {
    if deleted.is_empty() {
        return Ok(None);
    }
    let path = format!("tombstones/{}.lkv", manifest::new_id());
    Ok(Some(manifest::put_file(&at.store, at.root(), &path, tombstone_bytes(deleted)).await?))
}

/// The live entry of segment file `f`, if the table version still has it (same path and
/// size; a Parquet file rewritten in place at another size is a different file).
pub fn live_entry<'a>(seg: &Segment, f: usize, by_path: &HashMap<&str, &'a DataFileEntry>) -> Option<&'a DataFileEntry> {
    by_path.get(seg.files[f].as_str()).copied().filter(|e| e.size == seg.file_sizes[f])
}

/// Indices of `entries` (a table version's live files) that no segment holds.
pub fn missing_files(segments: &[Arc<LoadedSegment>], entries: &[DataFileEntry]) -> Vec<usize> {
    let indexed: std::collections::HashSet<(&str, u64)> = segments
        .iter()
        .flat_map(|s| s.seg.files.iter().map(|f| f.as_str()).zip(s.seg.file_sizes.iter().copied()))
        .collect();
    (0..entries.len()).filter(|&i| !indexed.contains(&(entries[i].path.as_str(), entries[i].size))).collect()
}

/// Nodes of `seg` deleted in a table version with live files `by_path`.
/// An indexed file with Iceberg equality deletes is `Unsupported` (its deleted positions
/// are unknown without a scan).
pub fn deleted_nodes(seg: &Segment, by_path: &HashMap<&str, &DataFileEntry>) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for (f, path) in seg.files.iter().enumerate() {
        let (a, b) = (seg.fstart[f] as usize, seg.fstart[f + 1] as usize);
        match live_entry(seg, f, by_path) {
            Some(e) => {
                if matches!(e.deleted, crate::datafiles::Deleted::ByValue { .. }) {
                    return Err(LakeError::Unsupported(format!(
                        "indexed data file '{path}' now has Iceberg equality deletes: the index needs deleted rows \
                         by position; rewrite the table's data files (compaction) and rebuild the index"
                    )));
                }
                for &r in e.deleted.positions() {
                    if let Ok(j) = seg.rows[a..b].binary_search(&r) {
                        out.push((a + j) as u64);
                    }
                }
            }
            None => out.extend((a..b).map(|i| i as u64)),
        }
    }
    Ok(out)
}

/// Check that an index per `spec` can be built over `table` (parameters, columns, no glob);
/// returns the vector dimension when the column's type fixes it.
pub fn check_buildable(table: &LakeTable, spec: &BuildSpec) -> Result<Option<usize>> {
    spec.params.check()?;
    if table.location.glob.is_some() {
        return Err(LakeError::Unsupported(format!(
            "an index over a glob ('{}') is not supported: index the folder, or one file",
            table.uri
        )));
    }
    check_columns(table, &spec.column, spec.key.as_deref())
}

impl VectorIndex {
    /// Open the newest version of the index at `at`.
    pub async fn open(at: IndexAt) -> Result<Self> {
        Self::open_version(at, None).await
    }

    /// Open index version `version` (the newest when `None`).
    pub async fn open_version(at: IndexAt, version: Option<u64>) -> Result<Self> {
        let state = load(&at, version).await?;
        Ok(Self::with_state(at, state))
    }

    pub(crate) fn with_state(at: IndexAt, state: IndexState) -> Self {
        VectorIndex {
            at,
            state: RwLock::new(Arc::new(state)),
            latest: Default::default(),
            sources_cache: Default::default(),
        }
    }

    /// The current state (one version, whole).
    pub fn state(&self) -> Arc<IndexState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_state(&self, s: IndexState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }

    /// The indexed table at its latest version: one LIST request checks the table's
    /// fingerprint ([`crate::table::latest_fingerprint`]); the table is reopened only when it
    /// changed.
    pub async fn latest_table(&self) -> Result<Arc<LatestTable>> {
        let m = &self.state().manifest;
        let loc = parse_uri(&m.table_uri)?;
        let store = store_for(&loc, &self.at.options)?;
        let format = Format::parse(&m.table_format)?;
        let fingerprint = crate::table::latest_fingerprint(&store, &loc, format).await?;
        if let Some(l) = self.latest.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if l.fingerprint == fingerprint {
                return Ok(l.clone());
            }
        }
        let table = Arc::new(self.open_table(TablePin::default()).await?);
        let l = Arc::new(LatestTable { fingerprint, table });
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(l.clone());
        Ok(l)
    }

    /// Open the indexed table at `pin` with this index's storage options.
    pub async fn open_table(&self, pin: TablePin) -> Result<LakeTable> {
        let m = &self.state().manifest;
        LakeTable::open(&m.table_uri, self.at.options.clone(), Some(Format::parse(&m.table_format)?), pin).await
    }

    /// Build an index over `table` and commit it as the next version at `at`.
    pub async fn build(
        table: &LakeTable,
        at: IndexAt,
        spec: BuildSpec,
        threads: Option<usize>,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<Self> {
        let dim = check_buildable(table, &spec)?;
        let entries = table.entries().await?;
        progress.total.store(table.num_rows() as usize, Ordering::Relaxed);
        let read = ReadSpec {
            column: &spec.column,
            key: spec.key.as_deref(),
            metric: spec.metric,
            on_invalid: spec.on_invalid,
            dim,
            filter: None,
            concurrency: crate::runtime::resolve_threads(threads)? * 2,
        };
        let all: Vec<usize> = (0..entries.len()).collect();
        let (seg, skipped) = read_segment(table, &all, &read, cancel, &progress.done).await?;
        if seg.dim == 0 {
            return Err(LakeError::Vector(format!(
                "table '{}' has no valid vectors in column '{}' (it is empty{}): nothing to index",
                table.uri,
                spec.column,
                if skipped > 0 { format!(", or all {skipped} rows were invalid") } else { String::new() }
            )));
        }
        let rows_encoded = seg.len() as u64;
        let (seg, recall) = build_graph(seg, spec.metric, spec.params, threads, cancel, progress, true).await?;
        progress.phase.store(2, Ordering::Relaxed);
        let r = write_segment(&at, &seg, &[]).await?;
        let version = manifest::latest_version(&at.store, at.root()).await?.unwrap_or(0) + 1;
        let m = Manifest {
            format: manifest::FORMAT.into(),
            format_version: manifest::FORMAT_VERSION,
            version,
            writer_id: manifest::new_id(),
            name: spec.name.clone(),
            table_uri: table_url(table),
            table_format: table.format.as_str().into(),
            table_version: table.version(),
            column: spec.column.clone(),
            key: spec.key.clone(),
            metric: spec.metric,
            dim: seg.dim,
            params: spec.params,
            on_invalid: spec.on_invalid,
            segments: vec![r.clone()],
            commit: CommitInfo {
                operation: "build".into(),
                timestamp_ms: now_ms(),
                files_encoded: entries.len() as u64,
                rows_encoded,
                rows_skipped: skipped as u64,
                segments_added: 1,
                segments_removed: 0,
            },
            recall_estimate: recall.map(manifest::round_estimate),
        };
        manifest::commit(&at.store, at.root(), &m).await?;
        let manifest_bytes = manifest::encode(&m)?.len() as u64;
        let state = IndexState { segments: vec![Arc::new(LoadedSegment::new(r, seg, &[]))], manifest: m, manifest_bytes };
        Ok(Self::with_state(at, state))
    }

    /// Bring the index to the table's latest version: new data files become a new segment,
    /// removed files and newly deleted rows become tombstones. Returns whether a new index
    /// version was committed.
    pub async fn refresh(&self, threads: Option<usize>, cancel: &CancelToken, progress: &Arc<Progress>) -> Result<bool> {
        let table = self.open_table(TablePin::default()).await?;
        self.refresh_with(&table, None, threads, cancel, progress).await
    }

    /// The live data files of `table` that no segment holds (what a refresh to it encodes).
    pub async fn pending_files(&self, table: &LakeTable) -> Result<Vec<String>> {
        let entries = table.entries().await?;
        Ok(missing_files(&self.state().segments, &entries).into_iter().map(|i| entries[i].path.clone()).collect())
    }

    /// [`refresh`](Self::refresh) to `table` (a pinned version of the indexed table). With
    /// `parts`, its new files come as segments built elsewhere ([`crate::index_dist`]), which
    /// must hold exactly [`pending_files`](Self::pending_files); without, they are read and
    /// built here.
    pub async fn refresh_with(
        &self,
        table: &LakeTable,
        parts: Option<Vec<crate::index_dist::BuiltSegment>>,
        threads: Option<usize>,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<bool> {
        let st = self.state();
        let m = &st.manifest;
        if crate::index::table_url(table) != m.table_uri {
            return Err(LakeError::InvalidArgument(format!(
                "table '{}' is not the indexed table '{}'",
                table.uri,
                crate::storage::redact(&m.table_uri)
            )));
        }
        let entries = table.entries().await?;
        let by_path: HashMap<&str, &DataFileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut segments = Vec::new();
        let mut loaded = Vec::new();
        let mut changed = false;
        let mut removed = 0u64;
        for s in &st.segments {
            let deleted = deleted_nodes(&s.seg, &by_path)?;
            if !(0..s.seg.files.len()).any(|f| live_entry(&s.seg, f, &by_path).is_some()) {
                changed = true;
                removed += 1;
                continue;
            }
            if deleted.len() as u64 == s.r.num_tombstones && deleted.iter().all(|&d| !s.live.get(d as usize)) {
                segments.push(s.r.clone());
                loaded.push(s.clone());
            } else {
                changed = true;
                let mut r = s.r.clone();
                r.tombstones = write_tombstones(&self.at, &deleted).await?;
                r.num_tombstones = deleted.len() as u64;
                loaded.push(Arc::new(LoadedSegment::new(r.clone(), s.seg.clone(), &deleted)));
                segments.push(r);
            }
        }
        // (a dropped segment holds none of the live files, so its files never hide one)
        let new_files = missing_files(&st.segments, &entries);
        let mut info = CommitInfo { operation: "refresh".into(), timestamp_ms: now_ms(), segments_removed: removed, ..Default::default() };
        if let Some(parts) = parts {
            let paths: Vec<&str> = new_files.iter().map(|&i| entries[i].path.as_str()).collect();
            let built = crate::index_dist::load_refresh_parts(&self.at, m, table, &paths, parts).await?;
            changed |= !paths.is_empty();
            info.files_encoded = paths.len() as u64;
            for (p, l) in built {
                info.rows_encoded += p.segment.rows;
                info.rows_skipped += p.rows_skipped;
                info.segments_added += 1;
                segments.push(p.segment);
                loaded.push(l);
            }
        } else if !new_files.is_empty() {
            changed = true;
            progress.total.store(new_files.iter().filter_map(|&i| entries[i].live_rows()).sum::<u64>() as usize, Ordering::Relaxed);
            let read = ReadSpec {
                column: &m.column,
                key: m.key.as_deref(),
                metric: m.metric,
                on_invalid: m.on_invalid,
                dim: Some(m.dim),
                filter: None,
                concurrency: crate::runtime::resolve_threads(threads)? * 2,
            };
            let (seg, skipped) = read_segment(table, &new_files, &read, cancel, &progress.done).await?;
            info.files_encoded = new_files.len() as u64;
            info.rows_encoded = seg.len() as u64;
            info.rows_skipped = skipped as u64;
            info.segments_added = 1;
            let (seg, _) = build_graph(seg, m.metric, m.params, threads, cancel, progress, false).await?;
            progress.phase.store(2, Ordering::Relaxed);
            let r = write_segment(&self.at, &seg, &[]).await?;
            loaded.push(Arc::new(LoadedSegment::new(r.clone(), seg, &[])));
            segments.push(r);
        }
        if !changed && table.version() == m.table_version {
            return Ok(false);
        }
        self.commit_next(&st, segments, loaded, table.version(), info).await?;
        Ok(true)
    }

    async fn commit_next(
        &self,
        st: &IndexState,
        segments: Vec<SegmentRef>,
        loaded: Vec<Arc<LoadedSegment>>,
        table_version: Option<i64>,
        commit: CommitInfo,
    ) -> Result<()> {
        let mut m = st.manifest.clone();
        m.version += 1;
        m.writer_id = manifest::new_id();
        m.segments = segments;
        m.table_version = table_version;
        m.commit = commit;
        manifest::commit(&self.at.store, self.at.root(), &m).await?;
        let manifest_bytes = manifest::encode(&m)?.len() as u64;
        self.set_state(IndexState { manifest: m, segments: loaded, manifest_bytes });
        Ok(())
    }

    /// Merge every segment into one, dropping deleted rows, and rebuild its graph from the
    /// index's stored vectors (nothing is read from the lake).
    pub async fn compact(&self, threads: Option<usize>, cancel: &CancelToken, progress: &Arc<Progress>) -> Result<bool> {
        let st = self.state();
        let m = &st.manifest;
        if st.segments.len() <= 1 && st.segments.iter().all(|s| s.r.num_tombstones == 0) {
            return Ok(false);
        }
        let mut seg = Segment {
            dim: m.dim,
            files: Vec::new(),
            file_sizes: Vec::new(),
            fstart: vec![0],
            rows: Vec::new(),
            vectors: Vec::new(),
            graph: Default::default(),
            keys: None,
        };
        let mut key_parts: Vec<(usize, usize)> = Vec::new();
        for (si, s) in st.segments.iter().enumerate() {
            for f in 0..s.seg.files.len() {
                let (a, b) = (s.seg.fstart[f] as usize, s.seg.fstart[f + 1] as usize);
                let alive: Vec<usize> = (a..b).filter(|&i| s.live.get(i)).collect();
                if alive.is_empty() && b > a {
                    continue; // every row deleted (or the file removed)
                }
                for &i in &alive {
                    seg.rows.push(s.seg.rows[i]);
                    seg.vectors.extend_from_slice(s.seg.vector(i));
                    key_parts.push((si, i));
                }
                seg.files.push(s.seg.files[f].clone());
                seg.file_sizes.push(s.seg.file_sizes[f]);
                seg.fstart.push(seg.rows.len() as u32);
            }
        }
        if m.key.is_some() {
            let arrays: Vec<&dyn arrow::array::Array> =
                st.segments.iter().map(|s| s.seg.keys.as_deref().ok_or_else(|| LakeError::CorruptIndex("a segment lacks its keys".into()))).collect::<Result<_>>()?;
            seg.keys = Some(arrow::compute::interleave(&arrays, &key_parts)?);
        }
        let (seg, _) = build_graph(seg, m.metric, m.params, threads, cancel, progress, false).await?;
        let r = write_segment(&self.at, &seg, &[]).await?;
        let info = CommitInfo {
            operation: "compact".into(),
            timestamp_ms: now_ms(),
            segments_added: 1,
            segments_removed: st.segments.len() as u64,
            ..Default::default()
        };
        let loaded = vec![Arc::new(LoadedSegment::new(r.clone(), seg, &[]))];
        self.commit_next(&st, vec![r], loaded, m.table_version, info).await?;
        Ok(true)
    }

    /// Reload the newest committed version (another process may have refreshed).
    pub async fn reload(&self) -> Result<()> {
        let st = load(&self.at, None).await?;
        self.set_state(st);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datafiles::Deleted;

    fn entry(path: &str, size: u64, deleted: Vec<u64>) -> DataFileEntry {
        DataFileEntry {
            path: path.into(),
            store: Arc::new(object_store::memory::InMemory::new()),
            object: Path::from(path),
            size,
            num_records: Some(10),
            partition: vec![],
            deleted: Deleted::from_positions(deleted),
        }
    }

    #[test]
    fn deleted_positions_removed_files_and_rewrites_become_tombstones() {
        // file a: rows 0, 2, 5 indexed (1, 3, 4 were invalid and skipped); file b: rows 0..3
        let seg = Segment {
            dim: 1,
            files: vec!["a".into(), "b".into()],
            file_sizes: vec![100, 200],
            fstart: vec![0, 3, 6],
            rows: vec![0, 2, 5, 0, 1, 2],
            vectors: vec![0.0; 6],
            graph: Default::default(),
            keys: None,
        };
        // deletion vector / position deletes on a: rows 2 and 3 (3 was never indexed)
        let a = entry("a", 100, vec![2, 3]);
        let b = entry("b", 200, vec![]);
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1]);
        // b removed from the table: all its nodes go
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1, 3, 4, 5]);
        // b rewritten in place (Parquet folder, same path, new size): all its nodes go too
        let b2 = entry("b", 201, vec![]);
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b2)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1, 3, 4, 5]);
    }
}
