//! The HNSW index kind: a graph built by [`crate::vector::graph_build`], searched by
//! [`crate::vector::graph`], stored as container sections `LAYER0` (u32, `n x (1 + m0)`) and
//! `UPOFFnn`/`UPNBRnn` (u32 CSR, one pair per upper layer), with `m0`, `layers` and `entry` in
//! the segment's `META`.

use std::sync::atomic::AtomicUsize;

use crate::error::{LakeError, Result};
use std::sync::Arc;

use crate::index::container::{section_tag, u32s, Container, KindSections};
use crate::runtime::CancelToken;
use crate::vector::bits::Bits;
use crate::vector::distance::Metric;
use crate::vector::dups::Dups;
use crate::vector::exact::exact;
use crate::vector::graph::{prefetch, walk_graph, Graph};
use crate::vector::graph_build::build_graph;
use crate::vector::hit::Hit;
use crate::vector::hnsw_params::HnswParams;
use crate::vector::mapped::{le_bytes, Arr, Backing};

/// Largest `m0` and layer count a stored graph may claim (hnsw_rs builds at most 16 layers;
/// `m <= 128` gives `m0 <= 256`).
const MAX_M0: usize = 512;
const MAX_LAYERS: usize = 16;

#[derive(serde::Serialize, serde::Deserialize)]
struct GraphMeta {
    m0: usize,
    layers: usize,
    entry: u32,
}

/// Build the graph of `vectors` (see [`build_graph`]) over one row per distinct vector: the
/// other rows of a group of identical vectors get no edges and are found through their
/// group (`dups.rs`), so that a run of copies cannot absorb the graph.
pub fn build_hnsw(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    params: HnswParams,
    pool: &rayon::ThreadPool,
    cancel: &CancelToken,
    done: &AtomicUsize,
) -> Result<Graph> {
    let dups = Dups::find(vectors, dim);
    build_grouped(vectors, dim, metric, params, pool, cancel, done, dups)
}

/// The graph of `vectors` over one row per group of `dups` (each group's first row; all rows
/// when `None`), renumbered to rows: the other rows of a group keep empty lists.
#[allow(clippy::too_many_arguments)]
pub fn build_grouped(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    params: HnswParams,
    pool: &rayon::ThreadPool,
    cancel: &CancelToken,
    done: &AtomicUsize,
    dups: Option<Dups>,
) -> Result<Graph> {
    let Some(dups) = dups else {
        return build_graph(vectors, dim, metric, params, pool, cancel, done);
    };
    let n = vectors.len() / dim;
    let others = dups.others(n);
    let reps: Vec<u32> = (0..n as u32).filter(|&i| !others.get(i as usize)).collect();
    let mut rv = Vec::with_capacity(reps.len() * dim);
    for &r in &reps {
        rv.extend_from_slice(&vectors[r as usize * dim..(r as usize + 1) * dim]);
    }
    let g = build_graph(&rv, dim, metric, params, pool, cancel, done)?;
    done.fetch_add(dups.count, std::sync::atomic::Ordering::Relaxed);
    // The graph over representatives, renumbered to rows; other rows keep empty lists.
    let m0 = g.m0;
    let mut layer0 = vec![0u32; n * (1 + m0)];
    for (gi, &row) in reps.iter().enumerate() {
        let nb = g.neighbors0(gi as u32);
        let base = row as usize * (1 + m0);
        layer0[base] = nb.len() as u32;
        for (j, &x) in nb.iter().enumerate() {
            layer0[base + 1 + j] = reps[x as usize];
        }
    }
    let upper = g
        .upper
        .iter()
        .map(|(off, nbr)| {
            let (mut o, mut out) = (Vec::with_capacity(n + 1), Vec::new());
            o.push(0u32);
            let mut gi = 0;
            for row in 0..n {
                if reps.get(gi).is_some_and(|&r| r as usize == row) {
                    let (a, b) = (off[gi] as usize, off[gi + 1] as usize);
                    out.extend(nbr[a..b].iter().map(|&x| reps[x as usize]));
                    gi += 1;
                }
                o.push(out.len() as u32);
            }
            (o, out)
        })
        .collect();
    let entry = reps[g.entry as usize];
    Ok(Graph { n, m0, layer0: layer0.into(), upper, entry, dups: Some(Arc::new(dups)) })
}

/// Graph search of one segment, or an exact scan when that is cheaper: when the allowed rows
/// are fewer than the distance computations a filtered graph walk would make (about
/// `ef * m0 / selectivity`, a quarter of them new), or the graph does not cover the rows.
/// A graph walk that returns fewer than `min(k, allowed_count)` hits (a selective filter
/// cutting the graph) is redone exactly.
#[allow(clippy::too_many_arguments)]
pub fn search_hnsw(
    g: &Graph,
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    allowed: Option<&Bits>,
    allowed_count: usize,
) -> Vec<Hit> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    walk_or_scan(
        g,
        n,
        k,
        ef,
        allowed_count,
        || walk(g, vectors, dim, metric, q, k, ef, allowed),
        || exact(vectors, dim, metric, q, k, allowed),
    )
}

