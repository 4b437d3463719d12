//! The actor stage: an asynchronous stage hosting a tree of actors whose root handles the
//! stream's elements (and messages told to its ref), emitting into the stage's output.

use super::mailbox::{ActorRef, Mailbox, StageHooks, StageShared};
use super::props::{Actor, ActorId, Props};
use super::system::System;
use futures::future::{BoxFuture, FutureExt};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Directive, Event, Flow, Sink, Source, StageError};

/// Which ports the stage has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flow,
    Sink,
    Source,
}

struct ActorStage<A: Actor> {
    props: Props<A>,
    mailbox: Arc<Mailbox<A::Msg>>,
    shared: Arc<StageShared>,
    kind: Kind,
    /// Closes the root's mailbox when the stage goes away, also if it never ran.
    _close: CloseOnDrop<A::Msg>,
}

/// Weak, so it never counts as a ref held outside the stage.
struct CloseOnDrop<M: Send + 'static>(std::sync::Weak<Mailbox<M>>);

impl<M: Send + 'static> Drop for CloseOnDrop<M> {
    fn drop(&mut self) {
        if let Some(m) = self.0.upgrade() {
            m.close();
        }
    }
}

/// What woke the waiting stage.
enum Wake<T> {
    Work,
    Input(Event<T>),
    Timer,
    Closed,
}

fn make<A: Actor>(
    props: &Props<A>,
    kind: Kind,
    path: &str,
) -> Result<(ActorStage<A>, ActorRef<A::Msg>), StageError> {
    let shared = Arc::new(StageShared::default());
    let mailbox = System::<A::Out>::root_mailbox(path, props, &shared)?;
    let r = ActorRef::new(Arc::clone(&mailbox));
    Ok((
        ActorStage {
            props: props.clone(),
            _close: CloseOnDrop(Arc::downgrade(&mailbox)),
            mailbox,
            shared,
            kind,
        },
        r,
    ))
}

/// A flow whose elements are messages to the actor `props` makes; what it (and its children)
/// emit goes downstream. Materializes the actor's ref (messages told to it are handled beside
/// the stream's elements).
///
/// - **emits when** the actor emits and downstream has room
/// - **backpressures when** the actor has not handled the previous batch (its mailbox is the
///   stage's bounded input) or downstream backpressures
/// - **completes when** upstream completes and every queued message was handled (the actors
///   then stop, `post_stop` may still emit), or when the root actor stops itself
/// - **cancels when** downstream cancels (every actor stops)
/// - **fails when** upstream fails, or the root actor fails and the stage's supervision says
///   stop (`resume` keeps the actor, `restart` makes a fresh one from its props)
pub fn actor_flow<A: Actor>(props: Props<A>) -> Flow<A::Msg, A::Out, ActorRef<A::Msg>> {
    Flow::from_async("actor", move |info| make(&props, Kind::Flow, &info.path))
}

/// A sink whose elements are messages to the actor `props` makes (what it emits is dropped).
/// Materializes the actor's ref.
///
/// - **backpressures when** the actor has not handled the previous batch
/// - **completes when** upstream completes and every queued message was handled, or the root
///   actor stops itself (upstream is then cancelled)
/// - **fails when** upstream fails, or the root actor fails under the `stop` supervision
pub fn actor_sink<A: Actor>(props: Props<A>) -> Sink<A::Msg, ActorRef<A::Msg>> {
    Sink::from_async("actor-sink", move |info| {
        make(&props, Kind::Sink, &info.path)
    })
}

/// A source emitting what the actor `props` makes emits while it handles the messages told to
/// its materialized ref (bounded: `tell` waits, `try_tell` applies the mailbox's overflow
/// policy).
///
/// - **emits when** the actor emits and downstream has room
/// - **backpressures when** downstream backpressures (the actor is not called meanwhile, so its
///   mailbox fills and senders wait)
/// - **completes when** the root actor stops itself, or every ref to it outside the stage was
///   dropped, its mailbox is empty and no timer is active
/// - **cancels when** downstream cancels (every actor stops)
/// - **fails when** the root actor fails under the `stop` supervision, or its mailbox overflows
///   under `Overflow::Fail`
pub fn actor_source<A: Actor>(props: Props<A>) -> Source<A::Out, ActorRef<A::Msg>> {
    Source::from_async("actor-source", move |info| {
        make(&props, Kind::Source, &info.path)
    })
}

impl<A: Actor> ActorStage<A> {
    /// What the stage's supervision says about a failure of the root actor.
    fn root_failed(
        sys: &mut System<A::Out>,
        io: &AsyncIo,
        error: StageError,
    ) -> Result<(), StageError> {
        match io.decide(&error) {
            Directive::Resume => Ok(()),
            Directive::Restart => sys.restart_root(&error),
            Directive::Stop => Err(error),
        }
    }
}

