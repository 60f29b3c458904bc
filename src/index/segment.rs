//! A segment: the immutable unit of an index. It holds, for a set of data files, the rows'
//! addresses (file, row), their prepared vectors, optional key values and the search
//! structure of its index kind ([`SegmentIndex`]); never any other column. Nodes are ordered by
//! (file, row), so an address maps to its node by binary search.
//!
//! Stored as one lakevec container (see [`crate::index::container`]) with sections
//! `META` (JSON: counts, and the kind with its header fields), `FILES` (JSON list of paths),
//! `FSTART` (u32, files + 1 node offsets), `ROWS` (u64), `VECTORS` (f32), the kind's own
//! sections (HNSW: [`crate::index::hnsw`]) and `KEYS` (an Arrow IPC stream, when a key column
//! is indexed). Every section is checksummed, and every count and id is checked against the
//! others before use. A `META` without `kind` (segments written before kinds existed) is HNSW.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use arrow_schema::{Field, Schema};

use crate::error::{LakeError, Result};
use crate::index::container::{self, section_tag, u32s, Container, Tag};
use crate::index::kind::SegmentIndex;
use crate::vector::column::MAX_DIM;
use crate::vector::mapped::{le_bytes, Arr, Backing};

/// One segment in memory.
#[derive(Clone, Debug)]
pub struct Segment {
    pub dim: usize,
    /// Data file paths (as `Table.files()` lists them) and their sizes in bytes.
    pub files: Vec<String>,
    pub file_sizes: Vec<u64>,
    /// Each file's version when it was read (ETag or last-modified; `None` when the table
    /// format's files are immutable or the segment predates tags). Section `FTAGS`, optional.
    pub file_tags: Vec<Option<String>>,
    /// `files.len() + 1` offsets: the nodes of file `f` are `fstart[f]..fstart[f + 1]`.
    pub fstart: Vec<u32>,
    /// Row position of each node within its file, increasing within a file.
    pub rows: Arr<u64>,
    /// `n * dim` prepared vectors (owned after a build, in place in the file once loaded);
    /// empty in a segment of a compressed kind stored without floats (see
    /// [`crate::index::rerank::RerankSource`]).
    pub vectors: Arr<f32>,
    /// The kind's search structure over `vectors`.
    pub index: SegmentIndex,
    /// Key column values, one per node.
    pub keys: Option<ArrayRef>,
}

/// The kind-independent part of `META` (the kind's own fields sit beside these).
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    n: usize,
    dim: usize,
    files: usize,
    #[serde(default = "legacy_kind")]
    kind: String,
}

fn legacy_kind() -> String {
    "hnsw".into()
}

impl Segment {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of the index file mapped for this segment (0 when its arrays are in memory).
    pub fn mapped_bytes(&self) -> usize {
        self.rows.backing().map_or(0, |b| b.mapped_bytes())
    }

    /// Bytes of this segment in this process's memory: the resident pages of its mapped file
    /// (or its downloaded buffer), plus the arrays it owns (see
    /// [`crate::vector::mapped::Backing::resident_bytes`]).
    pub fn resident_bytes(&self) -> usize {
        let graph = self.index.owned_bytes();
        let keys = self.keys.as_ref().map_or(0, |k| k.get_array_memory_size());
        self.rows.backing().map_or(0, |b| b.resident_bytes())
            + self.vectors.owned_bytes()
            + self.rows.owned_bytes()
            + std::mem::size_of_val(self.fstart.as_slice())
            + graph
            + keys
    }

    /// Node `i`'s float vector (the segment must hold floats: see [`Self::vector_cow`]).
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Whether the segment holds its float vectors (not a compressed kind stored without).
    pub fn has_floats(&self) -> bool {
        self.vectors.len() == self.len() * self.dim
    }

