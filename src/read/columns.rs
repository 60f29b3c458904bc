//! Column and filter checks shared by scans and row-address reads, and the batch size rule.

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;

use crate::error::{LakeError, Result};

/// Check that every column exists, naming the first missing one.
pub fn check_projection(schema: &SchemaRef, columns: &[String], what: &str) -> Result<()> {
    for c in columns {
        if schema.field_with_name(c).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(LakeError::Schema(format!(
                "column '{c}' not found in {what}; available columns: {}",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// Parse `filter` against `schema` and check that it is boolean.
pub fn parse_filter(ctx: &SessionContext, schema: &DFSchema, filter: &str) -> Result<datafusion::prelude::Expr> {
    use datafusion::logical_expr::ExprSchemable;
    let bad = |m: String| LakeError::Filter(format!("invalid filter '{filter}': {m}"));
    if filter.trim().is_empty() {
        return Err(bad("the expression is empty".into()));
    }
    let expr = ctx.parse_sql_expr(filter, schema).map_err(|e| bad(e.strip_backtrace().to_string()))?;
    let ty = expr.get_type(schema).map_err(|e| bad(e.strip_backtrace().to_string()))?;
    if ty != DataType::Boolean && ty != DataType::Null {
        return Err(bad(format!("it has type {ty}, not boolean")));
    }
    Ok(expr)
}

/// Decoded bytes per batch when `batch_size` is not given.
const TARGET_BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Rows per batch so that a batch holds about [`TARGET_BATCH_BYTES`] of decoded data, between
/// 1,024 and 65,536 rows, a multiple of 1,024. Small batches of wide rows (embeddings) keep
/// decode buffers reusable by the allocator instead of mapping fresh pages for each batch.
pub fn batch_size_for(row_bytes: u64) -> usize {
    let n = (TARGET_BATCH_BYTES / row_bytes.max(1)).clamp(1024, 65_536) as usize;
    n / 1024 * 1024
}
