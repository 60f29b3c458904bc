//! MinHash signatures and LSH banding for near-duplicate detection.
//!
//! - Shingles: word n-grams (tokens `\w+` after normalisation, joined by one space) or
//!   character n-grams; a text shorter than one n-gram is one shingle; an empty or null text
//!   has no signature and is never a duplicate.
//! - Hash family (Broder, "On the resemblance and containment of documents", 1997, with
//!   the Carter-Wegman universal family datasketch's `MinHash` also uses): each shingle is
//!   hashed to 64 bits with [`hash64`] and reduced to `x < p = 2^31 - 1`, then permuted
//!   `num_perm` times by `h_i(x) = (a_i x + b_i) mod p` with `a_i in [1, p)`, `b_i in [0, p)`
//!   drawn from SplitMix64 seeded by `seed`; the signature keeps each permutation's
//!   minimum. (datasketch uses `p = 2^61 - 1` over 32-bit hashes; the 31-bit prime keeps
//!   every product in 64 bits, so the loop over permutations vectorises.)
//! - `sketch="oph"`: one-permutation hashing with optimal densification instead of
//!   `num_perm` permutations, O(shingles + num_perm) per text (see `dedup::oph`); the same
//!   shingles, estimate and banding.
//! - LSH (Leskovec, Rajaraman, Ullman, "Mining of Massive Datasets", ch. 3.4): the signature
//!   is cut into `bands` bands of `rows` values; two texts whose band agrees anywhere are a
//!   candidate pair. `bands`/`rows` default to datasketch's choice: the pair minimising
//!   0.5 x false-positive area + 0.5 x false-negative area of the S-curve `1-(1-s^r)^b`
//!   around the threshold (`_optimal_param` in datasketch/lsh.py).
//! - Candidates are kept when their estimated Jaccard similarity (the fraction of equal
//!   signature values) is at least the threshold, then joined into clusters (union-find).
//!   Every step is a pure function of the signatures: clusters do not depend on threads or
//!   on how the input was split into batches.

use rayon::prelude::*;

use crate::dedup::exact::row_hash;
use crate::dedup::oph::Oph;
use crate::error::{LakeError, Result};
use crate::runtime::CancelToken;
use crate::text::{char_ngrams, for_each_word, hash64, hash64_ascii_lower, mix64, Normalize};

/// A verified pair: (a, b, estimated Jaccard, exact Jaccard or NaN).
pub type Pair = (u32, u32, f32, f32);

const MERSENNE31: u64 = (1 << 31) - 1;

/// Shingle kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shingle {
    Word,
    Char,
}

impl Shingle {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "word" => Ok(Shingle::Word),
            "char" => Ok(Shingle::Char),
            o => Err(LakeError::InvalidArgument(format!("shingle must be 'word' or 'char', not '{o}'"))),
        }
    }
}

/// How a signature is computed from a text's shingle hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sketch {
    /// `num_perm` universal-hash permutations, each keeping its minimum (Broder 1997;
    /// datasketch's `MinHash`): O(shingles x num_perm).
    Classic,
    /// One-permutation hashing with optimal densification (`dedup::oph`):
    /// O(shingles + num_perm).
    Oph,
    /// Not a sketch: the 128-bit hash of the whole normalised text (as `dedup::exact`) in 4
    /// slots, so that exact duplicates are one band's bucket (a dedup index with
    /// `method="exact"`; not offered by `Sketch::parse`).
    Exact,
}

impl Sketch {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "classic" => Ok(Sketch::Classic),
            "oph" => Ok(Sketch::Oph),
            o => Err(LakeError::InvalidArgument(format!("sketch must be 'oph' or 'classic', not '{o}'"))),
        }
    }
}

/// Signature parameters.
#[derive(Clone, Debug)]
pub struct MinHasher {
    pub num_perm: usize,
    pub ngram: usize,
    pub shingle: Shingle,
    pub normalize: Normalize,
    pub sketch: Sketch,
    a: Vec<u32>,
    b: Vec<u32>,
    oph: Oph,
}

