//! One part of a table read: the unit of work of a distributed read (a Ray Data read task).
//!
//! The driver pins one table version and splits its live data files into parts (whole files,
//! or row ranges of a large file, using the row counts of `Table.files()`); each worker
//! reopens the same version and reads its parts here, in the order given, with deletes
//! applied (deletion vectors, position deletes) and row addresses, exactly the rows the
//! single-process address scan returns for those files.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::error::{LakeError, Result};
use crate::lake::table::LakeTable;
use crate::read::columns::batch_size_for;
use crate::read::rowaddr::{AddressScan, Rows};

/// A data file (its `path` as `Table.files()` lists it) and the row positions to read.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub path: String,
    pub rows: Range<u64>,
}

/// Read `parts` of `table` (columns, then `_file`, `_row`), `concurrency` files at a time,
/// batches in part order. A filter is applied after addresses are assigned.
pub async fn read_parts(
    table: &LakeTable,
    parts: &[Part],
    columns: Option<&[String]>,
    filter: Option<&str>,
    batch_size: Option<usize>,
    concurrency: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if batch_size == Some(0) {
        return Err(LakeError::InvalidArgument("batch_size must be positive".into()));
    }
    let bs = batch_size.unwrap_or_else(|| batch_size_for(table.row_bytes(columns)));
    let scan = Arc::new(AddressScan::new(table, columns, filter, bs).await?);
    let by_path: HashMap<&str, usize> = scan.entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
    let work: Vec<(usize, Range<u64>)> = parts
        .iter()
        .map(|p| match by_path.get(p.path.as_str()) {
            Some(&i) => Ok((i, p.rows.clone())),
            None => Err(LakeError::InvalidArgument(format!(
                "'{}' is not a live data file of table '{}' at version {}",
                p.path,
                table.uri,
                table.version().map_or("(current files)".to_string(), |v| v.to_string())
            ))),
        })
        .collect::<Result<_>>()?;
    let s = scan.clone();
    let mut stream = futures::stream::iter(work)
        .map(move |(i, r)| {
            let s = s.clone();
            async move { s.read_rows(i, Rows::LiveIn(r)).await }
        })
        .buffered(concurrency.max(1));
    let mut out = Vec::new();
    while let Some(batches) = stream.next().await {
        out.extend(batches?);
    }
    Ok((scan.schema.clone(), out))
}
