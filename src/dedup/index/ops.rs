//! A dedup index's life: open (newest valid manifest, every file verified), build and
//! refresh (sign the rows of new data files, follow deletes, cluster, commit), and the two
//! read-only queries: the cluster table and `check` of rows not yet written.
//!
//! Resident: every segment's signatures (4 x num_perm bytes per row), each row's address
//! (12 bytes), root and liveness (9 bytes), its band list entries (12 bytes per band), and
//! while a new segment's band lists are sorted 16 bytes per row and band more.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::dedup::index::commit::{commit_version, Target};
use crate::dedup::index::format::{
    decode_clusters, decode_segment_in, Clusters, DedupManifest, DedupParams, DedupSegment, DedupSegmentRef, Sections,
    SegFile,
};
use crate::dedup::index::matching::{after_deletes, band_lists, seeded, segment_components, Buckets};
use crate::dedup::index::parts::{load_parts, PartRef};
use crate::dedup::minhash::MinHasher;
use crate::error::{LakeError, Result};
use crate::index::build::{Phase, Progress};
use crate::index::container::Tag;
use crate::index::liveness::same_version;
use crate::index::location::IndexAt;
use crate::index::publish::{self, get_file};
use crate::index::store::file_backing;
use crate::lake::datafiles::{DataFileEntry, Deleted};
use crate::lake::pin::TablePin;
use crate::lake::table::{Format, LakeTable};
use crate::read::rowaddr::AddressScan;
use crate::runtime::{pool, run_cpu, CancelToken};
use crate::text::strings;
use crate::vector::mapped::Arr;

/// One committed version of a dedup index, loaded and verified.
pub struct DedupIndex {
    pub at: IndexAt,
    pub manifest: DedupManifest,
    pub segments: Vec<Arc<DedupSegment>>,
    /// Global number of each segment's first row.
    pub bases: Vec<u64>,
    pub clusters: Clusters,
}

/// What a build or refresh did: the new rows' assignments and whether a version was committed.
pub struct Update {
    pub index: Arc<DedupIndex>,
    pub new_rows: RecordBatch,
    pub committed: bool,
}

impl DedupIndex {
    /// The newest valid version at `at`.
    pub async fn open(at: IndexAt) -> Result<Self> {
        let Some((m, _)) = publish::newest_valid::<DedupManifest>(&at.store, at.root()).await? else {
            return Err(LakeError::NotFound(format!(
                "no lakevec dedup index at '{}' (no manifests/ folder); build one with lakevec.dedup.build_index",
                at.uri
            )));
        };
        at.check_table_store(&m.table_uri)?;
        Self::load(at, m).await
    }

    async fn load(at: IndexAt, m: DedupManifest) -> Result<Self> {
        let mut segments = Vec::with_capacity(m.segments.len());
        let mut bases = Vec::with_capacity(m.segments.len());
        let mut base = 0u64;
        for s in &m.segments {
            let buf = file_backing(&at, &s.file).await?;
            let seg = decode_segment_in(&buf, &s.file.path, s.rows, m.params.sig_width(), m.params.bands)?;
            segments.push(Arc::new(seg));
            bases.push(base);
            base += s.rows;
        }
        let bytes = get_file(&at.store, at.root(), &m.clusters).await?;
        let clusters = decode_clusters(&bytes, &m.clusters.path, m.rows, m.params.nbr_width())?;
        let live = clusters.live.iter().filter(|&&l| l).count() as u64;
        if live != m.live_rows {
            return Err(LakeError::CorruptIndex(format!(
                "dedup index '{}': {live} live rows in '{}', the manifest says {}",
                at.uri, m.clusters.path, m.live_rows
            )));
        }
        Ok(DedupIndex { at, manifest: m, segments, bases, clusters })
    }

    /// (segment, local row) of global row `g`.
    fn locate(&self, g: u64) -> (usize, usize) {
        locate_in(&self.bases, g)
    }

    /// Open the indexed table at `pin` with this index's storage options (only in the index's
    /// own store or an allowed one, as for the vector index).
    pub async fn open_table(&self, pin: TablePin) -> Result<LakeTable> {
        let m = &self.manifest;
        self.at.check_table_store(&m.table_uri)?;
        LakeTable::open(&m.table_uri, self.at.options.clone(), Some(Format::parse(&m.table_format)?), pin).await
    }

