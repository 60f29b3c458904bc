//! Index builds split across processes (Ray tasks): each task reads some data files of one
//! pinned table version, builds their graph and writes it as an immutable segment file
//! ([`build_segment`]); the driver then publishes every segment in one manifest
//! ([`commit_build`], or a refresh with [`VectorIndex::refresh_with`]). Until that commit
//! nothing is visible: a failed task or driver leaves only unreferenced segment files and the
//! previous index version readable.
//!
//! A [`BuiltSegment`] travels from task to driver as JSON. The commit checks it against the
//! table version and spec it was built for, and reads every segment file back (checksums,
//! row and file lists) before the manifest is published.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::budget::Budget;
use crate::index::build::{
    build_structure, check_buildable, new_manifest, now_ms, publish, BuildSpec, Phase, Progress,
};
use crate::index::handle::VectorIndex;
use crate::index::ingest::read_segment;
use crate::index::kind::IndexKind;
use crate::index::location::{indexed_table_url, IndexAt};
use crate::index::manifest::{CommitInfo, Manifest, SegmentRef};
use crate::index::state::LoadedSegment;
use crate::index::store::{load_segment, write_segment};
use crate::lake::datafiles::DataFileEntry;
use crate::lake::table::LakeTable;
use crate::runtime::CancelToken;
use crate::vector::column::OnInvalid;
use crate::vector::distance::Metric;

/// A segment written by one task, not yet published.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BuiltSegment {
    pub segment: SegmentRef,
    /// Vector dimension (0 when the segment holds no rows and the column has no fixed size).
    pub dim: usize,
    pub rows_skipped: u64,
    pub recall_estimate: Option<f64>,
    /// What it was built from and with: checked at commit.
    pub table_uri: String,
    pub table_version: Option<i64>,
    pub column: String,
    pub key: Option<String>,
    pub metric: Metric,
    pub kind: IndexKind,
    pub on_invalid: OnInvalid,
}

impl BuiltSegment {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| LakeError::Internal(format!("encoding a built segment: {e}")))
    }

    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| LakeError::InvalidArgument(format!("not a built segment description: {e}")))
    }
}

/// Indices into `entries` of `paths`, each a live data file (else an error naming it).
fn file_indices(table: &LakeTable, entries: &[DataFileEntry], paths: &[String]) -> Result<Vec<usize>> {
    let by_path: HashMap<&str, usize> = entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
    paths
        .iter()
        .map(|p| {
            by_path.get(p.as_str()).copied().ok_or_else(|| {
                LakeError::InvalidArgument(format!(
                    "'{p}' is not a live data file of table '{}' at version {:?}",
                    table.uri,
                    table.version()
                ))
            })
        })
        .collect()
}

/// Cut data files `files` of `table` into groups of whole files, in order, each of which
/// [`build_segment`] builds within `budget` (see [`Budget::plan`]). `dim`: the index's
/// dimension, if known.
pub async fn plan_segments(
    table: &LakeTable,
    spec: &BuildSpec,
    files: &[String],
    dim: Option<usize>,
    budget: &Budget,
) -> Result<Vec<Vec<String>>> {
    let schema_dim = check_buildable(table, spec)?;
    let entries = table.entries().await?;
    let ix = file_indices(table, &entries, files)?;
    let groups = budget.plan(&entries, &ix, dim.or(schema_dim), &spec.kind);
    Ok(groups.into_iter().map(|g| g.into_iter().map(|i| entries[i].path.clone()).collect()).collect())
}