/// `x mod (2^31 - 1)` for any `x < 2^63`, branch-free (vectorises).
#[inline(always)]
fn mod31(x: u64) -> u32 {
    let s = (x & MERSENNE31) + (x >> 31); // < 2^32 + 2^31
    let s = (s & MERSENNE31) + (s >> 31); // <= 2^31 + 1
    let s = s as u32;
    let p = MERSENNE31 as u32;
    s - if s >= p { p } else { 0 }
}

impl MinHasher {
    pub fn new(
        num_perm: usize,
        ngram: usize,
        shingle: Shingle,
        normalize: Normalize,
        sketch: Sketch,
        seed: u64,
    ) -> Result<Self> {
        if num_perm == 0 || num_perm > 4096 {
            return Err(LakeError::InvalidArgument(format!("num_perm must be in 1..=4096, got {num_perm}")));
        }
        if ngram == 0 || ngram > 64 {
            return Err(LakeError::InvalidArgument(format!("ngram must be in 1..=64, got {ngram}")));
        }
        let mut state = mix64(seed ^ 0x6c61_6b65_7665_6321);
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state)
        };
        let (a, b) = match sketch {
            Sketch::Classic => (
                (0..num_perm).map(|_| (1 + next() % (MERSENNE31 - 1)) as u32).collect(),
                (0..num_perm).map(|_| (next() % MERSENNE31) as u32).collect(),
            ),
            Sketch::Oph => (Vec::new(), Vec::new()),
            Sketch::Exact if num_perm != 4 => {
                return Err(LakeError::InvalidArgument(format!("exact signatures have 4 slots, not {num_perm}")))
            }
            Sketch::Exact => (Vec::new(), Vec::new()),
        };
        Ok(MinHasher { num_perm, ngram, shingle, normalize, sketch, a, b, oph: Oph::new(num_perm, seed) })
    }

    /// The 64-bit hashes of the shingles of `text` (sorted, unique). A word n-gram's hash
    /// chains its tokens' [`hash64`]s through [`mix64`] (no n-gram string is built); a
    /// character n-gram is hashed as bytes.
    pub fn shingle_hashes(&self, text: &str) -> Vec<u64> {
        let mut out = self.shingles(text);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// [`Self::shingle_hashes`] in text order, repeats kept.
    fn shingles(&self, text: &str) -> Vec<u64> {
        let mut out = Vec::new();
        match self.shingle {
            Shingle::Word => {
                // Tokens are `\w+` runs, so whitespace normalisation cannot change them.
                let mut toks: Vec<u64> = Vec::with_capacity(text.len() / 6 + 1);
                if text.is_ascii() {
                    // NFKC leaves ASCII as it is and lower-casing it is per byte: hash the
                    // tokens of the text as given (the same hashes, no normalised copy).
                    let lower = self.normalize.lowercase;
                    for_each_word(text, |t| {
                        toks.push(if lower { hash64_ascii_lower(t.as_bytes(), 0) } else { hash64(t.as_bytes(), 0) })
                    });
                } else {
                    let text = Normalize { whitespace: false, ..self.normalize }.apply(text);
                    for_each_word(&text, |t| toks.push(hash64(t.as_bytes(), 0)));
                }
                if toks.is_empty() {
                    return out;
                }
                let n = self.ngram.min(toks.len());
                out.reserve(toks.len() + 1 - n);
                for w in toks.windows(n) {
                    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
                    for &x in w {
                        h = mix64(h.rotate_left(23) ^ x);
                    }
                    out.push(h);
                }
            }
            Shingle::Char => {
                let text = self.normalize.apply(text);
                let len = text.chars().count();
                if len == 0 || text.trim().is_empty() {
                    return out;
                }
                let n = self.ngram.min(len);
                char_ngrams(&text, n, n, |g| out.push(hash64(g.as_bytes(), 0)));
            }
        }
        out
    }

    /// The signature of a null text into `sig`: none (false, every slot `u32::MAX`), except
    /// for [`Sketch::Exact`], where nulls are equal to each other (as in `dedup::exact`).
    pub fn null_signature(&self, sig: &mut [u32]) -> bool {
        if self.sketch == Sketch::Exact {
            return self.exact_signature(None, sig);
        }
        sig.fill(u32::MAX);
        false
    }

    /// [`Sketch::Exact`]: `dedup::exact`'s 128-bit hash of one normalised value as 4 slots.
    fn exact_signature(&self, text: Option<&str>, sig: &mut [u32]) -> bool {
        let (h1, h2) = row_hash(std::iter::once(text), self.normalize);
        sig.copy_from_slice(&[h1 as u32, (h1 >> 32) as u32, h2 as u32, (h2 >> 32) as u32]);
        true
    }

    /// The signatures of `texts` in parallel (on the current rayon pool): a row-major
    /// `texts.len() x num_perm` matrix and each row's validity ([`Self::signature`], or
    /// [`Self::null_signature`] for a null). Stops early and errors when `cancel` fires.
    pub fn signatures(&self, texts: &[Option<&str>], cancel: &CancelToken) -> Result<(Vec<u32>, Vec<bool>)> {
        let mut sigs = vec![0u32; texts.len() * self.num_perm];
        let valid: Vec<bool> = sigs
            .par_chunks_mut(self.num_perm)
            .zip(texts.par_iter())
            .map(|(s, t)| {
                cancel.advance(1);
                !cancel.is_cancelled()
                    && match t {
                        Some(t) => self.signature(t, s),
                        None => self.null_signature(s),
                    }
            })
            .collect();
        cancel.check()?;
        Ok((sigs, valid))
    }

    /// The signature of `text` into `sig` (`num_perm` values); false when it has no shingles.
    pub fn signature(&self, text: &str, sig: &mut [u32]) -> bool {
        match self.sketch {
            Sketch::Oph => return self.oph.sketch(&self.shingles(text), sig),
            Sketch::Exact => return self.exact_signature(Some(text), sig),
            Sketch::Classic => {}
        }
        let hashes = self.shingle_hashes(text);
        if hashes.is_empty() {
            sig.iter_mut().for_each(|s| *s = u32::MAX);
            return false;
        }
        sig.iter_mut().for_each(|s| *s = u32::MAX);
        let (a, b) = (&self.a[..sig.len()], &self.b[..sig.len()]);
        for &h in &hashes {
            let x = mod31(h >> 3) as u64;
            for i in 0..sig.len() {
                let v = mod31(a[i] as u64 * x + b[i] as u64);
                sig[i] = sig[i].min(v);
            }
        }
        true
    }
}

