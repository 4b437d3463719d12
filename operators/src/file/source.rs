//! The file source's logic: takes blocks from the reading thread (the engine's blocking-iterator
//! source, a few blocks ahead) and cuts them into lines on the stage's own poll, tracking the
//! file, byte offset and line number of the next line, which is what it snapshots.

use super::error::FileError;
use super::format::{Line, LineFormat, RunLimits, RunStop};
use super::position::Positions;
use super::reader::{Block, BlockReader, Files, Follow};
use crate::source::{BlockingIterLogic, PullThread};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use weir_graph::{Share, Snapshot, SourceLogic, StageCx, StageError, Step};

/// Blocks the reading thread reads ahead of the stage.
const READ_AHEAD: usize = 2;

/// A pull thread needing nothing around its work.
pub(crate) struct Plain;

impl PullThread for Plain {}

type Reader =
    std::iter::Map<BlockReader, fn(Result<Block, FileError>) -> Result<Block, StageError>>;

/// How a source reads: its files, block size and line limit.
#[derive(Clone, Debug)]
pub(crate) struct ReadConfig {
    pub(crate) files: Files,
    pub(crate) block_size: usize,
    pub(crate) max_line: usize,
    /// Lists the files again at this interval for new ones once the listed ones are read.
    pub(crate) follow: Option<std::time::Duration>,
    /// The share of the listing this source reads (`(index, count)`; `(0, 1)`: every file),
    /// split again among its subtasks.
    pub(crate) share: (usize, usize),
    /// Rows per record batch at most (the columnar formats).
    pub(crate) batch_rows: usize,
    /// The columns to read, in order (the columnar formats; `None`: all).
    pub(crate) columns: Option<std::sync::Arc<[String]>>,
}

/// The running file source.
pub(crate) struct FileSourceLogic<F> {
    config: Arc<ReadConfig>,
    format: F,
    /// Its share of the listing and the positions it was restored with.
    positions: Positions,
    blocks: Option<BlockingIterLogic<Block, Reader>>,
    /// Blocks taken from the reading thread and not yet cut.
    taken: VecDeque<Block>,
    scratch: Vec<Block>,
    /// The reading thread has nothing more.
    exhausted: bool,
    /// The open file, the byte offset and number of its next line.
    file: Option<Arc<Path>>,
    offset: u64,
    line: u64,
    /// The uncut rest of the current block.
    buf: Bytes,
    /// The start of a line that began in an earlier block (copied).
    carry: BytesMut,
    /// A failure held back until the elements before it are out.
    failed: Option<StageError>,
    /// Tells a following reading thread to stop waiting for new files.
    stop: Arc<AtomicBool>,
}

impl<F: LineFormat> FileSourceLogic<F> {
    /// The source as subtask `subtask` of `parallelism` (the configured share is split again
    /// among the subtasks).
    pub(crate) fn new(
        config: Arc<ReadConfig>,
        format: F,
        subtask: usize,
        parallelism: usize,
    ) -> Self {
        let share = Share::of(
            config.share.0,
            config.share.1.max(1),
            subtask,
            parallelism.max(1),
        );
        Self {
            config,
            format,
            positions: Positions::new((share.index, share.count)),
            blocks: None,
            taken: VecDeque::new(),
            scratch: Vec::new(),
            exhausted: false,
            file: None,
            offset: 0,
            line: 1,
            buf: Bytes::new(),
            carry: BytesMut::new(),
            failed: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn path(&self) -> PathBuf {
        self.file
            .as_deref()
            .map_or_else(PathBuf::new, Path::to_path_buf)
    }

    /// The next block from the reading thread (started on first use), `None` once it is done.
    fn next_block(
        &mut self,
        cx: &mut Context<'_>,
        scx: &StageCx<'_>,
    ) -> Poll<Result<Option<Block>, StageError>> {
        if let Some(b) = self.taken.pop_front() {
            return Poll::Ready(Ok(Some(b)));
        }
        if self.exhausted {
            return Poll::Ready(Ok(None));
        }
        let blocks = self.blocks.get_or_insert_with(|| {
            let config = Arc::clone(&self.config);
            let start = self.positions.start();
            let follow = config.follow.map(|interval| Follow {
                interval,
                stop: Arc::clone(&self.stop),
            });
            BlockingIterLogic::new(Arc::new(Plain), move || {
                let reader = BlockReader::new(&config.files, start, config.block_size, follow)?;
                let f: fn(Result<Block, FileError>) -> Result<Block, StageError> =
                    |r| r.map_err(StageError::from);
                Ok(reader.map(f))
            })
        });
        let mut small = StageCx::new(scx.info(), scx.clock(), None, READ_AHEAD);
        match blocks.poll_next(cx, &mut small, &mut self.scratch) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(step)) => {
                self.taken.extend(self.scratch.drain(..));
                if step == Step::Done {
                    self.exhausted = true;
                }
                Poll::Ready(Ok(self.taken.pop_front()))
            }
        }
    }

    /// Decodes the line of `raw` bytes (its terminator included) that `block` starts with,
    /// at the current position.
    fn emit(
        &mut self,
        block: &Bytes,
        raw: usize,
        out: &mut Vec<F::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (line, offset) = (self.line, self.offset);
        self.offset += raw as u64;
        self.line += 1;
        let mut len = raw;
        if len > 0 && block[len - 1] == b'\n' {
            len -= 1;
            if len > 0 && block[len - 1] == b'\r' {
                len -= 1;
            }
        }
        if line == 1 && self.format.has_header() {
            return Ok(());
        }
        let l = Line {
            block,
            start: 0,
            len,
        };
        match self.format.decode(l) {
            Ok(Some(x)) => out.push(x),
            Ok(None) => {}
            Err(reason) => self.bad_line(l, line, offset, reason, scx)?,
        }
        Ok(())
    }

