//! The blueprint: a flat list of stage nodes, the edges wiring their ports, the ports left open
//! and the expression that computes the materialized value. Shared behind `Arc`, copied on write.

use crate::async_stage::AsyncLogic;
use crate::logic::{ErasedFlow, ErasedSink, ErasedSource, StageInfo};
use crate::router::RouterFactory;
use crate::{Attributes, GraphError, StageError};
use petgraph::graph::{DiGraph, NodeIndex};
use std::any::Any;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// A boxed materialized value.
pub type BoxMat = Box<dyn Any + Send>;

/// Creates a source logic and its materialized value.
pub type SourceFactory =
    Arc<dyn Fn(&StageInfo) -> Result<(Box<dyn ErasedSource>, BoxMat), StageError> + Send + Sync>;
/// Creates a flow logic and its materialized value.
pub type FlowFactory =
    Arc<dyn Fn(&StageInfo) -> Result<(Box<dyn ErasedFlow>, BoxMat), StageError> + Send + Sync>;
/// Creates a sink logic and its materialized value.
pub type SinkFactory =
    Arc<dyn Fn(&StageInfo) -> Result<(Box<dyn ErasedSink>, BoxMat), StageError> + Send + Sync>;
/// Creates an asynchronous logic and its materialized value.
pub type AsyncFactory =
    Arc<dyn Fn(&StageInfo) -> Result<(Box<dyn AsyncLogic>, BoxMat), StageError> + Send + Sync>;

/// The kind of logic a node runs.
#[derive(Clone)]
pub enum NodeKind {
    /// A synchronous source (fusable at the head of an island).
    Source(SourceFactory),
    /// A synchronous one-in-one-out flow (fusable).
    Flow(FlowFactory),
    /// A synchronous sink (fusable at the tail of an island).
    Sink(SinkFactory),
    /// An asynchronous stage with its own task and any number of ports.
    Async(AsyncFactory),
}

impl NodeKind {
    /// A short label for rendering.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Source(_) => "source",
            Self::Flow(_) => "flow",
            Self::Sink(_) => "sink",
            Self::Async(_) => "async",
        }
    }
}

/// One stage in a blueprint.
#[derive(Clone)]
pub struct Node {
    /// Operator name (e.g. `map`).
    pub name: String,
    /// What runs.
    pub kind: NodeKind,
    /// Attributes (boundary, parallelism, supervision...).
    pub attrs: Attributes,
    /// Number of input ports.
    pub inputs: usize,
    /// One router factory per output port (it knows the element type).
    pub outputs: Vec<Arc<dyn RouterFactory>>,
    /// Whether the stage may run as several subtasks.
    pub parallelizable: bool,
    /// Whether the channels after this stage carry exactly the consumer's demand (rate-decoupling
    /// stages: `buffer`, `conflate`, `expand`, `throttle`, `Source::queue`, `Balance`, the
    /// preferring merges).
    pub demand_outputs: bool,
    /// Whether the channel into this stage carries exactly its demand (test probes).
    pub demand_input: bool,
}

impl Node {
    /// A node with `inputs` inputs and the given outputs, parallelizable unless it is a source or sink.
    pub fn new(
        name: impl Into<String>,
        kind: NodeKind,
        inputs: usize,
        outputs: Vec<Arc<dyn RouterFactory>>,
    ) -> Self {
        let parallelizable = matches!(kind, NodeKind::Flow(_));
        Self {
            name: name.into(),
            kind,
            attrs: Attributes::default(),
            inputs,
            outputs,
            parallelizable,
            demand_outputs: false,
            demand_input: false,
        }
    }
    /// Sets whether the stage may run as several subtasks.
    pub fn with_parallelizable(mut self, p: bool) -> Self {
        self.parallelizable = p;
        self
    }
    /// Makes the channels after this stage demand-driven (see [`Node::demand_outputs`]).
    pub fn with_demand_outputs(mut self) -> Self {
        self.demand_outputs = true;
        self
    }
    /// Makes the channel into this stage demand-driven (see [`Node::demand_input`]).
    pub fn with_demand_input(mut self) -> Self {
        self.demand_input = true;
        self
    }
    /// The display name (the `name` attribute, else the operator name).
    pub fn display_name(&self) -> &str {
        self.attrs.name.as_deref().unwrap_or(&self.name)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.display_name())
            .field("kind", &self.kind.label())
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs.len())
            .field("attrs", &self.attrs)
            .finish()
    }
}

/// A port of a node: `(node index, port index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// Node index in the module.
    pub node: usize,
    /// Port index on that node.
    pub port: usize,
}

/// An edge from an output port to an input port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Output port.
    pub from: PortRef,
    /// Input port.
    pub to: PortRef,
}

