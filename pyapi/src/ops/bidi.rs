//! `BidiFlow` over Python objects and the byte framing flows (`weir.Framing`): the Rust
//! `BidiFlow` and framing operators, with `bytes` converted at the edges.

use super::*;
use pyo3::types::{PyByteArray, PyBytes};
use weir_graph::BidiFlow;
use weir_operators::framing::{self, ByteOrder, FramingError, LengthField};

type ObjBidi = BidiFlow<PyObj, PyObj, PyObj, PyObj, MatValue>;

/// A bidirectional blueprint over Python objects: a top flow and a bottom flow.
#[pyclass(module = "weir._native", name = "Bidi", frozen)]
pub struct PyBidi(pub ObjBidi);

#[pymethods]
impl PyBidi {
    /// Stacks `other` under this bidi (top flows: this then other; bottom: other then this).
    #[pyo3(signature = (other, keep = "left"))]
    fn atop(&self, other: &PyBidi, keep: &str) -> PyResult<PyBidi> {
        let k = crate::dsl::keep(keep)?;
        Ok(PyBidi(
            self.0
                .clone()
                .atop_mat(other.0.clone(), move |a, b| k.combine(a, b)),
        ))
    }

    /// Closes the bidi with `flow` (top outlet to bottom inlet): a flow.
    #[pyo3(signature = (flow, keep = "left"))]
    fn join(&self, flow: &PyBlueprint, keep: &str) -> PyResult<PyBlueprint> {
        let k = crate::dsl::keep(keep)?;
        let f = flow_of(flow)?;
        Ok(super::flow(
            self.0.clone().join_mat(f, move |a, b| k.combine(a, b)),
        ))
    }

    /// The same bidi with its directions swapped.
    fn reversed(&self) -> PyBidi {
        PyBidi(self.0.clone().reversed())
    }

    /// The blueprint as a Mermaid flowchart.
    fn to_mermaid(&self) -> String {
        self.0.to_mermaid()
    }

    /// Number of stages.
    fn stage_count(&self) -> usize {
        self.0.module().nodes.len()
    }
}

/// `BidiFlow.from_flows(top, bottom, keep)`.
#[pyfunction]
#[pyo3(signature = (top, bottom, keep = "none"))]
pub fn bidi_from_flows(top: &PyBlueprint, bottom: &PyBlueprint, keep: &str) -> PyResult<PyBidi> {
    let k = crate::dsl::keep(keep)?;
    Ok(PyBidi(BidiFlow::from_flows_mat(
        flow_of(top)?,
        flow_of(bottom)?,
        move |a, b| k.combine(a, b),
    )))
}

fn framing_err(e: FramingError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Python `bytes` (or `bytearray`) elements into byte vectors; anything else fails the stage.
fn to_bytes(name: &str) -> Flow<PyObj, Vec<u8>, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, x: PyObj| {
                let b = x.0.bind(py);
                if let Ok(b) = b.cast::<PyBytes>() {
                    return Ok(b.as_bytes().to_vec());
                }
                if let Ok(b) = b.cast::<PyByteArray>() {
                    return Ok(b.to_vec());
                }
                let ty = b
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                Err(StageError::user(format!(
                    "framing takes bytes or bytearray elements, not {ty}"
                ))
                .with_element(&crate::obj::short_repr(py, &x)))
            })
        }),
    )
}

/// Byte vectors into Python `bytes`.
fn from_bytes(name: &str) -> Flow<Vec<u8>, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, v: Vec<u8>| Ok(PyObj(PyBytes::new(py, &v).into_any().unbind())))
        }),
    )
}

/// A Rust byte flow as a flow of Python `bytes`.
fn bytes_flow(f: Flow<Vec<u8>, Vec<u8>>) -> Flow<PyObj, PyObj, MatValue> {
    to_bytes("to_bytes")
        .via(unit_mat(f))
        .via(from_bytes("from_bytes"))
}

