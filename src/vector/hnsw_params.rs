//! HNSW construction parameters (shared by both builders and the persisted index kind).

use crate::error::{LakeError, Result};

/// Which code builds an HNSW graph (the stored graph has the same form either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphBuilder {
    /// lakevec's own parallel builder ([`crate::vector::hnsw_build`]): the default.
    #[default]
    Native,
    /// The hnsw_rs crate (the reference the native builder is tested against).
    HnswRs,
}

impl GraphBuilder {
    /// `"native"` or `"hnsw_rs"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(GraphBuilder::Native),
            "hnsw_rs" => Ok(GraphBuilder::HnswRs),
            o => Err(LakeError::InvalidArgument(format!("builder must be 'native' or 'hnsw_rs', not '{o}'"))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            GraphBuilder::Native => "native",
            GraphBuilder::HnswRs => "hnsw_rs",
        }
    }

    fn is_native(&self) -> bool {
        *self == GraphBuilder::Native
    }
}

/// Construction parameters.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HnswParams {
    /// Max neighbours per node on layers >= 1 (layer 0 keeps `2 * m`).
    pub m: usize,
    pub ef_construction: usize,
    /// Who builds the graph (recorded so that refreshes build the same way; absent = native).
    #[serde(default, skip_serializing_if = "GraphBuilder::is_native")]
    pub builder: GraphBuilder,
}

impl HnswParams {
    pub fn check(&self) -> Result<()> {
        if !(2..=128).contains(&self.m) {
            return Err(LakeError::InvalidArgument(format!("m must be in 2..=128, got {}", self.m)));
        }
        if self.ef_construction == 0 || self.ef_construction > 10_000 {
            return Err(LakeError::InvalidArgument(format!(
                "ef_construction must be in 1..=10000, got {}",
                self.ef_construction
            )));
        }
        Ok(())
    }
}
