//! `weir-bench regions`: shard regions in Rust. Variants (one JSON line each): `create` sends one
//! message to each of `--entities` new entities (entities made per second); `messages` sends
//! `--n` messages round robin over `--entities` entities (made on their first message, then
//! alive), messages per second; both report the peak RSS above the process's baseline per live
//! entity. `baseline_loop` does the `messages` work with a `HashMap` of counters by hand.
//!
//! `cargo run --release -p weir-bench -- regions --entities 1e5 --n 5e6`

use std::collections::HashMap;
use std::time::Instant;
use weir::operators::actor::{Actor, Ctx, Props, RegionSettings, sharded};
use weir::prelude::*;

/// Command line of `weir-bench regions`.
#[derive(clap::Args)]
#[command(about = "shard regions: entities made and messages per second")]
pub struct Args {
    /// Entities; accepts `1e5`.
    #[arg(long, default_value_t = 100_000, value_parser = crate::parse_count)]
    entities: u64,
    /// Messages of the `messages` variant; accepts `5e6`.
    #[arg(long, default_value_t = 5_000_000, value_parser = crate::parse_count)]
    n: u64,
}

/// Counts its messages; emits nothing until it stops (then its count).
struct Counter {
    n: u64,
}

impl Actor for Counter {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _m: u64) -> Result<(), StageError> {
        self.n += 1;
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(self.n);
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / 1e6)
}

/// Runs `n` messages over `entities` entities; seconds and the sum of the entities' counts.
fn region_run(rt: &weir::engine::Runtime, n: u64, entities: u64) -> Result<(f64, u64), String> {
    let e = entities.max(1);
    let g = Source::range(0, n)
        .map(move |i: u64| i % e)
        .via(sharded(
            |_: &u64| Props::new(|| Counter { n: 0 }),
            |m: &u64| *m,
            RegionSettings::default(),
        ))
        .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
    crate::reset_peak_rss();
    let t = Instant::now();
    let total = rt.block_on(async {
        let (done, h) = Materializer::new()
            .materialize(&g)
            .map_err(|e| e.to_string())?;
        let r = done.await.map_err(|e| e.to_string())?;
        h.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(r)
    })?;
    Ok((t.elapsed().as_secs_f64(), total))
}

fn line(variant: &str, n: u64, entities: u64, secs: f64, base_mb: f64, checksum: u64) {
    let per = (crate::peak_rss_mb() - base_mb).max(0.0) * 1e6 / entities.max(1) as f64;
    println!(
        "{{\"workload\":\"regions\",\"variant\":\"{variant}\",\"n\":{n},\"entities\":{entities},\"seconds\":{secs:.6},\"per_s\":{:.4e},\"peak_rss_mb\":{:.1},\"bytes_per_entity\":{per:.0},\"checksum\":{checksum}}}",
        n as f64 / secs,
        crate::peak_rss_mb()
    );
}

/// Runs the measurement; the process's exit code.
pub fn main(args: Args) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("regions: runtime: {e}");
            return 1;
        }
    };
    let base = rss_mb();
    let run = || -> Result<(), String> {
        let (secs, sum) = region_run(&rt, args.entities, args.entities)?;
        line("create", args.entities, args.entities, secs, base, sum);
        let (secs, sum) = region_run(&rt, args.n, args.entities)?;
        line("messages", args.n, args.entities, secs, base, sum);
        crate::reset_peak_rss();
        let t = Instant::now();
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for i in 0..args.n {
            *counts
                .entry(std::hint::black_box(i % args.entities.max(1)))
                .or_default() += 1;
        }
        let sum: u64 = counts.values().sum();
        line(
            "baseline_loop",
            args.n,
            args.entities,
            t.elapsed().as_secs_f64(),
            base,
            sum,
        );
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("regions: {e}");
            1
        }
    }
}
