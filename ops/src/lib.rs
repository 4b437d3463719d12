//! # weir-ops: operating running jobs
//!
//! The job registry (a [`weir_engine::RunObserver`] that sees every run of the process), the
//! HTTP API and web UI served by a job, and the Prometheus exposition of its metrics. Design in
//! `docs/adr/0003-operations-and-cluster.md`; the API in `docs/ops-api.md`.

pub mod logging;
pub mod prom;
