//! The settings of a job, whoever starts it: `weir::cli` flags, `weir run` (which hands them to a
//! Python child as `WEIR_*` environment variables) and the Python extension (which reads them
//! back with [`JobSettings::from_env`]). One place maps them onto a [`Materializer`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weir_engine::{CheckpointConfig, Materializer};

/// The environment variables `weir run` sets for a Python child (and that the extension reads).
pub mod env {
    /// The job's name (`weir run` passes the script's file stem).
    pub const JOB_NAME: &str = "WEIR_JOB_NAME";
    /// Port of the UI and HTTP API (`0`: any free port); set means the server starts.
    pub const UI_PORT: &str = "WEIR_UI_PORT";
    /// Port of a separate Prometheus `/metrics` listener.
    pub const METRICS_PORT: &str = "WEIR_METRICS_PORT";
    /// Address the server listens on (default `127.0.0.1`).
    pub const BIND: &str = "WEIR_BIND";
    /// The token mutating API calls need (default: random per process).
    pub const TOKEN: &str = "WEIR_TOKEN";
    /// Where checkpoints are kept (checkpoints are on when set).
    pub const STATE_DIR: &str = "WEIR_STATE_DIR";
    /// Time between checkpoints (`10s`, `500ms`).
    pub const CHECKPOINT_INTERVAL: &str = "WEIR_CHECKPOINT_INTERVAL";
    /// A savepoint to start from when the state directory holds no checkpoint.
    pub const FROM_SAVEPOINT: &str = "WEIR_FROM_SAVEPOINT";
    /// The run's default parallelism.
    pub const PARALLELISM: &str = "WEIR_PARALLELISM";
    /// `text` or `json` logs.
    pub const LOG_FORMAT: &str = "WEIR_LOG_FORMAT";
    /// Print the graph in this format (`mermaid`, `dot`, `svg`) instead of running it.
    pub const VISUALIZE: &str = "WEIR_VISUALIZE";
    /// With [`VISUALIZE`]: `1` prints the physical plan rather than the logical graph.
    pub const VISUALIZE_PHYSICAL: &str = "WEIR_VISUALIZE_PHYSICAL";
}

/// The checkpoint interval when a state directory is given without one.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Log output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used on the command line and in `WEIR_LOG_FORMAT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// Where the job's UI, HTTP API and metrics are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSettings {
    /// Port of the UI and API (`0`: any free port).
    pub port: u16,
    /// A separate port for `/metrics` (`None`: served with the UI).
    pub metrics_port: Option<u16>,
    /// The listening address.
    pub bind: IpAddr,
    /// The token of mutating calls (`None`: a random one).
    pub token: Option<String>,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            port: 0,
            metrics_port: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            token: None,
        }
    }
}

/// A job's settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSettings {
    /// The run's name (shown by `weir jobs`).
    pub name: Option<String>,
    /// Where checkpoints are kept (`None`: no checkpoints).
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints (default [`DEFAULT_CHECKPOINT_INTERVAL`]).
    pub checkpoint_interval: Option<Duration>,
    /// A savepoint to start from when the state directory holds no checkpoint.
    pub from_savepoint: Option<PathBuf>,
    /// The run's default parallelism.
    pub parallelism: Option<usize>,
    /// The UI and API (`None`: not served).
    pub ui: Option<UiSettings>,
    /// The log format.
    pub log_format: LogFormat,
}

