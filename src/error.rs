//! The one error type of lakevec's core.
//!
//! Every fallible function in the pure-Rust modules returns [`Result<T>`]. The Python layer
//! maps each variant to a class of `lakevec.exceptions` (see `python/errors.rs`); the variant
//! names below are chosen to match those classes one to one.

use std::fmt::Display;

use datafusion::error::DataFusionError;
use thiserror::Error;

/// lakevec's error enum. Messages name the file, column or row at fault and never contain
/// credentials (the Python boundary additionally redacts every registered secret).
#[derive(Debug, Error)]
pub enum LakeError {
    /// A path, object, table or file that does not exist (Python: `TableNotFoundError`,
    /// a subclass of `FileNotFoundError`).
    #[error("{0}")]
    NotFound(String),
    /// The store refused access (Python: `StoragePermissionError`, a `PermissionError`).
    #[error("{0}")]
    PermissionDenied(String),
    /// Any other storage failure (network, throttling, bad configuration).
    #[error("{0}")]
    Storage(String),
    /// Schemas that do not fit: a missing column, incompatible files.
    #[error("{0}")]
    Schema(String),
    /// A `filter` expression that does not parse, names an unknown column or is not boolean.
    #[error("{0}")]
    Filter(String),
    /// A SQL statement that failed to plan or run.
    #[error("{0}")]
    Sql(String),
    /// A data file that is not valid Parquet (truncated, wrong magic, bad footer).
    #[error("{0}")]
    CorruptFile(String),
    /// An index file that fails verification (magic, version, checksum, bounds).
    #[error("{0}")]
    CorruptIndex(String),
    /// A table or file that needs a feature lakevec does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// A bad vector: wrong dimension, NaN/inf, wrong type.
    #[error("{0}")]
    Vector(String),
    /// A bad argument value (Python: `InvalidArgumentError`, a `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),
    /// An index that does not cover the searched table version, with `stale="error"`.
    #[error("{0}")]
    StaleIndex(String),
    /// Another writer committed an index version first.
    #[error("{0}")]
    CommitConflict(String),
    /// A commit whose outcome could not be read back (the write may or may not have landed).
    #[error("{0}")]
    CommitUnknown(String),
    /// The call was cancelled (Ctrl-C); the Python layer raises `KeyboardInterrupt`.
    #[error("operation cancelled")]
    Cancelled,
    /// A bug: a panic caught at the boundary or a broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with [`LakeError`].
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

impl LakeError {
    /// Prefix the message with context (e.g. the file being read), keeping the variant.
    pub fn context(self, ctx: impl Display) -> Self {
        use LakeError::*;
        match self {
            NotFound(m) => NotFound(format!("{ctx}: {m}")),
            PermissionDenied(m) => PermissionDenied(format!("{ctx}: {m}")),
            Storage(m) => Storage(format!("{ctx}: {m}")),
            Schema(m) => Schema(format!("{ctx}: {m}")),
            Filter(m) => Filter(format!("{ctx}: {m}")),
            Sql(m) => Sql(format!("{ctx}: {m}")),
            CorruptFile(m) => CorruptFile(format!("{ctx}: {m}")),
            CorruptIndex(m) => CorruptIndex(format!("{ctx}: {m}")),
            Unsupported(m) => Unsupported(format!("{ctx}: {m}")),
            Vector(m) => Vector(format!("{ctx}: {m}")),
            InvalidArgument(m) => InvalidArgument(format!("{ctx}: {m}")),
            StaleIndex(m) => StaleIndex(format!("{ctx}: {m}")),
            CommitConflict(m) => CommitConflict(format!("{ctx}: {m}")),
            CommitUnknown(m) => CommitUnknown(format!("{ctx}: {m}")),
            Cancelled => Cancelled,
            Internal(m) => Internal(format!("{ctx}: {m}")),
        }
    }

    /// The short name of the variant, used in tests and logs.
    pub fn kind(&self) -> &'static str {
        use LakeError::*;
        match self {
            NotFound(_) => "NotFound",
            PermissionDenied(_) => "PermissionDenied",
            Storage(_) => "Storage",
            Schema(_) => "Schema",
            Filter(_) => "Filter",
            Sql(_) => "Sql",
            CorruptFile(_) => "CorruptFile",
            CorruptIndex(_) => "CorruptIndex",
            Unsupported(_) => "Unsupported",
            Vector(_) => "Vector",
            InvalidArgument(_) => "InvalidArgument",
            StaleIndex(_) => "StaleIndex",
            CommitConflict(_) => "CommitConflict",
            CommitUnknown(_) => "CommitUnknown",
            Cancelled => "Cancelled",
            Internal(_) => "Internal",
        }
    }
}

impl From<object_store::Error> for LakeError {
    fn from(e: object_store::Error) -> Self {
        use object_store::Error as E;
        match &e {
            E::NotFound { path, .. } => LakeError::NotFound(format!("not found: {path}")),
            E::PermissionDenied { path, .. } | E::Unauthenticated { path, .. } => {
                LakeError::PermissionDenied(format!("access denied to {path}: {e}"))
            }
            E::NotSupported { .. } | E::NotImplemented { .. } => LakeError::Unsupported(e.to_string()),
            // List requests report a refused signature or key only as a generic error.
            _ if is_auth_failure(&e.to_string()) => LakeError::PermissionDenied(format!("access denied: {e}")),
            _ => LakeError::Storage(e.to_string()),
        }
    }
}

