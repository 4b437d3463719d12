//! Running one job as a local cluster of processes: [`LocalCluster`] (the coordinator role)
//! starts one process per node with its [`NodeSettings`] in the environment and restarts every
//! node of the job when one dies; in each process [`JobNode::start`] joins the others (QUIC
//! with mutual TLS, addresses exchanged through the cluster directory) and hands the job its
//! [`JobNodes`] for [`crate::exchange::exchange`] and the checkpoint settings that make its
//! checkpoints complete only once every node wrote them.
//!
//! The cluster directory holds `certs/` (the cluster CA and one certificate per node, made by
//! [`LocalCluster::prepare`]), `store/` (the job's object store folder: the commit log under
//! `job/` and each node's checkpoint copies under `checkpoints/nNODE/`), `fence/`
//! (the attempt record: a node of an older attempt cannot record), `addrs/eEPOCH/` (where each
//! node of an attempt serves, and which finished), `pids` (the current attempt's
//! `EPOCH NODE PID` lines), `state` (the supervisor's `running|finished|cancelled|failed
//! EPOCH RESTARTS` line), `cancel` (a request to stop the job, see [`crate::control`]) and
//! `logs/` (each node's output per attempt, when the spawner writes there).

use crate::commit::{CommitLog, RestorePoint, local_store, restore_point};
use crate::edge::EdgeConfig;
use crate::epoch::{Epoch, EpochStore, Fence, FencedStorage, FileEpochStore};
use crate::exchange::JobNodes;
use crate::mirror::{CheckpointMirror, Ensured, Mirrored, node_prefix};
use crate::tls::NodeIdentity;
use crate::transport::{QuicConfig, QuicTransport, Transport};
use object_store::path::Path as ObjPath;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_engine::CheckpointConfig;

/// Why a node or the local cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A file of the cluster directory.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A setting is missing or malformed.
    #[error("cluster setting {name}: {reason}")]
    Setting {
        /// The environment variable or flag.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The other nodes did not show up (or finish) in time.
    #[error("nodes {missing:?} did not report {what} within {limit:?}")]
    Rendezvous {
        /// What was awaited (`addr`, `done`).
        what: &'static str,
        /// The nodes that did not.
        missing: Vec<usize>,
        /// How long the node waited.
        limit: Duration,
    },
    /// The certificates, the transport, the commit log or the fence failed.
    #[error("{0}")]
    Cluster(String),
    /// `weir cancel --cluster` (a `cancel` request in the cluster directory) stopped the job.
    #[error("the job was cancelled in attempt {epoch}")]
    Cancelled {
        /// The attempt that was running.
        epoch: u64,
    },
    /// The job failed on every attempt allowed.
    #[error("gave up after {restarts} restarts; the last: {last}")]
    GaveUp {
        /// Restarts made.
        restarts: u32,
        /// Why the last attempt failed.
        last: String,
    },
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> JobError + '_ {
    move |e| JobError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

pub(crate) fn cluster_err(e: impl std::fmt::Display) -> JobError {
    JobError::Cluster(e.to_string())
}

/// Node `i`'s name (its certificate's and the transport's).
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// Where one node of a job stands: its index, the node count, the cluster directory and the
/// attempt. [`LocalCluster`] passes them to each process in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// This node's index.
    pub node: usize,
    /// How many nodes run the job.
    pub nodes: usize,
    /// The directory the nodes share.
    pub cluster_dir: PathBuf,
    /// The attempt (epoch).
    pub epoch: u64,
    /// Where the nodes serve and the node's certificates, when a coordinator over the network
    /// placed the job (`None`: nodes on one machine meet through the cluster directory).
    pub network: Option<NetworkSettings>,
}

/// The nodes of a job placed over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Every node's name (its certificate's) and data address, by index.
    pub peers: Vec<(String, std::net::SocketAddr)>,
    /// The folder with the cluster CA and this node's certificate and key.
    pub certs: PathBuf,
}

/// The environment variables of [`NodeSettings`].
pub const ENV: [&str; 4] = ["WEIR_NODE", "WEIR_NODES", "WEIR_CLUSTER_DIR", "WEIR_EPOCH"];

/// The environment variables of [`NetworkSettings`]: `name=addr,...` by index, and the
/// certificate folder.
pub const NETWORK_ENV: [&str; 2] = ["WEIR_PEERS", "WEIR_CERTS"];

