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
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{LakeError, Result};
use crate::lake::datafiles::DataFileEntry;
use crate::lake::delta::DeltaSource;
use crate::lake::iceberg::IcebergSource;
use crate::lake::parquet::{ParquetProvider, ParquetTable};
use crate::lake::pin::TablePin;
use crate::lake::storage::{parse_uri, store_for, Location, StorageOptions};

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

/// The format-specific half of an opened table.
#[derive(Debug, Clone)]
pub enum Source {
    Parquet(Arc<ParquetTable>),
    Delta(Arc<DeltaSource>),
    Iceberg(Arc<IcebergSource>),
}

/// An opened table.
#[derive(Debug, Clone)]
pub struct LakeTable {
    pub uri: String,
    pub location: Location,
    pub options: StorageOptions,
    pub format: Format,
    pub store: Arc<dyn ObjectStore>,
    pub source: Source,
    /// Live rows: from metadata at open (Parquet; Iceberg without equality deletes), else
    /// counted on first use (Delta: from the checked log).
    num_rows: Arc<tokio::sync::OnceCell<u64>>,
    entries: Arc<tokio::sync::OnceCell<Arc<Vec<DataFileEntry>>>>,
    /// Parquet footers and page indexes decoded by earlier reads of this table.
    footers: FooterCache,
}

/// A table's footer cache (`session::new_footer_cache`), shared by its clones.
#[derive(Clone)]
struct FooterCache(Arc<dyn FileMetadataCache>);

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FooterCache({} entries)", self.0.len())
    }
}

async fn has_child(store: &Arc<dyn ObjectStore>, loc: &Location, child: &str) -> Result<bool> {
    let p = loc.path.clone().join(child);
    if let Some(dir) = loc.local_path(&p) {
        // A local folder is one stat away; listing it would read (and stat) every entry.
        return Ok(std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false));
    }
    let mut s = store.list(Some(&p));
    match s.next().await {
        Some(Ok(_)) => Ok(true),
        Some(Err(object_store::Error::NotFound { .. })) | None => Ok(false),
        // Local paths below a file ("Not a directory") do not exist either.
        Some(Err(_)) if loc.is_local() => Ok(false),
        Some(Err(e)) => Err(LakeError::from(e).context(&loc.display)),
    }
}

