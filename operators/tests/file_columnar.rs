//! Columnar file connectors through the engine: Arrow IPC and Parquet record batches written
//! by the transactional sink and read back exactly (every row, in order, at most `batch_rows`
//! per batch, the chosen columns in the order asked); a restored source resumes at the saved
//! row exactly, after any cut; a batch of another schema fails the sink naming both; and with
//! checkpoints the Parquet sink commits each row once across a stopped run.

mod ck;

use arrow_array::{Array, ArrayRef, Int64Array, StringArray};
use ck::*;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use weir_engine::SystemClock;
use weir_engine::prelude::*;
use weir_graph::{
    ErasedSource, NodeKind, RunnableGraph, Sink, SinkFuture, Snapshot, Source, StageCx, StageError,
    StageInfo, Step,
};
use weir_operators::file::{
    FileSink, FileSource, Files, ParquetCompression, ParquetOptions, RecordBatch,
};
use weir_operators::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Ipc,
    Parquet,
}

const FORMATS: [Format; 2] = [Format::Ipc, Format::Parquet];

fn sink(f: Format, out: &Path, max_part_bytes: u64) -> Sink<RecordBatch, SinkFuture<Vec<PathBuf>>> {
    let s = FileSink::new(out).max_part_bytes(max_part_bytes);
    match f {
        Format::Ipc => s.suffix(".arrow").arrow_ipc(),
        Format::Parquet => s.suffix(".parquet").parquet(ParquetOptions {
            compression: ParquetCompression::Snappy,
            row_group_rows: 7,
        }),
    }
}

fn source(f: Format, files: Files, batch_rows: usize) -> Source<RecordBatch> {
    let s = FileSource::new(files).batch_rows(batch_rows);
    match f {
        Format::Ipc => s.arrow_ipc(),
        Format::Parquet => s.parquet(),
    }
}

/// Rows `from..to`: `n` (Int64) and `s` (`"r{n}"`, null where `n % 7 == 3`).
fn rows(from: i64, to: i64) -> RecordBatch {
    let n: ArrayRef = Arc::new(Int64Array::from_iter_values(from..to));
    let s: ArrayRef = Arc::new(StringArray::from_iter(
        (from..to).map(|i| (i % 7 != 3).then(|| format!("r{i}"))),
    ));
    RecordBatch::try_from_iter([("n", n), ("s", s)]).unwrap()
}

/// Batches of the given sizes, numbering their rows on from 0.
fn batches(sizes: &[usize]) -> Vec<RecordBatch> {
    let mut at = 0i64;
    sizes
        .iter()
        .map(|&k| {
            let b = rows(at, at + k as i64);
            at += k as i64;
            b
        })
        .collect()
}

/// The `(n, s)` rows of `batches`, in order.
fn table(batches: &[RecordBatch]) -> Vec<(i64, Option<String>)> {
    let mut v = Vec::new();
    for b in batches {
        let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            v.push((n.value(i), s.is_valid(i).then(|| s.value(i).to_owned())));
        }
    }
    v
}

fn expected(from: i64, to: i64) -> Vec<(i64, Option<String>)> {
    table(&[rows(from, to)])
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

async fn collect<T: Send + 'static>(src: Source<T>) -> Result<Vec<T>, StageError> {
    within(src.run_with(Sink::collect()).unwrap()).await
}

