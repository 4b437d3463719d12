//! `weir.cluster` for Python jobs: a node's place in a job over nodes (`join`, the Rust
//! `JobNode`), the exchange that moves each element to the node owning its key (the Rust
//! `exchange`, elements crossing nodes in the key and value codec, never as pickles), the node's
//! part in the job's checkpoints (`run(cluster=node)`), and running a program as a local
//! cluster of processes (`run_local`, the Rust `LocalCluster`), and its controls (`status`,
//! `cancel`, `wait_stopped`, `savepoint`, the Rust `control`).

use super::flow;
use super::topics::{PyTopic, topic_err};
use crate::codec::{self, Codec};
use crate::dsl::PyBlueprint;
use crate::errors::WeirError;
use crate::obj::{PyObj, user_error_on};
use crate::pyfn::PyFn;
use crate::stages::{PyKey, PyOp, convert, py_flow, unit_mat};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use weir_cluster::control;
use weir_cluster::exchange::JobNodes;
use weir_cluster::job::{JobNode, LocalCluster, NodeSettings};
use weir_cluster::topic::{TopicConfig, TopicNode};
use weir_engine::CheckpointConfig;
use weir_graph::StageError;

/// An element on its way to another node: its owner and its value in the value codec.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Wire {
    owner: u32,
    bytes: Vec<u8>,
}

/// `x` in the value codec, or a `TypeError` naming `op` and the element when it cannot cross
/// nodes.
pub(crate) fn encode_value(py: Python<'_>, x: &PyObj, op: &str) -> Result<Vec<u8>, StageError> {
    codec::encode(x.0.bind(py), Codec::Value).map_err(|_| {
        let ty = x.0.bind(py).get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
        let msg = format!(
            "{op}: a {ty} cannot cross nodes: elements cross as built-in values (None, bool, int, float, str, bytes, and tuples, lists and dicts of them), never as pickles"
        );
        user_error_on(py, PyTypeError::new_err(msg), Some(x))
    })
}

/// The Python value of value-codec `bytes`.
pub(crate) fn decode_value(py: Python<'_>, bytes: &[u8]) -> Result<PyObj, StageError> {
    codec::decode(py, bytes)
        .map(|o| PyObj(o.unbind()))
        .map_err(|e| crate::obj::user_error(py, e))
}

fn cluster_err(e: impl std::fmt::Display) -> PyErr {
    WeirError::new_err(e.to_string())
}

/// This process's node of a job over nodes.
#[pyclass(module = "weir._native", name = "ClusterNode", frozen)]
pub struct PyClusterNode {
    settings: NodeSettings,
    nodes: JobNodes,
    job: Mutex<Option<JobNode>>,
    restore_id: u64,
    exchanges: AtomicU32,
    /// The node's topics shared with the other nodes (started on first use).
    topics: OnceLock<TopicNode>,
}

impl PyClusterNode {
    /// The node's checkpoints as part of the job's (restore point copied in, commit hook on).
    pub fn checkpoints(&self, py: Python<'_>, cfg: CheckpointConfig) -> PyResult<CheckpointConfig> {
        let rt = crate::run::runtime()?;
        let job = self
            .job
            .lock()
            .map_err(|_| PyRuntimeError::new_err("the cluster node is poisoned"))?;
        let job = job
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the cluster node has finished"))?;
        py.detach(|| rt.block_on(job.checkpoints(cfg)))
            .map_err(cluster_err)
    }
}

/// `weir.cluster.join(node=, nodes=, cluster_dir=, epoch=)`: this process's node, from the
/// arguments or (when they are left out) the environment a node agent or local cluster sets;
/// `None` when neither says where it stands (the script runs on its own).
#[pyfunction]
#[pyo3(signature = (node = None, nodes = None, cluster_dir = None, epoch = None))]
pub fn cluster_join(
    py: Python<'_>,
    node: Option<usize>,
    nodes: Option<usize>,
    cluster_dir: Option<PathBuf>,
    epoch: Option<u64>,
) -> PyResult<Option<PyClusterNode>> {
    let settings = match (node, nodes, cluster_dir, epoch) {
        (Some(node), Some(nodes), Some(dir), Some(epoch)) => {
            NodeSettings::local(node, nodes, dir, epoch)
        }
        (None, None, None, None) => match NodeSettings::from_env().map_err(cluster_err)? {
            Some(s) => s,
            None => return Ok(None),
        },
        _ => {
            return Err(PyValueError::new_err(
                "join: give node, nodes, cluster_dir and epoch together, or none of them",
            ));
        }
    };
    crate::ops_env::ensure_logging(py)?;
    let rt = crate::run::runtime()?;
    let s = settings.clone();
    let job = py
        .detach(|| rt.block_on(JobNode::start(&s)))
        .map_err(cluster_err)?;
    Ok(Some(PyClusterNode {
        settings,
        nodes: job.nodes().clone(),
        restore_id: job.restore_id(),
        job: Mutex::new(Some(job)),
        exchanges: AtomicU32::new(0),
        topics: OnceLock::new(),
    }))
}

