//! Delta tables that delta-rs 0.32's scan refuses but its kernel reads: a `v2Checkpoint`
//! table (checkpoint manifests and sidecars, written by current Databricks runtimes) loads
//! and lists its files through delta-rs, whose `DeltaScan` then rejects the protocol. Their
//! rows are read here through delta-kernel's own scan (`Scan::execute`: Parquet reads,
//! deletion vectors, column mapping and partition values applied by the kernel), streamed
//! as one DataFusion partition. Filters run above it (no file skipping).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::TableProvider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::table_features::TableFeature;
use delta_kernel::SnapshotRef;
use deltalake::kernel::transaction::{TransactionError, PROTOCOL};
use deltalake::DeltaTable;

use crate::error::{LakeError, Result};

/// Batches waiting between the kernel's reading thread and the consumer.
const READ_AHEAD: usize = 4;

/// Whether `table` needs the kernel's scan: delta-rs refuses it only for `v2Checkpoint`.
/// Other unsupported features stay refused (delta-rs's error names them).
pub fn needs_kernel_scan(table: &DeltaTable) -> bool {
    let Ok(state) = table.snapshot() else { return false };
    match PROTOCOL.can_read_from_protocol(state.protocol()) {
        Err(TransactionError::UnsupportedTableFeatures(f)) => {
            !f.is_empty() && f.iter().all(|f| matches!(f, TableFeature::V2Checkpoint))
        }
        _ => false,
    }
}

/// A DataFusion table over the kernel's scan of `table`'s loaded version.
pub async fn kernel_provider(table: &DeltaTable, display: &str) -> Result<Arc<dyn TableProvider>> {
    let state = table.snapshot().map_err(|e| LakeError::Storage(format!("Delta table '{display}': {e}")))?;
    let schema = state.snapshot().arrow_schema();
    let engine = table.log_store().engine(None);
    let root = table.table_url().to_string();
    let version = table.version();
    let snapshot = tokio::task::spawn_blocking(move || {
        let mut b = delta_kernel::Snapshot::builder_for(root);
        if let Some(v) = version {
            b = b.at_version(v);
        }
        b.build(engine.as_ref())
    })
    .await
    .map_err(|e| LakeError::Internal(e.to_string()))?
    .map_err(|e| LakeError::Storage(format!("Delta table '{display}': {e}")))?;
    let part =
        KernelScan { snapshot, log_store: table.log_store(), schema: schema.clone(), display: display.to_string() };
    let t = StreamingTable::try_new(schema, vec![Arc::new(part)])?;
    Ok(Arc::new(t))
}

struct KernelScan {
    snapshot: SnapshotRef,
    /// The engine is made per scan from this, on the runtime running the scan (an engine
    /// holds a runtime handle, and a fork replaces the runtime).
    log_store: deltalake::logstore::LogStoreRef,
    schema: SchemaRef,
    display: String,
}

impl std::fmt::Debug for KernelScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelScan({})", self.display)
    }
}

impl KernelScan {
    /// One kernel batch as a batch of the table's schema (types cast where the kernel's Arrow
    /// conversion differs from delta-rs's).
    fn conform(&self, data: Box<dyn delta_kernel::EngineData>) -> datafusion::error::Result<RecordBatch> {
        let ext = |e: delta_kernel::Error| datafusion::error::DataFusionError::External(Box::new(e));
        let batch: RecordBatch = ArrowEngineData::try_from_engine_data(data).map_err(ext)?.into();
        let cols = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let c = batch.column_by_name(f.name()).ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution(format!(
                        "Delta table '{}': the kernel's scan lacks column '{}'",
                        self.display,
                        f.name()
                    ))
                })?;
                Ok(arrow::compute::cast(c, f.data_type())?)
            })
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts)?)
    }
}

impl PartitionStream for KernelScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let engine = self.log_store.engine(None);
        let this = KernelScan {
            snapshot: self.snapshot.clone(),
            log_store: self.log_store.clone(),
            schema: self.schema.clone(),
            display: self.display.clone(),
        };
        // The kernel's reads block: they run on a blocking thread, never on a runtime worker.
        // A panic there becomes an error at the end of the stream, never a silent short read.
        tokio::task::spawn_blocking(move || {
            let ext = |e: delta_kernel::Error| datafusion::error::DataFusionError::External(Box::new(e));
            let run = || -> datafusion::error::Result<()> {
                let scan = this.snapshot.clone().scan_builder().build().map_err(ext)?;
                for data in scan.execute(engine).map_err(ext)? {
                    let batch = data.map_err(ext).and_then(|d| this.conform(d));
                    let stop = batch.is_err();
                    if tx.blocking_send(batch).is_err() || stop {
                        break;
                    }
                }
                Ok(())
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
                Err(datafusion::error::DataFusionError::Execution(format!(
                    "Delta table '{}': the kernel's scan panicked",
                    this.display
                )))
            });
            if let Err(e) = outcome {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
