//! What only a RocksDB backend has: a directory that outlives the process, a lock on it,
//! snapshots that move state to the in-memory backend and back, native checkpoints.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_graph::StageId;
use weir_state::*;
use weir_state_rocksdb::{RocksDbBackend, RocksDbOptions};

mod common;
#[macro_use]
#[path = "../../tests/suite/mod.rs"]
mod suite;

use common::{TempDir, small};
use suite::{check_filled, fill, snap};

fn service(b: Arc<dyn StateBackend>) -> StateService {
    StateService::new(b, Arc::new(VirtualClock::new()))
}

fn open(dir: &std::path::Path) -> Arc<RocksDbBackend> {
    Arc::new(RocksDbBackend::open_with(dir, small(KeyGroupRange::ALL)).unwrap())
}

#[test]
fn reopening_after_drop_keeps_every_write() {
    let dir = TempDir::new("reopen");
    let b = open(dir.path());
    fill(&service(b.clone()));
    drop(b);
    let b = open(dir.path());
    check_filled(&service(b.clone()));
    assert!(b.disk_bytes().unwrap() > 0);
    // And once more after writes on the reopened backend.
    service(b.clone())
        .scope_of(StageId::of_uid("op"), 0)
        .list::<u32, i32>("l", None)
        .add(&5, &-9)
        .unwrap();
    drop(b);
    let b = open(dir.path());
    assert_eq!(
        service(b)
            .scope_of(StageId::of_uid("op"), 0)
            .list::<u32, i32>("l", None)
            .get(&5)
            .unwrap(),
        vec![-1, -2, -9]
    );
}

