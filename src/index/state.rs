//! One index version in memory: its manifest and its segments with tombstones applied.

use std::sync::Arc;

use crate::index::manifest::{Manifest, SegmentRef};
use crate::index::segment::Segment;
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

/// One index version, loaded.
#[derive(Debug)]
pub struct IndexState {
    pub manifest: Manifest,
    pub segments: Vec<Arc<LoadedSegment>>,
}

impl IndexState {
    /// Rows searchable in this version (stored rows less tombstones).
    pub fn live_rows(&self) -> usize {
        self.segments.iter().map(|s| s.live_count).sum()
    }
}
