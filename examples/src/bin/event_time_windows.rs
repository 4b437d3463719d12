//! `cargo run --release -p weir-examples --bin event_time_windows [EVENTS]`: W3-shaped events
//! (key 0..999, value 1..100, 10 events per event-time ms, up to 99 ms late) through bounded
//! out-of-orderness 100 ms and 1 s tumbling event-time windows summing per key; prints the
//! windows, late elements, the checksum and events/s.
use std::time::{Duration, Instant};
use weir::operators::time::{Timestamped, WatermarkStrategy};
use weir::operators::window::{AggregateFunction, WindowOutput, Windows};
use weir::prelude::*;

#[derive(Clone)]
struct Sum;

impl AggregateFunction<(u32, u32)> for Sum {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, value: (u32, u32)) {
        *acc += u64::from(value.1);
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<f64>().ok())
        .map_or(10_000_000, |x| x as u64);
    let events = (0..n).map(|i| {
        let jitter = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as i64 % 100;
        let ts = (i / 10) as i64 - jitter;
        (
            (i.wrapping_mul(7919) % 1000) as u32,
            (i % 100 + 1) as u32,
            ts,
        )
    });
    let expected: u64 = (0..n).map(|i| i % 100 + 1).sum();
    let rt = weir::engine::Runtime::new()?;
    let start = Instant::now();
    let (windows, late, sum) = rt.block_on(async {
        let run = Source::from_iter(events)
            .assign_timestamps(
                |e| e.2,
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
            )
            .map(|t| Timestamped::new(t.ts, (t.value.0, t.value.1)))
            .window_by(|e| e.value.0, Windows::tumbling(Duration::from_secs(1)))
            .aggregate(Sum)
            .run_with(Sink::fold((0u64, 0u64, 0u64), |(w, l, s), o| match o {
                WindowOutput::Fired { value, .. } => (w + 1, l, s + value),
                WindowOutput::Late { .. } => (w, l + 1, s),
            }))?;
        Ok::<_, Box<dyn std::error::Error>>(run.await?)
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"events\":{n},\"windows\":{windows},\"late\":{late},\"checksum_ok\":{},\"seconds\":{secs:.3},\"events_per_s\":{:.3e}}}",
        sum == expected,
        n as f64 / secs
    );
    Ok(())
}
