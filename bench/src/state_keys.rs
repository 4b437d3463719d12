//! `weir-bench state-keys`: high-cardinality keyed state. Counts occurrences per key through a
//! `StateService` `ValueState<u64, u64>` (a read-modify-write per element) on the in-memory or
//! the RocksDB backend, and prints one JSON line with the time, the rate, the peak RSS and the
//! state's size on disk.
//!
//! `--mode graph` counts through the graph instead: `Source::from_iter(0..keys)
//! .key_by(..).in_backend().count()` (every key once) on the chosen backend, checkpointing
//! every `--checkpoint-interval-ms` into a temporary directory, and reports the checkpoints
//! completed and the size of the newest.
//!
//! `cargo run --release -p weir-bench -- state-keys --keys 10000000 --backend rocksdb`
//! `cargo run --release -p weir-bench -- state-keys --keys 1e7 --backend rocksdb --mode graph`

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
    /// Count through `ValueState` calls (direct) or through a keyed graph stage (graph).
    #[arg(long, value_enum, default_value_t = Mode::Direct)]
    mode: Mode,
    /// After counting (direct mode), also time a full snapshot to a file and its restore into
    /// a fresh backend of the same kind (`snapshot_s`, `restore_s`, `snapshot_mb`).
    #[arg(long)]
    restore: bool,
    /// The checkpoint interval of `--mode graph` (0: no checkpoints).
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
}

