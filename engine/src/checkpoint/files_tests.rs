//! A checkpoint as a list of files: what it lists, a copy into another root restores the same
//! states, and a changed file or a manifest that lies is refused.

use super::super::store::{checkpoint_dir, latest, write};
use super::*;
use crate::checkpoint::store::StageStates;
use weir_graph::{Snapshot, StageId};

fn root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-files-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

/// Stage 7 keeps its state incrementally (a base at 1, increments at 2 and 3), stage 8 whole.
fn states(id: u64) -> StageStates {
    let whole = vec![id as u8; 100];
    let mut s = Snapshot::deferred(move |out| {
        out.write_all(&whole)?;
        Ok(whole.len() as u64)
    });
    s = if id == 1 {
        s.incremental()
    } else {
        let d = vec![id as u8; 10];
        s.with_delta(id - 1, move |out| {
            out.write_all(&d)?;
            Ok(d.len() as u64)
        })
    };
    let mut m = StageStates::new();
    m.insert((StageId(7), 0), Some(s));
    m.insert(
        (StageId(8), 0),
        Some(Snapshot::from_bytes(vec![id as u8; 3])),
    );
    m.insert((StageId(9), 0), None);
    m
}

fn file(rel: String, shared: bool, bytes: &[u8]) -> CheckpointFile {
    CheckpointFile {
        rel,
        shared,
        len: bytes.len() as u64,
        sum: xxhash_rust::xxh3::xxh3_64(bytes),
    }
}

#[test]
fn a_checkpoint_lists_its_own_files_and_the_shared_base_and_increments() {
    let r = root("list");
    for id in 1..=3 {
        write(&r, id, &states(id), 5).unwrap();
    }
    let (text, mut files) = checkpoint_files(&r, 3).unwrap();
    assert!(text.starts_with("weir-checkpoint 2\nid 3\n"));
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let chk = format!("chk-{:020}", 3);
    let mut want = vec![
        file(format!("{chk}/{}-0.state", StageId(8)), false, &[3; 3]),
        file(format!("shared/{}-0-1.base", StageId(7)), true, &[1; 100]),
        file(format!("shared/{}-0-2.delta", StageId(7)), true, &[2; 10]),
        file(format!("shared/{}-0-3.delta", StageId(7)), true, &[3; 10]),
    ];
    want.sort_by(|a, b| a.rel.cmp(&b.rel));
    assert_eq!(files, want);
    for f in &files {
        verify_file(&local_path(&r, f), f).unwrap();
    }
    check(&r, 3).unwrap();
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn files_copied_into_another_root_with_the_manifest_installed_last_restore_the_same_states() {
    let (a, b) = (root("copy-a"), root("copy-b"));
    for id in 1..=3 {
        write(&a, id, &states(id), 5).unwrap();
    }
    let (text, files) = checkpoint_files(&a, 3).unwrap();
    for f in &files {
        let to = local_path(&b, f);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(local_path(&a, f), &to).unwrap();
    }
    // Until the manifest is there, the copy is not a checkpoint.
    assert_eq!(latest(&b).unwrap(), None);
    install_manifest(&b, 3, &text).unwrap();
    check(&b, 3).unwrap();
    let (ra, rb) = (latest(&a).unwrap().unwrap(), latest(&b).unwrap().unwrap());
    assert_eq!(rb.id, 3);
    assert_eq!(rb.stages, ra.stages);
    assert_eq!(rb.parallelism, ra.parallelism);
    // A state's one buffer, or its files (base and increments) in order.
    let read_all = |s: &Snapshot| -> Vec<u8> {
        match s.parts() {
            Some(parts) => parts.iter().flat_map(|p| fs::read(p).unwrap()).collect(),
            None => s.as_bytes().to_vec(),
        }
    };
    for (k, s) in &ra.states {
        assert_eq!(read_all(&rb.states[k]), read_all(s), "stage {k:?}");
    }
    let _ = fs::remove_dir_all(&a);
    let _ = fs::remove_dir_all(&b);
}

#[test]
fn a_changed_or_missing_file_fails_the_check_naming_it() {
    let r = root("corrupt");
    for id in 1..=2 {
        write(&r, id, &states(id), 5).unwrap();
    }
    let delta = r.join(SHARED).join(format!("{}-0-2.delta", StageId(7)));
    fs::write(&delta, [9u8; 10]).unwrap();
    match check(&r, 2) {
        Err(CheckpointError::Corrupt { path, reason }) => {
            assert_eq!(path, delta);
            assert_eq!(reason, "checksum mismatch");
        }
        other => panic!("{other:?}"),
    }
    fs::remove_file(&delta).unwrap();
    assert!(matches!(check(&r, 2), Err(CheckpointError::Corrupt { path, .. }) if path == delta));
    fs::remove_dir_all(checkpoint_dir(&r, 2)).unwrap();
    assert!(matches!(check(&r, 2), Err(CheckpointError::Io { .. })));
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn a_manifest_of_another_id_a_changed_line_or_a_path_outside_the_root_is_refused() {
    let r = root("refuse");
    write(&r, 4, &states(1), 5).unwrap();
    let (text, _) = checkpoint_files(&r, 4).unwrap();
    let other = root("refuse-other");
    let e = install_manifest(&other, 5, &text).unwrap_err();
    assert!(
        e.to_string().contains("it is the manifest of checkpoint 4"),
        "{e}"
    );
    let changed = text.replacen("stage", "stagE", 1);
    assert!(matches!(
        install_manifest(&other, 4, &changed),
        Err(CheckpointError::Manifest { .. })
    ));
    assert!(!checkpoint_dir(&other, 4).join(MANIFEST).exists());
    // A well-formed manifest naming a file outside the checkpoint root.
    let body = format!(
        "weir-checkpoint 2\nid 4\nstage {} 0 ../../etc-passwd 3 0000000000000000\n",
        StageId(8)
    );
    let evil = format!(
        "{body}end {:016x}\n",
        xxhash_rust::xxh3::xxh3_64(body.as_bytes())
    );
    let e = manifest_files(&other, 4, &evil).unwrap_err();
    assert!(e.to_string().contains("names the file"), "{e}");
    let _ = fs::remove_dir_all(&r);
}
