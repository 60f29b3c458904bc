//! The publication protocol of lakevec's sidecar indexes (vector and dedup): immutable files,
//! then a checksummed manifest per version with put-if-absent.
//!
//! An index folder holds immutable files with unique names and one manifest per index
//! version, `manifests/<version:020>.json`. A commit writes its new files first, then publishes
//! the next manifest with put-if-absent (`PutMode::Create`: S3 `If-None-Match: *`, an
//! exclusive create on local disk), so a crash at any point leaves the previous version
//! readable and readers always see a complete one: the newest manifest.
//!
//! When the put's answer is ambiguous (a timeout, a 5xx after retries, or a 412/409 that may
//! be the answer to our own retried request), the manifest is read back: if it carries this
//! writer's id the commit happened; if another writer's, it is a `CommitConflict`.
//!
//! A manifest is JSON `{"crc32": c, "manifest": {...}}`, `c` the CRC-32 of the manifest
//! object serialised with sorted keys, so a flipped byte is detected even where it would
//! still parse. Each manifest type ([`Doc`]) names its format and versions.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{LakeError, Result};

/// An immutable file of the index, with what verifies it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct FileRef {
    /// Path relative to the index folder.
    pub path: String,
    pub bytes: u64,
    pub crc32: u32,
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

/// A manifest type published with this protocol: its `format` name and versions, plausibility
/// checks after parsing, and the upgrade of older format versions.
pub trait Doc: serde::Serialize + serde::de::DeserializeOwned {
    /// The `format` field every manifest of this type holds.
    const FORMAT: &'static str;
    /// The format version written.
    const FORMAT_VERSION: u32;
    /// The oldest format version read (older ones are refused).
    const OLDEST_FORMAT_VERSION: u32;
    /// The index version this manifest publishes.
    fn version(&self) -> u64;
    /// The id of the writer that made it (compared on read-back after a commit).
    fn writer_id(&self) -> &str;
    /// Rewrite a verified body of an older format version (`from`, in
    /// `OLDEST_FORMAT_VERSION..FORMAT_VERSION`) as the current one.
    fn upgrade(from: u64, _value: &mut serde_json::Value) -> std::result::Result<(), String> {
        Err(format!("format version {from} has no upgrade"))
    }
    /// Checks of field values after parsing (counts, ranges); the reason when implausible.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// The folders of this index's immutable files with the kind of file each holds (what
    /// vacuum may delete besides `manifests/`).
    const FOLDERS: &'static [(&'static str, &'static str)];
    /// The immutable files this version references (paths relative to the index folder).
    fn files(&self) -> Vec<&str>;
}

/// Serialise a manifest with its checksum.
pub fn encode<M: Doc>(m: &M) -> Result<Vec<u8>> {
    let value = serde_json::to_value(m).map_err(|e| LakeError::Internal(e.to_string()))?;
    let body = serde_json::to_string(&value).map_err(|e| LakeError::Internal(e.to_string()))?;
    let env = Envelope { crc32: crc32fast::hash(body.as_bytes()), manifest: value };
    serde_json::to_vec_pretty(&env).map_err(|e| LakeError::Internal(e.to_string()))
}

