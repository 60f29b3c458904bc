//! RaBitQ codes of prepared vectors, with the unbiased distance estimator and its error
//! bound.
//!
//! Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error Bound
//! for Approximate Nearest Neighbor Search", SIGMOD 2024 (arXiv 2405.12497), and for more
//! than one bit per dimension Gao et al., "Practical and Asymptotically Optimal Quantization
//! of High-Dimensional Vectors in Euclidean Space for Approximate Nearest Neighbor Search",
//! SIGMOD 2025 (arXiv 2409.09913: "extended RaBitQ").
//!
//! A row `o_r` is coded relative to a centroid `c` (§3.1.1, eq. 1-2; the paper's IVF setting
//! codes each row against its cluster's centroid, §4): `r = |o_r - c|` and the unit vector
//! `o = (o_r - c) / r`, rotated by a seeded random orthogonal map `P`
//! ([`crate::vector::rotation`]; §3.1.2-3.1.3) into `o' = P o` of `dp` coordinates. The
//! centroids are a segment's two-level k-means leaves ([`crate::vector::kmeans`],
//! [`default_centroids`] of them), stored rotated; each row keeps the number of its own.
//! Close centroids keep `r` and `r_q` small, and the estimator's error scales with
//! `r r_q`: on clustered vectors one centroid per segment leaves the 1-bit error above the
//! distances between neighbours. With `B` bits, the code is `x` in `{0 .. 2^B - 1}^dp` and
//! its codeword is the unit vector `u = (x - m) / |x - m|`, `m = (2^B - 1) / 2`:
//! - `B = 1`: `x_i = [o'_i > 0]` (the sign code, §3.1.3 eq. 8);
//! - `B > 1`: `x_i = clamp(round(t o'_i + m))` with the scale `t` that maximises `<u, o'>`
//!   (extended RaBitQ's codeword search; here over a grid of [`T_GRID`] scales around the
//!   largest unclipped one, not the exact critical-value sweep of its §3.2.2).
//!
//! For a query `q_r` (`r_q = |q_r - c|`, `q = (q_r - c) / r_q` and `q' = P q` alike),
//! `<o, q>` is estimated by `<u, q'> / <u, o'>`, unbiased over the random rotation
//! (Theorem 3.2, eq. 13), and with probability at least `1 - 2 exp(-c0 eps0^2)` within
//! `sqrt(1 - <u,o'>^2) / <u,o'> * eps0 / sqrt(dp - 1)` of it (eq. 14 and 16), [`EPSILON0`] =
//! 1.9 (the paper's choice, §5.1). Distances follow from
//! `|o_r - q_r|^2 = r^2 + r_q^2 - 2 r r_q <o, q>`. Since `r_q <x - m, q'> = <x - m, P q_r> -
//! <x - m, P c>`, the estimate is
//! `(r^2 + 2 f1 <x - m, P c>) + |P q_r - P c|^2 - 2 f1 <x - m, P q_r>`, `f1 = r / (<u,o'> |x - m|)`:
//! the first term is stored per row, the second is one number per centroid, and the kernel
//! runs against the rotated query itself, shared by every centroid (the query is rotated and
//! quantized once, not once per centroid). For `dot` the query is not centred:
//! `<o_r, q_r> = <c, q_r> + f1 <x - m, P q_r>`. Each row stores three factors: that first term
//! (`r^2` for `dot`), `f1` and the bound's `2 r sqrt(1 - <u,o'>^2) / <u,o'> * eps0 / sqrt(dp - 1)`
//! (times `r_q`: the error bound of the estimate); `r` is recovered from `f1` and the bound
//! where a code is decoded.
//!
//! Kernels: 1-bit codes against the rotated query scalar-quantized to [`QUERY_BITS`] bits, as
//! `sum_j 2^j popcount(x AND plane_j)` (§3.3.1, eq. 20-22; rounding to nearest rather than the
//! paper's randomised rounding); multi-bit codes (one byte per coordinate) against the float
//! rotated query with the SQ8 `u8 x f32` kernel. The quantized query is `P q_r` itself, not
//! centred on a centroid, so its quantization step follows `|q_r|` rather than `r_q`:
//! measured on 1M clustered rows at 1 bit, recall without re-ranking 0.33 against 0.34 with
//! a query quantized per centroid, for 2.3x the queries per second.

use std::cell::Cell;

use rayon::prelude::*;

