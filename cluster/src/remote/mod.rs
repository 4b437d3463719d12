//! Refs to actors on other nodes: an [`ActorNode`] makes `ActorRef`s whose messages travel to
//! an actor registered on a peer node, and delivers what peers send to the actors this node
//! exposes. A remote ref is an ordinary [`ActorRef`]: `tell` (waiting while it is full),
//! `try_tell`, `ask`, `ctx.tell` from an actor and the remote actor's `ctx.reply` all work as
//! they do locally.
//!
//! One stream per ordered node pair carries every channel (one per remote ref) from the sending
//! node; each channel has `window` messages of credit, returned as the receiving node moves
//! them into the actor's mailbox, so a slow actor holds back `tell` on the sending node within
//! bounded buffers and never stalls another channel. Per channel, messages arrive in order; by
//! default at most once across a broken stream, exactly once across broken streams and at least
//! once across a restart of the receiving node for [`RemoteRefBuilder::reliable`] channels.
//! Design in `docs/architecture.md` ("Remote actor refs").

mod send;
mod serve;
mod typed;
mod wire;

use crate::frame::EdgeId;
use crate::transport::Transport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use typed::{Exposed, ExposedAs, NoReplies, Proxy};
use weir_engine::SystemClock;
use weir_graph::{Clock, StageError};
use weir_operators::actor::{
    ActorRef, ActorRegistry, DEFAULT_MAILBOX_CAPACITY, DeadLetterService, MailboxConfig,
    RegistryError,
};

/// The edge remote-actor streams use by default.
pub const DEFAULT_ACTOR_EDGE: EdgeId = (1 << 61) + 2;

