//! Windows by count: `grouped`, `sliding`.

use weir_graph::{Flow, FlowLogic, StageCx, StageError, at_least};

/// Upper bound of the capacity reserved up front for one group.
const MAX_RESERVE: usize = 4096;

struct GroupedLogic<T> {
    n: usize,
    buf: Vec<T>,
}

impl<T: Send + 'static> FlowLogic<T, Vec<T>> for GroupedLogic<T> {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<Vec<T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let n = self.n;
        let mut it = input.drain(..);
        loop {
            let want = n - self.buf.len();
            self.buf.extend(it.by_ref().take(want));
            if self.buf.len() < n {
                return Ok(());
            }
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(n.min(MAX_RESERVE)));
            out.push(full);
        }
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<Vec<T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if !self.buf.is_empty() {
            out.push(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

/// Flow form of [`SimpleOps::grouped`](super::SimpleOps::grouped).
/// `n == 0` is reported as an invalid parameter when the graph is validated.
pub fn grouped<T: Send + 'static>(n: usize) -> Flow<T, Vec<T>> {
    let invalid = at_least("grouped: n", n, 1);
    let n = n.max(1);
    Flow::from_logic("grouped", move |_| {
        let buf = Vec::with_capacity(n.min(MAX_RESERVE));
        Ok((GroupedLogic { n, buf }, ()))
    })
    .reject(invalid)
}

struct SlidingLogic<T> {
    n: usize,
    step: usize,
    buf: Vec<T>,
}

impl<T: Clone + Send + 'static> FlowLogic<T, Vec<T>> for SlidingLogic<T> {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<Vec<T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (n, step) = (self.n, self.step);
        for x in input.drain(..) {
            self.buf.push(x);
            let len = self.buf.len();
            if len == n {
                out.push(self.buf.clone());
            } else if len > n {
                if step <= n {
                    self.buf.drain(..step);
                    if self.buf.len() == n {
                        out.push(self.buf.clone());
                    }
                } else if len == step {
                    self.buf.clear();
                }
            }
        }
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<Vec<T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // A window still short of `n` holds elements never emitted: emit it (as Akka does).
        if !self.buf.is_empty() && self.buf.len() < self.n {
            out.push(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

/// Flow form of [`SimpleOps::sliding`](super::SimpleOps::sliding).
/// `n == 0` or `step == 0` is reported as an invalid parameter when the graph is validated.
pub fn sliding<T: Clone + Send + 'static>(n: usize, step: usize) -> Flow<T, Vec<T>> {
    let invalid = at_least("sliding: n", n, 1).or_else(|| at_least("sliding: step", step, 1));
    let (n, step) = (n.max(1), step.max(1));
    Flow::from_logic("sliding", move |_| {
        let buf = Vec::with_capacity(n.min(MAX_RESERVE));
        Ok((SlidingLogic { n, step, buf }, ()))
    })
    .reject(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run};

    #[test]
    fn grouped_cuts_and_flushes_rest() {
        let v: Vec<u8> = (1..=7).collect();
        let want = vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]];
        for bs in 1..9 {
            assert_eq!(run(&grouped(3), batches(&v, bs)).ok(), Some(want.clone()));
        }
        assert_eq!(
            run(&grouped::<u8>(0), batches(&v, 4)).map(|g| g.len()).ok(),
            Some(7)
        );
    }

    #[test]
    fn sliding_matches_akka() {
        let v: Vec<u8> = (1..=5).collect();
        let w = |n, s, bs| run(&sliding(n, s), batches(&v, bs)).ok();
        assert_eq!(
            w(3, 1, 2),
            Some(vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5]])
        );
        assert_eq!(w(3, 2, 1), Some(vec![vec![1, 2, 3], vec![3, 4, 5]]));
        assert_eq!(w(2, 2, 4), Some(vec![vec![1, 2], vec![3, 4], vec![5]]));
        assert_eq!(w(2, 3, 3), Some(vec![vec![1, 2], vec![4, 5]]));
        assert_eq!(w(9, 1, 2), Some(vec![v.clone()]));
        assert_eq!(run(&sliding::<u8>(2, 1), vec![]).ok(), Some(vec![]));
    }
}
