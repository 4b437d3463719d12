//! The job registry: every run of the process (bounded: the last finished ones are kept) and a
//! short history per stage subtask of rates and busy/backpressured/idle ratios, sampled on an
//! interval so the API and the UI show rates computed from deltas.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use weir_engine::StageMetricsSnapshot;
use weir_engine::{RunObserver, RunView, observe};

/// Bounds of a [`Registry`].
#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    /// How many finished (ended, failed or cancelled) runs are kept, the newest.
    pub keep_finished: usize,
    /// How many samples each stage subtask keeps, the newest.
    pub history: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            keep_finished: 32,
            history: 120,
        }
    }
}

/// One sampler interval of one stage subtask.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// When the interval ended (Unix milliseconds).
    pub at_ms: u64,
    /// Length of the interval in milliseconds (fractional: the rates divide by it exactly).
    pub interval_ms: f64,
    /// Elements received, in total, at the end of the interval.
    pub elements_in: u64,
    /// Elements emitted, in total, at the end of the interval.
    pub elements_out: u64,
    /// Elements received per second over the interval.
    pub in_rate: f64,
    /// Elements emitted per second over the interval.
    pub out_rate: f64,
    /// Share of the island's accounted time spent processing over the interval (0..=1).
    pub busy: f64,
    /// Share spent waiting for downstream credit over the interval (0..=1).
    pub backpressured: f64,
    /// Share spent waiting for input over the interval (0..=1).
    pub idle: f64,
}

/// The sampled history of one stage subtask.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageHistory {
    /// Stage path (`name#position`).
    pub path: String,
    /// Subtask index.
    pub subtask: usize,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

struct Entry {
    view: RunView,
    /// The previous snapshot per (path, subtask) and when it was taken.
    last: Option<(Instant, HashMap<(String, usize), StageMetricsSnapshot>)>,
    history: HashMap<(String, usize), VecDeque<Sample>>,
    /// When the sampler first saw the run ended.
    ended_at: Option<SystemTime>,
}

/// Every run of the process that started while the registry observed, newest last.
pub struct Registry {
    cfg: RegistryConfig,
    runs: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("cfg", &self.cfg)
            .field("runs", &self.lock().len())
            .finish()
    }
}

impl RunObserver for Registry {
    fn run_started(&self, run: RunView) {
        self.lock().push(Entry {
            view: run,
            last: None,
            history: HashMap::new(),
            ended_at: None,
        });
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Registry {
    /// A registry with the given bounds; it sees runs once [`Registry::observe`] registered it.
    pub fn new(cfg: RegistryConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            runs: Mutex::new(Vec::new()),
        })
    }

