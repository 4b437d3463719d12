//! The coordinator: registers node agents, runs each submitted job restart-all over the nodes
//! it picks (a new epoch per attempt), and answers status, cancel and savepoint requests.

use super::proto::{
    self, Assignment, CONTROL_EDGE, CoordinatorStatus, JobEnd, JobInfo, JobSpec, MAX_MESSAGE,
    NodeInfo, Reply, Request,
};
use crate::epoch::{Epoch, EpochStore, FencedStorage, FileEpochStore};
use crate::job::publish;
use crate::transport::{Channel, Transport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Its name (its certificate's; nodes and clients connect to it by this name).
    pub name: String,
    /// Where job directories go (`DIR/jobs/NAME`); every node must reach the same path.
    pub dir: PathBuf,
    /// How long a job waits for enough free nodes before it fails.
    pub wait_nodes: Duration,
    /// How long stopping an attempt waits for its nodes' exits.
    pub stop_timeout: Duration,
}

impl CoordinatorConfig {
    /// A coordinator named `name` keeping jobs under `dir`, waiting 60 s for nodes and 10 s for
    /// stops.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            dir: dir.into(),
            wait_nodes: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// What a job's supervision hears.
enum JobEvent {
    /// A node's program of an attempt ended.
    Exited {
        name: String,
        epoch: u64,
        code: Option<i32>,
        why: String,
    },
    /// A node's control stream ended.
    Lost { name: String },
    /// A node joined (a waiting job looks again).
    Joined,
    /// Cancel the job; its end goes back.
    Cancel(oneshot::Sender<JobEnd>),
}

struct Node {
    data: SocketAddr,
    session: u64,
    tx: mpsc::UnboundedSender<Reply>,
    running: Option<(String, usize)>,
}

struct Job {
    info: JobInfo,
    events: mpsc::UnboundedSender<JobEvent>,
    ended: Option<JobEnd>,
    watchers: Vec<mpsc::UnboundedSender<Reply>>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    jobs: BTreeMap<String, Job>,
    sessions: u64,
}

struct Shared {
    cfg: CoordinatorConfig,
    state: Mutex<State>,
    /// Every task the coordinator spawned (aborted when it is dropped).
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A job's recorded specification in its directory (what a restarted coordinator resumes).
const SPEC: &str = "spec.json";
/// A job's nodes of its latest attempt, one name a line by index.
const NODES: &str = "nodes";

impl Shared {
    /// Spawns `f` as one of the coordinator's tasks.
    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Tells the job's watchers `r` (dropping the ones gone).
    fn tell_watchers(&self, job: &str, r: &Reply) {
        if let Some(j) = self.lock().jobs.get_mut(job) {
            j.watchers.retain(|w| w.send(r.clone()).is_ok());
        }
    }
    fn progress(&self, job: &str, text: String) {
        tracing::info!(job, "{text}");
        self.tell_watchers(job, &Reply::Progress(text));
    }
    fn update(&self, job: &str, f: impl FnOnce(&mut JobInfo)) {
        if let Some(j) = self.lock().jobs.get_mut(job) {
            f(&mut j.info);
        }
    }
    fn status(&self) -> CoordinatorStatus {
        let st = self.lock();
        CoordinatorStatus {
            coordinator: self.cfg.name.clone(),
            nodes: st
                .nodes
                .iter()
                .map(|(name, n)| NodeInfo {
                    name: name.clone(),
                    data: n.data,
                    running: n.running.clone(),
                })
                .collect(),
            jobs: st.jobs.values().map(|j| j.info.clone()).collect(),
        }
    }
    /// The named job, or the one job that has not ended.
    fn pick_job(&self, job: Option<String>) -> Result<String, String> {
        let st = self.lock();
        match job {
            Some(j) if st.jobs.contains_key(&j) => Ok(j),
            Some(j) => Err(format!("no job named {j:?}")),
            None => {
                let live: Vec<&String> = st
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.ended.is_none())
                    .map(|(n, _)| n)
                    .collect();
                match live.as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => Err("no job is running".into()),
                    many => Err(format!(
                        "{} jobs are running ({}): name one",
                        many.len(),
                        many.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        }
    }
}

/// A running coordinator; dropping it stops serving (running jobs' nodes lose it and stop).
pub struct Coordinator {
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("name", &self.shared.cfg.name)
            .finish()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.take_tasks() {
            t.abort();
        }
    }
}

impl Coordinator {
    /// Serves the control protocol on `transport` (on [`CONTROL_EDGE`]), first resuming every
    /// job its directory records as running or waiting (a restarted coordinator picks up its
    /// jobs; their next attempt restores the newest checkpoint their nodes completed).
    pub fn serve(transport: Arc<dyn Transport>, cfg: CoordinatorConfig) -> Self {
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Vec::new()),
        });
        recover(&shared);
        let s = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            loop {
                match Arc::clone(&transport).accept(CONTROL_EDGE).await {
                    Ok(ch) => s.spawn(session(Arc::clone(&s), ch)),
                    Err(e) => {
                        tracing::warn!(error = %e, "coordinator: accepting control streams ended");
                        return;
                    }
                }
            }
        });
        Self { shared, accept }
    }

    fn take_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(
            &mut *self
                .shared
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Stops serving and waits until every task of the coordinator ended (its nodes lose it,
    /// stop their programs and join again; the jobs resume under the next coordinator).
    pub async fn shutdown(mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
        for t in self.take_tasks() {
            t.abort();
            let _ = t.await;
        }
    }

    /// What the coordinator knows now.
    pub fn status(&self) -> CoordinatorStatus {
        self.shared.status()
    }

    /// [`Coordinator::status`] with each job's newest complete checkpoint read from its commit
    /// log (what `Request::Status` answers).
    pub fn full_status(
        &self,
    ) -> impl std::future::Future<Output = CoordinatorStatus> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { status_with_checkpoints(&shared).await }
    }
}

