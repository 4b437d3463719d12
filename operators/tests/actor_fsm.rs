//! Finite-state-machine actors on the virtual clock: exact transitions, hooks and
//! subscribers, default and explicit state timeouts (cancelled by events), stop, unhandled
//! events to dead letters, and a restart going back to the initial state.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{DeadLetterSink, Keep, SinkFuture, Supervision};
use weir_operators::actor::{
    Actor, ActorRef, Ctx, Fsm, FsmEvent, FsmMsg, Props, StateChange, goto, stay,
};
use weir_operators::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

fn at<A: Actor>(ctx: &Ctx<'_, A>) -> u128 {
    ctx.now().as_millis()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Locked,
    Unlocked,
}

#[derive(Debug)]
enum Ev {
    Coin,
    Push,
}

/// A turnstile that locks itself again after 1 s unlocked; its data counts coins.
type Turnstile = Fsm<Gate, u32, Ev, String>;

fn turnstile() -> Turnstile {
    Fsm::new(Gate::Locked, 0u32)
        .when(Gate::Locked, |coins, ctx, ev| {
            Ok(match ev {
                FsmEvent::Msg(Ev::Coin) => {
                    *coins += 1;
                    goto(Gate::Unlocked)
                }
                FsmEvent::Msg(Ev::Push) => {
                    ctx.emit(format!("push refused @{}", at(ctx)));
                    stay()
                }
                FsmEvent::StateTimeout => stay(),
            })
        })
        .when(Gate::Unlocked, |coins, ctx, ev| {
            Ok(match ev {
                FsmEvent::Msg(Ev::Coin) => {
                    *coins += 1;
                    ctx.emit(format!("thanks @{}", at(ctx)));
                    stay()
                }
                FsmEvent::Msg(Ev::Push) => goto(Gate::Locked),
                FsmEvent::StateTimeout => {
                    ctx.emit(format!("auto-lock @{}", at(ctx)));
                    goto(Gate::Locked)
                }
            })
        })
        .state_timeout(Gate::Unlocked, Duration::from_secs(1))
        .on_transition(|coins, ctx, from, to| {
            ctx.emit(format!("{from:?} -> {to:?} @{} ({coins} coins)", at(ctx)));
        })
}

/// Emits every state change it is told of.
struct Subscriber;

impl Actor for Subscriber {
    type Msg = StateChange<Gate>;
    type Out = StateChange<Gate>;
    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        msg: StateChange<Gate>,
    ) -> Result<(), StageError> {
        ctx.emit(msg);
        Ok(())
    }
}

fn source_on<A: Actor>(
    props: Props<A>,
    m: &Materializer,
) -> (ActorRef<A::Msg>, SinkFuture<Vec<A::Out>>, RunHandle) {
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = m.materialize(&g).expect("materializes");
    (r, done, h)
}

#[tokio::test]
async fn turnstile_transitions_hooks_subscribers_and_state_timeouts_are_exact() {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let (fsm, done, _h) = source_on(Props::new(turnstile).with_name("turnstile"), &m);
    let (sub, sub_done, _hs) = source_on(Props::new(|| Subscriber), &m);
    let ev = |e| FsmMsg::Event(e);
    fsm.tell(FsmMsg::Subscribe(sub.clone()))
        .await
        .expect("told");
    drop(sub);
    fsm.tell(ev(Ev::Coin)).await.expect("told");
    clock.run_for(ms(100)).await;
    fsm.tell(ev(Ev::Push)).await.expect("told");
    fsm.tell(ev(Ev::Push)).await.expect("told");
    clock.run_for(ms(100)).await;
    fsm.tell(ev(Ev::Coin)).await.expect("told");
    // Unlocked at 200 with nothing happening: locked again at 1200.
    clock.run_for(ms(1100)).await;
    fsm.tell(ev(Ev::Coin)).await.expect("told");
    clock.run_for(ms(500)).await;
    // A coin while unlocked stays, which arms the timeout again: 1800 + 1 s.
    fsm.tell(ev(Ev::Coin)).await.expect("told");
    clock.run_for(ms(999)).await;
    fsm.tell(ev(Ev::Push)).await.expect("told");
    clock.run_for(ms(2000)).await;
    drop(fsm);
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "Locked -> Unlocked @0 (1 coins)",
            "Unlocked -> Locked @100 (1 coins)",
            "push refused @100",
            "Locked -> Unlocked @200 (2 coins)",
            "auto-lock @1200",
            "Unlocked -> Locked @1200 (2 coins)",
            "Locked -> Unlocked @1300 (3 coins)",
            "thanks @1800",
            // Pushed at 2799, 1 ms before the timeout: the timeout never comes.
            "Unlocked -> Locked @2799 (4 coins)",
        ]
    );
    let t = |from, to| StateChange::Transition { from, to };
    use Gate::{Locked, Unlocked};
    assert_eq!(
        timed(sub_done).await.expect("completes"),
        vec![
            StateChange::Current(Locked),
            t(Locked, Unlocked),
            t(Unlocked, Locked),
            t(Locked, Unlocked),
            t(Unlocked, Locked),
            t(Locked, Unlocked),
            t(Unlocked, Locked),
        ]
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Idle,
    Busy,
    Done,
}

