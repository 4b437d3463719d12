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
    fn new(at: &GaugeScope<'_>, metric: Metric<'_>, labels: &[(&str, String)]) -> Self {
        Self {
            stage: at.stage.to_owned(),
            subtask: at.subtask,
            name: metric.name.to_owned(),
            help: metric.help.to_owned(),
            kind: metric.kind,
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

/// What a published value is: its metric name, one line of help and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric<'a> {
    /// Metric name (`weir_region_entities_alive`).
    pub name: &'a str,
    /// One line of help text.
    pub help: &'a str,
    /// Gauge or counter.
    pub kind: GaugeKind,
}

impl<'a> Metric<'a> {
    /// A value that goes up and down.
    pub const fn gauge(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            kind: GaugeKind::Gauge,
        }
    }
    /// A total that only grows.
    pub const fn counter(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            kind: GaugeKind::Counter,
        }
    }
}

/// The values one stage subtask publishes ([`StageGauges::at`]).
pub struct GaugeScope<'a> {
    gauges: &'a StageGauges,
    stage: &'a str,
    subtask: usize,
}

impl GaugeScope<'_> {
    /// The value `metric` with `labels`, made at 0 on its first call (a later call with the
    /// same identity gets the same value).
    pub fn register(&self, metric: Metric<'_>, labels: &[(&str, String)]) -> Gauge {
        let sample = GaugeSample::new(self, metric, labels);
        let mut entries = self.gauges.lock();
        if let Some(Source::Value(g)) = entries
            .iter()
            .find(|e| e.sample.same(&sample))
            .map(|e| &e.source)
        {
            return g.clone();
        }
        let g = Gauge::default();
        entries.retain(|e| !e.sample.same(&sample));
        entries.push(Entry {
            sample,
            source: Source::Value(g.clone()),
        });
        g
    }
    /// Publishes `gauge`, a handle the stage keeps already (counting from before the run
    /// started it), as `metric` with `labels`; a later call with the same identity replaces it.
    pub fn adopt(&self, metric: Metric<'_>, labels: &[(&str, String)], gauge: &Gauge) {
        self.publish(metric, labels, Source::Value(gauge.clone()));
    }
    /// Publishes `metric` with `labels` as computed by `read` on every read, replacing what was
    /// published under that identity.
    pub fn adopt_fn(&self, metric: Metric<'_>, labels: &[(&str, String)], read: GaugeFn) {
        self.publish(metric, labels, Source::Read(read));
    }
    fn publish(&self, metric: Metric<'_>, labels: &[(&str, String)], source: Source) {
        let sample = GaugeSample::new(self, metric, labels);
        let mut entries = self.gauges.lock();
        entries.retain(|e| !e.sample.same(&sample));
        entries.push(Entry { sample, source });
    }
}

impl StageGauges {
    /// The values subtask `subtask` of the stage at `stage` publishes.
    pub fn at<'a>(&'a self, stage: &'a str, subtask: usize) -> GaugeScope<'a> {
        GaugeScope {
            gauges: self,
            stage,
            subtask,
        }
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
        let x = Metric::gauge("x", "help");
        let a = g.at("r#1", 0).register(x, &[]);
        let b = g.at("r#1", 0).register(x, &[]);
        let c = g.at("r#1", 1).register(x, &[]);
        let d = g
            .at("r#1", 0)
            .register(Metric::counter("x", "help"), &[("shard", "3".into())]);
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
