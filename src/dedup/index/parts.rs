//! Segments signed by other processes (Ray tasks) for one refresh: a task signs a group of
//! the table's new data files and writes them as a segment file in the index folder
//! ([`sign_part`]); the driver verifies every part against the files it expects
//! ([`load_parts`]) and clusters and commits them in one version (`ops::update`). Until then
//! nothing is visible: a failed task leaves orphan files for vacuum, never a version.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dedup::index::format::{decode_segment_in, segment_sections, DedupParams, DedupSegment, DedupSegmentRef};
use crate::dedup::index::matching::band_lists;
use crate::dedup::index::ops::{liveness, refs, sign_files, DedupIndex};
use crate::error::{LakeError, Result};
use crate::index::build::Progress;
use crate::index::location::IndexAt;
use crate::index::publish::{new_id, FileRef};
use crate::index::store::{file_backing, write_sections};
use crate::lake::datafiles::DataFileEntry;
use crate::lake::table::LakeTable;
use crate::runtime::{pool, run_cpu, CancelToken};

/// A segment file a task wrote, as it reports it to the driver (JSON).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PartRef {
    pub id: String,
    pub file: FileRef,
    pub rows: u64,
}

/// The paths of `table`'s data files that `prev` (None: an empty index) does not hold.
pub fn pending(prev: Option<&DedupIndex>, entries: &[DataFileEntry]) -> Result<Vec<String>> {
    Ok(liveness(prev, entries)?.1.into_iter().map(|i| entries[i].path.clone()).collect())
}

/// Sign the rows of data files `files` (paths of `table`'s version) and write them as a new
/// segment file at `at`; returns its reference for the driver.
pub async fn sign_part(
    table: &LakeTable,
    at: &IndexAt,
    column: &str,
    params: &DedupParams,
    files: &[String],
    num_threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<PartRef> {
    let entries = table.entries().await?;
    let by_path: HashMap<&str, usize> = entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
    let idx: Vec<usize> = files
        .iter()
        .map(|f| {
            by_path.get(f.as_str()).copied().ok_or_else(|| {
                LakeError::InvalidArgument(format!(
                    "data file '{f}' is not in version {:?} of the table",
                    table.version()
                ))
            })
        })
        .collect::<Result<_>>()?;
    let h = Arc::new(params.hasher()?);
    let mut seg = sign_files(table, &idx, column, &h, num_threads, cancel, &Progress::default()).await?;
    let p = params.clone();
    let seg = run_cpu(pool(num_threads)?, cancel.clone(), move || {
        band_lists(&mut seg, &p);
        Ok(seg)
    })
    .await?;
    let id = new_id();
    let file = write_sections(at, &format!("segments/{id}.lkv"), &refs(&segment_sections(&seg))).await?;
    Ok(PartRef { id, file, rows: seg.len() as u64 })
}

/// Load and verify `parts` (files, sizes, checksums, counts) and check that together they hold
/// exactly the table's data files `missing` (indices into `entries`), each once.
pub async fn load_parts(
    at: &IndexAt,
    params: &DedupParams,
    entries: &[DataFileEntry],
    missing: &[usize],
    parts: Vec<PartRef>,
) -> Result<Vec<(Arc<DedupSegment>, DedupSegmentRef)>> {
    let mut want: HashMap<&str, &DataFileEntry> =
        missing.iter().map(|&i| (entries[i].path.as_str(), &entries[i])).collect();
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let buf = file_backing(at, &p.file).await?;
        let seg = decode_segment_in(&buf, &p.file.path, p.rows, params.num_perm, params.bands)?;
        for f in &seg.files {
            let ok = want.remove(f.path.as_str()).is_some_and(|e| e.size == f.size && e.tag == f.tag);
            if !ok {
                return Err(LakeError::InvalidArgument(format!(
                    "segment '{}' holds data file '{}', which is not a new file of this table version (or is in \
                     two parts)",
                    p.file.path, f.path
                )));
            }
        }
        out.push((Arc::new(seg), DedupSegmentRef { id: p.id, file: p.file, rows: p.rows }));
    }
    if let Some(f) = want.keys().next() {
        return Err(LakeError::InvalidArgument(format!(
            "the segments do not cover the table version: data file '{f}' (and {} more) missing",
            want.len() - 1
        )));
    }
    Ok(out)
}
