//! The result table of a search: `query`, `rank`, `distance`, `_file`, `_row`, the key
//! column, and requested table columns fetched from the lake by row address.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};

use crate::error::{LakeError, Result};
use crate::index::manifest::Manifest;
use crate::index::merge::SourceHit;
use crate::index::sources::SearchSource;
use crate::lake::table::LakeTable;
use crate::read::rowaddr::take;
use crate::runtime::resolve_threads;

/// Field metadata on `distance` when some distances are a quantized kind's estimates (codes
/// without re-ranking), not exact distances to the stored vectors.
pub const ESTIMATED_KEY: &str = "lakevec.distance";

/// The first fields of every result (`distance` without, then with [`ESTIMATED_KEY`]), built
/// once: results share them, so comparing two results' schemas (pyarrow schema cache in
/// `python::out`) stops at pointer equality.
static HIT_FIELDS: LazyLock<[Vec<FieldRef>; 2]> = LazyLock::new(|| {
    let fields = |distance: Field| {
        vec![
            Arc::new(Field::new("query", DataType::Int64, false)),
            Arc::new(Field::new("rank", DataType::Int32, false)),
            Arc::new(distance),
            Arc::new(Field::new("_file", DataType::Utf8, false)),
            Arc::new(Field::new("_row", DataType::Int64, false)),
        ]
    };
    let distance = Field::new("distance", DataType::Float32, false);
    let estimated = distance.clone().with_metadata([(ESTIMATED_KEY.to_string(), "estimated".to_string())].into());
    [fields(distance), fields(estimated)]
});

/// Build the result batch of `hits` (per query, merged) over `srcs`; `estimated`: some
/// distances are estimates (`distance` then carries [`ESTIMATED_KEY`] = "estimated").
#[allow(clippy::too_many_arguments)]
pub(crate) async fn assemble(
    srcs: &[SearchSource],
    hits: &[Vec<SourceHit>],
    m: &Manifest,
    table: Option<&LakeTable>,
    columns: Option<&[String]>,
    threads: Option<usize>,
    estimated: bool,
) -> Result<RecordBatch> {
    let total: usize = hits.iter().map(|h| h.len()).sum();
    let (mut qcol, mut rank, mut dist, mut files, mut rows) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let mut key_ix: Vec<(usize, usize)> = Vec::with_capacity(total);
    for (qi, hs) in hits.iter().enumerate() {
        for (r, &(d, si, node)) in hs.iter().enumerate() {
            let seg = srcs[si].segment.seg();
            qcol.push(qi as i64);
            rank.push(r as i32 + 1);
            dist.push(d);
            files.push(seg.files[seg.file_of(node)].as_str());
            rows.push(seg.rows[node as usize] as i64);
            key_ix.push((si, node as usize));
        }
    }
    let mut fields: Vec<FieldRef> = HIT_FIELDS[usize::from(estimated)].to_vec();
    let file_array = StringArray::from(files);
    let row_array = Int64Array::from(rows);
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(qcol)),
        Arc::new(Int32Array::from(rank)),
        Arc::new(Float32Array::from(dist)),
        Arc::new(file_array.clone()),
        Arc::new(row_array.clone()),
    ];
    if let Some(key) = &m.key {
        let arrays: Vec<&dyn Array> = srcs
            .iter()
            .map(|s| {
                s.segment
                    .seg()
                    .keys
                    .as_deref()
                    .ok_or_else(|| LakeError::CorruptIndex("a segment lacks its keys".into()))
            })
            .collect::<Result<_>>()?;
        let k = crate::index::segment::interleave_keys(&arrays, &key_ix)?;
        fields.push(Arc::new(Field::new(key, k.data_type().clone(), true)));
        cols.push(k);
    }
    if let (Some(columns), Some(table)) = (columns, table) {
        let wanted: Vec<String> = columns.iter().filter(|c| !fields.iter().any(|f| f.name() == *c)).cloned().collect();
        if !wanted.is_empty() {
            let concurrency = resolve_threads(threads)? * 2;
            let file_strings: Vec<String> = file_array.iter().map(|s| s.unwrap_or_default().to_string()).collect();
            let fetched = take(table, &file_strings, row_array.values(), Some(&wanted), concurrency).await?;
            for c in &wanted {
                let i = fetched.schema().index_of(c)?;
                fields.push(fetched.schema().fields()[i].clone());
                cols.push(fetched.column(i).clone());
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}
