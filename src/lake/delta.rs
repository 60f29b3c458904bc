//! Delta Lake tables through the deltalake crate (delta-rs): version and timestamp pinning,
//! checkpoints, column mapping, partition columns and deletion vectors (rows deleted by a
//! deletion vector are never returned: delta-rs's scan applies them).
//!
//! Storage goes through lakevec's own object stores (`storage.rs`): the table is opened with
//! `with_storage_backend`, and a plain log store is registered for object-store schemes, so
//! S3, GCS and Azure work without delta-rs's cloud features and with the same options.
//! Tables with `v2Checkpoint` are read through delta-kernel's scan (`delta_kernel.rs`); other
//! reader features delta-rs cannot honour are refused with `LakeError::Unsupported` naming
//! the feature.

use std::sync::{Arc, Once};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::TableProvider;
use deltalake::errors::DeltaTableError;
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaTable, DeltaTableBuilder};
use object_store::ObjectStore;
use url::Url;

use std::collections::HashMap;

use object_store::path::Path;

use crate::error::{LakeError, Result};
use crate::lake::datafiles::{DataFileEntry, Deleted};
use crate::lake::deletion_vector::{deleted_rows, DvSource};
use crate::lake::pin::TablePin;
use crate::lake::session::provider_state;
use crate::lake::storage::{
    parse_object_uri, percent_decode, store_for, without_credentials, Location, StorageOptions,
};

/// An opened Delta table snapshot.
#[derive(Debug)]
pub struct DeltaSource {
    pub table: DeltaTable,
    /// delta-rs's `DeltaScan`, or for tables it refuses but its kernel reads
    /// (`v2Checkpoint`), the kernel's scan (`delta_kernel.rs`).
    /// Scans must go through `LakeTable::provider`, which runs the checks first.
    pub provider: Arc<dyn TableProvider>,
    /// The per-file checks, run once by the first call that needs them (`checked`).
    checked: tokio::sync::OnceCell<Checked>,
}

/// What the per-file pass over the log found, every deletion vector read and checked.
#[derive(Debug)]
pub struct Checked {
    /// Rows deleted by each data file's deletion vector (by log path), checked against the
    /// file's footer so that no scan sizes anything by an unchecked vector.
    deleted: HashMap<String, Deleted>,
    /// Live rows from the log (records minus deletion-vector cardinalities), `None` when a
    /// file has no record count.
    pub rows_from_log: Option<u64>,
}

