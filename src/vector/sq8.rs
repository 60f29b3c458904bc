//! 8-bit scalar quantization (SQ8) of prepared vectors, and the asymmetric distance of a float
//! query to a code.
//!
//! Per dimension `j`, a trained range `[lo_j, lo_j + 255 * step_j]` maps a value `x` to the
//! code `c = round((x - lo_j) / step_j)` clamped to `0..=255`, decoded as
//! `x̂ = lo_j + step_j * c` (faiss's `QT_8bit` with min/max training, `ScalarQuantizer.h`;
//! Jégou et al. describe the family in "Product quantization for nearest neighbor search",
//! TPAMI 2011, §II.A). A search compares the *float* query with decoded codes without
//! decoding them: `<q, x̂> = Σ q_j lo_j + Σ (q_j step_j) c_j`, so a query is prepared once
//! ([`Sq8Query`]: the weights `q_j step_j` and the constant) and each code costs one
//! `u8 -> f32` multiply-add per dimension. Squared L2 uses `|q|² - 2<q, x̂> + |x̂|²` with `|x̂|²`
//! stored per row; cosine divides by `|x̂|` (stored as its inverse), so the distance is
//! exactly the cosine distance to the decoded vector.

use crate::vector::distance::Metric;

/// Largest number of rows [`Sq8::train`] reads (a strided sample beyond it).
pub const TRAIN_ROWS: usize = 262_144;

/// A trained 8-bit scalar quantizer over `dim` dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Sq8 {
    /// `lo_j`: the smallest trained value of dimension `j`.
    pub lo: Vec<f32>,
    /// `step_j`: the width of one code step (`(hi_j - lo_j) / 255`, 0 for a constant dimension).
    pub step: Vec<f32>,
}

impl Sq8 {
    /// Train on `vectors` (rows of `dim`, prepared for the metric, finite): per-dimension min
    /// and max over every row, or over a strided sample of [`TRAIN_ROWS`] rows. Values outside
    /// the trained range (rows not in the sample) clamp to the end codes.
    pub fn train(vectors: &[f32], dim: usize) -> Self {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let stride = n.div_ceil(TRAIN_ROWS).max(1);
        let (mut lo, mut hi) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for r in (0..n).step_by(stride) {
            for (j, &x) in vectors[r * dim..(r + 1) * dim].iter().enumerate() {
                lo[j] = lo[j].min(x);
                hi[j] = hi[j].max(x);
            }
        }
        let step = lo
            .iter_mut()
            .zip(&hi)
            .map(|(l, &h)| {
                if !l.is_finite() {
                    *l = 0.0; // no rows
                    return 0.0;
                }
                (h - *l) / 255.0
            })
            .collect();
        Sq8 { lo, step }
    }

    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// The code of one row (`dim` values) into `out` (`dim` bytes).
    pub fn encode_into(&self, row: &[f32], out: &mut [u8]) {
        for (j, (&x, o)) in row.iter().zip(out.iter_mut()).enumerate() {
            let s = self.step[j];
            *o = if s > 0.0 { ((x - self.lo[j]) / s).round().clamp(0.0, 255.0) as u8 } else { 0 };
        }
    }

    /// Decode one code into `out` (`dim` floats).
    pub fn decode_into(&self, code: &[u8], out: &mut [f32]) {
        for (j, (&c, o)) in code.iter().zip(out.iter_mut()).enumerate() {
            *o = self.lo[j] + self.step[j] * c as f32;
        }
    }

    /// The codes of `vectors` (rows of `dim`), `n * dim` bytes, and per row the norm term the
    /// metric needs ([`Sq8Query::distance`]'s `norm`): `|x̂|²` for L2, `1 / |x̂|` for cosine
    /// (0 for a zero decoded vector), unused (0) for dot.
    pub fn encode(&self, vectors: &[f32], metric: Metric) -> (Vec<u8>, Vec<f32>) {
        let dim = self.dim();
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut codes = vec![0u8; n * dim];
        let mut norms = vec![0f32; n];
        let mut dec = vec![0f32; dim];
        for r in 0..n {
            let code = &mut codes[r * dim..(r + 1) * dim];
            self.encode_into(&vectors[r * dim..(r + 1) * dim], code);
            self.decode_into(code, &mut dec);
            let sq: f32 = dec.iter().map(|x| x * x).sum();
            norms[r] = match metric {
                Metric::L2 => sq,
                Metric::Cosine if sq > 0.0 => 1.0 / sq.sqrt(),
                Metric::Cosine | Metric::Dot => 0.0,
            };
        }
        (codes, norms)
    }
}

/// A float query prepared against an [`Sq8`]: `<q, x̂> = base + Σ w_j c_j`.
#[derive(Clone, Debug)]
pub struct Sq8Query {
    /// `w_j = q_j * step_j`.
    pub w: Vec<f32>,
    /// `Σ q_j lo_j`.
    pub base: f32,
    /// `|q|²` (L2).
    pub qq: f32,
    pub metric: Metric,
}

impl Sq8Query {
    /// Prepare `q` (prepared for `metric`, `dim` values).
    pub fn new(sq: &Sq8, q: &[f32], metric: Metric) -> Self {
        let w = q.iter().zip(&sq.step).map(|(a, s)| a * s).collect();
        let base = q.iter().zip(&sq.lo).map(|(a, l)| a * l).sum();
        let qq = q.iter().map(|a| a * a).sum();
        Sq8Query { w, base, qq, metric }
    }