use crate::error::Result;
use crate::runtime::CancelToken;
use crate::vector::distance::{dot_portable, Metric};
use crate::vector::kmeans::Centroids;
use crate::vector::rotation::Rotation;
use crate::vector::sq8::weighted_sum;

/// The bound's confidence constant `eps0` (Gao & Long 2024, §3.2.2 and §5.1).
pub const EPSILON0: f32 = 1.9;
/// Bits of the quantized query of the 1-bit kernel (`B_q`, §3.3.1; 4 loses nothing
/// measurable per §5.2.5).
pub const QUERY_BITS: usize = 4;
/// Scales tried per row by the multi-bit codeword search.
pub const T_GRID: usize = 24;
/// Most centroids per segment (a row's centroid number is stored in 16 bits).
pub const MAX_CENTROIDS: usize = 4096;
/// The rotation's and the k-means' seed (any fixed value: the signs and centroids are
/// stored with the segment).
const SEED: u64 = 0x6c61_6b65_7665_6331;

/// Rows per centroid, at least: the centroids (stored as bfloat16, `2 dp` bytes each) cost
/// at most `2 dp / 512` bytes per row (1.5 B at 384-d, 0.1% of the floats).
pub const MIN_ROWS_PER_CENTROID: usize = 512;

/// Centroids for `n` rows: `round(sqrt(n))` (the square-root rule of IVF list counts, as in
/// the RaBitQ paper's IVF setting, Gao & Long 2024 §4 and §5.1, which uses 4,096 lists for
/// 1M rows; fewer here: the graph, not the centroids, finds the candidates, so centroids
/// only need to keep `r` small), at most one per [`MIN_ROWS_PER_CENTROID`] rows, in
/// `1..=MAX_CENTROIDS`.
pub fn default_centroids(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).min(n / MIN_ROWS_PER_CENTROID).clamp(1, MAX_CENTROIDS)
}

/// `x` rounded to the nearest bfloat16 (ties to even; a finite `x` stays finite), as f32.
pub fn to_bf16(x: f32) -> f32 {
    let b = x.to_bits();
    let r = f32::from_bits((b.wrapping_add(0x7FFF + ((b >> 16) & 1))) & 0xFFFF_0000);
    if r.is_finite() {
        r
    } else {
        f32::from_bits(b & 0xFFFF_0000)
    }
}

/// A trained RaBitQ quantizer for one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Rabitq {
    /// Bits per coordinate, 1..=8.
    pub bits: u32,
    pub metric: Metric,
    pub rot: Rotation,
    /// `nc * dp` rotated centroids `P c_j` (at least one), each value a bfloat16 (stored as
    /// such: the reference point of a code only has to be the same when coding and
    /// estimating, not the exact mean).
    pub centroids: Vec<f32>,
}

/// Factors stored per row.
pub const FACTORS: usize = 3;

impl Rabitq {
    /// The quantizer of `vectors` (rows of `dim`, prepared for `metric`, finite): a rotation
    /// and [`default_centroids`] k-means centroids ([`crate::vector::kmeans`]), and the
    /// centroid of each row (the nearest leaf of its nearest coarse cell). Runs on the
    /// current rayon pool; keeps the centroids and one u16 per row. Errors: cancelled.
    pub fn train(
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        bits: u32,
        cancel: &CancelToken,
    ) -> Result<(Self, Vec<u16>)> {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let rot = Rotation::new(dim, SEED);
        let tree = Centroids::train(vectors, dim, default_centroids(n), SEED, cancel)?;
        let nc = if tree.is_empty() { 1 } else { tree.len() };
        let mut centroids = vec![0f32; nc * rot.dp];
        for (c, out) in tree.leaves.chunks_exact(dim).zip(centroids.chunks_exact_mut(rot.dp)) {
            rot.apply(c, out);
            out.iter_mut().for_each(|x| *x = to_bf16(*x));
        }
        let cids: Vec<u16> = vectors.par_chunks_exact(dim.max(1)).map(|x| tree.assign_one(x) as u16).collect();
        cancel.check()?;
        Ok((Rabitq { bits, metric, rot, centroids }, cids))
    }

    pub fn dim(&self) -> usize {
        self.rot.dim
    }

    /// Centroids.
    pub fn len(&self) -> usize {
        self.centroids.len() / self.rot.dp
    }

    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    fn centroid(&self, j: usize) -> &[f32] {
        &self.centroids[j * self.rot.dp..(j + 1) * self.rot.dp]
    }

