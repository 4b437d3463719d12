//! Exact emission times of the time operators on the virtual clock (Akka's documented timing).
//! The clock steps from timer to timer and the run settles at each, so every signal carries the
//! virtual time it reached the probe sink at; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ExactProbe, ExactSink, VirtualClock};
use weir_graph::{ErrorKind, Keep, Source, StageError};
use weir_operators::source::SourceCtors;
use weir_operators::time::{self, RateExceeded, ThrottleMode};

mod rig;

use rig::{Complete, N, Sig, ms, rig, timeline};

#[tokio::test]
async fn grouped_within_uses_timer_windows_restarted_by_every_emission() {
    let r = rig(time::grouped_within::<u32>(3, ms(1000)));
    r.sink.request(100);
    r.at(200).await;
    r.src.send(1);
    r.at(500).await;
    r.src.send(2);
    // The window opened at the start, not at the first element: [1, 2] closes at 1000.
    r.at(1500).await;
    assert_eq!(r.timeline(), vec![(1000, N(vec![1, 2]))]);
    // Full at 1500: emitted at once, and the timer restarts (next window ends at 2500).
    r.src.send_all(vec![3, 4, 5]);
    r.at(2400).await;
    assert_eq!(r.timeline(), vec![(1500, N(vec![3, 4, 5]))]);
    assert_eq!(
        r.clock.pending_timers(),
        0,
        "an empty group arms no timer: an idle stream does not wake up"
    );
    // 2500: the window is empty, nothing is emitted; the next one ends at 3500.
    r.at(3000).await;
    r.src.send(6);
    r.at(3499).await;
    assert_eq!(r.timeline(), vec![]);
    r.at(3600).await;
    assert_eq!(r.timeline(), vec![(3500, N(vec![6]))]);
    r.src.send(7);
    r.at(3700).await;
    r.src.complete();
    r.at(3700).await;
    assert_eq!(r.timeline(), vec![(3700, N(vec![7])), (3700, Complete)]);
    r.completes().await;
}

#[tokio::test]
async fn grouped_within_splits_a_large_batch_and_times_out_the_rest() {
    let r = rig(time::grouped_within::<u32>(3, ms(100)));
    r.sink.request(100);
    r.at(30).await;
    r.src.send_all((1..=7).collect());
    r.at(300).await;
    assert_eq!(
        r.timeline(),
        vec![
            (30, N(vec![1, 2, 3])),
            (30, N(vec![4, 5, 6])),
            (130, N(vec![7]))
        ]
    );
    r.src.complete();
    r.at(300).await;
    assert_eq!(r.timeline(), vec![(300, Complete)]);
    r.completes().await;
}

#[tokio::test]
async fn throttle_with_burst_zero_gives_every_element_its_own_period() {
    let r = rig(time::throttle::<u32>(1, ms(100), 0));
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 3, 4]);
    r.src.complete();
    r.at(1000).await;
    assert_eq!(
        r.timeline(),
        vec![
            (100, N(1)),
            (200, N(2)),
            (300, N(3)),
            (400, N(4)),
            (400, Complete)
        ]
    );
    r.completes().await;
}

#[tokio::test]
async fn throttle_bursts_from_a_full_bucket_and_refills_while_idle() {
    let r = rig(time::throttle::<u32>(1, ms(100), 2));
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 3, 4, 5]);
    r.at(1000).await;
    assert_eq!(
        r.timeline(),
        vec![(0, N(1)), (0, N(2)), (100, N(3)), (200, N(4)), (300, N(5))]
    );
    // Idle since 300: the bucket is full again (2 tokens, not 7).
    r.src.send_all(vec![6, 7, 8]);
    r.at(1050).await;
    r.src.send(9);
    r.src.complete();
    r.at(2000).await;
    assert_eq!(
        r.timeline(),
        vec![
            (1000, N(6)),
            (1000, N(7)),
            (1100, N(8)),
            (1200, N(9)),
            (1200, Complete)
        ]
    );
    r.completes().await;
}

#[tokio::test]
async fn throttle_tokens_arrive_on_their_grid_not_on_arrival() {
    // 2 per second: tokens at 500 ms multiples of the last registered arrival.
    let r = rig(time::throttle::<u32>(2, ms(1000), 1));
    r.sink.request(100);
    r.src.send(1);
    r.at(700).await;
    // The token of 500 is there; taking it at 700 keeps the grid: the next is at 1000.
    r.src.send_all(vec![2, 3]);
    r.src.complete();
    r.at(2000).await;
    assert_eq!(
        r.timeline(),
        vec![(0, N(1)), (700, N(2)), (1000, N(3)), (1000, Complete)]
    );
    r.completes().await;
}

