//! The search hot loop: HNSW graph search and exact search over one segment's flat vectors.
//!
//! The graph is the one hnsw_rs builds (Malkov & Yashunin, "Efficient and robust approximate
//! nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI 2018),
//! copied into flat arrays: layer 0 as `n x (1 + m0)` u32 (`count, ids...`), the upper layers
//! in CSR form. Search is the paper's Algorithm 5 (greedy descent through the upper layers,
//! then a beam of width `ef` on layer 0, Algorithm 2).
//!
//! Filtering (deleted rows, SQL filters) follows hnswlib's approach: every node guides the
//! traversal, only allowed nodes enter the result set, so a selective filter never empties
//! the results of a graph walk; callers fall back to [`exact`] when the allowed set is small.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::distance::Metric;

/// A bitset over node ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    pub fn new(len: usize, value: bool) -> Self {
        let fill = if value { u64::MAX } else { 0 };
        let mut b = Bits { words: vec![fill; len.div_ceil(64)], len };
        b.trim();
        b
    }
    fn trim(&mut self) {
        let r = self.len % 64;
        if r != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u64 << r) - 1;
            }
        }
    }
    #[inline(always)]
    pub fn get(&self, i: usize) -> bool {
        (self.words[i >> 6] >> (i & 63)) & 1 == 1
    }
    #[inline]
    pub fn set(&mut self, i: usize, v: bool) {
        if v {
            self.words[i >> 6] |= 1 << (i & 63);
        } else {
            self.words[i >> 6] &= !(1 << (i & 63));
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn and(&self, other: &Bits) -> Bits {
        Bits { words: self.words.iter().zip(&other.words).map(|(a, b)| a & b).collect(), len: self.len }
    }
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + t)
            })
        })
    }
}

/// An HNSW graph over nodes `0..n`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub n: usize,
    /// Max neighbours per node on layer 0.
    pub m0: usize,
    /// `n * (1 + m0)`: per node, its neighbour count then its neighbour ids.
    pub layer0: Vec<u32>,
    /// Layers 1..: CSR offsets (`n + 1`) and neighbour ids.
    pub upper: Vec<(Vec<u32>, Vec<u32>)>,
    pub entry: u32,
}

impl Graph {
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

/// A (distance, node) pair ordered by distance (total order), then node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit(pub f32, pub u32);

impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Per-thread scratch: a visited table stamped with a generation number.
struct Visited {
    marks: Vec<u32>,
    stamp: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks = vec![0; n];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.stamp = 1;
        }
    }
    #[inline(always)]
    fn visit(&mut self, i: u32) -> bool {
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
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { marks: Vec::new(), stamp: 0 }) };
}

#[inline(always)]
fn row(vectors: &[f32], dim: usize, i: u32) -> &[f32] {
    &vectors[i as usize * dim..(i as usize + 1) * dim]
}

#[inline(always)]
fn prefetch(vectors: &[f32], dim: usize, i: u32) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = vectors.as_ptr().add(i as usize * dim) as *const i8;
        _mm_prefetch(p, _MM_HINT_T0);
        _mm_prefetch(p.add(64), _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (vectors, dim, i);
}

/// The `k` nearest allowed nodes to `q` by graph search with beam width `ef` (>= k),
/// nearest first. `allowed: None` allows every node.
pub fn search(
    g: &Graph,
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    allowed: Option<&Bits>,
) -> Vec<Hit> {
    if g.n == 0 || k == 0 {
        return Vec::new();
    }
    let ef = ef.max(k);
    let mut cur = g.entry;
    let mut cur_d = metric.distance(q, row(vectors, dim, cur));
    for layer in (1..=g.upper.len()).rev() {
        let mut changed = true;
        while changed {
            changed = false;
            for &nb in g.neighbors_upper(layer, cur) {
                let d = metric.distance(q, row(vectors, dim, nb));
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
                prefetch(vectors, dim, nb);
            }
            for &nb in nbs {
                if !visited.visit(nb) {
                    continue;
                }
                let dn = metric.distance(q, row(vectors, dim, nb));
                let bound = top.peek().map_or(f32::INFINITY, |h| h.0);
                if top.len() < ef || dn < bound {
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

/// The `k` nearest allowed nodes to `q` by scanning every allowed node, nearest first.
pub fn exact(vectors: &[f32], dim: usize, metric: Metric, q: &[f32], k: usize, allowed: Option<&Bits>) -> Vec<Hit> {
    let n = if dim == 0 { 0 } else { vectors.len() / dim };
    let mut top: BinaryHeap<Hit> = BinaryHeap::with_capacity(k.min(n) + 1);
    let mut consider = |i: usize| {
        let d = metric.distance(q, &vectors[i * dim..(i + 1) * dim]);
        if top.len() < k {
            top.push(Hit(d, i as u32));
        } else if let Some(w) = top.peek() {
            if Hit(d, i as u32) < *w {
                top.pop();
                top.push(Hit(d, i as u32));
            }
        }
    };
    if k > 0 {
        match allowed {
            Some(a) => a.ones().filter(|&i| i < n).for_each(&mut consider),
            None => (0..n).for_each(&mut consider),
        }
    }
    top.into_sorted_vec()
}

/// Every allowed node within distance `radius` of `q` (exact scan), nearest first.
pub fn within(vectors: &[f32], dim: usize, metric: Metric, q: &[f32], radius: f32, allowed: Option<&Bits>) -> Vec<Hit> {
    let n = if dim == 0 { 0 } else { vectors.len() / dim };
    let mut out: Vec<Hit> = (0..n)
        .filter(|&i| allowed.is_none_or(|a| a.get(i)))
        .filter_map(|i| {
            let d = metric.distance(q, &vectors[i * dim..(i + 1) * dim]);
            (d <= radius).then_some(Hit(d, i as u32))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_ops() {
        let mut b = Bits::new(130, false);
        b.set(0, true);
        b.set(64, true);
        b.set(129, true);
        assert_eq!(b.count(), 3);
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 64, 129]);
        let all = Bits::new(130, true);
        assert_eq!(all.count(), 130);
        assert_eq!(all.and(&b), b);
    }

    #[test]
    fn exact_is_sorted_and_filtered() {
        let v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let hits = exact(&v, 1, Metric::L2, &[3.2], 3, None);
        assert_eq!(hits.iter().map(|h| h.1).collect::<Vec<_>>(), vec![3, 4, 2]);
        let mut a = Bits::new(10, false);
        a.set(9, true);
        a.set(0, true);
        let hits = exact(&v, 1, Metric::L2, &[3.2], 3, Some(&a));
        assert_eq!(hits.iter().map(|h| h.1).collect::<Vec<_>>(), vec![0, 9]);
    }
}
