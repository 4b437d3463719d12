//! `GraphBuilder` from Python: ports, materialized-value keys and wiring.

use super::{Bp, PyBlueprint, source_of, wrap};
use crate::errors::{GraphInvalid, graph_err};
use crate::mat::MatValue;
use crate::obj::PyObj;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;
use weir_graph::{GraphBuilder, Inlet, MatKey, Outlet};
use weir_operators::fan::{
    Balance, Broadcast, Concat, Merge, MergePreferred, MergePrioritized, Zip,
};

/// A typed input port of a component added to a builder.
#[pyclass(module = "weir._native", name = "Inlet", frozen)]
pub struct PyInlet(pub Inlet<PyObj>);

/// A typed output port of a component added to a builder.
#[pyclass(module = "weir._native", name = "Outlet", frozen)]
pub struct PyOutlet(pub Outlet<PyObj>);

/// The key to a component's materialized value inside a builder.
#[pyclass(module = "weir._native", name = "MatKey", frozen)]
pub struct PyMatKey(pub MatKey<MatValue>);

/// Wires sources, flows, sinks and junctions into non-linear graphs.
#[pyclass(module = "weir._native", name = "GraphBuilder", frozen)]
pub struct PyGraphBuilder(Mutex<Option<GraphBuilder>>);

impl PyGraphBuilder {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut GraphBuilder) -> PyResult<R>) -> PyResult<R> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| GraphInvalid::new_err("builder poisoned"))?;
        let b = g
            .as_mut()
            .ok_or_else(|| GraphInvalid::new_err("this builder was already built"))?;
        f(b)
    }
    fn take(&self) -> PyResult<GraphBuilder> {
        self.0
            .lock()
            .map_err(|_| GraphInvalid::new_err("builder poisoned"))?
            .take()
            .ok_or_else(|| GraphInvalid::new_err("this builder was already built"))
    }
}

fn mat_of(
    keys: Vec<MatKey<MatValue>>,
) -> impl Fn(&mut weir_graph::MatValues) -> MatValue + Send + Sync {
    move |vals| {
        let mut v: Vec<MatValue> = keys
            .iter()
            .map(|k| vals.take(*k).unwrap_or(MatValue::Unit))
            .collect();
        match v.len() {
            0 => MatValue::Unit,
            1 => v.pop().unwrap_or(MatValue::Unit),
            _ => MatValue::Many(v),
        }
    }
}

/// The user-facing name of a fan junction accepted by `add_fan`.
fn fan_name(kind: &str) -> PyResult<&'static str> {
    Ok(match kind {
        "balance" => "Balance",
        "merge" => "Merge",
        "merge_preferred" => "MergePreferred",
        "merge_prioritized" => "MergePrioritized",
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown fan junction {other:?}"
            )));
        }
    })
}

#[pymethods]
impl PyGraphBuilder {
    /// An empty builder.
    #[new]
    fn new() -> Self {
        Self(Mutex::new(Some(GraphBuilder::new())))
    }

    /// Adds a source; returns `(outlet, mat_key)`.
    fn add_source(&self, s: &PyBlueprint) -> PyResult<(PyOutlet, PyMatKey)> {
        let src = source_of(s)?;
        self.with(|b| {
            let (o, k) = b.add_source(src);
            Ok((PyOutlet(o), PyMatKey(k)))
        })
    }

    /// Adds a flow; returns `(inlet, outlet, mat_key)`.
    fn add_flow(&self, f: &PyBlueprint) -> PyResult<(PyInlet, PyOutlet, PyMatKey)> {
        let Bp::Flow(fl) = f.bp.clone() else {
            return Err(PyTypeError::new_err("add_flow() takes a Flow"));
        };
        self.with(|b| {
            let (i, o, k) = b.add_flow(fl);
            Ok((PyInlet(i), PyOutlet(o), PyMatKey(k)))
        })
    }

    /// Adds a sink; returns `(inlet, mat_key)`.
    fn add_sink(&self, s: &PyBlueprint) -> PyResult<(PyInlet, PyMatKey)> {
        let Bp::Sink(sk) = s.bp.clone() else {
            return Err(PyTypeError::new_err("add_sink() takes a Sink"));
        };
        self.with(|b| {
            let (i, k) = b.add_sink(sk);
            Ok((PyInlet(i), PyMatKey(k)))
        })
    }