impl<A: Actor> AsyncLogic for ActorStage<A> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let Self {
                props,
                mailbox,
                shared,
                kind,
                _close,
            } = *self;
            let mut input = match kind {
                Kind::Source => None,
                _ => Some(io.input::<A::Msg>(0)?),
            };
            let mut output = match kind {
                Kind::Sink => None,
                _ => Some(io.output::<A::Out>(0)?),
            };
            let stage: Arc<str> = Arc::from(io.info.path.as_str());
            let clock = Arc::clone(&io.clock);
            shared.start(StageHooks {
                clock: Arc::clone(&clock),
                dead_letters: io
                    .supervision
                    .as_ref()
                    .and_then(|s| s.dead_letters())
                    .cloned(),
                stage: Arc::clone(&stage),
            });
            let mut sys = System::<A::Out>::new(stage, Arc::clone(&shared), Arc::clone(&clock));
            sys.throughput = props.throughput;
            sys.max_actors = props.max_actors;
            sys.start_root(props, mailbox)?;
            let batch = io.batch_size.max(1);
            let mut ready = Vec::new();
            let mut input_done = input.is_none();
            let mut sleep: Option<(Duration, BoxFuture<'static, ()>)> = None;
            loop {
                let r = sys.fire_timers().and_then(|()| sys.run_ready(&mut ready));
                if let Err(e) = r {
                    Self::root_failed(&mut sys, &io, e)?;
                    continue;
                }
                if let Some(e) = shared.take_failure() {
                    return Err(e);
                }
                if !flush(&mut sys, &mut output, batch).await {
                    sys.stop_all()?;
                    return Ok(());
                }
                if !sys.is_alive(ActorId::ROOT) {
                    // The root stopped itself: the stage completes.
                    sys.apply_ops()?;
                    flush(&mut sys, &mut output, 0).await;
                    return Ok(());
                }
                if input_done && !sys.has_work() {
                    let done = match kind {
                        Kind::Flow | Kind::Sink => true,
                        Kind::Source => {
                            sys.root_outside_refs() == 0
                                && !sys.has_timers()
                                && sys.with_root::<A, _>(|c, _| c.mailbox_is_empty()) == Some(true)
                        }
                    };
                    if done {
                        sys.stop_all()?;
                        flush(&mut sys, &mut output, 0).await;
                        return Ok(());
                    }
                }
                let root_accepts = !input_done && sys.root_accepts::<A>() && sys.out.len() < batch;
                let next_timer = sys.timers.next_at();
                let wake = poll_fn(|cx| {
                    if let Some(out) = output.as_mut()
                        && out.poll_closed(cx).is_ready()
                    {
                        return Poll::Ready(Wake::Closed);
                    }
                    if shared.poll_ready(cx.waker()) {
                        shared.take_ref_dropped();
                        return Poll::Ready(Wake::Work);
                    }
                    if root_accepts
                        && let Some(inp) = input.as_mut()
                        && let Poll::Ready(ev) = inp.poll_recv(cx)
                    {
                        return Poll::Ready(Wake::Input(ev));
                    }
                    if let Some(at) = next_timer {
                        if sleep.as_ref().is_none_or(|(s, _)| *s != at) {
                            sleep = Some((at, clock.sleep_until(at)));
                        }
                        if let Some((_, f)) = sleep.as_mut()
                            && f.poll_unpin(cx).is_ready()
                        {
                            sleep = None;
                            return Poll::Ready(Wake::Timer);
                        }
                    }
                    Poll::Pending
                })
                .await;
                match wake {
                    Wake::Work | Wake::Timer => {}
                    Wake::Closed => {
                        sys.stop_all()?;
                        return Ok(());
                    }
                    Wake::Input(Event::Batch(b)) => {
                        let r = sys
                            .with_root::<A, _>(|c, sys| c.handle_batch(sys, b))
                            .unwrap_or(Ok(()));
                        if let Err(e) = r {
                            Self::root_failed(&mut sys, &io, e)?;
                        }
                    }
                    Wake::Input(Event::End) => input_done = true,
                    Wake::Input(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

/// Sends what the actors emitted; `false` once downstream is gone. The next output buffer is
/// allocated at once for as many elements as this one held (at most `batch`), so a stage that
/// emits per message does not grow it from empty for every batch.
async fn flush<O: Send + 'static>(
    sys: &mut System<O>,
    output: &mut Option<weir_graph::Output<O>>,
    batch: usize,
) -> bool {
    if sys.out.is_empty() {
        return true;
    }
    let next = Vec::with_capacity(sys.out.len().min(batch));
    let rows = std::mem::replace(&mut sys.out, next);
    match output.as_mut() {
        Some(out) => out.send(rows).await.is_ok(),
        None => true,
    }
}
