//! What an index covers (`coverage`) and what it holds (`stats`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::index::handle::VectorIndex;
use crate::index::liveness::{deleted_nodes, live_entry};
use crate::index::manifest::encode;
use crate::lake::datafiles::DataFileEntry;
use crate::lake::pin::TablePin;
use crate::lake::storage::redact;
use crate::vector::bits::Bits;
use crate::vector::distance::kernel_name;

/// Per live data file of the table's latest version: `path`, `status` (`indexed`: every
/// live row is searchable in the index; `stale`: indexed, but rows were deleted since;
/// `missing`: not in the index), `rows` (before deletes), `deleted_rows`, `indexed_rows`
/// (rows the index holds for the file, not counting its tombstones).
pub async fn coverage(idx: &VectorIndex) -> Result<(Option<i64>, RecordBatch)> {
    let st = idx.state();
    let table = idx.open_table(TablePin::default()).await?;
    let entries = table.entries().await?;
    let by_path: HashMap<&str, &DataFileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // path -> (indexed live rows, whether the table's deletes match the index's)
    let mut state: HashMap<&str, (i64, bool)> = HashMap::new();
    let segs = st.segments(&idx.at).await?;
    for s in &segs {
        let now: Vec<u64> = deleted_nodes(&s.seg, &by_path)?;
        let mut now_dead = Bits::new(s.seg.len(), false);
        for d in now {
            now_dead.set(d as usize, true);
        }
        for (f, path) in s.seg.files.iter().enumerate() {
            let (a, b) = (s.seg.fstart[f] as usize, s.seg.fstart[f + 1] as usize);
            let live = (a..b).filter(|&i| s.live.get(i)).count() as i64;
            let same = (a..b).all(|i| s.live.get(i) != now_dead.get(i));
            if live_entry(&s.seg, f, &by_path).is_some() {
                state.insert(path.as_str(), (live, same));
            }
        }
    }
    let mut status = Vec::with_capacity(entries.len());
    let mut indexed = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        match state.get(e.path.as_str()) {
            Some(&(live, true)) => {
                status.push("indexed");
                indexed.push(live);
            }
            Some(&(live, false)) => {
                status.push("stale");
                indexed.push(live);
            }
            None => {
                status.push("missing");
                indexed.push(0);
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("deleted_rows", DataType::Int64, true),
        Field::new("indexed_rows", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.path.as_str()))),
        Arc::new(StringArray::from(status)),
        Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.num_records.map(|n| n as i64)))),
        Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.deleted.count().map(|n| n as i64)))),
        Arc::new(Int64Array::from(indexed)),
    ];
    Ok((table.version(), RecordBatch::try_new(schema, cols)?))
}

/// Index statistics as JSON (see `VectorIndex.stats` in Python for the keys).
pub fn stats(idx: &VectorIndex) -> serde_json::Value {
    let st = idx.state();
    let m = &st.manifest;
    // the manifest as committed (encoded the same way), plus every file it lists
    let manifest_bytes = encode(m).map_or(0, |b| b.len() as u64);
    let sidecar: u64 = manifest_bytes
        + m.segments.iter().map(|s| s.file.bytes + s.tombstones.as_ref().map_or(0, |t| t.bytes)).sum::<u64>();
    let mut params = m.kind.params_json();
    params["on_invalid"] = serde_json::to_value(m.on_invalid).unwrap_or_default();
    serde_json::json!({
        "index_uri": idx.at.uri,
        "name": m.name,
        "version": m.version,
        "table_uri": redact(&m.table_uri),
        "table_format": m.table_format,
        "table_version": m.table_version,
        "column": m.column,
        "key": m.key,
        "metric": m.metric.as_str(),
        "dim": m.dim,
        "rows": st.live_rows(),
        "rows_stored": m.segments.iter().map(|s| s.rows).sum::<u64>(),
        "tombstones": m.segments.iter().map(|s| s.num_tombstones).sum::<u64>(),
        "segments": m.segments.len(),
        "data_files": m.segments.iter().map(|s| s.data_files.len()).sum::<usize>(),
        "sidecar_bytes": sidecar,
        "vector_bytes": m.segments.iter().map(|s| s.rows).sum::<u64>() * m.dim as u64 * 4,
        "segments_loaded": st.loaded_segments().count(),
        "mapped_bytes": st.loaded_segments().map(|s| s.seg.mapped_bytes()).sum::<usize>(),
        "resident_bytes": st.loaded_segments().map(|s| s.seg.resident_bytes()).sum::<usize>(),
        "cache_dir": idx.at.cache.as_ref().filter(|_| !idx.at.loc.is_local()).map(|c| c.dir.display().to_string()),
        "params": params,
        "bytes_per_vector": m.kind.bytes_per_vector(m.dim),
        "recall_estimate": m.recall_estimate,
        "last_commit": m.commit,
        "kernel": kernel_name(),
    })
}
