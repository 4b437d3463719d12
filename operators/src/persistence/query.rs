//! Journal queries as sources: the events of one persistence id, or of one tag, read in blocks
//! of a batch, current or live, resuming from their checkpointed position.

use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{Snapshot, Source, SourceLogic, StageCx, StageError, Step};
use weir_state::journal::{Journal, JournalEntry, TaggedEntry};

/// Whether a query completes at the end of what is stored or follows new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Completes once it read every event stored when it reached the end.
    Current,
    /// Waits for new events at the end (woken by the journal's appends), until cancelled.
    Live,
}

/// What a query reads next and how.
trait Cursor: Send + 'static {
    type Item: Send + 'static;
    /// At most `max` items after the cursor, advancing it.
    fn read(&mut self, journal: &dyn Journal, max: usize) -> Result<Vec<Self::Item>, StageError>;
    /// The position to save.
    fn position(&self) -> u64;
    /// Goes back to a saved position.
    fn seek(&mut self, position: u64);
}

struct ByPid {
    pid: String,
    /// The next sequence number to read.
    next: u64,
}

impl Cursor for ByPid {
    type Item = JournalEntry;
    fn read(&mut self, journal: &dyn Journal, max: usize) -> Result<Vec<JournalEntry>, StageError> {
        let v = journal
            .read(&self.pid, self.next, max)
            .map_err(StageError::from_error)?;
        if let Some(last) = v.last() {
            self.next = last.seq + 1;
        }
        Ok(v)
    }
    fn position(&self) -> u64 {
        self.next
    }
    fn seek(&mut self, position: u64) {
        self.next = position;
    }
}

struct ByTag {
    tag: String,
    /// The next offset to read.
    next: u64,
}

impl Cursor for ByTag {
    type Item = TaggedEntry;
    fn read(&mut self, journal: &dyn Journal, max: usize) -> Result<Vec<TaggedEntry>, StageError> {
        let v = journal
            .events_by_tag(&self.tag, self.next, max)
            .map_err(StageError::from_error)?;
        if let Some(last) = v.last() {
            self.next = last.offset + 1;
        }
        Ok(v)
    }
    fn position(&self) -> u64 {
        self.next
    }
    fn seek(&mut self, position: u64) {
        self.next = position;
    }
}

struct Query<C> {
    journal: Arc<dyn Journal>,
    cursor: C,
    liveness: Liveness,
}

impl<C: Cursor> SourceLogic<C::Item> for Query<C> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<C::Item>,
    ) -> Poll<Result<Step, StageError>> {
        // Read the append count first: an append after it wakes this query again.
        let seen = self.journal.watch().appends();
        let max = scx.batch_size().max(1);
        let items = match self.cursor.read(&*self.journal, max) {
            Ok(v) => v,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let full = items.len() >= max;
        out.extend(items);
        if full || !out.is_empty() {
            return Poll::Ready(Ok(Step::More));
        }
        match self.liveness {
            Liveness::Current => Poll::Ready(Ok(Step::Done)),
            Liveness::Live => match self.journal.watch().poll_after(seen, cx) {
                Poll::Ready(_) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Snapshot::encode(&self.cursor.position())
            .map(Some)
            .map_err(StageError::from_error)
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let position: u64 = snapshot.decode().map_err(StageError::from_error)?;
        self.cursor.seek(position);
        Ok(())
    }
}

/// The events of `pid` from sequence number `from_seq` on, in order.
///
/// - **emits when** stored events remain after its position and downstream has demand
/// - **completes when** it reached the end (`Current`); never (`Live`: it waits for appends)
/// - **fails when** the journal fails or an entry is corrupt (naming the id and sequence)
pub fn events_by_persistence_id(
    journal: Arc<dyn Journal>,
    pid: &str,
    from_seq: u64,
    liveness: Liveness,
) -> Source<JournalEntry> {
    let pid = pid.to_owned();
    Source::from_logic("events-by-persistence-id", move |_| {
        Ok((
            Query {
                journal: Arc::clone(&journal),
                cursor: ByPid {
                    pid: pid.clone(),
                    next: from_seq.max(1),
                },
                liveness,
            },
            (),
        ))
    })
}

/// The events tagged `tag` from global offset `from_offset` on, in offset order (across
/// persistence ids).
///
/// - **emits when** tagged events remain after its offset and downstream has demand
/// - **completes when** it reached the end (`Current`); never (`Live`)
/// - **fails when** the journal fails or an entry is corrupt
pub fn events_by_tag(
    journal: Arc<dyn Journal>,
    tag: &str,
    from_offset: u64,
    liveness: Liveness,
) -> Source<TaggedEntry> {
    let tag = tag.to_owned();
    Source::from_logic("events-by-tag", move |_| {
        Ok((
            Query {
                journal: Arc::clone(&journal),
                cursor: ByTag {
                    tag: tag.clone(),
                    next: from_offset,
                },
                liveness,
            },
            (),
        ))
    })
}