    /// u64 words per row's code: `dp / 64` for one bit, `dp / 8` (a byte per coordinate) for more.
    pub fn row_words(&self) -> usize {
        if self.bits == 1 {
            self.rot.dp / 64
        } else {
            self.rot.dp / 8
        }
    }

    /// `m = (2^B - 1) / 2`.
    fn mid(&self) -> f32 {
        ((1u32 << self.bits) - 1) as f32 / 2.0
    }

    /// Codes (`n * row_words` words) and factors (`n * FACTORS`) of `vectors`, row `i`
    /// relative to centroid `cids[i]` (`< self.len()`), rows in parallel on the current
    /// rayon pool.
    pub fn encode(&self, vectors: &[f32], cids: &[u16]) -> (Vec<u64>, Vec<f32>) {
        let (dim, w) = (self.dim(), self.row_words());
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut codes = vec![0u64; n * w];
        let mut factors = vec![0f32; n * FACTORS];
        codes.par_chunks_mut(w.max(1)).zip(factors.par_chunks_mut(FACTORS)).enumerate().for_each_init(
            || vec![0f32; self.rot.dp],
            |o, (i, (code, f))| {
                let row = &vectors[i * dim..(i + 1) * dim];
                self.encode_row(row, cids[i] as usize, o, code, f);
            },
        );
        (codes, factors)
    }

    /// One row against centroid `j`: `o` scratch of `dp` floats.
    fn encode_row(&self, row: &[f32], j: usize, o: &mut [f32], code: &mut [u64], f: &mut [f32]) {
        let dp = self.rot.dp;
        self.rot.apply(row, o);
        o.iter_mut().zip(self.centroid(j)).for_each(|(x, &c)| *x -= c);
        let r = o.iter().map(|x| x * x).sum::<f32>().sqrt();
        code.iter_mut().for_each(|c| *c = 0);
        if r <= 0.0 || !r.is_finite() {
            f.copy_from_slice(&[0.0, 0.0, 0.0]); // the row is the centroid: distance r_q^2
            return;
        }
        o.iter_mut().for_each(|x| *x /= r);
        let m = self.mid();
        let (norm_xm, a) = if self.bits == 1 {
            for (i, &x) in o.iter().enumerate() {
                if x > 0.0 {
                    code[i / 64] |= 1 << (i % 64);
                }
            }
            let l1: f32 = o.iter().map(|x| x.abs()).sum();
            ((dp as f32).sqrt() / 2.0, l1 / (dp as f32).sqrt())
        } else {
            let top = ((1u32 << self.bits) - 1) as f32;
            let amax = o.iter().fold(0f32, |a, x| a.max(x.abs())).max(f32::MIN_POSITIVE);
            let t_hi = (m + 0.5) / amax;
            let (mut best_t, mut best_cos) = (t_hi, f32::NEG_INFINITY);
            for s in 0..T_GRID {
                let t = t_hi * (0.4 + 1.2 * s as f32 / (T_GRID - 1) as f32);
                let (mut dot, mut nn) = (0f32, 0f32);
                for &x in o.iter() {
                    let xm = (t * x + m).round().clamp(0.0, top) - m;
                    dot += xm * x;
                    nn += xm * xm;
                }
                let cos = if nn > 0.0 { dot / nn.sqrt() } else { f32::NEG_INFINITY };
                if cos > best_cos {
                    (best_t, best_cos) = (t, cos);
                }
            }
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(code);
            let mut nn = 0f32;
            for (b, &x) in bytes.iter_mut().zip(o.iter()) {
                let c = (best_t * x + m).round().clamp(0.0, top);
                *b = c as u8;
                nn += (c - m) * (c - m);
            }
            (nn.sqrt(), best_cos)
        };
        let a = a.clamp(1e-6, 1.0);
        let bound = (1.0 - a * a).max(0.0).sqrt() / a * EPSILON0 / ((dp - 1).max(1) as f32).sqrt();
        f[1] = r / (a * norm_xm);
        f[2] = 2.0 * r * bound;
        f[0] = match self.metric {
            Metric::Dot => r * r,
            // r^2 + 2 f1 <x - m, P c>: the centroid's share of the estimate, so that queries
            // need <x - m, P q> only (see the module docs)
            _ => {
                // `o` is free again: it takes the code's values
                self.code_values(code, o);
                r * r + 2.0 * f[1] * dot_portable(o, self.centroid(j))
            }
        };
    }

