//! Dedup kernels over Arrow text columns: exact ([`exact`]), MinHash-LSH in one process
//! ([`minhash`] for signatures and banding, [`oph`] for the one-permutation sketch, [`lsh`]
//! for the pipeline) and across processes
//! ([`dist`]), the cluster tables they return ([`clusters`]), and the persisted dedup index
//! that follows a table's versions ([`index`]).

pub mod clusters;
pub mod dist;
pub mod exact;
pub mod index;
pub mod lsh;
pub mod minhash;
pub mod oph;
