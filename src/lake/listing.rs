//! Finding the data files of a Parquet table: one file, a folder (recursively, with hive-style
//! `key=value` partition folders) or a glob.
//!
//! As pyarrow does, path components starting with `_` or `.` are skipped (`_delta_log/`,
//! `_SUCCESS`, `.crc` files, lakevec's own `_lakevec/` sidecars). Only files ending in
//! `.parquet`, `.parq` or `.pq` (any case) are data files when listing a folder or glob; a
//! single file is read whatever its name. Files are sorted by path, which fixes the row order.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::error::{LakeError, Result};
use crate::lake::storage::{percent_decode, Location};

/// A data file found by listing, with its hive partition values (aligned to
/// [`Listing::partition_fields`]).
#[derive(Clone, Debug)]
pub struct ListedFile {
    pub meta: ObjectMeta,
    pub partition_values: Vec<ScalarValue>,
}

/// Result of listing a location.
#[derive(Clone, Debug)]
pub struct Listing {
    /// The table root inside the store (files' paths are below it).
    pub root: Path,
    pub files: Vec<ListedFile>,
    /// Hive partition columns, in folder order. Types: int32 when every value parses as a
    /// 32-bit integer (pyarrow's inference), int64 when they all parse as 64-bit, else utf8.
    pub partition_fields: Vec<FieldRef>,
}

const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

fn is_data_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".parquet") || lower.ends_with(".parq") || lower.ends_with(".pq")
}

/// The path of `path` below `root`, as segments (empty if not below).
fn relative_segments<'a>(root: &Path, path: &'a Path) -> Vec<&'a str> {
    let root_s = root.as_ref();
    let p = path.as_ref();
    let rel = if root_s.is_empty() {
        p
    } else if let Some(rest) = p.strip_prefix(root_s) {
        rest.trim_start_matches('/')
    } else {
        p
    };
    rel.split('/').filter(|s| !s.is_empty()).collect()
}

fn is_hidden(segments: &[&str]) -> bool {
    segments.iter().any(|s| s.starts_with('_') || s.starts_with('.'))
}

