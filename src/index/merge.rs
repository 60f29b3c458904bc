//! Merging the hits of several sources (segments, unindexed files) into one ranked list.

use crate::vector::hit::Hit;

/// A hit of a multi-source search: (distance, source index, node within the source).
pub type SourceHit = (f32, usize, u32);

/// The `k` best hits of `lists` (per source: its index and its hits, in any order), nearest
/// first. Distances compare by IEEE total order; ties go to the lower source, then the lower
/// node, so the result does not depend on the order sources are searched in. `skip` leaves
/// out one (source, node): the query row itself when a kNN graph searches with stored rows.
pub fn merge_hits(
    lists: impl IntoIterator<Item = (usize, Vec<Hit>)>,
    k: usize,
    skip: Option<(usize, u32)>,
) -> Vec<SourceHit> {
    let mut all: Vec<SourceHit> = lists
        .into_iter()
        .flat_map(|(si, hits)| hits.into_iter().map(move |h| (h.0, si, h.1)))
        .filter(|&(_, si, node)| skip != Some((si, node)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    all.truncate(k);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(v: &[(f32, u32)]) -> Vec<Hit> {
        v.iter().map(|&(d, n)| Hit(d, n)).collect()
    }

    #[test]
    fn nearest_first_across_sources_and_truncated_to_k() {
        let lists = vec![(0, hits(&[(0.5, 3), (0.9, 1)])), (1, hits(&[(0.1, 7), (0.7, 2)]))];
        let got = merge_hits(lists, 3, None);
        assert_eq!(got, vec![(0.1, 1, 7), (0.5, 0, 3), (0.7, 1, 2)]);
    }

    #[test]
    fn ties_break_by_source_then_node_whatever_the_input_order() {
        let a = vec![(2, hits(&[(0.3, 5), (0.3, 1)])), (0, hits(&[(0.3, 9)])), (1, hits(&[]))];
        let b = vec![(1, hits(&[])), (0, hits(&[(0.3, 9)])), (2, hits(&[(0.3, 1), (0.3, 5)]))];
        let want = vec![(0.3, 0, 9), (0.3, 2, 1), (0.3, 2, 5)];
        assert_eq!(merge_hits(a, 10, None), want);
        assert_eq!(merge_hits(b, 10, None), want);
    }

    #[test]
    fn skipped_row_is_left_out_and_k_still_filled() {
        let lists = vec![(0, hits(&[(0.0, 4), (0.2, 6)])), (1, hits(&[(0.1, 4)]))];
        // the query row (source 0, node 4) is not its own neighbour; (1, 4) is another row
        let got = merge_hits(lists, 2, Some((0, 4)));
        assert_eq!(got, vec![(0.1, 1, 4), (0.2, 0, 6)]);
    }

    #[test]
    fn negative_zero_and_infinities_order_totally() {
        let lists = vec![(0, hits(&[(f32::INFINITY, 1), (0.0, 2)])), (1, hits(&[(-0.0, 3), (-1.0, 4)]))];
        let got: Vec<u32> = merge_hits(lists, 10, None).iter().map(|h| h.2).collect();
        assert_eq!(got, vec![4, 3, 2, 1]);
    }

    #[test]
    fn empty_inputs_and_k_zero() {
        assert!(merge_hits(Vec::<(usize, Vec<Hit>)>::new(), 5, None).is_empty());
        assert!(merge_hits(vec![(0, hits(&[(0.1, 1)]))], 0, None).is_empty());
    }
}
