//! Reading and writing an index's immutable files: segments and tombstones (both in the
//! checksummed container), and loading one index version whole.

use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::container::{self, Container};
use crate::index::kind::IndexKind;
use crate::index::location::IndexAt;
use crate::index::manifest::{self, FileRef, Manifest, SegmentRef};
use crate::index::segment::Segment;
use crate::index::state::{IndexState, LoadedSegment};

/// The one section of a tombstone file: sorted u64 node ids.
const TOMB_TAG: container::Tag = *b"DELETED\0";

fn tombstone_bytes(deleted: &[u64]) -> Vec<u8> {
    let b: Vec<u8> = deleted.iter().flat_map(|x| x.to_le_bytes()).collect();
    container::write(&[(TOMB_TAG, &b)])
}

/// Parse and verify a tombstone file: `count` sorted, unique node ids below `rows` (`name`
/// is used in errors).
pub(crate) fn decode_tombstones(bytes: &[u8], name: &str, count: u64, rows: u64) -> Result<Vec<u64>> {
    let c = Container::open(bytes, name)?;
    let count = usize::try_from(count).map_err(|_| LakeError::CorruptIndex(format!("'{name}': count overflows")))?;
    let d = container::u64s(c.section(&TOMB_TAG)?, count, "DELETED").map_err(|e| e.context(name))?;
    if d.windows(2).any(|w| w[0] >= w[1]) || d.last().is_some_and(|&x| x >= rows) {
        return Err(LakeError::CorruptIndex(format!("index file '{name}' holds out-of-range rows")));
    }
    Ok(d)
}

/// Read segment `r` of manifest `m` with its tombstones, verified against `r` (row count,
/// files, dimension, kind).
pub(crate) async fn load_segment(at: &IndexAt, m: &Manifest, r: &SegmentRef) -> Result<LoadedSegment> {
    let bytes = manifest::get_file(&at.store, at.root(), &r.file).await?;
    let name = manifest::child(at.root(), &r.file.path).to_string();
    let seg = Segment::decode(&bytes, &name)?;
    // (a segment of files without any valid vector, built without a known dimension, has dim 0)
    let dim_ok = seg.dim == m.dim || (seg.is_empty() && seg.dim == 0);
    if seg.len() as u64 != r.rows || !dim_ok || seg.files != r.data_files || !seg.index.matches(&r.kind, seg.len()) {
        return Err(LakeError::CorruptIndex(format!("index file '{name}' does not match its manifest entry")));
    }
    let deleted = match &r.tombstones {
        Some(t) => {
            let tb = manifest::get_file(&at.store, at.root(), t).await?;
            let tname = manifest::child(at.root(), &t.path).to_string();
            decode_tombstones(&tb, &tname, r.num_tombstones, r.rows)?
        }
        None => Vec::new(),
    };
    Ok(LoadedSegment::new(r.clone(), seg, &deleted))
}

/// Load index version `version` (when `None`: the newest whose manifest verifies; newer
/// corrupt or truncated manifests are skipped and logged, so one damaged file does not lock
/// readers and writers out).
pub async fn load_state(at: &IndexAt, version: Option<u64>) -> Result<IndexState> {
    let m = match version {
        Some(v) => manifest::read(&at.store, at.root(), v).await?,
        None => {
            let (m, skipped) = manifest::newest_valid(&at.store, at.root()).await?.ok_or_else(|| {
                LakeError::NotFound(format!("no lakevec index at '{}' (no manifests/ folder)", at.uri))
            })?;
            for (v, why) in skipped {
                log::warn!("lakevec index '{}': skipped corrupt manifest version {v} ({why})", at.uri);
            }
            m
        }
    };
    let mut segments = Vec::with_capacity(m.segments.len());
    for r in &m.segments {
        segments.push(Arc::new(load_segment(at, &m, r).await?));
    }
    Ok(IndexState { manifest: m, segments })
}

/// Write `seg` (built as `kind`) and its tombstones `deleted` as new immutable files;
/// returns its manifest entry.
pub(crate) async fn write_segment(
    at: &IndexAt,
    seg: &Segment,
    kind: &IndexKind,
    deleted: &[u64],
) -> Result<SegmentRef> {
    let id = manifest::new_id();
    let path = format!("segments/{id}.lkv");
    let file = manifest::put_file(&at.store, at.root(), &path, seg.encode()?).await?;
    sync_local(at, &path).await?;
    let tombstones = write_tombstones(at, deleted).await?;
    Ok(SegmentRef {
        id,
        file,
        kind: kind.clone(),
        rows: seg.len() as u64,
        data_files: seg.files.clone(),
        tombstones,
        num_tombstones: deleted.len() as u64,
    })
}

/// Write a tombstone file for nodes `deleted` (none when empty).
pub(crate) async fn write_tombstones(at: &IndexAt, deleted: &[u64]) -> Result<Option<FileRef>> {
    if deleted.is_empty() {
        return Ok(None);
    }
    let path = format!("tombstones/{}.lkv", manifest::new_id());
    let file = manifest::put_file(&at.store, at.root(), &path, tombstone_bytes(deleted)).await?;
    sync_local(at, &path).await?;
    Ok(Some(file))
}

/// On a local store, fsync index file `rel` and its folder before any manifest names it.
async fn sync_local(at: &IndexAt, rel: &str) -> Result<()> {
    let Some(file) = at.local_file(&manifest::child(at.root(), rel)) else { return Ok(()) };
    tokio::task::spawn_blocking(move || crate::index::durable::sync_file(&file))
        .await
        .map_err(|e| LakeError::Internal(e.to_string()))?
        .map_err(|e| LakeError::Storage(format!("syncing index file '{rel}': {e}")))
}
