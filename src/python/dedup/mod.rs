//! Bindings of [`crate::dedup`]: exact and MinHash-LSH dedup, in one process and in steps
//! for Ray and Spark.

pub mod dist;
pub mod exact;
pub mod index;
pub mod minhash;