/// A setting that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// An environment variable holds a value that does not parse.
    #[error("{var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A checkpoint setting was given without a state directory.
    #[error("{0} needs a state directory (--state-dir / WEIR_STATE_DIR) to keep checkpoints in")]
    NeedsStateDir(&'static str),
    /// A zero parallelism or checkpoint interval.
    #[error("{0} must be above zero")]
    Zero(&'static str),
}

/// Parses a duration written as humantime text (`10s`, `500ms`, `1m 30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 10s or 500ms: {e}"))
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parsed<T>(
    name: &'static str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingsError> {
    match var(name) {
        None => Ok(None),
        Some(v) => f(&v).map(Some).map_err(|reason| SettingsError::Env {
            var: name,
            value: v,
            reason,
        }),
    }
}

impl JobSettings {
    /// Reads the `WEIR_*` variables of [`env`]; the UI is on when `WEIR_UI_PORT` is set.
    pub fn from_env() -> Result<Self, SettingsError> {
        let num = |s: &str| s.parse::<usize>().map_err(|e| e.to_string());
        let port = |s: &str| s.parse::<u16>().map_err(|e| e.to_string());
        let ui = match parsed(env::UI_PORT, port)? {
            None => None,
            Some(p) => Some(UiSettings {
                port: p,
                metrics_port: parsed(env::METRICS_PORT, port)?,
                bind: parsed(env::BIND, |s| {
                    s.parse::<IpAddr>().map_err(|e| e.to_string())
                })?
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
                token: var(env::TOKEN),
            }),
        };
        let log_format = match parsed(env::LOG_FORMAT, |s| match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".to_owned()),
        })? {
            Some(f) => f,
            None => LogFormat::Text,
        };
        let s = Self {
            name: var(env::JOB_NAME),
            state_dir: var(env::STATE_DIR).map(PathBuf::from),
            checkpoint_interval: parsed(env::CHECKPOINT_INTERVAL, parse_duration)?,
            from_savepoint: var(env::FROM_SAVEPOINT).map(PathBuf::from),
            parallelism: parsed(env::PARALLELISM, num)?,
            ui,
            log_format,
        };
        s.check()?;
        Ok(s)
    }

    /// The `WEIR_*` variables that hand these settings to a child process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(n) = &self.name {
            v.push((env::JOB_NAME, n.clone()));
        }
        if let Some(ui) = &self.ui {
            v.push((env::UI_PORT, ui.port.to_string()));
            if let Some(p) = ui.metrics_port {
                v.push((env::METRICS_PORT, p.to_string()));
            }
            v.push((env::BIND, ui.bind.to_string()));
            if let Some(t) = &ui.token {
                v.push((env::TOKEN, t.clone()));
            }
        }
        if let Some(d) = &self.state_dir {
            v.push((env::STATE_DIR, d.display().to_string()));
        }
        if let Some(i) = self.checkpoint_interval {
            v.push((
                env::CHECKPOINT_INTERVAL,
                humantime::format_duration(i).to_string(),
            ));
        }
        if let Some(p) = &self.from_savepoint {
            v.push((env::FROM_SAVEPOINT, p.display().to_string()));
        }
        if let Some(p) = self.parallelism {
            v.push((env::PARALLELISM, p.to_string()));
        }
        v.push((env::LOG_FORMAT, self.log_format.name().to_owned()));
        v
    }

    /// Checks the settings belong together (checkpoint settings need a state directory, counts
    /// and intervals are above zero).
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.state_dir.is_none() {
            if self.checkpoint_interval.is_some() {
                return Err(SettingsError::NeedsStateDir("--checkpoint-interval"));
            }
            if self.from_savepoint.is_some() {
                return Err(SettingsError::NeedsStateDir("--from-savepoint"));
            }
        }
        if self.parallelism == Some(0) {
            return Err(SettingsError::Zero("--parallelism"));
        }
        if self.checkpoint_interval.is_some_and(|d| d.is_zero()) {
            return Err(SettingsError::Zero("--checkpoint-interval"));
        }
        Ok(())
    }

    /// The checkpoint configuration (`None` without a state directory).
    pub fn checkpoint_config(&self) -> Option<CheckpointConfig> {
        let dir = self.state_dir.as_ref()?;
        let c = CheckpointConfig::new(
            self.checkpoint_interval
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL),
            dir,
        );
        Some(match &self.from_savepoint {
            Some(p) => c.restore_from(p),
            None => c,
        })
    }

    /// `m` with the run's name, parallelism and checkpoints of these settings.
    pub fn apply(&self, mut m: Materializer) -> Materializer {
        if let Some(n) = &self.name {
            m = m.with_name(n.clone());
        }
        if let Some(p) = self.parallelism {
            m = m.with_parallelism(p);
        }
        if let Some(c) = self.checkpoint_config() {
            m = m.with_checkpoints(c);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_environment_text() {
        let s = JobSettings {
            name: Some("ticker".into()),
            state_dir: Some("/tmp/st".into()),
            checkpoint_interval: Some(Duration::from_millis(1500)),
            from_savepoint: Some("/tmp/sp".into()),
            parallelism: Some(3),
            ui: Some(UiSettings {
                port: 0,
                metrics_port: Some(9100),
                bind: IpAddr::from([0, 0, 0, 0]),
                token: Some("t0k".into()),
            }),
            log_format: LogFormat::Json,
        };
        assert_eq!(
            s.to_env(),
            vec![
                (env::JOB_NAME, "ticker".to_owned()),
                (env::UI_PORT, "0".to_owned()),
                (env::METRICS_PORT, "9100".to_owned()),
                (env::BIND, "0.0.0.0".to_owned()),
                (env::TOKEN, "t0k".to_owned()),
                (env::STATE_DIR, "/tmp/st".to_owned()),
                (env::CHECKPOINT_INTERVAL, "1s 500ms".to_owned()),
                (env::FROM_SAVEPOINT, "/tmp/sp".to_owned()),
                (env::PARALLELISM, "3".to_owned()),
                (env::LOG_FORMAT, "json".to_owned()),
            ]
        );
        assert_eq!(parse_duration("1s 500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn durations_are_humantime_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        let e = parse_duration("soon").unwrap_err();
        assert!(
            e.starts_with("\"soon\" is not a duration like 10s or 500ms"),
            "{e}"
        );
    }

    #[test]
    fn checkpoint_settings_need_a_state_dir_and_counts_are_positive() {
        let s = JobSettings {
            checkpoint_interval: Some(Duration::from_secs(1)),
            ..JobSettings::default()
        };
        assert_eq!(
            s.check(),
            Err(SettingsError::NeedsStateDir("--checkpoint-interval"))
        );
        let s = JobSettings {
            from_savepoint: Some("/sp".into()),
            ..JobSettings::default()
        };
        assert_eq!(
            s.check(),
            Err(SettingsError::NeedsStateDir("--from-savepoint"))
        );
        let s = JobSettings {
            parallelism: Some(0),
            ..JobSettings::default()
        };
        assert_eq!(s.check(), Err(SettingsError::Zero("--parallelism")));
        let s = JobSettings {
            state_dir: Some("/st".into()),
            checkpoint_interval: Some(Duration::ZERO),
            ..JobSettings::default()
        };
        assert_eq!(s.check(), Err(SettingsError::Zero("--checkpoint-interval")));
        let s = JobSettings {
            state_dir: Some("/st".into()),
            ..JobSettings::default()
        };
        assert_eq!(s.check(), Ok(()));
        let c = s
            .checkpoint_config()
            .map(|c| (c.interval, c.dir, c.restore_from));
        assert_eq!(
            c,
            Some((DEFAULT_CHECKPOINT_INTERVAL, PathBuf::from("/st"), None))
        );
        assert!(JobSettings::default().checkpoint_config().is_none());
    }
}
