//! `range(start, end)`: the integers of `start..end`, a whole batch per poll (the fast path).

use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// An integer type that `Source::range` can count over.
pub trait RangeInt: Copy + PartialOrd + Send + Sync + 'static {
    /// Appends up to `max` values of `*cur..end` to `out`, advancing `*cur`; true when exhausted.
    fn fill(cur: &mut Self, end: Self, max: usize, out: &mut Vec<Self>) -> bool;
}

macro_rules! range_int {
    ($($t:ty),*) => {$(
        impl RangeInt for $t {
            #[inline]
            fn fill(cur: &mut Self, end: Self, max: usize, out: &mut Vec<Self>) -> bool {
                if *cur >= end {
                    return true;
                }
                // Every supported type fits in i128, so the distance cannot overflow.
                let left = (end as i128 - *cur as i128) as u128;
                let k = left.min(max as u128);
                let stop = (*cur as i128 + k as i128) as $t;
                out.extend(*cur..stop);
                *cur = stop;
                stop >= end
            }
        }
    )*};
}

range_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Counts from `cur` up to `end` (exclusive).
struct RangeLogic<T> {
    cur: T,
    end: T,
}

impl<T: RangeInt> SourceLogic<T> for RangeLogic<T> {
    #[inline]
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let done = T::fill(&mut self.cur, self.end, scx.batch_size().max(1), out);
        Poll::Ready(Ok(if done { Step::Done } else { Step::More }))
    }
}

pub(crate) fn range<T: RangeInt>(start: T, end: T) -> Source<T> {
    Source::from_logic("range", move |_| Ok((RangeLogic { cur: start, end }, ())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;
    use proptest::prelude::*;

    #[test]
    fn range_batches_and_bounds() {
        let (mut h, ()) = source(&range(0u64, 5), 2);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![0, 1], Step::More));
        assert_eq!(h.drain().unwrap(), vec![2, 3, 4]);
        assert!(source(&range(5i64, 5), 8).0.drain().unwrap().is_empty());
        assert!(source(&range(9usize, 3), 8).0.drain().unwrap().is_empty());
        let v = source(&range(-3i64, 2), 8).0.drain().unwrap();
        assert_eq!(v, vec![-3, -2, -1, 0, 1]);
        let v = source(&range(u64::MAX - 2, u64::MAX), 8).0.drain().unwrap();
        assert_eq!(v, vec![u64::MAX - 2, u64::MAX - 1]);
        let v = source(&range(i8::MIN, i8::MAX), 1000).0.drain().unwrap();
        assert_eq!(v.len(), 255);
    }

    proptest! {
        #[test]
        fn range_matches_std(a in -1000i64..1000, len in 0i64..3000, batch in 1usize..700) {
            let got = source(&range(a, a + len), batch).0.drain().unwrap();
            prop_assert_eq!(got, (a..a + len).collect::<Vec<_>>());
        }
    }
}