/// Settings of an [`ActorNode`].
#[derive(Clone)]
pub struct RemoteConfig {
    /// This node's name.
    pub me: String,
    /// The peers' node names (as the transport knows them); this node's own name is skipped.
    pub peers: Vec<String>,
    /// The edge of the remote-actor streams.
    pub edge: EdgeId,
    /// Messages of one channel in flight (sent, not yet in the remote mailbox) at most.
    pub window: usize,
    /// Messages a remote ref's own mailbox holds before `tell` waits.
    pub proxy_capacity: usize,
    /// Messages in one data frame at most.
    pub chunk_rows: usize,
    /// Encoded bytes of one message at most (a larger one goes to dead letters).
    pub max_message_bytes: usize,
    /// The wait before a broken or refused stream to a peer is opened again.
    pub reconnect: Duration,
    /// How long a message waits for its path to be exposed and an actor to be registered
    /// there before it goes to dead letters (the channel is refused when the path is never
    /// exposed).
    pub resolve_timeout: Duration,
    /// The clock remote refs' `ask` timeouts run on.
    pub clock: Arc<dyn Clock>,
    /// Where undeliverable messages are recorded (both ends), when given.
    pub dead_letters: Option<Arc<DeadLetterService>>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("me", &self.me)
            .field("peers", &self.peers)
            .field("edge", &self.edge)
            .field("window", &self.window)
            .field("proxy_capacity", &self.proxy_capacity)
            .field("chunk_rows", &self.chunk_rows)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("reconnect", &self.reconnect)
            .field("resolve_timeout", &self.resolve_timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteConfig {
    /// Defaults for node `me` among `peers`: the default edge, 256 messages in flight per
    /// channel, proxies of [`DEFAULT_MAILBOX_CAPACITY`] messages, frames of 256 messages,
    /// messages of 1 MiB, reconnecting after 200 ms, resolving paths for 10 s, real time.
    pub fn new(me: &str, peers: Vec<String>) -> Self {
        Self {
            me: me.to_owned(),
            peers,
            edge: DEFAULT_ACTOR_EDGE,
            window: 256,
            proxy_capacity: DEFAULT_MAILBOX_CAPACITY,
            chunk_rows: 256,
            max_message_bytes: 1 << 20,
            reconnect: Duration::from_millis(200),
            resolve_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock::new()),
            dead_letters: None,
        }
    }
}

/// Why an [`ActorNode`] did not start, or a path or ref was not made.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The settings are invalid.
    #[error("actor node settings: {0}")]
    Config(String),
    /// The node named is not one of the configured peers.
    #[error("node '{node}' is not a peer of node '{me}'")]
    NotAPeer {
        /// The node asked for.
        node: String,
        /// This node.
        me: String,
    },
    /// The path is not a registry path, or the local actor under it takes another type.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A ref to this node's own actor at a path where none is registered.
    #[error("no actor is registered at '{path}' on this node ('{me}')")]
    NotFound {
        /// The path.
        path: String,
        /// This node.
        me: String,
    },
    /// The path is exposed already with other types.
    #[error("path '{path}' is exposed already for {msg_ty} messages")]
    Exposed {
        /// The path.
        path: String,
        /// The message type it is exposed for.
        msg_ty: &'static str,
    },
    /// The proxy's mailbox settings do not fit its message type.
    #[error("remote ref: {0}")]
    Proxy(#[from] StageError),
}

/// Counters of an [`ActorNode`].
#[derive(Debug, Default)]
pub struct RemoteStats {
    links_opened: AtomicU64,
    links_broken: AtomicU64,
    channels: AtomicU64,
    sent: AtomicU64,
    redelivered: AtomicU64,
    lost: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    undelivered: AtomicU64,
    replies_sent: AtomicU64,
    replies_received: AtomicU64,
    refused: AtomicU64,
    unsendable: AtomicU64,
    strangers: AtomicU64,
}

impl RemoteStats {
    /// The series on `/metrics`.
    fn series(&self) -> Vec<crate::metrics::Series> {
        use crate::metrics::counter;
        vec![
            counter(
                "weir_remote_actor_links_opened_total",
                "Remote-actor streams opened to peers",
                self.links_opened(),
            ),
            counter(
                "weir_remote_actor_links_broken_total",
                "Remote-actor streams to peers that broke",
                self.links_broken(),
            ),
            counter(
                "weir_remote_actor_channels_total",
                "Remote actor refs made",
                self.channels(),
            ),
            counter(
                "weir_remote_actor_messages_sent_total",
                "Messages sent to actors on peers (first sends)",
                self.sent(),
            ),
            counter(
                "weir_remote_actor_messages_redelivered_total",
                "Messages of reliable refs sent again after a broken stream",
                self.redelivered(),
            ),
            counter(
                "weir_remote_actor_messages_lost_total",
                "Messages of at-most-once refs in flight when their stream broke",
                self.lost(),
            ),
            counter(
                "weir_remote_actor_messages_delivered_total",
                "Messages from peers moved into this node's actors' mailboxes",
                self.delivered(),
            ),
            counter(
                "weir_remote_actor_messages_duplicate_total",
                "Redelivered messages from peers dropped as delivered before",
                self.duplicates(),
            ),
            counter(
                "weir_remote_actor_messages_undelivered_total",
                "Messages from peers that went to dead letters",
                self.undelivered(),
            ),
            counter(
                "weir_remote_actor_replies_sent_total",
                "Replies sent back to asking peers",
                self.replies_sent(),
            ),
            counter(
                "weir_remote_actor_replies_received_total",
                "Replies from peers handed to askers",
                self.replies_received(),
            ),
            counter(
                "weir_remote_actor_channels_refused_total",
                "Remote-actor channels refused",
                self.refused(),
            ),
            counter(
                "weir_remote_actor_messages_unsendable_total",
                "Messages that did not encode or were too large",
                self.unsendable(),
            ),
            counter(
                "weir_remote_actor_strangers_total",
                "Remote-actor streams refused from nodes that are not peers",
                self.strangers(),
            ),
        ]
    }