async fn write(f: Format, out: &Path, data: Vec<RecordBatch>, max_part_bytes: u64) -> Vec<PathBuf> {
    within(
        Source::from_iter(data)
            .run_with(sink(f, out, max_part_bytes))
            .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_round_trip_every_row_in_order_across_parts_in_both_formats() {
    let sizes = [3, 1, 10, 4, 0, 9, 2, 8, 5, 13];
    let total: usize = sizes.iter().sum();
    for f in FORMATS {
        // One part per batch (the empty batch writes nothing), then everything in one part.
        for (max, parts) in [(1, 9), (u64::MAX, 1)] {
            let out = dir(&format!("col-rt-{f:?}-{parts}"));
            let files = write(f, &out, batches(&sizes), max).await;
            assert_eq!(files.len(), parts, "{f:?}: {files:?}");
            assert_eq!(
                files,
                FileSink::new(&out)
                    .suffix(match f {
                        Format::Ipc => ".arrow",
                        Format::Parquet => ".parquet",
                    })
                    .committed()
                    .unwrap()
            );
            for batch_rows in [1, 4, 8192] {
                let got = collect(source(f, Files::path(&out), batch_rows))
                    .await
                    .unwrap();
                assert!(
                    got.iter()
                        .all(|b| b.num_rows() <= batch_rows && b.num_rows() > 0)
                );
                assert_eq!(
                    table(&got),
                    expected(0, total as i64),
                    "{f:?} max {max} rows {batch_rows}"
                );
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_come_in_the_order_asked_and_a_missing_one_is_named() {
    for f in FORMATS {
        let out = dir(&format!("col-proj-{f:?}"));
        let files = write(f, &out, batches(&[5, 6]), u64::MAX).await;
        let s = FileSource::new(Files::path(&out)).columns(["s", "n"]);
        let got = collect(match f {
            Format::Ipc => s.arrow_ipc(),
            Format::Parquet => s.parquet(),
        })
        .await
        .unwrap();
        let names: Vec<String> = got[0]
            .schema()
            .fields()
            .iter()
            .map(|c| c.name().clone())
            .collect();
        assert_eq!(names, ["s", "n"]);
        let swapped: Vec<RecordBatch> = got.iter().map(|b| b.project(&[1, 0]).unwrap()).collect();
        assert_eq!(table(&swapped), expected(0, 11));

        let s = FileSource::new(Files::path(&out)).columns(["n", "x"]);
        let err = collect(match f {
            Format::Ipc => s.arrow_ipc(),
            Format::Parquet => s.parquet(),
        })
        .await
        .unwrap_err();
        let stage = match f {
            Format::Ipc => "file_arrow_ipc#0",
            Format::Parquet => "file_parquet#0",
        };
        assert_eq!(
            err.to_string(),
            format!(
                "stage '{stage}' failed: {} has no column \"x\" (its columns: n, s)",
                files[0].display()
            )
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_another_format_fails_the_source_naming_it() {
    let out = dir("col-bad");
    std::fs::create_dir_all(&out).unwrap();
    let p = out.join("x.parquet");
    std::fs::write(&p, b"not columnar at all").unwrap();
    for f in FORMATS {
        let err = collect(source(f, Files::path(&p), 10))
            .await
            .unwrap_err()
            .to_string();
        let (stage, name) = match f {
            Format::Ipc => ("file_arrow_ipc#0", "Arrow IPC"),
            Format::Parquet => ("file_parquet#0", "Parquet"),
        };
        let head = format!("stage '{stage}' failed: {} ({name}): ", p.display());
        assert!(err.starts_with(&head), "{err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_another_schema_fails_the_sink_naming_both_and_commits_nothing() {
    for f in FORMATS {
        let out = dir(&format!("col-schema-{f:?}"));
        let other =
            RecordBatch::try_from_iter([("m", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)])
                .unwrap();
        let err = within(
            Source::from_iter(vec![rows(0, 3), other])
                .run_with(sink(f, &out, u64::MAX))
                .unwrap(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("has schema [Field { \"m\": Int64 }], but the part's is [Field { \"n\": nullable Int64 }, Field { \"s\": nullable Utf8 }]"),
            "{f:?}: {err}"
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "{f:?}: nothing left behind"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// A file source's saved state, as it encodes it: tag 2, its share, the position (the row
/// for the columnar formats, and 0), then the files after it that start part-way or are done.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Saved {
    share: (u64, u64),
    at: Option<(String, u64, u64)>,
    starts: Vec<(String, u64, u64)>,
    done: Vec<String>,
}

fn source_logic<T: Send + 'static>(src: &Source<T>) -> Box<dyn ErasedSource> {
    let NodeKind::Source(f) = &src.module().nodes[0].kind else {
        panic!("not a source stage");
    };
    f(&StageInfo::new("file", 0)).unwrap().0
}

/// Polls `logic` until it emitted at least `n` batches or ended.
fn pull(logic: &mut dyn ErasedSource, n: usize) -> (Vec<RecordBatch>, bool) {
    let clock = SystemClock::new();
    let info = StageInfo::new("file", 0);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    loop {
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let r = logic.poll_next(&mut cx, &mut scx);
        got.append(logic.buffer().downcast_mut::<Vec<RecordBatch>>().unwrap());
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
fn a_restored_source_resumes_at_the_saved_row_after_every_cut() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for f in FORMATS {
        let out = dir(&format!("col-cut-{f:?}"));
        // Two parts, each with uneven batches (Parquet row groups of 7 rows).
        let _ = rt.block_on(write(f, &out, batches(&[5, 9, 1]), u64::MAX));
        let files = rt.block_on(write(f, &out, vec![rows(15, 18), rows(18, 30)], u64::MAX));
        let second = files[0].to_string_lossy().into_owned();
        let src = source(f, Files::path(&out), 4);
        let mut first = source_logic(&src);
        let mut emitted = Vec::new();
        loop {
            let (got, done) = pull(first.as_mut(), 1);
            emitted.extend(got);
            let snap = first.snapshot().unwrap().expect("a position");
            let mut again = source_logic(&src);
            again.restore(&snap).unwrap();
            let (rest, rest_done) = pull(again.as_mut(), usize::MAX);
            assert!(rest_done);
            let mut resumed = table(&emitted);
            resumed.extend(table(&rest));
            assert_eq!(
                resumed,
                expected(0, 30),
                "{f:?}: cut after {} rows",
                table(&emitted).len()
            );
            if done {
                break;
            }
        }
        // The position saved: the file and the row of the next batch.
        let first_file = files[0].with_file_name(
            files[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace("00001.", "00000."),
        );
        let first_file = first_file.to_string_lossy().into_owned();
        let mut s = source_logic(&src);
        let (got, _) = pull(s.as_mut(), 5);
        let k = table(&got).len() as u64;
        assert_eq!(table(&got), expected(0, k as i64));
        let (tag, saved): (u8, Saved) = s.snapshot().unwrap().unwrap().decode().unwrap();
        assert_eq!(tag, 2);
        let at = saved.at.unwrap();
        let ok = (at.0 == first_file && at.1 == k && k <= 15) || (at.0 == second && at.1 + 15 == k);
        assert!(ok && at.2 == 0, "{f:?}: {k} rows out, saved {at:?}");
        s.post_stop();
        // Beyond the file's rows: named.
        let mut r = source_logic(&src);
        let bad = Saved {
            share: (0, 1),
            at: Some((second.clone(), 16, 0)),
            starts: vec![],
            done: vec![],
        };
        r.restore(&Snapshot::encode(&(2u8, bad)).unwrap()).unwrap();
        let clock = SystemClock::new();
        let info = StageInfo::new("file", 0);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let err = loop {
            let mut scx = StageCx::new(&info, &clock, None, 8);
            match r.poll_next(&mut cx, &mut scx) {
                Poll::Ready(Err(e)) => break e,
                Poll::Ready(Ok(_)) => panic!("read past the end"),
                Poll::Pending => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        assert_eq!(
            err.to_string(),
            format!(
                "stage 'file#0' failed: cannot resume from {second} at row 16: the file has only 15 rows"
            )
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Overwrites the string offsets of an Arrow IPC file's batch `i` with 0xff bytes, so decoding
/// that batch fails its validation (its header, and so its row count, stays intact).
fn corrupt_ipc_batch(path: &Path, i: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let (body, len) = {
        let n = bytes.len();
        let tail: [u8; 10] = bytes[n - 10..].try_into().unwrap();
        let footer_len = arrow_ipc::reader::read_footer_length(tail).unwrap();
        let footer = arrow_ipc::root_as_footer(&bytes[n - 10 - footer_len..n - 10]).unwrap();
        let block = footer.recordBatches().unwrap().get(i);
        let (at, meta) = (block.offset() as usize, block.metaDataLength() as usize);
        let message = arrow_ipc::root_as_message(&bytes[at + 8..at + meta]).unwrap();
        // Buffers: `n` validity and values, then `s` validity, offsets and values.
        let header = message.header_as_record_batch().unwrap();
        let offsets = header.buffers().unwrap().get(3);
        (
            at + meta + offsets.offset() as usize,
            offsets.length() as usize,
        )
    };
    bytes[body..body + len].fill(0xff);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_ipc_source_resumes_past_batches_it_never_decodes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = dir("col-ipc-skip");
    let files = rt.block_on(write(Format::Ipc, &out, batches(&[5, 4, 6]), u64::MAX));
    let file = files[0].clone();
    corrupt_ipc_batch(&file, 0);
    // Read from the start, the first batch fails to decode, naming the file.
    let err = rt
        .block_on(collect(source(Format::Ipc, Files::path(&file), 64)))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&file.to_string_lossy().into_owned()),
        "{err}"
    );
    // Resumed at row 7 (in the second batch), the first batch is skipped by its header alone.
    let src = source(Format::Ipc, Files::path(&file), 64);
    let mut s = source_logic(&src);
    let saved = Saved {
        share: (0, 1),
        at: Some((file.to_string_lossy().into_owned(), 7, 0)),
        starts: vec![],
        done: vec![],
    };
    s.restore(&Snapshot::encode(&(2u8, saved)).unwrap())
        .unwrap();
    let (got, done) = pull(s.as_mut(), usize::MAX);
    assert!(done);
    assert_eq!(table(&got), expected(7, 15));
    let _ = std::fs::remove_dir_all(&out);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Any batch sizes, batch rows and resume row: the rows from the resume row on, each batch
    /// within the limit.
    #[test]
    fn any_resume_row_reads_exactly_the_rows_after_it(
        sizes in proptest::collection::vec(0usize..12, 1..8),
        batch_rows in 1usize..10,
        parquet in any::<bool>(),
        cut in 0.0f64..=1.0,
    ) {
        let f = if parquet { Format::Parquet } else { Format::Ipc };
        let total: usize = sizes.iter().sum();
        let out = dir("col-prop");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let files = rt.block_on(write(f, &out, batches(&sizes), u64::MAX));
        let row = ((total as f64) * cut) as u64;
        let src = source(f, Files::path(&out), batch_rows);
        let mut s = source_logic(&src);
        if let Some(file) = files.first() {
            let snap = Snapshot::encode(&(2u8, Saved {
                share: (0, 1),
                at: Some((file.to_string_lossy().into_owned(), row, 0)),
                starts: vec![],
                done: vec![],
            })).unwrap();
            s.restore(&snap).unwrap();
        }
        let (got, done) = pull(s.as_mut(), usize::MAX);
        prop_assert!(done);
        prop_assert!(got.iter().all(|b| b.num_rows() <= batch_rows && b.num_rows() > 0));
        let from = if files.is_empty() { 0 } else { row as i64 };
        prop_assert_eq!(table(&got), expected(from, total as i64));
        let _ = std::fs::remove_dir_all(&out);
    }
}

const N: u64 = 100;

/// Numbers as one-row batches into Parquet parts of about two batches.
fn job(gate: &Arc<Gate>, out: &Path) -> RunnableGraph<SinkFuture<Vec<PathBuf>>> {
    let one = rows(0, 1).get_array_memory_size() as u64;
    counting("numbers", N, gate)
        .map(|x| rows(x as i64, x as i64 + 1))
        .to_mat(sink(Format::Parquet, out, 2 * one), |(), f| f)
}

async fn committed(out: &Path) -> Vec<(i64, Option<String>)> {
    let parts = FileSink::new(out).suffix(".parquet").committed().unwrap();
    if parts.is_empty() {
        return Vec::new();
    }
    table(
        &collect(source(Format::Parquet, Files::path(out), 1000))
            .await
            .unwrap(),
    )
}

fn uncommitted(out: &Path) -> usize {
    std::fs::read_dir(out).map_or(0, |rd| {
        rd.filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".inprogress")
        })
        .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_parts_commit_each_row_once_across_a_run_stopped_between_a_barrier_and_its_completion()
 {
    let d = dir("col-eo-state");
    let out = dir("col-eo-out");
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let (_files, h) = m.materialize(&job(&gate, &out)).unwrap();
    gate.open(30);
    until("30 emitted", || gate.emitted.load(Ordering::Acquire) == 30).await;
    checkpoint(&h, &clock, 1).await;
    let mut tries = 0;
    while committed(&out).await.len() < 30 {
        tries += 1;
        assert!(tries < 2000, "checkpoint 1 never committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(committed(&out).await, expected(0, 30));
    std::fs::write(d.join("chk-00000000000000000002"), b"in the way").unwrap();
    gate.open(70);
    clock.advance(SECOND);
    let ck = h.checkpoints().unwrap();
    until("checkpoint 2 failed", || ck.failed() == vec![2]).await;
    h.cancel();
    assert!(h.wait().await.is_err());
    assert!(uncommitted(&out) > 0);
    assert_eq!(committed(&out).await, expected(0, 30));

    std::fs::remove_file(d.join("chk-00000000000000000002")).unwrap();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let (files, h) = m.materialize(&job(&gate, &out)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    assert!(!files.await.unwrap().is_empty());
    assert_eq!(committed(&out).await, expected(0, N as i64));
    assert_eq!(uncommitted(&out), 0);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&out);
}
