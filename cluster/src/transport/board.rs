//! Routes accepted edge streams to the stage waiting for their edge.

use super::{Channel, TransportError};
use crate::frame::EdgeId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::oneshot;

enum Slot {
    Waiting(oneshot::Sender<Channel>),
    Ready(VecDeque<Channel>),
}

/// Streams by edge: an accepted stream goes to the waiting acceptor of its edge, or waits
/// (bounded) until one comes.
pub struct Switchboard {
    slots: Mutex<HashMap<EdgeId, Slot>>,
    max_pending: usize,
}

impl std::fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Switchboard")
    }
}

impl Switchboard {
    /// A switchboard holding at most `max_pending` streams nobody accepted yet.
    pub fn new(max_pending: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max_pending,
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EdgeId, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Hands `ch` to the acceptor of its edge or queues it.
    pub fn deliver(&self, ch: Channel) -> Result<(), TransportError> {
        let mut slots = self.lock();
        let edge = ch.edge;
        let ch = match slots.remove(&edge) {
            Some(Slot::Waiting(w)) => match w.send(ch) {
                Ok(()) => return Ok(()),
                Err(ch) => ch,
            },
            Some(Slot::Ready(q)) => {
                slots.insert(edge, Slot::Ready(q));
                ch
            }
            None => ch,
        };
        let pending: usize = slots
            .values()
            .map(|s| match s {
                Slot::Ready(q) => q.len(),
                Slot::Waiting(_) => 0,
            })
            .sum();
        if pending >= self.max_pending {
            return Err(TransportError::TooManyPending(pending));
        }
        // The edge's slot is vacant or a queue here (a waiter was removed above).
        if let Slot::Ready(q) = slots
            .entry(edge)
            .or_insert_with(|| Slot::Ready(VecDeque::new()))
        {
            q.push_back(ch);
        }
        Ok(())
    }
    /// Waits for the next stream of `edge`.
    pub async fn accept(&self, edge: EdgeId) -> Result<Channel, TransportError> {
        let rx = {
            let mut slots = self.lock();
            if let Some(Slot::Ready(q)) = slots.get_mut(&edge)
                && let Some(ch) = q.pop_front()
            {
                if q.is_empty() {
                    slots.remove(&edge);
                }
                return Ok(ch);
            }
            let (tx, rx) = oneshot::channel();
            slots.insert(edge, Slot::Waiting(tx));
            rx
        };
        rx.await.map_err(|_| TransportError::Closed)
    }
}