    /// The process-wide registry, registered as a run observer on first use.
    pub fn global() -> &'static Arc<Registry> {
        static GLOBAL: OnceLock<Arc<Registry>> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let r = Registry::new(RegistryConfig::default());
            r.observe();
            r
        })
    }

    /// Registers this registry with the engine: every run materialized from now on is kept.
    pub fn observe(self: &Arc<Self>) {
        let obs: Arc<dyn RunObserver> = Arc::clone(self) as Arc<dyn RunObserver>;
        observe::add_observer(obs);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The runs kept, oldest first.
    pub fn runs(&self) -> Vec<RunView> {
        self.lock().iter().map(|e| e.view.clone()).collect()
    }

    /// The run whose number or name is `key` (a number is tried first; among runs of one name,
    /// the newest).
    pub fn find(&self, key: &str) -> Option<RunView> {
        let runs = self.lock();
        if let Ok(id) = key.parse::<u64>()
            && let Some(e) = runs.iter().find(|e| e.view.id() == id)
        {
            return Some(e.view.clone());
        }
        runs.iter()
            .rev()
            .find(|e| e.view.name() == key)
            .map(|e| e.view.clone())
    }

    /// When the sampler first saw run `id` ended, if it did.
    pub fn ended_at(&self, id: u64) -> Option<SystemTime> {
        self.lock()
            .iter()
            .find(|e| e.view.id() == id)
            .and_then(|e| e.ended_at)
    }

    /// The sampled history of every stage subtask of run `id`, ordered by path and subtask.
    pub fn history(&self, id: u64) -> Vec<StageHistory> {
        let runs = self.lock();
        let Some(e) = runs.iter().find(|e| e.view.id() == id) else {
            return Vec::new();
        };
        let mut out: Vec<StageHistory> = e
            .history
            .iter()
            .map(|((path, subtask), s)| StageHistory {
                path: path.clone(),
                subtask: *subtask,
                samples: s.iter().copied().collect(),
            })
            .collect();
        out.sort_by(|a, b| (&a.path, a.subtask).cmp(&(&b.path, b.subtask)));
        out
    }

    /// The newest sample of each stage subtask of run `id`, by (path, subtask).
    pub fn latest(&self, id: u64) -> HashMap<(String, usize), Sample> {
        let runs = self.lock();
        runs.iter()
            .find(|e| e.view.id() == id)
            .map(|e| {
                e.history
                    .iter()
                    .filter_map(|(k, s)| s.back().map(|s| (k.clone(), *s)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes one sample of every run still running (and a last one of runs that just ended),
    /// then drops the oldest finished runs beyond [`RegistryConfig::keep_finished`].
    pub fn sample(&self) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut runs = self.lock();
        for e in runs.iter_mut() {
            if e.ended_at.is_some() {
                continue;
            }
            let finished = e.view.is_finished();
            let snap: HashMap<(String, usize), StageMetricsSnapshot> = e
                .view
                .metrics()
                .into_iter()
                .map(|m| ((m.path.clone(), m.subtask), m))
                .collect();
            if let Some((then, prev)) = &e.last {
                let dt = now.duration_since(*then);
                let secs = dt.as_secs_f64().max(1e-9);
                let interval_ms = secs * 1000.0;
                for (k, m) in &snap {
                    let p = prev.get(k);
                    let d =
                        |f: fn(&StageMetricsSnapshot) -> u64| f(m).saturating_sub(p.map_or(0, f));
                    let (busy, bp, idle) = (
                        d(|m| m.busy_ns),
                        d(|m| m.backpressured_ns),
                        d(|m| m.idle_ns),
                    );
                    let whole = busy + bp + idle;
                    let s = Sample {
                        at_ms: unix_ms(wall),
                        interval_ms,
                        elements_in: m.elements_in,
                        elements_out: m.elements_out,
                        in_rate: d(|m| m.elements_in) as f64 / secs,
                        out_rate: d(|m| m.elements_out) as f64 / secs,
                        busy: ratio(busy, whole),
                        backpressured: ratio(bp, whole),
                        idle: ratio(idle, whole),
                    };
                    let h = e.history.entry(k.clone()).or_default();
                    if h.len() == self.cfg.history.max(1) {
                        h.pop_front();
                    }
                    h.push_back(s);
                }
            }
            e.last = Some((now, snap));
            if finished {
                e.ended_at = Some(wall);
            }
        }
        let finished = runs.iter().filter(|e| e.ended_at.is_some()).count();
        let mut drop = finished.saturating_sub(self.cfg.keep_finished);
        runs.retain(|e| {
            if drop > 0 && e.ended_at.is_some() {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Runs [`Registry::sample`] every `interval` on the current runtime until the task is
    /// aborted.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        let interval = interval.max(Duration::from_millis(1));
        handle.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.sample();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_of_nothing_are_zero() {
        assert_eq!(ratio(0, 0), 0.0);
        assert_eq!(ratio(1, 4), 0.25);
    }

    #[test]
    fn an_empty_registry_finds_nothing() {
        let r = Registry::new(RegistryConfig::default());
        r.sample();
        assert!(r.runs().is_empty());
        assert!(r.find("1").is_none());
        assert!(r.find("job").is_none());
        assert!(r.history(1).is_empty());
    }
}
