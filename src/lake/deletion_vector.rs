//! Delta deletion vectors read and checked by lakevec before anything is sized by them.
//!
//! delta-rs materialises a deletion vector as one `bool` per row up to the largest deleted
//! row, so a vector (inline or in a file) that names row 2^40 makes it allocate a terabyte.
//! Here every vector is decoded into a `RoaringTreemap` (memory bounded by its bytes), and
//! its largest row is checked against the row count of the data file's Parquet footer, and
//! its cardinality against the log's, before any scan runs.
//!
//! Format: Delta protocol, "Deletion Vector Format" and "Deletion Vector Descriptor Schema"
//! (<https://github.com/delta-io/delta/blob/master/PROTOCOL.md#deletion-vector-format>):
//! storage type `i` (z85 inline: 4-byte little-endian magic 1681511377, then a portable
//! RoaringTreemap), `u` (file `<prefix>/deletion_vector_<uuid>.bin` under the table root,
//! the uuid z85-encoded in the last 20 characters) or `p` (absolute path). A file holds a
//! version byte (1), then at `offset` a big-endian u32 size, the magic, the bitmap and a
//! big-endian CRC-32 (ISO-HDLC, as `crc32fast`) of magic + bitmap.

use std::sync::Arc;

use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use object_store::path::Path;
use object_store::ObjectStore;
use roaring::RoaringTreemap;

use crate::error::{LakeError, Result};

/// Magic of the portable RoaringBitmap serialisation Delta uses.
const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// Where the deletion vector of one data file lives.
pub struct DvSource<'a> {
    /// The table's store and root path (relative `u` vectors resolve under it).
    pub store: &'a Arc<dyn ObjectStore>,
    pub root: &'a Path,
    /// The store's URL (`file:///`, `s3://bucket/`): `p` vectors must lie in it.
    pub store_url: &'a str,
    /// The data file, for messages.
    pub file: &'a str,
}

fn corrupt(file: &str, msg: impl std::fmt::Display) -> LakeError {
    LakeError::CorruptFile(format!("deletion vector of data file '{file}': {msg}"))
}

/// The object holding a file-backed vector (`None` for inline vectors).
fn dv_object(d: &DeletionVectorDescriptor, src: &DvSource) -> Result<Option<Path>> {
    let s = &d.path_or_inline_dv;
    match d.storage_type {
        StorageType::Inline => Ok(None),
        StorageType::UuidRelativePath => {
            if s.len() < 20 || !s.is_char_boundary(s.len() - 20) {
                return Err(corrupt(src.file, format!("relative path '{s}' is shorter than a z85 uuid")));
            }
            let (prefix, code) = s.split_at(s.len() - 20);
            let raw = z85::decode(code).map_err(|_| corrupt(src.file, format!("'{code}' is not z85")))?;
            let uuid = uuid::Uuid::from_slice(&raw).map_err(|e| corrupt(src.file, e))?;
            let name = format!("deletion_vector_{uuid}.bin");
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if rel.split('/').any(|p| p == ".." || p == ".") {
                return Err(corrupt(src.file, format!("relative path '{rel}' leaves the table")));
            }
            Ok(Some(Path::from(format!("{}/{rel}", src.root.as_ref()).trim_start_matches('/'))))
        }
        StorageType::AbsolutePath => {
            let l = crate::lake::storage::parse_object_uri(&crate::lake::storage::percent_decode(s))?;
            if l.store_url.as_str() != src.store_url {
                return Err(LakeError::PermissionDenied(format!(
                    "deletion vector of data file '{}' lies outside the table's store: '{}'",
                    src.file,
                    crate::lake::storage::without_credentials(s)
                )));
            }
            Ok(Some(l.path))
        }
    }
}

/// Read the deleted row positions of one data file of `rows` rows (sorted, unique).
///
/// Errors: `CorruptFile` when the vector's framing, size, magic, CRC or bitmap is invalid, its
/// cardinality differs from the log's, or it names a row >= `rows`; `PermissionDenied` for an
/// absolute path outside the table's store; storage errors as they come. Keeps the vector's
/// bytes and its positions (8 bytes per deleted row) resident.
pub async fn deleted_rows(d: &DeletionVectorDescriptor, src: &DvSource<'_>, rows: u64) -> Result<Vec<u64>> {
    let bitmap = match dv_object(d, src)? {
        None => {
            let raw = z85::decode(&d.path_or_inline_dv).map_err(|_| corrupt(src.file, "inline vector is not z85"))?;
            parse_inline(&raw).map_err(|m| corrupt(src.file, m))?
        }
        Some(object) => {
            let size = u64::try_from(d.size_in_bytes).map_err(|_| corrupt(src.file, "negative size"))?;
            let offset = u64::try_from(d.offset.unwrap_or(1)).map_err(|_| corrupt(src.file, "negative offset"))?;
            if offset == 0 {
                return Err(corrupt(src.file, "offset 0 points at the version byte"));
            }
            let end = offset + 4 + size + 4;
            let parts = src
                .store
                .get_ranges(&object, &[0..1, offset..end])
                .await
                .map_err(|e| LakeError::from(e).context(format!("deletion vector of '{}'", src.file)))?;
            if parts[0].as_ref() != [1u8] {
                return Err(corrupt(src.file, "version byte is not 1"));
            }
            parse_framed(&parts[1], size).map_err(|m| corrupt(src.file, m))?
        }
    };
    check_bitmap(&bitmap, d.cardinality, rows).map_err(|m| corrupt(src.file, m))?;
    Ok(bitmap.iter().collect())
}

