//! Where a compressed index kind finds the float vectors it re-ranks its candidates with.

use crate::error::{LakeError, Result};
use crate::vector::hit::Hit;

/// Where the exact float vectors of a compressed kind's rows live (`rerank_source=` of
/// `build_index`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RerankSource {
    /// A float32 copy in the segment file (section `VECTORS`), mapped, read only for the
    /// candidates a search re-ranks.
    #[default]
    Sidecar,
    /// No float copy in the sidecar: a search reads its candidates' vectors from the table
    /// itself, by row address, at the pinned table version.
    Lake,
    /// Codes only: searches return the codes' estimated distances.
    None,
}

impl RerankSource {
    /// `"sidecar"`, `"lake"` or `None` (Python's `None`: codes only).
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            Some("sidecar") => Ok(RerankSource::Sidecar),
            Some("lake") => Ok(RerankSource::Lake),
            None => Ok(RerankSource::None),
            Some(o) => {
                Err(LakeError::InvalidArgument(format!("rerank_source must be 'sidecar', 'lake' or None, not '{o}'")))
            }
        }
    }

    /// The Python value: `Some("sidecar")`, `Some("lake")` or `None`.
    pub fn as_py(&self) -> Option<&'static str> {
        match self {
            RerankSource::Sidecar => Some("sidecar"),
            RerankSource::Lake => Some("lake"),
            RerankSource::None => None,
        }
    }

    pub fn is_sidecar(&self) -> bool {
        *self == RerankSource::Sidecar
    }

    /// Whether segments keep their float vectors (section `VECTORS`).
    pub fn stores_floats(&self) -> bool {
        self.is_sidecar()
    }
}

/// What a quantized kind's walk keeps for `k` hits at beam `ef` with `rerank` candidates to
/// re-rank (`Some(0)`: none; `None`: `ef`): `(take, width)`, the candidates it hands out and
/// its beam width.
pub fn walk_sizes(k: usize, ef: usize, rerank: Option<usize>) -> (usize, usize) {
    let take = match rerank {
        Some(0) => k,
        Some(r) => r.max(k),
        None => ef.max(k),
    };
    (take, ef.max(take))
}

/// The walk's candidates `found` (by code distance, nearest first) as a codes-only result:
/// cut to `k`, except for a segment re-ranked from the lake, whose candidates the search
/// re-ranks after reading their vectors.
pub fn codes_only(mut found: Vec<Hit>, k: usize, source: RerankSource) -> Vec<Hit> {
    if source != RerankSource::Lake {
        found.truncate(k);
    }
    found
}
