//! Cluster singletons: one instance of an actor (or of any graph registering one) in the
//! whole cluster, run by its oldest member and moved to the next oldest once that member is
//! downed or leaves; a proxy ref on every node forwards what it is told to wherever the
//! instance runs, waiting (and so holding `tell` back) while no node hosts it.
//!
//! **Where it runs.** Every node computes the host from its own [`MembershipView`]: the oldest
//! of [`MembershipView::members`] (live members and lost ones not yet downed). So a member that
//! became unreachable keeps the seat until the split-brain resolver downs it (after its
//! stable-after delay), and a node on the side that downs itself stops its instance: two sides
//! of a partition never both run one. Without a resolver a lost host is never downed and the
//! singleton does not move (as with placement and the coordinator's seat, see
//! [`crate::placement`]).
//!
//! **Delivery.** The proxy sends to the host over a reliable remote ref (at-least-once across
//! broken streams, in order), or to the local instance's ref on the host itself. What was on the
//! way to a host that is lost, or queued at an instance when it stops for a move, is not carried
//! over: the move is at most once for those messages, as Akka's, and they go to dead letters
//! where the node sees them. Design in `docs/architecture.md` ("Cluster singleton").

mod proxy;

use crate::lease::Lease;
use crate::membership::MembershipView;
use crate::remote::{ActorNode, RemoteError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_engine::{Materializer, RunHandle};
use weir_graph::{ErrorKind, Keep, RunnableGraph, Sink, StageError};
use weir_operators::actor::{
    Actor, ActorRef, ActorRegistry, DEFAULT_MAILBOX_CAPACITY, MailboxConfig, Props, actor_source,
};
use weir_operators::sink::SinkCtors;

/// Why a singleton did not start.
#[derive(Debug, thiserror::Error)]
pub enum SingletonError {
    /// The settings are invalid.
    #[error("singleton settings: {0}")]
    Config(String),
    /// The path could not be exposed or the proxy not made.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The proxy's mailbox settings do not fit its message type.
    #[error("singleton proxy: {0}")]
    Proxy(#[from] StageError),
}

/// The node that runs the singleton according to `view`: the oldest member (live, or lost and
/// not yet downed), or `None` once this node itself left or downed itself.
pub fn singleton_host(view: &MembershipView) -> Option<String> {
    if !view.up.iter().any(|m| m == &view.me) {
        return None;
    }
    view.members().into_iter().next().map(|m| m.name)
}

/// Settings of a [`ClusterSingleton`].
#[derive(Debug, Clone)]
pub struct SingletonSettings {
    /// The registry path the instance registers its actor at, on whichever node runs it.
    pub path: String,
    /// Messages the proxy ref holds before `tell` waits.
    pub proxy_capacity: usize,
    /// The wait before a failed or ended instance is started again on the host, and before
    /// the proxy looks for a local instance that is not registered yet.
    pub retry: Duration,
}

impl SingletonSettings {
    /// Defaults for `path`: proxies of [`DEFAULT_MAILBOX_CAPACITY`] messages, retries after
    /// 100 ms.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            proxy_capacity: DEFAULT_MAILBOX_CAPACITY,
            retry: Duration::from_millis(100),
        }
    }
}

/// Counters of one node's part of a singleton.
#[derive(Debug, Default)]
pub struct SingletonStats {
    starts: AtomicU64,
    stops: AtomicU64,
    failures: AtomicU64,
    forwarded: AtomicU64,
    undelivered: AtomicU64,
    moves: AtomicU64,
    lease_waits: AtomicU64,
    lease_lost: AtomicU64,
    hosting: AtomicBool,
}

impl SingletonStats {
    /// The series on `/metrics`.
    fn series(&self) -> Vec<crate::metrics::Series> {
        use crate::metrics::{counter, gauge};
        vec![
            counter(
                "weir_singleton_starts_total",
                "Singleton instances started on this node",
                self.starts(),
            ),
            counter(
                "weir_singleton_stops_total",
                "Singleton instances this node stopped",
                self.stops(),
            ),
            counter(
                "weir_singleton_failures_total",
                "Singleton instances that failed to start or ended",
                self.failures(),
            ),
            counter(
                "weir_singleton_forwarded_total",
                "Messages the singleton proxy passed on",
                self.forwarded(),
            ),
            counter(
                "weir_singleton_undelivered_total",
                "Messages the singleton proxy could not pass on",
                self.undelivered(),
            ),
            counter(
                "weir_singleton_moves_total",
                "Times the singleton proxy switched to another host",
                self.moves(),
            ),
            gauge(
                "weir_singleton_hosting",
                "1 while this node runs the singleton instance",
                u64::from(self.hosting()),
            ),
        ]
    }

