//! `Flow::ask(actor_ref, parallelism, timeout)`: every element is asked of an actor and its
//! reply goes downstream, in input order.
//!
//! A stage of its own rather than `map_async` over `ActorRef::ask`: the asks of a batch go to
//! the mailbox under one lock, only the oldest ask's reply is waited on (the later ones are
//! collected once it arrived), and one timer runs for the oldest deadline instead of one per
//! ask.

use super::mailbox::{ActorRef, AskError, Envelope, ReplyTo};
use crate::Via;
use crate::async_ops::fail_after;
use crate::time::util::{flush_or_closed, maybe, race};
use futures::channel::oneshot;
use futures::future::{BoxFuture, Either, FutureExt};
use std::any::Any;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use weir_graph::{
    AsyncIo, AsyncLogic, Clock, Control, Directive, Event, Flow, Signal, StageError, render_element,
};

/// Asks `to` with every element (each ask gets `timeout` on the clock of the asking stage's
/// run, counted from when the element was taken), at most `parallelism` asks in flight (at
/// least 1: 0 is refused when the graph is validated), and emits the replies of type `R` in
/// input order. A failed ask (timeout, no reply, a reply of another type, a stopped actor)
/// fails its element with an error naming the actor and the message (when its type renders),
/// under the stage's supervision: `resume` (and `restart`, which acts as it) drops the element
/// to dead letters and goes on. An ask that timed out before its message reached a full
/// mailbox is not delivered.
///
/// - **emits when** the reply to the oldest element in flight arrived and downstream has room
/// - **backpressures when** `parallelism` asks (or their unsent replies) are outstanding, or
///   downstream backpressures
/// - **completes when** upstream completes and every ask was answered and emitted
/// - **cancels when** downstream cancels (the asks in flight are dropped; late replies go
///   nowhere)
/// - **fails when** upstream fails, or an ask fails and supervision says stop
pub fn ask_flow<M, R>(to: ActorRef<M>, parallelism: usize, timeout: Duration) -> Flow<M, R>
where
    M: Send + 'static,
    R: Send + 'static,
{
    Flow::from_async("ask", move |_| {
        Ok((
            AskStage::<M, R> {
                to: to.clone(),
                parallelism: parallelism.max(1),
                timeout,
                _r: PhantomData,
            },
            (),
        ))
    })
    .reject(weir_graph::at_least("ask: parallelism", parallelism, 1))
}

/// The stage's logic: the actor, the bound on asks in flight and each ask's timeout.
struct AskStage<M, R> {
    to: ActorRef<M>,
    parallelism: usize,
    timeout: Duration,
    _r: PhantomData<fn() -> R>,
}

impl<M: Send + 'static, R: Send + 'static> AsyncLogic for AskStage<M, R> {
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        drive::<M, R>(io, self.to, self.parallelism, self.timeout).boxed()
    }

    /// Controls (barriers, watermarks) wait behind the asks in flight: a checkpoint barrier
    /// leaves once their replies did, so none passes it.
    fn handles_control(&self) -> bool {
        true
    }
}

/// One ask in flight.
struct Asked {
    /// Where the reply arrives.
    reply: oneshot::Receiver<Box<dyn Any + Send>>,
    /// When it times out, on the run's clock.
    deadline: Duration,
    /// The message's rendering, for its error.
    repr: Option<String>,
    /// Its outcome once known and not yet taken: the reply polled for, or the failure known
    /// before any reply (the actor had stopped when it was sent).
    outcome: Option<Outcome>,
}

/// A reply, or why there is none.
type Outcome = Result<Box<dyn Any + Send>, AskError>;

/// What woke the stage while asks were in flight.
enum Woke {
    /// The oldest ask was answered (or its actor dropped it unanswered).
    Replied,
    /// The timer for the oldest deadline fired.
    Deadline,
    /// The actor stopped before the unsent asks reached its mailbox.
    Stopped(AskError),
}

/// The asks of one stage: unsent messages, the asks in flight (oldest first; the unsent are
/// the last `unsent.len()`) and the timer for the oldest deadline.
struct Asks<M> {
    to: ActorRef<M>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    unsent: VecDeque<Envelope<M>>,
    flight: VecDeque<Asked>,
    timer: Option<BoxFuture<'static, ()>>,
}

