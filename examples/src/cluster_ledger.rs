//! Actors across nodes: node 0 of a job runs a ledger actor and exposes it; every node (node 0
//! included, through the same code) tells it its share of the amounts through a reliable
//! remote ref over QUIC with mutual TLS, then asks for the total until every node's amounts
//! are in. The ledger's total is the sum of all nodes' amounts, seen alike on every node.
//!
//! `cargo run -p weir-examples --bin cluster_ledger -- --nodes 3` starts three processes of
//! itself as a local cluster, each one node of the job.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::cluster::job::JobNode;
use weir::cluster::remote::{ActorNode, RemoteConfig};
use weir::operators::actor::{Actor, ActorRegistry, Ctx, Props};
use weir::prelude::*;

/// Where the ledger is registered on node 0.
pub const LEDGER: &str = "/bank/ledger";

/// What the ledger takes (from any node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerMsg {
    /// Adds an amount.
    Add(u64),
    /// Answered with the total so far.
    Total,
    /// A node is done; answered with how many nodes said so.
    Bye(usize),
}

/// Sums amounts and counts the nodes that are done.
#[derive(Default)]
struct Ledger {
    total: u64,
    done: BTreeSet<usize>,
}

impl Actor for Ledger {
    type Msg = LedgerMsg;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: LedgerMsg) -> Result<(), StageError> {
        match msg {
            LedgerMsg::Add(x) => self.total += x,
            LedgerMsg::Total => {
                ctx.reply(self.total);
            }
            LedgerMsg::Bye(node) => {
                self.done.insert(node);
                ctx.reply(self.done.len() as u64);
            }
        }
        Ok(())
    }
}

/// The amounts node `node` adds: `node * per_node + 1 ..= (node + 1) * per_node`.
pub fn amounts(node: usize, per_node: u64) -> std::ops::RangeInclusive<u64> {
    let n = node as u64;
    n * per_node + 1..=(n + 1) * per_node
}

/// Runs this node's part: returns the ledger's total once every node's amounts are in.
pub async fn run_node(node: &JobNode, per_node: u64) -> Result<u64, crate::ExampleError> {
    let nodes = node.nodes();
    let (me, n) = (nodes.node, nodes.len());
    let registry = Arc::new(ActorRegistry::new());
    let actors = ActorNode::start(
        Arc::clone(&nodes.transport),
        Arc::clone(&registry),
        RemoteConfig::new(&nodes.names[me], nodes.names.clone()),
    )?;
    // Node 0 runs the ledger (the run lives as long as `_ledger` and `_run` are held).
    let _ledger = if me == 0 {
        let m = Materializer::new().with_service(Arc::clone(&registry));
        let g = Source::actor(Props::<Ledger>::default_of().register_as(LEDGER))
            .to_mat(Sink::ignore(), Keep::left);
        let started = m.materialize(&g)?;
        actors.expose_ask::<LedgerMsg, u64>(LEDGER)?;
        Some(started)
    } else {
        None
    };
    // On node 0 this is the ledger's own ref; elsewhere a reliable remote ref to it.
    let ledger = actors
        .remote(&nodes.names[0], LEDGER)
        .reliable()
        .asks::<LedgerMsg, u64>()?;
    for x in amounts(me, per_node) {
        ledger.tell(LedgerMsg::Add(x)).await?;
    }
    let all = n as u64 * per_node;
    let want = all * (all + 1) / 2;
    let ask = Duration::from_secs(10);
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        let t: u64 = ledger.ask(LedgerMsg::Total, ask).await?;
        if t == want {
            break t;
        }
        if Instant::now() > deadline {
            return Err(format!("the ledger's total stayed at {t}, expected {want}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Every node says it is done; node 0 keeps serving until all did.
    let mut done: u64 = ledger.ask(LedgerMsg::Bye(me), ask).await?;
    while me == 0 && done < n as u64 {
        if Instant::now() > deadline {
            return Err(format!("only {done} of {n} nodes finished").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        done = ledger.ask(LedgerMsg::Bye(me), ask).await?;
    }
    Ok(total)
}
