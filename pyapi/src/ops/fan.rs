//! Fan-out / fan-in operators in their linear forms (`also_to`, `divert_to`, `merge_sorted`,
//! `interleave`, `zip_latest`).

use super::*;

fn built(r: Result<Flow<PyObj, PyObj, MatValue>, weir_graph::GraphError>) -> PyResult<PyBlueprint> {
    r.map(flow).map_err(graph_err)
}

fn take_mat(k: MatKey<MatValue>) -> impl Fn(&mut weir_graph::MatValues) -> MatValue + Send + Sync {
    move |v| v.take(k).unwrap_or(MatValue::Unit)
}

/// `also_to(sink)`: every element to `sink` too; materializes the sink's value.
#[pyfunction]
#[pyo3(signature = (sink, tap = false))]
pub fn flow_also_to(sink: &PyBlueprint, tap: bool) -> PyResult<PyBlueprint> {
    let sink = sink_of(sink)?;
    let mut b = GraphBuilder::new();
    let (si, so, _) = b.add_flow(unit_mat(Flow::<PyObj, PyObj, ()>::identity()));
    let (ki, k) = b.add_sink(sink);
    let r = (|| {
        let (main, side) = if tap {
            let j = b.add(WireTap::<PyObj>::new());
            b.connect(so, j.inlet)?;
            (j.main, j.tap)
        } else {
            let j = b.add(Broadcast::<PyObj>::new(2).eager_cancel(true));
            b.connect(so, j.inlet)?;
            match j.outlets.as_slice() {
                [a, c, ..] => (*a, *c),
                _ => return Err(weir_graph::GraphError::UnknownNode("also_to".into())),
            }
        };
        b.connect(side, ki)?;
        b.build_flow(si, main, take_mat(k))
    })();
    built(r)
}

/// `divert_to(sink, pred)`: elements matching `pred` go to `sink` only.
#[pyfunction]
pub fn flow_divert_to(sink: &PyBlueprint, pred: Py<PyAny>) -> PyResult<PyBlueprint> {
    let sink = sink_of(sink)?;
    let mut b = GraphBuilder::new();
    let (ti, to, _) = b.add_flow(tag_flow("divert_to", pred));
    let (mi, mo, _) = b.add_flow(untag::<bool>());
    let (di, dout, _) = b.add_flow(untag::<bool>());
    let (ki, k) = b.add_sink(sink);
    let j = b.add(
        Partition::<(bool, PyObj)>::new(2, |t: &(bool, PyObj)| usize::from(t.0)).eager_cancel(true),
    );
    let r = (|| {
        let (o0, o1) = match j.outlets.as_slice() {
            [a, c, ..] => (*a, *c),
            _ => return Err(weir_graph::GraphError::UnknownNode("divert_to".into())),
        };
        b.connect(to, j.inlet)?;
        b.connect(o0, mi)?;
        b.connect(o1, di)?;
        b.connect(dout, ki)?;
        b.build_flow(ti, mo, take_mat(k))
    })();
    built(r)
}

/// `merge_sorted(other)`: both sorted ascending (Python `<`), merged into one sorted stream
/// (the Rust `MergeSortedBy`).
#[pyfunction]
pub fn flow_merge_sorted(other: &PyBlueprint) -> PyResult<PyBlueprint> {
    let other = source_of(other)?;
    let mut b = GraphBuilder::new();
    let (i, o, _) = b.add_flow(Flow::<PyObj, PyObj, ()>::identity());
    let (so, _) = b.add_source(other);
    let j = b.add(MergeSortedBy::new(crate::pyfn::py_order));
    let r = (|| {
        b.connect(o, j.left)?;
        b.connect(so, j.right)?;
        b.build_flow(i, j.outlet, |_| MatValue::Unit)
    })();
    built(r)
}

/// `interleave(other, segment_size)`.
#[pyfunction]
pub fn flow_interleave(other: &PyBlueprint, segment_size: usize) -> PyResult<PyBlueprint> {
    let other = source_of(other)?;
    Ok(flow(unit_mat(
        Flow::<PyObj, PyObj, ()>::identity().interleave(other, segment_size.max(1)),
    )))
}

/// `zip_latest(other)`: `(a, b)` of the latest elements of both, on every new element.
#[pyfunction]
pub fn flow_zip_latest(other: &PyBlueprint) -> PyResult<PyBlueprint> {
    let other = source_of(other)?;
    let mut b = GraphBuilder::new();
    let (i, o, _) = b.add_flow(Flow::<PyObj, PyObj, ()>::identity());
    let (so, _) = b.add_source(other);
    let (pi, po, _) = b.add_flow(tuple_flow("zip_latest"));
    let j = b.add(ZipLatest::<PyObj, PyObj>::new());
    let r = (|| {
        b.connect(o, j.left)?;
        b.connect(so, j.right)?;
        b.connect(j.outlet, pi)?;
        b.build_flow(i, po, |_| MatValue::Unit)
    })();
    built(r)
}
