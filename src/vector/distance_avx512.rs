//! AVX-512 distance kernels (16 floats per instruction, the tail read with a masked load).
//! A child module of `distance`: `available()` lists the safe wrappers after it detected
//! AVX-512F at run time, and nothing else can call them.

use std::arch::x86_64::*;

/// Lanes of the last `rest` (< 16) values, for a masked load.
#[inline(always)]
fn tail_mask(rest: usize) -> __mmask16 {
    ((1u32 << rest) - 1) as __mmask16
}

/// # Safety
/// The CPU must support AVX-512F. With `n = min(a.len(), b.len())`, every full load reads
/// `pa.add(i + o..i + o + 16)` / `pb.add(..)` with `i + o + 16 <= n` (the unrolled loop runs
/// while `i + 64 <= n`, `o` up to 48; the next while `i + 16 <= n`, `o = 0`); the last load
/// is masked to the `n - i < 16` lanes in bounds (a masked-out lane is neither read nor
/// faulted on).
#[target_feature(enable = "avx512f")]
unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Four accumulators: FMA's latency (4 cycles) is hidden behind independent chains.
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut acc2 = _mm512_setzero_ps();
    let mut acc3 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 64 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)), acc3);
        i += 64;
    }
    while i + 16 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        i += 16;
    }
    if i < n {
        let m = tail_mask(n - i);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
}

/// # Safety
/// As [`dot`]: AVX-512F, and the same loads.
#[target_feature(enable = "avx512f")]
unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut acc2 = _mm512_setzero_ps();
    let mut acc3 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 64 <= n {
        let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
        let d2 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)));
        let d3 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        acc1 = _mm512_fmadd_ps(d1, d1, acc1);
        acc2 = _mm512_fmadd_ps(d2, d2, acc2);
        acc3 = _mm512_fmadd_ps(d3, d3, acc3);
        i += 64;
    }
    while i + 16 <= n {
        let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        i += 16;
    }
    if i < n {
        let m = tail_mask(n - i);
        let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)));
        acc1 = _mm512_fmadd_ps(d, d, acc1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
}

pub(super) fn dot_safe(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only reachable through `available()`, which
    // detected AVX-512F; bounds: see `dot`.
    unsafe { dot(a, b) }
}
pub(super) fn l2_safe(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only reachable through `available()`, which
    // detected AVX-512F; bounds: see `dot`.
    unsafe { l2(a, b) }
}
