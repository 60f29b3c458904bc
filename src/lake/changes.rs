//! `Table.changes(from_version, to_version)`: which data files differ between two versions.
//!
//! Computed as a diff of the two versions' live-file sets (with their deletes), the same for
//! Delta (where it equals replaying the log's add/remove actions between the versions, and
//! still works after log cleanup as long as both versions can be loaded) and Iceberg (a
//! snapshot diff of data and delete manifests). A Delta deletion-vector update or a new Iceberg
//! position delete file shows up as `deletes_changed` with the newly deleted positions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{LakeError, Result};
use crate::lake::datafiles::{DataFileEntry, Deleted};
use crate::lake::table::LakeTable;

/// One changed file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    pub path: String,
    /// `added`, `removed` or `deletes_changed`.
    pub change: &'static str,
    pub num_records: Option<u64>,
    /// Positions deleted in the newer version but not in the older (for `deletes_changed`), or
    /// all deleted positions of an added file.
    pub newly_deleted: Option<Vec<u64>>,
}

/// Diff two sets of live files (`old` -> `new`), in `new`'s file order then `old`'s.
pub fn diff(old: &[DataFileEntry], new: &[DataFileEntry]) -> Vec<FileChange> {
    let old_by: HashMap<&str, &DataFileEntry> = old.iter().map(|e| (e.path.as_str(), e)).collect();
    let new_by: HashMap<&str, &DataFileEntry> = new.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut out = Vec::new();
    for e in new {
        let newly = |d: &Deleted, before: &Deleted| -> Option<Vec<u64>> {
            match (d, before) {
                (Deleted::ByValue { .. }, _) | (_, Deleted::ByValue { .. }) => None,
                _ => Some(d.positions().iter().copied().filter(|p| !before.contains(*p)).collect()),
            }
        };
        match old_by.get(e.path.as_str()) {
            None => out.push(FileChange {
                path: e.path.clone(),
                change: "added",
                num_records: e.num_records,
                newly_deleted: newly(&e.deleted, &Deleted::None),
            }),
            Some(o) if o.deleted != e.deleted => out.push(FileChange {
                path: e.path.clone(),
                change: "deletes_changed",
                num_records: e.num_records,
                newly_deleted: newly(&e.deleted, &o.deleted),
            }),
            Some(_) => {}
        }
    }
    for o in old {
        if !new_by.contains_key(o.path.as_str()) {
            out.push(FileChange {
                path: o.path.clone(),
                change: "removed",
                num_records: o.num_records,
                newly_deleted: Some(vec![]),
            });
        }
    }
    out
}

/// The changes from `old` to `new` (two opened versions of one table) as Arrow: `path` (utf8),
/// `change` (utf8: `added` | `removed` | `deletes_changed`), `num_records` (int64),
/// `newly_deleted` (list<int64>; null where equality deletes make positions unknown).
pub async fn changes(old: &LakeTable, new: &LakeTable) -> Result<RecordBatch> {
    if old.format != new.format || old.location != new.location {
        return Err(LakeError::InvalidArgument(format!(
            "changes() compares two versions of one table, got '{}' and '{}'",
            old.uri, new.uri
        )));
    }
    let d = diff(&old.entries().await?, &new.entries().await?);
    let item = Arc::new(Field::new("item", DataType::Int64, false));
    let mut lists = ListBuilder::new(Int64Builder::new()).with_field(item.clone());
    for c in &d {
        match &c.newly_deleted {
            Some(v) => {
                lists.values().append_slice(&v.iter().map(|&p| p as i64).collect::<Vec<_>>());
                lists.append(true);
            }
            None => lists.append_null(),
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
        Field::new("num_records", DataType::Int64, true),
        Field::new("newly_deleted", DataType::List(item), true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(d.iter().map(|c| c.path.as_str()))),
        Arc::new(StringArray::from_iter_values(d.iter().map(|c| c.change))),
        Arc::new(Int64Array::from_iter(d.iter().map(|c| c.num_records.map(|n| n as i64)))),
        Arc::new(lists.finish()),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, deleted: Vec<u64>) -> DataFileEntry {
        DataFileEntry {
            path: path.into(),
            store: Arc::new(object_store::memory::InMemory::new()),
            object: path.into(),
            size: 1,
            tag: None,
            num_records: Some(10),
            partition: vec![],
            deleted: Deleted::from_positions(deleted),
        }
    }

    #[test]
    fn diff_finds_added_removed_and_new_deletes() {
        let old = vec![entry("a", vec![]), entry("b", vec![1]), entry("c", vec![])];
        let new = vec![entry("a", vec![]), entry("b", vec![1, 4]), entry("d", vec![])];
        let d = diff(&old, &new);
        let got: Vec<(&str, &str)> = d.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(got, vec![("b", "deletes_changed"), ("d", "added"), ("c", "removed")]);
        assert_eq!(d[0].newly_deleted, Some(vec![4]));
    }
}
