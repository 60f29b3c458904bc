//! Apache Iceberg tables through the iceberg crate (iceberg-rust) and its DataFusion provider:
//! snapshot pinning by id or timestamp, schema evolution by field id, partition pruning,
//! position and equality deletes applied by the iceberg reader.
//!
//! The table is found from a `*.metadata.json` path, or from a table folder through
//! `metadata/version-hint.text` or else the metadata file with the highest version number
//! (`vN.metadata.json` or `NNNNN-<uuid>.metadata.json`). Storage is lakevec's (`iceberg_io`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::TableProvider;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIOBuilder;
use iceberg::spec::{DataContentType, SnapshotRef};
use iceberg::table::{StaticTable, Table};
use iceberg::TableIdent;
use iceberg_datafusion::IcebergStaticTableProvider;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::ParquetRecordBatchStreamBuilder;

use crate::error::{LakeError, Result};
use crate::lake::datafiles::{relative_to, DataFileEntry, Deleted};
use crate::lake::iceberg_io::{canonical, LakeStorageFactory, PathResolver, NOT_FOUND_MARK};
use crate::lake::storage::{normal_file_url, Location, StorageOptions};

/// An opened Iceberg table, pinned to one snapshot (or none, for an empty table).
#[derive(Debug)]
pub struct IcebergSource {
    pub table: Table,
    pub snapshot: Option<SnapshotRef>,
    pub provider: Arc<dyn TableProvider>,
    pub resolver: Arc<PathResolver>,
    pub metadata_location: String,
    /// Canonical URL of the table root (where relative paths in `files()` start).
    pub root_url: String,
    pub entries: Vec<DataFileEntry>,
}

/// Map an iceberg error, naming the table.
pub fn map_iceberg_error(e: iceberg::Error, display: &str) -> LakeError {
    let full = format!("{e:#}");
    let msg = full.replace(NOT_FOUND_MARK, "").replace("  ", " ");
    if full.contains(NOT_FOUND_MARK) {
        return LakeError::NotFound(format!("Iceberg table '{display}': a file it references is missing: {msg}"));
    }
    match e.kind() {
        iceberg::ErrorKind::FeatureUnsupported => {
            LakeError::Unsupported(format!("Iceberg table '{display}' uses a feature lakevec cannot read: {msg}"))
        }
        iceberg::ErrorKind::DataInvalid => LakeError::CorruptFile(format!("Iceberg table '{display}': {msg}")),
        _ => LakeError::Storage(format!("Iceberg table '{display}': {msg}")),
    }
}

/// Version number in a metadata file name (`v12.metadata.json`, `00012-uuid.metadata.json`).
fn metadata_version(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".metadata.json")?;
    let digits: String = stem.trim_start_matches('v').chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Find the metadata file of the table at `loc`: returns (metadata path, table root path).
