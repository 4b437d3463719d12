//! The control protocol: what nodes and clients say to the coordinator and what it answers,
//! postcard values one per data frame on [`CONTROL_EDGE`].

use crate::frame::{Body, EdgeId};
use crate::transport::{Channel, FrameRx, FrameTx};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The edge the control protocol runs on (apart from data edges and the replicator's).
pub const CONTROL_EDGE: EdgeId = 1 << 61;

/// The largest control message accepted (a status of many nodes and jobs fits).
pub const MAX_MESSAGE: usize = 1 << 20;

/// A job to run over nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's name (unique among the coordinator's jobs).
    pub name: String,
    /// How many nodes run it.
    pub nodes: usize,
    /// The program every node starts, and its arguments (`{node}`, `{name}` substituted).
    pub program: Vec<String>,
    /// Attempts after the first before the job fails.
    pub max_restarts: u32,
}

/// One node's part of one attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job: String,
    /// The attempt.
    pub epoch: u64,
    /// This node's index.
    pub node: usize,
    /// Every node's name and data address, by index.
    pub peers: Vec<(String, SocketAddr)>,
    /// The job's shared directory (fence, commit log, store).
    pub dir: PathBuf,
    /// The program and its arguments.
    pub program: Vec<String>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEnd {
    /// Every node of the attempt exited 0.
    Finished {
        /// The last attempt.
        epoch: u64,
        /// Attempts restarted.
        restarts: u32,
    },
    /// Cancelled: every node was stopped.
    Cancelled {
        /// The attempt that was stopped.
        epoch: u64,
    },
    /// Given up, or no attempt could start.
    Failed {
        /// The last attempt (0: none started).
        epoch: u64,
        /// Attempts restarted.
        restarts: u32,
        /// Why.
        reason: String,
    },
}

/// A node that joined the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name (its certificate's).
    pub name: String,
    /// Where it serves job edges.
    pub data: SocketAddr,
    /// The job and index it runs, if any.
    pub running: Option<(String, usize)>,
}

/// A job the coordinator runs or ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Its name.
    pub name: String,
    /// `waiting` (for nodes), `running`, `finished`, `cancelled` or `failed`.
    pub state: String,
    /// The current (or last) attempt; 0 before the first.
    pub epoch: u64,
    /// Attempts restarted.
    pub restarts: u32,
    /// The nodes of the current (or last) attempt, by index.
    pub nodes: Vec<String>,
    /// The key groups each index owns (`[first, end)`): subtask `i` of every keyed stage of
    /// the job, and the exchange's owner of those keys, runs on `nodes[i]`.
    pub key_groups: Vec<(usize, usize)>,
    /// The program.
    pub program: Vec<String>,
    /// The newest checkpoint every node completed, if any.
    pub latest_complete: Option<u64>,
    /// The job's shared directory.
    pub dir: PathBuf,
}

/// What the coordinator knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorStatus {
    /// The coordinator's name.
    pub coordinator: String,
    /// The joined nodes, by name.
    pub nodes: Vec<NodeInfo>,
    /// The jobs, by name.
    pub jobs: Vec<JobInfo>,
}

/// A message to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A node agent joins.
    Join {
        /// The node's name (its certificate's, which its programs serve with).
        name: String,
        /// Where the node's job programs serve their edges.
        data: SocketAddr,
    },
    /// A node's program of an attempt ended.
    Exited {
        /// The job.
        job: String,
        /// The attempt.
        epoch: u64,
        /// Its exit code (`None`: killed by a signal, or it could not start).
        code: Option<i32>,
        /// What it said last (the tail of its stderr), or why it could not start.
        why: String,
    },
    /// Run a job; the coordinator answers `Accepted`, then `Progress` and `Ended`.
    Submit(JobSpec),
    /// The coordinator's status.
    Status,
    /// Cancel a job (`None`: the one job not ended).
    Cancel {
        /// The job.
        job: Option<String>,
    },
    /// Copy a job's newest complete checkpoint into `target`.
    Savepoint {
        /// The job (`None`: the one job not ended).
        job: Option<String>,
        /// The savepoint's folder.
        target: PathBuf,
    },
}

/// A message from the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A node was registered.
    Welcome,
    /// Start an attempt's program.
    Start(Assignment),
    /// Stop the program of this attempt.
    Stop {
        /// The job.
        job: String,
        /// The attempt.
        epoch: u64,
    },
    /// A submitted job was accepted.
    Accepted {
        /// Its name.
        job: String,
    },
    /// A job's progress, in words.
    Progress(String),
    /// A job ended.
    Ended(JobEnd),
    /// The status asked for.
    Status(CoordinatorStatus),
    /// A cancelled job's end.
    Cancelled {
        /// The job.
        job: String,
        /// How it ended.
        end: JobEnd,
    },
    /// A savepoint was written.
    Saved(crate::control::ClusterSavepoint),
    /// The request was refused.
    Refused(String),
}

/// Why a control message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The stream failed.
    #[error("control stream: {0}")]
    Transport(#[from] crate::transport::TransportError),
    /// A message could not be encoded or decoded.
    #[error("control message: {0}")]
    Codec(String),
    /// The peer sent a frame that is not a control message.
    #[error("control stream: unexpected {0} frame")]
    Unexpected(&'static str),
    /// The peer ended the stream with an error.
    #[error("control stream: the peer failed: {0}")]
    PeerFailed(String),
}

/// Sends `msg` as one data frame.
pub async fn send<T: Serialize>(tx: &mut FrameTx, msg: &T) -> Result<(), ProtoError> {
    tx.stage_data(std::slice::from_ref(msg))
        .map_err(|e| ProtoError::Codec(e.to_string()))?;
    tx.flush().await?;
    Ok(())
}

/// The next message; `None` at the end of the stream.
pub async fn recv<T: DeserializeOwned>(rx: &mut FrameRx) -> Result<Option<T>, ProtoError> {
    let Some(frame) = rx.recv().await? else {
        return Ok(None);
    };
    match frame.body {
        Body::Data { payload, .. } => {
            let mut v: Vec<T> =
                postcard::from_bytes(&payload).map_err(|e| ProtoError::Codec(e.to_string()))?;
            match (v.pop(), v.is_empty()) {
                (Some(m), true) => Ok(Some(m)),
                _ => Err(ProtoError::Codec("not one message in a frame".into())),
            }
        }
        Body::End => Ok(None),
        Body::Error(e) => Err(ProtoError::PeerFailed(e)),
        Body::Open => Err(ProtoError::Unexpected("open")),
        _ => Err(ProtoError::Unexpected("edge")),
    }
}

/// Opens a control stream to the coordinator named `coordinator`.
pub async fn open(
    transport: std::sync::Arc<dyn crate::transport::Transport>,
    coordinator: &str,
) -> Result<Channel, ProtoError> {
    let mut ch = transport.open(coordinator, CONTROL_EDGE).await?;
    ch.tx.set_max_payload(MAX_MESSAGE);
    Ok(ch)
}

/// The key groups (`[first, end)`) subtask `index` of `parallelism` owns, as
/// `weir_graph::subtask_for_key_group` assigns them.
pub fn key_group_range(index: usize, parallelism: usize) -> (usize, usize) {
    let max = weir_graph::MAX_KEY_GROUPS;
    let p = parallelism.max(1);
    let start = |i: usize| (i * max).div_ceil(p);
    (start(index), start(index + 1).min(max))
}
