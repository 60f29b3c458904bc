//! Committing a version of a dedup index: the new segment files, the clusters file, then the
//! manifest (put-if-absent, `index::publish`), for builds and refreshes of every method.

use std::sync::Arc;

use crate::dedup::index::format::{
    clusters_sections, segment_sections, Clusters, DedupManifest, DedupParams, DedupSegment, DedupSegmentRef, FORMAT,
    FORMAT_VERSION,
};
use crate::dedup::index::ops::{refs, DedupIndex};
use crate::error::Result;
use crate::index::location::{indexed_table_url, IndexAt};
use crate::index::manifest::CommitInfo;
use crate::index::publish::{self, manifest_path, new_id};
use crate::index::store::write_sections;
use crate::lake::table::LakeTable;

/// What a version indexes: the table version, the index name, column and parameters, and for
/// a semantic index the vector index it follows.
pub(crate) struct Target<'a> {
    pub table: &'a LakeTable,
    pub name: &'a str,
    pub column: &'a str,
    pub params: &'a DedupParams,
    pub vector_index: Option<String>,
}

/// Commit the version after `prev`: write the new segments not written yet (`new_refs`
/// None; Ray tasks wrote the others), then the clusters file, then the manifest
/// (put-if-absent); returns the loaded index of the new version.
pub(crate) async fn commit_version(
    at: IndexAt,
    prev: Option<&DedupIndex>,
    target: &Target<'_>,
    new_segs: Vec<Arc<DedupSegment>>,
    new_refs: Vec<Option<DedupSegmentRef>>,
    clusters: Clusters,
    files_encoded: usize,
) -> Result<Arc<DedupIndex>> {
    let old_rows = prev.map_or(0, |p| p.manifest.rows);
    let mut segments = prev.map(|p| p.manifest.segments.clone()).unwrap_or_default();
    let mut all_segments = prev.map(|p| p.segments.clone()).unwrap_or_default();
    let mut bases = prev.map(|p| p.bases.clone()).unwrap_or_default();
    let mut base = old_rows;
    for (seg, written) in new_segs.iter().zip(new_refs) {
        let r = match written {
            Some(r) => r,
            None => {
                let id = new_id();
                let file = write_sections(&at, &format!("segments/{id}.lkv"), &refs(&segment_sections(seg))).await?;
                DedupSegmentRef { id, file, rows: seg.len() as u64 }
            }
        };
        segments.push(r);
        bases.push(base);
        base += seg.len() as u64;
        all_segments.push(seg.clone());
    }
    let cpath = format!("clusters/{}.lkv", new_id());
    let cfile = write_sections(&at, &cpath, &refs(&clusters_sections(&clusters))).await?;
    let version = match prev {
        Some(p) => publish::next_version(p.manifest.version)?,
        None => 1,
    };
    let live_rows = clusters.live.iter().filter(|&&l| l).count() as u64;
    let table = target.table;
    let m = DedupManifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        version,
        writer_id: new_id(),
        name: target.name.to_string(),
        table_uri: indexed_table_url(table),
        table_format: table.format.as_str().to_string(),
        table_version: table.version(),
        column: target.column.to_string(),
        params: target.params.clone(),
        vector_index: target.vector_index.clone(),
        segments,
        clusters: cfile,
        rows: base,
        live_rows,
        commit: CommitInfo {
            operation: if prev.is_some() { "refresh" } else { "build" }.into(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            files_encoded: files_encoded as u64,
            rows_encoded: base - old_rows,
            rows_skipped: 0,
            segments_added: new_segs.len() as u64,
            segments_removed: 0,
        },
    };
    let local = at.local_file(&manifest_path(at.root(), version));
    publish::commit(&at.store, at.root(), &m, local).await?;
    Ok(Arc::new(DedupIndex { at, manifest: m, segments: all_segments, bases, clusters }))
}
