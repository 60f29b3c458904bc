//! Row addresses: reading a table's rows together with (`_file`, `_row`), and fetching rows
//! by address (`take`).
//!
//! Both read the data files directly with the Parquet reader, so a row's position is exact:
//! the reader is given a `RowSelection` (all rows minus the file's deleted positions for a scan,
//! the requested positions for `take`), and fetches only the row groups and pages it needs.
//! Table columns are matched to file columns by name (Parquet), by Delta column-mapping
//! physical name, or by Iceberg field id; columns a file lacks are null, partition columns a
//! file lacks come from the table metadata, and every column is cast to the table's type.
//! Filters are evaluated after addresses are assigned, so they never shift positions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use futures::StreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::PageIndexPolicy;

use crate::error::{LakeError, Result};
use crate::lake::datafiles::{DataFileEntry, Deleted};
use crate::lake::table::{LakeTable, Source};
use crate::read::columns::{check_projection, parse_filter};

pub const FILE_COL: &str = "_file";
pub const ROW_COL: &str = "_row";
const FIELD_ID_KEY: &str = "PARQUET:field_id";

/// How table columns are found in a data file.
#[derive(Clone, Debug)]
enum Matcher {
    ByName,
    /// Logical name -> physical name (Delta column mapping).
    Physical(HashMap<String, String>),
    /// Logical name -> Iceberg field id.
    FieldId(HashMap<String, i32>),
}

fn matcher(table: &LakeTable) -> Result<Matcher> {
    Ok(match &table.source {
        Source::Parquet(_) => Matcher::ByName,
        Source::Delta(d) => {
            let m = d.physical_names()?;
            if m.is_empty() {
                Matcher::ByName
            } else {
                Matcher::Physical(m)
            }
        }
        Source::Iceberg(_) => {
            let ids = table
                .schema()
                .fields()
                .iter()
                .filter_map(|f| Some((f.name().clone(), f.metadata().get(FIELD_ID_KEY)?.parse().ok()?)))
                .collect();
            Matcher::FieldId(ids)
        }
    })
}

/// Which rows of a file to read.
pub enum Rows<'a> {
    /// Every row not deleted.
    Live,
    /// These sorted, unique positions.
    At(&'a [u64]),
    /// Every row not deleted whose position lies in this range (one part of a split read).
    LiveIn(std::ops::Range<u64>),
}

