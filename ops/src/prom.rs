//! Prometheus exposition of the runs of a process (OpenMetrics text, through
//! `prometheus-client`), plus the gauges other parts add as [`MetricsSource`]s.
//!
//! Per stage subtask (labels `job` = the run's name, `run` = its id in the process, `stage` =
//! the stage path, `subtask`):
//! `weir_stage_elements_{in,out}_total`, `weir_stage_{in,out}_bytes_total`,
//! `weir_stage_{busy,backpressured,idle}_seconds_total`, `weir_stage_queue_rows`,
//! `weir_stage_queue_capacity_rows`, `weir_stage_errors_total`, `weir_stage_dead_letters_total`,
//! `weir_stage_restarts_total`. Per run (labels `job`, `run`): `weir_run_state` (one series per
//! state, 1 for the current one), `weir_run_stalled`, `weir_run_watermark_lag_seconds`,
//! `weir_run_checkpoints_total` (label `status`), `weir_run_last_checkpoint_duration_seconds`,
//! `weir_run_last_checkpoint_size_bytes`, `weir_run_last_checkpoint_completed_timestamp_seconds`.
//! Runs that share a name (a job run again in the same process) keep series of their own, told
//! apart by `run` (as Flink labels `job_name` and `job_id`). Rendering reads snapshots only:
//! nothing runs per element.
//!
//! What stages publish about themselves ([`weir_graph::StageGauges`], e.g. a shard region's
//! `weir_region_entities_alive`) is exposed under its own name with the labels `job`, `run`,
//! `stage`, `subtask` and its own (`shard`); a counter gets the `_total` suffix.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};
use weir_engine::observe::CheckpointStatus;
use weir_engine::{RunState, RunView, StageMetricsSnapshot};
use weir_graph::GaugeKind;

/// The HTTP `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one series.
type Labels = Vec<(&'static str, String)>;
/// Labels of a [`MetricSample`].
type SourceLabels = Vec<(String, String)>;
type Count = Family<Labels, Counter<u64>>;
type Seconds = Family<Labels, Counter<f64, AtomicU64>>;
type Level = Family<Labels, Gauge<f64, AtomicU64>>;

/// What kind of series a [`MetricSample`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A value that goes up and down.
    Gauge,
    /// A total that only grows (exposed with the `_total` suffix).
    Counter,
}

/// One value a [`MetricsSource`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// Metric name (`weir_pool_processes_alive`; a counter's `_total` is added if missing).
    pub name: String,
    /// One line of help text.
    pub help: String,
    /// Gauge or counter.
    pub kind: SampleKind,
    /// Label names and values.
    pub labels: Vec<(String, String)>,
    /// The value now.
    pub value: f64,
}

/// Something outside the engine with metrics of its own (the Python interpreter pool), asked
/// for its samples on every render.
pub trait MetricsSource: Send + Sync {
    /// The samples to expose now.
    fn samples(&self) -> Vec<MetricSample>;
}

fn sources() -> &'static RwLock<Vec<Arc<dyn MetricsSource>>> {
    static SOURCES: OnceLock<RwLock<Vec<Arc<dyn MetricsSource>>>> = OnceLock::new();
    SOURCES.get_or_init(|| RwLock::new(Vec::new()))
}

/// Adds `source` to every later [`render`] of this process.
pub fn add_source(source: Arc<dyn MetricsSource>) {
    if let Ok(mut v) = sources().write() {
        v.push(source);
    }
}

/// Removes `source` (compared by pointer); returns whether it was added.
pub fn remove_source(source: &Arc<dyn MetricsSource>) -> bool {
    let Ok(mut v) = sources().write() else {
        return false;
    };
    let before = v.len();
    v.retain(|s| !Arc::ptr_eq(s, source));
    v.len() != before
}

/// The per stage subtask families.
#[derive(Default)]
struct StageFamilies {
    elements_in: Count,
    elements_out: Count,
    bytes_in: Count,
    bytes_out: Count,
    busy: Seconds,
    backpressured: Seconds,
    idle: Seconds,
    queue: Level,
    capacity: Level,
    errors: Count,
    dead_letters: Count,
    restarts: Count,
}

