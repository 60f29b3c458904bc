//! The index-kind seam: what differs between index kinds, and nothing else.
//!
//! A segment's rows, addresses, vectors and keys are the same for every kind; what a kind adds
//! is a search structure over the vectors (HNSW: a graph; flat: nothing) and how it is built,
//! searched and stored. The manifest records each segment's kind and its construction
//! parameters as a tagged value ([`IndexKind`], e.g. `{"kind": "hnsw", "m": 16,
//! "ef_construction": 200}`); a loaded segment holds the matching [`SegmentIndex`].
//!
//! Build, refresh, compact, search and `knn_graph` only call the methods below, so adding a
//! kind is one new file under `src/index/` (its parameters, build, search and sections) plus
//! one arm in each `match` here: nothing in refresh, coverage or the Python layer changes.

use std::sync::atomic::AtomicUsize;

use crate::error::{LakeError, Result};
use crate::index::container::{Container, KindSections};
use crate::index::hnsw_rabitq::{self, RabitqGraph, RabitqParams};
use crate::index::hnsw_sq8::{self, Sq8Graph, Sq8Params};
use crate::index::rerank::RerankSource;
use crate::index::{flat, hnsw};
use crate::runtime::CancelToken;
use crate::vector::bits::Bits;
use crate::vector::distance::Metric;
use crate::vector::graph::Graph;
use crate::vector::hit::Hit;
use crate::vector::hnsw_params::{GraphBuilder, HnswParams};
use crate::vector::mapped::{Arr, Backing};

/// An index kind with its construction parameters (persisted, tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IndexKind {
    /// A Hierarchical Navigable Small World graph (Malkov & Yashunin, TPAMI 2018).
    Hnsw(HnswParams),
    /// No structure: every search scans the segment (exact, recall 1.0). Right for small
    /// segments and as a baseline.
    Flat,
    /// HNSW walked on 8-bit scalar codes, re-ranked with the float vectors
    /// ([`crate::index::hnsw_sq8`]).
    #[serde(rename = "hnsw_sq8")]
    HnswSq8(Sq8Params),
    /// HNSW walked on RaBitQ codes, candidates re-ranked where the error bound requires
    /// ([`crate::index::hnsw_rabitq`]).
    #[serde(rename = "hnsw_rabitq")]
    HnswRabitq(RabitqParams),
}

/// The search structure one segment holds, by kind.
#[derive(Clone, Debug)]
pub enum SegmentIndex {
    Hnsw(Graph),
    /// Also what a segment read from the lake holds before its structure is built: it is
    /// searchable (exactly) as it is.
    Flat,
    HnswSq8(Box<Sq8Graph>),
    HnswRabitq(Box<RabitqGraph>),
}

impl IndexKind {
    /// The kind named `index_type` ("hnsw", "hnsw_sq8", "hnsw_rabitq" or "flat"); `m`,
    /// `ef_construction` and `builder` ("native" or "hnsw_rs") apply to the HNSW kinds,
    /// `rerank_source` ([`RerankSource::parse`]) to the compressed ones (the others hold
    /// floats: "sidecar"), `bits` (1..=8, default 1) to "hnsw_rabitq" only.
    pub fn from_args(
        index_type: &str,
        m: usize,
        ef_construction: usize,
        builder: &str,
        rerank_source: Option<&str>,
        bits: Option<u32>,
    ) -> Result<Self> {
        let builder = GraphBuilder::parse(builder)?;
        let rerank_source = RerankSource::parse(rerank_source)?;
        let compressed = matches!(index_type, "hnsw_sq8" | "hnsw_rabitq");
        if !rerank_source.is_sidecar() && !compressed {
            return Err(LakeError::InvalidArgument(format!(
                "rerank_source applies to compressed index kinds (hnsw_sq8, hnsw_rabitq); index_type \
                 '{index_type}' keeps its float vectors in the sidecar"
            )));
        }
        if bits.is_some() && index_type != "hnsw_rabitq" {
            return Err(LakeError::InvalidArgument(format!(
                "bits applies to index_type 'hnsw_rabitq', not '{index_type}'"
            )));
        }
        let hnsw = HnswParams { m, ef_construction, builder };
        let kind = match index_type {
            "hnsw" => IndexKind::Hnsw(hnsw),
            "hnsw_sq8" => IndexKind::HnswSq8(Sq8Params { hnsw, rerank_source }),
            "hnsw_rabitq" => IndexKind::HnswRabitq(RabitqParams { hnsw, bits: bits.unwrap_or(1), rerank_source }),
            "flat" => IndexKind::Flat,
            o => {
                return Err(LakeError::InvalidArgument(format!(
                    "index_type must be 'hnsw', 'hnsw_sq8', 'hnsw_rabitq' or 'flat', not '{o}'"
                )))
            }
        };
        kind.check()?;
        Ok(kind)
    }

