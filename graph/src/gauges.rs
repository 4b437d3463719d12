//! [`StageGauges`]: named values a stage publishes about itself (a shard region's live
//! entities, its messages per shard), kept per run and read by the run's handle and the
//! metrics endpoint, labelled with the stage's path and subtask.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Whether a published value goes up and down or only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GaugeKind {
    /// A value that goes up and down.
    Gauge,
    /// A total that only grows (exposed with the `_total` suffix).
    Counter,
}

/// A handle to one published value (cheap to clone; updates are relaxed atomics).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `n` (negative to lower it).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One published value as read now.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeSample {
    /// The stage's path (`name#position`).
    pub stage: String,
    /// The stage subtask that published it.
    pub subtask: usize,
    /// Metric name (`weir_region_entities_alive`).
    pub name: String,
    /// One line of help text.
    pub help: String,
    /// Gauge or counter.
    pub kind: GaugeKind,
    /// Labels beyond stage and subtask (`shard`).
    pub labels: Vec<(String, String)>,
    /// The value now.
    pub value: i64,
}

impl GaugeSample {
    fn new(
        stage: &str,
        subtask: usize,
        name: &str,
        help: &str,
        kind: GaugeKind,
        labels: &[(&str, String)],
    ) -> Self {
        Self {
            stage: stage.to_owned(),
            subtask,
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            value: 0,
        }
    }
    /// Whether `other` is the same published value (stage, subtask, name and labels).
    fn same(&self, other: &Self) -> bool {
        self.stage == other.stage
            && self.subtask == other.subtask
            && self.name == other.name
            && self.labels == other.labels
    }
}

/// A value computed when it is read (a stage's total over many parts, kept off its hot path).
pub type GaugeFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Where a published value comes from.
enum Source {
    Value(Gauge),
    Read(GaugeFn),
}

struct Entry {
    sample: GaugeSample,
    source: Source,
}

impl Entry {
    fn value(&self) -> i64 {
        match &self.source {
            Source::Value(g) => g.get(),
            Source::Read(f) => f(),
        }
    }
}

/// The values the stages of one run publish (a run service: `StageInfo::services`).
#[derive(Default)]
pub struct StageGauges {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for StageGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageGauges")
    }
}

impl StageGauges {
    /// The value `name` with `labels` of subtask `subtask` of the stage at `stage`, made at 0 on
    /// its first call (a later call with the same identity gets the same value).
    pub fn register(
        &self,
        stage: &str,
        subtask: usize,
        name: &str,
        help: &str,
        kind: GaugeKind,
        labels: &[(&str, String)],
    ) -> Gauge {
        let sample = GaugeSample::new(stage, subtask, name, help, kind, labels);
        let mut entries = self.lock();
        if let Some(Source::Value(g)) = entries
            .iter()
            .find(|e| e.sample.same(&sample))
            .map(|e| &e.source)
        {
            return g.clone();
        }
        let gauge = Gauge::default();
        entries.retain(|e| !e.sample.same(&sample));
        entries.push(Entry {
            sample,
            source: Source::Value(gauge.clone()),
        });
        gauge
    }
    /// Publishes `gauge`, a handle the stage keeps already (counting from before the run
    /// started it), as the value `name` with `labels` of subtask `subtask` of the stage at
    /// `stage`; a later call with the same identity replaces the handle.
    pub fn adopt(
        &self,
        stage: &str,
        subtask: usize,
        name: &str,
        help: &str,
        kind: GaugeKind,
        labels: &[(&str, String)],
        gauge: &Gauge,
    ) {
        self.publish(
            stage,
            subtask,
            name,
            help,
            kind,
            labels,
            Source::Value(gauge.clone()),
        );
    }
    /// Publishes the value `read()` returns when sampled, as the value `name` with `labels` of
    /// subtask `subtask` of the stage at `stage`; a later call with the same identity replaces
    /// it.
    pub fn adopt_fn(
        &self,
        stage: &str,
        subtask: usize,
        name: &str,
        help: &str,
        kind: GaugeKind,
        labels: &[(&str, String)],
        read: GaugeFn,
    ) {
        self.publish(stage, subtask, name, help, kind, labels, Source::Read(read));
    }
    fn publish(
        &self,
        stage: &str,
        subtask: usize,
        name: &str,
        help: &str,
        kind: GaugeKind,
        labels: &[(&str, String)],
        source: Source,
    ) {
        let sample = GaugeSample::new(stage, subtask, name, help, kind, labels);
        let mut entries = self.lock();
        entries.retain(|e| !e.sample.same(&sample));
        entries.push(Entry { sample, source });
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Every published value now, in the order they were first registered.
    pub fn samples(&self) -> Vec<GaugeSample> {
        self.lock()
            .iter()
            .map(|e| GaugeSample {
                value: e.value(),
                ..e.sample.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_registered_once_per_identity_and_read_back() {
        let g = StageGauges::default();
        let a = g.register("r#1", 0, "x", "help", GaugeKind::Gauge, &[]);
        let b = g.register("r#1", 0, "x", "help", GaugeKind::Gauge, &[]);
        let c = g.register("r#1", 1, "x", "help", GaugeKind::Gauge, &[]);
        let d = g.register(
            "r#1",
            0,
            "x",
            "help",
            GaugeKind::Counter,
            &[("shard", "3".into())],
        );
        a.add(2);
        b.add(3);
        c.set(7);
        d.add(1);
        let got: Vec<(usize, Vec<(String, String)>, i64)> = g
            .samples()
            .into_iter()
            .map(|s| (s.subtask, s.labels, s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, vec![], 5),
                (1, vec![], 7),
                (0, vec![("shard".to_owned(), "3".to_owned())], 1),
            ]
        );
    }
}
