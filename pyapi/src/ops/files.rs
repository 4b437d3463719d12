//! File sources and the transactional file sink for Python: the Rust connectors of
//! `weir_operators::file` over `PyObj`, with one conversion stage (a batch per GIL hold) between
//! their bytes and Python objects. Reading, line cutting, validation, positions (snapshots),
//! bad-line errors and the part-file protocol are the Rust connectors'.

use super::*;
use crate::dsl::PySupervision;
use crate::run::PySinkFuture;
use crate::stages::cloop;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString, PyTuple, PyType};
use std::path::PathBuf;
use weir_graph::StageCx;
use weir_operators::file::{Bytes, CsvOptions, CsvRecord, FileSink, FileSource, Files};

/// A file, a directory, or a glob pattern (`*` or `?` in the last component).
pub(super) fn files(path: &str) -> Files {
    if path.contains(['*', '?']) {
        Files::glob(path)
    } else {
        Files::path(path)
    }
}

/// The Rust source stage under `sup` (bad lines are its element failures).
fn supervised<T, M>(s: Source<T, M>, sup: Option<&PySupervision>) -> Source<T, M>
where
    T: Send + 'static,
    M: Send + 'static,
{
    match sup {
        Some(p) => s.with_supervision(p.0.clone()),
        None => s,
    }
}

pub(super) fn source(
    path: &str,
    block_size: Option<usize>,
    max_line: Option<usize>,
    follow: Option<f64>,
    share: Option<(usize, usize)>,
) -> FileSource {
    let mut s = FileSource::new(files(path));
    // Checked `index < count` by the Python layer (the builder rejects it too).
    if let Some((index, count)) = share {
        s = s.share(index, count);
    }
    if let Some(b) = block_size {
        s = s.block_size(b);
    }
    if let Some(m) = max_line {
        s = s.max_line(m);
    }
    // Checked positive and finite by the Python layer.
    if let Some(f) = follow.and_then(|f| std::time::Duration::try_from_secs_f64(f).ok()) {
        s = s.follow(f);
    }
    s
}

/// A line the Rust source checked to be UTF-8, as a Python `str`.
fn py_str<'py>(py: Python<'py>, b: &Bytes) -> Result<Bound<'py, PyString>, StageError> {
    std::str::from_utf8(b)
        .map(|s| PyString::new(py, s))
        .map_err(|e| StageError::internal(format!("a checked line is not UTF-8: {e}")))
}

/// Lines as `str`, then, with `loads`, each decoded by it (`json.loads`, CPython's own `map`
/// over the batch).
struct LinesOp {
    loads: Option<Py<PyAny>>,
}

impl PyOp<Bytes, PyObj> for LinesOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut crate::stages::Batch<Bytes>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let Some(loads) = &self.loads else {
            out.reserve(input.len());
            for b in input {
                out.push(PyObj::from_bound(py_str(py, &b)?.into_any()));
            }
            return Ok(());
        };
        let strs = input
            .map(|b| py_str(py, &b).map(|s| s.into_any().unbind()))
            .collect::<Result<Vec<_>, _>>()?;
        let list = PyList::new(py, strs).map_err(|e| user_error(py, e))?;
        let res = PyList::empty(py);
        let r = cloop::map_list(loads, &list, &res, cx);
        cloop::take_list(out, &res);
        r
    }
}

fn lines_flow(name: &str, loads: Option<Py<PyAny>>) -> Flow<Bytes, PyObj, MatValue> {
    let loads = loads.map(Arc::new);
    py_flow(
        name,
        Arc::new(move |py, _| {
            Box::new(LinesOp {
                loads: loads.as_ref().map(|f| f.clone_ref(py)),
            }) as Box<dyn PyOp<Bytes, PyObj>>
        }),
    )
}

/// `Source.from_lines(path)`: the Rust `file_lines` source, each line a `str` (stage
/// `from_lines`).
#[pyfunction]
#[pyo3(signature = (path, block_size = None, max_line = None, sup = None, follow = None, share = None))]
pub fn source_file_lines(
    path: &str,
    block_size: Option<usize>,
    max_line: Option<usize>,
    sup: Option<&PySupervision>,
    follow: Option<f64>,
    share: Option<(usize, usize)>,
) -> PyBlueprint {
    let s = supervised(
        source(path, block_size, max_line, follow, share).lines(),
        sup,
    );
    let s = s.via_mat(lines_flow("from_lines", None), |_, _| MatValue::Unit);
    wrap(Bp::Source(s))
}

