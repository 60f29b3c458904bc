//! Runs of identical vectors (empty texts, default embeddings): grouped so that a graph holds
//! one node per distinct vector and a search hands out every row of a group it reaches.
//!
//! An HNSW graph built over 50,000 copies of one vector fills every neighbour list inside
//! that copy's clique at distance 0, and a search entering it never leaves (measured: none of
//! 10 distinct rows found at rank 1 even with ef = 5,000). So the graph is built over one
//! representative per group (the group's first row), the other rows carry no edges, and a
//! hit on a representative stands for the whole group at the same distance (a posting list).

use std::collections::HashMap;

use crate::vector::bits::Bits;
use crate::vector::hit::Hit;

/// The groups of rows with bit-identical vectors, for groups of two or more rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dups {
    /// Representative -> the other rows of its group (increasing).
    pub members: HashMap<u32, Vec<u32>>,
    /// Rows that are not representatives (each other row of a group).
    pub count: usize,
}

impl Dups {
    /// Group the `n = vectors.len() / dim` rows of `vectors` by their bits; `None` when all
    /// rows are distinct (see [`Self::find_rows`]).
    pub fn find(vectors: &[f32], dim: usize) -> Option<Dups> {
        Self::find_rows(&crate::vector::mapped::le_bytes(vectors), dim * 4)
    }

    /// Group the rows of `row_bytes` bytes each in `bytes` (float rows, or a quantized kind's
    /// codes) by their bytes; `None` when all rows are distinct. Keeps a 64-bit hash and a row
    /// id per distinct row while grouping (rows are compared byte for byte when their hashes
    /// meet).
    pub fn find_rows(bytes: &[u8], row_bytes: usize) -> Option<Dups> {
        use std::hash::{Hash, Hasher};
        if row_bytes == 0 {
            return None;
        }
        let row = |i: u32| &bytes[i as usize * row_bytes..(i as usize + 1) * row_bytes];
        let n = bytes.len() / row_bytes;
        // hash -> the distinct rows with that hash (almost always one)
        let mut seen: HashMap<u64, Vec<u32>> = HashMap::with_capacity(n);
        let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut count = 0;
        for i in 0..n as u32 {
            let r = row(i);
            let mut h = std::collections::hash_map::DefaultHasher::new();
            r.hash(&mut h);
            let reps = seen.entry(h.finish()).or_default();
            match reps.iter().find(|&&rep| row(rep) == r) {
                Some(&rep) => {
                    members.entry(rep).or_default().push(i);
                    count += 1;
                }
                None => reps.push(i),
            }
        }
        (count > 0).then_some(Dups { members, count })
    }

    /// The rows that are not representatives, as bits over `n` rows.
    pub fn others(&self, n: usize) -> Bits {
        let mut b = Bits::new(n, false);
        for m in self.members.values().flatten() {
            b.set(*m as usize, true);
        }
        b
    }

    /// `allowed` widened to the representatives of groups with an allowed row (a deleted
    /// representative still stands for its live copies); `None` when every row is allowed.
    pub fn allowed_reps(&self, allowed: Option<&Bits>) -> Option<Bits> {
        let a = allowed?;
        let mut out = a.clone();
        for (&rep, others) in &self.members {
            if !a.get(rep as usize) && others.iter().any(|&m| a.get(m as usize)) {
                out.set(rep as usize, true);
            }
        }
        Some(out)
    }

    /// `hits` with each representative replaced by the allowed rows of its group (same
    /// distance), unique, nearest first (ties by row), cut to `k`.
    pub fn expand(&self, hits: Vec<Hit>, k: usize, allowed: Option<&Bits>) -> Vec<Hit> {
        let ok = |i: u32| allowed.is_none_or(|a| a.get(i as usize));
        let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            if ok(h.1) {
                out.push(h);
            }
            if let Some(others) = self.members.get(&h.1) {
                out.extend(others.iter().filter(|&&m| ok(m)).map(|&m| Hit(h.0, m)));
            }
        }
        out.sort_unstable();
        out.dedup_by_key(|h| h.1);
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_expansion() {
        // rows 0, 2, 3 are one vector; 1 another
        let v = [1.0, 0.0, 5.0, 5.0, 1.0, 0.0, 1.0, 0.0];
        let d = Dups::find(&v, 2).unwrap();
        assert_eq!(d.members.get(&0), Some(&vec![2, 3]));
        assert_eq!(d.count, 2);
        assert!(Dups::find(&[1.0, 2.0], 2).is_none());
        let hits = vec![Hit(0.0, 0), Hit(0.5, 1)];
        let all: Vec<u32> = d.expand(hits.clone(), 10, None).iter().map(|h| h.1).collect();
        assert_eq!(all, vec![0, 2, 3, 1]);
        // representative deleted, its copies still found
        let mut a = Bits::new(4, true);
        a.set(0, false);
        let reps = d.allowed_reps(Some(&a)).unwrap();
        assert!(reps.get(0));
        let live: Vec<u32> = d.expand(hits, 2, Some(&a)).iter().map(|h| h.1).collect();
        assert_eq!(live, vec![2, 3]);
        assert!(d.others(4).get(3) && !d.others(4).get(0));
    }
}