/// Combines materialized values.
#[derive(Clone)]
pub enum MatExpr {
    /// `()`.
    Unit,
    /// The value of node `i`.
    Node(usize),
    /// Two values combined by a function.
    Combine(
        Box<MatExpr>,
        Box<MatExpr>,
        Arc<dyn Fn(BoxMat, BoxMat) -> BoxMat + Send + Sync>,
    ),
    /// A value mapped by a function.
    Map(Box<MatExpr>, Arc<dyn Fn(BoxMat) -> BoxMat + Send + Sync>),
    /// Many values combined by a function.
    Many(
        Vec<MatExpr>,
        Arc<dyn Fn(Vec<BoxMat>) -> BoxMat + Send + Sync>,
    ),
}

impl fmt::Debug for MatExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unit => f.write_str("Unit"),
            Self::Node(i) => write!(f, "Node({i})"),
            Self::Combine(a, b, _) => f.debug_tuple("Combine").field(a).field(b).finish(),
            Self::Map(a, _) => f.debug_tuple("Map").field(a).finish(),
            Self::Many(v, _) => f.debug_tuple("Many").field(v).finish(),
        }
    }
}

impl MatExpr {
    /// Shifts node indices by `offset` (after appending this module to another).
    pub fn offset(&mut self, offset: usize) {
        match self {
            Self::Unit => {}
            Self::Node(i) => *i += offset,
            Self::Combine(a, b, _) => {
                a.offset(offset);
                b.offset(offset);
            }
            Self::Map(a, _) => a.offset(offset),
            Self::Many(v, _) => v.iter_mut().for_each(|e| e.offset(offset)),
        }
    }

    /// Evaluates the expression, taking node values out of `slots`.
    pub fn eval(&self, slots: &mut [Option<BoxMat>]) -> Result<BoxMat, StageError> {
        Ok(match self {
            Self::Unit => Box::new(()),
            Self::Node(i) => slots.get_mut(*i).and_then(Option::take).ok_or_else(|| {
                StageError::internal(format!("materialized value of node {i} missing"))
            })?,
            Self::Combine(a, b, f) => {
                let a = a.eval(slots)?;
                let b = b.eval(slots)?;
                f(a, b)
            }
            Self::Map(a, f) => f(a.eval(slots)?),
            Self::Many(v, f) => {
                let vals = v
                    .iter()
                    .map(|e| e.eval(slots))
                    .collect::<Result<Vec<_>, _>>()?;
                f(vals)
            }
        })
    }
}

/// A blueprint fragment: nodes, internal edges, open ports and the materialized-value expression.
#[derive(Clone, Debug)]
pub struct Module {
    /// Stage nodes; the index is the stage's position.
    pub nodes: Vec<Node>,
    /// Internal edges.
    pub edges: Vec<Edge>,
    /// Open input ports, in shape order.
    pub inlets: Vec<PortRef>,
    /// Open output ports, in shape order.
    pub outlets: Vec<PortRef>,
    /// How to compute the materialized value.
    pub mat: MatExpr,
}

impl Module {
    /// An empty module.
    pub fn empty() -> Self {
        Self {
            nodes: Vec::new(),
            edges: Vec::new(),
            inlets: Vec::new(),
            outlets: Vec::new(),
            mat: MatExpr::Unit,
        }
    }

    /// A module of one node whose ports are all open and whose value is the node's value.
    pub fn single(node: Node) -> Self {
        let inlets = (0..node.inputs)
            .map(|port| PortRef { node: 0, port })
            .collect();
        let outlets = (0..node.outputs.len())
            .map(|port| PortRef { node: 0, port })
            .collect();
        Self {
            nodes: vec![node],
            edges: Vec::new(),
            inlets,
            outlets,
            mat: MatExpr::Node(0),
        }
    }

    /// Appends `other`'s nodes and edges; returns the index offset of its nodes.
    pub fn append(&mut self, other: &Self) -> usize {
        let off = self.nodes.len();
        self.nodes.extend(other.nodes.iter().cloned());
        self.edges.extend(other.edges.iter().map(|e| Edge {
            from: PortRef {
                node: e.from.node + off,
                port: e.from.port,
            },
            to: PortRef {
                node: e.to.node + off,
                port: e.to.port,
            },
        }));
        off
    }

    /// Position-qualified name of node `i` (`name#i`).
    pub fn node_path(&self, i: usize) -> String {
        self.nodes
            .get(i)
            .map_or_else(|| format!("?#{i}"), |n| format!("{}#{i}", n.display_name()))
    }

