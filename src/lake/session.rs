//! DataFusion sessions configured for lakevec: output types as pyarrow reads them (no view
//! types), parallel decoding over `num_threads` partitions (tables from 1 MiB split into
//! ordered byte ranges), statistics and page-index pruning, and a per-table footer cache.

use std::sync::{Arc, OnceLock};

use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::DefaultFilesMetadataCache;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use crate::error::Result;

/// Default rows per batch for scans (pyarrow's and DataFusion's scanners use similar sizes).
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// Tables smaller than this (bytes) are scanned as one partition.
pub const REPARTITION_MIN_BYTES: usize = 1024 * 1024;

/// Decoded Parquet footers and page indexes one `Table` keeps for its reads (bytes, LRU).
pub const FOOTER_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A footer cache for the files of one table (see [`FOOTER_CACHE_BYTES`]). DataFusion keys it
/// by object path alone, so one cache never serves two stores.
pub fn new_footer_cache() -> Arc<dyn FileMetadataCache> {
    Arc::new(DefaultFilesMetadataCache::new(FOOTER_CACHE_BYTES))
}

/// A new session with `target_partitions = num_threads`.
pub fn new_session(num_threads: usize, batch_size: Option<usize>) -> Result<SessionContext> {
    new_session_with(num_threads, batch_size, None)
}

/// [`new_session`] whose reads use `footers` (files' Parquet metadata, reused across calls).
pub fn new_session_with(
    num_threads: usize,
    batch_size: Option<usize>,
    footers: Option<Arc<dyn FileMetadataCache>>,
) -> Result<SessionContext> {
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
        // Split tables from 1 MiB up: a 6 MB table of 8 small files still decodes on every
        // thread (DataFusion's default, 10 MiB, left such tables on one).
        opts.optimizer.repartition_file_min_size = REPARTITION_MIN_BYTES;
        // Round-robin repartitioning would interleave batches of different files.
        opts.optimizer.enable_round_robin_repartition = false;
        opts.execution.parquet.pruning = true;
        opts.execution.parquet.enable_page_index = true;
        opts.sql_parser.enable_ident_normalization = false;
    }
    let Some(footers) = footers else { return Ok(SessionContext::new_with_config(config)) };
    let caches = CacheManagerConfig::default()
        .with_file_metadata_cache(Some(footers))
        .with_metadata_cache_limit(FOOTER_CACHE_BYTES);
    let runtime = RuntimeEnvBuilder::new().with_cache_manager(caches).build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// One shared single-partition session state for building table providers (delta-rs's
/// `DeltaScan` builder asks for one; building a fresh session costs ~0.4 ms per open). It
/// holds no threads, so a forked child may use it.
pub fn provider_state() -> Result<Arc<SessionState>> {
    static STATE: OnceLock<Arc<SessionState>> = OnceLock::new();
    if let Some(s) = STATE.get() {
        return Ok(s.clone());
    }
    let s = Arc::new(new_session(1, None)?.state());
    Ok(STATE.get_or_init(|| s).clone())
}

/// Register `store` for `store_url` (scheme + authority) in the session.
pub fn register_store(ctx: &SessionContext, store_url: &Url, store: Arc<dyn ObjectStore>) {
    ctx.register_object_store(store_url, store);
}

/// Scan whole files per partition in `ctx` (no byte-range splits of one file). Needed for
/// Delta tables with deletion vectors: delta-rs's scan (0.32) consumes a file's vector in the
/// order its batches arrive, so two partitions reading ranges of one file would apply it to
/// the wrong rows.
pub fn keep_files_whole(ctx: &SessionContext) {
    ctx.state_ref().write().config_mut().options_mut().optimizer.repartition_file_scans = false;
}