/// An inline vector: magic, then the bitmap.
fn parse_inline(raw: &[u8]) -> std::result::Result<RoaringTreemap, String> {
    let (magic, body) = raw.split_first_chunk::<4>().ok_or("inline vector shorter than its magic")?;
    if u32::from_le_bytes(*magic) != PORTABLE_MAGIC {
        return Err(format!("bad magic {}", u32::from_le_bytes(*magic)));
    }
    RoaringTreemap::deserialize_from(body).map_err(|e| format!("bad bitmap: {e}"))
}

/// A file-backed vector from `offset`: size (BE), magic (LE), bitmap, CRC (BE).
fn parse_framed(b: &[u8], size: u64) -> std::result::Result<RoaringTreemap, String> {
    let size = usize::try_from(size).map_err(|_| "size too large")?;
    if b.len() != size + 8 || size < 4 {
        return Err(format!("expected {} bytes, found {}", size + 8, b.len()));
    }
    let stated = u32::from_be_bytes(b[0..4].try_into().expect("4 bytes"));
    if stated as usize != size {
        return Err(format!("size {stated} in the file, {size} in the log"));
    }
    let body = &b[4..4 + size];
    let crc = u32::from_be_bytes(b[4 + size..].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch".into());
    }
    parse_inline(body)
}

/// The bitmap agrees with the log's cardinality and the file's row count.
fn check_bitmap(bitmap: &RoaringTreemap, cardinality: i64, rows: u64) -> std::result::Result<(), String> {
    if i64::try_from(bitmap.len()).ok() != Some(cardinality) {
        return Err(format!("{} rows deleted, the log says {cardinality}", bitmap.len()));
    }
    match bitmap.max() {
        Some(m) if m >= rows => Err(format!("deletes row {m} of a file with {rows} rows")),
        _ => Ok(()),
    }
}

/// Decode a deletion vector's bytes as stored inline (`framed` false: magic + bitmap) or in
/// a file from its offset (size, magic, bitmap, CRC), and check it against `cardinality` and
/// `rows` (the decoders' fuzzing entry point).
#[cfg(feature = "fuzz")]
pub fn decode_checked(b: &[u8], framed: bool, cardinality: i64, rows: u64) -> std::result::Result<Vec<u64>, String> {
    let bitmap = if framed { parse_framed(b, b.len().saturating_sub(8) as u64)? } else { parse_inline(b)? };
    check_bitmap(&bitmap, cardinality, rows)?;
    Ok(bitmap.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(rows: &[u64]) -> Vec<u8> {
        let t: RoaringTreemap = rows.iter().copied().collect();
        let mut b = PORTABLE_MAGIC.to_le_bytes().to_vec();
        t.serialize_into(&mut b).unwrap();
        b
    }

    #[test]
    fn inline_vectors_are_bounded_by_the_file() {
        let t = parse_inline(&inline(&[0, 9])).unwrap();
        assert!(check_bitmap(&t, 2, 10).is_ok());
        assert!(check_bitmap(&t, 3, 10).unwrap_err().contains("the log says 3"));
        let far = parse_inline(&inline(&[1 << 40])).unwrap();
        assert!(check_bitmap(&far, 1, 10).unwrap_err().contains("deletes row 1099511627776"));
        assert!(parse_inline(&[1, 2]).is_err());
        assert!(parse_inline(&[0, 0, 0, 0, 1]).unwrap_err().contains("bad magic"));
    }

    #[test]
    fn framed_vectors_check_size_and_crc() {
        let body = inline(&[3]);
        let mut b = (body.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&body);
        b.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        assert_eq!(parse_framed(&b, body.len() as u64).unwrap().iter().collect::<Vec<_>>(), vec![3]);
        assert!(parse_framed(&b, body.len() as u64 + 1).is_err());
        let mut bad = b.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(parse_framed(&bad, body.len() as u64).unwrap_err().contains("CRC"));
    }
}
