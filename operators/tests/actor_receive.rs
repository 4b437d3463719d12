//! Selective receive (`Ctx::receive`): the matching message goes to the receive, the others
//! wait in arrival order and are handled next (against a model at random inputs), timeouts on
//! the virtual clock, senders kept, nested receives, the set-aside bound, restarts.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{Keep, Supervision};
use weir_operators::actor::{Actor, Ctx, Props};
use weir_operators::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// Emits what it handles; on 0 it waits for the next negative number (a second receive
/// follows a received -3), with `timeout` when given.
struct Waiter {
    timeout: Option<Duration>,
}

fn wait_for_negative(
    ctx: &mut Ctx<'_, Waiter>,
    timeout: Option<Duration>,
) -> Result<(), StageError> {
    ctx.receive(
        |m: &i64| *m < 0,
        timeout,
        move |_, ctx, m| {
            match m {
                Some(m) => {
                    ctx.emit(format!("received {m}"));
                    if m == -3 {
                        wait_for_negative(ctx, timeout)?;
                    }
                }
                None => ctx.emit("timed out".to_owned()),
            }
            Ok(())
        },
    )
}

impl Actor for Waiter {
    type Msg = i64;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        ctx.emit(format!("handle {x}"));
        if x == 0 {
            wait_for_negative(ctx, self.timeout)?;
        }
        Ok(())
    }
}

/// What `Waiter` emits for `xs` (no timeout): what is set aside when the input ends is not
/// handled.
fn model(xs: &[i64]) -> Vec<String> {
    let mut queue: std::collections::VecDeque<i64> = xs.iter().copied().collect();
    let (mut waiting, mut aside, mut out) = (false, Vec::new(), Vec::new());
    while let Some(x) = queue.pop_front() {
        if waiting {
            if x < 0 {
                out.push(format!("received {x}"));
                waiting = x == -3;
                if !waiting {
                    for a in aside.drain(..).rev() {
                        queue.push_front(a);
                    }
                }
            } else {
                aside.push(x);
            }
        } else {
            out.push(format!("handle {x}"));
            waiting = x == 0;
        }
    }
    out
}

async fn through_flow(xs: Vec<i64>, batch: usize) -> Vec<String> {
    let m = Materializer::new().with_batch_size(batch);
    let run = Source::from_iter(xs)
        .via(Flow::actor(Props::new(|| Waiter { timeout: None })))
        .run_with_on(Sink::collect(), &m)
        .expect("materializes");
    timed(run).await.expect("runs")
}

