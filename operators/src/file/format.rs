//! Line formats of the file sources: how one line (without its terminator) becomes an element,
//! and how a run of whole lines of a block does (one line at a time unless a format cuts and
//! decodes a run in one pass, as CSV does). Text lines and JSON lines hand out the line itself
//! (a `Bytes` slice of the block it was read in, no copy); CSV (`csv.rs`) splits it at the byte
//! level and hands a borrowed `CsvRecord` to the user's decoder.

use bytes::Bytes;
use std::fmt::Display;

/// One line of a file (its terminator removed), borrowed from the block it was read in.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub(crate) block: &'a Bytes,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

impl<'a> Line<'a> {
    /// The line's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.block[self.start..self.start + self.len]
    }
    /// The line as `Bytes` sharing the block (no copy).
    pub fn to_bytes(&self) -> Bytes {
        self.block.slice(self.start..self.start + self.len)
    }
}

/// How far one [`LineFormat::decode_run`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The run stops once the output holds this many elements.
    pub max_out: usize,
    /// A line longer than this (a `\r` before its `\n` counted) stops the run.
    pub max_line: usize,
}

/// Why a run of lines stopped before the block's last whole line or its output limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStop {
    /// The line at the run's end is bad.
    Bad {
        /// Its length without its terminator.
        len: usize,
        /// Its length with its terminator.
        raw: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The line at the run's end is longer than [`RunLimits::max_line`].
    TooLong,
}

/// Where a run of lines ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The start (in the block) of the first line not consumed.
    pub end: usize,
    /// The lines consumed (decoded or skipped).
    pub lines: u64,
    /// Why the run stopped early, if it did (at the line starting at `end`).
    pub stop: Option<RunStop>,
}

impl Run {
    /// A run that consumed `lines` lines up to `end` and did not stop early.
    pub fn done(end: usize, lines: u64) -> Self {
        Self {
            end,
            lines,
            stop: None,
        }
    }
}

/// Decodes the lines of a file source.
pub trait LineFormat: Send + 'static {
    /// The element type.
    type Out: Send + 'static;
    /// Decodes one line: `Ok(None)` skips it, `Err` (the reason) makes it a bad line.
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Self::Out>, String>;
    /// Whether the first line of every file is a header to skip.
    fn has_header(&self) -> bool {
        false
    }
    /// Decodes the whole lines (each ending in `\n`) of `block` from byte `from` into `out`,
    /// until the block holds no more whole line, `out` holds `limits.max_out` elements, or a
    /// line is too long or bad. The default calls [`LineFormat::decode`] for each line.
    fn decode_run(
        &mut self,
        block: &Bytes,
        from: usize,
        limits: RunLimits,
        out: &mut Vec<Self::Out>,
    ) -> Run
    where
        Self: Sized,
    {
        decode_lines(self, block, from, limits, out)
    }
}

/// [`LineFormat::decode_run`] one line at a time, each cut with `memchr` and decoded by
/// [`LineFormat::decode`].
pub fn decode_lines<F: LineFormat>(
    format: &mut F,
    block: &Bytes,
    from: usize,
    limits: RunLimits,
    out: &mut Vec<F::Out>,
) -> Run {
    let mut at = from;
    let mut lines = 0;
    while out.len() < limits.max_out {
        let Some(i) = memchr::memchr(b'\n', &block[at..]) else {
            break;
        };
        if i > limits.max_line {
            return Run {
                end: at,
                lines,
                stop: Some(RunStop::TooLong),
            };
        }
        let len = if i > 0 && block[at + i - 1] == b'\r' {
            i - 1
        } else {
            i
        };
        match format.decode(Line {
            block,
            start: at,
            len,
        }) {
            Ok(Some(x)) => out.push(x),
            Ok(None) => {}
            Err(reason) => {
                return Run {
                    end: at,
                    lines,
                    stop: Some(RunStop::Bad {
                        len,
                        raw: i + 1,
                        reason,
                    }),
                };
            }
        }
        at += i + 1;
        lines += 1;
    }
    Run::done(at, lines)
}

/// Text lines: each line as `Bytes`, checked to be UTF-8 (so `std::str::from_utf8` on it
/// cannot fail).
#[derive(Clone, Debug, Default)]
pub struct TextLines;

impl LineFormat for TextLines {
    type Out = Bytes;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Bytes>, String> {
        match std::str::from_utf8(line.as_bytes()) {
            Ok(_) => Ok(Some(line.to_bytes())),
            Err(e) => Err(format!("not UTF-8: {e}")),
        }
    }
}

/// JSON lines as `Bytes`: each non-blank line must hold exactly one JSON value (checked, not
/// parsed).
#[derive(Clone, Debug, Default)]
pub struct JsonBytes;

impl LineFormat for JsonBytes {
    type Out = Bytes;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Bytes>, String> {
        let b = line.as_bytes();
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        check_json(b)?;
        Ok(Some(line.to_bytes()))
    }
}

/// JSON lines decoded by `decode` from each checked line's bytes.
#[derive(Clone)]
pub struct JsonLines<F> {
    pub(crate) decode: F,
}

impl<T, E, F> LineFormat for JsonLines<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(&[u8]) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<T>, String> {
        let b = line.as_bytes();
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        check_json(b)?;
        (self.decode)(b).map(Some).map_err(|e| e.to_string())
    }
}

/// Checks that `line` holds exactly one JSON value, without building it (serde_json).
fn check_json(line: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(line)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON: {e}"))
}
