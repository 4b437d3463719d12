//! Arrow IPC and Parquet files for Python: the Rust columnar connectors of
//! `weir_operators::file` with one conversion stage each way. Read batches become
//! `weir.ArrowBatch` objects (then, with pyarrow, `pyarrow.RecordBatch`, zero-copy through the
//! C data interface); elements written are imported from any Arrow PyCapsule producer without
//! copying. Reading, positions, projection and the part-file protocol are the Rust connectors'.

use super::files::{file_sink, paths, source};
use super::*;
use crate::arrow::{PyArrowBatch, batches_of};
use crate::dsl::PySupervision;
use crate::run::PySinkFuture;
use std::path::PathBuf;
use weir_graph::StageCx;
use weir_operators::file::{ParquetCompression, ParquetOptions, RecordBatch};

/// Batches as `weir.ArrowBatch`, each passed through `convert` when given (`pyarrow.record_batch`).
struct ToPython {
    convert: Option<Py<PyAny>>,
}

impl PyOp<RecordBatch, PyObj> for ToPython {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut crate::stages::Batch<RecordBatch>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        for b in input {
            let obj = Py::new(py, PyArrowBatch(b))
                .map_err(|e| user_error(py, e))?
                .into_any();
            let obj = match &self.convert {
                Some(f) => f.bind(py).call1((obj,)).map_err(|e| user_error(py, e))?,
                None => obj.into_bound(py),
            };
            out.push(PyObj::from_bound(obj));
        }
        Ok(())
    }
}

/// `Source.from_parquet(path)` / `Source.from_arrow_ipc(path)`: the Rust `file_parquet` or
/// `file_arrow_ipc` source, then a conversion stage (`from_parquet` / `from_arrow_ipc`).
#[pyfunction]
#[pyo3(signature = (path, format, batch_rows = None, columns = None, convert = None, follow = None, share = None))]
pub fn source_file_columnar(
    path: &str,
    format: &str,
    batch_rows: Option<usize>,
    columns: Option<Vec<String>>,
    convert: Option<Py<PyAny>>,
    follow: Option<f64>,
    share: Option<(usize, usize)>,
) -> PyResult<PyBlueprint> {
    let mut s = source(path, None, None, follow, share);
    if let Some(r) = batch_rows {
        s = s.batch_rows(r);
    }
    if let Some(c) = columns {
        s = s.columns(c);
    }
    let (src, name) = match format {
        "parquet" => (s.parquet(), "from_parquet"),
        "arrow_ipc" => (s.arrow_ipc(), "from_arrow_ipc"),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown columnar format {other:?} (parquet or arrow_ipc)"
            )));
        }
    };
    let convert = convert.map(Arc::new);
    let to_py = py_flow(
        name,
        Arc::new(move |py, _| {
            Box::new(ToPython {
                convert: convert.as_ref().map(|f| f.clone_ref(py)),
            }) as Box<dyn PyOp<RecordBatch, PyObj>>
        }),
    );
    Ok(wrap(Bp::Source(src.via_mat(to_py, |_, _| MatValue::Unit))))
}

/// Each element's record batches (any Arrow data), imported without copying.
struct FromPython {
    op: &'static str,
}

impl PyOp<PyObj, RecordBatch> for FromPython {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut crate::stages::Batch<PyObj>,
        out: &mut Vec<RecordBatch>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        for x in input {
            let before = out.len();
            if let Err(e) = batches_of(x.0.bind(py), out) {
                out.truncate(before);
                let e = PyTypeError::new_err(format!("{}: {}", self.op, e.value(py)));
                crate::stages::element_failed(py, cx, e, Some(x))?;
            }
        }
        Ok(())
    }
}

/// `Sink.to_parquet(dir)` / `Sink.to_arrow_ipc(dir)`: each element's record batches (stage
/// `to_parquet` / `to_arrow_ipc`) written by the Rust transactional sink into Parquet or Arrow
/// IPC parts; materializes the committed paths.
#[pyfunction]
#[pyo3(signature = (dir, format, compression = None, row_group_rows = None, max_part_bytes = None, prefix = None, suffix = None, max_part_age = None, sup = None))]
pub fn sink_file_columnar(
    dir: PathBuf,
    format: &str,
    compression: Option<&str>,
    row_group_rows: Option<usize>,
    max_part_bytes: Option<u64>,
    prefix: Option<String>,
    suffix: Option<String>,
    max_part_age: Option<f64>,
    sup: Option<&PySupervision>,
) -> PyResult<PyBlueprint> {
    let sink = file_sink(dir, max_part_bytes, prefix, suffix, max_part_age);
    let (rust, op) = match format {
        "parquet" => {
            let compression = match compression.unwrap_or("snappy") {
                "snappy" => ParquetCompression::Snappy,
                "none" => ParquetCompression::None,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "to_parquet: compression must be 'snappy' or 'none', got {other:?}"
                    )));
                }
            };
            let o = ParquetOptions {
                compression,
                row_group_rows: row_group_rows.unwrap_or(ParquetOptions::default().row_group_rows),
            };
            (sink.parquet(o), "to_parquet")
        }
        "arrow_ipc" => (sink.arrow_ipc(), "to_arrow_ipc"),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown columnar format {other:?} (parquet or arrow_ipc)"
            )));
        }
    };
    let conv = py_flow(
        op,
        Arc::new(move |_py, _| Box::new(FromPython { op }) as Box<dyn PyOp<PyObj, RecordBatch>>),
    );
    let conv = match sup {
        Some(p) => conv.with_supervision(p.0.clone()),
        None => conv,
    };
    let s = conv.to_mat(rust, |_, fut| {
        MatValue::Lazy(Box::new(move |py| {
            Ok(Py::new(py, PySinkFuture::new(fut, paths))?.into_any())
        }))
    });
    Ok(wrap(Bp::Sink(s)))
}

/// Adds the columnar file connectors to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(source_file_columnar, m)?)?;
    m.add_function(wrap_pyfunction!(sink_file_columnar, m)?)?;
    Ok(())
}
