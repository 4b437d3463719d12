//! Starts the job's UI/API/metrics server (`weir-ops`) from [`UiSettings`].

use super::settings::UiSettings;

/// The server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or starting the server failed.
    #[error("cannot serve the UI on {addr}: {reason}")]
    Start {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// A running server; dropping it stops it and removes the job file.
pub struct Served {
    url: String,
    token: String,
}

impl Served {
    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The token mutating calls need.
    pub fn token(&self) -> &str {
        &self.token
    }
    /// The UI's URL with the token in its fragment (`http://127.0.0.1:PORT/#token=...`).
    pub fn ui_url(&self) -> String {
        format!("{}/#token={}", self.url, self.token)
    }
}

/// Starts the server on `rt`.
pub fn start(_rt: &tokio::runtime::Handle, ui: &UiSettings) -> Result<Served, ServeError> {
    Err(ServeError::Start {
        addr: format!("{}:{}", ui.bind, ui.port),
        reason: "the operations server is not built in".into(),
    })
}
