//! The commit log of a job spread over processes: the second phase of its checkpoints.
//!
//! Every process (node) of a job runs its part of the same graph and writes its part of each
//! checkpoint into its own checkpoint folder, numbering checkpoints alike (barriers cross
//! nodes in band on [`crate::edge::exchange_source`] edges). A checkpoint is complete for
//! the job only once every node wrote it: each node records `prep/ID/NODE` in the log once
//! it wrote checkpoint `ID` and waits until all nodes did ([`CommitLog`] is the engine's
//! [`CheckpointCommit`]); only then do its sinks commit the output the checkpoint covers. A
//! node whose run ended records its last checkpoint under `last/NODE`; a job whose nodes all
//! did is finished. On a restart every node restores the newest checkpoint every node wrote
//! ([`restore_point`]) and discards its newer ones.
//!
//! The log lives in an [`ObjectStore`] every node reaches (a local folder for processes on
//! one machine, S3/GCS-compatible storage in production), one folder per attempt (epoch), so
//! what an older attempt recorded never completes a newer one's checkpoint; a [`Fence`]
//! refuses the records of an attempt once a newer one started.

use crate::epoch::{Epoch, Fence, FenceError};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use weir_engine::checkpoint::CheckpointCommit;

/// Why the commit log failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The object store failed.
    #[error("commit log {path}: {reason}")]
    Store {
        /// The object.
        path: String,
        /// What the store said.
        reason: String,
    },
    /// A record does not parse.
    #[error("commit log {path}: malformed record {content:?}")]
    Malformed {
        /// The object.
        path: String,
        /// What it holds (its start).
        content: String,
    },
    /// A newer attempt started.
    #[error(transparent)]
    Fenced(#[from] FenceError),
}

/// The commit log store in folder `dir` on this machine (created when missing).
pub fn local_store(dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>, CommitError> {
    let fail = |reason: String| CommitError::Store {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(store))
}

/// Where each node restarts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestorePoint {
    /// No checkpoint was completed by every node: start afresh (discard everything).
    Fresh,
    /// The newest checkpoint every node wrote.
    Checkpoint(u64),
    /// The newest checkpoint `id` complete for the job while some nodes had finished: those
    /// (in `finished`, with their last checkpoint, older than `id`) restore their final state,
    /// every other node restores `id`.
    Draining {
        /// The checkpoint.
        id: u64,
        /// The nodes whose run had ended before it, and their last checkpoint.
        finished: BTreeMap<usize, u64>,
    },
    /// Every node wrote its last checkpoint (the job finished): each restores its own.
    Finished(Vec<u64>),
}

impl RestorePoint {
    /// The checkpoint node `node` restores (0: none; its newer ones are discarded).
    pub fn for_node(&self, node: usize) -> u64 {
        match self {
            RestorePoint::Fresh => 0,
            RestorePoint::Checkpoint(id) => *id,
            RestorePoint::Draining { id, finished } => finished.get(&node).copied().unwrap_or(*id),
            RestorePoint::Finished(ids) => ids.get(node).copied().unwrap_or(0),
        }
    }

    /// The id every node numbers its next checkpoints after, so they stay alike on all nodes
    /// (0: each after its own restored one).
    pub fn number_after(&self) -> u64 {
        match self {
            RestorePoint::Checkpoint(id) | RestorePoint::Draining { id, .. } => *id,
            RestorePoint::Fresh | RestorePoint::Finished(_) => 0,
        }
    }
}

/// What one attempt recorded.
#[derive(Debug, Default)]
struct Attempt {
    /// The nodes that wrote each checkpoint.
    prepared: BTreeMap<u64, BTreeSet<usize>>,
    /// The nodes where each checkpoint failed.
    aborted: BTreeMap<u64, BTreeSet<usize>>,
    /// Each node's last checkpoint.
    last: BTreeMap<usize, u64>,
}