    /// Node `i`'s vector: the stored floats, or decoded from the kind's code in a segment
    /// without floats (an approximation within the code's precision).
    pub fn vector_cow(&self, i: usize) -> std::borrow::Cow<'_, [f32]> {
        use std::borrow::Cow;
        match (self.has_floats(), self.index.decode_row(i)) {
            (false, Some(v)) => Cow::Owned(v),
            _ => Cow::Borrowed(self.vector(i)),
        }
    }

    /// Drop the float vectors when the kind does not store them (after a build has used them).
    pub fn drop_floats_if_unstored(&mut self) {
        if !self.index.stores_floats() {
            self.vectors = Vec::new().into();
        }
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

    /// Serialize to container bytes in memory (tests and fuzzing; index files are written
    /// from [`Self::sections`] without this copy).
    #[cfg(test)]
    pub fn encode(&self) -> Result<Vec<u8>> {
        let sections = self.sections()?;
        let refs: Vec<(Tag, &[u8])> = sections.iter().map(|(t, b)| (*t, b.as_ref())).collect();
        Ok(container::write(&refs))
    }

    /// The container sections of the segment: small ones encoded, the arrays (vectors, rows,
    /// graph) borrowed as they are in memory (no copy on little-endian targets).
    pub fn sections(&self) -> Result<Vec<(Tag, std::borrow::Cow<'_, [u8]>)>> {
        use std::borrow::Cow;
        let internal = |e: serde_json::Error| LakeError::Internal(e.to_string());
        let (kind_meta, kind_sections) = self.index.encode()?;
        let mut meta = serde_json::to_value(Meta {
            n: self.len(),
            dim: self.dim,
            files: self.files.len(),
            kind: self.index.kind_name().into(),
        })
        .map_err(internal)?;
        if let (Some(m), serde_json::Value::Object(k)) = (meta.as_object_mut(), kind_meta) {
            m.extend(k);
        }
        let meta = serde_json::to_vec(&meta).map_err(internal)?;
        let files = serde_json::to_vec(&(&self.files, &self.file_sizes)).map_err(internal)?;
        let fstart = le_bytes(&self.fstart);
        let rows = le_bytes(&self.rows);
        let vectors = self.index.stores_floats().then(|| le_bytes(&self.vectors));
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
        let mut sections: Vec<(Tag, Cow<'_, [u8]>)> = vec![
            (section_tag("META"), Cow::Owned(meta)),
            (section_tag("FILES"), Cow::Owned(files)),
            (section_tag("FSTART"), fstart),
            (section_tag("ROWS"), rows),
        ];
        if let Some(v) = vectors {
            sections.push((section_tag("VECTORS"), v));
        }
        sections.extend(kind_sections);
        if let Some(k) = keys {
            sections.push((section_tag("KEYS"), Cow::Owned(k)));
        }
        let tags = match self.file_tags.iter().any(Option::is_some) {
            true => Some(serde_json::to_vec(&self.file_tags).map_err(|e| LakeError::Internal(e.to_string()))?),
            false => None,
        };
        if let Some(t) = tags {
            sections.push((section_tag("FTAGS"), Cow::Owned(t)));
        }
        if sections.len() > container::MAX_SECTIONS as usize {
            return Err(LakeError::Internal(format!("{} sections exceed the container's limit", sections.len())));
        }
        Ok(sections)
    }

    /// Parse and verify container bytes (`name` is used in errors); the arrays are copied.
    #[cfg(any(test, feature = "fuzz"))]
    pub fn decode(bytes: &[u8], name: &str) -> Result<Segment> {
        Self::decode_in(&Arc::new(Backing::Bytes(bytes::Bytes::copy_from_slice(bytes))), name)
    }

    /// Parse and verify the container in `buf`; the vectors, rows and graph are used in place
    /// (views into `buf`, which they keep alive) when their sections are aligned.
    pub fn decode_in(buf: &Arc<Backing>, name: &str) -> Result<Segment> {
        let c = Container::open(buf, name)?;
        let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
        let meta_bytes = c.section(&section_tag("META"))?;
        let meta: Meta = serde_json::from_slice(meta_bytes).map_err(|e| bad(format!("META: {e}")))?;
        let (n, dim) = (meta.n, meta.dim);
        if (dim == 0 && n > 0) || dim > MAX_DIM || n > u32::MAX as usize - 1 {
            return Err(bad(format!("implausible header {}", String::from_utf8_lossy(meta_bytes))));
        }
        let (files, file_sizes): (Vec<String>, Vec<u64>) =
            serde_json::from_slice(c.section(&section_tag("FILES"))?).map_err(|e| bad(format!("FILES: {e}")))?;
        if files.len() != meta.files || file_sizes.len() != meta.files {
            return Err(bad(format!("{} files listed, header says {}", files.len(), meta.files)));
        }
        let file_tags: Vec<Option<String>> = match c.has(&section_tag("FTAGS")) {
            true => {
                serde_json::from_slice(c.section(&section_tag("FTAGS"))?).map_err(|e| bad(format!("FTAGS: {e}")))?
            }
            false => vec![None; meta.files],
        };
        if file_tags.len() != meta.files {
            return Err(bad(format!("{} file tags for {} files", file_tags.len(), meta.files)));
        }
        let fstart = u32s(c.section(&section_tag("FSTART"))?, meta.files + 1, "FSTART").map_err(|e| e.context(name))?;
        if fstart.first() != Some(&0)
            || fstart.last().map(|&x| x as usize) != Some(n)
            || fstart.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("file offsets are not increasing from 0 to the row count".into()));
        }
        let rows: Arr<u64> = Arr::view(buf, c.array_range(&section_tag("ROWS"), n, 8, "ROWS")?);
        for f in 0..meta.files {
            if rows[fstart[f] as usize..fstart[f + 1] as usize].windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad(format!("rows of file '{}' are not increasing", files[f])));
            }
        }
        let count = n.checked_mul(dim).ok_or_else(|| bad("vector size overflows".into()))?;
        let mut index = SegmentIndex::decode(&meta.kind, meta_bytes, &c, buf, n, dim, name)?;
        let vectors: Arr<f32> = match (index.stores_floats(), c.has(&section_tag("VECTORS"))) {
            (true, _) => Arr::view(buf, c.array_range(&section_tag("VECTORS"), count, 4, "VECTORS")?),
            (false, false) => Vec::new().into(),
            (false, true) => return Err(bad("a VECTORS section in a segment stored without floats".into())),
        };
        // Stored vectors were validated when read from the lake: a NaN or infinity here would
        // rank its row first (or last) for every query, so it is corruption, not data.
        if let Some(i) = vectors.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!("node {} holds a non-finite value", i / dim.max(1))));
        }
        let dups = index.find_dups(&vectors, dim);
        if let Some(g) = index.graph_mut() {
            // Groups of identical rows are not stored: found again from the vectors (or codes).
            g.dups = dups.map(Arc::new);
        }
        let keys = match c.has(&section_tag("KEYS")) {
            true => Some(read_keys(c.section(&section_tag("KEYS"))?, n).map_err(|m| bad(format!("KEYS: {m}")))?),
            false => None,
        };
        Ok(Segment { dim, files, file_sizes, file_tags, fstart, rows, vectors, index, keys })
    }
}