async fn session(shared: Arc<Shared>, mut ch: Channel) {
    ch.tx.set_max_payload(MAX_MESSAGE);
    let first = match proto::recv::<Request>(&mut ch.rx).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(peer = %ch.peer, error = %e, "coordinator: a control stream failed");
            return;
        }
    };
    let reply = match first {
        Request::Join { name, data } => return node_session(shared, ch, name, data).await,
        Request::Submit(spec) => return submit(shared, ch, spec).await,
        Request::Status => Reply::Status(status_with_checkpoints(&shared).await),
        Request::Cancel { job } => match shared.pick_job(job) {
            Ok(job) => cancel(&shared, &job).await,
            Err(e) => Reply::Refused(e),
        },
        Request::Savepoint { job, target } => match shared.pick_job(job) {
            Ok(job) => savepoint(&shared, &job, &target).await,
            Err(e) => Reply::Refused(e),
        },
        Request::Exited { .. } => Reply::Refused("a node must join before it reports".into()),
    };
    if let Err(e) = proto::send(&mut ch.tx, &reply).await {
        tracing::debug!(peer = %ch.peer, error = %e, "coordinator: a client left before its reply");
    }
    let _ = ch.tx.finish().await;
}

async fn node_session(shared: Arc<Shared>, mut ch: Channel, name: String, data: SocketAddr) {
    if let Err(e) = crate::tls::check_name(&name) {
        let _ = proto::send(&mut ch.tx, &Reply::Refused(e.to_string())).await;
        return;
    }
    let (tx, mut out) = mpsc::unbounded_channel();
    let (session, replaced) = {
        let mut st = shared.lock();
        st.sessions += 1;
        let session = st.sessions;
        let old = st.nodes.insert(
            name.clone(),
            Node {
                data,
                session,
                tx,
                running: None,
            },
        );
        let replaced = old.and_then(|o| o.running);
        for j in st.jobs.values() {
            let _ = j.events.send(JobEvent::Joined);
        }
        (session, replaced)
    };
    // A node that joins again lost what it ran under its earlier session.
    if let Some((job, _)) = replaced {
        lost(&shared, &job, &name);
    }
    tracing::info!(node = %name, %data, "coordinator: node joined");
    if proto::send(&mut ch.tx, &Reply::Welcome).await.is_err() {
        leave(&shared, &name, session);
        return;
    }
    loop {
        tokio::select! {
            m = proto::recv::<Request>(&mut ch.rx) => match m {
                Ok(Some(Request::Exited { job, epoch, code, why })) => {
                    let events = shared.lock().jobs.get(&job).map(|j| j.events.clone());
                    if let Some(ev) = events {
                        let _ = ev.send(JobEvent::Exited { name: name.clone(), epoch, code, why });
                    }
                }
                Ok(Some(other)) => {
                    tracing::warn!(node = %name, request = ?other, "coordinator: a node sent a client request: closing its session");
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "coordinator: node control stream failed");
                    break;
                }
            },
            r = out.recv() => match r {
                Some(r) => {
                    if let Err(e) = proto::send(&mut ch.tx, &r).await {
                        tracing::warn!(node = %name, error = %e, "coordinator: cannot reach node");
                        break;
                    }
                }
                None => break,
            },
        }
    }
    tracing::warn!(node = %name, "coordinator: node left");
    leave(&shared, &name, session);
}