impl StageFamilies {
    fn add(&self, r: &RunView, m: &StageMetricsSnapshot) {
        let l: Labels = vec![
            ("job", r.name().to_owned()),
            ("run", r.id().to_string()),
            ("stage", m.path.clone()),
            ("subtask", m.subtask.to_string()),
        ];
        let secs = |ns: u64| ns as f64 / 1e9;
        self.elements_in.get_or_create(&l).inc_by(m.elements_in);
        self.elements_out.get_or_create(&l).inc_by(m.elements_out);
        self.bytes_in.get_or_create(&l).inc_by(m.bytes_in);
        self.bytes_out.get_or_create(&l).inc_by(m.bytes_out);
        self.busy.get_or_create(&l).inc_by(secs(m.busy_ns));
        self.backpressured
            .get_or_create(&l)
            .inc_by(secs(m.backpressured_ns));
        self.idle.get_or_create(&l).inc_by(secs(m.idle_ns));
        self.queue.get_or_create(&l).inc_by(m.queue_depth as f64);
        self.capacity
            .get_or_create(&l)
            .inc_by(m.queue_capacity as f64);
        self.errors.get_or_create(&l).inc_by(m.failures);
        self.dead_letters.get_or_create(&l).inc_by(m.dead_letters);
        self.restarts.get_or_create(&l).inc_by(m.restarts);
    }

    fn register(self, r: &mut Registry) {
        r.register(
            "weir_stage_elements_in",
            "Elements a stage subtask received",
            self.elements_in,
        );
        r.register(
            "weir_stage_elements_out",
            "Elements a stage subtask emitted",
            self.elements_out,
        );
        r.register(
            "weir_stage_in_bytes",
            "Bytes a stage subtask took from its input channels (0 when fused behind another stage)",
            self.bytes_in,
        );
        r.register(
            "weir_stage_out_bytes",
            "Bytes a stage subtask sent into channels (0 when fused ahead of another stage)",
            self.bytes_out,
        );
        r.register(
            "weir_stage_busy_seconds",
            "Time the stage's island spent processing",
            self.busy,
        );
        r.register(
            "weir_stage_backpressured_seconds",
            "Time the stage's island waited for downstream credit",
            self.backpressured,
        );
        r.register(
            "weir_stage_idle_seconds",
            "Time the stage's island waited for input",
            self.idle,
        );
        r.register(
            "weir_stage_queue_rows",
            "Rows queued in the channels feeding the stage",
            self.queue,
        );
        r.register(
            "weir_stage_queue_capacity_rows",
            "Capacity in rows of the channels feeding the stage",
            self.capacity,
        );
        r.register(
            "weir_stage_errors",
            "Failures supervision saw in the stage",
            self.errors,
        );
        r.register(
            "weir_stage_dead_letters",
            "Elements the stage dropped under supervision",
            self.dead_letters,
        );
        r.register(
            "weir_stage_restarts",
            "Times supervision restarted the stage",
            self.restarts,
        );
    }
}

/// The per run families.
#[derive(Default)]
struct RunFamilies {
    state: Level,
    stalled: Level,
    lag: Level,
    checkpoints: Count,
    last_duration: Level,
    last_size: Level,
    last_completed: Level,
}

const STATES: [&str; 4] = ["running", "finished", "cancelled", "failed"];

fn state_name(s: &RunState) -> &'static str {
    match s {
        RunState::Running => "running",
        RunState::Finished => "finished",
        RunState::Cancelled => "cancelled",
        RunState::Failed(_) => "failed",
    }
}

impl RunFamilies {
    fn add(&self, r: &RunView) {
        let l: Labels = vec![("job", r.name().to_owned()), ("run", r.id().to_string())];
        let with = |k: &'static str, v: &str| {
            let mut ls = l.clone();
            ls.push((k, v.to_owned()));
            ls
        };
        let now = state_name(&r.state());
        for s in STATES {
            let v = if s == now { 1.0 } else { 0.0 };
            let ls = with("state", s);
            self.state.get_or_create(&ls).inc_by(v);
        }
        let stalled = if r.stall().is_some() { 1.0 } else { 0.0 };
        self.stalled.get_or_create(&l).inc_by(stalled);
        if let Some(lag) = r.watermark_lag() {
            self.lag.get_or_create(&l).inc_by(lag.as_secs_f64());
        }
        let Some(ck) = r.checkpoints() else { return };
        let t = ck.totals();
        for (status, n) in [
            ("completed", t.completed),
            ("failed", t.failed),
            ("skipped", t.skipped),
        ] {
            let ls = with("status", status);
            self.checkpoints.get_or_create(&ls).inc_by(n);
        }
        let history = ck.history();
        if let Some(last) = history
            .iter()
            .rev()
            .find(|c| c.status == CheckpointStatus::Completed)
        {
            self.last_duration
                .get_or_create(&l)
                .set(last.duration.as_secs_f64());
            self.last_size.get_or_create(&l).set(last.bytes as f64);
            let done_ms = last.started_at_ms as f64 + last.duration.as_secs_f64() * 1e3;
            self.last_completed.get_or_create(&l).set(done_ms / 1e3);
        }
    }

    fn register(self, r: &mut Registry) {
        r.register(
            "weir_run_state",
            "1 for the run's current state",
            self.state,
        );
        r.register(
            "weir_run_stalled",
            "1 while the run makes no progress with input waiting",
            self.stalled,
        );
        r.register(
            "weir_run_watermark_lag_seconds",
            "How far the event-time watermark at the sinks trails the run's clock",
            self.lag,
        );
        r.register(
            "weir_run_checkpoints",
            "Checkpoints of the run by how they ended",
            self.checkpoints,
        );
        r.register(
            "weir_run_last_checkpoint_duration_seconds",
            "Trigger-to-complete time of the latest completed checkpoint",
            self.last_duration,
        );
        r.register(
            "weir_run_last_checkpoint_size_bytes",
            "Bytes written for the latest completed checkpoint",
            self.last_size,
        );
        r.register(
            "weir_run_last_checkpoint_completed_timestamp_seconds",
            "When the latest completed checkpoint completed (Unix seconds)",
            self.last_completed,
        );
    }
}