    /// `x - m` of a code `x` into `out` (`dp` values): `+-1/2` for one bit, `x_i - m` else.
    fn code_values(&self, code: &[u64], out: &mut [f32]) {
        if self.bits == 1 {
            for (i, v) in out.iter_mut().enumerate() {
                *v = if code[i / 64] >> (i % 64) & 1 == 1 { 0.5 } else { -0.5 };
            }
        } else {
            let m = self.mid();
            let bytes: &[u8] = bytemuck::cast_slice(code);
            out.iter_mut().zip(bytes).for_each(|(v, &b)| *v = b as f32 - m);
        }
    }

    /// `|o_r - c|` of a row from its factors and `n = |x - m|` of its code: `f1 = r / (a n)`
    /// and `f2 = 2 r sqrt(1 - a^2) / a * E` (`E = eps0 / sqrt(dp - 1)`) give
    /// `sqrt(1 - a^2) = f2 / (2 n E f1)`, then `r = f1 a n`.
    fn radius(&self, n: f32, f: &[f32]) -> f32 {
        let e = EPSILON0 / ((self.rot.dp - 1).max(1) as f32).sqrt();
        if f[1] <= 0.0 || n <= 0.0 {
            return 0.0;
        }
        let s = (f[2] / (2.0 * n * e * f[1])).clamp(0.0, 1.0);
        f[1] * (1.0 - s * s).sqrt() * n
    }

    /// The approximate vector of a code (for callers that need a vector and have no floats):
    /// `P^-1 (P c_j + r u)`, `r` recovered from the factors, into `out` (`dim` values).
    pub fn decode(&self, code: &[u64], f: &[f32], j: usize, out: &mut [f32]) {
        let dp = self.rot.dp;
        let mut u = vec![0f32; dp];
        self.code_values(code, &mut u);
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        let r = self.radius(norm, f);
        let scale = if norm > 0.0 { r / norm } else { 0.0 };
        u.iter_mut().zip(self.centroid(j)).for_each(|(x, &c)| *x = c + *x * scale);
        let mut back = vec![0f32; dp];
        self.rot.apply_inverse(&u, &mut back);
        out.copy_from_slice(&back[..out.len()]);
    }

    /// Prepare query `q` (`dim` values, prepared for the metric): rotated once into `P q`,
    /// whose part of the estimate is shared by every centroid (see the module docs); the one
    /// number a centroid adds (`|P q - P c|^2`, or `<P c, P q>` for `dot`) is computed the
    /// first time a row of that centroid is estimated.
    pub fn query(&self, q: &[f32]) -> RabitqQuery<'_> {
        let dp = self.rot.dp;
        let mut pq = vec![0f32; dp];
        self.rot.apply(q, &mut pq);
        let sum: f32 = pq.iter().sum();
        let norm = pq.iter().map(|x| x * x).sum::<f32>().sqrt();
        let (mut lo, mut delta, mut planes) = (0f32, 0f32, Vec::new());
        if self.bits == 1 {
            let words = dp / 64;
            lo = pq.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = pq.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            delta = (hi - lo) / ((1 << QUERY_BITS) - 1) as f32;
            planes = vec![0u64; QUERY_BITS * words];
            if delta > 0.0 && delta.is_finite() {
                for (i, &x) in pq.iter().enumerate() {
                    let qu = ((x - lo) / delta).round() as u32;
                    for j in 0..QUERY_BITS {
                        if qu >> j & 1 == 1 {
                            planes[j * words + i / 64] |= 1 << (i % 64);
                        }
                    }
                }
            }
        }
        RabitqQuery {
            q: self,
            mid: self.mid(),
            pq,
            sum,
            norm,
            planes,
            lo,
            delta,
            per_centroid: (0..self.len()).map(|_| Cell::new(f32::NAN)).collect(),
            popcnt: has_popcnt(),
        }
    }
}

/// A query prepared against a [`Rabitq`]: `P q` (`dp` values; for 1-bit codes its bit planes
/// quantized to [`QUERY_BITS`] bits, `QUERY_BITS x dp/64` words, with their lowest value and
/// step), `sum_i (P q)_i`, `|q|`, and per centroid `|P q - P c|^2` (`<P c, P q>` for `dot`),
/// NaN until first used.
#[derive(Clone, Debug)]
pub struct RabitqQuery<'a> {
    q: &'a Rabitq,
    mid: f32,
    pq: Vec<f32>,
    sum: f32,
    norm: f32,
    planes: Vec<u64>,
    lo: f32,
    delta: f32,
    per_centroid: Vec<Cell<f32>>,
    popcnt: bool,
}