    /// The kind's name, as `index_type` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            IndexKind::Hnsw(_) => "hnsw",
            IndexKind::HnswSq8(_) => "hnsw_sq8",
            IndexKind::HnswRabitq(_) => "hnsw_rabitq",
            IndexKind::Flat => "flat",
        }
    }

    /// Check the parameters (`InvalidArgument` naming the bad one).
    pub fn check(&self) -> Result<()> {
        match self {
            IndexKind::Hnsw(p) | IndexKind::HnswSq8(Sq8Params { hnsw: p, .. }) => p.check(),
            IndexKind::HnswRabitq(p) => p.check(),
            IndexKind::Flat => Ok(()),
        }
    }

    /// The HNSW parameters of a graph kind.
    pub fn hnsw(&self) -> Option<&HnswParams> {
        match self {
            IndexKind::Hnsw(p)
            | IndexKind::HnswSq8(Sq8Params { hnsw: p, .. })
            | IndexKind::HnswRabitq(RabitqParams { hnsw: p, .. }) => Some(p),
            IndexKind::Flat => None,
        }
    }

    /// Where re-ranking finds the floats (`Sidecar` for the kinds that search the floats).
    pub fn rerank_source(&self) -> RerankSource {
        match self {
            IndexKind::HnswSq8(p) => p.rerank_source,
            IndexKind::HnswRabitq(p) => p.rerank_source,
            IndexKind::Hnsw(_) | IndexKind::Flat => RerankSource::Sidecar,
        }
    }

    /// Build the structure over `vectors` (rows of `dim`, prepared for `metric`) on `pool`,
    /// polling `cancel`; `done` counts rows inserted.
    pub fn build(
        &self,
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        pool: &rayon::ThreadPool,
        cancel: &CancelToken,
        done: &AtomicUsize,
    ) -> Result<SegmentIndex> {
        match self {
            IndexKind::Hnsw(p) => {
                Ok(SegmentIndex::Hnsw(hnsw::build_hnsw(vectors, dim, metric, *p, pool, cancel, done)?))
            }
            IndexKind::HnswSq8(p) => Ok(SegmentIndex::HnswSq8(Box::new(hnsw_sq8::build_hnsw_sq8(
                vectors, dim, metric, *p, pool, cancel, done,
            )?))),
            IndexKind::HnswRabitq(p) => Ok(SegmentIndex::HnswRabitq(Box::new(hnsw_rabitq::build_hnsw_rabitq(
                vectors, dim, metric, *p, pool, cancel, done,
            )?))),
            IndexKind::Flat => {
                flat::build_flat(vectors, dim, done);
                Ok(SegmentIndex::Flat)
            }
        }
    }

    /// What one row of `dim` costs in a segment of this kind, by part, in bytes (as
    /// `VectorIndex.stats()["bytes_per_vector"]` shows it): `floats` (the float32 vector),
    /// `codes` (a quantized kind's code and its per-row terms), `graph` (layer 0's fixed
    /// `1 + 2m` u32 slots; the upper layers add ~1/m of it). Addresses and keys come on top.
    pub fn bytes_per_vector(&self, dim: usize) -> serde_json::Value {
        let layer0 = |p: &HnswParams| 4 * (1 + 2 * p.m);
        let (codes, graph) = match self {
            IndexKind::Hnsw(p) => (0, layer0(p)),
            IndexKind::HnswSq8(p) => (dim + 4, layer0(&p.hnsw)),
            IndexKind::HnswRabitq(p) => {
                let dp = crate::vector::rotation::padded_dim(dim);
                let code = if p.bits == 1 { dp / 8 } else { dp };
                // code, factors and the row's centroid number (u16)
                (code + 4 * crate::vector::rabitq::FACTORS + 2, layer0(&p.hnsw))
            }
            IndexKind::Flat => (0, 0),
        };
        let floats = if self.rerank_source().stores_floats() { 4 * dim } else { 0 };
        serde_json::json!({"floats": floats, "codes": codes, "graph": graph})
    }

    /// The parameters as shown by `VectorIndex.stats()["params"]` (with `index_type`).
    pub fn params_json(&self) -> serde_json::Value {
        match self {
            IndexKind::Hnsw(p) => serde_json::json!({
                "index_type": self.name(), "m": p.m, "ef_construction": p.ef_construction,
                "builder": p.builder.as_str(),
            }),
            IndexKind::HnswSq8(Sq8Params { hnsw: p, rerank_source }) => serde_json::json!({
                "index_type": self.name(), "m": p.m, "ef_construction": p.ef_construction,
                "builder": p.builder.as_str(), "rerank_source": rerank_source.as_py(),
            }),
            IndexKind::HnswRabitq(RabitqParams { hnsw: p, bits, rerank_source }) => serde_json::json!({
                "index_type": self.name(), "m": p.m, "ef_construction": p.ef_construction,
                "builder": p.builder.as_str(), "bits": bits, "rerank_source": rerank_source.as_py(),
            }),
            IndexKind::Flat => serde_json::json!({"index_type": self.name()}),
        }
    }
}