#[test]
fn a_directory_in_use_is_a_locked_error_naming_it() {
    let dir = TempDir::new("lock");
    let path = dir.path().join("db");
    let first = RocksDbBackend::open_with(&path, small(KeyGroupRange::ALL)).unwrap();
    let e = RocksDbBackend::open_with(&path, small(KeyGroupRange::ALL)).unwrap_err();
    match &e {
        StateError::Locked { path: p, .. } => assert_eq!(p, &path.display().to_string()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with(&format!("state backend at {} is locked", path.display())),
        "{e}"
    );
    drop(first);
    RocksDbBackend::open_with(&path, small(KeyGroupRange::ALL)).unwrap();
}

#[test]
#[ignore = "hangs under cargo-nextest (the child test process never reports the open directory); the in-process lock test covers the error"]
fn a_directory_open_in_another_process_is_a_locked_error() {
    use std::io::{BufRead, Write};
    const HOLD: &str = "WEIR_ROCKS_TEST_HOLD_DIR";
    let name = "a_directory_open_in_another_process_is_a_locked_error";
    if let Ok(dir) = std::env::var(HOLD) {
        // The child: hold the directory open until the parent closes stdin.
        let _held = RocksDbBackend::open(&dir).unwrap();
        println!("weir-open");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let dir = TempDir::new("xlock");
    let path = dir.path().join("db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(HOLD, &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child exited before opening"
        );
        if line.trim() == "weir-open" {
            break;
        }
    }
    match RocksDbBackend::open(&path).unwrap_err() {
        StateError::Locked { path: p, message } => {
            assert_eq!(p, path.display().to_string());
            assert!(message.contains("LOCK"), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Closed by the other process: it opens now.
    RocksDbBackend::open(&path).unwrap();
}

#[test]
fn a_path_that_is_a_file_is_a_storage_error_naming_open() {
    let dir = TempDir::new("file");
    let path = dir.path().join("not-a-dir");
    std::fs::write(&path, b"x").unwrap();
    match RocksDbBackend::open(&path).unwrap_err() {
        StateError::Storage {
            path: p, operation, ..
        } => {
            assert_eq!(p, path.display().to_string());
            assert_eq!(operation, "open");
        }
        other => panic!("expected Storage, got {other:?}"),
    }
}

#[test]
fn a_snapshot_moves_state_to_the_memory_backend_and_back_unchanged() {
    let dir = TempDir::new("switch");
    let rocks = open(&dir.path().join("a"));
    let s = service(rocks.clone());
    fill(&s);
    // Enough entries to span several SST blocks and every key group.
    let many = s
        .scope_of(StageId::of_uid("many"), 0)
        .value::<u32, String>("v", None);
    for k in 0..20_000u32 {
        many.set(&k, &format!("value {k}")).unwrap();
    }
    rocks.flush().unwrap();
    let bytes = snap(&*rocks);

    let memory = Arc::new(InMemoryBackend::new());
    assert_eq!(memory.restore(&bytes).unwrap(), 6 + 20_000);
    check_filled(&service(memory.clone()));
    assert_eq!(snap(&*memory), bytes);

    let back = open(&dir.path().join("b"));
    assert_eq!(back.restore(&snap(&*memory)).unwrap(), 6 + 20_000);
    let s = service(back.clone());
    check_filled(&s);
    let many = s
        .scope_of(StageId::of_uid("many"), 0)
        .value::<u32, String>("v", None);
    assert_eq!(many.get(&19_999).unwrap(), Some("value 19999".to_string()));
    assert_eq!(snap(&*back), bytes);
}

#[test]
fn a_snapshot_is_written_on_another_thread_after_the_backend_is_gone() {
    let dir = TempDir::new("async");
    let b = open(dir.path());
    let s = service(b.clone());
    fill(&s);
    let writer = b.snapshot(KeyGroupRange::ALL).unwrap();
    // Writes after the snapshot are not in it.
    s.scope_of(StageId::of_uid("op"), 0)
        .value::<String, u64>("v", None)
        .set("a", &1000)
        .unwrap();
    drop(s);
    drop(b);
    let bytes = std::thread::spawn(move || writer.into_bytes().unwrap())
        .join()
        .unwrap();
    let memory = Arc::new(InMemoryBackend::new());
    memory.restore(&bytes).unwrap();
    check_filled(&service(memory));
}

#[test]
fn a_corrupt_snapshot_leaves_the_database_unchanged_across_a_reopen() {
    let dir = TempDir::new("corrupt");
    let b = open(dir.path());
    fill(&service(b.clone()));
    let mut bad = snap(&*b);
    let at = bad.len() / 2;
    bad[at] ^= 1;
    assert!(matches!(
        b.restore(&bad),
        Err(StateError::Snapshot(SnapshotError::ChecksumMismatch { .. }))
    ));
    drop(b);
    check_filled(&service(open(dir.path())));
}

#[test]
fn key_groups_rescale_from_one_rocksdb_backend_to_two() {
    let dir = TempDir::new("rescale");
    let one = open(&dir.path().join("one"));
    let s = service(one.clone());
    let v = s
        .scope_of(StageId::of_uid("count"), 0)
        .value::<u32, u32>("n", None);
    for k in 0..1000u32 {
        v.set(&k, &(k * 2)).unwrap();
    }
    let bytes = snap(&*one);
    let mut seen = 0;
    for i in 0..2 {
        let range = KeyGroupRange::for_subtask(i, 2);
        let part = Arc::new(
            RocksDbBackend::open_with(dir.path().join(format!("part{i}")), small(range)).unwrap(),
        );
        let taken = part.restore(&bytes).unwrap();
        let v = service(part.clone())
            .scope_of(StageId::of_uid("count"), 0)
            .value::<u32, u32>("n", None);
        let mine: Vec<u32> = (0..1000u32)
            .filter(|k| range.contains(key_group_of(&postcard::to_allocvec(k).unwrap())))
            .collect();
        assert_eq!(taken, mine.len());
        for k in 0..1000u32 {
            let want = mine.contains(&k).then_some(k * 2);
            if want.is_some() {
                assert_eq!(v.get(&k).unwrap(), want);
            } else {
                assert!(matches!(
                    v.get(&k),
                    Err(StateError::KeyGroupOutOfRange { .. })
                ));
            }
        }
        seen += taken;
    }
    assert_eq!(seen, 1000);
}

#[test]
fn ttl_survives_a_reopen_on_the_recorded_state_time() {
    let dir = TempDir::new("ttl");
    let ttl = Some(Ttl::after_write(Duration::from_secs(60)));
    let b = open(dir.path());
    let clock = Arc::new(VirtualClock::new());
    let s = StateService::new(b.clone(), clock.clone());
    s.scope_of(StageId::of_uid("t"), 0)
        .value::<u32, u32>("v", ttl)
        .set(&1, &1)
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let at = s.state_time();
    drop(s);
    drop(b);

    let b = open(dir.path());
    let clock = Arc::new(VirtualClock::new());
    let s = StateService::new(b, clock.clone()).with_time_base(at);
    let v = s
        .scope_of(StageId::of_uid("t"), 0)
        .value::<u32, u32>("v", ttl);
    clock.advance(Duration::from_secs(29));
    assert_eq!(v.get(&1).unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(v.get(&1).unwrap(), None);
}

#[test]
fn a_native_checkpoint_opens_as_a_backend_with_the_state_at_its_time() {
    let dir = TempDir::new("checkpoint");
    let b = open(&dir.path().join("live"));
    let s = service(b.clone());
    fill(&s);
    let cp = dir.path().join("cp-1");
    b.checkpoint_to(&cp).unwrap();
    s.scope_of(StageId::of_uid("op"), 0)
        .value::<String, u64>("v", None)
        .set("a", &77)
        .unwrap();
    let restored = open(&cp);
    check_filled(&service(restored.clone()));
    assert_eq!(snap(&*restored), {
        let m = Arc::new(InMemoryBackend::new());
        fill(&service(m.clone()));
        snap(&*m)
    });
    // The target must not exist yet: a second checkpoint there fails naming the operation.
    match b.checkpoint_to(&cp).unwrap_err() {
        StateError::Storage { operation, .. } => assert_eq!(operation, "checkpoint"),
        other => panic!("expected Storage, got {other:?}"),
    }
}

#[test]
fn the_default_options_bound_memory_explicitly() {
    let o = RocksDbOptions::default();
    assert_eq!(o.key_groups, KeyGroupRange::ALL);
    assert_eq!(o.block_cache_bytes, 32 << 20);
    assert_eq!(o.write_buffer_bytes, 16 << 20);
    assert_eq!(o.max_write_buffers, 2);
    assert!(!o.wal);
}