#[pymethods]
impl PyClusterNode {
    /// This node's index.
    #[getter]
    fn node(&self) -> usize {
        self.settings.node
    }
    /// How many nodes run the job.
    #[getter]
    fn nodes(&self) -> usize {
        self.settings.nodes
    }
    /// The attempt.
    #[getter]
    fn epoch(&self) -> u64 {
        self.settings.epoch
    }
    /// The checkpoint the job restarts from (0: none).
    #[getter]
    fn restore_id(&self) -> u64 {
        self.restore_id
    }
    /// The node owning `key` (its key group's among the job's nodes, as `exchange` routes).
    fn owner(&self, py: Python<'_>, key: Py<PyAny>) -> PyResult<usize> {
        let k = PyKey::new(py, PyObj(key), Codec::Key)
            .map_err(|(e, _)| PyTypeError::new_err(e.to_string()))?;
        Ok(owner_of(&k, self.nodes.len()))
    }
    /// A flow sending each element to the node owning `key(element)`, emitting what every node
    /// sent to this one. Every node must build its exchanges in the same order (each gets the
    /// next id, the same on every node).
    fn exchange(&self, key: Py<PyAny>) -> PyResult<PyBlueprint> {
        let id = self.exchanges.fetch_add(1, Ordering::Relaxed) + 1;
        let n = self.nodes.len();
        let key = Arc::new(PyFn::new(key));
        let encode = py_flow(
            "exchange-encode",
            Arc::new(move |_py, _info| {
                let key = Arc::clone(&key);
                Box::new(convert(move |py, x: PyObj| {
                    let k = key.call1(&x)?;
                    let k = PyKey::new(py, k, Codec::Key)
                        .map_err(|(e, _)| user_error_on(py, e, Some(&x)))?;
                    let bytes = encode_value(py, &x, "exchange")?;
                    Ok(Wire {
                        owner: u32::try_from(owner_of(&k, n)).unwrap_or(0),
                        bytes,
                    })
                })) as Box<dyn PyOp<PyObj, Wire>>
            }),
        );
        let across = weir_cluster::exchange::exchange(&self.nodes, id, |w: &Wire| w.owner as usize)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let decode = py_flow(
            "exchange-decode",
            Arc::new(|_py, _info| {
                Box::new(convert(|py, w: Wire| decode_value(py, &w.bytes)))
                    as Box<dyn PyOp<Wire, PyObj>>
            }),
        );
        Ok(flow(encode.via(unit_mat(across)).via(decode)))
    }
    /// The topic `name` shared with every node of the job: what its sinks publish on any node
    /// reaches its sources on every node, backpressured across nodes.
    fn topic(&self, name: &str) -> PyResult<PyTopic> {
        let node = match self.topics.get() {
            Some(n) => n,
            None => {
                let handle = crate::run::runtime()?.handle();
                let _guard = handle.enter();
                let me = self.nodes.names.get(self.nodes.node).ok_or_else(|| {
                    PyRuntimeError::new_err("the cluster node is not among the job's nodes")
                })?;
                let cfg = TopicConfig::new(me, self.nodes.names.clone());
                // Starting only spawns tasks; the GIL held meanwhile keeps it to one start.
                let started = TopicNode::start(Arc::clone(&self.nodes.transport), cfg)
                    .map_err(cluster_err)?;
                let _ = self.topics.set(started);
                self.topics
                    .get()
                    .ok_or_else(|| PyRuntimeError::new_err("the topic node did not start"))?
            }
        };
        Ok(PyTopic::new(node.topic(name).map_err(topic_err)?))
    }
    /// Waits until every node's run ended, then closes this node's endpoint.
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        let job = self
            .job
            .lock()
            .map_err(|_| PyRuntimeError::new_err("the cluster node is poisoned"))?
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the cluster node has finished"))?;
        let rt = crate::run::runtime()?;
        py.detach(|| rt.block_on(job.finish())).map_err(cluster_err)
    }
    fn __repr__(&self) -> String {
        format!(
            "ClusterNode(node={}, nodes={}, epoch={})",
            self.settings.node, self.settings.nodes, self.settings.epoch
        )
    }
}

fn owner_of(k: &PyKey, nodes: usize) -> usize {
    weir_graph::subtask_for_key_group(weir_operators::keyed::key_group_of(k), nodes.max(1))
}

