//! `from_replayable_iter`: a blocking iterator that yields the same items every time `make`
//! builds it (a deterministic generator, a reader from the start of a file), pulled on a
//! thread of its own like `from_blocking_iter`, and checkpointed by count: a snapshot saves how
//! many items went out, and a restored source skips that many on its pulling thread before it
//! hands out the next, as `from_iter` does for a collection. An iterator of live input (a
//! socket) is not replayable: give it to `from_blocking_iter`, which saves nothing.

use super::blocking::{BlockingIterLogic, PullThread};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use weir_graph::{Snapshot, Source, SourceLogic, StageCx, StageError, Step};

/// A [`BlockingIterLogic`] that counts the items it emits and, restored, skips as many of a
/// fresh iterator's items before emitting.
pub struct ReplayedIterLogic<T, I> {
    inner: BlockingIterLogic<T, I>,
    /// Items emitted since the iterator's start (what a snapshot saves).
    emitted: u64,
    /// Items the pulling thread skips first (set by a restore before the first poll).
    skip: Arc<AtomicU64>,
}

impl<T, I> ReplayedIterLogic<T, I>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
{
    /// The logic pulling the iterator `make()` builds on a thread of its own, inside `thread`.
    pub fn new(
        thread: Arc<dyn PullThread>,
        make: impl FnOnce() -> Result<I, StageError> + Send + 'static,
    ) -> Self {
        let skip = Arc::new(AtomicU64::new(0));
        let to_skip = Arc::clone(&skip);
        let inner = BlockingIterLogic::new(thread, move || {
            let mut it = make()?;
            let at = to_skip.load(Ordering::Acquire);
            for done in 0..at {
                match it.next() {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => {
                        return Err(StageError::internal(format!(
                            "the iterator ended after {done} items, before the restored position {at}"
                        )));
                    }
                }
            }
            Ok(it)
        });
        Self {
            inner,
            emitted: 0,
            skip,
        }
    }
}

impl<T, I> SourceLogic<T> for ReplayedIterLogic<T, I>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
{
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let before = out.len();
        let r = self.inner.poll_next(cx, scx, out);
        self.emitted += (out.len() - before) as u64;
        r
    }

    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.poll_ended(cx)
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.emitted)?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let at: u64 = snapshot.decode()?;
        self.emitted = at;
        self.skip.store(at, Ordering::Release);
        Ok(())
    }

    fn post_stop(&mut self) {
        self.inner.post_stop();
    }
}

pub(crate) fn from_replayable_iter<T, I, F>(make: F) -> Source<T>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
    F: Fn() -> I + Send + Sync + 'static,
{
    let make = Arc::new(make);
    Source::from_logic("from_replayable_iter", move |_| {
        let make = Arc::clone(&make);
        let logic = ReplayedIterLogic::new(Arc::new(super::blocking::Plain), move || Ok(make()));
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceCtors;
    use crate::source::test_support::source;
    use std::time::{Duration, Instant};

    /// Everything the source emits until it ends (`Err` on a failure).
    fn drain(
        h: &mut crate::source::test_support::SourceHarness<u32>,
        limit: usize,
    ) -> Result<(Vec<u32>, bool), StageError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < limit {
            match h.poll() {
                Some(Ok((v, step))) => {
                    got.extend(v);
                    if step == Step::Done {
                        return Ok((got, true));
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    assert!(Instant::now() < deadline, "the source never became ready");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        Ok((got, false))
    }

    fn numbers() -> Source<u32> {
        Source::<u32>::from_replayable_iter(|| (0..50u32).map(Ok))
    }

    #[test]
    fn a_restored_source_skips_what_its_snapshot_counted_and_emits_the_rest_exactly() {
        for cut in [0usize, 1, 7, 49, 50] {
            let (mut first, ()) = source(&numbers(), 4);
            let (head, _) = drain(&mut first, cut).unwrap();
            let snap = first.logic.snapshot().unwrap().unwrap();
            let n: u64 = snap.decode().unwrap();
            assert_eq!(n as usize, head.len());
            let (mut second, ()) = source(&numbers(), 4);
            second.logic.restore(&snap).unwrap();
            let (tail, done) = drain(&mut second, usize::MAX).unwrap();
            assert!(done);
            let mut all = head;
            all.extend(tail);
            assert_eq!(all, (0..50).collect::<Vec<_>>(), "cut at {cut}");
        }
    }

    #[test]
    fn a_position_beyond_the_iterator_fails_the_restored_source_naming_it() {
        let (mut h, ()) = source(&numbers(), 4);
        h.logic.restore(&Snapshot::encode(&60u64).unwrap()).unwrap();
        let err = drain(&mut h, usize::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stage 'test#0' failed: the iterator ended after 50 items, before the restored position 60"
        );
    }
}
