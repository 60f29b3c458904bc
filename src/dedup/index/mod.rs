//! A persisted dedup index beside a lake table: per row its address, MinHash signature and
//! cluster, following the table's versions (new files are signed and joined to the stored
//! clusters, deleted rows leave theirs), with the same clusters a single `dedup.minhash` run
//! over the covered version finds (see [`matching`]). Stored in lakevec's container and
//! published with the vector index's commit protocol (`index::publish`).
//!
//! - [`format`]: the manifest, segment and clusters files, and their checks;
//! - [`matching`]: components, band buckets of stored rows, re-clustering after deletes;
//! - [`ops`]: open, build/refresh ([`ops::update`]), the cluster table;
//! - [`commit`]: writing a version's files and manifest;
//! - [`check`]: rows not yet written against the stored clusters;
//! - [`parts`]: segments signed by Ray tasks for one refresh;
//! - [`semantic`]: the clusters of `dedup.semantic` following a vector index.

pub mod check;
pub mod commit;
pub mod format;
pub mod matching;
pub mod ops;
pub mod parts;
pub mod semantic;