impl NodeSettings {
    /// The settings in this process's environment (`WEIR_NODE`, `WEIR_NODES`,
    /// `WEIR_CLUSTER_DIR`, `WEIR_EPOCH`); `None` when `WEIR_NODES` is not set (the job runs
    /// on its own).
    pub fn from_env() -> Result<Option<Self>, JobError> {
        let Ok(nodes) = std::env::var("WEIR_NODES") else {
            return Ok(None);
        };
        let num = |name: &'static str, v: Option<String>| -> Result<u64, JobError> {
            let v = v.ok_or(JobError::Setting {
                name,
                reason: "not set".into(),
            })?;
            v.trim().parse().map_err(|_| JobError::Setting {
                name,
                reason: format!("{v:?} is not a number"),
            })
        };
        let s = Self {
            node: num("WEIR_NODE", std::env::var("WEIR_NODE").ok())? as usize,
            nodes: num("WEIR_NODES", Some(nodes))? as usize,
            cluster_dir: std::env::var("WEIR_CLUSTER_DIR")
                .map(PathBuf::from)
                .map_err(|_| JobError::Setting {
                    name: "WEIR_CLUSTER_DIR",
                    reason: "not set".into(),
                })?,
            epoch: num("WEIR_EPOCH", std::env::var("WEIR_EPOCH").ok())?,
            network: match std::env::var(NETWORK_ENV[0]) {
                Ok(peers) => Some(NetworkSettings {
                    peers: parse_peers(&peers)?,
                    certs: std::env::var(NETWORK_ENV[1])
                        .map(PathBuf::from)
                        .map_err(|_| JobError::Setting {
                            name: "WEIR_CERTS",
                            reason: "not set (WEIR_PEERS is)".into(),
                        })?,
                }),
                Err(_) => None,
            },
        };
        s.check()?;
        Ok(Some(s))
    }

    /// Settings of node `node` of `nodes` meeting the others through `cluster_dir`.
    pub fn local(node: usize, nodes: usize, cluster_dir: impl Into<PathBuf>, epoch: u64) -> Self {
        Self {
            node,
            nodes,
            cluster_dir: cluster_dir.into(),
            epoch,
            network: None,
        }
    }

    /// The settings as environment variables for the node's process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (ENV[0], self.node.to_string()),
            (ENV[1], self.nodes.to_string()),
            (ENV[2], self.cluster_dir.display().to_string()),
            (ENV[3], self.epoch.to_string()),
        ];
        if let Some(n) = &self.network {
            let peers: Vec<String> = n.peers.iter().map(|(k, a)| format!("{k}={a}")).collect();
            env.push((NETWORK_ENV[0], peers.join(",")));
            env.push((NETWORK_ENV[1], n.certs.display().to_string()));
        }
        env
    }

    fn check(&self) -> Result<(), JobError> {
        if self.nodes == 0 || self.node >= self.nodes {
            return Err(JobError::Setting {
                name: "WEIR_NODE",
                reason: format!("node {} of {} nodes", self.node, self.nodes),
            });
        }
        if let Some(n) = &self.network
            && n.peers.len() != self.nodes
        {
            return Err(JobError::Setting {
                name: "WEIR_PEERS",
                reason: format!("{} peers for {} nodes", n.peers.len(), self.nodes),
            });
        }
        Ok(())
    }

    fn addrs(&self) -> PathBuf {
        self.cluster_dir
            .join("addrs")
            .join(format!("e{:010}", self.epoch))
    }
}

/// `name=addr,name=addr` (node names and data addresses by index).
fn parse_peers(text: &str) -> Result<Vec<(String, std::net::SocketAddr)>, JobError> {
    text.split(',')
        .map(|p| {
            let bad = |why: String| JobError::Setting {
                name: "WEIR_PEERS",
                reason: format!("{p:?}: {why}"),
            };
            let (name, addr) = p
                .split_once('=')
                .ok_or_else(|| bad("not name=address".into()))?;
            let addr = addr.trim().parse().map_err(|e| bad(format!("{e}")))?;
            Ok((name.trim().to_owned(), addr))
        })
        .collect()
}

/// Writes `text` to `path` atomically.
pub(crate) fn publish(path: &Path, text: &str) -> Result<(), JobError> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io(path))
}

