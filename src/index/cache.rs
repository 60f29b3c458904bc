//! A local folder caching the segment files of object-store indexes, so that their arrays are
//! mapped and used in place like a local index's, never held whole in memory.
//!
//! A segment file is downloaded once (streamed to a temporary file in the cache folder, its
//! size and CRC-32 checked against the manifest while it streams), renamed into place, then
//! mapped read-only. A cached file is checked again (size and CRC-32) each time a process maps
//! it: a damaged cache file is deleted and fetched again, never used. Files are named by a
//! SHA-256 of the index URI and the file's manifest path, plus its CRC-32 and size, so indexes
//! never share entries and a rewritten file never matches a stale one.
//!
//! The folder holds at most `max_bytes` of segment files: before a download, the least
//! recently used files (by modification time, which every use refreshes) are deleted until
//! the new file fits. Several processes may share the folder: downloads go to unique
//! temporary names and are renamed atomically (the same content under the same name), and a
//! file deleted while another process maps it stays readable to that process (its inode lives
//! until unmapped). A segment larger than `max_bytes` is refused with an error naming the
//! option to raise; nothing tries to hold it in memory instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::error::{LakeError, Result};
use crate::index::manifest::{self, FileRef};
use crate::vector::mapped::Backing;

/// Default size bound of the cache folder (16 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 30;

/// Temporary download files older than this are debris of killed processes (removed when
/// the cache makes room).
const STALE_TMP_SECS: u64 = 3600;

/// A cache folder of segment files, bounded to `max_bytes`.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentCache {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl SegmentCache {
    /// The cache in `dir` (default [`default_dir`]) holding at most `max_bytes` (default
    /// [`DEFAULT_CACHE_BYTES`]). Nothing is created until a file is cached.
    pub fn new(dir: Option<PathBuf>, max_bytes: Option<u64>) -> Self {
        SegmentCache { dir: dir.unwrap_or_else(default_dir), max_bytes: max_bytes.unwrap_or(DEFAULT_CACHE_BYTES) }
    }

    /// The verified, mapped bytes of file `f` (object `object` in `store`) of the object-store
    /// index at `uri`: the cached copy if it verifies, else a fresh download.
    ///
    /// Errors: `InvalidArgument` when `f` is larger than the cache; `CorruptIndex` when the
    /// store's file is missing or fails its size or checksum; `Storage` for I/O errors of the
    /// store or the cache folder.
    pub async fn backing(
        &self,
        store: &Arc<dyn ObjectStore>,
        uri: &str,
        object: &object_store::path::Path,
        f: &FileRef,
    ) -> Result<Arc<Backing>> {
        if f.bytes > self.max_bytes {
            return Err(LakeError::InvalidArgument(format!(
                "index file '{object}' is {} bytes, more than the segment cache holds (cache_bytes={}): open the \
                 index with a larger cache_bytes (or a cache_dir on a larger disk), or compact it into smaller \
                 segments (compact(max_segment_rows=...))",
                f.bytes, self.max_bytes
            )));
        }
        let path = self.dir.join(entry_name(uri, f));
        let (want_len, want_crc) = (f.bytes, f.crc32);
        let p = path.clone();
        let cached = blocking(move || Ok(map_verified(&p, want_len, want_crc))).await?;
        if let Some(b) = cached {
            return Ok(b);
        }
        let c = self.clone();
        blocking(move || c.make_room(want_len)).await?;
        self.download(store, object, f, &path).await
    }

    /// Stream `object` to a temporary file beside `path`, checking size and CRC-32 as it
    /// arrives, then rename it to `path` and map it.
    async fn download(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: &object_store::path::Path,
        f: &FileRef,
        path: &Path,
    ) -> Result<Arc<Backing>> {
        let io = |e: std::io::Error| LakeError::Storage(format!("segment cache '{}': {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(".{}.tmp", manifest::new_id()));
        let result = async {
            let mut out = std::fs::File::create_new(&tmp).map_err(io)?;
            let got = store.get(object).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => manifest::missing_file(object),
                e => LakeError::from(e).context(format!("reading index file '{object}'")),
            })?;
            let mut stream = got.into_stream();
            let (mut len, mut crc) = (0u64, crc32fast::Hasher::new());
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| LakeError::from(e).context(format!("reading index file '{object}'")))?;
                len += chunk.len() as u64;
                if len > f.bytes {
                    break;
                }
                crc.update(&chunk);
                // Blocking file I/O on this runtime worker, announced to tokio.
                tokio::task::block_in_place(|| std::io::Write::write_all(&mut out, &chunk)).map_err(io)?;
            }
            if len != f.bytes || crc.finalize() != f.crc32 {
                return Err(LakeError::CorruptIndex(format!(
                    "index file '{object}' is corrupt: its size or checksum differs from the manifest's"
                )));
            }
            tokio::task::block_in_place(|| {
                std::fs::rename(&tmp, path)?;
                match f.bytes {
                    0 => Ok(Backing::Bytes(bytes::Bytes::new())),
                    _ => Backing::map(&out),
                }
            })
            .map_err(io)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(Arc::new(result?))
    }

    /// Delete least recently used entries (and stale temporary files) until `need` more bytes
    /// fit within `max_bytes`. Entries other processes delete meanwhile are skipped.
    fn make_room(&self, need: u64) -> Result<()> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Ok(()) };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for e in dir.flatten() {
            let (Ok(meta), name) = (e.metadata(), e.file_name()) else { continue };
            let name = name.to_string_lossy();
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(".tmp") {
                if now.duration_since(mtime).is_ok_and(|d| d.as_secs() > STALE_TMP_SECS) {
                    let _ = std::fs::remove_file(e.path());
                }
            } else if meta.is_file() && name.ends_with(".lkv") {
                entries.push((mtime, meta.len(), e.path()));
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total + need <= self.max_bytes {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => total -= len,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
                Err(e) => return Err(LakeError::Storage(format!("evicting '{}': {e}", path.display()))),
            }
        }
        Ok(())
    }
}

