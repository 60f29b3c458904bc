//! Entry points for the fuzz targets under `fuzz/` (feature `fuzz`; not a public API): every
//! decoder of bytes lakevec did not necessarily write, plus the encoders that let a
//! structure-aware mutator keep checksums consistent, so that the checks behind each CRC are
//! what the fuzzer exercises. Each decoder must return (`Ok` or a clear error), never panic,
//! abort, or allocate by an unchecked size.

use crate::index::container::{self, Container, Tag};
use crate::index::segment::Segment;

/// Open a container and read (verify) every section it lists; true when all are valid.
pub fn container(bytes: &[u8]) -> bool {
    let Ok(c) = Container::open(bytes, "fuzz") else { return false };
    parts_unchecked(bytes).is_some_and(|parts| parts.iter().all(|(t, _)| c.section(t).is_ok()))
}

/// Decode a segment file (container, META, sections of its kind, KEYS).
pub fn segment(bytes: &[u8]) -> bool {
    Segment::decode(bytes, "fuzz").is_ok()
}

/// Decode a tombstone file holding `count` ids of a `rows`-row segment.
pub fn tombstones(bytes: &[u8], count: u64, rows: u64) -> bool {
    crate::index::store::decode_tombstones(bytes, "fuzz", count, rows).is_ok()
}

/// Decode a manifest (envelope, checksum, format version, fields, bounds).
pub fn manifest(bytes: &[u8]) -> bool {
    crate::index::publish::decode::<crate::index::manifest::Manifest>(bytes, "fuzz").is_ok()
}

/// Decode a dedup index segment file said to hold `rows` rows of `num_perm` values in `bands`
/// LSH bands.
pub fn dedup_segment(bytes: &[u8], rows: u64, num_perm: usize, bands: usize) -> bool {
    crate::dedup::index::format::decode_segment(bytes, "fuzz", rows, num_perm, bands).is_ok()
}

/// Decode a dedup index clusters file said to hold `rows` rows with `width` neighbours each
/// (0: no neighbour lists).
pub fn dedup_clusters(bytes: &[u8], rows: u64, width: usize) -> bool {
    crate::dedup::index::format::decode_clusters(bytes, "fuzz", rows, width).is_ok()
}

/// Decode a dedup index manifest.
pub fn dedup_manifest(bytes: &[u8]) -> bool {
    crate::index::publish::decode::<crate::dedup::index::format::DedupManifest>(bytes, "fuzz").is_ok()
}

/// Decode a Delta deletion vector (inline when `framed` is false, file-backed otherwise).
pub fn deletion_vector(bytes: &[u8], framed: bool, cardinality: i64, rows: u64) -> bool {
    crate::lake::deletion_vector::decode_checked(bytes, framed, cardinality, rows).is_ok()
}

/// The sections of a container by its table, bounds checked but checksums not verified
/// (what a mutator edits); `None` when the header or table does not parse.
pub fn parts_unchecked(bytes: &[u8]) -> Option<Vec<(Tag, Vec<u8>)>> {
    const HEADER: usize = 24;
    const ENTRY: usize = 32;
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?) as usize;
    if count > container::MAX_SECTIONS as usize {
        return None;
    }
    let table = bytes.get(HEADER..HEADER + count * ENTRY)?;
    let mut out = Vec::with_capacity(count);
    for e in table.chunks_exact(ENTRY) {
        let (off, len) = (u64_at(e, 8) as usize, u64_at(e, 16) as usize);
        out.push((e[..8].try_into().ok()?, bytes.get(off..off.checked_add(len)?)?.to_vec()));
    }
    Some(out)
}

/// A container of `parts` with every checksum right.
pub fn write_container(parts: &[(Tag, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(Tag, &[u8])> = parts.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    container::write(&refs)
}

/// A manifest envelope around the JSON `body` with its checksum right (`None` when `body`
/// is not JSON).
pub fn seal_manifest(body: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = serde_json::to_string(&value).ok()?;
    let env = serde_json::json!({"crc32": crc32fast::hash(text.as_bytes()), "manifest": value});
    serde_json::to_vec(&env).ok()
}

/// The JSON body inside a manifest envelope (`None` when the envelope does not parse).
pub fn manifest_body(bytes: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    serde_json::to_vec(v.get("manifest")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resealed_files_decode_as_before() {
        let tomb: Vec<u8> = [1u64, 5].iter().flat_map(|x| x.to_le_bytes()).collect();
        let bytes = write_container(&[(*b"DELETED\0", tomb)]);
        assert!(container(&bytes) && tombstones(&bytes, 2, 6));
        assert!(!tombstones(&bytes, 2, 5));
        let parts = parts_unchecked(&bytes).unwrap();
        assert_eq!(write_container(&parts), bytes);
        let m = br#"{"format": "lakevec-index", "format_version": 2}"#;
        let sealed = seal_manifest(m).unwrap();
        assert_eq!(seal_manifest(&manifest_body(&sealed).unwrap()).unwrap(), sealed);
        assert!(!manifest(&sealed)); // a body missing its fields is a clear error
    }
}
