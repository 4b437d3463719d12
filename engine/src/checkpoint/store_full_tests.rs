//! A full disk fails the checkpoint being written: its partial directory goes, the manifest is
//! never written for it, the older complete ones stay (retention runs only after a complete
//! write), and once space is free the next checkpoint completes.

use super::*;
use weir_graph::DiskFull;

fn root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-store-full-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn states(v: u8, with_files: bool) -> StageStates {
    let mut s = StageStates::new();
    s.insert(
        (StageId(1), 0),
        with_files.then(|| Snapshot::from_bytes(vec![v; 5])),
    );
    s.insert((StageId(2), 0), None);
    s
}

fn ids(r: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = list(r).unwrap().into_iter().map(|(id, _)| id).collect();
    v.sort();
    v
}

fn enospc_at(path: PathBuf) -> CheckpointError {
    CheckpointError::Io {
        path,
        reason: "No space left on device (os error 28)".into(),
    }
}

#[test]
fn a_full_disk_fails_the_checkpoint_removes_its_directory_and_keeps_the_last_good_one() {
    let r = root("stage-file");
    write(&r, 1, &states(1, true), 1).unwrap();
    write(&r, 2, &states(2, true), 1).unwrap();
    assert_eq!(ids(&r), vec![2]);
    let full = DiskFull::fill(&r);
    let e = write(&r, 3, &states(3, true), 1).unwrap_err();
    assert_eq!(
        e,
        enospc_at(checkpoint_dir(&r, 3).join(file_name(StageId(1), 0)))
    );
    // No half checkpoint: its directory is gone, checkpoint 2 is whole and restorable.
    assert_eq!(ids(&r), vec![2]);
    assert_eq!(latest(&r).unwrap().map(|c| c.id), Some(2));
    full.free();
    write(&r, 4, &states(4, true), 1).unwrap();
    assert_eq!(ids(&r), vec![4]);
    let c = latest(&r).unwrap().unwrap();
    assert_eq!(c.id, 4);
    assert_eq!(
        c.states.get(&(StageId(1), 0)),
        Some(&Snapshot::from_bytes(vec![4; 5]))
    );
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_full_disk_during_the_manifest_write_leaves_no_manifest() {
    let r = root("manifest");
    write(&r, 1, &states(1, false), 3).unwrap();
    let full = DiskFull::fill(&r);
    // No stage has state: the manifest is the only file, and its write fails.
    let e = write(&r, 2, &states(2, false), 3).unwrap_err();
    assert_eq!(e, enospc_at(checkpoint_dir(&r, 2).join(".MANIFEST.tmp")));
    assert_eq!(ids(&r), vec![1]);
    assert!(!checkpoint_dir(&r, 2).exists());
    drop(full);
    write(&r, 3, &states(3, false), 3).unwrap();
    assert_eq!(ids(&r), vec![1, 3]);
    assert_eq!(latest(&r).unwrap().map(|c| c.id), Some(3));
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_savepoint_on_a_full_disk_fails_without_a_manifest() {
    let r = root("savepoint");
    let full = DiskFull::fill(&r);
    let e = write_dir(&r.join("sp"), 7, &states(7, true)).unwrap_err();
    assert_eq!(e, enospc_at(r.join("sp").join(file_name(StageId(1), 0))));
    assert!(!r.join("sp").join(MANIFEST).exists());
    drop(full);
    let _ = fs::remove_dir_all(&r);
}
