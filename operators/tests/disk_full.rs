//! Disk full (RELIABILITY S6): a full checkpoint directory fails the checkpoints that cannot be
//! written (with a warning, `Checkpoints::failed()`), removes their partial directories and
//! keeps the last complete one; the run and its data go on, the next checkpoint once space is
//! free completes, and a restart restores the last complete one with exact output. A full data
//! directory of the file sink fails the run naming the sink and the part file; the run started
//! again once space is free resumes from the last checkpoint with exact committed output.
//!
//! Each scenario runs twice: on a real 2 MiB tmpfs filled up with a ballast file (when this
//! process may mount one; else it says so on stderr and runs the injected variant only), and
//! through `weir_graph::DiskFull`, which makes every checked write under a directory fail with
//! `ENOSPC` on any machine.

mod ck;

use ck::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{DiskFull, RunnableGraph, SinkFuture};
use weir_operators::file::FileSink;

const N: u64 = 100;

/// Every warning of the test process, one line each (a global subscriber: the checkpoint
/// writer logs from the runtime's threads).
fn warnings() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&log);
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .without_time()
                .with_writer(move || Tee(Arc::clone(&w)))
                .finish(),
        );
        log
    })
}

struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The warnings logged so far that contain every one of `parts`.
fn warned(parts: &[&str]) -> Vec<String> {
    let log = warnings().lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
        .collect()
}

/// A 2 MiB tmpfs mounted for the test, unmounted (and its mount point removed) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str) -> Result<Self, String> {
        let d = dir(&format!("tmpfs-{name}"));
        std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&d)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&d);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(d))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Where the disk fills up: a real tmpfs, or a directory made full by `DiskFull`.
enum Disk {
    Tmpfs(Tmpfs),
    Injected(PathBuf),
}

/// The disk being full; `free` makes room again.
enum Full {
    Ballast(PathBuf),
    Injected(DiskFull),
}

impl Full {
    fn free(self) {
        match self {
            Full::Ballast(f) => std::fs::remove_file(f).unwrap(),
            Full::Injected(g) => g.free(),
        }
    }
}

impl Disk {
    /// The tmpfs when this process may mount one, else (saying so on stderr) the injected disk.
    fn tmpfs_or_injected(name: &str) -> Self {
        match Tmpfs::mount(name) {
            Ok(t) => Disk::Tmpfs(t),
            Err(e) => {
                eprintln!(
                    "disk_full {name}: cannot mount a tmpfs ({e}); running the injected ENOSPC variant only"
                );
                Disk::injected(name)
            }
        }
    }

