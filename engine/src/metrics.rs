//! Live per-stage metrics: element and batch counts, queue depth, busy / backpressured / idle time.

use crate::channel::ChannelState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_graph::StageId;

/// Counters of one stage subtask, updated once per batch.
#[derive(Default)]
pub struct StageMetrics {
    pub(crate) elements_in: AtomicU64,
    pub(crate) elements_out: AtomicU64,
    pub(crate) batches_in: AtomicU64,
    pub(crate) batches_out: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) backpressured_ns: AtomicU64,
    pub(crate) idle_ns: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) stopped: AtomicU64,
    pub(crate) inputs: Mutex<Vec<Arc<ChannelState>>>,
}

impl std::fmt::Debug for StageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageMetrics")
    }
}

impl StageMetrics {
    pub(crate) fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

impl weir_graph::StageCounts for StageMetrics {
    fn add_in(&self, n: u64) {
        Self::add(&self.elements_in, n);
    }
    fn add_out(&self, n: u64) {
        Self::add(&self.elements_out, n);
    }
}

/// A point-in-time copy of one stage subtask's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMetricsSnapshot {
    /// Stable stage id.
    pub stage_id: StageId,
    /// Stage path (`name#position`).
    pub path: String,
    /// Subtask index.
    pub subtask: usize,
    /// Island the stage runs in.
    pub island: usize,
    /// Elements received.
    pub elements_in: u64,
    /// Elements emitted.
    pub elements_out: u64,
    /// Batches received.
    pub batches_in: u64,
    /// Batches emitted across a channel.
    pub batches_out: u64,
    /// Rows queued in the channels feeding this stage now.
    pub queue_depth: u64,
    /// Most rows ever queued in front of this stage at once.
    pub queue_peak: u64,
    /// Most bytes ever queued in front of this stage at once, per channel, summed over the
    /// channels feeding it ([`weir_graph::batch_bytes`]).
    pub queue_peak_bytes: u64,
    /// Time the stage's island spent processing, in nanoseconds.
    pub busy_ns: u64,
    /// Time the island waited for downstream credit, in nanoseconds.
    pub backpressured_ns: u64,
    /// Time the island waited for input, in nanoseconds.
    pub idle_ns: u64,
    /// Times the stage was restarted by supervision.
    pub restarts: u64,
    /// Failures seen by supervision (resumed, restarted or stopped).
    pub failures: u64,
    /// How many times the stage's stop hook ran (1 once it stopped).
    pub stopped: u64,
}

#[derive(Debug)]
pub(crate) struct MetricsEntry {
    pub(crate) stage_id: StageId,
    pub(crate) path: String,
    pub(crate) subtask: usize,
    pub(crate) island: usize,
    pub(crate) m: Arc<StageMetrics>,
}

impl MetricsEntry {
    pub(crate) fn snapshot(&self) -> StageMetricsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (depth, peak, peak_bytes) = self.m.inputs.lock().map_or((0, 0, 0), |v| {
            v.iter().fold((0, 0, 0), |(d, p, b), s| {
                (d + s.depth(), p + s.peak(), b + s.peak_bytes())
            })
        });
        StageMetricsSnapshot {
            stage_id: self.stage_id,
            path: self.path.clone(),
            subtask: self.subtask,
            island: self.island,
            elements_in: l(&self.m.elements_in),
            elements_out: l(&self.m.elements_out),
            batches_in: l(&self.m.batches_in),
            batches_out: l(&self.m.batches_out),
            queue_depth: depth as u64,
            queue_peak: peak as u64,
            queue_peak_bytes: peak_bytes as u64,
            busy_ns: l(&self.m.busy_ns),
            backpressured_ns: l(&self.m.backpressured_ns),
            idle_ns: l(&self.m.idle_ns),
            restarts: l(&self.m.restarts),
            failures: l(&self.m.failures),
            stopped: l(&self.m.stopped),
        }
    }
}