/// Removes node `name` of `session` (unless it joined again) and tells its job.
fn leave(shared: &Shared, name: &str, session: u64) {
    let job = {
        let mut st = shared.lock();
        match st.nodes.get(name) {
            Some(n) if n.session == session => st.nodes.remove(name).and_then(|n| n.running),
            _ => None,
        }
    };
    if let Some((job, _)) = job {
        lost(shared, &job, name);
    }
}

fn lost(shared: &Shared, job: &str, name: &str) {
    let events = shared.lock().jobs.get(job).map(|j| j.events.clone());
    if let Some(ev) = events {
        let _ = ev.send(JobEvent::Lost {
            name: name.to_owned(),
        });
    }
}

async fn submit(shared: Arc<Shared>, mut ch: Channel, spec: JobSpec) {
    let (tx, mut out) = mpsc::unbounded_channel();
    let accepted = register(&shared, &spec, tx);
    let first = match &accepted {
        Ok(()) => Reply::Accepted {
            job: spec.name.clone(),
        },
        Err(e) => Reply::Refused(e.clone()),
    };
    if proto::send(&mut ch.tx, &first).await.is_err() || accepted.is_err() {
        let _ = ch.tx.finish().await;
        return;
    }
    // The client follows the job until its end; the job runs on if the client leaves.
    while let Some(r) = out.recv().await {
        let end = matches!(r, Reply::Ended(_));
        if proto::send(&mut ch.tx, &r).await.is_err() {
            return;
        }
        if end {
            break;
        }
    }
    let _ = ch.tx.finish().await;
}

/// Checks and records a submitted job and starts its supervision.
fn register(
    shared: &Arc<Shared>,
    spec: &JobSpec,
    watcher: mpsc::UnboundedSender<Reply>,
) -> Result<(), String> {
    let valid_name = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "job name {:?}: 1 to 64 letters, digits, '-' or '_'",
            spec.name
        ));
    }
    if spec.nodes == 0 {
        return Err("a job needs at least 1 node".into());
    }
    if spec.program.first().is_none_or(String::is_empty) {
        return Err("a job needs a program".into());
    }
    let text = serde_json::to_string_pretty(spec).map_err(|e| e.to_string())?;
    let record = |dir: &std::path::Path| {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|()| publish(&dir.join(SPEC), &text).map_err(|e| e.to_string()))
    };
    start_job(shared, spec, Some(watcher), 0, Vec::new(), Some(&record))
}

