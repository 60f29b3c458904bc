//! What a dedup index stores: its manifest (parameters, segments, the clusters file of the
//! version) and the two kinds of immutable files, in lakevec's container (magic, version,
//! checksummed sections; see `index::container`).
//!
//! ```text
//! segments/<uuid>.lkv   META   JSON {rows, num_perm, bands, files: [{path, size, tag}]}
//!                       FSTART u32 x (files + 1)   rows of file f: FSTART[f]..FSTART[f+1]
//!                       ROW    u64 x rows          row position in its data file (sorted per file)
//!                       SIG    u32 x rows x num_perm   signature (u32::MAX for no shingles)
//!                       VALID  u8 x rows           1: has a signature (a text with shingles)
//!                       BKEY   u64 x bands x valid LSH band keys, band by band, each band
//!                                                  sorted (the bucket lists of the segment)
//!                       BROW   u32 x bands x valid the row of each key
//! clusters/<uuid>.lkv   META   JSON {rows}
//!                       ROOT   u64 x rows          cluster root of every row (global numbering:
//!                                                  segments in manifest order), the smallest
//!                                                  live member
//!                       LIVE   u8 x rows           1: the row is in the covered table version
//!                       NBR    u32 x rows x k      method "semantic" only: each live row's
//!                                                  neighbours at similarity >= threshold among
//!                                                  its k nearest (global rows, nearest first,
//!                                                  u32::MAX after the last)
//! ```
//!
//! A semantic index (`method="semantic"`, `num_perm` holding `k`) stores no signatures or
//! band lists in its segments (zero-width SIG, no bands): its rows' neighbour lists change
//! when rows are added or deleted, so they live in the clusters file of each version.
//!
//! Loading checks every count against the others before use: FSTART starts at 0, never
//! decreases and ends at `rows`; rows within a file are strictly increasing; VALID and LIVE
//! hold 0 or 1; each band lists every valid row once, by non-decreasing key; a root is a live
//! row no larger than the row and its own root. (A band key is not recomputed from its
//! signature at load: a wrong key only hides or offers a candidate, which is then verified.)

use crate::dedup::minhash::{MinHasher, Shingle, Sketch};
use crate::error::{LakeError, Result};
use crate::index::container::{u32s, u64s, Container, Tag};
use crate::index::manifest::CommitInfo;
use crate::index::publish::{Doc, FileRef};
use crate::text::Normalize;
use crate::vector::mapped::{le_bytes, Arr, Backing};
use std::borrow::Cow;
use std::sync::Arc;

pub const FORMAT: &str = "lakevec-dedup-index";
pub const FORMAT_VERSION: u32 = 1;

const META: Tag = *b"META\0\0\0\0";
const FSTART: Tag = *b"FSTART\0\0";
const ROW: Tag = *b"ROW\0\0\0\0\0";
const SIG: Tag = *b"SIG\0\0\0\0\0";
const VALID: Tag = *b"VALID\0\0\0";
const BKEY: Tag = *b"BKEY\0\0\0\0";
const BROW: Tag = *b"BROW\0\0\0\0";
const ROOT: Tag = *b"ROOT\0\0\0\0";
const LIVE: Tag = *b"LIVE\0\0\0\0";
const NBR: Tag = *b"NBR\0\0\0\0\0";

/// How rows become signatures and which pairs are duplicates; fixed for the index's life
/// (a refresh with other parameters is refused).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DedupParams {
    /// "minhash" (near-duplicates), "exact" (equal after normalisation: the 128-bit hash of
    /// `dedup.exact` in 4 slots, one band, threshold 1) or "semantic" (vector neighbours from a
    /// vector index: `num_perm` holds k, `threshold` the similarity, no bands).
    pub method: String,
    pub num_perm: usize,
    pub ngram: usize,
    pub shingle: String,
    pub sketch: String,
    pub seed: u64,
    pub nfkc: bool,
    pub lowercase: bool,
    pub whitespace: bool,
    pub threshold: f64,
    pub bands: usize,
    pub rows: usize,
    /// Semantic: the `ef` of the neighbour searches (None: the vector index's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
}

impl DedupParams {
    /// A semantic index's parameters: `k` neighbours per row at similarity >= `threshold`,
    /// searched with `ef`.
    pub fn semantic(k: usize, threshold: f64, ef: Option<usize>) -> Self {
        DedupParams {
            method: "semantic".into(),
            num_perm: k,
            ngram: 1,
            shingle: "word".into(),
            sketch: "classic".into(),
            seed: 0,
            nfkc: false,
            lowercase: false,
            whitespace: false,
            threshold,
            bands: 0,
            rows: 0,
            ef,
        }
    }