/// `arrays[i][j]` for each `(i, j)` of `ix` (`arrow::compute::interleave`), over key arrays
/// that may differ in type after a schema evolution (Iceberg promotes int -> long, float ->
/// double, decimal precision): all are cast to the one type they all widen to; when there is
/// none, a `Schema` error names the types.
pub fn interleave_keys(arrays: &[&dyn arrow::array::Array], ix: &[(usize, usize)]) -> Result<ArrayRef> {
    use arrow::datatypes::DataType as T;
    let first = match arrays.first() {
        Some(a) => a.data_type().clone(),
        None => return Ok(arrow::array::new_empty_array(&T::Null)),
    };
    if let [one] = arrays {
        // one source (a single-segment search): a take, without interleave's per-call set-up
        let rows = arrow::array::UInt32Array::from_iter_values(ix.iter().map(|&(_, j)| j as u32));
        return Ok(arrow::compute::take(*one, &rows, None)?);
    }
    if arrays.iter().all(|a| a.data_type() == &first) {
        return Ok(arrow::compute::interleave(arrays, ix)?);
    }
    let widens = |from: &T, to: &T| match (from, to) {
        (T::Int8, T::Int16 | T::Int32 | T::Int64) | (T::Int16, T::Int32 | T::Int64) | (T::Int32, T::Int64) => true,
        (T::UInt8 | T::UInt16 | T::UInt32, T::Int64) | (T::Float32, T::Float64) => true,
        (T::Decimal128(p, s), T::Decimal128(q, t)) => s == t && p <= q,
        (T::Utf8, T::LargeUtf8) | (T::Binary, T::LargeBinary) => true,
        (a, b) => a == b,
    };
    // The type every key array widens to (the newest, after a promotion).
    let target = arrays
        .iter()
        .map(|a| a.data_type())
        .find(|t| arrays.iter().all(|a| widens(a.data_type(), t)))
        .cloned()
        .ok_or_else(|| {
            let types: Vec<String> = arrays.iter().map(|a| a.data_type().to_string()).collect();
            LakeError::Schema(format!(
                "the key column changed type ({}), not by a widening; rebuild the index",
                types.join(" -> ")
            ))
        })?;
    let cast: Vec<ArrayRef> = arrays.iter().map(|a| arrow::compute::cast(*a, &target)).collect::<Result<_, _>>()?;
    let refs: Vec<&dyn arrow::array::Array> = cast.iter().map(|a| a.as_ref()).collect();
    Ok(arrow::compute::interleave(&refs, ix)?)
}

