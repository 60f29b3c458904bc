//! Index manifests and the commit protocol.
//!
//! An index folder holds immutable files with unique names (`segments/<uuid>.lkv`,
//! `tombstones/<uuid>.lkv`) and one manifest per index version,
//! `manifests/<version:020>.json`. A commit writes its new files first, then publishes the
//! next manifest with put-if-absent (`PutMode::Create`: S3 `If-None-Match: *`, an exclusive
//! create on local disk), so a crash at any point leaves the previous version readable and
//! readers always see a complete one: the newest manifest.
//!
//! When the put's answer is ambiguous (a timeout, a 5xx after retries, or a 412/409 that may
//! be the answer to our own retried request), the manifest is read back: if it carries this
//! writer's id the commit happened; if another writer's, it is a [`CommitConflict`]
//! (`LakeError::CommitConflict`).
//!
//! A manifest is JSON `{"crc32": c, "manifest": {...}}`, `c` the CRC-32 of the manifest
//! object serialised with sorted keys, so a flipped byte is detected even where it would
//! still parse.
//!
//! Format version 2 records the index kind of the index and of each segment as a tagged value
//! ([`IndexKind`]). Version 1 manifests (written before kinds existed: HNSW only, with
//! `params: {m, ef_construction}`) are read by upgrading them to version 2 in memory
//! ([`upgrade_v1`]) after their checksum was verified.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{LakeError, Result};
use crate::index::kind::IndexKind;
use crate::vector::column::OnInvalid;
use crate::vector::column::MAX_DIM;
use crate::vector::distance::Metric;

pub const FORMAT: &str = "lakevec-vector-index";
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this lakevec reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// An immutable file of the index, with what verifies it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct FileRef {
    /// Path relative to the index folder.
    pub path: String,
    pub bytes: u64,
    pub crc32: u32,
}

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

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    crc32: u32,
    manifest: serde_json::Value,
}

/// `root/rel` (`rel` may hold `/`).
pub fn child(root: &Path, rel: &str) -> Path {
    if root.as_ref().is_empty() {
        Path::from(rel)
    } else {
        Path::from(format!("{}/{rel}", root.as_ref()))
    }
}

/// Path of manifest `version` under `root`.
pub fn manifest_path(root: &Path, version: u64) -> Path {
    child(root, &format!("manifests/{version:020}.json"))
}

/// Serialise a manifest with its checksum.
pub fn encode(m: &Manifest) -> Result<Vec<u8>> {
    let value = serde_json::to_value(m).map_err(|e| LakeError::Internal(e.to_string()))?;
    let body = serde_json::to_string(&value).map_err(|e| LakeError::Internal(e.to_string()))?;
    let env = Envelope { crc32: crc32fast::hash(body.as_bytes()), manifest: value };
    serde_json::to_vec_pretty(&env).map_err(|e| LakeError::Internal(e.to_string()))
}

/// Parse and verify manifest bytes (`name` is used in errors).
pub fn decode(bytes: &[u8], name: &str) -> Result<Manifest> {
    let bad = |why: String| LakeError::CorruptIndex(format!("index manifest '{name}' is corrupt: {why}"));
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let body = serde_json::to_string(&env.manifest).map_err(|e| bad(e.to_string()))?;
    if crc32fast::hash(body.as_bytes()) != env.crc32 {
        return Err(bad("checksum mismatch".into()));
    }
    let mut value = env.manifest;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or_default().to_string();
    if format != FORMAT {
        return Err(bad(format!("format '{format}' is not {FORMAT}")));
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    match version {
        Some(v) if v == FORMAT_VERSION as u64 => {}
        Some(1) => upgrade_v1(&mut value).map_err(bad)?,
        other => {
            return Err(LakeError::CorruptIndex(format!(
                "index manifest '{name}' has format version {}; this lakevec reads versions \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                other.map_or("(none)".to_string(), |v| v.to_string())
            )))
        }
    }
    let m: Manifest = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    if m.dim == 0 || m.dim > MAX_DIM {
        return Err(bad(format!("dimension {} is outside 1..={MAX_DIM}", m.dim)));
    }
    Ok(m)
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

/// The version of a manifest file name: exactly [`manifest_path`]'s form, 20 decimal digits
/// then `.json`, below `u64::MAX` (so the next version never wraps). Any other name (`5.json`,
/// `+5.json`, a stray `18446744073709551615.json`) is not a manifest and shadows nothing.
pub fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&v| v < u64::MAX)
}

/// The version after `v` (an error rather than a wrap-around at `u64::MAX`).
pub fn next_version(v: u64) -> Result<u64> {
    v.checked_add(1).ok_or_else(|| LakeError::CorruptIndex(format!("index version {v} has no successor")))
}