    /// Adds a junction: `kind` is `broadcast`, `balance`, `merge`, `zip` or `concat`; returns
    /// `(inlets, outlets)`. `eager_cancel` makes a `broadcast` stop at its first cancelled output.
    #[pyo3(signature = (kind, n, eager_cancel = false))]
    fn add_junction(
        &self,
        kind: &str,
        n: usize,
        eager_cancel: bool,
    ) -> PyResult<(Vec<PyInlet>, Vec<PyOutlet>)> {
        let n = n.max(1);
        self.with(|b| match kind {
            "broadcast" => {
                let p = b.add(Broadcast::<PyObj>::new(n).eager_cancel(eager_cancel));
                Ok((
                    vec![PyInlet(p.inlet)],
                    p.outlets.into_iter().map(PyOutlet).collect(),
                ))
            }
            "zip" => {
                let p = b.add(Zip::<PyObj, PyObj>::new());
                let (ti, to, _) = b.add_flow(crate::stages::convert::tuple_flow("zip"));
                b.connect(p.outlet, ti).map_err(graph_err)?;
                Ok((vec![PyInlet(p.left), PyInlet(p.right)], vec![PyOutlet(to)]))
            }
            "balance" => {
                let p = b.add(Balance::<PyObj>::new(n));
                Ok((
                    vec![PyInlet(p.inlet)],
                    p.outlets.into_iter().map(PyOutlet).collect(),
                ))
            }
            "merge" => {
                let p = b.add(Merge::<PyObj>::new(n));
                Ok((
                    p.inlets.into_iter().map(PyInlet).collect(),
                    vec![PyOutlet(p.outlet)],
                ))
            }
            "concat" => {
                let p = b.add(Concat::<PyObj>::new(n));
                Ok((
                    p.inlets.into_iter().map(PyInlet).collect(),
                    vec![PyOutlet(p.outlet)],
                ))
            }
            other => Err(PyValueError::new_err(format!("unknown junction {other:?}"))),
        })
    }

    /// Adds a rate-aware fan junction with its options: `balance` (`eager` = eager cancel),
    /// `merge`, `merge_preferred` (`n` secondary inputs) or `merge_prioritized` (`priorities`),
    /// the merges with `eager` = eager complete. Counts below 1 and negative priorities are a
    /// `ValueError` naming the junction. Returns `(inlets, outlets)`.
    #[pyo3(signature = (kind, n = 2, eager = false, priorities = Vec::new()))]
    fn add_fan(
        &self,
        kind: &str,
        n: i64,
        eager: bool,
        priorities: Vec<i64>,
    ) -> PyResult<(Vec<PyInlet>, Vec<PyOutlet>)> {
        let name = fan_name(kind)?;
        let count = |what: &str, v: i64| -> PyResult<usize> {
            usize::try_from(v).ok().filter(|&v| v >= 1).ok_or_else(|| {
                PyValueError::new_err(format!("{name}: {what} must be at least 1, got {v}"))
            })
        };
        let n = if kind == "merge_prioritized" {
            0
        } else {
            count("n", n)?
        };
        let priorities = priorities
            .into_iter()
            .map(|p| count("priority", p))
            .collect::<PyResult<Vec<usize>>>()?;
        if kind == "merge_prioritized" && priorities.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{name}: needs at least one priority"
            )));
        }
        self.with(|b| {
            Ok(match kind {
                "balance" => {
                    let p = b.add(Balance::<PyObj>::new(n).eager_cancel(eager));
                    (
                        vec![PyInlet(p.inlet)],
                        p.outlets.into_iter().map(PyOutlet).collect(),
                    )
                }
                "merge" => {
                    let p = b.add(Merge::<PyObj>::new(n).eager_complete(eager));
                    (
                        p.inlets.into_iter().map(PyInlet).collect(),
                        vec![PyOutlet(p.outlet)],
                    )
                }
                "merge_preferred" => {
                    let p = b.add(MergePreferred::<PyObj>::new(n).eager_complete(eager));
                    let mut ins = vec![PyInlet(p.preferred)];
                    ins.extend(p.inlets.into_iter().map(PyInlet));
                    (ins, vec![PyOutlet(p.outlet)])
                }
                _ => {
                    let j = MergePrioritized::<PyObj>::new(priorities).eager_complete(eager);
                    let p = b.add(j);
                    (
                        p.inlets.into_iter().map(PyInlet).collect(),
                        vec![PyOutlet(p.outlet)],
                    )
                }
            })
        })
    }

    /// Connects an outlet to an inlet.
    fn connect(&self, from: &PyOutlet, to: &PyInlet) -> PyResult<()> {
        self.with(|b| b.connect(from.0, to.0).map_err(graph_err))
    }

    /// Builds a closed graph materializing to the values of `keys`.
    fn build(&self, keys: Vec<PyRef<'_, PyMatKey>>) -> PyResult<PyBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self.take()?.build_mat(mat_of(keys)).map_err(graph_err)?;
        Ok(wrap(Bp::Graph(g)))
    }

    /// Builds a source whose output is `outlet`.
    fn build_source(
        &self,
        outlet: &PyOutlet,
        keys: Vec<PyRef<'_, PyMatKey>>,
    ) -> PyResult<PyBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_source(outlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Source(g)))
    }

    /// Builds a flow from `inlet` to `outlet`.
    fn build_flow(
        &self,
        inlet: &PyInlet,
        outlet: &PyOutlet,
        keys: Vec<PyRef<'_, PyMatKey>>,
    ) -> PyResult<PyBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_flow(inlet.0, outlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Flow(g)))
    }

    /// Builds a sink whose input is `inlet`.
    fn build_sink(&self, inlet: &PyInlet, keys: Vec<PyRef<'_, PyMatKey>>) -> PyResult<PyBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_sink(inlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Sink(g)))
    }
}