impl SegmentIndex {
    /// The HNSW graph of a graph kind.
    pub fn graph_mut(&mut self) -> Option<&mut Graph> {
        match self {
            SegmentIndex::Hnsw(g) => Some(g),
            SegmentIndex::HnswSq8(s) => Some(&mut s.graph),
            SegmentIndex::HnswRabitq(s) => Some(&mut s.graph),
            SegmentIndex::Flat => None,
        }
    }

    /// Whether the segment keeps its float vectors (section `VECTORS`).
    pub fn stores_floats(&self) -> bool {
        match self {
            SegmentIndex::HnswSq8(s) => s.rerank_source.stores_floats(),
            SegmentIndex::HnswRabitq(s) => s.rerank_source.stores_floats(),
            SegmentIndex::Hnsw(_) | SegmentIndex::Flat => true,
        }
    }

    /// Whether the kind searches codes (its distances are estimates until re-ranked).
    pub fn is_quantized(&self) -> bool {
        matches!(self, SegmentIndex::HnswSq8(_) | SegmentIndex::HnswRabitq(_))
    }

    /// Where re-ranking finds the floats.
    pub fn rerank_source(&self) -> RerankSource {
        match self {
            SegmentIndex::HnswSq8(s) => s.rerank_source,
            SegmentIndex::HnswRabitq(s) => s.rerank_source,
            SegmentIndex::Hnsw(_) | SegmentIndex::Flat => RerankSource::Sidecar,
        }
    }

    /// The groups of identical rows the graph was built over (see `dups.rs`): by float bits
    /// for the float kinds, by code for a quantized kind; found again when a segment loads.
    pub fn find_dups(&self, vectors: &[f32], dim: usize) -> Option<crate::vector::dups::Dups> {
        match self {
            SegmentIndex::HnswSq8(s) => s.find_dups(),
            SegmentIndex::HnswRabitq(s) => s.find_dups(),
            SegmentIndex::Hnsw(_) | SegmentIndex::Flat => crate::vector::dups::Dups::find(vectors, dim),
        }
    }

    /// Node `i`'s vector as the kind holds it when the segment has no floats (decoded from its
    /// code); `None` for kinds that always keep floats.
    pub fn decode_row(&self, i: usize) -> Option<Vec<f32>> {
        match self {
            SegmentIndex::HnswSq8(s) => Some(s.decode_row(i)),
            SegmentIndex::HnswRabitq(s) => Some(s.decode_row(i)),
            SegmentIndex::Hnsw(_) | SegmentIndex::Flat => None,
        }
    }

