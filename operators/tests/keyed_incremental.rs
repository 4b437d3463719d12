//! Incremental checkpoints of `in_backend()` aggregates on RocksDB: after a base, a checkpoint
//! where only some keys changed writes an increment holding exactly those keys (far smaller
//! than the state, as the manifest records); a new run restores the base and its increments
//! (into a fresh RocksDB, at the same parallelism or rescaled 1 -> 2, 2 -> 1, 2 -> 3) with exactly the output of an
//! uninterrupted run; retention removes the shared files no retained checkpoint lists; a
//! corrupt increment falls back to the checkpoint before it.

mod ck;

use ck::{Gate, Store, checkpoint, counting, dir, two_phase, until};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::RunnableGraph;
use weir_operators::prelude::*;
use weir_state::{StateBackend, StateService};
use weir_state_rocksdb::RocksDbBackend;

const N: u64 = 1200;
/// Distinct keys of the first 1000 elements; after them only keys `0..10` change.
const WIDE: u64 = 1000;

fn key(x: &u64) -> u64 {
    if *x < WIDE { *x } else { x % 10 }
}

/// Counts per key through RocksDB at `parallelism`, one number per key (`key * 1000 + n`).
fn job(parallelism: usize) -> impl Fn(&Arc<Gate>, &Arc<Store>) -> RunnableGraph<()> {
    move |gate, store| {
        counting("events", N, gate)
            .key_by(key)
            .in_backend_cached::<64>()
            .count()
            .parallelism(parallelism)
            .map(|(k, n): (u64, u64)| k * 1000 + n)
            .to(two_phase(store))
    }
}

/// The output of an uninterrupted run, sorted.
fn model() -> Vec<u64> {
    let mut m = BTreeMap::<u64, u64>::new();
    for x in 0..N {
        *m.entry(key(&x)).or_default() += 1;
    }
    m.into_iter().map(|(k, n)| k * 1000 + n).collect()
}

/// A run on a fresh RocksDB directory, checkpointing into `ck_dir` (keeping `retain`).
struct Run {
    h: RunHandle,
    clock: Arc<weir_engine::VirtualClock>,
    gate: Arc<Gate>,
    backend: Arc<dyn StateBackend>,
    _m: Materializer,
}

fn start(ck_dir: &Path, db: &Path, retain: usize, parallelism: usize, store: &Arc<Store>) -> Run {
    let clock = Arc::new(weir_engine::VirtualClock::new());
    let backend: Arc<dyn StateBackend> = Arc::new(RocksDbBackend::open(db).expect("open RocksDB"));
    let m = Materializer::new()
        .with_clock(clock.clone())
        .with_batch_size(8)
        .with_checkpoints(CheckpointConfig::new(ck::SECOND, ck_dir).retain(retain))
        .with_service(Arc::new(StateService::new(backend.clone(), clock.clone())));
    let gate = Arc::new(Gate::default());
    let ((), h) = m
        .materialize(&job(parallelism)(&gate, store))
        .expect("materialize");
    Run {
        h,
        clock,
        gate,
        backend,
        _m: m,
    }
}

impl Run {
    async fn emit(&self, to: u64) {
        self.gate.open(to);
        until("the rows emitted", || {
            self.gate.emitted.load(Ordering::Acquire) >= to
        })
        .await;
    }

    /// Cancels the run (as a kill would stop it) and waits until it let go of RocksDB.
    async fn kill(self) {
        self.h.cancel();
        assert!(self.h.wait().await.is_err());
        let Run { h, backend, _m, .. } = self;
        drop((h, _m));
        until("the run to release its backend", || {
            Arc::strong_count(&backend) == 1
        })
        .await;
    }

    async fn finish(self) {
        self.gate.open(N);
        self.h.wait().await.expect("the run");
        let Run { h, backend, _m, .. } = self;
        drop((h, _m));
        until("the run to release its backend", || {
            Arc::strong_count(&backend) == 1
        })
        .await;
    }
}

/// The shared files the keyed stage's subtask `sub` lists in checkpoint `id`, with their
/// lengths, base first.
fn chain(ck_dir: &Path, id: u64, sub: usize) -> Vec<(String, u64)> {
    let m = std::fs::read_to_string(ck_dir.join(format!("chk-{id:020}")).join("MANIFEST"))
        .expect("a manifest");
    let line = m
        .lines()
        .find(|l| l.contains("../shared/") && l.split(' ').nth(2) == Some(&sub.to_string()))
        .unwrap_or_else(|| panic!("no incremental state of subtask {sub} in {m}"));
    let f: Vec<&str> = line.split(' ').collect();
    f[3..]
        .chunks(3)
        .map(|p| {
            (
                p[0].trim_start_matches("../shared/").to_owned(),
                p[1].parse().unwrap(),
            )
        })
        .collect()
}

/// `(key, count)` of every entry in the snapshot file `path`, in order.
fn entries(path: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    weir_state::portable::visit_keyed_file(path, &mut |_, _, k, v| {
        out.push((
            postcard::from_bytes(k).unwrap(),
            postcard::from_bytes(v).unwrap(),
        ));
        Ok(())
    })
    .expect("a valid snapshot");
    out.sort();
    out
}

