//! Incremental states in the store: increments build on the previous complete checkpoint's
//! base in the shared directory, a new base when they cannot (a failed or skipped previous
//! checkpoint, increments twice as large as the base, too many), retention removes shared files no
//! retained checkpoint lists, a corrupt increment falls back, a savepoint holds whole states.

use super::*;
use weir_graph::DiskFull;

fn root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-store-inc-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

/// An incremental snapshot whose whole state is `whole` and, with `since`, whose delta is
/// `delta`.
fn snap(whole: Vec<u8>, delta: Option<(u64, Vec<u8>)>) -> Snapshot {
    let s = Snapshot::deferred(move |out| {
        out.write_all(&whole)?;
        Ok(whole.len() as u64)
    });
    match delta {
        None => s.incremental(),
        Some((since, d)) => s.with_delta(since, move |out| {
            out.write_all(&d)?;
            Ok(d.len() as u64)
        }),
    }
}

fn states(s: Snapshot) -> StageStates {
    let mut m = StageStates::new();
    m.insert((StageId(7), 0), Some(s));
    m.insert((StageId(8), 0), Some(Snapshot::from_bytes(vec![1, 2])));
    m
}

/// The file names of stage 7's state in checkpoint `id`, base first.
fn parts(r: &Path, id: u64) -> Vec<(String, u64)> {
    let m = Manifest::read(&checkpoint_dir(r, id).join(MANIFEST)).unwrap();
    let e = m.entries.iter().find(|e| e.stage == StageId(7)).unwrap();
    e.parts.iter().map(|p| (p.name.clone(), p.len)).collect()
}