/// Parse and verify manifest bytes (`name` is used in errors).
pub fn decode<M: Doc>(bytes: &[u8], name: &str) -> Result<M> {
    let bad = |why: String| LakeError::CorruptIndex(format!("index manifest '{name}' is corrupt: {why}"));
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let body = serde_json::to_string(&env.manifest).map_err(|e| bad(e.to_string()))?;
    if crc32fast::hash(body.as_bytes()) != env.crc32 {
        return Err(bad("checksum mismatch".into()));
    }
    let mut value = env.manifest;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or_default().to_string();
    if format != M::FORMAT {
        return Err(bad(format!("format '{format}' is not {}", M::FORMAT)));
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    match version {
        Some(v) if v == M::FORMAT_VERSION as u64 => {}
        Some(v) if v >= M::OLDEST_FORMAT_VERSION as u64 && v < M::FORMAT_VERSION as u64 => {
            M::upgrade(v, &mut value).map_err(bad)?
        }
        other => {
            return Err(LakeError::CorruptIndex(format!(
                "index manifest '{name}' has format version {}; this lakevec reads versions {} to {}",
                other.map_or("(none)".to_string(), |v| v.to_string()),
                M::OLDEST_FORMAT_VERSION,
                M::FORMAT_VERSION
            )))
        }
    }
    let m: M = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    m.check().map_err(bad)?;
    Ok(m)
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
pub enum Probe<M> {
    Valid(Box<M>),
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
pub async fn probe<M: Doc>(store: &Arc<dyn ObjectStore>, root: &Path, version: u64) -> Result<Probe<M>> {
    let path = manifest_path(root, version);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(Probe::Missing),
        Err(e) => return Err(e.into()),
    };
    match decode::<M>(&bytes, path.as_ref()) {
        Ok(m) if m.version() == version => Ok(Probe::Valid(Box::new(m))),
        Ok(m) => Err(LakeError::CorruptIndex(format!("index manifest '{path}' says it is version {}", m.version()))),
        Err(LakeError::CorruptIndex(msg)) if damaged(&bytes) => Ok(Probe::Damaged(msg)),
        Err(e) => Err(e),
    }
}

/// The newest manifest that reads and verifies, with the newer damaged ones skipped
/// (version, reason). A manifest that cannot be read (storage) or is intact but not
/// understood (a newer lakevec's) is an error, not a reason to go back.
pub async fn newest_valid<M: Doc>(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
) -> Result<Option<(M, Vec<(u64, String)>)>> {
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
pub async fn read<M: Doc>(store: &Arc<dyn ObjectStore>, root: &Path, version: u64) -> Result<M> {
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

/// Publish `m` as version `m.version()` with put-if-absent, then read it back and compare the
/// writer id (a store that ignores `If-None-Match` overwrites silently; the read-back tells).
///
/// Outcomes: `Ok` (this writer's manifest is there); `CommitConflict` (another writer's
/// manifest, or a corrupt one, holds the version: nothing of this commit is visible);
/// `CommitUnknown` when a write may have landed but what is there cannot be read (the store
/// kept failing), so the caller cannot tell; other errors when nothing landed.
///
/// `local` is the manifest's local file for a local store: it is then written durably
/// (`durable::create_durable`) instead of through the store.
pub async fn commit<M: Doc>(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    m: &M,
    local: Option<std::path::PathBuf>,
) -> Result<()> {
    let path = manifest_path(root, m.version());
    let payload = Bytes::from(encode(m)?);
    let unknown = |e: LakeError| {
        LakeError::CommitUnknown(format!(
            "commit state unknown: index version {} at '{path}' may or may not have been written, and reading \
             it back failed ({e}); reopen the index to see its version",
            m.version()
        ))
    };
    // Whether an earlier attempt may have landed (its answer was lost or ambiguous).
    let mut maybe_landed = false;
    let mut last_err = None;
    for attempt in 0..ATTEMPTS {
        let put = put_if_absent(store, &path, payload.clone(), local.clone()).await;
        let exists =
            matches!(put, Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }));
        log::debug!(
            "commit '{path}' (writer {}, attempt {}): put-if-absent {}",
            m.writer_id(),
            attempt + 1,
            match &put {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("failed: {e}"),
            }
        );
        match read::<M>(store, root, m.version()).await {
            Ok(found) if found.writer_id() == m.writer_id() => {
                log::info!("committed '{path}' ({} bytes; read back, writer id matches)", payload.len());
                return Ok(());
            }
            Ok(found) => {
                return Err(LakeError::CommitConflict(format!(
                    "index version {} at '{path}' was committed by another writer ({}); reopen the index and retry",
                    m.version(),
                    found.writer_id()
                )))
            }
            Err(LakeError::CorruptIndex(msg)) if exists || put.is_ok() => {
                return Err(LakeError::CommitConflict(format!(
                    "index version {} at '{path}' is held by a corrupt manifest ({msg}); reopen the index (it \
                     reads the newest valid version and commits after the corrupt one) and retry",
                    m.version()
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