    /// The signature of global row `g` (None without shingles).
    pub fn sig(&self, g: u64) -> Option<&[u32]> {
        sig_in(&self.segments, &self.bases, g)
    }

    /// (data file path, row position) of global row `g`.
    pub fn address(&self, g: u64) -> (&str, u64) {
        let (s, i) = self.locate(g);
        let seg = &self.segments[s];
        let f = seg.fstart.partition_point(|&x| x as usize <= i) - 1;
        (&seg.files[f].path, seg.rows[i])
    }

    /// The cluster table of the covered version, one row per live row in index order:
    /// `_file`, `_row`, `cluster_id` (int64: the cluster's first row in index order, stable
    /// while that row lives), `cluster_size`, `is_representative` (that first row).
    pub fn clusters_batch(&self) -> Result<RecordBatch> {
        let c = &self.clusters;
        let live: Vec<u64> = (0..c.root.len() as u64).filter(|&g| c.live[g as usize]).collect();
        let mut size = vec![0i64; c.root.len()];
        for &g in &live {
            size[c.root[g as usize] as usize] += 1;
        }
        let (files, rows): (Vec<&str>, Vec<i64>) =
            live.iter().map(|&g| self.address(g)).map(|(f, r)| (f, r as i64)).unzip();
        let schema = Arc::new(Schema::new(vec![
            Field::new("_file", DataType::Utf8, false),
            Field::new("_row", DataType::Int64, false),
            Field::new("cluster_id", DataType::Int64, false),
            Field::new("cluster_size", DataType::Int64, false),
            Field::new("is_representative", DataType::Boolean, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(files)),
            Arc::new(Int64Array::from(rows)),
            Arc::new(Int64Array::from_iter_values(live.iter().map(|&g| c.root[g as usize] as i64))),
            Arc::new(Int64Array::from_iter_values(live.iter().map(|&g| size[c.root[g as usize] as usize]))),
            Arc::new(BooleanArray::from(live.iter().map(|&g| c.root[g as usize] == g).collect::<Vec<bool>>())),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

/// The signature of global row `g` of `segments` (first rows `bases`), None without shingles.
fn sig_in<'a>(segments: &'a [Arc<DedupSegment>], bases: &[u64], g: u64) -> Option<&'a [u32]> {
    let (s, i) = locate_in(bases, g);
    segments[s].valid[i].then(|| segments[s].sig(i))
}

/// (segment, local row) of global row `g` of segments whose first rows are `bases`.
fn locate_in(bases: &[u64], g: u64) -> (usize, usize) {
    let s = bases.partition_point(|&b| b <= g) - 1;
    (s, (g - bases[s]) as usize)
}

/// The most similar of a row's direct matches `(row, estimate)` (ties: the smaller row).
pub(crate) fn best_match(hits: &[(u64, f64)]) -> Option<(u64, f64)> {
    hits.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// The nullable `matched_file`, `matched_row`, `jaccard_estimate` (a semantic index:
/// `similarity`) fields and columns of each row's match (a global row of `idx` and its
/// estimate), as refresh and check return them.
pub(crate) fn matched_columns(idx: &DedupIndex, matched: &[Option<(u64, f64)>]) -> (Vec<Field>, Vec<ArrayRef>) {
    let m: Vec<Option<(&str, u64, f64)>> = matched
        .iter()
        .map(|x| {
            x.map(|(g, est)| {
                let (f, r) = idx.address(g);
                (f, r, est)
            })
        })
        .collect();
    let fields = vec![
        Field::new("matched_file", DataType::Utf8, true),
        Field::new("matched_row", DataType::Int64, true),
        Field::new(
            if idx.manifest.params.method == "semantic" { "similarity" } else { "jaccard_estimate" },
            DataType::Float32,
            true,
        ),
    ];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(m.iter().map(|x| x.map(|t| t.0)).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(m.iter().map(|x| x.map(|t| t.1 as i64)).collect::<Vec<_>>())),
        Arc::new(Float32Array::from(m.iter().map(|x| x.map(|t| t.2 as f32)).collect::<Vec<_>>())),
    ];
    (fields, cols)
}

/// Signatures of the rows of `files` (indices into the table's entries), as a segment.
pub(crate) async fn sign_files(
    table: &LakeTable,
    files: &[usize],
    column: &str,
    h: &Arc<MinHasher>,
    num_threads: Option<usize>,
    cancel: &CancelToken,
    progress: &Progress,
) -> Result<DedupSegment> {
    let entries = table.entries().await?;
    let scan = AddressScan::new(table, Some(&[column.to_string()]), None, 8192).await?;
    let p = h.num_perm;
    let (mut all_sigs, mut all_rows, mut all_valid) = (Vec::new(), Vec::new(), Vec::new());
    let (mut seg_files, mut fstart) = (Vec::new(), vec![0u32]);
    // Sized once from the table metadata when it counts rows: growing by doubling would hold
    // up to three times the signatures while a reallocation copies them.
    if let Some(n) = files.iter().map(|&i| entries[i].live_rows()).sum::<Option<u64>>() {
        progress.total.store(n as usize, Ordering::Relaxed);
        all_sigs.reserve_exact(n as usize * p);
        all_rows.reserve_exact(n as usize);
        all_valid.reserve_exact(n as usize);
    }
    for &i in files {
        let e = &entries[i];
        let batches = scan.read(i).await.map_err(|err| err.context(format!("reading data file '{}'", e.path)))?;
        for b in batches {
            cancel.check()?;
            let (texts, rows) = (b.column(0).clone(), b.column(b.num_columns() - 1).clone());
            let (h2, c2, col) = (h.clone(), cancel.clone(), column.to_string());
            let (sigs, valid) =
                run_cpu(pool(num_threads)?, cancel.clone(), move || h2.signatures(&strings(&texts, &col)?, &c2))
                    .await?;
            progress.done.fetch_add(valid.len(), Ordering::Relaxed);
            all_sigs.extend_from_slice(&sigs);
            all_valid.extend_from_slice(&valid);
            all_rows.extend(rows.as_primitive::<arrow::datatypes::Int64Type>().values().iter().map(|&r| r as u64));
        }
        seg_files.push(SegFile { path: e.path.clone(), size: e.size, tag: e.tag.clone() });
        fstart.push(u32::try_from(all_rows.len()).map_err(|_| too_many())?);
    }
    Ok(DedupSegment {
        files: seg_files,
        fstart,
        rows: all_rows.into(),
        num_perm: p,
        sigs: all_sigs.into(),
        valid: all_valid,
        bands: 0,
        band_keys: Arr::default(),
        band_rows: Arr::default(),
        dirs: Default::default(),
    })
}

pub(crate) fn too_many() -> LakeError {
    LakeError::Unsupported("a dedup index holds at most 4,294,967,294 rows".into())
}

/// Liveness of every stored row in the table version of `entries`, and the entries no
/// segment holds.
pub(crate) fn liveness(prev: Option<&DedupIndex>, entries: &[DataFileEntry]) -> Result<(Vec<bool>, Vec<usize>)> {
    let by_path: std::collections::HashMap<&str, (usize, &DataFileEntry)> =
        entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), (i, e))).collect();
    let mut held = vec![false; entries.len()];
    let mut live = Vec::new();
    for seg in prev.map(|p| p.segments.as_slice()).unwrap_or_default() {
        for (f, sf) in seg.files.iter().enumerate() {
            let rows = &seg.rows[seg.fstart[f] as usize..seg.fstart[f + 1] as usize];
            let entry =
                by_path.get(sf.path.as_str()).filter(|(_, e)| e.size == sf.size && same_version(sf.tag.as_deref(), e));
            match entry {
                Some((i, e)) => {
                    held[*i] = true;
                    if let Deleted::ByValue { .. } = e.deleted {
                        return Err(LakeError::Unsupported(format!(
                            "data file '{}' has Iceberg equality deletes: a dedup index needs deleted rows by \
                             position; compact the table first",
                            e.path
                        )));
                    }
                    live.extend(rows.iter().map(|&r| !e.deleted.contains(r)));
                }
                None => live.extend(std::iter::repeat_n(false, rows.len())),
            }
        }
    }
    let missing = (0..entries.len()).filter(|&i| !held[i]).collect();
    Ok((live, missing))
}