impl RabitqQuery<'_> {
    /// `<x - m, P q>` for a code `x`.
    #[inline(always)]
    fn ip(&self, code: &[u64]) -> f32 {
        let raw = if self.q.bits == 1 {
            let (weighted, pop) = if self.popcnt {
                // SAFETY: the CPU has POPCNT (`has_popcnt`, checked when the query was made).
                unsafe { planes_popcnt(code, &self.planes) }
            } else {
                planes_portable(code, &self.planes)
            };
            self.delta * weighted as f32 + self.lo * pop as f32
        } else {
            weighted_sum(&self.pq, bytemuck::cast_slice(code))
        };
        raw - self.mid * self.sum
    }

    /// Centroid `j`'s number, computed on first use.
    #[inline(always)]
    fn centroid_term(&self, j: usize) -> f32 {
        let cell = &self.per_centroid[j];
        let v = cell.get();
        if !v.is_nan() {
            return v;
        }
        let c = self.q.centroid(j);
        let v = match self.q.metric {
            Metric::Dot => dot_portable(c, &self.pq),
            _ => self.pq.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum(),
        };
        cell.set(v);
        v
    }

    /// The metric's estimated distance to the row with `code`, factors `f` and centroid `j`,
    /// and the bound on its error (see the module docs); never NaN.
    #[inline(always)]
    pub fn estimate(&self, code: &[u64], f: &[f32], j: usize) -> (f32, f32) {
        let s = self.ip(code);
        let c = self.centroid_term(j);
        let (d, err) = match self.q.metric {
            Metric::L2 => (f[0] + c - 2.0 * f[1] * s, f[2] * c.max(0.0).sqrt()),
            Metric::Cosine => ((f[0] + c - 2.0 * f[1] * s) / 2.0, f[2] * c.max(0.0).sqrt() / 2.0),
            Metric::Dot => (1.0 - c - f[1] * s, f[2] * self.norm / 2.0),
        };
        if d.is_nan() {
            (f32::MAX, 0.0)
        } else {
            (d, err)
        }
    }
}

fn has_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `(sum_j 2^j popcount(x AND plane_j), popcount(x))` over `x.len()` words; the planes are
/// `QUERY_BITS` runs of `x.len()` words.
fn planes_portable(x: &[u64], planes: &[u64]) -> (u32, u32) {
    let w = x.len();
    let mut weighted = 0u32;
    for j in 0..QUERY_BITS {
        let p = &planes[j * w..(j + 1) * w];
        let c: u32 = x.iter().zip(p).map(|(a, b)| (a & b).count_ones()).sum();
        weighted += c << j;
    }
    (weighted, x.iter().map(|a| a.count_ones()).sum())
}

