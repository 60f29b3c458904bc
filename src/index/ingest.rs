//! Reading a vector column (and key column) from chosen data files of a table into a
//! [`Segment`] without an index structure (searchable exactly as it is): the lake-reading
//! half of build, refresh and stale search.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{concat, filter};
use futures::StreamExt;

use crate::error::{LakeError, Result};
use crate::index::kind::SegmentIndex;
use crate::index::manifest::Manifest;
use crate::index::segment::Segment;
use crate::lake::datafiles::Deleted;
use crate::lake::table::LakeTable;
use crate::read::rowaddr::AddressScan;
use crate::runtime::CancelToken;
use crate::vector::column::{vector_field_dim, OnInvalid, VectorSink};
use crate::vector::distance::Metric;

/// What to read.
pub struct ReadSpec<'a> {
    pub column: &'a str,
    pub key: Option<&'a str>,
    pub metric: Metric,
    pub on_invalid: OnInvalid,
    /// Expected dimension (an existing index's), if any.
    pub dim: Option<usize>,
    pub filter: Option<&'a str>,
    pub concurrency: usize,
    /// Rows expected (0: unknown): the vector buffer is sized for them once, not grown by
    /// doubling (which holds up to twice the vectors while it copies).
    pub expected_rows: u64,
}

impl<'a> ReadSpec<'a> {
    /// Reading more rows of an existing index's column (its key, metric, rule for invalid
    /// rows and dimension), `concurrency` files at a time: refresh, and the unindexed files a
    /// stale search reads.
    pub fn for_index(m: &'a Manifest, concurrency: usize) -> Self {
        ReadSpec {
            column: &m.column,
            key: m.key.as_deref(),
            metric: m.metric,
            on_invalid: m.on_invalid,
            dim: Some(m.dim),
            filter: None,
            concurrency,
            expected_rows: 0,
        }
    }
}

/// Check that `column` (and `key`) exist in `table` and `column` is a vector column.
pub fn check_vector_columns(table: &LakeTable, column: &str, key: Option<&str>) -> Result<Option<usize>> {
    let schema = table.schema();
    let field = schema.field_with_name(column).map_err(|_| {
        LakeError::Schema(format!(
            "column '{column}' not found in table '{}' (columns: {})",
            table.uri,
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let dim = vector_field_dim(field)?;
    if let Some(k) = key {
        if schema.field_with_name(k).is_err() {
            return Err(LakeError::Schema(format!("key column '{k}' not found in table '{}'", table.uri)));
        }
        if k == column {
            return Err(LakeError::InvalidArgument("the key column cannot be the vector column".into()));
        }
    }
    Ok(dim)
}

/// Read the live rows of the table's data files `files` (indices into `table.entries()`),
/// in that order, into a segment (empty graph). Rows failing `spec.filter` are left out;
/// invalid vectors are an error or skipped (counted in the returned `usize`). `progress`
/// counts rows read.
pub async fn read_segment(
    table: &LakeTable,
    files: &[usize],
    spec: &ReadSpec<'_>,
    cancel: &CancelToken,
    progress: &AtomicUsize,
) -> Result<(Segment, usize)> {
    let mut cols = vec![spec.column.to_string()];
    if let Some(k) = spec.key {
        cols.push(k.to_string());
    }
    let scan = Arc::new(AddressScan::new(table, Some(&cols), spec.filter, 8192).await?);
    let entries = scan.entries.clone();
    for &i in files {
        if let Deleted::ByValue { .. } = entries[i].deleted {
            return Err(LakeError::Unsupported(format!(
                "data file '{}' of '{}' has Iceberg equality deletes: an index needs deleted rows by position; \
                 compact the table (rewrite its data files) first",
                entries[i].path, table.uri
            )));
        }
    }
    let mut sink = VectorSink::new(spec.column, spec.dim, spec.on_invalid);
    sink.zero_invalid = spec.metric == Metric::Cosine;
    if let (Some(d), true) = (spec.dim, spec.expected_rows > 0) {
        sink.data.reserve_exact((spec.expected_rows as usize).saturating_mul(d));
    }
    let mut out_files = Vec::with_capacity(files.len());
    let mut sizes = Vec::with_capacity(files.len());
    let mut tags = Vec::with_capacity(files.len());
    let mut fstart = vec![0u32];
    let mut rows: Vec<u64> = Vec::new();
    let mut keys: Vec<ArrayRef> = Vec::new();
    let mut skipped = 0usize;
    let s2 = scan.clone();
    let mut stream = futures::stream::iter(files.to_vec())
        .map(move |i| {
            let s = s2.clone();
            async move { (i, s.read(i).await) }
        })
        .buffered(spec.concurrency.max(1));
    while let Some((i, batches)) = stream.next().await {
        cancel.check()?;
        let e = &entries[i];
        let batches = batches.map_err(|err| err.context(format!("reading data file '{}'", e.path)))?;
        for b in batches {
            let row_col = b.column(b.num_columns() - 1).as_primitive::<arrow::datatypes::Int64Type>().clone();
            let path = e.path.clone();
            let where_row = |j: usize| format!("data file '{}' row {}", path, row_col.value(j));
            let kept = sink.append(b.column(0), &where_row)?;
            let mask = BooleanArray::from(kept.clone());
            for (j, k) in kept.iter().enumerate() {
                if *k {
                    rows.push(row_col.value(j) as u64);
                } else {
                    skipped += 1;
                }
            }
            if spec.key.is_some() {
                keys.push(filter(b.column(1), &mask)?);
            }
            progress.fetch_add(b.num_rows(), Ordering::Relaxed);
        }
        if rows.len() > u32::MAX as usize - 1 {
            return Err(LakeError::InvalidArgument("an index segment holds at most 2^32 - 2 rows".into()));
        }
        out_files.push(e.path.clone());
        sizes.push(e.size);
        tags.push(e.tag.clone());
        fstart.push(rows.len() as u32);
    }
    let dim = sink.dim.or(spec.dim).unwrap_or(0);
    let mut vectors = std::mem::take(&mut sink.data);
    if dim > 0 {
        spec.metric
            .prepare(&mut vectors, dim)
            .map_err(|i| LakeError::Vector(format!("column '{}': row {i} cannot be normalised", spec.column)))?;
    }
    let keys = match spec.key {
        Some(_) if keys.is_empty() => {
            let t = table.schema().field_with_name(spec.key.unwrap_or_default())?.data_type().clone();
            Some(arrow::array::new_empty_array(&t))
        }
        Some(_) => {
            let refs: Vec<&dyn Array> = keys.iter().map(|a| a.as_ref()).collect();
            Some(concat(&refs)?)
        }
        None => None,
    };
    let seg = Segment {
        dim,
        files: out_files,
        file_sizes: sizes,
        file_tags: tags,
        fstart,
        rows: rows.into(),
        vectors: vectors.into(),
        index: SegmentIndex::Flat,
        keys,
    };
    Ok((seg, skipped))
}
