//! # weir-ops: operating running jobs
//!
//! The job registry (a [`weir_engine::RunObserver`] that sees every run of the process), the
//! HTTP API and web UI served by a job, the job files other programs discover it by, and the
//! Prometheus exposition of its metrics. Design in `docs/adr/0003-operations-and-cluster.md`;
//! the API in `docs/ops-api.md`.
//!
//! ```no_run
//! let server = weir_ops::start(weir_ops::OpsConfig::default())?;
//! println!("web UI: {}", server.ui_url());
//! # Ok::<(), weir_ops::OpsError>(())
//! ```

mod config;
mod error;
pub mod jobfile;
pub mod logging;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod prom;
pub mod registry;
pub mod server;
pub mod viz;

pub use config::{ClusterView, OpsConfig};
pub use error::OpsError;
pub use registry::{Registry, RegistryConfig, Sample};
pub use server::{OpsServer, start};