/// Whether an IPC schema field is a key type arrow-ipc maps without panicking (its schema
/// conversion panics, rather than errs, on e.g. an Int of bit width 0): flat types only.
fn key_type_ok(f: &arrow::ipc::Field<'_>) -> std::result::Result<(), String> {
    use arrow::ipc::{DateUnit, Precision, TimeUnit, Type};
    if f.dictionary().is_some() || f.children().is_some_and(|c| !c.is_empty()) {
        return Err("a nested or dictionary key column".into());
    }
    let ok = match f.type_type() {
        Type::Int => f.type_as_int().is_some_and(|t| matches!(t.bitWidth(), 8 | 16 | 32 | 64)),
        Type::FloatingPoint => f
            .type_as_floating_point()
            .is_some_and(|t| matches!(t.precision(), Precision::HALF | Precision::SINGLE | Precision::DOUBLE)),
        Type::Utf8 | Type::LargeUtf8 | Type::Binary | Type::LargeBinary | Type::Bool => true,
        Type::Utf8View | Type::BinaryView => true,
        Type::Time => f.type_as_time().is_some_and(|t| {
            matches!((t.unit(), t.bitWidth()), (TimeUnit::SECOND | TimeUnit::MILLISECOND, 32))
                || matches!((t.unit(), t.bitWidth()), (TimeUnit::MICROSECOND | TimeUnit::NANOSECOND, 64))
        }),
        Type::Duration => f.type_as_duration().is_some_and(|t| {
            matches!(t.unit(), TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND)
        }),
        Type::Date => f.type_as_date().is_some_and(|t| matches!(t.unit(), DateUnit::DAY | DateUnit::MILLISECOND)),
        Type::Timestamp => f.type_as_timestamp().is_some_and(|t| {
            matches!(t.unit(), TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND)
        }),
        Type::Decimal => f.type_as_decimal().is_some_and(|t| {
            matches!(t.bitWidth(), 128 | 256)
                && (1..=76).contains(&t.precision())
                && (0..=t.precision()).contains(&t.scale())
        }),
        Type::FixedSizeBinary => f.type_as_fixed_size_binary().is_some_and(|t| t.byteWidth() > 0),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("key type {:?} is not one lakevec writes", f.type_type()))
    }
}

