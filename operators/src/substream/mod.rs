//! Substreams: `flat_map_merge`, `flat_map_concat`, `group_by`, `split_when`, `split_after` and
//! `recover_with_retries`.
//!
//! Substreams are materialized inside the running stream through the engine's
//! [`SubMaterializer`](weir_graph::SubMaterializer) (`io.sub`), so they share the run's clock,
//! supervision and cancellation: cancelling the outer stream cancels every substream.
//!
//! No checkpoint barrier overtakes a row held in a substream: `flat_map_merge`/`flat_map_concat`
//! forward a control once the substreams of the elements before it completed, `group_by` and
//! `split_*` send a barrier through every running substream's flow and forward it once it came
//! out of each; they read nothing more while a barrier waits.

mod flat_map;
mod group_by;
mod recover;
mod split;

pub use group_by::GroupBy;
pub use recover::try_recover_with_retries;
pub use split::Split;

use crate::Via;
use std::hash::Hash;
use weir_graph::{ErrorKind, GraphError, Module, Source, StageError};

/// Rejects a substream flow whose entry or exit stage asks for parallelism: a substream is
/// connected through one channel each way, so only one subtask could be wired to it (the
/// engine's planner refuses such a sub-graph too, but only once a substream starts).
pub(crate) fn check_open_ports(module: &Module) -> Result<(), StageError> {
    let ports = module.inlets.iter().chain(module.outlets.iter());
    for p in ports {
        if let Some(n) = module.nodes[p.node].attrs.parallelism.filter(|n| *n > 1) {
            let e = GraphError::InvalidStage {
                node: module.node_path(p.node),
                reason: format!(
                    "parallelism {n} cannot be honoured at the entry or exit of a substream's \
                     flow (one channel connects it); give it to a stage inside the flow"
                ),
            };
            return Err(StageError::from_boxed(ErrorKind::User, Box::new(e)));
        }
    }
    Ok(())
}

/// Operators that run sources or flows as substreams of a stream.
pub trait SubstreamOps: Via {
    /// Turns each element into a source and emits their elements one source after the other.
    ///
    /// Emits when: the current substream emits.
    /// Backpressures when: downstream backpressures (upstream waits while a substream runs).
    /// Completes when: upstream completes and the last substream completes.
    /// Cancels when: downstream cancels (the running substream is cancelled too).
    /// Fails when: upstream or a substream fails, or a substream cannot be materialized.
    fn flat_map_concat<O, M, F>(self, f: F) -> Self::Next<O>
    where
        O: Send + 'static,
        M: Send + 'static,
        F: FnMut(Self::Out) -> Source<O, M> + Clone + Send + Sync + 'static,
    {
        self.via_flow(flat_map::flow("flat_map_concat", 1, f))
    }

    /// Turns each element into a source and merges the elements of up to `breadth` of them.
    ///
    /// Emits when: any running substream emits.
    /// Backpressures when: downstream backpressures, or `breadth` substreams are running.
    /// Completes when: upstream completes and every substream completes.
    /// Cancels when: downstream cancels (the running substreams are cancelled too).
    /// Fails when: upstream or a substream fails, or a substream cannot be materialized.
    fn flat_map_merge<O, M, F>(self, breadth: usize, f: F) -> Self::Next<O>
    where
        O: Send + 'static,
        M: Send + 'static,
        F: FnMut(Self::Out) -> Source<O, M> + Clone + Send + Sync + 'static,
    {
        self.via_flow(flat_map::flow("flat_map_merge", breadth, f))
    }

    /// Splits the stream into one substream per key (at most `max_substreams` keys); finish with
    /// [`GroupBy::merge_substreams_via`].
    ///
    /// Emits when: a substream's flow emits.
    /// Backpressures when: downstream or the substream of the next element backpressures.
    /// Completes when: upstream and every substream complete.
    /// Cancels when: downstream cancels (every substream is cancelled too).
    /// Fails when: upstream or a substream fails, or more than `max_substreams` keys appear.
    fn group_by<K, F>(self, max_substreams: usize, key: F) -> GroupBy<Self, K, F>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&Self::Out) -> K + Clone + Send + Sync + 'static,
    {
        GroupBy::new(self, max_substreams, key)
    }

    /// Starts a new segment before each element matching `pred` (except the very first
    /// element); finish with [`Split::merge_substreams_via`].
    ///
    /// Emits when: the current segment's flow emits.
    /// Backpressures when: downstream or the current segment's flow backpressures.
    /// Completes when: upstream and the last segment complete.
    /// Cancels when: downstream cancels (the open segment is cancelled too).
    /// Fails when: upstream or a segment's flow fails.
    fn split_when<P>(self, pred: P) -> Split<Self, P>
    where
        P: FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    {
        Split::new(self, pred, false)
    }

    /// Ends the current segment after each element matching `pred`; finish with
    /// [`Split::merge_substreams_via`].
    ///
    /// Emits when: the current segment's flow emits.
    /// Backpressures when: downstream or the current segment's flow backpressures.
    /// Completes when: upstream and the last segment complete.
    /// Cancels when: downstream cancels (the open segment is cancelled too).
    /// Fails when: upstream or a segment's flow fails.
    fn split_after<P>(self, pred: P) -> Split<Self, P>
    where
        P: FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    {
        Split::new(self, pred, true)
    }

    /// On upstream failure, continues with the source `f` returns for the error, at most
    /// `attempts` times (failures of those sources count too); `None` keeps the failure.
    ///
    /// Emits when: the current upstream (original or recovery source) emits.
    /// Backpressures when: downstream backpressures.
    /// Completes when: the current upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: a failure arrives with no attempt left, or `f` returns `None` for it.
    fn recover_with_retries<M, F>(self, attempts: usize, f: F) -> Self::Next<Self::Out>
    where
        M: Send + 'static,
        F: Fn(&StageError) -> Option<Source<Self::Out, M>> + Send + Sync + 'static,
    {
        self.via_flow(recover::flow(attempts, f))
    }
}

impl<S: Via> SubstreamOps for S {}
