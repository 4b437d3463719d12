//! The exchange between the nodes of one job: every node runs its part of the same graph,
//! and an [`exchange`] flow sends each element to the node that owns it (by key group, as
//! Flink's keyBy and Timely's exchange pact do), emitting what every node sent to this one.
//! Local elements never leave the process; elements for another node cross a remote edge
//! (credit-based, in order, barriers and watermarks in band).

use crate::edge::{EdgeConfig, exchange_source, remote_sink};
use crate::frame::EdgeId;
use crate::transport::Transport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hash::Hash;
use std::sync::Arc;
use weir_graph::{Flow, GraphBuilder, GraphError};
use weir_operators::fan::{Merge, Partition};

/// The nodes of one job as one node sees them: its index, every node's name (index order)
/// and the transport that reaches them.
#[derive(Clone)]
pub struct JobNodes {
    /// The transport to the other nodes.
    pub transport: Arc<dyn Transport>,
    /// This node's index.
    pub node: usize,
    /// Every node's name, by index (the transport's peer names).
    pub names: Vec<String>,
    /// The receiving side's window of each remote edge.
    pub config: EdgeConfig,
}

impl std::fmt::Debug for JobNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobNodes")
            .field("node", &self.node)
            .field("names", &self.names)
            .finish()
    }
}

impl JobNodes {
    /// How many nodes run the job.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no node runs the job.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The edge of exchange `id` from node `from` to node `to` (unique per receiver).
    pub fn edge(id: u32, from: usize, to: usize) -> EdgeId {
        (u64::from(id) << 32) | ((from as u64 & 0xffff) << 16) | (to as u64 & 0xffff)
    }

    /// The node that owns `key`: its stable key group's subtask among the job's nodes.
    pub fn owner<K: Hash + ?Sized>(&self, key: &K) -> usize {
        weir_graph::subtask_for_key_group(weir_graph::stable_key_group(key), self.len().max(1))
    }
}

/// A flow sending each element to node `route(&element)` of the job (exchange `id`, the same
/// on every node) and emitting, in one stream, what every node sent to this one: this node's
/// own elements directly, the others' over [`exchange_source`] edges.
///
/// Emits: each node's elements in the order that node sent them (interleaved across nodes).
/// Backpressures: a slow consumer on any node holds back every sender's elements for it
/// (within each edge's window), and through the partition the senders' inputs.
/// Completes: when this node's input and every other node's input for it completed.
/// Fails: when `route` returns an index out of range (naming the element), or a remote edge
/// fails (naming the edge and the peer).
/// Checkpoints: barriers and watermarks pass in band, so the stages after the exchange align
/// every node's barriers (one consistent cut across the job). The stages after it have the
/// same stable ids on every node (its merge has the uid `weir-exchange-ID`), so a savepoint
/// of the job restores onto another node count without explicit uids.
pub fn exchange<T>(
    nodes: &JobNodes,
    id: u32,
    route: impl Fn(&T) -> usize + Send + Sync + 'static,
) -> Result<Flow<T, T, ()>, GraphError>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let n = nodes.len().max(1);
    let me = nodes.node;
    let mut b = GraphBuilder::new();
    let part = b.add(Partition::<T>::new(n, route));
    let merge = b.add(Merge::<T>::new(n));
    for (to, outlet) in part.outlets.iter().enumerate() {
        if to == me {
            b.connect(*outlet, merge.inlets[me])?;
        } else {
            let sink = remote_sink::<T>(
                Arc::clone(&nodes.transport),
                &nodes.names[to],
                JobNodes::edge(id, me, to),
            )
            .map_materialized_value(|_| ());
            let (inlet, _) = b.add_sink(sink);
            b.connect(*outlet, inlet)?;
        }
    }
    for (from, inlet) in merge.inlets.iter().enumerate() {
        if from != me {
            let src = exchange_source::<T>(
                Arc::clone(&nodes.transport),
                JobNodes::edge(id, from, me),
                nodes.config,
            );
            let (outlet, _) = b.add_source(src);
            b.connect(outlet, *inlet)?;
        }
    }
    // The merge's uid keeps the stage ids after the exchange equal on every node (its inputs
    // differ by node), so a keyed stage's state rescales by key group across node counts.
    Ok(b.build_flow(part.inlet, merge.outlet, |_| ())?
        .uid(format!("weir-exchange-{id}")))
}