/// `LAKEVEC_CACHE_DIR`, else `lakevec/segments` in the user's cache folder (`~/.cache` on
/// Linux, `~/Library/Caches` on macOS), else in the temporary folder.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LAKEVEC_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("lakevec").join("segments")
}

/// The cache file name of `f` in index `uri`.
fn entry_name(uri: &str, f: &FileRef) -> String {
    let mut h = Sha256::new();
    h.update(uri.as_bytes());
    h.update([0u8]);
    h.update(f.path.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:08x}-{}.lkv", f.crc32, f.bytes)
}

/// The cached file at `path` mapped, when it exists with length `len` and CRC-32 `crc` (its
/// use time refreshed); a file that fails is deleted (and logged) and `None` returned.
fn map_verified(path: &Path, len: u64, crc: u32) -> Option<Arc<Backing>> {
    let file = std::fs::File::open(path).ok()?;
    let ok = file.metadata().is_ok_and(|m| m.len() == len);
    let buf = match (ok, len) {
        (false, _) => None,
        (true, 0) => Some(Backing::Bytes(bytes::Bytes::new())),
        (true, _) => Backing::map(&file).ok().filter(|b| crc32fast::hash(b) == crc),
    };
    match buf {
        Some(b) => {
            // LRU order: a use refreshes the modification time (best effort).
            let _ = std::fs::File::options().append(true).open(path).and_then(|f| f.set_modified(SystemTime::now()));
            Some(Arc::new(b))
        }
        None => {
            log::warn!("lakevec segment cache: '{}' failed verification; fetching it again", path.display());
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LakeError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fref(path: &str, bytes: u64, crc32: u32) -> FileRef {
        FileRef { path: path.into(), bytes, crc32 }
    }

    #[test]
    fn names_differ_by_index_path_and_content() {
        let a = entry_name("s3://b/i", &fref("segments/x.lkv", 10, 1));
        assert_ne!(a, entry_name("s3://b/j", &fref("segments/x.lkv", 10, 1)));
        assert_ne!(a, entry_name("s3://b/i", &fref("segments/y.lkv", 10, 1)));
        assert_ne!(a, entry_name("s3://b/i", &fref("segments/x.lkv", 10, 2)));
        assert!(!a.contains('/') && a.ends_with("-00000001-10.lkv"));
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = SegmentCache::new(Some(dir.path().into()), Some(250));
        let t0 = SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, name) in ["old.lkv", "mid.lkv", "new.lkv"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(10 * i as u64)).unwrap();
        }
        c.make_room(100).unwrap(); // 300 + 100 > 250: two oldest go
        let left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, vec!["new.lkv".to_string()]);
    }

    #[test]
    fn a_damaged_entry_is_deleted_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.lkv");
        std::fs::write(&p, b"hello world").unwrap();
        let crc = crc32fast::hash(b"hello world");
        assert_eq!(&**map_verified(&p, 11, crc).unwrap(), b"hello world");
        std::fs::write(&p, b"hello wxrld").unwrap();
        assert!(map_verified(&p, 11, crc).is_none());
        assert!(!p.exists());
    }
}
