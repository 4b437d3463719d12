//! Live per-stage metrics: element, batch and byte counts, queue depth and capacity, busy /
//! backpressured / idle time, failures and dead letters, the latest watermark.
//!
//! Bytes are counted where channels already weigh batches ([`weir_graph::batch_bytes`], computed
//! once per batch when it is sent): `bytes_in` of a stage is what it took from the channels
//! feeding it, `bytes_out` what it sent into channels. Stages fused inside a chain hand batches
//! to each other by direct calls, unweighed: only a chain's head (fed by channels) counts bytes
//! in and only its last stage (feeding channels) counts bytes out; the others report 0.

use crate::channel::ChannelState;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_graph::StageId;

/// No watermark seen yet (`StageMetrics::watermark_ms`).
const NO_WATERMARK: i64 = i64::MIN;

/// Counters of one stage subtask, updated once per batch.
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
    /// Bytes sent into output channels.
    pub(crate) bytes_out: AtomicU64,
    /// Elements the stage dropped under supervision (Resume or Restart).
    pub(crate) dead_letters: AtomicU64,
    /// The latest event-time watermark the stage received ([`NO_WATERMARK`] before one).
    pub(crate) watermark_ms: AtomicI64,
    pub(crate) inputs: Mutex<Vec<Arc<ChannelState>>>,
    /// The channels the stage sends into (its island's output, for the stall detector).
    pub(crate) outputs: Mutex<Vec<Arc<ChannelState>>>,
}

impl Default for StageMetrics {
    fn default() -> Self {
        Self {
            elements_in: AtomicU64::new(0),
            elements_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            watermark_ms: AtomicI64::new(NO_WATERMARK),
            inputs: Mutex::new(Vec::new()),
            outputs: Mutex::new(Vec::new()),
        }
    }
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

    /// Records that the stage received `control` (a watermark is kept; once per control).
    pub(crate) fn saw_control(&self, control: &weir_graph::Control) {
        if let weir_graph::Control::Watermark { ms } = control {
            self.watermark_ms.store(*ms, Ordering::Relaxed);
        }
    }

    /// The latest watermark the stage received.
    pub(crate) fn watermark(&self) -> Option<i64> {
        match self.watermark_ms.load(Ordering::Relaxed) {
            NO_WATERMARK => None,
            ms => Some(ms),
        }
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
    /// Capacity in rows of the channels feeding this stage, summed (0 without channels):
    /// `queue_depth / queue_capacity` is the fill ratio.
    pub queue_capacity: u64,
    /// Bytes taken from the channels feeding this stage (0 for a stage fused behind another).
    pub bytes_in: u64,
    /// Bytes sent into channels (0 for a stage fused ahead of another).
    pub bytes_out: u64,
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
    /// Elements the stage dropped under supervision (Resume or Restart), sent to its
    /// dead-letter sink when it has one.
    pub dead_letters: u64,
    /// The latest event-time watermark (ms) the stage received, if any.
    pub watermark_ms: Option<i64>,
    /// Whether the stage is a sink (has no output).
    pub sink: bool,
}

#[derive(Debug)]
pub(crate) struct MetricsEntry {
    pub(crate) stage_id: StageId,
    pub(crate) path: String,
    pub(crate) subtask: usize,
    pub(crate) island: usize,
    /// Whether the stage is a sink.
    pub(crate) sink: bool,
    pub(crate) m: Arc<StageMetrics>,
}

impl MetricsEntry {
    pub(crate) fn snapshot(&self) -> StageMetricsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (depth, peak, peak_bytes, cap, bytes_in) =
            self.m.inputs.lock().map_or((0, 0, 0, 0, 0), |v| {
                v.iter().fold((0, 0, 0, 0, 0), |(d, p, b, c, i), s| {
                    (
                        d + s.depth(),
                        p + s.peak(),
                        b + s.peak_bytes(),
                        c + s.capacity(),
                        i + s.received_bytes(),
                    )
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
            queue_capacity: cap as u64,
            bytes_in: bytes_in as u64,
            bytes_out: l(&self.m.bytes_out),
            busy_ns: l(&self.m.busy_ns),
            backpressured_ns: l(&self.m.backpressured_ns),
            idle_ns: l(&self.m.idle_ns),
            restarts: l(&self.m.restarts),
            failures: l(&self.m.failures),
            stopped: l(&self.m.stopped),
            dead_letters: l(&self.m.dead_letters),
            watermark_ms: self.m.watermark(),
            sink: self.sink,
        }
    }
}
