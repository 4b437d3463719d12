//! The store's formats and its fallback over corrupt and partial checkpoints.

use super::*;

fn root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-store-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn states(v: u8) -> StageStates {
    let mut s = StageStates::new();
    s.insert((StageId(1), 0), Some(Snapshot::from_bytes(vec![v; 5])));
    s.insert((StageId(1), 1), Some(Snapshot::from_bytes(vec![v + 1])));
    s.insert((StageId(2), 0), None);
    s
}

fn expected(id: u64, v: u8) -> Restored {
    let mut m = HashMap::new();
    m.insert((StageId(1), 0), Snapshot::from_bytes(vec![v; 5]));
    m.insert((StageId(1), 1), Snapshot::from_bytes(vec![v + 1]));
    let stages = [(StageId(1), 0), (StageId(1), 1), (StageId(2), 0)].into();
    // Stage 2's one subtask acknowledged without state: it still counts for the parallelism.
    let parallelism = HashMap::from([(StageId(1), 2), (StageId(2), 1)]);
    Restored {
        id,
        states: m,
        stages,
        parallelism,
        skipped: Vec::new(),
    }
}

#[test]
fn a_written_checkpoint_reads_back_and_retention_keeps_the_newest() {
    let r = root("roundtrip");
    assert_eq!(latest(&r).unwrap(), None);
    for id in 1..=4 {
        write(&r, id, &states(id as u8), 2).unwrap();
    }
    assert_eq!(latest(&r).unwrap(), Some(expected(4, 4)));
    let mut left: Vec<_> = list(&r).unwrap().into_iter().map(|(id, _)| id).collect();
    left.sort();
    assert_eq!(left, vec![3, 4]);
    assert_eq!(newest_id(&r).unwrap(), Some(4));
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn corrupt_and_partial_checkpoints_fall_back_to_the_previous_one() {
    let r = root("fallback");
    for id in 1..=4 {
        write(&r, id, &states(id as u8), 10).unwrap();
    }
    // 4: no manifest (being written); 3: a stage file changed; 2: a stage file missing.
    fs::remove_file(checkpoint_dir(&r, 4).join(MANIFEST)).unwrap();
    let f3 = checkpoint_dir(&r, 3).join(file_name(StageId(1), 0));
    fs::write(&f3, [9u8; 5]).unwrap();
    let e = read(&checkpoint_dir(&r, 3)).unwrap_err();
    assert_eq!(
        e,
        CheckpointError::Corrupt {
            path: f3.clone(),
            reason: "checksum mismatch".into()
        }
    );
    let f2 = checkpoint_dir(&r, 2).join(file_name(StageId(1), 1));
    fs::remove_file(&f2).unwrap();
    let e2 = read(&checkpoint_dir(&r, 2)).unwrap_err();
    assert!(matches!(&e2, CheckpointError::Corrupt { path, .. } if *path == f2));
    // The fallback names what it skipped, newest first.
    let mut fell_back = expected(1, 1);
    fell_back.skipped = vec![e.to_string(), e2.to_string()];
    assert_eq!(latest(&r).unwrap(), Some(fell_back));
    // With every one corrupt, the newest corrupt file is named.
    let m1 = checkpoint_dir(&r, 1).join(MANIFEST);
    let text = fs::read_to_string(&m1).unwrap().replace("id 1", "id 7");
    fs::write(&m1, text).unwrap();
    assert_eq!(
        read(&checkpoint_dir(&r, 1)).unwrap_err(),
        CheckpointError::Manifest {
            path: m1,
            reason: "checksum mismatch".into()
        }
    );
    assert_eq!(
        latest(&r).unwrap_err(),
        CheckpointError::Corrupt {
            path: f3,
            reason: "checksum mismatch".into()
        }
    );
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_truncated_stage_file_is_named_with_its_length() {
    let r = root("truncated");
    write(&r, 1, &states(3), 3).unwrap();
    let f = checkpoint_dir(&r, 1).join(file_name(StageId(1), 0));
    fs::write(&f, [3u8; 2]).unwrap();
    assert_eq!(
        latest(&r).unwrap_err(),
        CheckpointError::Corrupt {
            path: f,
            reason: "2 bytes, the manifest says 5".into()
        }
    );
    let _ = fs::remove_dir_all(&r);
}

/// A deferred snapshot that writes `bytes` (in small pieces) and counts its runs.
fn deferred(bytes: Vec<u8>, runs: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Snapshot {
    Snapshot::deferred(move |out| {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for c in bytes.chunks(3) {
            out.write_all(c)?;
        }
        Ok(bytes.len() as u64)
    })
}

#[test]
fn a_deferred_snapshot_is_streamed_once_and_later_checkpoints_copy_it() {
    let r = root("deferred");
    let sp = root("deferred-sp");
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let payload: Vec<u8> = (0..100u8).collect();
    let mut s = StageStates::new();
    s.insert(
        (StageId(7), 0),
        Some(deferred(payload.clone(), runs.clone())),
    );
    s.insert((StageId(7), 1), Some(Snapshot::from_bytes(vec![1, 2])));
    // A savepoint and its checkpoint, then the same (finished) state in three later checkpoints
    // with retention 1: each copies the newest file, the writer runs once.
    write_dir(&sp, 1, &s).unwrap();
    for id in 1..=4 {
        write(&r, id, &s, 1).unwrap();
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let want = HashMap::from([
        ((StageId(7), 0), Snapshot::from_bytes(payload.clone())),
        ((StageId(7), 1), Snapshot::from_bytes(vec![1, 2])),
    ]);
    let back = latest(&r).unwrap().unwrap();
    assert_eq!((back.id, &back.states), (4, &want));
    assert_eq!(read(&sp).unwrap().states, want);
    let manifest = fs::read_to_string(checkpoint_dir(&r, 4).join(MANIFEST)).unwrap();
    assert!(
        manifest.contains(&format!(
            "{} 100 {:016x}\n",
            file_name(StageId(7), 0),
            xxh3_64(&payload)
        )),
        "{manifest}"
    );
    let _ = fs::remove_dir_all(&r);
    let _ = fs::remove_dir_all(&sp);
}

#[test]
fn a_failing_deferred_snapshot_fails_the_checkpoint_naming_the_file() {
    let r = root("deferred-fails");
    write(&r, 1, &states(1), 3).unwrap();
    let mut s = StageStates::new();
    s.insert(
        (StageId(3), 0),
        Some(Snapshot::deferred(|_| {
            Err(weir_graph::SnapshotError::Write("no space left".into()))
        })),
    );
    let e = write(&r, 2, &s, 3).unwrap_err();
    let path = checkpoint_dir(&r, 2).join(file_name(StageId(3), 0));
    assert_eq!(
        e,
        CheckpointError::Io {
            path,
            reason: "cannot write the stage state: no space left".into()
        }
    );
    // No manifest: the previous checkpoint is still the latest.
    assert_eq!(latest(&r).unwrap(), Some(expected(1, 1)));
    let _ = fs::remove_dir_all(&r);
}
