//! Exact search: scan every allowed row of a flat `n x dim` vector array.

use std::collections::BinaryHeap;

use crate::vector::bits::Bits;
use crate::vector::distance::Metric;
use crate::vector::hit::Hit;

/// The `k` nearest allowed nodes to `q` by scanning every allowed node, nearest first.
pub fn exact(vectors: &[f32], dim: usize, metric: Metric, q: &[f32], k: usize, allowed: Option<&Bits>) -> Vec<Hit> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
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

/// Every allowed node within distance `radius` of `q` (a range search), nearest first.
pub fn within(vectors: &[f32], dim: usize, metric: Metric, q: &[f32], radius: f32, allowed: Option<&Bits>) -> Vec<Hit> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let hit = |i: usize| {
        let d = metric.distance(q, &vectors[i * dim..(i + 1) * dim]);
        (d <= radius).then_some(Hit(d, i as u32))
    };
    let mut out: Vec<Hit> = match allowed {
        Some(a) => a.ones().filter(|&i| i < n).filter_map(hit).collect(),
        None => (0..n).filter_map(hit).collect(),
    };
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let near = within(&v, 1, Metric::L2, &[3.2], 1.5, None);
        assert_eq!(near.iter().map(|h| h.1).collect::<Vec<_>>(), vec![3, 4, 2]);
        assert!(within(&v, 1, Metric::L2, &[3.2], 1.5, Some(&a)).is_empty());
    }
}