    fn injected(name: &str) -> Self {
        let d = dir(&format!("injected-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        Disk::Injected(d)
    }

    /// A directory on this disk.
    fn path(&self, name: &str) -> PathBuf {
        match self {
            Disk::Tmpfs(t) => t.0.join(name),
            Disk::Injected(d) => d.join(name),
        }
    }

    /// Fills the disk: a ballast file takes every free byte of the tmpfs (the write that
    /// stops it must be `ENOSPC`), or every write under the directory fails.
    fn fill(&self) -> Full {
        match self {
            Disk::Tmpfs(t) => {
                let path = t.0.join("ballast");
                let mut f = std::fs::File::create(&path).unwrap();
                let chunk = vec![7u8; 4096];
                let e = loop {
                    if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
                        break e;
                    }
                };
                assert_eq!(e.raw_os_error(), Some(28), "the tmpfs is full: {e}");
                Full::Ballast(path)
            }
            Disk::Injected(d) => Full::Injected(DiskFull::fill(d)),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Disk::Injected(d) = self {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

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

/// Checkpoints on the virtual clock into `state`, keeping only the newest complete one.
fn materializer(state: &Path) -> (Materializer, Arc<VirtualClock>) {
    let (m, clock) = mat(state);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, state).retain(1));
    (m, clock)
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
    std::fs::read_dir(out)
        .map(|rd| {
            rd.filter(|e| {
                let n = e.as_ref().unwrap().file_name().into_string().unwrap();
                n.starts_with('.') && n.ends_with(".inprogress")
            })
            .count()
        })
        .unwrap_or(0)
}

/// The entries of a checkpoint directory, sorted.
fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn chk(id: u64) -> String {
    format!("chk-{id:020}")
}

/// Lets the source emit up to `to` and waits until it did.
async fn emit(gate: &Gate, to: u64) {
    gate.open(to);
    until("the rows emitted", || {
        gate.emitted.load(Ordering::Acquire) >= to
    })
    .await;
}

/// S6 on the checkpoint directory: full twice mid-run, freed in between and before a restart.
async fn a_full_checkpoint_directory(disk: Disk, name: &str) {
    let state = disk.path("state");
    let out = dir(&format!("{name}-out"));
    let gate = Arc::new(Gate::default());
    let (m, clock) = materializer(&state);
    let (_files, h) = m.materialize(&job(&gate, &out)).unwrap();
    let ck = h.checkpoints().unwrap();
    emit(&gate, 30).await;
    checkpoint(&h, &clock, 1).await;
    until("checkpoint 1 committed", || committed(&out).len() == 30).await;

    // Full: checkpoints 2 and 3 fail, the rows go on, nothing past checkpoint 1 is committed.
    let full = disk.fill();
    for (id, to) in [(2, 50), (3, 70)] {
        emit(&gate, to).await;
        clock.advance(SECOND);
        until("the checkpoint failed", || ck.failed().contains(&id)).await;
        // Its partial directory is gone: checkpoint 1 is the one complete checkpoint on disk.
        assert_eq!(entries(&state), [chk(1)], "after checkpoint {id} failed");
        let dir = state.join(chk(id));
        let dir = dir.display().to_string();
        let w = warned(&[
            "checkpoint failed",
            &format!("checkpoint={id}"),
            &dir,
            "No space left on device (os error 28)",
        ]);
        assert_eq!(w.len(), 1, "one warning for checkpoint {id}: {w:?}");
    }
    assert_eq!(ck.failed(), [2, 3]);
    assert_eq!(ck.latest_completed(), Some(1));
    assert_eq!(committed(&out), (0..30).collect::<Vec<_>>());
    assert!(
        !h.is_finished(),
        "the run goes on while its checkpoints fail"
    );

    // Space freed: checkpoint 4 completes and commits every row so far, also those staged
    // under the failed ones; retention then removes checkpoint 1.
    full.free();
    emit(&gate, 80).await;
    checkpoint(&h, &clock, 4).await;
    until("checkpoint 4 committed", || committed(&out).len() == 80).await;
    assert_eq!(committed(&out), (0..80).collect::<Vec<_>>());
    assert_eq!(entries(&state), [chk(4)]);
    assert_eq!(ck.failed(), [2, 3]);

    // Full again, checkpoint 5 fails, the run stops there.
    let full = disk.fill();
    emit(&gate, 90).await;
    clock.advance(SECOND);
    until("checkpoint 5 failed", || ck.failed() == [2, 3, 5]).await;
    assert_eq!(entries(&state), [chk(4)]);
    h.cancel();
    assert!(h.wait().await.is_err());
    assert_eq!(committed(&out), (0..80).collect::<Vec<_>>());

    // Restarted once space is free: checkpoint 4 is restored, every row committed once.
    full.free();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = materializer(&state);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(4));
    gate.open(N);
    h.wait().await.unwrap();
    files.await.unwrap();
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    assert_eq!(uncommitted(&out), 0);
    assert_eq!(h.checkpoints().unwrap().failed(), Vec::<u64>::new());
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&out);
}

/// S6 on the file sink's data directory: the run fails naming the sink and the part file; a
/// restart once space is free resumes from checkpoint 1 and commits every row once.
async fn a_full_sink_directory(disk: Disk, name: &str) {
    let state = dir(&format!("{name}-state"));
    let out = disk.path("out");
    let gate = Arc::new(Gate::default());
    let (m, clock) = materializer(&state);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    emit(&gate, 30).await;
    checkpoint(&h, &clock, 1).await;
    until("checkpoint 1 committed", || committed(&out).len() == 30).await;

    let full = disk.fill();
    gate.open(60);
    let e = tokio::time::timeout(std::time::Duration::from_secs(20), h.wait())
        .await
        .expect("the run fails")
        .unwrap_err();
    let msg = e.to_string();
    let head = format!(
        "stage 'file_sink#1' failed: cannot write {}/.part-",
        out.display()
    );
    assert!(
        msg.starts_with(&head)
            && msg.ends_with(".inprogress: No space left on device (os error 28)"),
        "{msg}"
    );
    assert_eq!(files.await.unwrap_err().to_string(), msg);
    // What checkpoint 1 committed stays; nothing else is.
    assert_eq!(committed(&out), (0..30).collect::<Vec<_>>());

    full.free();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = materializer(&state);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    files.await.unwrap();
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    assert_eq!(uncommitted(&out), 0);
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_checkpoint_tmpfs_fails_checkpoints_never_the_data_or_the_run() {
    warnings();
    let disk = Disk::tmpfs_or_injected("ck-tmpfs");
    a_full_checkpoint_directory(disk, "ck-tmpfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_enospc_fails_checkpoints_never_the_data_or_the_run() {
    warnings();
    a_full_checkpoint_directory(Disk::injected("ck-injected"), "ck-injected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_tmpfs_fails_the_run_naming_the_part_and_a_restart_resumes_exactly() {
    let disk = Disk::tmpfs_or_injected("sink-tmpfs");
    a_full_sink_directory(disk, "sink-tmpfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_enospc_in_the_sink_fails_the_run_and_a_restart_resumes_exactly() {
    a_full_sink_directory(Disk::injected("sink-injected"), "sink-injected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_end_fails_the_final_checkpoint_and_the_run_still_commits_every_row() {
    warnings();
    let disk = Disk::injected("ck-end");
    let state = disk.path("state");
    let out = dir("ck-end-out");
    let gate = Arc::new(Gate::default());
    let (m, clock) = materializer(&state);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    emit(&gate, 30).await;
    checkpoint(&h, &clock, 1).await;
    let full = disk.fill();
    gate.open(N);
    h.wait().await.unwrap();
    let files = files.await.unwrap();
    // The final checkpoint (2) could not be written: the sink commits its last parts anyway.
    let ck = h.checkpoints().unwrap();
    assert_eq!(ck.failed(), [2]);
    assert_eq!(ck.latest_completed(), Some(1));
    assert_eq!(files, FileSink::new(&out).committed().unwrap());
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    assert_eq!(uncommitted(&out), 0);
    assert_eq!(entries(&state), [chk(1)]);
    assert_eq!(
        warned(&[
            "the final checkpoint failed; committing the last parts anyway",
            "checkpoint 2"
        ])
        .len(),
        1
    );
    full.free();
    let _ = std::fs::remove_dir_all(&out);
}

/// `WEIR_FAILPOINT=checkpoint.write:enospc:4` in a child process (`--features failpoints`):
/// checkpoint 1's three writes (two stage files, the manifest) go through, every later one
/// fails; the run completes with every row committed once.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_enospc_failpoint_fails_every_checkpoint_write_from_its_hit_on in a child process"]
async fn enospc_child_job() {
    let state = PathBuf::from(std::env::var("WEIR_DF_STATE").unwrap());
    let out = PathBuf::from(std::env::var("WEIR_DF_OUT").unwrap());
    let gate = Arc::new(Gate::default());
    let (m, clock) = materializer(&state);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    let ck = h.checkpoints().unwrap();
    emit(&gate, 30).await;
    checkpoint(&h, &clock, 1).await;
    emit(&gate, 60).await;
    clock.advance(SECOND);
    until("checkpoint 2 failed", || ck.failed() == [2]).await;
    gate.open(N);
    h.wait().await.unwrap();
    files.await.unwrap();
    assert_eq!(ck.failed(), [2, 3]);
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    assert_eq!(entries(&state), [chk(1)]);
}

#[cfg(feature = "failpoints")]
#[test]
fn the_enospc_failpoint_fails_every_checkpoint_write_from_its_hit_on() {
    let state = dir("fp-enospc-state");
    let out = dir("fp-enospc-out");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "enospc_child_job",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("WEIR_DF_STATE", &state)
        .env("WEIR_DF_OUT", &out)
        .env("WEIR_FAILPOINT", "checkpoint.write:enospc:4")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child job passes ({status})");
    assert_eq!(entries(&state), [chk(1)]);
    assert_eq!(committed(&out), (0..N).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&out);
}
