//! A renderer-neutral description of a graph: labelled nodes, optional groups (islands) and
//! edges, built from a logical blueprint or a physical plan.

use std::fmt::Write as _;
use weir_engine::plan::{Endpoint, IslandKind, PhysicalPlan};
use weir_graph::{EdgeKind, Module, NodeKind};

/// One drawn node (a stage, or an open port of the graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VizNode {
    /// Stable identifier (`n3` for node 3 of the blueprint, `ext_in0` for an open port).
    pub id: String,
    /// The text shown.
    pub label: String,
    /// The group (island) holding the node, an index into [`VizGraph::groups`].
    pub group: Option<usize>,
    /// Whether the stage is asynchronous (drawn as a box rather than rounded).
    pub is_async: bool,
}

/// A box drawn around the nodes of one island.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VizGroup {
    /// Identifier (`i0` for island 0).
    pub id: String,
    /// The text shown (`island 0 (chain, x2)`).
    pub label: String,
}

/// One drawn edge between two nodes (indices into [`VizGraph::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VizEdge {
    /// Producer node.
    pub from: usize,
    /// Consumer node.
    pub to: usize,
    /// Text on the edge (`hash`, `rebalance`...), if any.
    pub label: Option<String>,
    /// Whether it crosses a channel (drawn dashed) rather than a direct call.
    pub dashed: bool,
}

/// A graph ready to be laid out and drawn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VizGraph {
    /// Nodes in blueprint order.
    pub nodes: Vec<VizNode>,
    /// Island boxes (empty for a logical graph).
    pub groups: Vec<VizGroup>,
    /// Edges.
    pub edges: Vec<VizEdge>,
}

fn node_label(module: &Module, i: usize, parallelism: Option<usize>) -> String {
    let n = &module.nodes[i];
    let mut s = n.display_name().to_owned();
    if let Some(p) = parallelism.filter(|p| *p > 1) {
        let _ = write!(s, " x{p}");
    }
    if let Some(u) = &n.attrs.uid {
        let _ = write!(s, " uid={u}");
    }
    s
}

impl VizGraph {
    /// The logical blueprint: one node per stage (with its parallelism when above 1), one edge
    /// per connection, dashed after an async boundary.
    pub fn logical(module: &Module) -> Self {
        let nodes = (0..module.nodes.len())
            .map(|i| VizNode {
                id: format!("n{i}"),
                label: node_label(module, i, module.nodes[i].attrs.parallelism),
                group: None,
                is_async: matches!(module.nodes[i].kind, NodeKind::Async(_)),
            })
            .collect();
        let edges = module
            .edges
            .iter()
            .map(|e| VizEdge {
                from: e.from.node,
                to: e.to.node,
                label: None,
                dashed: module.nodes[e.from.node].attrs.async_boundary,
            })
            .collect();
        Self {
            nodes,
            groups: Vec::new(),
            edges,
        }
    }

    /// The physical plan: stages grouped by island (kind and parallelism in the group's label),
    /// direct calls inside a chain solid, channels dashed and labelled with their distribution.
    pub fn physical(plan: &PhysicalPlan) -> Self {
        let module = &plan.module;
        let mut g = Self {
            nodes: (0..module.nodes.len())
                .map(|i| VizNode {
                    id: format!("n{i}"),
                    label: node_label(module, i, None),
                    group: plan.island_of.get(i).copied(),
                    is_async: matches!(module.nodes[i].kind, NodeKind::Async(_)),
                })
                .collect(),
            groups: plan
                .islands
                .iter()
                .map(|isl| {
                    let kind = match isl.kind {
                        IslandKind::Chain => "chain",
                        IslandKind::Async => "async",
                    };
                    VizGroup {
                        id: format!("i{}", isl.id),
                        label: format!("island {} ({kind}, x{})", isl.id, isl.parallelism),
                    }
                })
                .collect(),
            edges: Vec::new(),
        };
        for isl in &plan.islands {
            for w in isl.nodes.windows(2) {
                g.edges.push(VizEdge {
                    from: w[0],
                    to: w[1],
                    label: None,
                    dashed: false,
                });
            }
        }
        for e in &plan.edges {
            let from = g.endpoint(plan, &e.from, false);
            let to = g.endpoint(plan, &e.to, true);
            let kind = match e.kind {
                EdgeKind::Forward => "forward",
                EdgeKind::Rebalance => "rebalance",
                EdgeKind::Hash => "hash",
                EdgeKind::Broadcast => "broadcast",
            };
            let demand = if e.on_demand { ", demand" } else { "" };
            g.edges.push(VizEdge {
                from,
                to,
                label: Some(format!("{kind}{demand}")),
                dashed: true,
            });
        }
        g
    }

    /// The node an edge of the plan starts (`input == false`) or ends at; an open port of the
    /// graph becomes a node of its own.
    fn endpoint(&mut self, plan: &PhysicalPlan, ep: &Endpoint, input: bool) -> usize {
        match ep {
            Endpoint::Island { island, port } => {
                let isl = &plan.islands[*island];
                if input {
                    isl.inputs[*port].node
                } else {
                    isl.outputs[*port].node
                }
            }
            Endpoint::External(k) => {
                let (id, label) = if input {
                    (format!("ext_out{k}"), format!("output {k}"))
                } else {
                    (format!("ext_in{k}"), format!("input {k}"))
                };
                if let Some(i) = self.nodes.iter().position(|n| n.id == id) {
                    return i;
                }
                self.nodes.push(VizNode {
                    id,
                    label,
                    group: None,
                    is_async: false,
                });
                self.nodes.len() - 1
            }
        }
    }

    /// Renders the graph as Graphviz DOT, one `cluster_` subgraph per group.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph weir {\n    rankdir=LR;\n");
        let node_line = |s: &mut String, indent: &str, n: &VizNode| {
            let shape = if n.is_async { "box" } else { "ellipse" };
            let _ = writeln!(
                s,
                "{indent}{} [label=\"{}\", shape={shape}];",
                n.id,
                dot_escape(&n.label)
            );
        };
        for (gi, grp) in self.groups.iter().enumerate() {
            let _ = writeln!(s, "    subgraph cluster_{} {{", grp.id);
            let _ = writeln!(s, "        label=\"{}\";", dot_escape(&grp.label));
            for n in self.nodes.iter().filter(|n| n.group == Some(gi)) {
                node_line(&mut s, "        ", n);
            }
            s.push_str("    }\n");
        }
        for n in self.nodes.iter().filter(|n| n.group.is_none()) {
            node_line(&mut s, "    ", n);
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if e.dashed {
                attrs.push("style=dashed".to_owned());
            }
            if let Some(l) = &e.label {
                attrs.push(format!("label=\"{}\"", dot_escape(l)));
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let _ = writeln!(
                s,
                "    {} -> {}{attrs};",
                self.nodes[e.from].id, self.nodes[e.to].id
            );
        }
        s.push_str("}\n");
        s
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