/// The key column from a KEYS section: an uncompressed Arrow IPC stream of one batch of `n`
/// rows. Every message is checked before arrow decodes it (lengths within the bytes, no
/// compression: a compressed buffer's 8-byte length prefix would size an allocation).
fn read_keys(bytes: &[u8], n: usize) -> std::result::Result<ArrayRef, String> {
    use arrow::buffer::Buffer;
    use arrow::ipc::{root_as_message, MessageHeader};
    let mut at = 0usize;
    loop {
        let word = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        let mut len = word(at).ok_or("truncated stream")?;
        at += 4;
        if len == u32::MAX {
            len = word(at).ok_or("truncated stream")?;
            at += 4;
        }
        if len == 0 {
            break;
        }
        let meta = bytes.get(at..at + len as usize).ok_or("message longer than the section")?;
        let msg = root_as_message(meta).map_err(|e| format!("bad message: {e}"))?;
        let body = usize::try_from(msg.bodyLength()).map_err(|_| "negative body length")?;
        at = (at + len as usize)
            .checked_add(body)
            .filter(|&e| e <= bytes.len())
            .ok_or("body longer than the section")?;
        if msg.header_type() == MessageHeader::Schema {
            let fields = msg.header_as_schema().and_then(|s| s.fields()).ok_or("a schema without fields")?;
            if fields.len() != 1 {
                return Err(format!("{} key columns in the schema, expected 1", fields.len()));
            }
            key_type_ok(&fields.get(0))?;
        }
        let batch = match msg.header_type() {
            MessageHeader::RecordBatch => msg.header_as_record_batch(),
            MessageHeader::DictionaryBatch => msg.header_as_dictionary_batch().and_then(|d| d.data()),
            _ => None,
        };
        if let Some(b) = batch {
            if b.compression().is_some() {
                return Err("compressed buffers (lakevec writes KEYS uncompressed)".into());
            }
            // Every buffer inside the message body (arrow slices them without checking).
            let inside = |x: &arrow::ipc::Buffer| {
                x.offset() >= 0
                    && x.length() >= 0
                    && (x.offset() as u64).saturating_add(x.length() as u64) <= body as u64
            };
            if b.buffers().is_some_and(|bs| !bs.iter().all(inside)) {
                return Err("a buffer lies outside its message body".into());
            }
            // Field nodes: lengths and null counts arrow sizes bitmaps by (it asserts, not
            // errors, when a validity buffer is too short). The key column's node holds `n`.
            let nodes: Vec<_> = b.nodes().map(|v| v.iter().copied().collect()).unwrap_or_default();
            if nodes.iter().any(|f| f.length() < 0 || f.null_count() < 0 || f.null_count() > f.length()) {
                return Err("a field node has a negative or impossible length".into());
            }
            if msg.header_type() == MessageHeader::RecordBatch {
                let top = nodes.first().ok_or("a batch without a column")?;
                let validity = b.buffers().and_then(|bs| bs.iter().next().map(|x| x.length())).unwrap_or(0);
                if b.length() != n as i64 || top.length() != n as i64 {
                    return Err(format!("a batch of {} rows, expected {n}", b.length()));
                }
                if top.null_count() > 0 && validity < n.div_ceil(8) as i64 {
                    return Err("a validity buffer shorter than its column".into());
                }
            }
            if nodes.iter().any(|f| f.length() > b.length().max(0).saturating_mul(1 << 16)) {
                return Err("a field node longer than its batch allows".into());
            }
        }
    }
    // arrow-ipc's schema conversion panics on types it cannot map (an Int of bit width 0,
    // found by the segment fuzz target) instead of erring: that call is guarded, so a crafted
    // schema is a clear error here (the fuzz target, which aborts on any panic, still counts it).
    let mut buf = Buffer::from(bytes[..at].to_vec());
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        arrow::ipc::reader::StreamDecoder::new().decode(&mut buf).map_err(|e| e.to_string())
    }));
    let batch = decoded.map_err(|_| "a schema or batch arrow cannot decode".to_string())??.ok_or("no batch")?;
    if batch.num_columns() != 1 || batch.num_rows() != n {
        return Err(format!("{} rows, expected {n}", batch.num_rows()));
    }
    Ok(batch.column(0).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::graph::Graph;
    use arrow::array::Int64Array;

    fn sample(index: SegmentIndex) -> Segment {
        Segment {
            dim: 2,
            files: vec!["a.parquet".into(), "b.parquet".into()],
            file_sizes: vec![10, 20],
            file_tags: vec![Some("e1".into()), None],
            fstart: vec![0, 2, 3],
            rows: vec![0, 5, 1].into(),
            vectors: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0].into(),
            index,
            keys: Some(Arc::new(Int64Array::from(vec![7, 8, 9]))),
        }
    }

    fn graph() -> Graph {
        let layer0 = vec![2, 1, 2, 1, 0, 0, 1, 1, 0];
        Graph { n: 3, m0: 2, layer0: layer0.into(), upper: vec![(vec![0, 1, 1, 2], vec![2, 0])], entry: 0, dups: None }
    }

    /// An SQ8 structure over `sample`'s vectors.
    fn sq8() -> SegmentIndex {
        sq8_with(crate::index::rerank::RerankSource::Sidecar)
    }

    fn sq8_with(rerank_source: crate::index::rerank::RerankSource) -> SegmentIndex {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let sq = crate::vector::sq8::Sq8::train(&v, 2);
        let (codes, norms) = sq.encode(&v, crate::vector::distance::Metric::L2);
        SegmentIndex::HnswSq8(Box::new(crate::index::hnsw_sq8::Sq8Graph {
            graph: graph(),
            rerank_source,
            sq,
            codes: codes.into(),
            norms: norms.into(),
        }))
    }

    #[test]
    fn sq8_segments_round_trip() {
        let s = sample(sq8());
        let d = Segment::decode(&s.encode().unwrap(), "s").unwrap();
        let (SegmentIndex::HnswSq8(a), SegmentIndex::HnswSq8(b)) = (&s.index, &d.index) else {
            panic!("expected SQ8 segments");
        };
        assert_eq!((a.sq.clone(), &a.codes, &a.norms), (b.sq.clone(), &b.codes, &b.norms));
        assert_eq!(a.graph.layer0, b.graph.layer0);
    }

    /// An HNSW_RABITQ structure over `sample`'s vectors with the centroid numbers `cids`.
    fn rabitq_with(cids: Vec<u16>) -> SegmentIndex {
        use crate::vector::rabitq::Rabitq;
        let v = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let c = crate::runtime::CancelToken::new();
        let (q, _) = Rabitq::train(&v, 2, crate::vector::distance::Metric::L2, 1, &c).unwrap();
        let (codes, factors) = q.encode(&v, &[0, 0, 0]);
        SegmentIndex::HnswRabitq(Box::new(crate::index::hnsw_rabitq::RabitqGraph {
            graph: graph(),
            rerank_source: crate::index::rerank::RerankSource::Sidecar,
            q,
            codes: codes.into(),
            cids: cids.into(),
            factors: factors.into(),
        }))
    }

    #[test]
    fn rabitq_segments_round_trip_and_centroid_numbers_are_checked() {
        let s = sample(rabitq_with(vec![0, 0, 0]));
        let d = Segment::decode(&s.encode().unwrap(), "s").unwrap();
        let (SegmentIndex::HnswRabitq(a), SegmentIndex::HnswRabitq(b)) = (&s.index, &d.index) else {
            panic!("expected RaBitQ segments");
        };
        assert_eq!((&a.q, &a.codes, &a.cids, &a.factors), (&b.q, &b.codes, &b.cids, &b.factors));
        let bad = sample(rabitq_with(vec![0, 1, 0]));
        match Segment::decode(&bad.encode().unwrap(), "s") {
            Err(LakeError::CorruptIndex(m)) => assert!(m.contains("node 1's RaBitQ centroid 1"), "{m}"),
            other => panic!("expected CorruptIndex, got {other:?}"),
        }
        // a segment of the one-centroid development format (no `centroids` in META)
        let old = kind_container_with(&s, |meta| {
            meta.remove("centroids");
        });
        match Segment::decode(&old, "s") {
            Err(LakeError::CorruptIndex(m)) => assert!(m.contains("rebuild the index"), "{m}"),
            other => panic!("expected CorruptIndex, got {other:?}"),
        }
    }

    /// A segment stored without floats has no VECTORS section, searches its codes, and hands
    /// out decoded vectors; a VECTORS section in such a file is corruption.
    #[test]
    fn sq8_segments_without_floats() {
        use crate::index::rerank::RerankSource;
        for source in [RerankSource::None, RerankSource::Lake] {
            let mut s = sample(sq8_with(source));
            let with_floats = kind_container_with(&s, |_| {});
            s.drop_floats_if_unstored();
            assert!(!s.has_floats());
            let bytes = s.encode().unwrap();
            assert!(!Container::open(&bytes, "s").unwrap().has(&section_tag("VECTORS")));
            let d = Segment::decode(&bytes, "s").unwrap();
            assert!(!d.has_floats() && d.vectors.is_empty());
            assert_eq!(d.index.rerank_source(), source);
            // decoded within half a step (the rows are 0..6 on a grid of 4/255)
            let v = d.vector_cow(2);
            assert!((v[0] - 4.0).abs() < 0.01 && (v[1] - 5.0).abs() < 0.01, "{v:?}");
            let hits = d.index.scan(&d.vectors, 2, crate::vector::distance::Metric::L2, &[4.0, 5.0], 1, None, None);
            assert_eq!(hits[0].1, 2);
            match Segment::decode(&with_floats, "s") {
                Err(LakeError::CorruptIndex(m)) => assert!(m.contains("stored without floats"), "{m}"),
                other => panic!("expected CorruptIndex, got {other:?}"),
            }
        }
    }

    fn graph_of(s: &Segment) -> &Graph {
        match &s.index {
            SegmentIndex::Hnsw(g) => g,
            other => panic!("expected an HNSW segment, got {}", other.kind_name()),
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let s = sample(SegmentIndex::Hnsw(graph()));
        let d = Segment::decode(&s.encode().unwrap(), "s").unwrap();
        assert_eq!(d.rows, s.rows);
        assert_eq!(graph_of(&d).layer0, graph_of(&s).layer0);
        assert_eq!(graph_of(&d).upper, graph_of(&s).upper);
        assert_eq!(d.file_of(1), 0);
        assert_eq!(d.file_of(2), 1);
        assert_eq!(d.node_of(0, 5), Some(1));
        assert_eq!(d.node_of(1, 5), None);
        assert_eq!(d.keys.unwrap().len(), 3);
    }

    #[test]
    fn flat_segments_round_trip_without_graph_sections() {
        let s = sample(SegmentIndex::Flat);
        let bytes = s.encode().unwrap();
        let c = Container::open(&bytes, "s").unwrap();
        assert!(!c.has(&section_tag("LAYER0")));
        let d = Segment::decode(&bytes, "s").unwrap();
        assert!(matches!(d.index, SegmentIndex::Flat));
        assert_eq!(d.vectors, s.vectors);
    }

    /// Container bytes of `s` with a hand-written `META` and extra sections (as an older or
    /// newer lakevec would write them).
    /// `s` (3 rows of 2 dims, 2 files) as a container with its VECTORS section and its kind's
    /// sections, the kind's `META` fields edited by `edit` first.
    fn kind_container_with(s: &Segment, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
        let (mut meta, kind) = s.index.encode().unwrap();
        let obj = meta.as_object_mut().unwrap();
        obj.extend([("n".into(), 3.into()), ("dim".into(), 2.into()), ("files".into(), 2.into())]);
        edit(obj);
        let extra: Vec<(String, Vec<u8>)> = kind
            .into_iter()
            .map(|(t, b)| (String::from_utf8_lossy(&t).trim_end_matches('\0').to_string(), b.to_vec()))
            .collect();
        let extra: Vec<(&str, Vec<u8>)> = extra.iter().map(|(t, b)| (t.as_str(), b.clone())).collect();
        container_with(s, meta, &extra)
    }

    fn container_with(s: &Segment, meta: serde_json::Value, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let meta = serde_json::to_vec(&meta).unwrap();
        let files = serde_json::to_vec(&(&s.files, &s.file_sizes)).unwrap();
        let rows: Vec<u8> = s.rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let vectors: Vec<u8> = s.vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
        let fstart = container::u32_bytes(&s.fstart);
        let mut sections: Vec<(Tag, &[u8])> = vec![
            (section_tag("META"), &meta),
            (section_tag("FILES"), &files),
            (section_tag("FSTART"), &fstart),
            (section_tag("ROWS"), &rows),
            (section_tag("VECTORS"), &vectors),
        ];
        sections.extend(extra.iter().map(|(t, b)| (section_tag(t), b.as_slice())));
        container::write(&sections)
    }

    /// Segments written before index kinds existed have no `kind` in `META`: they are HNSW.
    #[test]
    fn legacy_meta_without_kind_is_hnsw() {
        let s = sample(SegmentIndex::Hnsw(graph()));
        let g = graph_of(&s);
        let meta = serde_json::json!({"n": 3, "dim": 2, "files": 2, "m0": 2, "layers": 1, "entry": 0});
        let extra = [
            ("LAYER0", container::u32_bytes(&g.layer0)),
            ("UPOFF01", container::u32_bytes(&g.upper[0].0)),
            ("UPNBR01", container::u32_bytes(&g.upper[0].1)),
        ];
        let d = Segment::decode(&container_with(&s, meta, &extra), "legacy").unwrap();
        assert_eq!(graph_of(&d).layer0, g.layer0);
        assert_eq!(graph_of(&d).entry, 0);
    }

    /// A checksum-valid segment holding NaN would rank that row first for every query.
    #[test]
    fn non_finite_stored_vectors_are_corrupt() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut s = sample(SegmentIndex::Flat);
            let mut v = s.vectors.to_vec();
            v[3] = bad;
            s.vectors = v.into();
            match Segment::decode(&s.encode().unwrap(), "s") {
                Err(LakeError::CorruptIndex(m)) => assert!(m.contains("node 1 holds a non-finite value"), "{m}"),
                other => panic!("expected CorruptIndex, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_kind_is_a_clear_error() {
        let s = sample(SegmentIndex::Flat);
        let meta = serde_json::json!({"n": 3, "dim": 2, "files": 2, "kind": "ivf"});
        match Segment::decode(&container_with(&s, meta, &[]), "s") {
            Err(LakeError::CorruptIndex(m)) => assert!(m.contains("unknown kind 'ivf'"), "{m}"),
            other => panic!("expected CorruptIndex, got {other:?}"),
        }
    }

    #[test]
    fn every_flip_and_truncation_is_caught() {
        for index in [SegmentIndex::Hnsw(graph()), SegmentIndex::Flat, sq8()] {
            let bytes = sample(index).encode().unwrap();
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x40;
                assert!(matches!(Segment::decode(&b, "s"), Err(LakeError::CorruptIndex(_))), "flip at {i}");
                assert!(matches!(Segment::decode(&bytes[..i], "s"), Err(LakeError::CorruptIndex(_))), "cut at {i}");
            }
        }
    }

    #[test]
    fn keys_sizes_are_checked_against_the_section() {
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![7, 8, 9]));
        let schema = Arc::new(Schema::new(vec![Field::new("key", keys.data_type().clone(), true)]));
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new(&mut buf, &schema).unwrap();
        w.write(&RecordBatch::try_new(schema.clone(), vec![keys.clone()]).unwrap()).unwrap();
        w.finish().unwrap();
        drop(w);
        assert_eq!(read_keys(&buf, 3).unwrap().as_ref(), keys.as_ref());
        assert!(read_keys(&buf, 4).unwrap_err().contains("expected 4"));
        for i in 0..buf.len() {
            assert!(read_keys(&buf[..i], 3).is_err(), "cut at {i}");
        }
        // A field node of -112 rows with nulls (found by the segment fuzz target: arrow asserted
        // on the bitmap size and panicked): a clear error.
        let node = [3i64.to_le_bytes(), 0i64.to_le_bytes()].concat();
        let at = buf.windows(16).position(|w| w == node.as_slice()).expect("the batch's field node");
        let mut bad = buf.clone();
        bad[at..at + 16].copy_from_slice(&[(-112i64).to_le_bytes(), 5i64.to_le_bytes()].concat());
        assert!(read_keys(&bad, 3).is_err());
        // An Int of bit width 0 in the schema (the fuzz target's second find: arrow-ipc's schema
        // conversion panics on it): refused as a key type lakevec does not write.
        let meta_len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
        let w = buf[8..8 + meta_len].windows(4).position(|w| w == 64i32.to_le_bytes()).expect("bitWidth 64") + 8;
        let mut zero = buf.clone();
        zero[w..w + 4].copy_from_slice(&0i32.to_le_bytes());
        assert!(read_keys(&zero, 3).unwrap_err().contains("key type"));
        // A metadata length of 2^31 in the first message: refused before anything is sized by it.
        let mut huge = buf.clone();
        huge[4..8].copy_from_slice(&(1u32 << 31).to_le_bytes());
        assert!(read_keys(&huge, 3).unwrap_err().contains("longer than the section"));
    }

    #[test]
    fn promoted_keys_are_widened_and_others_refused() {
        use arrow::array::{Int32Array, StringArray};
        let old: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        let new: ArrayRef = Arc::new(Int64Array::from(vec![3_000_000_000]));
        let k = interleave_keys(&[old.as_ref(), new.as_ref()], &[(1, 0), (0, 1)]).unwrap();
        assert_eq!(k.as_ref(), &Int64Array::from(vec![3_000_000_000, 2]) as &dyn arrow::array::Array);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let e = interleave_keys(&[old.as_ref(), text.as_ref()], &[(0, 0)]).unwrap_err();
        assert!(e.to_string().contains("changed type (Int32 -> Utf8)"), "{e}");
        // whatever the order of segments
        let k = interleave_keys(&[new.as_ref(), old.as_ref()], &[(1, 0)]).unwrap();
        assert_eq!(k.data_type(), &arrow::datatypes::DataType::Int64);
    }
}
