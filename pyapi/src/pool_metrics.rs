//! The interpreter pools' gauges on `/metrics`: a [`weir_ops::prom::MetricsSource`] that reads
//! `weir.interpreters.pool_metrics()` on each scrape (the pools live in Python) and exposes, per
//! pool (labels `pool` = its id, `backend`), `weir_pool_processes_alive`,
//! `weir_pool_restarts_total` and `weir_pool_queued_batches`.

use pyo3::prelude::*;
use std::sync::Arc;
use weir_ops::prom::{MetricSample, MetricsSource, SampleKind};

/// The pools of this interpreter as a metrics source.
#[derive(Debug, Default)]
pub struct PoolMetrics;

/// One pool as `pool_metrics()` reports it: id, backend, alive, restarts, queued.
type PoolRow = (u64, String, u64, u64, u64);

impl PoolMetrics {
    /// A source to add with [`weir_ops::prom::add_source`].
    pub fn source() -> Arc<dyn MetricsSource> {
        Arc::new(PoolMetrics)
    }

    fn rows(py: Python<'_>) -> PyResult<Vec<PoolRow>> {
        py.import("weir.interpreters")?
            .call_method0("pool_metrics")?
            .extract()
    }
}

impl MetricsSource for PoolMetrics {
    fn samples(&self) -> Vec<MetricSample> {
        // Not at all while the interpreter shuts down (the scrape then shows no pools).
        let rows = Python::try_attach(|py| {
            Self::rows(py).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the interpreter pools' metrics");
                Vec::new()
            })
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(rows.len() * 3);
        for (id, backend, alive, restarts, queued) in rows {
            let labels = vec![
                ("pool".to_owned(), id.to_string()),
                ("backend".to_owned(), backend),
            ];
            let sample = |name: &str, help: &str, kind, value: u64| MetricSample {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                labels: labels.clone(),
                value: value as f64,
            };
            out.push(sample(
                "weir_pool_processes_alive",
                "Live workers of the interpreter pool",
                SampleKind::Gauge,
                alive,
            ));
            out.push(sample(
                "weir_pool_restarts_total",
                "Workers of the interpreter pool that died while it was open (each replaced)",
                SampleKind::Counter,
                restarts,
            ));
            out.push(sample(
                "weir_pool_queued_batches",
                "Batches handed to the pool's workers and not answered yet",
                SampleKind::Gauge,
                queued,
            ));
        }
        out
    }
}
