//! The in-memory messages of a mailbox: the runtime's notices (a watched actor terminated)
//! first, in arrival order, then the user's messages: one FIFO queue, or FIFO queues per
//! priority (a priority mailbox hands out the highest priority first, in arrival order within
//! one; a control-aware mailbox is one with two priorities).

use super::mailbox::Envelope;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The priority of a message (higher first), as [`MailboxConfig::priority`] computes it.
///
/// [`MailboxConfig::priority`]: super::MailboxConfig::priority
pub(crate) type PriorityFn<M> = Arc<dyn Fn(&M) -> u8 + Send + Sync>;

/// Queued messages in delivery order: system notices ahead of the user's messages.
pub(crate) struct Items<M> {
    /// Allocated on the first notice (most mailboxes never get one): boxed so that an idle
    /// actor's mailbox carries 8 bytes for it, not an empty `VecDeque`'s 32.
    #[allow(clippy::box_collection)]
    system: Option<Box<VecDeque<Envelope<M>>>>,
    user: Order<M>,
}

/// The user's messages in delivery order.
enum Order<M> {
    Fifo(VecDeque<Envelope<M>>),
    /// By the priority the sender computed (the mailbox holds the function).
    Priority {
        /// Keyed by priority; the last entry is delivered first.
        buckets: BTreeMap<u8, VecDeque<Envelope<M>>>,
        len: usize,
    },
}

impl<M> Items<M> {
    /// An empty queue, the user's messages ordered by priority when `priority`.
    pub(crate) fn new(priority: bool) -> Self {
        Self {
            system: None,
            user: Order::new(priority),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.system_len() + self.user.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The runtime's notices queued.
    pub(crate) fn system_len(&self) -> usize {
        self.system.as_ref().map_or(0, |q| q.len())
    }

    /// Queues the user's `env` behind the messages of its priority `rank` (computed by the
    /// sender with the mailbox's function; `None` in a first-in-first-out queue).
    pub(crate) fn push(&mut self, env: Envelope<M>, rank: Option<u8>) {
        self.user.push(env, rank);
    }

    /// Queues a notice of the runtime ahead of every user message (behind earlier notices).
    pub(crate) fn push_system(&mut self, env: Envelope<M>) {
        self.system.get_or_insert_default().push_back(env);
    }

    /// The message a full mailbox gives up under `DropOld`: the oldest of the lowest priority
    /// (never a notice of the runtime).
    pub(crate) fn evict(&mut self) -> Option<Envelope<M>> {
        self.user.evict()
    }

    /// Moves the next `n` messages (at most) into `into`, in delivery order.
    pub(crate) fn drain_into(&mut self, into: &mut VecDeque<Envelope<M>>, n: usize) {
        let mut k = 0;
        if let Some(system) = &mut self.system {
            k = n.min(system.len());
            into.extend(system.drain(..k));
        }
        self.user.drain_into(into, n - k);
    }

    /// Takes every message, in delivery order.
    pub(crate) fn take_all(&mut self) -> Vec<Envelope<M>> {
        let mut out = VecDeque::new();
        let n = self.len();
        self.drain_into(&mut out, n);
        out.into()
    }
}

impl<M> Order<M> {
    /// An empty queue, ordered by priority when `priority`.
    fn new(priority: bool) -> Self {
        match priority {
            false => Self::Fifo(VecDeque::new()),
            true => Self::Priority {
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

    /// Queues `env` behind the messages of its priority `rank`.
    pub(crate) fn push(&mut self, env: Envelope<M>, rank: Option<u8>) {
        match self {
            Self::Fifo(q) => q.push_back(env),
            Self::Priority { buckets, len } => {
                debug_assert!(
                    rank.is_some(),
                    "a priority mailbox's sender ranks its message"
                );
                let p = rank.unwrap_or(0);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(items: &mut Items<u32>, n: usize) -> Vec<u32> {
        let mut out = VecDeque::new();
        items.drain_into(&mut out, n);
        out.into_iter().map(|e| e.msg).collect()
    }

    #[test]
    fn notices_of_the_runtime_go_ahead_of_user_messages_in_every_order() {
        let control: PriorityFn<u32> = Arc::new(|m: &u32| u8::from(*m >= 100));
        for priority in [None, Some(control)] {
            let mut items = Items::new(priority.is_some());
            let rank = |m: u32| priority.as_ref().map(|f| f(&m));
            for m in [1, 100, 2] {
                items.push(Envelope::plain(m), rank(m));
            }
            items.push_system(Envelope::plain(900));
            items.push(Envelope::plain(101), rank(101));
            items.push_system(Envelope::plain(901));
            assert_eq!(items.len(), 6);
            // DropOld gives up the oldest ordinary message, never a notice.
            assert_eq!(items.evict().map(|e| e.msg), Some(1));
            let want = if priority.is_some() {
                vec![900, 901, 100, 101, 2]
            } else {
                vec![900, 901, 100, 2, 101]
            };
            assert_eq!(msgs(&mut items, 1), want[..1]);
            assert_eq!(msgs(&mut items, 10), want[1..]);
            assert!(items.is_empty());
        }
    }
}