    /// Streams opened to peers (one per peer, more after reconnects).
    pub fn links_opened(&self) -> u64 {
        self.links_opened.load(Ordering::Relaxed)
    }
    /// Streams to peers that broke.
    pub fn links_broken(&self) -> u64 {
        self.links_broken.load(Ordering::Relaxed)
    }
    /// Remote refs made (channels opened on first use).
    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }
    /// Messages sent to peers (first sends).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Messages of reliable channels sent again after a broken stream.
    pub fn redelivered(&self) -> u64 {
        self.redelivered.load(Ordering::Relaxed)
    }
    /// Messages of at-most-once channels in flight when their stream broke (not delivered,
    /// or delivered without an acknowledgement).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
    /// Messages from peers moved into this node's actors' mailboxes.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Messages from peers dropped because they were delivered before (redelivered).
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    /// Messages from peers that went to dead letters (no live actor at the path, undecodable,
    /// or the actor stopped).
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }
    /// Replies (and no-reply notices) sent back to asking peers.
    pub fn replies_sent(&self) -> u64 {
        self.replies_sent.load(Ordering::Relaxed)
    }
    /// Replies from peers handed to askers and sending actors.
    pub fn replies_received(&self) -> u64 {
        self.replies_received.load(Ordering::Relaxed)
    }
    /// Channels refused (by this node, or by a peer for this node).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Messages that did not encode or were larger than `max_message_bytes`.
    pub fn unsendable(&self) -> u64 {
        self.unsendable.load(Ordering::Relaxed)
    }
    /// Streams refused because the node that opened them is not a configured peer.
    pub fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::Relaxed)
    }
}

pub(super) fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the node's tasks share.
struct Shared {
    cfg: RemoteConfig,
    transport: Arc<dyn Transport>,
    registry: Arc<ActorRegistry>,
    stats: Arc<RemoteStats>,
    /// The paths this node delivers peers' messages to.
    exposed: Mutex<HashMap<String, Arc<dyn Exposed>>>,
    /// The channels to each peer.
    outs: HashMap<String, Mutex<send::PeerOut>>,
    /// Peers' channels to this node and what goes back to each peer, kept across streams.
    peers_in: Mutex<HashMap<String, Arc<serve::PeerIn>>>,
    /// Bumped by [`ActorNode::break_links`].
    cut: watch::Sender<u64>,
    next_chan: AtomicU64,
}

impl Shared {
    fn exposed(&self, path: &str) -> Option<Arc<dyn Exposed>> {
        lock(&self.exposed).get(path).cloned()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One node's remote actors: refs to actors on its peers, and delivery of what peers send to
/// the paths it exposes. Dropping it (or [`ActorNode::stop`]) stops its streams; its remote
/// refs then stop (`tell` fails with `Stopped`, what they held goes to dead letters).
pub struct ActorNode {
    shared: Arc<Shared>,
    _tasks: Vec<AbortOnDrop>,
    _metrics: crate::metrics::Published,
}

impl std::fmt::Debug for ActorNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorNode")
            .field("me", &self.shared.cfg.me)
            .field("peers", &self.shared.cfg.peers)
            .finish()
    }
}

