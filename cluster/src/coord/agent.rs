//! A node agent: joins the coordinator, starts the job program of each attempt it is given
//! (with the node's place in the job in its environment), reports its exit, stops it when told
//! or when the coordinator is lost, and joins again.

use super::proto::{self, Assignment, Reply, Request};
use crate::job::NodeSettings;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How a node agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's name (its certificate's).
    pub name: String,
    /// The coordinator's name (its certificate's).
    pub coordinator: String,
    /// Where the node's job programs serve their edges.
    pub data: SocketAddr,
    /// The folder with the cluster CA and the node's certificate and key.
    pub certs: PathBuf,
    /// Where the programs' logs go (`logs/JOB-eEPOCH.{stdout,stderr}`).
    pub work: PathBuf,
    /// The longest wait between attempts to join.
    pub max_backoff: Duration,
}

/// Why an agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The coordinator refused the node.
    #[error("the coordinator refused node {name}: {reason}")]
    Refused {
        /// The node.
        name: String,
        /// What it said.
        reason: String,
    },
    /// The work folder could not be made.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// The program an agent runs for one attempt.
struct Running {
    job: String,
    epoch: u64,
    child: Child,
    stderr: PathBuf,
}

/// Bytes of a program's stderr reported with its exit.
const TAIL: u64 = 2000;

