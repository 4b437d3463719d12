//! The HTTP server of a job: the JSON API (`/api/v1`, `docs/ops-api.md`), the embedded web UI
//! (`/`) and Prometheus metrics (`/metrics`), on axum over the caller's runtime or a dedicated
//! one-thread runtime.

mod api;
mod assets;
mod auth;
mod views;

use crate::jobfile::{self, JobFile};
use crate::{OpsConfig, OpsError, Registry};
use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) token: Arc<str>,
    pub(crate) pid: u32,
    pub(crate) cluster: Option<Arc<dyn crate::ClusterView>>,
}

/// The content type of `/metrics`: OpenMetrics text, which Prometheus scrapes.
pub const METRICS_CONTENT_TYPE: &str = crate::prom::CONTENT_TYPE;

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style_css))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/jobs", get(api::jobs))
        .route("/api/v1/cluster", get(api::cluster))
        .route("/api/v1/jobs/{id}", get(api::job))
        .route("/api/v1/jobs/{id}/plan", get(api::plan))
        .route("/api/v1/jobs/{id}/checkpoints", get(api::checkpoints))
        .route("/api/v1/jobs/{id}/errors", get(api::errors))
        .route("/api/v1/jobs/{id}/cancel", post(api::cancel))
        .route("/api/v1/jobs/{id}/savepoint", post(api::savepoint))
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::not_found)
        .with_state(state)
}

fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .with_state(state)
}

/// A running operations server; shuts down (and removes its job file) when dropped.
pub struct OpsServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    token: Arc<str>,
    job_file: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    runtime: OwnedRuntime,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for OpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsServer")
            .field("addr", &self.addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("job_file", &self.job_file)
            .finish()
    }
}

/// The server's dedicated runtime, shut down without blocking when dropped (a server may be
/// dropped inside an async context).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, OpsError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| OpsError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| OpsError::Bind { addr, source })?;
    Ok(l)
}

fn serve(
    handle: &tokio::runtime::Handle,
    l: std::net::TcpListener,
    app: Router,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), OpsError> {
    let addr = l.local_addr().map_err(|source| OpsError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let _enter = handle.enter();
    let l =
        tokio::net::TcpListener::from_std(l).map_err(|source| OpsError::Bind { addr, source })?;
    let task = handle.spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::warn!(%addr, error = %e, "ops server stopped");
        }
    });
    Ok((addr, task))
}

/// Starts serving the API, UI and metrics as `cfg` says; returns once the listeners are bound.
pub fn start(cfg: OpsConfig) -> Result<OpsServer, OpsError> {
    let token: Arc<str> = match cfg.token {
        Some(t) if auth::valid_token(&t) => Arc::from(t),
        Some(_) => return Err(OpsError::BadToken),
        None => Arc::from(auth::random_token()?),
    };
    let registry = cfg
        .registry
        .unwrap_or_else(|| Arc::clone(Registry::global()));
    let main = bind(SocketAddr::new(cfg.bind, cfg.port))?;
    let metrics = match cfg.metrics_port {
        Some(p) => Some(bind(SocketAddr::new(cfg.bind, p))?),
        None => None,
    };
    let (runtime, handle) = match cfg.runtime {
        Some(h) => (OwnedRuntime(None), h),
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("weir-ops")
                .enable_all()
                .build()
                .map_err(OpsError::Runtime)?;
            let h = rt.handle().clone();
            (OwnedRuntime(Some(rt)), h)
        }
    };
    let state = AppState {
        registry: Arc::clone(&registry),
        token: Arc::clone(&token),
        pid: std::process::id(),
        cluster: cfg.cluster.clone(),
    };
    let mut tasks = Vec::new();
    let (addr, t) = serve(&handle, main, router(state.clone()))?;
    tasks.push(t);
    let metrics_addr = match metrics {
        Some(l) => {
            let (a, t) = serve(&handle, l, metrics_router(state))?;
            tasks.push(t);
            Some(a)
        }
        None => None,
    };
    tasks.push(registry.spawn_sampler(&handle, cfg.sample_interval));
    let mut server = OpsServer {
        addr,
        metrics_addr,
        token,
        job_file: None,
        tasks,
        runtime,
        registry,
    };
    if cfg.job_files {
        let home = match cfg.weir_home {
            Some(h) => h,
            None => jobfile::weir_home()?,
        };
        let job = JobFile {
            pid: std::process::id(),
            url: server.url(),
            token: server.token().to_owned(),
            started_at_ms: views::unix_ms(SystemTime::now()),
        };
        server.job_file = Some(jobfile::write(&home, &job)?);
    }
    tracing::info!(url = %server.url(), "ops server listening");
    Ok(server)
}

impl OpsServer {
    /// Base URL of the API and UI (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The UI's URL with the token in its fragment (`/#token=...`), to print at start.
    pub fn ui_url(&self) -> String {
        format!("{}/#token={}", self.url(), self.token)
    }

    /// The address the API and UI listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the separate `/metrics` listener, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The bearer token of mutating calls.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The job file written for discovery, if any.
    pub fn job_file(&self) -> Option<&std::path::Path> {
        self.job_file.as_deref()
    }

    /// The registry whose runs are served.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops the listeners and the sampler and removes the job file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(rt) = self.runtime.0.take() {
            rt.shutdown_background();
        }
        if let Some(p) = self.job_file.take()
            && let Err(e) = std::fs::remove_file(&p)
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot remove the job file");
        }
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
