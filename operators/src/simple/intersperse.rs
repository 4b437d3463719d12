//! `intersperse`: separators between elements, optionally a start and an end marker.

use weir_graph::{Flow, FlowLogic, StageCx, StageError};

struct IntersperseLogic<T> {
    start: Option<T>,
    sep: T,
    end: Option<T>,
    started: bool,
    first: bool,
}

impl<T: Clone + Send + 'static> IntersperseLogic<T> {
    fn begin(&mut self, out: &mut Vec<T>) {
        if !self.started {
            self.started = true;
            out.extend(self.start.clone());
        }
    }
}

impl<T: Clone + Send + 'static> FlowLogic<T, T> for IntersperseLogic<T> {
    fn expands(&self) -> bool {
        true
    }

    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if input.is_empty() {
            return Ok(());
        }
        self.begin(out);
        out.reserve(input.len() * 2);
        let mut it = input.drain(..);
        if self.first {
            self.first = false;
            out.extend(it.next());
        }
        for x in it {
            out.push(self.sep.clone());
            out.push(x);
        }
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.begin(out);
        out.extend(self.end.take());
        Ok(())
    }
}

fn build<T: Clone + Send + Sync + 'static>(start: Option<T>, sep: T, end: Option<T>) -> Flow<T, T> {
    Flow::from_logic("intersperse", move |_| {
        let logic = IntersperseLogic {
            start: start.clone(),
            sep: sep.clone(),
            end: end.clone(),
            started: false,
            first: true,
        };
        Ok((logic, ()))
    })
}

/// Flow form of [`SimpleOps::intersperse`](super::SimpleOps::intersperse).
pub fn intersperse<T: Clone + Send + Sync + 'static>(sep: T) -> Flow<T, T> {
    build(None, sep, None)
}

/// Flow form of [`SimpleOps::intersperse_around`](super::SimpleOps::intersperse_around).
pub fn intersperse_around<T: Clone + Send + Sync + 'static>(
    start: T,
    sep: T,
    end: T,
) -> Flow<T, T> {
    build(Some(start), sep, Some(end))
}

/// `sep` between consecutive elements, with an optional `start` before them and `end` after.
/// Emits when: first element or completion (`start`), each element, completion (`end`).
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes and `end` (if any) is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream fails (`end` is not emitted).
pub fn intersperse_framed<T: Clone + Send + Sync + 'static>(
    start: Option<T>,
    sep: T,
    end: Option<T>,
) -> Flow<T, T> {
    build(start, sep, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run};

    #[test]
    fn separators_only_between() {
        let v = ["a", "b", "c"];
        for bs in 1..4 {
            let got = run(&intersperse(","), batches(&v, bs)).ok();
            assert_eq!(got, Some(vec!["a", ",", "b", ",", "c"]));
        }
        assert_eq!(
            run(&intersperse(","), vec![vec!["a"]]).ok(),
            Some(vec!["a"])
        );
    }

    #[test]
    fn start_and_end_even_when_empty() {
        let f = intersperse_around("[", ",", "]");
        let got = run(&f, vec![vec![], vec!["a"], vec!["b"]]).ok();
        assert_eq!(got, Some(vec!["[", "a", ",", "b", "]"]));
        assert_eq!(run(&f, vec![]).ok(), Some(vec!["[", "]"]));
    }

    #[test]
    fn framed_emits_only_the_markers_given() {
        let only_start = intersperse_framed(Some(-1), 0, None);
        assert_eq!(
            run(&only_start, batches(&[1, 2], 1)).ok(),
            Some(vec![-1, 1, 0, 2])
        );
        let only_end = intersperse_framed(None, 0, Some(-2));
        assert_eq!(run(&only_end, vec![]).ok(), Some(vec![-2]));
        assert_eq!(
            run(&only_end, batches(&[1, 2], 2)).ok(),
            Some(vec![1, 0, 2, -2])
        );
    }
}