pub async fn find_metadata(store: &Arc<dyn ObjectStore>, loc: &Location) -> Result<(Path, Path)> {
    let p = loc.path.as_ref();
    if p.ends_with(".metadata.json") {
        let parts: Vec<&str> = p.split('/').collect();
        let n = parts.len();
        let root =
            if n >= 2 && parts[n - 2] == "metadata" { parts[..n - 2].join("/") } else { parts[..n - 1].join("/") };
        return Ok((loc.path.clone(), Path::from(root)));
    }
    let dir = loc.path.clone().join("metadata");
    let listed: Vec<_> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| LakeError::from(e).context(format!("listing '{}/metadata'", loc.display)))?;
    let names: Vec<String> = listed.iter().filter_map(|m| m.location.filename().map(|s| s.to_string())).collect();
    if names.iter().any(|n| n == "version-hint.text") {
        let hint = store.get(&dir.clone().join("version-hint.text")).await?.bytes().await?;
        let hint = String::from_utf8_lossy(&hint).trim().to_string();
        let pick = if hint.ends_with(".metadata.json") {
            names.iter().find(|n| **n == hint || hint.ends_with(&format!("/{n}")))
        } else {
            let v: Option<u64> = hint.parse().ok();
            names.iter().find(|n| v.is_some() && metadata_version(n) == v)
        };
        if let Some(name) = pick {
            return Ok((dir.clone().join(name.as_str()), loc.path.clone()));
        }
    }
    let best = names
        .iter()
        .filter_map(|n| metadata_version(n).map(|v| (v, n)))
        .max_by_key(|(v, _)| *v)
        .map(|(_, n)| n.clone());
    match best {
        Some(name) => Ok((dir.join(name.as_str()), loc.path.clone())),
        None => Err(LakeError::NotFound(format!(
            "'{}' has no Iceberg metadata: no *.metadata.json under its metadata/ folder",
            loc.display
        ))),
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
pub fn parse_timestamp_ms(ts: &str) -> Result<i64> {
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(ts)
        .map(|ns| ns.div_euclid(1_000_000))
        .map_err(|e| LakeError::InvalidArgument(format!("bad timestamp '{ts}' (expected RFC 3339): {e}")))
}

impl IcebergSource {
    /// Open the table at `loc`, pinned to `snapshot_id`, or to the latest snapshot at or before
    /// `timestamp` (RFC 3339), or else the current snapshot.
    pub async fn open(
        loc: &Location,
        store: Arc<dyn ObjectStore>,
        options: &StorageOptions,
        snapshot_id: Option<i64>,
        timestamp: Option<&str>,
    ) -> Result<Self> {
        let display = loc.display.as_str();
        let (meta_path, root_path) = find_metadata(&store, loc).await?;
        let meta_url = loc.url_of(&meta_path);
        let root_url = canonical(&loc.url_of(&root_path));
        // The declared location is only known after reading the metadata; read it once with a
        // resolver that maps nothing, then build the real one.
        let raw = store
            .get(&meta_path)
            .await
            .map_err(|e| LakeError::from(e).context(format!("Iceberg table '{display}'")))?
            .bytes()
            .await?;
        let declared = serde_json::from_slice::<serde_json::Value>(&raw)
            .map_err(|e| LakeError::CorruptFile(format!("'{meta_url}' is not valid JSON: {e}")))?
            .get("location")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let resolver = Arc::new(PathResolver::new(options.clone(), &declared, &root_url));
        let file_io = FileIOBuilder::new(Arc::new(LakeStorageFactory::new(resolver.clone()))).build();
        let ident = TableIdent::from_strs(["lakevec", "table"]).map_err(|e| map_iceberg_error(e, display))?;
        let table = StaticTable::from_metadata_file(&meta_url, ident, file_io)
            .await
            .map_err(|e| map_iceberg_error(e, display))?
            .into_table();
        let md = table.metadata();
        let snapshot = if let Some(id) = snapshot_id {
            Some(
                md.snapshot_by_id(id)
                    .cloned()
                    .ok_or_else(|| LakeError::NotFound(format!("Iceberg table '{display}' has no snapshot {id}")))?,
            )
        } else if let Some(ts) = timestamp {
            let ms = parse_timestamp_ms(ts)?;
            let id = md
                .history()
                .iter()
                .filter(|l| l.timestamp_ms <= ms)
                .max_by_key(|l| l.timestamp_ms)
                .map(|l| l.snapshot_id)
                .ok_or_else(|| {
                    LakeError::NotFound(format!("Iceberg table '{display}' has no snapshot at or before {ts}"))
                })?;
            md.snapshot_by_id(id).cloned()
        } else {
            md.current_snapshot().cloned()
        };
        let provider: Arc<dyn TableProvider> = match &snapshot {
            Some(s) => Arc::new(
                IcebergStaticTableProvider::try_new_from_table_snapshot(table.clone(), s.snapshot_id())
                    .await
                    .map_err(|e| map_iceberg_error(e, display))?,
            ),
            None => Arc::new(
                IcebergStaticTableProvider::try_new_from_table(table.clone())
                    .await
                    .map_err(|e| map_iceberg_error(e, display))?,
            ),
        };
        let entries = match &snapshot {
            Some(s) => data_files(&table, s, &resolver, &root_url, display).await?,
            None => Vec::new(),
        };
        Ok(IcebergSource { table, snapshot, provider, resolver, metadata_location: meta_url, root_url, entries })
    }

    /// The snapshot id (lakevec's `version` for Iceberg).
    pub fn snapshot_id(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|s| s.snapshot_id())
    }

    /// Live rows when every file's deletes are known by position.
    pub fn num_rows(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.live_rows()).sum()
    }

    /// Snapshots, newest first: `version` (snapshot id), `timestamp` (ms), `operation`,
    /// `operation_parameters` (the snapshot summary as JSON), `parent_version`.
    pub fn history(&self) -> Result<arrow::array::RecordBatch> {
        use arrow::array::{ArrayRef, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let mut snaps: Vec<&SnapshotRef> = self.table.metadata().snapshots().collect();
        snaps.sort_by_key(|s| std::cmp::Reverse((s.timestamp_ms(), s.sequence_number())));
        let schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::Int64, false),
            Field::new("timestamp", DataType::Int64, true),
            Field::new("operation", DataType::Utf8, true),
            Field::new("operation_parameters", DataType::Utf8, true),
            Field::new("parent_version", DataType::Int64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(snaps.iter().map(|s| s.snapshot_id()))),
            Arc::new(Int64Array::from_iter_values(snaps.iter().map(|s| s.timestamp_ms()))),
            Arc::new(StringArray::from_iter_values(snaps.iter().map(|s| s.summary().operation.as_str()))),
            Arc::new(StringArray::from_iter_values(
                snaps.iter().map(|s| serde_json::to_string(&s.summary().additional_properties).unwrap_or_default()),
            )),
            Arc::new(Int64Array::from_iter(snaps.iter().map(|s| s.parent_snapshot_id()))),
        ];
        Ok(arrow::array::RecordBatch::try_new(schema, cols)?)
    }
}

