//! A Parquet table (one file, a folder or a glob) with its footers read, and its DataFusion
//! [`TableProvider`].
//!
//! Opening reads every file's footer (concurrently), so `num_rows`, the per-file row counts
//! and a corrupt or truncated file are known up front, with the file named in the error. The
//! table schema is the merge of all file schemas (as DataFusion's `ParquetFormat` merges them)
//! followed by the hive partition columns. Scans hand one ordered file group to DataFusion,
//! which splits it by byte ranges over `target_partitions`; partition-column filters prune
//! whole files before any read, other filters prune row groups by statistics.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::expr_to_columns;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use parquet::file::metadata::ParquetMetaData;

use crate::error::{LakeError, Result};
use crate::lake::datafiles::{DataFileEntry, Deleted};
use crate::lake::listing::{list_files, ListedFile};
use crate::lake::storage::Location;

/// Concurrent footer reads when opening a table.
const FOOTER_CONCURRENCY: usize = 32;

/// Merge file schemas (fields in first-seen order, as DataFusion does). Writers such as Spark
/// put per-file values in the metadata (job ids); when metadata conflicts it is dropped and the
/// first file's schema-level metadata is kept, as pyarrow keeps the first file's.
fn merge_schemas(schemas: Vec<Schema>) -> std::result::Result<Schema, arrow::error::ArrowError> {
    if let Ok(s) = Schema::try_merge(schemas.clone()) {
        return Ok(s);
    }
    let first_meta = schemas.first().map(|s| s.metadata().clone()).unwrap_or_default();
    let stripped = schemas.into_iter().map(|s| {
        let fields: Vec<Field> =
            s.fields().iter().map(|f| f.as_ref().clone().with_metadata(Default::default())).collect();
        Schema::new(fields)
    });
    Ok(Schema::try_merge(stripped)?.with_metadata(first_meta))
}

/// One Parquet data file of a table.
#[derive(Clone, Debug)]
pub struct DataFile {
    pub meta: ObjectMeta,
    /// Path relative to the table root (the file name for a single-file table).
    pub relative_path: String,
    pub num_rows: u64,
    pub num_row_groups: usize,
    pub partition_values: Vec<ScalarValue>,
}

/// A Parquet table ready to scan.
#[derive(Debug)]
pub struct ParquetTable {
    pub location: Location,
    pub root: Path,
    pub store: Arc<dyn ObjectStore>,
    pub files: Vec<DataFile>,
    /// Merged schema of the data files.
    pub file_schema: SchemaRef,
    /// Hive partition columns (appended after the file columns).
    pub partition_fields: Vec<FieldRef>,
    /// `file_schema` + `partition_fields`.
    pub schema: SchemaRef,
    /// Uncompressed bytes per top-level column over all files (from the footers).
    pub column_bytes: std::collections::HashMap<String, u64>,
}

async fn read_footer(store: Arc<dyn ObjectStore>, file: &ListedFile, display: String) -> Result<Arc<ParquetMetaData>> {
    let mut reader = ParquetObjectReader::new(store, file.meta.location.clone()).with_file_size(file.meta.size);
    reader.get_metadata(None).await.map_err(|e| {
        let l = LakeError::from(e);
        match l {
            LakeError::NotFound(_) | LakeError::PermissionDenied(_) | LakeError::Storage(_) => {
                l.context(format!("reading '{display}'"))
            }
            other => LakeError::CorruptFile(format!(
                "'{display}' is not a valid Parquet file ({}, {} bytes): {other}",
                "footer could not be read", file.meta.size
            )),
        }
    })
}