/// The schema of address reads: the chosen table columns, then `_file`, `_row`.
pub fn address_schema(table_schema: &SchemaRef, columns: &[String]) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = Vec::with_capacity(columns.len() + 2);
    for c in columns {
        fields.push(table_schema.field_with_name(c)?.clone());
    }
    fields.push(Field::new(FILE_COL, DataType::Utf8, false));
    fields.push(Field::new(ROW_COL, DataType::Int64, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// Selected positions as ranges, and the selection for the reader.
fn selection(rows: &Rows, deleted: &Deleted, n: u64) -> (Vec<std::ops::Range<u64>>, RowSelection) {
    let mut ranges = Vec::new();
    match rows {
        Rows::Live | Rows::LiveIn(_) => {
            let mut start = 0;
            for &d in deleted.positions() {
                if d >= n {
                    break;
                }
                if d > start {
                    ranges.push(start..d);
                }
                start = d + 1;
            }
            if start < n {
                ranges.push(start..n);
            }
            if let Rows::LiveIn(part) = rows {
                ranges = ranges
                    .into_iter()
                    .map(|r| r.start.max(part.start)..r.end.min(part.end))
                    .filter(|r| r.start < r.end)
                    .collect();
            }
        }
        Rows::At(pos) => {
            for &p in pos.iter() {
                match ranges.last_mut() {
                    Some(r) if r.end == p => r.end = p + 1,
                    _ => ranges.push(p..p + 1),
                }
            }
        }
    }
    let mut selectors = Vec::new();
    let mut at = 0u64;
    for r in &ranges {
        if r.start > at {
            selectors.push(RowSelector::skip((r.start - at) as usize));
        }
        selectors.push(RowSelector::select((r.end - r.start) as usize));
        at = r.end;
    }
    if at < n {
        selectors.push(RowSelector::skip((n - at) as usize));
    }
    (ranges, RowSelection::from(selectors))
}

/// A column of `len` copies of a partition value given as text, cast to `ty`.
fn constant(value: Option<&str>, ty: &DataType, len: usize, name: &str) -> Result<ArrayRef> {
    match value {
        None => Ok(new_null_array(ty, len)),
        Some(v) => {
            let s: ArrayRef = Arc::new(StringArray::from(vec![v; len]));
            cast(&s, ty).map_err(|e| {
                LakeError::Schema(format!("partition value '{v}' of column '{name}' is not a valid {ty}: {e}"))
            })
        }
    }
}

/// Read `columns` (table names) of one data file, with addresses.
async fn read_file(
    entry: &DataFileEntry,
    m: &Matcher,
    table_schema: &SchemaRef,
    columns: &[String],
    rows: Rows<'_>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let ctx = |e: LakeError| e.context(format!("reading data file '{}'", entry.path));
    let reader = ParquetObjectReader::new(entry.store.clone(), entry.object.clone()).with_file_size(entry.size);
    // Fetching rows by position loads the offset index (page locations) when the file has one, so
    // that only the pages holding those rows are read, not whole column chunks; a scan reads
    // every page anyway and skips it.
    let offsets = if matches!(rows, Rows::At(_)) { PageIndexPolicy::Optional } else { PageIndexPolicy::Skip };
    let options = ArrowReaderOptions::new().with_offset_index_policy(offsets);
    let builder =
        ParquetRecordBatchStreamBuilder::new_with_options(reader, options).await.map_err(|e| ctx(e.into()))?;
    let n = builder.metadata().file_metadata().num_rows().max(0) as u64;
    if let Rows::At(pos) = &rows {
        if let Some(&bad) = pos.iter().find(|&&p| p >= n) {
            return Err(LakeError::InvalidArgument(format!(
                "row {bad} is out of range: data file '{}' has {n} rows",
                entry.path
            )));
        }
    }
    let file_schema = builder.schema().clone();
    let find = |name: &str| -> Option<usize> {
        let fields = file_schema.fields();
        match m {
            Matcher::ByName => fields.iter().position(|f| f.name() == name),
            Matcher::Physical(p) => {
                let phys = p.get(name).map(|s| s.as_str()).unwrap_or(name);
                fields.iter().position(|f| f.name() == phys)
            }
            Matcher::FieldId(ids) => match ids.get(name) {
                Some(id) if fields.iter().any(|f| f.metadata().contains_key(FIELD_ID_KEY)) => fields
                    .iter()
                    .position(|f| f.metadata().get(FIELD_ID_KEY).and_then(|v| v.parse::<i32>().ok()) == Some(*id)),
                _ => fields.iter().position(|f| f.name() == name),
            },
        }
    };
    let sources: Vec<Option<usize>> = columns.iter().map(|c| find(c)).collect();
    let mut roots: Vec<usize> = sources.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    let (ranges, sel) = selection(&rows, &entry.deleted, n);
    let mut stream = builder
        .with_projection(mask)
        .with_row_selection(sel)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| ctx(e.into()))?;
    let out_schema = address_schema(table_schema, columns)?;
    let mut positions = ranges.into_iter().flatten();
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| ctx(e.into()))?;
        let len = batch.num_rows();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 2);
        for (c, src) in columns.iter().zip(&sources) {
            let target = table_schema.field_with_name(c)?.data_type();
            let arr = match src {
                Some(i) => {
                    let k = roots.binary_search(i).expect("projected root");
                    let a = batch.column(k);
                    if a.data_type() == target {
                        a.clone()
                    } else {
                        cast(a, target).map_err(|e| {
                            LakeError::Schema(format!(
                                "column '{c}' of data file '{}' has type {}, which cannot be read as {target}: {e}",
                                entry.path,
                                a.data_type()
                            ))
                        })?
                    }
                }
                None => match entry.partition.iter().find(|(k, _)| k == c) {
                    Some((_, v)) => constant(v.as_deref(), target, len, c)?,
                    None => new_null_array(target, len),
                },
            };
            cols.push(arr);
        }
        cols.push(Arc::new(StringArray::from(vec![entry.path.as_str(); len])));
        let rows: Vec<i64> = positions.by_ref().take(len).map(|p| p as i64).collect();
        if rows.len() != len {
            return Err(LakeError::Internal(format!("data file '{}' returned more rows than selected", entry.path)));
        }
        cols.push(Arc::new(Int64Array::from(rows)));
        out.push(RecordBatch::try_new(out_schema.clone(), cols)?);
    }
    Ok(out)
}

