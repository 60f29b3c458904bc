//! A lake table of any supported format, opened from a URI, as lakevec's read API sees it.
//!
//! Format detection: a folder holding `_delta_log/` is Delta, a folder holding `metadata/`
//! with `*.metadata.json` (or a path to such a file) is Iceberg, anything else is Parquet.
//! `format="parquet"` forces a plain Parquet read of the data files (e.g. a Delta table's
//! files without its log: superseded files and deleted rows included).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::TableProvider;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{LakeError, Result};
use crate::parquet_table::{ParquetProvider, ParquetTable};
use crate::storage::{parse_uri, store_for, Location, StorageOptions};

/// Table formats lakevec knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Delta,
    Iceberg,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "delta" => Ok(Format::Delta),
            "iceberg" => Ok(Format::Iceberg),
            other => Err(LakeError::InvalidArgument(format!(
                "unknown format '{other}' (expected 'parquet', 'delta' or 'iceberg')"
            ))),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Delta => "delta",
            Format::Iceberg => "iceberg",
        }
    }
}

/// An opened table.
#[derive(Debug, Clone)]
pub struct LakeTable {
    pub uri: String,
    pub location: Location,
    pub options: StorageOptions,
    pub format: Format,
    pub parquet: Arc<ParquetTable>,
}

async fn has_child(store: &Arc<dyn ObjectStore>, loc: &Location, child: &str) -> Result<bool> {
    let p = loc.path.clone().join(child);
    let mut s = store.list(Some(&p));
    match s.next().await {
        Some(Ok(_)) => Ok(true),
        Some(Err(object_store::Error::NotFound { .. })) | None => Ok(false),
        // Local paths below a file ("Not a directory") do not exist either.
        Some(Err(_)) if loc.is_local() => Ok(false),
        Some(Err(e)) => Err(LakeError::from(e).context(&loc.display)),
    }
}

/// Detect the format of the table at `loc`.
pub async fn detect_format(store: &Arc<dyn ObjectStore>, loc: &Location) -> Result<Format> {
    if loc.glob.is_some() {
        return Ok(Format::Parquet);
    }
    let p = loc.path.as_ref();
    if p.ends_with(".metadata.json") {
        return Ok(Format::Iceberg);
    }
    if p.ends_with(".parquet") || p.ends_with(".parq") || p.ends_with(".pq") {
        return Ok(Format::Parquet);
    }
    // A single object (any name) is read as a Parquet file.
    if !p.is_empty() && store.head(&loc.path).await.is_ok() {
        return Ok(Format::Parquet);
    }
    if has_child(store, loc, "_delta_log").await? {
        return Ok(Format::Delta);
    }
    if has_child(store, loc, "metadata").await? {
        let mut s = store.list(Some(&loc.path.clone().join("metadata")));
        while let Some(item) = s.next().await {
            if let Ok(m) = item {
                let name = m.location.filename().unwrap_or("");
                if name.ends_with(".metadata.json") || name == "version-hint.text" {
                    return Ok(Format::Iceberg);
                }
            }
        }
    }
    Ok(Format::Parquet)
}

impl LakeTable {
    /// Open `uri` with `options`; `format` overrides detection.
    pub async fn open(uri: &str, options: StorageOptions, format: Option<Format>) -> Result<Self> {
        let location = parse_uri(uri)?;
        let store = store_for(&location, &options)?;
        let format = match format {
            Some(f) => f,
            None => detect_format(&store, &location).await?,
        };
        match format {
            Format::Parquet => {}
            Format::Delta | Format::Iceberg => {
                return Err(LakeError::Unsupported(format!(
                    "'{}' is a {} table; reading {} tables is not implemented in this version \
                     of lakevec. Pass format='parquet' to read its data files as plain Parquet \
                     (this ignores the table log: removed files and deleted rows are returned).",
                    location.display,
                    format.as_str(),
                    format.as_str()
                )))
            }
        }
        let parquet = ParquetTable::open(location.clone(), store).await?;
        Ok(LakeTable { uri: location.display.clone(), location, options, format, parquet: Arc::new(parquet) })
    }

    pub fn schema(&self) -> SchemaRef {
        self.parquet.schema.clone()
    }

    pub fn num_rows(&self) -> u64 {
        self.parquet.num_rows()
    }

    /// The table's data files (see [`ParquetTable::files_batch`]).
    pub fn files(&self) -> Result<RecordBatch> {
        self.parquet.files_batch()
    }

    /// The DataFusion provider for this table.
    pub fn provider(&self) -> Arc<dyn TableProvider> {
        Arc::new(ParquetProvider::new(self.parquet.clone()))
    }

    /// Register this table's store in a DataFusion session.
    pub fn register_store(&self, ctx: &datafusion::prelude::SessionContext) {
        crate::session::register_store(ctx, &self.location.store_url, self.parquet.store.clone());
    }
}
