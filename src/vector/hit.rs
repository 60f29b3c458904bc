//! A search result: (distance, node).

use std::cmp::Ordering;

/// A (distance, node) pair ordered by distance (total order), then node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit(pub f32, pub u32);

impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}
