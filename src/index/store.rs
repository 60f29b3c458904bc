//! Reading and writing an index's immutable files: segments and tombstones (both in the
//! checksummed container), and loading one index version whole.

use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::container::{self, Container};
use crate::index::kind::IndexKind;
use crate::index::location::IndexAt;
use crate::index::manifest::{self, FileRef, Manifest, SegmentRef};
use crate::index::segment::Segment;
use crate::vector::mapped::Backing;
use object_store::ObjectStoreExt;

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

/// The verified bytes of index file `f`: a read-only map of the file on a local store (its
/// pages load as searches touch them), of its copy in the segment cache for an object store
/// (see [`crate::index::cache`]), or a download into memory when the cache is off. Size and
/// CRC-32 are checked against `f` before anything uses the bytes.
pub(crate) async fn file_backing(at: &IndexAt, f: &FileRef) -> Result<Arc<Backing>> {
    let object = manifest::child(at.root(), &f.path);
    let Some(local) = at.local_file(&object) else {
        return match &at.cache {
            Some(c) => c.backing(&at.store, &at.uri, &object, f).await,
            None => Ok(Arc::new(Backing::Bytes(manifest::get_file(&at.store, at.root(), f).await?))),
        };
    };
    let (want_len, want_crc) = (f.bytes, f.crc32);
    tokio::task::spawn_blocking(move || -> Result<Arc<Backing>> {
        let file = std::fs::File::open(&local).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => manifest::missing_file(&object),
            _ => LakeError::Storage(format!("opening index file '{object}': {e}")),
        })?;
        let len = file.metadata().map_err(|e| LakeError::Storage(format!("index file '{object}': {e}")))?.len();
        if len != want_len {
            return Err(LakeError::CorruptIndex(format!(
                "index file '{object}' is corrupt: {len} bytes, the manifest says {want_len}"
            )));
        }
        let buf = match len {
            0 => Backing::Bytes(bytes::Bytes::new()),
            _ => Backing::map(&file).map_err(|e| LakeError::Storage(format!("mapping index file '{object}': {e}")))?,
        };
        if buf.len() as u64 != want_len || crc32fast::hash(&buf) != want_crc {
            return Err(LakeError::CorruptIndex(format!("index file '{object}' is corrupt: checksum mismatch")));
        }
        log::debug!("mapped index file '{object}' ({len} bytes, checksum verified)");
        Ok(Arc::new(buf))
    })
    .await
    .map_err(|e| LakeError::Internal(e.to_string()))?
}

/// Read segment `r` of manifest `m` with its tombstones, verified against `r` (row count,
/// files, dimension, kind); returns it with its deleted nodes. On a local store the segment's
/// arrays stay in its mapped file.
pub(crate) async fn load_segment(at: &IndexAt, m: &Manifest, r: &SegmentRef) -> Result<(Segment, Vec<u64>)> {
    let buf = file_backing(at, &r.file).await?;
    let name = manifest::child(at.root(), &r.file.path).to_string();
    let seg = Segment::decode_in(&buf, &name)?;
    buf.release_resident();
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
    Ok((seg, deleted))
}

/// Files up to this size go to object stores in one PUT; larger ones by multipart upload
/// (S3 caps a single PUT at 5 GiB), in parts of [`PART_BYTES`].
const SINGLE_PUT_MAX: usize = 64 << 20;
const PART_BYTES: usize = 16 << 20;
/// Parts in flight at once during a multipart upload (bounds the memory it holds).
const PARTS_IN_FLIGHT: usize = 2;

/// Write `seg` (built as `kind`) and its tombstones `deleted` as new immutable files;
/// returns its manifest entry. The segment's arrays are written from memory as they are: a
/// local file directly, an object-store file in one PUT (small) or a multipart upload.
pub(crate) async fn write_segment(
    at: &IndexAt,
    seg: &Segment,
    kind: &IndexKind,
    deleted: &[u64],
) -> Result<SegmentRef> {
    let id = manifest::new_id();
    let path = format!("segments/{id}.lkv");
    let sections = seg.sections()?;
    let refs: Vec<(container::Tag, &[u8])> = sections.iter().map(|(t, b)| (*t, b.as_ref())).collect();
    let file = write_sections(at, &path, &refs).await?;
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

/// Write a new immutable container file `rel` (relative to the index folder) of `sections`,
/// from memory as they are (no copy of the whole file): a local file directly and synced, an
/// object-store file in one PUT (small) or a multipart upload.
pub(crate) async fn write_sections(at: &IndexAt, rel: &str, sections: &[(container::Tag, &[u8])]) -> Result<FileRef> {
    let object = manifest::child(at.root(), rel);
    let pieces = container::pieces(sections);
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let ((bytes, crc32), how) = if let Some(local) = at.local_file(&object) {
        // Blocking file I/O on this runtime worker, announced to tokio.
        let written = tokio::task::block_in_place(|| write_local(&local, &pieces))
            .map_err(|e| LakeError::Storage(format!("writing index file '{object}': {e}")))?;
        (written, "local, synced")
    } else if total <= SINGLE_PUT_MAX {
        let mut all = Vec::with_capacity(total);
        pieces.iter().for_each(|p| all.extend_from_slice(p));
        let f = manifest::put_file(&at.store, at.root(), rel, all).await?;
        ((f.bytes, f.crc32), "one PUT")
    } else {
        (upload_multipart(at, &object, &pieces).await?, "multipart")
    };
    drop(pieces);
    sync_local(at, rel).await?;
    log::debug!("wrote index file '{object}' ({bytes} bytes, {} sections, {how})", sections.len());
    Ok(FileRef { path: rel.to_string(), bytes, crc32 })
}

/// Write `pieces` to a new local file (its folder created); returns (length, CRC-32).
fn write_local(path: &std::path::Path, pieces: &[std::borrow::Cow<'_, [u8]>]) -> std::io::Result<(u64, u32)> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create_new(path)?);
    let (mut len, mut crc) = (0u64, crc32fast::Hasher::new());
    for p in pieces {
        crc.update(p);
        len += p.len() as u64;
        w.write_all(p)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((len, crc.finalize()))
}

/// Upload `pieces` as one object by multipart upload, [`PARTS_IN_FLIGHT`] parts of
/// [`PART_BYTES`] at a time; aborted on error. Returns (length, CRC-32).
async fn upload_multipart(
    at: &IndexAt,
    object: &object_store::path::Path,
    pieces: &[std::borrow::Cow<'_, [u8]>],
) -> Result<(u64, u32)> {
    let ctx = |e: object_store::Error| LakeError::from(e).context(format!("writing index file '{object}'"));
    let upload = at.store.put_multipart(object).await.map_err(ctx)?;
    let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let (mut len, mut crc) = (0u64, crc32fast::Hasher::new());
    for p in pieces {
        crc.update(p);
        len += p.len() as u64;
        for chunk in p.chunks(PART_BYTES) {
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                w.abort().await.ok();
                return Err(ctx(e));
            }
            w.write(chunk);
        }
    }
    w.finish().await.map_err(ctx)?;
    Ok((len, crc.finalize()))
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