impl ParquetTable {
    /// List and open the table at `location`.
    pub async fn open(location: Location, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let listing = list_files(&store, &location).await?;
        let single = listing.files.len() == 1 && listing.files[0].meta.location == listing.root;
        // Owned futures (no borrows across the stream) keep the future `Send`.
        let jobs: Vec<_> = listing
            .files
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, f)| {
                let store = store.clone();
                let display = location.url_of(&f.meta.location);
                async move { read_footer(store, &f, display).await.map(|m| (i, m)) }
            })
            .collect();
        let footers: Vec<(usize, Arc<ParquetMetaData>)> =
            futures::stream::iter(jobs).buffer_unordered(FOOTER_CONCURRENCY).try_collect().await?;
        let mut footers = footers;
        footers.sort_by_key(|(i, _)| *i);

        let mut column_bytes: std::collections::HashMap<String, u64> = Default::default();
        let mut schemas = Vec::with_capacity(footers.len());
        let mut files = Vec::with_capacity(footers.len());
        for ((_, md), lf) in footers.iter().zip(&listing.files) {
            for c in md.row_groups().iter().flat_map(|rg| rg.columns()) {
                let top = c.column_path().parts().first().cloned().unwrap_or_default();
                *column_bytes.entry(top).or_default() += c.uncompressed_size().max(0) as u64;
            }
            let fm = md.file_metadata();
            let schema =
                parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata()).map_err(|e| {
                    LakeError::Unsupported(format!(
                        "'{}': cannot map the Parquet schema to Arrow: {e}",
                        location.url_of(&lf.meta.location)
                    ))
                })?;
            schemas.push(schema);
            let relative_path = if single {
                lf.meta.location.filename().unwrap_or("").to_string()
            } else {
                let root = listing.root.as_ref();
                let p = lf.meta.location.as_ref();
                p.strip_prefix(root).unwrap_or(p).trim_start_matches('/').to_string()
            };
            files.push(DataFile {
                meta: lf.meta.clone(),
                relative_path,
                num_rows: fm.num_rows().max(0) as u64,
                num_row_groups: md.num_row_groups(),
                partition_values: lf.partition_values.clone(),
            });
        }
        let file_schema = merge_schemas(schemas).map_err(|e| {
            LakeError::Schema(format!("the files of '{}' have incompatible schemas: {e}", location.display))
        })?;
        // A partition key that is also a file column is read from the files, not the path.
        let keep: Vec<bool> =
            listing.partition_fields.iter().map(|f| file_schema.field_with_name(f.name()).is_err()).collect();
        let partition_fields: Vec<FieldRef> =
            listing.partition_fields.iter().zip(&keep).filter(|(_, k)| **k).map(|(f, _)| f.clone()).collect();
        for f in &mut files {
            f.partition_values =
                f.partition_values.iter().zip(&keep).filter(|(_, k)| **k).map(|(v, _)| v.clone()).collect();
        }
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        let schema = Arc::new(Schema::new_with_metadata(fields, file_schema.metadata().clone()));
        Ok(ParquetTable {
            location,
            root: listing.root,
            store,
            files,
            file_schema: Arc::new(file_schema),
            partition_fields,
            schema,
            column_bytes,
        })
    }

    /// Average decoded (uncompressed) bytes per row of `columns` (default: all).
    pub fn row_bytes(&self, columns: Option<&[String]>) -> u64 {
        let rows = self.num_rows().max(1);
        let bytes: u64 = match columns {
            Some(cols) => cols.iter().filter_map(|c| self.column_bytes.get(c)).sum(),
            None => self.column_bytes.values().sum(),
        };
        (bytes / rows).max(1)
    }

    /// Total rows over all files (from the footers).
    pub fn num_rows(&self) -> u64 {
        self.files.iter().map(|f| f.num_rows).sum()
    }

    /// The DataFusion `ObjectStoreUrl` of the table's store.
    pub fn object_store_url(&self) -> Result<ObjectStoreUrl> {
        ObjectStoreUrl::parse(self.location.store_url.as_str()).map_err(LakeError::from)
    }

    /// The data files as format-neutral entries (no deletes; hive partition values as text).
    pub fn entries(&self) -> Vec<DataFileEntry> {
        self.files
            .iter()
            .map(|f| DataFileEntry {
                path: f.relative_path.clone(),
                store: self.store.clone(),
                object: f.meta.location.clone(),
                size: f.meta.size,
                tag: Some(f.meta.e_tag.clone().unwrap_or_else(|| f.meta.last_modified.to_rfc3339())),
                num_records: Some(f.num_rows),
                partition: self
                    .partition_fields
                    .iter()
                    .zip(&f.partition_values)
                    .map(|(pf, v)| (pf.name().clone(), (!v.is_null()).then(|| v.to_string())))
                    .collect(),
                deleted: Deleted::None,
            })
            .collect()
    }

    /// Indices of files whose partition values can satisfy every partition-only filter.
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> DFResult<Vec<usize>> {
        let all: Vec<usize> = (0..self.files.len()).collect();
        if self.partition_fields.is_empty() || self.files.is_empty() {
            return Ok(all);
        }
        let names: Vec<&str> = self.partition_fields.iter().map(|f| f.name().as_str()).collect();
        let part_filters: Vec<&Expr> = filters
            .iter()
            .filter(|e| {
                let mut cols = std::collections::HashSet::new();
                expr_to_columns(e, &mut cols).is_ok()
                    && !cols.is_empty()
                    && cols.iter().all(|c| names.contains(&c.name.as_str()))
            })
            .collect();
        if part_filters.is_empty() {
            return Ok(all);
        }
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let cols = (0..self.partition_fields.len())
            .map(|i| ScalarValue::iter_to_array(self.files.iter().map(|f| f.partition_values[i].clone())))
            .collect::<DFResult<Vec<_>>>()?;
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut keep = vec![true; self.files.len()];
        for f in part_filters {
            let phys = state.create_physical_expr(f.clone(), &df_schema)?;
            let out = phys.evaluate(&batch)?.into_array(batch.num_rows())?;
            let b = out
                .as_any()
                .downcast_ref::<arrow::array::BooleanArray>()
                .ok_or_else(|| datafusion::error::DataFusionError::Plan("partition filter is not boolean".into()))?;
            for (i, k) in keep.iter_mut().enumerate() {
                // NULL (unknown) keeps the file: the row-level filter decides.
                if b.is_valid(i) && !b.value(i) {
                    *k = false;
                }
            }
        }
        Ok(all.into_iter().filter(|i| keep[*i]).collect())
    }
}

/// DataFusion view of a [`ParquetTable`].
#[derive(Debug)]
pub struct ParquetProvider {
    table: Arc<ParquetTable>,
}

impl ParquetProvider {
    pub fn new(table: Arc<ParquetTable>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl TableProvider for ParquetProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema(&self) -> SchemaRef {
        self.table.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter is still applied above the scan; the scan uses it to prune files
        // (partition values) and row groups (statistics).
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let t = &self.table;
        let keep = t.prune(state, filters)?;
        if keep.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(t.schema.project(p)?),
                None => t.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let files: Vec<PartitionedFile> = keep
            .iter()
            .map(|&i| {
                let f = &t.files[i];
                PartitionedFile::new_from_meta(f.meta.clone()).with_partition_values(f.partition_values.clone())
            })
            .collect();
        let table_schema = TableSchema::new(t.file_schema.clone(), t.partition_fields.clone());
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(table_schema);
        let url = t.object_store_url().map_err(datafusion::error::DataFusionError::from)?;
        let conf = FileScanConfigBuilder::new(url, source)
            .with_file_groups(vec![FileGroup::new(files)])
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, conf).await
    }
}
