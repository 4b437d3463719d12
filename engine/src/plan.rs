//! The physical plan: which stages fuse into which island, at what parallelism, and how the
//! edges between islands distribute rows. Pure data, rendered as Mermaid for snapshot tests.

use std::fmt::Write as _;
use std::sync::Arc;
use weir_graph::{EdgeKind, ExecutorId, GraphError, Module, NodeKind, PortRef};

/// Whether an island runs a fused chain of synchronous stages or one asynchronous stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IslandKind {
    /// Source/flow/sink stages called directly, one batch at a time.
    Chain,
    /// One asynchronous stage (junction, timer, `map_async`...).
    Async,
}

/// One island of the plan.
#[derive(Debug, Clone)]
pub struct IslandPlan {
    /// Island index.
    pub id: usize,
    /// Chain or async.
    pub kind: IslandKind,
    /// Node indices in chain order (one node for async islands).
    pub nodes: Vec<usize>,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Input ports of the island, in order: the node port each one feeds.
    pub inputs: Vec<PortRef>,
    /// Output ports of the island, in order: the node port each one drains.
    pub outputs: Vec<PortRef>,
    /// The executor the island runs on.
    pub executor: ExecutorId,
}

/// Where an edge of the plan starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Port `port` (index into the island's inputs or outputs) of island `island`.
    Island {
        /// Island index.
        island: usize,
        /// Port index on the island.
        port: usize,
    },
    /// An open port of the module, bridged to a channel given at materialization.
    External(usize),
}

/// A channel edge between islands.
#[derive(Debug, Clone)]
pub struct PlanEdge {
    /// Producer side.
    pub from: Endpoint,
    /// Consumer side.
    pub to: Endpoint,
    /// Distribution over subtasks.
    pub kind: EdgeKind,
    /// Channel capacity in rows; on a demand-driven edge, the most rows the consumer asks for
    /// at once (its batch size).
    pub buffer_rows: usize,
    /// Whether the channel carries exactly the consumer's demand instead of a capacity: the
    /// producer island holds a stage with [`weir_graph::Node::demand_outputs`] or the consumer
    /// has [`weir_graph::Node::demand_input`].
    pub on_demand: bool,
}

/// The physical plan of a module.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    /// The blueprint.
    pub module: Arc<Module>,
    /// Islands in creation order.
    pub islands: Vec<IslandPlan>,
    /// Channel edges.
    pub edges: Vec<PlanEdge>,
    /// Island owning each node.
    pub island_of: Vec<usize>,
    /// Parallelism of each node.
    pub parallelism: Vec<usize>,
}

/// Plan settings.
#[derive(Debug, Clone, Copy)]
pub struct PlanConfig {
    /// Channel capacity in rows when a stage does not set one; `None`: [`BUFFER_BATCHES`]
    /// batches of the larger batch size of the edge's two stages.
    pub buffer_rows: Option<usize>,
    /// Rows per batch of stages that do not set their own.
    pub batch_size: usize,
    /// The executor of stages that do not set their own.
    pub executor: ExecutorId,
}

/// How many batches a channel holds when neither the run nor the stage sets its capacity.
pub const BUFFER_BATCHES: usize = 8;

impl PlanConfig {
    /// The default capacity of a channel between stages whose batch sizes are given.
    pub fn buffer_rows_between(&self, from_batch: Option<usize>, to_batch: Option<usize>) -> usize {
        self.buffer_rows.unwrap_or_else(|| {
            let b = from_batch
                .unwrap_or(self.batch_size)
                .max(to_batch.unwrap_or(self.batch_size));
            BUFFER_BATCHES * b.max(1)
        })
    }
    /// The default capacity of a channel with one known end.
    pub fn buffer_rows_at(&self, batch: Option<usize>) -> usize {
        self.buffer_rows_between(batch, None)
    }
}

fn is_sync(k: &NodeKind) -> bool {
    !matches!(k, NodeKind::Async(_))
}