    /// Values per row in a segment's SIG section (0 for a semantic index).
    pub fn sig_width(&self) -> usize {
        if self.method == "semantic" {
            0
        } else {
            self.num_perm
        }
    }

    /// Neighbours per row in a clusters file's NBR section (k for a semantic index, else 0).
    pub fn nbr_width(&self) -> usize {
        if self.method == "semantic" {
            self.num_perm
        } else {
            0
        }
    }

    /// The signature hasher of these parameters (validates them).
    pub fn hasher(&self) -> Result<MinHasher> {
        let norm = Normalize { nfkc: self.nfkc, lowercase: self.lowercase, whitespace: self.whitespace };
        if self.method == "exact" {
            return MinHasher::new(4, 1, Shingle::Word, norm, Sketch::Exact, self.seed);
        }
        MinHasher::new(
            self.num_perm,
            self.ngram,
            Shingle::parse(&self.shingle)?,
            norm,
            Sketch::parse(&self.sketch)?,
            self.seed,
        )
    }

    /// Checks of the values a manifest may hold (the reason when implausible).
    pub fn check(&self) -> std::result::Result<(), String> {
        let semantic = self.method == "semantic";
        let method_ok = match self.method.as_str() {
            "minhash" => true,
            "exact" => self.num_perm == 4 && self.bands == 1 && self.rows == 4 && self.threshold == 1.0,
            // k neighbours per row in `num_perm`, no bands
            "semantic" => self.num_perm <= 1000 && self.bands == 0 && self.rows == 0,
            _ => false,
        };
        let ok = method_ok
            && (1..=4096).contains(&self.num_perm)
            && (1..=64).contains(&self.ngram)
            && self.threshold > 0.0
            && self.threshold <= 1.0
            && (semantic || (self.bands >= 1 && self.rows >= 1))
            && self.bands.checked_mul(self.rows).is_some_and(|x| x <= self.num_perm)
            && self.ef.is_none_or(|e| (1..=100_000).contains(&e));
        if ok {
            Ok(())
        } else {
            Err(format!("parameters out of range: {self:?}"))
        }
    }
}

/// One data file of a segment.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SegFile {
    pub path: String,
    pub size: u64,
    pub tag: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DedupSegmentRef {
    pub id: String,
    pub file: FileRef,
    pub rows: u64,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DedupManifest {
    pub format: String,
    pub format_version: u32,
    pub version: u64,
    pub writer_id: String,
    pub name: String,
    /// The table's URI (credentials never stored) and format.
    pub table_uri: String,
    pub table_format: String,
    /// The table version covered (None for Parquet folders).
    pub table_version: Option<i64>,
    pub column: String,
    pub params: DedupParams,
    /// Semantic: the URI of the vector index whose neighbours the index follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_index: Option<String>,
    pub segments: Vec<DedupSegmentRef>,
    pub clusters: FileRef,
    /// Rows in all segments (live or not), and the live ones.
    pub rows: u64,
    pub live_rows: u64,
    pub commit: CommitInfo,
}

impl Doc for DedupManifest {
    const FORMAT: &'static str = FORMAT;
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const OLDEST_FORMAT_VERSION: u32 = FORMAT_VERSION;
    fn version(&self) -> u64 {
        self.version
    }
    fn writer_id(&self) -> &str {
        &self.writer_id
    }
    const FOLDERS: &'static [(&'static str, &'static str)] = &[("segments", "segment"), ("clusters", "clusters")];
    fn files(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.segments.iter().map(|s| s.file.path.as_str()).collect();
        out.push(self.clusters.path.as_str());
        out
    }
    fn check(&self) -> std::result::Result<(), String> {
        self.params.check()?;
        if (self.params.method == "semantic") != self.vector_index.is_some() {
            return Err("a semantic index names its vector index, and only a semantic one".into());
        }
        let total = self.segments.iter().try_fold(0u64, |a, s| a.checked_add(s.rows));
        if total != Some(self.rows) || self.live_rows > self.rows {
            return Err(format!(
                "row counts disagree: segments hold {total:?}, the manifest says {} ({} live)",
                self.rows, self.live_rows
            ));
        }
        Ok(())
    }
}

/// A segment: the rows of some data files with their signatures and band lists.
/// The large arrays are used in place from the verified file (a read-only map of a local
/// file, or the downloaded buffer: `vector::mapped::Arr`), or owned when just built.
#[derive(Clone, Debug, PartialEq)]
pub struct DedupSegment {
    pub files: Vec<SegFile>,
    pub fstart: Vec<u32>,
    pub rows: Arr<u64>,
    pub num_perm: usize,
    pub sigs: Arr<u32>,
    pub valid: Vec<bool>,
    /// LSH bands: `bands` runs of `valid` entries each, sorted by key (see the module docs).
    pub bands: usize,
    pub band_keys: Arr<u64>,
    pub band_rows: Arr<u32>,
    /// Per band, a directory of its list by a key's top bits: derived from the band lists on
    /// first use (`matching::band_dirs`), then kept with the segment.
    pub dirs: std::sync::OnceLock<Vec<Vec<u32>>>,
}

impl DedupSegment {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// (keys, rows) of band `b`, sorted by key.
    pub fn band(&self, b: usize) -> (&[u64], &[u32]) {
        let n = self.band_keys.len() / self.bands.max(1);
        (&self.band_keys[b * n..(b + 1) * n], &self.band_rows[b * n..(b + 1) * n])
    }
    pub fn sig(&self, i: usize) -> &[u32] {
        &self.sigs[i * self.num_perm..(i + 1) * self.num_perm]
    }
}

/// Sections of a file: (tag, little-endian bytes, borrowed where the array already is).
pub type Sections<'a> = Vec<(Tag, Cow<'a, [u8]>)>;

