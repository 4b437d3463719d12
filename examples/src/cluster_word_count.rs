//! Word count as one job over several nodes (processes): every node runs the same graph over
//! its share of the lines (every N-th), an exchange sends each word to the node that owns it
//! (by its stable key group, over QUIC with mutual TLS), and each node counts the words it
//! owns. The union of the nodes' counts is the single-process word count.
//!
//! `cargo run -p weir-examples --bin cluster_word_count -- --nodes 3` starts three processes of
//! itself as a local cluster (`weir local-cluster --nodes 3 -- PROGRAM` does the same for any
//! program); each gets its place in the job from the environment
//! ([`weir::cluster::job::NodeSettings::from_env`]).

use weir::cluster::exchange::exchange;
use weir::cluster::job::JobNode;
use weir::prelude::*;

/// Counts the words of this node's share of `lines` that this node owns; sorted by word.
pub async fn run_node(
    lines: &[String],
    node: &JobNode,
) -> Result<Vec<(String, u64)>, crate::ExampleError> {
    let nodes = node.nodes().clone();
    let (me, n) = (nodes.node, nodes.len());
    let mine: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| i % n == me)
        .map(|(_, l)| l.clone())
        .collect();
    let owners = nodes.clone();
    let by_word = exchange(&nodes, 1, move |w: &String| owners.owner(w))?;
    let mut counts = Source::from_iter(mine)
        .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .via(by_word)
        .key_by(|w: &String| w.clone())
        .count()
        .run_with(Sink::collect())?
        .await?;
    counts.sort();
    Ok(counts)
}
