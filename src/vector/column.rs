//! Vector columns: Arrow list arrays of floats to flat, validated `f32` rows.
//!
//! Accepted column types: `FixedSizeList<float16|float32|float64, dim>`, `List<...>` and
//! `LargeList<...>` whose rows all have the same length. Values are converted to `f32`.
//! A null row, a row of the wrong length or one holding NaN/inf is *invalid*: an error naming
//! the column and row, or skipped, as [`OnInvalid`] says.

use arrow::array::{Array, ArrayRef, AsArray, Float32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};

use crate::error::{LakeError, Result};

/// The largest vector dimension lakevec accepts (columns, queries, stored indexes). Sizes
/// read from files are checked against it before anything is allocated from them.
pub const MAX_DIM: usize = 1 << 16;

/// The largest squared norm a vector may have: a quarter of `f32::MAX`, so that the squared
/// distance between any two valid vectors (at most `(|a| + |b|)^2 <= 4 max(|a|, |b|)^2`), and
/// any dot product, stays finite.
pub const MAX_SQUARED_NORM: f32 = f32::MAX / 4.0;

/// The squared norm of `row`, summed in f64 (no overflow for finite f32 values).
fn squared_norm(row: &[f32]) -> f32 {
    row.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() as f32
}

/// Row `i` of a list array -> (first value, value count).
type RowBounds = Box<dyn Fn(usize) -> (usize, usize)>;

/// What to do with an invalid vector (null, wrong length, NaN or infinite values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    Error,
    Skip,
}

impl OnInvalid {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "error" => Ok(OnInvalid::Error),
            "skip" => Ok(OnInvalid::Skip),
            o => Err(LakeError::InvalidArgument(format!("on_invalid must be 'error' or 'skip', not '{o}'"))),
        }
    }

    /// The name `parse` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInvalid::Error => "error",
            OnInvalid::Skip => "skip",
        }
    }
}

/// Check that `field` is a vector column; returns its fixed dimension when the type has one.
pub fn vector_field_dim(field: &Field) -> Result<Option<usize>> {
    let (item, dim) = match field.data_type() {
        DataType::FixedSizeList(f, n) => (f.data_type(), Some(*n as usize)),
        DataType::List(f) | DataType::LargeList(f) => (f.data_type(), None),
        other => {
            return Err(LakeError::Vector(format!(
                "column '{}' is not a vector column: its type is {other}; expected a FixedSizeList or List of float16/float32/float64",
                field.name()
            )))
        }
    };
    if !matches!(item, DataType::Float16 | DataType::Float32 | DataType::Float64) {
        return Err(LakeError::Vector(format!(
            "column '{}' is not a vector column: its items are {item}, not float16/float32/float64",
            field.name()
        )));
    }
    if dim == Some(0) {
        return Err(LakeError::Vector(format!("column '{}' has dimension 0", field.name())));
    }
    if dim.is_some_and(|d| d > MAX_DIM) {
        return Err(LakeError::Vector(format!(
            "column '{}' has dimension {}, more than the {MAX_DIM} lakevec supports",
            field.name(),
            dim.unwrap_or_default()
        )));
    }
    Ok(dim)
}

/// Flat `f32` rows appended from list arrays, with a fixed dimension learnt from the first
/// valid row (or given up front).
pub struct VectorSink<'a> {
    pub column: &'a str,
    pub dim: Option<usize>,
    pub on_invalid: OnInvalid,
    /// Whether an all-zero vector is invalid (it has no direction under cosine).
    pub zero_invalid: bool,
    /// Appended to error messages (how to get past them).
    pub hint: &'static str,
    pub data: Vec<f32>,
}

impl<'a> VectorSink<'a> {
    pub fn new(column: &'a str, dim: Option<usize>, on_invalid: OnInvalid) -> Self {
        VectorSink {
            column,
            dim,
            on_invalid,
            zero_invalid: false,
            hint: " (pass on_invalid='skip' to leave such rows out of the index)",
            data: Vec::new(),
        }
    }

