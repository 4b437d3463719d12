//! The transactional file sink through the engine: exact committed content per commit (a
//! marker, the end of the stream), commit-ordered part names, rolling by size; nothing becomes
//! committed without a commit (a failed or cancelled stream, a crash-like stop), and parts left
//! by a crashed run are removed on the next start.

use futures::StreamExt;
use futures::channel::mpsc;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use weir_engine::prelude::*;
use weir_graph::{Control, Source, SourceLogic, StageCx, StageError, Step};
use weir_operators::file::{FileSink, FileSource, Files};
use weir_operators::prelude::*;

/// A directory of its own per test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "weir-file-sink-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A source fed batch by batch by the test (and failed on an `Err`).
struct Gated(mpsc::UnboundedReceiver<Result<Vec<String>, StageError>>);

impl SourceLogic<String> for Gated {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<String>,
    ) -> Poll<Result<Step, StageError>> {
        match self.0.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                out.extend(b);
                Poll::Ready(Ok(Step::More))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
            Poll::Ready(None) => Poll::Ready(Ok(Step::Done)),
            Poll::Pending => Poll::Pending,
        }
    }
}

type Feed = mpsc::UnboundedSender<Result<Vec<String>, StageError>>;

fn gated() -> (Source<String>, Feed) {
    let (tx, rx) = mpsc::unbounded();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let src = Source::from_logic("gated", move |_| {
        let rx = rx
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| StageError::internal("fed once"))?;
        Ok((Gated(rx), ()))
    });
    (src, tx)
}

fn batch(xs: &[&str]) -> Result<Vec<String>, StageError> {
    Ok(xs.iter().map(|s| (*s).to_owned()).collect())
}

