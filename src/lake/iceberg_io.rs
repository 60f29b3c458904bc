//! The iceberg crate's storage traits over lakevec's object stores.
//!
//! iceberg 0.10 ships only local-disk and in-memory storage, so lakevec implements
//! `iceberg::io::Storage` over `object_store` (the same stores, options and credential
//! handling as every other read). Read-only: every write method fails.
//!
//! Paths written in Iceberg metadata are resolved by [`PathResolver`]. Tables written by other
//! engines sometimes record a relative `location` (`./lineitem_iceberg`) or one on another
//! machine: paths under the metadata's own `location` are then read under the folder the table
//! was actually opened from, as DuckDB's `iceberg_scan` does for relocated tables.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error as IceError, ErrorKind};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};
use crate::lake::storage::{parse_object_uri, store_for, StorageOptions};

/// Marker put in iceberg errors for missing objects, so they map back to `NotFound`.
pub const NOT_FOUND_MARK: &str = "[lakevec: not found]";

/// Canonical form of a path from metadata: `file:///abs`, `s3://b/k`, or a relative path.
pub fn canonical(p: &str) -> String {
    let p = p.trim();
    if let Some(rest) = p.strip_prefix("file:") {
        return format!("file:///{}", rest.trim_start_matches('/'));
    }
    for (from, to) in [("s3a://", "s3://"), ("s3n://", "s3://")] {
        if let Some(rest) = p.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    if p.contains("://") {
        return p.to_string();
    }
    if p.starts_with('/') {
        return format!("file://{p}");
    }
    p.trim_start_matches("./").to_string()
}

/// Resolves metadata paths to (store, object path).
#[derive(Debug)]
pub struct PathResolver {
    options: StorageOptions,
    /// `(from, to)`: paths under `from/` are read under `to/` (both canonical, no trailing `/`).
    reroot: Option<(String, String)>,
    /// The store the table was opened in: metadata may name objects only there (or in a
    /// store allowed by `storage::store_allowed`). `None`: no restriction (tests).
    home: Option<url::Url>,
}

impl PathResolver {
    /// `declared`: the metadata's `location`; `actual`: the URL of the folder it was found in.
    pub fn new(options: StorageOptions, declared: &str, actual: &str) -> Self {
        let from = canonical(declared).trim_end_matches('/').to_string();
        let to = canonical(actual).trim_end_matches('/').to_string();
        let reroot = (from != to && !from.is_empty()).then_some((from, to));
        // A folder that does not parse allows no store at all.
        let home = crate::lake::storage::parse_uri(actual)
            .ok()
            .map(|l| l.store_url)
            .or_else(|| url::Url::parse("lakevec-none:///").ok());
        PathResolver { options, reroot, home }
    }

    /// The URL a metadata path is read from.
    pub fn url(&self, p: &str) -> Result<String> {
        let mut c = canonical(p);
        if let Some((from, to)) = &self.reroot {
            if let Some(rest) = c.strip_prefix(from.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    c = format!("{to}{rest}");
                }
            }
        }
        if !c.contains("://") {
            return Err(LakeError::CorruptFile(format!(
                "Iceberg metadata names the relative path '{p}', which is not under the table's \
                 location; lakevec cannot tell where it is"
            )));
        }
        Ok(c)
    }

    /// The store and object path for a metadata path.
    pub fn resolve(&self, p: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let loc = parse_object_uri(&self.url(p)?)?;
        if let Some(home) = &self.home {
            if !crate::lake::storage::store_allowed(home, &loc.store_url) {
                return Err(LakeError::PermissionDenied(format!(
                    "Iceberg metadata names '{}' outside the table's store ({home}); lakevec opens only the \
                     table's own store, or stores listed in LAKEVEC_ALLOWED_STORES",
                    crate::lake::storage::without_credentials(p)
                )));
            }
        }
        let store = store_for(&loc, &self.options)?;
        Ok((store, loc.path))
    }
}

