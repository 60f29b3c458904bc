//! Distributed MinHash steps for `lakevec.ray` and `lakevec.spark` (see `crate::dedup::dist`).

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::dedup::clusters::cluster_batch;
use crate::dedup::dist;
use crate::dedup::lsh::signature_matrix;
use crate::dedup::minhash::UnionFind;
use crate::error::{LakeError, Result};
use crate::python::call::cpu;
use crate::python::out::table;

fn int64s<'a>(a: &'a ArrayRef, what: &str) -> Result<&'a [i64]> {
    match a.data_type() {
        DataType::Int64 if a.null_count() == 0 => Ok(a.as_primitive::<Int64Type>().values()),
        t => Err(LakeError::InvalidArgument(format!("{what} must be int64 without nulls, got {t}"))),
    }
}

/// Band rows of a signature array: `row` (int64, index in `signatures`), `band` (int32) and
/// `key` (int64 bits of the 64-bit bucket key), one per band of every non-null signature.
#[pyfunction]
pub fn minhash_band_rows<'py>(
    py: Python<'py>,
    signatures: PyArray,
    bands: usize,
    rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let s = signatures.array().clone();
    let batch = cpu(py, Some(1), move |_| {
        let (flat, p, valid) = signature_matrix(&s, bands, rows)?;
        let (row, band, key) = dist::band_rows(flat, p, &valid, bands, rows);
        let schema = Arc::new(Schema::new(vec![
            Field::new("row", DataType::Int64, false),
            Field::new("band", DataType::Int32, false),
            Field::new("key", DataType::Int64, false),
        ]));
        let row: Int64Array = row.into_iter().map(|r| r as i64).collect::<Vec<_>>().into();
        Ok(RecordBatch::try_new(
            schema,
            vec![Arc::new(row), Arc::new(Int32Array::from(band)), Arc::new(Int64Array::from(key))],
        )?)
    })?;
    table(py, batch)
}

/// Verified edges (spanning forest `a`, `b`: int64 positions) of the buckets in one group of
/// band rows (`band` int32, `key` int64, `pos` int64, `signatures` FixedSizeList<uint32>).
#[pyfunction]
#[pyo3(signature = (band, key, pos, signatures, threshold, num_threads=None))]
pub fn minhash_bucket_edges<'py>(
    py: Python<'py>,
    band: PyArray,
    key: PyArray,
    pos: PyArray,
    signatures: PyArray,
    threshold: f64,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(LakeError::InvalidArgument(format!("threshold must be in (0, 1], got {threshold}")).into());
    }
    let (band, key, pos, s) =
        (band.array().clone(), key.array().clone(), pos.array().clone(), signatures.array().clone());
    let batch = cpu(py, num_threads, move |_| {
        let b = match band.data_type() {
            DataType::Int32 if band.null_count() == 0 => band.as_primitive::<Int32Type>().values(),
            t => return Err(LakeError::InvalidArgument(format!("band must be int32 without nulls, got {t}"))),
        };
        let (flat, p, valid) = signature_matrix(&s, 1, 1)?;
        if valid.iter().any(|v| !v) {
            return Err(LakeError::InvalidArgument("band rows must not have null signatures".into()));
        }
        let (a, b) = dist::bucket_edges(b, int64s(&key, "key")?, int64s(&pos, "pos")?, flat, p, threshold)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(a)), Arc::new(Int64Array::from(b))])?)
    })?;
    table(py, batch)
}

/// Each row's representative (int64): the smallest position in `pos` (int64) holding the
/// identical signature (`signatures`: FixedSizeList<uint32>, no nulls).
#[pyfunction]
pub fn minhash_copy_representatives<'py>(
    py: Python<'py>,
    pos: PyArray,
    signatures: PyArray,
) -> PyResult<Bound<'py, PyAny>> {
    let (pos, s) = (pos.array().clone(), signatures.array().clone());
    let rep = cpu(py, None, move |_| {
        let (flat, p, valid) = signature_matrix(&s, 1, 1)?;
        let pos = int64s(&pos, "pos")?;
        if valid.iter().any(|v| !v) || pos.len() != valid.len() {
            return Err(LakeError::InvalidArgument(format!(
                "{} positions for {} signatures (nulls not allowed)",
                pos.len(),
                valid.len()
            )));
        }
        Ok(Arc::new(Int64Array::from(dist::copy_representatives(pos, flat, p))) as ArrayRef)
    })?;
    crate::python::out::array(py, rep)
}

/// Connected components of `n` rows, fed edges in any number of batches (the driver side of
/// distributed dedup: memory is 4 bytes per row, whatever the number of edges).
#[pyclass(frozen, module = "lakevec._lakevec", name = "Components")]
pub struct PyComponents {
    uf: Mutex<UnionFind>,
    n: usize,
}

#[pymethods]
impl PyComponents {
    #[new]
    fn new(n: usize) -> PyResult<Self> {
        if n > u32::MAX as usize - 1 {
            return Err(LakeError::InvalidArgument(format!("at most 2^32 - 2 rows, got {n}")).into());
        }
        Ok(PyComponents { uf: Mutex::new(UnionFind::new(n)), n })
    }

    /// Join rows `a[i]` and `b[i]` (int64 arrays of positions < n).
    fn add(&self, a: PyArray, b: PyArray) -> PyResult<()> {
        let (a, b) = (a.array().clone(), b.array().clone());
        let (a, b) = (int64s(&a, "a")?, int64s(&b, "b")?);
        if a.len() != b.len() {
            return Err(LakeError::InvalidArgument(format!("{} a values but {} b values", a.len(), b.len())).into());
        }
        if let Some(bad) = a.iter().chain(b).find(|&&x| x < 0 || x as usize >= self.n) {
            return Err(LakeError::InvalidArgument(format!("position {bad} is outside 0..{}", self.n)).into());
        }
        let mut uf = self.uf.lock().unwrap_or_else(|p| p.into_inner());
        for (&x, &y) in a.iter().zip(b) {
            uf.union(x as u32, y as u32);
        }
        Ok(())
    }

    /// `cluster_id`, `cluster_size`, `is_representative` per row (see `lakevec.dedup`).
    #[pyo3(signature = (score=None))]
    fn clusters<'py>(&self, py: Python<'py>, score: Option<Vec<f64>>) -> PyResult<Bound<'py, PyAny>> {
        let roots = self.uf.lock().unwrap_or_else(|p| p.into_inner()).roots();
        table(py, cluster_batch(&roots, score.as_deref())?)
    }
}