/// How the counting is done.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// A read-modify-write of a `ValueState<u64, u64>` per element.
    Direct,
    /// `key_by(..).in_backend().count()` in a run with checkpoints.
    Graph,
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
    if args.mode == Mode::Graph {
        return graph(args);
    }
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
    let check = move |counts: &weir::state::ValueState<u64, u64>| -> Result<(), Box<dyn std::error::Error>> {
        for k in (0..keys).step_by((keys / 1000).max(1) as usize) {
            // The first element of key k is i0 = k / a (mod keys); once more if i0 < extra.
            let i0 = ((u128::from(k) * u128::from(inverse)) % u128::from(keys)) as u64;
            let want = per + u64::from(i0 < extra);
            let got = counts.get(&k)?.unwrap_or(0);
            if got != want {
                return Err(format!("key {k}: counted {got}, expected {want}").into());
            }
        }
        Ok(())
    };
    check(&counts)?;
    let disk = if rocks.is_some() { dir_bytes(&dir) } else { 0 };
    let restored = if args.restore {
        Some(snapshot_and_restore(args, state.backend(), &dir, &check)?)
    } else {
        None
    };
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
    let restore = match restored {
        Some((snap_s, restore_s, bytes)) => format!(
            ",\"snapshot_s\":{snap_s:.3},\"restore_s\":{restore_s:.3},\"snapshot_mb\":{:.1}",
            bytes as f64 / (1024.0 * 1024.0)
        ),
        None => String::new(),
    };
    println!(
        "{{\"workload\":\"state_keys\",\"backend\":\"{name}\",\"keys\":{keys},\"events\":{events},\"seconds\":{secs:.3},\"ops_per_s\":{:.0},\"peak_rss_mb\":{peak:.1},\"disk_mb\":{:.1}{restore}}}",
        events as f64 / secs,
        disk as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Writes a full snapshot of `backend` to a file next to `dir`, then restores it (read back,
/// verified, imported) into a fresh backend of the same kind and checks the sample counts
/// there; returns the seconds of each and the snapshot's bytes.
fn snapshot_and_restore(
    args: &Args,
    backend: &Arc<dyn StateBackend>,
    dir: &Path,
    check: &dyn Fn(&weir::state::ValueState<u64, u64>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(f64, f64, u64), Box<dyn std::error::Error>> {
    use std::io::Write;
    let file = dir.with_extension("snapshot");
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let bytes = backend
        .snapshot(weir::state::KeyGroupRange::ALL)?
        .write_to(&mut out)?;
    out.flush()?;
    let snap_s = t.elapsed().as_secs_f64();
    let fresh_dir = dir.with_extension("restored");
    let _ = std::fs::remove_dir_all(&fresh_dir);
    let t = Instant::now();
    let fresh: Arc<dyn StateBackend> = match args.backend {
        Backend::Memory => Arc::new(InMemoryBackend::new()),
        Backend::Rocksdb => Arc::new(RocksDbBackend::open_with(
            &fresh_dir,
            RocksDbOptions::default(),
        )?),
    };
    let data = std::fs::read(&file)?;
    fresh.import_key_groups(&data, weir::state::KeyGroupRange::ALL)?;
    drop(data);
    let restore_s = t.elapsed().as_secs_f64();
    let state = StateService::new(fresh, Arc::new(VirtualClock::new()));
    check(
        &state
            .scope_of(StageId::of_uid("count"), 0)
            .value::<u64, u64>("n", None),
    )?;
    drop(state);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&fresh_dir);
    Ok((snap_s, restore_s, bytes))
}

/// `--mode graph`: every key of `0..keys` once through `key_by(..).in_backend().count()`.
fn graph(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use weir::prelude::*;
    let keys = args.keys.max(1);
    let root = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-state-keys-graph-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&root);
    let (state_dir, ck_dir) = (root.join("state"), root.join("checkpoints"));
    crate::reset_peak_rss();
    let rocks = match args.backend {
        Backend::Rocksdb => Some(Arc::new(RocksDbBackend::open_with(
            &state_dir,
            RocksDbOptions::default(),
        )?)),
        Backend::Memory => None,
    };
    let backend: Arc<dyn StateBackend> = match &rocks {
        Some(r) => r.clone(),
        None => Arc::new(InMemoryBackend::new()),
    };
    let rt = weir::engine::Runtime::new()?;
    let clock: Arc<dyn weir::graph::Clock> = Arc::new(weir::engine::SystemClock::new());
    let mut m = Materializer::new()
        .with_clock(clock.clone())
        .with_service(Arc::new(StateService::new(backend, clock)));
    if args.checkpoint_interval_ms > 0 {
        m = m.with_checkpoints(
            weir::engine::CheckpointConfig::new(
                std::time::Duration::from_millis(args.checkpoint_interval_ms),
                &ck_dir,
            )
            .retain(1),
        );
    }
    // Sum and count of the emitted pairs, checked exactly: every key once, counted once.
    let g = Source::from_iter(0..keys)
        .key_by(|k: &u64| *k)
        .in_backend()
        .count()
        .to_mat(
            Sink::fold((0u64, 0u64, 0u64), |(n, ks, cs), (k, c): (u64, u64)| {
                (n + 1, ks.wrapping_add(k), cs + c)
            }),
            Keep::right,
        );
    let start = Instant::now();
    let (got, completed) = rt.block_on(async {
        let (f, h) = m.materialize(&g)?;
        let got = f.await?;
        h.wait().await?;
        let completed = h.checkpoints().and_then(|c| c.latest_completed());
        Ok::<_, Box<dyn std::error::Error>>((got, completed))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();
    let want = (keys, (0..keys).fold(0u64, u64::wrapping_add), keys);
    if got != want {
        return Err(format!("counted (pairs, key sum, total) {got:?}, expected {want:?}").into());
    }
    // The newest checkpoint's size: the state of the stage as of its last barrier.
    let ck_bytes = dir_bytes(&ck_dir);
    drop(m);
    drop(g);
    let disk = match &rocks {
        Some(r) => {
            r.flush()?;
            dir_bytes(&state_dir)
        }
        None => 0,
    };
    drop(rocks);
    let _ = std::fs::remove_dir_all(&root);
    let name = match args.backend {
        Backend::Memory => "memory",
        Backend::Rocksdb => "rocksdb",
    };
    println!(
        "{{\"workload\":\"state_keys_graph\",\"backend\":\"{name}\",\"keys\":{keys},\"seconds\":{secs:.3},\"keys_per_s\":{:.0},\"peak_rss_mb\":{peak:.1},\"checkpoints\":{},\"checkpoint_mb\":{:.1},\"disk_mb\":{:.1}}}",
        keys as f64 / secs,
        completed.unwrap_or(0),
        ck_bytes as f64 / (1024.0 * 1024.0),
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
