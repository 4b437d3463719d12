//! Starts the job's UI/API/metrics server (`weir_ops::start`) from [`UiSettings`].

use super::settings::UiSettings;

/// The server did not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the UI on {addr}: {source}")]
pub struct ServeError {
    /// The address asked for.
    pub addr: String,
    /// Why.
    #[source]
    pub source: weir_ops::OpsError,
}

/// A running server serving every run of the process; dropping it stops it and removes the
/// job file.
#[derive(Debug)]
pub struct Served(weir_ops::OpsServer);

impl Served {
    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.0.url()
    }
    /// The token mutating calls need.
    pub fn token(&self) -> &str {
        self.0.token()
    }
    /// The UI's URL with the token in its fragment (`http://127.0.0.1:PORT/#token=...`).
    pub fn ui_url(&self) -> String {
        self.0.ui_url()
    }
    /// The server itself.
    pub fn server(&self) -> &weir_ops::OpsServer {
        &self.0
    }
}

/// Starts the server (on a runtime of its own) with a job file for discovery.
pub fn start(ui: &UiSettings) -> Result<Served, ServeError> {
    let cfg = weir_ops::OpsConfig {
        bind: ui.bind,
        port: ui.port,
        metrics_port: ui.metrics_port,
        token: ui.token.clone(),
        ..weir_ops::OpsConfig::default()
    };
    weir_ops::start(cfg)
        .map(Served)
        .map_err(|source| ServeError {
            addr: format!("{}:{}", ui.bind, ui.port),
            source,
        })
}