/// The live data files of snapshot `snap`, with their position deletes read.
pub async fn data_files(
    table: &Table,
    snap: &SnapshotRef,
    resolver: &Arc<PathResolver>,
    root_url: &str,
    display: &str,
) -> Result<Vec<DataFileEntry>> {
    let scan =
        table.scan().snapshot_id(snap.snapshot_id()).select_all().build().map_err(|e| map_iceberg_error(e, display))?;
    let tasks: Vec<_> = scan
        .plan_files()
        .await
        .map_err(|e| map_iceberg_error(e, display))?
        .try_collect()
        .await
        .map_err(|e| map_iceberg_error(e, display))?;
    // Position delete files can cover many data files: read each once.
    let mut pos_files: Vec<String> = tasks
        .iter()
        .flat_map(|t| t.deletes.iter())
        .filter(|d| d.file_type == DataContentType::PositionDeletes)
        .map(|d| d.file_path.clone())
        .collect();
    pos_files.sort();
    pos_files.dedup();
    let reads = futures::stream::iter(pos_files.into_iter().map(|f| {
        let resolver = resolver.clone();
        async move { read_position_deletes(&resolver, &f).await.map(|m| (f, m)) }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<_>>()
    .await?;
    let by_file: HashMap<String, HashMap<String, Vec<u64>>> = reads.into_iter().collect();

    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(tasks.len());
    for t in &tasks {
        if !seen.insert(t.data_file_path.clone()) {
            continue;
        }
        let url = resolver.url(&t.data_file_path)?;
        let (store, object) = resolver.resolve(&t.data_file_path)?;
        let eq = t.deletes.iter().filter(|d| d.file_type == DataContentType::EqualityDeletes).count();
        let deleted = if eq > 0 {
            Deleted::ByValue { delete_files: eq }
        } else {
            let mut rows = Vec::new();
            // the delete files' keys are normalised; this file's path is, once, when it has any
            let mut data_key = None;
            for d in t.deletes.iter().filter(|d| d.file_type == DataContentType::PositionDeletes) {
                if let Some(m) = by_file.get(&d.file_path) {
                    let key = data_key.get_or_insert_with(|| normal_file_url(&t.data_file_path));
                    if let Some(r) = m.get(key.as_str()) {
                        rows.extend_from_slice(r);
                    }
                }
            }
            Deleted::from_positions(rows)
        };
        // iceberg 0.10 leaves `partition_spec` unset in planned tasks: name the values by
        // the task's spec when present, else the table's default spec when it fits.
        let default_spec = table.metadata().default_partition_spec();
        let partition = match (&t.partition, &t.partition_spec) {
            (Some(values), spec) => {
                let spec = spec.as_ref().unwrap_or(default_spec);
                if spec.fields().len() == values.fields().len() {
                    spec.fields()
                        .iter()
                        .zip(values.iter())
                        .map(|(f, v)| (f.name.clone(), v.map(literal_string)))
                        .collect()
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        out.push(DataFileEntry {
            path: relative_to(root_url, &url),
            store,
            object,
            size: t.file_size_in_bytes,
            tag: None,
            num_records: t.record_count,
            partition,
            deleted,
        });
    }
    Ok(out)
}

fn literal_string(l: &iceberg::spec::Literal) -> String {
    match l {
        iceberg::spec::Literal::Primitive(p) => match p {
            iceberg::spec::PrimitiveLiteral::String(s) => s.clone(),
            iceberg::spec::PrimitiveLiteral::Int(v) => v.to_string(),
            iceberg::spec::PrimitiveLiteral::Long(v) => v.to_string(),
            iceberg::spec::PrimitiveLiteral::Boolean(v) => v.to_string(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// Read a position delete file: data file path -> deleted positions.
async fn read_position_deletes(resolver: &PathResolver, path: &str) -> Result<HashMap<String, Vec<u64>>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let (store, object) = resolver.resolve(path)?;
    let ctx = |e: LakeError| e.context(format!("reading Iceberg position delete file '{path}'"));
    let reader = ParquetObjectReader::new(store, object);
    let mut stream = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| ctx(e.into()))?
        .build()
        .map_err(|e| ctx(e.into()))?;
    // keyed by the path as written (one delete file repeats it for every row), normalised once
    // per distinct path at the end
    let mut raw: HashMap<String, Vec<u64>> = HashMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| ctx(e.into()))?;
        let (Some(fp), Some(pos)) = (batch.column_by_name("file_path"), batch.column_by_name("pos")) else {
            return Err(LakeError::CorruptFile(format!(
                "Iceberg position delete file '{path}' lacks the file_path/pos columns"
            )));
        };
        let fp = arrow::compute::cast(fp, &arrow::datatypes::DataType::Utf8)?;
        let fp = fp.as_string::<i32>();
        let pos = pos.as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            if fp.is_valid(i) && pos.is_valid(i) {
                let rows = match raw.get_mut(fp.value(i)) {
                    Some(rows) => rows,
                    None => raw.entry(fp.value(i).to_string()).or_default(),
                };
                rows.push(pos.value(i) as u64);
            }
        }
    }
    let mut out: HashMap<String, Vec<u64>> = HashMap::with_capacity(raw.len());
    for (path, rows) in raw {
        out.entry(normal_file_url(&path)).or_default().extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_versions() {
        assert_eq!(metadata_version("v12.metadata.json"), Some(12));
        assert_eq!(metadata_version("00012-1b2c.metadata.json"), Some(12));
        assert_eq!(metadata_version("version-hint.text"), None);
    }

    /// A position delete file names its data files as the writer spelled them (`file:/x`,
    /// `file:///x`, through a symlink): each distinct spelling is normalised once, and rows of
    /// one file under several spellings land under one key.
    #[tokio::test]
    async fn position_deletes_are_keyed_by_one_normal_path() {
        use arrow::array::{Int64Array, RecordBatch, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(real.join("a.parquet"), b"x").unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        let r = real.display();
        let paths = [
            format!("file:{r}/a.parquet"),
            format!("file://{r}/a.parquet"),
            format!("{r}/link/a.parquet"),
            format!("file://{r}/b.parquet"),
        ];
        let batch = RecordBatch::try_from_iter([
            ("file_path", Arc::new(StringArray::from_iter_values(&paths)) as arrow::array::ArrayRef),
            ("pos", Arc::new(Int64Array::from(vec![3, 1, 2, 7])) as arrow::array::ArrayRef),
        ])
        .unwrap();
        let file = real.join("deletes.parquet");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let resolver = PathResolver::new(StorageOptions::default(), "", &format!("file://{r}"));
        let got = read_position_deletes(&resolver, &format!("file://{}", file.display())).await.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let mut a = got[&normal_file_url(&format!("file://{r}/a.parquet"))].clone();
        a.sort();
        assert_eq!(a, vec![1, 2, 3]);
        assert_eq!(got[&normal_file_url(&format!("file://{r}/b.parquet"))], vec![7]);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_timestamp_ms("yesterday").is_err());
    }
}
