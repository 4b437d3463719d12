//! Materialized values of Python graphs and their conversion to Python objects.

use crate::obj::PyObj;
use weir_engine::UniqueKillSwitch;
use weir_graph::SinkFuture;

/// The materialized value of every Python blueprint: a small tree of Rust values that becomes a
/// Python object once the graph is started.
pub enum MatValue {
    /// Nothing (`None` in Python).
    Unit,
    /// The future result of a sink (a `weir.SinkFuture` in Python).
    Future(SinkFuture<PyObj>),
    /// A kill switch of one run.
    KillSwitch(UniqueKillSwitch),
    /// Two values kept with `keep="both"`.
    Pair(Box<MatValue>, Box<MatValue>),
    /// The values selected from a graph builder's components.
    Many(Vec<MatValue>),
    /// A handle made into a Python object when the run starts (queues, cancellables).
    Lazy(Box<dyn FnOnce(pyo3::Python<'_>) -> pyo3::PyResult<pyo3::Py<pyo3::PyAny>> + Send>),
}

impl std::fmt::Debug for MatValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unit => f.write_str("Unit"),
            Self::Future(_) => f.write_str("Future"),
            Self::KillSwitch(_) => f.write_str("KillSwitch"),
            Self::Pair(a, b) => write!(f, "Pair({a:?}, {b:?})"),
            Self::Many(v) => write!(f, "Many({v:?})"),
            Self::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

/// How two materialized values combine when blueprints are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepMode {
    /// The left (upstream) value.
    Left,
    /// The right (downstream) value.
    Right,
    /// Both, as a pair.
    Both,
    /// Neither.
    None,
}

impl KeepMode {
    /// Parses `"left" | "right" | "both" | "none"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "left" => Some(Self::Left),
            "right" => Some(Self::Right),
            "both" => Some(Self::Both),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Combines two values.
    pub fn combine(self, a: MatValue, b: MatValue) -> MatValue {
        match self {
            Self::Left => a,
            Self::Right => b,
            Self::Both => MatValue::Pair(Box::new(a), Box::new(b)),
            Self::None => MatValue::Unit,
        }
    }
}
