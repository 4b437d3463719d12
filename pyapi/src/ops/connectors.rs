//! Python TCP and stdio connectors: `weir.Source.from_tcp` / `weir.Sink.to_tcp` and
//! `weir.Source.stdin` / `weir.Sink.stdout` are the Rust connectors of `weir-connectors`; lines
//! become `str` elements and length-prefixed frames `bytes` (the Python layer adds JSON).

use crate::dsl::{Bp, PyBlueprint, wrap};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use weir_connectors::{Framing, TcpSink, TcpSource, stdio};
use weir_graph::{Flow, Keep, Sink, Source, StageError};
use weir_operators::prelude::*;

fn framing(name: &str) -> PyResult<Framing> {
    match name {
        "lines" => Ok(Framing::Lines),
        "length" => Ok(Framing::LengthPrefixed),
        other => Err(PyValueError::new_err(format!(
            "a framing is 'lines' or 'length', not {other:?}"
        ))),
    }
}

fn addr_mat(a: Option<std::net::SocketAddr>) -> MatValue {
    MatValue::Lazy(Box::new(move |py| match a {
        Some(a) => Ok(PyString::new(py, &a.to_string()).into_any().unbind()),
        None => Ok(py.None()),
    }))
}

fn text(s: &str) -> PyObj {
    crate::gil::with(|py| PyObj(PyString::new(py, s).into_any().unbind()))
}

fn bytes(b: &[u8]) -> PyObj {
    crate::gil::with(|py| PyObj(PyBytes::new(py, b).into_any().unbind()))
}

/// `str(x)` of an element going out as a line.
fn to_text(x: &PyObj) -> Result<String, StageError> {
    crate::gil::with(|py| {
        x.0.bind(py)
            .str()
            .and_then(|s| s.extract::<String>())
            .map_err(|e| user_error(py, e))
    })
}

/// The bytes of an element going out as a length-prefixed frame (`bytes`, or `str` as UTF-8).
fn to_bytes(x: &PyObj) -> Result<Vec<u8>, StageError> {
    crate::gil::with(|py| {
        let b = x.0.bind(py);
        if let Ok(s) = b.cast::<PyString>() {
            return s
                .to_str()
                .map(|s| s.as_bytes().to_vec())
                .map_err(|e| user_error(py, e));
        }
        b.extract::<Vec<u8>>().map_err(|e| user_error(py, e))
    })
}

/// `Source.from_tcp(addr, bind, framing, max_frame_length)`: materializes the bound address
/// (server mode) or `None`.
#[pyfunction]
#[pyo3(signature = (addr, bind, framing_name, max_frame_length))]
pub fn source_tcp(
    addr: String,
    bind: bool,
    framing_name: &str,
    max_frame_length: usize,
) -> PyResult<PyBlueprint> {
    let f = framing(framing_name)?;
    let base = if bind {
        TcpSource::bind(addr)
    } else {
        TcpSource::connect(addr)
    };
    let base = base.framing(f).max_frame_length(max_frame_length);
    let src: Source<PyObj, MatValue> = match f {
        Framing::Lines => base
            .text()
            .map(|s: String| text(&s))
            .map_materialized_value(|h| addr_mat(h.local_addr)),
        Framing::LengthPrefixed => base
            .bytes()
            .map(|b: Vec<u8>| bytes(&b))
            .map_materialized_value(|h| addr_mat(h.local_addr)),
    };
    Ok(wrap(Bp::Source(src)))
}

/// `Sink.to_tcp(addr, bind, framing)`: materializes the bound address (server mode) or `None`.
#[pyfunction]
#[pyo3(signature = (addr, bind, framing_name))]
pub fn sink_tcp(addr: String, bind: bool, framing_name: &str) -> PyResult<PyBlueprint> {
    let f = framing(framing_name)?;
    let base = if bind {
        TcpSink::bind(addr)
    } else {
        TcpSink::connect(addr)
    };
    let base = base.framing(f);
    let sink: Sink<PyObj, MatValue> = match f {
        Framing::Lines => Flow::<PyObj, PyObj, ()>::identity()
            .try_map(to_text)
            .to_mat(base.text(), Keep::right)
            .map_materialized_value(|h| addr_mat(h.local_addr)),
        Framing::LengthPrefixed => Flow::<PyObj, PyObj, ()>::identity()
            .try_map(to_bytes)
            .to_mat(base.bytes(), Keep::right)
            .map_materialized_value(|h| addr_mat(h.local_addr)),
    };
    Ok(wrap(Bp::Sink(sink)))
}

/// `Source.stdin()`: the lines of standard input as `str`, until EOF.
#[pyfunction]
pub fn source_stdin() -> PyBlueprint {
    let src = stdio::stdin_lines()
        .map(|s: String| text(&s))
        .map_materialized_value(|_| MatValue::Unit);
    wrap(Bp::Source(src))
}

/// `Sink.stdout()`: every element as a line of standard output (`str(x)`); a closed pipe ends
/// the run as a cancellation, not a failure.
#[pyfunction]
pub fn sink_stdout() -> PyBlueprint {
    let sink = Flow::<PyObj, PyObj, ()>::identity()
        .try_map(to_text)
        .to_mat(stdio::stdout_lines(), Keep::left)
        .map_materialized_value(|()| MatValue::Unit);
    wrap(Bp::Sink(sink))
}

/// Adds the connectors to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(source_tcp, m)?)?;
    m.add_function(wrap_pyfunction!(sink_tcp, m)?)?;
    m.add_function(wrap_pyfunction!(source_stdin, m)?)?;
    m.add_function(wrap_pyfunction!(sink_stdout, m)?)?;
    Ok(())
}
