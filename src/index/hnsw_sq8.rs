//! The HNSW_SQ8 index kind: the HNSW graph of [`crate::index::hnsw`], walked on 8-bit scalar
//! codes of the vectors ([`crate::vector::sq8`]: a quarter of the float bytes per distance),
//! whose best candidates are re-ranked with the float vectors (faiss's `IndexHNSWSQ` walks
//! codes the same way; the re-ranking is lakevec's).
//!
//! Sections: the graph's (`LAYER0`, `UPOFFnn`/`UPNBRnn`), `SQ8LO` and `SQ8STEP` (f32, `dim`
//! each: the quantizer), `SQ8CODES` (u8, `n x dim`, used in place from the mapped file) and
//! `SQ8NORM` (f32, `n`: the norm term of each decoded row for the metric).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::error::{LakeError, Result};
use crate::index::container::KindSections;
use crate::index::container::{f32s, section_tag, Container};
use crate::index::hnsw;
use crate::index::rerank::{codes_only, walk_sizes, RerankSource};
use crate::runtime::CancelToken;
use crate::vector::bits::Bits;
use crate::vector::distance::Metric;
use crate::vector::dups::Dups;
use crate::vector::exact::{exact, exact_by, within_by};
use crate::vector::graph::{prefetch, Graph};
use crate::vector::hit::Hit;
use crate::vector::hnsw_params::HnswParams;
use crate::vector::mapped::{le_bytes, Arr, Backing};
use crate::vector::sq8::{Sq8, Sq8Query};

/// The parameters of the HNSW_SQ8 kind: the graph's, and where re-ranking finds the floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sq8Params {
    #[serde(flatten)]
    pub hnsw: HnswParams,
    #[serde(default, skip_serializing_if = "RerankSource::is_sidecar")]
    pub rerank_source: RerankSource,
}

/// A segment's graph with the SQ8 codes of its rows.
#[derive(Clone, Debug)]
pub struct Sq8Graph {
    pub graph: Graph,
    /// Where the segment's float vectors are (in its file only for `Sidecar`).
    pub rerank_source: RerankSource,
    pub sq: Sq8,
    /// `n * dim` codes, row by row.
    pub codes: Arr<u8>,
    /// Per row, the norm term of [`Sq8Query::distance`].
    pub norms: Arr<f32>,
}

impl Sq8Graph {
    /// Bytes this structure owns (mapped sections count with their file).
    pub fn owned_bytes(&self) -> usize {
        self.graph.owned_bytes() + self.codes.owned_bytes() + self.norms.owned_bytes() + 8 * self.sq.dim()
    }
}

/// Train the quantizer on `vectors` and encode every row, then build the graph on the float
/// vectors (as [`hnsw::build_hnsw`]) over one row per distinct *code*: rows whose codes are
/// equal are one group ([`Dups`]), found again from the codes when the segment is loaded
/// (with or without its floats).
pub fn build_hnsw_sq8(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    params: Sq8Params,
    pool: &rayon::ThreadPool,
    cancel: &CancelToken,
    done: &AtomicUsize,
) -> Result<Sq8Graph> {
    let sq = Sq8::train(vectors, dim);
    let (codes, norms) = sq.encode(vectors, metric);
    cancel.check()?;
    let dups = Dups::find_rows(&codes, dim);
    let graph = hnsw::build_grouped(vectors, dim, metric, params.hnsw, pool, cancel, done, dups)?;
    Ok(Sq8Graph { graph, rerank_source: params.rerank_source, sq, codes: codes.into(), norms: norms.into() })
}

impl Sq8Graph {
    /// The rows in groups of identical codes.
    pub fn find_dups(&self) -> Option<Dups> {
        Dups::find_rows(&self.codes, self.sq.dim())
    }

    /// The decoded vector of node `i` (`dim` floats).
    pub fn decode_row(&self, i: usize) -> Vec<f32> {
        let dim = self.sq.dim();
        let mut out = vec![0f32; dim];
        self.sq.decode_into(&self.codes[i * dim..(i + 1) * dim], &mut out);
        out
    }

    /// The `k` nearest allowed rows by the codes' distance (estimates), scanning every code.
    pub fn exact_codes(&self, metric: Metric, q: &[f32], k: usize, allowed: Option<&Bits>) -> Vec<Hit> {
        let (pq, dim) = (Sq8Query::new(&self.sq, q, metric), self.sq.dim());
        exact_by(self.norms.len(), k, allowed, |i| pq.distance(&self.codes[i * dim..(i + 1) * dim], self.norms[i]))
    }

