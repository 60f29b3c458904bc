//! Compaction: merge segments, dropping deleted rows, and rebuild their structure from the
//! vectors the index stores (nothing is read from the lake), within a memory budget.

use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::budget::Budget;
use crate::index::build::{build_structure, now_ms, Phase, Progress};
use crate::index::handle::VectorIndex;
use crate::index::kind::SegmentIndex;
use crate::index::manifest::{CommitInfo, Manifest};
use crate::index::segment::Segment;
use crate::index::state::LoadedSegment;
use crate::index::store::write_segment;
use crate::runtime::CancelToken;

/// Consecutive segments of `m` grouped so that each group's live rows, merged, fit `budget`
/// (a segment over the budget on its own stays a group of one).
fn merge_groups(m: &Manifest, budget: &Budget) -> Vec<Vec<usize>> {
    let per_row = 4 * m.dim as u64 + Budget::row_overhead(&m.kind, Some(m.dim));
    let cap = budget.bytes / 4 * 3;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let (mut cur, mut rows) = (Vec::new(), 0u64);
    for (i, r) in m.segments.iter().enumerate() {
        let live = r.rows.saturating_sub(r.num_tombstones);
        if !cur.is_empty() && ((rows + live) * per_row > cap || rows + live > budget.max_segment_rows as u64) {
            groups.push(std::mem::take(&mut cur));
            rows = 0;
        }
        cur.push(i);
        rows += live;
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// The live rows of `segs`, in order, as one segment without structure.
fn merge(m: &Manifest, segs: &[&Arc<LoadedSegment>]) -> Result<Segment> {
    let (mut files, mut file_sizes, mut file_tags, mut fstart) = (Vec::new(), Vec::new(), Vec::new(), vec![0u32]);
    let (mut rows, mut vectors) = (Vec::new(), Vec::new());
    let mut key_parts: Vec<(usize, usize)> = Vec::new();
    for (si, s) in segs.iter().enumerate() {
        for f in 0..s.seg.files.len() {
            let (a, b) = (s.seg.fstart[f] as usize, s.seg.fstart[f + 1] as usize);
            let alive: Vec<usize> = (a..b).filter(|&i| s.live.get(i)).collect();
            if alive.is_empty() && b > a {
                continue; // every row deleted (or the file removed)
            }
            for &i in &alive {
                rows.push(s.seg.rows[i]);
                vectors.extend_from_slice(&s.seg.vector_cow(i));
                key_parts.push((si, i));
            }
            files.push(s.seg.files[f].clone());
            file_sizes.push(s.seg.file_sizes[f]);
            file_tags.push(s.seg.file_tags.get(f).cloned().flatten());
            fstart.push(rows.len() as u32);
        }
    }
    let mut seg = Segment {
        dim: m.dim,
        files,
        file_sizes,
        file_tags,
        fstart,
        rows: rows.into(),
        vectors: vectors.into(),
        index: SegmentIndex::Flat,
        keys: None,
    };
    if m.key.is_some() {
        let arrays: Vec<&dyn arrow::array::Array> = segs
            .iter()
            .map(|s| s.seg.keys.as_deref().ok_or_else(|| LakeError::CorruptIndex("a segment lacks its keys".into())))
            .collect::<Result<_>>()?;
        seg.keys = Some(crate::index::segment::interleave_keys(&arrays, &key_parts)?);
    }
    Ok(seg)
}

impl VectorIndex {
    /// Merge segments into as few as `budget` allows (consecutive segments whose live rows fit
    /// it together become one), dropping deleted rows, and rebuild their graphs from the
    /// index's stored vectors (nothing is read from the lake). A group is merged, built,
    /// written and dropped before the next. Returns false when there was nothing to do.
    pub async fn compact(
        &self,
        threads: Option<usize>,
        budget: Budget,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<bool> {
        let st = self.state();
        let m = &st.manifest;
        let groups = merge_groups(m, &budget);
        let untouched = |g: &Vec<usize>| g.len() == 1 && m.segments[g[0]].num_tombstones == 0;
        if groups.iter().all(untouched) {
            return Ok(false);
        }
        let segs = st.segments(&self.at).await?;
        let (mut refs, mut loaded) = (Vec::new(), Vec::new());
        let mut info = CommitInfo { operation: "compact".into(), timestamp_ms: now_ms(), ..Default::default() };
        for g in &groups {
            if untouched(g) {
                refs.push(segs[g[0]].r.clone());
                loaded.push(segs[g[0]].clone());
                continue;
            }
            let parts: Vec<&Arc<LoadedSegment>> = g.iter().map(|&i| &segs[i]).collect();
            let seg = merge(m, &parts)?;
            let (seg, _) = build_structure(seg, m.metric, &m.kind, threads, cancel, progress, false).await?;
            progress.set_phase(Phase::Write);
            let r = write_segment(&self.at, &seg, &m.kind, &[]).await?;
            info.segments_added += 1;
            info.segments_removed += g.len() as u64;
            // One merged group stays in memory; with several, each is dropped once written.
            if groups.len() == 1 {
                loaded.push(Arc::new(LoadedSegment::new(r.clone(), seg, &[])));
            }
            refs.push(r);
        }
        let loaded = (loaded.len() == refs.len()).then_some(loaded);
        self.commit_next(&st, refs, loaded, m.table_version, info).await?;
        Ok(true)
    }
}