/// The names and contents of the committed parts, in name order.
fn committed(sink: &FileSink) -> Vec<(String, String)> {
    sink.committed()
        .unwrap()
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Every file in `dir`, hidden ones included, sorted.
fn all_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits (generous real-time bound) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn part(seq: u64) -> String {
    format!("part-{seq:020}.txt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_and_the_end_commit_exactly_what_came_before_them() {
    let d = TempDir::new("commit");
    let sink = FileSink::new(&d.0).suffix(".txt");
    let (src, feed) = gated();
    let (f, h) = src.to_sink_mat(sink.clone().bytes()).start().unwrap();
    // One batch: the temporary part appears once the whole batch is written.
    feed.unbounded_send(batch(&["a", "b", "c"])).unwrap();
    // Written, not committed: only a hidden temporary part.
    eventually("a temporary part", || {
        all_files(&d.0).iter().any(|n| n.ends_with(".inprogress"))
    });
    assert_eq!(committed(&sink), []);
    assert_eq!(h.inject(Control::marker(1)), 1);
    eventually("the first commit", || !committed(&sink).is_empty());
    assert_eq!(committed(&sink), [(part(0), "a\nb\nc\n".to_owned())]);
    // A marker with nothing written since commits nothing.
    h.inject(Control::marker(2));
    feed.unbounded_send(batch(&["d"])).unwrap();
    drop(feed);
    let files = tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap()
        .unwrap();
    h.wait().await.unwrap();
    assert_eq!(
        committed(&sink),
        [
            (part(0), "a\nb\nc\n".to_owned()),
            (part(1), "d\n".to_owned())
        ]
    );
    assert_eq!(files, [d.0.join(part(0)), d.0.join(part(1))]);
    assert_eq!(all_files(&d.0), [part(0), part(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_roll_by_size_and_a_new_run_continues_the_sequence() {
    let d = TempDir::new("roll");
    let sink = FileSink::new(&d.0).prefix("out").max_part_bytes(6);
    let words: Vec<String> = ["aa", "bb", "cccccccc", "d", "e"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let files = Source::from_iter(words.clone())
        .run_with(sink.clone().bytes())
        .unwrap()
        .await
        .unwrap();
    let names = |fs: &[PathBuf]| -> Vec<String> {
        fs.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let seq = |n: u64| format!("out-{n:020}");
    assert_eq!(names(&files), [seq(0), seq(1), seq(2)]);
    let first: Vec<(String, String)> = vec![
        (seq(0), "aa\nbb\n".to_owned()),
        (seq(1), "cccccccc\n".to_owned()),
        (seq(2), "d\ne\n".to_owned()),
    ];
    assert_eq!(committed(&sink), first);
    // A stale temporary part of a crashed run: removed at start, never committed.
    std::fs::write(d.0.join(".out-999-0.inprogress"), "lost\n").unwrap();
    let files = Source::from_iter(vec!["f".to_owned()])
        .run_with(sink.clone().bytes())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(names(&files), [seq(3)]);
    let mut all = first;
    all.push((seq(3), "f\n".to_owned()));
    assert_eq!(committed(&sink), all);
    assert_eq!(all_files(&d.0), [seq(0), seq(1), seq(2), seq(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stream_keeps_earlier_commits_and_removes_what_was_not_committed() {
    let d = TempDir::new("fail");
    let sink = FileSink::new(&d.0);
    let (src, feed) = gated();
    let (f, h) = src.to_sink_mat(sink.clone().bytes()).start().unwrap();
    feed.unbounded_send(batch(&["kept"])).unwrap();
    // The marker goes in once "kept" is written (a marker injected earlier may pass it).
    eventually("a temporary part", || {
        all_files(&d.0).iter().any(|n| n.ends_with(".inprogress"))
    });
    assert_eq!(h.inject(Control::marker(1)), 1);
    eventually("the first commit", || !committed(&sink).is_empty());
    feed.unbounded_send(batch(&["lost"])).unwrap();
    feed.unbounded_send(Err(StageError::user("upstream broke")))
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "stage 'gated#0' failed: upstream broke");
    let _ = h.wait().await;
    assert_eq!(
        committed(&sink),
        [("part-00000000000000000000".to_owned(), "kept\n".to_owned())]
    );
    assert_eq!(all_files(&d.0), ["part-00000000000000000000"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_its_commit_leaves_no_committed_file() {
    let d = TempDir::new("cancel");
    let sink = FileSink::new(&d.0);
    let (src, feed) = gated();
    let (f, h) = src.to_sink_mat(sink.clone().bytes()).start().unwrap();
    feed.unbounded_send(batch(&["x", "y"])).unwrap();
    eventually("a temporary part", || {
        all_files(&d.0).iter().any(|n| n.ends_with(".inprogress"))
    });
    h.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), h.wait())
        .await
        .unwrap();
    drop(f);
    assert_eq!(committed(&sink), []);
    // The writer removes its temporary part once the sink is gone.
    eventually("the temporary part removed", || all_files(&d.0).is_empty());
    drop(feed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_directory_fails_the_sink_naming_it() {
    let d = TempDir::new("unwritable");
    let file = d.0.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = Source::from_iter(vec!["a".to_owned()])
        .run_with(FileSink::new(&file).bytes())
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "stage 'file_sink#1' failed: cannot create {}: File exists (os error 17)",
            file.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_copied_from_a_file_source_to_a_file_sink_are_committed_exactly() {
    let d = TempDir::new("copy");
    let input = d.0.join("in.csv");
    let body: String = (0..2000)
        .map(|i| format!("{},{},{}\n", i % 7, i, i * 3))
        .collect();
    std::fs::write(&input, &body).unwrap();
    let sink = FileSink::new(d.0.join("out")).max_part_bytes(4096);
    let files = FileSource::new(Files::path(&input))
        .block_size(1000)
        .lines()
        .run_with(sink.clone().bytes())
        .unwrap()
        .await
        .unwrap();
    assert!(files.len() > 1, "rolled into several parts");
    let joined: String = committed(&sink).into_iter().map(|(_, c)| c).collect();
    assert_eq!(joined, body);
    for (_, c) in committed(&sink) {
        assert!(c.len() <= 4096, "a part over its size");
    }
}

#[tokio::test]
async fn parts_roll_by_age_on_the_run_clock_when_records_arrive_and_while_idle() {
    use weir_engine::testkit::{TestSource, VirtualClock};
    let d = TempDir::new("age");
    let sink = FileSink::new(&d.0)
        .suffix(".txt")
        .max_part_age(Duration::from_secs(1));
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let g = TestSource::probe::<String>().to_mat(sink.clone().bytes(), Keep::both);
    let ((src, files), h) = m.materialize(&g).unwrap();
    let at = |ms: u64| {
        let clock = clock.clone();
        async move {
            use weir_graph::Clock as _;
            let now = clock.now();
            clock
                .run_for(Duration::from_millis(ms).saturating_sub(now))
                .await;
        }
    };
    // Part 0 opens at 0 ms; the idle timer closes it at 1000 ms.
    src.send("a".to_owned());
    at(0).await;
    at(500).await;
    src.send("b".to_owned());
    at(1100).await;
    // Part 1 opens at 1100 ms and takes "d" and "e" at 2050 ms; it closes at 2100 ms, so "f"
    // starts part 2, which the end commits with the rest.
    src.send("c".to_owned());
    at(1100).await;
    at(2050).await;
    src.send_all(vec!["d".to_owned(), "e".to_owned()]);
    at(2050).await;
    at(3200).await;
    src.send("f".to_owned());
    at(3200).await;
    src.complete();
    h.wait().await.unwrap();
    let files = files.await.unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(
        committed(&sink),
        [
            (part(0), "a\nb\n".to_owned()),
            (part(1), "c\nd\ne\n".to_owned()),
            (part(2), "f\n".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_zero_part_age_is_rejected_when_the_graph_is_built() {
    let sink = FileSink::new("unused").max_part_age(Duration::ZERO);
    let Err(err) = Source::from_iter(vec!["x".to_owned()]).run_with(sink.bytes()) else {
        panic!("a zero part age was accepted");
    };
    assert!(
        err.to_string()
            .contains("file sink: max_part_age must be positive, got 0s"),
        "{err}"
    );
}
