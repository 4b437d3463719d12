//! A topic of the node with its element type erased: encoded readers for subscribing peers and
//! decoding inbound rings for the node's own subscriptions.

use super::{TopicNodeStats, bump};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_operators::hub::{Topic, TopicInbound, TopicReader};

/// One registered topic, whatever its element type.
pub(super) trait Entry: Send + Sync {
    /// The element type's name (subscriber and publisher must agree on it).
    fn type_name(&self) -> &'static str;
    /// Whether local subscribers are attached.
    fn has_subscribers(&self) -> bool;
    /// A reader of local publications, encoding chunks for a peer.
    fn reader(&self) -> Box<dyn WireReader>;
    /// A ring for a peer's deliveries, decoding them.
    fn inbound(&self) -> Box<dyn WireInbound>;
}

/// Encoded chunks of what local publishers publish.
pub(super) trait WireReader: Send {
    /// The next chunk of at most `rows` elements as `(rows, postcard bytes)`; `Ready(None)`
    /// once the topic is closed and drained.
    fn poll_chunk(&mut self, cx: &mut Context<'_>, rows: usize) -> Poll<Option<(u32, Vec<u8>)>>;
}

/// A peer's deliveries into the topic.
pub(super) trait WireInbound: Send {
    /// The credit the peer may use at first.
    fn capacity(&self) -> usize;
    /// Decodes `payload` (`rows` elements) and delivers it to the local subscribers.
    fn push(&mut self, rows: u32, payload: &[u8]) -> Result<(), String>;
    /// Rows freed since the last call (credit to grant); `Ready(0)` once the topic is closed.
    fn poll_freed(&mut self, cx: &mut Context<'_>) -> Poll<u64>;
}

/// A topic of `T`.
pub(super) struct Typed<T> {
    topic: Topic<T>,
    stats: Arc<TopicNodeStats>,
    max_bytes: usize,
}

impl<T> Typed<T> {
    pub(super) fn new(topic: Topic<T>, stats: Arc<TopicNodeStats>, max_bytes: usize) -> Self {
        Self {
            topic,
            stats,
            max_bytes,
        }
    }
}

impl<T> Entry for Typed<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn has_subscribers(&self) -> bool {
        self.topic.has_subscribers()
    }
    fn reader(&self) -> Box<dyn WireReader> {
        Box::new(Reader {
            reader: self.topic.remote_reader(),
            pending: Vec::new(),
            max_bytes: self.max_bytes,
            stats: Arc::clone(&self.stats),
            topic: self.topic.name(),
        })
    }
    fn inbound(&self) -> Box<dyn WireInbound> {
        Box::new(Inbound {
            inbound: self.topic.inbound(),
        })
    }
}

struct Reader<T: Clone> {
    reader: TopicReader<T>,
    /// Elements taken from the ring and not sent yet (a chunk that had to be split).
    pending: Vec<T>,
    max_bytes: usize,
    stats: Arc<TopicNodeStats>,
    topic: String,
}

impl<T: Serialize + Clone + Send> WireReader for Reader<T> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>, rows: usize) -> Poll<Option<(u32, Vec<u8>)>> {
        let rows = rows.clamp(1, u32::MAX as usize);
        loop {
            if self.pending.is_empty() {
                match self.reader.poll_take(cx, rows, &mut self.pending) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(false) => return Poll::Ready(None),
                    Poll::Ready(true) => {}
                }
            }
            let mut n = self.pending.len().min(rows);
            // Halve the chunk until it fits a message; a single element that does not fit
            // (or does not encode) is dropped and counted.
            while n > 0 {
                match postcard::to_allocvec(&self.pending[..n]) {
                    Ok(bytes) if bytes.len() <= self.max_bytes => {
                        self.pending.drain(..n);
                        // `n` is at most `rows`, which fits a u32.
                        return Poll::Ready(Some((n as u32, bytes)));
                    }
                    Ok(_) if n > 1 => n /= 2,
                    Ok(bytes) => {
                        tracing::warn!(
                            topic = %self.topic,
                            bytes = bytes.len(),
                            max = self.max_bytes,
                            "topic element larger than a data message: dropped"
                        );
                        break;
                    }
                    Err(e) if n > 1 => {
                        tracing::debug!(topic = %self.topic, error = %e, "chunk does not encode: splitting");
                        n /= 2;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "topic element does not encode: dropped");
                        break;
                    }
                }
            }
            self.pending.remove(0);
            bump(&self.stats.unsendable, 1);
        }
    }
}

struct Inbound<T: Clone> {
    inbound: TopicInbound<T>,
}

impl<T: DeserializeOwned + Clone + Send> WireInbound for Inbound<T> {
    fn capacity(&self) -> usize {
        self.inbound.capacity()
    }
    fn push(&mut self, rows: u32, payload: &[u8]) -> Result<(), String> {
        let batch = crate::frame::decode_batch::<T>(rows, payload).map_err(|e| e.to_string())?;
        self.inbound.push(batch).map_err(|e| e.to_string())
    }
    fn poll_freed(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        self.inbound.poll_freed(cx)
    }
}
