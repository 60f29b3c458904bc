//! lakevec's container format for index files: every byte is verified before it is used.
//!
//! ```text
//! header (24 bytes):  magic "LKVINDEX" | format version u32 | section count u32
//!                     | crc32 of the section table u32 | reserved u32 (0)
//! section table:      count x { tag [u8; 8] | offset u64 | length u64 | crc32 u32 | reserved u32 }
//! sections:           the payloads, at their offsets
//! ```
//! All integers are little-endian and fixed width. Reading checks, in order: the length of
//! the header, the magic, the version, the reserved word (0), the section count (at most [`MAX_SECTIONS`]), the
//! table's checksum, that every section lies inside the file after the table without overflow,
//! and each section's CRC-32 (IEEE, via `crc32fast`) when it is first read. Nothing is allocated
//! from a size read in the file before that size has been checked against the file's length.

use crate::error::{LakeError, Result};

/// What an index kind adds to a segment file: fields of its `META` and its own sections
/// (borrowed from the structure where its bytes are already the stored form).
pub type KindSections<'a> = (serde_json::Value, Vec<(Tag, std::borrow::Cow<'a, [u8]>)>);

pub const MAGIC: [u8; 8] = *b"LKVINDEX";
pub const FORMAT_VERSION: u32 = 1;
pub const MAX_SECTIONS: u32 = 64;
const HEADER_LEN: usize = 24;
const ENTRY_LEN: usize = 32;

/// A section tag: 8 ASCII bytes, e.g. `b"VECTORS\0"`.
pub type Tag = [u8; 8];

/// Sections start at multiples of this many bytes, so that arrays are used in place from a
/// mapped file (`f32`/`u32`/`u64` need 4 or 8; 64 is a cache line). Gaps are zero bytes.
pub const ALIGN: u64 = 64;

fn aligned(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// The container of `sections` (tag, payload) as the pieces to write in order: the header and
/// section table, then each payload (borrowed, not copied) after the zero padding that puts it
/// at an offset that is a multiple of [`ALIGN`].
pub fn pieces<'a>(sections: &[(Tag, &'a [u8])]) -> Vec<std::borrow::Cow<'a, [u8]>> {
    use std::borrow::Cow;
    let table_len = sections.len() * ENTRY_LEN;
    let mut offset = (HEADER_LEN + table_len) as u64;
    let mut table = Vec::with_capacity(table_len);
    let mut pads = Vec::with_capacity(sections.len());
    for (tag, data) in sections {
        let start = aligned(offset);
        pads.push((start - offset) as usize);
        table.extend_from_slice(tag);
        table.extend_from_slice(&start.to_le_bytes());
        table.extend_from_slice(&(data.len() as u64).to_le_bytes());
        table.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        offset = start + data.len() as u64;
    }
    let mut head = Vec::with_capacity(HEADER_LEN + table_len);
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    head.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    head.extend_from_slice(&crc32fast::hash(&table).to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&table);
    let mut out = vec![Cow::Owned(head)];
    for ((_, data), pad) in sections.iter().zip(pads) {
        if pad > 0 {
            out.push(Cow::Owned(vec![0u8; pad]));
        }
        out.push(Cow::Borrowed(*data));
    }
    out
}

/// Write `sections` as one container to `w` (see [`pieces`]). Returns the container's length
/// and CRC-32 (what a manifest records for the file).
pub fn write_to<W: std::io::Write>(w: &mut W, sections: &[(Tag, &[u8])]) -> std::io::Result<(u64, u32)> {
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for p in pieces(sections) {
        crc.update(&p);
        len += p.len() as u64;
        w.write_all(&p)?;
    }
    Ok((len, crc.finalize()))
}

