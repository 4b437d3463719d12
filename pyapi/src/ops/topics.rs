//! `weir.Topics` / `weir.Topic`: the topics of `weir_operators::hub` over Python values, and
//! (through `ClusterNode.topic`) the same topics shared with the other nodes of a job by
//! `weir_cluster::topic`. Elements travel in the value codec (encoded once by the publishing
//! stage, decoded by each subscribing stage, both on the run's dispatcher), so a subscriber on
//! this node and one on another node see the same values, and nothing crosses as a pickle.

use super::cluster::{decode_value, encode_value};
use crate::dsl::{Bp, PyBlueprint, wrap};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::stages::{PyOp, convert, py_flow};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use std::time::Duration;
use weir_operators::hub::{Topic, TopicError, Topics};

/// A Python value in the value codec, as a topic carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Encoded(Vec<u8>);

/// The Python exception of a topic error.
pub fn topic_err(e: TopicError) -> PyErr {
    match e {
        TopicError::WrongType { .. } => PyTypeError::new_err(e.to_string()),
        TopicError::Overrun { .. } => PyValueError::new_err(e.to_string()),
    }
}

/// One topic of Python values.
#[pyclass(module = "weir._native", name = "Topic", frozen)]
pub struct PyTopic {
    topic: Topic<Encoded>,
}

impl PyTopic {
    /// Wraps `topic`.
    pub fn new(topic: Topic<Encoded>) -> Self {
        Self { topic }
    }
}

#[pymethods]
impl PyTopic {
    /// The topic's name.
    #[getter]
    fn name(&self) -> String {
        self.topic.name()
    }
    /// A sink publishing each element to the topic (encoded in the value codec).
    fn sink(&self) -> PyBlueprint {
        let encode = py_flow(
            "to_topic-encode",
            Arc::new(|_py, _info| {
                Box::new(convert(|py, x: PyObj| {
                    encode_value(py, &x, "to_topic").map(Encoded)
                })) as Box<dyn PyOp<PyObj, Encoded>>
            }),
        );
        let s = encode.to_mat(self.topic.sink(), |_, _| MatValue::Unit);
        wrap(Bp::Sink(s))
    }
    /// A source emitting what is published to the topic after it attached.
    fn source(&self) -> PyBlueprint {
        let decode = py_flow(
            "topic-decode",
            Arc::new(|_py, _info| {
                Box::new(convert(|py, e: Encoded| decode_value(py, &e.0)))
                    as Box<dyn PyOp<Encoded, PyObj>>
            }),
        );
        let s = self
            .topic
            .source()
            .via(decode)
            .map_materialized_value(|()| MatValue::Unit);
        wrap(Bp::Source(s))
    }
    /// Closes the topic: subscribers complete after what they hold, publishers stop.
    fn close(&self) {
        self.topic.close();
    }
    /// Whether the topic was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.topic.is_closed()
    }
    /// The topic's counters as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.topic.stats();
        let d = PyDict::new(py);
        d.set_item("subscribers", s.subscribers)?;
        d.set_item("remote_readers", s.remote_readers)?;
        d.set_item("published", s.published)?;
        d.set_item("unheard", s.unheard)?;
        d.set_item("received", s.received)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("buffered", s.buffered)?;
        Ok(d)
    }
    /// Waits (the GIL released) until the topic has `subscribers` local subscribers and
    /// `remote_readers` peer readers, or `timeout` seconds passed: whether they came.
    #[pyo3(signature = (subscribers = 0, remote_readers = 0, timeout = None))]
    fn wait_for_readers(
        &self,
        py: Python<'_>,
        subscribers: usize,
        remote_readers: usize,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "wait_for_readers: timeout must be a finite number of seconds >= 0, got {t}"
                )));
            }
        };
        let rt = crate::run::runtime()?;
        let topic = self.topic.clone();
        Ok(py.detach(move || {
            rt.block_on(async move {
                let wait = topic.wait_for_readers(subscribers, remote_readers);
                match timeout {
                    None => {
                        wait.await;
                        true
                    }
                    Some(t) => tokio::time::timeout(t, wait).await.is_ok(),
                }
            })
        }))
    }
    fn __repr__(&self) -> String {
        format!("Topic({:?})", self.topic.name())
    }
}

/// A registry of topics in this process.
#[pyclass(module = "weir._native", name = "Topics", frozen)]
pub struct PyTopics {
    topics: Topics,
}

#[pymethods]
impl PyTopics {
    #[new]
    #[pyo3(signature = (buffer = 256))]
    fn new(buffer: i64) -> PyResult<Self> {
        let buffer = usize::try_from(buffer).unwrap_or(0);
        Ok(Self {
            topics: Topics::with_buffer(buffer).map_err(graph_err)?,
        })
    }
    /// The topic `name` (made on first use).
    fn topic(&self, name: &str) -> PyResult<PyTopic> {
        Ok(PyTopic::new(self.topics.topic(name).map_err(topic_err)?))
    }
    /// The names of the topics made so far.
    fn names(&self) -> Vec<String> {
        self.topics.names()
    }
    /// The elements each ring of a topic buffers.
    #[getter]
    fn buffer(&self) -> usize {
        self.topics.buffer()
    }
}

/// Registers the classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTopic>()?;
    m.add_class::<PyTopics>()?;
    Ok(())
}