    /// Instances started on this node.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }
    /// Instances this node stopped (the seat moved, or the singleton stopped).
    pub fn stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }
    /// Instances that failed to start or ended on their own (started again after `retry`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Messages the proxy passed on to an instance (local or remote).
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
    /// Messages the proxy could not pass on (the instance stopped under it): dead letters.
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }
    /// Times this node was the host but another node held the lease (checked every renewal
    /// interval).
    pub fn lease_waits(&self) -> u64 {
        self.lease_waits.load(Ordering::Relaxed)
    }
    /// Times a renewal failed while the instance ran here (it was stopped).
    pub fn lease_lost(&self) -> u64 {
        self.lease_lost.load(Ordering::Relaxed)
    }
    /// Times the proxy switched to another host (the first host included).
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }
    /// Whether this node runs the instance now.
    pub fn hosting(&self) -> bool {
        self.hosting.load(Ordering::Relaxed)
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// A running instance: its materialized value (kept so its refs stay alive) and its run.
struct Instance {
    _mat: std::sync::Mutex<Box<dyn Any + Send>>,
    run: RunHandle,
}

type Factory = Arc<dyn Fn() -> Result<Instance, StageError> + Send + Sync>;
type Expose = fn(&ActorNode, &str) -> Result<(), RemoteError>;
type MakeRef<M> = fn(&ActorNode, &str, &str) -> Result<ActorRef<M>, RemoteError>;

/// What a singleton takes and answers: chosen by [`SingletonBuilder::tells`] or
/// [`SingletonBuilder::asks`].
pub struct Typed<M> {
    expose: Expose,
    make_ref: MakeRef<M>,
}

fn expose_tells<M: DeserializeOwned + Send + 'static>(
    n: &ActorNode,
    path: &str,
) -> Result<(), RemoteError> {
    n.expose::<M>(path)
}

fn expose_asks<M, R>(n: &ActorNode, path: &str) -> Result<(), RemoteError>
where
    M: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    n.expose_ask::<M, R>(path)
}

fn ref_tells<M: Serialize + Send + 'static>(
    n: &ActorNode,
    node: &str,
    path: &str,
) -> Result<ActorRef<M>, RemoteError> {
    n.remote(node, path).reliable().tells::<M>()
}

fn ref_asks<M, R>(n: &ActorNode, node: &str, path: &str) -> Result<ActorRef<M>, RemoteError>
where
    M: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    n.remote(node, path).reliable().asks::<M, R>()
}

/// How a singleton is made: [`ClusterSingleton::builder`], then [`SingletonBuilder::tells`] or
/// [`SingletonBuilder::asks`], then `start` (an actor) or `start_graph` (any graph that
/// registers the actor at the path).
pub struct SingletonBuilder {
    settings: SingletonSettings,
    lease: Option<Arc<dyn Lease>>,
}

impl SingletonBuilder {
    /// Settings other than the defaults (the path stays the builder's).
    pub fn settings(mut self, settings: SingletonSettings) -> Self {
        let path = std::mem::take(&mut self.settings.path);
        self.settings = SingletonSettings { path, ..settings };
        self
    }

    /// Runs the instance only while this node also holds `lease` (each node gives its own
    /// value of one lease, naming itself): a host takes it before starting the instance,
    /// renews it while it runs, stops the instance when a renewal fails, and releases it when
    /// the seat moves. Two nodes that both see themselves as the host (a partition before the
    /// split-brain resolver decided) then never both run an instance.
    pub fn lease(mut self, lease: Arc<dyn Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// A singleton taking `M` messages (asks on the proxy get no reply).
    pub fn tells<M>(self) -> TypedBuilder<M>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        TypedBuilder {
            settings: self.settings,
            lease: self.lease,
            typed: Typed {
                expose: expose_tells::<M>,
                make_ref: ref_tells::<M>,
            },
        }
    }

    /// A singleton taking `M` messages and answering asks with `R`.
    pub fn asks<M, R>(self) -> TypedBuilder<M>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TypedBuilder {
            settings: self.settings,
            lease: self.lease,
            typed: Typed {
                expose: expose_asks::<M, R>,
                make_ref: ref_asks::<M, R>,
            },
        }
    }
}

/// A singleton builder with its message types chosen.
pub struct TypedBuilder<M> {
    settings: SingletonSettings,
    lease: Option<Arc<dyn Lease>>,
    typed: Typed<M>,
}

