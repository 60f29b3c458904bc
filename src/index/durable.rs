//! Durable writes on local disk: what an object store's `put` does not promise there. A
//! crash (power loss, kernel panic) after a commit returned must not leave a manifest naming
//! segment files whose bytes never reached the disk, nor lose the manifest itself.
//!
//! Index files are fsynced (and their folder) after they are written and before the manifest
//! that names them is published; the manifest is written to a temporary file, fsynced, then
//! hard-linked to its final name (which fails if the name exists: put-if-absent) and its
//! folder fsynced.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// fsync `path` and its parent folder.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// fsync a folder; file systems that cannot (EINVAL on some FUSE and network mounts) are
/// left as they are: their files were fsynced.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTSUP)) => Ok(()),
        other => other,
    }
}

/// Create `path` holding `bytes` if no file has that name (`AlreadyExists` otherwise), with
/// the bytes on disk before the name appears.
pub fn create_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("a manifest path has a folder"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("manifest");
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        sync_dir(dir)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_put_if_absent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("manifests").join("1.json");
        create_durable(&p, b"one").unwrap();
        let e = create_durable(&p, b"two").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // no temporary file is left behind
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        sync_file(&p).unwrap();
    }
}
