//! `lakevec._lakevec.BuildSpec`: what to build, named (the same value for `build`,
//! `build_segment` and `commit_build`, and what a Ray task receives).

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::error::Result;
use crate::index::build::BuildSpec;
use crate::index::kind::IndexKind;
use crate::index::location::{default_index_uri, IndexAt};
use crate::index::manifest::Manifest;
use crate::lake::table::LakeTable;
use crate::vector::column::OnInvalid;
use crate::vector::distance::Metric;

/// What to build: the vector `column`, `metric` ("cosine", "l2", "dot"), index `name`, its
/// folder `index_uri` (default: beside the table), an optional `key` column stored with the
/// hits, the `index_type` ("hnsw", "hnsw_sq8", "hnsw_rabitq" or "flat"), HNSW's `m` (2..=128) and `ef_construction`
/// (1..=10000), `on_invalid` ("error" or "skip"), the HNSW `builder` ("native" or
/// "hnsw_rs"), a compressed kind's `rerank_source` ("sidecar", "lake" or None) and
/// "hnsw_rabitq"'s `bits` (1..=8; None: 1). Frozen;
/// validated on construction
/// (`InvalidArgumentError`); picklable.
#[pyclass(frozen, eq, skip_from_py_object, module = "lakevec._lakevec", name = "BuildSpec")]
#[derive(Clone, Debug, PartialEq)]
pub struct PyBuildSpec {
    #[pyo3(get)]
    column: String,
    #[pyo3(get)]
    metric: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    index_uri: Option<String>,
    #[pyo3(get)]
    key: Option<String>,
    #[pyo3(get)]
    index_type: String,
    #[pyo3(get)]
    m: usize,
    #[pyo3(get)]
    ef_construction: usize,
    #[pyo3(get)]
    on_invalid: String,
    #[pyo3(get)]
    builder: String,
    #[pyo3(get)]
    rerank_source: Option<String>,
    #[pyo3(get)]
    bits: Option<u32>,
}

impl PyBuildSpec {
    /// The core spec.
    fn spec(&self) -> Result<BuildSpec> {
        Ok(BuildSpec {
            name: self.name.clone(),
            column: self.column.clone(),
            key: self.key.clone(),
            metric: Metric::parse(&self.metric)?,
            kind: IndexKind::from_args(
                &self.index_type,
                self.m,
                self.ef_construction,
                &self.builder,
                self.rerank_source.as_deref(),
                self.bits,
            )?,
            on_invalid: OnInvalid::parse(&self.on_invalid)?,
        })
    }

    /// The index location for table `t` (its storage options) and the core spec.
    pub fn target(&self, t: &LakeTable) -> Result<(IndexAt, BuildSpec)> {
        let uri = self.index_uri.clone().unwrap_or_else(|| default_index_uri(t, &self.name));
        Ok((IndexAt::new(&uri, t.options.clone())?, self.spec()?))
    }

    /// The spec of an existing index (manifest `m`, at `uri`).
    pub fn of(m: &Manifest, uri: &str) -> Self {
        let (m_, ef, builder) = match m.kind.hnsw() {
            Some(p) => (p.m, p.ef_construction, p.builder.as_str()),
            None => (16, 200, "native"),
        };
        PyBuildSpec {
            column: m.column.clone(),
            metric: m.metric.as_str().into(),
            name: m.name.clone(),
            index_uri: Some(uri.into()),
            key: m.key.clone(),
            index_type: m.kind.name().into(),
            m: m_,
            ef_construction: ef,
            on_invalid: m.on_invalid.as_str().into(),
            builder: builder.into(),
            rerank_source: m.kind.rerank_source().as_py().map(String::from),
            bits: match &m.kind {
                IndexKind::HnswRabitq(p) => Some(p.bits),
                _ => None,
            },
        }
    }
}

#[pymethods]
impl PyBuildSpec {
    #[new]
    #[pyo3(signature = (column, metric="cosine".to_string(), name="default".to_string(), index_uri=None, key=None, index_type="hnsw".to_string(), m=16, ef_construction=200, on_invalid="error".to_string(), builder="native".to_string(), rerank_source=Some("sidecar".to_string()), bits=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        column: String,
        metric: String,
        name: String,
        index_uri: Option<String>,
        key: Option<String>,
        index_type: String,
        m: usize,
        ef_construction: usize,
        on_invalid: String,
        builder: String,
        rerank_source: Option<String>,
        bits: Option<u32>,
    ) -> PyResult<Self> {
        let s = PyBuildSpec {
            column,
            metric,
            name,
            index_uri,
            key,
            index_type,
            m,
            ef_construction,
            on_invalid,
            builder,
            rerank_source,
            bits,
        };
        s.spec()?;
        Ok(s)
    }

    fn __repr__(&self) -> String {
        let opt = |o: &Option<String>| o.as_ref().map_or("None".into(), |s| format!("'{s}'"));
        format!(
            "BuildSpec(column='{}', metric='{}', name='{}', index_uri={}, key={}, index_type='{}', \
             m={}, ef_construction={}, on_invalid='{}', builder='{}', rerank_source={}, bits={})",
            self.column,
            self.metric,
            self.name,
            opt(&self.index_uri),
            opt(&self.key),
            self.index_type,
            self.m,
            self.ef_construction,
            self.on_invalid,
            self.builder,
            opt(&self.rerank_source),
            self.bits.map_or("None".into(), |b| b.to_string())
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let s = slf.get();
        let args = (
            s.column.clone(),
            s.metric.clone(),
            s.name.clone(),
            s.index_uri.clone(),
            s.key.clone(),
            s.index_type.clone(),
            s.m,
            s.ef_construction,
            s.on_invalid.clone(),
            s.builder.clone(),
            s.rerank_source.clone(),
            s.bits,
        );
        Ok((slf.get_type().into_any(), args.into_pyobject(slf.py())?))
    }
}
