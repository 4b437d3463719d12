//! Operating a job that runs as a local cluster, from outside its supervisor: what
//! [`status`] reads from the cluster directory (the supervisor's state, every node's process
//! and address, the newest checkpoint the job completed and each node's checkpoint copies on
//! the job's store), and [`request_cancel`], which the supervisor ([`crate::job::LocalCluster`])
//! honours within a few milliseconds by stopping every node, and [`savepoint`], which copies
//! the newest checkpoint every node completed out of the job's store into a folder of its own
//! that a new run of the job restores (`JobNode::checkpoints` with `restore_from`). `weir
//! status|cancel|savepoint --cluster DIR` call them.

use crate::commit::{RestorePoint, local_store, restore_point};
use crate::job::{JobError, LocalCluster, cluster_err, io, job_path, publish};
use crate::mirror::{CheckpointMirror, node_prefix};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use std::path::Path;
use std::sync::Arc;

/// The cancel request's file in the cluster directory.
pub const CANCEL: &str = "cancel";
/// The supervisor's state file in the cluster directory.
pub const STATE: &str = "state";
/// The object naming a cluster savepoint's checkpoint and node count (written last).
pub const SAVEPOINT: &str = "SAVEPOINT";
/// The first line of [`SAVEPOINT`].
const SAVEPOINT_HEADER: &str = "weir-cluster-savepoint 1";
/// Times [`savepoint`] starts over when a newer checkpoint's retention removed files it copies.
const SAVEPOINT_TRIES: usize = 5;

/// A savepoint of a cluster job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSavepoint {
    /// Its folder.
    pub path: String,
    /// The checkpoint of every node it holds.
    pub checkpoint: u64,
    /// The job's node count (a restore needs as many).
    pub nodes: usize,
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// One node of the current attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// Its index.
    pub node: usize,
    /// Its process.
    pub pid: u32,
    /// Whether that process is running (not exited, not a zombie).
    pub alive: bool,
    /// Where it serves the job's QUIC edges, once it published it.
    pub addr: Option<String>,
    /// Whether its run ended and it waits for the others (or exited).
    pub done: bool,
    /// The ids of its checkpoint copies on the job's store, ascending.
    pub stored_checkpoints: Vec<u64>,
}

/// A local cluster job as its directory shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterStatus {
    /// `running`, `finished`, `cancelled` or `failed`.
    pub state: String,
    /// The current (or last) attempt.
    pub epoch: u64,
    /// Attempts restarted after a node died.
    pub restarts: u32,
    /// Whether a cancel request is waiting for the supervisor.
    pub cancel_requested: bool,
    /// The newest checkpoint every node completed (what a restart restores), if any.
    pub latest_complete: Option<u64>,
    /// Whether every node of one attempt wrote its last checkpoint (the job's output is whole).
    pub output_complete: bool,
    /// The current attempt's nodes.
    pub nodes: Vec<NodeStatus>,
}

/// The supervisor's (or coordinator's) record in `dir`: state, attempt, restarts.
pub(crate) fn state_line(dir: &Path) -> Result<(String, u64, u32), JobError> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut it = text.split_whitespace();
    let bad = || JobError::Setting {
        name: "cluster directory",
        reason: format!("{}: malformed state {text:?}", path.display()),
    };
    let state = it.next().ok_or_else(bad)?.to_owned();
    let epoch = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let restarts = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    Ok((state, epoch, restarts))
}

/// Whether process `pid` runs (Linux: `/proc/PID/stat` exists and is not a zombie's).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rfind(')')?;
            s[after + 1..].split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// The status of the job whose cluster directory is `dir` (an error when no supervisor ever
/// ran there).
pub async fn status(dir: &Path) -> Result<ClusterStatus, JobError> {
    let (state, epoch, restarts) = state_line(dir)?;
    let pids = LocalCluster::pids(dir).map(|(_, p)| p).unwrap_or_default();
    let addrs = dir.join("addrs").join(format!("e{epoch:010}"));
    let store = local_store(&dir.join("store")).map_err(cluster_err)?;
    let mut nodes = Vec::with_capacity(pids.len());
    for (node, pid) in pids.iter().enumerate() {
        let mirror = CheckpointMirror::new(std::sync::Arc::clone(&store), node_prefix(node), dir);
        nodes.push(NodeStatus {
            node,
            pid: *pid,
            alive: alive(*pid),
            addr: std::fs::read_to_string(addrs.join(format!("addr-n{node}")))
                .ok()
                .map(|a| a.trim().to_owned()),
            done: addrs.join(format!("done-n{node}")).exists(),
            stored_checkpoints: mirror.stored().await.map_err(cluster_err)?,
        });
    }
    let (latest_complete, output_complete) = completed(&store, pids.len().max(1)).await?;
    Ok(ClusterStatus {
        state,
        epoch,
        restarts,
        cancel_requested: dir.join(CANCEL).exists(),
        latest_complete,
        output_complete,
        nodes,
    })
}

/// The newest checkpoint every one of `nodes` nodes completed on `store`, and whether every
/// node of one attempt wrote its last checkpoint.
async fn completed(
    store: &Arc<dyn object_store::ObjectStore>,
    nodes: usize,
) -> Result<(Option<u64>, bool), JobError> {
    let point = restore_point(store, &job_path(), nodes)
        .await
        .map_err(cluster_err)?;
    Ok(match point {
        RestorePoint::Fresh => (None, false),
        RestorePoint::Checkpoint(id) | RestorePoint::Draining { id, .. } => (Some(id), false),
        RestorePoint::Finished(ids) => (ids.iter().copied().min(), true),
    })
}

