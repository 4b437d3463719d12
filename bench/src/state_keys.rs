//! `weir-bench state-keys`: high-cardinality keyed state. Counts occurrences per key through a
//! `StateService` `ValueState<u64, u64>` (a read-modify-write per element) on the in-memory or
//! the RocksDB backend, and prints one JSON line with the time, the rate, the peak RSS and the
//! state's size on disk.
//!
//! `--mode graph` counts through the graph instead: `Source::from_iter(0..keys)
//! .key_by(..).in_backend().count()` (every key once) on the chosen backend, checkpointing
//! every `--checkpoint-interval-ms` into a temporary directory, and reports the checkpoints
//! completed, the size of the newest (its base and increments) and the bytes all checkpoints
//! wrote; `--compare` runs it without checkpoints first and prints the overhead ratio.
//! `--restore` (direct mode) writes a full snapshot to a file and restores it into a fresh
//! backend, streamed from the file, with the restore's time and peak RSS; `--mode restore`
//! does the same for a synthetic snapshot of `--keys` entries (1 GB at 7.5e7) without counting.
//! `--mode count` times the plain in-memory `key_by(..).count()` of `--events` elements over
//! `--keys` keys (element i has key i mod keys) against a `HashMap` loop, in one run.
//!
//! `cargo run --release -p weir-bench -- state-keys --keys 10000000 --backend rocksdb`
//! `cargo run --release -p weir-bench -- state-keys --keys 1e7 --backend rocksdb --mode graph`
//! `cargo run --release -p weir-bench -- state-keys --mode count --keys 3e6 --events 3e6`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weir::engine::VirtualClock;
use weir::graph::StageId;
use weir::state::{InMemoryBackend, StateBackend, StateId, StateService};
use weir_state_rocksdb::{RocksDbBackend, RocksDbOptions};

/// Command line of `weir-bench state-keys`.
#[derive(clap::Args)]
#[command(about = "counting per key through keyed state")]
pub struct Args {
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
    /// `--mode graph`: run without checkpoints first, then with, and print the overhead ratio.
    #[arg(long)]
    compare: bool,
    /// `--mode restore`: the snapshot is a node's checkpoint, copied to a job store (a local
    /// folder), then the node's disk is emptied and the recovery is timed: the copy back from
    /// the store (verified) and the import into a fresh RocksDB.
    #[arg(long)]
    from_store: bool,
}

/// How the counting is done.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// A read-modify-write of a `ValueState<u64, u64>` per element.
    Direct,
    /// `key_by(..).in_backend().count()` in a run with checkpoints.
    Graph,
    /// Writes a snapshot file of `--keys` entries (8-byte keys, 4-byte values, spread over
    /// every key group) without counting, then times its streamed restore into a fresh
    /// RocksDB (`import_key_groups_file`) and its peak RSS.
    Restore,
    /// `Source::from_iter(0..keys).key_by(..).count()` with in-memory state (no backend)
    /// against a `HashMap` counting loop over the same keys, in one run (`--events` elements).
    Count,
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