    /// Checks that every port is wired exactly once (open ports count as wired), that no
    /// stage has an out-of-range parameter, and that there is no cycle.
    pub fn validate(&self) -> Result<(), GraphError> {
        self.validate_parameters()?;
        self.validate_uids()?;
        let mut ins: Vec<Vec<u32>> = self.nodes.iter().map(|n| vec![0; n.inputs]).collect();
        let mut outs: Vec<Vec<u32>> = self
            .nodes
            .iter()
            .map(|n| vec![0; n.outputs.len()])
            .collect();
        let bump =
            |v: &mut Vec<Vec<u32>>, p: PortRef, dir: &'static str| -> Result<(), GraphError> {
                let slot = v
                    .get_mut(p.node)
                    .and_then(|n| n.get_mut(p.port))
                    .ok_or_else(|| GraphError::UnknownNode(format!("{dir} port {p:?}")))?;
                *slot += 1;
                Ok(())
            };
        for e in &self.edges {
            bump(&mut outs, e.from, "output")?;
            bump(&mut ins, e.to, "input")?;
        }
        for p in &self.inlets {
            bump(&mut ins, *p, "input")?;
        }
        for p in &self.outlets {
            bump(&mut outs, *p, "output")?;
        }
        for (dir, counts) in [("input", &ins), ("output", &outs)] {
            for (node, ports) in counts.iter().enumerate() {
                for (port, c) in ports.iter().enumerate() {
                    if *c == 0 {
                        return Err(GraphError::PortNotConnected {
                            node: self.node_path(node),
                            direction: dir,
                            port,
                        });
                    }
                    if *c > 1 {
                        return Err(GraphError::PortWiredTwice {
                            node: self.node_path(node),
                            direction: dir,
                            port,
                        });
                    }
                }
            }
        }
        let g = self.to_petgraph();
        petgraph::algo::toposort(&g, None)
            .map_err(|c| GraphError::Cycle(self.node_path(c.node_id().index())))?;
        Ok(())
    }

    /// Reports the first stage whose constructor or attributes recorded an invalid parameter,
    /// or whose parallelism exceeds the key groups of the hash edge feeding it.
    pub fn validate_parameters(&self) -> Result<(), GraphError> {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(reason) = &n.attrs.invalid {
                return Err(GraphError::InvalidParameter {
                    node: self.node_path(i),
                    reason: reason.clone(),
                });
            }
        }
        for e in &self.edges {
            let hashed = self.nodes[e.from.node].outputs[e.from.port].requested()
                == Some(crate::EdgeKind::Hash);
            let p = self.nodes[e.to.node].attrs.parallelism.unwrap_or(1);
            if hashed && p > crate::MAX_KEY_GROUPS {
                return Err(GraphError::InvalidParameter {
                    node: self.node_path(e.to.node),
                    reason: format!(
                        "parallelism {p} behind a hash edge exceeds the {} key groups",
                        crate::MAX_KEY_GROUPS
                    ),
                });
            }
        }
        Ok(())
    }

    /// The blueprint as a petgraph DAG (node weight = node index, edge weight = the edge).
    pub fn to_petgraph(&self) -> DiGraph<usize, Edge> {
        let mut g = DiGraph::with_capacity(self.nodes.len(), self.edges.len());
        for i in 0..self.nodes.len() {
            g.add_node(i);
        }
        for e in &self.edges {
            g.add_edge(NodeIndex::new(e.from.node), NodeIndex::new(e.to.node), *e);
        }
        g
    }

    /// Renders the blueprint as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let p = n.attrs.parallelism.unwrap_or(1);
            let par = if p > 1 {
                format!(" x{p}")
            } else {
                String::new()
            };
            let uid = n
                .attrs
                .uid
                .as_ref()
                .map_or_else(String::new, |u| format!(" uid={u}"));
            let _ = writeln!(s, "    n{i}[\"{}{par}{uid}\"]", escape(n.display_name()));
        }
        for e in &self.edges {
            let arrow = if self.nodes[e.from.node].attrs.async_boundary {
                "-.->"
            } else {
                "-->"
            };
            let _ = writeln!(s, "    n{} {arrow} n{}", e.from.node, e.to.node);
        }
        s
    }

    /// Renders the blueprint as Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph weir {\n    rankdir=LR;\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                s,
                "    n{i} [label=\"{}\", shape={}];",
                escape(n.display_name()),
                if matches!(n.kind, NodeKind::Async(_)) {
                    "box"
                } else {
                    "ellipse"
                }
            );
        }
        for e in &self.edges {
            let style = if self.nodes[e.from.node].attrs.async_boundary {
                " [style=dashed]"
            } else {
                ""
            };
            let _ = writeln!(s, "    n{} -> n{}{style};", e.from.node, e.to.node);
        }
        s.push_str("}\n");
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('"', "'")
}