impl<M: Send + 'static> Asks<M> {
    /// Asks with every element of `xs` (their deadline starts now).
    fn start(&mut self, xs: impl Iterator<Item = M>) {
        let deadline = self.clock.now() + self.timeout;
        for msg in xs {
            let repr = render_element(&msg);
            let (tx, reply) = oneshot::channel();
            self.unsent.push_back(Envelope {
                msg,
                reply: Some(ReplyTo::Ask(tx)),
            });
            self.flight.push_back(Asked {
                reply,
                deadline,
                repr,
                outcome: None,
            });
        }
    }

    /// Sends what the mailbox has room for and waits for the oldest reply or deadline.
    async fn progress(&mut self) -> Woke {
        poll_fn(|cx| {
            while !self.unsent.is_empty() {
                match self.to.0.poll_send_many(&mut self.unsent, cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Woke::Stopped(e.into())),
                    Poll::Pending => break,
                }
            }
            let Some(head) = self.flight.front_mut() else {
                return Poll::Pending;
            };
            if head.outcome.is_some() {
                return Poll::Ready(Woke::Replied);
            }
            if let Poll::Ready(r) = Pin::new(&mut head.reply).poll(cx) {
                head.outcome = Some(r.map_err(|oneshot::Canceled| AskError::NoReply {
                    actor: self.to.path().to_owned(),
                }));
                return Poll::Ready(Woke::Replied);
            }
            let deadline = head.deadline;
            // Deadlines only grow along the queue: a timer armed for an older ask fires no
            // later than the oldest one's, which is then checked again.
            let timer = self
                .timer
                .get_or_insert_with(|| self.clock.sleep_until(deadline));
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
                return Poll::Ready(Woke::Deadline);
            }
            Poll::Pending
        })
        .await
    }

    /// Fails every unsent ask: the actor stopped (each message goes to its dead letters).
    fn stopped(&mut self, e: &AskError) {
        let first = self.flight.len() - self.unsent.len();
        for (asked, env) in self
            .flight
            .iter_mut()
            .skip(first)
            .zip(self.unsent.drain(..))
        {
            asked.outcome = Some(Err(e.clone()));
            self.to
                .0
                .dead_letter(env, super::dead_letters::reason::STOPPED);
        }
    }

    /// The outcome of the oldest ask when it is known (answered, failed, or past its deadline
    /// when `timed_out_by` is the clock's now).
    fn take_settled(
        &mut self,
        timed_out_by: Option<Duration>,
    ) -> Option<(Outcome, Option<String>)> {
        let head = self.flight.front_mut()?;
        let outcome = if let Some(o) = head.outcome.take() {
            o
        } else {
            match head.reply.try_recv() {
                Ok(Some(reply)) => Ok(reply),
                Err(oneshot::Canceled) => Err(AskError::NoReply {
                    actor: self.to.path().to_owned(),
                }),
                Ok(None) if timed_out_by.is_some_and(|now| head.deadline <= now) => {
                    if self.flight.len() == self.unsent.len() {
                        // Still waiting for room in the mailbox: it is never delivered.
                        self.unsent.pop_front();
                    }
                    Err(AskError::Timeout {
                        actor: self.to.path().to_owned(),
                        timeout: self.timeout,
                    })
                }
                Ok(None) => return None,
            }
        };
        let head = self.flight.pop_front()?;
        if self.flight.is_empty() {
            // No stale timer keeps a virtual clock's run from looking idle.
            self.timer = None;
        }
        Some((outcome, head.repr))
    }
}

/// Hands the reply to `ready`, or the failure to supervision (`Err` when it stops the stage).
fn settle<R: 'static>(
    io: &AsyncIo,
    to: &str,
    ready: &mut Vec<R>,
    outcome: Outcome,
    repr: Option<String>,
) -> Result<(), StageError> {
    let e = match outcome.map(|b| b.downcast::<R>()) {
        Ok(Ok(r)) => {
            ready.push(*r);
            return Ok(());
        }
        Ok(Err(_)) => AskError::ReplyType {
            actor: to.to_owned(),
            expected: std::any::type_name::<R>(),
        },
        Err(e) => e,
    };
    // Restart acts as Resume: the dead letter is sent and the stage goes on.
    match io
        .stage_cx()
        .element_failed(StageError::from(e), None, repr)
    {
        Err(e) if io.stage_cx().decide(&e) == Directive::Restart => Ok(()),
        r => r,
    }
}

