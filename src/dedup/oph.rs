//! One-permutation hashing with optimal densification: a MinHash sketch in
//! O(shingles + num_perm) per text, where the classic sketch costs O(shingles x num_perm).
//!
//! - One permutation (Li, Owen and Zhang, "One Permutation Hashing", NeurIPS 2012): every
//!   shingle hash is mixed once with a seeded key ([`mix64`]); the high 32 bits pick one of
//!   `k` bins (Lemire's multiply-shift range reduction), the low 32 bits are its value, and
//!   each bin keeps its minimum. Two texts' bins agree with probability equal to their
//!   Jaccard similarity, given that the bin is non-empty in either.
//! - Densification (Shrivastava, "Optimal Densification for Fast and Accurate Minwise
//!   Hashing", ICML 2017): every empty bin borrows the value of a non-empty bin chosen by
//!   fixed pseudo-random hashes (the same for every text), so two texts with the same
//!   non-empty bins fill the same way, which keeps the estimate unbiased with a variance
//!   close to the classic sketch's. The choice is made in the reverse direction of the
//!   paper's Algorithm 2 (Mai et al., "On Densification for Minwise Hashing", UAI 2019, fast
//!   densification): non-empty bins offer their values to pseudo-random bins round after
//!   round until none is empty, O(k log k) per text where probing from the empty bins costs
//!   up to O(k^2). A bin only ever borrows a value the text actually hashed to.
//! - The estimate of Jaccard similarity is the share of equal slots, as for the classic
//!   sketch, and LSH bands cut the slots the same way.

use crate::text::mix64;

/// Value of a bin no shingle fell into (never a real value: those are clamped below it).
const EMPTY: u32 = u32::MAX;

/// A seeded one-permutation sketch of `k` slots.
#[derive(Clone, Debug)]
pub struct Oph {
    k: usize,
    key: u64,
    probe_key: u64,
}

impl Oph {
    /// A sketch of `k` slots (`k >= 1`; the caller checks the range).
    pub fn new(k: usize, seed: u64) -> Self {
        Oph { k, key: mix64(seed ^ 0x6f70_685f_6b65_7931), probe_key: mix64(seed ^ 0x6f70_685f_7072_6f62) }
    }

    /// Bin of a value spread over 32 bits: `floor(x * k / 2^32)`.
    #[inline(always)]
    fn bin(&self, x: u32) -> usize {
        ((x as u64 * self.k as u64) >> 32) as usize
    }

    /// The sketch of `hashes` (64-bit shingle hashes, any order, repeats allowed) into `sig`
    /// (`k` slots); false (and every slot `u32::MAX`) when `hashes` is empty.
    pub fn sketch(&self, hashes: &[u64], sig: &mut [u32]) -> bool {
        debug_assert_eq!(sig.len(), self.k);
        sig.fill(EMPTY);
        if hashes.is_empty() {
            return false;
        }
        for &h in hashes {
            let g = mix64(h ^ self.key);
            let v = (g as u32).min(EMPTY - 1);
            let slot = &mut sig[self.bin((g >> 32) as u32)];
            *slot = (*slot).min(v);
        }
        self.densify(sig);
        true
    }

    /// Fill the empty bins of a sketch with at least one non-empty bin (see the module docs):
    /// in round `t = 1, 2, ...` every originally non-empty bin `j` (in increasing order)
    /// offers its value to bin `h_j(t)` (the `t`-th output of a generator seeded by `j`),
    /// which takes it if still empty. A bin's value comes
    /// from the first (round, bin) offer that reaches it, a function of the set of non-empty
    /// bins alone. About `k ln k` offers in all, whatever the number of shingles (probing
    /// from the empty bins instead, as Algorithm 2 is written, costs `k^2` for a
    /// one-shingle text).
    fn densify(&self, sig: &mut [u32]) {
        // Each source's targets: a 64-bit LCG (Knuth's MMIX constants) seeded by the bin
        // number, its high 32 bits mapped to a bin: one multiply per offer.
        let mut sources: Vec<(u32, u64)> = (0..self.k as u32)
            .filter(|&j| sig[j as usize] != EMPTY)
            .map(|j| (j, mix64(self.probe_key ^ j as u64)))
            .collect();
        let mut empty = self.k - sources.len();
        while empty > 0 {
            for (j, state) in sources.iter_mut() {
                *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let target = self.bin((*state >> 32) as u32);
                if sig[target] == EMPTY {
                    // `j` is a source: its value is its own minimum, never overwritten.
                    sig[target] = sig[*j as usize];
                    empty -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::minhash::jaccard_estimate;

    fn set(range: std::ops::Range<u64>) -> Vec<u64> {
        range.map(|x| mix64(x.wrapping_mul(0x9e37_79b9))).collect()
    }

    #[test]
    fn estimates_jaccard_without_bias() {
        // |A ∩ B| = 60, |A ∪ B| = 100: J = 0.6, averaged over seeds and set sizes (small sets
        // exercise densification: 20 shingles in 128 bins leave most bins empty).
        for (n, shift) in [(100u64, 40u64), (20, 8)] {
            let (a, b) = (set(0..n), set(shift..n + shift));
            let truth = (n - shift) as f64 / (n + shift) as f64;
            let mut mean = 0.0;
            let trials = 200;
            for seed in 0..trials {
                let o = Oph::new(128, seed);
                let (mut sa, mut sb) = (vec![0u32; 128], vec![0u32; 128]);
                assert!(o.sketch(&a, &mut sa) && o.sketch(&b, &mut sb));
                assert!(sa.iter().all(|&x| x != EMPTY));
                mean += jaccard_estimate(&sa, &sb) / trials as f64;
            }
            assert!((mean - truth).abs() < 0.02, "n={n}: mean estimate {mean} vs J {truth}");
        }
    }

    #[test]
    fn identical_sets_agree_and_order_does_not_matter() {
        let o = Oph::new(64, 7);
        let a = set(0..10);
        let mut b = a.clone();
        b.reverse();
        b.extend_from_slice(&a[..3]); // repeats change nothing
        let (mut sa, mut sb) = (vec![0u32; 64], vec![0u32; 64]);
        o.sketch(&a, &mut sa);
        o.sketch(&b, &mut sb);
        assert_eq!(sa, sb);
        assert!(!o.sketch(&[], &mut sa));
        assert!(sa.iter().all(|&x| x == EMPTY));
        // one shingle fills every slot with its value
        o.sketch(&a[..1], &mut sa);
        assert!(sa.iter().all(|&x| x == sa[0]));
    }
}
