//! The file sink with checkpoints is two-phase: parts are staged at the barrier and committed
//! only once the checkpoint is complete. A run stopped between a barrier and its completion
//! leaves the staged parts uncommitted; started again on the same directories it removes them
//! and replays their rows, so the committed parts, read in name order, hold every row exactly
//! once. The end of the stream commits through the run's final checkpoint, after which a run on
//! the same directories has nothing left to write.

mod ck;

use ck::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{RunnableGraph, SinkFuture};
use weir_operators::file::FileSink;

const N: u64 = 100;

fn job(gate: &Arc<Gate>, out: &Path) -> RunnableGraph<SinkFuture<Vec<PathBuf>>> {
    counting("numbers", N, gate).to_mat(
        FileSink::new(out)
            .max_part_bytes(40)
            .lines(|x: &u64, b: &mut Vec<u8>| {
                let _ = write!(b, "{x}");
            }),
        |(), f| f,
    )
}

/// The committed rows, parts read in name order.
fn committed(out: &Path) -> Vec<u64> {
    FileSink::new(out)
        .committed()
        .unwrap()
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| l.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn uncommitted(out: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(out) else {
        return 0;
    };
    rd.filter(|e| {
        let n = e.as_ref().unwrap().file_name().into_string().unwrap();
        n.starts_with('.') && n.ends_with(".inprogress")
    })
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_between_a_barrier_and_its_completion_commits_each_row_once() {
    let d = dir("fs-state");
    let out = dir("fs-out");
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let (_files, h) = m.materialize(&job(&gate, &out)).unwrap();
    gate.open(30);
    until("30 emitted", || gate.emitted.load(Ordering::Acquire) == 30).await;
    checkpoint(&h, &clock, 1).await;
    until("checkpoint 1 committed", || committed(&out).len() == 30).await;
    assert_eq!(committed(&out), (0..30).collect::<Vec<_>>());
    // Checkpoint 2 cannot be written: its barrier pre-commits, nothing completes it.
    std::fs::write(d.join("chk-00000000000000000002"), b"in the way").unwrap();
    gate.open(70);
    clock.advance(SECOND);
    let ck = h.checkpoints().unwrap();
    until("checkpoint 2 failed", || ck.failed() == vec![2]).await;
    h.cancel();
    assert!(h.wait().await.is_err());
    // Staged parts stay (a restored run decides), nothing past checkpoint 1 is committed.
    assert!(uncommitted(&out) > 0);
    assert_eq!(committed(&out), (0..30).collect::<Vec<_>>());

    std::fs::remove_file(d.join("chk-00000000000000000002")).unwrap();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    let files = files.await.unwrap();
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    assert_eq!(uncommitted(&out), 0);
    // The run materializes the parts it committed, all after those of the first run.
    assert!(
        files
            .iter()
            .all(|f| f.file_name() > Some("part-00000000000000000002".as_ref()))
    );

    // The run ended through a final checkpoint: the same directories have nothing left to do.
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    gate.open(N);
    h.wait().await.unwrap();
    assert_eq!(files.await.unwrap(), Vec::<PathBuf>::new());
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_committed_only_when_their_checkpoint_completes() {
    let d = dir("fs-notice");
    let out = dir("fs-notice-out");
    let gate = Arc::new(Gate::default());
    // A checkpoint every second; the test writes none itself until it lets one complete.
    let clock = Arc::new(VirtualClock::new());
    let m = Materializer::new()
        .with_clock(clock.clone())
        .with_batch_size(8)
        .with_checkpoints(CheckpointConfig::new(SECOND, &d));
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    gate.open(50);
    // Parts roll at 40 bytes: closed parts wait for a checkpoint, none is committed.
    until("parts written", || uncommitted(&out) > 2).await;
    assert_eq!(committed(&out), Vec::<u64>::new());
    checkpoint(&h, &clock, 1).await;
    until("committed", || !committed(&out).is_empty()).await;
    let first = committed(&out);
    assert_eq!(first, (0..first.len() as u64).collect::<Vec<_>>());
    gate.open(N);
    h.wait().await.unwrap();
    let files = files.await.unwrap();
    assert_eq!(files, FileSink::new(&out).committed().unwrap());
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&out);
}