/// Runs the subcommand; the exit code.
pub fn main(args: Args) -> i32 {
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
    if args.mode == Mode::Count {
        return count_in_memory(args);
    }
    if args.mode == Mode::Restore && args.from_store {
        return restore_from_store(args);
    }
    if args.mode == Mode::Restore {
        return restore_only(args);
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
    let snapshot = if args.restore {
        Some(write_snapshot(state.backend(), &dir)?)
    } else {
        None
    };
    drop(counts);
    drop(state);
    drop(rocks);
    if temp && args.backend == Backend::Rocksdb {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let restored = match snapshot {
        Some((file, snap_s, bytes)) => {
            let r = restore(args, &file, &dir, &check);
            let _ = std::fs::remove_file(&file);
            let (restore_s, rss_before, restore_peak) = r?;
            Some((snap_s, restore_s, bytes, rss_before, restore_peak))
        }
        None => None,
    };
    let name = match args.backend {
        Backend::Memory => "memory",
        Backend::Rocksdb => "rocksdb",
    };
    let restore = match restored {
        Some((snap_s, restore_s, bytes, before, peak)) => format!(
            ",\"snapshot_s\":{snap_s:.3},\"restore_s\":{restore_s:.3},\"snapshot_mb\":{:.1},\"rss_before_restore_mb\":{before:.1},\"restore_peak_rss_mb\":{peak:.1}",
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

/// The resident set of this process now, MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes a full snapshot of `backend` to a file next to `dir`; returns the file, the seconds
/// it took and its bytes.
fn write_snapshot(
    backend: &Arc<dyn StateBackend>,
    dir: &Path,
) -> Result<(PathBuf, f64, u64), Box<dyn std::error::Error>> {
    use std::io::Write;
    let file = dir.with_extension("snapshot");
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let bytes = backend
        .snapshot(weir::state::KeyGroupRange::ALL)?
        .write_to(&mut out)?;
    out.flush()?;
    Ok((file, t.elapsed().as_secs_f64(), bytes))
}

/// Restores the snapshot `file` into a fresh backend of the same kind, streamed from the
/// file (`import_key_groups_file`: verified, then imported in 65536-entry batches, read in
/// blocks), and checks the sample counts there; returns the seconds, the RSS before and the
/// peak RSS during the restore.
fn restore(
    args: &Args,
    file: &Path,
    dir: &Path,
    check: &dyn Fn(&weir::state::ValueState<u64, u64>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    let fresh_dir = dir.with_extension("restored");
    let _ = std::fs::remove_dir_all(&fresh_dir);
    let before = rss_mb();
    crate::reset_peak_rss();
    let t = Instant::now();
    let fresh: Arc<dyn StateBackend> = match args.backend {
        Backend::Memory => Arc::new(InMemoryBackend::new()),
        Backend::Rocksdb => Arc::new(RocksDbBackend::open_with(
            &fresh_dir,
            RocksDbOptions::default(),
        )?),
    };
    fresh.import_key_groups_file(file, weir::state::KeyGroupRange::ALL)?;
    let restore_s = t.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();
    let state = StateService::new(fresh, Arc::new(VirtualClock::new()));
    check(
        &state
            .scope_of(StageId::of_uid("count"), 0)
            .value::<u64, u64>("n", None),
    )?;
    drop(state);
    let _ = std::fs::remove_dir_all(&fresh_dir);
    Ok((restore_s, before, peak))
}

/// `--mode graph`: every key of `0..keys` once through `key_by(..).in_backend().count()`;
/// with `--compare`, first without checkpoints, then with, and the ratio of their times.
fn graph(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if !args.compare || args.checkpoint_interval_ms == 0 {
        graph_once(args, args.checkpoint_interval_ms)?;
        return Ok(());
    }
    let without = graph_once(args, 0)?;
    let with = graph_once(args, args.checkpoint_interval_ms)?;
    println!(
        "{{\"workload\":\"state_keys_graph_overhead\",\"keys\":{},\"seconds_without\":{without:.3},\"seconds_with\":{with:.3},\"ratio\":{:.3}}}",
        args.keys,
        with / without
    );
    Ok(())
}

/// Records the largest size seen of every checkpoint file under `dir` while the run goes,
/// polled every 50 ms (retention removes files; a checkpoint writes each once).
struct Written {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::collections::HashMap<PathBuf, u64>>,
}

impl Written {
    fn watch(dir: &Path) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dir, flag) = (dir.to_owned(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::HashMap::new();
            loop {
                let done = flag.load(std::sync::atomic::Ordering::Acquire);
                sizes(&dir, &mut seen);
                if done {
                    return seen;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        Self { stop, thread }
    }

    /// Files and bytes the checkpoints wrote.
    fn total(self) -> (usize, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let seen = self.thread.join().unwrap_or_default();
        (seen.len(), seen.values().sum())
    }
}

fn sizes(dir: &Path, seen: &mut std::collections::HashMap<PathBuf, u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => sizes(&e.path(), seen),
            Ok(m) => {
                let n = seen.entry(e.path()).or_default();
                *n = (*n).max(m.len());
            }
            Err(_) => {}
        }
    }
}

/// The files of the incremental state in the newest checkpoint under `dir`: (increments,
/// base bytes, increment bytes).
fn newest_chain(dir: &Path) -> (usize, u64, u64) {
    let Some(newest) = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path())
            .filter(|p| p.join("MANIFEST").exists())
            .max()
    }) else {
        return (0, 0, 0);
    };
    let text = std::fs::read_to_string(newest.join("MANIFEST")).unwrap_or_default();
    let (mut increments, mut base, mut inc) = (0, 0, 0);
    for line in text.lines().filter(|l| l.contains("../shared/")) {
        let f: Vec<&str> = line.split(' ').collect();
        for (i, part) in f[3..].chunks(3).enumerate() {
            let len = part.get(1).and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
            if i == 0 {
                base += len;
            } else {
                increments += 1;
                inc += len;
            }
        }
    }
    (increments, base, inc)
}

/// One graph run checkpointing every `interval_ms` (0: never); prints its JSON line and
/// returns its seconds.
/// `--mode count`: the plain in-memory keyed count against a `HashMap` loop, one JSON line each
/// (the graph's line carries `ratio`, its rate over the loop's).
fn count_in_memory(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use weir::prelude::*;
    let keys = args.keys.max(1);
    let events = args.events.unwrap_or(keys);
    let key = move |i: u64| i % keys;
    crate::reset_peak_rss();
    let start = Instant::now();
    let mut map: std::collections::HashMap<u64, u64, ahash::RandomState> = Default::default();
    for i in 0..events {
        *map.entry(key(i)).or_insert(0) += 1;
    }
    let (n, sum) = (map.len() as u64, map.values().sum::<u64>());
    let base = start.elapsed().as_secs_f64();
    drop(map);
    let line = |variant: &str, secs: f64, extra: String| {
        println!(
            "{{\"workload\":\"state_keys_count\",\"variant\":\"{variant}\",\"keys\":{keys},\"events\":{events},\"seconds\":{secs:.6},\"elements_per_s\":{:.0},\"peak_rss_mb\":{:.1}{extra}}}",
            events as f64 / secs,
            crate::peak_rss_mb()
        )
    };
    line("hashmap_loop", base, String::new());
    let rt = weir::engine::Runtime::new()?;
    let g = Source::from_iter(0..events)
        .map(key)
        .key_by(|k: &u64| *k)
        .count()
        .to_mat(
            Sink::fold((0u64, 0u64), |(n, cs), (_k, c): (u64, u64)| (n + 1, cs + c)),
            Keep::right,
        );
    crate::reset_peak_rss();
    let start = Instant::now();
    let got = rt.block_on(async {
        let (f, h) = Materializer::new().materialize(&g)?;
        let got = f.await?;
        h.wait().await?;
        Ok::<_, Box<dyn std::error::Error>>(got)
    })?;
    let secs = start.elapsed().as_secs_f64();
    if got != (n, sum) {
        return Err(format!("count: got {got:?} (keys, total), want {:?}", (n, sum)).into());
    }
    line(
        "weir_key_by_count",
        secs,
        format!(",\"ratio\":{:.3}", base / secs),
    );
    Ok(())
}

fn graph_once(args: &Args, interval_ms: u64) -> Result<f64, Box<dyn std::error::Error>> {
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
    if interval_ms > 0 {
        m = m.with_checkpoints(
            weir::engine::CheckpointConfig::new(
                std::time::Duration::from_millis(interval_ms),
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
    let written = Written::watch(&ck_dir);
    let start = Instant::now();
    let (got, completed) = rt.block_on(async {
        let (f, h) = m.materialize(&g)?;
        let got = f.await?;
        h.wait().await?;
        let completed = h.checkpoints().map(|c| {
            (
                c.latest_completed().unwrap_or(0),
                c.durations().len(),
                c.failed().len(),
            )
        });
        Ok::<_, Box<dyn std::error::Error>>((got, completed))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();
    let (newest, completed, failed) = completed.unwrap_or_default();
    let (files, written) = written.total();
    let want = (keys, (0..keys).fold(0u64, u64::wrapping_add), keys);
    if got != want {
        return Err(format!("counted (pairs, key sum, total) {got:?}, expected {want:?}").into());
    }
    // The newest checkpoint's size (retaining 1, everything left): the state of the stage
    // as of its last barrier, as a base and increments.
    let ck_bytes = dir_bytes(&ck_dir);
    let (increments, base, inc) = newest_chain(&ck_dir);
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
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{{\"workload\":\"state_keys_graph\",\"backend\":\"{name}\",\"keys\":{keys},\"checkpoint_interval_ms\":{interval_ms},\"seconds\":{secs:.3},\"keys_per_s\":{:.0},\"peak_rss_mb\":{peak:.1},\"checkpoints_completed\":{completed},\"newest_checkpoint\":{newest},\"checkpoints_failed\":{failed},\"checkpoint_mb\":{:.1},\"newest_base_mb\":{:.1},\"newest_increments\":{increments},\"newest_increments_mb\":{:.1},\"files_written\":{files},\"written_mb\":{:.1},\"disk_mb\":{:.1}}}",
        keys as f64 / secs,
        mb(ck_bytes),
        mb(base),
        mb(inc),
        mb(written),
        mb(disk)
    );
    Ok(secs)
}

/// `n` synthetic entries, `n / MAX_KEY_GROUPS` (or one more) per key group, in key order.
struct Synthetic {
    n: u64,
    state: u64,
}

impl weir::state::portable::SnapshotSource for Synthetic {
    fn keyed(
        &self,
        visit: &mut weir::state::portable::KeyedVisit<'_>,
    ) -> Result<(), weir::state::StateError> {
        let groups = weir::state::MAX_KEY_GROUPS as u64;
        for kg in 0..groups {
            let per = self.n / groups + u64::from(kg < self.n % groups);
            for i in 0..per {
                let v = (i as u32).to_le_bytes();
                visit(kg as u32, self.state, &i.to_be_bytes(), &v)?;
            }
        }
        Ok(())
    }

    fn operator(
        &self,
        _visit: &mut weir::state::portable::OperatorVisit<'_>,
    ) -> Result<(), weir::state::StateError> {
        Ok(())
    }
}

/// `--mode restore`: a snapshot file of `--keys` synthetic entries, restored (streamed, in
/// blocks) into a fresh RocksDB; prints the file's size, the restore's time and peak RSS.
fn restore_only(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let keys = args.keys.max(1);
    let root = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-state-keys-restore-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let file = root.join("snapshot");
    let t = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file)?);
    let bytes = weir::state::portable::write_snapshot(
        &Synthetic {
            n: keys,
            state: StateId::new(StageId::of_uid("count"), "n").0,
        },
        &mut out,
    )?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    let write_s = t.elapsed().as_secs_f64();
    let before = rss_mb();
    crate::reset_peak_rss();
    let t = Instant::now();
    import_all(&root.join("db"), &file, keys)?;
    let restore_s = t.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"workload\":\"state_keys_restore\",\"backend\":\"rocksdb\",\"entries\":{keys},\"snapshot_mb\":{:.1},\"write_s\":{write_s:.3},\"restore_s\":{restore_s:.3},\"mb_per_s\":{:.1},\"rss_before_mb\":{before:.1},\"restore_peak_rss_mb\":{peak:.1}}}",
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / (1024.0 * 1024.0) / restore_s
    );
    Ok(())
}

/// Imports the snapshot `file` of `keys` entries (streamed) into a fresh RocksDB in `db_dir`
/// and flushes it; an error when another number of entries came in.
fn import_all(db_dir: &Path, file: &Path, keys: u64) -> Result<(), Box<dyn std::error::Error>> {
    let db = RocksDbBackend::open_with(db_dir, RocksDbOptions::default())?;
    let taken = db.import_key_groups_file(file, weir::state::KeyGroupRange::ALL)?;
    db.flush()?;
    if taken as u64 != keys {
        return Err(format!("restored {taken} entries, expected {keys}").into());
    }
    Ok(())
}

/// `--mode restore --from-store`: a node's recovery on a new disk. A checkpoint holding a
/// synthetic snapshot of `--keys` entries is written and copied to a job store (a local
/// object store folder), the checkpoint directory is removed, and the recovery is timed: the
/// copy back from the store (each file verified) and the streamed import into a fresh RocksDB.
fn restore_from_store(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use weir::engine::checkpoint::store::{self, StageStates};
    use weir_cluster::commit::local_store;
    use weir_cluster::mirror::{CheckpointMirror, Ensured, node_prefix};
    let keys = args.keys.max(1);
    let root = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-state-keys-store-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&root);
    let ckpt = root.join("checkpoints");
    let stage = StageId::of_uid("count");
    let state = StateId::new(stage, "n").0;
    let snap = weir::graph::Snapshot::deferred(move |out| {
        weir::state::portable::write_snapshot(&Synthetic { n: keys, state }, out)
            .map_err(|e| weir::graph::SnapshotError::Write(e.to_string()))
    });
    let mut states = StageStates::new();
    states.insert((stage, 0), Some(snap));
    let t = Instant::now();
    store::write(&ckpt, 1, &states, 1)?;
    let write_s = t.elapsed().as_secs_f64();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mirror = CheckpointMirror::new(local_store(&root.join("store"))?, node_prefix(0), &ckpt);
    let t = Instant::now();
    let up = rt.block_on(mirror.upload(1))?;
    let upload_s = t.elapsed().as_secs_f64();
    // The node comes back on a new machine: its checkpoint directory is gone.
    std::fs::remove_dir_all(&ckpt)?;
    let before = rss_mb();
    crate::reset_peak_rss();
    let t = Instant::now();
    let Ensured::Downloaded { transfer, .. } = rt.block_on(mirror.ensure(1))? else {
        return Err("the emptied checkpoint directory still held the checkpoint".into());
    };
    let copy_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let restored = store::latest(&ckpt)?.ok_or("no checkpoint after the copy")?;
    let file = restored
        .states
        .get(&(stage, 0))
        .and_then(|s| s.parts().and_then(|p| p.first().cloned()))
        .ok_or("the restored state is not a file")?;
    import_all(&root.join("db"), &file, keys)?;
    let restore_s = t.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb();
    let _ = std::fs::remove_dir_all(&root);
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{{\"workload\":\"state_keys_restore_from_store\",\"backend\":\"rocksdb\",\"entries\":{keys},\"checkpoint_mb\":{:.1},\"copied_mb\":{:.1},\"write_s\":{write_s:.3},\"upload_s\":{upload_s:.3},\"copy_from_store_s\":{copy_s:.3},\"restore_s\":{restore_s:.3},\"recovery_s\":{:.3},\"rss_before_mb\":{before:.1},\"recovery_peak_rss_mb\":{peak:.1}}}",
        mb(up.bytes),
        mb(transfer.bytes),
        copy_s + restore_s
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