    /// The metric's distance from the query to the decoded `code`, whose norm term (see
    /// [`Sq8::encode`]) is `norm`; never NaN (as [`Metric::distance`]).
    #[inline(always)]
    pub fn distance(&self, code: &[u8], norm: f32) -> f32 {
        let ip = self.base + weighted_sum(&self.w, code);
        let d = match self.metric {
            Metric::L2 => (self.qq - 2.0 * ip + norm).max(0.0),
            Metric::Cosine => (1.0 - ip * norm).max(0.0),
            Metric::Dot => 1.0 - ip,
        };
        if d.is_nan() {
            f32::MAX
        } else {
            d
        }
    }
}

/// `Σ w_j c_j` over `min(w.len(), c.len())` dimensions.
#[inline(always)]
pub fn weighted_sum(w: &[f32], c: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: AVX2 and FMA were detected on this CPU (`avx2_fma`); bounds: see
            // `avx::weighted_sum`.
            return unsafe { avx::weighted_sum(w, c) };
        }
    }
    weighted_sum_portable(w, c)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

pub fn weighted_sum_portable(w: &[f32], c: &[u8]) -> f32 {
    let n = w.len().min(c.len());
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for k in 0..chunks {
        for j in 0..8 {
            acc[j] += w[k * 8 + j] * c[k * 8 + j] as f32;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for j in chunks * 8..n {
        s += w[j] * c[j] as f32;
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA. With `n = min(w.len(), c.len())`, the loop reads
    /// `c[i..i + 8]` (an 8-byte load) and `w[i..i + 8]` only while `i + 8 <= n`, and the tail
    /// element by element below `n`: all in bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weighted_sum(w: &[f32], c: &[u8]) -> f32 {
        let n = w.len().min(c.len());
        let (pw, pc) = (w.as_ptr(), c.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i) as *const __m128i)));
            let c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i + 8) as *const __m128i)));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), c0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8)), c1, acc1);
            i += 16;
        }
        while i + 8 <= n {
            let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i) as *const __m128i)));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), c0, acc0);
            i += 8;
        }
        let v = _mm256_add_ps(acc0, acc1);
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        let mut total = _mm_cvtss_f32(s);
        while i < n {
            total += *pw.add(i) * *pc.add(i) as f32;
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, dim: usize, seed: u32) -> Vec<f32> {
        (0..n * dim)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn codes_decode_within_half_a_step() {
        let (n, dim) = (200, 37);
        let v = rows(n, dim, 1);
        let sq = Sq8::train(&v, dim);
        let (codes, _) = sq.encode(&v, Metric::Dot);
        let mut dec = vec![0f32; dim];
        for r in 0..n {
            sq.decode_into(&codes[r * dim..(r + 1) * dim], &mut dec);
            for j in 0..dim {
                assert!((dec[j] - v[r * dim + j]).abs() <= sq.step[j] * 0.5 + 1e-6, "row {r} dim {j}");
            }
        }
    }

    #[test]
    fn asymmetric_distance_equals_the_distance_to_the_decoded_vector() {
        for dim in [1usize, 7, 8, 16, 17, 33, 384] {
            let v = rows(50, dim, 3);
            let q = rows(1, dim, 9);
            for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
                let mut v = v.clone();
                let mut q = q.clone();
                if metric == Metric::Cosine
                    && (metric.prepare(&mut v, dim).is_err() || metric.prepare(&mut q, dim).is_err())
                {
                    continue;
                }
                let sq = Sq8::train(&v, dim);
                let (codes, norms) = sq.encode(&v, metric);
                let pq = Sq8Query::new(&sq, &q, metric);
                let mut dec = vec![0f32; dim];
                for r in 0..50 {
                    let code = &codes[r * dim..(r + 1) * dim];
                    sq.decode_into(code, &mut dec);
                    let want = match metric {
                        Metric::Cosine => {
                            let n: f32 = dec.iter().map(|x| x * x).sum::<f32>().sqrt();
                            (1.0 - q.iter().zip(&dec).map(|(a, b)| a * b).sum::<f32>() / n).max(0.0)
                        }
                        _ => metric.distance(&q, &dec),
                    };
                    let got = pq.distance(code, norms[r]);
                    assert!(
                        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "dim {dim} {metric:?} row {r}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_agree() {
        for n in [0usize, 1, 7, 8, 15, 16, 17, 40, 384, 785] {
            let w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let c: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let want: f32 = w.iter().zip(&c).map(|(a, b)| a * *b as f32).sum();
            assert!((weighted_sum(&w, &c) - want).abs() < 1e-2 * want.abs().max(1.0), "n={n}");
            assert!((weighted_sum_portable(&w, &c) - want).abs() < 1e-2 * want.abs().max(1.0), "n={n}");
            // a shorter code never reads past its end
            if n > 3 {
                let m = n - 3;
                let want: f32 = w[..m].iter().zip(&c[..m]).map(|(a, b)| a * *b as f32).sum();
                assert!((weighted_sum(&w, &c[..m]) - want).abs() < 1e-2 * want.abs().max(1.0), "n={m}");
            }
        }
    }

    #[test]
    fn constant_dimensions_and_empty_input() {
        let v = vec![0.5f32; 30];
        let sq = Sq8::train(&v, 3);
        assert_eq!(sq.step, vec![0.0; 3]);
        let (codes, _) = sq.encode(&v, Metric::L2);
        let mut dec = vec![0f32; 3];
        sq.decode_into(&codes[..3], &mut dec);
        assert_eq!(dec, vec![0.5; 3]);
        let empty = Sq8::train(&[], 4);
        assert_eq!(empty.lo, vec![0.0; 4]);
    }
}