async fn drive<M: Send + 'static, R: Send + 'static>(
    mut io: AsyncIo,
    to: ActorRef<M>,
    parallelism: usize,
    timeout: Duration,
) -> Result<(), StageError> {
    let mut input = io.input::<M>(0)?;
    let mut output = io.output::<R>(0)?;
    let path = to.path().to_owned();
    let mut asks = Asks {
        to,
        clock: Arc::clone(&io.clock),
        timeout,
        unsent: VecDeque::new(),
        flight: VecDeque::new(),
        timer: None,
    };
    // Received elements not yet asked (only while `parallelism` asks are outstanding).
    let mut stash: VecDeque<M> = VecDeque::new();
    // Replies not yet handed to the output (only while a send is outstanding).
    let mut ready: Vec<R> = Vec::new();
    let mut flushing = false;
    let mut ended = false;
    // Controls that arrived behind asks still in flight; nothing is read meanwhile.
    let mut held: VecDeque<Control> = VecDeque::new();
    loop {
        let room = parallelism.saturating_sub(asks.flight.len() + ready.len());
        if room > 0 && !stash.is_empty() {
            let n = room.min(stash.len());
            asks.start(stash.drain(..n));
        }
        if !flushing && !ready.is_empty() {
            output.push(std::mem::take(&mut ready));
            flushing = true;
        }
        let idle = stash.is_empty() && asks.flight.is_empty() && ready.is_empty();
        if !held.is_empty() && idle {
            // Every reply to the elements before them was handed over: they go out after.
            for c in held.drain(..) {
                output.control(c);
            }
        }
        if ended && idle && !flushing {
            return Ok(());
        }
        let can_recv = !ended
            && held.is_empty()
            && stash.is_empty()
            && asks.flight.len() + ready.len() < parallelism;
        let in_flight = !asks.flight.is_empty();
        let flush = flush_or_closed(&mut output, flushing);
        let next = maybe(in_flight.then(|| asks.progress()));
        let recv = maybe(can_recv.then(|| input.recv_signal()));
        let woke = match race(flush, race(next, recv)).await {
            Either::Left(Ok(())) => {
                flushing = false;
                continue;
            }
            Either::Left(Err(_)) => return Ok(()),
            Either::Right(Either::Left(w)) => w,
            Either::Right(Either::Right(ev)) => {
                match ev {
                    Signal::Event(Event::Batch(b)) => stash.extend(b),
                    Signal::Event(Event::End) => ended = true,
                    Signal::Event(Event::Error(e)) => return Err(e),
                    Signal::Control(c) => held.push_back(c),
                }
                continue;
            }
        };
        let timed_out_by = match woke {
            Woke::Replied => None,
            Woke::Deadline => Some(asks.clock.now()),
            Woke::Stopped(e) => {
                asks.stopped(&e);
                None
            }
        };
        // Take every reply already there in order, to emit them together.
        while let Some((outcome, repr)) = asks.take_settled(timed_out_by) {
            if let Err(e) = settle(&io, &path, &mut ready, outcome, repr) {
                return fail_after(&mut output, flushing, ready, e).await;
            }
        }
    }
}

/// `.ask(actor_ref, parallelism, timeout)` on every [`Source`](weir_graph::Source) and
/// [`Flow`](weir_graph::Flow) whose elements are the actor's messages.
pub trait AskOps: Via {
    /// See [`ask_flow`].
    fn ask<R: Send + 'static>(
        self,
        to: ActorRef<Self::Out>,
        parallelism: usize,
        timeout: Duration,
    ) -> Self::Next<R> {
        self.via_flow(ask_flow(to, parallelism, timeout))
    }
}

impl<S: Via> AskOps for S {}
