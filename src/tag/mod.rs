//! Tagging kernels: rule tags (regular expressions and keywords) and the model-free hashing
//! vectorizer. kNN tags use [`crate::vector::knn`].

pub mod embed;
pub mod rules;
