//! The search hot loop: HNSW graph search over one segment's flat vectors.
//!
//! The graph is the one hnsw_rs builds (Malkov & Yashunin, "Efficient and robust approximate
//! nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI 2018),
//! copied into flat arrays: layer 0 as `n x (1 + m0)` u32 (`count, ids...`), the upper layers
//! in CSR form. Search is the paper's Algorithm 5 (greedy descent through the upper layers,
//! then a beam of width `ef` on layer 0, Algorithm 2).
//!
//! Filtering (deleted rows, SQL filters) follows hnswlib's approach: every node guides the
//! traversal, only allowed nodes enter the result set, so a selective filter never empties
//! the results of a graph walk; callers fall back to exact search ([`crate::vector::exact`]) when the allowed set is small.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::vector::bits::Bits;
use crate::vector::hit::Hit;

/// An HNSW graph over nodes `0..n`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub n: usize,
    /// Max neighbours per node on layer 0.
    pub m0: usize,
    /// `n * (1 + m0)`: per node, its neighbour count then its neighbour ids.
    pub layer0: crate::vector::mapped::Arr<u32>,
    /// Layers 1..: CSR offsets (`n + 1`) and neighbour ids.
    pub upper: Vec<(Vec<u32>, Vec<u32>)>,
    pub entry: u32,
    /// Groups of identical rows: only each group's first row has edges (see `dups.rs`).
    pub dups: Option<std::sync::Arc<crate::vector::dups::Dups>>,
}

impl Graph {
    /// Bytes of the arrays this graph owns (layer 0 only when not mapped; upper layers).
    pub fn owned_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().map(|(o, l)| 4 * (o.len() + l.len())).sum();
        self.layer0.owned_bytes() + upper
    }

    #[inline(always)]
    pub fn neighbors0(&self, i: u32) -> &[u32] {
        let base = i as usize * (1 + self.m0);
        let c = self.layer0[base] as usize;
        &self.layer0[base + 1..base + 1 + c]
    }
    #[inline(always)]
    fn neighbors_upper(&self, layer: usize, i: u32) -> &[u32] {
        let (off, nb) = &self.upper[layer - 1];
        &nb[off[i as usize] as usize..off[i as usize + 1] as usize]
    }
}

/// Per-thread scratch: a visited table stamped with a generation number (graph search here,
/// and graph construction in `hnsw_build.rs`). One byte per node (hnswlib uses two), so the
/// table of a cold single query takes fewer cache misses; it is cleared every 255 searches.
pub(crate) struct Visited {
    marks: Vec<u8>,
    stamp: u8,
}

impl Visited {
    pub(crate) const fn new() -> Self {
        Visited { marks: Vec::new(), stamp: 0 }
    }

    /// Forget every mark, for nodes `0..n`.
    pub(crate) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks = vec![0; n];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }
    /// Mark node `i`; whether it was unmarked.
    #[inline(always)]
    pub(crate) fn visit(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.stamp {
            false
        } else {
            *m = self.stamp;
            true
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited::new()) };
}

/// Hint the cache to load row `i` of `dim` values (its first two cache lines). Never
/// dereferences.
#[inline(always)]
pub(crate) fn prefetch<T>(vectors: &[T], dim: usize, i: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // `wrapping_add` forms the addresses without the in-bounds requirement of `add`: a row
        // shorter than 64 bytes (dim < 16) makes the second line point past the buffer.
        let p = vectors.as_ptr().wrapping_add(i as usize * dim) as *const i8;
        // SAFETY: `_mm_prefetch` is an SSE instruction (every x86_64 CPU has SSE) that only
        // hints the cache: it never reads the address into the program and does not fault on
        // an invalid one, so any pointer value is sound here.
        unsafe {
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (vectors, dim, i);
}

/// The `k` nearest allowed nodes to `q` over float `vectors` by graph search with beam width
/// `ef` (>= k), nearest first (for the builders' tests; searches go through
/// `index::hnsw::walk`, which also expands groups of identical rows).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn search_graph(
    g: &Graph,
    vectors: &[f32],
    dim: usize,
    metric: crate::vector::distance::Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    let dist = |i: u32| metric.distance(q, &vectors[i as usize * dim..(i as usize + 1) * dim]);
    walk_graph(g, dist, |i| prefetch(vectors, dim, i), k, ef, allowed)
}

/// The `k` nearest allowed nodes by graph search with beam width `ef` (>= k), nearest first
/// (`allowed: None` allows every node), the distance of node `i` to the query given as
/// `dist(i)` (float vectors, or codes of a quantized kind) and `fetch(i)` hinting the cache
/// to load what `dist(i)` will read.
pub fn walk_graph(
    g: &Graph,
    dist: impl Fn(u32) -> f32,
    fetch: impl Fn(u32),
    k: usize,
    ef: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    if g.n == 0 || k == 0 {
        return Vec::new();
    }
    let ef = ef.max(k);
    let mut cur = g.entry;
    let mut cur_d = dist(cur);
    for layer in (1..=g.upper.len()).rev() {
        let mut changed = true;
        while changed {
            changed = false;
            for &nb in g.neighbors_upper(layer, cur) {
                let d = dist(nb);
                if d < cur_d {
                    cur_d = d;
                    cur = nb;
                    changed = true;
                }
            }
        }
    }
    VISITED.with(|v| {
        let mut visited = v.borrow_mut();
        visited.reset(g.n);
        let ok = |i: u32| allowed.is_none_or(|a| a.get(i as usize));
        // candidates: min-heap; top: max-heap of the best `ef` allowed nodes.
        let cap = ef.min(g.n) + 1;
        let mut cand: BinaryHeap<Reverse<Hit>> = BinaryHeap::with_capacity(cap * 4);
        let mut top: BinaryHeap<Hit> = BinaryHeap::with_capacity(cap);
        visited.visit(cur);
        cand.push(Reverse(Hit(cur_d, cur)));
        if ok(cur) {
            top.push(Hit(cur_d, cur));
        }
        while let Some(Reverse(Hit(d, c))) = cand.pop() {
            if top.len() >= ef && d > top.peek().map_or(f32::INFINITY, |h| h.0) {
                break;
            }
            let nbs = g.neighbors0(c);
            for &nb in nbs {
                fetch(nb);
            }
            for &nb in nbs {
                if !visited.visit(nb) {
                    continue;
                }
                let dn = dist(nb);
                let bound = top.peek().map_or(f32::INFINITY, |h| h.0);
                if top.len() < ef || dn < bound {
                    // Its neighbour list is read if it is expanded: start loading it now. (hnswlib
                    // stores each node's list beside its vector, so computing the distance loads
                    // both; here they are separate arrays. Measured: ~7% less time per query.)
                    prefetch(&g.layer0, 1 + g.m0, nb);
                    cand.push(Reverse(Hit(dn, nb)));
                    if ok(nb) {
                        top.push(Hit(dn, nb));
                        if top.len() > ef {
                            top.pop();
                        }
                    }
                }
            }
        }
        let mut out = top.into_sorted_vec();
        out.truncate(k);
        out
    })
}