#[derive(Debug)]
enum Cmd {
    Start,
    Ping,
    Hurry,
    Finish,
}

/// Busy for at most 500 ms; `Hurry` shortens the wait to 100 ms; `Done` has no handler.
fn job(unhandled: bool) -> Fsm<Job, (), Cmd, String> {
    let f = Fsm::new(Job::Idle, ())
        .when(Job::Idle, |_, _ctx, ev| {
            Ok(match ev {
                FsmEvent::Msg(Cmd::Start) => goto(Job::Busy).for_max(ms(500)),
                _ => stay(),
            })
        })
        .when(Job::Busy, |_, ctx, ev| {
            Ok(match ev {
                FsmEvent::Msg(Cmd::Ping) => {
                    ctx.emit(format!("ping while busy @{}", at(ctx)));
                    stay()
                }
                FsmEvent::Msg(Cmd::Hurry) => stay().for_max(ms(100)),
                FsmEvent::StateTimeout => {
                    ctx.emit(format!("busy timed out @{}", at(ctx)));
                    goto(Job::Done)
                }
                FsmEvent::Msg(_) => stay(),
            })
        })
        .on_transition(|_, ctx, from, to| ctx.emit(format!("{from:?} -> {to:?} @{}", at(ctx))));
    if unhandled {
        f.when_unhandled(|_, ctx, ev| {
            Ok(match ev {
                FsmEvent::Msg(Cmd::Finish) => {
                    ctx.emit(format!("finish @{}", at(ctx)));
                    weir_operators::actor::Transition::Stop
                }
                other => {
                    ctx.emit(format!("unhandled {other:?}"));
                    stay()
                }
            })
        })
    } else {
        f
    }
}

#[tokio::test]
async fn explicit_timeouts_are_cancelled_by_events_and_unhandled_events_go_to_dead_letters() {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let (sink, letters) = DeadLetterSink::collector();
    let g = Source::actor(Props::new(|| job(false)).with_name("job"))
        .with_supervision(Supervision::stop().with_dead_letters(sink))
        .to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    let ev = |e| FsmMsg::Event(e);
    r.tell(ev(Cmd::Start)).await.expect("told");
    // A ping at 300 cancels the 500 ms timeout; `stay` in Busy arms none.
    clock.run_for(ms(300)).await;
    r.tell(ev(Cmd::Ping)).await.expect("told");
    clock.run_for(ms(2000)).await;
    // Hurry: 100 ms from 2300.
    r.tell(ev(Cmd::Hurry)).await.expect("told");
    clock.run_for(ms(150)).await;
    // Done has no handler: to dead letters.
    r.tell(ev(Cmd::Finish)).await.expect("told");
    clock.run_for(ms(1)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "Idle -> Busy @0",
            "ping while busy @300",
            "busy timed out @2400",
            "Busy -> Done @2400"
        ]
    );
    let letters = letters.lock().map(|v| {
        v.iter()
            .map(|d| d.error.message().to_owned())
            .collect::<Vec<_>>()
    });
    let path = "/job': no handler in state Done";
    let letters = letters.unwrap_or_default();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].ends_with(path), "{letters:?}");
}

#[tokio::test]
async fn when_unhandled_catches_states_without_a_handler_and_stop_completes_the_stage() {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let (r, done, _h) = source_on(Props::new(|| job(true)), &m);
    let ev = |e| FsmMsg::Event(e);
    r.tell(ev(Cmd::Start)).await.expect("told");
    clock.run_for(ms(600)).await;
    r.tell(ev(Cmd::Ping)).await.expect("told");
    r.tell(ev(Cmd::Finish)).await.expect("told");
    // Stopped by `Stop`: the stage completes while the test still holds the ref.
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "Idle -> Busy @0",
            "busy timed out @500",
            "Busy -> Done @500",
            "unhandled Msg(Ping)",
            "finish @600"
        ]
    );
    assert!(r.is_stopped());
}

/// A counter machine that fails on a negative number.
fn counter() -> Fsm<Job, i64, i64, String> {
    Fsm::new(Job::Idle, 0i64)
        .when(Job::Idle, |n, ctx, ev| match ev {
            FsmEvent::Msg(x) if x < 0 => Err(StageError::user("negative")),
            FsmEvent::Msg(x) => {
                *n += x;
                ctx.emit(format!("idle {n}"));
                Ok(goto(Job::Busy))
            }
            FsmEvent::StateTimeout => Ok(stay()),
        })
        .when(Job::Busy, |n, ctx, ev| match ev {
            FsmEvent::Msg(x) if x < 0 => Err(StageError::user("negative")),
            FsmEvent::Msg(x) => {
                *n += x;
                ctx.emit(format!("busy {n}"));
                Ok(stay())
            }
            FsmEvent::StateTimeout => Ok(stay()),
        })
}

#[tokio::test]
async fn a_restarted_machine_starts_over_in_its_initial_state_as_a_flow() {
    let m = Materializer::new().with_batch_size(1);
    let out = timed(
        Source::from_iter(vec![1i64, 2, -1, 3, 4])
            .map(FsmMsg::Event)
            .via(Flow::actor(Props::new(counter)).with_supervision(Supervision::restart()))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec!["idle 1", "busy 3", "idle 3", "busy 7"]);
}