/// Bytes a row of an index with `p` holds resident during an update: its signature, address,
/// root, liveness and validity, and per band its band list entry (12) and, while a new
/// segment's lists are sorted, a 16-byte (key, row) pair.
pub fn row_bytes(p: &DedupParams) -> u64 {
    4 * p.num_perm as u64 + 8 + 8 + 2 + 28 * p.bands as u64
}

/// Refuse an update whose rows would not fit `memory_limit` (see [`row_bytes`]).
fn check_budget(p: &DedupParams, rows: u64, memory_limit: u64) -> Result<()> {
    let need = rows.saturating_mul(row_bytes(p));
    if need > memory_limit {
        return Err(LakeError::InvalidArgument(format!(
            "a dedup index of {rows} rows holds about {} MiB ({} bytes per row: a {}-value signature and {} band \
             entries), more than memory_limit={} MiB; raise memory_limit, lower num_perm, or dedup the table \
             on Ray (lakevec.ray.dedup_minhash)",
            need >> 20,
            row_bytes(p),
            p.num_perm,
            p.bands,
            memory_limit >> 20
        )));
    }
    Ok(())
}

/// Build (`prev` None) or bring `prev` to `table`'s version: sign the new files' rows, drop
/// deleted rows from their clusters, join the new rows, and commit a version. Texts are read
/// one batch of 8,192 rows at a time; the signatures of all rows stay resident
/// ([`row_bytes`] per row), checked against `memory_limit` before anything is read.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    at: IndexAt,
    prev: Option<Arc<DedupIndex>>,
    table: &LakeTable,
    name: &str,
    column: &str,
    params: &DedupParams,
    memory_limit: u64,
    num_threads: Option<usize>,
    parts: Option<Vec<PartRef>>,
    cancel: &CancelToken,
    progress: &Progress,
) -> Result<Update> {
    let h = Arc::new(params.hasher()?);
    let entries = table.entries().await?;
    let (now_live, missing) = liveness(prev.as_deref(), &entries)?;
    let new_rows: Option<u64> = missing.iter().map(|&i| entries[i].live_rows()).sum();
    let stored = prev.as_ref().map_or(0, |p| p.manifest.rows);
    let adding = match new_rows {
        Some(n) => n,
        None => table.num_rows().await?,
    };
    check_budget(params, stored + adding, memory_limit)?;
    let unchanged = prev.as_ref().is_some_and(|p| p.clusters.live == now_live && missing.is_empty());
    if let Some(p) = prev.as_ref().filter(|p| unchanged && p.manifest.table_version == table.version()) {
        return Ok(Update { index: p.clone(), new_rows: new_rows_batch(p, &[], &[])?, committed: false });
    }
    // The new rows: signed here, or the segments Ray tasks wrote (`parts`).
    let (new_segs, new_refs): (Vec<Arc<DedupSegment>>, Vec<Option<DedupSegmentRef>>) = match parts {
        Some(parts) => {
            let loaded = load_parts(&at, params, &entries, &missing, parts).await?;
            loaded.into_iter().map(|(s, r)| (s, Some(r))).unzip()
        }
        None if missing.is_empty() => (vec![], vec![]),
        None => {
            progress.set_phase(Phase::Read);
            let mut seg = sign_files(table, &missing, column, &h, num_threads, cancel, progress).await?;
            let p3 = params.clone();
            let seg = run_cpu(pool(num_threads)?, cancel.clone(), move || {
                band_lists(&mut seg, &p3);
                Ok(seg)
            })
            .await?;
            (vec![Arc::new(seg)], vec![None])
        }
    };
    let (old_segments, old_bases, old_root, old_live) = match prev.as_deref() {
        Some(p) => (p.segments.clone(), p.bases.clone(), p.clusters.root.clone(), p.clusters.live.clone()),
        None => (vec![], vec![], vec![], vec![]),
    };
    let old_rows = old_root.len() as u64;
    let n_new: usize = new_segs.iter().map(|s| s.len()).sum();
    let total = old_rows + n_new as u64;
    if total >= u32::MAX as u64 {
        return Err(too_many());
    }
    progress.set_phase(Phase::Build);
    progress.total.store(n_new, Ordering::Relaxed);
    progress.done.store(0, Ordering::Relaxed);
    let (p2, ns2) = (params.clone(), new_segs.clone());
    let (root, live, matched) = run_cpu(pool(num_threads)?, cancel.clone(), move || {
        let mut root = if old_live == now_live {
            old_root.clone()
        } else {
            let sig_old = |g: u64| sig_in(&old_segments, &old_bases, g);
            after_deletes(&old_root, &old_live, &now_live, &sig_old, &p2)?
        };
        let mut live = now_live;
        let (mut segs, mut bases) = (old_segments, old_bases);
        let mut matched: Vec<Option<(u64, f64)>> = Vec::with_capacity(n_new);
        // Each new segment joins the rows before it (stored, then earlier new segments):
        // the same components as adding them all at once.
        for seg in &ns2 {
            let (base, n) = (root.len() as u64, seg.len());
            root.extend(base..base + n as u64);
            live.extend(std::iter::repeat_n(true, n));
            let mut uf = seeded(&root, &live);
            for (i, &r) in segment_components(seg, &p2)?.iter().enumerate() {
                uf.union((base + i as u64) as u32, (base + r as u64) as u32);
            }
            {
                let sig_of = |g: u64| sig_in(&segs, &bases, g);
                let buckets = Buckets::new(&segs, &bases, &live, &root, p2.bands, p2.rows);
                let hits: Vec<Vec<(u64, f64)>> = (0..n)
                    .into_par_iter()
                    .map(|i| if seg.valid[i] { buckets.matches(seg.sig(i), p2.threshold, &sig_of) } else { vec![] })
                    .collect();
                for (i, hs) in hits.iter().enumerate() {
                    for &(g, _) in hs {
                        uf.union((base + i as u64) as u32, g as u32);
                    }
                    matched.push(best_match(hs));
                }
            }
            let len = root.len() as u64;
            root = (0..len).map(|g| if live[g as usize] { uf.find(g as u32) as u64 } else { g }).collect();
            segs.push(seg.clone());
            bases.push(base);
        }
        Ok((root, live, matched))
    })
    .await?;
    progress.done.store(n_new, Ordering::Relaxed);
    progress.set_phase(Phase::Write);
    let target = Target { table, name, column, params, vector_index: None };
    let clusters = Clusters::plain(root, live);
    let index = commit_version(at, prev.as_deref(), &target, new_segs, new_refs, clusters, missing.len()).await?;
    let news: Vec<u64> = (old_rows..total).collect();
    let new_rows = new_rows_batch(&index, &news, &matched)?;
    Ok(Update { index, new_rows, committed: true })
}