/// The cost rule every graph kind follows over a segment of `n` rows: nothing when no row is
/// allowed; `scan` when the allowed rows are fewer than the distance computations a filtered
/// walk would make (about `ef * m0 / selectivity`, a quarter of them new) or the graph does
/// not cover the rows; else `walk`, and `scan` after all when the walk found fewer than `k`
/// allowed rows.
pub fn walk_or_scan(
    g: &Graph,
    n: usize,
    k: usize,
    ef: usize,
    allowed_count: usize,
    walk: impl FnOnce() -> Vec<Hit>,
    scan: impl Fn() -> Vec<Hit>,
) -> Vec<Hit> {
    if allowed_count == 0 || n == 0 {
        return Vec::new();
    }
    let selectivity = allowed_count as f64 / n as f64;
    let graph_cost = (ef as f64) * (g.m0 as f64) / (4.0 * selectivity);
    if g.n != n || (allowed_count as f64) <= graph_cost {
        return scan();
    }
    let hits = walk();
    if hits.len() < k.min(allowed_count) {
        return scan();
    }
    hits
}

/// A walk of `g` by `dist` (prefetching with `fetch`) for `take` hits at beam `width`,
/// through its groups of identical rows as [`walk`] does.
pub fn walk_grouped(
    g: &Graph,
    dist: impl Fn(u32) -> f32,
    fetch: impl Fn(u32),
    take: usize,
    width: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    match &g.dups {
        Some(d) => {
            let reps = d.allowed_reps(allowed);
            d.expand(walk_graph(g, dist, fetch, take, width, reps.as_ref().or(allowed)), take, allowed)
        }
        None => walk_graph(g, dist, fetch, take, width, allowed),
    }
}

/// The graph walk alone (no exact fallback). With groups of identical rows, the walk admits
/// each group's representative when any row of the group is allowed, and every allowed row of
/// a group found is handed out at the representative's distance.
#[allow(clippy::too_many_arguments)]
pub fn walk(
    g: &Graph,
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    let dist = |i: u32| metric.distance(q, &vectors[i as usize * dim..(i as usize + 1) * dim]);
    walk_grouped(g, dist, |i| prefetch(vectors, dim, i), k, ef, allowed)
}

/// Whether `g` is a graph over `n` rows built with `p`.
pub fn hnsw_matches(g: &Graph, p: &HnswParams, n: usize) -> bool {
    g.n == n && (n == 0 || g.m0 == 2 * p.m)
}

/// `META` fields and sections of `g`.
pub fn encode_graph(g: &Graph) -> Result<KindSections<'_>> {
    let meta = GraphMeta { m0: g.m0, layers: g.upper.len(), entry: g.entry };
    let mut meta = serde_json::to_value(meta).map_err(|e| LakeError::Internal(e.to_string()))?;
    meta["kind"] = "hnsw".into();
    let mut sections = vec![(section_tag("LAYER0"), le_bytes(&g.layer0))];
    for (l, (off, nbr)) in g.upper.iter().enumerate() {
        sections.push((section_tag(&format!("UPOFF{:02}", l + 1)), le_bytes(off)));
        sections.push((section_tag(&format!("UPNBR{:02}", l + 1)), le_bytes(nbr)));
    }
    Ok((meta, sections))
}

/// Parse and verify the graph of a segment of `n` rows: every count against the others and
/// every neighbour id and the entry point against `n`, before use.
pub fn decode_graph(meta: &[u8], c: &Container<'_>, buf: &Arc<Backing>, n: usize, name: &str) -> Result<Graph> {
    let bad = |why: String| LakeError::CorruptIndex(format!("index file '{name}' is corrupt: {why}"));
    let gm: GraphMeta = serde_json::from_slice(meta).map_err(|e| bad(format!("META: {e}")))?;
    if gm.m0 == 0 || gm.m0 > MAX_M0 || gm.layers > MAX_LAYERS {
        return Err(bad(format!("implausible graph header {}", String::from_utf8_lossy(meta))));
    }
    let m0 = gm.m0;
    let count = n.checked_mul(1 + m0).ok_or_else(|| bad("LAYER0 size overflows".into()))?;
    let layer0: Arr<u32> = Arr::view(buf, c.array_range(&section_tag("LAYER0"), count, 4, "LAYER0")?);
    for i in 0..n {
        let base = i * (1 + m0);
        let cnt = layer0[base] as usize;
        if cnt > m0 || layer0[base + 1..base + 1 + cnt].iter().any(|&x| x as usize >= n) {
            return Err(bad(format!("layer 0 neighbours of node {i} are out of range")));
        }
    }
    let mut upper = Vec::with_capacity(gm.layers);
    for l in 1..=gm.layers {
        let off =
            u32s(c.section(&section_tag(&format!("UPOFF{l:02}")))?, n + 1, "UPOFF").map_err(|e| e.context(name))?;
        let nb_bytes = c.section(&section_tag(&format!("UPNBR{l:02}")))?;
        if off.first() != Some(&0) || off.windows(2).any(|w| w[0] > w[1]) || off[n] as usize * 4 != nb_bytes.len() {
            return Err(bad(format!("layer {l} offsets are inconsistent")));
        }
        let nb = u32s(nb_bytes, off[n] as usize, "UPNBR").map_err(|e| e.context(name))?;
        if nb.iter().any(|&x| x as usize >= n) {
            return Err(bad(format!("layer {l} neighbours are out of range")));
        }
        upper.push((off, nb));
    }
    if n > 0 && gm.entry as usize >= n {
        return Err(bad(format!("entry point {} is out of range", gm.entry)));
    }
    Ok(Graph { n, m0, layer0, upper, entry: gm.entry, dups: None })
}
