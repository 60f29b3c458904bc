//! Reading a [`LakeTable`] into Arrow: projection, SQL filter, parallel decode, file order.
//!
//! The plan is a DataFusion scan of the table's provider. Its output partitions are
//! contiguous, ordered slices of the table's files (byte-range splits, no round-robin
//! repartitioning), so concatenating partition outputs in order yields rows in file order,
//! like `pyarrow.parquet.read_table`. `collect` drives all partitions in parallel;
//! [`OrderedReader`] streams them in order with a bounded number of buffered batches per
//! partition, so memory stays bounded however large the table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use datafusion::datasource::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::{execute_stream_partitioned, ExecutionPlan};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::{LakeError, Result};
use crate::lake::table::LakeTable;
use crate::read::columns::{batch_size_for, check_projection, parse_filter};
use crate::runtime::{resolve_threads, runtime};

/// Decoded bytes a streaming scan may buffer per partition.
const READ_AHEAD_BYTES: u64 = 16 * 1024 * 1024;

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Columns to return, in this order (`None`: all).
    pub columns: Option<Vec<String>>,
    /// A SQL boolean expression over the table's columns.
    pub filter: Option<String>,
    /// Maximum rows per batch.
    pub batch_size: Option<usize>,
    /// Decoding parallelism (default: lakevec's thread count).
    pub num_threads: Option<usize>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
    /// Add `_file` and `_row` (see `rowaddr`).
    pub with_row_address: bool,
}

/// Build the DataFrame for a scan with `partitions_per_thread` output partitions per thread.
pub async fn plan(
    table: &LakeTable,
    opts: &ScanOptions,
    partitions_per_thread: usize,
) -> Result<(SessionContext, DataFrame)> {
    let threads = resolve_threads(opts.num_threads)?;
    if opts.batch_size == Some(0) {
        return Err(LakeError::InvalidArgument("batch_size must be positive".into()));
    }
    let batch_size = opts.batch_size.unwrap_or_else(|| batch_size_for(table.row_bytes(opts.columns.as_deref())));
    let ctx = LakeTable::session(&[table], threads * partitions_per_thread.max(1), Some(batch_size)).await?;
    let mut df = ctx.read_table(table.provider().await?)?;
    if let Some(cols) = &opts.columns {
        check_projection(&table.schema(), cols, &format!("table '{}'", table.uri))?;
    }
    if let Some(f) = &opts.filter {
        let expr = parse_filter(&ctx, df.schema(), f)?;
        df = df.filter(expr).map_err(|e| LakeError::Filter(format!("invalid filter '{f}': {e}")))?;
    }
    if let Some(cols) = &opts.columns {
        let refs: Vec<&str> = cols.iter().map(|s| s.as_str()).collect();
        df = df.select_columns(&refs)?;
    }
    if let Some(n) = opts.limit {
        df = df.limit(0, Some(n))?;
    }
    Ok((ctx, df))
}

async fn partition_streams(ctx: &SessionContext, df: DataFrame) -> Result<(SchemaRef, Vec<SendableRecordBatchStream>)> {
    let plan: Arc<dyn ExecutionPlan> = df.create_physical_plan().await?;
    let schema = plan.schema();
    let streams = execute_stream_partitioned(plan, ctx.task_ctx())?;
    Ok((schema, streams))
}

/// Read everything, decoding partitions in parallel; batches in file order.
pub async fn collect(table: &LakeTable, opts: &ScanOptions) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if opts.with_row_address {
        let (scan, threads) = address_scan(table, opts).await?;
        let schema = scan.schema.clone();
        let mut out = Vec::new();
        let mut left = opts.limit.unwrap_or(usize::MAX);
        let mut s = std::pin::pin!(scan.stream(threads));
        while left > 0 {
            let Some(group) = s.next().await else { break };
            out.extend(group?.into_iter().map_while(|b| within_limit(b, &mut left)));
        }
        return Ok((schema, out));
    }
    let (ctx, df) = plan(table, opts, 1).await?;
    collect_df(&ctx, df).await
}

/// `b` cut to the `left` rows still wanted (`None` once none are), counting them off.
fn within_limit(b: RecordBatch, left: &mut usize) -> Option<RecordBatch> {
    if *left == 0 {
        return None;
    }
    let b = if b.num_rows() > *left { b.slice(0, *left) } else { b };
    *left -= b.num_rows();
    Some(b)
}

async fn address_scan(
    table: &LakeTable,
    opts: &ScanOptions,
) -> Result<(Arc<crate::read::rowaddr::AddressScan>, usize)> {
    let threads = resolve_threads(opts.num_threads)?;
    if opts.batch_size == Some(0) {
        return Err(LakeError::InvalidArgument("batch_size must be positive".into()));
    }
    let batch_size = opts.batch_size.unwrap_or_else(|| batch_size_for(table.row_bytes(opts.columns.as_deref())));
    let scan =
        crate::read::rowaddr::AddressScan::new(table, opts.columns.as_deref(), opts.filter.as_deref(), batch_size)
            .await?;
    Ok((Arc::new(scan), threads))
}