/// Read `files` of `table` (its pinned version), build their graph and write the segment
/// under `at`. `dim`: the dimension the index already has (refresh), if any. `budget`, when
/// given, bounds the files read at once (the files themselves were chosen to fit it by
/// [`plan_segments`]).
#[allow(clippy::too_many_arguments)]
pub async fn build_segment(
    table: &LakeTable,
    at: &IndexAt,
    spec: &BuildSpec,
    files: &[String],
    dim: Option<usize>,
    threads: Option<usize>,
    budget: Option<&Budget>,
    cancel: &CancelToken,
    progress: &Arc<Progress>,
) -> Result<BuiltSegment> {
    let schema_dim = check_buildable(table, spec)?;
    let entries = table.entries().await?;
    let ix = file_indices(table, &entries, files)?;
    progress.total.store(ix.iter().filter_map(|&i| entries[i].live_rows()).sum::<u64>() as usize, Ordering::Relaxed);
    let dim_known = dim.or(schema_dim);
    let mut read = spec.read_spec(dim_known, threads)?;
    if let Some(b) = budget {
        read.concurrency = b.read_concurrency(&entries, &ix, read.concurrency);
        read.expected_rows = ix.iter().map(|&i| Budget::file_bytes(&entries[i], dim_known, &spec.kind).0).sum();
    }
    let (seg, skipped) = read_segment(table, &ix, &read, cancel, &progress.done).await?;
    let estimate = !seg.is_empty();
    let (seg, recall) = build_structure(seg, spec.metric, &spec.kind, threads, cancel, progress, estimate).await?;
    progress.set_phase(Phase::Write);
    let segment = write_segment(at, &seg, &spec.kind, &[]).await?;
    Ok(BuiltSegment {
        segment,
        dim: seg.dim,
        rows_skipped: skipped as u64,
        recall_estimate: recall,
        table_uri: indexed_table_url(table),
        table_version: table.version(),
        column: spec.column.clone(),
        key: spec.key.clone(),
        metric: spec.metric,
        kind: spec.kind.clone(),
        on_invalid: spec.on_invalid,
    })
}

/// Check that `parts` were built from `table`'s version with `spec`, hold each of `wanted`
/// (data file paths) exactly once and nothing else, and agree on one dimension (returned;
/// `known` when given). A part whose files hold no valid vector may have dimension 0.
fn check_parts(
    table: &LakeTable,
    spec: &BuildSpec,
    parts: Vec<BuiltSegment>,
    wanted: &[&str],
    known: Option<usize>,
) -> Result<(Vec<BuiltSegment>, usize)> {
    let url = indexed_table_url(table);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut dim = known;
    for p in &parts {
        let same = p.table_uri == url
            && p.table_version == table.version()
            && p.column == spec.column
            && p.key == spec.key
            && p.metric == spec.metric
            && p.kind == spec.kind
            && p.on_invalid == spec.on_invalid;
        if !same {
            return Err(LakeError::InvalidArgument(format!(
                "segment {} was built for table '{}' version {:?} (column '{}', metric {}), not for this commit \
                 (table '{}' version {:?}, column '{}', metric {})",
                p.segment.id,
                p.table_uri,
                p.table_version,
                p.column,
                p.metric.as_str(),
                url,
                table.version(),
                spec.column,
                spec.metric.as_str()
            )));
        }
        let f = &p.segment.file.path;
        if !f.starts_with("segments/") || f.split('/').any(|s| s == ".." || s == ".") {
            return Err(LakeError::InvalidArgument(format!("segment {} has a bad file path '{f}'", p.segment.id)));
        }
        if p.dim > 0 {
            match dim {
                None => dim = Some(p.dim),
                Some(d) if d != p.dim => {
                    return Err(LakeError::Vector(format!(
                        "column '{}': segment {} has dimension {} but another has {d}",
                        spec.column, p.segment.id, p.dim
                    )))
                }
                _ => {}
            }
        }
        for f in &p.segment.data_files {
            if !seen.insert(f.as_str()) {
                return Err(LakeError::InvalidArgument(format!("data file '{f}' is in two segments")));
            }
        }
    }
    let wanted_set: HashSet<&str> = wanted.iter().copied().collect();
    if let Some(f) = seen.iter().find(|f| !wanted_set.contains(**f)) {
        return Err(LakeError::InvalidArgument(format!(
            "segments hold data file '{f}', which this commit does not cover"
        )));
    }
    if let Some(f) = wanted.iter().find(|f| !seen.contains(**f)) {
        return Err(LakeError::InvalidArgument(format!("no segment holds data file '{f}'")));
    }
    let dim = dim.ok_or_else(|| {
        LakeError::Vector(format!(
            "table '{}' has no valid vectors in column '{}': nothing to index",
            table.uri, spec.column
        ))
    })?;
    Ok((parts, dim))
}