/// Records the job (after `record` wrote it to its directory, when given) and spawns its
/// supervision, from attempt `restarts` on with `previous` nodes by index; an error when a job
/// of that name runs.
fn start_job(
    shared: &Arc<Shared>,
    spec: &JobSpec,
    watcher: Option<mpsc::UnboundedSender<Reply>>,
    restarts: u32,
    previous: Vec<String>,
    record: Option<&dyn Fn(&std::path::Path) -> Result<(), String>>,
) -> Result<(), String> {
    let (events, rx) = mpsc::unbounded_channel();
    {
        // Checked, recorded and registered under one lock: two submissions of one name race
        // for it, one wins.
        let mut st = shared.lock();
        if st.jobs.get(&spec.name).is_some_and(|j| j.ended.is_none()) {
            return Err(format!("job {:?} is running already", spec.name));
        }
        if let Some(record) = record {
            record(&shared.cfg.dir.join("jobs").join(&spec.name))?;
        }
        st.jobs.insert(
            spec.name.clone(),
            Job {
                info: JobInfo {
                    name: spec.name.clone(),
                    state: "waiting".into(),
                    epoch: 0,
                    restarts,
                    nodes: Vec::new(),
                    key_groups: Vec::new(),
                    program: spec.program.clone(),
                    latest_complete: None,
                    dir: shared.cfg.dir.join("jobs").join(&spec.name),
                },
                events,
                ended: None,
                watchers: watcher.into_iter().collect(),
            },
        );
    }
    let (s, spec) = (Arc::clone(shared), spec.clone());
    shared.spawn(async move {
        let end = supervise(&s, &spec, rx, restarts, previous).await;
        let state = match &end {
            JobEnd::Finished { .. } => "finished",
            JobEnd::Cancelled { .. } => "cancelled",
            JobEnd::Failed { .. } => "failed",
        };
        let dir = s.cfg.dir.join("jobs").join(&spec.name);
        let (epoch, restarts) = match &end {
            JobEnd::Finished { epoch, restarts }
            | JobEnd::Failed {
                epoch, restarts, ..
            } => (*epoch, *restarts),
            JobEnd::Cancelled { epoch } => (*epoch, s.lock().jobs[&spec.name].info.restarts),
        };
        if let Err(e) = publish(
            &dir.join(crate::control::STATE),
            &format!("{state} {epoch} {restarts}\n"),
        ) {
            tracing::warn!(job = %spec.name, error = %e, "coordinator: cannot record the job's state");
        }
        tracing::info!(job = %spec.name, ?end, "coordinator: job ended");
        let mut st = s.lock();
        if let Some(j) = st.jobs.get_mut(&spec.name) {
            j.info.state = state.into();
            j.ended = Some(end.clone());
            for w in j.watchers.drain(..) {
                let _ = w.send(Reply::Ended(end.clone()));
            }
        }
    });
    Ok(())
}

