//! The vector index's manifest: what one index version holds (segments, the table version
//! covered, the kind and its parameters), published with the protocol of
//! [`crate::index::publish`].
//!
//! Format version 2 records the index kind of the index and of each segment as a tagged value
//! ([`IndexKind`]). Version 1 manifests (written before kinds existed: HNSW only, with
//! `params: {m, ef_construction}`) are read by upgrading them to version 2 in memory
//! ([`upgrade_v1`]) after their checksum was verified.

use crate::index::kind::IndexKind;
pub use crate::index::publish::{
    child, commit, encode, get_file, latest_version, manifest_path, missing_file, new_id, newest_valid, next_version,
    probe, put_file, read, versions, Doc, FileRef, Probe,
};
use crate::vector::column::OnInvalid;
use crate::vector::column::MAX_DIM;
use crate::vector::distance::Metric;

pub const FORMAT: &str = "lakevec-vector-index";
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this lakevec reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SegmentRef {
    pub id: String,
    pub file: FileRef,
    /// The segment's index kind and the parameters it was built with.
    pub kind: IndexKind,
    pub rows: u64,
    /// The data files whose rows this segment holds.
    pub data_files: Vec<String>,
    /// Deleted nodes (sorted u64 node ids), when any.
    pub tombstones: Option<FileRef>,
    pub num_tombstones: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CommitInfo {
    /// "build", "refresh" or "compact".
    pub operation: String,
    pub timestamp_ms: i64,
    /// Data files read and rows encoded (vectors read from the lake) by this commit.
    pub files_encoded: u64,
    pub rows_encoded: u64,
    /// Invalid rows left out (`on_invalid="skip"`).
    pub rows_skipped: u64,
    pub segments_added: u64,
    pub segments_removed: u64,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The index version (this manifest's number).
    pub version: u64,
    pub writer_id: String,
    pub name: String,
    /// The table's URI (credentials never stored) and format.
    pub table_uri: String,
    pub table_format: String,
    /// The table version covered (Delta version, Iceberg snapshot id; None for Parquet).
    pub table_version: Option<i64>,
    pub column: String,
    pub key: Option<String>,
    pub metric: Metric,
    pub dim: usize,
    /// The kind (and parameters) new segments are built with.
    pub kind: IndexKind,
    pub on_invalid: OnInvalid,
    pub segments: Vec<SegmentRef>,
    pub commit: CommitInfo,
    /// recall@10 of graph search vs exact search on a sample of indexed rows, at build
    /// (rounded by [`round_estimate`]).
    pub recall_estimate: Option<f64>,
}

/// `x` rounded to 6 decimals. Floats in a manifest are kept this short because the CRC is
/// checked on the re-serialised parse: serde_json (without `float_roundtrip`) may parse a
/// 17-digit float 1 ulp off, which would print differently and fail the check.
pub fn round_estimate(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Doc for Manifest {
    const FORMAT: &'static str = FORMAT;
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const OLDEST_FORMAT_VERSION: u32 = OLDEST_FORMAT_VERSION;
    fn version(&self) -> u64 {
        self.version
    }
    fn writer_id(&self) -> &str {
        &self.writer_id
    }
    fn upgrade(from: u64, value: &mut serde_json::Value) -> std::result::Result<(), String> {
        match from {
            1 => upgrade_v1(value),
            v => Err(format!("format version {v} has no upgrade")),
        }
    }
    const FOLDERS: &'static [(&'static str, &'static str)] = &[("segments", "segment"), ("tombstones", "tombstone")];
    fn files(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in &self.segments {
            out.push(s.file.path.as_str());
            out.extend(s.tombstones.as_ref().map(|t| t.path.as_str()));
        }
        out
    }
    fn check(&self) -> std::result::Result<(), String> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(format!("dimension {} is outside 1..={MAX_DIM}", self.dim));
        }
        Ok(())
    }
}

/// Rewrite a version 1 manifest body as version 2: every segment and the index are HNSW with
/// the index's `params`.
pub fn upgrade_v1(m: &mut serde_json::Value) -> std::result::Result<(), String> {
    let obj = m.as_object_mut().ok_or("the manifest is not an object")?;
    let params = obj.remove("params").ok_or("a version 1 manifest without 'params'")?;
    let mut kind = params.as_object().cloned().ok_or("'params' is not an object")?;
    kind.insert("kind".into(), "hnsw".into());
    let kind = serde_json::Value::Object(kind);
    let segments = obj.get_mut("segments").and_then(|s| s.as_array_mut());
    for s in segments.ok_or("'segments' is not a list")? {
        let s = s.as_object_mut().ok_or("a segment entry is not an object")?;
        s.insert("kind".into(), kind.clone());
    }
    obj.insert("kind".into(), kind);
    obj.insert("format_version".into(), FORMAT_VERSION.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LakeError;
    use crate::index::publish::parse_manifest_name;
    use bytes::Bytes;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
    use std::sync::Arc;

    async fn read(store: &Arc<dyn ObjectStore>, root: &Path, v: u64) -> crate::error::Result<Manifest> {
        crate::index::publish::read(store, root, v).await
    }
    async fn newest_valid(
        store: &Arc<dyn ObjectStore>,
        root: &Path,
    ) -> crate::error::Result<Option<(Manifest, Vec<(u64, String)>)>> {
        crate::index::publish::newest_valid(store, root).await
    }

    fn decode(bytes: &[u8], name: &str) -> crate::error::Result<Manifest> {
        crate::index::publish::decode(bytes, name)
    }
    use crate::vector::hnsw_params::HnswParams;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            version: 1,
            writer_id: new_id(),
            name: "default".into(),
            table_uri: "file:///t".into(),
            table_format: "delta".into(),
            table_version: Some(3),
            column: "v".into(),
            key: None,
            metric: Metric::Cosine,
            dim: 4,
            kind: IndexKind::Hnsw(HnswParams { m: 16, ef_construction: 200, builder: Default::default() }),
            on_invalid: OnInvalid::Error,
            segments: vec![],
            commit: CommitInfo::default(),
            recall_estimate: Some(0.99),
        }
    }

    #[test]
    fn manifest_round_trip_and_flips() {
        let m = sample();
        let b = encode(&m).unwrap();
        assert_eq!(decode(&b, "m").unwrap(), m);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            // Whitespace flips may still parse to the same content; anything else must fail.
            if let Ok(d) = decode(&c, "m") {
                assert_eq!(d, m, "flip at {i} changed the manifest silently");
            }
        }
    }

    /// A manifest written by lakevec 0.1 (format version 1: `params`, no kinds) still opens.
    #[test]
    fn version_1_manifests_are_read_as_hnsw() {
        let v1 = serde_json::json!({
            "format": FORMAT, "format_version": 1, "version": 3, "writer_id": "w", "name": "default",
            "table_uri": "file:///t", "table_format": "delta", "table_version": 7, "column": "v",
            "key": null, "metric": "cosine", "dim": 4, "params": {"m": 12, "ef_construction": 80},
            "on_invalid": "error",
            "segments": [{"id": "s1", "file": {"path": "segments/s1.lkv", "bytes": 10, "crc32": 1},
                          "rows": 5, "data_files": ["a.parquet"], "tombstones": null, "num_tombstones": 0}],
            "commit": {"operation": "build", "timestamp_ms": 1, "files_encoded": 1, "rows_encoded": 5,
                       "rows_skipped": 0, "segments_added": 1, "segments_removed": 0},
            "recall_estimate": 0.98
        });
        let m = decode(&envelope(&v1), "v1").unwrap();
        let hnsw = IndexKind::Hnsw(HnswParams { m: 12, ef_construction: 80, builder: Default::default() });
        assert_eq!(m.format_version, FORMAT_VERSION);
        assert_eq!(m.kind, hnsw);
        assert_eq!(m.segments[0].kind, hnsw);
        assert_eq!((m.version, m.dim, m.segments[0].rows), (3, 4, 5));
        // written back, it is a version 2 manifest
        assert_eq!(decode(&encode(&m).unwrap(), "v2").unwrap(), m);
    }

    fn local_store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        (dir, store)
    }

    fn envelope(body: &serde_json::Value) -> Vec<u8> {
        let text = serde_json::to_string(body).unwrap();
        serde_json::to_vec(&serde_json::json!({"crc32": crc32fast::hash(text.as_bytes()), "manifest": body})).unwrap()
    }

    /// A checksum-valid manifest claiming dimension 0 or 2^40 is corrupt (it made search
    /// divide by zero or allocate without bound).
    #[test]
    fn implausible_dimensions_are_corrupt() {
        for dim in [0u64, 1 << 40, MAX_DIM as u64 + 1] {
            let mut v = serde_json::to_value(sample()).unwrap();
            v["dim"] = dim.into();
            match decode(&envelope(&v), "m") {
                Err(LakeError::CorruptIndex(msg)) => assert!(msg.contains("dimension"), "{msg}"),
                other => panic!("dim {dim}: expected CorruptIndex, got {other:?}"),
            }
        }
    }

    #[test]
    fn only_exact_manifest_names_are_versions() {
        assert_eq!(parse_manifest_name("00000000000000000007.json"), Some(7));
        for name in ["7.json", "+0000000000000000007.json", "0000000000000000007a.json", "18446744073709551615.json"] {
            assert_eq!(parse_manifest_name(name), None, "{name}");
        }
        assert_eq!(next_version(6).unwrap(), 7);
        assert!(matches!(next_version(u64::MAX), Err(LakeError::CorruptIndex(_))));
    }

    #[tokio::test]
    async fn stray_manifest_names_shadow_nothing() {
        let (_dir, store) = local_store();
        let root = Path::from("idx");
        commit(&store, &root, &sample(), None).await.unwrap();
        for stray in ["5.json", "+5.json", "18446744073709551615.json"] {
            put_file(&store, &root, &format!("manifests/{stray}"), b"{}".to_vec()).await.unwrap();
        }
        assert_eq!(latest_version(&store, &root).await.unwrap(), Some(1));
    }

    #[test]
    fn kinds_are_tagged_values() {
        let mut m = sample();
        m.kind = IndexKind::Flat;
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["kind"], serde_json::json!({"kind": "flat"}));
        m.kind = IndexKind::Hnsw(HnswParams { m: 8, ef_construction: 40, builder: Default::default() });
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["kind"], serde_json::json!({"kind": "hnsw", "m": 8, "ef_construction": 40}));
        let mut newer = v.clone();
        newer["format_version"] = 3.into();
        assert!(matches!(decode(&envelope(&newer), "v3"), Err(LakeError::CorruptIndex(_))));
    }

    #[test]
    fn rounded_estimates_survive_the_checksum() {
        let mut m = sample();
        for i in 0..5000u32 {
            // weighted means like a distributed build's: arbitrary 17-digit floats
            let x = (i as f64 * 0.618_033_988_749_895).fract() * 0.37 + 0.63;
            m.recall_estimate = Some(round_estimate(x));
            assert_eq!(decode(&encode(&m).unwrap(), "m").unwrap(), m, "estimate {x}");
        }
    }

    #[tokio::test]
    async fn commit_is_put_if_absent_with_writer_check() {
        let (_dir, store) = local_store();
        let root = Path::from("idx");
        let m = sample();
        commit(&store, &root, &m, None).await.unwrap();
        // The same writer retrying (ambiguous first answer) succeeds.
        commit(&store, &root, &m, None).await.unwrap();
        let mut other = m.clone();
        other.writer_id = new_id();
        assert!(matches!(commit(&store, &root, &other, None).await, Err(LakeError::CommitConflict(_))));
        assert_eq!(latest_version(&store, &root).await.unwrap(), Some(1));
        assert_eq!(read(&store, &root, 1).await.unwrap(), m);
    }

    #[tokio::test]
    async fn readers_skip_corrupt_newest_manifests() {
        let (_dir, store) = local_store();
        let root = Path::from("idx");
        commit(&store, &root, &sample(), None).await.unwrap();
        put_file(&store, &root, "manifests/00000000000000000002.json", b"{\"cut".to_vec()).await.unwrap();
        let (m, skipped) = newest_valid(&store, &root).await.unwrap().unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, 2);
        // An intact manifest of a newer format is not skipped: it stops readers.
        let mut newer = serde_json::to_value(sample()).unwrap();
        newer["version"] = 3.into();
        newer["format_version"] = 99.into();
        put_file(&store, &root, "manifests/00000000000000000003.json", envelope(&newer)).await.unwrap();
        assert!(
            matches!(newest_valid(&store, &root).await, Err(LakeError::CorruptIndex(m)) if m.contains("format version 99"))
        );
        store.delete(&manifest_path(&root, 3)).await.unwrap();
        // A writer aiming at the corrupt version is told it is taken, and nothing is overwritten.
        let mut m2 = sample();
        m2.version = 2;
        match commit(&store, &root, &m2, None).await {
            Err(LakeError::CommitConflict(msg)) => assert!(msg.contains("corrupt manifest"), "{msg}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    /// A store that ignores `If-None-Match` (every put overwrites), and on each put lets a
    /// rival writer overwrite the object right after: only the read-back can tell.
    #[derive(Debug)]
    struct Overwriting {
        inner: Arc<dyn ObjectStore>,
        rival: Option<Bytes>,
    }

    impl std::fmt::Display for Overwriting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Overwriting")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Overwriting {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            _opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            let r = self.inner.put(location, payload).await?;
            if let Some(b) = &self.rival {
                self.inner.put(location, PutPayload::from(b.clone())).await?;
            }
            Ok(r)
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, o: object_store::CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }

    #[tokio::test]
    async fn a_store_ignoring_if_none_match_is_caught_by_the_read_back() {
        let (_dir, local) = local_store();
        let root = Path::from("idx");
        let mut rival = sample();
        rival.writer_id = new_id();
        let store: Arc<dyn ObjectStore> =
            Arc::new(Overwriting { inner: local, rival: Some(Bytes::from(encode(&rival).unwrap())) });
        match commit(&store, &root, &sample(), None).await {
            Err(LakeError::CommitConflict(msg)) => assert!(msg.contains(&rival.writer_id), "{msg}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}
