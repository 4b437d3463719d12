//! Hubs: connect running graphs to each other.
//!
//! - [`MergeHub`]: a source whose materialized value is a sink; every materialization of that
//!   sink (in any run) is one more producer merged into the hub (fan-in).
//! - [`BroadcastHub`]: a sink whose materialized value is a source; every materialization of that
//!   source is a consumer that sees every element from the moment it attaches (fan-out).
//! - [`PartitionHub`]: like [`BroadcastHub`], but a routing function picks the one consumer
//!   that gets each element.
//! - [`Topics`]: named many-to-many topics (publish/subscribe): every subscriber gets what is
//!   published after it attached, publishers wait for the slowest reader; across nodes through
//!   the cluster's topic service.
//!
//! Producers and consumers meet in a bounded buffer shared by the hub's stages (a mutex and
//! wakers, no runtime): a producer without room waits, so backpressure crosses runs end to end;
//! nothing is queued without bound. Each materialization of the hub stage is a new,
//! independent hub.

mod broadcast;
mod fanout;
mod merge;
mod partition;
mod topic;

pub use broadcast::BroadcastHub;
pub use merge::MergeHub;
pub use partition::{PartitionHub, Partitioner, Routed};
pub use topic::{Topic, TopicError, TopicInbound, TopicReader, TopicStats, Topics};

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use weir_graph::GraphError;

/// Default per-producer buffer of [`MergeHub::source`] (Akka's default).
pub const DEFAULT_PER_PRODUCER_BUFFER: usize = 16;
/// Default buffer of [`BroadcastHub::sink`] and [`PartitionHub::sink`] (Akka's default).
pub const DEFAULT_HUB_BUFFER: usize = 256;

/// Locks a hub's shared state (a poisoned lock is still usable: the state stays consistent).
pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes the task parked in `slot`, if any.
pub(crate) fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// Rejects a size below 1, naming the operator and the parameter.
pub(crate) fn positive(op: &str, param: &str, n: usize) -> Result<usize, GraphError> {
    if n == 0 {
        return Err(GraphError::InvalidStage {
            node: op.to_owned(),
            reason: format!("{param} must be at least 1, got 0"),
        });
    }
    Ok(n)
}