/// Resumes the jobs recorded under the coordinator's directory as running or waiting; lists
/// the ended ones.
fn recover(shared: &Arc<Shared>) {
    let jobs = shared.cfg.dir.join("jobs");
    let Ok(entries) = std::fs::read_dir(&jobs) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = std::fs::read_to_string(dir.join(SPEC)) else {
            continue;
        };
        let spec: JobSpec = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "coordinator: an unreadable job record is skipped");
                continue;
            }
        };
        let (state, epoch, restarts) =
            crate::control::state_line(&dir).unwrap_or_else(|_| ("waiting".into(), 0, 0));
        let previous: Vec<String> = std::fs::read_to_string(dir.join(NODES))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        match state.as_str() {
            "running" | "waiting" => {
                tracing::info!(job = %spec.name, epoch, "coordinator: resuming a job after a restart");
                // The attempt the coordinator's loss ended counts as a restart.
                let restarts = if state == "running" {
                    restarts + 1
                } else {
                    restarts
                };
                if let Err(e) = start_job(shared, &spec, None, restarts, previous, None) {
                    tracing::warn!(job = %spec.name, error = %e, "coordinator: cannot resume the job");
                }
            }
            ended => {
                let end = match ended {
                    "finished" => JobEnd::Finished { epoch, restarts },
                    "cancelled" => JobEnd::Cancelled { epoch },
                    other => JobEnd::Failed {
                        epoch,
                        restarts,
                        reason: format!("{other} before the coordinator restarted"),
                    },
                };
                let (events, _) = mpsc::unbounded_channel();
                shared.lock().jobs.insert(
                    spec.name.clone(),
                    Job {
                        info: JobInfo {
                            name: spec.name.clone(),
                            state: ended.to_owned(),
                            epoch,
                            restarts,
                            key_groups: (0..previous.len())
                                .map(|k| proto::key_group_range(k, previous.len()))
                                .collect(),
                            nodes: previous,
                            program: spec.program.clone(),
                            latest_complete: None,
                            dir: dir.clone(),
                        },
                        events,
                        ended: Some(end),
                        watchers: Vec::new(),
                    },
                );
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Finished,
    Cancelled(oneshot::Sender<JobEnd>),
    Died(String),
}

/// Runs `spec` to its end, restart-all, one epoch per attempt.
async fn supervise(
    shared: &Arc<Shared>,
    spec: &JobSpec,
    mut events: mpsc::UnboundedReceiver<JobEvent>,
    mut restarts: u32,
    mut previous: Vec<String>,
) -> JobEnd {
    let dir = shared.cfg.dir.join("jobs").join(&spec.name);
    let fail = |epoch, restarts, reason: String| JobEnd::Failed {
        epoch,
        restarts,
        reason,
    };
    let fence_dir = dir.join("fence");
    let (record, fences) = match FileEpochStore::in_dir(&fence_dir)
        .and_then(|r| Ok((r, FileEpochStore::in_dir(&fence_dir)?)))
    {
        Ok((r, f)) => (r, FencedStorage::new(Arc::new(f))),
        Err(e) => return fail(0, 0, format!("{}: {e}", fence_dir.display())),
    };
    let mut epoch = record.highest().map_or(0, |e| e.0);
    loop {
        if let Err(e) = publish(
            &dir.join(crate::control::STATE),
            &format!("waiting {epoch} {restarts}\n"),
        ) {
            return fail(epoch, restarts, e.to_string());
        }
        let chosen = match choose(shared, spec, &previous, &mut events).await {
            Ok(c) => c,
            Err(Waited::Cancelled(tx)) => {
                let end = JobEnd::Cancelled { epoch };
                let _ = tx.send(end.clone());
                return end;
            }
            Err(Waited::TooFew(why)) => return fail(epoch, restarts, why),
        };
        epoch = match record.highest() {
            Ok(e) => e.0 + 1,
            Err(e) => return fail(epoch, restarts, e.to_string()),
        };
        if let Err(e) = fences.begin(Epoch(epoch)) {
            return fail(epoch, restarts, e.to_string());
        }
        if let Err(e) = publish(
            &dir.join(crate::control::STATE),
            &format!("running {epoch} {restarts}\n"),
        ) {
            return fail(epoch, restarts, e.to_string());
        }
        let peers: Vec<(String, SocketAddr)> = chosen.clone();
        let names: Vec<String> = chosen.iter().map(|(n, _)| n.clone()).collect();
        let lines: String = names.iter().map(|n| format!("{n}\n")).collect();
        if let Err(e) = publish(&dir.join(NODES), &lines) {
            return fail(epoch, restarts, e.to_string());
        }
        {
            let st = shared.lock();
            for (i, (n, _)) in chosen.iter().enumerate() {
                // A node that left since it was picked: its loss ends the attempt.
                if let Some(node) = st.nodes.get(n) {
                    let _ = node.tx.send(Reply::Start(Assignment {
                        job: spec.name.clone(),
                        epoch,
                        node: i,
                        peers: peers.clone(),
                        dir: dir.clone(),
                        program: spec.program.clone(),
                    }));
                }
            }
        }
        shared.update(&spec.name, |i| {
            i.state = "running".into();
            i.epoch = epoch;
            i.restarts = restarts;
            i.key_groups = (0..names.len())
                .map(|k| proto::key_group_range(k, names.len()))
                .collect();
            i.nodes = names.clone();
        });
        shared.progress(
            &spec.name,
            format!("attempt {epoch} started on {}", names.join(", ")),
        );
        let chosen = names;
        // Whose program of this attempt ended (exited, or its node was lost): no stop for them.
        let mut done = vec![false; chosen.len()];
        let mut finished = 0;
        let index = |name: &str| chosen.iter().position(|c| c == name);
        let outcome = loop {
            let Some(ev) = events.recv().await else {
                break Attempt::Died("the coordinator is stopping".into());
            };
            match ev {
                JobEvent::Exited {
                    name,
                    epoch: e,
                    code,
                    why,
                } if e == epoch => {
                    let Some(i) = index(&name) else { continue };
                    if done[i] {
                        continue;
                    }
                    done[i] = true;
                    if code == Some(0) {
                        finished += 1;
                        if finished == chosen.len() {
                            break Attempt::Finished;
                        }
                    } else {
                        let how =
                            code.map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
                        break Attempt::Died(format!("node {i} ({name}) {how}: {why}"));
                    }
                }
                JobEvent::Lost { name } => {
                    if let Some(i) = index(&name)
                        && !done[i]
                    {
                        done[i] = true;
                        break Attempt::Died(format!("node {i} ({name}) left the coordinator"));
                    }
                }
                JobEvent::Cancel(tx) => break Attempt::Cancelled(tx),
                JobEvent::Exited { .. } | JobEvent::Joined => {}
            }
        };
        match outcome {
            Attempt::Finished => {
                release(shared, &chosen, &spec.name);
                shared.progress(
                    &spec.name,
                    format!("every node finished in attempt {epoch} ({restarts} restarts)"),
                );
                return JobEnd::Finished { epoch, restarts };
            }
            Attempt::Cancelled(tx) => {
                stop(shared, spec, epoch, &chosen, &done, &mut events).await;
                let end = JobEnd::Cancelled { epoch };
                let _ = tx.send(end.clone());
                return end;
            }
            Attempt::Died(why) => {
                stop(shared, spec, epoch, &chosen, &done, &mut events).await;
                restarts += 1;
                if restarts > spec.max_restarts {
                    return fail(
                        epoch,
                        restarts,
                        format!("gave up after {restarts} restarts; the last: {why}"),
                    );
                }
                shared.progress(
                    &spec.name,
                    format!("attempt {epoch} failed: {why}; restarting every node"),
                );
                shared.update(&spec.name, |i| i.restarts = restarts);
                previous = chosen;
            }
        }
    }
}

enum Waited {
    Cancelled(oneshot::Sender<JobEnd>),
    TooFew(String),
}

/// The job's nodes for the next attempt, with their data addresses, marked as running it:
/// each index keeps its earlier node while that one is joined and free; the others are filled
/// from the free nodes in name order. Waits up to `wait_nodes` for enough of them.
async fn choose(
    shared: &Shared,
    spec: &JobSpec,
    previous: &[String],
    events: &mut mpsc::UnboundedReceiver<JobEvent>,
) -> Result<Vec<(String, SocketAddr)>, Waited> {
    let deadline = tokio::time::Instant::now() + shared.cfg.wait_nodes;
    let mut said = false;
    loop {
        let free = {
            let mut st = shared.lock();
            let free: Vec<String> = st
                .nodes
                .iter()
                .filter(|(_, n)| n.running.is_none())
                .map(|(k, _)| k.clone())
                .collect();
            let mut picked: Vec<Option<String>> = (0..spec.nodes)
                .map(|i| previous.get(i).filter(|p| free.contains(p)).cloned())
                .collect();
            let spare: Vec<String> = free
                .iter()
                .filter(|f| !picked.iter().flatten().any(|p| p == *f))
                .cloned()
                .collect();
            let mut spare = spare.into_iter();
            for slot in picked.iter_mut().filter(|s| s.is_none()) {
                *slot = spare.next();
            }
            let free = free.len();
            if picked.iter().all(Option::is_some) {
                let mut chosen = Vec::with_capacity(picked.len());
                for (i, name) in picked.into_iter().flatten().enumerate() {
                    if let Some(n) = st.nodes.get_mut(&name) {
                        n.running = Some((spec.name.clone(), i));
                        chosen.push((name, n.data));
                    }
                }
                return Ok(chosen);
            }
            free
        };
        if !said {
            shared.progress(
                &spec.name,
                format!("waiting for nodes: {free} of {} free", spec.nodes),
            );
            said = true;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(Waited::TooFew(format!(
                    "only {free} of the {} nodes the job needs joined and are free after {:?}",
                    spec.nodes, shared.cfg.wait_nodes
                )));
            }
            Ok(None) => return Err(Waited::TooFew("the coordinator is stopping".into())),
            Ok(Some(JobEvent::Cancel(tx))) => return Err(Waited::Cancelled(tx)),
            Ok(Some(_)) => {}
        }
    }
}

