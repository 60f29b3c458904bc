//! Where an index lives: its store and folder, and the default folder beside a table.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{LakeError, Result};
use crate::index::cache::SegmentCache;
use crate::lake::storage::{parse_uri, store_for, Location, StorageOptions};
use crate::lake::table::{Format, LakeTable};

/// Where an index lives.
#[derive(Clone, Debug)]
pub struct IndexAt {
    pub uri: String,
    pub loc: Location,
    pub store: Arc<dyn ObjectStore>,
    /// Options for the index store and for reopening the table (never persisted).
    pub options: StorageOptions,
    /// Where segment files of an object-store index are cached to be mapped (`None`: they
    /// are downloaded into memory). Unused for local indexes, whose files are mapped in place.
    pub cache: Option<SegmentCache>,
}

impl IndexAt {
    /// The index folder `uri` (no glob), with `options` for its store.
    pub fn new(uri: &str, options: StorageOptions) -> Result<Self> {
        let loc = parse_uri(uri)?;
        if loc.glob.is_some() {
            return Err(LakeError::InvalidArgument(format!("an index location cannot hold a glob: '{uri}'")));
        }
        let store = store_for(&loc, &options)?;
        Ok(IndexAt { uri: loc.display.clone(), loc, store, options, cache: Some(SegmentCache::new(None, None)) })
    }

    /// This location with segment cache `cache` (`None`: object-store segments are held in
    /// memory).
    pub fn with_cache(mut self, cache: Option<SegmentCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The index folder within its store.
    pub fn root(&self) -> &Path {
        &self.loc.path
    }

    /// Check that `table_uri` (read from this index's manifest, so from bytes anyone with
    /// write access to the index folder can change) lies in a store the caller configured:
    /// the index's own (same scheme and bucket/host), or one listed in the environment
    /// variable `LAKEVEC_ALLOWED_STORES` (comma-separated, e.g. `s3://other-bucket,gs://b`).
    /// Otherwise `PermissionDenied` naming both: a crafted manifest cannot make lakevec open
    /// another bucket or host with the caller's credentials.
    pub fn check_table_store(&self, table_uri: &str) -> Result<()> {
        let t = parse_uri(table_uri)?;
        if crate::lake::storage::store_allowed(&self.loc.store_url, &t.store_url) {
            return Ok(());
        }
        Err(LakeError::PermissionDenied(format!(
            "index '{}' names its table at '{}', outside the index's store ({}); lakevec opens a table from an \
             index manifest only in the index's own store or in a store listed in LAKEVEC_ALLOWED_STORES",
            self.uri,
            crate::lake::storage::without_credentials(table_uri),
            self.loc.store_url
        )))
    }

    /// The local file of index object `object` (`None` for remote stores).
    pub fn local_file(&self, object: &Path) -> Option<std::path::PathBuf> {
        self.loc.local_path(object)
    }
}

/// The full URL of a table's root, as stored in manifests. An Iceberg table opened from a
/// `metadata/*.metadata.json` file is recorded by its folder, so that reopening it finds
/// the newest metadata (refresh follows new snapshots).
pub fn indexed_table_url(table: &LakeTable) -> String {
    let url = table.location.url_of(&table.location.path);
    if table.format == Format::Iceberg && url.ends_with(".metadata.json") {
        let parts: Vec<&str> = url.rsplitn(3, '/').collect();
        if parts.len() == 3 && parts[1] == "metadata" {
            return parts[2].to_string();
        }
    }
    url
}

/// The default index folder of `table`: `_lakevec_index/<name>` inside a Delta or Parquet
/// table's folder (Delta's VACUUM and Parquet readers skip `_` folders), and a sibling folder
/// `<table>_lakevec_index/<name>` for Iceberg (its orphan-file removal would delete unknown
/// files under the table location). A single Parquet file or glob gets
/// `_lakevec_index/<file name>.<name>` in its folder.
pub fn default_index_uri(table: &LakeTable, name: &str) -> String {
    let url = indexed_table_url(table).trim_end_matches('/').to_string();
    let split = |u: &str| -> (String, String) {
        match u.rfind('/') {
            Some(i) => (u[..i].to_string(), u[i + 1..].to_string()),
            None => (String::new(), u.to_string()),
        }
    };
    match table.format {
        Format::Iceberg => {
            let (parent, leaf) = split(&url);
            format!("{parent}/{leaf}_lakevec_index/{name}")
        }
        _ => {
            let lower = url.to_ascii_lowercase();
            let is_file =
                [".parquet", ".parq", ".pq"].iter().any(|s| lower.ends_with(s)) || table.location.glob.is_some();
            if is_file && table.location.glob.is_none() {
                let (parent, leaf) = split(&url);
                format!("{parent}/_lakevec_index/{leaf}.{name}")
            } else {
                format!("{url}/_lakevec_index/{name}")
            }
        }
    }
}
