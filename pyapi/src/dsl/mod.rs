//! The Python-facing blueprint: one pyclass wrapping a `Source`, `Flow`, `Sink` or
//! `RunnableGraph` of Python objects ([`ops`]: the operator constructors, [`supervision`],
//! [`builder`]: the graph builder).

use crate::mat::{KeepMode, MatValue};
use crate::obj::PyObj;
use crate::stages::{OpFactory, PyOp, unit_mat};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Arc;
use weir_graph::{Flow, RunnableGraph, Sink, Source};
use weir_operators::fan::FanOps;

mod builder;
mod ops;
mod supervision;

pub use builder::{PyGraphBuilder, PyInlet, PyMatKey, PyOutlet};
pub use ops::*;
pub use supervision::PySupervision;

/// A blueprint of any shape over Python objects.
#[derive(Clone)]
pub enum Bp {
    /// One open output.
    Source(Source<PyObj, MatValue>),
    /// One open input and one open output.
    Flow(Flow<PyObj, PyObj, MatValue>),
    /// One open input.
    Sink(Sink<PyObj, MatValue>),
    /// Closed, ready to run.
    Graph(RunnableGraph<MatValue>),
}

/// An immutable blueprint (`Source`, `Flow`, `Sink` or `RunnableGraph`) of Python objects.
#[pyclass(module = "weir._native", name = "Blueprint", frozen)]
pub struct PyBlueprint {
    /// The wrapped blueprint.
    pub bp: Bp,
}

pub(crate) fn wrap(bp: Bp) -> PyBlueprint {
    PyBlueprint { bp }
}

pub(crate) fn keep(s: &str) -> PyResult<KeepMode> {
    KeepMode::parse(s).ok_or_else(|| {
        PyValueError::new_err(format!(
            "keep must be 'left', 'right', 'both' or 'none', not {s:?}"
        ))
    })
}

macro_rules! attr {
    ($bp:expr, |$x:ident| $body:expr) => {
        match $bp.clone() {
            Bp::Source($x) => Bp::Source($body),
            Bp::Flow($x) => Bp::Flow($body),
            Bp::Sink($x) => Bp::Sink($body),
            Bp::Graph(_) => {
                return Err(PyTypeError::new_err(
                    "a RunnableGraph has no last stage to set attributes on",
                ));
            }
        }
    };
}

