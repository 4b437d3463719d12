//! Topics: named many-to-many channels between runs (publish/subscribe as stages).
//!
//! A [`Topics`] registry holds typed topics by name; [`Topic::sink`] publishes, [`Topic::source`]
//! subscribes. A topic keeps a bounded ring of what this process published and one bounded ring
//! per peer feeding it ([`Topic::inbound`]); local subscribers read every ring, the cluster's
//! per-peer readers ([`Topic::remote_reader`]) read only the local one, so credit granted to a
//! peer never waits on another peer.

use super::{lock, positive, wake};
use futures::FutureExt;
use std::any::Any;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weir_graph::{
    AsyncFn, Event, GraphError, Input, Sink, SinkFuture, Source, SourceLogic, StageCx, StageError,
    Step, promise,
};

/// A refused use of a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic exists with another element type.
    #[error("topic {topic:?} carries {has}, not {asked}")]
    WrongType {
        /// The topic.
        topic: String,
        /// The type it was created with.
        has: &'static str,
        /// The type asked for.
        asked: &'static str,
    },
    /// A peer sent more rows than the room it was granted.
    #[error(
        "topic {topic:?}: {rows} rows from a peer overrun the {room} rows of room it was granted"
    )]
    Overrun {
        /// The topic.
        topic: String,
        /// Rows pushed.
        rows: usize,
        /// Room left in the inbound ring.
        room: usize,
    },
}

/// A registry of topics by name (one per process, or per node of a cluster).
#[derive(Clone)]
pub struct Topics {
    topics: Arc<Mutex<HashMap<String, Registered>>>,
    buffer: usize,
}

struct Registered {
    core: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics")
            .field("topics", &lock(&self.topics).len())
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::new()
    }
}

impl Topics {
    /// An empty registry whose topics buffer [`super::DEFAULT_HUB_BUFFER`] elements per ring.
    pub fn new() -> Self {
        Self {
            topics: Arc::new(Mutex::new(HashMap::new())),
            buffer: super::DEFAULT_HUB_BUFFER,
        }
    }

    /// An empty registry whose topics buffer `buffer` elements per ring (at least 1).
    pub fn with_buffer(buffer: usize) -> Result<Self, GraphError> {
        Ok(Self {
            buffer: positive("topic", "buffer", buffer)?,
            ..Self::new()
        })
    }

    /// The elements each ring of a topic buffers.
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// The topic `name` carrying `T`, created on first use; refused when it carries another type.
    pub fn topic<T: Clone + Send + 'static>(&self, name: &str) -> Result<Topic<T>, TopicError> {
        let asked = std::any::type_name::<T>();
        let mut topics = lock(&self.topics);
        let reg = topics.entry(name.to_owned()).or_insert_with(|| Registered {
            core: Arc::new(Mutex::new(Core::<T>::new(name, self.buffer))),
            type_name: asked,
        });
        match Arc::clone(&reg.core).downcast::<Mutex<Core<T>>>() {
            Ok(core) => Ok(Topic { core }),
            Err(_) => Err(TopicError::WrongType {
                topic: name.to_owned(),
                has: reg.type_name,
                asked,
            }),
        }
    }

    /// The names of the topics created so far, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.topics).keys().cloned().collect();
        v.sort();
        v
    }
}

/// Counters and gauges of one topic on this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicStats {
    /// Local subscribers attached now.
    pub subscribers: usize,
    /// Peer readers attached now (one per subscribing peer node).
    pub remote_readers: usize,
    /// Elements local publishers put into the topic while someone read it.
    pub published: u64,
    /// Elements local publishers sent while nobody read the topic (dropped).
    pub unheard: u64,
    /// Elements peers delivered into the topic's inbound rings.
    pub received: u64,
    /// Elements peers delivered while no local subscriber was attached (dropped).
    pub dropped: u64,
    /// Elements buffered in the topic's rings now.
    pub buffered: usize,
}

/// A bounded ring of elements and the offsets of its readers.
struct Ring<T> {
    buf: VecDeque<T>,
    head: u64,
    cap: usize,
    readers: HashMap<u64, u64>,
    /// Rows dropped from the front since the last [`Ring::take_freed`].
    freed: u64,
}

