//! The typed ends of a channel behind object-safe traits: a proxy's inbox handing out encoded
//! messages (sending side), and an exposed path decoding them into an actor's mailbox
//! (receiving side).

use super::{RemoteStats, bump};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_operators::actor::{
    ActorRef, ActorRegistry, Inbox, Incoming, RegistryError, Replier, TellError,
};

/// A message of a proxy, encoded, with where its reply goes.
pub(super) struct Outgoing {
    pub(super) payload: Vec<u8>,
    pub(super) reply: Option<Replier>,
}

/// A proxy's inbox with its message type erased.
pub(super) trait OutSource: Send {
    /// Moves up to `max` messages, encoded, into `out`: `Ready(true)` when it took some (an
    /// unsendable one goes to dead letters instead), `Ready(false)` once no ref is left.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<Outgoing>,
    ) -> Poll<bool>;
    /// Closes the proxy (the channel was refused): tells fail, what is queued goes to dead
    /// letters.
    fn close(&mut self);
}

/// Decodes a reply payload into the boxed reply type.
pub(super) type ReplyDecoder =
    Arc<dyn Fn(&[u8]) -> Result<Box<dyn Any + Send>, postcard::Error> + Send + Sync>;

/// The decoder of replies of type `R`.
pub(super) fn reply_decoder<R: DeserializeOwned + Send + 'static>() -> ReplyDecoder {
    Arc::new(|b: &[u8]| postcard::from_bytes::<R>(b).map(|r| Box::new(r) as Box<dyn Any + Send>))
}

/// A proxy's inbox encoding `M`.
pub(super) struct Proxy<M: Send + 'static> {
    pub(super) inbox: Inbox<M>,
    pub(super) buf: Vec<Incoming<M>>,
    pub(super) max_bytes: usize,
    pub(super) replies: bool,
    pub(super) stats: Arc<RemoteStats>,
}

impl<M: Serialize + Send + 'static> OutSource for Proxy<M> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<Outgoing>,
    ) -> Poll<bool> {
        match self.inbox.poll_recv(cx, &mut self.buf, max) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(0) => return Poll::Ready(false),
            Poll::Ready(_) => {}
        }
        for m in self.buf.drain(..) {
            let why = match postcard::to_allocvec(&m.msg) {
                Ok(payload) if payload.len() <= self.max_bytes => {
                    // A channel without replies answers an `ask` at once (`NoReply`).
                    let reply = m.reply.filter(|_| self.replies);
                    out.push(Outgoing { payload, reply });
                    continue;
                }
                Ok(payload) => format!(
                    "{} bytes encoded, more than a remote message's {}",
                    payload.len(),
                    self.max_bytes
                ),
                Err(e) => format!("does not encode: {e}"),
            };
            tracing::warn!(proxy = %self.inbox.path(), reason = %why, "message not sent");
            bump(&self.stats.unsendable, 1);
            self.inbox.dead_letter(m.msg, &why);
        }
        Poll::Ready(true)
    }
    fn close(&mut self) {
        self.inbox.close();
    }
}

/// What became of a message handed to a [`Target`].
pub(super) enum Delivered {
    /// It is in the actor's mailbox.
    Told,
    /// It is in the actor's mailbox; the future gives the encoded reply (`None`: no reply).
    Asked(BoxFuture<'static, Option<Vec<u8>>>),
    /// The actor stopped meanwhile: the message went to its stage's dead letters.
    Stopped,
    /// The actor's mailbox dropped it (its overflow policy): it went to dead letters.
    Dropped(String),
    /// The payload is not a message of the exposed type.
    Undecodable(String),
}

/// An exposed path resolved to a live actor.
pub(super) trait Target: Send + Sync {
    /// Whether the actor stopped (a new one may be registered under the path).
    fn is_stopped(&self) -> bool;
    /// Decodes `payload` and delivers it, waiting while the mailbox is full; with a reply
    /// slot when `reply`.
    fn deliver<'a>(&'a self, payload: &'a [u8], reply: bool) -> BoxFuture<'a, Delivered>;
}

/// A path this node accepts messages for, with its types.
pub(super) trait Exposed: Send + Sync {
    /// The message type's name.
    fn msg_ty(&self) -> &'static str;
    /// The reply type's name (`None`: tells only).
    fn reply_ty(&self) -> Option<&'static str>;
    /// The live actor registered under `path`, if any.
    fn target(
        &self,
        registry: &ActorRegistry,
        path: &str,
    ) -> Result<Option<Box<dyn Target>>, RegistryError>;
}

/// The reply type of a path exposed for tells only: no value has it.
#[derive(Debug, Serialize)]
pub(super) enum NoReplies {}

/// A path exposed for messages `M` answered with `R`.
pub(super) struct ExposedAs<M, R>(PhantomData<fn() -> (M, R)>);

impl<M, R> ExposedAs<M, R> {
    pub(super) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M, R> Exposed for ExposedAs<M, R>
where
    M: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    fn msg_ty(&self) -> &'static str {
        std::any::type_name::<M>()
    }
    fn reply_ty(&self) -> Option<&'static str> {
        if std::any::TypeId::of::<R>() == std::any::TypeId::of::<NoReplies>() {
            None
        } else {
            Some(std::any::type_name::<R>())
        }
    }
    fn target(
        &self,
        registry: &ActorRegistry,
        path: &str,
    ) -> Result<Option<Box<dyn Target>>, RegistryError> {
        Ok(registry.lookup::<M>(path)?.map(|r| {
            Box::new(TargetOf::<M, R> {
                actor: r,
                replies: self.reply_ty().is_some(),
                _r: PhantomData,
            }) as Box<dyn Target>
        }))
    }
}

fn refused(e: TellError) -> Delivered {
    match e {
        TellError::Stopped { .. } => Delivered::Stopped,
        other => Delivered::Dropped(other.to_string()),
    }
}

struct TargetOf<M: Send + 'static, R> {
    actor: ActorRef<M>,
    replies: bool,
    _r: PhantomData<fn() -> R>,
}

impl<M, R> Target for TargetOf<M, R>
where
    M: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    fn is_stopped(&self) -> bool {
        self.actor.is_stopped()
    }
    fn deliver<'a>(&'a self, payload: &'a [u8], reply: bool) -> BoxFuture<'a, Delivered> {
        Box::pin(async move {
            let msg = match postcard::from_bytes::<M>(payload) {
                Ok(m) => m,
                Err(e) => return Delivered::Undecodable(e.to_string()),
            };
            if !(reply && self.replies) {
                return match self.actor.tell(msg).await {
                    Ok(()) => Delivered::Told,
                    Err(e) => refused(e),
                };
            }
            let pending = match self.actor.send_ask(msg).await {
                Ok(p) => p,
                Err(e) => return refused(e),
            };
            let actor = self.actor.path().to_owned();
            Delivered::Asked(Box::pin(async move {
                let answer = pending.await?;
                match answer.downcast::<R>() {
                    Ok(r) => match postcard::to_allocvec(&*r) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            tracing::warn!(%actor, error = %e, "reply does not encode: not sent");
                            None
                        }
                    },
                    Err(_) => {
                        tracing::warn!(
                            %actor,
                            expected = std::any::type_name::<R>(),
                            "reply of another type than the exposed one: not sent"
                        );
                        None
                    }
                }
            }))
        })
    }
}
