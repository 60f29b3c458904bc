//! Text vectors without a model: the feature-hashing vectorizer.
//!
//! Signed feature hashing (Weinberger et al., "Feature Hashing for Large Scale Multitask
//! Learning", ICML 2009) exactly as scikit-learn's `HashingVectorizer` computes it with
//! `alternate_sign=True`: every token (word or character n-gram, after lower-casing) is
//! hashed with MurmurHash3 x86_32 (seed 0) to a signed 32-bit `h`; it adds `+1` (h >= 0) or
//! `-1` to column `|h| mod dim`; rows are then L2 (or L1) normalised.

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array};
use arrow::datatypes::{DataType, Field};
use rayon::prelude::*;

use crate::error::{LakeError, Result};
use crate::text::{char_ngrams, murmur3_32, word_ngrams, words};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Analyzer {
    Word,
    Char,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    L2,
    L1,
    None,
}

#[derive(Clone, Copy, Debug)]
pub struct HashingParams {
    pub dim: usize,
    pub ngram: (usize, usize),
    pub analyzer: Analyzer,
    pub norm: Norm,
    pub lowercase: bool,
    pub alternate_sign: bool,
}

impl HashingParams {
    pub fn check(&self) -> Result<()> {
        if self.dim == 0 || self.dim > (1 << 24) {
            return Err(LakeError::InvalidArgument(format!("dim must be in 1..=2^24, got {}", self.dim)));
        }
        let (lo, hi) = self.ngram;
        if lo == 0 || hi < lo || hi > 16 {
            return Err(LakeError::InvalidArgument(format!(
                "ngram must be (lo, hi) with 1 <= lo <= hi <= 16, got ({lo}, {hi})"
            )));
        }
        Ok(())
    }
}

/// scikit-learn's column of a hash (`sklearn/feature_extraction/_hashing_fast.pyx`).
#[inline]
fn column(h: i32, dim: usize) -> usize {
    if h == i32::MIN {
        (i32::MAX as usize - (dim - 1)) % dim
    } else {
        (h.unsigned_abs() as usize) % dim
    }
}

/// The hashed vector of one text into `out` (length `dim`, zeroed by the caller).
pub fn embed_one(text: &str, p: &HashingParams, out: &mut [f32]) {
    let lowered;
    let text = if p.lowercase {
        lowered = text.to_lowercase();
        lowered.as_str()
    } else {
        text
    };
    let mut add = |tok: &str| {
        let h = murmur3_32(tok.as_bytes(), 0);
        let v = if p.alternate_sign && h < 0 { -1.0 } else { 1.0 };
        out[column(h, p.dim)] += v;
    };
    match p.analyzer {
        Analyzer::Word => word_ngrams(&words(text), p.ngram.0, p.ngram.1, &mut add),
        Analyzer::Char => char_ngrams(text, p.ngram.0, p.ngram.1, &mut add),
    }
    let norm: f64 = match p.norm {
        Norm::L2 => out.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt(),
        Norm::L1 => out.iter().map(|x| (*x as f64).abs()).sum(),
        Norm::None => 1.0,
    };
    if norm > 0.0 && norm != 1.0 {
        out.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
    }
}

/// Hashed vectors of `texts` (None = null text -> a zero vector) as `FixedSizeList<float32, dim>`.
pub fn hashing(texts: &[Option<&str>], p: &HashingParams) -> Result<ArrayRef> {
    p.check()?;
    let mut values = vec![0f32; texts.len() * p.dim];
    values.par_chunks_mut(p.dim).zip(texts.par_iter()).for_each(|(row, t)| {
        if let Some(t) = t {
            embed_one(t, p, row);
        }
    });
    let field = Arc::new(Field::new("item", DataType::Float32, false));
    Ok(Arc::new(FixedSizeListArray::try_new(field, p.dim as i32, Arc::new(Float32Array::from(values)), None)?))
}