/// Builds the physical plan: validates, assigns parallelism, fuses chains, derives edge kinds.
pub fn plan(module: Arc<Module>, cfg: PlanConfig) -> Result<PhysicalPlan, GraphError> {
    module.validate()?;
    let n = module.nodes.len();
    let mut par = Vec::with_capacity(n);
    for (i, node) in module.nodes.iter().enumerate() {
        let p = node.attrs.parallelism.unwrap_or(1);
        if p > 1 && !node.parallelizable {
            return Err(GraphError::InvalidStage {
                node: module.node_path(i),
                reason: format!(
                    "parallelism {p} requested but the stage runs as a single instance"
                ),
            });
        }
        par.push(p);
    }
    // Edge lookup by port.
    let mut out_edge: Vec<Vec<Option<usize>>> = module
        .nodes
        .iter()
        .map(|nd| vec![None; nd.outputs.len()])
        .collect();
    let mut in_edge: Vec<Vec<Option<usize>>> = module
        .nodes
        .iter()
        .map(|nd| vec![None; nd.inputs])
        .collect();
    for (ei, e) in module.edges.iter().enumerate() {
        out_edge[e.from.node][e.from.port] = Some(ei);
        in_edge[e.to.node][e.to.port] = Some(ei);
    }
    let edge_kind = |ei: usize| -> EdgeKind {
        let e = module.edges[ei];
        let (pu, pv) = (par[e.from.node], par[e.to.node]);
        let requested = module.nodes[e.from.node].outputs[e.from.port].requested();
        match requested {
            _ if pv == 1 && pu == 1 => EdgeKind::Forward,
            Some(k) => k,
            None if pu == pv => EdgeKind::Forward,
            None => EdgeKind::Rebalance,
        }
    };
    let executor = |i: usize| module.nodes[i].attrs.executor.unwrap_or(cfg.executor);
    let fusable = |ei: usize| -> bool {
        let e = module.edges[ei];
        let (u, v) = (&module.nodes[e.from.node], &module.nodes[e.to.node]);
        is_sync(&u.kind)
            && is_sync(&v.kind)
            && !u.attrs.async_boundary
            && executor(e.from.node) == executor(e.to.node)
            && par[e.from.node] == par[e.to.node]
            && edge_kind(ei) == EdgeKind::Forward
    };
    let mut island_of = vec![usize::MAX; n];
    let mut islands: Vec<IslandPlan> = Vec::new();
    // Topological order keeps island numbering stable and readable.
    let order = petgraph::algo::toposort(&module.to_petgraph(), None)
        .map_err(|c| GraphError::Cycle(module.node_path(c.node_id().index())))?;
    for idx in order {
        let i = idx.index();
        if island_of[i] != usize::MAX {
            continue;
        }
        let node = &module.nodes[i];
        let id = islands.len();
        if !is_sync(&node.kind) {
            island_of[i] = id;
            islands.push(IslandPlan {
                id,
                kind: IslandKind::Async,
                nodes: vec![i],
                parallelism: par[i],
                inputs: (0..node.inputs)
                    .map(|port| PortRef { node: i, port })
                    .collect(),
                outputs: (0..node.outputs.len())
                    .map(|port| PortRef { node: i, port })
                    .collect(),
                executor: executor(i),
            });
            continue;
        }
        // A chain starts at a sync node whose input edge is not fusable.
        let mut chain = vec![i];
        island_of[i] = id;
        let mut cur = i;
        while let Some(Some(ei)) = out_edge[cur].first() {
            if !fusable(*ei) {
                break;
            }
            let next = module.edges[*ei].to.node;
            island_of[next] = id;
            chain.push(next);
            cur = next;
        }
        let first = &module.nodes[chain[0]];
        let last_i = *chain.last().unwrap_or(&i);
        let last = &module.nodes[last_i];
        islands.push(IslandPlan {
            id,
            kind: IslandKind::Chain,
            nodes: chain.clone(),
            parallelism: par[i],
            inputs: (0..first.inputs)
                .map(|port| PortRef {
                    node: chain[0],
                    port,
                })
                .collect(),
            outputs: (0..last.outputs.len())
                .map(|port| PortRef { node: last_i, port })
                .collect(),
            executor: executor(i),
        });
    }
    // Channel edges: every non-fused edge plus the module's open ports.
    let mut edges = Vec::new();
    let port_of = |islands: &[IslandPlan], p: PortRef, input: bool| -> Endpoint {
        let isl = &islands[island_of[p.node]];
        let ports = if input { &isl.inputs } else { &isl.outputs };
        let port = ports.iter().position(|q| *q == p).unwrap_or(0);
        Endpoint::Island {
            island: isl.id,
            port,
        }
    };
    for (ei, e) in module.edges.iter().enumerate() {
        if island_of[e.from.node] == island_of[e.to.node] {
            continue;
        }
        let (from, to) = (
            &module.nodes[e.from.node].attrs,
            &module.nodes[e.to.node].attrs,
        );
        let on_demand = islands[island_of[e.from.node]]
            .nodes
            .iter()
            .any(|&k| module.nodes[k].demand_outputs)
            || module.nodes[e.to.node].demand_input;
        let buffer_rows = if on_demand {
            to.batch_size.unwrap_or(cfg.batch_size).max(1)
        } else {
            to.buffer_rows
                .unwrap_or_else(|| cfg.buffer_rows_between(from.batch_size, to.batch_size))
        };
        edges.push(PlanEdge {
            from: port_of(&islands, e.from, false),
            to: port_of(&islands, e.to, true),
            kind: edge_kind(ei),
            buffer_rows,
            on_demand,
        });
    }
    // An open port connects to the outside (a substream, a flow materialized inside a running
    // stream) through one channel: only one subtask could be wired to it.
    for (p, what) in module
        .inlets
        .iter()
        .map(|p| (p, "input"))
        .chain(module.outlets.iter().map(|p| (p, "output")))
    {
        let n = islands[island_of[p.node]].parallelism;
        if n > 1 {
            return Err(GraphError::InvalidStage {
                node: module.node_path(p.node),
                reason: format!(
                    "parallelism {n} cannot be honoured: the stage's {what} is the open port of \
                     a sub-graph (substream or flow), connected through one channel; give the \
                     parallelism to a stage inside the sub-graph"
                ),
            });
        }
    }
    for (k, p) in module.inlets.iter().enumerate() {
        edges.push(PlanEdge {
            from: Endpoint::External(k),
            to: port_of(&islands, *p, true),
            kind: EdgeKind::Rebalance,
            buffer_rows: module.nodes[p.node]
                .attrs
                .buffer_rows
                .unwrap_or_else(|| cfg.buffer_rows_at(module.nodes[p.node].attrs.batch_size)),
            on_demand: false,
        });
    }
    for (k, p) in module.outlets.iter().enumerate() {
        edges.push(PlanEdge {
            from: port_of(&islands, *p, false),
            to: Endpoint::External(k),
            kind: EdgeKind::Rebalance,
            buffer_rows: cfg.buffer_rows_at(module.nodes[p.node].attrs.batch_size),
            on_demand: false,
        });
    }
    Ok(PhysicalPlan {
        module,
        islands,
        edges,
        island_of,
        parallelism: par,
    })
}