/// Sections as the (tag, bytes) pairs the writer takes.
pub(crate) fn refs<'a>(s: &'a Sections<'_>) -> Vec<(Tag, &'a [u8])> {
    s.iter().map(|(t, b)| (*t, b.as_ref())).collect()
}

/// The refresh result: per new row `_file`, `_row`, `cluster_id`, `is_representative`,
/// `matched_file`, `matched_row`, `jaccard_estimate` (a row stored before that it matched
/// directly: of the rows found, one per stored cluster it joins, the most similar; null when
/// none).
pub(crate) fn new_rows_batch(idx: &DedupIndex, rows: &[u64], matched: &[Option<(u64, f64)>]) -> Result<RecordBatch> {
    let c = &idx.clusters;
    let addr: Vec<(&str, u64)> = rows.iter().map(|&g| idx.address(g)).collect();
    let (mfields, mcols) = matched_columns(idx, matched);
    let mut fields = vec![
        Field::new("_file", DataType::Utf8, false),
        Field::new("_row", DataType::Int64, false),
        Field::new("cluster_id", DataType::Int64, false),
        Field::new("is_representative", DataType::Boolean, false),
    ];
    fields.extend(mfields);
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(addr.iter().map(|a| a.0).collect::<Vec<_>>())),
        Arc::new(Int64Array::from_iter_values(addr.iter().map(|a| a.1 as i64))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|&g| c.root[g as usize] as i64))),
        Arc::new(BooleanArray::from(rows.iter().map(|&g| c.root[g as usize] == g).collect::<Vec<bool>>())),
    ];
    cols.extend(mcols);
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, cols)?)
}