impl Checked {
    /// Whether some data file has a deletion vector (its scan must keep files whole, see
    /// `session::keep_files_whole`).
    pub fn has_deletion_vectors(&self) -> bool {
        !self.deleted.is_empty()
    }
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
pub fn delta_root_url(loc: &Location) -> Result<Url> {
    let s = format!("{}{}/", loc.store_url.as_str(), loc.path.as_ref());
    Url::parse(&s).map_err(|e| LakeError::InvalidArgument(format!("bad table URL '{}': {e}", loc.display)))
}

/// An error message without the backtrace delta-kernel appends when `RUST_BACKTRACE` is set.
fn without_backtrace(msg: &str) -> String {
    msg.split("\n   0: ").next().unwrap_or(msg).trim_end().to_string()
}

/// Map delta-rs errors, naming the table.
pub fn map_delta_error(e: DeltaTableError, display: &str) -> LakeError {
    use DeltaTableError as D;
    let msg = without_backtrace(&e.to_string());
    match e {
        D::NotATable(_) => LakeError::NotFound(format!("'{display}' is not a Delta table: {msg}")),
        D::InvalidVersion(v) => LakeError::NotFound(format!("Delta table '{display}' has no version {v}: {msg}")),
        D::ObjectStore { source } => LakeError::from(source).context(format!("Delta table '{display}'")),
        D::InvalidDateTimeString { .. } => LakeError::InvalidArgument(format!("bad timestamp: {msg}")),
        D::InvalidJsonLog { .. } | D::InvalidStatsJson { .. } => {
            LakeError::CorruptFile(format!("Delta table '{display}': corrupt log: {msg}"))
        }
        _ if is_unsupported_feature(&msg) => LakeError::Unsupported(format!(
            "Delta table '{display}' needs reader features lakevec cannot honour: {msg}"
        )),
        _ => LakeError::Storage(format!("Delta table '{display}': {msg}")),
    }
}

/// delta-rs reports protocol features it cannot read only in message text.
fn is_unsupported_feature(msg: &str) -> bool {
    msg.contains("Unsupported") && msg.contains("feature")
}

fn unsupported_or(e: LakeError, display: &str) -> LakeError {
    let msg = without_backtrace(&e.to_string());
    if is_unsupported_feature(&msg) {
        LakeError::Unsupported(format!("Delta table '{display}' needs reader features lakevec cannot honour: {msg}"))
    } else {
        e.context(format!("Delta table '{display}'"))
    }
}

/// The first commit file under `_delta_log/` with a line that is not JSON, named with its
/// line number (called only after a load failed, to say which file is corrupt).
async fn find_bad_commit(store: &Arc<dyn ObjectStore>, loc: &Location) -> Option<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let log = Path::from(format!("{}/_delta_log", loc.path.as_ref()).trim_start_matches('/'));
    let mut commits: Vec<Path> = store
        .list(Some(&log))
        .try_collect::<Vec<_>>()
        .await
        .ok()?
        .into_iter()
        .map(|m| m.location)
        .filter(|p| p.filename().is_some_and(|n| n.ends_with(".json") && n.len() == 25))
        .collect();
    commits.sort();
    for c in commits {
        let bytes = store.get(&c).await.ok()?.bytes().await.ok()?;
        for (i, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
                return Some(format!(
                    "corrupt log: commit file '{}' line {} is not valid JSON ({e})",
                    loc.url_of(&c),
                    i + 1
                ));
            }
        }
    }
    None
}

/// The store and object of a data file named in the log (relative to the root, or absolute).
/// Absolute paths must lie in the table's own store: metadata never opens another bucket.
fn data_object(
    rel: &str,
    loc: &Location,
    store: &Arc<dyn ObjectStore>,
    options: &StorageOptions,
    display: &str,
) -> Result<(Arc<dyn ObjectStore>, Path)> {
    if !rel.contains("://") {
        return Ok((store.clone(), Path::from(format!("{}/{}", loc.path.as_ref(), rel).trim_start_matches('/'))));
    }
    let l = parse_object_uri(rel)?;
    if !crate::lake::storage::store_allowed(&loc.store_url, &l.store_url) {
        return Err(LakeError::PermissionDenied(format!(
            "Delta table '{display}' names data file '{}' outside the table's store ({}); lakevec opens \
             only the table's own store, or stores listed in LAKEVEC_ALLOWED_STORES",
            without_credentials(rel),
            loc.store_url
        )));
    }
    if l.store_url == loc.store_url {
        return Ok((store.clone(), l.path));
    }
    Ok((store_for(&l, options)?, l.path))
}

/// The row count in a data file's Parquet footer.
async fn footer_rows(store: Arc<dyn ObjectStore>, object: Path, size: u64, file: &str) -> Result<u64> {
    use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
    let mut reader = ParquetObjectReader::new(store, object).with_file_size(size);
    let md = reader.get_metadata(None).await.map_err(|e| LakeError::CorruptFile(format!("data file '{file}': {e}")))?;
    Ok(md.file_metadata().num_rows().max(0) as u64)
}

/// A data file with a deletion vector: log path, descriptor, file size in bytes.
type DvFile = (String, DeletionVectorDescriptor, i64);

/// What one pass over the log's files gathers (`DeltaSource::checked`): files with a
/// deletion vector (log path, descriptor, size) and the live row count.
struct LogScan {
    with_dv: Vec<DvFile>,
    rows: Option<u64>,
}