    /// Append the rows of `array` (a list array). Returns, per row, whether it was kept.
    /// `where_row(i)` names row `i` in errors (e.g. "file 'a.parquet' row 17").
    pub fn append(&mut self, array: &ArrayRef, where_row: &dyn Fn(usize) -> String) -> Result<Vec<bool>> {
        let (values, bounds): (ArrayRef, RowBounds) = match array.data_type() {
            DataType::FixedSizeList(_, n) => {
                let a = array.as_fixed_size_list();
                let n = *n as usize;
                let base = a.offset() * n;
                (a.values().clone(), Box::new(move |i| (base + i * n, n)))
            }
            DataType::List(_) => {
                let a = array.as_list::<i32>();
                let o = a.value_offsets().to_vec();
                (a.values().clone(), Box::new(move |i| (o[i] as usize, (o[i + 1] - o[i]) as usize)))
            }
            DataType::LargeList(_) => {
                let a = array.as_list::<i64>();
                let o = a.value_offsets().to_vec();
                (a.values().clone(), Box::new(move |i| (o[i] as usize, (o[i + 1] - o[i]) as usize)))
            }
            other => {
                return Err(LakeError::Vector(format!(
                    "column '{}' is not a vector column (type {other})",
                    self.column
                )))
            }
        };
        let values = if values.data_type() == &DataType::Float32 {
            values
        } else {
            cast(&values, &DataType::Float32).map_err(|e| {
                LakeError::Vector(format!("column '{}': cannot read items as float32: {e}", self.column))
            })?
        };
        let values: &Float32Array = values.as_primitive();
        let raw = values.values();
        let mut kept = Vec::with_capacity(array.len());
        self.data.reserve(array.len() * self.dim.unwrap_or(0));
        for i in 0..array.len() {
            let problem = if array.is_null(i) {
                Some("is null".to_string())
            } else {
                let (start, len) = bounds(i);
                if values.null_count() > 0 && (start..start + len).any(|j| values.is_null(j)) {
                    self.check_len(len).or_else(|| Some("holds null values".to_string()))
                } else {
                    self.push_row(&raw[start..start + len])
                }
            };
            match problem {
                None => kept.push(true),
                Some(p) if self.on_invalid == OnInvalid::Skip => {
                    let _ = p;
                    kept.push(false)
                }
                Some(p) => {
                    return Err(LakeError::Vector(format!(
                        "column '{}', {}: the vector {p}{}",
                        self.column,
                        where_row(i),
                        self.hint
                    )))
                }
            }
        }
        Ok(kept)
    }

    /// Append the rows of a flat row-major matrix of `width` values per row (a numpy array
    /// handed over as a buffer): the checks and errors of [`append`](Self::append).
    pub fn append_flat(&mut self, values: &[f32], width: usize, where_row: &dyn Fn(usize) -> String) -> Result<()> {
        let rows = values.len().checked_div(width).unwrap_or(usize::from(!values.is_empty()));
        self.data.reserve(values.len());
        for i in 0..rows {
            let row = values.get(i * width..(i + 1) * width).unwrap_or(values);
            if let Some(p) = self.push_row(row) {
                return Err(LakeError::Vector(format!(
                    "column '{}', {}: the vector {p}{}",
                    self.column,
                    where_row(i),
                    self.hint
                )));
            }
        }
        Ok(())
    }

    /// What is wrong with a row of `len` values against the dimension (learnt from the first
    /// row when not given).
    fn check_len(&mut self, len: usize) -> Option<String> {
        let dim = *self.dim.get_or_insert(len);
        if len > MAX_DIM {
            Some(format!("has dimension {len}, more than the {MAX_DIM} lakevec supports"))
        } else if len != dim {
            Some(format!("has dimension {len}, expected {dim}"))
        } else if len == 0 {
            Some("is empty".to_string())
        } else {
            None
        }
    }

    /// Append `row` when it is valid; else what is wrong with it.
    fn push_row(&mut self, row: &[f32]) -> Option<String> {
        if let Some(p) = self.check_len(row.len()) {
            return Some(p);
        }
        match row.iter().position(|x| !x.is_finite()) {
            Some(j) => Some(format!("holds {} at position {j}", row[j])),
            None if squared_norm(row) > MAX_SQUARED_NORM => Some(format!(
                "is too large: its squared norm exceeds {MAX_SQUARED_NORM:e}, so distances \
                 would overflow float32 (scale the vectors)"
            )),
            None if self.zero_invalid && row.iter().all(|x| *x == 0.0) => {
                Some("is all zeros (no direction for the cosine metric)".to_string())
            }
            None => {
                self.data.extend_from_slice(row);
                None
            }
        }
    }
}