    /// Every allowed row within `radius` by the codes' distance (estimates).
    pub fn within_codes(&self, metric: Metric, q: &[f32], radius: f32, allowed: Option<&Bits>) -> Vec<Hit> {
        let (pq, dim) = (Sq8Query::new(&self.sq, q, metric), self.sq.dim());
        within_by(self.norms.len(), radius, allowed, |i| {
            pq.distance(&self.codes[i * dim..(i + 1) * dim], self.norms[i])
        })
    }

    /// An exact scan: of the floats when the segment holds them (`vectors` not empty), else of
    /// the codes.
    fn scan(
        &self,
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        q: &[f32],
        k: usize,
        allowed: Option<&Bits>,
    ) -> Vec<Hit> {
        match vectors.is_empty() {
            true => self.exact_codes(metric, q, k, allowed),
            false => exact(vectors, dim, metric, q, k, allowed),
        }
    }
}

/// Search one segment: a graph walk on codes whose best `rerank` candidates (default `ef`)
/// are re-ranked with the float vectors, or an exact scan where cheaper (the rule of
/// [`hnsw::search_hnsw`]). `rerank: Some(0)`, or a segment without floats (`vectors` empty):
/// codes only (estimated distances).
#[allow(clippy::too_many_arguments)]
pub fn search_hnsw_sq8(
    s: &Sq8Graph,
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
    hnsw::walk_or_scan(
        &s.graph,
        s.norms.len(),
        k,
        ef,
        allowed_count,
        || walk_sq8(s, vectors, dim, metric, q, k, ef, rerank, allowed),
        || s.scan(vectors, dim, metric, q, k, allowed),
    )
}

/// The walk on codes and the re-ranking of its best `rerank` candidates (default `ef`; none
/// with `Some(0)` or without floats: `vectors` empty), without the exact fallback (what the
/// recall estimate measures).
#[allow(clippy::too_many_arguments)]
pub fn walk_sq8(
    s: &Sq8Graph,
    vectors: &Arr<f32>,
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    rerank: Option<usize>,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    let pq = Sq8Query::new(&s.sq, q, metric);
    let (codes, norms): (&[u8], &[f32]) = (&s.codes, &s.norms);
    let dist = |i: u32| pq.distance(&codes[i as usize * dim..(i as usize + 1) * dim], norms[i as usize]);
    let fetch = |i: u32| prefetch(codes, dim, i);
    let (take, width) = walk_sizes(k, ef, rerank);
    let found = hnsw::walk_grouped(&s.graph, dist, fetch, take, width, allowed);
    if rerank == Some(0) || vectors.is_empty() {
        return codes_only(found, k, s.rerank_source);
    }
    let mut row = vec![0f32; dim];
    let mut exact: Vec<Hit> = found
        .iter()
        .map(|h| {
            vectors.read_row(dim, h.1 as usize, &mut row);
            Hit(metric.distance(q, &row), h.1)
        })
        .collect();
    exact.sort_unstable();
    exact.truncate(k);
    exact
}

/// Whether `s` was built over `n` rows of `dim` with `p`.
pub fn sq8_matches(s: &Sq8Graph, p: &Sq8Params, n: usize) -> bool {
    hnsw::hnsw_matches(&s.graph, &p.hnsw, n)
        && s.rerank_source == p.rerank_source
        && s.codes.len() == n * s.sq.dim()
        && s.norms.len() == n
}

/// `META` fields and sections of `s`.
pub fn encode_sq8(s: &Sq8Graph) -> Result<KindSections<'_>> {
    let (mut meta, mut sections) = hnsw::encode_graph(&s.graph)?;
    meta["kind"] = "hnsw_sq8".into();
    meta["rerank_source"] = serde_json::to_value(s.rerank_source).map_err(|e| LakeError::Internal(e.to_string()))?;
    sections.push((section_tag("SQ8LO"), le_bytes(&s.sq.lo)));
    sections.push((section_tag("SQ8STEP"), le_bytes(&s.sq.step)));
    sections.push((section_tag("SQ8CODES"), le_bytes(&s.codes)));
    sections.push((section_tag("SQ8NORM"), le_bytes(&s.norms)));
    Ok((meta, sections))
}

