//! `cargo run --release -p weir-examples --bin event_time_windows -- [EVENTS] [PARALLELISM]`:
//! W3-shaped events through 1 s tumbling event-time windows; prints windows, late elements,
//! the checksum and events/s as one JSON line.
use std::time::Instant;

fn main() -> Result<(), weir_examples::ExampleError> {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .and_then(|a| a.parse::<f64>().ok())
        .map_or(10_000_000, |x| x as u64);
    let par = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let expected: u64 = weir_examples::event_time_windows::events(n)
        .map(|e| u64::from(e.1))
        .sum();
    let rt = weir::engine::Runtime::new()?;
    let start = Instant::now();
    let events = weir_examples::event_time_windows::events(n);
    let (windows, late) = rt.block_on(weir_examples::event_time_windows::run(events, par))?;
    let secs = start.elapsed().as_secs_f64();
    let sum: u64 = windows.iter().map(|w| w.2).sum();
    println!(
        "{{\"events\":{n},\"parallelism\":{par},\"windows\":{},\"late\":{late},\"checksum_ok\":{},\"seconds\":{secs:.3},\"events_per_s\":{:.3e}}}",
        windows.len(),
        sum == expected,
        n as f64 / secs
    );
    Ok(())
}
