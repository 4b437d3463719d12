//! The cluster services' counters on `/metrics`: remote actors, topics and singletons each add
//! a [`MetricsSource`] for as long as they run (label `node`, and `path` for a singleton),
//! removed when they stop.

use std::sync::Arc;
use weir_ops::prom::{MetricSample, MetricsSource, SampleKind, add_source, remove_source};

/// One series: name, help, kind and value.
pub(crate) type Series = (&'static str, &'static str, SampleKind, u64);

/// Reads a service's series now.
type Read = Box<dyn Fn() -> Vec<Series> + Send + Sync>;

/// A service's counters with the labels every one of its series carries.
struct ServiceSource {
    labels: Vec<(String, String)>,
    read: Read,
}

impl MetricsSource for ServiceSource {
    fn samples(&self) -> Vec<MetricSample> {
        (self.read)()
            .into_iter()
            .map(|(name, help, kind, value)| MetricSample {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                labels: self.labels.clone(),
                value: value as f64,
            })
            .collect()
    }
}

/// Keeps a service's source on `/metrics` until dropped.
pub(crate) struct Published(Arc<dyn MetricsSource>);

impl Published {
    /// Adds the series `read` gives, labelled with `labels`, to every later render.
    pub(crate) fn new(
        labels: Vec<(&'static str, String)>,
        read: impl Fn() -> Vec<Series> + Send + Sync + 'static,
    ) -> Self {
        let source: Arc<dyn MetricsSource> = Arc::new(ServiceSource {
            labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            read: Box::new(read),
        });
        add_source(Arc::clone(&source));
        Self(source)
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        remove_source(&self.0);
    }
}

/// A counter series.
pub(crate) const fn counter(name: &'static str, help: &'static str, value: u64) -> Series {
    (name, help, SampleKind::Counter, value)
}

/// A gauge series.
pub(crate) const fn gauge(name: &'static str, help: &'static str, value: u64) -> Series {
    (name, help, SampleKind::Gauge, value)
}