/// `Source.from_json_lines(path, raw=)`: the Rust `file_json_lines` source (each line checked
/// to be one JSON value by serde_json), each value decoded by `loads` (`json.loads`), or with
/// `loads=None` the line as a `str` (stage `from_json_lines`).
#[pyfunction]
#[pyo3(signature = (path, loads = None, block_size = None, max_line = None, sup = None, follow = None, share = None))]
pub fn source_file_json_lines(
    path: &str,
    loads: Option<Py<PyAny>>,
    block_size: Option<usize>,
    max_line: Option<usize>,
    sup: Option<&PySupervision>,
    follow: Option<f64>,
    share: Option<(usize, usize)>,
) -> PyBlueprint {
    let s = supervised(
        source(path, block_size, max_line, follow, share).json_lines(),
        sup,
    );
    let s = s.via_mat(lines_flow("from_json_lines", loads), |_, _| MatValue::Unit);
    wrap(Bp::Source(s))
}

/// How a CSV field becomes a Python object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Str,
    Bytes,
    Int,
    Float,
}

/// How a CSV record becomes a Python object.
#[derive(Clone)]
enum Decode {
    /// A tuple of `str`.
    Strs,
    /// A tuple with one converted field per type.
    Typed(Arc<[Field]>),
    /// A Python callable applied to the tuple of `str`.
    Call(Arc<Py<PyAny>>),
}

fn field_types(py: Python<'_>, types: &Bound<'_, PyAny>) -> PyResult<Vec<Field>> {
    let known = [
        (py.get_type::<PyString>(), Field::Str),
        (py.get_type::<PyBytes>(), Field::Bytes),
        (py.get_type::<pyo3::types::PyInt>(), Field::Int),
        (py.get_type::<PyFloat>(), Field::Float),
    ];
    types
        .try_iter()?
        .map(|t| {
            let t = t?;
            let ty = t.cast::<PyType>().ok();
            known
                .iter()
                .find(|(k, _)| ty.is_some_and(|ty| ty.is(k)))
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "from_csv: decode types must be str, bytes, int or float, got {}",
                        t.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
                    ))
                })
        })
        .collect()
}

fn err_text(py: Python<'_>, e: PyErr) -> String {
    user_error(py, e).to_string()
}

fn str_field<'py>(
    py: Python<'py>,
    r: &CsvRecord<'_>,
    i: usize,
) -> Result<Bound<'py, PyAny>, String> {
    r.str(i)
        .map(|s| PyString::new(py, s).into_any())
        .map_err(|e| e.to_string())
}

fn strs<'py>(py: Python<'py>, r: &CsvRecord<'_>) -> Result<Bound<'py, PyTuple>, String> {
    let items = (0..r.len())
        .map(|i| str_field(py, r, i))
        .collect::<Result<Vec<_>, _>>()?;
    PyTuple::new(py, items).map_err(|e| err_text(py, e))
}

