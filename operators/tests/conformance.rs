//! Every flow operator passes the engine's stage conformance suite: bounded buffering without
//! demand, exactly one terminal signal, completion / failure / cancellation propagation and stop
//! hooks that run exactly once.

use std::time::Duration;
use weir_engine::testkit::check_flow;
use weir_graph::{Flow, StageError};
use weir_operators::async_ops::{map_async, map_async_unordered};
use weir_operators::keyed::{count_by_key, fold_by_key};
use weir_operators::simple::*;
use weir_operators::source::OverflowStrategy;
use weir_operators::time::*;

macro_rules! conformance {
    ($($name:ident => ($make:expr, $bound:expr);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            check_flow(stringify!($name), || -> Flow<i64, _, ()> { $make }, $bound).await;
        }
    )*};
}

fn ok(x: &i64) -> Result<i64, StageError> {
    Ok(*x + 1)
}

conformance! {
    map_ => (map(|x: i64| x * 2), 0);
    filter_ => (filter(|x: &i64| x % 2 == 0), 0);
    filter_map_ => (filter_map(|x: i64| (x % 3 != 0).then_some(x)), 0);
    flat_map_ => (flat_map(|x: i64| vec![x, x]), 0);
    try_map_ => (try_map(ok), 0);
    scan_ => (scan(0i64, |a: &i64, x: i64| a + x), 0);
    // Aggregators consume without emitting until completion; they hold one accumulator (per key),
    // not the elements, so the number of elements they accept is not a buffer.
    fold_ => (fold(0i64, |a: i64, x: i64| a + x), u64::MAX / 4);
    reduce_ => (reduce(|a: i64, x: i64| a.max(x)), u64::MAX / 4);
    take_ => (take(7), 0);
    take_while_ => (take_while(|x: &i64| *x < 15), 0);
    drop_ => (drop(3), 0);
    drop_while_ => (drop_while(|x: &i64| *x < 3), 0);
    // Grouping stages emit one row per group, so the rows buffered downstream stand for several
    // inputs each: their bound scales with the group size.
    grouped_ => (grouped(5), 5 * 64);
    sliding_ => (sliding(4, 2), 2 * 64 + 4);
    intersperse_ => (intersperse(-1), 0);
    zip_with_index_ => (zip_with_index(), 0);
    inspect_ => (inspect(|_x: &i64| {}), 0);
    recover_ => (recover(|_e: &StageError| Some(-1)), 0);
    buffer_backpressure => (buffer(8, OverflowStrategy::Backpressure), 16);
    buffer_drop_head => (buffer(8, OverflowStrategy::DropHead), u64::MAX / 4);
    conflate_ => (conflate(|a: i64, x: i64| a + x), u64::MAX / 4);
    batch_ => (batch(10, |x: i64| vec![x], |mut v: Vec<i64>, x: i64| { v.push(x); v }), 10 * 64);
    expand_ => (expand(|x: i64| std::iter::once(x)), 0);
    delay_ => (delay_with_capacity(Duration::from_millis(1), 16), 16);
    grouped_within_ => (grouped_within(5, Duration::from_millis(5)), 5 * 64);
    throttle_ => (throttle(1_000_000, Duration::from_secs(1), 1000), 0);
    idle_timeout_ => (idle_timeout(Duration::from_secs(60)), 0);
    completion_timeout_ => (completion_timeout(Duration::from_secs(60)), 0);
    initial_timeout_ => (initial_timeout(Duration::from_secs(60)), 0);
    map_async_ => (map_async(4, |x: i64| async move { Ok::<_, StageError>(x + 1) }), 4);
    map_async_unordered_ => (map_async_unordered(4, |x: i64| async move { Ok::<_, StageError>(x + 1) }), 4);
    count_by_key_ => (count_by_key(|x: &i64| x % 5), u64::MAX / 4);
    fold_by_key_ => (fold_by_key(|x: &i64| x % 5, 0i64, |a: i64, x: i64| a + x), u64::MAX / 4);
}
