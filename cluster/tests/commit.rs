//! The commit log: a checkpoint completes once every node of the attempt wrote it; restarts
//! restore the newest checkpoint every node wrote; older attempts neither complete a newer
//! one's checkpoints nor record once a newer attempt started.

use std::sync::Arc;
use std::time::Duration;
use weir_cluster::commit::{CommitLog, CommitStatus, RestorePoint, restore_point};
use weir_cluster::epoch::{Epoch, FencedStorage, MemoryEpochStore};
use weir_cluster::object_store::ObjectStore;
use weir_cluster::object_store::memory::InMemory;
use weir_cluster::object_store::path::Path;
use weir_engine::checkpoint::CheckpointCommit;

fn setup() -> (Arc<dyn ObjectStore>, FencedStorage, Path) {
    (
        Arc::new(InMemory::new()),
        FencedStorage::new(Arc::new(MemoryEpochStore::new())),
        Path::from("job"),
    )
}

fn logs(
    store: &Arc<dyn ObjectStore>,
    fences: &FencedStorage,
    job: &Path,
    epoch: u64,
    n: usize,
) -> Vec<CommitLog> {
    let fence = fences.begin(Epoch(epoch)).unwrap();
    (0..n)
        .map(|i| {
            CommitLog::new(Arc::clone(store), job, i, n, fence.clone())
                .with_timeout(Duration::from_millis(200))
        })
        .collect()
}

#[tokio::test]
async fn a_checkpoint_completes_only_once_every_node_wrote_it() {
    let (store, fences, job) = setup();
    let l = logs(&store, &fences, &job, 1, 3);
    let first = tokio::spawn(l[0].prepared(1, false));
    let second = tokio::spawn(l[1].prepared(1, false));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!first.is_finished() && !second.is_finished());
    assert_eq!(
        restore_point(&store, &job, 3).await.unwrap(),
        RestorePoint::Fresh
    );
    l[2].prepared(1, false).await.unwrap();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(
        restore_point(&store, &job, 3).await.unwrap(),
        RestorePoint::Checkpoint(1)
    );
}

#[tokio::test]
async fn a_checkpoint_a_node_never_writes_fails_after_the_timeout() {
    let (store, fences, job) = setup();
    let l = logs(&store, &fences, &job, 1, 2);
    let err = l[0].prepared(4, false).await.unwrap_err();
    assert_eq!(err, "not every node wrote it within 200 ms");
    assert_eq!(
        restore_point(&store, &job, 2).await.unwrap(),
        RestorePoint::Fresh
    );
}

#[tokio::test]
async fn the_newest_checkpoint_every_node_wrote_is_the_restore_point_across_attempts() {
    let (store, fences, job) = setup();
    let one = logs(&store, &fences, &job, 1, 2);
    for id in 1..=3 {
        one[0].record(id, false).await.unwrap();
        one[1].record(id, false).await.unwrap();
    }
    // Node 0 wrote 4, node 1 died first.
    one[0].record(4, false).await.unwrap();
    assert_eq!(
        restore_point(&store, &job, 2).await.unwrap(),
        RestorePoint::Checkpoint(3)
    );
    // The next attempt numbers from 4 again; attempt 1's record of 4 counts for nothing.
    let two = logs(&store, &fences, &job, 2, 2);
    two[1].record(4, false).await.unwrap();
    assert!(!two[1].complete(4, false).await.unwrap());
    assert_eq!(
        restore_point(&store, &job, 2).await.unwrap(),
        RestorePoint::Checkpoint(3)
    );
    two[0].record(4, false).await.unwrap();
    assert!(two[1].complete(4, false).await.unwrap());
    assert_eq!(
        restore_point(&store, &job, 2).await.unwrap(),
        RestorePoint::Checkpoint(4)
    );
    assert_eq!(RestorePoint::Checkpoint(4).for_node(1), 4);
    assert_eq!(RestorePoint::Fresh.for_node(1), 0);
}

#[tokio::test]
async fn last_checkpoints_of_every_node_finish_the_job_each_at_its_own_id() {
    let (store, fences, job) = setup();
    let l = logs(&store, &fences, &job, 1, 2);
    l[0].record(5, false).await.unwrap();
    l[1].record(5, false).await.unwrap();
    // Node 0's run ended at 6, node 1's at 7 (it took one more barrier first).
    let zero = tokio::spawn(l[0].prepared(6, true));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!zero.is_finished());
    l[1].prepared(7, true).await.unwrap();
    zero.await.unwrap().unwrap();
    let rp = restore_point(&store, &job, 2).await.unwrap();
    assert_eq!(rp, RestorePoint::Finished(vec![6, 7]));
    assert_eq!((rp.for_node(0), rp.for_node(1)), (6, 7));
}

#[tokio::test]
async fn a_checkpoint_after_a_nodes_last_one_completes_without_it_and_restores_its_final_state() {
    let (store, fences, job) = setup();
    let l = logs(&store, &fences, &job, 1, 3);
    for log in &l {
        log.record(4, false).await.unwrap();
    }
    // Node 2's run ended at 5 (every node wrote 5, so its last checkpoint is complete).
    l[0].record(5, false).await.unwrap();
    l[1].record(5, false).await.unwrap();
    l[2].prepared(5, true).await.unwrap();
    // Nodes 0 and 1 still run: checkpoint 6 needs them both, and never node 2.
    l[0].record(6, false).await.unwrap();
    assert_eq!(l[0].status(6, false).await.unwrap(), CommitStatus::Waiting);
    l[1].prepared(6, false).await.unwrap();
    assert_eq!(l[0].status(6, false).await.unwrap(), CommitStatus::Complete);
    let rp = restore_point(&store, &job, 3).await.unwrap();
    assert_eq!(
        rp,
        RestorePoint::Draining {
            id: 6,
            finished: [(2, 5)].into()
        }
    );
    // Node 2 restores its final state; all number their checkpoints after 6.
    assert_eq!((rp.for_node(0), rp.for_node(1), rp.for_node(2)), (6, 6, 5));
    assert_eq!(rp.number_after(), 6);
    // A node's last checkpoint is no excuse for the checkpoints up to it.
    assert_eq!(l[0].status(5, false).await.unwrap(), CommitStatus::Complete);
}

#[tokio::test]
async fn an_older_attempt_cannot_record_once_a_newer_one_started() {
    let (store, fences, job) = setup();
    let old = logs(&store, &fences, &job, 1, 2);
    let _new = logs(&store, &fences, &job, 2, 2);
    let err = old[0].record(1, false).await.unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
    let err = old[0].prepared(1, false).await.unwrap_err();
    assert!(err.contains("epoch 1") && err.contains("epoch 2"), "{err}");
    assert_eq!(
        restore_point(&store, &job, 2).await.unwrap(),
        RestorePoint::Fresh
    );
}

#[tokio::test]
async fn a_checkpoint_that_failed_on_one_node_fails_on_the_others_at_once() {
    let (store, fences, job) = setup();
    let l = logs(&store, &fences, &job, 1, 3);
    let waiting = tokio::spawn(l[0].prepared(2, false));
    tokio::time::sleep(Duration::from_millis(20)).await;
    l[1].aborted(2).await;
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err, "it failed on node 1");
    assert_eq!(
        restore_point(&store, &job, 3).await.unwrap(),
        RestorePoint::Fresh
    );
}
