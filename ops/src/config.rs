//! How the operations server is started.

use crate::registry::Registry;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a cluster coordinator shows on `/api/v1/cluster` and the UI's cluster page: its nodes,
/// its jobs and where each job's subtasks run, as JSON (`docs/ops-api.md`).
pub trait ClusterView: Send + Sync + 'static {
    /// The view now.
    fn view(&self) -> Pin<Box<dyn Future<Output = serde_json::Value> + Send>>;
}

/// Settings of [`crate::start`]; `OpsConfig::default()` serves every run of the process on an
/// ephemeral port of 127.0.0.1 with a random token and writes a job file.
#[derive(Clone)]
pub struct OpsConfig {
    /// Address the listeners bind (127.0.0.1 by default: only local programs reach the job).
    pub bind: IpAddr,
    /// Port of the API, UI and `/metrics` (0: an ephemeral port, see [`crate::OpsServer::url`]).
    pub port: u16,
    /// A second listener serving only `/metrics` on this port (0: ephemeral), when set.
    pub metrics_port: Option<u16>,
    /// The bearer token of mutating calls; `None`: 32 random hex digits drawn at start.
    pub token: Option<String>,
    /// Whether a job file is written for discovery (`weir jobs`) and removed at shutdown.
    pub job_files: bool,
    /// The folder holding `jobs/`; `None`: [`crate::jobfile::weir_home`] from the environment.
    pub weir_home: Option<PathBuf>,
    /// The runs served; `None`: [`Registry::global`] (every run of the process).
    pub registry: Option<Arc<Registry>>,
    /// How often the registry's sampler records rates and ratios.
    pub sample_interval: Duration,
    /// The runtime the server runs on; `None`: a dedicated one-thread runtime owned by the
    /// server (so a job's own workers never serve HTTP and Python callers need no runtime).
    pub runtime: Option<tokio::runtime::Handle>,
    /// The cluster this process coordinates, when it does (`/api/v1/cluster`).
    pub cluster: Option<Arc<dyn ClusterView>>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            metrics_port: None,
            token: None,
            job_files: true,
            weir_home: None,
            registry: None,
            sample_interval: Duration::from_secs(1),
            runtime: None,
            cluster: None,
        }
    }
}

impl std::fmt::Debug for OpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsConfig")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("metrics_port", &self.metrics_port)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("job_files", &self.job_files)
            .field("weir_home", &self.weir_home)
            .field("sample_interval", &self.sample_interval)
            .field("cluster", &self.cluster.is_some())
            .finish()
    }
}
