//! Compaction: merge every segment into one, dropping deleted rows, and rebuild its structure
//! from the vectors the index stores (nothing is read from the lake).

use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::build::{build_structure, now_ms, Phase, Progress};
use crate::index::handle::VectorIndex;
use crate::index::kind::SegmentIndex;
use crate::index::manifest::CommitInfo;
use crate::index::segment::Segment;
use crate::index::state::LoadedSegment;
use crate::index::store::write_segment;
use crate::runtime::CancelToken;

impl VectorIndex {
    /// Merge every segment into one, dropping deleted rows, and rebuild its graph from the
    /// index's stored vectors (nothing is read from the lake).
    pub async fn compact(
        &self,
        threads: Option<usize>,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<bool> {
        let st = self.state();
        let m = &st.manifest;
        if st.segments.len() <= 1 && st.segments.iter().all(|s| s.r.num_tombstones == 0) {
            return Ok(false);
        }
        let mut seg = Segment {
            dim: m.dim,
            files: Vec::new(),
            file_sizes: Vec::new(),
            file_tags: Vec::new(),
            fstart: vec![0],
            rows: Vec::new(),
            vectors: Vec::new(),
            index: SegmentIndex::Flat,
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
                seg.file_tags.push(s.seg.file_tags.get(f).cloned().flatten());
                seg.fstart.push(seg.rows.len() as u32);
            }
        }
        if m.key.is_some() {
            let arrays: Vec<&dyn arrow::array::Array> = st
                .segments
                .iter()
                .map(|s| {
                    s.seg.keys.as_deref().ok_or_else(|| LakeError::CorruptIndex("a segment lacks its keys".into()))
                })
                .collect::<Result<_>>()?;
            seg.keys = Some(crate::index::segment::interleave_keys(&arrays, &key_parts)?);
        }
        let (seg, _) = build_structure(seg, m.metric, &m.kind, threads, cancel, progress, false).await?;
        progress.set_phase(Phase::Write);
        let r = write_segment(&self.at, &seg, &m.kind, &[]).await?;
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
}
