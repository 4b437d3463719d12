//! `range(start, end)`: the integers of `start..end`, a whole batch per poll (the fast path).

use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// An integer type that `Source::range` can count over.
pub trait RangeInt: Copy + PartialOrd + Send + Sync + 'static {
    /// Appends up to `max` values of `*cur..end` to `out`, advancing `*cur`; true when exhausted.
    fn fill(cur: &mut Self, end: Self, max: usize, out: &mut Vec<Self>) -> bool;
    /// The share `[lo, hi)` of `start..end` that subtask `i` of `n` counts over (contiguous,
    /// sizes differing by at most one, together exactly `start..end`).
    fn share(start: Self, end: Self, i: usize, n: usize) -> (Self, Self);
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
            fn share(start: Self, end: Self, i: usize, n: usize) -> (Self, Self) {
                if start >= end || n <= 1 {
                    return (start, end);
                }
                let len = end as i128 - start as i128;
                let at = |k: usize| (start as i128 + len * k as i128 / n as i128) as $t;
                (at(i.min(n)), at((i + 1).min(n)))
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

/// Runs as several subtasks (explicitly or with the run's default parallelism), each counting
/// its contiguous share of the range: together exactly `start..end`, in no order across them.
pub(crate) fn range<T: RangeInt>(start: T, end: T) -> Source<T> {
    Source::from_logic("range", move |info| {
        let (cur, end) = T::share(start, end, info.subtask, info.parallelism);
        Ok((RangeLogic { cur, end }, ()))
    })
    .parallel_by_default()
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

    #[test]
    fn subtasks_split_the_range_into_contiguous_shares() {
        assert_eq!(u64::share(0, 10, 0, 3), (0, 3));
        assert_eq!(u64::share(0, 10, 1, 3), (3, 6));
        assert_eq!(u64::share(0, 10, 2, 3), (6, 10));
        assert_eq!(i8::share(-128, 127, 1, 2), (-1, 127));
        assert_eq!(u64::share(5, 7, 3, 4), (6, 7));
        assert_eq!(u64::share(5, 7, 0, 4), (5, 5));
        assert_eq!(u64::share(9, 3, 1, 2), (9, 3));
        assert_eq!(u64::share(0, u64::MAX, 1, 2), (u64::MAX / 2, u64::MAX));
    }

    proptest! {
        #[test]
        fn shares_cover_the_range_exactly(a in -1000i64..1000, len in 0i64..3000, n in 1usize..9) {
            let mut all = Vec::new();
            for i in 0..n {
                let (lo, hi) = i64::share(a, a + len, i, n);
                all.extend(lo..hi);
            }
            prop_assert_eq!(all, (a..a + len).collect::<Vec<_>>());
        }

        #[test]
        fn range_matches_std(a in -1000i64..1000, len in 0i64..3000, batch in 1usize..700) {
            let got = source(&range(a, a + len), batch).0.drain().unwrap();
            prop_assert_eq!(got, (a..a + len).collect::<Vec<_>>());
        }
    }
}
