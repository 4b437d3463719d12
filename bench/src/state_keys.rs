//! `weir-bench state-keys`: high-cardinality keyed state. Counts occurrences per key through a
//! `StateService` `ValueState<u64, u64>` (a read-modify-write per element) on the in-memory or
//! the RocksDB backend, and prints one JSON line with the time, the rate, the peak RSS and the
//! state's size on disk.
//!
//! `cargo run --release -p weir-bench -- state-keys --keys 10000000 --backend rocksdb`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weir::engine::VirtualClock;
use weir::graph::StageId;
use weir::state::{InMemoryBackend, StateBackend, StateService};
use weir_state_rocksdb::{RocksDbBackend, RocksDbOptions};

/// Command line of `weir-bench state-keys`.
#[derive(clap::Parser)]
#[command(
    name = "weir-bench state-keys",
    about = "counting per key through keyed state"
)]
struct Args {
    /// Distinct keys; accepts `1e7`.
    #[arg(long, value_parser = crate::parse_count, default_value = "1000000")]
    keys: u64,
    /// Elements counted (default: twice the keys, so every key is read back once).
    #[arg(long, value_parser = crate::parse_count)]
    events: Option<u64>,
    /// The state backend.
    #[arg(long, value_enum, default_value_t = Backend::Rocksdb)]
    backend: Backend,
    /// The RocksDB directory (default: a fresh one under the temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The backends measured.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// `weir_state::InMemoryBackend`.
    Memory,
    /// `weir_state_rocksdb::RocksDbBackend` with its default memory budget.
    Rocksdb,
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the subcommand on `argv` (starting with `state-keys`); returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let args = <Args as clap::Parser>::parse_from(argv);
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("state-keys: {e}");
            1
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let keys = args.keys.max(1);
    let events = args.events.unwrap_or(2 * keys);
    let temp = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-state-keys-{}", std::process::id()))
    });
    crate::reset_peak_rss();
    let (backend, rocks): (Arc<dyn StateBackend>, Option<Arc<RocksDbBackend>>) = match args.backend
    {
        Backend::Memory => (Arc::new(InMemoryBackend::new()), None),
        Backend::Rocksdb => {
            if temp {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let b = Arc::new(RocksDbBackend::open_with(&dir, RocksDbOptions::default())?);
            (b.clone(), Some(b))
        }
    };
    let state = StateService::new(backend, Arc::new(VirtualClock::new()));
    let counts = state
        .scope_of(StageId::of_uid("count"), 0)
        .value::<u64, u64>("n", None);

    // Element i has key (i * a) mod keys for an `a` coprime to `keys`: every key occurs
    // events/keys times, in an order with no locality.
    let a = (0x9e37_79b9_7f4a_7c15u64 % keys) | 1;
    let a = (a..).find(|c| gcd(*c, keys) == 1).unwrap_or(1);
    let start = Instant::now();
    for i in 0..events {
        let k = ((u128::from(i) * u128::from(a)) % u128::from(keys)) as u64;
        let n = counts.get(&k)?.unwrap_or(0);
        counts.set(&k, &(n + 1))?;
    }
    if let Some(r) = &rocks {
        r.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();

    // Check a sample of keys against the exact counts.
    let per = events / keys;
    let extra = events % keys;
    let inverse = inverse_mod(a, keys);
    for k in (0..keys).step_by((keys / 1000).max(1) as usize) {
        // The first element of key k is i0 = k / a (mod keys); it occurs once more if i0 < extra.
        let i0 = ((u128::from(k) * u128::from(inverse)) % u128::from(keys)) as u64;
        let want = per + u64::from(i0 < extra);
        let got = counts.get(&k)?.unwrap_or(0);
        if got != want {
            return Err(format!("key {k}: counted {got}, expected {want}").into());
        }
    }
    let disk = if rocks.is_some() { dir_bytes(&dir) } else { 0 };
    drop(counts);
    drop(state);
    drop(rocks);
    if temp && args.backend == Backend::Rocksdb {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let name = match args.backend {
        Backend::Memory => "memory",
        Backend::Rocksdb => "rocksdb",
    };
    println!(
        "{{\"workload\":\"state_keys\",\"backend\":\"{name}\",\"keys\":{keys},\"events\":{events},\"seconds\":{secs:.3},\"ops_per_s\":{:.0},\"peak_rss_mb\":{peak:.1},\"disk_mb\":{:.1}}}",
        events as f64 / secs,
        disk as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The inverse of `a` modulo `m` (`a` coprime to `m`).
fn inverse_mod(a: u64, m: u64) -> u64 {
    let (mut r0, mut r1) = (i128::from(m), i128::from(a % m));
    let (mut t0, mut t1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    t0.rem_euclid(i128::from(m)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
