//! Topics across nodes: a [`TopicNode`] connects a process's [`Topics`] (the `to_topic` sinks
//! and `topic` sources of the streams DSL) to the same topics on its peer nodes, so an element
//! published on one node reaches the subscribers on every node, backpressured end to end.
//!
//! Each node opens one stream to each peer on the topic edge and subscribes there to the topics
//! it has local subscribers for; the peer attaches a reader to the topic's local ring and sends
//! what its local publishers publish, within the credit the subscriber grants as its inbound
//! ring frees up. So a slow subscriber on one node holds back the publishers on every node, and
//! each node holds at most its buffer per ring plus one chunk per subscription in flight. A
//! broken stream detaches the reader (publishers go on), and the subscriber reconnects and
//! subscribes again: across a node loss, delivery is at most once. Design in
//! `docs/architecture.md` ("Topics").

mod entry;
mod link;
mod serve;
mod wire;

use crate::frame::EdgeId;
use crate::transport::Transport;
use entry::{Entry, Typed};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_graph::GraphError;
use weir_operators::hub::{Topic, TopicError, Topics};

/// The edge topic links use by default.
pub const DEFAULT_TOPIC_EDGE: EdgeId = (1 << 61) + 1;

/// Settings of a [`TopicNode`].
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// The peers' node names (as the transport knows them); this node's own name is skipped.
    pub peers: Vec<String>,
    /// This node's name.
    pub me: String,
    /// The edge of the topic streams.
    pub edge: EdgeId,
    /// Rows each topic ring holds (and the credit a subscription starts with).
    pub buffer: usize,
    /// Rows in one data message at most.
    pub chunk_rows: usize,
    /// Payload bytes of one data message at most (an element larger than this is dropped and
    /// counted as unsendable).
    pub chunk_bytes: usize,
    /// The wait before a broken or refused stream to a peer is opened again.
    pub reconnect: Duration,
}

impl TopicConfig {
    /// Defaults for node `me` among `peers`: the default edge, rings of
    /// [`weir_operators::hub::DEFAULT_HUB_BUFFER`] rows, chunks of 256 rows and 1 MiB,
    /// reconnecting after 200 ms.
    pub fn new(me: &str, peers: Vec<String>) -> Self {
        Self {
            peers,
            me: me.to_owned(),
            edge: DEFAULT_TOPIC_EDGE,
            buffer: weir_operators::hub::DEFAULT_HUB_BUFFER,
            chunk_rows: 256,
            chunk_bytes: 1 << 20,
            reconnect: Duration::from_millis(200),
        }
    }
}

/// Why a [`TopicNode`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum TopicNodeError {
    /// The settings are invalid.
    #[error("topic node settings: {0}")]
    Config(String),
    /// The topics registry refused the buffer.
    #[error("topic node settings: {0}")]
    Graph(#[from] GraphError),
}

/// Counters of a [`TopicNode`].
#[derive(Debug, Default)]
pub struct TopicNodeStats {
    links_opened: AtomicU64,
    links_broken: AtomicU64,
    served: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    unsendable: AtomicU64,
    stale: AtomicU64,
    strangers: AtomicU64,
}

impl TopicNodeStats {
    /// The series on `/metrics`.
    fn series(&self) -> Vec<crate::metrics::Series> {
        use crate::metrics::counter;
        vec![
            counter(
                "weir_topic_links_opened_total",
                "Topic streams opened to peers",
                self.links_opened(),
            ),
            counter(
                "weir_topic_links_broken_total",
                "Topic streams to peers that broke",
                self.links_broken(),
            ),
            counter(
                "weir_topic_subscriptions_served_total",
                "Peers' subscriptions this node serves",
                self.served(),
            ),
            counter(
                "weir_topic_elements_sent_total",
                "Elements sent to subscribing peers",
                self.sent(),
            ),
            counter(
                "weir_topic_elements_received_total",
                "Elements received from peers",
                self.received(),
            ),
            counter(
                "weir_topic_credit_granted_total",
                "Rows of credit granted to peers beyond the first window",
                self.granted(),
            ),
            counter(
                "weir_topic_subscriptions_refused_total",
                "Subscriptions refused (element types differ)",
                self.refused(),
            ),
            counter(
                "weir_topic_elements_unsendable_total",
                "Elements that did not encode or were too large",
                self.unsendable(),
            ),
            counter(
                "weir_topic_messages_stale_total",
                "Data messages of ended subscriptions, ignored",
                self.stale(),
            ),
            counter(
                "weir_topic_strangers_total",
                "Topic streams refused from nodes that are not peers",
                self.strangers(),
            ),
        ]
    }

