//! The stall detector: names the stage that holds a run up when its throughput dropped to zero
//! while input waits (rows queued in front of a stage that made no progress for longer than a
//! threshold). It samples the run's metrics (never touching the hot path): every
//! [`StallWatch::period`] on a task of its own under the system clock, and whenever
//! [`crate::RunView::stall`] is read (the only sampling under a virtual clock, so tests step
//! it deterministically).

use crate::errlog::unix_ms;
use crate::metrics::MetricsEntry;
use crate::shared::RunShared;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long a run may make no progress while input waits before it counts as stalled, unless
/// the materializer says otherwise.
pub const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_secs(10);

/// A stalled run: the stage that is the bottleneck and since when it made no progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// Path of the stage (`name#position`) holding the run up.
    pub stage: String,
    /// Its subtask.
    pub subtask: usize,
    /// When it made progress last (Unix milliseconds).
    pub since_ms: u64,
}

/// One island subtask as one sample sees it.
struct Island {
    /// Path of its first stage.
    head: String,
    /// Elements in and out of its stages, summed: moves whenever it makes progress.
    progress: u64,
    /// Rows queued in front of it.
    queued: u64,
    /// Whether a channel it sends into is full (downstream holds it up).
    blocked: bool,
}

#[derive(Default)]
struct State {
    /// Whether a sample was taken.
    sampled: bool,
    /// Elements in and out over the whole run at the last change, and when it changed.
    total: u64,
    run_since: Duration,
    /// Per island subtask: its progress at its last change, and when it changed.
    islands: HashMap<(usize, usize), (u64, Duration)>,
    /// The stall reported now.
    current: Option<Stall>,
}

/// The run's stall detector.
pub(crate) struct StallWatch {
    threshold: Option<Duration>,
    state: Mutex<State>,
}

impl StallWatch {
    /// A detector reporting stalls longer than `threshold` (`None`: off).
    pub(crate) fn new(threshold: Option<Duration>) -> Self {
        Self {
            threshold,
            state: Mutex::new(State::default()),
        }
    }

    /// How often the sampling task looks (a fifth of the threshold, between 10 ms and 1 s);
    /// `None` when detection is off.
    pub(crate) fn period(&self) -> Option<Duration> {
        self.threshold
            .map(|t| (t / 5).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    /// Samples the run now; returns the stall reported (logged once when it starts, and when
    /// it clears).
    pub(crate) fn sample(&self, run: &RunShared) -> Option<Stall> {
        let threshold = self.threshold?;
        let now = run.clock.now();
        let islands = {
            let Ok(entries) = run.metrics.lock() else {
                return None;
            };
            islands(&entries)
        };
        let total: u64 = islands.values().map(|i| i.progress).sum();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !st.sampled || st.total != total {
            st.sampled = true;
            st.total = total;
            st.run_since = now;
        }
        let mut seen = HashMap::with_capacity(islands.len());
        for (k, i) in &islands {
            let since = match st.islands.get(k) {
                Some(&(p, since)) if p == i.progress => since,
                _ => now,
            };
            seen.insert(*k, (i.progress, since));
        }
        st.islands = seen;
        let run_stalled = now.saturating_sub(st.run_since) >= threshold;
        // Islands with input waiting that made no progress for the threshold; one whose
        // output is not full is the bottleneck (the others wait for it), oldest first.
        let found = run_stalled
            .then(|| {
                islands
                    .iter()
                    .filter(|(k, i)| {
                        i.queued > 0
                            && st
                                .islands
                                .get(k)
                                .is_some_and(|(_, s)| now.saturating_sub(*s) >= threshold)
                    })
                    .min_by_key(|(k, i)| (i.blocked, st.islands.get(k).map(|(_, s)| *s), **k))
                    .map(|(k, i)| (*k, i.head.clone()))
            })
            .flatten();
        let Some(((island, subtask), head)) = found else {
            if let Some(s) = st.current.take() {
                tracing::info!(run = %run.name, stage = %s.stage, subtask = s.subtask, "stall cleared: the stage moves again");
            }
            return None;
        };
        let since = st.islands.get(&(island, subtask)).map_or(now, |(_, s)| *s);
        let stage = calling(run, island, subtask).unwrap_or(head);
        let stall = Stall {
            stage,
            subtask,
            since_ms: unix_ms(run.started + since),
        };
        if st.current.as_ref() != Some(&stall) {
            tracing::warn!(
                run = %run.name,
                stage = %stall.stage,
                subtask,
                stalled_for_ms = now.saturating_sub(since).as_millis() as u64,
                queued = islands.get(&(island, subtask)).map_or(0, |i| i.queued),
                "run stalled: no progress while input waits; this stage is the bottleneck"
            );
            st.current = Some(stall.clone());
        }
        Some(stall)
    }
}

/// The island subtasks of the run's metrics.
fn islands(entries: &[MetricsEntry]) -> HashMap<(usize, usize), Island> {
    let mut out: HashMap<(usize, usize), Island> = HashMap::new();
    for e in entries {
        let m = &e.m;
        let progress =
            m.elements_in.load(Ordering::Relaxed) + m.elements_out.load(Ordering::Relaxed);
        let queued: usize = m
            .inputs
            .lock()
            .map_or(0, |v| v.iter().map(|c| c.depth()).sum());
        let blocked = m
            .outputs
            .lock()
            .is_ok_and(|v| v.iter().any(|c| c.is_full()));
        let i = out.entry((e.island, e.subtask)).or_insert_with(|| Island {
            head: e.path.clone(),
            progress: 0,
            queued: 0,
            blocked: false,
        });
        i.progress += progress;
        i.queued += queued as u64;
        i.blocked |= blocked;
    }
    out
}

/// The stage island `island` subtask `subtask` is calling now, from its probe.
fn calling(run: &RunShared, island: usize, subtask: usize) -> Option<String> {
    let name = format!("island-{island}#{subtask}");
    let probes = run.probes.lock().ok()?;
    probes
        .iter()
        .rev()
        .find(|p| p.name == name && !p.is_done())
        .map(|p| p.stage().to_owned())
}
