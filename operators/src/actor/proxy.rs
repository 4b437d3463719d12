//! Proxy refs: an [`ActorRef`] whose mailbox a task outside any stage drains through an
//! [`Inbox`] (the cluster's refs to actors on other nodes), and [`ActorRef::send_ask`], which
//! queues a message with a reply slot and hands back the pending reply.
//!
//! A proxy's mailbox is an ordinary one (capacity, overflow policy, dead letters), so `tell`,
//! `try_tell`, `ask` and `ctx.tell` on a proxy behave as on an actor's ref; what differs is who
//! takes the messages: the inbox's owner, with each message's [`Replier`].

use super::dead_letters::DeadLetterService;
use super::mailbox::{
    ActorRef, Envelope, Mailbox, MailboxConfig, ReplyTo, StageHooks, StageShared, TellError,
};
use super::props::ActorId;
use futures::channel::oneshot;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{Clock, StageError};

/// Where the answer to a message taken from an [`Inbox`] goes: the `ask` that sent it, or the
/// actor that told it (type-erased: a reply of another type than it takes is refused).
pub struct Replier(ReplyTo);

impl fmt::Debug for Replier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReplyTo::Ask(_) => f.write_str("Replier(ask)"),
            ReplyTo::Actor(r) => write!(f, "Replier({})", r.path()),
        }
    }
}

impl Replier {
    /// Whether an `ask` waits for this reply (rather than an actor's mailbox).
    pub fn is_ask(&self) -> bool {
        matches!(self.0, ReplyTo::Ask(_))
    }
    /// The sending actor's path (`None` for an `ask`).
    pub fn sender_path(&self) -> Option<&str> {
        match &self.0 {
            ReplyTo::Ask(_) => None,
            ReplyTo::Actor(r) => Some(r.path()),
        }
    }
    /// Hands `reply` to the asker or the sending actor; gives it back when the sending actor
    /// takes another type. A reply the asker no longer waits for is dropped (`Ok`).
    pub fn send(self, reply: Box<dyn Any + Send>) -> Result<(), Box<dyn Any + Send>> {
        match self.0 {
            ReplyTo::Ask(tx) => {
                let _ = tx.send(reply);
                Ok(())
            }
            ReplyTo::Actor(to) => to.tell_any(reply),
        }
    }
}

/// A message taken from an [`Inbox`], with where its reply goes.
#[derive(Debug)]
pub struct Incoming<M> {
    /// The message.
    pub msg: M,
    /// Where its reply goes, when it has a sender.
    pub reply: Option<Replier>,
}

/// The reply to a message queued with [`ActorRef::send_ask`]: `None` once the actor handled
/// it without replying (or stopped first).
#[derive(Debug)]
pub struct PendingReply(oneshot::Receiver<Box<dyn Any + Send>>);

impl Future for PendingReply {
    type Output = Option<Box<dyn Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

/// The receiving end of a proxy ref: the messages told to it, in order. Dropping it closes the
/// mailbox (what is queued and what is told later goes to dead letters).
pub struct Inbox<M: Send + 'static> {
    mailbox: Arc<Mailbox<M>>,
    buf: VecDeque<Envelope<M>>,
    ids: Vec<ActorId>,
}

impl<M: Send + 'static> fmt::Debug for Inbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Inbox({})", self.mailbox.path())
    }
}

impl<M: Send + 'static> ActorRef<M> {
    /// A ref at `path` whose messages the returned [`Inbox`] takes, with `mailbox`'s capacity
    /// and overflow policy; `ask` timeouts run on `clock`, and what cannot be delivered is
    /// recorded in `letters` when given. Fails when `mailbox` is made for another message type.
    pub fn proxy(
        path: &str,
        mailbox: &MailboxConfig,
        clock: Arc<dyn Clock>,
        letters: Option<Arc<DeadLetterService>>,
    ) -> Result<(Self, Inbox<M>), StageError> {
        let path: Arc<str> = Arc::from(path);
        let stage = Arc::new(StageShared::default());
        stage.record_dead_letters(&path, letters);
        stage.start(StageHooks {
            clock,
            dead_letters: None,
            stage: Arc::clone(&path),
        });
        let mb = Mailbox::new(mailbox, ActorId::ROOT, path, stage)?;
        let inbox = Inbox {
            mailbox: Arc::clone(&mb),
            buf: VecDeque::new(),
            ids: Vec::new(),
        };
        Ok((ActorRef::new(mb), inbox))
    }

    /// Queues `msg` with a reply slot, waiting while the mailbox is full, and returns the
    /// pending reply (what `ask` awaits, without its timeout): a task delivering messages in
    /// order queues the next one without waiting for this one's answer.
    pub async fn send_ask(&self, msg: M) -> Result<PendingReply, TellError> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Envelope {
                msg,
                reply: Some(ReplyTo::Ask(tx)),
            })
            .await?;
        Ok(PendingReply(rx))
    }

    /// Queues a message taken from an [`Inbox`] with its original reply target, waiting while
    /// the mailbox is full: the asker or sending actor gets this actor's answer (a forward, as
    /// a router or a singleton proxy passes messages on).
    pub async fn forward(&self, incoming: Incoming<M>) -> Result<(), TellError> {
        self.0
            .send(Envelope {
                msg: incoming.msg,
                reply: incoming.reply.map(|r| r.0),
            })
            .await
    }
}

impl<M: Send + 'static> Inbox<M> {
    /// Moves at most `max` (at least 1) queued messages into `into`, in order: `Ready(n)` with
    /// `n > 0` when it took some, `Ready(0)` once no ref is left and nothing is queued (or the
    /// inbox was closed), `Pending` while refs exist and nothing is queued.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        into: &mut Vec<Incoming<M>>,
        max: usize,
    ) -> Poll<usize> {
        let max = max.max(1);
        loop {
            self.ids.clear();
            self.mailbox.stage.take(&mut self.ids);
            self.mailbox.drain_into(&mut self.buf, max);
            if !self.buf.is_empty() {
                let n = self.buf.len();
                into.extend(self.buf.drain(..).map(|e| Incoming {
                    msg: e.msg,
                    reply: e.reply.map(Replier),
                }));
                return Poll::Ready(n);
            }
            if !self.has_refs() || self.mailbox.is_closed() {
                return Poll::Ready(0);
            }
            self.mailbox.stage.take_ref_dropped();
            if !self.mailbox.stage.poll_ready(cx.waker()) {
                return Poll::Pending;
            }
        }
    }

    /// Waits for [`Inbox::poll_recv`].
    pub async fn recv(&mut self, into: &mut Vec<Incoming<M>>, max: usize) -> usize {
        poll_fn(|cx| self.poll_recv(cx, into, max)).await
    }

    /// Whether a ref to the proxy is still held somewhere.
    pub fn has_refs(&self) -> bool {
        Arc::strong_count(&self.mailbox) > 1
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.buf.len() + self.mailbox.queued()
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The proxy's path.
    pub fn path(&self) -> &str {
        self.mailbox.path()
    }

    /// Closes the mailbox: what is queued and what is told later goes to dead letters, and
    /// `tell` on the ref fails with `Stopped`.
    pub fn close(&self) {
        self.mailbox.close();
    }

    /// Sends `msg` to the proxy's dead letters with `reason` (a message that could not be sent
    /// on), naming the proxy.
    pub fn dead_letter(&self, msg: M, reason: &str) {
        super::mailbox::dead_letter(&self.mailbox.stage, self.mailbox.path(), msg, reason);
    }
}

impl<M: Send + 'static> Drop for Inbox<M> {
    fn drop(&mut self) {
        self.mailbox.close();
    }
}