/// Stops the nodes of `epoch` whose programs did not end and waits for their exits (or their loss),
/// up to `stop_timeout`; then frees every node of the attempt.
async fn stop(
    shared: &Shared,
    spec: &JobSpec,
    epoch: u64,
    chosen: &[String],
    done: &[bool],
    events: &mut mpsc::UnboundedReceiver<JobEvent>,
) {
    let mut waiting: Vec<String> = Vec::new();
    {
        let st = shared.lock();
        for (i, name) in chosen.iter().enumerate() {
            if done[i] {
                continue;
            }
            if let Some(n) = st.nodes.get(name)
                && n.running.as_ref().is_some_and(|(j, _)| j == &spec.name)
                && n.tx
                    .send(Reply::Stop {
                        job: spec.name.clone(),
                        epoch,
                    })
                    .is_ok()
            {
                waiting.push(name.clone());
            }
        }
    }
    let deadline = tokio::time::Instant::now() + shared.cfg.stop_timeout;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(JobEvent::Exited { name, epoch: e, .. })) if e == epoch => {
                waiting.retain(|w| *w != name);
            }
            Ok(Some(JobEvent::Lost { name })) => waiting.retain(|w| *w != name),
            Ok(Some(JobEvent::Cancel(tx))) => {
                // Already stopping: the cancel ends with this attempt.
                let _ = tx.send(JobEnd::Cancelled { epoch });
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(job = %spec.name, epoch, nodes = ?waiting, "coordinator: nodes did not report their stop in time");
                break;
            }
        }
    }
    release(shared, chosen, &spec.name);
}