/// `weir.cluster.run_local(nodes, argv, dir, max_restarts)`: runs `argv` as `nodes` processes
/// of one job (each with its place in the environment), restarting every one when one dies,
/// until every process of one attempt exited 0; `(epoch, restarts, stdout of each node)`.
#[pyfunction]
#[pyo3(signature = (nodes, argv, dir, max_restarts = 1000))]
pub fn cluster_run_local(
    py: Python<'_>,
    nodes: usize,
    argv: Vec<String>,
    dir: PathBuf,
    max_restarts: u32,
) -> PyResult<(u64, u32, Vec<String>)> {
    let (exe, args) = argv
        .split_first()
        .ok_or_else(|| PyValueError::new_err("run_local: argv is empty"))?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| cluster_err(format!("{}: {e}", logs.display())))?;
    let mut lc = LocalCluster::new(nodes, &dir);
    lc.max_restarts = max_restarts;
    let log =
        |s: &NodeSettings, what: &str| logs.join(format!("e{:04}-node-{}.{what}", s.epoch, s.node));
    let outcome = py
        .detach(|| {
            lc.run(|s| {
                std::process::Command::new(exe)
                    .args(args)
                    .envs(s.env())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::fs::File::create(log(s, "stdout"))?)
                    .stderr(std::fs::File::create(log(s, "stderr"))?)
                    .spawn()
            })
        })
        .map_err(cluster_err)?;
    let outs = (0..nodes)
        .map(|i| {
            let s = NodeSettings::local(i, nodes, &dir, outcome.epoch);
            std::fs::read_to_string(log(&s, "stdout")).unwrap_or_default()
        })
        .collect();
    Ok((outcome.epoch, outcome.restarts, outs))
}

/// `weir.cluster.status(dir)`: the local cluster job in `dir` as its directory shows it (the
/// Rust `control::status`), as a dict.
#[pyfunction]
pub fn cluster_status(py: Python<'_>, dir: PathBuf) -> PyResult<Py<PyDict>> {
    let rt = crate::run::runtime()?;
    let s = py
        .detach(|| rt.block_on(control::status(&dir)))
        .map_err(cluster_err)?;
    let d = PyDict::new(py);
    d.set_item("state", s.state)?;
    d.set_item("epoch", s.epoch)?;
    d.set_item("restarts", s.restarts)?;
    d.set_item("cancel_requested", s.cancel_requested)?;
    d.set_item("latest_complete", s.latest_complete)?;
    d.set_item("output_complete", s.output_complete)?;
    let nodes = PyList::empty(py);
    for n in s.nodes {
        let nd = PyDict::new(py);
        nd.set_item("node", n.node)?;
        nd.set_item("pid", n.pid)?;
        nd.set_item("alive", n.alive)?;
        nd.set_item("addr", n.addr)?;
        nd.set_item("done", n.done)?;
        nd.set_item("stored_checkpoints", n.stored_checkpoints)?;
        nodes.append(nd)?;
    }
    d.set_item("nodes", nodes)?;
    Ok(d.unbind())
}

/// `weir.cluster.cancel(dir)`: asks the supervisor of the job in `dir` to stop every node.
#[pyfunction]
pub fn cluster_cancel(dir: PathBuf) -> PyResult<()> {
    control::request_cancel(&dir).map_err(cluster_err)
}

/// `weir.cluster.wait_stopped(dir, timeout)`: the job's state once it no longer runs, or
/// `running` after `timeout` seconds.
#[pyfunction]
pub fn cluster_wait_stopped(py: Python<'_>, dir: PathBuf, timeout: f64) -> PyResult<String> {
    if !timeout.is_finite() || timeout < 0.0 {
        return Err(PyValueError::new_err(format!(
            "wait_stopped: timeout must be a non-negative number of seconds, got {timeout}"
        )));
    }
    let limit = std::time::Duration::from_secs_f64(timeout);
    py.detach(|| control::wait_stopped(&dir, limit))
        .map_err(cluster_err)
}

/// `weir.cluster.savepoint(dir, target)`: copies the newest checkpoint every node of the job
/// in `dir` completed into the folder `target`; `(checkpoint, nodes, files, bytes)`.
#[pyfunction]
pub fn cluster_savepoint(
    py: Python<'_>,
    dir: PathBuf,
    target: PathBuf,
) -> PyResult<(u64, usize, usize, u64)> {
    let rt = crate::run::runtime()?;
    let sp = py
        .detach(|| rt.block_on(control::savepoint(&dir, &target)))
        .map_err(cluster_err)?;
    Ok((sp.checkpoint, sp.nodes, sp.files, sp.bytes))
}

/// Adds `ClusterNode`, `cluster_join`, `cluster_run_local` and the job controls.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClusterNode>()?;
    m.add_function(wrap_pyfunction!(cluster_join, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_run_local, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_status, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_cancel, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_wait_stopped, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_savepoint, m)?)?;
    Ok(())
}
