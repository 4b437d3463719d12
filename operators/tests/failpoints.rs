//! Crash tests at each named checkpoint phase (`--features failpoints`): a child process runs a
//! checkpointed job into a transactional file sink with `WEIR_FAILPOINT` armed, aborts there,
//! and is started again on the same directories until it completes; the committed parts, read
//! in name order, hold every row exactly once.
#![cfg(feature = "failpoints")]

mod ck;

use ck::*;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_operators::file::FileSink;

const N: u64 = 100;

fn sink(out: &Path) -> FileSink {
    FileSink::new(out).max_part_bytes(40)
}

/// The job the parent runs in a child process (`WEIR_FT_STATE`, `WEIR_FT_OUT`): numbers into
/// the file sink, a checkpoint after 30 and after 60 of them, then the final one at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by failpoints_abort_each_checkpoint_phase_and_a_restart_commits_exactly in a child process"]
async fn child_job() {
    let state = PathBuf::from(std::env::var("WEIR_FT_STATE").unwrap());
    let out = PathBuf::from(std::env::var("WEIR_FT_OUT").unwrap());
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&state);
    // Keeping one checkpoint prunes the previous one at each write.
    let m = m.with_checkpoints(weir_engine::CheckpointConfig::new(SECOND, &state).retain(1));
    let job = counting("numbers", N, &gate).to_mat(
        sink(&out).lines(|x: &u64, b: &mut Vec<u8>| {
            let _ = write!(b, "{x}");
        }),
        |(), f| f,
    );
    let (files, h) = m.materialize(&job).unwrap();
    let ck = h.checkpoints().unwrap();
    // Which checkpoint this run restored, for the parent.
    let restored = ck.restored().map_or("none".to_owned(), |id| id.to_string());
    std::fs::write(state.with_extension("restored"), restored).unwrap();
    for to in [30, 60] {
        let before = ck.latest_completed().unwrap_or(0);
        gate.open(to);
        // The rows go ahead of the barrier (a restored source may be past them already).
        until("the rows emitted", || {
            h.is_finished() || gate.emitted.load(Ordering::Acquire) >= to
        })
        .await;
        clock.advance(SECOND);
        // A run restored from its final checkpoint ends at once: nothing to wait for then.
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(before + 1)) => {
                r.expect("a checkpoint completes")
            }
            r = h.wait() => {
                r.unwrap();
                break;
            }
        }
    }
    gate.open(N);
    h.wait().await.unwrap();
    files.await.unwrap();
}

fn committed(out: &Path) -> Vec<u64> {
    sink(out)
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

fn child(state: &Path, out: &Path, failpoint: Option<&str>) -> std::process::ExitStatus {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_job", "--ignored", "--test-threads", "1"])
        .env("WEIR_FT_STATE", state)
        .env("WEIR_FT_OUT", out)
        .env_remove("WEIR_FAILPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(f) = failpoint {
        c.env("WEIR_FAILPOINT", f);
    }
    c.status().unwrap()
}

/// Runs the child once per failpoint in `points` (each must abort it), then once unarmed (it
/// must complete); the committed output must be exact.
fn crash_and_recover(points: &[&str]) -> String {
    let tag = points.join("+").replace([':', '.'], "-");
    let state = dir(&format!("fp-{tag}-state"));
    let out = dir(&format!("fp-{tag}-out"));
    for point in points {
        let status = child(&state, &out, Some(point));
        assert_eq!(
            status.signal(),
            Some(6),
            "{tag}: the child aborts at {point} ({status})"
        );
    }
    let status = child(&state, &out, None);
    assert!(
        status.success(),
        "{tag}: the restarted child completes ({status})"
    );
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>(), "{tag}");
    let report = state.with_extension("restored");
    let restored = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&report);
    restored
}

#[test]
fn failpoints_abort_each_checkpoint_phase_and_a_restart_commits_exactly() {
    // Each point, and the checkpoint the restarted run restores: the previous one until the
    // manifest is in place, that one from then on.
    for (point, restored) in [
        ("checkpoint.barrier_injected", "none"),
        ("checkpoint.acks_complete", "none"),
        ("checkpoint.files_written", "none"),
        ("checkpoint.manifest_written", "1"),
        ("checkpoint.files_written:2", "1"),
        ("checkpoint.manifest_written:2", "2"),
        ("sink.pre_commit", "none"),
        ("sink.pre_commit:2", "1"),
        ("sink.commit_renamed_one", "1"),
        ("sink.commit_renamed_one:4", "2"),
        // The end: after the final checkpoint's manifest, and inside the final commit.
        ("checkpoint.manifest_written:3", "3"),
        ("sink.commit_renamed_one:7", "3"),
        // Removing checkpoint 1 once checkpoint 2 is written.
        ("checkpoint.pruned_one", "2"),
    ] {
        assert_eq!(crash_and_recover(&[point]), restored, "{point}");
    }
}

#[test]
fn a_crash_during_recovery_then_a_restart_commits_exactly() {
    // Checkpoint 2 is written, its three parts staged, not committed; the restore dies renaming
    // them: after the first; after the second, then after the last (the next restore finds
    // every rename done).
    let r = crash_and_recover(&["checkpoint.manifest_written:2", "sink.restore_renamed_one"]);
    assert_eq!(r, "2");
    let r = crash_and_recover(&[
        "checkpoint.manifest_written:2",
        "sink.restore_renamed_one:2",
        "sink.restore_renamed_one",
    ]);
    assert_eq!(r, "2");
}