/// Runs the agent until the coordinator refuses it (joining again whenever the control stream
/// ends, its program stopped first).
pub async fn run_agent(transport: Arc<dyn Transport>, cfg: AgentConfig) -> Result<(), AgentError> {
    let logs = cfg.work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| AgentError::Io {
        path: logs.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut backoff = Duration::from_millis(50);
    loop {
        match session(&transport, &cfg).await {
            Ok(Some(reason)) => {
                return Err(AgentError::Refused {
                    name: cfg.name.clone(),
                    reason,
                });
            }
            Ok(None) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(node = %cfg.name, coordinator = %cfg.coordinator, error = %e, retry_in = ?backoff, "node agent: cannot reach the coordinator");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(cfg.max_backoff);
    }
}

/// One joined session; `Some(reason)` when the coordinator refused the node.
async fn session(
    transport: &Arc<dyn Transport>,
    cfg: &AgentConfig,
) -> Result<Option<String>, proto::ProtoError> {
    let mut ch = proto::open(Arc::clone(transport), &cfg.coordinator).await?;
    proto::send(
        &mut ch.tx,
        &Request::Join {
            name: cfg.name.clone(),
            data: cfg.data,
        },
    )
    .await?;
    match proto::recv::<Reply>(&mut ch.rx).await? {
        Some(Reply::Welcome) => {}
        Some(Reply::Refused(reason)) => return Ok(Some(reason)),
        other => {
            return Err(proto::ProtoError::Codec(format!(
                "expected a welcome, got {other:?}"
            )));
        }
    }
    tracing::info!(node = %cfg.name, coordinator = %cfg.coordinator, "node agent: joined");
    let mut running: Option<Running> = None;
    let ended = loop {
        tokio::select! {
            m = proto::recv::<Reply>(&mut ch.rx) => match m {
                Ok(Some(Reply::Start(a))) => {
                    if let Some(r) = running.take() {
                        let report = stop(r).await;
                        proto::send(&mut ch.tx, &report).await?;
                    }
                    match start(cfg, &a) {
                        Ok(r) => running = Some(r),
                        Err(why) => {
                            tracing::warn!(node = %cfg.name, job = %a.job, epoch = a.epoch, %why, "node agent: cannot start the program");
                            let report = Request::Exited { job: a.job, epoch: a.epoch, code: None, why };
                            proto::send(&mut ch.tx, &report).await?;
                        }
                    }
                }
                Ok(Some(Reply::Stop { job, epoch })) => {
                    if running.as_ref().is_some_and(|r| r.job == job && r.epoch == epoch)
                        && let Some(r) = running.take()
                    {
                        let report = stop(r).await;
                        proto::send(&mut ch.tx, &report).await?;
                    }
                }
                Ok(Some(other)) => {
                    tracing::warn!(node = %cfg.name, reply = ?other, "node agent: unexpected message ignored");
                }
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            },
            status = wait(&mut running) => {
                if let Some(r) = running.take() {
                    let report = exited(&r, status.as_ref().ok().and_then(|s| s.code()));
                    tracing::info!(node = %cfg.name, job = %r.job, epoch = r.epoch, ?status, "node agent: the program ended");
                    proto::send(&mut ch.tx, &report).await?;
                }
            }
        }
    };
    // A node cut off from its coordinator must not go on writing: stop the program.
    if let Some(r) = running.take() {
        tracing::warn!(node = %cfg.name, job = %r.job, epoch = r.epoch, "node agent: lost the coordinator: stopping the program");
        let _ = stop(r).await;
    }
    ended
}

/// Waits for the running program's exit (forever when there is none).
async fn wait(running: &mut Option<Running>) -> std::io::Result<std::process::ExitStatus> {
    match running {
        Some(r) => r.child.wait().await,
        None => std::future::pending().await,
    }
}

/// Kills the program and waits for it; its exit report.
async fn stop(mut r: Running) -> Request {
    let _ = r.child.start_kill();
    let code = r.child.wait().await.ok().and_then(|s| s.code());
    exited(&r, code)
}

fn exited(r: &Running, code: Option<i32>) -> Request {
    Request::Exited {
        job: r.job.clone(),
        epoch: r.epoch,
        code,
        why: tail(&r.stderr),
    }
}

/// The last [`TAIL`] bytes of `path`, trimmed to whole characters.
fn tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.take(TAIL).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim().to_owned()
}

/// The program's arguments with `{node}` and `{name}` replaced.
pub fn substitute(program: &[String], node: usize, name: &str) -> Vec<String> {
    program
        .iter()
        .map(|a| {
            a.replace("{node}", &node.to_string())
                .replace("{name}", name)
        })
        .collect()
}

/// Starts the assignment's program with the node's settings in its environment.
fn start(cfg: &AgentConfig, a: &Assignment) -> Result<Running, String> {
    if a.peers.get(a.node).is_none_or(|(n, _)| *n != cfg.name) {
        return Err(format!(
            "the assignment makes node {} someone else ({:?})",
            a.node,
            a.peers.get(a.node)
        ));
    }
    let settings = NodeSettings {
        node: a.node,
        nodes: a.peers.len(),
        cluster_dir: a.dir.clone(),
        epoch: a.epoch,
        network: Some(crate::job::NetworkSettings {
            peers: a.peers.clone(),
            certs: cfg.certs.clone(),
        }),
    };
    let mut argv = substitute(&a.program, a.node, &cfg.name);
    // A Python script runs with the node's interpreter ($WEIR_PYTHON, else python3).
    if argv.first().is_some_and(|p| p.ends_with(".py")) {
        let python = std::env::var("WEIR_PYTHON").unwrap_or_else(|_| "python3".into());
        argv.insert(0, python);
    }
    let (exe, args) = argv.split_first().ok_or("an empty program")?;
    let logs = cfg.work.join("logs");
    let log = |what: &str| logs.join(format!("{}-e{:04}.{what}", a.job, a.epoch));
    let file = |p: PathBuf| std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()));
    let stderr = log("stderr");
    let child = Command::new(exe)
        .args(args)
        .envs(settings.env())
        .stdin(std::process::Stdio::null())
        .stdout(file(log("stdout"))?)
        .stderr(file(stderr.clone())?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {exe}: {e}"))?;
    tracing::info!(node = %cfg.name, job = %a.job, epoch = a.epoch, index = a.node, pid = ?child.id(), "node agent: started the program");
    Ok(Running {
        job: a.job.clone(),
        epoch: a.epoch,
        child,
        stderr,
    })
}