impl ActorNode {
    /// Starts delivering peers' messages to the actors of `registry` (the registry the node's
    /// runs use) and linking to the peers over `transport` (inside a tokio runtime).
    pub fn start(
        transport: Arc<dyn Transport>,
        registry: Arc<ActorRegistry>,
        cfg: RemoteConfig,
    ) -> Result<Self, RemoteError> {
        if cfg.window == 0 || cfg.chunk_rows == 0 || cfg.max_message_bytes == 0 {
            return Err(RemoteError::Config(
                "window, chunk_rows and max_message_bytes must be at least 1".into(),
            ));
        }
        // A frame carries messages of up to about `max_message_bytes`, plus one.
        if cfg.max_message_bytes > crate::frame::DEFAULT_MAX_FRAME / 4 {
            return Err(RemoteError::Config(format!(
                "max_message_bytes {} is more than a quarter of a frame ({} bytes)",
                cfg.max_message_bytes,
                crate::frame::DEFAULT_MAX_FRAME
            )));
        }
        let outs = cfg
            .peers
            .iter()
            .filter(|p| **p != cfg.me)
            .map(|p| (p.clone(), Mutex::new(send::PeerOut::default())))
            .collect();
        let shared = Arc::new(Shared {
            transport,
            registry,
            stats: Arc::new(RemoteStats::default()),
            exposed: Mutex::new(HashMap::new()),
            outs,
            peers_in: Mutex::new(HashMap::new()),
            cut: watch::Sender::new(0),
            next_chan: AtomicU64::new(1),
            cfg,
        });
        let mut tasks = vec![AbortOnDrop(tokio::spawn(serve::accept_loop(Arc::clone(
            &shared,
        ))))];
        for peer in shared.outs.keys() {
            tasks.push(AbortOnDrop(tokio::spawn(send::link_loop(
                Arc::clone(&shared),
                peer.clone(),
            ))));
        }
        tracing::debug!(me = %shared.cfg.me, peers = shared.outs.len(), "actor node started");
        let stats = Arc::clone(&shared.stats);
        let metrics =
            crate::metrics::Published::new(vec![("node", shared.cfg.me.clone())], move || {
                stats.series()
            });
        Ok(Self {
            shared,
            _tasks: tasks,
            _metrics: metrics,
        })
    }

    /// Lets peers tell `M` messages to the actor registered at `path` on this node.
    pub fn expose<M>(&self, path: &str) -> Result<(), RemoteError>
    where
        M: DeserializeOwned + Send + 'static,
    {
        self.expose_entry(path, Arc::new(ExposedAs::<M, NoReplies>::new()))
    }

    /// Lets peers tell and ask `M` messages to the actor registered at `path` on this node,
    /// which answers asks with `R` (`ctx.reply`).
    pub fn expose_ask<M, R>(&self, path: &str) -> Result<(), RemoteError>
    where
        M: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.expose_entry(path, Arc::new(ExposedAs::<M, R>::new()))
    }

    fn expose_entry(&self, path: &str, e: Arc<dyn Exposed>) -> Result<(), RemoteError> {
        ActorRegistry::check_path(path)?;
        let mut exposed = lock(&self.shared.exposed);
        if let Some(old) = exposed.get(path) {
            if old.msg_ty() == e.msg_ty() && old.reply_ty() == e.reply_ty() {
                return Ok(());
            }
            return Err(RemoteError::Exposed {
                path: path.to_owned(),
                msg_ty: old.msg_ty(),
            });
        }
        exposed.insert(path.to_owned(), e);
        Ok(())
    }

    /// A ref to the actor at `path` on `node` (see [`RemoteRefBuilder`]).
    pub fn remote(&self, node: &str, path: &str) -> RemoteRefBuilder<'_> {
        RemoteRefBuilder {
            node: self,
            peer: node.to_owned(),
            path: path.to_owned(),
            reliable: false,
            mailbox: MailboxConfig::bounded(self.shared.cfg.proxy_capacity),
        }
    }

    /// The node's counters.
    pub fn stats(&self) -> &RemoteStats {
        &self.shared.stats
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.shared.cfg.me
    }

    /// Breaks every open stream of this node, as a network fault would: they are opened again
    /// after `reconnect` (what at-most-once channels had in flight is lost, reliable ones send
    /// it again). For fault tests and drills.
    pub fn break_links(&self) {
        self.shared.cut.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Stops the node's streams (as dropping it does).
    pub fn stop(self) {}
}

impl Drop for ActorNode {
    fn drop(&mut self) {
        for out in self.shared.outs.values() {
            lock(out).close_all();
        }
    }
}

