//! Delta Lake tables through the deltalake crate (delta-rs): version and timestamp pinning,
//! checkpoints, column mapping, partition columns and deletion vectors (rows deleted by a
//! deletion vector are never returned: delta-rs's scan applies them).
//!
//! Storage goes through lakevec's own object stores (`storage.rs`): the table is opened with
//! `with_storage_backend`, and a plain log store is registered for object-store schemes, so
//! S3, GCS and Azure work without delta-rs's cloud features and with the same options.
//! Tables whose protocol needs a reader feature delta-rs cannot honour (e.g. `v2Checkpoint`)
//! are refused with `LakeError::Unsupported` naming the feature.

use std::sync::{Arc, Once};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::TableProvider;
use deltalake::errors::DeltaTableError;
use deltalake::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaTable, DeltaTableBuilder};
use object_store::ObjectStore;
use url::Url;

use crate::error::{LakeError, Result};
use crate::session::new_session;
use crate::storage::Location;

/// How to pin a Delta table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaPin {
    pub version: Option<u64>,
    /// RFC 3339 timestamp: the latest version committed at or before it.
    pub timestamp: Option<String>,
}

/// An opened Delta table snapshot.
#[derive(Debug)]
pub struct DeltaSource {
    pub table: DeltaTable,
    pub provider: Arc<dyn TableProvider>,
}

struct PlainLogStore;

impl LogStoreFactory for PlainLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "memory"] {
            if let Ok(u) = Url::parse(&format!("{scheme}://")) {
                if !logstore_factories().contains_key(&u) {
                    logstore_factories().insert(u, Arc::new(PlainLogStore));
                }
            }
        }
    });
}

/// The table root as a URL ending in `/`.
pub fn table_url(loc: &Location) -> Result<Url> {
    let s = format!("{}{}/", loc.store_url.as_str(), loc.path.as_ref());
    Url::parse(&s).map_err(|e| LakeError::InvalidArgument(format!("bad table URL '{}': {e}", loc.display)))
}

/// Map delta-rs errors, naming the table.
pub fn map_delta_error(e: DeltaTableError, display: &str) -> LakeError {
    use DeltaTableError as D;
    let msg = e.to_string();
    match e {
        D::NotATable(_) => LakeError::NotFound(format!("'{display}' is not a Delta table: {msg}")),
        D::InvalidVersion(v) => {
            LakeError::NotFound(format!("Delta table '{display}' has no version {v}: {msg}"))
        }
        D::ObjectStore { source } => LakeError::from(source).context(format!("Delta table '{display}'")),
        D::InvalidDateTimeString { .. } => LakeError::InvalidArgument(format!("bad timestamp: {msg}")),
        D::InvalidJsonLog { .. } | D::InvalidStatsJson { .. } => {
            LakeError::CorruptFile(format!("Delta table '{display}': corrupt log: {msg}"))
        }
        _ if is_unsupported_feature(&msg) => {
            LakeError::Unsupported(format!("Delta table '{display}' needs reader features lakevec cannot honour: {msg}"))
        }
        _ => LakeError::Storage(format!("Delta table '{display}': {msg}")),
    }
}

/// delta-rs reports protocol features it cannot read only in message text.
fn is_unsupported_feature(msg: &str) -> bool {
    msg.contains("Unsupported") && msg.contains("feature")
}

fn unsupported_or(e: LakeError, display: &str) -> LakeError {
    let msg = e.to_string();
    if is_unsupported_feature(&msg) {
        LakeError::Unsupported(format!("Delta table '{display}' needs reader features lakevec cannot honour: {msg}"))
    } else {
        e.context(format!("Delta table '{display}'"))
    }
}

impl DeltaSource {
    /// Open the Delta table at `loc` (store root `store`), pinned by `pin`.
    pub async fn open(loc: &Location, store: Arc<dyn ObjectStore>, pin: &DeltaPin) -> Result<Self> {
        register_log_stores();
        let url = table_url(loc)?;
        let display = loc.display.as_str();
        let mut b = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| map_delta_error(e, display))?
            .with_storage_backend(store, url);
        if let Some(v) = pin.version {
            b = b.with_version(v);
        }
        if let Some(ts) = &pin.timestamp {
            b = b.with_datestring(ts).map_err(|e| map_delta_error(e, display))?;
        }
        let table = b.load().await.map_err(|e| map_delta_error(e, display))?;
        let state = new_session(1, None)?.state();
        let scan = table
            .table_provider()
            .with_session(Arc::new(state))
            .build()
            .await
            .map_err(|e| unsupported_or(LakeError::from(e), display))?;
        Ok(DeltaSource { table, provider: Arc::new(scan) })
    }

    /// The loaded version.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    fn file_rows(&self) -> Result<Vec<(String, i64, Option<i64>, i64, String)>> {
        let state = self.table.snapshot().map_err(|e| map_delta_error(e, "table"))?;
        let mut out = Vec::new();
        for f in state.log_data() {
            let deleted = f.deletion_vector_descriptor().map(|d| d.cardinality).unwrap_or(0);
            #[allow(deprecated)]
            let add = f.add_action();
            let parts: std::collections::BTreeMap<_, _> = add.partition_values.into_iter().collect();
            let partition = serde_json::to_string(&parts).unwrap_or_default();
            out.push((f.path().to_string(), f.size(), f.num_records().map(|n| n as i64), deleted, partition));
        }
        Ok(out)
    }

    /// Live rows from the log: records of the live files minus the rows their deletion
    /// vectors remove; `None` when some file has no record count in the log.
    pub fn num_rows_from_log(&self) -> Result<Option<u64>> {
        let rows = self.file_rows()?;
        if rows.iter().any(|r| r.2.is_none()) {
            return Ok(None);
        }
        Ok(Some(rows.iter().map(|r| r.2.unwrap_or(0) - r.3).sum::<i64>().max(0) as u64))
    }

    pub fn num_files(&self) -> usize {
        self.table.snapshot().map(|s| s.log_data().num_files()).unwrap_or(0)
    }

    /// One row per live data file: `path` (relative to the table root), `size` (bytes),
    /// `num_records` (before deletes; null when the log has no statistics), `num_deleted`
    /// (rows removed by the file's deletion vector) and `partition` (JSON object of the raw
    /// partition values).
    pub fn files_batch(&self) -> Result<RecordBatch> {
        let rows = self.file_rows()?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("size", DataType::Int64, false),
            Field::new("num_records", DataType::Int64, true),
            Field::new("num_deleted", DataType::Int64, false),
            Field::new("partition", DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4.as_str()))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// The commit history, newest first: `version`, `timestamp` (ms since the epoch),
    /// `operation`, `operation_parameters` (JSON). Commits without commit info are skipped
    /// by delta-rs; versions are counted down from the loaded one.
    pub async fn history(&self) -> Result<RecordBatch> {
        let infos: Vec<_> = self
            .table
            .history(None)
            .await
            .map_err(|e| map_delta_error(e, "table"))?
            .collect();
        let top = self.version().unwrap_or(0) as i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::Int64, false),
            Field::new("timestamp", DataType::Int64, true),
            Field::new("operation", DataType::Utf8, true),
            Field::new("operation_parameters", DataType::Utf8, true),
        ]));
        let n = infos.len() as i64;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| top - i))),
            Arc::new(Int64Array::from_iter(infos.iter().map(|c| c.timestamp))),
            Arc::new(StringArray::from_iter(infos.iter().map(|c| c.operation.clone()))),
            Arc::new(StringArray::from_iter(infos.iter().map(|c| {
                c.operation_parameters.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default())
            }))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}