impl PhysicalPlan {
    /// Renders islands (as subgraphs) and channel edges as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        for isl in &self.islands {
            let kind = match isl.kind {
                IslandKind::Chain => "chain",
                IslandKind::Async => "async",
            };
            let on = if isl.executor == ExecutorId::TOKIO {
                String::new()
            } else {
                format!(", on {}", isl.executor)
            };
            let _ = writeln!(
                s,
                "    subgraph i{} [\"island {} ({kind}, x{}{on})\"]",
                isl.id, isl.id, isl.parallelism
            );
            for (k, n) in isl.nodes.iter().enumerate() {
                let nd = &self.module.nodes[*n];
                let uid = nd
                    .attrs
                    .uid
                    .as_ref()
                    .map_or_else(String::new, |u| format!(" uid={u}"));
                let _ = writeln!(s, "        n{n}[\"{}{uid}\"]", nd.display_name());
                if k > 0 {
                    let _ = writeln!(s, "        n{} --> n{n}", isl.nodes[k - 1]);
                }
            }
            s.push_str("    end\n");
        }
        let node_of = |ep: &Endpoint, input: bool| -> String {
            match ep {
                Endpoint::Island { island, port } => {
                    let isl = &self.islands[*island];
                    let p = if input {
                        isl.inputs[*port]
                    } else {
                        isl.outputs[*port]
                    };
                    format!("n{}", p.node)
                }
                Endpoint::External(k) => format!("ext{}{k}", if input { "_out" } else { "_in" }),
            }
        };
        for e in &self.edges {
            let kind = match e.kind {
                EdgeKind::Forward => "forward",
                EdgeKind::Rebalance => "rebalance",
                EdgeKind::Hash => "hash",
                EdgeKind::Broadcast => "broadcast",
            };
            let demand = if e.on_demand { ", demand" } else { "" };
            let _ = writeln!(
                s,
                "    {} -.->|{kind}{demand}| {}",
                node_of(&e.from, false),
                node_of(&e.to, true)
            );
        }
        s
    }
}