/// Estimated Jaccard similarity of two signatures.
#[inline]
pub fn jaccard_estimate(a: &[u32], b: &[u32]) -> f64 {
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count();
    eq as f64 / a.len().max(1) as f64
}

/// Exact Jaccard similarity of two sorted, unique hash sets.
pub fn jaccard_exact(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    // composite Simpson, 200 intervals (the integrands are smooth polynomials)
    let n = 200;
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        let x = a + i as f64 * h;
        s += if i % 2 == 1 { 4.0 * f(x) } else { 2.0 * f(x) };
    }
    s * h / 3.0
}

/// datasketch's `_optimal_param`: (bands, rows) with bands * rows <= num_perm minimising
/// `weights.0` x false-positive area + `weights.1` x false-negative area (datasketch's
/// default weights are (0.5, 0.5)).
pub fn optimal_bands(threshold: f64, num_perm: usize, weights: (f64, f64)) -> (usize, usize) {
    let mut best = (1, 1);
    let mut min_err = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let (bf, rf) = (b as f64, r as f64);
            let fp = integrate(|s| 1.0 - (1.0 - s.powf(rf)).powf(bf), 0.0, threshold);
            let fneg = integrate(|s| 1.0 - (1.0 - (1.0 - s.powf(rf)).powf(bf)), threshold, 1.0);
            let err = weights.0 * fp + weights.1 * fneg;
            if err < min_err {
                min_err = err;
                best = (b, r);
            }
        }
    }
    best
}