impl<M: Send + 'static> TypedBuilder<M> {
    /// Runs the actor `props()` makes as the singleton: on the host, `materializer` (which must
    /// carry the node's [`ActorRegistry`] as a service) runs `Source::actor(props())` registered
    /// at the path, its output ignored.
    pub fn start<A, F>(
        self,
        node: Arc<ActorNode>,
        materializer: Materializer,
        view: watch::Receiver<MembershipView>,
        props: F,
    ) -> Result<ClusterSingleton<M>, SingletonError>
    where
        A: Actor<Msg = M>,
        F: Fn() -> Props<A> + Send + Sync + 'static,
    {
        let path = self.settings.path.clone();
        self.start_graph(node, materializer, view, move || {
            actor_source(props().register_as(&path)).to_mat(Sink::ignore(), Keep::left)
        })
    }

    /// Runs the graph `graph()` makes as the singleton; it must register an actor taking `M`
    /// at the path when it materializes (a graph that ends, or fails, is started again after
    /// `retry` while this node is the host).
    pub fn start_graph<Mat, G>(
        self,
        node: Arc<ActorNode>,
        materializer: Materializer,
        view: watch::Receiver<MembershipView>,
        graph: G,
    ) -> Result<ClusterSingleton<M>, SingletonError>
    where
        Mat: Send + 'static,
        G: Fn() -> RunnableGraph<Mat> + Send + Sync + 'static,
    {
        let s = self.settings;
        if s.proxy_capacity == 0 {
            return Err(SingletonError::Config(
                "proxy_capacity must be at least 1".into(),
            ));
        }
        ActorRegistry::check_path(&s.path).map_err(RemoteError::from)?;
        (self.typed.expose)(&node, &s.path)?;
        let factory: Factory = Arc::new(move || {
            let (mat, run) = materializer
                .materialize(&graph())
                .map_err(|e| StageError::new(ErrorKind::User, format!("singleton graph: {e}")))?;
            Ok(Instance {
                _mat: std::sync::Mutex::new(Box::new(mat)),
                run,
            })
        });
        let stats = Arc::new(SingletonStats::default());
        let (stop, stopped) = watch::channel(false);
        let me = node.name().to_owned();
        let manager = tokio::spawn(manage(
            Manager {
                me: me.clone(),
                factory,
                retry: s.retry,
                stats: Arc::clone(&stats),
                lease: self.lease,
            },
            view.clone(),
            stopped.clone(),
        ));
        let (actor, inbox) = ActorRef::<M>::proxy(
            &format!("weir://singleton{}", s.path),
            &MailboxConfig::bounded(s.proxy_capacity),
            Arc::new(weir_engine::SystemClock::new()),
            None,
        )?;
        let forwarder = tokio::spawn(proxy::forward(proxy::Forward {
            node,
            inbox,
            view: view.clone(),
            make_ref: self.typed.make_ref,
            path: s.path.clone(),
            retry: s.retry,
            stats: Arc::clone(&stats),
            stop: stopped,
        }));
        tracing::debug!(path = %s.path, "cluster singleton started");
        let series = Arc::clone(&stats);
        let metrics = crate::metrics::Published::new(
            vec![("node", me), ("path", s.path.clone())],
            move || series.series(),
        );
        Ok(ClusterSingleton {
            _metrics: metrics,
            actor,
            view,
            stats,
            stop,
            tasks: vec![manager, forwarder],
            path: s.path,
        })
    }
}

/// One node's part of a cluster singleton: the manager that runs the instance while this node
/// is the host, and the proxy ref that forwards to the host. Dropping it stops both (an
/// instance running here is cancelled); [`ClusterSingleton::stop`] also waits for that.
pub struct ClusterSingleton<M: Send + 'static> {
    actor: ActorRef<M>,
    view: watch::Receiver<MembershipView>,
    stats: Arc<SingletonStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    path: String,
    _metrics: crate::metrics::Published,
}

impl<M: Send + 'static> std::fmt::Debug for ClusterSingleton<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSingleton")
            .field("path", &self.path)
            .field("hosting", &self.stats.hosting())
            .finish()
    }
}

impl ClusterSingleton<()> {
    /// A singleton whose instance registers its actor at `path` (see [`SingletonBuilder`]).
    pub fn builder(path: &str) -> SingletonBuilder {
        SingletonBuilder {
            settings: SingletonSettings::new(path),
            lease: None,
        }
    }
}

