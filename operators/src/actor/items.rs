//! The in-memory messages of a mailbox: one FIFO queue, or FIFO queues per priority (a
//! priority mailbox hands out the highest priority first, in arrival order within one).

use super::mailbox::Envelope;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The priority of a message (higher first), as [`MailboxConfig::priority`] computes it.
///
/// [`MailboxConfig::priority`]: super::MailboxConfig::priority
pub(crate) type PriorityFn<M> = Arc<dyn Fn(&M) -> u8 + Send + Sync>;

/// Queued messages in delivery order.
pub(crate) enum Items<M> {
    Fifo(VecDeque<Envelope<M>>),
    Priority {
        of: PriorityFn<M>,
        /// Keyed by priority; the last entry is delivered first.
        buckets: BTreeMap<u8, VecDeque<Envelope<M>>>,
        len: usize,
    },
}

impl<M> Items<M> {
    /// An empty queue, ordered by `priority` when given.
    pub(crate) fn new(priority: Option<PriorityFn<M>>) -> Self {
        match priority {
            None => Self::Fifo(VecDeque::new()),
            Some(of) => Self::Priority {
                of,
                buckets: BTreeMap::new(),
                len: 0,
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Fifo(q) => q.len(),
            Self::Priority { len, .. } => *len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `env` behind the messages of its priority.
    pub(crate) fn push(&mut self, env: Envelope<M>) {
        match self {
            Self::Fifo(q) => q.push_back(env),
            Self::Priority { of, buckets, len } => {
                let p = of(&env.msg);
                buckets.entry(p).or_default().push_back(env);
                *len += 1;
            }
        }
    }

    /// The next message to deliver.
    pub(crate) fn pop(&mut self) -> Option<Envelope<M>> {
        match self {
            Self::Fifo(q) => q.pop_front(),
            Self::Priority { buckets, len, .. } => {
                let mut entry = buckets.last_entry()?;
                let env = entry.get_mut().pop_front();
                if entry.get().is_empty() {
                    entry.remove();
                }
                if env.is_some() {
                    *len -= 1;
                }
                env
            }
        }
    }

    /// The message a full mailbox gives up under `DropOld`: the oldest of the lowest priority.
    pub(crate) fn evict(&mut self) -> Option<Envelope<M>> {
        match self {
            Self::Fifo(q) => q.pop_front(),
            Self::Priority { buckets, len, .. } => {
                let mut entry = buckets.first_entry()?;
                let env = entry.get_mut().pop_front();
                if entry.get().is_empty() {
                    entry.remove();
                }
                if env.is_some() {
                    *len -= 1;
                }
                env
            }
        }
    }

    /// Moves the next `n` messages (at most) into `into`, in delivery order.
    pub(crate) fn drain_into(&mut self, into: &mut VecDeque<Envelope<M>>, n: usize) {
        match self {
            Self::Fifo(q) => {
                let n = n.min(q.len());
                into.extend(q.drain(..n));
            }
            Self::Priority { .. } => {
                for _ in 0..n {
                    match self.pop() {
                        Some(env) => into.push_back(env),
                        None => break,
                    }
                }
            }
        }
    }

    /// Takes every message, in delivery order.
    pub(crate) fn take_all(&mut self) -> Vec<Envelope<M>> {
        let mut out = VecDeque::new();
        let n = self.len();
        self.drain_into(&mut out, n);
        out.into()
    }
}