/// How a remote ref is made: [`ActorNode::remote`], then [`RemoteRefBuilder::tells`] or
/// [`RemoteRefBuilder::asks`].
#[derive(Debug)]
pub struct RemoteRefBuilder<'a> {
    node: &'a ActorNode,
    peer: String,
    path: String,
    reliable: bool,
    mailbox: MailboxConfig,
}

impl RemoteRefBuilder<'_> {
    /// Redelivers what was in flight when a stream broke (the receiver drops what it
    /// delivered before): exactly once and in order across broken streams, at least once
    /// across a restart of the receiving node.
    pub fn reliable(mut self) -> Self {
        self.reliable = true;
        self
    }

    /// The ref's own mailbox (capacity and overflow policy of `try_tell`).
    pub fn mailbox(mut self, mailbox: MailboxConfig) -> Self {
        self.mailbox = mailbox;
        self
    }

    /// A ref telling `M` messages (an `ask` on it gets `NoReply` at once; a path exposed with
    /// `expose` or `expose_ask` for `M` takes them).
    pub fn tells<M>(self) -> Result<ActorRef<M>, RemoteError>
    where
        M: Serialize + Send + 'static,
    {
        self.build::<M>(None)
    }

    /// A ref telling and asking `M` messages answered with `R` (the path must be exposed with
    /// `expose_ask::<M, R>`); a reply to a sending actor reaches it when it takes `R`.
    pub fn asks<M, R>(self) -> Result<ActorRef<M>, RemoteError>
    where
        M: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.build::<M>(Some((
            std::any::type_name::<R>(),
            typed::reply_decoder::<R>(),
        )))
    }

    fn build<M>(
        self,
        reply: Option<(&'static str, typed::ReplyDecoder)>,
    ) -> Result<ActorRef<M>, RemoteError>
    where
        M: Serialize + Send + 'static,
    {
        let shared = &self.node.shared;
        if self.peer == shared.cfg.me {
            return shared
                .registry
                .lookup::<M>(&self.path)?
                .ok_or_else(|| RemoteError::NotFound {
                    path: self.path.clone(),
                    me: shared.cfg.me.clone(),
                });
        }
        let Some(out) = shared.outs.get(&self.peer) else {
            return Err(RemoteError::NotAPeer {
                node: self.peer,
                me: shared.cfg.me.clone(),
            });
        };
        ActorRegistry::check_path(&self.path)?;
        let (r, inbox) = ActorRef::<M>::proxy(
            &format!("weir://{}{}", self.peer, self.path),
            &self.mailbox,
            Arc::clone(&shared.cfg.clock),
            shared.cfg.dead_letters.clone(),
        )?;
        let source = Proxy {
            inbox,
            buf: Vec::new(),
            max_bytes: shared.cfg.max_message_bytes,
            replies: reply.is_some(),
            stats: Arc::clone(&shared.stats),
        };
        let chan = shared.next_chan.fetch_add(1, Ordering::Relaxed);
        let (reply_ty, decoder) = match reply {
            Some((t, d)) => (Some(t), Some(d)),
            None => (None, None),
        };
        lock(out).add(send::Chan::new(
            chan,
            self.path,
            std::any::type_name::<M>(),
            reply_ty,
            decoder,
            self.reliable,
            Box::new(source),
        ));
        bump(&shared.stats.channels, 1);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::DEFAULT_ACTOR_EDGE;
    use crate::coord::proto::CONTROL_EDGE;
    use crate::crdt::net::DEFAULT_EDGE_BASE;
    use crate::topic::DEFAULT_TOPIC_EDGE;

    #[test]
    fn the_services_default_edges_are_distinct() {
        let mut edges = vec![
            CONTROL_EDGE,
            DEFAULT_TOPIC_EDGE,
            DEFAULT_ACTOR_EDGE,
            DEFAULT_EDGE_BASE,
        ];
        edges.sort_unstable();
        edges.dedup();
        assert_eq!(edges.len(), 4, "two services share an edge: {edges:?}");
    }
}