/// The newest checkpoint every one of `nodes` nodes of the job whose shared directory is
/// `dir` completed, if any.
pub async fn latest_complete(dir: &Path, nodes: usize) -> Result<Option<u64>, JobError> {
    let store = local_store(&dir.join("store")).map_err(cluster_err)?;
    Ok(completed(&store, nodes.max(1)).await?.0)
}

/// Asks the supervisor of the job in `dir` to stop every node (the committed output stays
/// what the newest complete checkpoint covers; running the job again on the directory resumes
/// from there). An error when the job is not running.
pub fn request_cancel(dir: &Path) -> Result<(), JobError> {
    let (state, epoch, _) = state_line(dir)?;
    if state != "running" {
        return Err(JobError::Setting {
            name: "cluster directory",
            reason: format!("the job is {state} (attempt {epoch}), not running"),
        });
    }
    publish(&dir.join(CANCEL), &format!("{epoch}\n"))
}

/// Waits (up to `limit`) until the job in `dir` is no longer running; its state then
/// (`cancelled`, `finished`, `failed`), or `running` when the limit passed.
pub fn wait_stopped(dir: &Path, limit: std::time::Duration) -> Result<String, JobError> {
    let until = std::time::Instant::now() + limit;
    loop {
        let (state, _, _) = state_line(dir)?;
        if state != "running" || std::time::Instant::now() > until {
            return Ok(state);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn setting(reason: String) -> JobError {
    JobError::Setting {
        name: "savepoint",
        reason,
    }
}

/// Copies the newest checkpoint every node of the job in `dir` completed into the folder
/// `target` (each node's files under `checkpoints/nNODE/`, then `SAVEPOINT`), starting over
/// with the next one when a newer checkpoint's retention removed a file meanwhile. An error when
/// no checkpoint completed yet, the job finished, or `target` holds a savepoint already.
pub async fn savepoint(dir: &Path, target: &Path) -> Result<ClusterSavepoint, JobError> {
    let nodes = LocalCluster::pids(dir)
        .map(|(_, p)| p.len())
        .ok_or_else(|| setting(format!("{}: no job ran there", dir.display())))?;
    savepoint_of(dir, nodes, target).await
}

/// [`savepoint`] of a job of `nodes` nodes whose shared directory is `dir` (what the
/// coordinator calls: its nodes' processes are on other machines).
pub async fn savepoint_of(
    dir: &Path,
    nodes: usize,
    target: &Path,
) -> Result<ClusterSavepoint, JobError> {
    let store = local_store(&dir.join("store")).map_err(cluster_err)?;
    let to = local_store(target).map_err(cluster_err)?;
    let marker = ObjPath::from(SAVEPOINT);
    if to.head(&marker).await.is_ok() {
        return Err(setting(format!(
            "{} holds a savepoint already",
            target.display()
        )));
    }
    let mut last = String::new();
    for _ in 0..SAVEPOINT_TRIES {
        let id = match restore_point(&store, &job_path(), nodes)
            .await
            .map_err(cluster_err)?
        {
            RestorePoint::Checkpoint(id) => id,
            RestorePoint::Fresh => {
                return Err(setting("no checkpoint of the job completed yet".into()));
            }
            RestorePoint::Draining { finished, .. } => {
                return Err(setting(format!(
                    "nodes {:?} finished their part of the job: it is ending, there is nothing to resume",
                    finished.keys().collect::<Vec<_>>()
                )));
            }
            RestorePoint::Finished(_) => {
                return Err(setting(
                    "the job finished: its output is complete, there is nothing to resume".into(),
                ));
            }
        };
        let (mut files, mut bytes) = (0, 0);
        let mut failed = None;
        for node in 0..nodes {
            let m = CheckpointMirror::new(Arc::clone(&store), node_prefix(node), dir);
            match m.copy_checkpoint(id, &to, &node_prefix(node)).await {
                Ok(t) => {
                    files += t.files;
                    bytes += t.bytes;
                }
                Err(e) => {
                    failed = Some(format!("node {node}: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = failed {
            tracing::info!(checkpoint = id, reason = %why, "a savepoint copy missed a file: starting over");
            last = why;
            continue;
        }
        let text = format!("{SAVEPOINT_HEADER}\nid {id}\nnodes {nodes}\n");
        to.put(&marker, text.into_bytes().into())
            .await
            .map_err(cluster_err)?;
        return Ok(ClusterSavepoint {
            path: target.display().to_string(),
            checkpoint: id,
            nodes,
            files,
            bytes,
        });
    }
    Err(setting(format!(
        "the job's checkpoints moved on during {SAVEPOINT_TRIES} copies; the last: {last}"
    )))
}

/// The checkpoint and node count of the cluster savepoint in folder `path`, `None` when it
/// holds none (no `SAVEPOINT` file).
pub fn read_savepoint(path: &Path) -> Result<Option<(u64, usize)>, JobError> {
    let file = path.join(SAVEPOINT);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&file)(e)),
    };
    let mut lines = text.lines();
    let num = |l: Option<&str>, key: &str| {
        l.and_then(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (
        lines.next() == Some(SAVEPOINT_HEADER),
        num(lines.next(), "id "),
        num(lines.next(), "nodes "),
    ) {
        (true, Some(id), Some(nodes)) => Ok(Some((id, nodes as usize))),
        _ => Err(setting(format!("{}: malformed {text:?}", file.display()))),
    }
}