#[tokio::test]
async fn the_matching_message_goes_to_the_receive_and_the_others_follow_in_order() {
    let xs = vec![1, 0, 2, 3, -1, 4, 0, 5, -3, 6, -2, 7];
    let want: Vec<String> = [
        "handle 1",
        "handle 0",
        "received -1",
        "handle 2",
        "handle 3",
        "handle 4",
        "handle 0",
        "received -3",
        "received -2",
        "handle 5",
        "handle 6",
        "handle 7",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(model(&xs), want);
    for batch in [1, 3, 64] {
        assert_eq!(through_flow(xs.clone(), batch).await, want, "batch {batch}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn selective_receive_matches_the_model(
        xs in proptest::collection::vec(-3i64..6, 0..60),
        batch in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(through_flow(xs.clone(), batch));
        prop_assert_eq!(got, model(&xs));
    }
}

#[tokio::test]
async fn a_receive_times_out_on_the_run_clock_and_the_set_aside_messages_follow() {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let g = Source::actor(Props::new(|| Waiter {
        timeout: Some(ms(500)),
    }))
    .to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = m.materialize(&g).expect("materializes");
    r.tell(0).await.expect("told");
    r.tell(2).await.expect("told");
    clock.run_for(ms(400)).await;
    r.tell(3).await.expect("told");
    clock.run_for(ms(200)).await;
    // Timed out at 500 ms: 2 and 3 were handled after it; then a receive that matches.
    r.tell(0).await.expect("told");
    r.tell(-5).await.expect("told");
    clock.run_for(ms(10)).await;
    drop(r);
    clock.run_for(ms(1_000)).await;
    let out = timed(done).await.expect("completes");
    timed(h.wait()).await.expect("ends");
    let want: Vec<String> = [
        "handle 0",
        "timed out",
        "handle 2",
        "handle 3",
        "handle 0",
        "received -5",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(out, want);
}

/// Answers `x` with `x * 10`, except while it waits (after 0) for a negative number: the asks
/// set aside meanwhile keep their senders and are answered after it.
struct Replier;

impl Actor for Replier {
    type Msg = i64;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x == 0 {
            return ctx.receive(
                |m: &i64| *m < 0,
                None,
                |_, ctx, m| {
                    ctx.reply(m.unwrap_or(0));
                    Ok(())
                },
            );
        }
        ctx.reply(x * 10);
        Ok(())
    }
}

#[tokio::test]
async fn asks_set_aside_by_a_receive_are_answered_after_it() {
    let m = Materializer::new();
    let g = Source::actor(Props::new(|| Replier)).to_mat(Sink::ignore(), Keep::left);
    let (r, _h) = m.materialize(&g).expect("materializes");
    r.tell(0).await.expect("told");
    let (a, b) = (r.clone(), r.clone());
    let first = tokio::spawn(async move { a.ask::<i64>(4, Duration::from_secs(5)).await });
    let second = tokio::spawn(async move { b.ask::<i64>(-7, Duration::from_secs(5)).await });
    let second = timed(second).await.expect("joins").expect("answered");
    let first = timed(first).await.expect("joins").expect("answered");
    assert_eq!((first, second), (40, -7));
}

/// Waits (after 0) for a negative number with a set-aside bound of 2; fails on 99.
struct Bounded;

impl Actor for Bounded {
    type Msg = i64;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x == 99 {
            return Err(StageError::user("ninety-nine"));
        }
        ctx.emit(format!("handle {x}"));
        if x == 0 {
            ctx.receive(
                |m: &i64| *m < 0,
                None,
                |_, ctx, m| {
                    ctx.emit(format!("received {}", m.unwrap_or(0)));
                    Ok(())
                },
            )?;
            assert!(ctx.is_receiving());
            let again = ctx.receive(|_| true, None, |_, _, _| Ok(()));
            assert_eq!(
                again.map_err(|e| e.message().to_owned()),
                Err(format!(
                    "actor '{}': a receive is already waiting",
                    ctx.path()
                ))
            );
        }
        Ok(())
    }
}

#[tokio::test]
async fn setting_aside_more_than_the_stash_capacity_fails_the_actor_naming_it() {
    let run = Source::from_iter(vec![0, 1, 2, 3, -1])
        .via(Flow::actor(
            Props::new(|| Bounded)
                .with_name("bounded")
                .with_stash_capacity(2),
        ))
        .run_with(Sink::collect())
        .expect("materializes");
    let err = timed(run).await.expect_err("fails");
    assert_eq!(
        err.to_string(),
        "stage 'actor#1/bounded' failed: actor 'actor#1/bounded': a receive set aside more than its stash capacity (2 messages)"
    );
}

#[tokio::test]
async fn a_restart_ends_the_receive_and_hands_the_set_aside_messages_to_the_new_instance() {
    let run = Source::from_iter(vec![0, 1, 2, 99, -1, 3])
        .via(
            Flow::actor(Props::new(|| Bounded).with_name("bounded"))
                .with_supervision(Supervision::restart()),
        )
        .run_with(Sink::collect())
        .expect("materializes");
    let out = timed(run).await.expect("runs");
    // 1, 2 and 99 are set aside until -1 completes the receive; 1 and 2 are handled next,
    // 99 fails the actor (supervised: restarted) and the new instance handles 3.
    let want: Vec<String> = [
        "handle 0",
        "received -1",
        "handle 1",
        "handle 2",
        "handle 3",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(out, want);
}
