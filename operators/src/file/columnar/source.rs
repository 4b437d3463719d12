//! The columnar source's logic: takes record batches from the reading thread (a couple
//! ahead) and hands them on, tracking the file and row of the next one, which is what it
//! snapshots (as the line sources do, with the row for the byte offset).

use super::super::error::FileError;
use super::super::position::Positions;
use super::super::reader::{FileWalk, Follow};
use super::super::source::{Plain, ReadConfig};
use super::Columnar;
use super::read::{BatchReader, Item};
use crate::source::BlockingIterLogic;
use arrow_array::RecordBatch;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use weir_graph::{Share, Snapshot, SourceLogic, StageCx, StageError, Step};

/// Items the reading thread reads ahead of the stage.
const READ_AHEAD: usize = 2;

type Reader = std::iter::Map<BatchReader, fn(Result<Item, FileError>) -> Result<Item, StageError>>;

/// The running columnar source.
pub(crate) struct ColumnarSourceLogic {
    config: Arc<ReadConfig>,
    format: Columnar,
    positions: Positions,
    items: Option<BlockingIterLogic<Item, Reader>>,
    scratch: Vec<Item>,
    /// The open file and the row of its next batch.
    file: Option<Arc<Path>>,
    row: u64,
    /// Tells a following reading thread to stop waiting for new files.
    stop: Arc<AtomicBool>,
}

impl ColumnarSourceLogic {
    /// The source as subtask `subtask` of `parallelism` (the configured share is split again
    /// among the subtasks).
    pub(crate) fn new(
        config: Arc<ReadConfig>,
        format: Columnar,
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
            items: None,
            scratch: Vec::new(),
            file: None,
            row: 0,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn reader(&mut self) -> &mut BlockingIterLogic<Item, Reader> {
        self.items.get_or_insert_with(|| {
            let config = Arc::clone(&self.config);
            let start = self.positions.start();
            let follow = config.follow.map(|interval| Follow {
                interval,
                stop: Arc::clone(&self.stop),
            });
            let format = self.format;
            BlockingIterLogic::new(Arc::new(Plain), move || {
                let walk = FileWalk::new(&config.files, start, follow)?;
                let reader =
                    BatchReader::new(walk, format, config.batch_rows, config.columns.clone());
                let f: fn(Result<Item, FileError>) -> Result<Item, StageError> =
                    |r| r.map_err(StageError::from);
                Ok(reader.map(f))
            })
        })
    }
}

impl SourceLogic<RecordBatch> for ColumnarSourceLogic {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<RecordBatch>,
    ) -> Poll<Result<Step, StageError>> {
        let mut small = StageCx::new(scx.info(), scx.clock(), None, READ_AHEAD);
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.reader().poll_next(cx, &mut small, &mut scratch);
        for item in scratch.drain(..) {
            match item {
                Item::Open { file, row } => {
                    self.file = Some(file);
                    self.row = row;
                }
                Item::Batch(b) => {
                    self.row += b.num_rows() as u64;
                    out.push(b);
                }
            }
        }
        self.scratch = scratch;
        match r {
            // Only files opened: poll again for their batches.
            Poll::Ready(Ok(Step::More)) if out.is_empty() => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.items {
            Some(items) => items.poll_ended(cx),
            None => Poll::Pending,
        }
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        let at = self.file.as_deref().map(|f| (f, self.row, 0));
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
        if let Some(b) = &mut self.items {
            b.post_stop();
        }
    }
}

impl Drop for ColumnarSourceLogic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