/// Attempts at a LIST, an index-file PUT or a commit before its error is reported (on top
/// of the store client's own retries, which do not cover every failure: a LIST whose body is
/// cut off, a 409 to a PUT of a fresh name).
const ATTEMPTS: usize = 3;

/// Whether an error is worth another attempt (not a refusal or a missing object).
fn transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
    )
}

/// Every manifest version under `root`, newest first (a LIST, retried when it fails midway).
pub async fn versions(store: &Arc<dyn ObjectStore>, root: &Path) -> Result<Vec<u64>> {
    let prefix = child(root, "manifests");
    let mut attempt = 0;
    'list: loop {
        attempt += 1;
        let mut list = store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(item) = list.next().await {
            match item {
                Ok(meta) => out.extend(meta.location.filename().and_then(parse_manifest_name)),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) if attempt < ATTEMPTS && transient(&e) => continue 'list,
                Err(e) => return Err(e.into()),
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        return Ok(out);
    }
}

/// The newest manifest version under `root`, if any.
pub async fn latest_version(store: &Arc<dyn ObjectStore>, root: &Path) -> Result<Option<u64>> {
    Ok(versions(store, root).await?.first().copied())
}

/// What is stored as manifest `version`.
pub enum Probe {
    Valid(Box<Manifest>),
    /// Damaged bytes (not a JSON envelope, or its checksum fails): a torn or corrupted file,
    /// which readers skip and writers never overwrite.
    Damaged(String),
    /// Listed but gone (a concurrent cleanup).
    Missing,
}

/// Whether manifest bytes are damaged (as opposed to intact but not understood: a newer
/// format version, an unknown kind, which must stop a reader rather than be skipped).
fn damaged(bytes: &[u8]) -> bool {
    let Ok(env) = serde_json::from_slice::<Envelope>(bytes) else { return true };
    serde_json::to_string(&env.manifest).map_or(true, |body| crc32fast::hash(body.as_bytes()) != env.crc32)
}

/// Read manifest `version` and say what it is; a manifest that is intact but fails to decode
/// (newer format, unknown values, implausible fields) is an error, not `Damaged`.
pub async fn probe(store: &Arc<dyn ObjectStore>, root: &Path, version: u64) -> Result<Probe> {
    let path = manifest_path(root, version);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(Probe::Missing),
        Err(e) => return Err(e.into()),
    };
    match decode(&bytes, path.as_ref()) {
        Ok(m) if m.version == version => Ok(Probe::Valid(Box::new(m))),
        Ok(m) => Err(LakeError::CorruptIndex(format!("index manifest '{path}' says it is version {}", m.version))),
        Err(LakeError::CorruptIndex(msg)) if damaged(&bytes) => Ok(Probe::Damaged(msg)),
        Err(e) => Err(e),
    }
}

/// The newest manifest that reads and verifies, with the newer damaged ones skipped
/// (version, reason). A manifest that cannot be read (storage) or is intact but not
/// understood (a newer lakevec's) is an error, not a reason to go back.
pub async fn newest_valid(store: &Arc<dyn ObjectStore>, root: &Path) -> Result<Option<(Manifest, Vec<(u64, String)>)>> {
    let mut skipped = Vec::new();
    for v in versions(store, root).await? {
        match probe(store, root, v).await? {
            Probe::Valid(m) => return Ok(Some((*m, skipped))),
            Probe::Damaged(msg) => skipped.push((v, msg)),
            Probe::Missing => {}
        }
    }
    match skipped.into_iter().next() {
        Some((_, msg)) => Err(LakeError::CorruptIndex(msg)),
        None => Ok(None),
    }
}

/// Read and verify manifest `version`.
pub async fn read(store: &Arc<dyn ObjectStore>, root: &Path, version: u64) -> Result<Manifest> {
    match probe(store, root, version).await? {
        Probe::Valid(m) => Ok(*m),
        Probe::Damaged(msg) => Err(LakeError::CorruptIndex(msg)),
        Probe::Missing => {
            Err(LakeError::NotFound(format!("index manifest '{}' does not exist", manifest_path(root, version))))
        }
    }
}

/// Write an immutable index file (unique name; a retried write is harmless, so any failure
/// the store client gave up on is tried again, up to [`ATTEMPTS`] times).
pub async fn put_file(store: &Arc<dyn ObjectStore>, root: &Path, rel: &str, bytes: Vec<u8>) -> Result<FileRef> {
    let crc32 = crc32fast::hash(&bytes);
    let len = bytes.len() as u64;
    let payload = Bytes::from(bytes);
    let path = child(root, rel);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.put(&path, PutPayload::from(payload.clone())).await {
            Ok(_) => return Ok(FileRef { path: rel.to_string(), bytes: len, crc32 }),
            Err(e) if attempt < ATTEMPTS && transient(&e) => continue,
            Err(e) => return Err(LakeError::from(e).context(format!("writing index file '{path}'"))),
        }
    }
}