/// Publish `parts`, which together hold every live data file of `table`'s version, as the
/// next version of the index at `at` (operation "build").
pub async fn commit_build(
    table: &LakeTable,
    at: IndexAt,
    spec: BuildSpec,
    parts: Vec<BuiltSegment>,
) -> Result<VectorIndex> {
    check_buildable(table, &spec)?;
    let entries = table.entries().await?;
    let wanted: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let (parts, dim) = check_parts(table, &spec, parts, &wanted, None)?;
    let rows: u64 = parts.iter().map(|p| p.segment.rows).sum();
    let recall = parts
        .iter()
        .filter_map(|p| p.recall_estimate.map(|r| (r, p.segment.rows as f64)))
        .fold((0.0, 0.0), |(s, w), (r, n)| (s + r * n, w + n));
    let commit = CommitInfo {
        operation: "build".into(),
        timestamp_ms: now_ms(),
        files_encoded: entries.len() as u64,
        rows_encoded: rows,
        rows_skipped: parts.iter().map(|p| p.rows_skipped).sum(),
        segments_added: parts.len() as u64,
        segments_removed: 0,
    };
    let estimate = (recall.1 > 0.0).then(|| recall.0 / recall.1);
    let segments = parts.iter().map(|p| p.segment.clone()).collect();
    let m = new_manifest(table, &spec, dim, segments, commit, estimate);
    let mut loaded = Vec::with_capacity(parts.len());
    for r in &m.segments {
        let (seg, deleted) = load_segment(&at, &m, r).await?;
        loaded.push(Arc::new(LoadedSegment::new(r.clone(), seg, &deleted)));
    }
    publish(at, m, loaded).await
}

/// Check refresh `parts` against the files a refresh of `table` must add (`new_files`) and
/// load them, verified.
pub async fn load_refresh_parts(
    at: &IndexAt,
    m: &Manifest,
    table: &LakeTable,
    new_files: &[&str],
    parts: Vec<BuiltSegment>,
) -> Result<Vec<(BuiltSegment, Arc<LoadedSegment>)>> {
    let spec = BuildSpec::of(m);
    let (parts, _) = check_parts(table, &spec, parts, new_files, Some(m.dim))?;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let (seg, deleted) = load_segment(at, m, &p.segment).await?;
        let l = Arc::new(LoadedSegment::new(p.segment.clone(), seg, &deleted));
        out.push((p, l));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_segment_json_round_trip() {
        let b = BuiltSegment {
            segment: SegmentRef {
                id: "x".into(),
                file: crate::index::manifest::FileRef { path: "segments/x.lkv".into(), bytes: 10, crc32: 7 },
                kind: IndexKind::Flat,
                rows: 3,
                data_files: vec!["a.parquet".into()],
                tombstones: None,
                num_tombstones: 0,
            },
            dim: 4,
            rows_skipped: 0,
            recall_estimate: Some(1.0),
            table_uri: "file:///t".into(),
            table_version: Some(2),
            column: "v".into(),
            key: None,
            metric: Metric::L2,
            kind: IndexKind::Hnsw(crate::vector::hnsw_params::HnswParams {
                m: 16,
                ef_construction: 200,
                builder: Default::default(),
            }),
            on_invalid: OnInvalid::Error,
        };
        assert_eq!(BuiltSegment::from_json(&b.to_json().unwrap()).unwrap(), b);
        assert!(BuiltSegment::from_json("{}").is_err());
    }
}
