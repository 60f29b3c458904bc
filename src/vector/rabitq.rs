//! RaBitQ codes of prepared vectors, with the unbiased distance estimator and its error
//! bound.
//!
//! Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error Bound
//! for Approximate Nearest Neighbor Search", SIGMOD 2024 (arXiv 2405.12497), and for more
//! than one bit per dimension Gao et al., "Practical and Asymptotically Optimal Quantization
//! of High-Dimensional Vectors in Euclidean Space for Approximate Nearest Neighbor Search",
//! SIGMOD 2025 (arXiv 2409.09913: "extended RaBitQ").
//!
//! A row `o_r` is coded relative to the segment's centroid `c` (the mean row; the origin for
//! `dot`): `r = |o_r - c|` and the unit vector `o = (o_r - c) / r` (§3.1.1, eq. 1-2), rotated
//! by a seeded random orthogonal map `P` ([`crate::vector::rotation`]; §3.1.2-3.1.3) into
//! `o' = P o` of `dp` coordinates. With `B` bits, the code is `x` in `{0 .. 2^B - 1}^dp` and
//! its codeword is the unit vector `u = (x - m) / |x - m|`, `m = (2^B - 1) / 2`:
//! - `B = 1`: `x_i = [o'_i > 0]` (the sign code, §3.1.3 eq. 8);
//! - `B > 1`: `x_i = clamp(round(t o'_i + m))` with the scale `t` that maximises `<u, o'>`
//!   (extended RaBitQ's codeword search; here over a grid of [`T_GRID`] scales around the
//!   largest unclipped one, not the exact critical-value sweep of its §3.2.2).
//!
//! For a query `q_r` (`r_q`, `q`, `q'` alike), `<o, q>` is estimated by `<u, q'> / <u, o'>`,
//! unbiased over the random rotation (Theorem 3.2, eq. 13), and with probability at least
//! `1 - 2 exp(-c0 eps0^2)` within `sqrt(1 - <u,o'>^2) / <u,o'> * eps0 / sqrt(dp - 1)` of it
//! (eq. 14 and 16), [`EPSILON0`] = 1.9 (the paper's choice, §5.1). Distances follow from
//! `|o_r - q_r|^2 = r^2 + r_q^2 - 2 r r_q <o, q>`; each row stores three factors: `r^2`,
//! `r / (<u,o'> |x - m|)` and the bound's `2 r sqrt(1 - <u,o'>^2) / <u,o'> * eps0 / sqrt(dp - 1)`.
//!
//! Kernels: 1-bit codes against the query scalar-quantized to [`QUERY_BITS`] bits, as
//! `sum_j 2^j popcount(x AND plane_j)` (§3.3.1, eq. 20-22; rounding to nearest rather than the
//! paper's randomised rounding); multi-bit codes (one byte per coordinate) against the float
//! rotated query with the SQ8 `u8 x f32` kernel.

use rayon::prelude::*;

use crate::vector::distance::Metric;
use crate::vector::rotation::Rotation;
use crate::vector::sq8::weighted_sum;

/// The bound's confidence constant `eps0` (Gao & Long 2024, §3.2.2 and §5.1).
pub const EPSILON0: f32 = 1.9;
/// Bits of the quantized query of the 1-bit kernel (`B_q`, §3.3.1; 4 loses nothing
/// measurable per §5.2.5).
pub const QUERY_BITS: usize = 4;
/// Scales tried per row by the multi-bit codeword search.
pub const T_GRID: usize = 24;
/// The rotation's seed (any fixed value: the signs are stored with the segment).
const SEED: u64 = 0x6c61_6b65_7665_6331;

/// A trained RaBitQ quantizer for one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Rabitq {
    /// Bits per coordinate, 1..=8.
    pub bits: u32,
    pub metric: Metric,
    pub rot: Rotation,
    /// `dim` values (zeros for `dot`).
    pub centroid: Vec<f32>,
}

/// Factors stored per row.
pub const FACTORS: usize = 3;

impl Rabitq {
    /// The quantizer of `vectors` (rows of `dim`, prepared for `metric`): their mean as the
    /// centroid (the origin for `dot`, whose estimate needs `|o_r|` itself) and a rotation.
    pub fn train(vectors: &[f32], dim: usize, metric: Metric, bits: u32) -> Self {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut centroid = vec![0f64; dim];
        if metric != Metric::Dot && n > 0 {
            for row in vectors.chunks_exact(dim) {
                centroid.iter_mut().zip(row).for_each(|(c, &x)| *c += x as f64);
            }
            centroid.iter_mut().for_each(|c| *c /= n as f64);
        }
        Rabitq {
            bits,
            metric,
            rot: Rotation::new(dim, SEED),
            centroid: centroid.into_iter().map(|c| c as f32).collect(),
        }
    }

