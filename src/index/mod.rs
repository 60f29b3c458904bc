//! The vector index over an external table, stored as a sidecar folder of immutable files
//! (segments, tombstones) and versioned manifests.
//!
//! - storage: [`container`] (the checksummed file format), [`segment`], [`manifest`] (the
//!   commit protocol), [`store`] (segment and tombstone I/O, loading a version), [`cache`]
//!   (object-store segments cached locally to be mapped);
//! - the index-kind seam: [`kind`], with one file per kind ([`hnsw`], [`flat`]);
//! - the handle: [`location`], [`state`], [`handle`]; what is live: [`liveness`];
//! - writing: [`ingest`] (vectors from the lake), [`build`], [`refresh`], [`compact`],
//!   [`dist`] (segments built by other processes);
//! - reading: [`search`] over [`sources`], [`merge`] of their hits, [`output`];
//!   [`knn_graph`]; [`info`] (coverage, stats).

pub mod budget;
pub mod build;
pub mod cache;
pub mod compact;
pub mod container;
pub mod dist;
pub mod durable;
pub mod flat;
pub mod handle;
pub mod hnsw;
pub mod hnsw_rabitq;
pub mod hnsw_sq8;
pub mod info;
pub mod ingest;
pub mod kind;
pub mod knn_graph;
pub mod lake_rerank;
pub mod liveness;
pub mod location;
pub mod manifest;
pub mod merge;
pub mod output;
pub mod publish;
pub mod query;
pub mod refresh;
pub mod rerank;
pub mod search;
pub mod segment;
pub mod sources;
pub mod state;
pub mod store;
pub mod vacuum;
