//! Sources from values: `from_iter`, `single`, `repeat`, `empty`, `failed`.

use std::task::{Context, Poll};
use weir_graph::{Snapshot, Source, SourceLogic, StageCx, StageError, Step};

/// Emits the items of an iterator, a whole batch per poll.
struct IterLogic<It> {
    iter: It,
    /// Items emitted so far: the position a snapshot saves (the iterator is replayed up to it
    /// on restore, as it is recreated from the same items).
    emitted: u64,
}

impl<T: Send + 'static, It: Iterator<Item = T> + Send + 'static> SourceLogic<T> for IterLogic<It> {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let n = scx.batch_size().max(1);
        out.reserve(n.min(self.iter.size_hint().0.max(1)));
        for k in 0..n {
            match self.iter.next() {
                Some(x) => out.push(x),
                None => {
                    self.emitted += k as u64;
                    return Poll::Ready(Ok(Step::Done));
                }
            }
        }
        self.emitted += n as u64;
        Poll::Ready(Ok(Step::More))
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.emitted)?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let at: u64 = snapshot.decode()?;
        for done in 0..at {
            if self.iter.next().is_none() {
                return Err(StageError::internal(format!(
                    "the iterator ended after {done} items, before the restored position {at}"
                )));
            }
        }
        self.emitted = at;
        Ok(())
    }
}

pub(crate) fn from_iter<I>(items: I) -> Source<I::Item>
where
    I: IntoIterator + Clone + Send + Sync + 'static,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    Source::from_logic("from_iter", move |_| {
        Ok((
            IterLogic {
                iter: items.clone().into_iter(),
                emitted: 0,
            },
            (),
        ))
    })
}

pub(crate) fn single<T: Clone + Send + Sync + 'static>(x: T) -> Source<T> {
    Source::from_logic("single", move |_| {
        Ok((
            IterLogic {
                iter: std::iter::once(x.clone()),
                emitted: 0,
            },
            (),
        ))
    })
}

/// Emits the same value forever, a whole batch per poll.
struct RepeatLogic<T>(T);

impl<T: Clone + Send + 'static> SourceLogic<T> for RepeatLogic<T> {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let n = scx.batch_size().max(1);
        out.resize(out.len() + n, self.0.clone());
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn repeat<T: Clone + Send + Sync + 'static>(x: T) -> Source<T> {
    Source::from_logic("repeat", move |_| Ok((RepeatLogic(x.clone()), ())))
}

/// Completes at once, or fails at once with the given error.
struct EndLogic(Option<StageError>);

impl<T: Send + 'static> SourceLogic<T> for EndLogic {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        _out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        Poll::Ready(match &self.0 {
            Some(e) => Err(e.clone()),
            None => Ok(Step::Done),
        })
    }
}

pub(crate) fn empty<T: Send + 'static>() -> Source<T> {
    Source::from_logic("empty", |_| Ok((EndLogic(None), ())))
}

pub(crate) fn failed<T: Send + 'static>(error: StageError) -> Source<T> {
    Source::from_logic("failed", move |_| Ok((EndLogic(Some(error.clone())), ())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;

    #[test]
    fn from_iter_fills_batches_and_rematerializes() {
        let s = from_iter(vec![1, 2, 3, 4, 5]);
        let (mut h, ()) = source(&s, 2);
        let (v, step) = h.poll().unwrap().unwrap();
        assert_eq!((v, step), (vec![1, 2], Step::More));
        assert_eq!(h.drain().unwrap(), vec![3, 4, 5]);
        let (mut h2, ()) = source(&s, 100);
        assert_eq!(h2.drain().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn from_iter_exact_multiple_of_batch() {
        let (mut h, ()) = source(&from_iter(0..4), 2);
        assert_eq!(h.poll().unwrap().unwrap().1, Step::More);
        assert_eq!(h.poll().unwrap().unwrap().1, Step::More);
        let (v, step) = h.poll().unwrap().unwrap();
        assert!(v.is_empty());
        assert_eq!(step, Step::Done);
    }

    #[test]
    fn single_repeat_empty_failed() {
        assert_eq!(source(&single("a"), 4).0.drain().unwrap(), vec!["a"]);
        let (mut r, ()) = source(&repeat(7u8), 3);
        for _ in 0..3 {
            assert_eq!(r.poll().unwrap().unwrap(), (vec![7, 7, 7], Step::More));
        }
        assert!(source(&empty::<u8>(), 4).0.drain().unwrap().is_empty());
        let e = source(&failed::<u8>(StageError::user("boom")), 4)
            .0
            .drain()
            .unwrap_err();
        assert_eq!(e.message(), "boom");
    }
}