impl<T: Clone> Ring<T> {
    fn new(cap: usize) -> Self {
        Self {
            buf: VecDeque::new(),
            head: 0,
            cap,
            readers: HashMap::new(),
            freed: 0,
        }
    }
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }
    fn room(&self) -> usize {
        self.cap.saturating_sub(self.buf.len())
    }
    fn attach(&mut self, id: u64) {
        let tail = self.tail();
        self.readers.insert(id, tail);
    }
    /// Removes reader `id`; true when rows were freed.
    fn detach(&mut self, id: u64) -> bool {
        self.readers.remove(&id);
        self.trim()
    }
    /// Drops what every reader has passed (everything when nobody reads); true when rows were
    /// freed.
    fn trim(&mut self) -> bool {
        let min = self.readers.values().copied().min().unwrap_or(self.tail());
        let n = usize::try_from(min.saturating_sub(self.head))
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        if n == 0 {
            return false;
        }
        self.buf.drain(..n);
        self.head += n as u64;
        self.freed += n as u64;
        true
    }
    fn take_freed(&mut self) -> u64 {
        std::mem::take(&mut self.freed)
    }
    /// Moves up to `max` of reader `id`'s unread rows to `out`: how many, and whether it has
    /// none left.
    fn take(&mut self, id: u64, max: usize, out: &mut Vec<T>) -> (usize, bool) {
        let (head, tail) = (self.head, self.tail());
        let Some(at) = self.readers.get_mut(&id) else {
            return (0, true);
        };
        let from = (*at).max(head);
        let n = usize::try_from(tail - from).unwrap_or(usize::MAX).min(max);
        let i = usize::try_from(from - head).unwrap_or(usize::MAX);
        out.extend(self.buf.range(i..i + n).cloned());
        *at = from + n as u64;
        (n, *at == tail)
    }
}

/// The shared state of one topic.
struct Core<T> {
    name: String,
    local: Ring<T>,
    inbound: BTreeMap<u64, Inbound<T>>,
    /// Local subscribers: their wakers and where their round robin over the rings starts.
    subscribers: BTreeMap<u64, Subscriber>,
    /// Peer readers' wakers.
    remote: HashMap<u64, Option<Waker>>,
    /// Local publishers: the waker of each waiting for room or for its input.
    publishers: HashMap<u64, Option<Waker>>,
    /// Tasks waiting for the set of readers to change.
    watchers: Vec<Waker>,
    /// Called whenever local subscribers go from none to some or back.
    interest: Vec<Arc<dyn Fn() + Send + Sync>>,
    next_id: u64,
    closed: bool,
    published: u64,
    unheard: u64,
    received: u64,
    dropped: u64,
}

struct Inbound<T> {
    ring: Ring<T>,
    /// The peer link waiting for rows to be freed (credit to grant).
    waker: Option<Waker>,
}

#[derive(Default)]
struct Subscriber {
    waker: Option<Waker>,
    next_ring: usize,
}

impl<T: Clone> Core<T> {
    fn new(name: &str, cap: usize) -> Self {
        Self {
            name: name.to_owned(),
            local: Ring::new(cap),
            inbound: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            remote: HashMap::new(),
            publishers: HashMap::new(),
            watchers: Vec::new(),
            interest: Vec::new(),
            next_id: 0,
            closed: false,
            published: 0,
            unheard: 0,
            received: 0,
            dropped: 0,
        }
    }
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    fn wake_readers(&mut self) {
        for s in self.subscribers.values_mut() {
            wake(&mut s.waker);
        }
        for w in self.remote.values_mut() {
            wake(w);
        }
    }
    fn wake_subscribers(&mut self) {
        for s in self.subscribers.values_mut() {
            wake(&mut s.waker);
        }
    }
    fn wake_publishers(&mut self) {
        for w in self.publishers.values_mut() {
            wake(w);
        }
    }
    /// The readers changed: wakes watchers; calls the interest hooks when local subscribers
    /// went from none to some or back.
    fn readers_changed(&mut self, interest_flipped: bool) -> Vec<Arc<dyn Fn() + Send + Sync>> {
        for w in self.watchers.drain(..) {
            w.wake();
        }
        if interest_flipped {
            self.interest.clone()
        } else {
            Vec::new()
        }
    }
    fn trim_inbound(&mut self) {
        for ib in self.inbound.values_mut() {
            if ib.ring.trim() {
                wake(&mut ib.waker);
            }
        }
    }
    fn subscribe(&mut self) -> (u64, Vec<Arc<dyn Fn() + Send + Sync>>) {
        let id = self.id();
        self.local.attach(id);
        for ib in self.inbound.values_mut() {
            ib.ring.attach(id);
        }
        self.subscribers.insert(id, Subscriber::default());
        let hooks = self.readers_changed(self.subscribers.len() == 1);
        (id, hooks)
    }
    fn unsubscribe(&mut self, id: u64) -> Vec<Arc<dyn Fn() + Send + Sync>> {
        if self.subscribers.remove(&id).is_none() {
            return Vec::new();
        }
        if self.local.detach(id) {
            self.wake_publishers();
        }
        for ib in self.inbound.values_mut() {
            if ib.ring.detach(id) {
                wake(&mut ib.waker);
            }
        }
        self.readers_changed(self.subscribers.is_empty())
    }
    /// Moves up to `max` elements for subscriber `id` to `out`, taking from the rings in turn.
    fn take(&mut self, id: u64, max: usize, out: &mut Vec<T>) -> (usize, bool) {
        let rings = 1 + self.inbound.len();
        let start = self.subscribers.get(&id).map_or(0, |s| s.next_ring) % rings;
        let (mut n, mut drained) = (0, true);
        let mut freed_local = false;
        for k in 0..rings {
            let r = (start + k) % rings;
            let ring = if r == 0 {
                &mut self.local
            } else {
                match self.inbound.values_mut().nth(r - 1) {
                    Some(ib) => &mut ib.ring,
                    None => continue,
                }
            };
            let (got, empty) = ring.take(id, max - n, out);
            n += got;
            drained &= empty;
            if got > 0 && r == 0 {
                freed_local |= self.local.trim();
            }
            if n == max {
                drained = false;
                break;
            }
        }
        if let Some(s) = self.subscribers.get_mut(&id) {
            s.next_ring = (start + 1) % rings;
        }
        if freed_local {
            self.wake_publishers();
        }
        if n > 0 {
            self.trim_inbound();
        }
        (n, drained)
    }
}

