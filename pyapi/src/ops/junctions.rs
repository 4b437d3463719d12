//! Junctions for the `GraphBuilder`: `Partition`, `MergePreferred`, `MergePrioritized`,
//! `Interleave`, `MergeSorted`, `ZipLatest`, `Unzip`.

use super::*;
use crate::pyfn::attempt;

type PortLists = (Vec<PyInlet>, Vec<PyOutlet>);

fn ports(ins: Vec<Inlet<PyObj>>, outs: Vec<Outlet<PyObj>>) -> PortLists {
    (
        ins.into_iter().map(PyInlet).collect(),
        outs.into_iter().map(PyOutlet).collect(),
    )
}

/// The output a partition function's result `r` names: an int in `0..n`; anything else is an
/// `IndexError` ("partition index 5 out of range 0..2") or a `TypeError`, never an overflow.
fn partition_index(r: &Bound<'_, PyAny>, n: usize) -> PyResult<usize> {
    if r.is_instance_of::<pyo3::types::PyBool>() || !r.is_instance_of::<pyo3::types::PyInt>() {
        let ty = r
            .get_type()
            .name()
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Err(PyTypeError::new_err(format!(
            "partition function returned {ty}, not an int index in 0..{n}"
        )));
    }
    match r.extract::<i64>() {
        Ok(i) if i >= 0 && (i as u64) < n as u64 => Ok(i as usize),
        _ => Err(PyIndexError::new_err(format!(
            "partition index {r} out of range 0..{n}"
        ))),
    }
}

fn add_junction(
    b: &mut GraphBuilder,
    kind: &str,
    n: usize,
    f: Option<Py<PyAny>>,
    priorities: Vec<usize>,
    segment_size: usize,
    eager_cancel: bool,
) -> PyResult<PortLists> {
    // Python validates sizes at construction (`weir._validate`); this clamp only guards the
    // native entry point.
    let n = n.max(1);
    let ge = graph_err;
    Ok(match kind {
        "partition" => {
            let f = f.ok_or_else(|| PyTypeError::new_err("Partition needs a function"))?;
            let f = PyFn::new(f);
            let tags = weir_operators::simple::try_map(move |x: &PyObj| {
                attempt(x, |py, x| {
                    let r = f.get().bind(py).call1((x.0.bind(py),))?;
                    Ok((partition_index(&r, n)?, x.clone_ref(py)))
                })
            });
            let (ti, to, _) = b.add_flow(unit_mat(tags).named("partition"));
            let j = b.add(
                Partition::<(usize, PyObj)>::new(n, |t: &(usize, PyObj)| t.0)
                    .eager_cancel(eager_cancel),
            );
            b.connect(to, j.inlet).map_err(ge)?;
            let mut outs = Vec::with_capacity(n);
            for o in j.outlets {
                let (si, so, _) = b.add_flow(untag::<usize>());
                b.connect(o, si).map_err(ge)?;
                outs.push(so);
            }
            ports(vec![ti], outs)
        }
        "merge_preferred" => {
            let j = b.add(MergePreferred::<PyObj>::new(n));
            let mut ins = vec![j.preferred];
            ins.extend(j.inlets);
            ports(ins, vec![j.outlet])
        }
        "merge_prioritized" => {
            let j = b.add(MergePrioritized::<PyObj>::new(priorities));
            ports(j.inlets, vec![j.outlet])
        }
        "interleave" => {
            let j = b.add(Interleave::<PyObj>::new(n, segment_size.max(1)));
            ports(j.inlets, vec![j.outlet])
        }
        "merge_sorted" => {
            let j = b.add(MergeSortedBy::new(crate::pyfn::py_order));
            ports(vec![j.left, j.right], vec![j.outlet])
        }
        "zip_latest" => {
            let (pi, po, _) = b.add_flow(tuple_flow("zip_latest"));
            let j = b.add(ZipLatest::<PyObj, PyObj>::new());
            b.connect(j.outlet, pi).map_err(ge)?;
            ports(vec![j.left, j.right], vec![po])
        }
        "unzip" => {
            let pairs = weir_operators::simple::try_map(|x: &PyObj| {
                attempt(x, |py, x| {
                    let (a, b) = x.0.bind(py).extract::<(Py<PyAny>, Py<PyAny>)>()?;
                    Ok((PyObj(a), PyObj(b)))
                })
            });
            let (ti, to, _) = b.add_flow(unit_mat(pairs).named("unzip"));
            let j = b.add(Unzip::<PyObj, PyObj>::new().eager_cancel(eager_cancel));
            b.connect(to, j.inlet).map_err(ge)?;
            ports(vec![ti], vec![j.left, j.right])
        }
        other => return Err(PyValueError::new_err(format!("unknown junction {other:?}"))),
    })
}

/// Adds a junction of this module to a builder: `kind` is `partition` (with `f`),
/// `merge_preferred`, `merge_prioritized` (with `priorities`), `interleave` (with
/// `segment_size`), `merge_sorted`, `zip_latest` or `unzip`; returns `(inlets, outlets)`.
/// `eager_cancel` makes a `partition` or `unzip` stop at its first cancelled output.
#[pyfunction]
#[pyo3(signature = (builder, kind, n = 2, f = None, priorities = Vec::new(), segment_size = 1, eager_cancel = false))]
pub fn builder_add_junction(
    builder: &PyGraphBuilder,
    kind: &str,
    n: usize,
    f: Option<Py<PyAny>>,
    priorities: Vec<usize>,
    segment_size: usize,
    eager_cancel: bool,
) -> PyResult<PortLists> {
    builder.with(|b| add_junction(b, kind, n, f, priorities, segment_size, eager_cancel))
}
