//! Arrow data without pyarrow: record batches imported from any producer of the Arrow PyCapsule
//! interface (`__arrow_c_stream__` / `__arrow_c_array__`: polars, pyarrow, pandas, DuckDB) and
//! exported to any consumer through the same interface, zero-copy both ways (the buffers stay
//! the producer's, kept alive by the C data interface's release callbacks).
//!
//! This module uses `unsafe` (as do `ops/actors/ctx.rs` and `ops/actors/args.rs`, each for one
//! documented reason): the C data interface hands over structs by pointer inside PyCapsules,
//! and importing one means moving it out (leaving a released struct behind, so the capsule's
//! destructor does nothing).

#![allow(unsafe_code)]

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{Array, RecordBatch, RecordBatchIterator, StructArray};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use std::ffi::CStr;
use std::sync::{Arc, Mutex};

const SCHEMA: &CStr = c"arrow_schema";
const ARRAY: &CStr = c"arrow_array";
const STREAM: &CStr = c"arrow_array_stream";

fn arrow_err(e: ArrowError) -> PyErr {
    PyValueError::new_err(format!("Arrow C data interface: {e}"))
}

/// Moves the stream out of a producer's `arrow_array_stream` capsule.
fn import_stream(capsule: &Bound<'_, PyAny>) -> PyResult<RecordBatchStreamReader> {
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: the capsule is named `arrow_array_stream`, so by the PyCapsule interface it holds
    // a valid `ArrowArrayStream`; `from_raw` moves it out and leaves a released struct, which the
    // capsule's destructor then ignores.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) };
    RecordBatchStreamReader::try_new(stream).map_err(arrow_err)
}

/// Imports one record batch from a producer's `(arrow_schema, arrow_array)` capsule pair.
fn import_array(pair: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    let pair = pair.cast::<PyTuple>()?;
    let schema = pair.get_item(0)?;
    let array = pair.get_item(1)?;
    let schema = schema.cast::<PyCapsule>()?.pointer_checked(Some(SCHEMA))?;
    let array = array.cast::<PyCapsule>()?.pointer_checked(Some(ARRAY))?;
    // SAFETY: capsules named `arrow_schema` / `arrow_array` hold valid C data interface structs;
    // the schema is only borrowed, the array is moved out (its capsule keeps a released struct).
    let data = unsafe {
        let schema = &*schema.as_ptr().cast::<FFI_ArrowSchema>();
        let array = FFI_ArrowArray::from_raw(array.as_ptr().cast());
        from_ffi(array, schema)
    }
    .map_err(arrow_err)?;
    if !matches!(data.data_type(), DataType::Struct(_)) {
        return Err(PyTypeError::new_err(format!(
            "__arrow_c_array__ gave a {} array, not a struct array (a record batch)",
            data.data_type()
        )));
    }
    let array = StructArray::from(data);
    if array.null_count() > 0 {
        return Err(PyValueError::new_err(
            "a struct array with null rows is not a record batch",
        ));
    }
    Ok(RecordBatch::from(array))
}

fn schema_capsule<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyCapsule>> {
    let s = FFI_ArrowSchema::try_from(schema).map_err(arrow_err)?;
    PyCapsule::new_with_value(py, s, SCHEMA)
}

fn array_capsules<'py>(py: Python<'py>, batch: &RecordBatch) -> PyResult<Bound<'py, PyTuple>> {
    let data = StructArray::from(batch.clone()).into_data();
    let (array, schema) = to_ffi(&data).map_err(arrow_err)?;
    let schema = PyCapsule::new_with_value(py, schema, SCHEMA)?;
    let array = PyCapsule::new_with_value(py, array, ARRAY)?;
    PyTuple::new(py, [schema.into_any(), array.into_any()])
}

fn stream_capsule<'py>(
    py: Python<'py>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
    let stream = FFI_ArrowArrayStream::new(Box::new(reader));
    PyCapsule::new_with_value(py, stream, STREAM)
}

fn names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn refuse_requested_schema(requested: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    match requested {
        Some(r) if !r.is_none() => Err(PyTypeError::new_err(
            "weir Arrow data is exported with its own schema (requested_schema is not supported)",
        )),
        _ => Ok(()),
    }
}

/// An Arrow record batch held by weir (no pyarrow needed); any PyCapsule consumer takes it
/// without a copy: `pyarrow.record_batch(b)`, `polars.DataFrame(b)`.
#[pyclass(module = "weir._native", name = "ArrowBatch", frozen)]
pub struct PyArrowBatch(pub RecordBatch);

#[pymethods]
impl PyArrowBatch {
    /// Rows in the batch.
    #[getter]
    fn num_rows(&self) -> usize {
        self.0.num_rows()
    }
    /// Columns in the batch.
    #[getter]
    fn num_columns(&self) -> usize {
        self.0.num_columns()
    }
    /// Column names in order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        names(&self.0.schema())
    }
    fn __len__(&self) -> usize {
        self.0.num_rows()
    }
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a weir.ArrowBatch cannot be pickled (e.g. to a pool worker): install pyarrow \
             (its record batches pickle without copies) or convert with polars.DataFrame(batch)",
        ))
    }
    fn __repr__(&self) -> String {
        format!(
            "weir.ArrowBatch({} rows: {})",
            self.0.num_rows(),
            self.column_names().join(", ")
        )
    }
    /// The schema as an `arrow_schema` capsule.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.0.schema())
    }
    /// The batch as `(arrow_schema, arrow_array)` capsules (a struct array).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        refuse_requested_schema(requested_schema)?;
        array_capsules(py, &self.0)
    }
    /// The batch as a one-batch `arrow_array_stream` capsule.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        refuse_requested_schema(requested_schema)?;
        stream_capsule(py, self.0.schema(), vec![self.0.clone()])
    }
}

