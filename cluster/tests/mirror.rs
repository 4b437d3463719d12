//! Checkpoint copies on the job's store: a copy restores on an empty disk exactly as the
//! original, shared increments go up once, a local copy that is missing or corrupt is replaced
//! from the store, a checkpoint in neither place is an error naming it, copies no restore can
//! need are deleted, and the commit hook records a checkpoint only once its copy is stored.

use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::commit::{CommitLog, CommitStatus, local_store};
use weir_cluster::epoch::{Epoch, FencedStorage, MemoryEpochStore};
use weir_cluster::mirror::{CheckpointMirror, Ensured, MirrorError, Mirrored, node_prefix};
use weir_cluster::object_store::memory::InMemory;
use weir_cluster::object_store::path::Path as ObjPath;
use weir_cluster::object_store::{ObjectStore, ObjectStoreExt};
use weir_engine::checkpoint::CheckpointCommit;
use weir_engine::checkpoint::files;
use weir_engine::checkpoint::store::{self, StageStates};
use weir_graph::{Snapshot, StageId};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-mirror-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Stage 7 incremental (a base at 1, then increments), stage 8 whole, stage 9 stateless.
fn states(id: u64, whole_len: usize) -> StageStates {
    let whole = vec![id as u8; whole_len];
    let s = Snapshot::deferred(move |out| {
        out.write_all(&whole)?;
        Ok(whole.len() as u64)
    });
    let s = if id == 1 {
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

/// A restored state's bytes: its one buffer, or its files (base and increments) in order.
fn bytes_of(s: &Snapshot) -> Vec<u8> {
    match s.parts() {
        Some(parts) => parts
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect(),
        None => s.as_bytes().to_vec(),
    }
}

/// The restored states of checkpoint `id` in `root`, as bytes by stage.
fn restored(root: &Path) -> (u64, Vec<((StageId, usize), Vec<u8>)>) {
    let r = store::latest(root).unwrap().unwrap();
    let mut v: Vec<_> = r.states.iter().map(|(k, s)| (*k, bytes_of(s))).collect();
    v.sort();
    (r.id, v)
}

async fn keys(store: &Arc<dyn ObjectStore>, prefix: &ObjPath) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(Some(prefix))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    v.sort();
    v
}

#[tokio::test]
async fn a_copy_restores_on_an_empty_disk_as_the_original_and_increments_go_up_once() {
    let (a, b) = (dir("copy-a"), dir("copy-b"));
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let up = CheckpointMirror::new(Arc::clone(&store), node_prefix(1), &a);
    store::write(&a, 1, &states(1, 100), 5).unwrap();
    let t1 = up.upload(1).await.unwrap();
    // The base, stage 8's file and the manifest.
    assert_eq!(t1.files, 3);
    assert_eq!(t1.reused, 0);
    store::write(&a, 2, &states(2, 100), 5).unwrap();
    let t2 = up.upload(2).await.unwrap();
    // The base is on the store already: only the increment, stage 8's file and the manifest.
    assert_eq!((t2.files, t2.reused), (3, 1));
    assert_eq!(up.stored().await.unwrap(), vec![1, 2]);

    // A mirror that never uploaded (a new process) finds the base by its content name.
    let again = CheckpointMirror::new(Arc::clone(&store), node_prefix(1), &a);
    assert_eq!(again.upload(2).await.unwrap().reused, 2);

    let down = CheckpointMirror::new(Arc::clone(&store), node_prefix(1), &b);
    let t = down.download(2).await.unwrap();
    assert_eq!(t.files, 4);
    files::check(&b, 2).unwrap();
    assert_eq!(restored(&b), restored(&a));
    // Node 1's copies are its own: node 2's prefix is empty.
    let other = CheckpointMirror::new(Arc::clone(&store), node_prefix(2), &b);
    assert_eq!(other.stored().await.unwrap(), Vec::<u64>::new());
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[tokio::test]
async fn a_missing_or_corrupt_local_restore_point_comes_from_the_store() {
    let root = dir("ensure");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let m = CheckpointMirror::new(Arc::clone(&store), node_prefix(0), &root);
    for id in 1..=3 {
        store::write(&root, id, &states(id, 50), 5).unwrap();
        m.upload(id).await.unwrap();
    }
    let want = restored(&root);
    assert_eq!(m.ensure(3).await.unwrap(), Ensured::Local);

    // An increment changed on disk: the restore would fall back to checkpoint 2.
    let delta = root
        .join(store::SHARED)
        .join(format!("{}-0-3.delta", StageId(7)));
    std::fs::write(&delta, [0u8; 10]).unwrap();
    match m.ensure(3).await.unwrap() {
        Ensured::Downloaded { transfer, local } => {
            assert!(local.contains("checksum mismatch"), "{local}");
            // The base and the first increment verified locally and stayed.
            assert_eq!(transfer.files, 3, "{transfer:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(restored(&root), want);

    // The whole disk is gone.
    std::fs::remove_dir_all(&root).unwrap();
    assert!(matches!(
        m.ensure(3).await.unwrap(),
        Ensured::Downloaded { .. }
    ));
    assert_eq!(restored(&root), want);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_restore_point_in_neither_place_or_corrupt_on_the_store_is_an_error_naming_it() {
    let root = dir("missing");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let m = CheckpointMirror::new(Arc::clone(&store), node_prefix(0), &root);
    match m.ensure(4).await {
        Err(e @ MirrorError::Missing { id: 4, .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("checkpoint 4 is neither in"), "{text}");
            assert!(text.contains("chk-00000000000000000004/MANIFEST"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    store::write(&root, 4, &states(1, 50), 5).unwrap();
    m.upload(4).await.unwrap();
    // The store's copy of stage 8's file changed; the local one is gone.
    let key = ObjPath::from(format!(
        "checkpoints/n0000/chk-{:020}/{}-0.state",
        4,
        StageId(8)
    ));
    store.put(&key, vec![9u8; 3].into()).await.unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let e = m.ensure(4).await.unwrap_err().to_string();
    assert!(e.contains("does not match its manifest"), "{e}");
    // Nothing half-copied is taken for a checkpoint.
    assert!(store::latest(&root).unwrap().is_none());
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn copies_older_than_a_completed_checkpoint_and_unlisted_increments_are_deleted() {
    let root = dir("retain");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let m = CheckpointMirror::new(Arc::clone(&store), node_prefix(0), &root);
    for id in 1..=3 {
        store::write(&root, id, &states(id, 50), 5).unwrap();
        m.upload(id).await.unwrap();
    }
    let base = format!("{}-0-1.base", StageId(7));
    // 1 and 2 go; the base and both increments stay (checkpoint 3 lists them).
    assert_eq!(m.retain_from(3).await.unwrap(), 4);
    assert_eq!(m.stored().await.unwrap(), vec![3]);
    let left = keys(&store, &node_prefix(0)).await;
    assert_eq!(left.len(), 5, "{left:?}");
    assert_eq!(left.iter().filter(|k| k.contains("/shared/")).count(), 3);
    assert!(left.iter().any(|k| k.ends_with(&base)));
    // A checkpoint with a new base: the old chain goes once 4 is complete.
    std::fs::remove_dir_all(&root).unwrap();
    store::write(&root, 4, &states(1, 60), 5).unwrap();
    m.upload(4).await.unwrap();
    m.retain_from(4).await.unwrap();
    assert_eq!(m.stored().await.unwrap(), vec![4]);
    let left = keys(&store, &node_prefix(0)).await;
    assert_eq!(left.len(), 3, "{left:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_large_state_goes_up_in_parts_and_comes_back_whole() {
    let (a, b, s) = (dir("large-a"), dir("large-b"), dir("large-store"));
    let store = local_store(&s).unwrap();
    let up = CheckpointMirror::new(Arc::clone(&store), node_prefix(0), &a);
    // 20 MiB of a pattern: three parts of 8 MiB.
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut m = StageStates::new();
    m.insert((StageId(1), 0), Some(Snapshot::from_bytes(big.clone())));
    store::write(&a, 1, &m, 1).unwrap();
    let t = up.upload(1).await.unwrap();
    assert_eq!(t.files, 2);
    assert!(t.bytes > 20 << 20);
    let down = CheckpointMirror::new(Arc::clone(&store), node_prefix(0), &b);
    down.download(1).await.unwrap();
    let r = store::latest(&b).unwrap().unwrap();
    assert_eq!(bytes_of(&r.states[&(StageId(1), 0)]), big);
    for d in [&a, &b, &s] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn the_commit_hook_records_a_checkpoint_only_after_its_copy_is_stored() {
    let root = dir("hook");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let fences = FencedStorage::new(Arc::new(MemoryEpochStore::new()));
    let fence = fences.begin(Epoch(1)).unwrap();
    let job = ObjPath::from("job");
    let log = || {
        CommitLog::new(Arc::clone(&store), &job, 0, 1, fence.clone())
            .with_timeout(Duration::from_millis(200))
    };
    let mirror = Arc::new(CheckpointMirror::new(
        Arc::clone(&store),
        node_prefix(0),
        &root,
    ));
    let hook = Mirrored::new(Arc::clone(&mirror), log());
    // Checkpoint 1 was never written here: the copy fails, nothing is recorded.
    let e = hook.prepared(1, false).await.unwrap_err();
    assert!(e.starts_with("copying it to the store failed: "), "{e}");
    assert_eq!(log().status(1, false).await.unwrap(), CommitStatus::Waiting);
    for id in 1..=2 {
        store::write(&root, id, &states(id, 40), 5).unwrap();
        hook.prepared(id, false).await.unwrap();
        assert_eq!(
            log().status(id, false).await.unwrap(),
            CommitStatus::Complete
        );
    }
    // Complete at 2: the copy of 1 went.
    assert_eq!(mirror.stored().await.unwrap(), vec![2]);
    let _ = std::fs::remove_dir_all(&root);
}