/// List the data files at `loc`.
pub async fn list_files(store: &Arc<dyn ObjectStore>, loc: &Location) -> Result<Listing> {
    if let Some(pattern) = &loc.glob {
        return list_glob(store, loc, pattern).await;
    }
    // A single object?
    if !loc.path.as_ref().is_empty() {
        match store.head(&loc.path).await {
            Ok(meta) => {
                return Ok(Listing {
                    root: loc.path.clone(),
                    files: vec![ListedFile { meta, partition_values: vec![] }],
                    partition_fields: vec![],
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            // Local directories answer head() with an error on some platforms: fall through
            // to listing, which decides.
            Err(_) if loc.is_local() => {}
            Err(e) => return Err(LakeError::from(e).context(&loc.display)),
        }
    }
    let all: Vec<ObjectMeta> = match store.list(Some(&loc.path)).try_collect().await {
        Ok(v) => v,
        Err(object_store::Error::NotFound { .. }) => vec![],
        Err(e) => return Err(LakeError::from(e).context(&loc.display)),
    };
    if all.is_empty() {
        return Err(LakeError::NotFound(format!("no such file or directory: '{}'", loc.display)));
    }
    let mut files: Vec<ObjectMeta> = all
        .into_iter()
        .filter(|m| {
            let segs = relative_segments(&loc.path, &m.location);
            !segs.is_empty() && !is_hidden(&segs) && is_data_file(segs[segs.len() - 1])
        })
        .collect();
    if files.is_empty() {
        return Err(LakeError::NotFound(format!(
            "folder '{}' contains no Parquet files (*.parquet, *.parq, *.pq)",
            loc.display
        )));
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(with_partitions(loc.path.clone(), files))
}

async fn list_glob(store: &Arc<dyn ObjectStore>, loc: &Location, pattern: &str) -> Result<Listing> {
    let pat =
        glob::Pattern::new(pattern).map_err(|e| LakeError::InvalidArgument(format!("bad glob '{pattern}': {e}")))?;
    let opts =
        glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };
    let prefix = if loc.path.as_ref().is_empty() { None } else { Some(&loc.path) };
    let all: Vec<ObjectMeta> = match store.list(prefix).try_collect().await {
        Ok(v) => v,
        Err(object_store::Error::NotFound { .. }) => vec![],
        Err(e) => return Err(LakeError::from(e).context(&loc.display)),
    };
    let mut files: Vec<ObjectMeta> = all
        .into_iter()
        .filter(|m| {
            let segs = relative_segments(&loc.path, &m.location);
            !is_hidden(&segs) && pat.matches_with(m.location.as_ref(), opts)
        })
        .collect();
    if files.is_empty() {
        return Err(LakeError::NotFound(format!("no files match '{}'", loc.display)));
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(with_partitions(loc.path.clone(), files))
}

/// Parse `key=value` folders below `root`. Partitioning is used only when every file has the
/// same keys in the same order.
fn with_partitions(root: Path, metas: Vec<ObjectMeta>) -> Listing {
    let parsed: Vec<Vec<(String, String)>> = metas
        .iter()
        .map(|m| {
            let segs = relative_segments(&root, &m.location);
            let dirs = &segs[..segs.len().saturating_sub(1)];
            dirs.iter()
                .filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Vec<_>>()
        })
        .collect();
    let keys: Vec<String> = parsed.first().map(|p| p.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let consistent = !keys.is_empty()
        && parsed.iter().all(|p| p.len() == keys.len() && p.iter().zip(&keys).all(|((k, _), k2)| k == k2));
    if !consistent {
        let files = metas.into_iter().map(|meta| ListedFile { meta, partition_values: vec![] }).collect();
        return Listing { root, files, partition_fields: vec![] };
    }
    let types: Vec<DataType> = (0..keys.len()).map(|i| infer_type(parsed.iter().map(|p| p[i].1.as_str()))).collect();
    let partition_fields: Vec<FieldRef> =
        keys.iter().zip(&types).map(|(k, t)| Arc::new(Field::new(k, t.clone(), true))).collect();
    let files = metas
        .into_iter()
        .zip(parsed)
        .map(|(meta, p)| ListedFile {
            meta,
            partition_values: p.iter().zip(&types).map(|((_, v), t)| typed_value(v, t)).collect(),
        })
        .collect();
    Listing { root, files, partition_fields }
}

fn infer_type<'a>(values: impl Iterator<Item = &'a str> + Clone) -> DataType {
    let non_null = values.filter(|v| *v != HIVE_NULL);
    if non_null.clone().all(|v| percent_decode(v).parse::<i32>().is_ok()) {
        DataType::Int32
    } else if non_null.clone().all(|v| percent_decode(v).parse::<i64>().is_ok()) {
        DataType::Int64
    } else {
        DataType::Utf8
    }
}

fn typed_value(raw: &str, t: &DataType) -> ScalarValue {
    if raw == HIVE_NULL {
        return ScalarValue::try_from(t).unwrap_or(ScalarValue::Null);
    }
    let v = percent_decode(raw);
    match t {
        DataType::Int32 => ScalarValue::Int32(v.parse().ok()),
        DataType::Int64 => ScalarValue::Int64(v.parse().ok()),
        _ => ScalarValue::Utf8(Some(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    async fn put(store: &Arc<dyn ObjectStore>, p: &str) {
        // parse(): keys as S3 lists them (no extra percent-encoding).
        store.put(&Path::parse(p).unwrap(), PutPayload::from(Bytes::from_static(b"x"))).await.unwrap();
    }

    fn loc(path: &str) -> Location {
        crate::lake::storage::parse_uri(&format!("memory://m/{path}")).unwrap()
    }

    #[tokio::test]
    async fn lists_partitions_and_skips_hidden() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "t/year=2020/part-1.parquet").await;
        put(&store, "t/year=2021/part-0.parquet").await;
        put(&store, "t/year=2021/.part-0.parquet.crc").await;
        put(&store, "t/_delta_log/00.checkpoint.parquet").await;
        put(&store, "t/year=2021/notes.txt").await;
        let l = list_files(&store, &loc("t")).await.unwrap();
        assert_eq!(l.files.len(), 2);
        assert_eq!(l.partition_fields[0].name(), "year");
        assert_eq!(l.partition_fields[0].data_type(), &DataType::Int32);
        assert_eq!(l.files[1].partition_values[0], ScalarValue::Int32(Some(2021)));
    }

    #[tokio::test]
    async fn string_and_null_partitions() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "t/s=a%20b/x.parquet").await;
        put(&store, "t/s=__HIVE_DEFAULT_PARTITION__/y.parquet").await;
        let l = list_files(&store, &loc("t")).await.unwrap();
        assert_eq!(l.partition_fields[0].data_type(), &DataType::Utf8);
        let vals: Vec<_> = l.files.iter().map(|f| f.partition_values[0].clone()).collect();
        assert!(vals.contains(&ScalarValue::Utf8(Some("a b".into()))));
        assert!(vals.contains(&ScalarValue::Utf8(None)));
    }

    #[tokio::test]
    async fn missing_and_empty() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let e = list_files(&store, &loc("nothing")).await.unwrap_err();
        assert_eq!(e.kind(), "NotFound");
        put(&store, "t2/readme.md").await;
        let e = list_files(&store, &loc("t2")).await.unwrap_err();
        assert!(e.to_string().contains("no Parquet files"), "{e}");
    }

    #[tokio::test]
    async fn globs() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "g/a/1.parquet").await;
        put(&store, "g/b/2.parquet").await;
        put(&store, "g/b/3.csv").await;
        let l = list_files(&store, &loc("g/*/*.parquet")).await.unwrap();
        assert_eq!(l.files.len(), 2);
        let l = list_files(&store, &loc("g/b/*")).await.unwrap();
        assert_eq!(l.files.len(), 2);
    }
}