/// Parse and verify a segment of `n` rows of `dim`: the graph (as [`hnsw::decode_graph`]),
/// the quantizer (finite bounds, non-negative steps), every section's size against `n` and
/// `dim`, and the norms (finite, non-negative), before use. Codes need no check: every byte
/// is a valid code.
pub fn decode_sq8(
    meta: &[u8],
    c: &Container<'_>,
    buf: &Arc<Backing>,
    n: usize,
    dim: usize,
    name: &str,
) -> Result<Sq8Graph> {
    let graph = hnsw::decode_graph(meta, c, buf, n, name)?;
    let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        rerank_source: RerankSource,
    }
    let head: Head = serde_json::from_slice(meta).map_err(|e| bad(format!("META: {e}")))?;
    let lo = f32s(c.section(&section_tag("SQ8LO"))?, dim, "SQ8LO").map_err(|e| e.context(name))?;
    let step = f32s(c.section(&section_tag("SQ8STEP"))?, dim, "SQ8STEP").map_err(|e| e.context(name))?;
    if lo.iter().chain(&step).any(|x| !x.is_finite()) || step.iter().any(|&s| s < 0.0) {
        return Err(bad("the SQ8 quantizer holds a non-finite bound or a negative step".into()));
    }
    let count = n.checked_mul(dim).ok_or_else(|| bad("SQ8CODES size overflows".into()))?;
    let codes: Arr<u8> = Arr::view(buf, c.array_range(&section_tag("SQ8CODES"), count, 1, "SQ8CODES")?);
    let norms: Arr<f32> = Arr::view(buf, c.array_range(&section_tag("SQ8NORM"), n, 4, "SQ8NORM")?);
    if let Some(i) = norms.iter().position(|x| !x.is_finite() || *x < 0.0) {
        return Err(bad(format!("SQ8 norm of node {i} is not a finite non-negative number")));
    }
    let rerank_source = head.rerank_source;
    Ok(Sq8Graph { graph, rerank_source, sq: Sq8 { lo, step }, codes, norms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::hnsw_build::tests::{data, hp};

    /// Recall@10 of `search` over the first 100 rows as queries, against exact search.
    fn recall(v: &[f32], dim: usize, metric: Metric, search: impl Fn(&[f32]) -> Vec<Hit>) -> f64 {
        let mut hit = 0;
        for qv in v[..100 * dim].chunks_exact(dim) {
            let truth: Vec<u32> = exact(v, dim, metric, qv, 10, None).iter().map(|h| h.1).collect();
            hit += search(qv).iter().filter(|h| truth.contains(&h.1)).count();
        }
        hit as f64 / 1000.0
    }

    #[test]
    fn reranked_sq8_walk_matches_the_float_walk() {
        let (n, dim) = (3000usize, 24usize);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let c = CancelToken::new();
        for metric in [Metric::L2, Metric::Cosine] {
            let params = Sq8Params { hnsw: hp(8, 64), rerank_source: RerankSource::Sidecar };
            let mut v = data(n, dim, 11);
            metric.prepare(&mut v, dim).unwrap();
            let va: Arr<f32> = v.clone().into();
            let s = build_hnsw_sq8(&v, dim, metric, params, &pool, &c, &AtomicUsize::new(0)).unwrap();
            assert_eq!(s.codes.len(), n * dim);
            let float = recall(&v, dim, metric, |q| hnsw::walk(&s.graph, &v, dim, metric, q, 10, 48, None));
            let sq8 = recall(&v, dim, metric, |q| walk_sq8(&s, &va, dim, metric, q, 10, 48, None, None));
            let codes_only = recall(&v, dim, metric, |q| walk_sq8(&s, &va, dim, metric, q, 10, 48, Some(0), None));
            assert!(sq8 >= float - 0.01, "{metric:?}: sq8 {sq8} float {float}");
            assert!(codes_only > 0.5 && codes_only <= sq8 + 0.01, "{metric:?}: codes only {codes_only}, sq8 {sq8}");
            // a re-ranked hit carries its exact distance
            let q = &v[..dim];
            for h in walk_sq8(&s, &va, dim, metric, q, 10, 48, None, None) {
                let want = metric.distance(q, &v[h.1 as usize * dim..(h.1 as usize + 1) * dim]);
                assert_eq!(h.0, want);
            }
            // filters: only allowed rows come back
            let mut allowed = Bits::new(n, false);
            (0..n).step_by(3).for_each(|i| allowed.set(i, true));
            let hits = search_hnsw_sq8(&s, &va, dim, metric, q, 10, 48, None, Some(&allowed), allowed.count());
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| h.1 % 3 == 0));
        }
    }
}
