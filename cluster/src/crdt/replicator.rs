//! The sans-IO replicator one node runs: keyed CRDT states, deltas out, acks and replies in,
//! write and read consistency levels, and anti-entropy digests. It does no I/O and reads no
//! clock: the caller passes the time, feeds [`Replicator::handle`] the messages that arrive,
//! sends what [`Replicator::poll_transmit`] yields, and calls [`Replicator::tick`] at its
//! gossip interval.
//!
//! - A write merges its delta locally at once. At [`Consistency::Local`] the delta waits for
//!   the next tick, which sends every key's joined delta to every peer; at `Majority`/`All` it
//!   goes to every peer now, asking for acks, and is resent to the silent ones each tick until
//!   enough acks arrived (the write is done) or its deadline passed (it timed out; the delta
//!   stays merged locally and still spreads by gossip).
//! - A read at `Majority`/`All` asks every peer for its state of the key and merges the replies
//!   into the local state (read repair) once enough arrived.
//! - Each tick sends a digest (a hash per key) to the next peer in turn; the peer answers with
//!   its full state of every key whose hash differs and its own digest, so the two exchange
//!   what either lacks: lost deltas heal without any ordering or delivery guarantee.

use super::codec::{fnv1a, to_bytes};
use super::{Crdt, CrdtError, ReplicaId, Writer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// How many replicas (this one included) must hold a write, or answer a read, before it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Consistency {
    /// This replica alone: done at once.
    #[default]
    Local,
    /// More than half of the replicas.
    Majority,
    /// Every replica.
    All,
}

impl Consistency {
    /// The replicas needed out of `n`.
    pub fn needed(self, n: usize) -> usize {
        match self {
            Self::Local => 1,
            Self::Majority => n / 2 + 1,
            Self::All => n,
        }
    }
}

/// A write waiting for acks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

/// A read waiting for replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadId(pub u64);

/// What an issued write is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Enough replicas hold it already (always at `Local`, or without peers).
    Done,
    /// Waiting for acks: poll it with [`Replicator::poll_write`].
    Pending(WriteId),
}

/// What an issued read is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read<D> {
    /// The merged state (`None`: no replica asked has the key).
    Done(Option<D>),
    /// Waiting for replies: poll it with [`Replicator::poll_read`].
    Pending(ReadId),
}

/// Where a pending write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Still waiting for acks.
    Pending,
    /// Enough replicas acked it.
    Done,
    /// The deadline passed with `acks` of `needed` replicas (this one included) holding it.
    TimedOut {
        /// Replicas known to hold the write.
        acks: usize,
        /// Replicas the consistency level needs.
        needed: usize,
    },
}

/// Where a pending read stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadStatus<D> {
    /// Still waiting for replies.
    Pending,
    /// Enough replicas answered: their merged state (`None`: none has the key).
    Done(Option<D>),
    /// The deadline passed with `replies` of `needed` replicas (this one included) answering.
    TimedOut {
        /// Replicas that answered.
        replies: usize,
        /// Replicas the consistency level needs.
        needed: usize,
    },
}

/// What replicators send one another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "D: Serialize", deserialize = "D: Crdt"))]
pub enum Message<D> {
    /// Deltas (or states) to merge; `ack` asks for an [`Message::Ack`] of that request.
    Deltas {
        /// `(key, delta)` pairs.
        deltas: Vec<(String, D)>,
        /// The sender's write request, when it waits for acks.
        ack: Option<u64>,
    },
    /// The deltas of write `req` are merged.
    Ack {
        /// The write request.
        req: u64,
    },
    /// Asks for the receiver's state of `key`.
    Read {
        /// The key.
        key: String,
        /// The sender's read request.
        req: u64,
    },
    /// The answer to a [`Message::Read`].
    ReadReply {
        /// The read request.
        req: u64,
        /// The state, if the key exists there.
        state: Option<D>,
    },
    /// A hash of the sender's state of each key; `reply` asks for the receiver's digest back.
    Digest {
        /// `(key, hash)` pairs.
        digests: Vec<(String, u64)>,
        /// Whether the receiver answers with its own digest.
        reply: bool,
    },
}

/// A message from one replica to another.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope<D> {
    /// The sender.
    pub from: ReplicaId,
    /// The receiver.
    pub to: ReplicaId,
    /// The message.
    pub msg: Message<D>,
}

