//! The CSV source against simple reference parsers on random files: fields (plain, empty,
//! quoted with delimiters and doubled quotes), LF and CRLF terminators, empty lines, a last
//! line without a terminator, and integers, good and bad, read at every block size (lines cut
//! where they lie in a block and lines carried across blocks). A bad number fails the source
//! naming file, line, byte offset and field after every line before it; under Resume it goes
//! to the dead letters and every other line comes out.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{DeadLetterSink, Sink, Source, StageError, Supervision};
use weir_operators::file::{Bytes, CsvOptions, CsvRecord, FileSource, Files};
use weir_operators::prelude::*;

/// The runtime all cases run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A file of its own per case, removed when the case ends.
struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &[u8]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("weir-file-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{}.csv", N.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&p, content).unwrap();
        Self(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `src` to its end in batches of `batch`: the elements that arrived, and the failure if
/// it failed.
fn run<T: Send + 'static>(src: Source<T>, batch: usize) -> (Vec<T>, Option<StageError>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let graph = src.to_mat(
        Sink::for_each(move |x| g.lock().unwrap().push(x)),
        Keep::right,
    );
    let r = runtime().block_on(async move {
        let (done, _h) = Materializer::new()
            .with_batch_size(batch)
            .materialize(&graph)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), done)
            .await
            .expect("timed out")
    });
    let v = std::mem::take(&mut *got.lock().unwrap());
    (v, r.err())
}

/// One line of a file: its number (1-based), byte offset and text without its terminator.
struct RefLine<'a> {
    number: u64,
    offset: u64,
    text: &'a str,
}

/// The reference's lines: split at `\n`, one `\r` before it removed, empty lines dropped (a
/// last line without a terminator counts).
fn ref_lines(content: &str) -> Vec<RefLine<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, raw) in content.split_inclusive('\n').enumerate() {
        let text = raw
            .strip_suffix("\r\n")
            .or_else(|| raw.strip_suffix('\n'))
            .unwrap_or(raw);
        if !text.is_empty() {
            out.push(RefLine {
                number: i as u64 + 1,
                offset,
                text,
            });
        }
        offset += raw.len() as u64;
    }
    out
}

/// The reference's fields of a well-formed line, a character at a time.
fn ref_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut f = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        f.push('"');
                    }
                    '"' => break,
                    c => f.push(c),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            f.push(c);
            chars.next();
        }
        fields.push(f);
        if chars.next().is_none() {
            return fields;
        }
    }
}

/// A field: plain text, empty, or quoted (holding delimiters, doubled quotes, spaces).
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ;.-]{0,12}",
        Just(String::new()),
        "[a-z0-9 ,;\"]{0,10}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
        any::<i64>().prop_map(|v| v.to_string()),
    ]
}

/// A number field: in range or not, with a sign, leading zeros, or not a number at all.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..2000).prop_map(|v| v.to_string()),
        2 => any::<i64>().prop_map(|v| v.to_string()),
        1 => (0u32..70000).prop_map(|v| format!("+{v}")),
        1 => (0u32..999).prop_map(|v| format!("000{v}")),
        1 => (0u64..u64::MAX).prop_map(|v| format!("{v}9")),
        1 => prop::sample::select(vec!["", "-", "+", "1x", "x1", "1 ", "-0", "1.5", "0x10", "\"7\""])
            .prop_map(str::to_owned),
    ]
}

/// Lines of `fields` fields each, with LF or CRLF, empty lines, and maybe no last terminator.
/// Also a block size (small ones carry most lines across blocks) and a batch size.
fn file_of(cell: impl Strategy<Value = String>) -> impl Strategy<Value = (String, usize, usize)> {
    let line = prop_oneof![
        8 => prop::collection::vec(cell, 1..5).prop_map(|f| f.join(",")),
        1 => Just(String::new()),
    ];
    (
        prop::collection::vec((line, prop::bool::weighted(0.2)), 0..40),
        any::<bool>(),
        prop_oneof![1usize..48, Just(64 * 1024)],
        prop_oneof![1usize..4, Just(1024)],
    )
        .prop_map(|(lines, last_open, block, batch)| {
            let mut s = String::new();
            let n = lines.len();
            for (i, (l, crlf)) in lines.into_iter().enumerate() {
                s.push_str(&l);
                if i + 1 < n || !last_open {
                    s.push_str(if crlf { "\r\n" } else { "\n" });
                }
            }
            (s, block, batch)
        })
}

/// The source's fields of each record.
fn fields_source(path: &Path, block: usize) -> Source<Vec<String>> {
    FileSource::new(Files::path(path)).block_size(block).csv(
        CsvOptions::default(),
        |r: CsvRecord<'_>| {
            Ok::<_, std::convert::Infallible>(
                r.iter()
                    .map(|f| String::from_utf8(f.to_vec()).unwrap())
                    .collect(),
            )
        },
    )
}

/// Each record's fields as integers of `T`.
fn ints<T: weir_operators::file::CsvInt>(r: CsvRecord<'_>) -> Result<Vec<T>, String> {
    (0..r.len())
        .map(|i| r.int::<T>(i).map_err(|e| e.to_string()))
        .collect()
}

