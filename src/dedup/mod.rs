//! Dedup kernels over Arrow text columns: exact ([`exact`]), MinHash-LSH in one process
//! ([`minhash`] for signatures and banding, [`oph`] for the one-permutation sketch, [`lsh`]
//! for the pipeline) and across processes
//! ([`dist`]), and the cluster tables they return ([`clusters`]).

pub mod clusters;
pub mod dist;
pub mod exact;
pub mod lsh;
pub mod minhash;
pub mod oph;