/// Check the LSH arguments; returns (bands, rows).
pub fn lsh_params(
    threshold: f64,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    weights: (f64, f64),
) -> Result<(usize, usize)> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(LakeError::InvalidArgument(format!("threshold must be in (0, 1], got {threshold}")));
    }
    if !(weights.0 >= 0.0 && weights.1 >= 0.0 && (weights.0 + weights.1 - 1.0).abs() < 1e-9) {
        return Err(LakeError::InvalidArgument(format!(
            "weights must be two non-negative numbers summing to 1, got {weights:?}"
        )));
    }
    match (bands, rows) {
        (None, None) => Ok(optimal_bands(threshold, num_perm, weights)),
        (Some(b), Some(r)) if b > 0 && r > 0 && b.checked_mul(r).is_some_and(|x| x <= num_perm) => Ok((b, r)),
        (Some(b), None) if b > 0 && num_perm.is_multiple_of(b) => Ok((b, num_perm / b)),
        (None, Some(r)) if r > 0 && num_perm.is_multiple_of(r) => Ok((num_perm / r, r)),
        (b, r) => Err(LakeError::InvalidArgument(format!(
            "bands={b:?} and rows={r:?} do not fit num_perm={num_perm}: bands * rows must be <= num_perm, \
             and a single one given must divide num_perm"
        ))),
    }
}

/// The LSH bucket key of band `band` (`rows` values) of signature `sig`: a SplitMix64 chain
/// over the band's values, seeded by the band number. Single-process and distributed dedup
/// both bucket by this key.
pub fn band_key(sig: &[u32], band: usize, rows: usize) -> u64 {
    let mut h = mix64(band as u64 ^ 0x6c6b_7662_616e_6473);
    for &x in &sig[band * rows..(band + 1) * rows] {
        h = mix64(h ^ x as u64);
    }
    h
}