#[pymethods]
impl PyBlueprint {
    /// `"source"`, `"flow"`, `"sink"` or `"graph"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.bp {
            Bp::Source(_) => "source",
            Bp::Flow(_) => "flow",
            Bp::Sink(_) => "sink",
            Bp::Graph(_) => "graph",
        }
    }

    /// Attaches a flow (`self` is a source or a flow), combining materialized values per `keep`.
    #[pyo3(signature = (flow, keep = "left"))]
    fn via(&self, flow: &PyBlueprint, keep: &str) -> PyResult<PyBlueprint> {
        let k = self::keep(keep)?;
        let Bp::Flow(f) = flow.bp.clone() else {
            return Err(PyTypeError::new_err("via() takes a Flow"));
        };
        Ok(wrap(match self.bp.clone() {
            Bp::Source(s) => Bp::Source(s.via_mat(f, move |a, b| k.combine(a, b))),
            Bp::Flow(s) => Bp::Flow(s.via_mat(f, move |a, b| k.combine(a, b))),
            _ => {
                return Err(PyTypeError::new_err(
                    "via() needs a Source or a Flow on the left",
                ));
            }
        }))
    }

    /// Connects a sink (`self` is a source or a flow), combining materialized values per `keep`.
    #[pyo3(signature = (sink, keep = "left"))]
    fn to(&self, sink: &PyBlueprint, keep: &str) -> PyResult<PyBlueprint> {
        let k = self::keep(keep)?;
        let Bp::Sink(s2) = sink.bp.clone() else {
            return Err(PyTypeError::new_err("to() takes a Sink"));
        };
        Ok(wrap(match self.bp.clone() {
            Bp::Source(s) => Bp::Graph(s.to_mat(s2, move |a, b| k.combine(a, b))),
            Bp::Flow(s) => Bp::Sink(s.to_mat(s2, move |a, b| k.combine(a, b))),
            _ => {
                return Err(PyTypeError::new_err(
                    "to() needs a Source or a Flow on the left",
                ));
            }
        }))
    }

    /// Names the last stage (used in errors, metrics and diagrams).
    fn named(&self, name: String) -> PyResult<PyBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.named(name))))
    }

    /// Gives the last stage an explicit stable id (unique in the graph).
    fn uid(&self, uid: String) -> PyResult<PyBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.uid(uid))))
    }

    /// Starts a new island after the last stage.
    fn async_boundary(&self) -> PyResult<PyBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.async_boundary())))
    }

    /// Runs the last stage as `n` parallel subtasks (a `ValueError` when `n` is out of range,
    /// e.g. above the key groups behind a hash edge).
    fn parallelism(&self, n: usize) -> PyResult<PyBlueprint> {
        let bp = attr!(self.bp, |x| x.parallelism(n));
        let module = match &bp {
            Bp::Source(x) => x.module(),
            Bp::Flow(x) => x.module(),
            Bp::Sink(x) => x.module(),
            Bp::Graph(x) => x.module(),
        };
        module
            .validate_parameters()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(wrap(bp))
    }

    /// Target rows per batch of the last stage.
    fn batch_size(&self, n: usize) -> PyResult<PyBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.batch_size(n))))
    }

    /// Capacity, in rows, of the channel feeding the last stage.
    fn buffer_rows(&self, n: usize) -> PyResult<PyBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.buffer_rows(n))))
    }

    /// Sets the supervision policy of the last stage.
    fn with_supervision(&self, s: &PySupervision) -> PyResult<PyBlueprint> {
        let sup = s.0.clone();
        Ok(wrap(attr!(self.bp, |x| x.with_supervision(sup))))
    }

    /// The blueprint as a Mermaid flowchart.
    fn to_mermaid(&self) -> String {
        match &self.bp {
            Bp::Source(x) => x.to_mermaid(),
            Bp::Flow(x) => x.to_mermaid(),
            Bp::Sink(x) => x.to_mermaid(),
            Bp::Graph(x) => x.module().to_mermaid(),
        }
    }

    /// The blueprint as Graphviz DOT.
    fn to_dot(&self) -> String {
        match &self.bp {
            Bp::Source(x) => x.to_dot(),
            Bp::Flow(x) => x.to_dot(),
            Bp::Sink(x) => x.to_dot(),
            Bp::Graph(x) => x.module().to_dot(),
        }
    }

    /// Number of stages in the blueprint.
    fn stage_count(&self) -> usize {
        match &self.bp {
            Bp::Source(x) => x.module().nodes.len(),
            Bp::Flow(x) => x.module().nodes.len(),
            Bp::Sink(x) => x.module().nodes.len(),
            Bp::Graph(x) => x.module().nodes.len(),
        }
    }

    /// Merges `other` (a source) into this stream.
    fn merge(&self, other: &PyBlueprint) -> PyResult<PyBlueprint> {
        let o = source_of(other)?;
        linear(&self.bp, unit_mat(Flow::identity().merge(o)))
    }

    /// Emits this stream, then `other` (a source).
    fn concat(&self, other: &PyBlueprint) -> PyResult<PyBlueprint> {
        let o = source_of(other)?;
        linear(&self.bp, unit_mat(Flow::identity().concat(o)))
    }

    /// Pairs elements with those of `other` (a source) into tuples.
    fn zip(&self, other: &PyBlueprint) -> PyResult<PyBlueprint> {
        let o = source_of(other)?;
        let tuples = crate::stages::convert::tuple_flow("zip");
        linear(
            &self.bp,
            Flow::<PyObj, PyObj, ()>::identity()
                .zip(o)
                .map_materialized_value(|_| MatValue::Unit)
                .via(tuples),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<weir {} blueprint with {} stages>",
            self.kind(),
            self.stage_count()
        )
    }
}

pub(crate) fn source_of(b: &PyBlueprint) -> PyResult<Source<PyObj, MatValue>> {
    match &b.bp {
        Bp::Source(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Source")),
    }
}

/// Appends the flow built by `f` to a source or flow.
pub(crate) fn linear(bp: &Bp, flow: Flow<PyObj, PyObj, MatValue>) -> PyResult<PyBlueprint> {
    Ok(wrap(match bp.clone() {
        Bp::Source(s) => Bp::Source(s.via(flow)),
        Bp::Flow(s) => Bp::Flow(s.via(flow)),
        _ => return Err(PyTypeError::new_err("needs a Source or a Flow")),
    }))
}

pub(crate) fn op<I: Send + 'static, O: Send + 'static, P: PyOp<I, O>>(
    f: impl Fn(Python<'_>) -> P + Send + Sync + 'static,
) -> OpFactory<I, O> {
    Arc::new(move |py, _info| Box::new(f(py)) as Box<dyn PyOp<I, O>>)
}
