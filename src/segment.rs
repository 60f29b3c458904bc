//! A segment: the immutable unit of an index. It holds, for a set of data files, the rows'
//! addresses (file, row), their prepared vectors, optional key values and the HNSW graph;
//! never any other column. Nodes are ordered by (file, row), so an address maps to its node
//! by binary search.
//!
//! Stored as one lakevec container (see [`crate::container`]) with sections
//! `META` (JSON), `FILES` (JSON list of paths), `FSTART` (u32, files + 1 node offsets),
//! `ROWS` (u64), `VECTORS` (f32), `LAYER0` (u32), `UPOFFnn`/`UPNBRnn` (u32, one pair per
//! upper layer) and `KEYS` (an Arrow IPC stream, when a key column is indexed). Every
//! section is checksummed, and every count and id is checked against the others before use.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use arrow_schema::{Field, Schema};

use crate::ann::Graph;
use crate::container::{self, Container, Tag};
use crate::error::{LakeError, Result};

/// One segment in memory.
#[derive(Clone, Debug)]
pub struct Segment {
    pub dim: usize,
    /// Data file paths (as `Table.files()` lists them) and their sizes in bytes.
    pub files: Vec<String>,
    pub file_sizes: Vec<u64>,
    /// `files.len() + 1` offsets: the nodes of file `f` are `fstart[f]..fstart[f + 1]`.
    pub fstart: Vec<u32>,
    /// Row position of each node within its file, increasing within a file.
    pub rows: Vec<u64>,
    /// `n * dim` prepared vectors.
    pub vectors: Vec<f32>,
    pub graph: Graph,
    /// Key column values, one per node.
    pub keys: Option<ArrayRef>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    n: usize,
    dim: usize,
    files: usize,
    m0: usize,
    layers: usize,
    entry: u32,
}

