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
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Directive, Event, Flow, Signal, Sink, Snapshot, Source,
    StageError, StageInfo,
};

/// Loop rounds without waiting after which the stage yields to its executor once.
const YIELD_EVERY: usize = 64;

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
    /// The actors a restored checkpoint saved.
    restored: super::checkpoint::Restored,
    /// Closes the root's mailbox when the stage goes away, also if it never ran.
    _close: CloseOnDrop<A::Msg>,
}

/// Weak, so it never counts as a ref held outside the stage.
struct CloseOnDrop<M: Send + 'static>(std::sync::Weak<Mailbox<M>>);

impl<M: Send + 'static> Drop for CloseOnDrop<M> {
    fn drop(&mut self) {
        if let Some(m) = self.0.upgrade() {
            m.close();
            m.stage.scheduled.stop();
        }
    }
}

/// What woke the waiting stage.
enum Wake<T> {
    Work,
    Input(Event<T>),
    Control(Control),
    Timer,
    Closed,
}

fn make<A: Actor>(
    props: &Props<A>,
    kind: Kind,
    info: &StageInfo,
) -> Result<(ActorStage<A>, ActorRef<A::Msg>), StageError> {
    if kind == Kind::Source {
        super::checkpoint::refuse_source(props, &info.path)?;
    }
    let shared = Arc::new(StageShared::default());
    if let Some(bytes) = props.mailbox_budget {
        shared.set_budget(bytes);
    }
    shared.record_dead_letters(&info.path, info.services.get::<super::DeadLetterService>());
    let mailbox = System::<A::Out>::root_mailbox(&info.path, props, &shared)?;
    let r = ActorRef::new(Arc::clone(&mailbox));
    let registry = info.services.get::<super::registry::ActorRegistry>();
    super::registry::register_new(registry.as_deref(), props, &r)?;
    Ok((
        ActorStage {
            props: props.clone(),
            _close: CloseOnDrop(Arc::downgrade(&mailbox)),
            mailbox,
            shared,
            kind,
            restored: Default::default(),
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
///   stop (`resume` keeps the actor, `restart` makes a fresh one from its props), or the run
///   checkpoints and an actor is not [`Props::checkpointed`]
///
/// A checkpoint barrier is acknowledged with every actor's state once every message before it
/// was handled, and forwarded after the rows they emitted; messages told to the ref since the
/// last checkpoint are not replayed on restore.
pub fn actor_flow<A: Actor>(props: Props<A>) -> Flow<A::Msg, A::Out, ActorRef<A::Msg>> {
    Flow::from_async("actor", move |info| make(&props, Kind::Flow, info))
}

/// A sink whose elements are messages to the actor `props` makes (what it emits is dropped).
/// Materializes the actor's ref.
///
/// - **backpressures when** the actor has not handled the previous batch
/// - **completes when** upstream completes and every queued message was handled, or the root
///   actor stops itself (upstream is then cancelled)
/// - **fails when** upstream fails, or the root actor fails under the `stop` supervision, or
///   the run checkpoints and an actor is not [`Props::checkpointed`] (then a barrier is
///   acknowledged with every actor's state once every message before it was handled)
pub fn actor_sink<A: Actor>(props: Props<A>) -> Sink<A::Msg, ActorRef<A::Msg>> {
    Sink::from_async("actor-sink", move |info| make(&props, Kind::Sink, info))
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
///   under `Overflow::Fail`; materializing fails for [`Props::checkpointed`] props (what is
///   told to a ref is not replayable, so its state is not checkpointed)
pub fn actor_source<A: Actor>(props: Props<A>) -> Source<A::Out, ActorRef<A::Msg>> {
    Source::from_async("actor-source", move |info| make(&props, Kind::Source, info))
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
    /// A flow or sink reads barriers itself: it acknowledges each one after every message
    /// before it was handled (a source's barriers are forwarded by the engine, stateless).
    fn handles_control(&self) -> bool {
        self.kind != Kind::Source
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let root = Arc::clone(self.mailbox.path());
        self.restored = super::checkpoint::Restored::decode(snapshot, &self.props, &root)?;
        Ok(())
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let Self {
                props,
                mailbox,
                shared,
                kind,
                restored,
                _close,
            } = *self;
            if kind != Kind::Source {
                super::checkpoint::check_start(&props, &io, mailbox.path())?;
            }
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
            sys.restored = restored;
            sys.registry = io.info.services.get::<super::registry::ActorRegistry>();
            sys.gauges = io.info.services.get::<weir_graph::StageGauges>();
            sys.subtask = io.info.subtask;
            if let Some(g) = &sys.gauges {
                shared.pressure.publish(g, &io.info.path, io.info.subtask);
            }
            sys.start_root(props, mailbox)?;
            let batch = io.batch_size.max(1);
            sys.out_limit = batch;
            let mut ready = Vec::new();
            let mut input_done = input.is_none();
            let mut sleep: Option<(Duration, BoxFuture<'static, ()>)> = None;
            let mut busy = 0usize;
            loop {
                shared.scheduled.fire(clock.now());
                let r = sys.fire_timers().and_then(|()| sys.run_ready(&mut ready));
                if let Err(e) = r {
                    Self::root_failed(&mut sys, &io, e)?;
                    continue;
                }
                if let Some(e) = shared.take_failure() {
                    // What the actors emitted before the failure goes out first.
                    flush(&mut sys, &mut output, 0).await;
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
                                && !shared.scheduled.is_pending()
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
                // Actors left with work when `run_ready` stopped for the output.
                let has_runnable = !sys.runnable.is_empty();
                let next_timer = match (sys.timers.next_at(), shared.scheduled.next_at(clock.now()))
                {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                // Yield to the executor now and then while work keeps arriving without a wait.
                busy += 1;
                let mut yield_now = busy >= YIELD_EVERY;
                let wake = poll_fn(|cx| {
                    if yield_now {
                        yield_now = false;
                        busy = 0;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if let Some(out) = output.as_mut()
                        && out.poll_closed(cx).is_ready()
                    {
                        return Poll::Ready(Wake::Closed);
                    }
                    if has_runnable {
                        return Poll::Ready(Wake::Work);
                    }
                    if shared.poll_ready(cx.waker()) {
                        shared.take_ref_dropped();
                        return Poll::Ready(Wake::Work);
                    }
                    if root_accepts
                        && let Some(inp) = input.as_mut()
                        && let Poll::Ready(sig) = inp.poll_signal(cx)
                    {
                        return Poll::Ready(match sig {
                            Signal::Event(ev) => Wake::Input(ev),
                            Signal::Control(c) => Wake::Control(c),
                        });
                    }
                    if let Some(at) = next_timer {
                        // Due already (a restart at once after a failed pre_start): no sleep.
                        if at <= clock.now() {
                            sleep = None;
                            return Poll::Ready(Wake::Timer);
                        }
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
                    busy = 0;
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
                    Wake::Control(c) => {
                        // Every message before the control is handled and its rows sent first,
                        // the work of parked actors included.
                        loop {
                            while let Err(e) = sys.run_ready(&mut ready) {
                                Self::root_failed(&mut sys, &io, e)?;
                            }
                            if let Some(e) = shared.take_failure() {
                                return Err(e);
                            }
                            if !flush(&mut sys, &mut output, batch).await {
                                sys.stop_all()?;
                                return Ok(());
                            }
                            if sys.parked == 0 {
                                break;
                            }
                            poll_fn(|cx| {
                                if !sys.runnable.is_empty() || shared.poll_ready(cx.waker()) {
                                    Poll::Ready(())
                                } else {
                                    Poll::Pending
                                }
                            })
                            .await;
                        }
                        super::checkpoint::on_control(&sys, &io, output.as_mut(), c)?;
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
