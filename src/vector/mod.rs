//! Vectors in memory, independent of tables: distance kernels, vector columns to flat `f32`
//! rows, bitsets, exact search, the HNSW graph (construction and search hot loop), groups of
//! identical vectors, exact kNN between two sets, and the quantized codes (SQ8, RaBitQ with its
//! random rotation).

pub mod bits;
pub mod column;
pub mod distance;
pub mod dups;
pub mod exact;
pub mod graph;
pub mod graph_build;
pub mod hit;
pub mod hnsw_build;
pub mod hnsw_params;
pub mod kmeans;
pub mod knn;
pub mod mapped;
pub mod rabitq;
pub mod rotation;
pub mod sq8;