/// What an address scan reads.
pub struct AddressScan {
    pub entries: Arc<Vec<DataFileEntry>>,
    matcher: Matcher,
    table_schema: SchemaRef,
    /// Columns read from files (requested + filter columns).
    read_cols: Vec<String>,
    /// Output columns.
    out_cols: Vec<String>,
    pub schema: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    batch_size: usize,
}

impl AddressScan {
    pub async fn new(
        table: &LakeTable,
        columns: Option<&[String]>,
        filter: Option<&str>,
        batch_size: usize,
    ) -> Result<Self> {
        let table_schema = table.schema();
        let all: Vec<String> = table_schema.fields().iter().map(|f| f.name().clone()).collect();
        let out_cols: Vec<String> = columns.map(|c| c.to_vec()).unwrap_or(all);
        check_projection(&table_schema, &out_cols, &format!("table '{}'", table.uri))?;
        let mut read_cols = out_cols.clone();
        let mut phys = None;
        if let Some(f) = filter {
            let ctx = crate::lake::session::new_session(1, None)?;
            let df_schema = DFSchema::try_from(table_schema.as_ref().clone())?;
            let expr = parse_filter(&ctx, &df_schema, f)?;
            for c in expr.column_refs() {
                if !read_cols.contains(&c.name) {
                    read_cols.push(c.name.clone());
                }
            }
            let read_schema = address_schema(&table_schema, &read_cols)?;
            let rs = DFSchema::try_from(read_schema.as_ref().clone())?;
            phys = Some(
                ctx.create_physical_expr(expr, &rs)
                    .map_err(|e| LakeError::Filter(format!("invalid filter '{f}': {e}")))?,
            );
        }
        let entries = table.entries().await?;
        if let Some(e) = entries.iter().find(|e| matches!(e.deleted, Deleted::ByValue { .. })) {
            return Err(LakeError::Unsupported(format!(
                "row addresses need deleted rows by position, but data file '{}' of '{}' has Iceberg \
                 equality deletes; read without with_row_address, or compact the table first",
                e.path, table.uri
            )));
        }
        Ok(AddressScan {
            entries,
            matcher: matcher(table)?,
            schema: address_schema(&table_schema, &out_cols)?,
            table_schema,
            read_cols,
            out_cols,
            filter: phys,
            batch_size,
        })
    }

    /// Read, filter and project file `i`.
    pub async fn read(&self, i: usize) -> Result<Vec<RecordBatch>> {
        self.read_rows(i, Rows::Live).await
    }

    /// Read, filter and project the live rows of file `i` selected by `rows`.
    pub async fn read_rows(&self, i: usize, rows: Rows<'_>) -> Result<Vec<RecordBatch>> {
        let e = &self.entries[i];
        let batches = read_file(e, &self.matcher, &self.table_schema, &self.read_cols, rows, self.batch_size).await?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let b = match &self.filter {
                Some(f) => {
                    let mask = f.evaluate(&b)?.into_array(b.num_rows())?;
                    let mask: &BooleanArray = mask.as_boolean();
                    filter_record_batch(&b, mask)?
                }
                None => b,
            };
            if b.num_rows() == 0 {
                continue;
            }
            let mut idx: Vec<usize> = (0..self.out_cols.len()).collect();
            idx.push(self.read_cols.len());
            idx.push(self.read_cols.len() + 1);
            out.push(b.project(&idx)?);
        }
        Ok(out)
    }

    /// A stream of per-file results, in file order, `concurrency` files at a time.
    pub fn stream(self: Arc<Self>, concurrency: usize) -> impl futures::Stream<Item = Result<Vec<RecordBatch>>> {
        let n = self.entries.len();
        futures::stream::iter(0..n)
            .map(move |i| {
                let s = self.clone();
                async move { s.read(i).await }
            })
            .buffered(concurrency.max(1))
    }
}

