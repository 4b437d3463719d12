//! The coordinator's bookkeeping: which checkpoint holds a finishing stage's final state, and
//! when the final checkpoint is written.

use super::*;

fn coordinator(name: &str) -> (Coordinator, mpsc::UnboundedReceiver<Done>, PathBuf) {
    let d = std::env::temp_dir().join(format!("weir-coord-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let c = Coordinator::open(CheckpointConfig::new(Duration::from_secs(1), &d)).unwrap();
    let rx = lock(&c.rx).take().unwrap();
    (c, rx, d)
}

fn snap(b: u8) -> Option<Snapshot> {
    Some(Snapshot::from_bytes(vec![b]))
}

const A: StageId = StageId(1);
const B: StageId = StageId(2);

#[test]
fn a_final_state_goes_into_a_checkpoint_the_stage_has_not_acknowledged() {
    let (c, mut rx, d) = coordinator("cover");
    c.expect(A, 0);
    c.expect(B, 0);
    // Checkpoint 1 is pending; A acknowledged it, then finishes with more state.
    lock(&c.state).pending.insert(1, StageStates::new());
    c.next_id.store(2, Ordering::Release);
    c.ack(1, A, 0, snap(1));
    assert_eq!(c.finish_waiting(A, 0, snap(2)), 2);
    assert!(rx.try_recv().is_err());
    // B finishes too: the final checkpoint 2 holds both final states; 1 is subsumed.
    c.finished(B, 0, snap(3));
    let done = rx.try_recv().unwrap();
    assert_eq!(done.id, 2);
    assert_eq!(
        done.states.into_iter().collect::<Vec<_>>(),
        vec![((A, 0), snap(2)), ((B, 0), snap(3))]
    );
    assert!(rx.try_recv().is_err());
    assert!(lock(&c.state).pending.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_pending_checkpoint_not_yet_acknowledged_takes_the_final_state() {
    let (c, mut rx, d) = coordinator("pending");
    c.expect(A, 0);
    c.expect(B, 0);
    lock(&c.state).pending.insert(4, StageStates::new());
    c.next_id.store(5, Ordering::Release);
    assert_eq!(c.finish_waiting(A, 0, snap(7)), 4);
    // B acknowledges 4: it completes with A's final state; no final checkpoint is needed.
    c.ack(4, B, 0, snap(8));
    let done = rx.try_recv().unwrap();
    assert_eq!(done.id, 4);
    assert_eq!(
        done.states.into_iter().collect::<Vec<_>>(),
        vec![((A, 0), snap(7)), ((B, 0), snap(8))]
    );
    c.finished(B, 0, None);
    assert!(rx.try_recv().is_err());
    assert_eq!(c.next_id.load(Ordering::Acquire), 5);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_declined_checkpoint_fails_and_a_later_one_still_completes() {
    let (c, mut rx, d) = coordinator("decline");
    c.expect(A, 0);
    lock(&c.state).pending.insert(1, StageStates::new());
    lock(&c.state).pending.insert(2, StageStates::new());
    c.decline(1, "zip");
    assert_eq!(c.handle().failed(), vec![1]);
    // A late acknowledgement of the declined one changes nothing.
    c.ack(1, A, 0, snap(1));
    assert!(rx.try_recv().is_err());
    c.ack(2, A, 0, snap(2));
    assert_eq!(rx.try_recv().unwrap().id, 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn the_history_records_failed_skipped_and_completed_checkpoints_with_their_sizes() {
    use super::super::{CheckpointRecord, CheckpointStatus, CheckpointTotals};
    let (c, mut rx, d) = coordinator("history");
    let clock = crate::VirtualClock::new();
    let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
    c.first_barrier(&clock_dyn);
    c.epoch_ms.store(1_000_000, Ordering::Relaxed);
    c.expect(A, 0);
    {
        let mut s = lock(&c.state);
        for (id, at) in [(1, 100), (2, 200), (3, 300)] {
            s.pending.insert(id, StageStates::new());
            s.triggered.insert(id, Duration::from_millis(at));
        }
    }
    clock.advance(Duration::from_millis(350));
    c.decline(1, "zip#2");
    // 3 completes first: 2 is subsumed.
    c.ack(3, A, 0, snap(9));
    let done = rx.try_recv().unwrap();
    assert_eq!(done.id, 3);
    clock.advance(Duration::from_millis(50));
    c.write(done, &clock_dyn).await;
    let manifest = std::fs::metadata(d.join("chk-00000000000000000003").join("MANIFEST"))
        .unwrap()
        .len();
    let reason = "declined by 'zip#2', which cannot align its inputs without stalling";
    assert_eq!(
        c.handle().history(),
        vec![
            CheckpointRecord {
                id: 1,
                started_at_ms: 1_000_100,
                duration: Duration::from_millis(250),
                bytes: 0,
                status: CheckpointStatus::Failed(reason.into()),
            },
            CheckpointRecord {
                id: 2,
                started_at_ms: 1_000_200,
                duration: Duration::from_millis(150),
                bytes: 0,
                status: CheckpointStatus::Skipped,
            },
            CheckpointRecord {
                id: 3,
                started_at_ms: 1_000_300,
                duration: Duration::from_millis(100),
                // One byte of stage state and the manifest.
                bytes: 1 + manifest,
                status: CheckpointStatus::Completed,
            },
        ]
    );
    assert_eq!(
        c.handle().totals(),
        CheckpointTotals {
            completed: 1,
            failed: 1,
            skipped: 1
        }
    );
    assert_eq!(c.handle().latest_completed(), Some(3));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_acknowledgement_before_the_trigger_counts_once_the_checkpoint_is_triggered() {
    let (c, mut rx, d) = coordinator("early");
    c.expect(A, 0);
    c.expect(B, 0);
    c.next_id.store(3, Ordering::Release);
    // A barrier relayed from another node of the job reaches A before 3 is triggered here.
    c.ack(3, A, 0, snap(1));
    // An acknowledgement of an older, unknown checkpoint is ignored.
    c.ack(2, A, 0, snap(9));
    assert!(rx.try_recv().is_err());
    let id = c.begin(&mut lock(&c.state));
    assert_eq!(id, 3);
    c.ack(3, B, 0, snap(2));
    let done = rx.try_recv().unwrap();
    assert_eq!((done.id, done.last), (3, false));
    assert_eq!(
        done.states.into_iter().collect::<Vec<_>>(),
        vec![((A, 0), snap(1)), ((B, 0), snap(2))]
    );
    assert!(lock(&c.state).early.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_checkpoint_holding_every_final_state_is_marked_last() {
    let (c, mut rx, d) = coordinator("last");
    c.expect(A, 0);
    c.expect(B, 0);
    lock(&c.state).pending.insert(1, StageStates::new());
    c.next_id.store(2, Ordering::Release);
    c.ack(1, A, 0, None);
    c.ack(1, B, 0, None);
    assert!(!rx.try_recv().unwrap().last);
    c.finished(A, 0, None);
    assert_eq!(c.finish_waiting(B, 0, snap(4)), 2);
    let done = rx.try_recv().unwrap();
    assert_eq!((done.id, done.last), (2, true));
    let _ = std::fs::remove_dir_all(&d);
}

/// A commit log that records what it was asked and answers as told.
struct Gate {
    calls: Mutex<Vec<(u64, bool)>>,
    answer: Result<(), String>,
}

impl super::super::CheckpointCommit for Gate {
    fn prepared(&self, id: u64, last: bool) -> BoxFuture<'static, Result<(), String>> {
        lock(&self.calls).push((id, last));
        let a = self.answer.clone();
        async move { a }.boxed()
    }
}

fn gated(name: &str, answer: Result<(), String>) -> (Coordinator, Arc<Gate>, PathBuf) {
    let d = std::env::temp_dir().join(format!("weir-coord-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let gate = Arc::new(Gate {
        calls: Mutex::new(Vec::new()),
        answer,
    });
    let cfg = CheckpointConfig::new(Duration::from_secs(1), &d).with_commit(gate.clone());
    (Coordinator::open(cfg).unwrap(), gate, d)
}

fn one_done(c: &Coordinator) -> Done {
    let mut rx = lock(&c.rx).take().unwrap();
    c.expect(A, 0);
    let id = c.begin(&mut lock(&c.state));
    c.ack(id, A, 0, snap(5));
    rx.try_recv().unwrap()
}

#[tokio::test]
async fn a_written_checkpoint_completes_once_the_commit_log_says_every_node_wrote_it() {
    let (c, gate, d) = gated("commit-ok", Ok(()));
    let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock::new());
    let done = one_done(&c);
    c.write(done, &clock).await;
    assert_eq!(lock(&gate.calls).clone(), vec![(1, false)]);
    assert_eq!(c.handle().latest_completed(), Some(1));
    assert_eq!(store::latest(&d).unwrap().map(|r| r.id), Some(1));
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_checkpoint_the_commit_log_refuses_fails_and_is_not_complete() {
    let (c, gate, d) = gated("commit-refused", Err("node 2 did not write it".into()));
    let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock::new());
    let done = one_done(&c);
    c.write(done, &clock).await;
    assert_eq!(lock(&gate.calls).clone(), vec![(1, false)]);
    assert_eq!(c.handle().latest_completed(), None);
    assert_eq!(c.handle().failed(), vec![1]);
    let h = c.handle().history();
    assert_eq!(
        h.last().map(|r| r.status.clone()),
        Some(super::super::CheckpointStatus::Failed(
            "checkpoint 1 was not completed by every participant: node 2 did not write it".into()
        ))
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn discard_after_restores_that_checkpoint_and_numbers_the_next_after_it() {
    let d = std::env::temp_dir().join(format!("weir-coord-{}-discard", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    for id in 1..=3u64 {
        let mut states = StageStates::new();
        states.insert((A, 0), snap(id as u8));
        store::write(&d, id, &states, 5).unwrap();
    }
    let c = Coordinator::open(CheckpointConfig::new(Duration::from_secs(1), &d).discard_after(1))
        .unwrap();
    assert_eq!(c.restored_id(), Some(1));
    assert_eq!(c.restored(A, 0), snap(1).as_ref());
    assert_eq!(c.next_id.load(Ordering::Acquire), 2);
    assert_eq!(store::newest_id(&d).unwrap(), Some(1));
    // 0 discards every checkpoint: a fresh start.
    let c = Coordinator::open(CheckpointConfig::new(Duration::from_secs(1), &d).discard_after(0))
        .unwrap();
    assert_eq!(c.restored_id(), None);
    assert_eq!(store::newest_id(&d).unwrap(), None);
    let _ = std::fs::remove_dir_all(&d);
}
