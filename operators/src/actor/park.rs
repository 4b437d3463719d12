//! Parking (`Ctx::park`): an actor waits for work it handed elsewhere (a Python handler running
//! in an interpreter-pool process) without blocking its stage. While parked it is handed only
//! notices (what its [`Wakeup`] delivers, ahead of a full mailbox); stream batches, told
//! messages, timer messages and unstashed messages wait in order, so backpressure holds. The
//! stage neither completes nor takes a checkpoint while an actor of it is parked.

use super::ctx::Ctx;
use super::mailbox::{Envelope, Mailbox, ReplyTo};
use super::props::Actor;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Wakes a parked actor: delivers a message to it ahead of its queue, even when its mailbox is
/// full (dropped once the actor stopped). Until its first wake-up it marks work outside the
/// run as going on (`Clock::busy`), so a virtual clock does not take the run for settled.
pub struct Wakeup<M> {
    mailbox: Arc<Mailbox<M>>,
    busy: Mutex<Option<Box<dyn Send + Sync>>>,
}

impl<M: Send + 'static> Wakeup<M> {
    /// Delivers `msg` as a notice (the parked actor handles it next).
    pub fn wake(&self, msg: M) {
        self.mailbox.offer_notice(msg);
        // The actor's stage is woken now: the work outside is over.
        drop(self.busy.lock().map(|mut b| b.take()));
    }
}

impl<M: Send + 'static> fmt::Debug for Wakeup<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wakeup({})", self.mailbox.path())
    }
}

/// The reply address of a handled message, taken out so that a later turn answers it
/// ([`Ctx::take_sender`], [`Ctx::restore_sender`]).
#[derive(Default)]
pub struct SenderSlot(pub(crate) Option<ReplyTo>);

impl SenderSlot {
    /// Whether the message had a sender.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for SenderSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("SenderSlot(none)"),
            Some(ReplyTo::Ask(_)) => f.write_str("SenderSlot(ask)"),
            Some(ReplyTo::Actor(r)) => write!(f, "SenderSlot({})", r.path()),
        }
    }
}

impl<A: Actor> Ctx<'_, A> {
    /// Parks the actor until [`Ctx::unpark`] (see the module doc); the handle wakes it. Parking
    /// a parked actor only hands out another handle.
    pub fn park(&mut self) -> Wakeup<A::Msg> {
        if !self.state.parked {
            self.state.parked = true;
            self.sys.parked += 1;
            self.mailbox.pause_user();
        }
        Wakeup {
            mailbox: Arc::clone(self.mailbox),
            busy: Mutex::new(self.sys.clock.busy()),
        }
    }

    /// Ends a park: what waited is handled from the next turn, in order.
    pub fn unpark(&mut self) {
        if std::mem::take(&mut self.state.parked) {
            self.sys.parked -= 1;
            self.mailbox.resume_user();
        }
    }

    /// Whether the actor is parked.
    pub fn is_parked(&self) -> bool {
        self.state.parked
    }

    /// Puts `msgs` (each with the reply address taken from it) back in front of the queue once
    /// this turn ends, in order, behind what [`Ctx::unstash_all`] puts back: messages the
    /// actor took but has not handled yet.
    pub fn requeue(&mut self, msgs: impl IntoIterator<Item = (A::Msg, SenderSlot)>) {
        self.state.requeue.extend(
            msgs.into_iter()
                .map(|(msg, s)| Envelope { msg, reply: s.0 }),
        );
    }

    /// Takes the current message's reply address out (the message then has no sender).
    pub fn take_sender(&mut self) -> SenderSlot {
        SenderSlot(self.reply.take())
    }

    /// Makes `slot` the current message's reply address: `reply`, `forward` and `stash` then
    /// act as for the message it was taken from.
    pub fn restore_sender(&mut self, slot: SenderSlot) {
        self.reply = slot.0;
    }
}