#[tokio::test]
async fn throttle_enforcing_fails_on_the_first_element_without_a_token() {
    let r = rig(time::throttle_with_mode::<u32>(
        1,
        ms(100),
        1,
        ThrottleMode::Enforcing,
    ));
    r.sink.request(100);
    r.src.send(1);
    r.at(100).await;
    r.src.send(2);
    r.at(150).await;
    r.src.send_all(vec![3, 4]);
    r.at(200).await;
    let t = r.timeline();
    assert_eq!(t[..2], [(0, N(1)), (100, N(2))]);
    assert_eq!(t.len(), 3, "{t:?}");
    let (at, Sig::Failed(kind, msg)) = &t[2] else {
        panic!("expected a failure, got {t:?}")
    };
    assert_eq!((*at, *kind), (150, ErrorKind::User));
    assert!(msg.contains("maximum throughput exceeded"), "{msg}");
    let err = r.handle.wait().await.expect_err("fails");
    assert!(err.downcast_cause::<RateExceeded>().is_some(), "{err}");
}

#[tokio::test]
async fn throttle_enforcing_with_burst_zero_fails_at_once() {
    let r = rig(time::throttle_with_mode::<u32>(
        10,
        ms(1000),
        0,
        ThrottleMode::Enforcing,
    ));
    r.sink.request(1);
    r.src.send(1);
    r.at(10).await;
    let t = r.timeline();
    assert!(
        matches!(&t[..], [(0, Sig::Failed(ErrorKind::User, m))] if m.contains("exceeded")),
        "{t:?}"
    );
    r.fails(ErrorKind::User).await;
}

#[tokio::test]
async fn throttle_rejects_a_rate_above_one_per_nanosecond() {
    let r = rig(time::throttle::<u32>(10, Duration::from_nanos(5), 1));
    r.sink.request(1);
    r.at(1).await;
    let t = r.timeline();
    assert!(
        matches!(&t[..], [(0, Sig::Failed(ErrorKind::User, m))] if m.contains("not a rate")),
        "{t:?}"
    );
    r.fails(ErrorKind::User).await;
}

#[tokio::test]
async fn delay_shifts_each_element_by_exactly_its_delay() {
    let r = rig(time::delay::<u32>(ms(300)));
    r.sink.request(100);
    r.src.send(1);
    r.at(100).await;
    r.src.send_all(vec![2, 3]);
    r.at(150).await;
    r.src.complete();
    r.at(1000).await;
    assert_eq!(
        r.timeline(),
        vec![(300, N(1)), (400, N(2)), (400, N(3)), (400, Complete)]
    );
    r.completes().await;
}

#[tokio::test]
async fn idle_timeout_fails_exactly_timeout_after_the_last_element() {
    let r = rig(time::idle_timeout::<u32>(ms(500)));
    r.sink.request(100);
    r.at(200).await;
    r.src.send(1);
    r.at(600).await;
    r.src.send(2);
    r.at(1099).await;
    assert_eq!(r.timeline(), vec![(200, N(1)), (600, N(2))]);
    r.at(2000).await;
    let t = r.timeline();
    assert!(
        matches!(&t[..], [(1100, Sig::Failed(ErrorKind::Timeout, m))] if m.contains("idle_timeout")),
        "{t:?}"
    );
    r.fails(ErrorKind::Timeout).await;
}

#[tokio::test]
async fn completion_timeout_fails_at_its_deadline_after_the_elements_before() {
    let r = rig(time::completion_timeout::<u32>(ms(1000)));
    r.sink.request(100);
    r.at(100).await;
    r.src.send(1);
    r.at(900).await;
    r.src.send(2);
    r.at(1500).await;
    let t = r.timeline();
    assert_eq!(t[..2], [(100, N(1)), (900, N(2))]);
    assert!(
        matches!(&t[2..], [(1000, Sig::Failed(ErrorKind::Timeout, _))]),
        "{t:?}"
    );
    r.fails(ErrorKind::Timeout).await;
}

#[tokio::test]
async fn initial_timeout_guards_only_the_first_element() {
    let r = rig(time::initial_timeout::<u32>(ms(500)));
    r.sink.request(100);
    r.at(499).await;
    r.src.send(1);
    r.at(5000).await;
    r.src.complete();
    r.at(5000).await;
    assert_eq!(r.timeline(), vec![(499, N(1)), (5000, Complete)]);
    r.completes().await;

    let r = rig(time::initial_timeout::<u32>(ms(500)));
    r.sink.request(100);
    r.at(600).await;
    let t = r.timeline();
    assert!(
        matches!(&t[..], [(500, Sig::Failed(ErrorKind::Timeout, _))]),
        "{t:?}"
    );
    r.fails(ErrorKind::Timeout).await;
}