/// The container bytes of `sections` (tests; files are written piece by piece).
#[cfg(test)]
pub fn container_bytes(sections: &Sections<'_>) -> Vec<u8> {
    let refs: Vec<(Tag, &[u8])> = sections.iter().map(|(t, b)| (*t, b.as_ref())).collect();
    crate::index::container::write(&refs)
}
fn flags(data: &[u8], n: usize, what: &str) -> Result<Vec<bool>> {
    if data.len() != n || data.iter().any(|&b| b > 1) {
        return Err(LakeError::CorruptIndex(format!("{what}: expected {n} flags of 0 or 1")));
    }
    Ok(data.iter().map(|&b| b == 1).collect())
}
fn meta(c: &Container, name: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(c.section(&META)?)
        .map_err(|e| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: META: {e}")))
}
fn meta_u64(m: &serde_json::Value, key: &str, name: &str) -> Result<u64> {
    m.get(key)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: META has no '{key}'")))
}

/// The sections of a segment file (its signatures borrowed, not copied).
pub fn segment_sections(s: &DedupSegment) -> Sections<'_> {
    let meta = serde_json::json!({"rows": s.rows.len(), "num_perm": s.num_perm, "bands": s.bands, "files": s.files});
    let meta = serde_json::to_vec(&meta).expect("JSON of plain values");
    let valid: Vec<u8> = s.valid.iter().map(|&v| v as u8).collect();
    vec![
        (META, Cow::Owned(meta)),
        (FSTART, le_bytes(&s.fstart)),
        (ROW, le_bytes(&s.rows)),
        (SIG, le_bytes(&s.sigs)),
        (VALID, Cow::Owned(valid)),
        (BKEY, le_bytes(&s.band_keys)),
        (BROW, le_bytes(&s.band_rows)),
    ]
}

/// [`decode_segment_in`] of bytes in memory (tests, fuzzing).
#[cfg(any(test, feature = "fuzz"))]
pub fn decode_segment(
    bytes: &[u8],
    name: &str,
    expect_rows: u64,
    num_perm: usize,
    bands: usize,
) -> Result<DedupSegment> {
    let buf = Arc::new(Backing::Bytes(bytes::Bytes::copy_from_slice(bytes)));
    decode_segment_in(&buf, name, expect_rows, num_perm, bands)
}

