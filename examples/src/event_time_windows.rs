//! Event-time windows: W3-shaped events (`key,value,ts_ms`) through bounded out-of-orderness
//! and 1 s tumbling windows summing each key's values.

use crate::ExampleError;
use std::time::Duration;
use weir::operators::time::{Timestamped, WatermarkStrategy};
use weir::operators::window::{AggregateFunction, WindowOutput, Windows};
use weir::prelude::*;

/// `n` events `(key 0..999, value 1..100, ts_ms)`: 10 per event-time ms, up to 99 ms late.
pub fn events(n: u64) -> impl Iterator<Item = (u32, u32, i64)> + Clone + Send + Sync + 'static {
    (0..n).map(|i| {
        let jitter = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as i64 % 100;
        let ts = (i / 10) as i64 - jitter;
        (
            (i.wrapping_mul(7919) % 1000) as u32,
            (i % 100 + 1) as u32,
            ts,
        )
    })
}

/// Sums the values of a window.
#[derive(Clone)]
struct Sum;

impl AggregateFunction<(u32, u32, i64)> for Sum {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, value: (u32, u32, i64)) {
        *acc += u64::from(value.1);
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// What a run produced: `(key, window_start_ms, sum)` in firing order, and the late elements.
pub type Windowed = (Vec<(u32, i64, u64)>, u64);

/// Runs `events` through 100 ms bounded out-of-orderness and 1 s tumbling windows summing per
/// key, with the windows at `parallelism`.
pub async fn run<I>(events: I, parallelism: usize) -> Result<Windowed, ExampleError>
where
    I: IntoIterator<Item = (u32, u32, i64)> + Clone + Send + Sync + 'static,
    I::IntoIter: Send + 'static,
{
    let out = Source::from_iter(events)
        .assign_timestamps(
            |e| e.2,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        )
        .window_by(
            |e: &Timestamped<_>| e.value.0,
            Windows::tumbling(Duration::from_secs(1)),
        )
        .aggregate(Sum)
        .parallelism(parallelism)
        .run_with(Sink::fold((Vec::new(), 0u64), |(mut v, late), o| match o {
            WindowOutput::Fired { key, window, value } => {
                v.push((key, window.start, value));
                (v, late)
            }
            WindowOutput::Late { .. } => (v, late + 1),
        }))?
        .await?;
    Ok(out)
}