    /// An exact scan for the `k` nearest allowed rows (`radius`: all rows within it, when `k`
    /// is unbounded): over the floats, or over the codes (estimated distances) in a segment
    /// without floats (`vectors` empty).
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &self,
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        q: &[f32],
        k: usize,
        radius: Option<f32>,
        allowed: Option<&Bits>,
    ) -> Vec<Hit> {
        use crate::vector::exact::{exact, within};
        match (self, radius) {
            (SegmentIndex::HnswSq8(s), Some(r)) if vectors.is_empty() => s.within_codes(metric, q, r, allowed),
            (SegmentIndex::HnswSq8(s), None) if vectors.is_empty() => s.exact_codes(metric, q, k, allowed),
            (SegmentIndex::HnswRabitq(s), Some(r)) if vectors.is_empty() => s.within_codes(q, r, allowed),
            (SegmentIndex::HnswRabitq(s), None) if vectors.is_empty() => s.exact_codes(q, k, allowed),
            (_, Some(r)) => within(vectors, dim, metric, q, r, allowed),
            (_, None) => exact(vectors, dim, metric, q, k, allowed),
        }
    }

    /// Bytes of the structure held in memory (mapped sections count with their file).
    pub fn owned_bytes(&self) -> usize {
        match self {
            SegmentIndex::Hnsw(g) => g.owned_bytes(),
            SegmentIndex::HnswSq8(s) => s.owned_bytes(),
            SegmentIndex::HnswRabitq(s) => s.owned_bytes(),
            SegmentIndex::Flat => 0,
        }
    }

    /// The name of the kind this structure belongs to.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SegmentIndex::Hnsw(_) => "hnsw",
            SegmentIndex::HnswSq8(_) => "hnsw_sq8",
            SegmentIndex::HnswRabitq(_) => "hnsw_rabitq",
            SegmentIndex::Flat => "flat",
        }
    }

    /// The `k` nearest allowed rows to `q`, nearest first, choosing between the kind's
    /// approximate search and an exact scan by cost (`allowed_count`: rows `allowed` lets
    /// through, all `n` when `allowed` is None). `ef`: the beam width of graph kinds;
    /// `rerank`: candidates a quantized kind re-ranks with the float vectors.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        vectors: &Arr<f32>,
        dim: usize,
        metric: Metric,
        q: &[f32],
        k: usize,
        ef: usize,
        rerank: Option<usize>,
        allowed: Option<&Bits>,
        allowed_count: usize,
    ) -> Vec<Hit> {
        match self {
            SegmentIndex::Hnsw(g) => hnsw::search_hnsw(g, vectors, dim, metric, q, k, ef, allowed, allowed_count),
            SegmentIndex::HnswSq8(s) => {
                hnsw_sq8::search_hnsw_sq8(s, vectors, dim, metric, q, k, ef, rerank, allowed, allowed_count)
            }
            SegmentIndex::HnswRabitq(s) => {
                hnsw_rabitq::search_hnsw_rabitq(s, vectors, dim, metric, q, k, ef, rerank, allowed, allowed_count)
            }
            SegmentIndex::Flat => flat::search_flat(vectors, dim, metric, q, k, allowed),
        }
    }

    /// The kind's own approximate search, without the exact fallback (what the recall
    /// estimate measures); `rerank` as in [`Self::search`].
    #[allow(clippy::too_many_arguments)]
    pub fn approximate(
        &self,
        vectors: &Arr<f32>,
        dim: usize,
        metric: Metric,
        q: &[f32],
        k: usize,
        ef: usize,
        rerank: Option<usize>,
        allowed: Option<&Bits>,
    ) -> Vec<Hit> {
        match self {
            SegmentIndex::Hnsw(g) => hnsw::walk(g, vectors, dim, metric, q, k, ef, allowed),
            SegmentIndex::HnswSq8(s) => hnsw_sq8::walk_sq8(s, vectors, dim, metric, q, k, ef, rerank, allowed),
            SegmentIndex::HnswRabitq(s) => hnsw_rabitq::walk_rabitq(s, vectors, dim, metric, q, k, ef, rerank, allowed),
            SegmentIndex::Flat => flat::search_flat(vectors, dim, metric, q, k, allowed),
        }
    }

    /// Whether this structure was built as `kind` says (checked when a segment is loaded).
    pub fn matches(&self, kind: &IndexKind, n: usize) -> bool {
        match (self, kind) {
            (SegmentIndex::Hnsw(g), IndexKind::Hnsw(p)) => hnsw::hnsw_matches(g, p, n),
            (SegmentIndex::HnswSq8(s), IndexKind::HnswSq8(p)) => hnsw_sq8::sq8_matches(s, p, n),
            (SegmentIndex::HnswRabitq(s), IndexKind::HnswRabitq(p)) => hnsw_rabitq::rabitq_matches(s, p, n),
            (SegmentIndex::Flat, IndexKind::Flat) => true,
            _ => false,
        }
    }

    /// The kind's header fields (merged into the segment's `META`) and its sections.
    pub fn encode(&self) -> Result<KindSections<'_>> {
        match self {
            SegmentIndex::Hnsw(g) => hnsw::encode_graph(g),
            SegmentIndex::HnswSq8(s) => hnsw_sq8::encode_sq8(s),
            SegmentIndex::HnswRabitq(s) => hnsw_rabitq::encode_rabitq(s),
            SegmentIndex::Flat => Ok((serde_json::json!({"kind": "flat"}), Vec::new())),
        }
    }

    /// Parse and verify the structure of kind `kind` (from `META`; "hnsw" when absent, as in
    /// segments written before kinds existed) over `n` rows of `dim`, using its arrays in
    /// place in `buf` (the bytes `c` reads). `name` is used in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        kind: &str,
        meta: &[u8],
        c: &Container<'_>,
        buf: &std::sync::Arc<Backing>,
        n: usize,
        dim: usize,
        name: &str,
    ) -> Result<SegmentIndex> {
        match kind {
            "hnsw" => Ok(SegmentIndex::Hnsw(hnsw::decode_graph(meta, c, buf, n, name)?)),
            "hnsw_sq8" => Ok(SegmentIndex::HnswSq8(Box::new(hnsw_sq8::decode_sq8(meta, c, buf, n, dim, name)?))),
            "hnsw_rabitq" => {
                Ok(SegmentIndex::HnswRabitq(Box::new(hnsw_rabitq::decode_rabitq(meta, c, buf, n, dim, name)?)))
            }
            "flat" => Ok(SegmentIndex::Flat),
            o => Err(LakeError::CorruptIndex(format!(
                "index file '{name}' holds a segment of unknown kind '{o}' (written by a newer \
                 lakevec?)"
            ))),
        }
    }
}