fn empty_resolver() -> Arc<PathResolver> {
    Arc::new(PathResolver { options: StorageOptions::default(), reroot: None, home: None })
}

fn ice_err(e: LakeError, path: &str) -> IceError {
    match e {
        LakeError::NotFound(m) => IceError::new(ErrorKind::DataInvalid, format!("{NOT_FOUND_MARK} '{path}': {m}")),
        other => IceError::new(ErrorKind::Unexpected, format!("'{path}': {other}")),
    }
}

fn read_only() -> IceError {
    IceError::new(ErrorKind::FeatureUnsupported, "lakevec opens Iceberg tables read-only")
}

/// `iceberg::io::Storage` over lakevec's object stores (read-only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LakeStorage {
    #[serde(skip, default = "empty_resolver")]
    resolver: Arc<PathResolver>,
}

impl LakeStorage {
    fn locate(&self, p: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, Path)> {
        self.resolver.resolve(p).map_err(|e| ice_err(e, p))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    path: Path,
    display: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.path, range).await.map_err(|e| ice_err(e.into(), &self.display))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for LakeStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, p) = self.locate(path)?;
        match store.head(&p).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ice_err(e.into(), path)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, p) = self.locate(path)?;
        let m = store.head(&p).await.map_err(|e| ice_err(e.into(), path))?;
        Ok(FileMetadata { size: m.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, p) = self.locate(path)?;
        let r = store.get(&p).await.map_err(|e| ice_err(e.into(), path))?;
        r.bytes().await.map_err(|e| ice_err(e.into(), path))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, p) = self.locate(path)?;
        Ok(Box::new(ObjectRead { store, path: p, display: path.to_string() }))
    }

    async fn write(&self, _path: &str, _bs: Bytes) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn writer(&self, _path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        Err(read_only())
    }

    async fn delete(&self, _path: &str) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn delete_prefix(&self, _path: &str) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn delete_stream(&self, _paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        Err(read_only())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Builds [`LakeStorage`] for a `FileIO`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LakeStorageFactory {
    #[serde(skip, default = "empty_resolver")]
    resolver: Arc<PathResolver>,
}

impl LakeStorageFactory {
    pub fn new(resolver: Arc<PathResolver>) -> Self {
        LakeStorageFactory { resolver }
    }
}

#[typetag::serde]
impl StorageFactory for LakeStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(LakeStorage { resolver: self.resolver.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical("file:/tmp/x"), "file:///tmp/x");
        assert_eq!(canonical("file:///tmp/x"), "file:///tmp/x");
        assert_eq!(canonical("/tmp/x"), "file:///tmp/x");
        assert_eq!(canonical("s3a://b/k"), "s3://b/k");
        assert_eq!(canonical("./t/metadata"), "t/metadata");
    }

    #[test]
    fn reroots_relative_and_moved_tables() {
        let r = PathResolver::new(StorageOptions::default(), "./lineitem", "file:///data/tables/lineitem");
        assert_eq!(r.url("lineitem/metadata/snap.avro").unwrap(), "file:///data/tables/lineitem/metadata/snap.avro");
        assert!(r.url("elsewhere/x.avro").is_err());
        let r = PathResolver::new(StorageOptions::default(), "s3://old/wh/t", "file:///new/t");
        assert_eq!(r.url("s3://old/wh/t/data/a.parquet").unwrap(), "file:///new/t/data/a.parquet");
        assert_eq!(r.url("s3://old/wh/t2/a.parquet").unwrap(), "s3://old/wh/t2/a.parquet");
        let same = PathResolver::new(StorageOptions::default(), "file:/x/t", "file:///x/t");
        assert!(same.reroot.is_none());
        // an object in another store than the table's is refused (metadata cannot pick stores)
        assert!(matches!(r.resolve("s3://old/wh/t2/a.parquet"), Err(LakeError::PermissionDenied(_))));
        assert!(r.resolve("file:///new/t/data/a.parquet").is_ok());
    }
}