/// One pass over the loaded files: absolute data paths outside the table's store are refused
/// (before delta-rs plans a scan), files with deletion vectors are listed, live rows counted.
/// ~0.2 us a file (delta-rs builds a view, a batch clone, per file).
fn scan_log(
    table: &DeltaTable,
    loc: &Location,
    store: &Arc<dyn ObjectStore>,
    options: &StorageOptions,
) -> Result<LogScan> {
    let display = loc.display.as_str();
    let state = table.snapshot().map_err(|e| map_delta_error(e, display))?;
    let mut with_dv = Vec::new();
    let mut rows: Option<i64> = Some(0);
    for f in state.log_data() {
        let dv = f.deletion_vector_descriptor();
        let path = f.path();
        if path.contains("://") {
            data_object(&path, loc, store, options, display)?;
        }
        let deleted = dv.as_ref().map_or(0, |d| d.cardinality);
        rows = rows.zip(f.num_records()).map(|(n, r)| n + r as i64 - deleted);
        if let Some(dv) = dv {
            with_dv.push((path.into_owned(), dv, f.size()));
        }
    }
    Ok(LogScan { with_dv, rows: rows.map(|n| n.max(0) as u64) })
}

/// The deleted positions of every data file that has a deletion vector, by log path, each
/// checked against its file's footer row count (`deletion_vector.rs`). Keeps the
/// positions of all deleted rows resident (8 bytes each).
async fn deletion_vectors(
    with_dv: Vec<DvFile>,
    loc: &Location,
    store: &Arc<dyn ObjectStore>,
    options: &StorageOptions,
) -> Result<HashMap<String, Deleted>> {
    use futures::{StreamExt, TryStreamExt};
    let display = loc.display.as_str();
    let jobs: Vec<_> = with_dv
        .into_iter()
        .map(|(rel, dv, size)| async move {
            let (fstore, object) = data_object(&rel, loc, store, options, display)?;
            let file = format!("{display}/{rel}");
            let rows = footer_rows(fstore, object, size as u64, &file).await?;
            let src = DvSource { store, root: &loc.path, store_url: loc.store_url.as_str(), file: &file };
            let deleted = deleted_rows(&dv, &src, rows).await?;
            Ok::<_, LakeError>((rel, Deleted::from_positions(deleted)))
        })
        .collect();
    futures::stream::iter(jobs).buffer_unordered(16).try_collect().await
}