impl Decode {
    fn decode(&self, r: CsvRecord<'_>) -> Result<PyObj, String> {
        crate::gil::with(|py| {
            let v = match self {
                Self::Strs => strs(py, &r)?.into_any(),
                Self::Call(f) => {
                    let t = strs(py, &r)?;
                    f.bind(py).call1((t,)).map_err(|e| err_text(py, e))?
                }
                Self::Typed(types) => {
                    if r.len() != types.len() {
                        return Err(format!("expected {} fields, got {}", types.len(), r.len()));
                    }
                    let items = types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| match t {
                            Field::Str => str_field(py, &r, i),
                            Field::Bytes => r
                                .field(i)
                                .map(|b| PyBytes::new(py, b).into_any())
                                .map_err(|e| e.to_string()),
                            Field::Int => r.int::<i64>(i).map_err(|e| e.to_string()).map(|v| {
                                let Ok(v) = v.into_pyobject(py);
                                v.into_any()
                            }),
                            Field::Float => r
                                .parse::<f64>(i)
                                .map(|v| PyFloat::new(py, v).into_any())
                                .map_err(|e| e.to_string()),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    PyTuple::new(py, items)
                        .map_err(|e| err_text(py, e))?
                        .into_any()
                }
            };
            Ok(PyObj::from_bound(v))
        })
    }
}

/// `Source.from_csv(path, delimiter=, header=, decode=)`: the Rust `file_csv` source (byte-level
/// splitting), each record a tuple of `str`, of fields converted by the types in `decode`
/// (`str`, `bytes`, `int`, `float`, converted in Rust), or what the callable `decode` makes of
/// the tuple of `str`; a record that does not decode is a bad line (file, line, byte offset).
#[pyfunction]
#[pyo3(signature = (path, delimiter = ",", header = false, decode = None, block_size = None, max_line = None, sup = None, follow = None, share = None))]
pub fn source_file_csv(
    py: Python<'_>,
    path: &str,
    delimiter: &str,
    header: bool,
    decode: Option<Bound<'_, PyAny>>,
    block_size: Option<usize>,
    max_line: Option<usize>,
    sup: Option<&PySupervision>,
    follow: Option<f64>,
    share: Option<(usize, usize)>,
) -> PyResult<PyBlueprint> {
    let &[delimiter] = delimiter.as_bytes() else {
        return Err(PyValueError::new_err(format!(
            "from_csv: delimiter must be one ASCII character, got {delimiter:?}"
        )));
    };
    let dec = match decode {
        None => Decode::Strs,
        Some(d) if d.is_callable() && d.cast::<PyType>().is_err() => {
            Decode::Call(Arc::new(d.unbind()))
        }
        Some(d) => Decode::Typed(field_types(py, &d)?.into()),
    };
    let options = CsvOptions { delimiter, header };
    let s = source(path, block_size, max_line, follow, share)
        .csv(options, move |r: CsvRecord<'_>| dec.decode(r))
        .map_materialized_value(|_| MatValue::Unit);
    let s = supervised(s, sup);
    Ok(wrap(Bp::Source(s)))
}

/// Each element's `encode(x)` (`str`, encoded as UTF-8, or `bytes`) as the record bytes;
/// without `encode`, a `str` or `bytes` element is its own record and any other is `str(x)`.
struct EncodeOp {
    encode: Option<Py<PyAny>>,
}

/// The record bytes of `x`.
fn record(encode: Option<&Py<PyAny>>, x: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let r = match encode {
        Some(f) => f.bind(x.py()).call1((x,))?,
        None if x.cast::<PyBytes>().is_ok() => x.clone(),
        None => x.str()?.into_any(),
    };
    if let Ok(s) = r.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = r.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    let ty = r
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    Err(PyTypeError::new_err(format!(
        "to_files: encode must return str or bytes, got {ty}"
    )))
}

impl PyOp<PyObj, Vec<u8>> for EncodeOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut crate::stages::Batch<PyObj>,
        out: &mut Vec<Vec<u8>>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        for x in input {
            match record(self.encode.as_ref(), x.0.bind(py)) {
                Ok(b) => out.push(b),
                Err(e) => crate::stages::element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

pub(super) fn paths(py: Python<'_>, files: Vec<PathBuf>) -> PyResult<Py<PyAny>> {
    let names = files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    Ok(PyList::new(py, names)?.into_any().unbind())
}

/// The Rust file sink into `dir` with the part settings the Python layer checked.
pub(super) fn file_sink(
    dir: PathBuf,
    max_part_bytes: Option<u64>,
    prefix: Option<String>,
    suffix: Option<String>,
    max_part_age: Option<f64>,
) -> FileSink {
    let mut sink = FileSink::new(dir);
    // Checked positive and finite by the Python layer.
    if let Some(a) = max_part_age.and_then(|a| std::time::Duration::try_from_secs_f64(a).ok()) {
        sink = sink.max_part_age(a);
    }
    if let Some(m) = max_part_bytes {
        sink = sink.max_part_bytes(m);
    }
    if let Some(p) = prefix {
        sink = sink.prefix(p);
    }
    if let Some(s) = suffix {
        sink = sink.suffix(s);
    }
    sink
}

/// `Sink.to_files(dir, encode=None, max_part_bytes=, prefix=, suffix=)`: each element's
/// `encode(x)` (stage `to_files`) written as one line by the Rust transactional `file_sink`
/// (temporary parts, committed by rename in commit order); materializes the committed paths.
#[pyfunction]
#[pyo3(signature = (dir, encode = None, max_part_bytes = None, prefix = None, suffix = None, sup = None, max_part_age = None))]
pub fn sink_files(
    dir: PathBuf,
    encode: Option<Py<PyAny>>,
    max_part_bytes: Option<u64>,
    prefix: Option<String>,
    suffix: Option<String>,
    sup: Option<&PySupervision>,
    max_part_age: Option<f64>,
) -> PyBlueprint {
    let sink = file_sink(dir, max_part_bytes, prefix, suffix, max_part_age);
    let encode = encode.map(Arc::new);
    let enc = py_flow(
        "to_files",
        Arc::new(move |py, _| {
            Box::new(EncodeOp {
                encode: encode.as_ref().map(|f| f.clone_ref(py)),
            }) as Box<dyn PyOp<PyObj, Vec<u8>>>
        }),
    );
    let enc = match sup {
        Some(p) => enc.with_supervision(p.0.clone()),
        None => enc,
    };
    let s = enc.to_mat(sink.bytes::<Vec<u8>>(), |_, fut| {
        MatValue::Lazy(Box::new(move |py| {
            Ok(Py::new(py, PySinkFuture::new(fut, paths))?.into_any())
        }))
    });
    wrap(Bp::Sink(s))
}

/// Adds the file connectors to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(source_file_lines, m)?)?;
    m.add_function(wrap_pyfunction!(source_file_json_lines, m)?)?;
    m.add_function(wrap_pyfunction!(source_file_csv, m)?)?;
    m.add_function(wrap_pyfunction!(sink_files, m)?)?;
    Ok(())
}
