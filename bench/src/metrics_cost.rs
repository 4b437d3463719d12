//! `weir-bench metrics-cost`: what operating metrics cost. W1 (map/filter/sum over a range,
//! fused and through a boundary) and W2 (word count) run with metrics off and on, interleaved
//! (the order alternates each round). "On" is what a served job pays: a run observer keeping
//! every `RunView` (the plan is built for it) and `weir_ops::prom::render` of all of them
//! scraped every `--scrape-ms` on a thread of its own. One JSON line per run, then one per
//! case with the medians and `ratio` = on / off (goal: at most 1.05).
//!
//! `cargo run --release -p weir-bench -- metrics-cost --n 1e8 --words 2e6 --rounds 5`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::engine::observe::{self, RunObserver, RunView};
use weir::prelude::*;

/// Command line of `weir-bench metrics-cost`.
#[derive(clap::Args)]
#[command(about = "W1 and W2 with metrics (observer and scraping) on vs off, interleaved")]
pub struct Args {
    /// Elements of W1; accepts `1e8`.
    #[arg(long, default_value_t = 100_000_000, value_parser = crate::parse_count)]
    n: u64,
    /// Words of W2; accepts `2e6`.
    #[arg(long, default_value_t = 2_000_000, value_parser = crate::parse_count)]
    words: u64,
    /// Off/on pairs per case.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Time between two scrapes while metrics are on.
    #[arg(long, default_value_t = 100)]
    scrape_ms: u64,
}

/// Keeps every run the process starts, as the job registry does.
#[derive(Default)]
struct Views(Mutex<Vec<RunView>>);

impl RunObserver for Views {
    fn run_started(&self, run: RunView) {
        if let Ok(mut v) = self.0.lock() {
            v.push(run);
        }
    }
}

/// Metrics on: the observer is registered and a thread scrapes until dropped.
struct On {
    observer: Arc<dyn RunObserver>,
    stop: Arc<AtomicBool>,
    scraper: Option<std::thread::JoinHandle<()>>,
    scrapes: Arc<AtomicU64>,
}

impl On {
    fn start(every: Duration) -> Self {
        let views = Arc::new(Views::default());
        let observer: Arc<dyn RunObserver> = views.clone();
        observe::add_observer(Arc::clone(&observer));
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let (s, n) = (Arc::clone(&stop), Arc::clone(&scrapes));
        let scraper = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                std::thread::sleep(every);
                let list = views.0.lock().map(|v| v.clone()).unwrap_or_default();
                black_box(weir_ops::prom::render(&list).len());
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self {
            observer,
            stop,
            scraper: Some(scraper),
            scrapes,
        }
    }
}

impl Drop for On {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.scraper.take() {
            let _ = t.join();
        }
        observe::remove_observer(&self.observer);
    }
}

/// The cases: name, elements, and one timed run returning its checksum.
type Case<'a> = (&'static str, u64, Box<dyn Fn() -> (f64, String) + 'a>);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the comparison; the process's exit code.
pub fn main(args: Args) -> i32 {
    if args.rounds == 0 || args.scrape_ms == 0 {
        eprintln!("metrics-cost: --rounds and --scrape-ms must be above 0");
        return 2;
    }
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return 1;
        }
    };
    let n = args.n;
    let lines = (args.words / 10) as usize;
    let corpus: &'static [String] =
        Box::leak(weir::demo::zipf_corpus(lines, 10, 10_000, 42).into_boxed_slice());
    let w1 = |boundary: bool| {
        let rt = &rt;
        move || {
            let doubled = Source::range(0u64, n).map(|x| x * 2);
            let doubled = if boundary {
                doubled.async_boundary()
            } else {
                doubled
            };
            let g = doubled
                .filter(|x| x % 3 == 0)
                .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
            let (secs, got) = crate::run_timed(rt, &Materializer::new(), &g);
            (
                secs,
                got.map_or_else(|e| format!("error: {e}"), |s| s.to_string()),
            )
        }
    };
    let w2 = || {
        let g = Source::range(0usize, corpus.len())
            .flat_map(move |i: usize| corpus[i].split(' '))
            .key_by(|w: &&'static str| *w)
            .count()
            .to_mat(Sink::collect(), Keep::right);
        let (secs, got) = crate::run_timed(&rt, &Materializer::new(), &g);
        (
            secs,
            got.map_or_else(|e| format!("error: {e}"), crate::checksum),
        )
    };
    let cases: Vec<Case<'_>> = vec![
        ("w1_fused", n, Box::new(w1(false))),
        ("w1_boundary", n, Box::new(w1(true))),
        ("w2", (lines * 10) as u64, Box::new(w2)),
    ];
    let every = Duration::from_millis(args.scrape_ms);
    let mut failed = false;
    for (name, elements, run) in &cases {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let mut sums = Vec::new();
        for round in 0..args.rounds {
            for metrics in [round % 2 == 1, round % 2 == 0] {
                let guard = metrics.then(|| On::start(every));
                let (secs, sum) = run();
                let scrapes = guard
                    .as_ref()
                    .map_or(0, |g| g.scrapes.load(Ordering::Relaxed));
                drop(guard);
                let variant = if metrics { "on" } else { "off" };
                println!(
                    "{{\"workload\":\"metrics_cost\",\"case\":\"{name}\",\"variant\":\"{variant}\",\"round\":{round},\"n\":{elements},\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"scrapes\":{scrapes},\"checksum\":\"{sum}\"}}",
                    *elements as f64 / secs
                );
                if metrics {
                    on.push(secs)
                } else {
                    off.push(secs)
                }
                sums.push(sum);
            }
        }
        if sums.windows(2).any(|w| w[0] != w[1]) {
            eprintln!("metrics-cost {name}: checksums differ: {sums:?}");
            failed = true;
        }
        let (off, on) = (median(&mut off), median(&mut on));
        println!(
            "{{\"workload\":\"metrics_cost\",\"case\":\"{name}\",\"variant\":\"summary\",\"rounds\":{},\"off_seconds_median\":{off:.6},\"on_seconds_median\":{on:.6},\"ratio\":{:.4}}}",
            args.rounds,
            on / off
        );
    }
    i32::from(failed)
}
