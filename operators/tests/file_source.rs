//! File sources through the engine: exact lines, CSV records and JSON lines over a file, a
//! directory and a glob; bad lines named by file, line and byte offset, or dead-lettered under
//! Resume; and snapshots of the byte position that a fresh source resumes from exactly.

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use weir_engine::SystemClock;
use weir_engine::prelude::*;
use weir_graph::{
    DeadLetterSink, ErasedSource, NodeKind, Sink, Snapshot, Source, StageCx, StageError, StageInfo,
    Step, Supervision,
};
use weir_operators::file::{CsvOptions, CsvRecord, FileSource, Files};
use weir_operators::prelude::*;

/// A directory of its own per test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "weir-file-source-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(lines: Vec<Bytes>) -> Vec<String> {
    lines
        .into_iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

/// Runs `src` into a collecting sink.
async fn collect<T: Send + 'static>(src: Source<T>) -> Result<Vec<T>, StageError> {
    within(src.run_with(Sink::collect()).unwrap()).await
}

/// Runs `src`, keeping what arrived before a failure: (elements, the failure).
async fn until_failure<T: Send + 'static>(src: Source<T>) -> (Vec<T>, Option<StageError>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let r = within(
        src.run_with(Sink::for_each(move |x| g.lock().unwrap().push(x)))
            .unwrap(),
    )
    .await;
    let v = std::mem::take(&mut *got.lock().unwrap());
    (v, r.err())
}

