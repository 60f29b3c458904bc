//! Refresh: bring an index to a newer table version. New data files become a new segment,
//! removed files and newly deleted rows become tombstones, segments left without a live file
//! are dropped. Nothing is rewritten: the next version reuses every unchanged file.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::budget::Budget;
use crate::index::build::{build_structure, now_ms, Phase, Progress};
use crate::index::dist::{load_refresh_parts, BuiltSegment};
use crate::index::handle::VectorIndex;
use crate::index::ingest::{read_segment, ReadSpec};
use crate::index::liveness::{deleted_nodes, live_entry, missing_files};
use crate::index::location::indexed_table_url;
use crate::index::manifest::CommitInfo;
use crate::index::state::LoadedSegment;
use crate::index::store::{write_segment, write_tombstones};
use crate::lake::datafiles::DataFileEntry;
use crate::lake::pin::TablePin;
use crate::lake::storage::redact;
use crate::lake::table::LakeTable;
use crate::runtime::{resolve_threads, CancelToken};

impl VectorIndex {
    /// Bring the index to the table's latest version: new data files become new segments
    /// (as many as `budget` needs, each read, built, written and dropped in turn), removed
    /// files and newly deleted rows become tombstones. Returns whether a new index version was
    /// committed.
    pub async fn refresh(
        &self,
        threads: Option<usize>,
        budget: Budget,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<bool> {
        let table = self.open_table(TablePin::default()).await?;
        self.refresh_with(&table, None, threads, budget, cancel, progress).await
    }

    /// The live data files of `table` that no segment holds (what a refresh to it encodes).
    pub async fn pending_files(&self, table: &LakeTable) -> Result<Vec<String>> {
        let entries = table.entries().await?;
        let segs = self.state().segments(&self.at).await?;
        Ok(missing_files(&segs, &entries).into_iter().map(|i| entries[i].path.clone()).collect())
    }

    /// [`refresh`](Self::refresh) to `table` (a pinned version of the indexed table). With
    /// `parts`, its new files come as segments built elsewhere ([`crate::index::dist`]), which
    /// must hold exactly [`pending_files`](Self::pending_files); without, they are read and
    /// built here.
    pub async fn refresh_with(
        &self,
        table: &LakeTable,
        parts: Option<Vec<BuiltSegment>>,
        threads: Option<usize>,
        budget: Budget,
        cancel: &CancelToken,
        progress: &Arc<Progress>,
    ) -> Result<bool> {
        let st = self.state();
        let m = &st.manifest;
        if indexed_table_url(table) != m.table_uri {
            return Err(LakeError::InvalidArgument(format!(
                "table '{}' is not the indexed table '{}'",
                table.uri,
                redact(&m.table_uri)
            )));
        }
        let entries = table.entries().await?;
        let segs = st.segments(&self.at).await?;
        let by_path: HashMap<&str, &DataFileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut segments = Vec::new();
        let mut loaded = Vec::new();
        let mut changed = false;
        let mut removed = 0u64;
        for s in &segs {
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
        let new_files = missing_files(&segs, &entries);
        let mut info = CommitInfo {
            operation: "refresh".into(),
            timestamp_ms: now_ms(),
            segments_removed: removed,
            ..Default::default()
        };
        if let Some(parts) = parts {
            let paths: Vec<&str> = new_files.iter().map(|&i| entries[i].path.as_str()).collect();
            let built = load_refresh_parts(&self.at, m, table, &paths, parts).await?;
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
            progress.total.store(
                new_files.iter().filter_map(|&i| entries[i].live_rows()).sum::<u64>() as usize,
                Ordering::Relaxed,
            );
            info.files_encoded = new_files.len() as u64;
            let groups = budget.plan(&entries, &new_files, Some(m.dim), &m.kind);
            let one = groups.len() == 1;
            for group in groups.iter().filter(|g| !g.is_empty()) {
                progress.set_phase(Phase::Read);
                let mut read = ReadSpec::for_index(m, resolve_threads(threads)? * 2);
                read.concurrency = budget.read_concurrency(&entries, group, read.concurrency);
                read.expected_rows =
                    group.iter().map(|&i| Budget::file_bytes(&entries[i], Some(m.dim), &m.kind).0).sum();
                let (seg, skipped) = read_segment(table, group, &read, cancel, &progress.done).await?;
                info.rows_encoded += seg.len() as u64;
                info.rows_skipped += skipped as u64;
                info.segments_added += 1;
                let (seg, _) = build_structure(seg, m.metric, &m.kind, threads, cancel, progress, false).await?;
                progress.set_phase(Phase::Write);
                let r = write_segment(&self.at, &seg, &m.kind, &[]).await?;
                if one {
                    loaded.push(Arc::new(LoadedSegment::new(r.clone(), seg, &[])));
                }
                segments.push(r);
            }
        }
        if !changed && table.version() == m.table_version {
            return Ok(false);
        }
        // With several new segments, each was dropped once written: the version loads lazily.
        let loaded = (loaded.len() == segments.len()).then_some(loaded);
        self.commit_next(&st, segments, loaded, table.version(), info).await?;
        Ok(true)
    }
}