/// A Rust byte bidi as a bidi of Python `bytes`.
fn bytes_bidi(b: BidiFlow<Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>>) -> PyBidi {
    // Outside: Python objects in on top, out at the bottom; inside, the reverse.
    let outer = BidiFlow::from_flows(to_bytes("to_bytes"), from_bytes("from_bytes"));
    let inner = BidiFlow::from_flows(from_bytes("from_bytes"), to_bytes("to_bytes"));
    let b = outer
        .atop(b)
        .atop(inner)
        .map_materialized_value(|()| MatValue::Unit);
    PyBidi(b)
}

/// `Framing.delimiter(delimiter, max_frame_length, allow_truncation)`.
#[pyfunction]
#[pyo3(signature = (delimiter, max_frame_length, allow_truncation = false))]
pub fn framing_delimiter(
    delimiter: &[u8],
    max_frame_length: usize,
    allow_truncation: bool,
) -> PyResult<PyBlueprint> {
    let f =
        framing::delimiter(delimiter, max_frame_length, allow_truncation).map_err(framing_err)?;
    Ok(flow(bytes_flow(f)))
}

fn byte_order(s: &str) -> PyResult<ByteOrder> {
    match s {
        "big" => Ok(ByteOrder::BigEndian),
        "little" => Ok(ByteOrder::LittleEndian),
        other => Err(PyValueError::new_err(format!(
            "byte_order must be 'big' or 'little', not {other:?}"
        ))),
    }
}

/// `Framing.length_field(field_length, max_frame_length, ...)`.
#[pyfunction]
#[pyo3(signature = (field_length, max_frame_length, field_offset = 0, byte_order = "big", length_includes_header = false, strip_header = false))]
pub fn framing_length_field(
    field_length: usize,
    max_frame_length: usize,
    field_offset: usize,
    byte_order: &str,
    length_includes_header: bool,
    strip_header: bool,
) -> PyResult<PyBlueprint> {
    let cfg = LengthField::new(field_length, max_frame_length)
        .offset(field_offset)
        .order(self::byte_order(byte_order)?)
        .includes_header(length_includes_header)
        .strip_header(strip_header);
    let f = framing::length_field(cfg).map_err(framing_err)?;
    Ok(flow(bytes_flow(f)))
}

/// `Framing.length_prefix(field_length, max_message_length, byte_order)`.
#[pyfunction]
#[pyo3(signature = (field_length, max_message_length, byte_order = "big"))]
pub fn framing_length_prefix(
    field_length: usize,
    max_message_length: usize,
    byte_order: &str,
) -> PyResult<PyBlueprint> {
    let f = framing::length_prefix(
        field_length,
        self::byte_order(byte_order)?,
        max_message_length,
    )
    .map_err(framing_err)?;
    Ok(flow(bytes_flow(f)))
}

/// `Framing.json(max_object_length)`.
#[pyfunction]
pub fn framing_json(max_object_length: usize) -> PyBlueprint {
    flow(bytes_flow(framing::json(max_object_length)))
}

/// `Framing.simple_framing_protocol(max_message_length)`.
#[pyfunction]
pub fn framing_simple_protocol(max_message_length: usize) -> PyResult<PyBidi> {
    let b = framing::simple_framing_protocol(max_message_length).map_err(framing_err)?;
    Ok(bytes_bidi(b))
}

/// `Framing.delimiter_protocol(delimiter, max_frame_length)`.
#[pyfunction]
pub fn framing_delimiter_protocol(delimiter: &[u8], max_frame_length: usize) -> PyResult<PyBidi> {
    let b = framing::delimiter_protocol(delimiter, max_frame_length).map_err(framing_err)?;
    Ok(bytes_bidi(b))
}

/// Adds the bidi and framing classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBidi>()?;
    m.add_function(wrap_pyfunction!(bidi_from_flows, m)?)?;
    m.add_function(wrap_pyfunction!(framing_delimiter, m)?)?;
    m.add_function(wrap_pyfunction!(framing_length_field, m)?)?;
    m.add_function(wrap_pyfunction!(framing_length_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(framing_json, m)?)?;
    m.add_function(wrap_pyfunction!(framing_simple_protocol, m)?)?;
    m.add_function(wrap_pyfunction!(framing_delimiter_protocol, m)?)?;
    Ok(())
}