/// A cheap fingerprint of the table's latest state (one LIST request): the newest Delta
/// commit number, the Iceberg metadata file, or the Parquet files with their sizes. Equal
/// fingerprints mean an open at the latest version would read the same table.
pub async fn latest_fingerprint(store: &Arc<dyn ObjectStore>, loc: &Location, format: Format) -> Result<String> {
    match format {
        Format::Delta => {
            let log = loc.path.clone().join("_delta_log");
            let mut list = store.list(Some(&log));
            let mut best: Option<u64> = None;
            while let Some(item) = list.next().await {
                let meta = item.map_err(|e| LakeError::from(e).context(&loc.display))?;
                let name = meta.location.filename().unwrap_or_default();
                if let Some(v) = name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) {
                    best = best.max(Some(v));
                }
            }
            Ok(format!("delta:{best:?}"))
        }
        Format::Iceberg => {
            let (meta, _) = crate::lake::iceberg::find_metadata(store, loc).await?;
            Ok(format!("iceberg:{meta}"))
        }
        Format::Parquet => {
            let listing = crate::lake::listing::list_files(store, loc).await?;
            let mut h = crc32fast::Hasher::new();
            for f in &listing.files {
                h.update(f.meta.location.as_ref().as_bytes());
                h.update(&f.meta.size.to_le_bytes());
                h.update(&f.meta.last_modified.timestamp_micros().to_le_bytes());
            }
            Ok(format!("parquet:{}:{:08x}", listing.files.len(), h.finalize()))
        }
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
    /// Open `uri` with `options`; `format` overrides detection; `pin` selects a Delta version
    /// or an Iceberg snapshot.
    pub async fn open(uri: &str, options: StorageOptions, format: Option<Format>, pin: TablePin) -> Result<Self> {
        let location = parse_uri(uri)?;
        let store = store_for(&location, &options)?;
        let format = match format {
            Some(f) => f,
            None => detect_format(&store, &location).await?,
        };
        if format == Format::Parquet && pin != TablePin::default() {
            return Err(LakeError::InvalidArgument(format!(
                "version/timestamp pinning needs a Delta or Iceberg table; '{}' is {}",
                location.display,
                format.as_str()
            )));
        }
        let (source, num_rows) = match format {
            Format::Parquet => {
                let t = ParquetTable::open(location.clone(), store.clone()).await?;
                let n = t.num_rows();
                (Source::Parquet(Arc::new(t)), Some(n))
            }
            Format::Delta => (Source::Delta(Arc::new(DeltaSource::open(&location, store.clone(), &pin).await?)), None),
            Format::Iceberg => {
                let i = IcebergSource::open(&location, store.clone(), &options, pin.version, pin.timestamp.as_deref())
                    .await?;
                let n = i.num_rows();
                (Source::Iceberg(Arc::new(i)), n)
            }
        };
        log::debug!(
            "opened {} table '{}' (pinned to {pin:?})",
            format.as_str(),
            crate::lake::storage::without_credentials(&location.display)
        );
        Ok(LakeTable {
            uri: location.display.clone(),
            location,
            options,
            format,
            store,
            source,
            num_rows: Arc::new(tokio::sync::OnceCell::new_with(num_rows)),
            entries: Default::default(),
            footers: FooterCache(crate::lake::session::new_footer_cache()),
        })
    }

    /// A Delta table's per-file checks (`DeltaSource::checked`), run once; `None` for other
    /// formats. Every scan, file listing and row count goes through them first.
    async fn delta_checked(&self) -> Result<Option<&crate::lake::delta::Checked>> {
        match &self.source {
            Source::Delta(d) => Ok(Some(d.checked(&self.location, &self.store, &self.options).await?)),
            _ => Ok(None),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        match &self.source {
            Source::Parquet(p) => p.schema.clone(),
            Source::Delta(d) => d.provider.schema(),
            Source::Iceberg(i) => i.provider.schema(),
        }
    }

    /// Live rows (after deletes). Parquet, and Iceberg without equality deletes, know it from
    /// open; otherwise it is counted on the first call: a Delta table from the log's record
    /// counts (the per-file checks), or, when some file has no count (or for equality
    /// deletes), by a scan.
    pub async fn num_rows(&self) -> Result<u64> {
        self.num_rows
            .get_or_try_init(|| async {
                match self.delta_checked().await?.and_then(|c| c.rows_from_log) {
                    Some(n) => Ok(n),
                    None => {
                        let ctx = LakeTable::session(&[self], crate::runtime::default_num_threads(), None).await?;
                        Ok(ctx.read_table(self.provider().await?)?.count().await? as u64)
                    }
                }
            })
            .await
            .copied()
    }

    pub fn num_files(&self) -> usize {
        match &self.source {
            Source::Parquet(p) => p.files.len(),
            Source::Delta(d) => d.num_files(),
            Source::Iceberg(i) => i.entries.len(),
        }
    }

    /// The table version: Delta's version, Iceberg's snapshot id; `None` for plain Parquet
    /// (and an Iceberg table without snapshots).
    pub fn version(&self) -> Option<i64> {
        match &self.source {
            Source::Parquet(_) => None,
            Source::Delta(d) => d.version().map(|v| v as i64),
            Source::Iceberg(i) => i.snapshot_id(),
        }
    }

    /// The live data files with their deletes (computed once per opened table).
    pub async fn entries(&self) -> Result<Arc<Vec<DataFileEntry>>> {
        self.entries
            .get_or_try_init(|| async {
                let v = match &self.source {
                    Source::Parquet(p) => p.entries(),
                    Source::Delta(d) => d.entries(&self.location, &self.store, &self.options).await?,
                    Source::Iceberg(i) => i.entries.clone(),
                };
                Ok::<_, LakeError>(Arc::new(v))
            })
            .await
            .cloned()
    }

    /// `Table.files()` (see [`crate::lake::datafiles::files_batch`]).
    pub async fn files(&self) -> Result<RecordBatch> {
        crate::lake::datafiles::files_batch(&self.entries().await?)
    }

    /// Commit (Delta) or snapshot (Iceberg) history as Arrow, newest first.
    pub async fn history(&self) -> Result<RecordBatch> {
        match &self.source {
            Source::Delta(d) => d.history().await,
            Source::Iceberg(i) => i.history(),
            Source::Parquet(_) => Err(LakeError::InvalidArgument(format!(
                "'{}' is a plain Parquet table: it has no history",
                self.location.display
            ))),
        }
    }

    /// The DataFusion provider for this table (for Delta, after the per-file checks).
    pub async fn provider(&self) -> Result<Arc<dyn TableProvider>> {
        self.delta_checked().await?;
        Ok(match &self.source {
            Source::Parquet(p) => Arc::new(ParquetProvider::new(p.clone())),
            Source::Delta(d) => d.provider.clone(),
            Source::Iceberg(i) => i.provider.clone(),
        })
    }

    /// Files whose Parquet footer this table's reads have cached.
    pub fn cached_footers(&self) -> usize {
        self.footers.0.len()
    }

    /// A DataFusion session to read `tables`: their stores registered, whole files per
    /// partition when a Delta table has deletion vectors, and, over one table, that table's
    /// footer cache (a read does not decode the footers and page indexes again). Runs a
    /// Delta table's per-file checks (once) to know whether it has deletion vectors.
    pub async fn session(
        tables: &[&LakeTable],
        num_threads: usize,
        batch_size: Option<usize>,
    ) -> Result<SessionContext> {
        let footers = match tables {
            [t] => Some(t.footers.0.clone()),
            _ => None,
        };
        let ctx = crate::lake::session::new_session_with(num_threads, batch_size, footers)?;
        for t in tables {
            crate::lake::session::register_store(&ctx, &t.location.store_url, t.store.clone());
            if t.delta_checked().await?.is_some_and(|c| c.has_deletion_vectors()) {
                crate::lake::session::keep_files_whole(&ctx);
            }
        }
        Ok(ctx)
    }

    /// Average decoded bytes per row of `columns` (default: all), from Parquet footers; a
    /// nominal 256 bytes for Delta and Iceberg tables.
    pub fn row_bytes(&self, columns: Option<&[String]>) -> u64 {
        match &self.source {
            Source::Parquet(p) => p.row_bytes(columns),
            Source::Delta(_) | Source::Iceberg(_) => 256,
        }
    }
}