/// Registers every source's samples, one family per name (the first sample's help and kind).
fn register_sources(r: &mut Registry) {
    let list: Vec<Arc<dyn MetricsSource>> = sources().read().map(|v| v.clone()).unwrap_or_default();
    let mut gauges: BTreeMap<String, (String, Family<SourceLabels, Gauge<f64, AtomicU64>>)> =
        BTreeMap::new();
    let mut counters: BTreeMap<String, (String, Family<SourceLabels, Counter<f64, AtomicU64>>)> =
        BTreeMap::new();
    for s in list.iter().flat_map(|s| s.samples()) {
        match s.kind {
            SampleKind::Gauge => {
                let (_, f) = gauges
                    .entry(s.name)
                    .or_insert_with(|| (s.help, Family::default()));
                f.get_or_create(&s.labels).inc_by(s.value);
            }
            SampleKind::Counter => {
                let name = s.name.strip_suffix("_total").unwrap_or(&s.name).to_owned();
                if gauges.contains_key(&name) {
                    continue;
                }
                let (_, f) = counters
                    .entry(name)
                    .or_insert_with(|| (s.help, Family::default()));
                f.get_or_create(&s.labels).inc_by(s.value.max(0.0));
            }
        }
    }
    for (name, (help, f)) in gauges {
        r.register(name, help, f);
    }
    for (name, (help, f)) in counters {
        r.register(name, help, f);
    }
}

/// Registers what the stages of `runs` publish, one family per name (the first value's help
/// and kind).
fn register_stage_gauges(runs: &[RunView], r: &mut Registry) {
    let mut gauges: BTreeMap<String, (String, Family<SourceLabels, Gauge<f64, AtomicU64>>)> =
        BTreeMap::new();
    let mut counters: BTreeMap<String, (String, Family<SourceLabels, Counter<f64, AtomicU64>>)> =
        BTreeMap::new();
    for run in runs {
        for s in run.stage_gauges() {
            let mut labels: SourceLabels = vec![
                ("job".to_owned(), run.name().to_owned()),
                ("run".to_owned(), run.id().to_string()),
                ("stage".to_owned(), s.stage),
                ("subtask".to_owned(), s.subtask.to_string()),
            ];
            labels.extend(s.labels);
            let v = s.value as f64;
            match s.kind {
                GaugeKind::Gauge => {
                    let (_, f) = gauges
                        .entry(s.name)
                        .or_insert_with(|| (s.help, Family::default()));
                    f.get_or_create(&labels).inc_by(v);
                }
                GaugeKind::Counter => {
                    if gauges.contains_key(&s.name) {
                        continue;
                    }
                    let (_, f) = counters
                        .entry(s.name)
                        .or_insert_with(|| (s.help, Family::default()));
                    f.get_or_create(&labels).inc_by(v.max(0.0));
                }
            }
        }
    }
    for (name, (help, f)) in gauges {
        r.register(name, help, f);
    }
    for (name, (help, f)) in counters {
        r.register(name, help, f);
    }
}

/// Renders the OpenMetrics text exposition ([`CONTENT_TYPE`]) of `runs` and of every
/// [`MetricsSource`] added.
pub fn render(runs: &[RunView]) -> String {
    let stages = StageFamilies::default();
    let per_run = RunFamilies::default();
    for r in runs {
        for m in r.metrics() {
            stages.add(r, &m);
        }
        per_run.add(r);
    }
    let mut registry = Registry::default();
    stages.register(&mut registry);
    per_run.register(&mut registry);
    register_stage_gauges(runs, &mut registry);
    register_sources(&mut registry);
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        tracing::warn!(error = %e, "cannot encode the metrics");
    }
    out
}
