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