/// Collect a DataFrame's partitions in parallel, concatenated in partition order.
async fn collect_df(ctx: &SessionContext, df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, streams) = partition_streams(ctx, df).await?;
    let mut set = JoinSet::new();
    for (i, mut s) in streams.into_iter().enumerate() {
        set.spawn(async move {
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                out.push(b.map_err(LakeError::from)?);
            }
            Ok::<_, LakeError>((i, out))
        });
    }
    let mut parts: Vec<(usize, Vec<RecordBatch>)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        let r = joined.map_err(|e| LakeError::Internal(format!("scan task failed: {e}")))?;
        parts.push(r?);
    }
    parts.sort_by_key(|(i, _)| *i);
    let batches = parts.into_iter().flat_map(|(_, b)| b).filter(|b| b.num_rows() > 0).collect();
    Ok((schema, batches))
}

/// Output partitions per thread of a streaming scan: finer ordered slices let the threads
/// decode ahead of the consumer instead of waiting behind one long partition.
const STREAM_PARTITIONS_PER_THREAD: usize = 2;

/// A blocking `RecordBatchReader` over a scan: partitions run concurrently on the tokio
/// runtime, each with a bounded number of decoded batches waiting (about 16 MiB, at least
/// 2 batches), and are yielded in order. Dropping the reader stops the scan.
pub struct OrderedReader {
    schema: SchemaRef,
    receivers: Vec<mpsc::Receiver<Result<RecordBatch>>>,
    current: usize,
    _tasks: JoinSet<()>,
    rt: Arc<tokio::runtime::Runtime>,
    done: bool,
}

impl OrderedReader {
    /// Plan and start the scan (call from outside the runtime).
    pub async fn start(table: &LakeTable, opts: &ScanOptions) -> Result<Self> {
        if opts.with_row_address {
            let (scan, threads) = address_scan(table, opts).await?;
            let schema = scan.schema.clone();
            return Self::from_stream(schema, scan.stream(threads), 2, opts.limit);
        }
        let (ctx, df) = plan(table, opts, STREAM_PARTITIONS_PER_THREAD).await?;
        let batch_rows = ctx.copied_config().batch_size() as u64;
        let row_bytes = table.row_bytes(opts.columns.as_deref());
        let read_ahead = (READ_AHEAD_BYTES / (batch_rows * row_bytes).max(1)).clamp(2, 16) as usize;
        Self::from_df(&ctx, df, read_ahead).await
    }

    pub async fn from_df(ctx: &SessionContext, df: DataFrame, read_ahead: usize) -> Result<Self> {
        let (schema, streams) = partition_streams(ctx, df).await?;
        let mut tasks = JoinSet::new();
        let mut receivers = Vec::with_capacity(streams.len());
        for mut s in streams {
            let (tx, rx) = mpsc::channel(read_ahead.max(1));
            receivers.push(rx);
            tasks.spawn(async move {
                while let Some(b) = s.next().await {
                    let item = b.map_err(LakeError::from);
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        break;
                    }
                }
            });
        }
        Ok(OrderedReader { schema, receivers, current: 0, _tasks: tasks, rt: runtime()?, done: false })
    }

    /// Stream the batches of `stream` (file-sized groups, in order) through one bounded channel.
    pub fn from_stream<S>(schema: SchemaRef, stream: S, read_ahead: usize, limit: Option<usize>) -> Result<Self>
    where
        S: futures::Stream<Item = Result<Vec<RecordBatch>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(read_ahead.max(1));
        let mut tasks = JoinSet::new();
        tasks.spawn_on(
            async move {
                let mut stream = std::pin::pin!(stream);
                let mut left = limit.unwrap_or(usize::MAX);
                while let Some(group) = stream.next().await {
                    let batches = match group {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    for b in batches {
                        let Some(b) = within_limit(b, &mut left) else { return };
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                }
            },
            runtime()?.handle(),
        );
        Ok(OrderedReader { schema, receivers: vec![rx], current: 0, _tasks: tasks, rt: runtime()?, done: false })
    }

    /// The next batch, waiting for it asynchronously.
    pub async fn next_async(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        while self.current < self.receivers.len() {
            match self.receivers[self.current].recv().await {
                Some(Ok(b)) if b.num_rows() == 0 => continue,
                Some(Ok(b)) => return Some(Ok(b)),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => self.current += 1,
            }
        }
        self.done = true;
        None
    }
}

impl Iterator for OrderedReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rt = self.rt.clone();
        let item = if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside the runtime: block_in_place avoids stalling a worker.
            tokio::task::block_in_place(|| rt.block_on(self.next_async()))
        } else {
            rt.block_on(self.next_async())
        };
        item.map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for OrderedReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Run a SQL query over named lake tables and other named providers (in-memory Arrow data);
