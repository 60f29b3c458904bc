//! DataFusion sessions configured for lakevec: output types as pyarrow reads them (no view
//! types), parallel decoding over `num_threads` partitions, statistics and page-index pruning.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use crate::error::Result;

/// Default rows per batch for scans (pyarrow's and DataFusion's scanners use similar sizes).
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// A new session with `target_partitions = num_threads`.
pub fn new_session(num_threads: usize, batch_size: Option<usize>) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_target_partitions(num_threads.max(1))
        .with_batch_size(batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1))
        .with_information_schema(true);
    {
        let opts = config.options_mut();
        // Return Utf8/Binary, not Utf8View/BinaryView: what pyarrow and polars users expect.
        opts.execution.parquet.schema_force_view_types = false;
        // Keep file order when splitting scans so reads return rows in file order.
        opts.optimizer.repartition_file_scans = true;
        opts.optimizer.repartition_file_min_size = 8 * 1024 * 1024;
        // Round-robin repartitioning would interleave batches of different files.
        opts.optimizer.enable_round_robin_repartition = false;
        opts.execution.parquet.pruning = true;
        opts.execution.parquet.enable_page_index = true;
        opts.sql_parser.enable_ident_normalization = false;
    }
    Ok(SessionContext::new_with_config(config))
}

/// Register `store` for `store_url` (scheme + authority) in the session.
pub fn register_store(ctx: &SessionContext, store_url: &Url, store: Arc<dyn ObjectStore>) {
    ctx.register_object_store(store_url, store);
}