/// One typed topic of a [`Topics`] registry; clones share it.
pub struct Topic<T> {
    core: Arc<Mutex<Core<T>>>,
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T> std::fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &lock(&self.core).name)
            .finish()
    }
}

fn call(hooks: Vec<Arc<dyn Fn() + Send + Sync>>) {
    for h in hooks {
        h();
    }
}

impl<T: Clone + Send + 'static> Topic<T> {
    /// The topic's name.
    pub fn name(&self) -> String {
        lock(&self.core).name.clone()
    }

    /// A sink publishing every element it receives to the topic.
    ///
    /// Emits: each element to every reader attached when it is published (local subscribers
    /// and subscribing peer nodes); nothing when nobody reads (counted as `unheard`).
    /// Backpressures: while the topic's local ring is full, i.e. until the slowest reader
    /// took its oldest element.
    /// Completes: when upstream completes, or (cancelling upstream) when the topic is closed.
    /// Cancels: upstream once the topic is closed.
    /// Fails: when upstream fails; the topic and its other publishers go on.
    ///
    /// Materializes: a future of the publisher's end.
    pub fn sink(&self) -> Sink<T, SinkFuture<()>> {
        let core = Arc::clone(&self.core);
        Sink::from_async("to_topic", move |_info| {
            let id = {
                let mut c = lock(&core);
                let id = c.id();
                c.publishers.insert(id, None);
                id
            };
            let publisher = Publisher {
                core: Arc::clone(&core),
                id,
            };
            let (mut p, done) = promise();
            let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
                async move {
                    let r = match io.input::<T>(0) {
                        Ok(mut input) => publisher.feed(&mut input).await,
                        Err(e) => Err(e),
                    };
                    p.complete(r.clone());
                    r
                }
                .boxed()
            });
            Ok((logic, done))
        })
    }

    /// A source emitting what is published to the topic after it attached (at
    /// materialization), from this process and from subscribed peers.
    ///
    /// Emits when: the topic holds elements it has not read and downstream demands; per
    /// publisher in publish order, peers' and local elements taken in turn.
    /// Backpressures: its publishers, by not reading (see [`Topic::sink`]).
    /// Completes when: the topic is closed, after what it had not read yet.
    /// Cancels when: downstream cancels; it then leaves the topic (releasing publishers).
    /// Fails when: never.
    pub fn source(&self) -> Source<T, ()> {
        let core = Arc::clone(&self.core);
        Source::from_logic("topic", move |_info| {
            let (id, hooks) = lock(&core).subscribe();
            call(hooks);
            Ok((
                SubscriberLogic {
                    core: Arc::clone(&core),
                    id,
                    left: false,
                },
                (),
            ))
        })
    }

    /// Closes the topic: subscribers complete after what they hold, publishers and peer
    /// readers stop.
    pub fn close(&self) {
        let mut c = lock(&self.core);
        c.closed = true;
        c.wake_readers();
        c.wake_publishers();
        for ib in c.inbound.values_mut() {
            wake(&mut ib.waker);
        }
        for w in c.watchers.drain(..) {
            w.wake();
        }
    }

    /// Whether the topic was closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.core).closed
    }

    /// The topic's counters now.
    pub fn stats(&self) -> TopicStats {
        let c = lock(&self.core);
        TopicStats {
            subscribers: c.subscribers.len(),
            remote_readers: c.remote.len(),
            published: c.published,
            unheard: c.unheard,
            received: c.received,
            dropped: c.dropped,
            buffered: c.local.buf.len()
                + c.inbound.values().map(|i| i.ring.buf.len()).sum::<usize>(),
        }
    }

    /// Waits until the topic has at least `subscribers` local subscribers and
    /// `remote_readers` peer readers (or is closed).
    pub async fn wait_for_readers(&self, subscribers: usize, remote_readers: usize) {
        poll_fn(|cx| {
            let mut c = lock(&self.core);
            if c.closed || (c.subscribers.len() >= subscribers && c.remote.len() >= remote_readers)
            {
                return Poll::Ready(());
            }
            c.watchers.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Whether local subscribers are attached now.
    pub fn has_subscribers(&self) -> bool {
        !lock(&self.core).subscribers.is_empty()
    }

    /// Calls `hook` whenever local subscribers go from none to some or back (under no lock;
    /// keep it short: it is meant to wake a task).
    pub fn on_interest(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        lock(&self.core).interest.push(hook);
    }

    /// A reader of what local publishers publish from now on, for a subscribing peer node.
    pub fn remote_reader(&self) -> TopicReader<T> {
        let mut c = lock(&self.core);
        let id = c.id();
        c.local.attach(id);
        c.remote.insert(id, None);
        let _ = c.readers_changed(false);
        TopicReader {
            core: Arc::clone(&self.core),
            id,
        }
    }

    /// A new inbound ring for the elements a peer node delivers; its room is the topic's
    /// buffer (the credit to grant the peer at first).
    pub fn inbound(&self) -> TopicInbound<T> {
        let mut c = lock(&self.core);
        let id = c.id();
        let mut ring = Ring::new(c.local.cap);
        for s in c.subscribers.keys() {
            ring.attach(*s);
        }
        c.inbound.insert(id, Inbound { ring, waker: None });
        TopicInbound {
            core: Arc::clone(&self.core),
            id,
        }
    }
}

/// A local publisher: puts batches into the local ring as room frees up.
struct Publisher<T> {
    core: Arc<Mutex<Core<T>>>,
    id: u64,
}

impl<T> Drop for Publisher<T> {
    fn drop(&mut self) {
        lock(&self.core).publishers.remove(&self.id);
    }
}

impl<T: Clone + Send + 'static> Publisher<T> {
    async fn feed(&self, input: &mut Input<T>) -> Result<(), StageError> {
        loop {
            let ev = poll_fn(|cx| {
                {
                    let mut c = lock(&self.core);
                    if c.closed {
                        return Poll::Ready(None);
                    }
                    c.publishers.insert(self.id, Some(cx.waker().clone()));
                }
                input.poll_recv(cx).map(Some)
            })
            .await;
            match ev {
                // Closed: returning drops `input`, which cancels upstream.
                None | Some(Event::End) => return Ok(()),
                Some(Event::Batch(v)) => {
                    if !self.push(v).await {
                        return Ok(());
                    }
                }
                Some(Event::Error(e)) => return Err(e),
            }
        }
    }

    /// Publishes `batch` as room frees up; false once the topic is closed.
    async fn push(&self, batch: Vec<T>) -> bool {
        let mut rest = batch.into_iter();
        poll_fn(|cx| {
            let mut c = lock(&self.core);
            if c.closed {
                return Poll::Ready(false);
            }
            if c.local.readers.is_empty() {
                c.unheard += rest.len() as u64;
                rest.by_ref().for_each(drop);
                return Poll::Ready(true);
            }
            let room = c.local.room().min(rest.len());
            if room > 0 {
                c.local.buf.extend(rest.by_ref().take(room));
                c.published += room as u64;
                c.wake_readers();
            }
            if rest.len() == 0 {
                return Poll::Ready(true);
            }
            c.publishers.insert(self.id, Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

/// A local subscriber's source logic; it leaves the topic when it stops.
struct SubscriberLogic<T: Clone> {
    core: Arc<Mutex<Core<T>>>,
    id: u64,
    left: bool,
}

impl<T: Clone> SubscriberLogic<T> {
    fn leave(&mut self) {
        if !std::mem::replace(&mut self.left, true) {
            let hooks = lock(&self.core).unsubscribe(self.id);
            call(hooks);
        }
    }
}

impl<T: Clone> Drop for SubscriberLogic<T> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl<T: Clone + Send + 'static> SourceLogic<T> for SubscriberLogic<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let max = scx.batch_size().max(1);
        let mut c = lock(&self.core);
        let (n, drained) = c.take(self.id, max, out);
        if n > 0 {
            return Poll::Ready(Ok(Step::More));
        }
        if c.closed && drained {
            return Poll::Ready(Ok(Step::Done));
        }
        if let Some(s) = c.subscribers.get_mut(&self.id) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn post_stop(&mut self) {
        self.leave();
    }
}

/// A peer node's reader of a topic's local ring ([`Topic::remote_reader`]); it leaves the
/// topic when dropped.
pub struct TopicReader<T: Clone> {
    core: Arc<Mutex<Core<T>>>,
    id: u64,
}

impl<T: Clone> std::fmt::Debug for TopicReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader").field("id", &self.id).finish()
    }
}

impl<T: Clone> TopicReader<T> {
    /// Moves up to `max` unread elements to `out`: `Ready(true)` when some were moved,
    /// `Ready(false)` once the topic is closed and nothing is left, else `Pending`.
    pub fn poll_take(&mut self, cx: &mut Context<'_>, max: usize, out: &mut Vec<T>) -> Poll<bool> {
        let mut c = lock(&self.core);
        let (n, drained) = c.local.take(self.id, max.max(1), out);
        if n > 0 {
            if c.local.trim() {
                c.wake_publishers();
            }
            return Poll::Ready(true);
        }
        if c.closed && drained {
            return Poll::Ready(false);
        }
        if let Some(w) = c.remote.get_mut(&self.id) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T: Clone> Drop for TopicReader<T> {
    fn drop(&mut self) {
        let mut c = lock(&self.core);
        c.remote.remove(&self.id);
        if c.local.detach(self.id) {
            c.wake_publishers();
        }
        let _ = c.readers_changed(false);
    }
}

/// A ring for the elements one peer node delivers ([`Topic::inbound`]); removed when dropped.
pub struct TopicInbound<T: Clone> {
    core: Arc<Mutex<Core<T>>>,
    id: u64,
}

impl<T: Clone> std::fmt::Debug for TopicInbound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicInbound")
            .field("id", &self.id)
            .finish()
    }
}

impl<T: Clone> TopicInbound<T> {
    /// The rows this ring holds at most (the peer's whole credit window).
    pub fn capacity(&self) -> usize {
        lock(&self.core).local.cap
    }

    /// Delivers `batch` from the peer to the local subscribers; without subscribers it is
    /// dropped (and freed at once); refused when it exceeds the room granted.
    pub fn push(&mut self, batch: Vec<T>) -> Result<(), TopicError> {
        let mut c = lock(&self.core);
        let c = &mut *c;
        let Some(ib) = c.inbound.get_mut(&self.id) else {
            return Ok(());
        };
        let room = ib.ring.room();
        if batch.len() > room {
            return Err(TopicError::Overrun {
                topic: c.name.clone(),
                rows: batch.len(),
                room,
            });
        }
        if ib.ring.readers.is_empty() || c.closed {
            c.dropped += batch.len() as u64;
            ib.ring.freed += batch.len() as u64;
            wake(&mut ib.waker);
            return Ok(());
        }
        c.received += batch.len() as u64;
        ib.ring.buf.extend(batch);
        c.wake_subscribers();
        Ok(())
    }

    /// Rows freed since the last call (credit to grant the peer), waiting until there are
    /// some; `Ready(0)` once the topic is closed.
    pub fn poll_freed(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let mut c = lock(&self.core);
        let closed = c.closed;
        let Some(ib) = c.inbound.get_mut(&self.id) else {
            return Poll::Ready(0);
        };
        let n = ib.ring.take_freed();
        if n > 0 || closed {
            return Poll::Ready(n);
        }
        ib.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T: Clone> Drop for TopicInbound<T> {
    fn drop(&mut self) {
        lock(&self.core).inbound.remove(&self.id);
    }
}