#[tokio::test]
async fn keep_alive_injects_after_every_quiet_period() {
    let r = rig(time::keep_alive::<u32, _>(ms(300), || 0));
    r.sink.request(100);
    r.at(100).await;
    r.src.send(1);
    r.at(800).await;
    r.src.send(2);
    r.at(1200).await;
    r.src.complete();
    r.at(1200).await;
    assert_eq!(
        r.timeline(),
        vec![
            (100, N(1)),
            (400, N(0)),
            (700, N(0)),
            (800, N(2)),
            (1100, N(0)),
            (1200, Complete)
        ]
    );
    r.completes().await;
}

#[tokio::test]
async fn initial_delay_holds_everything_until_the_delay_passed() {
    let r = rig(time::initial_delay::<u32>(ms(500)));
    r.sink.request(100);
    r.src.send(1);
    r.at(100).await;
    r.src.send(2);
    r.at(499).await;
    assert_eq!(r.timeline(), vec![]);
    r.at(600).await;
    r.src.send(3);
    r.src.complete();
    r.at(700).await;
    assert_eq!(
        r.timeline(),
        vec![(500, N(1)), (500, N(2)), (600, N(3)), (600, Complete)]
    );
    r.completes().await;

    // Upstream done before the delay with nothing held: completes at once.
    let r = rig(time::initial_delay::<u32>(ms(500)));
    r.sink.request(1);
    r.at(100).await;
    r.src.complete();
    r.at(100).await;
    assert_eq!(r.timeline(), vec![(100, Complete)]);
    r.completes().await;
}

/// `tick(0, 1ms)` into an exact probe sink with `rows` of channel capacity.
fn ticks(rows: usize) -> (ExactProbe<u8>, VirtualClock, RunHandle) {
    let clock = VirtualClock::new();
    let g = Source::<u8, ()>::tick(Duration::ZERO, ms(1), 7)
        .to_mat(ExactSink::probe::<u8>(), Keep::right);
    let m = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_buffer_rows(rows);
    let (sink, handle) = m.materialize(&g).expect("materializes");
    (sink, clock, handle)
}

#[tokio::test]
async fn tick_emits_on_its_grid_to_a_ready_consumer() {
    let (sink, clock, _h) = ticks(64);
    sink.request(1000);
    clock.run_for(ms(10)).await;
    let times: Vec<u64> = timeline(&sink).into_iter().map(|(t, _)| t).collect();
    assert_eq!(times, (0..=10).collect::<Vec<u64>>());
}

#[tokio::test]
async fn tick_keeps_the_rate_when_its_timer_wakes_late() {
    let (sink, clock, _h) = ticks(64);
    sink.request(1000);
    clock.settle().await;
    // One jump of 10 ms: the timer of 1 ms wakes 9 ms late; the waiting consumer still gets
    // the ticks of 1..=10 ms.
    clock.advance(ms(10));
    clock.settle().await;
    let t = timeline(&sink);
    assert_eq!(t.len(), 11, "{t:?}");
    assert_eq!(t[0].0, 0);
    assert!(
        t[1..].iter().all(|(at, s)| *at == 10 && *s == N(7)),
        "{t:?}"
    );
    clock.run_for(ms(2)).await;
    assert_eq!(timeline(&sink), vec![(11, N(7)), (12, N(7))]);
}

#[tokio::test]
async fn tick_drops_the_ticks_that_found_no_demand() {
    let (sink, clock, handle) = ticks(1);
    clock.run_for(ms(5)).await;
    assert_eq!(timeline(&sink), vec![]);
    // The sink's channel is demand-driven: the ticks of 0 to 4 found no demand and were
    // dropped; the tick of 5 goes out at once, then one per ms.
    sink.request(100);
    clock.run_for(ms(3)).await;
    let times: Vec<u64> = timeline(&sink).into_iter().map(|(t, _)| t).collect();
    assert_eq!(times, vec![5, 6, 7, 8]);
    sink.cancel();
    clock.settle().await;
    handle
        .wait()
        .await
        .expect("cancelled by the sink: the run completes");
}

/// The same exact timing on a multi-threaded runtime: idleness is tracked across workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_timing_holds_on_a_multi_threaded_runtime() {
    for _ in 0..20 {
        let r = rig(time::grouped_within::<u32>(2, ms(100)).via(time::delay(ms(50))));
        r.sink.request(100);
        r.src.send(1);
        r.at(30).await;
        r.src.send_all(vec![2, 3, 4]);
        r.at(500).await;
        assert_eq!(
            r.timeline(),
            vec![(80, N(vec![1, 2])), (80, N(vec![3, 4]))],
            "full groups at 30, delayed by 50"
        );
        r.src.send(5);
        r.at(1000).await;
        // The timer restarted at 30 and fires every 100 ms: [5] closes at 530, out at 580.
        assert_eq!(r.timeline(), vec![(580, N(vec![5]))]);
        let (sink, clock, _h) = ticks(64);
        sink.request(1000);
        clock.run_for(ms(20)).await;
        assert_eq!(timeline(&sink).len(), 21);
    }
}