struct PendingWrite<D> {
    deltas: Vec<(String, D)>,
    needed: usize,
    acked: BTreeSet<ReplicaId>,
    deadline_ms: u64,
}

struct PendingRead<D> {
    key: String,
    needed: usize,
    replied: BTreeSet<ReplicaId>,
    merged: Option<D>,
    deadline_ms: u64,
}

/// One node's replica of every key, and the protocol that keeps it in step with its peers.
pub struct Replicator<D> {
    me: ReplicaId,
    peers: Vec<ReplicaId>,
    data: BTreeMap<String, D>,
    /// Deltas of `Local` writes not yet sent (joined per key).
    unsent: BTreeMap<String, D>,
    writes: HashMap<u64, PendingWrite<D>>,
    reads: HashMap<u64, PendingRead<D>>,
    finished_writes: HashMap<u64, WriteStatus>,
    finished_reads: HashMap<u64, ReadStatus<D>>,
    outbox: VecDeque<Envelope<D>>,
    next_req: u64,
    next_gossip: usize,
}

impl<D> std::fmt::Debug for Replicator<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("me", &self.me)
            .field("peers", &self.peers)
            .field("keys", &self.data.len())
            .finish()
    }
}

impl<D: Crdt> Replicator<D> {
    /// The replicator of `me`, replicating with `peers` (`me` among them is ignored).
    pub fn new(me: ReplicaId, peers: impl IntoIterator<Item = ReplicaId>) -> Self {
        let mut r = Self {
            me,
            peers: Vec::new(),
            data: BTreeMap::new(),
            unsent: BTreeMap::new(),
            writes: HashMap::new(),
            reads: HashMap::new(),
            finished_writes: HashMap::new(),
            finished_reads: HashMap::new(),
            outbox: VecDeque::new(),
            next_req: 0,
            next_gossip: 0,
        };
        r.set_peers(peers);
        r
    }
    /// A replicator of one node: no peers, so every consistency level completes at once.
    pub fn local() -> Self {
        Self::new(ReplicaId(0), [])
    }
    /// This replica.
    pub fn id(&self) -> ReplicaId {
        self.me
    }
    /// The peers, in order.
    pub fn peers(&self) -> &[ReplicaId] {
        &self.peers
    }
    /// Replaces the peers (a membership change); pending requests keep their quorum.
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = ReplicaId>) {
        let set: BTreeSet<ReplicaId> = peers.into_iter().filter(|p| *p != self.me).collect();
        self.peers = set.into_iter().collect();
        self.next_gossip = 0;
    }
    /// Replicas in all, this one included.
    pub fn replicas(&self) -> usize {
        self.peers.len() + 1
    }
    /// The local state of `key`.
    pub fn get(&self, key: &str) -> Option<&D> {
        self.data.get(key)
    }
    /// Every key and its local state, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &D)> {
        self.data.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Updates `key` with `f` (given the local state, the bottom for a new key, and the writer;
    /// it applies its change and returns the delta of it), at `level`, waiting at most
    /// `timeout_ms` from `now_ms` for acks.
    pub fn update<F>(
        &mut self,
        key: &str,
        level: Consistency,
        timeout_ms: u64,
        now_ms: u64,
        f: F,
    ) -> Result<Write, CrdtError>
    where
        F: FnOnce(&mut D, Writer) -> Result<D, CrdtError>,
    {
        let w = Writer {
            replica: self.me,
            now_ms,
        };
        let state = self.data.entry(key.to_owned()).or_default();
        let delta = match f(state, w) {
            Ok(d) => d,
            Err(e) => {
                if state.is_bottom() {
                    self.data.remove(key);
                }
                return Err(e);
            }
        };
        state.merge(&delta);
        if state.is_bottom() {
            self.data.remove(key);
        }
        if delta.is_bottom() {
            return Ok(Write::Done);
        }
        let needed = level.needed(self.replicas());
        if level == Consistency::Local || needed <= 1 {
            if !self.peers.is_empty() {
                self.unsent.entry(key.to_owned()).or_default().merge(&delta);
            }
            return Ok(Write::Done);
        }
        let req = self.next_req();
        let deltas = vec![(key.to_owned(), delta)];
        for p in self.peers.clone() {
            self.send(
                p,
                Message::Deltas {
                    deltas: deltas.clone(),
                    ack: Some(req),
                },
            );
        }
        self.writes.insert(
            req,
            PendingWrite {
                deltas,
                needed,
                acked: BTreeSet::new(),
                deadline_ms: now_ms.saturating_add(timeout_ms),
            },
        );
        Ok(Write::Pending(WriteId(req)))
    }

    /// Reads `key` at `level`, waiting at most `timeout_ms` from `now_ms` for replies.
    pub fn read(&mut self, key: &str, level: Consistency, timeout_ms: u64, now_ms: u64) -> Read<D> {
        let needed = level.needed(self.replicas());
        if needed <= 1 {
            return Read::Done(self.data.get(key).cloned());
        }
        let req = self.next_req();
        for p in self.peers.clone() {
            self.send(
                p,
                Message::Read {
                    key: key.to_owned(),
                    req,
                },
            );
        }
        self.reads.insert(
            req,
            PendingRead {
                key: key.to_owned(),
                needed,
                replied: BTreeSet::new(),
                merged: self.data.get(key).cloned(),
                deadline_ms: now_ms.saturating_add(timeout_ms),
            },
        );
        Read::Pending(ReadId(req))
    }

    /// Where write `id` stands; a finished write is reported once, then forgotten.
    pub fn poll_write(&mut self, id: WriteId) -> Result<WriteStatus, CrdtError> {
        if self.writes.contains_key(&id.0) {
            return Ok(WriteStatus::Pending);
        }
        self.finished_writes
            .remove(&id.0)
            .ok_or(CrdtError::UnknownRequest {
                what: "write",
                id: id.0,
            })
    }

    /// Where read `id` stands; a finished read is reported once, then forgotten.
    pub fn poll_read(&mut self, id: ReadId) -> Result<ReadStatus<D>, CrdtError> {
        if self.reads.contains_key(&id.0) {
            return Ok(ReadStatus::Pending);
        }
        self.finished_reads
            .remove(&id.0)
            .ok_or(CrdtError::UnknownRequest {
                what: "read",
                id: id.0,
            })
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Envelope<D>> {
        self.outbox.pop_front()
    }

    /// Handles `msg` from `from` (any order, duplicates and strays are fine).
    pub fn handle(&mut self, from: ReplicaId, msg: Message<D>) {
        match msg {
            Message::Deltas { deltas, ack } => {
                for (k, d) in &deltas {
                    self.merge_in(k, d);
                }
                if let Some(req) = ack {
                    self.send(from, Message::Ack { req });
                }
            }
            Message::Ack { req } => self.on_ack(from, req),
            Message::Read { key, req } => {
                let state = self.data.get(&key).cloned();
                self.send(from, Message::ReadReply { req, state });
            }
            Message::ReadReply { req, state } => self.on_read_reply(from, req, state),
            Message::Digest { digests, reply } => self.on_digest(from, digests, reply),
        }
    }

    /// Advances to `now_ms`: sends the unsent deltas of local writes, resends pending writes
    /// and reads to the replicas that have not answered, times out those past their deadline,
    /// and sends a digest to the next peer.
    pub fn tick(&mut self, now_ms: u64) {
        if !self.unsent.is_empty() {
            let deltas: Vec<(String, D)> = std::mem::take(&mut self.unsent).into_iter().collect();
            for p in self.peers.clone() {
                self.send(
                    p,
                    Message::Deltas {
                        deltas: deltas.clone(),
                        ack: None,
                    },
                );
            }
        }
        self.tick_writes(now_ms);
        self.tick_reads(now_ms);
        if !self.peers.is_empty() {
            let p = self.peers[self.next_gossip % self.peers.len()];
            self.next_gossip = (self.next_gossip + 1) % self.peers.len();
            let digests = self.digests();
            self.send(
                p,
                Message::Digest {
                    digests,
                    reply: true,
                },
            );
        }
    }

    fn tick_writes(&mut self, now_ms: u64) {
        let mut ids: Vec<u64> = self.writes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(w) = self.writes.get(&id) else {
                continue;
            };
            if now_ms >= w.deadline_ms {
                if let Some(w) = self.writes.remove(&id) {
                    let acks = w.acked.len() + 1;
                    tracing::debug!(id, acks, needed = w.needed, "replicated write timed out");
                    let status = WriteStatus::TimedOut {
                        acks,
                        needed: w.needed,
                    };
                    self.finished_writes.insert(id, status);
                }
                continue;
            }
            let silent: Vec<ReplicaId> = self
                .peers
                .iter()
                .filter(|p| !w.acked.contains(p))
                .copied()
                .collect();
            let deltas = w.deltas.clone();
            for p in silent {
                self.send(
                    p,
                    Message::Deltas {
                        deltas: deltas.clone(),
                        ack: Some(id),
                    },
                );
            }
        }
    }

    fn tick_reads(&mut self, now_ms: u64) {
        let mut ids: Vec<u64> = self.reads.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(r) = self.reads.get(&id) else {
                continue;
            };
            if now_ms >= r.deadline_ms {
                if let Some(r) = self.reads.remove(&id) {
                    let status = ReadStatus::TimedOut {
                        replies: r.replied.len() + 1,
                        needed: r.needed,
                    };
                    self.finished_reads.insert(id, status);
                }
                continue;
            }
            let silent: Vec<ReplicaId> = self
                .peers
                .iter()
                .filter(|p| !r.replied.contains(p))
                .copied()
                .collect();
            let key = r.key.clone();
            for p in silent {
                self.send(
                    p,
                    Message::Read {
                        key: key.clone(),
                        req: id,
                    },
                );
            }
        }
    }

    fn on_ack(&mut self, from: ReplicaId, req: u64) {
        if !self.peers.contains(&from) {
            return;
        }
        let Some(w) = self.writes.get_mut(&req) else {
            return;
        };
        w.acked.insert(from);
        if w.acked.len() + 1 >= w.needed {
            self.writes.remove(&req);
            self.finished_writes.insert(req, WriteStatus::Done);
        }
    }

    fn on_read_reply(&mut self, from: ReplicaId, req: u64, state: Option<D>) {
        if !self.peers.contains(&from) {
            return;
        }
        let Some(r) = self.reads.get_mut(&req) else {
            return;
        };
        if !r.replied.insert(from) {
            return;
        }
        if let Some(s) = state {
            match &mut r.merged {
                Some(m) => m.merge(&s),
                None => r.merged = Some(s),
            }
        }
        if r.replied.len() + 1 >= r.needed
            && let Some(r) = self.reads.remove(&req)
        {
            if let Some(m) = &r.merged {
                self.merge_in(&r.key, m);
            }
            self.finished_reads.insert(req, ReadStatus::Done(r.merged));
        }
    }

    fn on_digest(&mut self, from: ReplicaId, digests: Vec<(String, u64)>, reply: bool) {
        let theirs: BTreeMap<String, u64> = digests.into_iter().collect();
        let mine = self.digests();
        let differ: Vec<(String, D)> = mine
            .iter()
            .filter(|(k, h)| theirs.get(k) != Some(h))
            .filter_map(|(k, _)| self.data.get(k).map(|d| (k.clone(), d.clone())))
            .collect();
        if !differ.is_empty() {
            self.send(
                from,
                Message::Deltas {
                    deltas: differ,
                    ack: None,
                },
            );
        }
        let mine: BTreeMap<&String, u64> = mine.iter().map(|(k, h)| (k, *h)).collect();
        let they_have_more = theirs.iter().any(|(k, h)| mine.get(k) != Some(h));
        if reply && they_have_more {
            let digests = self.digests();
            self.send(
                from,
                Message::Digest {
                    digests,
                    reply: false,
                },
            );
        }
    }

    /// A stable hash of each key's local state.
    fn digests(&self) -> Vec<(String, u64)> {
        self.data
            .iter()
            .map(|(k, d)| {
                // A state that cannot encode hashes as 0: it then always differs and is resent.
                let h = to_bytes(d, "replicated state").map_or(0, |b| fnv1a(&b));
                (k.clone(), h)
            })
            .collect()
    }

    fn merge_in(&mut self, key: &str, d: &D) {
        if d.is_bottom() {
            return;
        }
        match self.data.get_mut(key) {
            Some(s) => s.merge(d),
            None => {
                self.data.insert(key.to_owned(), d.clone());
            }
        }
    }

    fn next_req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn send(&mut self, to: ReplicaId, msg: Message<D>) {
        self.outbox.push_back(Envelope {
            from: self.me,
            to,
            msg,
        });
    }
}
