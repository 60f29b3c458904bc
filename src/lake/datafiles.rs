//! The live data files of a table version, format-neutral: what `Table.files()` returns and
//! what row addresses, `take()` and the vector index build on.
//!
//! A row's address is (`_file`, `_row`): the file's `path` as listed here and the row's 0-based
//! position in that Parquet file, the position Delta deletion vectors and Iceberg position
//! deletes use.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::Result;

/// Rows of a data file removed by the table's deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// No deletes apply.
    None,
    /// Sorted, unique 0-based positions.
    Rows(Arc<Vec<u64>>),
    /// Deleted by value (Iceberg equality deletes): positions unknown without a scan.
    ByValue { delete_files: usize },
}

impl Deleted {
    pub fn from_positions(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Deleted::None;
        }
        v.sort_unstable();
        v.dedup();
        Deleted::Rows(Arc::new(v))
    }
    pub fn count(&self) -> Option<u64> {
        match self {
            Deleted::None => Some(0),
            Deleted::Rows(r) => Some(r.len() as u64),
            Deleted::ByValue { .. } => None,
        }
    }
    pub fn positions(&self) -> &[u64] {
        match self {
            Deleted::Rows(r) => r.as_slice(),
            _ => &[],
        }
    }
    pub fn contains(&self, row: u64) -> bool {
        self.positions().binary_search(&row).is_ok()
    }
}

/// One live data file.
#[derive(Clone, Debug)]
pub struct DataFileEntry {
    /// The file as users see it: relative to the table root when it lies under it.
    pub path: String,
    pub store: Arc<dyn ObjectStore>,
    /// The object to read.
    pub object: Path,
    pub size: u64,
    /// The object's version as the listing gives it (ETag, else last-modified), for tables
    /// whose files can be rewritten in place (Parquet folders); `None` for Delta and Iceberg,
    /// whose data files are immutable.
    pub tag: Option<String>,
    /// Rows in the file before deletes (`None` when the table metadata does not say).
    pub num_records: Option<u64>,
    /// Partition values as written in the table metadata (raw strings, `None` = null).
    pub partition: Vec<(String, Option<String>)>,
    pub deleted: Deleted,
}

impl DataFileEntry {
    /// Live rows, when known.
    pub fn live_rows(&self) -> Option<u64> {
        Some(self.num_records?.saturating_sub(self.deleted.count()?))
    }
    fn partition_json(&self) -> String {
        let m: BTreeMap<&str, &Option<String>> = self.partition.iter().map(|(k, v)| (k.as_str(), v)).collect();
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// `Table.files()`: one row per live data file.
///
/// Columns: `path` (utf8, relative to the table root when possible), `size` (int64, bytes),
/// `num_records` (int64, rows before deletes, null if unknown), `num_deleted` (int64, null for
/// equality deletes), `deleted_rows` (list<int64>, sorted positions; null for equality
/// deletes), `partition` (utf8, JSON object of raw partition values).
pub fn files_batch(entries: &[DataFileEntry]) -> Result<RecordBatch> {
    let item = Arc::new(Field::new("item", DataType::Int64, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("num_records", DataType::Int64, true),
        Field::new("num_deleted", DataType::Int64, true),
        Field::new("deleted_rows", DataType::List(item.clone()), true),
        Field::new("partition", DataType::Utf8, false),
    ]));
    let mut lists = ListBuilder::new(Int64Builder::new()).with_field(item);
    for e in entries {
        match &e.deleted {
            Deleted::ByValue { .. } => lists.append_null(),
            d => {
                lists.values().append_slice(&d.positions().iter().map(|&p| p as i64).collect::<Vec<_>>());
                lists.append(true);
            }
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.path.as_str()))),
        Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.size as i64))),
        Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.num_records.map(|n| n as i64)))),
        Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.deleted.count().map(|n| n as i64)))),
        Arc::new(lists.finish()),
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.partition_json()))),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// `path` relative to `root` (both full URLs or both store paths) when it lies under it.
pub fn relative_to(root: &str, path: &str) -> String {
    let root = root.trim_end_matches('/');
    match path.strip_prefix(root) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/').to_string(),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_positions_are_sorted_and_unique() {
        let d = Deleted::from_positions(vec![5, 1, 5, 3]);
        assert_eq!(d.positions(), &[1, 3, 5]);
        assert_eq!(d.count(), Some(3));
        assert!(d.contains(3) && !d.contains(2));
        assert_eq!(Deleted::from_positions(vec![]), Deleted::None);
        assert_eq!(Deleted::ByValue { delete_files: 1 }.count(), None);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("s3://b/t/", "s3://b/t/data/x.parquet"), "data/x.parquet");
        assert_eq!(relative_to("s3://b/t", "s3://b/t2/x.parquet"), "s3://b/t2/x.parquet");
    }
}