fn store_err(path: &Path, e: object_store::Error) -> CommitError {
    CommitError::Store {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

fn attempt_dir(job: &Path, epoch: Epoch) -> Path {
    job.clone().join(format!("e{:010}", epoch.0))
}

/// Reads every attempt's records under `job`.
async fn read_all(
    store: &Arc<dyn ObjectStore>,
    job: &Path,
) -> Result<BTreeMap<u64, Attempt>, CommitError> {
    let mut out: BTreeMap<u64, Attempt> = BTreeMap::new();
    let mut list = store.list(Some(job));
    while let Some(meta) = list.next().await {
        let meta = meta.map_err(|e| store_err(job, e))?;
        let parts: Vec<String> = meta
            .location
            .parts()
            .map(|p| p.as_ref().to_owned())
            .collect();
        let n = parts.len();
        if n < 3 {
            continue;
        }
        let malformed = || CommitError::Malformed {
            path: meta.location.to_string(),
            content: String::new(),
        };
        // .../eEPOCH/prep/ID/nNODE or .../eEPOCH/last/nNODE
        let node = |s: &str| {
            s.strip_prefix('n')
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(malformed)
        };
        let epoch = |s: &str| {
            s.strip_prefix('e')
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(malformed)
        };
        if n >= 4 && (parts[n - 3] == "prep" || parts[n - 3] == "abort") {
            let e = epoch(&parts[n - 4])?;
            let id = parts[n - 2].parse::<u64>().map_err(|_| malformed())?;
            let who = node(&parts[n - 1])?;
            let a = out.entry(e).or_default();
            let map = if parts[n - 3] == "prep" {
                &mut a.prepared
            } else {
                &mut a.aborted
            };
            map.entry(id).or_default().insert(who);
        } else if parts[n - 2] == "last" {
            let e = epoch(&parts[n - 3])?;
            let who = node(&parts[n - 1])?;
            let got = store
                .get_opts(&meta.location, GetOptions::default())
                .await
                .map_err(|e| store_err(&meta.location, e))?;
            let bytes = got
                .bytes()
                .await
                .map_err(|e| store_err(&meta.location, e))?;
            let text = String::from_utf8_lossy(&bytes);
            let id = text
                .trim()
                .parse::<u64>()
                .map_err(|_| CommitError::Malformed {
                    path: meta.location.to_string(),
                    content: text.chars().take(64).collect(),
                })?;
            out.entry(e).or_default().last.insert(who, id);
        }
    }
    Ok(out)
}

/// Where the nodes of job `job` (of `nodes` nodes) restart from: every node's last
/// checkpoint when every node of one attempt wrote its last one, else the newest checkpoint
/// every node of one attempt wrote, else nothing.
pub async fn restore_point(
    store: &Arc<dyn ObjectStore>,
    job: &Path,
    nodes: usize,
) -> Result<RestorePoint, CommitError> {
    let all = read_all(store, job).await?;
    let finished = all
        .values()
        .rev()
        .find(|a| (0..nodes).all(|n| a.last.contains_key(&n)));
    if let Some(a) = finished {
        return Ok(RestorePoint::Finished(
            (0..nodes)
                .map(|n| a.last.get(&n).copied().unwrap_or(0))
                .collect(),
        ));
    }
    let newest = all
        .values()
        .flat_map(|a| {
            a.prepared
                .iter()
                .filter(|(id, who)| a.covers(**id, who, nodes))
                .map(move |(id, _)| (*id, a))
        })
        .max_by_key(|(id, _)| *id);
    Ok(match newest {
        None => RestorePoint::Fresh,
        Some((id, a)) => {
            let finished: BTreeMap<usize, u64> = (0..nodes)
                .filter(|n| !a.prepared.get(&id).is_some_and(|who| who.contains(n)))
                .filter_map(|n| a.last.get(&n).map(|l| (n, *l)))
                .collect();
            if finished.is_empty() {
                RestorePoint::Checkpoint(id)
            } else {
                RestorePoint::Draining { id, finished }
            }
        }
    })
}

impl Attempt {
    /// Whether checkpoint `id`, written by `who`, is complete for all `nodes`: every node wrote
    /// it, or had written its last checkpoint before it (a node whose run ended takes part in
    /// no later checkpoint: its final state stands for it, and its edges have ended).
    fn covers(&self, id: u64, who: &BTreeSet<usize>, nodes: usize) -> bool {
        (0..nodes).all(|n| who.contains(&n) || self.last.get(&n).is_some_and(|l| *l < id))
    }
}

/// One node's side of the commit log of one attempt.
pub struct CommitLog {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    node: usize,
    nodes: usize,
    fence: Fence,
    poll: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("dir", &self.dir.to_string())
            .field("node", &self.node)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl CommitLog {
    /// Node `node` of `nodes` in the attempt `fence` started, recording under `job` in
    /// `store`; it polls the log every 5 ms and gives up on a checkpoint after 30 s (a last
    /// checkpoint waits as long as it takes).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        job: &Path,
        node: usize,
        nodes: usize,
        fence: Fence,
    ) -> Self {
        Self {
            dir: attempt_dir(job, fence.epoch()),
            store,
            node,
            nodes,
            fence,
            poll: Duration::from_millis(5),
            timeout: Duration::from_secs(30),
        }
    }

    /// Gives up on a checkpoint the other nodes did not write within `d`.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    async fn put(&self, path: Path, body: String) -> Result<(), CommitError> {
        self.fence.check(&format!("commit log record {path}"))?;
        self.store
            .put_opts(&path, PutPayload::from(body), PutOptions::default())
            .await
            .map_err(|e| store_err(&path, e))?;
        Ok(())
    }

    /// Records that this node wrote checkpoint `id` (`last`: its final one).
    pub async fn record(&self, id: u64, last: bool) -> Result<(), CommitError> {
        let me = format!("n{:04}", self.node);
        self.put(
            self.dir
                .clone()
                .join("prep")
                .join(format!("{id:020}"))
                .join(me.as_str()),
            String::new(),
        )
        .await?;
        if last {
            self.put(
                self.dir.clone().join("last").join(me.as_str()),
                id.to_string(),
            )
            .await?;
        }
        Ok(())
    }

    /// Records that checkpoint `id` failed on this node.
    pub async fn abort(&self, id: u64) -> Result<(), CommitError> {
        let me = format!("n{:04}", self.node);
        self.put(
            self.dir
                .clone()
                .join("abort")
                .join(format!("{id:020}"))
                .join(me.as_str()),
            String::new(),
        )
        .await
    }

    /// Where checkpoint `id` stands for the job: complete once every node of this attempt
    /// wrote it (or, for a last checkpoint, once every node wrote its last one), failed once
    /// a node recorded that it failed there.
    pub async fn status(&self, id: u64, last: bool) -> Result<CommitStatus, CommitError> {
        let all = read_all(&self.store, &self.dir).await?;
        let Some(a) = all.values().next() else {
            return Ok(CommitStatus::Waiting);
        };
        if a.prepared
            .get(&id)
            .is_some_and(|who| a.covers(id, who, self.nodes))
            || (last && (0..self.nodes).all(|n| a.last.contains_key(&n)))
        {
            return Ok(CommitStatus::Complete);
        }
        if let Some(n) = a.aborted.get(&id).and_then(|who| who.iter().next()) {
            return Ok(CommitStatus::Failed(*n));
        }
        Ok(CommitStatus::Waiting)
    }

    /// Whether checkpoint `id` is complete for the job (see [`CommitLog::status`]).
    pub async fn complete(&self, id: u64, last: bool) -> Result<bool, CommitError> {
        Ok(self.status(id, last).await? == CommitStatus::Complete)
    }

    async fn prepare(&self, id: u64, last: bool) -> Result<(), String> {
        self.record(id, last).await.map_err(|e| e.to_string())?;
        let start = tokio::time::Instant::now();
        loop {
            match self.status(id, last).await.map_err(|e| e.to_string())? {
                CommitStatus::Complete => {
                    tracing::debug!(
                        checkpoint = id,
                        node = self.node,
                        "checkpoint complete on every node"
                    );
                    return Ok(());
                }
                CommitStatus::Failed(n) => return Err(format!("it failed on node {n}")),
                CommitStatus::Waiting => {}
            }
            self.fence
                .check("checkpoint completion")
                .map_err(|e| e.to_string())?;
            if !last && start.elapsed() > self.timeout {
                return Err(format!(
                    "not every node wrote it within {} ms",
                    self.timeout.as_millis()
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

impl CommitLog {
    fn clone_log(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            dir: self.dir.clone(),
            node: self.node,
            nodes: self.nodes,
            fence: self.fence.clone(),
            poll: self.poll,
            timeout: self.timeout,
        }
    }
}

/// Where a checkpoint stands in the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// Not every node wrote it yet.
    Waiting,
    /// Every node wrote it.
    Complete,
    /// It failed on this node.
    Failed(usize),
}

impl CheckpointCommit for CommitLog {
    fn prepared(&self, id: u64, last: bool) -> BoxFuture<'static, Result<(), String>> {
        let me = self.clone_log();
        async move { me.prepare(id, last).await }.boxed()
    }

    fn aborted(&self, id: u64) -> BoxFuture<'static, ()> {
        let me = self.clone_log();
        async move {
            if let Err(e) = me.abort(id).await {
                tracing::warn!(checkpoint = id, error = %e, "cannot record a failed checkpoint");
            }
        }
        .boxed()
    }
}