/// returns the result batches.
pub async fn sql(
    query: &str,
    tables: &[(String, LakeTable)],
    others: Vec<(String, Arc<dyn TableProvider>)>,
    num_threads: Option<usize>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let threads = resolve_threads(num_threads)?;
    let ctx = LakeTable::session(&tables.iter().map(|(_, t)| t).collect::<Vec<_>>(), threads, None).await?;
    let mut providers = Vec::with_capacity(tables.len() + others.len());
    for (name, t) in tables {
        providers.push((name.clone(), t.provider().await?));
    }
    for (name, p) in providers.into_iter().chain(others) {
        ctx.register_table(name.as_str(), p)
            .map_err(|e| LakeError::InvalidArgument(format!("cannot register table '{name}': {e}")))?;
    }
    let df = ctx.sql(query).await.map_err(|e| match LakeError::from(e) {
        LakeError::Internal(m) | LakeError::Sql(m) | LakeError::Schema(m) => {
            LakeError::Sql(format!("SQL error in query: {m}"))
        }
        other => other,
    })?;
    collect_df(&ctx, df).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int64Array, StringArray};
    use arrow::datatypes::DataType;
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    fn write_file(path: &std::path::Path, start: i64, n: i64) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float32, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (start..start + n).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Float32Array::from_iter_values(ids.iter().map(|i| *i as f32 * 0.5))),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("r{}", i % 7)))),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(path).unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(1000)).build();
        let mut w = ArrowWriter::try_new(f, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn make_table() -> (tempfile::TempDir, LakeTable) {
        let dir = tempfile::tempdir().unwrap();
        for (i, part) in ["a", "b", "c"].iter().enumerate() {
            let d = dir.path().join(format!("p={part}"));
            std::fs::create_dir_all(&d).unwrap();
            write_file(&d.join("f.parquet"), i as i64 * 5000, 5000);
        }
        let rt = runtime().unwrap();
        let t = rt
            .block_on(LakeTable::open(dir.path().to_str().unwrap(), Default::default(), None, Default::default()))
            .unwrap();
        (dir, t)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
                c.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn reads_in_file_order_with_partitions() {
        let (_d, t) = make_table();
        let rt = runtime().unwrap();
        assert_eq!(rt.block_on(t.num_rows()).unwrap(), 15000);
        assert_eq!(t.schema().field(3).name(), "p");
        let opts = ScanOptions { num_threads: Some(3), batch_size: Some(700), ..Default::default() };
        let (_, batches) = rt.block_on(collect(&t, &opts)).unwrap();
        assert_eq!(ids(&batches), (0..15000).collect::<Vec<_>>());
        assert_eq!(t.cached_footers(), 3, "the read left its 3 footers in the table's cache");
        let reader = rt.block_on(OrderedReader::start(&t, &opts)).unwrap();
        let streamed: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert!(streamed.iter().all(|b| b.num_rows() <= 700));
        assert_eq!(ids(&streamed), (0..15000).collect::<Vec<_>>());
    }

    #[test]
    fn filter_and_projection() {
        let (_d, t) = make_table();
        let rt = runtime().unwrap();
        let opts = ScanOptions {
            columns: Some(vec!["p".into(), "id".into()]),
            filter: Some("p = 'b' AND id % 2 = 0".into()),
            ..Default::default()
        };
        let (schema, batches) = rt.block_on(collect(&t, &opts)).unwrap();
        assert_eq!(schema.field(0).name(), "p");
        assert_eq!(ids(&batches), (5000..10000).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    }

    #[test]
    fn bad_filters_and_columns() {
        let (_d, t) = make_table();
        let rt = runtime().unwrap();
        let e = rt
            .block_on(collect(&t, &ScanOptions { filter: Some("nope > 1".into()), ..Default::default() }))
            .unwrap_err();
        assert_eq!(e.kind(), "Filter");
        assert!(e.to_string().contains("nope"), "{e}");
        let e =
            rt.block_on(collect(&t, &ScanOptions { filter: Some("id >".into()), ..Default::default() })).unwrap_err();
        assert_eq!(e.kind(), "Filter");
        let e =
            rt.block_on(collect(&t, &ScanOptions { filter: Some("id + 1".into()), ..Default::default() })).unwrap_err();
        assert!(e.to_string().contains("not boolean"), "{e}");
        let e = rt
            .block_on(collect(&t, &ScanOptions { columns: Some(vec!["zz".into()]), ..Default::default() }))
            .unwrap_err();
        assert_eq!(e.kind(), "Schema");
        assert!(e.to_string().contains("'zz'"));
    }

    #[test]
    fn sql_over_tables() {
        let (_d, t) = make_table();
        let rt = runtime().unwrap();
        let (_, b) = rt
            .block_on(sql("SELECT p, count(*) AS n FROM t GROUP BY p ORDER BY p", &[("t".into(), t)], vec![], None))
            .unwrap();
        let n: Vec<i64> = b
            .iter()
            .flat_map(|b| b.column(1).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(n, vec![5000, 5000, 5000]);
    }
}