/// [`planes_portable`] compiled with the POPCNT instruction (on x86_64).
///
/// # Safety
/// The CPU must support POPCNT. Reads only within `x` and `planes` (slice indexing).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "popcnt"))]
unsafe fn planes_popcnt(x: &[u64], planes: &[u64]) -> (u32, u32) {
    planes_portable(x, planes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered-ish rows: a few centres plus noise (deterministic).
    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20_000) as f32 / 10_000.0 - 1.0
        };
        let centres: Vec<f32> = (0..4 * dim).map(|_| next()).collect();
        (0..n).flat_map(|i| (0..dim).map(|j| centres[(i % 4) * dim + j] + 0.5 * next()).collect::<Vec<_>>()).collect()
    }

    #[test]
    fn estimates_are_close_and_within_the_bound_mostly() {
        let dim = 128;
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            for bits in [1u32, 4, 8] {
                let mut v = rows(2100, dim, 3); // 4 centroids (one per 512 rows)
                metric.prepare(&mut v, dim).unwrap();
                let (rq, cids) = Rabitq::train(&v, dim, metric, bits, &CancelToken::new()).unwrap();
                assert!(rq.len() > 1 && cids.iter().all(|&c| (c as usize) < rq.len()));
                let (codes, f) = rq.encode(&v, &cids);
                let w = rq.row_words();
                let (mut inside, mut rel_err, mut scale, mut total) = (0, 0f64, 0f64, 0);
                for qi in 0..10 {
                    let q = &v[qi * dim..(qi + 1) * dim];
                    let pq = rq.query(q);
                    for i in 10..400 {
                        let exact = metric.distance(q, &v[i * dim..(i + 1) * dim]);
                        let (est, err) = pq.estimate(
                            &codes[i * w..(i + 1) * w],
                            &f[i * FACTORS..(i + 1) * FACTORS],
                            cids[i] as usize,
                        );
                        inside += usize::from((est - exact).abs() <= err + 1e-4);
                        rel_err += (est - exact).abs() as f64;
                        scale += exact.abs() as f64;
                        total += 1;
                    }
                }
                let frac = inside as f64 / total as f64;
                let mean_rel = rel_err / scale; // mean error / mean distance
                                                // The bound holds with high probability (eps0 = 1.9); more bits, smaller errors.
                assert!(frac > 0.9, "{metric:?} bits {bits}: {frac} within the bound");
                let limit = match bits {
                    1 => 0.25,
                    4 => 0.05,
                    _ => 0.01,
                };
                assert!(mean_rel < limit, "{metric:?} bits {bits}: mean relative error {mean_rel}");
            }
        }
    }

    #[test]
    fn kernels_agree_and_decode_approximates() {
        let dim = 100;
        let v = rows(50, dim, 9);
        let c0 = CancelToken::new();
        let (rq, cids) = Rabitq::train(&v, dim, Metric::L2, 1, &c0).unwrap();
        let (codes, f) = rq.encode(&v, &cids);
        let pq = rq.query(&v[..dim]);
        let w = rq.row_words();
        for i in 0..50 {
            let c = &codes[i * w..(i + 1) * w];
            let _ = pq.estimate(c, &f[i * FACTORS..(i + 1) * FACTORS], cids[i] as usize);
            let planes = &pq.planes;
            assert_eq!(planes_portable(c, planes), {
                if has_popcnt() {
                    // SAFETY: POPCNT was detected.
                    unsafe { planes_popcnt(c, planes) }
                } else {
                    planes_portable(c, planes)
                }
            });
        }
        for bits in [1u32, 8] {
            let (rq, cids) = Rabitq::train(&v, dim, Metric::L2, bits, &c0).unwrap();
            let (codes, f2) = rq.encode(&v, &cids);
            let w = rq.row_words();
            let mut out = vec![0f32; dim];
            rq.decode(&codes[3 * w..4 * w], &f2[3 * FACTORS..4 * FACTORS], cids[3] as usize, &mut out);
            let err: f32 = out.iter().zip(&v[3 * dim..4 * dim]).map(|(a, b)| (a - b) * (a - b)).sum();
            let mut c = vec![0f32; rq.rot.dp];
            rq.rot.apply_inverse(rq.centroid(cids[3] as usize), &mut c);
            let scale: f32 = v[3 * dim..4 * dim].iter().zip(&c).map(|(a, c)| (a - c) * (a - c)).sum();
            let limit = if bits == 1 { 0.6 } else { 0.01 };
            assert!(err < limit * scale, "bits {bits}: {err} vs {scale}");
        }
        let _ = f;
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(to_bf16(1.0), 1.0);
        assert_eq!(to_bf16(1.0 + 1.0 / 512.0), 1.0); // tie to even
        assert_eq!(to_bf16(1.0 + 3.0 / 512.0), 1.0 + 4.0 / 512.0);
        assert!((to_bf16(0.1234) - 0.1234).abs() < 0.1234 / 256.0);
        assert!(to_bf16(f32::MAX).is_finite());
        assert_eq!(to_bf16(-2.5), -2.5);
    }

    #[test]
    fn a_row_at_the_centroid_and_empty_input() {
        let c = CancelToken::new();
        let v = vec![1.0f32; 64 * 3];
        let (rq, cids) = Rabitq::train(&v, 64, Metric::L2, 1, &c).unwrap();
        let (codes, f) = rq.encode(&v, &cids);
        assert!(codes.len() == 3 && f.iter().all(|&x| x.abs() < 1e-4), "{f:?}");
        let q = vec![2.0f32; 64];
        let (d, _) = rq.query(&q).estimate(&codes[..1], &f[..3], cids[0] as usize);
        assert!((d - 64.0).abs() < 1e-3, "{d}");
        let (empty, cids) = Rabitq::train(&[], 8, Metric::L2, 2, &c).unwrap();
        assert_eq!((empty.len(), empty.encode(&[], &cids).0.len()), (1, 0));
    }
}