/// Waits until every node wrote `what-nNODE` in `dir`; their contents, by node.
async fn rendezvous(
    dir: &Path,
    what: &'static str,
    nodes: usize,
    limit: Duration,
) -> Result<Vec<String>, JobError> {
    let until = Instant::now() + limit;
    loop {
        let got: Vec<Option<String>> = (0..nodes)
            .map(|n| std::fs::read_to_string(dir.join(format!("{what}-n{n}"))).ok())
            .collect();
        if got.iter().all(Option::is_some) {
            return Ok(got.into_iter().flatten().collect());
        }
        if Instant::now() > until {
            return Err(JobError::Rendezvous {
                what,
                missing: (0..nodes).filter(|n| got[*n].is_none()).collect(),
                limit,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The commit log's job path.
pub(crate) fn job_path() -> ObjPath {
    ObjPath::from("job")
}

/// One node's part of a job running over a local cluster.
pub struct JobNode {
    settings: NodeSettings,
    quic: Arc<QuicTransport>,
    nodes: JobNodes,
    fence: Fence,
    store: Arc<dyn object_store::ObjectStore>,
    restore: RestorePoint,
    /// What [`JobNode::checkpoints`] copied from the store for the restore point.
    copied: std::sync::Mutex<Option<crate::mirror::Transfer>>,
}

impl std::fmt::Debug for JobNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobNode")
            .field("settings", &self.settings)
            .field("restore", &self.restore)
            .finish()
    }
}

impl JobNode {
    /// Joins the other nodes of the attempt with the job's store in the cluster directory's
    /// `store/` (see [`JobNode::start_with_store`]).
    pub async fn start(settings: &NodeSettings) -> Result<Self, JobError> {
        let store = local_store(&settings.cluster_dir.join("store")).map_err(cluster_err)?;
        Self::start_with_store(settings, store).await
    }

    /// Joins the other nodes of the attempt: refuses to start when a newer attempt began,
    /// serves on a loopback port with the node's certificate, publishes the address and
    /// waits (up to 60 s) for every other node's, and reads where the job restarts from in
    /// `store` (which every node reaches: it holds the commit log and the checkpoint copies).
    pub async fn start_with_store(
        settings: &NodeSettings,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Result<Self, JobError> {
        settings.check()?;
        let dir = &settings.cluster_dir;
        let fences = FencedStorage::new(Arc::new(
            FileEpochStore::in_dir(dir.join("fence")).map_err(cluster_err)?,
        ));
        let fence = fences.fence(Epoch(settings.epoch));
        fence.check("node start").map_err(cluster_err)?;
        let (me, certs, bind) = match &settings.network {
            Some(n) => (
                n.peers[settings.node].0.clone(),
                n.certs.clone(),
                n.peers[settings.node].1,
            ),
            None => (
                node_name(settings.node),
                dir.join("certs"),
                ([127, 0, 0, 1], 0).into(),
            ),
        };
        let identity = NodeIdentity::load(&certs, &me).map_err(cluster_err)?;
        let mut cfg = QuicConfig::new(identity, bind);
        cfg.epoch = settings.epoch;
        let quic = QuicTransport::bind(cfg).map_err(cluster_err)?;
        let addrs = settings.addrs();
        std::fs::create_dir_all(&addrs).map_err(io(&addrs))?;
        let addr = quic.local_addr().map_err(cluster_err)?;
        publish(
            &addrs.join(format!("addr-n{}", settings.node)),
            &addr.to_string(),
        )?;
        let names: Vec<String> = match &settings.network {
            // Placed over the network: the coordinator said where every node serves.
            Some(n) => {
                for (name, a) in &n.peers {
                    quic.add_peer(name, *a);
                }
                n.peers.iter().map(|(name, _)| name.clone()).collect()
            }
            None => {
                let peers =
                    rendezvous(&addrs, "addr", settings.nodes, Duration::from_secs(60)).await?;
                for (i, a) in peers.iter().enumerate() {
                    let a = a.trim().parse().map_err(|e| JobError::Setting {
                        name: "WEIR_CLUSTER_DIR",
                        reason: format!("node {i}'s address {a:?}: {e}"),
                    })?;
                    quic.add_peer(&node_name(i), a);
                }
                (0..settings.nodes).map(node_name).collect()
            }
        };
        let restore = restore_point(&store, &job_path(), settings.nodes)
            .await
            .map_err(cluster_err)?;
        tracing::info!(node = settings.node, nodes = settings.nodes, epoch = settings.epoch, restore = ?restore, "node joined the job");
        let nodes = JobNodes {
            transport: Arc::clone(&quic) as Arc<dyn Transport>,
            node: settings.node,
            names,
            config: EdgeConfig::default(),
        };
        Ok(Self {
            settings: settings.clone(),
            quic,
            nodes,
            fence,
            store,
            restore,
            copied: std::sync::Mutex::new(None),
        })
    }

    /// The job's nodes as this one sees them (for [`crate::exchange::exchange`]).
    pub fn nodes(&self) -> &JobNodes {
        &self.nodes
    }

    /// What [`JobNode::checkpoints`] copied from the job's store because the restore point
    /// was missing or corrupt locally (`None`: it was not).
    pub fn copied_from_store(&self) -> Option<crate::mirror::Transfer> {
        *self
            .copied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The checkpoint this node restores (0: none).
    pub fn restore_id(&self) -> u64 {
        self.restore.for_node(self.settings.node)
    }

    /// `cfg` made part of the job's checkpoints: each is copied to the job's store and
    /// complete only once every node wrote it; the run restores the newest checkpoint all
    /// nodes completed (newer local ones are discarded), which is first copied from the store
    /// into `cfg.dir` when it is missing or corrupt there (a node on a new machine). An error
    /// when the restore point is in neither place.
    ///
    /// When the job has no checkpoint yet and `cfg.restore_from` is a cluster savepoint
    /// ([`crate::control::savepoint`]), the node starts from its part of the savepoint
    /// (copied into `cfg.dir`); a savepoint of another node count is rescaled: the node
    /// restores every old node's part, keeping what falls to it now.
    pub async fn checkpoints(
        &self,
        mut cfg: CheckpointConfig,
    ) -> Result<CheckpointConfig, JobError> {
        let mirror = Arc::new(CheckpointMirror::new(
            Arc::clone(&self.store),
            node_prefix(self.settings.node),
            cfg.dir.clone(),
        ));
        let mut id = self.restore_id();
        let mut rescaled = None;
        if id == 0
            && let Some(sp) = cfg.restore_from.clone()
            && let Some((sp_id, sp_nodes)) = crate::control::read_savepoint(&sp)?
        {
            let store = local_store(&sp).map_err(cluster_err)?;
            if sp_nodes != self.settings.nodes {
                cfg = self.rescale_from(cfg, &sp, store, sp_id, sp_nodes).await?;
                rescaled = Some(rescale_root(&cfg.dir, sp_id));
            } else {
                let from =
                    CheckpointMirror::new(store, node_prefix(self.settings.node), cfg.dir.clone());
                // Never a local checkpoint of the same id from another run: the savepoint's own.
                let local = weir_engine::checkpoint::store::checkpoint_dir(&cfg.dir, sp_id);
                if local.exists() {
                    std::fs::remove_dir_all(&local).map_err(io(&local))?;
                }
                let t = from.download(sp_id).await.map_err(cluster_err)?;
                tracing::info!(node = self.settings.node, savepoint = %sp.display(), checkpoint = sp_id, files = t.files, bytes = t.bytes, "starting from a cluster savepoint");
            }
            cfg.restore_from = None;
            id = sp_id;
        } else if id > 0 {
            // The job has a checkpoint of its own: copies an earlier rescale left are not read.
            remove_rescale_copies(&cfg.dir);
            let ensured = mirror.ensure(id).await.map_err(cluster_err)?;
            if let Ensured::Downloaded { transfer, local } = ensured {
                tracing::info!(node = self.settings.node, checkpoint = id, files = transfer.files, bytes = transfer.bytes, local = %local, "restore point copied from the job's store");
                *self
                    .copied
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(transfer);
            }
        }
        let log = CommitLog::new(
            Arc::clone(&self.store),
            &job_path(),
            self.settings.node,
            self.settings.nodes,
            self.fence.clone(),
        );
        let commit = match rescaled {
            Some(root) => Mirrored::new(mirror, log).removing_after_first(root),
            None => Mirrored::new(mirror, log),
        };
        Ok(cfg
            .with_commit(Arc::new(commit))
            .discard_after(id)
            .number_after(self.restore.number_after()))
    }

    /// `cfg` set to start from savepoint `sp` (checkpoint `id` of `old` nodes) on this job's
    /// node count: every old node's part is copied into `cfg.dir/rescale-ID/nNODE` and the run
    /// restores them all as one, each stage taking what falls to this node
    /// ([`CheckpointConfig::restore_from_nodes`]).
    async fn rescale_from(
        &self,
        cfg: CheckpointConfig,
        sp: &std::path::Path,
        store: Arc<dyn object_store::ObjectStore>,
        id: u64,
        old: usize,
    ) -> Result<CheckpointConfig, JobError> {
        let root = rescale_root(&cfg.dir, id);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(io(&root))?;
        }
        let mut parts = Vec::with_capacity(old);
        let (mut files, mut bytes) = (0, 0);
        for k in 0..old {
            let dir = root.join(format!("n{k}"));
            let t = CheckpointMirror::new(Arc::clone(&store), node_prefix(k), dir.clone())
                .download(id)
                .await
                .map_err(cluster_err)?;
            files += t.files;
            bytes += t.bytes;
            parts.push(weir_engine::checkpoint::store::checkpoint_dir(&dir, id));
        }
        tracing::info!(
            node = self.settings.node,
            savepoint = %sp.display(),
            checkpoint = id,
            from = old,
            to = self.settings.nodes,
            files,
            bytes,
            "rescaling from a cluster savepoint"
        );
        Ok(cfg.restore_from_nodes(parts, self.settings.node, self.settings.nodes))
    }

    /// Once this node's run ended: waits (up to 30 s) until every node's did, so no
    /// acknowledgement in flight is lost, then closes the endpoint.
    pub async fn finish(self) -> Result<(), JobError> {
        let addrs = self.settings.addrs();
        publish(&addrs.join(format!("done-n{}", self.settings.node)), "")?;
        let r = rendezvous(&addrs, "done", self.settings.nodes, Duration::from_secs(30)).await;
        self.quic.close();
        r.map(|_| ())
    }
}

/// Where a rescale from checkpoint `id` copies the old nodes' parts.
fn rescale_root(dir: &std::path::Path, id: u64) -> PathBuf {
    dir.join(format!("rescale-{id}"))
}

/// Removes every rescale's copies under `dir` (logged when one cannot be removed).
fn remove_rescale_copies(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("rescale-") {
            let p = e.path();
            if let Err(err) = std::fs::remove_dir_all(&p) {
                tracing::warn!(dir = %p.display(), error = %err, "cannot remove old rescale copies");
            }
        }
    }
}

/// How a local cluster run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOutcome {
    /// The last attempt (every node of it exited 0).
    pub epoch: u64,
    /// Attempts restarted after a node died.
    pub restarts: u32,
}

/// The coordinator role of a job on one machine: starts one process per node, and when one
/// dies (killed or failed) stops the others and starts every node again as a new attempt,
/// which restores the newest checkpoint all nodes completed (restart-all failover).
#[derive(Debug, Clone)]
pub struct LocalCluster {
    /// Node processes.
    pub nodes: usize,
    /// The directory the nodes share.
    pub cluster_dir: PathBuf,
    /// Attempts after the first before the job gives up.
    pub max_restarts: u32,
}

impl LocalCluster {
    /// A cluster of `nodes` processes sharing `cluster_dir`, restarting up to 1000 times.
    pub fn new(nodes: usize, cluster_dir: impl Into<PathBuf>) -> Self {
        Self {
            nodes,
            cluster_dir: cluster_dir.into(),
            max_restarts: 1000,
        }
    }

    /// Makes the cluster CA and the nodes' certificates unless they exist.
    pub fn prepare(&self) -> Result<(), JobError> {
        if self.nodes == 0 {
            return Err(JobError::Setting {
                name: "nodes",
                reason: "at least 1".into(),
            });
        }
        let certs = self.cluster_dir.join("certs");
        if !certs.join("ca.pem").exists() {
            let names: Vec<String> = (0..self.nodes).map(node_name).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            crate::tls::write_cluster_certs(&certs, &refs).map_err(cluster_err)?;
        }
        Ok(())
    }

    /// The current attempt's node processes: its epoch and their pids.
    pub fn pids(cluster_dir: &Path) -> Option<(u64, Vec<u32>)> {
        let text = std::fs::read_to_string(cluster_dir.join("pids")).ok()?;
        let mut epoch = None;
        let mut pids = Vec::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            epoch = Some(it.next()?.parse::<u64>().ok()?);
            let _node: usize = it.next()?.parse().ok()?;
            pids.push(it.next()?.parse().ok()?);
        }
        Some((epoch?, pids))
    }

    /// Runs the job to its end: each attempt begins a new epoch (fencing the older ones) and
    /// starts every node with `spawn` (which must pass [`NodeSettings::env`] to it).
    pub fn run(
        &self,
        spawn: impl FnMut(&NodeSettings) -> std::io::Result<Child>,
    ) -> Result<ClusterOutcome, JobError> {
        self.run_replacing(spawn, |_| Ok(()))
    }

    /// [`LocalCluster::run`], calling `replace(node)` with the node that died once every node
    /// of the attempt stopped and before the next attempt starts (to give that node an empty
    /// disk, as a replacement machine has).
    pub fn run_replacing(
        &self,
        mut spawn: impl FnMut(&NodeSettings) -> std::io::Result<Child>,
        mut replace: impl FnMut(usize) -> std::io::Result<()>,
    ) -> Result<ClusterOutcome, JobError> {
        self.prepare()?;
        let cancel = self.cluster_dir.join(crate::control::CANCEL);
        // A request left from an earlier run of the job is not for this one.
        match std::fs::remove_file(&cancel) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&cancel)(e)),
        }
        let state = |what: &str, epoch: u64, restarts: u32| {
            publish(
                &self.cluster_dir.join(crate::control::STATE),
                &format!("{what} {epoch} {restarts}\n"),
            )
        };
        let fence_dir = self.cluster_dir.join("fence");
        let record = FileEpochStore::in_dir(&fence_dir).map_err(cluster_err)?;
        let fences = FencedStorage::new(Arc::new(
            FileEpochStore::in_dir(&fence_dir).map_err(cluster_err)?,
        ));
        let mut restarts = 0u32;
        loop {
            let epoch = record.highest().map_err(cluster_err)?.0 + 1;
            fences.begin(Epoch(epoch)).map_err(cluster_err)?;
            let mut children = Vec::with_capacity(self.nodes);
            for node in 0..self.nodes {
                let s = NodeSettings::local(node, self.nodes, &self.cluster_dir, epoch);
                match spawn(&s) {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        stop(&mut children);
                        return Err(JobError::Cluster(format!("cannot start node {node}: {e}")));
                    }
                }
            }
            let pids: String = children
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{epoch} {i} {}\n", c.id()))
                .collect();
            publish(&self.cluster_dir.join("pids"), &pids)?;
            state("running", epoch, restarts)?;
            match watch(&mut children, &cancel)? {
                Watched::Finished => {
                    state("finished", epoch, restarts)?;
                    return Ok(ClusterOutcome { epoch, restarts });
                }
                Watched::Cancelled => {
                    tracing::info!(epoch, "the job was cancelled: every node stopped");
                    state("cancelled", epoch, restarts)?;
                    return Err(JobError::Cancelled { epoch });
                }
                Watched::Died(dead, why) => {
                    restarts += 1;
                    tracing::warn!(epoch, reason = %why, "a node died: restarting every node");
                    replace(dead).map_err(|e| {
                        JobError::Cluster(format!("cannot replace node {dead}: {e}"))
                    })?;
                    if restarts > self.max_restarts {
                        state("failed", epoch, restarts)?;
                        return Err(JobError::GaveUp {
                            restarts,
                            last: why,
                        });
                    }
                }
            }
        }
    }
}

fn stop(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// How an attempt ended.
enum Watched {
    /// Every node exited 0.
    Finished,
    /// This node did not, for this reason.
    Died(usize, String),
    /// A cancel request arrived.
    Cancelled,
}

/// Waits for an attempt's nodes: until all exited 0, one did not, or the `cancel` file
/// appeared (in both last cases every node is then killed and reaped).
fn watch(children: &mut [Child], cancel: &Path) -> Result<Watched, JobError> {
    let mut done = vec![false; children.len()];
    loop {
        if cancel.exists() {
            stop(children);
            return Ok(Watched::Cancelled);
        }
        for i in 0..children.len() {
            if done[i] {
                continue;
            }
            let status = children[i]
                .try_wait()
                .map_err(|e| JobError::Cluster(format!("node {i}: {e}")))?;
            let Some(status) = status else { continue };
            if status.success() {
                done[i] = true;
                continue;
            }
            stop(children);
            return Ok(Watched::Died(i, format!("node {i} ended with {status}")));
        }
        if done.iter().all(|d| *d) {
            return Ok(Watched::Finished);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