/// Decode and check a segment of `expect_rows` rows, `num_perm` signature values and `bands`
/// LSH bands (`name` is used in errors); its arrays view `buf` where aligned.
pub fn decode_segment_in(
    buf: &Arc<Backing>,
    name: &str,
    expect_rows: u64,
    num_perm: usize,
    bands: usize,
) -> Result<DedupSegment> {
    let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
    let c = Container::open(buf, name)?;
    let m = meta(&c, name)?;
    let n = meta_u64(&m, "rows", name)?;
    if n != expect_rows || meta_u64(&m, "num_perm", name)? != num_perm as u64 {
        return Err(bad(format!(
            "{n} rows of {} values; the manifest says {expect_rows} of {num_perm}",
            m["num_perm"]
        )));
    }
    let files: Vec<SegFile> = serde_json::from_value(m.get("files").cloned().unwrap_or_default())
        .map_err(|e| bad(format!("META files: {e}")))?;
    let n = n as usize;
    let fstart = u32s(c.section(&FSTART)?, files.len() + 1, "FSTART")?;
    if fstart[0] != 0 || fstart.windows(2).any(|w| w[0] > w[1]) || *fstart.last().unwrap_or(&0) as usize != n {
        return Err(bad("file row ranges (FSTART) do not cover the rows in order".into()));
    }
    let rows: Arr<u64> = Arr::view(buf, c.array_range(&ROW, n, 8, "ROW")?);
    for f in 0..files.len() {
        let r = &rows[fstart[f] as usize..fstart[f + 1] as usize];
        if r.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(format!("rows of file '{}' are not strictly increasing", files[f].path)));
        }
    }
    let count = n.checked_mul(num_perm).ok_or_else(|| bad("size overflows".into()))?;
    let sigs: Arr<u32> = Arr::view(buf, c.array_range(&SIG, count, 4, "SIG")?);
    let valid = flags(c.section(&VALID)?, n, "VALID")?;
    if meta_u64(&m, "bands", name)? != bands as u64 {
        return Err(bad(format!("{} bands; the manifest says {bands}", m["bands"])));
    }
    let nv = valid.iter().filter(|&&v| v).count();
    let count = nv.checked_mul(bands).ok_or_else(|| bad("size overflows".into()))?;
    let band_keys: Arr<u64> = Arr::view(buf, c.array_range(&BKEY, count, 8, "BKEY")?);
    let band_rows: Arr<u32> = Arr::view(buf, c.array_range(&BROW, count, 4, "BROW")?);
    let mut seen = vec![u32::MAX; n];
    for b in 0..bands {
        let (keys, rws) = (&band_keys[b * nv..(b + 1) * nv], &band_rows[b * nv..(b + 1) * nv]);
        if keys.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad(format!("band {b}: keys are not sorted")));
        }
        for &r in rws {
            let ok = (r as usize) < n && valid[r as usize] && seen[r as usize] != b as u32;
            if !ok {
                return Err(bad(format!("band {b}: row {r} is out of range, has no signature, or repeats")));
            }
            seen[r as usize] = b as u32;
        }
    }
    Ok(DedupSegment {
        files,
        fstart,
        rows,
        num_perm,
        sigs,
        valid,
        bands,
        band_keys,
        band_rows,
        dirs: Default::default(),
    })
}

/// Cluster state of a version: per global row its root and whether it is live, and for a
/// semantic index each row's neighbour list (`width` per row, u32::MAX after the last).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Clusters {
    pub root: Vec<u64>,
    pub live: Vec<bool>,
    pub width: usize,
    pub nbr: Vec<u32>,
}

impl Clusters {
    /// Minhash and exact indexes: roots and liveness only.
    pub fn plain(root: Vec<u64>, live: Vec<bool>) -> Self {
        Clusters { root, live, width: 0, nbr: Vec::new() }
    }
}

/// The sections of a clusters file.
pub fn clusters_sections(c: &Clusters) -> Sections<'_> {
    let meta = serde_json::to_vec(&serde_json::json!({"rows": c.root.len()})).expect("JSON of plain values");
    let live: Vec<u8> = c.live.iter().map(|&v| v as u8).collect();
    let mut out = vec![(META, Cow::Owned(meta)), (ROOT, le_bytes(&c.root)), (LIVE, Cow::Owned(live))];
    if c.width > 0 {
        out.push((NBR, le_bytes(&c.nbr)));
    }
    out
}