/// Fetch `columns` of the rows at (`files[i]`, `rows[i]`), in input order, plus `_file`,
/// `_row`. Unknown files, out-of-range rows and deleted rows are errors naming them.
pub async fn take(
    table: &LakeTable,
    files: &[String],
    rows: &[i64],
    columns: Option<&[String]>,
    concurrency: usize,
) -> Result<RecordBatch> {
    if files.len() != rows.len() {
        return Err(LakeError::InvalidArgument(format!(
            "take: {} files but {} rows; pass one (_file, _row) pair per row",
            files.len(),
            rows.len()
        )));
    }
    let table_schema = table.schema();
    let all: Vec<String> = table_schema.fields().iter().map(|f| f.name().clone()).collect();
    let cols: Vec<String> = columns.map(|c| c.to_vec()).unwrap_or(all);
    check_projection(&table_schema, &cols, &format!("table '{}'", table.uri))?;
    let schema = address_schema(&table_schema, &cols)?;
    let entries = table.entries().await?;
    let by_path: HashMap<&str, usize> = entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
    let version = table.version().map(|v| format!(" at version {v}")).unwrap_or_default();
    // Positions wanted per file.
    let mut wanted: HashMap<usize, Vec<u64>> = HashMap::new();
    for (f, &r) in files.iter().zip(rows) {
        let Some(&i) = by_path.get(f.as_str()) else {
            return Err(LakeError::InvalidArgument(format!(
                "'{f}' is not a live data file of '{}'{version}",
                table.uri
            )));
        };
        if r < 0 {
            return Err(LakeError::InvalidArgument(format!("row {r} of '{f}' is negative")));
        }
        let e = &entries[i];
        match &e.deleted {
            Deleted::ByValue { .. } => {
                return Err(LakeError::Unsupported(format!(
                    "data file '{f}' has Iceberg equality deletes: rows cannot be fetched by address"
                )))
            }
            d if d.contains(r as u64) => {
                return Err(LakeError::InvalidArgument(format!(
                    "row {r} of data file '{f}' is deleted in '{}'{version}",
                    table.uri
                )))
            }
            _ => {}
        }
        wanted.entry(i).or_default().push(r as u64);
    }
    for v in wanted.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    let m = matcher(table)?;
    let jobs: Vec<(usize, Vec<u64>)> = wanted.into_iter().collect();
    let results: Vec<(usize, Vec<RecordBatch>)> = futures::stream::iter(jobs.into_iter().map(|(i, pos)| {
        let e = &entries[i];
        let m = &m;
        let ts = &table_schema;
        let cols = &cols;
        async move {
            let b = read_file(e, m, ts, cols, Rows::At(&pos), pos.len().max(1)).await?;
            Ok::<_, LakeError>((i, b))
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<_>>()?;
    // (file index, row) -> (batch, index in batch)
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut at: HashMap<(usize, i64), (usize, usize)> = HashMap::new();
    for (i, bs) in results {
        for b in bs {
            let rows = b.column(b.num_columns() - 1).as_primitive::<arrow::datatypes::Int64Type>().clone();
            let bi = batches.len();
            for (j, r) in rows.values().iter().enumerate() {
                at.insert((i, *r), (bi, j));
            }
            batches.push(b);
        }
    }
    let mut picks = Vec::with_capacity(files.len());
    for (f, &r) in files.iter().zip(rows) {
        let i = by_path[f.as_str()];
        picks.push(
            *at.get(&(i, r))
                .ok_or_else(|| LakeError::Internal(format!("row {r} of '{f}' was selected but not returned")))?,
        );
    }
    if picks.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let mut out_cols = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
        out_cols.push(arrow::compute::interleave(&arrays, &picks)?);
    }
    Ok(RecordBatch::try_new(schema, out_cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_selection_skips_deleted() {
        let d = Deleted::from_positions(vec![0, 3, 4, 9]);
        let (ranges, sel) = selection(&Rows::Live, &d, 10);
        assert_eq!(ranges, vec![1..3, 5..9]);
        assert_eq!(sel.row_count(), 6);
    }

    #[test]
    fn live_part_selection_clips_to_its_range() {
        let d = Deleted::from_positions(vec![0, 3, 4, 9]);
        let (ranges, sel) = selection(&Rows::LiveIn(2..6), &d, 10);
        assert_eq!(ranges, vec![2..3, 5..6]);
        assert_eq!(sel.row_count(), 2);
        let (ranges, _) = selection(&Rows::LiveIn(8..100), &d, 10);
        assert_eq!(ranges, vec![8..9]);
    }

    #[test]
    fn positions_selection_merges_runs() {
        let (ranges, sel) = selection(&Rows::At(&[2, 3, 4, 7]), &Deleted::None, 8);
        assert_eq!(ranges, vec![2..5, 7..8]);
        assert_eq!(sel.row_count(), 4);
    }
}