/// Serialize `sections` (tag, payload) into one container in memory (see [`write_to`]).
pub fn write(sections: &[(Tag, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    write_to(&mut out, sections).expect("writing to a Vec cannot fail");
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

struct Entry {
    tag: Tag,
    start: usize,
    end: usize,
    crc: u32,
}

/// A verified view of a container's bytes.
pub struct Container<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
    name: String,
}

impl<'a> Container<'a> {
    /// Check the header and section table of `bytes` (`name` is used in errors).
    pub fn open(bytes: &'a [u8], name: &str) -> Result<Self> {
        let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!("{} bytes is shorter than the {HEADER_LEN}-byte header", bytes.len())));
        }
        if bytes[..8] != MAGIC {
            return Err(bad("not a lakevec index file (bad magic)".into()));
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(LakeError::CorruptIndex(format!(
                "index file '{name}' has format version {version}; this lakevec reads version {FORMAT_VERSION}"
            )));
        }
        if u32_at(bytes, 20) != 0 {
            return Err(bad("reserved header bytes are not zero".into()));
        }
        let count = u32_at(bytes, 12);
        if count > MAX_SECTIONS {
            return Err(bad(format!("{count} sections (at most {MAX_SECTIONS})")));
        }
        let table_end = HEADER_LEN + count as usize * ENTRY_LEN;
        if bytes.len() < table_end {
            return Err(bad(format!("truncated section table ({} bytes, need {table_end})", bytes.len())));
        }
        let table = &bytes[HEADER_LEN..table_end];
        if crc32fast::hash(table) != u32_at(bytes, 16) {
            return Err(bad("section table checksum mismatch".into()));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let e = &table[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
            let tag: Tag = e[..8].try_into().expect("8 bytes");
            let (off, len) = (u64_at(e, 8), u64_at(e, 16));
            let end = off.checked_add(len).ok_or_else(|| bad(format!("section {i} size overflows")))?;
            if off < table_end as u64 || end > bytes.len() as u64 {
                return Err(bad(format!(
                    "section '{}' ({off}..{end}) lies outside the file ({} bytes)",
                    String::from_utf8_lossy(&tag).trim_end_matches('\0'),
                    bytes.len()
                )));
            }
            entries.push(Entry { tag, start: off as usize, end: end as usize, crc: u32_at(e, 24) });
        }
        // Bytes outside every section (alignment padding) must be zero, so that no byte of
        // the file escapes a check.
        let mut spans: Vec<(usize, usize)> = entries.iter().map(|e| (e.start, e.end)).collect();
        spans.sort_unstable();
        let mut at = table_end;
        for &(a, b) in spans.iter().chain(std::iter::once(&(bytes.len(), bytes.len()))) {
            if a > at && bytes[at..a].iter().any(|&x| x != 0) {
                return Err(bad(format!("non-zero bytes between sections at {at}..{a}")));
            }
            at = at.max(b);
        }
        Ok(Container { bytes, entries, name: name.to_string() })
    }

    /// Whether the container has a section `tag`.
    pub fn has(&self, tag: &Tag) -> bool {
        self.entries.iter().any(|e| &e.tag == tag)
    }

    /// The byte range of section `tag` in the container, checksum verified.
    pub fn range(&self, tag: &Tag) -> Result<std::ops::Range<usize>> {
        let s = self.section(tag)?;
        let start = s.as_ptr() as usize - self.bytes.as_ptr() as usize;
        Ok(start..start + s.len())
    }

    /// The range of section `tag` holding exactly `count` values of `size` bytes
    /// (checksum and length verified; `what` names it in errors).
    pub fn array_range(&self, tag: &Tag, count: usize, size: usize, what: &str) -> Result<std::ops::Range<usize>> {
        let r = self.range(tag)?;
        let need = count.checked_mul(size).ok_or_else(|| LakeError::CorruptIndex(format!("{what}: size overflows")))?;
        if r.len() != need {
            return Err(LakeError::CorruptIndex(format!(
                "index file '{}' is corrupt: {what}: {} bytes, expected {need}",
                self.name,
                r.len()
            )));
        }
        Ok(r)
    }

    /// The payload of section `tag`, checksum verified.
    pub fn section(&self, tag: &Tag) -> Result<&'a [u8]> {
        let label = String::from_utf8_lossy(tag).trim_end_matches('\0').to_string();
        let e =
            self.entries.iter().find(|e| &e.tag == tag).ok_or_else(|| {
                LakeError::CorruptIndex(format!("index file '{}' has no '{label}' section", self.name))
            })?;
        let data = &self.bytes[e.start..e.end];
        if crc32fast::hash(data) != e.crc {
            return Err(LakeError::CorruptIndex(format!(
                "index file '{}' is corrupt: section '{label}' checksum mismatch",
                self.name
            )));
        }
        Ok(data)
    }
}