/// Decode and check the clusters file of `expect_rows` rows and `width` neighbours per row
/// (0: no NBR section). A semantic row's neighbours are live rows other than itself, listed
/// once, in its cluster; a deleted row has none.
pub fn decode_clusters(bytes: &[u8], name: &str, expect_rows: u64, width: usize) -> Result<Clusters> {
    let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
    let c = Container::open(bytes, name)?;
    let n = meta_u64(&meta(&c, name)?, "rows", name)?;
    if n != expect_rows {
        return Err(bad(format!("{n} rows; the manifest says {expect_rows}")));
    }
    let n = n as usize;
    let root = u64s(c.section(&ROOT)?, n, "ROOT")?;
    let live = flags(c.section(&LIVE)?, n, "LIVE")?;
    for i in 0..n {
        let r = root[i];
        let ok = if live[i] { r <= i as u64 && live[r as usize] && root[r as usize] == r } else { r == i as u64 };
        if !ok {
            return Err(bad(format!("row {i} has root {r}, not a live row at or before it that is its own root")));
        }
    }
    let mut nbr = Vec::new();
    if width > 0 {
        let count = n.checked_mul(width).ok_or_else(|| bad("size overflows".into()))?;
        nbr = u32s(c.section(&NBR)?, count, "NBR")?;
        for i in 0..n {
            let list = &nbr[i * width..(i + 1) * width];
            let len = list.iter().take_while(|&&x| x != u32::MAX).count();
            let ok = list[len..].iter().all(|&x| x == u32::MAX)
                && (live[i] || len == 0)
                && list[..len].iter().enumerate().all(|(j, &x)| {
                    (x as usize) < n
                        && x as usize != i
                        && live[x as usize]
                        && root[x as usize] == root[i]
                        && !list[..j].contains(&x)
                });
            if !ok {
                return Err(bad(format!(
                    "row {i}'s neighbours are not distinct live rows of its cluster followed by padding"
                )));
            }
        }
    }
    Ok(Clusters { root, live, width, nbr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg() -> DedupSegment {
        DedupSegment {
            files: vec![SegFile { path: "a.parquet".into(), size: 10, tag: None }],
            fstart: vec![0, 3],
            rows: vec![0, 2, 5].into(),
            num_perm: 2,
            sigs: vec![1, 2, 3, 4, u32::MAX, u32::MAX].into(),
            valid: vec![true, true, false],
            bands: 2,
            band_keys: vec![5, 9, 1, 1].into(),
            band_rows: vec![1, 0, 0, 1].into(),
            dirs: Default::default(),
        }
    }

    #[test]
    fn segment_and_clusters_round_trip_and_every_byte_is_checked() {
        let s = seg();
        let b = container_bytes(&segment_sections(&s));
        let got = decode_segment(&b, "s", 3, 2, 2).unwrap();
        assert!(
            got.rows == s.rows && got.sigs == s.sigs && got.band_keys == s.band_keys && got.band_rows == s.band_rows
        );
        assert_eq!((got.files, got.fstart, got.valid), (s.files.clone(), s.fstart.clone(), s.valid.clone()));
        assert!(decode_segment(&b, "s", 4, 2, 2).is_err());
        assert!(decode_segment(&b, "s", 3, 2, 1).is_err());
        // a band listing a row twice, or a row without a signature, or unsorted keys
        for (keys, rows) in [
            (vec![5, 9, 1, 1], vec![1, 1, 0, 1]),
            (vec![5, 9, 1, 1], vec![1, 2, 0, 1]),
            (vec![9, 5, 1, 1], vec![1, 0, 0, 1]),
        ] {
            let bad = DedupSegment { band_keys: keys.into(), band_rows: rows.into(), ..s.clone() };
            assert!(decode_segment(&container_bytes(&segment_sections(&bad)), "s", 3, 2, 2).is_err());
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode_segment(&c, "s", 3, 2, 2).is_err(), "flipped byte {i} went unnoticed");
            assert!(decode_segment(&b[..i], "s", 3, 2, 2).is_err(), "truncated at {i}");
        }
        let cl = Clusters::plain(vec![0, 0, 2], vec![true, true, true]);
        let b = container_bytes(&clusters_sections(&cl));
        assert_eq!(decode_clusters(&b, "c", 3, 0).unwrap(), cl);
        // a root after its row, a dead root, a non-root root: all refused
        for bad in [vec![1, 1, 2], vec![0, 0, 0]] {
            let c = Clusters::plain(bad, vec![true, true, false]);
            assert!(decode_clusters(&container_bytes(&clusters_sections(&c)), "c", 3, 0).is_err());
        }
        // semantic neighbour lists: in the cluster, live, distinct, padded at the end
        let m = u32::MAX;
        let ok = Clusters { width: 2, nbr: vec![1, m, 0, m, m, m], ..cl.clone() };
        let b = container_bytes(&clusters_sections(&ok));
        assert_eq!(decode_clusters(&b, "c", 3, 2).unwrap(), ok);
        assert!(decode_clusters(&b, "c", 3, 0).is_ok() && decode_clusters(&b, "c", 3, 3).is_err());
        for bad in [vec![2, m, 0, m, m, m], vec![1, 1, 0, m, m, m], vec![m, 1, 0, m, m, m], vec![0, m, 0, m, m, m]] {
            let c = Clusters { nbr: bad.clone(), ..ok.clone() };
            assert!(decode_clusters(&container_bytes(&clusters_sections(&c)), "c", 3, 2).is_err(), "{bad:?}");
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode_clusters(&c, "c", 3, 2).is_err(), "flipped byte {i} went unnoticed");
        }
    }
}