impl DeltaSource {
    /// Open the Delta table at `loc` (store root `store`), pinned by `pin`: the log replayed
    /// (delta-rs) and the scan built. Nothing is read per data file: the checks run later,
    /// once, through [`DeltaSource::checked`].
    pub async fn open(loc: &Location, store: Arc<dyn ObjectStore>, pin: &TablePin) -> Result<Self> {
        register_log_stores();
        let url = delta_root_url(loc)?;
        let display = loc.display.as_str();
        let mut b = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| map_delta_error(e, display))?
            .with_storage_backend(store.clone(), url);
        let store_for_log = store;
        if let Some(v) = pin.version {
            let v = u64::try_from(v)
                .map_err(|_| LakeError::InvalidArgument(format!("Delta versions are >= 0, got {v}")))?;
            b = b.with_version(v);
        }
        if let Some(ts) = &pin.timestamp {
            b = b.with_datestring(ts).map_err(|e| map_delta_error(e, display))?;
        }
        let table = match b.load().await {
            Ok(t) => t,
            Err(e) => {
                let err = map_delta_error(e, display);
                return Err(match find_bad_commit(&store_for_log, loc).await {
                    Some(bad) => LakeError::CorruptFile(format!("Delta table '{display}': {bad}")),
                    None => err,
                });
            }
        };
        let provider: Arc<dyn TableProvider> = if crate::lake::delta_kernel::needs_kernel_scan(&table) {
            crate::lake::delta_kernel::kernel_provider(&table, display).await?
        } else {
            let scan = table
                .table_provider()
                .with_session(provider_state()?)
                .build()
                .await
                .map_err(|e| unsupported_or(LakeError::from(e), display))?;
            Arc::new(scan)
        };
        Ok(DeltaSource { table, provider, checked: tokio::sync::OnceCell::new() })
    }

    /// The per-file checks, run on the first call and kept: every data path named absolutely
    /// lies in the table's store, every deletion vector is read and checked against its
    /// file's footer, live rows are counted from the log. Every table gets them, whatever
    /// its protocol says: delta-rs applies a file's deletion vector even when the
    /// deletionVectors feature is not declared. Keeps the deleted positions resident.
    ///
    /// Errors: `PermissionDenied` (a data file outside the store), `CorruptFile` (a vector
    /// that does not fit its file, or counts that disagree with the log).
    pub async fn checked(
        &self,
        loc: &Location,
        store: &Arc<dyn ObjectStore>,
        options: &StorageOptions,
    ) -> Result<&Checked> {
        self.checked
            .get_or_try_init(|| async {
                let log = scan_log(&self.table, loc, store, options)?;
                let deleted = deletion_vectors(log.with_dv, loc, store, options).await?;
                Ok(Checked { deleted, rows_from_log: log.rows })
            })
            .await
    }

    /// The loaded version.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// The live data files with their deletion vectors read (positions of deleted rows).
    pub async fn entries(
        &self,
        loc: &Location,
        store: &Arc<dyn ObjectStore>,
        options: &StorageOptions,
    ) -> Result<Vec<DataFileEntry>> {
        let display = loc.display.as_str();
        let checked = self.checked(loc, store, options).await?;
        let state = self.table.snapshot().map_err(|e| map_delta_error(e, display))?;
        let root = self.table.table_url().clone();
        let files: Vec<_> = state.log_data().into_iter().collect();
        let partition_cols = state.metadata().partition_columns().to_vec();
        // Under column mapping the log keys partition values by physical name.
        let physical = self.physical_names()?;
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let rel = f.path().to_string();
            let url = if rel.contains("://") {
                rel.clone()
            } else {
                root.join(&rel).map(|u| u.to_string()).unwrap_or_else(|_| format!("{root}{rel}"))
            };
            let url = percent_decode(&url);
            let (fstore, object) = data_object(&rel, loc, store, options, display)?;
            #[allow(deprecated)]
            let add = f.add_action();
            let partition = partition_cols
                .iter()
                .map(|c| {
                    let key = physical.get(c).unwrap_or(c);
                    (
                        c.clone(),
                        add.partition_values.get(key).or_else(|| add.partition_values.get(c)).cloned().flatten(),
                    )
                })
                .collect();
            let deleted = match f.deletion_vector_descriptor() {
                Some(_) => checked.deleted.get(&rel).cloned().ok_or_else(|| {
                    LakeError::Internal(format!("no deletion vector read for '{url}' of '{display}'"))
                })?,
                None => Deleted::None,
            };
            out.push(DataFileEntry {
                path: rel,
                store: fstore,
                object,
                size: f.size() as u64,
                tag: None,
                num_records: f.num_records().map(|n| n as u64),
                partition,
                deleted,
            });
        }
        Ok(out)
    }

    /// Logical -> physical top-level column names under column mapping (empty without it).
    pub fn physical_names(&self) -> Result<HashMap<String, String>> {
        let state = self.table.snapshot().map_err(|e| map_delta_error(e, "table"))?;
        let mode = state.metadata().configuration().get("delta.columnMapping.mode").cloned();
        if matches!(mode.as_deref(), None | Some("none")) {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for f in state.schema().fields() {
            if let Some(p) = f.metadata_with_string_values().get("delta.columnMapping.physicalName") {
                out.insert(f.name().clone(), p.clone());
            }
        }
        Ok(out)
    }

    pub fn num_files(&self) -> usize {
        self.table.snapshot().map(|s| s.log_data().num_files()).unwrap_or(0)
    }

    /// The commit history, newest first: `version`, `timestamp` (ms since the epoch),
    /// `operation`, `operation_parameters` (JSON). Commits without commit info are skipped
    /// by delta-rs; versions are counted down from the loaded one.
    pub async fn history(&self) -> Result<RecordBatch> {
        let infos: Vec<_> = self.table.history(None).await.map_err(|e| map_delta_error(e, "table"))?.collect();
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
            Arc::new(StringArray::from_iter(
                infos
                    .iter()
                    .map(|c| c.operation_parameters.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default())),
            )),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}