/// Decode `count` little-endian f32 values, checking the payload length first.
pub fn f32s(data: &[u8], count: usize, what: &str) -> Result<Vec<f32>> {
    let need = count.checked_mul(4).ok_or_else(|| LakeError::CorruptIndex(format!("{what}: size overflows")))?;
    if data.len() != need {
        return Err(LakeError::CorruptIndex(format!("{what}: {} bytes, expected {need}", data.len())));
    }
    Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// Decode `count` little-endian u64 values, checking the payload length first.
pub fn u64s(data: &[u8], count: usize, what: &str) -> Result<Vec<u64>> {
    let need = count.checked_mul(8).ok_or_else(|| LakeError::CorruptIndex(format!("{what}: size overflows")))?;
    if data.len() != need {
        return Err(LakeError::CorruptIndex(format!("{what}: {} bytes, expected {need}", data.len())));
    }
    Ok(data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// A section tag from its name (at most 8 ASCII bytes, zero-padded).
pub fn section_tag(name: &str) -> Tag {
    let mut t = [0u8; 8];
    t[..name.len()].copy_from_slice(name.as_bytes());
    t
}

#[cfg(test)]
pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u32s(data: &[u8], count: usize, what: &str) -> Result<Vec<u32>> {
    let need = count.checked_mul(4).ok_or_else(|| LakeError::CorruptIndex(format!("{what}: size overflows")))?;
    if data.len() != need {
        return Err(LakeError::CorruptIndex(format!("{what}: {} bytes, expected {need}", data.len())));
    }
    Ok(data.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let v: Vec<u8> = [1.5f32, -2.0, 3.25].iter().flat_map(|x| x.to_le_bytes()).collect();
        write(&[(*b"VECTORS\0", &v), (*b"META\0\0\0\0", b"{\"dim\":3}")])
    }

    #[test]
    fn sections_are_aligned_and_the_crc_is_the_files() {
        let bytes = sample();
        let c = Container::open(&bytes, "x").unwrap();
        for t in [b"VECTORS\0", b"META\0\0\0\0"] {
            assert_eq!(c.range(t).unwrap().start as u64 % ALIGN, 0);
        }
        let mut out = Vec::new();
        let (len, crc) = write_to(&mut out, &[(*b"A\0\0\0\0\0\0\0", b"xyz")]).unwrap();
        assert_eq!((len as usize, crc), (out.len(), crc32fast::hash(&out)));
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let c = Container::open(&bytes, "x").unwrap();
        assert_eq!(f32s(c.section(b"VECTORS\0").unwrap(), 3, "v").unwrap(), vec![1.5, -2.0, 3.25]);
        assert_eq!(c.section(b"META\0\0\0\0").unwrap(), b"{\"dim\":3}");
        assert!(c.section(b"GRAPH\0\0\0").is_err());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_detected() {
        let bytes = sample();
        for n in 0..bytes.len() {
            let cut = &bytes[..n];
            let ok = Container::open(cut, "x").and_then(|c| {
                c.section(b"VECTORS\0")?;
                c.section(b"META\0\0\0\0")
            });
            assert!(ok.is_err(), "truncation to {n} bytes not detected");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let ok = Container::open(&b, "x").and_then(|c| {
                c.section(b"VECTORS\0")?;
                c.section(b"META\0\0\0\0")
            });
            assert!(ok.is_err(), "bit flip at byte {i} not detected");
        }
    }

    #[test]
    fn huge_sizes_are_refused_before_allocation() {
        let mut b = sample();
        // section 0 length -> u64::MAX (then fix the table checksum so only bounds catch it)
        b[HEADER_LEN + 16..HEADER_LEN + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&b[HEADER_LEN..HEADER_LEN + 2 * ENTRY_LEN]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(Container::open(&b, "x").is_err());
        assert!(f32s(&[0u8; 7], 2, "v").is_err());
        assert!(u64s(&[], usize::MAX, "v").is_err());
    }
}