#[tokio::test]
async fn grouped_within_keeps_filling_a_due_group_until_downstream_demands() {
    let r = rig(time::grouped_within::<u32>(3, ms(100)));
    r.at(10).await;
    r.src.send(1);
    // 100: the timer fires without demand; the group stays open and keeps taking elements.
    r.at(150).await;
    r.src.send(2);
    r.at(200).await;
    assert_eq!(r.timeline(), vec![]);
    r.sink.request(1);
    r.at(200).await;
    assert_eq!(r.timeline(), vec![(200, N(vec![1, 2]))]);
    // The timer restarted at 200. Due at 300 without demand, then full at 350: it waits for
    // demand and takes nothing more (6 stays upstream).
    r.at(250).await;
    r.src.send(3);
    r.at(350).await;
    r.src.send_all(vec![4, 5]);
    r.at(360).await;
    r.src.send(6);
    r.at(400).await;
    assert_eq!(r.timeline(), vec![]);
    r.sink.request(1);
    r.at(400).await;
    assert_eq!(r.timeline(), vec![(400, N(vec![3, 4, 5]))]);
    // [6] is the next group; its window ends at 500, and demand is there by then.
    r.sink.request(10);
    r.at(499).await;
    assert_eq!(r.timeline(), vec![]);
    r.at(500).await;
    assert_eq!(r.timeline(), vec![(500, N(vec![6]))]);
    // No empty groups: a timer firing on nothing emits nothing, with or without demand.
    r.at(900).await;
    assert_eq!(r.timeline(), vec![]);
    r.src.send(7);
    r.src.complete();
    r.at(900).await;
    assert_eq!(r.timeline(), vec![(900, N(vec![7])), (900, Complete)]);
    r.completes().await;
}

#[tokio::test]
async fn grouped_within_emits_a_due_group_on_demand_after_upstream_completed() {
    // A due group that found no demand is still open when upstream completes: emitted once
    // downstream asks, then the completion.
    let r = rig(time::grouped_within::<u32>(3, ms(100)));
    r.src.send(1);
    r.at(150).await;
    r.src.complete();
    r.at(200).await;
    assert_eq!(r.timeline(), vec![]);
    r.at(250).await;
    r.sink.request(1);
    r.at(250).await;
    assert_eq!(r.timeline(), vec![(250, N(vec![1])), (250, Complete)]);
    r.completes().await;
}

#[tokio::test]
async fn grouped_within_due_group_ends_with_a_cancelling_downstream() {
    let r = rig(time::grouped_within::<u32>(3, ms(100)));
    r.src.send(1);
    r.at(150).await;
    r.sink.cancel();
    r.at(200).await;
    assert!(r.src.is_cancelled());
    assert_eq!(r.timeline(), vec![]);
    r.completes().await;
}

#[tokio::test]
async fn initial_delay_emits_the_held_batch_before_an_upstream_failure() {
    let r = rig(time::initial_delay::<u32>(ms(500)));
    r.sink.request(100);
    r.src.send_all(vec![1, 2]);
    r.at(100).await;
    r.src.fail(StageError::user("boom"));
    r.at(499).await;
    assert_eq!(r.timeline(), vec![]);
    r.at(600).await;
    assert_eq!(
        r.timeline(),
        vec![
            (500, N(1)),
            (500, N(2)),
            (500, Sig::Failed(ErrorKind::User, "boom".to_string()))
        ]
    );
    r.fails(ErrorKind::User).await;

    // Nothing held: the failure passes at once.
    let r = rig(time::initial_delay::<u32>(ms(500)));
    r.sink.request(1);
    r.at(100).await;
    r.src.fail(StageError::user("boom"));
    r.at(100).await;
    assert_eq!(
        r.timeline(),
        vec![(100, Sig::Failed(ErrorKind::User, "boom".to_string()))]
    );
    r.fails(ErrorKind::User).await;
}

#[tokio::test]
async fn tick_demand_between_grid_points_gets_the_next_tick() {
    let (sink, clock, handle) = ticks(1);
    sink.request(2);
    clock.run_for(ms(5)).await;
    assert_eq!(timeline(&sink), vec![(0, N(7)), (1, N(7))]);
    // 2 to 5 found no demand; asked at 5.5 ms, the next tick is the one of 6 ms.
    clock.run_for(Duration::from_micros(500)).await;
    sink.request(2);
    clock.run_for(ms(3)).await;
    assert_eq!(timeline(&sink), vec![(6, N(7)), (7, N(7))]);
    sink.cancel();
    clock.settle().await;
    handle
        .wait()
        .await
        .expect("cancelled by the sink: the run completes");
}
