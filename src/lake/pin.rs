//! Which version of a table to open.

/// How to pin a table version: a Delta version or an Iceberg snapshot id, or a timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePin {
    pub version: Option<i64>,
    /// RFC 3339 timestamp: the latest version committed at or before it.
    pub timestamp: Option<String>,
}