fn shared_files(ck_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ck_dir.join("shared"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Checkpoints 1 (after the 1000 wide keys), 2 (50 more, keys 0..10) and 3 (50 more), then
/// 50 more and a kill.
async fn three_checkpoints_and_a_kill(
    ck_dir: &Path,
    db: &Path,
    retain: usize,
    parallelism: usize,
    store: &Arc<Store>,
) {
    let run = start(ck_dir, db, retain, parallelism, store);
    for (id, to) in [(1, WIDE), (2, WIDE + 50), (3, WIDE + 100)] {
        run.emit(to).await;
        checkpoint(&run.h, &run.clock, id).await;
    }
    run.emit(WIDE + 150).await;
    run.kill().await;
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-incr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_hold_only_the_changed_keys_and_a_new_run_restores_them_exactly() {
    for to in [1, 2] {
        let ck_dir = dir(&format!("incr-restore-{to}"));
        let db = temp(&format!("restore-{to}"));
        let store = Store::new();
        three_checkpoints_and_a_kill(&ck_dir, &db.join("first"), 1, 1, &store).await;

        let files = chain(&ck_dir, 3, 0);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let stage = names[0].split('-').next().unwrap().to_owned();
        assert_eq!(
            names,
            [
                format!("{stage}-0-1.base"),
                format!("{stage}-0-2.delta"),
                format!("{stage}-0-3.delta")
            ]
        );
        let shared = ck_dir.join("shared");
        for (name, len) in &files {
            assert_eq!(std::fs::metadata(shared.join(name)).unwrap().len(), *len);
        }
        // The base holds every key once; each increment only the ten keys that changed.
        let base = entries(&shared.join(&files[0].0));
        assert_eq!(base, (0..WIDE).map(|k| (k, 1)).collect::<Vec<_>>());
        assert_eq!(
            entries(&shared.join(&files[1].0)),
            (0..10).map(|k| (k, 6)).collect::<Vec<_>>()
        );
        assert_eq!(
            entries(&shared.join(&files[2].0)),
            (0..10).map(|k| (k, 11)).collect::<Vec<_>>()
        );
        assert!(
            files[1].1 * 20 < files[0].1 && files[2].1 * 20 < files[0].1,
            "increments {files:?}"
        );
        // Retention kept checkpoint 3 alone, and exactly the files it lists.
        assert_eq!(shared_files(&ck_dir), names);

        // A new run on a fresh RocksDB: restored from the base and both increments.
        let run = start(&ck_dir, &db.join("second"), 1, to, &store);
        assert_eq!(run.h.checkpoints().unwrap().restored(), Some(3));
        // Its first checkpoint is a new base; retention then drops the old chain.
        run.emit(WIDE + 160).await;
        checkpoint(&run.h, &run.clock, 4).await;
        let rebased: Vec<String> = (0..to)
            .map(|sub| chain(&ck_dir, 4, sub)[0].0.clone())
            .collect();
        assert_eq!(
            rebased,
            (0..to)
                .map(|sub| format!("{stage}-{sub}-4.base"))
                .collect::<Vec<_>>()
        );
        assert_eq!(shared_files(&ck_dir), rebased);
        run.finish().await;
        assert_eq!(store.sorted(), model(), "restored at parallelism {to}");
        let _ = std::fs::remove_dir_all(&ck_dir);
        let _ = std::fs::remove_dir_all(&db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_increment_falls_back_to_the_checkpoint_before_it() {
    let ck_dir = dir("incr-corrupt");
    let db = temp("corrupt");
    let store = Store::new();
    three_checkpoints_and_a_kill(&ck_dir, &db.join("first"), 2, 1, &store).await;
    let files = chain(&ck_dir, 3, 0);
    assert_eq!(chain(&ck_dir, 2, 0), files[..2].to_vec());
    let last = ck_dir.join("shared").join(&files[2].0);
    let mut bytes = std::fs::read(&last).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&last, bytes).unwrap();

    let run = start(&ck_dir, &db.join("second"), 2, 1, &store);
    let ck = run.h.checkpoints().unwrap();
    assert_eq!(ck.restored(), Some(2));
    assert_eq!(
        ck.skipped(),
        [format!(
            "checkpoint file {} is corrupt: checksum mismatch",
            last.display()
        )]
    );
    run.finish().await;
    assert_eq!(store.sorted(), model());
    let _ = std::fs::remove_dir_all(&ck_dir);
    let _ = std::fs::remove_dir_all(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_of_two_subtasks_rescale_to_one_and_to_three() {
    for to in [1, 3] {
        let ck_dir = dir(&format!("incr-rescale-{to}"));
        let db = temp(&format!("rescale-{to}"));
        let store = Store::new();
        three_checkpoints_and_a_kill(&ck_dir, &db.join("first"), 1, 2, &store).await;
        // Each subtask's state in checkpoint 3 is its base and two increments.
        for sub in 0..2 {
            let kinds: Vec<String> = chain(&ck_dir, 3, sub)
                .iter()
                .map(|(n, _)| n.rsplit_once('-').unwrap().1.to_owned())
                .collect();
            assert_eq!(kinds, ["1.base", "2.delta", "3.delta"], "subtask {sub}");
        }
        let run = start(&ck_dir, &db.join("second"), 1, to, &store);
        assert_eq!(run.h.checkpoints().unwrap().restored(), Some(3));
        run.finish().await;
        assert_eq!(store.sorted(), model(), "2 -> {to}");
        let _ = std::fs::remove_dir_all(&ck_dir);
        let _ = std::fs::remove_dir_all(&db);
    }
}