impl<M: Send + 'static> ClusterSingleton<M> {
    /// The proxy ref: `tell`, `try_tell` and `ask` reach the instance wherever it runs.
    pub fn actor_ref(&self) -> ActorRef<M> {
        self.actor.clone()
    }

    /// The node that runs the instance according to this node's view.
    pub fn host(&self) -> Option<String> {
        singleton_host(&self.view.borrow())
    }

    /// This node's counters.
    pub fn stats(&self) -> &SingletonStats {
        &self.stats
    }

    /// The instance's registry path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Stops the proxy and, on the host, the instance, waiting until it ended.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl<M: Send + 'static> Drop for ClusterSingleton<M> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What woke the manager.
enum Wake {
    View,
    Stop,
    Ended(Result<(), StageError>),
    Retry,
    Lease,
}

/// What the manager of one node runs with.
struct Manager {
    me: String,
    factory: Factory,
    retry: Duration,
    stats: Arc<SingletonStats>,
    lease: Option<Arc<dyn Lease>>,
}

impl Manager {
    /// Takes or renews the lease (always granted without one).
    async fn lease_granted(&self) -> bool {
        let Some(l) = &self.lease else { return true };
        match l.acquire().await {
            Ok(true) => l.holding(),
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(node = %self.me, error = %e, "cluster singleton: lease not reached");
                false
            }
        }
    }

    /// Gives the lease up, if any.
    async fn release(&self) {
        if let Some(l) = &self.lease
            && let Err(e) = l.release().await
        {
            tracing::warn!(node = %self.me, error = %e, "cluster singleton: lease not released");
        }
    }
}

/// Runs the instance while this node is the host (and holds the lease, when there is one);
/// stops it when the seat moves or the lease is lost.
async fn manage(
    m: Manager,
    mut view: watch::Receiver<MembershipView>,
    mut stop: watch::Receiver<bool>,
) {
    let me = m.me.clone();
    let stats = Arc::clone(&m.stats);
    let mut running: Option<Instance> = None;
    let mut failed = false;
    loop {
        let host = singleton_host(&view.borrow_and_update());
        let mine = host.as_deref() == Some(me.as_str());
        if mine && running.is_none() && !failed {
            if m.lease_granted().await {
                match (m.factory)() {
                    Ok(i) => {
                        tracing::info!(node = %me, "cluster singleton: hosting");
                        bump(&stats.starts);
                        stats.hosting.store(true, Ordering::Relaxed);
                        running = Some(i);
                    }
                    Err(e) => {
                        tracing::warn!(node = %me, error = %e, "cluster singleton did not start");
                        bump(&stats.failures);
                        failed = true;
                    }
                }
            } else {
                bump(&stats.lease_waits);
            }
        } else if !mine && let Some(i) = running.take() {
            tracing::info!(node = %me, host = ?host, "cluster singleton: handing over");
            end(i, &stats).await;
            m.release().await;
        }
        // With a lease: renew it while running, try again while hosting without it.
        let lease_tick = m
            .lease
            .as_ref()
            .filter(|_| running.is_some() || mine)
            .map(|l| l.renew_every());
        let wake = tokio::select! {
            r = view.changed() => if r.is_ok() { Wake::View } else { Wake::Stop },
            _ = stop.wait_for(|s| *s) => Wake::Stop,
            r = async {
                match &running {
                    Some(i) => i.run.wait().await,
                    None => std::future::pending().await,
                }
            } => Wake::Ended(r),
            () = async {
                if failed {
                    tokio::time::sleep(m.retry).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => Wake::Retry,
            () = async {
                match lease_tick {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending::<()>().await,
                }
            } => Wake::Lease,
        };
        match wake {
            Wake::View => {}
            Wake::Stop => break,
            Wake::Ended(r) => {
                tracing::warn!(node = %me, result = ?r, "cluster singleton instance ended");
                running = None;
                stats.hosting.store(false, Ordering::Relaxed);
                bump(&stats.failures);
                failed = true;
            }
            Wake::Retry => failed = false,
            Wake::Lease => {
                if running.is_some() && !m.lease_granted().await {
                    tracing::warn!(node = %me, "cluster singleton: lease lost, stopping the instance");
                    bump(&stats.lease_lost);
                    if let Some(i) = running.take() {
                        end(i, &stats).await;
                    }
                }
            }
        }
    }
    if let Some(i) = running.take() {
        end(i, &stats).await;
        m.release().await;
    }
}

/// Cancels an instance and waits until its run ended.
async fn end(i: Instance, stats: &SingletonStats) {
    i.run.cancel();
    let _ = i.run.wait().await;
    bump(&stats.stops);
    stats.hosting.store(false, Ordering::Relaxed);
}