/// Frees the job's nodes.
fn release(shared: &Shared, chosen: &[String], job: &str) {
    let mut st = shared.lock();
    for name in chosen {
        if let Some(n) = st.nodes.get_mut(name)
            && n.running.as_ref().is_some_and(|(j, _)| j == job)
        {
            n.running = None;
        }
    }
}

/// The status, each started job with the newest checkpoint its commit log completed.
async fn status_with_checkpoints(shared: &Shared) -> CoordinatorStatus {
    let mut s = shared.status();
    for j in &mut s.jobs {
        if !j.nodes.is_empty() {
            match crate::control::latest_complete(&j.dir, j.nodes.len()).await {
                Ok(id) => j.latest_complete = id,
                Err(e) => {
                    tracing::warn!(job = %j.name, error = %e, "coordinator: cannot read the commit log")
                }
            }
        }
    }
    s
}

async fn cancel(shared: &Shared, job: &str) -> Reply {
    let (tx, rx) = oneshot::channel();
    let events = {
        let st = shared.lock();
        match st.jobs.get(job) {
            Some(j) if j.ended.is_none() => j.events.clone(),
            Some(j) => {
                return Reply::Refused(format!("job {job:?} is {}, not running", j.info.state));
            }
            None => return Reply::Refused(format!("no job named {job:?}")),
        }
    };
    if events.send(JobEvent::Cancel(tx)).is_err() {
        return Reply::Refused(format!("job {job:?} ended meanwhile"));
    }
    match rx.await {
        Ok(end) => Reply::Cancelled {
            job: job.to_owned(),
            end,
        },
        Err(_) => Reply::Refused(format!("job {job:?} ended before the cancel")),
    }
}

async fn savepoint(shared: &Shared, job: &str, target: &std::path::Path) -> Reply {
    let (dir, nodes) = {
        let st = shared.lock();
        match st.jobs.get(job) {
            Some(j) => (j.info.dir.clone(), j.info.nodes.len()),
            None => return Reply::Refused(format!("no job named {job:?}")),
        }
    };
    if nodes == 0 {
        return Reply::Refused(format!("job {job:?} never started"));
    }
    match crate::control::savepoint_of(&dir, nodes, target).await {
        Ok(s) => Reply::Saved(s),
        Err(e) => Reply::Refused(e.to_string()),
    }
}