    /// Streams opened to peers (one per peer, more after reconnects).
    pub fn links_opened(&self) -> u64 {
        self.links_opened.load(Ordering::Relaxed)
    }
    /// Streams to peers that broke (the peer stopped, or sent what does not decode).
    pub fn links_broken(&self) -> u64 {
        self.links_broken.load(Ordering::Relaxed)
    }
    /// Subscriptions of peers this node attached a reader for.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
    /// Elements sent to subscribing peers.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Elements received from peers for this node's subscriptions.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Rows of credit granted to peers beyond the first window.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }
    /// Subscriptions refused (by this node, or by a peer for this node): element types differ.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Elements dropped because they do not encode, or are larger than a data message.
    pub fn unsendable(&self) -> u64 {
        self.unsendable.load(Ordering::Relaxed)
    }
    /// Data messages of an ended subscription, ignored.
    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }
    /// Streams refused because the node that opened them is not a configured peer.
    pub fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::Relaxed)
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// What the node's tasks share.
struct Shared {
    cfg: TopicConfig,
    transport: Arc<dyn Transport>,
    topics: Topics,
    entries: Mutex<BTreeMap<String, Arc<dyn Entry>>>,
    /// Bumped when a topic is registered or its local interest flips.
    changes: watch::Sender<u64>,
    stats: Arc<TopicNodeStats>,
    next_sub: AtomicU64,
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn Entry>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn entry(&self, topic: &str) -> Option<Arc<dyn Entry>> {
        self.entries().get(topic).cloned()
    }
    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One node's topics, linked to the same topics on its peers. Dropping it (or
/// [`TopicNode::stop`]) stops its links; local publishers and subscribers go on.
pub struct TopicNode {
    shared: Arc<Shared>,
    _tasks: Vec<AbortOnDrop>,
    _metrics: crate::metrics::Published,
}

impl std::fmt::Debug for TopicNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicNode")
            .field("me", &self.shared.cfg.me)
            .field("peers", &self.shared.cfg.peers)
            .finish()
    }
}

impl TopicNode {
    /// Starts serving this node's topics to its peers and linking to theirs over `transport`
    /// (inside a tokio runtime).
    pub fn start(transport: Arc<dyn Transport>, cfg: TopicConfig) -> Result<Self, TopicNodeError> {
        if cfg.chunk_rows == 0 || cfg.chunk_bytes == 0 {
            return Err(TopicNodeError::Config(
                "chunk_rows and chunk_bytes must be at least 1".into(),
            ));
        }
        let topics = Topics::with_buffer(cfg.buffer)?;
        let shared = Arc::new(Shared {
            transport,
            topics,
            entries: Mutex::new(BTreeMap::new()),
            changes: watch::Sender::new(0),
            stats: Arc::new(TopicNodeStats::default()),
            next_sub: AtomicU64::new(1),
            cfg,
        });
        let mut tasks = vec![AbortOnDrop(tokio::spawn(serve::accept_loop(Arc::clone(
            &shared,
        ))))];
        for peer in shared.cfg.peers.iter().filter(|p| **p != shared.cfg.me) {
            tasks.push(AbortOnDrop(tokio::spawn(link::link_loop(
                Arc::clone(&shared),
                peer.clone(),
            ))));
        }
        tracing::debug!(me = %shared.cfg.me, peers = shared.cfg.peers.len(), "topic node started");
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

    /// The topic `name` carrying `T`, shared with the peers: what its sinks publish reaches
    /// its sources on every node. Fails when the name is already used with another type.
    pub fn topic<T>(&self, name: &str) -> Result<Topic<T>, TopicError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + 'static,
    {
        let topic = self.shared.topics.topic::<T>(name)?;
        let fresh = {
            let mut entries = self.shared.entries();
            if entries.contains_key(name) {
                false
            } else {
                let changes = self.shared.changes.clone();
                topic.on_interest(Arc::new(move || {
                    changes.send_modify(|v| *v = v.wrapping_add(1));
                }));
                let entry: Arc<dyn Entry> = Arc::new(Typed::new(
                    topic.clone(),
                    Arc::clone(&self.shared.stats),
                    self.shared.cfg.chunk_bytes,
                ));
                entries.insert(name.to_owned(), entry);
                true
            }
        };
        if fresh {
            self.shared.changed();
        }
        Ok(topic)
    }

    /// This node's topics registry (local use only: topics made there without
    /// [`TopicNode::topic`] are not linked to the peers).
    pub fn topics(&self) -> &Topics {
        &self.shared.topics
    }

    /// The node's counters.
    pub fn stats(&self) -> &TopicNodeStats {
        &self.shared.stats
    }

    /// Stops the node's links (as dropping it does).
    pub fn stop(self) {}
}