/// Record batches assembled without copying (what `Sink.to_arrow()` returns when pyarrow is
/// not installed); any PyCapsule consumer reads it: `polars.DataFrame(t)`, `pyarrow.table(t)`.
#[pyclass(module = "weir._native", name = "ArrowTable", frozen)]
pub struct PyArrowTable {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[pymethods]
impl PyArrowTable {
    /// Rows over every batch.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
    /// Column names in order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        names(&self.schema)
    }
    /// The batches, as `ArrowBatch` objects.
    fn batches(&self) -> Vec<PyArrowBatch> {
        self.batches.iter().cloned().map(PyArrowBatch).collect()
    }
    fn __len__(&self) -> usize {
        self.num_rows()
    }
    fn __repr__(&self) -> String {
        format!(
            "weir.ArrowTable({} rows in {} batches: {})",
            self.num_rows(),
            self.batches.len(),
            self.column_names().join(", ")
        )
    }
    /// The schema as an `arrow_schema` capsule.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }
    /// The table as an `arrow_array_stream` capsule.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        refuse_requested_schema(requested_schema)?;
        stream_capsule(py, Arc::clone(&self.schema), self.batches.clone())
    }
}

/// The record batches of an Arrow stream, read one at a time.
#[pyclass(module = "weir._native", name = "ArrowStream", frozen)]
pub struct PyArrowStream(Mutex<Option<RecordBatchStreamReader>>);

#[pymethods]
impl PyArrowStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyArrowBatch>> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| PyValueError::new_err("Arrow stream poisoned"))?;
        let Some(reader) = g.as_mut() else {
            return Ok(None);
        };
        // Reading may run the producer's code (a lazy query): without the GIL.
        let next = py.detach(|| reader.next());
        match next {
            Some(Ok(b)) => Ok(Some(PyArrowBatch(b))),
            Some(Err(e)) => Err(arrow_err(e)),
            None => {
                *g = None;
                Ok(None)
            }
        }
    }
}

/// Reads the record batches of any Arrow PyCapsule producer, one at a time: a fresh
/// `__arrow_c_stream__` export per call (or the single batch of `__arrow_c_array__`).
#[pyfunction]
pub fn arrow_stream(data: &Bound<'_, PyAny>) -> PyResult<PyArrowStream> {
    let py = data.py();
    if data.hasattr(pyo3::intern!(py, "__arrow_c_stream__"))? {
        let capsule = data.call_method1(pyo3::intern!(py, "__arrow_c_stream__"), (py.None(),))?;
        return Ok(PyArrowStream(Mutex::new(Some(import_stream(&capsule)?))));
    }
    let batch = import_batch(data)?;
    let schema = batch.0.schema();
    let reader = RecordBatchIterator::new([Ok(batch.0)], Arc::clone(&schema));
    let stream = FFI_ArrowArrayStream::new(Box::new(reader));
    let reader = RecordBatchStreamReader::try_new(stream).map_err(arrow_err)?;
    Ok(PyArrowStream(Mutex::new(Some(reader))))
}

/// One record batch from an `__arrow_c_array__` producer (a struct array).
#[pyfunction]
pub fn import_batch(data: &Bound<'_, PyAny>) -> PyResult<PyArrowBatch> {
    let py = data.py();
    if !data.hasattr(pyo3::intern!(py, "__arrow_c_array__"))? {
        return Err(PyTypeError::new_err(format!(
            "{} is not Arrow data (no __arrow_c_stream__ / __arrow_c_array__)",
            data.get_type().name()?
        )));
    }
    let pair = data.call_method1(pyo3::intern!(py, "__arrow_c_array__"), (py.None(),))?;
    Ok(PyArrowBatch(import_array(&pair)?))
}

/// Appends the record batches of `data` (an `ArrowBatch`, or any Arrow PyCapsule producer:
/// every batch of its stream) to `out`, without copying.
pub fn batches_of(data: &Bound<'_, PyAny>, out: &mut Vec<RecordBatch>) -> PyResult<()> {
    if let Ok(b) = data.cast::<PyArrowBatch>() {
        out.push(b.get().0.clone());
        return Ok(());
    }
    let stream = arrow_stream(data)?;
    let reader = stream.0.into_inner().ok().flatten();
    for b in reader.into_iter().flatten() {
        out.push(b.map_err(arrow_err)?);
    }
    Ok(())
}

/// Assembles `ArrowBatch` objects (or any Arrow data, imported) into one `ArrowTable` without
/// copying; every batch must have the first one's schema.
#[pyfunction]
pub fn arrow_table(items: Vec<Bound<'_, PyAny>>) -> PyResult<PyArrowTable> {
    let mut batches = Vec::with_capacity(items.len());
    for it in &items {
        batches_of(it, &mut batches)?;
    }
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => Arc::new(Schema::empty()),
    };
    if let Some(bad) = batches.iter().position(|b| b.schema() != schema) {
        return Err(PyValueError::new_err(format!(
            "batch {bad} has schema {:?}, the first has {:?}",
            batches[bad].schema(),
            schema
        )));
    }
    Ok(PyArrowTable { schema, batches })
}

/// Adds this module's classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArrowBatch>()?;
    m.add_class::<PyArrowTable>()?;
    m.add_class::<PyArrowStream>()?;
    m.add_function(wrap_pyfunction!(arrow_stream, m)?)?;
    m.add_function(wrap_pyfunction!(import_batch, m)?)?;
    m.add_function(wrap_pyfunction!(arrow_table, m)?)?;
    Ok(())
}
