//! Which indexed rows are still live in a table version: files kept (same path, size and,
//! where the listing gives one, version tag), files removed or rewritten, rows deleted since
//! (deletion vectors, position deletes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::segment::Segment;
use crate::index::state::LoadedSegment;
use crate::lake::datafiles::{DataFileEntry, Deleted};

/// Whether a file indexed with `tag` is the listed `e` (tags differ only when both are known:
/// a Parquet file rewritten in place, even at the same size).
pub(crate) fn same_version(tag: Option<&str>, e: &DataFileEntry) -> bool {
    match (tag, e.tag.as_deref()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The live entry of segment file `f`, if the table version still has it (same path, size
/// and version tag; a Parquet file rewritten in place is a different file).
pub fn live_entry<'a>(
    seg: &Segment,
    f: usize,
    by_path: &HashMap<&str, &'a DataFileEntry>,
) -> Option<&'a DataFileEntry> {
    let tag = seg.file_tags.get(f).and_then(|t| t.as_deref());
    by_path.get(seg.files[f].as_str()).copied().filter(|e| e.size == seg.file_sizes[f] && same_version(tag, e))
}

/// Indices of `entries` (a table version's live files) that no segment holds.
pub fn missing_files(segments: &[Arc<LoadedSegment>], entries: &[DataFileEntry]) -> Vec<usize> {
    let mut indexed: HashMap<(&str, u64), HashSet<Option<&str>>> = HashMap::new();
    for s in segments {
        for (f, path) in s.seg.files.iter().enumerate() {
            let tag = s.seg.file_tags.get(f).and_then(|t| t.as_deref());
            indexed.entry((path.as_str(), s.seg.file_sizes[f])).or_default().insert(tag);
        }
    }
    (0..entries.len())
        .filter(|&i| {
            let e = &entries[i];
            !indexed.get(&(e.path.as_str(), e.size)).is_some_and(|tags| tags.iter().any(|t| same_version(*t, e)))
        })
        .collect()
}

/// Nodes of `seg` deleted in a table version with live files `by_path`.
/// An indexed file with Iceberg equality deletes is `Unsupported` (its deleted positions
/// are unknown without a scan).
pub fn deleted_nodes(seg: &Segment, by_path: &HashMap<&str, &DataFileEntry>) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for (f, path) in seg.files.iter().enumerate() {
        let (a, b) = (seg.fstart[f] as usize, seg.fstart[f + 1] as usize);
        match live_entry(seg, f, by_path) {
            Some(e) => {
                if matches!(e.deleted, Deleted::ByValue { .. }) {
                    return Err(LakeError::Unsupported(format!(
                        "indexed data file '{path}' now has Iceberg equality deletes: the index needs deleted rows \
                         by position; rewrite the table's data files (compaction) and rebuild the index"
                    )));
                }
                for &r in e.deleted.positions() {
                    if let Ok(j) = seg.rows[a..b].binary_search(&r) {
                        out.push((a + j) as u64);
                    }
                }
            }
            None => out.extend((a..b).map(|i| i as u64)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    fn entry(path: &str, size: u64, deleted: Vec<u64>) -> DataFileEntry {
        DataFileEntry {
            path: path.into(),
            store: Arc::new(object_store::memory::InMemory::new()),
            object: Path::from(path),
            size,
            tag: None,
            num_records: Some(10),
            partition: vec![],
            deleted: Deleted::from_positions(deleted),
        }
    }

    #[test]
    fn deleted_positions_removed_files_and_rewrites_become_tombstones() {
        // file a: rows 0, 2, 5 indexed (1, 3, 4 were invalid and skipped); file b: rows 0..3
        let seg = Segment {
            dim: 1,
            files: vec!["a".into(), "b".into()],
            file_sizes: vec![100, 200],
            file_tags: vec![None, Some("v1".into())],
            fstart: vec![0, 3, 6],
            rows: vec![0, 2, 5, 0, 1, 2].into(),
            vectors: vec![0.0; 6].into(),
            index: crate::index::kind::SegmentIndex::Flat,
            keys: None,
        };
        // deletion vector / position deletes on a: rows 2 and 3 (3 was never indexed)
        let a = entry("a", 100, vec![2, 3]);
        let b = entry("b", 200, vec![]);
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1]);
        // b removed from the table: all its nodes go
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1, 3, 4, 5]);
        // b rewritten in place (Parquet folder, same path, new size): all its nodes go too
        let b2 = entry("b", 201, vec![]);
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b2)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1, 3, 4, 5]);
        // ... or at the same size: its version tag (ETag / last-modified) tells
        let b3 = DataFileEntry { tag: Some("v2".into()), ..entry("b", 200, vec![]) };
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b3)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1, 3, 4, 5]);
        let b4 = DataFileEntry { tag: Some("v1".into()), ..entry("b", 200, vec![]) };
        let by_path: HashMap<&str, &DataFileEntry> = [("a", &a), ("b", &b4)].into_iter().collect();
        assert_eq!(deleted_nodes(&seg, &by_path).unwrap(), vec![1]);
    }
}