/// Rows with identical signatures: sorts `members` (row indices into the `n x p` matrix
/// `flat`) by (signature, `key`) and returns the runs of equal signatures as ranges of
/// `members`; a run's first member has the smallest `key`. Single-process and distributed
/// dedup join such copies by star edges to that first member before (or inside) banding, so
/// m copies never make m(m-1)/2 pairs.
pub fn identical_runs<K: Ord + Send>(
    members: &mut [usize],
    flat: &[u32],
    p: usize,
    key: impl Fn(usize) -> K + Sync,
) -> Vec<std::ops::Range<usize>> {
    let sig = |i: usize| &flat[i * p..(i + 1) * p];
    members.par_sort_unstable_by(|&x, &y| sig(x).cmp(sig(y)).then_with(|| key(x).cmp(&key(y))));
    let mut runs = Vec::new();
    let mut start = 0;
    while start < members.len() {
        let mut end = start + 1;
        while end < members.len() && sig(members[end]) == sig(members[start]) {
            end += 1;
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Candidate pairs (i < j) of `n` signatures (`sigs` is `n * num_perm`, `valid[i]` false for
/// texts without shingles) that share a band, sorted and unique.
pub fn candidate_pairs(sigs: &[u32], num_perm: usize, valid: &[bool], bands: usize, rows: usize) -> Vec<(u32, u32)> {
    let n = valid.len();
    let mut pairs: Vec<(u32, u32)> = (0..bands)
        .into_par_iter()
        .flat_map_iter(|band| {
            let mut keys: Vec<(u64, u32)> = (0..n)
                .filter(|&i| valid[i])
                .map(|i| (band_key(&sigs[i * num_perm..(i + 1) * num_perm], band, rows), i as u32))
                .collect();
            keys.sort_unstable();
            let mut out = Vec::new();
            let mut start = 0;
            while start < keys.len() {
                let mut end = start + 1;
                while end < keys.len() && keys[end].0 == keys[start].0 {
                    end += 1;
                }
                for x in start..end {
                    for y in x + 1..end {
                        out.push((keys[x].1, keys[y].1));
                    }
                }
                start = end;
            }
            out.into_iter()
        })
        .collect();
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs
}

/// Union-find over `n` items; `find` returns the smallest member of a set as its root.
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind { parent: (0..n as u32).collect() }
    }
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
    /// Root (smallest member) of every item.
    pub fn roots(&mut self) -> Vec<u32> {
        (0..self.parent.len() as u32).map(|i| self.find(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_have_similar_signatures() {
        for sketch in [Sketch::Classic, Sketch::Oph] {
            let h = MinHasher::new(256, 1, Shingle::Word, Normalize::all(), sketch, 1).unwrap();
            let mut a = vec![0u32; 256];
            let mut b = vec![0u32; 256];
            let base: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
            let t1 = base.join(" ");
            let t2 = base[..80].join(" ") + " " + &(0..20).map(|i| format!("x{i}")).collect::<Vec<_>>().join(" ");
            assert!(h.signature(&t1, &mut a) && h.signature(&t2, &mut b));
            // true Jaccard = 80 / 120
            let est = jaccard_estimate(&a, &b);
            assert!((est - 80.0 / 120.0).abs() < 0.1, "{sketch:?}: {est}");
            assert!(!h.signature("  ", &mut a), "{sketch:?}");
        }
    }

    #[test]
    fn mod31_is_exact() {
        for x in [0u64, 1, MERSENNE31 - 1, MERSENNE31, MERSENNE31 + 1, 1 << 40, u64::MAX >> 1, 0x7fff_ffff_ffff_fffe] {
            assert_eq!(mod31(x) as u64, x % MERSENNE31, "{x}");
        }
    }

    #[test]
    fn optimal_params_match_datasketch() {
        // datasketch MinHashLSH(threshold=0.8, num_perm=128).b, .r == 9, 13
        assert_eq!(optimal_bands(0.8, 128, (0.5, 0.5)), (9, 13));
        assert_eq!(optimal_bands(0.8, 128, (0.1, 0.9)), (14, 9));
        // (datasketch.lsh._optimal_param(t, 128, 0.5, 0.5) for t = 0.5, 0.7)
        assert_eq!(optimal_bands(0.5, 128, (0.5, 0.5)), (25, 5));
        assert_eq!(optimal_bands(0.7, 128, (0.5, 0.5)), (14, 9));
        assert!(lsh_params(0.0, 128, None, None, (0.5, 0.5)).is_err());
        assert!(lsh_params(0.8, 128, Some(7), None, (0.5, 0.5)).is_err());
        assert_eq!(lsh_params(0.8, 128, Some(16), None, (0.5, 0.5)).unwrap(), (16, 8));
    }

    #[test]
    fn identical_runs_start_at_the_smallest_key() {
        let flat = [5, 5, 1, 2, 5, 5, 1, 2, 3, 3];
        let mut m = vec![0, 1, 2, 3, 4];
        let runs = identical_runs(&mut m, &flat, 2, |i| std::cmp::Reverse(i));
        let got: Vec<Vec<usize>> = runs.iter().map(|r| m[r.clone()].to_vec()).collect();
        assert_eq!(got, vec![vec![3, 1], vec![4], vec![2, 0]]);
    }

    #[test]
    fn union_find_roots_are_minimums() {
        let mut u = UnionFind::new(6);
        u.union(5, 3);
        u.union(3, 4);
        u.union(1, 2);
        assert_eq!(u.roots(), vec![0, 1, 1, 3, 3, 3]);
    }
}
