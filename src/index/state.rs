//! One index version in memory: its manifest and its segments with tombstones applied.

use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::location::IndexAt;
use crate::index::manifest::{self, Manifest, SegmentRef};
use crate::index::segment::Segment;
use crate::index::store::load_segment;
use crate::vector::bits::Bits;

/// A segment with its tombstones applied.
#[derive(Debug)]
pub struct LoadedSegment {
    pub r: SegmentRef,
    pub seg: Segment,
    /// Nodes not deleted at the index's table version.
    pub live: Bits,
    pub live_count: usize,
}

impl LoadedSegment {
    /// `seg` (described by `r`) with nodes `deleted` (sorted, in range) marked dead.
    pub fn new(r: SegmentRef, seg: Segment, deleted: &[u64]) -> Self {
        let mut live = Bits::new(seg.len(), true);
        for &d in deleted {
            live.set(d as usize, false);
        }
        let live_count = live.count();
        LoadedSegment { r, seg, live, live_count }
    }
}

/// One index version: its manifest, and its segments loaded on first use (a search, refresh,
/// compaction or coverage call loads the ones it needs; opening an index reads manifests only).
#[derive(Debug)]
pub struct IndexState {
    pub manifest: Manifest,
    /// One cell per `manifest.segments` entry, in order.
    slots: Vec<tokio::sync::OnceCell<Arc<LoadedSegment>>>,
}

impl IndexState {
    /// A version none of whose segments is loaded yet.
    pub fn lazy(manifest: Manifest) -> Self {
        let slots = manifest.segments.iter().map(|_| tokio::sync::OnceCell::new()).collect();
        IndexState { manifest, slots }
    }

    /// A version whose segments are already in memory (`loaded`: one per manifest entry, in
    /// order: what a build or commit just wrote).
    pub fn loaded(manifest: Manifest, loaded: Vec<Arc<LoadedSegment>>) -> Self {
        debug_assert_eq!(loaded.len(), manifest.segments.len());
        let slots = loaded.into_iter().map(|s| tokio::sync::OnceCell::new_with(Some(s))).collect();
        IndexState { manifest, slots }
    }

    /// Every segment, loading (mapping and verifying) those not loaded yet. Concurrent callers
    /// share one load per segment.
    pub async fn segments(&self, at: &IndexAt) -> Result<Vec<Arc<LoadedSegment>>> {
        // all loaded (every search after the first): no futures to set up
        if let Some(all) = self.slots.iter().map(|s| s.get().cloned()).collect::<Option<Vec<_>>>() {
            return Ok(all);
        }
        let m = &self.manifest;
        futures::future::try_join_all(self.slots.iter().zip(&m.segments).map(|(slot, r)| async move {
            slot.get_or_try_init(|| async {
                let (seg, deleted) = load_segment(at, m, r).await?;
                Ok::<_, LakeError>(Arc::new(LoadedSegment::new(r.clone(), seg, &deleted)))
            })
            .await
            .cloned()
        }))
        .await
    }

    /// Segments loaded so far (for statistics: nothing is loaded by asking).
    pub fn loaded_segments(&self) -> impl Iterator<Item = &Arc<LoadedSegment>> {
        self.slots.iter().filter_map(|s| s.get())
    }

    /// Rows searchable in this version (stored rows less tombstones), from the manifest.
    pub fn live_rows(&self) -> usize {
        self.manifest.segments.iter().map(|r| r.rows.saturating_sub(r.num_tombstones) as usize).sum()
    }
}

/// Open index version `version`, reading its manifest only (segments load on first use; see
/// [`IndexState::segments`]) (when `None`: the newest whose manifest verifies; newer
/// corrupt or truncated manifests are skipped and logged, so one damaged file does not lock
/// readers and writers out).
pub async fn load_state(at: &IndexAt, version: Option<u64>) -> Result<IndexState> {
    let m = match version {
        Some(v) => manifest::read(&at.store, at.root(), v).await?,
        None => {
            let (m, skipped) = manifest::newest_valid(&at.store, at.root()).await?.ok_or_else(|| {
                LakeError::NotFound(format!(
                    "no lakevec index at '{0}' (no manifests/ folder); if '{0}' is a table, open its index \
                     with lakevec.open_index(lakevec.Table.open('{0}')) (indexes live in the table's \
                     _lakevec_index/<name> folder), or build one with lakevec.build_index",
                    at.uri
                ))
            })?;
            for (v, why) in skipped {
                log::warn!("lakevec index '{}': skipped corrupt manifest version {v} ({why})", at.uri);
            }
            m
        }
    };
    Ok(IndexState::lazy(m))
}