fn tag(name: &str) -> Tag {
    let mut t = [0u8; 8];
    t[..name.len()].copy_from_slice(name.as_bytes());
    t
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(data: &[u8], count: usize, what: &str) -> Result<Vec<u32>> {
    let need = count.checked_mul(4).ok_or_else(|| LakeError::CorruptIndex(format!("{what}: size overflows")))?;
    if data.len() != need {
        return Err(LakeError::CorruptIndex(format!("{what}: {} bytes, expected {need}", data.len())));
    }
    Ok(data.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

impl Segment {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// The file index of node `i`.
    pub fn file_of(&self, i: u32) -> usize {
        self.fstart.partition_point(|&s| s <= i) - 1
    }

    /// The node holding (`file`, `row`), if indexed.
    pub fn node_of(&self, file: usize, row: u64) -> Option<u32> {
        let (a, b) = (self.fstart[file] as usize, self.fstart[file + 1] as usize);
        self.rows[a..b].binary_search(&row).ok().map(|j| (a + j) as u32)
    }

    /// Serialize to container bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let g = &self.graph;
        let meta = Meta { n: self.len(), dim: self.dim, files: self.files.len(), m0: g.m0, layers: g.upper.len(), entry: g.entry };
        let meta = serde_json::to_vec(&meta).map_err(|e| LakeError::Internal(e.to_string()))?;
        let files = serde_json::to_vec(&(&self.files, &self.file_sizes)).map_err(|e| LakeError::Internal(e.to_string()))?;
        let fstart = u32_bytes(&self.fstart);
        let rows: Vec<u8> = self.rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let vectors: Vec<u8> = self.vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
        let layer0 = u32_bytes(&g.layer0);
        let upper: Vec<(Vec<u8>, Vec<u8>)> = g.upper.iter().map(|(o, n)| (u32_bytes(o), u32_bytes(n))).collect();
        let keys = match &self.keys {
            Some(k) => {
                let schema = Arc::new(Schema::new(vec![Field::new("key", k.data_type().clone(), true)]));
                let batch = RecordBatch::try_new(schema.clone(), vec![k.clone()])?;
                let mut buf = Vec::new();
                let mut w = StreamWriter::try_new(&mut buf, &schema)?;
                w.write(&batch)?;
                w.finish()?;
                drop(w);
                Some(buf)
            }
            None => None,
        };
        let mut sections: Vec<(Tag, &[u8])> = vec![
            (tag("META"), &meta),
            (tag("FILES"), &files),
            (tag("FSTART"), &fstart),
            (tag("ROWS"), &rows),
            (tag("VECTORS"), &vectors),
            (tag("LAYER0"), &layer0),
        ];
        let names: Vec<(Tag, Tag)> =
            (1..=upper.len()).map(|l| (tag(&format!("UPOFF{l:02}")), tag(&format!("UPNBR{l:02}")))).collect();
        for ((o, n), (to, tn)) in upper.iter().zip(&names) {
            sections.push((*to, o));
            sections.push((*tn, n));
        }
        if let Some(k) = &keys {
            sections.push((tag("KEYS"), k));
        }
        if sections.len() > container::MAX_SECTIONS as usize {
            return Err(LakeError::Internal(format!("{} sections exceed the container's limit", sections.len())));
        }
        Ok(container::write(&sections))
    }

    /// Parse and verify container bytes (`name` is used in errors).
    pub fn decode(bytes: &[u8], name: &str) -> Result<Segment> {
        let c = Container::open(bytes, name)?;
        let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
        let meta: Meta = serde_json::from_slice(c.section(&tag("META"))?).map_err(|e| bad(format!("META: {e}")))?;
        let (n, dim) = (meta.n, meta.dim);
        if (dim == 0 && n > 0) || n > u32::MAX as usize - 1 || meta.m0 == 0 || meta.m0 > 512 || meta.layers > 16 {
            return Err(bad(format!("implausible header {}", String::from_utf8_lossy(c.section(&tag("META"))?))));
        }
        let (files, file_sizes): (Vec<String>, Vec<u64>) =
            serde_json::from_slice(c.section(&tag("FILES"))?).map_err(|e| bad(format!("FILES: {e}")))?;
        if files.len() != meta.files || file_sizes.len() != meta.files {
            return Err(bad(format!("{} files listed, header says {}", files.len(), meta.files)));
        }
        let fstart = u32s(c.section(&tag("FSTART"))?, meta.files + 1, "FSTART").map_err(|e| e.context(name))?;
        if fstart.first() != Some(&0) || fstart.last().map(|&x| x as usize) != Some(n) || fstart.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("file offsets are not increasing from 0 to the row count".into()));
        }
        let rows = container::u64s(c.section(&tag("ROWS"))?, n, "ROWS").map_err(|e| e.context(name))?;
        for f in 0..meta.files {
            if rows[fstart[f] as usize..fstart[f + 1] as usize].windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad(format!("rows of file '{}' are not increasing", files[f])));
            }
        }
        let count = n.checked_mul(dim).ok_or_else(|| bad("vector size overflows".into()))?;
        let vectors = container::f32s(c.section(&tag("VECTORS"))?, count, "VECTORS").map_err(|e| e.context(name))?;
        let m0 = meta.m0;
        let layer0 = u32s(c.section(&tag("LAYER0"))?, n * (1 + m0), "LAYER0").map_err(|e| e.context(name))?;
        for i in 0..n {
            let base = i * (1 + m0);
            let cnt = layer0[base] as usize;
            if cnt > m0 || layer0[base + 1..base + 1 + cnt].iter().any(|&x| x as usize >= n) {
                return Err(bad(format!("layer 0 neighbours of node {i} are out of range")));
            }
        }
        let mut upper = Vec::with_capacity(meta.layers);
        for l in 1..=meta.layers {
            let o = u32s(c.section(&tag(&format!("UPOFF{l:02}")))?, n + 1, "UPOFF").map_err(|e| e.context(name))?;
            let nb_bytes = c.section(&tag(&format!("UPNBR{l:02}")))?;
            if o.first() != Some(&0) || o.windows(2).any(|w| w[0] > w[1]) || o[n] as usize * 4 != nb_bytes.len() {
                return Err(bad(format!("layer {l} offsets are inconsistent")));
            }
            let nb = u32s(nb_bytes, o[n] as usize, "UPNBR").map_err(|e| e.context(name))?;
            if nb.iter().any(|&x| x as usize >= n) {
                return Err(bad(format!("layer {l} neighbours are out of range")));
            }
            upper.push((o, nb));
        }
        if n > 0 && meta.entry as usize >= n {
            return Err(bad(format!("entry point {} is out of range", meta.entry)));
        }
        let keys = match c.has(&tag("KEYS")) {
            true => {
                let bytes = c.section(&tag("KEYS"))?;
                let mut r = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| bad(format!("KEYS: {e}")))?;
                let batch = r.next().ok_or_else(|| bad("KEYS: no batch".into()))?.map_err(|e| bad(format!("KEYS: {e}")))?;
                if batch.num_columns() != 1 || batch.num_rows() != n {
                    return Err(bad(format!("KEYS holds {} rows, expected {n}", batch.num_rows())));
                }
                Some(batch.column(0).clone())
            }
            false => None,
        };
        let graph = Graph { n, m0, layer0, upper, entry: meta.entry };
        Ok(Segment { dim, files, file_sizes, fstart, rows, vectors, graph, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn sample() -> Segment {
        let n = 3;
        let m0 = 2;
        let layer0 = vec![2, 1, 2, 1, 0, 0, 1, 1, 0];
        Segment {
            dim: 2,
            files: vec!["a.parquet".into(), "b.parquet".into()],
            file_sizes: vec![10, 20],
            fstart: vec![0, 2, 3],
            rows: vec![0, 5, 1],
            vectors: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            graph: Graph { n, m0, layer0, upper: vec![(vec![0, 1, 1, 2], vec![2, 0])], entry: 0 },
            keys: Some(Arc::new(Int64Array::from(vec![7, 8, 9]))),
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let s = sample();
        let d = Segment::decode(&s.encode().unwrap(), "s").unwrap();
        assert_eq!(d.rows, s.rows);
        assert_eq!(d.graph.layer0, s.graph.layer0);
        assert_eq!(d.graph.upper, s.graph.upper);
        assert_eq!(d.file_of(1), 0);
        assert_eq!(d.file_of(2), 1);
        assert_eq!(d.node_of(0, 5), Some(1));
        assert_eq!(d.node_of(1, 5), None);
        assert_eq!(d.keys.unwrap().len(), 3);
    }

    #[test]
    fn every_flip_and_truncation_is_caught() {
        let bytes = sample().encode().unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(matches!(Segment::decode(&b, "s"), Err(LakeError::CorruptIndex(_))), "flip at {i}");
            assert!(matches!(Segment::decode(&bytes[..i], "s"), Err(LakeError::CorruptIndex(_))), "cut at {i}");
        }
    }
}
