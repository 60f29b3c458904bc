//! A seeded random orthogonal transform in O(D log D): the "FHT-Kac" rotator of the RaBitQ
//! library (VectorDB-NTU/RaBitQ-Library, `docs/rabitq/rotator.md`), used by RaBitQ codes
//! ([`crate::vector::rabitq`]) in place of a dense random rotation (Gao & Long, SIGMOD 2024,
//! §3.1.3, which only needs the rotation to be a random orthogonal map).
//!
//! Vectors are zero-padded to `dp` (the dimension rounded up to a multiple of 64, so that a
//! 1-bit code is whole 64-bit words). Each of [`ROUNDS`] rounds multiplies by stored random
//! signs (Rademacher), applies a normalised Walsh-Hadamard transform to a power-of-two block
//! of `blk = 2^floor(log2 dp)` coordinates (the first block in even rounds, the last in odd
//! ones: together they cover every coordinate since `2 blk > dp`), then a Givens butterfly
//! `(x, y) -> ((x + y) / sqrt 2, (x - y) / sqrt 2)` between the two halves. Every step is
//! orthogonal, so norms and inner products are preserved exactly (up to rounding).

/// Rounds of signs + Hadamard + butterfly (the library's choice).
pub const ROUNDS: usize = 4;

/// A rotation of `dim`-vectors into `dp` coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Rotation {
    pub dim: usize,
    pub dp: usize,
    /// `ROUNDS * dp` signs, each +1.0 or -1.0.
    pub signs: Vec<f32>,
}

/// `dim` rounded up to a multiple of 64 (at least 64).
pub fn padded_dim(dim: usize) -> usize {
    dim.div_ceil(64).max(1) * 64
}

impl Rotation {
    /// A rotation drawn from `seed` (splitmix64 signs; the signs are stored, not the seed, so
    /// a stored rotation never depends on this generator).
    pub fn new(dim: usize, seed: u64) -> Self {
        let dp = padded_dim(dim);
        let mut s = seed;
        let signs = (0..ROUNDS * dp)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                if (z ^ (z >> 31)) & 1 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        Rotation { dim, dp, signs }
    }

    /// Whether stored parts are consistent (`dp` is `dim` padded, every sign is +-1).
    pub fn is_valid(&self) -> bool {
        self.dp == padded_dim(self.dim)
            && self.signs.len() == ROUNDS * self.dp
            && self.signs.iter().all(|&s| s == 1.0 || s == -1.0)
    }

    /// Rotate `x` (`dim` values) into `out` (`dp` values).
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let dp = self.dp;
        out[..self.dim].copy_from_slice(&x[..self.dim]);
        out[self.dim..dp].iter_mut().for_each(|v| *v = 0.0);
        let blk = 1usize << (usize::BITS - 1 - dp.leading_zeros());
        let scale = 1.0 / (blk as f32).sqrt();
        let half = dp / 2;
        let r2 = std::f32::consts::FRAC_1_SQRT_2;
        for r in 0..ROUNDS {
            for (v, s) in out.iter_mut().zip(&self.signs[r * dp..(r + 1) * dp]) {
                *v *= s;
            }
            let block = if r % 2 == 0 { &mut out[..blk] } else { &mut out[dp - blk..] };
            fwht(block);
            block.iter_mut().for_each(|v| *v *= scale);
            let (a, b) = out.split_at_mut(half);
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                let (p, q) = (*x, *y);
                *x = (p + q) * r2;
                *y = (p - q) * r2;
            }
        }
    }

    /// The inverse: `y` (`dp` values) back to `dp` coordinates in `out`, whose first `dim`
    /// are the vector (the padding comes back as ~0). Each step is its own inverse, so the
    /// rounds run backwards.
    pub fn apply_inverse(&self, y: &[f32], out: &mut [f32]) {
        let dp = self.dp;
        out[..dp].copy_from_slice(&y[..dp]);
        let blk = 1usize << (usize::BITS - 1 - dp.leading_zeros());
        let scale = 1.0 / (blk as f32).sqrt();
        let half = dp / 2;
        let r2 = std::f32::consts::FRAC_1_SQRT_2;
        for r in (0..ROUNDS).rev() {
            let (a, b) = out.split_at_mut(half);
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                let (p, q) = (*x, *y);
                *x = (p + q) * r2;
                *y = (p - q) * r2;
            }
            let block = if r % 2 == 0 { &mut out[..blk] } else { &mut out[dp - blk..] };
            fwht(block);
            block.iter_mut().for_each(|v| *v *= scale);
            for (v, s) in out.iter_mut().zip(&self.signs[r * dp..(r + 1) * dp]) {
                *v *= s;
            }
        }
    }
}

/// In-place unnormalised Walsh-Hadamard transform of a power-of-two length slice.
fn fwht(v: &mut [f32]) {
    let n = v.len();
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (v[j], v[j + h]);
                v[j] = a + b;
                v[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserves_norms_and_inner_products() {
        for dim in [1usize, 5, 64, 100, 384, 784] {
            let r = Rotation::new(dim, 7);
            assert!(r.is_valid());
            let x: Vec<f32> = (0..dim).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
            let y: Vec<f32> = (0..dim).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
            let (mut rx, mut ry) = (vec![0f32; r.dp], vec![0f32; r.dp]);
            r.apply(&x, &mut rx);
            r.apply(&y, &mut ry);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
            assert!((dot(&x, &x) - dot(&rx, &rx)).abs() < 1e-3 * dot(&x, &x).max(1.0), "dim {dim}");
            assert!((dot(&x, &y) - dot(&rx, &ry)).abs() < 1e-3 * dot(&x, &x).max(1.0), "dim {dim}");
        }
    }

    #[test]
    fn inverse_undoes_the_rotation() {
        for dim in [3usize, 64, 384, 784] {
            let r = Rotation::new(dim, 5);
            let x: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.7).sin()).collect();
            let (mut y, mut back) = (vec![0f32; r.dp], vec![0f32; r.dp]);
            r.apply(&x, &mut y);
            r.apply_inverse(&y, &mut back);
            for i in 0..r.dp {
                let want = if i < dim { x[i] } else { 0.0 };
                assert!((back[i] - want).abs() < 1e-4, "dim {dim} coordinate {i}: {} vs {want}", back[i]);
            }
        }
    }

    #[test]
    fn spreads_a_basis_vector_and_depends_on_the_seed() {
        let r = Rotation::new(384, 1);
        let mut e = vec![0f32; 384];
        e[0] = 1.0;
        let mut out = vec![0f32; r.dp];
        r.apply(&e, &mut out);
        // no coordinate keeps most of the mass
        assert!(out.iter().all(|v| v.abs() < 0.5), "{:?}", &out[..8]);
        assert_ne!(Rotation::new(384, 2).signs, r.signs);
        let mut bad = r.clone();
        bad.signs[3] = 0.5;
        assert!(!bad.is_valid());
    }
}