/// Vectors of a list array (queries, in-memory data) as flat rows prepared for `metric`
/// (normalised for cosine): `(rows, dim)`. Every invalid row is an error naming `column`
/// and `name_row(i)`; `dim` (when known) fixes the dimension.
pub fn prepared_rows(
    array: &ArrayRef,
    column: &str,
    dim: Option<usize>,
    metric: crate::vector::distance::Metric,
    name_row: &dyn Fn(usize) -> String,
) -> Result<(Vec<f32>, usize)> {
    let mut sink = VectorSink::new(column, dim, OnInvalid::Error);
    sink.zero_invalid = metric == crate::vector::distance::Metric::Cosine;
    sink.hint = "";
    sink.append(array, name_row)?;
    prepare_sink(sink, metric, column, name_row)
}

/// [`prepared_rows`] of a flat row-major matrix of `width` values per row (a numpy array).
pub fn prepared_flat(
    values: &[f32],
    width: usize,
    column: &str,
    dim: Option<usize>,
    metric: crate::vector::distance::Metric,
    name_row: &dyn Fn(usize) -> String,
) -> Result<(Vec<f32>, usize)> {
    let mut sink = VectorSink::new(column, dim, OnInvalid::Error);
    sink.zero_invalid = metric == crate::vector::distance::Metric::Cosine;
    sink.hint = "";
    sink.append_flat(values, width, name_row)?;
    prepare_sink(sink, metric, column, name_row)
}

/// The sink's rows prepared for `metric` and their dimension.
fn prepare_sink(
    sink: VectorSink<'_>,
    metric: crate::vector::distance::Metric,
    column: &str,
    name_row: &dyn Fn(usize) -> String,
) -> Result<(Vec<f32>, usize)> {
    let d = sink.dim.unwrap_or(0);
    let mut data = sink.data;
    if d > 0 {
        metric
            .prepare(&mut data, d)
            .map_err(|i| LakeError::Vector(format!("column '{column}', {}: cannot be normalised", name_row(i))))?;
    }
    Ok((data, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float64Array, ListArray};
    use arrow::datatypes::Float32Type;
    use std::sync::Arc;

    #[test]
    fn vectors_whose_distances_would_overflow_are_invalid() {
        let a: ArrayRef = Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vec![Some(vec![Some(1e20f32), Some(0.0)]), Some(vec![Some(1.0), Some(2.0)])],
            2,
        ));
        let mut sink = VectorSink::new("v", None, OnInvalid::Error);
        let e = sink.append(&a, &|i| format!("row {i}")).unwrap_err().to_string();
        assert!(e.contains("row 0") && e.contains("too large"), "{e}");
        let mut sink = VectorSink::new("v", None, OnInvalid::Skip);
        assert_eq!(sink.append(&a, &|i| format!("row {i}")).unwrap(), vec![false, true]);
    }

    #[test]
    fn dimensions_above_max_dim_are_refused() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let ok = Field::new("v", DataType::FixedSizeList(item.clone(), MAX_DIM as i32), true);
        assert_eq!(vector_field_dim(&ok).unwrap(), Some(MAX_DIM));
        let big = Field::new("v", DataType::FixedSizeList(item, MAX_DIM as i32 + 1), true);
        assert!(matches!(vector_field_dim(&big), Err(LakeError::Vector(m)) if m.contains("more than")));
    }

    #[test]
    fn fixed_size_list_f64_and_sliced() {
        let vals = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let f = Arc::new(Field::new("item", DataType::Float64, true));
        let a: ArrayRef = Arc::new(FixedSizeListArray::new(f, 2, vals, None).slice(1, 2));
        let mut s = VectorSink::new("v", None, OnInvalid::Error);
        assert_eq!(s.append(&a, &|i| format!("row {i}")).unwrap(), vec![true, true]);
        assert_eq!(s.data, vec![3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn invalid_rows_error_or_skip() {
        let a: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(f32::NAN), Some(2.0)]),
            None,
            Some(vec![Some(1.0)]),
            Some(vec![Some(3.0), Some(4.0)]),
        ]));
        let mut s = VectorSink::new("emb", None, OnInvalid::Error);
        let e = s.append(&a, &|i| format!("row {i}")).unwrap_err().to_string();
        assert!(e.contains("'emb'") && e.contains("row 1") && e.contains("NaN"), "{e}");
        let mut s = VectorSink::new("emb", None, OnInvalid::Skip);
        assert_eq!(s.append(&a, &|i| format!("row {i}")).unwrap(), vec![true, false, false, false, true]);
        assert_eq!(s.data, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn non_vector_fields_are_refused() {
        assert!(vector_field_dim(&Field::new("x", DataType::Utf8, true)).is_err());
        let f = Field::new("x", DataType::new_list(DataType::Int32, true), true);
        assert!(vector_field_dim(&f).unwrap_err().to_string().contains("items are Int32"));
    }
}
