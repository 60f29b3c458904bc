//! Distance kernels of the search hot loop.
//!
//! | metric   | distance                      | vectors stored         |
//! |----------|-------------------------------|------------------------|
//! | `l2`     | squared Euclidean, `Σ(a-b)²`  | as given               |
//! | `cosine` | `max(0, 1 - a·b)`             | normalised to length 1 |
//! | `dot`    | `1 - a·b` (may be negative)   | as given               |
//!
//! These are the conventions of hnswlib and faiss (squared L2) and LanceDB (`1 - dot`).
//! The cosine distance is clamped at 0: a unit vector's self-dot can round above 1, and a
//! negative distance would break the graph's ordering (hnsw_rs's `DistDot` asserts on it).
//! NaN never comes out: it is mapped to `f32::MAX` (only reachable with overflowing input).
//!
//! The kernels use AVX-512F when the CPU has it, else AVX2+FMA (detected once at run time),
//! else a portable loop over 8 independent accumulators that compilers auto-vectorise.
//! hnswlib and faiss pick the same instruction sets when built for the machine
//! (`-march=native`). Measured on this project's machine (MiniLM, 384-d, ef=16, 1 thread):
//! with the AVX-512 kernels and the walk's neighbour-list prefetch, a batch search takes
//! 0.82-0.92x hnswlib's time per query, where it took ~1.0x with AVX2.

use std::sync::OnceLock;

use crate::error::{LakeError, Result};

/// The distance an index is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    L2,
    Cosine,
    Dot,
}

impl Metric {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "cosine" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            o => Err(LakeError::InvalidArgument(format!("metric must be 'l2', 'cosine' or 'dot', not '{o}'"))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
        }
    }

    /// Distance between two stored (prepared) vectors of equal length.
    #[inline(always)]
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        let k = kernels();
        let d = match self {
            Metric::L2 => (k.l2)(a, b),
            Metric::Cosine => (1.0 - (k.dot)(a, b)).max(0.0),
            Metric::Dot => 1.0 - (k.dot)(a, b),
        };
        if d.is_nan() {
            f32::MAX
        } else {
            d
        }
    }

    /// Prepare vectors (rows of `dim`) for storage or search: cosine normalises each row.
    /// Returns the index of the first zero row under cosine (which has no direction).
    pub fn prepare(&self, data: &mut [f32], dim: usize) -> std::result::Result<(), usize> {
        if *self != Metric::Cosine {
            return Ok(());
        }
        for (i, row) in data.chunks_exact_mut(dim).enumerate() {
            let norm = (kernels().dot)(row, row).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(i);
            }
            let inv = 1.0 / norm;
            row.iter_mut().for_each(|x| *x *= inv);
        }
        Ok(())
    }
}

type Kernel = fn(&[f32], &[f32]) -> f32;

struct Kernels {
    name: &'static str,
    dot: Kernel,
    l2: Kernel,
}

/// Every kernel set this CPU runs, fastest first (the first is the one in use).
fn available() -> Vec<Kernels> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            found.push(Kernels { name: "avx512f", dot: avx512::dot_safe, l2: avx512::l2_safe });
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            found.push(Kernels { name: "avx2+fma", dot: avx::dot_safe, l2: avx::l2_safe });
        }
    }
    found.push(Kernels { name: "portable", dot: dot_portable, l2: l2_portable });
    found
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| available().swap_remove(0))
}

/// Name of the kernel set in use ("avx512f", "avx2+fma" or "portable"), for benchmarks and
/// stats.
pub fn kernel_name() -> &'static str {
    kernels().name
}

pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for j in chunks * 8..n {
        s += a[j] * b[j];
    }
    s
}

pub fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for j in 0..8 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for j in chunks * 8..n {
        let d = a[j] - b[j];
        s += d * d;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[path = "distance_avx512.rs"]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Horizontal sum of 8 lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA. Every load reads `pa.add(i + o..i + o + 8)` /
    /// `pb.add(..)` with `i + o + 8 <= n` (the unrolled loop runs while `i + 32 <= n`, `o` up
    /// to 24; the tail while `i + 8 <= n`, `o = 0`) or a scalar `i < n`,
    /// `n = min(a.len(), b.len())`: all in bounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // Four accumulators: FMA's latency (4 cycles) is hidden behind independent chains.
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            s += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        s
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA. Every load reads `pa.add(i + o..i + o + 8)` /
    /// `pb.add(..)` with `i + o + 8 <= n` (the unrolled loop runs while `i + 32 <= n`, `o` up
    /// to 24; the tail while `i + 8 <= n`, `o = 0`) or a scalar `i < n`,
    /// `n = min(a.len(), b.len())`: all in bounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
            let d2 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)));
            let d3 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            acc2 = _mm256_fmadd_ps(d2, d2, acc2);
            acc3 = _mm256_fmadd_ps(d3, d3, acc3);
            i += 32;
        }
        while i + 8 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            let d = *pa.add(i) - *pb.add(i);
            s += d * d;
            i += 1;
        }
        s
    }

    // Safe wrappers, visible to the parent module only: `available()` lists them after it
    // detected AVX2 and FMA at run time, and nothing else calls them.
    pub(super) fn dot_safe(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `available()`, which checked AVX2 and FMA; bounds: see `dot`.
        unsafe { dot(a, b) }
    }
    pub(super) fn l2_safe(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `available()`, which checked AVX2 and FMA; bounds: see `l2`.
        unsafe { l2(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_scalar() {
        let sets = available();
        assert_eq!(sets[0].name, kernel_name());
        for k in &sets {
            for n in [0usize, 1, 7, 8, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 79, 80, 127, 384, 784] {
                let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
                let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                let l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
                assert!(((k.dot)(&a, &b) - dot).abs() < 1e-3 * dot.abs().max(1.0), "{} n={n}", k.name);
                assert!(((k.l2)(&a, &b) - l2).abs() < 1e-3 * l2.max(1.0), "{} n={n}", k.name);
                // lengths differ: the shorter one counts, nothing past it is read
                if n > 1 {
                    let short = &a[..n - 1];
                    let d: f32 = short.iter().zip(&b).map(|(x, y)| x * y).sum();
                    assert!(((k.dot)(short, &b) - d).abs() < 1e-3 * d.abs().max(1.0), "{} n={n}", k.name);
                }
            }
        }
        let a: Vec<f32> = (0..384).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..384).map(|i| (i as f32 * 0.11).cos()).collect();
        let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((Metric::Dot.distance(&a, &b) - (1.0 - dot)).abs() < 1e-3);
    }

    #[test]
    fn cosine_is_clamped_and_zero_rows_refused() {
        let mut v = vec![3.0f32, 4.0, 0.0, 0.0];
        Metric::Cosine.prepare(&mut v, 2).unwrap_err();
        let mut v = vec![3.0f32, 4.0];
        Metric::Cosine.prepare(&mut v, 2).unwrap();
        assert!(Metric::Cosine.distance(&v, &v) >= 0.0);
        assert_eq!(Metric::L2.distance(&[f32::INFINITY], &[f32::INFINITY]), f32::MAX);
    }
}