const LINES: &str = "alpha\r\nbeta\n\ngamma delta\nlast without newline";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_a_file_exactly_whatever_the_block_size() {
    let d = TempDir::new("lines");
    let p = d.file("a.txt", LINES);
    for block in [1, 3, 7, 64 * 1024] {
        let src = FileSource::new(Files::path(&p)).block_size(block).lines();
        assert_eq!(
            text(collect(src).await.unwrap()),
            ["alpha", "beta", "", "gamma delta", "last without newline"],
            "block size {block}"
        );
    }
    let empty = d.file("empty.txt", "");
    let src = FileSource::new(Files::path(&empty)).lines();
    assert!(collect(src).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_and_a_glob_read_their_files_in_name_order() {
    let d = TempDir::new("dir");
    d.file("b.txt", "b1\nb2\n");
    d.file("a.txt", "a1\n");
    d.file("c.log", "c1\n");
    d.file(".hidden.txt", "h1\n");
    std::fs::create_dir(d.0.join("sub.txt")).unwrap();
    let all = FileSource::new(Files::path(&d.0)).lines();
    assert_eq!(text(collect(all).await.unwrap()), ["a1", "b1", "b2", "c1"]);
    let txt = FileSource::new(Files::glob(d.0.join("*.txt"))).lines();
    assert_eq!(text(collect(txt).await.unwrap()), ["a1", "b1", "b2"]);
    let none = FileSource::new(Files::glob(d.0.join("*.csv"))).lines();
    assert!(collect(none).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_fails_naming_it() {
    let d = TempDir::new("missing");
    let p = d.0.join("nope.txt");
    let err = collect(FileSource::new(Files::path(&p)).lines())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "stage 'file_lines#0' failed: cannot read {}: No such file or directory (os error 2)",
            p.display()
        )
    );
}

/// A W3 event.
fn event(r: CsvRecord<'_>) -> Result<(u32, u64, u64), weir_operators::file::CsvFieldError> {
    Ok((r.parse(0)?, r.parse(1)?, r.parse(2)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_records_decode_from_borrowed_fields() {
    let d = TempDir::new("csv");
    let p = d.file("e.csv", "key,value,ts_ms\n1,10,100\n\n2,20,101\n3,30,99");
    let src = FileSource::new(Files::path(&p))
        .block_size(4)
        .csv(CsvOptions::with_header(), event);
    assert_eq!(
        collect(src).await.unwrap(),
        [(1, 10, 100), (2, 20, 101), (3, 30, 99)]
    );
    let q = d.file("q.csv", "\"a,b\",\"say \"\"hi\"\"\"\n;x\n");
    let src = FileSource::new(Files::path(&q)).csv(CsvOptions::default(), |r| {
        Ok::<_, std::convert::Infallible>(
            r.iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(
        collect(src).await.unwrap(),
        [
            vec!["a,b".to_owned(), "say \"hi\"".to_owned()],
            vec![";x".to_owned()]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_fails_naming_file_line_and_offset_after_the_lines_before() {
    let d = TempDir::new("bad");
    let p = d.file("e.csv", "1,10,100\n2,x,101\n3,30,102\n");
    let src = FileSource::new(Files::path(&p)).csv(CsvOptions::default(), event);
    let (got, err) = until_failure(src).await;
    assert_eq!(got, [(1, 10, 100)]);
    let err = err.expect("the source fails");
    assert_eq!(
        err.to_string(),
        format!(
            "stage 'file_csv#0' failed on element \"2,x,101\": {}:2 (byte offset 9): field 1 (\"x\") is not a valid u64: \
             invalid digit found in string",
            p.display()
        )
    );
    assert_eq!(err.element(), Some("\"2,x,101\""));
    assert_eq!(err.stage(), Some("file_csv#0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_resume_bad_lines_go_to_dead_letters_and_nothing_else_is_lost() {
    let d = TempDir::new("resume");
    d.file("a.jsonl", "{\"k\":1}\n{\"k\":\n[1,2]\n");
    d.file("b.jsonl", "\"\u{e9}\"\n  \nnot json\n7\n");
    let (dl, letters) = DeadLetterSink::collector();
    let src = FileSource::new(Files::glob(d.0.join("*.jsonl")))
        .block_size(5)
        .json_lines()
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    assert_eq!(
        text(collect(src).await.unwrap()),
        ["{\"k\":1}", "[1,2]", "\"\u{e9}\"", "7"]
    );
    let letters = letters.lock().unwrap();
    let seen: Vec<(String, String, Bytes)> = letters
        .iter()
        .map(|l| {
            let el = l
                .element
                .as_ref()
                .and_then(|e| e.downcast_ref::<Bytes>())
                .cloned()
                .expect("the raw line");
            (l.stage.clone(), l.error.message().to_owned(), el)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "file_json_lines#0".to_owned(),
                format!(
                    "{}:2 (byte offset 8): invalid JSON: EOF while parsing a value at line 1 \
                     column 5",
                    d.0.join("a.jsonl").display()
                ),
                Bytes::from_static(b"{\"k\":"),
            ),
            (
                "file_json_lines#0".to_owned(),
                format!(
                    "{}:3 (byte offset 8): invalid JSON: expected ident at line 1 column 2",
                    d.0.join("b.jsonl").display()
                ),
                Bytes::from_static(b"not json"),
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_longer_than_the_limit_fails_naming_it() {
    let d = TempDir::new("long");
    let p = d.file("a.txt", "ok\n0123456789abcdef\nnext\n");
    let src = FileSource::new(Files::path(&p))
        .block_size(4)
        .max_line(8)
        .lines();
    let (got, err) = until_failure(src).await;
    assert_eq!(text(got), ["ok"]);
    assert_eq!(
        err.unwrap().to_string(),
        format!(
            "stage 'file_lines#0' failed: {}:2 (byte offset 3): line longer than 8 bytes",
            p.display()
        )
    );
}

/// A file source's saved state, as it encodes it: tag 2, its share, the position, then the
/// files after it that start part-way or are done (after a redistribution).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Saved {
    share: (u64, u64),
    at: Option<(String, u64, u64)>,
    starts: Vec<(String, u64, u64)>,
    done: Vec<String>,
}

/// The position a file source saved.
fn position(s: &dyn ErasedSource) -> Option<(String, u64, u64)> {
    let (tag, saved): (u8, Saved) = s.snapshot().unwrap().unwrap().decode().unwrap();
    assert_eq!(tag, 2);
    saved.at
}

/// A fresh instance of the source stage of `src`.
fn source_logic<T: Send + 'static>(src: &Source<T>) -> Box<dyn ErasedSource> {
    let NodeKind::Source(f) = &src.module().nodes[0].kind else {
        panic!("not a source stage");
    };
    f(&StageInfo::new("file", 0)).unwrap().0
}

/// Polls `logic` (batches of `batch`) until it emitted at least `n` elements or ended; the
/// reading thread runs on its own, so a pending poll is retried within a generous bound.
fn pull<T: Send + 'static>(logic: &mut dyn ErasedSource, batch: usize, n: usize) -> (Vec<T>, bool) {
    let clock = SystemClock::new();
    let info = StageInfo::new("file", 0);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    loop {
        let mut scx = StageCx::new(&info, &clock, None, batch);
        let r = logic.poll_next(&mut cx, &mut scx);
        got.append(logic.buffer().downcast_mut::<Vec<T>>().unwrap());
        match r {
            Poll::Ready(Ok(Step::Done)) => return (got, true),
            Poll::Ready(Ok(Step::More)) if got.len() >= n => return (got, false),
            Poll::Ready(Ok(Step::More)) => {}
            Poll::Ready(Err(e)) => panic!("the source failed: {e}"),
            Poll::Pending => {
                assert!(Instant::now() < deadline, "the source never became ready");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[test]
fn a_restored_source_resumes_at_the_saved_byte_offset_exactly() {
    let d = TempDir::new("restore");
    let a = "a1\na2\r\na3\n";
    d.file("a.txt", a);
    d.file("b.txt", "b1\nb2\nb3\nb4");
    let src = FileSource::new(Files::path(&d.0)).block_size(4).lines();
    let mut whole = source_logic(&src);
    let (all, done) = pull::<Bytes>(whole.as_mut(), 2, usize::MAX);
    assert!(done);
    let all = text(all);
    assert_eq!(all, ["a1", "a2", "a3", "b1", "b2", "b3", "b4"]);

    // Cut after every prefix the source hands out in batches of 2 (and of 1).
    for batch in [1, 2] {
        let mut first = source_logic(&src);
        let mut emitted = Vec::new();
        let mut cuts = 0;
        loop {
            let (got, done) = pull::<Bytes>(first.as_mut(), batch, 1);
            emitted.extend(text(got));
            let snap = first.snapshot().unwrap().expect("a position");
            let mut second = source_logic(&src);
            second.restore(&snap).unwrap();
            let (rest, rest_done) = pull::<Bytes>(second.as_mut(), 3, usize::MAX);
            assert!(rest_done);
            let mut resumed = emitted.clone();
            resumed.extend(text(rest));
            assert_eq!(resumed, all, "batch {batch}, cut after {emitted:?}");
            cuts += 1;
            if done {
                break;
            }
        }
        assert!(cuts >= all.len() / batch, "batch {batch}: {cuts} cuts");
    }

    // The saved position: file, byte offset of the next line, its line number.
    let mut s = source_logic(&src);
    let (got, _) = pull::<Bytes>(s.as_mut(), 1, 2);
    assert_eq!(text(got), ["a1", "a2"]);
    let saved = position(s.as_ref());
    let a_path = d.0.join("a.txt").to_string_lossy().into_owned();
    assert_eq!(saved, Some((a_path.clone(), 7, 3)));
    s.post_stop();

    // Before any poll, a fresh source saves "from the start" and a restored one its resume
    // point (here from a snapshot of the earlier form, the bare position).
    let fresh = source_logic(&src);
    assert_eq!(position(fresh.as_ref()), None);
    let mut r = source_logic(&src);
    r.restore(&Snapshot::encode(&Some((a_path, 3u64, 2u64))).unwrap())
        .unwrap();
    let again = position(r.as_ref());
    assert_eq!(again.map(|s| (s.1, s.2)), Some((3, 2)));
    assert_eq!(
        text(pull::<Bytes>(r.as_mut(), 8, usize::MAX).0),
        ["a2", "a3", "b1", "b2", "b3", "b4"]
    );
}

/// The failure a fresh instance of `src` restored from `(path, offset, line)` reports.
fn restored_failure<T: Send + 'static>(src: &Source<T>, path: &Path, offset: u64) -> StageError {
    let mut s = source_logic(src);
    let saved = Some((path.to_string_lossy().into_owned(), offset, 2u64));
    s.restore(&Snapshot::encode(&saved).unwrap()).unwrap();
    let clock = SystemClock::new();
    let info = StageInfo::new("file", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut scx = StageCx::new(&info, &clock, None, 8);
        match s.poll_next(&mut cx, &mut scx) {
            Poll::Ready(Err(e)) => return e,
            Poll::Pending => {
                assert!(Instant::now() < deadline, "the source never failed");
                std::thread::sleep(Duration::from_millis(1));
            }
            Poll::Ready(Ok(step)) => panic!("expected a failure, got {step:?}"),
        }
    }
}

#[test]
fn restoring_from_a_file_that_is_gone_or_too_short_fails_naming_it() {
    let d = TempDir::new("gone");
    let p = d.file("a.txt", "a1\n");
    let src = FileSource::new(Files::path(&d.0)).lines();
    let gone = d.0.join("old.txt");
    assert_eq!(
        restored_failure(&src, &gone, 5).to_string(),
        format!(
            "stage 'file#0' failed: cannot resume from {} at byte offset 5: the file is gone",
            gone.display()
        )
    );
    assert_eq!(
        restored_failure(&src, &p, 9).to_string(),
        format!(
            "stage 'file#0' failed: cannot resume from {} at byte offset 9: the file has only 3 \
             bytes",
            p.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_block_size_is_rejected_when_the_graph_is_built() {
    let d = TempDir::new("zero");
    let p = d.file("a.txt", "x\n");
    let err = FileSource::new(Files::path(p))
        .block_size(0)
        .lines()
        .run_with(Sink::collect())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("file source: block_size must be at least 1, got 0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_handed_out_in_batches_downstream_asks_for() {
    let d = TempDir::new("take");
    let body: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let p = d.file("n.txt", &body);
    let got = collect(FileSource::new(Files::path(&p)).lines().take(5))
        .await
        .unwrap();
    assert_eq!(text(got), ["0", "1", "2", "3", "4"]);
}

/// Upper-cases ASCII lines; a line holding `!` is bad.
#[derive(Clone)]
struct Shout;

impl weir_operators::file::LineFormat for Shout {
    type Out = String;
    fn decode(&mut self, line: weir_operators::file::Line<'_>) -> Result<Option<String>, String> {
        let line = line.as_bytes();
        if line.contains(&b'!') {
            return Err("no shouting".to_owned());
        }
        Ok(Some(String::from_utf8_lossy(line).to_ascii_uppercase()))
    }
    fn has_header(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_of_the_callers_gets_positions_headers_and_errors_for_free() {
    let d = TempDir::new("format");
    let p = d.file("a.txt", "header\nab\ncd\ne!\nf\n");
    let (got, err) =
        until_failure(FileSource::new(Files::path(&p)).with_format("shout", Shout)).await;
    assert_eq!(got, ["AB", "CD"]);
    assert_eq!(
        err.unwrap().to_string(),
        format!(
            "stage 'shout#0' failed on element \"e!\": {}:4 (byte offset 13): no shouting",
            p.display()
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocked_read_never_blocks_the_runtime() {
    // A FIFO blocks its reader until a writer comes: on the only runtime thread, a timer still
    // fires while the source waits, then the lines the writer sends arrive.
    let d = TempDir::new("fifo");
    let fifo = d.0.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo unavailable: skipped");
        return;
    }
    // The writer comes when told, or after 10 s at the latest (a blocked runtime then fails
    // the bound below instead of hanging the test).
    let (go, told) = std::sync::mpsc::channel::<()>();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let _ = told.recv_timeout(Duration::from_secs(10));
        std::fs::write(&path, "x\ny\n").unwrap();
    });
    let t0 = Instant::now();
    let f = FileSource::new(Files::path(&fifo))
        .lines()
        .run_with(Sink::collect())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the runtime was blocked"
    );
    go.send(()).unwrap();
    assert_eq!(text(within(f).await.unwrap()), ["x", "y"]);
    writer.join().unwrap();
}

/// Writes `content` hidden, then renames it to `name` (complete when it appears).
fn publish(d: &TempDir, name: &str, content: &str) {
    let hidden = d.file(&format!(".{name}"), content);
    std::fs::rename(hidden, d.0.join(name)).unwrap();
}

#[test]
fn a_following_source_reads_new_files_after_the_last_one_and_resumes_after_it() {
    let d = TempDir::new("follow");
    d.file("b.txt", "b1\nb2\n");
    let src = FileSource::new(Files::glob(d.0.join("*.txt")))
        .follow(Duration::from_millis(5))
        .lines();
    let mut first = source_logic(&src);
    let (got, done) = pull::<Bytes>(first.as_mut(), 8, 2);
    assert_eq!(
        (text(got), done),
        (vec!["b1".to_owned(), "b2".to_owned()], false)
    );
    let at_end_of_b = first.snapshot().unwrap().expect("a position");

    // A file sorting before the last one read is not read; later ones are, in name order.
    publish(&d, "a.txt", "a1\n");
    publish(&d, "c.txt", "c1\nc2\n");
    publish(&d, "d.txt", "d1\n");
    let (got, done) = pull::<Bytes>(first.as_mut(), 8, 3);
    assert_eq!(
        (text(got), done),
        (vec!["c1".into(), "c2".into(), "d1".into()], false)
    );
    first.post_stop();

    // Restored at the end of b.txt, the source continues with the files after it.
    let mut second = source_logic(&src);
    second.restore(&at_end_of_b).unwrap();
    let (got, done) = pull::<Bytes>(second.as_mut(), 8, 3);
    assert_eq!(
        (text(got), done),
        (vec!["c1".into(), "c2".into(), "d1".into()], false)
    );
    second.post_stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_source_ends_when_downstream_cancels_and_a_file_cannot_be_followed() {
    let d = TempDir::new("follow-cancel");
    d.file("a.txt", "a1\na2\n");
    let src = FileSource::new(Files::path(&d.0))
        .follow(Duration::from_millis(5))
        .lines();
    let (f, h) = src
        .take(3)
        .to_mat(Sink::collect(), weir_graph::Keep::right)
        .start()
        .unwrap();
    // Two lines, then the source waits for new files until one appears.
    tokio::time::sleep(Duration::from_millis(30)).await;
    publish(&d, "b.txt", "b1\nb2\n");
    let got = within(f).await.unwrap();
    assert_eq!(text(got), ["a1", "a2", "b1"]);
    within(h.wait()).await.unwrap();

    // Waiting for new files, the source stops when its run is cancelled.
    let (f, h) = FileSource::new(Files::path(&d.0))
        .follow(Duration::from_millis(5))
        .lines()
        .to_mat(Sink::collect(), weir_graph::Keep::right)
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    h.cancel();
    assert!(within(h.wait()).await.is_err());
    assert!(within(f).await.is_err());

    let one = d.file("one.txt", "x\n");
    let err = collect(
        FileSource::new(Files::path(&one))
            .follow(Duration::from_millis(5))
            .lines(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "cannot follow {} for new files: it is a file, not a directory",
            one.display()
        )),
        "{err}"
    );
}

/// `src` made of the files of `d`, as share `index` of `count`.
fn shared(d: &TempDir, index: usize, count: usize) -> Source<Bytes> {
    FileSource::new(Files::path(&d.0))
        .share(index, count)
        .block_size(5)
        .lines()
}

#[test]
fn shares_read_their_files_and_a_redistribution_resumes_each_file_where_its_old_source_left_it() {
    let d = TempDir::new("shares");
    let mut all = Vec::new();
    for f in 0..6 {
        let lines: Vec<String> = (1..=4).map(|l| format!("f{f}-{l}")).collect();
        d.file(&format!("f{f}.txt"), &(lines.join("\n") + "\n"));
        all.extend(lines);
    }
    let read = |f: usize| (1..=4).map(|l| format!("f{f}-{l}")).collect::<Vec<_>>();
    // Two shares: the files at even and at odd positions.
    let mut old0 = source_logic(&shared(&d, 0, 2));
    let (whole, done) = pull::<Bytes>(old0.as_mut(), 4, usize::MAX);
    assert!(done);
    assert_eq!(text(whole), [read(0), read(2), read(4)].concat());
    // Stopped after 6 lines of share 0 (f0, half of f2) and 1 of share 1 (f1-1).
    let mut old0 = source_logic(&shared(&d, 0, 2));
    let (a, _) = pull::<Bytes>(old0.as_mut(), 1, 6);
    let mut old1 = source_logic(&shared(&d, 1, 2));
    let (b, _) = pull::<Bytes>(old1.as_mut(), 1, 1);
    let before = [text(a), text(b)].concat();
    assert_eq!(
        before,
        ["f0-1", "f0-2", "f0-3", "f0-4", "f2-1", "f2-2", "f1-1"]
    );
    let snaps = [
        old0.snapshot().unwrap().unwrap(),
        old1.snapshot().unwrap().unwrap(),
    ];
    old0.post_stop();
    old1.post_stop();

    // Onto three shares: share i takes the files at positions j % 3 == i with the old
    // positions: what was read is done, the file an old source was in resumes after its last
    // line, the rest start at the beginning.
    let want: [Vec<String>; 3] = [
        read(3),
        [read(1)[1..].to_vec(), read(4)].concat(),
        [read(2)[2..].to_vec(), read(5)].concat(),
    ];
    let mut after = before.clone();
    for (i, want) in want.iter().enumerate() {
        let mut s = source_logic(&shared(&d, i, 3));
        s.restore_redistributed(&snaps, weir_graph::Share { index: i, count: 3 })
            .unwrap();
        // What it took survives a checkpoint before it reads anything.
        let mut again = source_logic(&shared(&d, i, 3));
        again.restore(&s.snapshot().unwrap().unwrap()).unwrap();
        let (got, done) = pull::<Bytes>(again.as_mut(), 3, usize::MAX);
        assert!(done);
        assert_eq!(&text(got), want, "share {i} of 3");
        let (got, _) = pull::<Bytes>(s.as_mut(), 3, usize::MAX);
        assert_eq!(&text(got), want, "share {i} of 3");
        after.extend(want.iter().cloned());
    }
    after.sort();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    assert_eq!(after, all_sorted, "every line once");

    // A source that reads every file cannot take a share of a job on other nodes.
    let mut whole = source_logic(&FileSource::new(Files::path(&d.0)).lines());
    let e = whole
        .restore_redistributed(&snaps, weir_graph::Share { index: 1, count: 3 })
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "it reads share 0 of 1 of the files but runs as share 1 of 3 of the job: give it \
             `.share(node, nodes)`"
        ),
        "{e}"
    );
    // A saved share that is not the source's own is refused on a plain restore.
    let mut other = source_logic(&shared(&d, 1, 2));
    let e = other.restore(&snaps[0]).unwrap_err();
    assert!(
        e.to_string().contains(
            "the checkpoint read share 0 of 2 of the files and this source reads share 1 of 2"
        ),
        "{e}"
    );
}