fn shared_files(r: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(r.join(SHARED))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn name(kind: &str, id: u64) -> String {
    format!("{}-0-{id}.{kind}", StageId(7))
}

fn shared(kind: &str, id: u64) -> (String, u64) {
    (format!("../shared/{}", name(kind, id)), 0)
}

/// `(name, len)` pairs with the lengths given.
fn sized(v: &[((String, u64), u64)]) -> Vec<(String, u64)> {
    v.iter().map(|((n, _), l)| (n.clone(), *l)).collect()
}

#[test]
fn increments_build_on_the_base_and_restore_as_its_files_in_order() {
    let r = root("chain");
    write(&r, 1, &states(snap(vec![1; 100], None)), 1).unwrap();
    write(
        &r,
        2,
        &states(snap(vec![2; 100], Some((1, vec![2; 10])))),
        1,
    )
    .unwrap();
    write(
        &r,
        3,
        &states(snap(vec![3; 100], Some((2, vec![3; 20])))),
        1,
    )
    .unwrap();
    assert_eq!(
        parts(&r, 3),
        sized(&[
            (shared("base", 1), 100),
            (shared("delta", 2), 10),
            (shared("delta", 3), 20)
        ])
    );
    // Retention kept only checkpoint 3, and every shared file it lists.
    assert_eq!(list(&r).unwrap().len(), 1);
    assert_eq!(
        shared_files(&r),
        vec![name("base", 1), name("delta", 2), name("delta", 3)]
    );
    let got = latest(&r).unwrap().unwrap();
    assert_eq!(got.id, 3);
    let files: Vec<PathBuf> = ["base", "delta", "delta"]
        .iter()
        .zip([1, 2, 3])
        .map(|(k, id)| r.join(SHARED).join(name(k, id)))
        .collect();
    assert_eq!(got.states[&(StageId(7), 0)], Snapshot::from_files(files));
    assert_eq!(
        got.states[&(StageId(8), 0)],
        Snapshot::from_bytes(vec![1, 2])
    );
    // The stage file of the plain stage stays in the checkpoint's own directory.
    assert!(
        checkpoint_dir(&r, 3)
            .join(file_name(StageId(8), 0))
            .exists()
    );
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_delta_on_a_checkpoint_the_store_does_not_hold_writes_a_new_base_and_retention_drops_the_old() {
    let r = root("rebase");
    write(&r, 1, &states(snap(vec![1; 100], None)), 1).unwrap();
    // Checkpoint 2 failed (never written): 3's delta builds on 2, so 3 is a new base.
    write(&r, 3, &states(snap(vec![3; 50], Some((2, vec![3; 10])))), 1).unwrap();
    assert_eq!(parts(&r, 3), sized(&[(shared("base", 3), 50)]));
    assert_eq!(shared_files(&r), vec![name("base", 3)]);
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn increments_twice_the_base_or_too_many_start_a_new_base() {
    let r = root("limits");
    write(&r, 1, &states(snap(vec![1; 15], None)), 2).unwrap();
    write(&r, 2, &states(snap(vec![2; 40], Some((1, vec![2; 15])))), 2).unwrap();
    write(&r, 3, &states(snap(vec![3; 50], Some((2, vec![3; 15])))), 2).unwrap();
    // 15 + 15 = 30: the increments are twice the base, so 4 is a base.
    write(&r, 4, &states(snap(vec![4; 60], Some((3, vec![4; 1])))), 2).unwrap();
    assert_eq!(
        parts(&r, 3),
        sized(&[
            (shared("base", 1), 15),
            (shared("delta", 2), 15),
            (shared("delta", 3), 15)
        ])
    );
    assert_eq!(parts(&r, 4), sized(&[(shared("base", 4), 60)]));
    // Checkpoints 3 and 4 are retained: the first chain stays until 3 goes.
    assert_eq!(
        shared_files(&r),
        vec![
            name("base", 1),
            name("delta", 2),
            name("delta", 3),
            name("base", 4)
        ]
    );
    let mut id = 4;
    for _ in 0..MAX_INCREMENTS {
        id += 1;
        write(
            &r,
            id,
            &states(snap(vec![0; 60], Some((id - 1, vec![5])))),
            2,
        )
        .unwrap();
    }
    assert_eq!(parts(&r, id).len(), 1 + MAX_INCREMENTS);
    write(
        &r,
        id + 1,
        &states(snap(vec![6; 70], Some((id, vec![6])))),
        2,
    )
    .unwrap();
    assert_eq!(parts(&r, id + 1), sized(&[(shared("base", id + 1), 70)]));
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_corrupt_or_missing_increment_falls_back_to_the_checkpoint_before_it() {
    let r = root("corrupt");
    write(&r, 1, &states(snap(vec![1; 100], None)), 3).unwrap();
    write(
        &r,
        2,
        &states(snap(vec![2; 100], Some((1, vec![2; 10])))),
        3,
    )
    .unwrap();
    write(
        &r,
        3,
        &states(snap(vec![3; 100], Some((2, vec![3; 20])))),
        3,
    )
    .unwrap();
    let d3 = r.join(SHARED).join(name("delta", 3));
    fs::write(&d3, [9u8; 20]).unwrap();
    let e = read(&checkpoint_dir(&r, 3)).unwrap_err();
    assert_eq!(
        e,
        CheckpointError::Corrupt {
            path: d3.clone(),
            reason: "checksum mismatch".into()
        }
    );
    let got = latest(&r).unwrap().unwrap();
    assert_eq!((got.id, got.skipped.clone()), (2, vec![e.to_string()]));
    assert_eq!(
        got.states[&(StageId(7), 0)].parts().map(<[PathBuf]>::len),
        Some(2)
    );
    // Without checkpoint 2's increment, 2 and 3 are both skipped: 1 (the base alone) restores.
    fs::remove_file(r.join(SHARED).join(name("delta", 2))).unwrap();
    let got = latest(&r).unwrap().unwrap();
    assert_eq!((got.id, got.skipped.len()), (1, 2));
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_savepoint_holds_the_whole_state_in_its_own_directory() {
    let r = root("savepoint");
    write(&r, 1, &states(snap(vec![1; 100], None)), 1).unwrap();
    let sp = r.join("sp");
    let s = snap(vec![2; 100], Some((1, vec![2; 10])));
    write_dir(&sp, 2, &states(s.clone())).unwrap();
    let m = Manifest::read(&sp.join(MANIFEST)).unwrap();
    let e = m.entries.iter().find(|e| e.stage == StageId(7)).unwrap();
    assert_eq!(
        e.parts
            .iter()
            .map(|p| (p.name.as_str(), p.len))
            .collect::<Vec<_>>(),
        vec![(file_name(StageId(7), 0).as_str(), 100)]
    );
    assert_eq!(
        read(&sp).unwrap().states[&(StageId(7), 0)],
        Snapshot::from_bytes(vec![2; 100])
    );
    // The checkpoint of the same barrier still takes the increment.
    write(&r, 2, &states(s), 1).unwrap();
    assert_eq!(
        parts(&r, 2),
        sized(&[(shared("base", 1), 100), (shared("delta", 2), 10)])
    );
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_full_disk_removes_the_shared_files_the_failed_checkpoint_wrote() {
    let r = root("full");
    write(&r, 1, &states(snap(vec![1; 100], None)), 1).unwrap();
    let full = DiskFull::fill(&r);
    let e = write(
        &r,
        2,
        &states(snap(vec![2; 100], Some((1, vec![2; 10])))),
        1,
    )
    .unwrap_err();
    assert_eq!(
        e,
        CheckpointError::Io {
            path: r.join(SHARED).join(name("delta", 2)),
            reason: "No space left on device (os error 28)".into(),
        }
    );
    drop(full);
    assert_eq!(shared_files(&r), vec![name("base", 1)]);
    assert!(!checkpoint_dir(&r, 2).exists());
    // The next checkpoint builds on 1 again.
    write(
        &r,
        3,
        &states(snap(vec![3; 100], Some((1, vec![3; 10])))),
        1,
    )
    .unwrap();
    assert_eq!(
        parts(&r, 3),
        sized(&[(shared("base", 1), 100), (shared("delta", 3), 10)])
    );
    let _ = fs::remove_dir_all(&r);
}