    pub fn dim(&self) -> usize {
        self.rot.dim
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

    /// Codes (`n * row_words` words) and factors (`n * FACTORS`) of `vectors`, rows in
    /// parallel on the current rayon pool.
    pub fn encode(&self, vectors: &[f32]) -> (Vec<u64>, Vec<f32>) {
        let (dim, w) = (self.dim(), self.row_words());
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut codes = vec![0u64; n * w];
        let mut factors = vec![0f32; n * FACTORS];
        codes.par_chunks_mut(w.max(1)).zip(factors.par_chunks_mut(FACTORS)).enumerate().for_each_init(
            || (vec![0f32; dim], vec![0f32; self.rot.dp]),
            |(v, o), (i, (code, f))| {
                let row = &vectors[i * dim..(i + 1) * dim];
                self.encode_row(row, v, o, code, f);
            },
        );
        (codes, factors)
    }

    /// One row: `v`, `o` scratch of `dim` and `dp` floats.
    fn encode_row(&self, row: &[f32], v: &mut [f32], o: &mut [f32], code: &mut [u64], f: &mut [f32]) {
        let dp = self.rot.dp;
        v.iter_mut().zip(row).zip(&self.centroid).for_each(|((v, &x), &c)| *v = x - c);
        let r = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        code.iter_mut().for_each(|c| *c = 0);
        if r <= 0.0 || !r.is_finite() {
            f.copy_from_slice(&[0.0, 0.0, 0.0]); // the row is the centroid: distance r_q^2
            return;
        }
        self.rot.apply(v, o);
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
        f[0] = r * r;
        f[1] = r / (a * norm_xm);
        f[2] = 2.0 * r * bound;
    }

    /// The approximate vector of a code (for callers that need a vector and have no floats):
    /// `c + r P^-1 u`, `r` recovered from the factors.
    pub fn decode(&self, code: &[u64], f: &[f32], out: &mut [f32]) {
        let dp = self.rot.dp;
        let m = self.mid();
        let mut u = vec![0f32; dp];
        if self.bits == 1 {
            for (i, v) in u.iter_mut().enumerate() {
                *v = if code[i / 64] >> (i % 64) & 1 == 1 { 0.5 } else { -0.5 };
            }
        } else {
            let bytes: &[u8] = bytemuck::cast_slice(code);
            u.iter_mut().zip(bytes).for_each(|(v, &b)| *v = b as f32 - m);
        }
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        let r = f[0].max(0.0).sqrt();
        let scale = if norm > 0.0 { r / norm } else { 0.0 };
        u.iter_mut().for_each(|x| *x *= scale);
        let mut back = vec![0f32; dp];
        self.rot.apply_inverse(&u, &mut back);
        out.iter_mut().zip(&back).zip(&self.centroid).for_each(|((o, &b), &c)| *o = c + b);
    }

    /// Prepare query `q` (`dim` values, prepared for the metric).
    pub fn query(&self, q: &[f32]) -> RabitqQuery {
        let (dim, dp) = (self.dim(), self.rot.dp);
        let v: Vec<f32> = q.iter().zip(&self.centroid).map(|(x, c)| x - c).collect();
        let rq = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut qr = vec![0f32; dp];
        if rq > 0.0 && rq.is_finite() {
            self.rot.apply(&v[..dim], &mut qr);
            qr.iter_mut().for_each(|x| *x /= rq);
        }
        let sum: f32 = qr.iter().sum();
        let mut planes = Vec::new();
        let (mut lo, mut delta) = (0f32, 0f32);
        if self.bits == 1 {
            let words = dp / 64;
            lo = qr.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = qr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            delta = (hi - lo) / ((1 << QUERY_BITS) - 1) as f32;
            planes = vec![0u64; QUERY_BITS * words];
            if delta > 0.0 {
                for (i, &x) in qr.iter().enumerate() {
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
            metric: self.metric,
            bits: self.bits,
            mid: self.mid(),
            rq,
            qr,
            sum,
            planes,
            lo,
            delta,
            popcnt: has_popcnt(),
        }
    }
}

/// A query prepared against a [`Rabitq`].
#[derive(Clone, Debug)]
pub struct RabitqQuery {
    metric: Metric,
    bits: u32,
    mid: f32,
    /// `r_q = |q_r - c|`.
    rq: f32,
    /// `q' = P (q_r - c) / r_q`, `dp` values.
    qr: Vec<f32>,
    /// `sum_i q'_i`.
    sum: f32,
    /// 1-bit kernel: bit planes of the quantized `q'` (`QUERY_BITS x dp/64` words), its lowest
    /// value and step.
    planes: Vec<u64>,
    lo: f32,
    delta: f32,
    popcnt: bool,
}

impl RabitqQuery {
    /// `<x, q'>` for a code `x`.
    #[inline(always)]
    fn ip(&self, code: &[u64]) -> f32 {
        if self.bits == 1 {
            let (weighted, pop) = if self.popcnt {
                // SAFETY: the CPU has POPCNT (`has_popcnt`, checked when the query was made).
                unsafe { planes_popcnt(code, &self.planes) }
            } else {
                planes_portable(code, &self.planes)
            };
            self.delta * weighted as f32 + self.lo * pop as f32
        } else {
            weighted_sum(&self.qr, bytemuck::cast_slice(code))
        }
    }

    /// The metric's estimated distance to the row with `code` and factors `f`, and the
    /// bound on its error (see the module docs); never NaN.
    #[inline(always)]
    pub fn estimate(&self, code: &[u64], f: &[f32]) -> (f32, f32) {
        let ip = self.ip(code) - self.mid * self.sum;
        let (d, err) = match self.metric {
            Metric::L2 => (f[0] + self.rq * self.rq - 2.0 * self.rq * f[1] * ip, f[2] * self.rq),
            Metric::Cosine => ((f[0] + self.rq * self.rq - 2.0 * self.rq * f[1] * ip) / 2.0, f[2] * self.rq / 2.0),
            Metric::Dot => (1.0 - self.rq * f[1] * ip, f[2] * self.rq / 2.0),
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
                let mut v = rows(400, dim, 3);
                metric.prepare(&mut v, dim).unwrap();
                let rq = Rabitq::train(&v, dim, metric, bits);
                let (codes, f) = rq.encode(&v);
                let w = rq.row_words();
                let (mut inside, mut rel_err, mut scale, mut total) = (0, 0f64, 0f64, 0);
                for qi in 0..10 {
                    let q = &v[qi * dim..(qi + 1) * dim];
                    let pq = rq.query(q);
                    for i in 10..400 {
                        let exact = metric.distance(q, &v[i * dim..(i + 1) * dim]);
                        let (est, err) = pq.estimate(&codes[i * w..(i + 1) * w], &f[i * FACTORS..(i + 1) * FACTORS]);
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
        let rq = Rabitq::train(&v, dim, Metric::L2, 1);
        let (codes, f) = rq.encode(&v);
        let pq = rq.query(&v[..dim]);
        let w = rq.row_words();
        for i in 0..50 {
            let c = &codes[i * w..(i + 1) * w];
            assert_eq!(planes_portable(c, &pq.planes), {
                if has_popcnt() {
                    // SAFETY: POPCNT was detected.
                    unsafe { planes_popcnt(c, &pq.planes) }
                } else {
                    planes_portable(c, &pq.planes)
                }
            });
        }
        for bits in [1u32, 8] {
            let rq = Rabitq::train(&v, dim, Metric::L2, bits);
            let (codes, f2) = rq.encode(&v);
            let w = rq.row_words();
            let mut out = vec![0f32; dim];
            rq.decode(&codes[3 * w..4 * w], &f2[3 * FACTORS..4 * FACTORS], &mut out);
            let err: f32 = out.iter().zip(&v[3 * dim..4 * dim]).map(|(a, b)| (a - b) * (a - b)).sum();
            let scale: f32 = v[3 * dim..4 * dim].iter().zip(&rq.centroid).map(|(a, c)| (a - c) * (a - c)).sum();
            let limit = if bits == 1 { 0.6 } else { 0.01 };
            assert!(err < limit * scale, "bits {bits}: {err} vs {scale}");
        }
        let _ = f;
    }

    #[test]
    fn a_row_at_the_centroid_and_empty_input() {
        let v = vec![1.0f32; 64 * 3];
        let rq = Rabitq::train(&v, 64, Metric::L2, 1);
        let (codes, f) = rq.encode(&v);
        assert!(codes.iter().all(|&c| c == 0) && f.iter().all(|&x| x == 0.0));
        let q = vec![2.0f32; 64];
        let (d, _) = rq.query(&q).estimate(&codes[..1], &f[..3]);
        assert!((d - 64.0).abs() < 1e-3, "{d}");
        let empty = Rabitq::train(&[], 8, Metric::L2, 2);
        assert_eq!(empty.encode(&[]).0.len(), 0);
    }
}