/// Whether an error message is object_store's "not found" for an object.
fn is_missing_object(msg: &str) -> bool {
    msg.contains("Object at location") && msg.contains("not found")
}

/// Whether a storage error message is an authentication or authorization refusal.
fn is_auth_failure(msg: &str) -> bool {
    ["403 Forbidden", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "AuthorizationFailure"]
        .iter()
        .any(|k| msg.contains(k))
}

impl From<parquet::errors::ParquetError> for LakeError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        use parquet::errors::ParquetError as P;
        match e {
            P::External(inner) => match inner.downcast::<object_store::Error>() {
                Ok(os) => LakeError::from(*os),
                Err(other) => LakeError::Storage(other.to_string()),
            },
            P::NYI(m) => LakeError::Unsupported(format!("Parquet feature not supported: {m}")),
            // DataFusion's footer fetch flattens a missing object into text.
            other if is_missing_object(&other.to_string()) => LakeError::NotFound(other.to_string()),
            other => LakeError::CorruptFile(format!("invalid Parquet data: {other}")),
        }
    }
}

impl From<arrow::error::ArrowError> for LakeError {
    fn from(e: arrow::error::ArrowError) -> Self {
        use arrow::error::ArrowError as A;
        match e {
            A::ExternalError(inner) => match inner.downcast::<DataFusionError>() {
                Ok(df) => LakeError::from(*df),
                Err(other) => match other.downcast::<LakeError>() {
                    Ok(l) => *l,
                    Err(other) => LakeError::Internal(other.to_string()),
                },
            },
            A::SchemaError(m) => LakeError::Schema(m),
            A::InvalidArgumentError(m) => LakeError::InvalidArgument(m),
            A::ParquetError(m) => LakeError::CorruptFile(m),
            A::IoError(m, _) => LakeError::Storage(m),
            other => LakeError::Internal(other.to_string()),
        }
    }
}

impl From<DataFusionError> for LakeError {
    fn from(e: DataFusionError) -> Self {
        use DataFusionError as D;
        match e {
            D::ObjectStore(os) => LakeError::from(*os),
            D::ParquetError(p) => LakeError::from(*p),
            D::ArrowError(a, _) => LakeError::from(*a),
            D::SchemaError(s, _) => LakeError::Schema(s.to_string()),
            D::SQL(p, _) => LakeError::Sql(format!("SQL syntax error: {p}")),
            D::Plan(m) => LakeError::Sql(m),
            D::NotImplemented(m) => LakeError::Unsupported(m),
            D::Context(ctx, inner) => LakeError::from(*inner).context(ctx),
            D::Diagnostic(_, inner) => LakeError::from(*inner),
            D::IoError(io) => LakeError::from(io),
            D::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
                Ok(inner) => LakeError::from(inner),
                Err(shared) => LakeError::from_shared_df(&shared),
            },
            D::External(inner) => {
                let inner = match inner.downcast::<LakeError>() {
                    Ok(l) => return *l,
                    Err(i) => i,
                };
                let inner = match inner.downcast::<object_store::Error>() {
                    Ok(os) => return LakeError::from(*os),
                    Err(i) => i,
                };
                match inner.downcast::<parquet::errors::ParquetError>() {
                    Ok(p) => LakeError::from(*p),
                    Err(i) => LakeError::Internal(i.to_string()),
                }
            }
            D::Collection(mut errs) if !errs.is_empty() => LakeError::from(errs.remove(0)),
            D::Execution(m) => LakeError::Internal(m),
            other => LakeError::Internal(other.to_string()),
        }
    }
}

impl LakeError {
    /// Classify a shared DataFusion error without owning it (keeps the message).
    fn from_shared_df(e: &DataFusionError) -> Self {
        use DataFusionError as D;
        let msg = e.to_string();
        match e.find_root() {
            D::ObjectStore(os) => match os.as_ref() {
                object_store::Error::NotFound { .. } => LakeError::NotFound(msg),
                object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                    LakeError::PermissionDenied(msg)
                }
                _ => LakeError::Storage(msg),
            },
            D::ParquetError(_) if is_missing_object(&msg) => LakeError::NotFound(msg),
            D::ParquetError(_) => LakeError::CorruptFile(msg),
            D::SchemaError(..) => LakeError::Schema(msg),
            _ => LakeError::Internal(msg),
        }
    }
}

impl From<std::io::Error> for LakeError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => LakeError::NotFound(e.to_string()),
            std::io::ErrorKind::PermissionDenied => LakeError::PermissionDenied(e.to_string()),
            _ => LakeError::Storage(e.to_string()),
        }
    }
}

impl From<LakeError> for DataFusionError {
    fn from(e: LakeError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_store_not_found_maps_to_not_found() {
        let e = object_store::Error::NotFound { path: "bucket/x.parquet".into(), source: "missing".into() };
        let l = LakeError::from(e);
        assert_eq!(l.kind(), "NotFound");
        assert!(l.to_string().contains("bucket/x.parquet"));
    }

    #[test]
    fn datafusion_wrapping_is_unwrapped() {
        let inner = LakeError::Schema("column 'v' not found".into());
        let df = DataFusionError::Context("reading".into(), Box::new(DataFusionError::External(Box::new(inner))));
        let l = LakeError::from(df);
        assert_eq!(l.kind(), "Schema");
        assert_eq!(l.to_string(), "reading: column 'v' not found");
    }

    #[test]
    fn parquet_errors_are_corrupt_file() {
        let p = parquet::errors::ParquetError::General("bad footer".into());
        assert_eq!(LakeError::from(p).kind(), "CorruptFile");
    }
}