/// The error for an index file the manifest lists but the store lacks (a vacuum ran too
/// early, or the folder was damaged): the index is unusable as committed.
pub fn missing_file(object: &impl std::fmt::Display) -> LakeError {
    LakeError::CorruptIndex(format!("index file '{object}' listed in the manifest is missing"))
}

/// Read an index file and check its size and checksum against `f`.
pub async fn get_file(store: &Arc<dyn ObjectStore>, root: &Path, f: &FileRef) -> Result<Bytes> {
    let path = child(root, &f.path);
    let bytes = store.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => missing_file(&path),
        e => LakeError::from(e),
    })?;
    let bytes = bytes.bytes().await?;
    if bytes.len() as u64 != f.bytes {
        return Err(LakeError::CorruptIndex(format!(
            "index file '{path}' is corrupt: {} bytes, the manifest says {}",
            bytes.len(),
            f.bytes
        )));
    }
    if crc32fast::hash(&bytes) != f.crc32 {
        return Err(LakeError::CorruptIndex(format!("index file '{path}' is corrupt: checksum mismatch")));
    }
    Ok(bytes)
}

/// Publish `m` as version `m.version` with put-if-absent, then read it back and compare the
/// writer id (a store that ignores `If-None-Match` overwrites silently; the read-back tells).
///
/// Outcomes: `Ok` (this writer's manifest is there); `CommitConflict` (another writer's
/// manifest, or a corrupt one, holds the version: nothing of this commit is visible);
/// `CommitUnknown` when a write may have landed but what is there cannot be read (the store
/// kept failing), so the caller cannot tell; other errors when nothing landed.
///
/// `local` is the manifest's local file for a local store: it is then written durably
/// (`durable::create_durable`) instead of through the store.
pub async fn commit(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    m: &Manifest,
    local: Option<std::path::PathBuf>,
) -> Result<()> {
    let path = manifest_path(root, m.version);
    let payload = Bytes::from(encode(m)?);
    let unknown = |e: LakeError| {
        LakeError::CommitUnknown(format!(
            "commit state unknown: index version {} at '{path}' may or may not have been written, and reading \
             it back failed ({e}); reopen the index to see its version",
            m.version
        ))
    };
    // Whether an earlier attempt may have landed (its answer was lost or ambiguous).
    let mut maybe_landed = false;
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        let put = put_if_absent(store, &path, payload.clone(), local.clone()).await;
        let exists =
            matches!(put, Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }));
        match read(store, root, m.version).await {
            Ok(found) if found.writer_id == m.writer_id => return Ok(()),
            Ok(found) => {
                return Err(LakeError::CommitConflict(format!(
                    "index version {} at '{path}' was committed by another writer ({}); reopen the index and retry",
                    m.version, found.writer_id
                )))
            }
            Err(LakeError::CorruptIndex(msg)) if exists || put.is_ok() => {
                return Err(LakeError::CommitConflict(format!(
                    "index version {} at '{path}' is held by a corrupt manifest ({msg}); reopen the index (it \
                     reads the newest valid version and commits after the corrupt one) and retry",
                    m.version
                )))
            }
            Err(LakeError::NotFound(_)) if put.is_ok() => {
                // Acknowledged but not readable yet: nothing to compare, nothing to retry.
                return Err(unknown(LakeError::NotFound("not found after the write".into())));
            }
            Err(LakeError::NotFound(_)) => {
                // Nothing there: the put failed before landing; try again.
                maybe_landed = false;
                last_err = put.err().map(LakeError::from);
            }
            Err(e) if put.is_ok() || exists || maybe_landed => return Err(unknown(e)),
            Err(_) => {
                maybe_landed = true;
                last_err = put.err().map(LakeError::from);
            }
        }
    }
    let e = last_err.unwrap_or_else(|| LakeError::Internal("commit failed".into()));
    if maybe_landed {
        return Err(unknown(e));
    }
    Err(e.context(format!("committing '{path}'")))
}

/// Create `path` with `payload` unless it exists, through the store or durably on local disk.
async fn put_if_absent(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    payload: Bytes,
    local: Option<std::path::PathBuf>,
) -> std::result::Result<(), object_store::Error> {
    let Some(file) = local else {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        return store.put_opts(path, PutPayload::from(payload), opts).await.map(|_| ());
    };
    let written = tokio::task::spawn_blocking(move || crate::index::durable::create_durable(&file, &payload)).await;
    let e = match written {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(join) => std::io::Error::other(join.to_string()),
    };
    Err(match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            object_store::Error::AlreadyExists { path: path.to_string(), source: Box::new(e) }
        }
        _ => object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) },
    })
}

/// A new random writer / file id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
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