    /// Reports the bad line `l` (number `line` at byte `offset`): fails the source unless the
    /// supervision resumes (the raw line then goes to the dead letters).
    #[cold]
    fn bad_line(
        &self,
        l: Line<'_>,
        line: u64,
        offset: u64,
        reason: String,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let err = FileError::BadLine {
            path: self.path(),
            line,
            offset,
            reason,
        };
        let repr = format!("{:?}", String::from_utf8_lossy(l.as_bytes()));
        scx.element_failed(err.into(), Some(Box::new(l.to_bytes())), Some(repr))
    }

    /// Decodes the whole lines of the current block where they lie (the format's run, in one
    /// pass for CSV) until `out` holds `max` elements or the block holds no whole line.
    fn run(
        &mut self,
        out: &mut Vec<F::Out>,
        max: usize,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let block = std::mem::take(&mut self.buf);
        let limits = RunLimits {
            max_out: max,
            max_line: self.config.max_line,
        };
        let mut at = 0;
        let result = loop {
            let run = self.format.decode_run(&block, at, limits, out);
            self.offset += (run.end - at) as u64;
            self.line += run.lines;
            at = run.end;
            match run.stop {
                None => break Ok(()),
                Some(RunStop::TooLong) => break Err(self.too_long()),
                Some(RunStop::Bad { len, raw, reason }) => {
                    let (line, offset) = (self.line, self.offset);
                    self.line += 1;
                    self.offset += raw as u64;
                    let l = Line {
                        block: &block,
                        start: at,
                        len,
                    };
                    at += raw;
                    if let Err(e) = self.bad_line(l, line, offset, reason, scx) {
                        break Err(e);
                    }
                }
            }
        };
        self.buf = block;
        self.buf.advance(at);
        result
    }

    fn too_long(&self) -> StageError {
        FileError::LineTooLong {
            path: self.path(),
            line: self.line,
            offset: self.offset,
            max: self.config.max_line,
        }
        .into()
    }

    /// Cuts lines into `out` until it holds `max` elements or the blocks run out.
    fn fill(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<F::Out>,
        max: usize,
    ) -> Poll<Result<Step, StageError>> {
        while out.len() < max {
            if self.carry.is_empty() && !(self.line == 1 && self.format.has_header()) {
                // The block's whole lines, decoded where they lie; then its rest is carried.
                if let Err(e) = self.run(out, max, scx) {
                    return Poll::Ready(Err(e));
                }
                if out.len() >= max {
                    break;
                }
            } else if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let r = if self.carry.is_empty() {
                    if i > self.config.max_line {
                        return Poll::Ready(Err(self.too_long()));
                    }
                    // The header line, skipped where it lies in the block.
                    let block = std::mem::take(&mut self.buf);
                    let r = self.emit(&block, i + 1, out, scx);
                    self.buf = block;
                    r
                } else {
                    if self.carry.len() + i > self.config.max_line {
                        return Poll::Ready(Err(self.too_long()));
                    }
                    self.carry.extend_from_slice(&self.buf[..=i]);
                    let raw = self.carry.split().freeze();
                    self.emit(&raw, raw.len(), out, scx)
                };
                self.buf.advance(i + 1);
                if let Err(e) = r {
                    return Poll::Ready(Err(e));
                }
                continue;
            }
            if !self.buf.is_empty() {
                if self.carry.len() + self.buf.len() > self.config.max_line {
                    return Poll::Ready(Err(self.too_long()));
                }
                self.carry.extend_from_slice(&self.buf);
                self.buf.clear();
            }
            match self.next_block(cx, scx) {
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(Step::More)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(Step::Done)),
                Poll::Ready(Ok(Some(Block::Open { file, offset, line }))) => {
                    self.file = Some(file);
                    self.offset = offset;
                    self.line = line;
                }
                Poll::Ready(Ok(Some(Block::Data(b)))) => self.buf = b,
                Poll::Ready(Ok(Some(Block::Eof))) => {
                    if !self.carry.is_empty() {
                        let raw = self.carry.split().freeze();
                        if let Err(e) = self.emit(&raw, raw.len(), out, scx) {
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
        Poll::Ready(Ok(Step::More))
    }
}

impl<F: LineFormat> SourceLogic<F::Out> for FileSourceLogic<F> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<F::Out>,
    ) -> Poll<Result<Step, StageError>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        let max = scx.batch_size().max(1);
        match self.fill(cx, scx, out, max) {
            // The elements before a failure go out first.
            Poll::Ready(Err(e)) if !out.is_empty() => {
                self.failed = Some(e);
                Poll::Ready(Ok(Step::More))
            }
            other => other,
        }
    }

    fn poll_ended(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        if self.failed.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        let at = self.file.as_deref().map(|f| (f, self.offset, self.line));
        self.positions.snapshot(at).map(Some)
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.positions.restore(snapshot)
    }

    fn restore_redistributed(
        &mut self,
        snapshots: &[Snapshot],
        share: Share,
    ) -> Result<(), StageError> {
        self.positions
            .restore_redistributed(&self.config.files, snapshots, share)
    }

    fn post_stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(b) = &mut self.blocks {
            b.post_stop();
        }
    }
}

impl<F> Drop for FileSourceLogic<F> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