/// The reference's integers of a line: split by `,` (quotes removed), each parsed with
/// `str::parse`; the first field that does not parse names the line's error.
fn ref_ints<T: std::str::FromStr>(line: &str) -> Result<Vec<T>, String> {
    ref_fields(line)
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.parse::<T>().map_err(|_| {
                format!(
                    "field {i} ({f:?}) is not a valid {}: not an integer in range",
                    std::any::type_name::<T>()
                )
            })
        })
        .collect()
}

/// What the reference expects of an integer file: the records before the first bad line, and
/// that line's error as the source reports it (or, under Resume, every good record and each
/// bad line's message and raw text).
fn expect_ints<T: std::str::FromStr>(
    content: &str,
    path: &Path,
    resume: bool,
) -> (Vec<Vec<T>>, Vec<(String, String)>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for l in ref_lines(content) {
        match ref_ints::<T>(l.text) {
            Ok(v) => good.push(v),
            Err(reason) => {
                let msg = format!(
                    "{}:{} (byte offset {}): {reason}",
                    path.display(),
                    l.number,
                    l.offset
                );
                bad.push((msg, l.text.to_owned()));
                if !resume {
                    break;
                }
            }
        }
    }
    (good, bad)
}

/// Runs the integer source over `content` and compares it with the reference.
fn check_ints<T>(
    content: &str,
    block: usize,
    batch: usize,
    resume: bool,
) -> Result<(), TestCaseError>
where
    T: weir_operators::file::CsvInt + std::str::FromStr + PartialEq + std::fmt::Debug,
    T: Send + 'static,
{
    let f = TempFile::new(content.as_bytes());
    let (dl, letters) = DeadLetterSink::collector();
    let mut src = FileSource::new(Files::path(&f.0))
        .block_size(block)
        .csv(CsvOptions::default(), ints::<T>);
    if resume {
        src = src.with_supervision(Supervision::resume().with_dead_letters(dl));
    }
    let (got, err) = run(src, batch);
    let (good, bad) = expect_ints::<T>(content, &f.0, resume);
    prop_assert_eq!(&got, &good);
    if resume {
        prop_assert!(err.is_none(), "{:?}", err.map(|e| e.to_string()));
        let letters = letters.lock().unwrap();
        let seen: Vec<(String, String)> = letters
            .iter()
            .map(|l| {
                let raw = l
                    .element
                    .as_ref()
                    .and_then(|e| e.downcast_ref::<Bytes>())
                    .map(|b| String::from_utf8(b.to_vec()).unwrap())
                    .unwrap_or_default();
                (l.error.message().to_owned(), raw)
            })
            .collect();
        prop_assert_eq!(seen, bad);
    } else {
        match bad.first() {
            None => prop_assert!(err.is_none(), "{:?}", err.map(|e| e.to_string())),
            Some((msg, text)) => {
                let err = err.expect("the source fails at the bad line");
                prop_assert_eq!(
                    err.to_string(),
                    format!("stage 'file_csv#0' failed on element {text:?}: {msg}")
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn fields_agree_with_a_character_at_a_time_parser(
        (content, block, batch) in file_of(field()),
    ) {
        let f = TempFile::new(content.as_bytes());
        let (got, err) = run(fields_source(&f.0, block), batch);
        prop_assert!(err.is_none(), "{:?}", err.map(|e| e.to_string()));
        let want: Vec<Vec<String>> =
            ref_lines(&content).iter().map(|l| ref_fields(l.text)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn integers_agree_with_split_and_parse(
        (content, block, batch) in file_of(number()),
        resume in any::<bool>(),
        narrow in any::<bool>(),
    ) {
        if narrow {
            check_ints::<u16>(&content, block, batch, resume)?;
        } else {
            check_ints::<i64>(&content, block, batch, resume)?;
        }
    }
}

#[test]
fn an_unclosed_quote_fails_naming_line_offset_and_column() {
    let content = "1,2\r\n\"a\",\"b\"\"\n3,4\n";
    for block in [3, 64 * 1024] {
        let f = TempFile::new(content.as_bytes());
        let (got, err) = run(fields_source(&f.0, block), 1024);
        assert_eq!(got, [vec!["1".to_owned(), "2".to_owned()]]);
        assert_eq!(
            err.unwrap().to_string(),
            format!(
                "stage 'file_csv#0' failed on element \"\\\"a\\\",\\\"b\\\"\\\"\": {}:2 (byte offset 5): \
                 the quoted field at column 5 is not closed",
                f.0.display()
            )
        );
    }
}

#[test]
fn a_header_is_skipped_in_every_file_and_other_delimiters_split() {
    let content = "k;v\n1;\"x;y\"\n\n2;z";
    for block in [1, 5, 64 * 1024] {
        let f = TempFile::new(content.as_bytes());
        let src = FileSource::new(Files::path(&f.0)).block_size(block).csv(
            CsvOptions {
                delimiter: b';',
                header: true,
            },
            |r: CsvRecord<'_>| {
                Ok::<_, std::convert::Infallible>((
                    r.int::<u8>(0).unwrap(),
                    String::from_utf8(r.field(1).unwrap().to_vec()).unwrap(),
                ))
            },
        );
        let (got, err) = run(src, 1);
        assert!(err.is_none());
        assert_eq!(got, [(1, "x;y".to_owned()), (2, "z".to_owned())]);
    }
}
